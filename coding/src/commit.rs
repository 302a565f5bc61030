//! Shard commitments, computed as the bytes stream past.
//!
//! The root is exactly [`cairn_proofs::storage::shard_root`] (the tree storage proofs open),
//! built incrementally: a stack of perfect subtrees, one per set bit of the leaf count,
//! folded right to left at the end. That is the same tree as the reference builder's
//! pairwise levels with the odd node promoted, so memory is `O(log leaves)` however large the
//! shard is.

use crate::error::CodingError;
use cairn_proofs::merkle::{MerkleTree, leaf_hash, node_hash};
use cairn_types::Hash;

/// Incremental shard root over bytes fed in any split.
#[derive(Clone, Debug)]
pub struct ShardHasher {
    leaf_size: usize,
    partial: Vec<u8>,
    /// Perfect subtrees, largest first: (height, root).
    stack: Vec<(u32, Hash)>,
    leaves: u64,
    bytes: u64,
}

impl ShardHasher {
    /// A hasher for leaves of `leaf_size_bytes` (0 is read as 1, as the proofs crate does).
    pub fn new(leaf_size_bytes: u32) -> Self {
        let leaf_size = usize::try_from(leaf_size_bytes.max(1)).unwrap_or(usize::MAX);
        Self {
            leaf_size,
            partial: Vec::with_capacity(leaf_size),
            stack: Vec::with_capacity(64),
            leaves: 0,
            bytes: 0,
        }
    }

    /// Bytes fed so far.
    pub fn len_bytes(&self) -> u64 {
        self.bytes
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.bytes = self
            .bytes
            .saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        if !self.partial.is_empty() {
            let take = (self.leaf_size - self.partial.len()).min(data.len());
            let (head, rest) = data.split_at(take);
            self.partial.extend_from_slice(head);
            data = rest;
            if self.partial.len() == self.leaf_size {
                let leaf = leaf_hash(&self.partial);
                self.partial.clear();
                self.push(leaf);
            }
        }
        let mut chunks = data.chunks_exact(self.leaf_size);
        for chunk in &mut chunks {
            self.push(leaf_hash(chunk));
        }
        self.partial.extend_from_slice(chunks.remainder());
    }

    fn push(&mut self, leaf: Hash) {
        self.leaves += 1;
        let mut node = (0u32, leaf);
        while let Some(&(height, left)) = self.stack.last() {
            if height != node.0 {
                break;
            }
            self.stack.pop();
            node = (height + 1, node_hash(&left, &node.1));
        }
        self.stack.push(node);
    }

    /// The root of everything fed (an empty shard is one empty leaf).
    pub fn finalize(mut self) -> Hash {
        if !self.partial.is_empty() || self.leaves == 0 {
            let leaf = leaf_hash(&self.partial);
            self.push(leaf);
        }
        let mut nodes = self.stack.iter().rev().map(|&(_, hash)| hash);
        let Some(mut acc) = nodes.next() else {
            return leaf_hash(&[]);
        };
        for left in nodes {
            acc = node_hash(&left, &acc);
        }
        acc
    }
}

/// Root of one piece (a perfect subtree of its shard's tree).
pub fn piece_root(piece: &[u8], leaf_size_bytes: u32) -> Hash {
    let mut hasher = ShardHasher::new(leaf_size_bytes);
    hasher.update(piece);
    hasher.finalize()
}

/// The root of a shard whose pieces have `piece_roots` and which ends in `trailer`: the
/// shard tree seen from the level of the pieces. Pieces and trailer blocks are each
/// `piece_size` bytes (the last trailer block may be short) and start at multiples of it.
pub(crate) fn root_from_pieces(
    piece_roots: impl Iterator<Item = Hash>,
    trailer: &[u8],
    piece_size: usize,
    leaf_size_bytes: u32,
) -> Hash {
    let mut level: Vec<Hash> = piece_roots.collect();
    level.extend(
        trailer
            .chunks(piece_size.max(1))
            .map(|block| piece_root(block, leaf_size_bytes)),
    );
    MerkleTree::from_leaf_hashes(level).root()
}

/// Checks a shard as it streams in (a provider receiving a PUT body): feed the bytes, then
/// [`ShardVerifier::finish`] compares length and root with what the chain recorded.
#[derive(Clone, Debug)]
pub struct ShardVerifier {
    hasher: ShardHasher,
    expected_root: Hash,
    expected_size_bytes: u64,
}

impl ShardVerifier {
    pub fn new(expected_root: Hash, shard_size_bytes: u64, leaf_size_bytes: u32) -> Self {
        Self {
            hasher: ShardHasher::new(leaf_size_bytes),
            expected_root,
            expected_size_bytes: shard_size_bytes,
        }
    }

    /// Feeds the next bytes; refuses (before hashing them) bytes past the declared size, so a
    /// provider can stop reading an oversized body at once.
    pub fn update(&mut self, data: &[u8]) -> Result<(), CodingError> {
        let after = self
            .hasher
            .len_bytes()
            .saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        if after > self.expected_size_bytes {
            return Err(CodingError::ShardTooLong {
                expected: self.expected_size_bytes,
            });
        }
        self.hasher.update(data);
        Ok(())
    }

    /// Bytes accepted so far.
    pub fn len_bytes(&self) -> u64 {
        self.hasher.len_bytes()
    }

    /// The root, if the shard is complete and matches.
    pub fn finish(self) -> Result<Hash, CodingError> {
        let got = self.hasher.len_bytes();
        if got != self.expected_size_bytes {
            return Err(CodingError::ShardTruncated {
                expected: self.expected_size_bytes,
                got,
            });
        }
        let root = self.hasher.finalize();
        if root != self.expected_root {
            return Err(CodingError::ShardRootMismatch {
                expected: self.expected_root,
                got: root,
            });
        }
        Ok(root)
    }
}
