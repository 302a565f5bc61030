//! Lease settlement throughput: how many compute leases the ledger settles per second, by
//! the two paths that settle them (design §7, lazy settlement): the epoch-boundary sweep
//! that settles every live lease, and a block of provider `WithdrawLease` transactions
//! (signature checks included). The state is built through real blocks (orders, bids,
//! accepts), so the leases are exactly what the chain would hold. Figures go in
//! docs/benchmarks.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cairn_ledger::params::{GenesisAccount, GenesisProvider, GenesisValidator};
use cairn_ledger::{Genesis, Ledger, Params};
use cairn_types::tx::{AcceptBid, CreateOrder, LeaseRef, LeaseStarted, PlaceBid};
use cairn_types::{
    Amount, Block, BoundedString, BoundedVec, Capacity, Hardware, Hash, Keypair, LeaseId, OrderId,
    Resources, SignedTransaction, Transaction, TxBody,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const CHAIN_ID: &str = "cairn-bench";
const TENANTS: usize = 1_000;
const PROVIDERS: usize = 10;
const PRICE_PER_BLOCK: u128 = 1_000;
const CPU_PER_LEASE: u64 = 100;
const MEMORY_PER_LEASE: u64 = 64 << 20;

struct Bench {
    ledger: Ledger,
    validator: Keypair,
    tenants: Vec<Keypair>,
    providers: Vec<Keypair>,
}

impl Bench {
    fn new(leases: usize) -> Self {
        let tenants: Vec<Keypair> = (0..TENANTS)
            .map(|i| Keypair::from_test_seed(&format!("bench-tenant-{i}")))
            .collect();
        let providers: Vec<Keypair> = (0..PROVIDERS)
            .map(|i| Keypair::from_test_seed(&format!("bench-provider-{i}")))
            .collect();
        let validator = Keypair::from_test_seed("bench-validator");
        let per_provider = u64::try_from(leases.div_ceil(PROVIDERS)).unwrap();
        let crn = |v: u128| Amount::from_ucrn(v * cairn_types::UCRN_PER_CRN);
        let genesis = Genesis {
            chain_id: CHAIN_ID.into(),
            genesis_time_ms: 0,
            params: Params::default(),
            accounts: tenants
                .iter()
                .chain(&providers)
                .map(|k| GenesisAccount {
                    address: k.address(),
                    balance: crn(1_000_000),
                })
                .collect(),
            validators: vec![GenesisValidator {
                address: validator.address(),
                stake: crn(1),
                p2p_address: String::new(),
            }],
            providers: providers
                .iter()
                .enumerate()
                .map(|(i, k)| GenesisProvider {
                    address: k.address(),
                    endpoint: format!("http://127.0.0.1:{}", 9_000 + i),
                    region: "bench".into(),
                    capacity: Capacity {
                        storage_bytes: 0,
                        cpu_millicores: (per_provider + 1) * CPU_PER_LEASE,
                        memory_bytes: (per_provider + 1) * MEMORY_PER_LEASE,
                        gpus: BoundedVec::new(vec![]).unwrap(),
                    },
                    commission_bps: 1_000,
                    bond: crn(1_000),
                    claimed_int8_ops: 0,
                })
                .collect(),
        };
        let mut bench = Self {
            ledger: Ledger::from_genesis(&genesis).unwrap(),
            validator,
            tenants,
            providers,
        };
        bench.open_leases(leases);
        bench
    }

    fn sign(&self, key: &Keypair, nonce: u64, body: TxBody) -> SignedTransaction {
        Transaction {
            chain_id: BoundedString::new(CHAIN_ID).unwrap(),
            sender: key.public_key().clone(),
            nonce,
            fee: self.ledger.params().min_tx_fee,
            body,
        }
        .sign(key)
    }

    /// `count` transactions, sender `i % keys.len()`, nonces running on from the state's.
    fn signed(
        &self,
        keys: &[Keypair],
        count: usize,
        body: impl Fn(usize) -> TxBody,
    ) -> Vec<SignedTransaction> {
        (0..count)
            .map(|i| {
                let key = &keys[i % keys.len()];
                let nonce = self.ledger.state().nonce(&key.address())
                    + u64::try_from(i / keys.len()).unwrap();
                self.sign(key, nonce, body(i))
            })
            .collect()
    }

    fn next_block(&self, txs: Vec<SignedTransaction>) -> Block {
        let height = self.ledger.height() + 1;
        Block::new(
            height,
            self.ledger.state().last_block_hash,
            height * self.ledger.params().block_time_ms,
            self.validator.address(),
            Hash::domain("bench.seed", &[&height.to_be_bytes()]),
            txs,
        )
        .unwrap()
        .with_state_root(self.ledger.root())
    }

    fn run(&mut self, txs: Vec<SignedTransaction>) {
        let block = self.next_block(txs);
        let outcome = self.ledger.apply_block(&block).unwrap();
        if let Some(bad) = outcome.receipts.iter().find(|r| !r.ok()) {
            panic!("{} failed: {:?}", bad.kind, bad.error);
        }
    }

    /// Orders (tenant `i % TENANTS`), one bid each (provider `i % PROVIDERS`), accepts.
    fn open_leases(&mut self, leases: usize) {
        if leases == 0 {
            return;
        }
        let first = self.ledger.state().counters.lease;
        let resources = Resources {
            cpu_millicores: CPU_PER_LEASE,
            memory_bytes: MEMORY_PER_LEASE,
            storage_bytes: 0,
            gpu_count: 0,
            gpu_vendor: BoundedString::new("").unwrap(),
            gpu_model: BoundedString::new("").unwrap(),
            min_vram_mib: 0,
        };
        let orders = self.signed(&self.tenants.clone(), leases, |i| {
            TxBody::CreateOrder(CreateOrder {
                manifest_hash: Hash::domain("bench.manifest", &[&i.to_be_bytes()]),
                resources: resources.clone(),
                max_price_per_block: Amount(PRICE_PER_BLOCK),
                // Enough for two epochs: no lease pauses inside the measured blocks.
                deposit: Amount(PRICE_PER_BLOCK * 200),
                bid_window_blocks: 1,
            })
        });
        let order_base = self.ledger.state().counters.order;
        self.run(orders);
        let hardware = Hardware {
            cpu_millicores: CPU_PER_LEASE,
            memory_bytes: MEMORY_PER_LEASE,
            storage_bytes: 0,
            gpus: BoundedVec::new(vec![]).unwrap(),
        };
        // Provider i % PROVIDERS bids on order i, so tenant and provider of order i line up
        // with the accept below.
        let bids = self.signed(&self.providers.clone(), leases, |i| {
            TxBody::PlaceBid(PlaceBid {
                order: OrderId(order_base + u64::try_from(i).unwrap()),
                price_per_block: Amount(PRICE_PER_BLOCK),
                hardware: hardware.clone(),
            })
        });
        self.run(bids);
        let providers: Vec<_> = self.providers.iter().map(Keypair::address).collect();
        let accepts = self.signed(&self.tenants.clone(), leases, |i| {
            TxBody::AcceptBid(AcceptBid {
                order: OrderId(order_base + u64::try_from(i).unwrap()),
                provider: providers[i % PROVIDERS],
            })
        });
        self.run(accepts);
        let opened = self.ledger.state().counters.lease - first;
        assert_eq!(opened, u64::try_from(leases).unwrap());
        // Each provider reports its workloads started: a lease is billed only from then.
        let starts = self.signed(&self.providers.clone(), leases, |i| {
            TxBody::LeaseStarted(LeaseStarted {
                lease: LeaseId(first + u64::try_from(i).unwrap()),
            })
        });
        self.run(starts);
    }

    /// Empty blocks up to the one before the epoch's last, so the next block is the boundary.
    fn advance_to_boundary(&mut self) {
        let length = self.ledger.params().epoch_length_blocks;
        while !(self.ledger.height() + 2).is_multiple_of(length) {
            self.run(vec![]);
        }
        self.run(vec![]);
    }

    fn withdraw_block(&self, leases: usize) -> Block {
        // Lease i belongs to provider i % PROVIDERS; a provider's withdrawals run its nonces.
        let txs = self.signed(&self.providers, leases, |i| {
            TxBody::WithdrawLease(LeaseRef {
                lease: LeaseId(u64::try_from(i).unwrap()),
            })
        });
        self.next_block(txs)
    }
}

fn paid_total(ledger: &Ledger) -> u128 {
    ledger.state().leases.values().map(|l| l.paid_total.0).sum()
}

fn epoch_sweep(c: &mut Criterion) {
    let mut group = c.benchmark_group("ledger::lease_sweep");
    group.sample_size(10);
    for &leases in &[0usize, 10_000] {
        let mut bench = Bench::new(leases);
        bench.advance_to_boundary();
        let boundary = bench.next_block(vec![]);
        let before = paid_total(&bench.ledger);
        group.throughput(Throughput::Elements(u64::try_from(leases.max(1)).unwrap()));
        group.bench_function(format!("epoch_boundary/leases={leases}"), |b| {
            b.iter_batched(
                || bench.ledger.clone(),
                |mut ledger| {
                    ledger.apply_block(&boundary).unwrap();
                    // Every live lease was paid for the blocks since it was last settled.
                    assert!(leases == 0 || paid_total(&ledger) > before);
                    ledger
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn withdraw(c: &mut Criterion) {
    let leases = 10_000usize;
    let mut bench = Bench::new(leases);
    // A few blocks of accrued payment, away from an epoch boundary.
    for _ in 0..3 {
        bench.run(vec![]);
    }
    let block = bench.withdraw_block(leases);
    let mut group = c.benchmark_group("ledger::lease_withdraw");
    group.sample_size(10);
    group.throughput(Throughput::Elements(u64::try_from(leases).unwrap()));
    group.bench_function(format!("withdraw_lease_txs={leases}"), |b| {
        b.iter_batched(
            || bench.ledger.clone(),
            |mut ledger| {
                let outcome = ledger.apply_block(&block).unwrap();
                assert!(outcome.receipts.iter().all(|r| r.ok()));
                outcome
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, epoch_sweep, withdraw);
criterion_main!(benches);
