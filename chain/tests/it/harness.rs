//! A cluster of validators on the deterministic runtime and the simulated network, a workload
//! of signed transfers, and the safety and liveness checks every scenario runs.

use cairn_chain::{
    ChainConfig, NodeChannels, NodeConfig, NodeHandle, RunningNode, TxRecord, channels,
    consensus_namespace, max_message_size, start_node, validator_set,
};
use cairn_ledger::params::{GenesisAccount, GenesisValidator};
use cairn_ledger::{Genesis, Params};
use cairn_types::tx::Transfer;
use cairn_types::{Amount, BoundedString, Hash, Height, Keypair, Transaction, TxBody};
use commonware_consensus::simplex::mocks::conflicter::{Config as ConflicterConfig, Conflicter};
use commonware_consensus::simplex::mocks::nuller::{Config as NullerConfig, Nuller};
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_cryptography::ed25519;
use commonware_cryptography::sha256::Sha256;
use commonware_p2p::simulated::{self, Link, Network, Oracle};
use commonware_runtime::{Clock, Quota, Runner as _, Supervisor as _, deterministic};
use commonware_utils::{NZU32, NZUsize, probability};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub const CHAIN_ID: &str = "cairn-sim";
/// Simulated milliseconds between blocks.
pub const BLOCK_TIME_MS: u64 = 200;
pub const USERS: usize = 12;

pub const LINK: Link = Link {
    latency: Duration::from_millis(40),
    jitter: Duration::from_millis(10),
    success_rate: probability!(1.0),
};

pub fn validator_key(i: usize) -> Keypair {
    Keypair::from_test_seed(&format!("validator-{i}"))
}

/// A signed transfer of `amount` uCRN from user `from` to user `to`.
pub fn transfer(
    from: usize,
    to: usize,
    nonce: u64,
    amount: u128,
) -> cairn_types::SignedTransaction {
    let key = user_key(from);
    Transaction {
        chain_id: BoundedString::new(CHAIN_ID).unwrap(),
        sender: key.public_key().clone(),
        nonce,
        fee: Amount::from_ucrn(1_000),
        body: TxBody::Transfer(Transfer {
            to: user_key(to).address(),
            amount: Amount::from_ucrn(amount),
        }),
    }
    .sign(&key)
}

pub fn user_key(i: usize) -> Keypair {
    Keypair::from_test_seed(&format!("user-{i}"))
}

pub fn genesis(validators: usize) -> Genesis {
    let params = Params {
        epoch_length_blocks: 20,
        storage_proof_deadline_blocks: 5,
        compute_commit_deadline_blocks: 5,
        compute_open_deadline_blocks: 5,
        ..Params::default()
    }
    .with_block_time(BLOCK_TIME_MS);
    Genesis {
        chain_id: CHAIN_ID.into(),
        genesis_time_ms: 0,
        params,
        accounts: (0..USERS)
            .map(|i| GenesisAccount {
                address: user_key(i).address(),
                balance: Amount::from_ucrn(1_000_000_000_000),
            })
            .collect(),
        validators: (0..validators)
            .map(|i| GenesisValidator {
                address: validator_key(i).address(),
                stake: Amount::from_ucrn(1_000_000),
                p2p_address: format!("127.0.0.1:{}", 31_000 + i),
            })
            .collect(),
        providers: vec![],
    }
}

fn public(i: usize) -> ed25519::PublicKey {
    validator_key(i).public_key().0.clone()
}

/// Which Byzantine double a validator runs.
#[derive(Clone, Copy, Debug)]
pub enum Byzantine {
    /// Votes (notarize and finalize) for the proposal it sees *and* for a random digest in the
    /// same view, every time; never proposes.
    Conflicter,
    /// Answers every notarize with a nullify *and* a finalize for the same view.
    Nuller,
}

/// The validators of one simulation.
pub struct Cluster {
    pub context: deterministic::Context,
    pub oracle: Oracle<ed25519::PublicKey, deterministic::Context>,
    pub genesis: Genesis,
    pub n: usize,
    nodes: Vec<Option<RunningNode>>,
    starts: Vec<u32>,
    /// Validators that are not honest (excluded from every check).
    pub byzantine: BTreeSet<usize>,
    /// Local policy every validator started from now on uses.
    pub config: ChainConfig,
}

impl Cluster {
    /// Creates the network and links every pair; starts no validator.
    pub async fn new(context: deterministic::Context, n: usize) -> Self {
        let genesis = genesis(n);
        let peers: Vec<_> = (0..n).map(public).collect();
        let (network, oracle) = Network::new_with_peers(
            context.child("network"),
            simulated::Config {
                max_size: max_message_size(n),
                max_peers_per_set: NZUsize!(n),
                disconnect_on_block: true,
                tracked_peer_sets: NZUsize!(1),
            },
            peers,
        )
        .await;
        network.start();
        let cluster = Self {
            context,
            oracle,
            genesis,
            n,
            nodes: (0..n).map(|_| None).collect(),
            starts: vec![0; n],
            byzantine: BTreeSet::new(),
            config: ChainConfig::default(),
        };
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    cluster.link(a, b).await;
                }
            }
        }
        cluster
    }

    pub async fn link(&self, a: usize, b: usize) {
        self.oracle
            .add_link(public(a), public(b), LINK)
            .await
            .unwrap();
    }

    /// Replaces every link with `link`.
    pub async fn relink_all(&self, link: Link) {
        for a in 0..self.n {
            for b in 0..self.n {
                if a != b {
                    self.unlink(a, b).await;
                    self.oracle
                        .add_link(public(a), public(b), link.clone())
                        .await
                        .unwrap();
                }
            }
        }
    }

    pub async fn unlink(&self, a: usize, b: usize) {
        let _ = self.oracle.remove_link(public(a), public(b)).await;
    }

    /// Starts (or restarts) honest validator `i` from its storage.
    pub async fn start(&mut self, i: usize) {
        let control = self.oracle.control(public(i));
        let quota = Quota::per_second(NZU32!(4_096));
        let mut registered = Vec::new();
        for channel in channels::ALL {
            registered.push(control.register(channel, quota).await.unwrap());
        }
        let mut registered = registered.into_iter();
        let mut next = || registered.next().unwrap();
        let node_channels = NodeChannels {
            votes: next(),
            certificates: next(),
            resolver: next(),
            backfill: next(),
            broadcast: next(),
            txs: next(),
        };
        let config = NodeConfig {
            genesis: self.genesis.clone(),
            key: validator_key(i),
            partition_prefix: format!("v{i}"),
            chain: self.config.clone(),
        };
        let context = self
            .context
            .child("validator")
            .with_attribute("index", i)
            .with_attribute("start", self.starts[i]);
        self.starts[i] += 1;
        let running = start_node(
            context,
            config,
            node_channels,
            control,
            self.oracle.manager(),
        )
        .await
        .unwrap();
        self.nodes[i] = Some(running);
    }

    pub async fn start_all(&mut self) {
        for i in 0..self.n {
            self.start(i).await;
        }
    }

    /// Runs validator `i` as one of commonware's Byzantine simplex doubles.
    pub async fn start_byzantine(&mut self, i: usize, kind: Byzantine) {
        self.byzantine.insert(i);
        let control = self.oracle.control(public(i));
        let quota = Quota::per_second(NZU32!(4_096));
        let votes = control.register(channels::VOTES, quota).await.unwrap();
        let key = cairn_chain::node::signing_key(&validator_key(i)).unwrap();
        let scheme = Scheme::signer(
            &consensus_namespace(CHAIN_ID),
            validator_set(&self.genesis).unwrap(),
            key,
        )
        .unwrap();
        let context = self.context.child("byzantine").with_attribute("index", i);
        match kind {
            Byzantine::Conflicter => {
                let engine: Conflicter<_, _, Sha256> =
                    Conflicter::new(context, ConflicterConfig { scheme });
                engine.start(votes);
            }
            Byzantine::Nuller => {
                let engine: Nuller<_, _, Sha256> = Nuller::new(context, NullerConfig { scheme });
                engine.start(votes);
            }
        }
    }

    /// Stops validator `i` abruptly (its task and every actor under it are aborted).
    pub async fn crash(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.task.abort();
            let _ = node.task.await;
        }
    }

    pub fn handle(&self, i: usize) -> Option<&NodeHandle> {
        self.nodes[i].as_ref().map(|n| &n.handle)
    }

    /// Indices of running honest validators.
    pub fn honest_running(&self) -> Vec<usize> {
        (0..self.n)
            .filter(|i| self.nodes[*i].is_some() && !self.byzantine.contains(i))
            .collect()
    }

    pub fn heights(&self) -> Vec<Height> {
        self.honest_running()
            .into_iter()
            .map(|i| self.handle(i).unwrap().height())
            .collect()
    }

    pub fn min_height(&self) -> Height {
        self.heights().into_iter().min().unwrap_or(0)
    }

    pub fn max_height(&self) -> Height {
        self.heights().into_iter().max().unwrap_or(0)
    }

    /// Polls `done` every 100 simulated ms, up to `timeout`; returns whether it held.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        workload: &mut Workload,
        mut done: impl FnMut(&Self) -> bool,
    ) -> bool {
        let deadline = self.context.current() + timeout;
        loop {
            workload.tick(self);
            if done(self) {
                return true;
            }
            if self.context.current() >= deadline {
                return false;
            }
            self.context.sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every running honest validator has at least `height`.
    pub async fn reach(&self, height: Height, timeout: Duration, workload: &mut Workload) {
        let ok = self
            .wait_for(timeout, workload, |c| c.min_height() >= height)
            .await;
        assert!(
            ok,
            "validators did not reach height {height}: heights {:?}",
            self.heights()
        );
    }

    /// Safety checks among running honest validators (see the crate's test docs).
    pub fn check_agreement(&self, workload: &Workload) {
        let honest = self.honest_running();
        assert!(!honest.is_empty());
        let handles: Vec<_> = honest.iter().map(|i| self.handle(*i).unwrap()).collect();
        let max = handles.iter().map(|h| h.height()).max().unwrap();
        // One block per height across validators; each chain links to its parent; the state
        // root each header commits to agrees (it is part of the hashed header).
        for height in 1..=max {
            let mut seen: Option<(Hash, Hash)> = None;
            for (i, h) in honest.iter().zip(&handles) {
                let Some(block) = h.block(height) else {
                    assert!(h.height() < height, "validator {i} lost block {height}");
                    continue;
                };
                let id = (block.hash(), block.header.state_root);
                match seen {
                    None => seen = Some(id),
                    Some(other) => assert_eq!(
                        other, id,
                        "validators disagree at height {height} (validator {i})"
                    ),
                }
                if let Some(parent) = h.block(height - 1).filter(|_| height > 1) {
                    assert_eq!(block.header.parent, parent.hash());
                }
            }
        }
        // Ledgers at equal heights have equal roots.
        let mut roots: BTreeMap<Height, Hash> = BTreeMap::new();
        for h in &handles {
            let (height, root) = h.with_ledger(|l| (l.height(), l.root()));
            if let Some(other) = roots.insert(height, root) {
                assert_eq!(other, root, "state roots disagree at height {height}");
            }
        }
        // Every transaction reported finalized is in every honest chain (that got that far)
        // with the same receipt.
        for (hash, record) in &workload.finalized {
            for (i, h) in honest.iter().zip(&handles) {
                if h.height() < record.height {
                    continue;
                }
                let got = h.receipt(hash);
                assert_eq!(
                    got.as_ref(),
                    Some(record),
                    "validator {i} disagrees on transaction {hash}"
                );
            }
        }
    }
}

/// Per user: the transaction in flight, if any.
#[derive(Clone, Debug)]
struct InFlight {
    hash: Hash,
    node: usize,
}

/// Submits transfers through `NodeHandle::submit`, one in flight per user, and records the
/// receipts the submitting node reports. Which node, which user and how much are drawn from a
/// generator seeded by the scenario's seed, so seeds give different chains.
pub struct Workload {
    in_flight: Vec<Option<InFlight>>,
    rng: u64,
    pub submitted: usize,
    pub rejected: usize,
    /// Transactions the submitting node reported finalized.
    pub finalized: BTreeMap<Hash, TxRecord>,
    pub enabled: bool,
}

impl Workload {
    pub fn new(seed: u64) -> Self {
        Self {
            in_flight: vec![None; USERS],
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
            submitted: 0,
            rejected: 0,
            finalized: BTreeMap::new(),
            enabled: true,
        }
    }

    /// SplitMix64: enough randomness for a workload, no dependency.
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }

    pub fn tick(&mut self, cluster: &Cluster) {
        let honest = cluster.honest_running();
        if honest.is_empty() {
            return;
        }
        for user in 0..USERS {
            if let Some(flight) = self.in_flight[user].clone() {
                match cluster.handle(flight.node) {
                    Some(h) => {
                        if let Some(record) = h.receipt(&flight.hash) {
                            assert!(record.receipt.ok(), "transfer failed: {record:?}");
                            self.finalized.insert(flight.hash, record);
                            self.in_flight[user] = None;
                        } else if !h.is_pending(&flight.hash) {
                            // Evicted (another node's transaction took its nonce): retry.
                            self.in_flight[user] = None;
                        } else {
                            continue;
                        }
                    }
                    // The node crashed with it; it may still land through a block in flight.
                    None => self.in_flight[user] = None,
                }
            }
            // About two users in three submit each tick, to a random honest validator.
            if !self.enabled || self.pick(3) == 0 {
                continue;
            }
            let node = honest[self.pick(honest.len())];
            let h = cluster.handle(node).unwrap();
            let nonce = h.with_ledger(|l| l.state().nonce(&user_key(user).address()));
            let to = (user + 1 + self.pick(USERS - 1)) % USERS;
            let amount = 1 + u128::from(self.next() % 1_000_000);
            let tx = transfer(user, to, nonce, amount);
            match h.submit(tx) {
                Ok(hash) => {
                    self.submitted += 1;
                    self.in_flight[user] = Some(InFlight { hash, node });
                }
                // A transaction of this user is still pending here (lost track after a crash).
                Err(_) => self.rejected += 1,
            }
        }
    }
}

/// Runs `scenario` on a fresh deterministic runtime seeded with `seed`.
pub fn run<F, Fut>(seed: u64, scenario: F)
where
    F: FnOnce(deterministic::Context) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let config = deterministic::Config::new()
        .with_seed(seed)
        .with_timeout(Some(Duration::from_secs(3_600)));
    deterministic::Runner::new(config).start(scenario);
}

/// Like [`run`], but the runtime then crashes as `kill -9` would: every write not yet synced
/// keeps only a random prefix. Returns the scenario's output and the storage to recover from.
pub fn run_and_crash<T, F, Fut>(seed: u64, scenario: F) -> (T, deterministic::Checkpoint)
where
    F: FnOnce(deterministic::Context) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let torn = deterministic::FaultConfig::default().write(deterministic::WriteConfig {
        failure_rate: probability!(0.0),
        retention_rate: probability!(0.5),
        mode: deterministic::PartialWriteMode::Prefix,
    });
    let config = deterministic::Config::new()
        .with_seed(seed)
        .with_timeout(Some(Duration::from_secs(3_600)))
        .with_storage_fault_config(torn);
    deterministic::Runner::new(config).start_and_recover(scenario)
}

/// Runs `scenario` on the storage a crashed runtime left behind.
pub fn recover<F, Fut>(checkpoint: deterministic::Checkpoint, scenario: F)
where
    F: FnOnce(deterministic::Context) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    deterministic::Runner::from(checkpoint).start(scenario);
}

/// Seconds of simulated time, for readability.
pub const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
