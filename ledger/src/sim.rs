//! A deterministic, realistic workload for the ledger alone: tenants transfer, stake,
//! delegate, store blobs and lease compute; providers sign receipts, bid, and answer storage
//! and compute challenges; a few misbehave. Used by `cairn ledger simulate` to read the
//! economics before any network exists, and by the property tests, which add `chaos`:
//! random, mostly invalid transactions aimed at every module.
//!
//! Everything is driven by one seed through a SplitMix64 stream: the same seed gives the same
//! blocks, byte for byte.

use crate::params::{GenesisAccount, GenesisProvider, GenesisValidator};
use crate::state::{ComputePhase, DealStatus, LeaseState, OrderStatus, Verdict};
use crate::{BlockError, BlockOutcome, Genesis, Ledger, Params};
use cairn_proofs::compute::GemmShape;
use cairn_types::proof::ComputeOpening;
use cairn_types::tx::{
    AcceptBid, ActivateDeal, BlobMeta, CloseLease, CommitCompute, CreateDeal, CreateOrder, DealRef,
    Delegation, Empty, ExtendDeal, LeaseRef, LeaseStarted, OpenCompute, OrderRef, PlaceBid,
    SEALED_KEY_BYTES, SHARD_RECEIPT_NAMESPACE, ShardReceipt, StakeAmount, SubmitStorageProofs,
    TopUpLease, Transfer, shard_receipt_message,
};
use cairn_types::{
    Address, Amount, Block, BoundedBytes, BoundedString, BoundedVec, Capacity, ChallengeId, DealId,
    GpuSpec, Hardware, Hash, Keypair, LeaseId, OrderId, Resources, SignedTransaction, Transaction,
    TxBody,
};
use std::collections::BTreeMap;

/// A small, fast, deterministic generator (SplitMix64): plenty for workloads, never for keys.
#[derive(Clone, Debug)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0), by rejection-free multiply-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        let wide = u128::from(self.next_u64()) * u128::from(n.max(1));
        u64::try_from(wide >> 64).unwrap_or(0)
    }
    pub fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.below(u64::try_from(len).unwrap_or(u64::MAX))).unwrap_or(0)
    }
    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high.saturating_sub(low).saturating_add(1))
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// How a simulated provider behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Honest,
    /// Misses a share of its storage proofs (warning, then slash).
    Flaky,
    /// Answers storage challenges with a corrupted leaf.
    Corrupter,
    /// Skips most of the GEMM and commits to a wrong product.
    LazyProver,
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub tenants: usize,
    pub storage_providers: usize,
    pub compute_providers: usize,
    pub validators: usize,
    /// Percent of blocks that also carry random (mostly invalid) transactions.
    pub chaos_percent: u64,
    /// Upper bound of chaos transactions per block.
    pub chaos_per_block: u64,
    /// Percent of ordinary activity per block (transfers, deals, orders).
    pub activity_percent: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            tenants: 8,
            storage_providers: 6,
            compute_providers: 3,
            validators: 4,
            chaos_percent: 0,
            chaos_per_block: 4,
            activity_percent: 60,
        }
    }
}

struct SimProvider {
    key: Keypair,
    behaviour: Behaviour,
    /// Shards it holds: (deal, index) → bytes.
    shards: BTreeMap<(DealId, u16), Vec<u8>>,
    /// Compute results waiting to be opened: challenge → (tree, C).
    products: BTreeMap<ChallengeId, (cairn_proofs::merkle::MerkleTree, Vec<i32>)>,
    is_compute: bool,
}

/// Parameters that make epochs short and challenges cheap enough to simulate thousands of
/// blocks in seconds, while keeping every mechanism active.
pub fn sim_params() -> Params {
    let crn = |v: u128| Amount::from_ucrn(v * cairn_types::UCRN_PER_CRN);
    Params {
        epoch_length_blocks: 20,
        block_time_ms: 1_000,
        min_tx_fee: Amount::from_ucrn(1_000),
        min_provider_bond: crn(100),
        unbonding_epochs: 2,
        initial_emission_per_epoch: crn(10_000),
        emission_decay_bps: 50,
        min_leaf_size_bytes: 1024,
        deal_activation_timeout_blocks: 10,
        permanent_prepay_epochs: 50,
        endowment_payout_bps: 200,
        storage_leaves_per_challenge: 4,
        storage_proof_deadline_blocks: 10,
        // One block of work every 5 epochs of 20 blocks: the 1% bound `validate` enforces.
        compute_challenge_ms: 1_000,
        compute_challenge_interval_epochs: 5,
        max_gemm_dim: 128,
        compute_commit_deadline_blocks: 5,
        compute_open_deadline_blocks: 5,
        compute_openings: 32,
        max_bid_window_blocks: 10,
        accept_window_blocks: 5,
        lease_grace_blocks: 10,
        min_lease_deposit_blocks: 5,
        lease_start_timeout_blocks: 8,
        warnings_before_slash: 1,
        slash_bps: 500,
        jail_epochs: 1,
        history_epochs: 16,
        ..Params::default()
    }
}

fn bounded<const N: usize>(s: &str) -> BoundedString<N> {
    BoundedString::new(s).unwrap_or_default()
}

fn h100() -> GpuSpec {
    GpuSpec {
        vendor: bounded("nvidia"),
        model: bounded("h100"),
        vram_mib: 81_920,
    }
}

/// The simulation: a ledger plus the off-chain actors that feed it.
pub struct Simulation {
    config: SimConfig,
    ledger: Ledger,
    rng: SplitMix,
    tenants: Vec<Keypair>,
    /// The validators' keys: they propose in turn, and they alone may report timed audits.
    validator_keys: Vec<Keypair>,
    providers: Vec<SimProvider>,
    /// Shards of blobs created but not yet handed out: blob id → shards.
    blobs: BTreeMap<Hash, Vec<Vec<u8>>>,
    /// Nonces used in the block being built.
    nonces: BTreeMap<Address, u64>,
    genesis: Genesis,
}

impl Simulation {
    pub fn new(config: SimConfig) -> Result<Self, crate::GenesisError> {
        let mut rng = SplitMix::new(config.seed);
        let tenants: Vec<Keypair> = (0..config.tenants)
            .map(|i| Keypair::from_test_seed(&format!("sim-tenant-{i}")))
            .collect();
        let validators: Vec<Keypair> = (0..config.validators.max(1))
            .map(|i| Keypair::from_test_seed(&format!("sim-validator-{i}")))
            .collect();
        let mut providers = Vec::new();
        let crn = |v: u128| Amount::from_ucrn(v * cairn_types::UCRN_PER_CRN);
        for i in 0..config.storage_providers {
            // One flaky and one corrupting provider once there are enough to spare.
            let behaviour = match i {
                4 if config.storage_providers > 5 => Behaviour::Flaky,
                5 if config.storage_providers > 6 => Behaviour::Corrupter,
                _ => Behaviour::Honest,
            };
            providers.push(SimProvider {
                key: Keypair::from_test_seed(&format!("sim-storage-{i}")),
                behaviour,
                shards: BTreeMap::new(),
                products: BTreeMap::new(),
                is_compute: false,
            });
        }
        for i in 0..config.compute_providers {
            let behaviour = if i == 2 {
                Behaviour::LazyProver
            } else {
                Behaviour::Honest
            };
            providers.push(SimProvider {
                key: Keypair::from_test_seed(&format!("sim-compute-{i}")),
                behaviour,
                shards: BTreeMap::new(),
                products: BTreeMap::new(),
                is_compute: true,
            });
        }
        let genesis = Genesis {
            chain_id: "cairn-sim".to_string(),
            genesis_time_ms: 1_767_225_600_000,
            params: sim_params(),
            accounts: tenants
                .iter()
                .chain(providers.iter().map(|p| &p.key))
                .chain(validators.iter())
                .map(|k| GenesisAccount {
                    address: k.address(),
                    balance: crn(1_000_000),
                })
                .collect(),
            validators: validators
                .iter()
                .map(|k| GenesisValidator {
                    address: k.address(),
                    stake: crn(50_000),
                    p2p_address: String::new(),
                })
                .collect(),
            providers: providers
                .iter()
                .enumerate()
                .map(|(i, p)| GenesisProvider {
                    address: p.key.address(),
                    endpoint: format!("http://127.0.0.1:{}", 7100 + i),
                    region: ["eu-west", "us-east", "ap-south"][i % 3].to_string(),
                    capacity: if p.is_compute {
                        Capacity {
                            storage_bytes: 100 << 30,
                            cpu_millicores: 16_000,
                            memory_bytes: 64 << 30,
                            gpus: BoundedVec::new(if i % 2 == 0 { vec![h100()] } else { vec![] })
                                .unwrap_or_default(),
                        }
                    } else {
                        Capacity {
                            storage_bytes: 10 << 30,
                            ..Capacity::default()
                        }
                    },
                    commission_bps: 1_000,
                    bond: crn(1_000 + 100 * u128::from(rng.range(0, 10))),
                    claimed_int8_ops: if p.is_compute { 1_000_000 } else { 0 },
                })
                .collect(),
        };
        let ledger = Ledger::from_genesis(&genesis)?;
        Ok(Self {
            validator_keys: validators,
            config,
            ledger,
            rng,
            tenants,
            providers,
            blobs: BTreeMap::new(),
            nonces: BTreeMap::new(),
            genesis,
        })
    }

    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn sign(&mut self, key: &Keypair, body: TxBody) -> SignedTransaction {
        let address = key.address();
        let nonce = *self
            .nonces
            .entry(address)
            .or_insert_with(|| self.ledger.state().nonce(&address));
        self.nonces.insert(address, nonce + 1);
        Transaction {
            chain_id: bounded(&self.ledger.state().chain_id),
            sender: key.public_key().clone(),
            nonce,
            fee: self.ledger.params().min_tx_fee,
            body,
        }
        .sign(key)
    }

    /// Builds the next block from the current state and the actors' intentions.
    pub fn next_block(&mut self) -> Block {
        self.nonces.clear();
        let mut txs = Vec::new();
        let height = self.ledger.height() + 1;
        self.provider_duties(height, &mut txs);
        self.tenant_duties(&mut txs);
        if self.rng.chance(self.config.activity_percent) {
            self.tenant_activity(height, &mut txs);
        }
        if self.rng.chance(self.config.chaos_percent) {
            let count = self.rng.range(1, self.config.chaos_per_block.max(1));
            for _ in 0..count {
                let tx = self.chaos_tx();
                txs.push(tx);
            }
        }
        // Never include a transaction whose sender could not pay its fees: that would make
        // the block invalid, and the simulated proposer is honest.
        let state = self.ledger.state();
        let min_fee = self.ledger.params().min_tx_fee;
        let mut spend: BTreeMap<Address, Amount> = BTreeMap::new();
        let mut nonces: BTreeMap<Address, u64> = BTreeMap::new();
        let mut kept = Vec::with_capacity(txs.len());
        for tx in txs {
            let sender = tx.sender();
            let fees = spend.get(&sender).copied().unwrap_or_default();
            let nonce = nonces
                .get(&sender)
                .copied()
                .unwrap_or_else(|| state.nonce(&sender));
            let fees_after = fees.checked_add(min_fee).unwrap_or(Amount(u128::MAX));
            if fees_after <= state.balance(&sender) && tx.tx.nonce == nonce {
                spend.insert(sender, fees_after);
                nonces.insert(sender, nonce + 1);
                kept.push(tx);
            }
        }
        let proposer = self.validator_keys
            [usize::try_from(height).unwrap_or(0) % self.validator_keys.len()]
        .address();
        let seed = Hash::domain(
            "cairn.sim.seed",
            &[&self.config.seed.to_be_bytes(), &height.to_be_bytes()],
        );
        let timestamp = self.genesis.genesis_time_ms + height * self.ledger.params().block_time_ms;
        Block::new(
            height,
            self.ledger.state().last_block_hash,
            timestamp,
            proposer,
            seed,
            kept,
        )
        .unwrap_or_else(|| {
            Block::new(
                height,
                self.ledger.state().last_block_hash,
                timestamp,
                proposer,
                seed,
                vec![],
            )
            .unwrap_or_else(|| unreachable_block(height))
        })
        .with_state_root(self.ledger.root())
    }

    /// Builds and applies one block.
    pub fn step(&mut self) -> Result<(Block, BlockOutcome), BlockError> {
        let block = self.next_block();
        let outcome = self.ledger.apply_block(&block)?;
        self.after_block(&outcome);
        Ok((block, outcome))
    }

    fn after_block(&mut self, _outcome: &BlockOutcome) {
        // Providers learn their shards once the deal exists on chain (the upload).
        let state = self.ledger.state();
        let mut deliveries = Vec::new();
        for deal in state.deals.values() {
            if let Some(shards) = self.blobs.get(&deal.blob.id) {
                for (i, address) in deal.providers.iter().enumerate() {
                    if let (Ok(index), Some(bytes)) = (u16::try_from(i), shards.get(i)) {
                        deliveries.push((*address, deal.id, index, bytes.clone()));
                    }
                }
            }
        }
        for (address, deal, index, bytes) in deliveries {
            if let Some(p) = self
                .providers
                .iter_mut()
                .find(|p| p.key.address() == address)
            {
                p.shards.entry((deal, index)).or_insert(bytes);
            }
        }
        let live: std::collections::BTreeSet<Hash> = state
            .deals
            .values()
            .filter(|d| matches!(d.status, DealStatus::Pending { .. }))
            .map(|d| d.blob.id)
            .collect();
        self.blobs.retain(|id, _| live.contains(id));
    }

    fn provider_duties(&mut self, height: u64, txs: &mut Vec<SignedTransaction>) {
        let epoch = self.ledger.current_epoch();
        let params = self.ledger.params().clone();
        let state = self.ledger.state().clone();
        for pi in 0..self.providers.len() {
            let address = self.providers[pi].key.address();
            let behaviour = self.providers[pi].behaviour;
            // Storage proofs, a couple of blocks into the epoch.
            let mut proofs = Vec::new();
            for ((deal_id, index), challenge) in &state.storage_challenges {
                if challenge.provider != address
                    || challenge.epoch != epoch
                    || challenge.verdict != Verdict::Pending
                    || height > challenge.deadline
                {
                    continue;
                }
                let Some(deal) = state.deals.get(deal_id) else {
                    continue;
                };
                let Some(shard) = self.providers[pi].shards.get(&(*deal_id, *index)) else {
                    continue;
                };
                let mut proof = cairn_proofs::storage::prove(
                    shard,
                    deal.blob.leaf_size_bytes,
                    &challenge.seed,
                    *deal_id,
                    *index,
                    usize::from(params.storage_leaves_per_challenge),
                );
                if behaviour == Behaviour::Corrupter
                    && let Some(leaf) = proof.leaves.0.first_mut()
                    && let Some(b) = leaf.data.0.first_mut()
                {
                    *b ^= 0x01;
                }
                proofs.push(proof);
            }
            let skip = behaviour == Behaviour::Flaky && self.rng.chance(60);
            if !proofs.is_empty() && !skip && self.rng.chance(50) {
                let key = self.providers[pi].key.clone();
                for chunk in proofs.chunks(64) {
                    let body = TxBody::SubmitStorageProofs(SubmitStorageProofs {
                        epoch,
                        proofs: BoundedVec::new(chunk.to_vec()).unwrap_or_default(),
                    });
                    let tx = self.sign(&key, body);
                    txs.push(tx);
                }
            }
            self.compute_duties(pi, &state, height, txs);
            // A jailed provider asks to be let back in as soon as the jail period allows.
            if let Some(crate::state::ProviderStatus::Jailed { until_epoch }) =
                state.providers.get(&address).map(|p| p.status.clone())
                && epoch >= until_epoch
            {
                let key = self.providers[pi].key.clone();
                txs.push(self.sign(&key, TxBody::Unjail(Empty {})));
            }
        }
        // A tenant posts the certificate for every pending deal whose shards are delivered.
        for deal in state.deals.values() {
            if !matches!(deal.status, DealStatus::Pending { .. })
                || deal.created_height >= height - 1
            {
                continue;
            }
            let mut receipts = Vec::new();
            for (i, address) in deal.providers.iter().enumerate() {
                let Ok(index) = u16::try_from(i) else {
                    continue;
                };
                let Some(p) = self.providers.iter().find(|p| p.key.address() == *address) else {
                    continue;
                };
                if !p.shards.contains_key(&(deal.id, index)) {
                    continue;
                }
                let root = deal.blob.shard_roots.0[i];
                let message = shard_receipt_message(deal.id, &deal.blob.id, index, &root);
                receipts.push(ShardReceipt {
                    shard_index: index,
                    signature: p.key.sign(SHARD_RECEIPT_NAMESPACE, &message),
                });
            }
            if let Some(owner) = self
                .tenants
                .iter()
                .find(|k| k.address() == deal.owner)
                .cloned()
            {
                let body = TxBody::ActivateDeal(ActivateDeal {
                    deal: deal.id,
                    receipts: BoundedVec::new(receipts).unwrap_or_default(),
                });
                let tx = self.sign(&owner, body);
                txs.push(tx);
            }
        }
    }

    fn compute_duties(
        &mut self,
        pi: usize,
        state: &crate::State,
        height: u64,
        txs: &mut Vec<SignedTransaction>,
    ) {
        let address = self.providers[pi].key.address();
        let key = self.providers[pi].key.clone();
        let lazy = self.providers[pi].behaviour == Behaviour::LazyProver;
        for (id, challenge) in &state.compute_challenges {
            if challenge.provider != address {
                continue;
            }
            match &challenge.phase {
                ComputePhase::Issued if height <= challenge.commit_deadline => {
                    let shape = GemmShape {
                        m: challenge.m,
                        k: challenge.k,
                        n: challenge.n,
                    };
                    let a = cairn_proofs::compute::generate_a(&challenge.seed, shape);
                    let b = cairn_proofs::compute::generate_b(&challenge.seed, shape);
                    let mut c = cairn_proofs::compute::gemm_reference(&a, &b, shape);
                    if lazy {
                        // Skip most rows: zeros where the work was not done.
                        let row = usize::try_from(shape.n).unwrap_or(0);
                        for (r, chunk) in c.chunks_mut(row.max(1)).enumerate() {
                            if r % 4 != 0 {
                                chunk.fill(0);
                            }
                        }
                    }
                    let tree = cairn_proofs::compute::commit(&c);
                    let root = tree.root();
                    self.providers[pi].products.insert(*id, (tree, c));
                    txs.push(self.sign(
                        &key,
                        TxBody::CommitCompute(CommitCompute {
                            challenge: *id,
                            root,
                        }),
                    ));
                }
                ComputePhase::Committed {
                    reveal_seed,
                    open_deadline,
                    ..
                } if height <= *open_deadline => {
                    let Some((tree, c)) = self.providers[pi].products.remove(id) else {
                        continue;
                    };
                    let indices = cairn_proofs::compute::opening_indices(
                        reveal_seed,
                        *id,
                        challenge.shape(),
                        usize::from(challenge.openings),
                    );
                    let openings: Vec<ComputeOpening> =
                        cairn_proofs::compute::open(&tree, &c, &indices);
                    txs.push(self.sign(
                        &key,
                        TxBody::OpenCompute(OpenCompute {
                            challenge: *id,
                            first_opening: 0,
                            openings: BoundedVec::new(openings).unwrap_or_default(),
                        }),
                    ));
                }
                _ => {}
            }
        }
        // Start the workloads of new leases: most report the start the block after the
        // lease; some workloads fail to start (the provider closes the lease with the
        // reason) and some providers never report (the protocol closes the lease at its
        // start deadline). Chosen by lease id, not drawn, so the stream of draws is as before.
        for lease in state.leases.values() {
            if lease.provider != address || height <= lease.created_height {
                continue;
            }
            let LeaseState::Starting { deadline } = lease.state else {
                continue;
            };
            let body = match lease.id.0 % 8 {
                5 => continue,
                3 => TxBody::CloseLease(CloseLease {
                    lease: lease.id,
                    reason: bounded(
                        "workload failed to start: image sim:absent is not on this provider's Docker Engine",
                    ),
                }),
                _ if height <= deadline => TxBody::LeaseStarted(LeaseStarted { lease: lease.id }),
                _ => continue,
            };
            txs.push(self.sign(&key, body));
        }
        // Bid on open orders this provider can serve, at a price from its own cost model.
        for order in state.orders.values() {
            if order.status != OrderStatus::Open || height > order.bid_deadline {
                continue;
            }
            if order.bids.contains_key(&address) {
                continue;
            }
            let Some(me) = state.providers.get(&address).filter(|p| p.is_active()) else {
                continue;
            };
            let hardware = Hardware {
                cpu_millicores: order.resources.cpu_millicores,
                memory_bytes: order.resources.memory_bytes,
                storage_bytes: order.resources.storage_bytes,
                gpus: BoundedVec::new(
                    me.declared
                        .gpus
                        .iter()
                        .take(usize::try_from(order.resources.gpu_count).unwrap_or(0))
                        .cloned()
                        .collect(),
                )
                .unwrap_or_default(),
            };
            if crate::compute::hardware_satisfies(&order.resources, &hardware).is_err()
                || crate::compute::check_free_capacity(me, &hardware).is_err()
            {
                continue;
            }
            let price = order
                .max_price_per_block
                .mul_div(self.rng.range(50, 100).into(), 100);
            let price = price.unwrap_or(order.max_price_per_block);
            txs.push(self.sign(
                &key,
                TxBody::PlaceBid(PlaceBid {
                    order: order.id,
                    price_per_block: price,
                    hardware,
                }),
            ));
        }
    }

    /// Tenants watch their leases: most top up a paused one within its grace period.
    fn tenant_duties(&mut self, txs: &mut Vec<SignedTransaction>) {
        // Settlement is lazy, so read each lease's projected state, as a client would.
        let height = self.ledger.height() + 1;
        let grace = self.ledger.params().lease_grace_blocks;
        let paused: Vec<(LeaseId, Address)> = self
            .ledger
            .state()
            .leases
            .values()
            .filter(|l| {
                matches!(
                    crate::compute::project_settlement(l, height, grace).outcome,
                    crate::compute::SettledState::Paused { .. }
                )
            })
            .map(|l| (l.id, l.tenant))
            .collect();
        // Deploy flow: once bidding closes, take the cheapest bid (most of the time).
        let accepts: Vec<(cairn_types::OrderId, Address, Address)> = self
            .ledger
            .state()
            .orders
            .values()
            .filter(|o| o.status == OrderStatus::Open && height > o.bid_deadline)
            .filter_map(|o| {
                o.bids
                    .values()
                    .min_by_key(|b| (b.price_per_block, b.provider))
                    .map(|b| (o.id, o.tenant, b.provider))
            })
            .collect();
        for (order, tenant, provider) in accepts {
            if !self.rng.chance(70) {
                continue;
            }
            let Some(key) = self.tenants.iter().find(|k| k.address() == tenant).cloned() else {
                continue;
            };
            txs.push(self.sign(&key, TxBody::AcceptBid(AcceptBid { order, provider })));
        }
        for (lease, tenant) in paused {
            if !self.rng.chance(30) {
                continue;
            }
            let Some(key) = self.tenants.iter().find(|k| k.address() == tenant).cloned() else {
                continue;
            };
            let body = TxBody::TopUpLease(TopUpLease {
                lease,
                amount: Amount::from_ucrn(500_000),
            });
            txs.push(self.sign(&key, body));
        }
    }

    fn tenant_activity(&mut self, height: u64, txs: &mut Vec<SignedTransaction>) {
        let state = self.ledger.state().clone();
        let ti = self.rng.index(self.tenants.len());
        let tenant = self.tenants[ti].clone();
        let me = tenant.address();
        let crn = |v: u128| Amount::from_ucrn(v * cairn_types::UCRN_PER_CRN);
        match self.rng.below(10) {
            0..=2 => {
                let to = self.tenants[self.rng.index(self.tenants.len())].address();
                let amount = Amount::from_ucrn(u128::from(self.rng.range(1, 5_000_000_000)));
                txs.push(self.sign(&tenant, TxBody::Transfer(Transfer { to, amount })));
            }
            3 => {
                let storage: Vec<Address> = self
                    .providers
                    .iter()
                    .filter(|p| !p.is_compute)
                    .map(|p| p.key.address())
                    .collect();
                let active = |a: &Address| state.providers.get(a).is_some_and(|p| p.is_active());
                let storage: Vec<Address> = storage.into_iter().filter(active).collect();
                if let Some(provider) = storage.get(self.rng.index(storage.len())).copied() {
                    let amount = crn(u128::from(self.rng.range(1, 500)));
                    let body = if self.rng.chance(70) {
                        TxBody::Delegate(Delegation { provider, amount })
                    } else {
                        TxBody::Undelegate(Delegation { provider, amount })
                    };
                    txs.push(self.sign(&tenant, body));
                }
            }
            4..=5 => {
                if let Some(tx) = self.new_deal(&tenant, false) {
                    txs.push(tx);
                }
            }
            6..=7 => {
                let gpu = self.rng.chance(30);
                let body = TxBody::CreateOrder(CreateOrder {
                    manifest_hash: Hash::domain("cairn.sim.manifest", &[&height.to_be_bytes()]),
                    resources: Resources {
                        cpu_millicores: self.rng.range(1, 8) * 500,
                        memory_bytes: self.rng.range(1, 8) << 30,
                        storage_bytes: 1 << 30,
                        gpu_count: u32::from(gpu),
                        gpu_vendor: bounded(if gpu { "nvidia" } else { "" }),
                        gpu_model: bounded(""),
                        min_vram_mib: 0,
                    },
                    max_price_per_block: Amount::from_ucrn(u128::from(
                        self.rng.range(1_000, 50_000),
                    )),
                    deposit: Amount::from_ucrn(u128::from(self.rng.range(200_000, 2_000_000))),
                    bid_window_blocks: self.rng.range(2, 6),
                });
                txs.push(self.sign(&tenant, body));
            }
            _ => {
                // Manage what this tenant already has: close leases, extend deals.
                for lease in state.leases.values() {
                    if lease.tenant != me {
                        continue;
                    }
                    match lease.state {
                        LeaseState::Active if self.rng.chance(10) => {
                            let body = TxBody::CloseLease(CloseLease {
                                lease: lease.id,
                                reason: bounded("tenant finished"),
                            });
                            txs.push(self.sign(&tenant, body));
                        }
                        _ => {}
                    }
                }
                if let Some(deal) = state
                    .deals
                    .values()
                    .find(|d| d.owner == me && d.status == DealStatus::Active && !d.permanent)
                    && self.rng.chance(20)
                {
                    let cost = deal.epoch_cost().unwrap_or_default();
                    let body = TxBody::ExtendDeal(ExtendDeal {
                        deal: deal.id,
                        extra_epochs: 2,
                        amount: cost.checked_mul(2).unwrap_or_default(),
                    });
                    txs.push(self.sign(&tenant, body));
                }
            }
        }
    }

    /// A new storage deal over fresh random shards; `tamper` breaks one field at random
    /// (the chaos workload's invalid deals).
    fn new_deal(&mut self, tenant: &Keypair, tamper: bool) -> Option<SignedTransaction> {
        // A client places shards on providers in good standing only.
        let state = self.ledger.state();
        let storage: Vec<Address> = self
            .providers
            .iter()
            .filter(|p| !p.is_compute)
            .map(|p| p.key.address())
            .filter(|a| state.providers.get(a).is_some_and(|p| p.is_active()))
            .collect();
        let n = storage.len().min(6);
        if n < 3 {
            return None;
        }
        let parity = u16::try_from(n / 3).ok()?;
        let data = u16::try_from(n).ok()? - parity;
        let size = self.rng.range(0, 64 * 1024);
        let shard_size = size.div_ceil(u64::from(data));
        let leaf = 1024u32;
        let shards: Vec<Vec<u8>> = (0..n)
            .map(|_| self.rng.bytes(usize::try_from(shard_size).unwrap_or(0)))
            .collect();
        let roots: Vec<Hash> = shards
            .iter()
            .map(|s| cairn_proofs::storage::shard_root(s))
            .collect();
        let id = cairn_types::ids::blob_id(size, data, parity, shard_size, leaf, &roots);
        // Shuffle provider order so placement varies.
        let mut chosen = storage.clone();
        for i in (1..chosen.len()).rev() {
            let j = self.rng.index(i + 1);
            chosen.swap(i, j);
        }
        chosen.truncate(n);
        let permanent = self.rng.chance(15);
        // An epoch here is 20 blocks, so prices per GiB-epoch are high to make the tiny
        // simulated blobs pay visible amounts.
        let price = Amount::from_ucrn(u128::from(self.rng.range(50, 500)) * 1_000_000);
        let epochs = self.rng.range(2, 12);
        let term = if permanent {
            self.ledger.params().permanent_prepay_epochs
        } else {
            epochs
        };
        let escrow = crate::state::epoch_cost(price, size)?.checked_mul(u128::from(term))?;
        self.blobs.insert(id, shards);
        let body = TxBody::CreateDeal(CreateDeal {
            blob: BlobMeta {
                id,
                size_bytes: size,
                data_shards: data,
                parity_shards: parity,
                shard_size_bytes: shard_size,
                leaf_size_bytes: leaf,
                shard_roots: BoundedVec::new(roots)?,
            },
            providers: BoundedVec::new(chosen)?,
            permanent,
            epochs,
            price_per_gib_epoch: price,
            escrow,
            sealed_key: if self.rng.below(2) == 0 {
                BoundedBytes::default()
            } else {
                BoundedBytes::new(vec![0x5e; SEALED_KEY_BYTES])?
            },
        });
        let body = match (tamper, body) {
            (true, TxBody::CreateDeal(mut deal)) => {
                match self.rng.below(6) {
                    0 => deal.blob.id = Hash::of(b"not this blob"),
                    4 => deal.sealed_key = BoundedBytes::new(vec![1; SEALED_KEY_BYTES - 1])?,
                    1 => deal.escrow = Amount::ZERO,
                    2 => deal.epochs = 0,
                    3 => {
                        let first = deal.providers.0[0];
                        deal.providers.0[1] = first;
                    }
                    _ => deal.blob.leaf_size_bytes = 1,
                }
                TxBody::CreateDeal(deal)
            }
            (_, body) => body,
        };
        Some(self.sign(tenant, body))
    }

    /// A random transaction aimed at any module, usually invalid: unknown ids, wrong
    /// senders, zero or huge amounts, stale epochs. Every one must be refused cleanly.
    pub fn chaos_tx(&mut self) -> SignedTransaction {
        let state = self.ledger.state();
        let everyone: Vec<Keypair> = self
            .tenants
            .iter()
            .cloned()
            .chain(self.providers.iter().map(|p| p.key.clone()))
            .collect();
        let key = everyone[self.rng.index(everyone.len())].clone();
        let other = everyone[self.rng.index(everyone.len())].address();
        let huge = Amount(u128::MAX / 2);
        let amount = match self.rng.below(4) {
            0 => Amount::ZERO,
            1 => huge,
            _ => Amount::from_ucrn(u128::from(self.rng.range(1, 10_000_000_000))),
        };
        let deal = DealId(self.rng.below(state.counters.deal + 2));
        let order = OrderId(self.rng.below(state.counters.order + 2));
        let lease = LeaseId(self.rng.below(state.counters.lease + 2));
        let challenge = ChallengeId(self.rng.below(state.counters.challenge + 2));
        let epoch = self.ledger.current_epoch();
        let body = match self.rng.below(24) {
            0 => TxBody::Transfer(Transfer { to: other, amount }),
            1 => TxBody::Bond(StakeAmount { amount }),
            2 => TxBody::Unbond(StakeAmount { amount }),
            3 => TxBody::Delegate(Delegation {
                provider: other,
                amount,
            }),
            4 => TxBody::Undelegate(Delegation {
                provider: other,
                amount,
            }),
            5 => TxBody::Unjail(Empty {}),
            6 => TxBody::CancelDeal(DealRef { deal }),
            7 => TxBody::ExtendDeal(ExtendDeal {
                deal,
                extra_epochs: self.rng.below(3),
                amount,
            }),
            8 => TxBody::ActivateDeal(ActivateDeal {
                deal,
                receipts: BoundedVec::default(),
            }),
            9 => TxBody::SubmitStorageProofs(SubmitStorageProofs {
                epoch: epoch + self.rng.below(2),
                proofs: BoundedVec::new(vec![cairn_types::proof::StorageProof {
                    deal,
                    shard_index: u16::try_from(self.rng.below(8)).unwrap_or(0),
                    leaves: BoundedVec::default(),
                }])
                .unwrap_or_default(),
            }),
            10 => TxBody::CancelOrder(OrderRef { order }),
            11 => TxBody::PlaceBid(PlaceBid {
                order,
                price_per_block: amount,
                hardware: Hardware {
                    cpu_millicores: self.rng.below(40_000),
                    ..Hardware::default()
                },
            }),
            12 => TxBody::AcceptBid(AcceptBid {
                order,
                provider: other,
            }),
            13 => TxBody::TopUpLease(TopUpLease { lease, amount }),
            14 => TxBody::CloseLease(CloseLease {
                lease,
                reason: bounded(if self.rng.chance(50) { "" } else { "chaos" }),
            }),
            15 if self.rng.chance(50) => TxBody::WithdrawLease(LeaseRef { lease }),
            15 => TxBody::LeaseStarted(LeaseStarted { lease }),
            16 => TxBody::CommitCompute(CommitCompute {
                challenge,
                root: Hash::of(b"chaos"),
            }),
            17 => TxBody::OpenCompute(OpenCompute {
                challenge,
                first_opening: 0,
                openings: BoundedVec::default(),
            }),
            18 => TxBody::CreateOrder(CreateOrder {
                manifest_hash: Hash::ZERO,
                resources: Resources {
                    cpu_millicores: self.rng.below(2) * 1000,
                    ..Resources::default()
                },
                max_price_per_block: amount,
                deposit: amount,
                bid_window_blocks: self.rng.below(1_000),
            }),
            19 => TxBody::LeaveProvider(Empty {}),
            20 => TxBody::RegisterProvider(cairn_types::tx::RegisterProvider {
                endpoint: bounded(if self.rng.chance(50) {
                    "http://127.0.0.1:1"
                } else {
                    "ftp://x"
                }),
                region: bounded("eu"),
                capacity: Capacity {
                    storage_bytes: self.rng.below(2) << 30,
                    ..Capacity::default()
                },
                commission_bps: u16::try_from(self.rng.below(12_000)).unwrap_or(0),
                bond: amount,
                claimed_int8_ops: 0,
            }),
            21 => {
                // A report against a random deal: the simulated blobs are random bytes
                // (inconsistent everywhere) but not laid out as the writer lays them out,
                // so every report is refused on its piece size, never wrongly accepted.
                let leaf = cairn_types::proof::StripeLeaf {
                    shard_index: u16::try_from(self.rng.below(4)).unwrap_or(0),
                    opening: cairn_types::proof::LeafOpening::default(),
                };
                TxBody::ReportInconsistency(cairn_types::tx::ReportInconsistency {
                    proof: cairn_types::proof::InconsistencyProof {
                        deal,
                        leaf_index: self.rng.below(4),
                        piece_size_bytes: 1024,
                        header: leaf.clone(),
                        leaves: BoundedVec::new(vec![leaf; 3]).unwrap_or_default(),
                    },
                })
            }
            22 => {
                // A timed-audit report on one of this epoch's challenges, mostly from a
                // validator (so it counts towards a verdict), sometimes from anyone.
                let open: Vec<((DealId, u16), Address)> = state
                    .storage_challenges
                    .iter()
                    .filter(|(_, c)| c.epoch == epoch)
                    .map(|(k, c)| (*k, c.provider))
                    .collect();
                let shards = if open.is_empty() {
                    Vec::new()
                } else {
                    let ((deal, shard_index), provider) = open[self.rng.index(open.len())];
                    let provider = if self.rng.below(8) == 0 {
                        other
                    } else {
                        provider
                    };
                    vec![cairn_types::tx::AuditedShard {
                        deal,
                        shard_index,
                        provider,
                    }]
                };
                let body = TxBody::ReportAuditFailures(cairn_types::tx::ReportAuditFailures {
                    epoch: if self.rng.below(8) == 0 {
                        epoch.saturating_add(1)
                    } else {
                        epoch
                    },
                    shards: BoundedVec::new(shards).unwrap_or_default(),
                });
                let reporter = if self.rng.below(4) == 0 {
                    key
                } else {
                    self.validator_keys[self.rng.index(self.validator_keys.len())].clone()
                };
                return self.sign(&reporter, body);
            }
            _ => match self.new_deal(&key, true) {
                Some(tx) => return tx,
                None => TxBody::Transfer(Transfer { to: other, amount }),
            },
        };
        self.sign(&key, body)
    }
}

fn unreachable_block(height: u64) -> Block {
    // Block::new only fails above MAX_BLOCK_TXS transactions, and an empty list is below it.
    Block {
        header: cairn_types::BlockHeader {
            height,
            parent: Hash::ZERO,
            timestamp_ms: 0,
            proposer: Address::default(),
            seed: Hash::ZERO,
            tx_root: cairn_types::block::tx_root(&[]),
            state_root: Hash::ZERO,
        },
        txs: BoundedVec::default(),
    }
}
