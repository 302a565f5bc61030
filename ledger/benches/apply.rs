//! Applying blocks of signed transfers (batched signature checks included) against the
//! single-core ed25519 batch-verification rate on the same machine: the ledger's overhead
//! is the gap between the two. Figures go in docs/benchmarks.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_ledger::params::{GenesisAccount, GenesisValidator};
use cairn_ledger::{Genesis, Ledger, Params};
use cairn_types::tx::{TX_NAMESPACE, Transfer};
use cairn_types::{
    Amount, Block, BoundedString, Hash, Keypair, SignedTransaction, Transaction, TxBody,
};
use commonware_codec::Encode;
use commonware_cryptography::{BatchEntry, BatchVerifier, ed25519};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand_core::SeedableRng;

const ACCOUNTS: usize = 10_000;

fn setup(txs_per_block: usize) -> (Ledger, Block) {
    let keys: Vec<Keypair> = (0..ACCOUNTS)
        .map(|i| Keypair::from_test_seed(&format!("bench-{i}")))
        .collect();
    let validator = Keypair::from_test_seed("bench-validator");
    let genesis = Genesis {
        chain_id: "cairn-bench".into(),
        genesis_time_ms: 0,
        params: Params::default(),
        accounts: keys
            .iter()
            .map(|k| GenesisAccount {
                address: k.address(),
                balance: Amount::from_ucrn(1_000_000_000),
            })
            .collect(),
        validators: vec![GenesisValidator {
            address: validator.address(),
            stake: Amount::from_ucrn(1),
            p2p_address: String::new(),
        }],
        providers: vec![],
    };
    let ledger = Ledger::from_genesis(&genesis).unwrap();
    let txs: Vec<SignedTransaction> = (0..txs_per_block)
        .map(|i| {
            let from = &keys[i % ACCOUNTS];
            let to = keys[(i * 7 + 1) % ACCOUNTS].address();
            Transaction {
                chain_id: BoundedString::new("cairn-bench").unwrap(),
                sender: from.public_key().clone(),
                nonce: u64::try_from(i / ACCOUNTS).unwrap(),
                fee: Params::default().min_tx_fee,
                body: TxBody::Transfer(Transfer {
                    to,
                    amount: Amount::from_ucrn(1_000),
                }),
            }
            .sign(from)
        })
        .collect();
    let block = Block::new(
        1,
        ledger.state().last_block_hash,
        1_000,
        validator.address(),
        Hash::of(b"bench"),
        txs,
    )
    .unwrap()
    .with_state_root(ledger.root());
    (ledger, block)
}

fn apply_transfers(c: &mut Criterion) {
    for &n in &[1_000usize, 5_000] {
        let (ledger, block) = setup(n);
        let mut group = c.benchmark_group("ledger::apply_block");
        group.throughput(Throughput::Elements(u64::try_from(n).unwrap()));
        group.sample_size(10);
        group.bench_function(format!("transfers={n}"), |b| {
            b.iter_batched(
                || ledger.clone(),
                |mut l| {
                    let outcome = l.apply_block(&block).unwrap();
                    assert!(outcome.receipts.iter().all(|r| r.ok()));
                    outcome
                },
                BatchSize::LargeInput,
            )
        });
        group.finish();
    }
}

fn batch_verify(c: &mut Criterion) {
    let n = 5_000usize;
    let (_, block) = setup(n);
    let items: Vec<(ed25519::PublicKey, Vec<u8>, ed25519::Signature)> = block
        .txs
        .iter()
        .map(|t| {
            (
                t.tx.sender.0.clone(),
                t.tx.encode().to_vec(),
                t.signature.0.clone(),
            )
        })
        .collect();
    let mut group = c.benchmark_group("ed25519::verify_batch");
    group.throughput(Throughput::Elements(u64::try_from(n).unwrap()));
    group.sample_size(10);
    group.bench_function(format!("signatures={n}"), |b| {
        b.iter(|| {
            let mut rng = rand_chacha::ChaCha20Rng::from_seed([7; 32]);
            assert!(ed25519::PublicKey::verify_batch(
                &mut rng,
                &items,
                |_, (pk, msg, sig)| BatchEntry {
                    namespace: TX_NAMESPACE,
                    message: msg,
                    public_key: pk,
                    signature: sig,
                },
                &commonware_parallel::Sequential,
            ));
        })
    });
    group.finish();
}

criterion_group!(benches, batch_verify, apply_transfers);
criterion_main!(benches);
