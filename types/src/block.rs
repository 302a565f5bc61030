//! Blocks as the ledger consumes them. The chain adds consensus context around this shape.

use crate::codec::BoundedVec;
use crate::codec_struct;
use crate::hash::Hash;
use crate::ids::Height;
use crate::keys::Address;
use crate::tx::{DecodeError, SignedTransaction};
use commonware_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// Most transactions one block may carry.
pub const MAX_BLOCK_TXS: usize = 65_536;
/// Largest encoded block accepted anywhere.
pub const MAX_BLOCK_BYTES: usize = 32 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    pub height: Height,
    pub parent: Hash,
    /// Milliseconds since the Unix epoch, as the proposer saw it; non-decreasing.
    pub timestamp_ms: u64,
    pub proposer: Address,
    /// Unpredictable randomness from consensus; challenges derive from it.
    pub seed: Hash,
    /// Commits to the transactions' hashes in order.
    pub tx_root: Hash,
    /// The state root left by the parent block (Tendermint's "app hash" rule): known before
    /// this block executes, so a node checks it without speculative execution, and every
    /// block commits to the whole history of state before it.
    pub state_root: Hash,
}
codec_struct!(BlockHeader {
    height,
    parent,
    timestamp_ms,
    proposer,
    seed,
    tx_root,
    state_root
});

impl BlockHeader {
    pub fn hash(&self) -> Hash {
        Hash::domain("cairn.block.header.v1", &[&self.encode()])
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub txs: BoundedVec<SignedTransaction, MAX_BLOCK_TXS>,
}
codec_struct!(Block { header, txs });

/// The root of a list of transactions: hash of their hashes in order.
pub fn tx_root(txs: &[SignedTransaction]) -> Hash {
    let mut hasher = blake3::Hasher::new_derive_key("cairn.block.txs.v1");
    for tx in txs {
        hasher.update(&tx.hash().0);
    }
    Hash(*hasher.finalize().as_bytes())
}

impl Block {
    /// Builds a block, computing the tx root, with a zero state root: set the parent's root
    /// with [`Block::with_state_root`]. `None` when there are too many transactions.
    pub fn new(
        height: Height,
        parent: Hash,
        timestamp_ms: u64,
        proposer: Address,
        seed: Hash,
        txs: Vec<SignedTransaction>,
    ) -> Option<Self> {
        let tx_root = tx_root(&txs);
        Some(Self {
            header: BlockHeader {
                height,
                parent,
                timestamp_ms,
                proposer,
                seed,
                tx_root,
                state_root: Hash::ZERO,
            },
            txs: BoundedVec::new(txs)?,
        })
    }
    /// Sets the parent's state root the header commits to.
    pub fn with_state_root(mut self, state_root: Hash) -> Self {
        self.header.state_root = state_root;
        self
    }
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_BLOCK_BYTES {
            return Err(DecodeError::TooLarge {
                what: "block",
                size_bytes: bytes.len(),
                limit_bytes: MAX_BLOCK_BYTES,
            });
        }
        Self::decode_cfg(commonware_codec::Copying(bytes), &()).map_err(|source| {
            DecodeError::Malformed {
                what: "block",
                source,
            }
        })
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode().to_vec()
    }
}
