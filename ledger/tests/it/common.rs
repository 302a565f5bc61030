//! Shared fixtures for the ledger's integration tests: a genesis with named actors, a chain
//! driver that builds and applies real blocks (checking the supply invariant after every
//! one), blobs with real shards, provider receipts and proofs made with the proofs crate,
//! and the before/after check every rejected transaction must pass (reliability.md §2e).

// Each test module uses its own subset of these helpers.
#![allow(dead_code)]

use cairn_ledger::params::{GenesisAccount, GenesisProvider, GenesisValidator};
use cairn_ledger::sim::sim_params;
use cairn_ledger::state::{ComputeChallenge, ComputePhase, State};
use cairn_ledger::{BlockError, BlockOutcome, Genesis, Ledger, Params, Receipt, TxError};
use cairn_proofs::merkle::MerkleTree;
use cairn_types::proof::{ComputeOpening, StorageProof};
use cairn_types::tx::{
    ActivateDeal, BlobMeta, CommitCompute, CreateDeal, OpenCompute, SHARD_RECEIPT_NAMESPACE,
    ShardReceipt, SubmitStorageProofs, shard_receipt_message,
};
use cairn_types::{
    Address, Amount, Block, BoundedString, BoundedVec, Capacity, ChallengeId, DealId, Epoch,
    GpuSpec, Hardware, Hash, Height, Keypair, SignedTransaction, Transaction, TxBody, UCRN_PER_CRN,
};
use std::collections::BTreeMap;

pub const CHAIN_ID: &str = "cairn-test";
pub const GENESIS_TIME_MS: u64 = 1_767_225_600_000;
pub const GIB: u64 = 1 << 30;
/// The fee rejected transactions pay: odd, so the burn/treasury split rounds.
pub const ODD_FEE: Amount = Amount(1_001);
/// Claimed int8 rate of the genesis provers.
pub const PROVER_CLAIM: u64 = 1_000_000;

pub fn crn(v: u128) -> Amount {
    Amount::from_ucrn(v * UCRN_PER_CRN)
}

pub fn ucrn(v: u128) -> Amount {
    Amount::from_ucrn(v)
}

pub fn s<const N: usize>(text: &str) -> BoundedString<N> {
    BoundedString::new(text).expect("short string")
}

pub fn key(label: &str) -> Keypair {
    Keypair::from_test_seed(&format!("ledger-it-{label}"))
}

pub fn validator() -> Keypair {
    key("validator")
}
pub fn alice() -> Keypair {
    key("alice")
}
pub fn bob() -> Keypair {
    key("bob")
}
pub fn carol() -> Keypair {
    key("carol")
}
pub fn dave() -> Keypair {
    key("dave")
}
pub fn erin() -> Keypair {
    key("erin")
}
/// A key that has no account at genesis (zero balance).
pub fn pauper() -> Keypair {
    key("pauper")
}
/// Storage provider `i` (0..4): 10 GiB of storage, no compute claim.
pub fn storage(i: usize) -> Keypair {
    key(&format!("storage-{i}"))
}
/// Compute provider `i` (0..2): CPU, memory, disk; provider 0 also declares one H100. No
/// int8 claim, so it gets no compute challenges.
pub fn compute(i: usize) -> Keypair {
    key(&format!("compute-{i}"))
}
/// Prover `i`: a GPU provider with an int8 claim, challenged every epoch.
pub fn prover(i: usize) -> Keypair {
    key(&format!("prover-{i}"))
}

pub const STORAGE_PROVIDERS: usize = 4;
pub const COMPUTE_PROVIDERS: usize = 2;
pub const USER_BALANCE: u128 = 1_000_000;
pub const PROVIDER_BALANCE: u128 = 100_000;
pub const PROVIDER_BOND: u128 = 1_000;
pub const COMMISSION_BPS: u16 = 1_000;

pub fn h100() -> GpuSpec {
    GpuSpec {
        vendor: s("nvidia"),
        model: s("h100"),
        vram_mib: 81_920,
    }
}

pub fn a100() -> GpuSpec {
    GpuSpec {
        vendor: s("nvidia"),
        model: s("a100"),
        vram_mib: 40_960,
    }
}

pub fn compute_capacity(gpus: Vec<GpuSpec>) -> Capacity {
    Capacity {
        storage_bytes: 100 * GIB,
        cpu_millicores: 16_000,
        memory_bytes: 64 * GIB,
        gpus: BoundedVec::new(gpus).expect("few gpus"),
    }
}

/// Genesis: one validator, five funded users, four storage providers, two compute providers
/// and `provers` GPU providers with an int8 claim. Every provider bonds 1 000 CRN with a 10%
/// commission and holds 100 000 CRN.
pub fn genesis(params: Params, provers: usize) -> Genesis {
    let users = [alice(), bob(), carol(), dave(), erin()];
    let mut accounts: Vec<GenesisAccount> = users
        .iter()
        .map(|k| GenesisAccount {
            address: k.address(),
            balance: crn(USER_BALANCE),
        })
        .collect();
    let mut providers = Vec::new();
    let mut provider = |k: Keypair, capacity: Capacity, claimed: u64, port: usize| {
        accounts.push(GenesisAccount {
            address: k.address(),
            balance: crn(PROVIDER_BALANCE),
        });
        providers.push(GenesisProvider {
            address: k.address(),
            endpoint: format!("http://127.0.0.1:{port}"),
            region: "eu-west".to_string(),
            capacity,
            commission_bps: COMMISSION_BPS,
            bond: crn(PROVIDER_BOND),
            claimed_int8_ops: claimed,
        });
    };
    for i in 0..STORAGE_PROVIDERS {
        let capacity = Capacity {
            storage_bytes: 10 * GIB,
            ..Capacity::default()
        };
        provider(storage(i), capacity, 0, 7100 + i);
    }
    for i in 0..COMPUTE_PROVIDERS {
        let gpus = if i == 0 { vec![h100()] } else { vec![] };
        provider(compute(i), compute_capacity(gpus), 0, 7200 + i);
    }
    for i in 0..provers {
        provider(
            prover(i),
            compute_capacity(vec![h100()]),
            PROVER_CLAIM,
            7300 + i,
        );
    }
    Genesis {
        chain_id: CHAIN_ID.to_string(),
        genesis_time_ms: GENESIS_TIME_MS,
        params,
        accounts,
        validators: vec![GenesisValidator {
            address: validator().address(),
            stake: crn(50_000),
            p2p_address: String::new(),
        }],
        providers,
    }
}

/// A ledger driven through real blocks. Every applied block is checked against the supply
/// invariant (design §4) before the test sees it.
pub struct Chain {
    pub ledger: Ledger,
    pub proposer: Address,
}

impl Chain {
    pub fn new(genesis: &Genesis) -> Self {
        let ledger = Ledger::from_genesis(genesis).expect("genesis");
        if let Err(e) = ledger.state().check_invariants() {
            panic!("invariant broken at genesis: {e}");
        }
        Self {
            ledger,
            proposer: validator().address(),
        }
    }

    /// Sim parameters; with compute provers, every prover is challenged every epoch
    /// (interval 1, with epochs long enough to keep proving within 1% of the time).
    pub fn sim(provers: usize) -> Self {
        let params = if provers > 0 {
            compute_every_epoch()
        } else {
            sim_params()
        };
        Self::new(&genesis(params, provers))
    }

    pub fn with_params(params: Params, provers: usize) -> Self {
        Self::new(&genesis(params, provers))
    }

    pub fn state(&self) -> &State {
        self.ledger.state()
    }
    pub fn params(&self) -> &Params {
        self.ledger.params()
    }
    pub fn height(&self) -> Height {
        self.ledger.height()
    }
    pub fn next_height(&self) -> Height {
        self.ledger.height() + 1
    }
    /// The epoch the next block belongs to.
    pub fn epoch(&self) -> Epoch {
        self.ledger.current_epoch()
    }
    pub fn epoch_length(&self) -> u64 {
        self.params().epoch_length_blocks
    }
    /// Last height of `epoch`.
    pub fn epoch_end(&self, epoch: Epoch) -> Height {
        (epoch + 1) * self.epoch_length()
    }
    pub fn balance(&self, who: &Address) -> Amount {
        self.state().balance(who)
    }
    pub fn fee(&self) -> Amount {
        self.params().min_tx_fee
    }

    pub fn timestamp_of(&self, height: Height) -> u64 {
        GENESIS_TIME_MS + height * self.params().block_time_ms
    }
    pub fn seed_of(height: Height) -> Hash {
        Hash::domain("ledger-it.seed", &[&height.to_be_bytes()])
    }

    pub fn sign(&self, key: &Keypair, nonce: u64, fee: Amount, body: TxBody) -> SignedTransaction {
        Transaction {
            chain_id: s(CHAIN_ID),
            sender: key.public_key().clone(),
            nonce,
            fee,
            body,
        }
        .sign(key)
    }

    /// A transaction with the sender's current nonce and the minimum fee.
    pub fn tx(&self, key: &Keypair, body: TxBody) -> SignedTransaction {
        self.sign(key, self.state().nonce(&key.address()), self.fee(), body)
    }

    /// Transactions for one block: nonces run on per sender.
    pub fn txs(&self, list: Vec<(&Keypair, TxBody)>) -> Vec<SignedTransaction> {
        let mut nonces: BTreeMap<Address, u64> = BTreeMap::new();
        list.into_iter()
            .map(|(key, body)| {
                let address = key.address();
                let nonce = nonces
                    .entry(address)
                    .or_insert_with(|| self.state().nonce(&address));
                let tx = self.sign(key, *nonce, self.fee(), body);
                *nonce += 1;
                tx
            })
            .collect()
    }

    /// The next block carrying `txs`.
    pub fn block(&self, txs: Vec<SignedTransaction>) -> Block {
        let height = self.next_height();
        Block::new(
            height,
            self.state().last_block_hash,
            self.timestamp_of(height),
            self.proposer,
            Self::seed_of(height),
            txs,
        )
        .expect("block size")
        .with_state_root(self.ledger.root())
    }

    /// Applies a block that must be valid, then checks the invariants.
    pub fn apply_block(&mut self, block: &Block) -> BlockOutcome {
        let outcome = match self.ledger.apply_block(block) {
            Ok(outcome) => outcome,
            Err(e) => panic!("block {} refused: {e}", block.header.height),
        };
        if let Err(e) = self.state().check_invariants() {
            panic!("invariant broken at height {}: {e}", outcome.height);
        }
        assert_eq!(outcome.state_root, self.ledger.root());
        outcome
    }

    pub fn apply(&mut self, txs: Vec<SignedTransaction>) -> BlockOutcome {
        let block = self.block(txs);
        self.apply_block(&block)
    }

    /// One block with these transactions; every one must execute.
    pub fn run(&mut self, list: Vec<(&Keypair, TxBody)>) -> BlockOutcome {
        let txs = self.txs(list);
        let outcome = self.apply(txs);
        for r in &outcome.receipts {
            assert!(
                r.ok(),
                "{} #{} at height {} failed: {:?}",
                r.kind,
                r.index,
                r.height,
                r.error
            );
        }
        outcome
    }

    /// One block with one transaction; returns its receipt.
    pub fn exec(&mut self, key: &Keypair, body: TxBody) -> Receipt {
        let tx = self.tx(key, body);
        let mut outcome = self.apply(vec![tx]);
        outcome.receipts.remove(0)
    }

    /// One block with one transaction that must execute.
    pub fn ok(&mut self, key: &Keypair, body: TxBody) -> BlockOutcome {
        // What a client is told before signing: that it would go through.
        if let Err(e) = self.ledger.preview(key.address(), self.fee(), &body) {
            panic!("preview refused a {} that executes: {e}", body.kind());
        }
        self.run(vec![(key, body)])
    }

    pub fn empty(&mut self) -> BlockOutcome {
        self.apply(vec![])
    }

    /// Empty blocks until the tip is at `height`.
    pub fn advance_to(&mut self, height: Height) {
        assert!(self.height() <= height, "already past height {height}");
        while self.height() < height {
            self.empty();
        }
    }

    /// Empty blocks through the end of the current epoch; returns the epoch-end outcome.
    pub fn finish_epoch(&mut self) -> BlockOutcome {
        let end = self.epoch_end(self.epoch());
        self.advance_to(end - 1);
        let outcome = self.empty();
        assert!(outcome.finished_epoch.is_some());
        outcome
    }
}

/// Fee split as the ledger makes it: (burned, to treasury).
pub fn fee_split(params: &Params, fee: Amount) -> (Amount, Amount) {
    let burn = fee.bps(params.fee_burn_bps);
    (burn, Amount(fee.0 - burn.0))
}

/// What a failed transaction may change (reliability.md §2e rule 2): the sender's balance
/// (−fee) and nonce (+1), the burned supply, the treasury and the epoch report's fee fields;
/// plus what every block changes: the tip (height, hash, timestamp, seed) and the proposer's
/// block counters.
pub fn expected_after_failed_tx(
    before: &State,
    params: &Params,
    block: &Block,
    sender: &Address,
    fee: Amount,
) -> State {
    let mut expected = before.clone();
    let account = expected
        .accounts
        .get_mut(sender)
        .expect("sender has an account");
    account.balance = Amount(account.balance.0 - fee.0);
    account.nonce += 1;
    let (burn, treasury) = fee_split(params, fee);
    expected.supply.burned = Amount(expected.supply.burned.0 + burn.0);
    expected.treasury = Amount(expected.treasury.0 + treasury.0);
    let epoch = State::epoch_of(block.header.height, params.epoch_length_blocks);
    let report = expected
        .epochs
        .get_mut(&epoch)
        .expect("the epoch has a report");
    report.revenue.tx_fees = Amount(report.revenue.tx_fees.0 + fee.0);
    report.burned_fees = Amount(report.burned_fees.0 + burn.0);
    report.to_treasury = Amount(report.to_treasury.0 + treasury.0);
    expected.height = block.header.height;
    expected.last_block_hash = block.hash();
    expected.last_timestamp_ms = block.header.timestamp_ms;
    expected.last_seed = block.header.seed;
    if let Some(v) = expected.validators.get_mut(&block.header.proposer) {
        v.blocks_this_epoch += 1;
        v.blocks_total += 1;
    }
    expected
}

/// Field-by-field comparison first (readable failures), then the whole state.
pub fn assert_same_state(expected: &State, got: &State, context: &str) {
    macro_rules! same {
        ($($field:ident),*) => {
            $(assert_eq!(expected.$field, got.$field, "{context}: `{}` differs", stringify!($field));)*
        };
    }
    same!(
        chain_id,
        height,
        last_block_hash,
        last_timestamp_ms,
        last_seed,
        accounts,
        validators,
        providers,
        delegations,
        unbonding,
        deals,
        blobs,
        orders,
        leases,
        storage_challenges,
        compute_challenges,
        epochs,
        statements,
        supply,
        treasury,
        next_emission,
        counters
    );
    assert_eq!(expected, got, "{context}: state differs");
    assert_eq!(expected.root(), got.root(), "{context}: root differs");
}

/// Sends `body` from `key` alone in a block (never an epoch's last block, so epoch
/// processing cannot blur the diff), asserts that it failed, that it paid exactly its fee
/// and consumed its nonce and that nothing else changed, that the receipt's JSON reason
/// code matches [`TxError::code`], and returns the typed error.
pub fn reject(chain: &mut Chain, key: &Keypair, body: TxBody) -> TxError {
    if chain.next_height().is_multiple_of(chain.epoch_length()) {
        chain.empty();
    }
    let sender = key.address();
    // What a client is told before signing: the same refusal, and nothing changed by asking.
    let ledger_before = chain.ledger.clone();
    let predicted = chain.ledger.preview(sender, ODD_FEE, &body);
    assert_eq!(chain.ledger, ledger_before, "preview changed the ledger");
    let tx = chain.sign(key, chain.state().nonce(&sender), ODD_FEE, body);
    let kind = tx.tx.body.kind();
    let block = chain.block(vec![tx]);
    let before = chain.state().clone();
    let outcome = chain.apply_block(&block);
    assert_eq!(outcome.finished_epoch, None);
    assert_eq!(outcome.receipts.len(), 1);
    let receipt = &outcome.receipts[0];
    assert_eq!(receipt.fee, ODD_FEE);
    assert_eq!(receipt.sender, sender);
    assert_eq!(receipt.kind, kind);
    let Some(error) = receipt.error.clone() else {
        panic!(
            "{kind} at height {} was expected to fail",
            block.header.height
        );
    };
    let expected = expected_after_failed_tx(&before, chain.params(), &block, &sender, ODD_FEE);
    assert_same_state(
        &expected,
        chain.state(),
        &format!("{kind} refused with {error:?}"),
    );
    let json = serde_json::to_value(&error).expect("error serializes");
    assert_eq!(json["reason"], serde_json::Value::String(error.code()));
    assert_eq!(
        predicted,
        Err(cairn_ledger::PreviewError::Body(error.clone())),
        "preview of {kind} did not predict its failure"
    );
    error
}

/// Applies a block that must be refused; checks that the ledger (state, root, parameters)
/// did not change, and returns the error.
pub fn refuse_block(chain: &mut Chain, block: &Block) -> BlockError {
    let before = chain.ledger.clone();
    let root = chain.ledger.root();
    let Err(error) = chain.ledger.apply_block(block) else {
        panic!("block {} was expected to be refused", block.header.height);
    };
    assert_same_state(
        before.state(),
        chain.state(),
        &format!("refused block: {error}"),
    );
    assert_eq!(chain.ledger, before);
    assert_eq!(chain.ledger.root(), root);
    error
}

// ---------------------------------------------------------------------------------------
// Storage: blobs with real shards, receipts and proofs.

pub struct Blob {
    pub meta: BlobMeta,
    pub shards: Vec<Vec<u8>>,
}

fn shard_bytes(tag: u8, index: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 0u64;
    while out.len() < len {
        let block = Hash::domain(
            "ledger-it.shard",
            &[&[tag], &index.to_be_bytes(), &counter.to_be_bytes()],
        );
        out.extend_from_slice(block.as_bytes());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// A blob of `data` + `parity` shards of `shard_size` bytes each (size = data × shard_size),
/// with real shard bytes and roots.
pub fn blob(tag: u8, data: u16, parity: u16, shard_size: usize, leaf: u32) -> Blob {
    let count = usize::from(data) + usize::from(parity);
    let shards: Vec<Vec<u8>> = (0..count)
        .map(|i| shard_bytes(tag, i, shard_size))
        .collect();
    let roots: Vec<Hash> = shards
        .iter()
        .map(|s| cairn_proofs::storage::shard_root(s))
        .collect();
    let shard_size = u64::try_from(shard_size).expect("small shard");
    let size = shard_size * u64::from(data);
    let id = cairn_types::ids::blob_id(size, data, parity, shard_size, leaf, &roots);
    Blob {
        meta: BlobMeta {
            id,
            size_bytes: size,
            data_shards: data,
            parity_shards: parity,
            shard_size_bytes: shard_size,
            leaf_size_bytes: leaf,
            shard_roots: BoundedVec::new(roots).expect("few shards"),
        },
        shards,
    }
}

pub fn addresses(keys: &[Keypair]) -> Vec<Address> {
    keys.iter().map(Keypair::address).collect()
}

pub fn create_deal(
    meta: &BlobMeta,
    providers: &[Address],
    epochs: u64,
    price: Amount,
    escrow: Amount,
) -> TxBody {
    TxBody::CreateDeal(CreateDeal {
        blob: meta.clone(),
        providers: BoundedVec::new(providers.to_vec()).expect("few providers"),
        permanent: false,
        epochs,
        price_per_gib_epoch: price,
        escrow,
        sealed_key: cairn_types::BoundedBytes::new(vec![0xa7; cairn_types::tx::SEALED_KEY_BYTES])
            .expect("a sealed key fits"),
    })
}

/// Provider `key`'s signature that it holds shard `index` of the deal's blob.
pub fn receipt(key: &Keypair, deal: DealId, meta: &BlobMeta, index: u16) -> ShardReceipt {
    let root = meta.shard_roots.0[usize::from(index)];
    let message = shard_receipt_message(deal, &meta.id, index, &root);
    ShardReceipt {
        shard_index: index,
        signature: key.sign(SHARD_RECEIPT_NAMESPACE, &message),
    }
}

/// The availability certificate: shard `i` receipted by `keys[i]`.
pub fn activate(deal: DealId, meta: &BlobMeta, keys: &[Keypair]) -> TxBody {
    let receipts = (0u16..)
        .zip(keys)
        .map(|(i, k)| receipt(k, deal, meta, i))
        .collect();
    TxBody::ActivateDeal(ActivateDeal {
        deal,
        receipts: BoundedVec::new(receipts).expect("few receipts"),
    })
}

/// The honest proof for the current challenge of shard `index` of `deal`.
pub fn storage_proof(chain: &Chain, blob: &Blob, deal: DealId, index: u16) -> StorageProof {
    let challenge = chain
        .state()
        .storage_challenges
        .get(&(deal, index))
        .expect("a challenge for the shard");
    cairn_proofs::storage::prove(
        &blob.shards[usize::from(index)],
        blob.meta.leaf_size_bytes,
        &challenge.seed,
        deal,
        index,
        usize::from(chain.params().storage_leaves_per_challenge),
    )
}

pub fn submit_proofs(epoch: Epoch, proofs: Vec<StorageProof>) -> TxBody {
    TxBody::SubmitStorageProofs(SubmitStorageProofs {
        epoch,
        proofs: BoundedVec::new(proofs).expect("few proofs"),
    })
}

// ---------------------------------------------------------------------------------------
// Compute: challenges answered with the reference prover.

/// Sim parameters with a compute challenge for every prover in every epoch: 100-block
/// epochs so one block of proving stays within the 1% bound.
pub fn compute_every_epoch() -> Params {
    Params {
        epoch_length_blocks: 100,
        compute_challenge_interval_epochs: 1,
        ..sim_params()
    }
}

/// The provider's challenge issued for `epoch`.
pub fn challenge_of(chain: &Chain, provider: &Address, epoch: Epoch) -> ComputeChallenge {
    chain
        .state()
        .compute_challenges
        .values()
        .find(|c| c.provider == *provider && c.epoch == epoch)
        .cloned()
        .expect("a compute challenge for the provider")
}

/// The honest product C = A·B of a challenge and its commitment tree.
pub fn honest_product(challenge: &ComputeChallenge) -> (MerkleTree, Vec<i32>) {
    let shape = challenge.shape();
    let a = cairn_proofs::compute::generate_a(&challenge.seed, shape);
    let b = cairn_proofs::compute::generate_b(&challenge.seed, shape);
    let c = cairn_proofs::compute::gemm_reference(&a, &b, shape);
    (cairn_proofs::compute::commit(&c), c)
}

pub fn commit(challenge: ChallengeId, root: Hash) -> TxBody {
    TxBody::CommitCompute(CommitCompute { challenge, root })
}

/// Opens the entries the (committed) challenge's reveal seed picks.
pub fn open(chain: &Chain, id: ChallengeId, tree: &MerkleTree, c: &[i32]) -> TxBody {
    let challenge = &chain.state().compute_challenges[&id];
    let ComputePhase::Committed { reveal_seed, .. } = &challenge.phase else {
        panic!("challenge {id} is not committed: {:?}", challenge.phase);
    };
    let indices = cairn_proofs::compute::opening_indices(
        reveal_seed,
        id,
        challenge.shape(),
        usize::from(challenge.openings),
    );
    let openings: Vec<ComputeOpening> = cairn_proofs::compute::open(tree, c, &indices);
    TxBody::OpenCompute(OpenCompute {
        challenge: id,
        first_opening: 0,
        openings: BoundedVec::new(openings).expect("few openings"),
    })
}

pub fn hardware(cpu: u64, memory: u64, storage: u64, gpus: Vec<GpuSpec>) -> Hardware {
    Hardware {
        cpu_millicores: cpu,
        memory_bytes: memory,
        storage_bytes: storage,
        gpus: BoundedVec::new(gpus).expect("few gpus"),
    }
}
