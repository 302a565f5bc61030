//! The node's view of the chain: the finalized ledger, speculative states of verified blocks,
//! the transaction index, recent blocks and event subscribers.
//!
//! Lock order, everywhere: `mempool` before `finalized`. The finalizer swaps the finalized
//! ledger and evicts the mempool under the mempool lock, and `submit` reads the ledger under
//! the same lock, so a submission never checks a nonce against a ledger the mempool has already
//! moved past. No lock is held across an `.await`.

use crate::block::{ChainBlock, to_digest};
use crate::config::ChainConfig;
use crate::error::FinalizeError;
use crate::handle::{FinalizedEvent, TxRecord};
use crate::mempool::Mempool;
use cairn_ledger::{BlockOutcome, Ledger};
use cairn_types::{Address, Block, Hash, Height, SignedTransaction};
use commonware_cryptography::sha256::Digest;
use commonware_utils::sync::{Mutex, RwLock};
use futures::channel::mpsc;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::{debug, warn};

/// The finalized tip: the ledger after it and the consensus digest of its block.
#[derive(Clone)]
pub(crate) struct Finalized {
    pub ledger: Arc<Ledger>,
    /// Digest of the tip block as consensus names it (the synthetic genesis at height 0).
    pub digest: Digest,
}

/// The state after a verified (or self-proposed) block that is not finalized yet.
#[derive(Clone)]
pub(crate) struct Speculative {
    pub height: Height,
    pub ledger: Arc<Ledger>,
    pub outcome: Arc<BlockOutcome>,
}

/// What the finalized history looks like after replay: handed to [`Shared::new`].
pub(crate) struct Replayed {
    pub finalized: Finalized,
    pub index: HashMap<Hash, TxRecord>,
    pub blocks: BTreeMap<Height, Arc<Block>>,
}

/// State shared by the application, the finalizer and every [`crate::NodeHandle`].
pub(crate) struct Shared {
    pub chain_id: String,
    pub validators: Vec<Address>,
    pub block_time_ms: u64,
    pub config: ChainConfig,
    pub me: Address,
    pub finalized: RwLock<Finalized>,
    pub speculative: Mutex<BTreeMap<Digest, Speculative>>,
    pub mempool: Mutex<Mempool>,
    pub index: RwLock<HashMap<Hash, TxRecord>>,
    pub blocks: RwLock<BTreeMap<Height, Arc<Block>>>,
    pub subscribers: Mutex<Vec<mpsc::Sender<FinalizedEvent>>>,
    /// Highest finalized height marshal has heard of (may be ahead of the applied ledger).
    pub finalized_tip: AtomicU64,
    /// Set when a finalized block failed to apply: the node stops following the chain.
    pub halted: Mutex<Option<FinalizeError>>,
    /// Where newly submitted transactions go to be gossiped (`None` until gossip starts, and
    /// on a node without peers). Bounded: when gossip falls behind, transactions stay local
    /// and still reach a block when this node leads.
    pub gossip_out: Mutex<Option<mpsc::Sender<Vec<SignedTransaction>>>>,
}

impl Shared {
    pub(crate) fn new(
        chain_id: String,
        validators: Vec<Address>,
        block_time_ms: u64,
        config: ChainConfig,
        me: Address,
        replayed: Replayed,
    ) -> Self {
        let mempool = Mempool::new(config.mempool_max_txs, config.mempool_max_per_sender);
        let height = replayed.finalized.ledger.height();
        Self {
            chain_id,
            validators,
            block_time_ms,
            config,
            me,
            finalized: RwLock::new(replayed.finalized),
            speculative: Mutex::new(BTreeMap::new()),
            mempool: Mutex::new(mempool),
            index: RwLock::new(replayed.index),
            blocks: RwLock::new(replayed.blocks),
            subscribers: Mutex::new(Vec::new()),
            finalized_tip: AtomicU64::new(height),
            halted: Mutex::new(None),
            gossip_out: Mutex::new(None),
        }
    }

    /// Hands admitted transactions to the gossip task, dropping them if it is behind.
    pub(crate) fn gossip(&self, txs: Vec<SignedTransaction>) {
        if let Some(out) = self.gossip_out.lock().as_mut()
            && out.try_send(txs).is_err()
        {
            debug!("gossip queue full: transactions stay local");
        }
    }

    pub(crate) fn finalized(&self) -> Finalized {
        self.finalized.read().clone()
    }

    /// The ledger after the block with consensus digest `digest`, if this node has it.
    pub(crate) fn state_after(&self, digest: &Digest) -> Option<Arc<Ledger>> {
        {
            let finalized = self.finalized.read();
            if finalized.digest == *digest {
                return Some(Arc::clone(&finalized.ledger));
            }
        }
        self.speculative
            .lock()
            .get(digest)
            .map(|s| Arc::clone(&s.ledger))
    }

    /// Whether the block `hash` at `height` is part of the finalized chain this node applied
    /// (checked against the recent-block cache; older heights answer `false`).
    pub(crate) fn is_finalized(&self, height: Height, hash: &Hash) -> bool {
        height <= self.finalized.read().ledger.height()
            && self
                .blocks
                .read()
                .get(&height)
                .is_some_and(|b| b.hash() == *hash)
    }

    /// Keeps the state after a verified block, dropping the lowest heights beyond the cap.
    pub(crate) fn remember(&self, digest: Digest, ledger: Arc<Ledger>, outcome: BlockOutcome) {
        let finalized_height = self.finalized.read().ledger.height();
        if outcome.height <= finalized_height {
            return;
        }
        let mut speculative = self.speculative.lock();
        speculative.insert(
            digest,
            Speculative {
                height: outcome.height,
                ledger,
                outcome: Arc::new(outcome),
            },
        );
        while speculative.len() > self.config.max_speculative.max(1) {
            let lowest = speculative
                .iter()
                .min_by_key(|(_, s)| s.height)
                .map(|(d, _)| *d);
            match lowest {
                Some(d) => {
                    speculative.remove(&d);
                }
                None => break,
            }
        }
    }

    /// Applies a finalized block to the canonical ledger, or does nothing if it is already
    /// applied (deliveries repeat after a restart). Returns the event to publish when it
    /// applied something.
    pub(crate) fn finalize(
        &self,
        block: &ChainBlock,
    ) -> Result<Option<FinalizedEvent>, FinalizeError> {
        let height = block.height();
        // Only the finalizer writes `finalized`, so this snapshot stays current while we
        // execute outside any lock.
        let current = self.finalized();
        let have = current.ledger.height();
        if height <= have {
            debug!(height, have, "finalized block already applied");
            return Ok(None);
        }
        if height != have + 1 {
            return Err(FinalizeError::Gap { have, got: height });
        }
        let digest = to_digest(&block.hash());
        let adopted = self.speculative.lock().get(&digest).cloned();
        let (ledger, outcome) = match adopted {
            // The speculative state of this exact block: same digest, same parent chain.
            Some(s) => (s.ledger, s.outcome),
            None => {
                // A block this node never verified (fetched during catch-up): check it fully.
                let mut next = (*current.ledger).clone();
                let outcome =
                    next.apply_block(block.block())
                        .map_err(|source| FinalizeError::Invalid {
                            height,
                            source: Box::new(source),
                        })?;
                (Arc::new(next), Arc::new(outcome))
            }
        };

        let senders: BTreeSet<Address> = block.block().txs.iter().map(|t| t.sender()).collect();
        {
            let mut index = self.index.write();
            for receipt in &outcome.receipts {
                index.insert(
                    receipt.tx,
                    TxRecord {
                        hash: receipt.tx,
                        height,
                        index: receipt.index,
                        receipt: receipt.clone(),
                    },
                );
            }
        }
        {
            let mut blocks = self.blocks.write();
            blocks.insert(height, block.shared());
            while blocks.len() > self.config.block_cache.max(1) {
                blocks.pop_first();
            }
        }
        {
            // Swap the ledger and evict under the mempool lock (see the module docs).
            let mut mempool = self.mempool.lock();
            *self.finalized.write() = Finalized {
                ledger: Arc::clone(&ledger),
                digest,
            };
            mempool.evict(&ledger, &senders);
        }
        self.speculative.lock().retain(|_, s| s.height > height);
        self.finalized_tip.fetch_max(height, Ordering::Relaxed);

        let header = block.header();
        Ok(Some(FinalizedEvent {
            height,
            block_hash: outcome.block_hash,
            state_root: outcome.state_root,
            timestamp_ms: header.timestamp_ms,
            proposer: header.proposer,
            tx_count: outcome.receipts.len(),
            receipts: outcome.receipts.clone(),
            finished_epoch: outcome.finished_epoch,
        }))
    }

    /// Sends an event to every subscriber; a full or closed channel drops its subscriber so a
    /// slow reader never holds consensus back.
    pub(crate) fn publish(&self, event: FinalizedEvent) {
        let mut subscribers = self.subscribers.lock();
        subscribers.retain_mut(|s| match s.try_send(event.clone()) {
            Ok(()) => true,
            Err(e) => {
                if e.is_full() {
                    warn!(height = event.height, "dropping a slow event subscriber");
                }
                false
            }
        });
    }

    pub(crate) fn halt(&self, error: FinalizeError) {
        *self.halted.lock() = Some(error);
    }
}

/// Replays finalized blocks (heights 1, 2, … in order) into a fresh ledger, building the
/// transaction index and the recent-block cache. Used at startup.
pub(crate) struct Replayer {
    ledger: Ledger,
    genesis_digest: Digest,
    index: HashMap<Hash, TxRecord>,
    blocks: BTreeMap<Height, Arc<Block>>,
    cache: usize,
}

impl Replayer {
    pub(crate) fn new(genesis: Ledger, genesis_digest: Digest, cache: usize) -> Self {
        Self {
            ledger: genesis,
            genesis_digest,
            index: HashMap::new(),
            blocks: BTreeMap::new(),
            cache,
        }
    }

    pub(crate) fn height(&self) -> Height {
        self.ledger.height()
    }

    /// Applies the next finalized block. Signatures were checked when the block was verified
    /// before it was finalized, so replay skips them (the ledger still checks everything else).
    pub(crate) fn apply(
        &mut self,
        block: &ChainBlock,
    ) -> Result<(), Box<cairn_ledger::BlockError>> {
        let outcome = self
            .ledger
            .apply_verified_block(block.block())
            .map_err(Box::new)?;
        for receipt in outcome.receipts {
            self.index.insert(
                receipt.tx,
                TxRecord {
                    hash: receipt.tx,
                    height: outcome.height,
                    index: receipt.index,
                    receipt,
                },
            );
        }
        self.blocks.insert(outcome.height, block.shared());
        while self.blocks.len() > self.cache.max(1) {
            self.blocks.pop_first();
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Replayed {
        let digest = if self.ledger.height() == 0 {
            self.genesis_digest
        } else {
            to_digest(&self.ledger.state().last_block_hash)
        };
        Replayed {
            finalized: Finalized {
                ledger: Arc::new(self.ledger),
                digest,
            },
            index: self.index,
            blocks: self.blocks,
        }
    }
}
