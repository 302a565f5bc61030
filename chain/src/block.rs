//! The block as consensus sees it: a [`cairn_types::Block`] with Commonware's block traits.
//!
//! # Digest
//!
//! Consensus, marshal and the broadcast buffer identify a block by a
//! [`commonware_cryptography::sha256::Digest`]. We do **not** hash the block with SHA-256:
//! the 32 bytes inside are the block's own BLAKE3 header hash ([`cairn_types::Block::hash`]),
//! the same bytes the ledger, the API and the next header's `parent` use. `sha256::Digest` is
//! just the 32-byte container Commonware already knows how to encode, print and compare (and
//! which its simplex test doubles, such as the conflicter, are written against). One block has
//! one identity everywhere.
//!
//! The header hash commits to the transactions only through `tx_root`, so decoding checks that
//! `tx_root` matches the transactions ([`ChainBlock`]'s `Read`). Without that check a peer could
//! pair an honest header with other transactions and poison caches keyed by digest.
//!
//! # Genesis
//!
//! Marshal anchors its chain on a height-0 block, while the ledger's genesis state names its
//! "last block" with a domain hash of the chain id (`Ledger::from_genesis`), which is not the
//! hash of any header. [`ChainBlock::genesis`] is a synthetic height-0 block whose `parent`
//! carries that ledger hash, and a height-1 block reports the digest of that synthetic block as
//! its consensus parent (its header keeps the ledger hash, as the ledger requires). Every node
//! derives the same genesis block from the genesis file alone.

use bytes::BufMut;
use cairn_types::block::{MAX_BLOCK_TXS, tx_root};
use cairn_types::{Address, Block, BlockHeader, Hash};
use commonware_codec::{Buf, EncodeSize, Error as CodecError, Read, Write};
use commonware_consensus::types::Height as ConsensusHeight;
use commonware_consensus::{BoundedBlock, Heightable};
use commonware_cryptography::Digestible;
use commonware_cryptography::sha256::Digest;
use std::sync::Arc;

/// Largest encoded block the chain proposes, relays or accepts. Stricter than the ledger's own
/// 32 MiB bound so that every p2p message stays small enough to buffer per peer.
pub const MAX_BLOCK_BYTES: usize = 8 * 1024 * 1024;

/// Converts a Cairn hash into the digest type consensus uses (same bytes).
pub fn to_digest(hash: &Hash) -> Digest {
    Digest(hash.0)
}

/// Converts a consensus digest back into a Cairn hash (same bytes).
pub fn to_hash(digest: &Digest) -> Hash {
    Hash(digest.0)
}

/// A Cairn block with its header hash computed once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBlock {
    block: Arc<Block>,
    hash: Hash,
}

impl ChainBlock {
    /// Wraps a block, hashing its header.
    pub fn new(block: Block) -> Self {
        let hash = block.hash();
        Self {
            block: Arc::new(block),
            hash,
        }
    }

    /// The synthetic height-0 block marshal anchors on, derived from the ledger's genesis hash.
    pub fn genesis(ledger_genesis_hash: Hash) -> Self {
        Self::new(Block {
            header: genesis_header(ledger_genesis_hash),
            txs: Default::default(),
        })
    }

    pub fn block(&self) -> &Block {
        &self.block
    }

    /// The block, shared without copying its transactions.
    pub fn shared(&self) -> Arc<Block> {
        Arc::clone(&self.block)
    }

    pub fn header(&self) -> &BlockHeader {
        &self.block.header
    }

    /// The BLAKE3 header hash (the bytes of [`Digestible::digest`]).
    pub fn hash(&self) -> Hash {
        self.hash
    }

    pub fn height(&self) -> cairn_types::Height {
        self.block.header.height
    }

    pub fn proposer(&self) -> Address {
        self.block.header.proposer
    }
}

/// The header of the synthetic genesis block: every field is fixed except the ledger hash.
fn genesis_header(ledger_genesis_hash: Hash) -> BlockHeader {
    BlockHeader {
        height: 0,
        parent: ledger_genesis_hash,
        timestamp_ms: 0,
        proposer: Address::default(),
        seed: ledger_genesis_hash,
        tx_root: tx_root(&[]),
        state_root: Hash::ZERO,
    }
}

impl Write for ChainBlock {
    fn write(&self, buf: &mut impl BufMut) {
        self.block.write(buf);
    }
}

impl EncodeSize for ChainBlock {
    fn encode_size(&self) -> usize {
        self.block.encode_size()
    }
}

impl Read for ChainBlock {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let block = Block::read_cfg(buf, &())?;
        if block.encode_size() > MAX_BLOCK_BYTES {
            return Err(CodecError::Invalid(
                "ChainBlock",
                "block exceeds MAX_BLOCK_BYTES",
            ));
        }
        // The digest covers the header only: bind the transactions to it here so that a
        // decoded block's digest names its whole content.
        if tx_root(&block.txs.0) != block.header.tx_root {
            return Err(CodecError::Invalid(
                "ChainBlock",
                "tx_root does not match the transactions",
            ));
        }
        Ok(Self::new(block))
    }
}

impl Digestible for ChainBlock {
    type Digest = Digest;

    fn digest(&self) -> Digest {
        to_digest(&self.hash)
    }
}

impl Heightable for ChainBlock {
    fn height(&self) -> ConsensusHeight {
        ConsensusHeight::new(self.block.header.height)
    }
}

impl commonware_consensus::Block for ChainBlock {
    fn parent(&self) -> Digest {
        let header = &self.block.header;
        if header.height == 1 {
            // The first block's header names the ledger's genesis hash; consensus knows the
            // synthetic genesis block built from it.
            return ChainBlock::genesis(header.parent).digest();
        }
        to_digest(&header.parent)
    }
}

impl BoundedBlock for ChainBlock {
    fn max_encode_size(_: &()) -> usize {
        MAX_BLOCK_BYTES
    }
}

/// Most transactions a block may carry under the chain's own limit and the ledger's.
pub(crate) fn block_tx_limit(configured: usize) -> usize {
    configured.min(MAX_BLOCK_TXS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::{Decode, Encode};
    use commonware_consensus::Block as _;

    fn block(height: u64, parent: Hash) -> ChainBlock {
        let b = Block::new(
            height,
            parent,
            7,
            Address::default(),
            Hash::ZERO,
            Vec::new(),
        )
        .unwrap();
        ChainBlock::new(b)
    }

    #[test]
    fn digest_is_the_header_hash() {
        let b = block(5, Hash([3; 32]));
        assert_eq!(b.digest().0, b.block().hash().0);
        assert_eq!(b.parent(), Digest([3; 32]));
    }

    #[test]
    fn first_block_points_at_synthetic_genesis() {
        let g = Hash([9; 32]);
        let genesis = ChainBlock::genesis(g);
        let first = block(1, g);
        assert_eq!(first.parent(), genesis.digest());
        assert_ne!(genesis.digest().0, g.0);
    }

    #[test]
    fn decode_round_trips_and_checks_tx_root() {
        let b = block(3, Hash([1; 32]));
        let bytes = b.encode();
        let back = ChainBlock::decode_cfg(bytes.clone(), &()).unwrap();
        assert_eq!(back, b);

        let mut bad = b.block().clone();
        bad.header.tx_root = Hash([7; 32]);
        let bytes = bad.encode();
        assert!(ChainBlock::decode_cfg(bytes, &()).is_err());
    }
}
