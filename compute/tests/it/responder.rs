//! The responder answers the ledger's GEMM challenges with the real CPU backend: the honest
//! prover passes at its claimed rate, a `LazyProver` backend that skips rows fails, and a
//! responder that shows up after the commit deadline misses.

use cairn_compute::popw::{BackendError, CpuBackend, GemmBackend};
use cairn_compute::prover::{Event, Responder};
use cairn_ledger::params::{GenesisAccount, GenesisProvider, GenesisValidator};
use cairn_ledger::state::{ComputeChallenge, ComputePhase};
use cairn_ledger::{Genesis, Ledger, Params};
use cairn_proofs::GemmShape;
use cairn_types::{
    Amount, Block, BoundedString, Capacity, Hash, Keypair, SignedTransaction, Transaction, TxBody,
};

const CHAIN_ID: &str = "cairn-compute-test";
const GENESIS_MS: u64 = 1_700_000_000_000;
const CLAIM: u64 = 20_000_000;

fn crn(v: u128) -> Amount {
    Amount::from_ucrn(v * cairn_types::UCRN_PER_CRN)
}

fn params() -> Params {
    Params {
        epoch_length_blocks: 100,
        compute_challenge_interval_epochs: 1,
        compute_challenge_ms: 1_000,
        max_gemm_dim: 512,
        compute_commit_deadline_blocks: 5,
        compute_open_deadline_blocks: 5,
        ..cairn_ledger::sim::sim_params()
    }
}

struct Net {
    ledger: Ledger,
    validator: Keypair,
}

impl Net {
    fn new(provers: &[&Keypair]) -> Self {
        let validator = Keypair::from_test_seed("validator");
        let genesis = Genesis {
            chain_id: CHAIN_ID.to_string(),
            genesis_time_ms: GENESIS_MS,
            params: params(),
            accounts: provers
                .iter()
                .map(|k| GenesisAccount {
                    address: k.address(),
                    balance: crn(10_000),
                })
                .collect(),
            validators: vec![GenesisValidator {
                address: validator.address(),
                stake: crn(50_000),
                p2p_address: String::new(),
            }],
            providers: provers
                .iter()
                .enumerate()
                .map(|(i, k)| GenesisProvider {
                    address: k.address(),
                    endpoint: format!("http://127.0.0.1:{}", 7400 + i),
                    region: "eu-west".to_string(),
                    capacity: Capacity {
                        cpu_millicores: 2_000,
                        memory_bytes: 1 << 30,
                        ..Capacity::default()
                    },
                    commission_bps: 500,
                    bond: crn(1_000),
                    claimed_int8_ops: CLAIM,
                })
                .collect(),
        };
        Self {
            ledger: Ledger::from_genesis(&genesis).unwrap(),
            validator,
        }
    }

    fn height(&self) -> u64 {
        self.ledger.height()
    }

    fn challenges(&self, key: &Keypair) -> Vec<ComputeChallenge> {
        self.ledger
            .state()
            .compute_challenges
            .values()
            .filter(|c| c.provider == key.address())
            .cloned()
            .collect()
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

    /// One block with these transactions, each of which must execute.
    fn block(&mut self, txs: Vec<(&Keypair, TxBody)>) {
        let mut nonces = std::collections::BTreeMap::new();
        let signed: Vec<SignedTransaction> = txs
            .into_iter()
            .map(|(key, body)| {
                let nonce = nonces.entry(key.address()).or_insert_with(|| {
                    self.ledger
                        .state()
                        .accounts
                        .get(&key.address())
                        .map_or(0, |a| a.nonce)
                });
                let tx = self.sign(key, *nonce, body);
                *nonce += 1;
                tx
            })
            .collect();
        let height = self.height() + 1;
        let block = Block::new(
            height,
            self.ledger.state().last_block_hash,
            GENESIS_MS + height * self.ledger.params().block_time_ms,
            self.validator.address(),
            Hash::domain("test.seed", &[&height.to_be_bytes()]),
            signed,
        )
        .unwrap()
        .with_state_root(self.ledger.root());
        let outcome = self.ledger.apply_block(&block).unwrap();
        for r in &outcome.receipts {
            assert!(r.ok(), "{} failed at {height}: {:?}", r.kind, r.error);
        }
    }
}

/// A prover that does a share of the work and zeros the rest (design §10: the lazy prover).
struct LazyProver {
    inner: CpuBackend,
    /// Rows out of every 8 that it skips.
    skipped_of_8: usize,
}

impl GemmBackend for LazyProver {
    fn name(&self) -> String {
        "lazy".to_string()
    }

    fn gemm(&self, a: &[i8], b: &[i8], shape: GemmShape) -> Result<Vec<i32>, BackendError> {
        let mut c = self.inner.gemm(a, b, shape)?;
        let n = usize::try_from(shape.n).unwrap();
        for (row, values) in c.chunks_mut(n).enumerate() {
            if row % 8 < self.skipped_of_8 {
                values.fill(0);
            }
        }
        Ok(c)
    }
}

/// Drives blocks until every challenge of the prover is decided; returns its phases.
fn drive(net: &mut Net, responders: &mut [(&Keypair, &mut Responder)]) -> Vec<ComputePhase> {
    let mut events = Vec::new();
    for _ in 0..20 {
        let height = net.height();
        let mut txs = Vec::new();
        for (key, responder) in responders.iter_mut() {
            let (bodies, mut happened) = responder.answer(&net.challenges(key), height).unwrap();
            events.append(&mut happened);
            txs.extend(bodies.into_iter().map(|b| (*key, b)));
        }
        net.block(txs);
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Committed { .. } | Event::Opened { .. })),
        "{events:?}"
    );
    responders
        .iter()
        .flat_map(|(key, _)| net.challenges(key))
        .map(|c| c.phase)
        .collect()
}

#[test]
fn honest_cpu_prover_passes_at_its_claim() {
    let key = Keypair::from_test_seed("prover-1");
    let mut net = Net::new(&[&key]);
    let challenge = &net.challenges(&key)[0];
    assert!(
        challenge.shape().ops() >= u128::from(CLAIM),
        "{challenge:?}"
    );
    let mut responder = Responder::new(Box::new(CpuBackend::new()), 2);
    let phases = drive(&mut net, &mut [(&key, &mut responder)]);
    assert_eq!(
        phases,
        vec![ComputePhase::Passed {
            proven_int8_ops: CLAIM
        }]
    );
}

#[test]
fn lazy_prover_fails_and_honest_neighbour_passes() {
    let (honest, lazy) = (
        Keypair::from_test_seed("prover-1"),
        Keypair::from_test_seed("prover-2"),
    );
    let mut net = Net::new(&[&honest, &lazy]);
    let mut good = Responder::new(Box::new(CpuBackend::with_threads(1)), 1);
    let mut bad = Responder::new(
        Box::new(LazyProver {
            inner: CpuBackend::with_threads(1),
            skipped_of_8: 1,
        }),
        1,
    );
    let phases = drive(&mut net, &mut [(&honest, &mut good), (&lazy, &mut bad)]);
    assert_eq!(
        phases[0],
        ComputePhase::Passed {
            proven_int8_ops: CLAIM
        }
    );
    // 1/8 of C skipped, 32 openings (sim params): caught unless all 32 miss, (7/8)^32 ≈ 1.4%;
    // the seeds here are fixed, so this is deterministic.
    assert!(
        matches!(&phases[1], ComputePhase::Failed { .. }),
        "{:?}",
        phases[1]
    );
}

#[test]
fn a_responder_past_the_deadline_misses() {
    let key = Keypair::from_test_seed("prover-3");
    let mut net = Net::new(&[&key]);
    let deadline = net.challenges(&key)[0].commit_deadline;
    while net.height() < deadline {
        net.block(vec![]);
    }
    let mut responder = Responder::new(Box::new(CpuBackend::with_threads(1)), 1);
    // At the deadline the commitment would land one block late: the ledger refuses it, so
    // the responder must not even try (it would only pay a fee).
    net.block(vec![]);
    let (txs, _) = responder
        .answer(&net.challenges(&key), net.height())
        .unwrap();
    assert!(txs.is_empty(), "{txs:?}");
    while net.height() < net.ledger.params().epoch_length_blocks {
        net.block(vec![]);
    }
    assert_eq!(net.challenges(&key)[0].phase, ComputePhase::Missed);
}

#[test]
fn a_restarted_responder_solves_again_and_opens() {
    // The prover commits, then its process dies before the reveal; a fresh responder finds
    // the challenge committed, recomputes the same product from the seed and opens it.
    let key = Keypair::from_test_seed("prover-restart");
    let mut net = Net::new(&[&key]);
    let mut before = Responder::new(Box::new(CpuBackend::with_threads(1)), 1);
    let (txs, _) = before.answer(&net.challenges(&key), net.height()).unwrap();
    assert!(
        matches!(txs.as_slice(), [TxBody::CommitCompute(_)]),
        "{txs:?}"
    );
    net.block(txs.into_iter().map(|b| (&key, b)).collect());
    drop(before);
    assert!(matches!(
        net.challenges(&key)[0].phase,
        ComputePhase::Committed { .. }
    ));
    let mut after = Responder::new(Box::new(CpuBackend::with_threads(1)), 1);
    let phases = drive(&mut net, &mut [(&key, &mut after)]);
    assert_eq!(
        phases,
        vec![ComputePhase::Passed {
            proven_int8_ops: CLAIM
        }]
    );
}
