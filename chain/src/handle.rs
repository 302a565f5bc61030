//! [`NodeHandle`]: what the node API (and the devnet, and tests) use to talk to a running node.
//!
//! Every method is synchronous and cheap (a lock, a map lookup, an `Arc` clone) except
//! [`NodeHandle::fetch_block`], so tokio handlers can call them directly. Nothing here depends
//! on the runtime the node runs on: locks are `parking_lot` (through `commonware_utils::sync`)
//! and events travel on `futures` channels.

use crate::block::{ChainBlock, to_hash};
use crate::error::{FinalizeError, SubmitError};
use crate::mempool::Refusal;
use crate::state::Shared;
use cairn_ledger::{AdmissionError, Ledger, Receipt};
use cairn_types::{Address, Block, Epoch, Hash, Height, SignedTransaction};
use commonware_consensus::marshal::core::Mailbox;
use commonware_consensus::marshal::standard::Standard;
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_consensus::types::Height as ConsensusHeight;
use futures::channel::mpsc;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A finalized transaction: where it landed and what it did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TxRecord {
    pub hash: Hash,
    pub height: Height,
    pub index: u32,
    pub receipt: Receipt,
}

/// One finalized block, as subscribers see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FinalizedEvent {
    pub height: Height,
    pub block_hash: Hash,
    /// State root after this block.
    pub state_root: Hash,
    pub timestamp_ms: u64,
    pub proposer: Address,
    pub tx_count: usize,
    pub receipts: Vec<Receipt>,
    /// The epoch this block finished, if it was an epoch's last block.
    pub finished_epoch: Option<Epoch>,
}

/// A snapshot of the node for `GET /v1/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    pub chain_id: String,
    /// Height of the finalized ledger this node has applied.
    pub height: Height,
    /// Highest finalized height this node has heard of (ahead of `height` while catching up).
    pub finalized_tip: Height,
    pub last_block_hash: Hash,
    /// State root after `height` (what the next header commits to).
    pub state_root: Hash,
    pub last_timestamp_ms: u64,
    pub validators: Vec<Address>,
    /// This node's validator address.
    pub validator: Address,
    pub mempool_size: usize,
    pub block_time_ms: u64,
    /// The smallest fee admission accepts (genesis parameter), so clients need not guess.
    pub min_tx_fee: cairn_types::Amount,
    /// Why the node stopped following the chain, if it did (a finalized block failed to apply).
    pub halted: Option<String>,
}

/// A cloneable handle to a running node. `Clone + Send + Sync`.
#[derive(Clone)]
pub struct NodeHandle {
    shared: Arc<Shared>,
    marshal: Mailbox<Scheme, Standard<ChainBlock>>,
}

impl NodeHandle {
    pub(crate) fn new(shared: Arc<Shared>, marshal: Mailbox<Scheme, Standard<ChainBlock>>) -> Self {
        Self { shared, marshal }
    }

    pub fn chain_id(&self) -> String {
        self.shared.chain_id.clone()
    }

    /// This node's validator address.
    pub fn validator(&self) -> Address {
        self.shared.me
    }

    /// Admits `tx` against the finalized state plus the sender's pending transactions and adds
    /// it to the mempool; other validators hear of it through gossip. Returns its hash.
    pub fn submit(&self, tx: SignedTransaction) -> Result<Hash, SubmitError> {
        let mut results = self.admit_all(vec![tx], true);
        results.pop().unwrap_or(Err(SubmitError::Empty))
    }

    /// [`Self::submit`] for many transactions at once: one batched signature verification,
    /// one mempool lock. Results are in input order; a sender's transactions may follow each
    /// other in one batch (consecutive nonces).
    pub fn submit_batch(&self, txs: Vec<SignedTransaction>) -> Vec<Result<Hash, SubmitError>> {
        self.admit_all(txs, true)
    }

    /// Transactions another validator gossiped: admitted like a submission, not gossiped
    /// again (validators are fully connected, one hop reaches everyone).
    pub(crate) fn admit_gossiped(&self, txs: Vec<SignedTransaction>) -> usize {
        self.admit_all(txs, false)
            .iter()
            .filter(|r| r.is_ok())
            .count()
    }

    fn admit_all(
        &self,
        txs: Vec<SignedTransaction>,
        gossip: bool,
    ) -> Vec<Result<Hash, SubmitError>> {
        // Signatures first, outside every lock, so concurrent submitters verify in parallel.
        let signed_ok: Vec<bool> = match Ledger::verify_signatures(&txs) {
            Ok(()) => vec![true; txs.len()],
            Err(_) => txs
                .iter()
                .map(SignedTransaction::verify_signature)
                .collect(),
        };
        let hashes: Vec<Hash> = txs.iter().map(SignedTransaction::hash).collect();
        let finalized: Vec<bool> = {
            let index = self.shared.index.read();
            hashes.iter().map(|h| index.contains_key(h)).collect()
        };
        let mut results = Vec::with_capacity(txs.len());
        let mut admitted = Vec::new();
        {
            // Lock order: mempool, then the finalized ledger (see `state`).
            let mut mempool = self.shared.mempool.lock();
            let ledger = Arc::clone(&self.shared.finalized.read().ledger);
            for (((tx, hash), signed), known) in
                txs.into_iter().zip(hashes).zip(signed_ok).zip(finalized)
            {
                let sender = tx.sender();
                let outcome = (|| {
                    if known {
                        return Err(SubmitError::Duplicate { hash });
                    }
                    mempool.check_room(&sender, &hash).map_err(|r| match r {
                        Refusal::Duplicate => SubmitError::Duplicate { hash },
                        Refusal::Full { capacity } => SubmitError::MempoolFull {
                            pending: mempool.len(),
                            capacity,
                        },
                        Refusal::SenderFull { capacity } => {
                            SubmitError::SenderQueueFull { sender, capacity }
                        }
                    })?;
                    let (count, fees) = mempool.pending(&sender);
                    let expected = ledger.state().nonce(&sender).saturating_add(count);
                    ledger.admit_signature_checked(&tx, expected, fees)?;
                    if !signed {
                        return Err(AdmissionError::BadSignature { sender }.into());
                    }
                    Ok(())
                })();
                match outcome {
                    Ok(()) => {
                        if gossip {
                            admitted.push(tx.clone());
                        }
                        mempool.insert(tx, hash);
                        results.push(Ok(hash));
                    }
                    Err(e) => results.push(Err(e)),
                }
            }
        }
        if !admitted.is_empty() {
            self.shared.gossip(admitted);
        }
        results
    }

    /// Whether `tx` is waiting in the mempool.
    pub fn is_pending(&self, tx: &Hash) -> bool {
        self.shared.mempool.lock().contains(tx)
    }

    pub fn status(&self) -> NodeStatus {
        let mempool_size = self.shared.mempool.lock().len();
        let ledger = Arc::clone(&self.shared.finalized.read().ledger);
        let state = ledger.state();
        NodeStatus {
            chain_id: self.shared.chain_id.clone(),
            height: ledger.height(),
            finalized_tip: self
                .shared
                .finalized_tip
                .load(Ordering::Relaxed)
                .max(ledger.height()),
            last_block_hash: state.last_block_hash,
            state_root: ledger.root(),
            last_timestamp_ms: state.last_timestamp_ms,
            validators: self.shared.validators.clone(),
            validator: self.shared.me,
            mempool_size,
            block_time_ms: self.shared.block_time_ms,
            min_tx_fee: ledger.params().min_tx_fee,
            halted: self
                .shared
                .halted
                .lock()
                .as_ref()
                .map(FinalizeError::to_string),
        }
    }

    /// Runs `f` on the finalized ledger. The ledger is a snapshot: `f` may take its time
    /// without holding anything up.
    pub fn with_ledger<R>(&self, f: impl FnOnce(&Ledger) -> R) -> R {
        let ledger = Arc::clone(&self.shared.finalized.read().ledger);
        f(&ledger)
    }

    /// Height of the finalized ledger.
    pub fn height(&self) -> Height {
        self.shared.finalized.read().ledger.height()
    }

    /// Where a finalized transaction landed, with its receipt.
    pub fn receipt(&self, tx: &Hash) -> Option<TxRecord> {
        self.shared.index.read().get(tx).cloned()
    }

    /// A finalized block from the in-memory cache (the most recent
    /// [`crate::ChainConfig::block_cache`] blocks). See [`Self::fetch_block`] for older ones.
    pub fn block(&self, height: Height) -> Option<Block> {
        self.shared
            .blocks
            .read()
            .get(&height)
            .map(|b| Block::clone(b))
    }

    /// A finalized block from the cache or, failing that, from the on-disk archive.
    pub async fn fetch_block(&self, height: Height) -> Option<Block> {
        if let Some(block) = self.block(height) {
            return Some(block);
        }
        if height == 0 || height > self.height() {
            return None;
        }
        let block = self.marshal.get_block(ConsensusHeight::new(height)).await?;
        Some(block.inner().block().clone())
    }

    /// Hash of the finalized block at `height`, if cached.
    pub fn block_hash(&self, height: Height) -> Option<Hash> {
        self.shared.blocks.read().get(&height).map(|b| b.hash())
    }

    /// Events of finalized blocks from now on. The channel is bounded; a subscriber that falls
    /// behind is dropped (its stream ends) rather than slowing the node down.
    pub fn subscribe(&self) -> mpsc::Receiver<FinalizedEvent> {
        let (sender, receiver) = mpsc::channel(self.shared.config.subscriber_buffer.max(1));
        self.shared.subscribers.lock().push(sender);
        receiver
    }

    /// Consensus digest of the finalized tip, as bytes of a Cairn hash.
    pub fn finalized_digest(&self) -> Hash {
        to_hash(&self.shared.finalized.read().digest)
    }
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("chain_id", &self.shared.chain_id)
            .field("validator", &self.shared.me)
            .finish()
    }
}
