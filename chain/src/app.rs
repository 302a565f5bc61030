//! Block building and verification: the [`Application`] marshal's `Inline` wrapper drives.
//!
//! # Execution model
//!
//! Every block is executed when it is proposed or verified, on a clone of its parent's ledger
//! (speculative execution). The resulting state is kept by digest until the block is finalized
//! (then the finalizer adopts it instead of executing again) or falls below the finalized height
//! (then it is dropped). A parent whose state this node does not have (it joined late, restarted,
//! or certified the parent without verifying it) is rebuilt by walking the ancestry back to a
//! known state and re-executing forward, checking every signature.
//!
//! # Rules a proposal must satisfy (checked in `verify`)
//!
//! - the header names the round's leader as proposer;
//! - `seed = H("cairn.chain.seed.v1", parent hash, view)`;
//! - `timestamp >= parent timestamp + block_time_ms` (the minimum block time is a consensus
//!   rule, so a Byzantine leader cannot flood the chain with blocks), and not further in the
//!   future than the local clock allows (verification waits rather than rejects);
//! - unless the block is already final or already executed here (nothing left to decide): all
//!   signatures valid (one batch verification), and the ledger accepts the block on the
//!   parent's state (header, state root of the parent, admission of every transaction).
//!
//! The transaction count is bounded by the block type (decoding refuses more than the ledger's
//! limit, and more than [`MAX_BLOCK_BYTES`]); `max_block_txs` is local proposal policy, never a
//! validity rule, so validators with different settings still agree.
//!
//! The seed is predictable by the leader (it knows the view and the parent). An unbiasable seed
//! needs a threshold VRF (`simplex::scheme::bls12381_threshold::vrf`, whose certificates carry
//! per-view randomness) and a DKG: future work.

use crate::block::{ChainBlock, MAX_BLOCK_BYTES, block_tx_limit};
use crate::state::Shared;
use cairn_ledger::{BlockError, Ledger};
use cairn_types::{Address, Block, Hash, SignedTransaction};
use commonware_consensus::marshal::ancestry::Ancestry;
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_consensus::simplex::types::Context;
use commonware_consensus::{Application, Heightable, Viewable};
use commonware_cryptography::sha256::Digest;
use commonware_cryptography::{Digested, Digestible, ed25519};
use commonware_runtime::Clock;
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{debug, warn};

/// Most blocks re-executed to rebuild a missing parent state before waiting for the finalized
/// ledger to catch up instead.
const MAX_REBUILD: usize = 256;

/// How long verification waits before retrying when the parent's state is out of reach.
const RETRY: Duration = Duration::from_millis(200);

/// Proposals rebuilt after dropping an inadmissible transaction before giving up on them.
const MAX_BUILD_ATTEMPTS: usize = 8;

/// Room left in a block for its header and length prefix.
const HEADER_ROOM: usize = 1024;

/// The block seed: predictable, documented above.
pub fn block_seed(parent: &Hash, view: u64) -> Hash {
    Hash::domain("cairn.chain.seed.v1", &[&parent.0, &view.to_be_bytes()])
}

fn address_of(key: &ed25519::PublicKey) -> Address {
    cairn_types::PublicKey(key.clone()).address()
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The application: shared node state plus nothing else (it is cloned per request).
#[derive(Clone)]
pub(crate) struct App {
    shared: Arc<Shared>,
}

/// Where a parent's state stands.
enum ParentState {
    Ready(Arc<Ledger>),
    /// The parent does not extend the finalized chain, or a block on the way does not apply.
    Invalid,
    /// Not reachable now (too far ahead of the finalized ledger, or ancestry unavailable).
    Later,
}

impl App {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The state after the first block `ancestry` yields (the parent), rebuilding it from the
    /// nearest known ancestor when needed.
    async fn parent_state(&self, mut ancestry: impl Ancestry<ChainBlock>) -> ParentState {
        let mut pending: Vec<Digested<ChainBlock>> = Vec::new();
        let base = loop {
            let Some(block) = ancestry.next().await else {
                return ParentState::Later;
            };
            if let Some(state) = self.shared.state_after(&block.digest()) {
                break state;
            }
            let finalized = self.shared.finalized();
            if block.height().get() <= finalized.ledger.height() {
                // Below finality: fine only if the finalized tip is one of the blocks we walked
                // past (it may have advanced while we fetched).
                match pending.iter().position(|b| b.digest() == finalized.digest) {
                    Some(at) => {
                        pending.truncate(at);
                        break finalized.ledger;
                    }
                    None => return ParentState::Invalid,
                }
            }
            if pending.len() >= MAX_REBUILD {
                return ParentState::Later;
            }
            pending.push(block);
        };
        let mut ledger = base;
        for block in pending.iter().rev() {
            let mut next = (*ledger).clone();
            match next.apply_block(block.inner().block()) {
                Ok(outcome) => {
                    let next = Arc::new(next);
                    self.shared
                        .remember(block.digest(), Arc::clone(&next), outcome);
                    ledger = next;
                }
                Err(error) => {
                    warn!(height = block.inner().height(), %error, "ancestor does not apply");
                    return ParentState::Invalid;
                }
            }
        }
        ParentState::Ready(ledger)
    }

    /// Builds the block on `parent`, dropping transactions the ledger refuses.
    fn build(
        &self,
        parent: &Ledger,
        timestamp_ms: u64,
        seed: Hash,
        mut txs: Vec<SignedTransaction>,
    ) -> Option<(ChainBlock, Ledger, cairn_ledger::BlockOutcome)> {
        let state = parent.state();
        for _ in 0..MAX_BUILD_ATTEMPTS {
            let block = Block::new(
                state.height + 1,
                state.last_block_hash,
                timestamp_ms,
                self.shared.me,
                seed,
                txs.clone(),
            )?
            .with_state_root(parent.root());
            let mut next = parent.clone();
            match next.apply_verified_block(&block) {
                Ok(outcome) => return Some((ChainBlock::new(block), next, outcome)),
                Err(BlockError::Inadmissible { index, .. }) => {
                    // Drop it and the same sender's later transactions (their nonces follow).
                    let bad = txs.get(index)?;
                    let sender = bad.sender();
                    let nonce = bad.tx.nonce;
                    txs.retain(|t| !(t.sender() == sender && t.tx.nonce >= nonce));
                }
                Err(error) => {
                    warn!(%error, "cannot build a block on this parent");
                    return None;
                }
            }
        }
        None
    }
}

impl<E> Application<E> for App
where
    E: Clock + Send + Sync + 'static,
{
    type SigningScheme = Scheme;
    type Context = Context<Digest, ed25519::PublicKey>;
    type Block = ChainBlock;
    type Input = ();

    async fn propose(
        &mut self,
        (clock, context): (E, Self::Context),
        ancestry: impl Ancestry<ChainBlock>,
        _input: (),
    ) -> Option<Digested<ChainBlock>> {
        let parent = match self.parent_state(ancestry).await {
            ParentState::Ready(parent) => parent,
            ParentState::Invalid | ParentState::Later => {
                debug!(round = %context.round, "no parent state, skipping proposal");
                return None;
            }
        };
        // Minimum block time: an idle chain makes one (empty) block per block time, no more.
        let earliest = parent
            .state()
            .last_timestamp_ms
            .saturating_add(self.shared.block_time_ms);
        let deadline = UNIX_EPOCH + Duration::from_millis(earliest);
        if clock.current() < deadline {
            clock.sleep_until(deadline).await;
        }
        let timestamp_ms = millis(clock.current()).max(earliest);
        let seed = block_seed(&parent.state().last_block_hash, context.view().get());

        let max_txs = block_tx_limit(self.shared.config.max_block_txs);
        let txs = self.shared.mempool.lock().select(
            &parent,
            max_txs,
            MAX_BLOCK_BYTES.saturating_sub(HEADER_ROOM),
        );
        let (block, ledger, outcome) = self.build(&parent, timestamp_ms, seed, txs)?;
        let digest = block.digest();
        debug!(
            height = block.height(),
            txs = outcome.receipts.len(),
            round = %context.round,
            "proposing"
        );
        self.shared.remember(digest, Arc::new(ledger), outcome);
        Some(Digested::precomputed(block, digest))
    }

    async fn verify(
        &mut self,
        (clock, context): (E, Self::Context),
        mut ancestry: impl Ancestry<ChainBlock>,
    ) -> bool {
        let Some(block) = ancestry.next().await else {
            return false;
        };
        let header = block.inner().header();
        let digest = block.digest();

        // Checks that need no state.
        if header.proposer != address_of(&context.leader) {
            debug!(height = header.height, "proposer is not the round's leader");
            return false;
        }
        if header.seed != block_seed(&header.parent, context.view().get()) {
            debug!(height = header.height, "wrong seed");
            return false;
        }
        if self
            .shared
            .is_finalized(header.height, &block.inner().hash())
            || self.shared.state_after(&digest).is_some()
        {
            // Final already, or executed already (our own proposal, or an earlier request).
            return true;
        }

        let parent = loop {
            match self.parent_state(ancestry.clone()).await {
                ParentState::Ready(parent) => break parent,
                ParentState::Invalid => return false,
                ParentState::Later => clock.sleep(RETRY).await,
            }
        };

        let earliest = parent
            .state()
            .last_timestamp_ms
            .saturating_add(self.shared.block_time_ms);
        if header.timestamp_ms < earliest {
            debug!(
                height = header.height,
                "block comes before the minimum block time"
            );
            return false;
        }
        let drift =
            u64::try_from(self.shared.config.max_future_drift.as_millis()).unwrap_or(u64::MAX);
        let acceptable_from =
            UNIX_EPOCH + Duration::from_millis(header.timestamp_ms.saturating_sub(drift));
        if clock.current() < acceptable_from {
            // Too far in our future: wait for our clock rather than reject (skew is temporary).
            clock.sleep_until(acceptable_from).await;
        }

        // A transaction this node's mempool holds passed admission, signature included (same
        // hash, same bytes): only the others need checking.
        let unchecked: Vec<&SignedTransaction> = {
            let mempool = self.shared.mempool.lock();
            block
                .inner()
                .block()
                .txs
                .0
                .iter()
                .filter(|tx| !mempool.contains(&tx.hash()))
                .collect()
        };
        if let Err(index) = Ledger::verify_signatures_of(&unchecked) {
            debug!(height = header.height, index, "bad transaction signature");
            return false;
        }
        let mut next = (*parent).clone();
        match next.apply_verified_block(block.inner().block()) {
            Ok(outcome) => {
                self.shared.remember(digest, Arc::new(next), outcome);
                true
            }
            Err(error) => {
                debug!(height = header.height, %error, "block does not apply");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ChainConfig;
    use crate::state::Replayer;
    use cairn_ledger::Genesis;
    use cairn_ledger::params::{GenesisAccount, GenesisValidator};
    use cairn_types::tx::Transfer;
    use cairn_types::{Amount, BoundedString, Keypair, Transaction, TxBody};
    use commonware_consensus::marshal::ancestry;
    use commonware_consensus::types::{Epoch, Round, View};
    use commonware_runtime::{Runner as _, Supervisor as _, deterministic};

    const BT: u64 = 100;

    struct Fixture {
        app: App,
        shared: Arc<Shared>,
        genesis: Ledger,
        genesis_block: ChainBlock,
        leader: Keypair,
        user: Keypair,
    }

    fn fixture() -> Fixture {
        let leader = Keypair::from_test_seed("leader");
        let user = Keypair::from_test_seed("user");
        let genesis = Genesis {
            chain_id: "unit".into(),
            genesis_time_ms: 0,
            params: cairn_ledger::Params::default().with_block_time(BT),
            accounts: vec![GenesisAccount {
                address: user.address(),
                balance: Amount::from_ucrn(1_000_000_000),
            }],
            validators: vec![GenesisValidator {
                address: leader.address(),
                stake: Amount::from_ucrn(1),
                p2p_address: String::new(),
            }],
            providers: vec![],
        };
        let ledger = Ledger::from_genesis(&genesis).unwrap();
        let genesis_block = ChainBlock::genesis(ledger.state().last_block_hash);
        let replayed = Replayer::new(ledger.clone(), genesis_block.digest(), 16).finish();
        let shared = Arc::new(Shared::new(
            "unit".into(),
            vec![leader.address()],
            BT,
            ChainConfig::default(),
            leader.address(),
            replayed,
        ));
        Fixture {
            app: App::new(Arc::clone(&shared)),
            shared,
            genesis: ledger,
            genesis_block,
            leader,
            user,
        }
    }

    fn transfer(user: &Keypair, nonce: u64) -> SignedTransaction {
        Transaction {
            chain_id: BoundedString::new("unit").unwrap(),
            sender: user.public_key().clone(),
            nonce,
            fee: Amount::from_ucrn(1_000),
            body: TxBody::Transfer(Transfer {
                to: Keypair::from_test_seed("sink").address(),
                amount: Amount::from_ucrn(5),
            }),
        }
        .sign(user)
    }

    /// A valid first block in view 1, then `tweak` applied to it.
    fn first_block(f: &Fixture, tweak: impl FnOnce(&mut Block)) -> ChainBlock {
        let g = f.genesis.state().last_block_hash;
        let mut block = Block::new(
            1,
            g,
            BT,
            f.leader.address(),
            block_seed(&g, 1),
            vec![transfer(&f.user, 0)],
        )
        .unwrap()
        .with_state_root(f.genesis.root());
        tweak(&mut block);
        // Keep the tx root honest unless the tweak is about it: the codec path checks it.
        ChainBlock::new(block)
    }

    fn context(f: &Fixture, leader: &Keypair) -> Context<Digest, ed25519::PublicKey> {
        Context {
            round: Round::new(Epoch::zero(), View::new(1)),
            leader: leader.public_key().0.clone(),
            parent: (View::zero(), f.genesis_block.digest()),
        }
    }

    fn verify(f: &Fixture, block: ChainBlock, leader: &Keypair) -> bool {
        let digest = block.digest();
        let blocks = [
            Digested::precomputed(block, digest),
            Digested::precomputed(f.genesis_block.clone(), f.genesis_block.digest()),
        ];
        let mut app = f.app.clone();
        let ctx = context(f, leader);
        deterministic::Runner::default().start(|clock| async move {
            <App as Application<deterministic::Context>>::verify(
                &mut app,
                (clock, ctx),
                ancestry::from_iter(blocks),
            )
            .await
        })
    }

    #[test]
    fn verify_accepts_a_valid_block_and_remembers_its_state() {
        let f = fixture();
        let block = first_block(&f, |_| {});
        let digest = block.digest();
        assert!(verify(&f, block, &f.leader));
        let state = f.shared.state_after(&digest).unwrap();
        assert_eq!(state.height(), 1);
        assert_eq!(state.state().nonce(&f.user.address()), 1);
    }

    #[test]
    fn verify_rejects_broken_rules() {
        let f = fixture();
        let other = Keypair::from_test_seed("not-the-leader");
        // Proposer is not the round's leader.
        assert!(!verify(&f, first_block(&f, |_| {}), &other));
        // Seed not derived from (parent, view).
        assert!(!verify(
            &f,
            first_block(&f, |b| b.header.seed = Hash([1; 32])),
            &f.leader
        ));
        // Before the minimum block time.
        assert!(!verify(
            &f,
            first_block(&f, |b| b.header.timestamp_ms = BT - 1),
            &f.leader
        ));
        // Wrong parent state root.
        assert!(!verify(
            &f,
            first_block(&f, |b| b.header.state_root = Hash([2; 32])),
            &f.leader
        ));
        // A transaction whose signature does not verify.
        let forged = first_block(&f, |b| {
            let mut tx = transfer(&f.user, 0);
            tx.tx.fee = Amount::from_ucrn(2_000);
            *b = Block::new(
                1,
                b.header.parent,
                BT,
                b.header.proposer,
                b.header.seed,
                vec![tx],
            )
            .unwrap()
            .with_state_root(b.header.state_root);
        });
        assert!(!verify(&f, forged, &f.leader));
        // An inadmissible transaction (nonce from the future).
        let gap = first_block(&f, |b| {
            *b = Block::new(
                1,
                b.header.parent,
                BT,
                b.header.proposer,
                b.header.seed,
                vec![transfer(&f.user, 7)],
            )
            .unwrap()
            .with_state_root(b.header.state_root);
        });
        assert!(!verify(&f, gap, &f.leader));
        assert!(f.shared.speculative.lock().is_empty());
    }

    #[test]
    fn propose_waits_for_the_block_time_and_includes_the_mempool() {
        let f = fixture();
        {
            let mut mempool = f.shared.mempool.lock();
            for nonce in 0..3 {
                let tx = transfer(&f.user, nonce);
                let hash = tx.hash();
                mempool.insert(tx, hash);
            }
        }
        let mut app = f.app.clone();
        let ctx = context(&f, &f.leader);
        let genesis = Digested::precomputed(f.genesis_block.clone(), f.genesis_block.digest());
        let (block, now) = deterministic::Runner::default().start(|clock| async move {
            let block = <App as Application<deterministic::Context>>::propose(
                &mut app,
                (clock.child("propose"), ctx),
                ancestry::from_iter([genesis]),
                (),
            )
            .await
            .unwrap();
            (block, millis(clock.current()))
        });
        assert!(now >= BT, "proposed at {now} ms, before the block time");
        let header = block.inner().header();
        assert_eq!(header.height, 1);
        assert_eq!(header.timestamp_ms, BT);
        assert_eq!(header.proposer, f.leader.address());
        assert_eq!(
            header.seed,
            block_seed(&f.genesis.state().last_block_hash, 1)
        );
        assert_eq!(block.inner().block().txs.len(), 3);
        // Its own proposal is executed already, and verifies.
        assert!(f.shared.state_after(&block.digest()).is_some());
        assert!(verify(&f, block.inner().clone(), &f.leader));
    }
}
