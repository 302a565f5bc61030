//! The shard commitment: BLAKE3's own chunk tree, so committing runs at full hashing speed.
//!
//! A shard's root is the BLAKE3 hash, in derive-key mode with context [`SHARD_CONTEXT`], of
//! its bytes: exactly what `blake3::Hasher` computes with all its SIMD lanes busy. Storage
//! proofs open leaves of that same tree. A leaf is a power of two of at least one BLAKE3
//! chunk (1 KiB), aligned at a multiple of its size, so every leaf, and every aligned block
//! of a power of two of leaves, is a subtree of BLAKE3's tree whose chaining value
//! (`blake3::hazmat`) anyone can compute from the bytes and their offset.
//!
//! Shape: BLAKE3's tree is left-balanced. Seen at the level of `n` leaves, the root splits
//! into a left subtree of the largest power of two of leaves below `n` and a right subtree
//! of the rest, recursively. That shape is a function of the leaf count alone, which the
//! verifier takes from the chain, never from the prover. A path lists the sibling chaining
//! values from the leaf up, and the topmost merge is BLAKE3's root merge, so the final value
//! is comparable with the shard root. A shard of a single leaf has no path: its leaf is the
//! whole input and its hash is the root itself.
//!
//! Why this and not a Merkle tree of leaf hashes (the first version): hashing 1 KiB leaves
//! one at a time keeps BLAKE3 to one chunk per call, so none of its multi-chunk SIMD runs;
//! the encoder, every reader and every provider hashed at about a sixth of the speed.

use blake3::hazmat::{
    ContextKey, HasherExt, Mode, hash_derive_key_context, merge_subtrees_non_root,
    merge_subtrees_root,
};
use cairn_types::Hash;
use cairn_types::proof::{MAX_PATH_DEPTH, MerklePath};
use std::ops::Range;
use std::sync::LazyLock;

/// BLAKE3 derive-key context of shard roots and chaining values.
pub const SHARD_CONTEXT: &str = "cairn.shard.v2";
/// Smallest leaf: one BLAKE3 chunk. Leaves are powers of two of at least this.
pub const MIN_LEAF_BYTES: u32 = 1024;
/// Bytes per block whose chaining value [`ShardTree`] keeps (at least one leaf): large
/// enough that every block is hashed with all of BLAKE3's SIMD lanes, small enough that a
/// path costs one block read.
pub const TREE_BLOCK_BYTES: u64 = 64 * 1024;

static SHARD_KEY: LazyLock<ContextKey> = LazyLock::new(|| hash_derive_key_context(SHARD_CONTEXT));

fn mode() -> Mode<'static> {
    Mode::DeriveKeyMaterial(&SHARD_KEY)
}

/// Whether `leaf_size_bytes` can be a shard leaf: a power of two of at least one chunk.
pub fn valid_leaf_size(leaf_size_bytes: u32) -> bool {
    leaf_size_bytes >= MIN_LEAF_BYTES && leaf_size_bytes.is_power_of_two()
}

/// A hasher whose `finalize` is the root of the bytes fed to it (stream a shard through it).
pub fn root_hasher() -> blake3::Hasher {
    blake3::Hasher::new_from_context_key(&SHARD_KEY)
}

/// Root of a whole shard.
pub fn shard_root(shard: &[u8]) -> Hash {
    Hash(*root_hasher().update(shard).finalize().as_bytes())
}

/// Chaining value of the subtree holding `bytes` at `offset_bytes` of its shard.
///
/// The caller guarantees that this is a proper subtree: `offset_bytes` a multiple of 1 KiB,
/// `bytes` non-empty, a power of two of chunks long unless it ends the shard, aligned at a
/// multiple of its rounded-up size, and not the whole shard. Anything else yields a value no
/// honest tree contains (or, for an empty input, a BLAKE3 assertion), so callers check
/// lengths first.
pub fn subtree_cv(offset_bytes: u64, bytes: &[u8]) -> Hash {
    let mut hasher = root_hasher();
    hasher.set_input_offset(offset_bytes);
    hasher.update(bytes);
    Hash(hasher.finalize_non_root())
}

fn merge(left: &Hash, right: &Hash, root: bool) -> Hash {
    if root {
        Hash(*merge_subtrees_root(&left.0, &right.0, mode()).as_bytes())
    } else {
        Hash(merge_subtrees_non_root(&left.0, &right.0, mode()))
    }
}

/// Largest power of two strictly below `n` (`n >= 2`).
fn left_len(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Chaining value (or, with `root`, the root) of consecutive units whose own chaining values
/// are `cvs`: units of one power-of-two size, the last possibly short, starting at a unit
/// boundary aligned like a subtree. With `root` there must be at least two units.
pub fn merge_units(cvs: &[Hash], root: bool) -> Option<Hash> {
    match cvs {
        [] => None,
        [single] if !root => Some(*single),
        [_] => None,
        _ => {
            let n = u64::try_from(cvs.len()).ok()?;
            let split = usize::try_from(left_len(n)).ok()?;
            let (left, right) = cvs.split_at(split);
            Some(merge(
                &merge_units(left, false)?,
                &merge_units(right, false)?,
                root,
            ))
        }
    }
}

/// The nodes from the root down to leaf `index` of a tree of `leaf_count` leaves: each as
/// (first leaf, split, end), the leaf going left when `index < split`. Empty for one leaf.
fn descent(leaf_count: u64, index: u64) -> Option<Vec<(u64, u64, u64)>> {
    if index >= leaf_count {
        return None;
    }
    let mut nodes = Vec::with_capacity(64);
    let (mut lo, mut hi) = (0u64, leaf_count);
    while hi - lo > 1 {
        let split = lo + left_len(hi - lo);
        nodes.push((lo, split, hi));
        if index < split {
            hi = split;
        } else {
            lo = split;
        }
    }
    Some(nodes)
}

/// Whether sibling chaining values `path` (bottom first) take the chaining value `leaf_cv`
/// of leaf `index` up to `root` in a tree of `leaf_count >= 2` leaves. The path must have
/// exactly the depth the shape implies.
pub fn verify_path(
    root: &Hash,
    leaf_count: u64,
    index: u64,
    leaf_cv: &Hash,
    path: &[Hash],
) -> bool {
    let Some(nodes) = descent(leaf_count, index) else {
        return false;
    };
    if nodes.is_empty() || nodes.len() != path.len() {
        return false;
    }
    let mut acc = *leaf_cv;
    for ((depth, &(_, split, _)), sibling) in nodes.iter().enumerate().rev().zip(path) {
        // The topmost merge (depth 0) is BLAKE3's root merge.
        acc = if index < split {
            merge(&acc, sibling, depth == 0)
        } else {
            merge(sibling, &acc, depth == 0)
        };
    }
    acc == *root
}

/// Enough of a shard's tree to open any leaf: the chaining value of every
/// [`TREE_BLOCK_BYTES`] block (32 bytes per 64 KiB) and the root. A path needs the bytes of
/// the one block holding the leaf as well (see [`ShardTree::block_of`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardTree {
    leaf_size_bytes: u64,
    size_bytes: u64,
    block_leaves: u64,
    /// Chaining values of the blocks; empty when the shard is a single block.
    blocks: Vec<Hash>,
    root: Hash,
}

impl ShardTree {
    /// The tree of a shard held in memory. `None` for an invalid leaf size.
    pub fn build(shard: &[u8], leaf_size_bytes: u32) -> Option<Self> {
        let mut builder = ShardTreeBuilder::new(leaf_size_bytes)?;
        builder.update(shard);
        Some(builder.finish())
    }

    pub fn root(&self) -> Hash {
        self.root
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Leaves in the shard (an empty shard is one empty leaf).
    pub fn leaf_count(&self) -> u64 {
        self.size_bytes.div_ceil(self.leaf_size_bytes).max(1)
    }

    fn block_bytes(&self) -> u64 {
        self.block_leaves * self.leaf_size_bytes
    }

    /// Byte range of the block holding leaf `leaf` (what [`ShardTree::path`] must be given).
    pub fn block_of(&self, leaf: u64) -> Range<u64> {
        let block = self.block_bytes();
        let start = (leaf / self.block_leaves).saturating_mul(block);
        start.min(self.size_bytes)..start.saturating_add(block).min(self.size_bytes)
    }

    /// Sibling chaining values from leaf `leaf` up to the root, bottom first; `block` is the
    /// bytes of [`ShardTree::block_of`]. `None` when the leaf is outside the shard, the block
    /// has the wrong length, or the path would be deeper than the wire allows.
    pub fn path(&self, leaf: u64, block: &[u8]) -> Option<MerklePath> {
        let range = self.block_of(leaf);
        if u64::try_from(block.len()).ok()? != range.end - range.start {
            return None;
        }
        let nodes = descent(self.leaf_count(), leaf)?;
        if nodes.len() > MAX_PATH_DEPTH {
            return None;
        }
        let mut siblings = Vec::with_capacity(nodes.len());
        for &(lo, split, hi) in nodes.iter().rev() {
            let sibling = if leaf < split { split..hi } else { lo..split };
            siblings.push(self.node_cv(sibling, range.start, block)?);
        }
        MerklePath::new(siblings)
    }

    /// Chaining value of the tree node over `leaves` (never the whole tree).
    fn node_cv(&self, leaves: Range<u64>, block_start: u64, block: &[u8]) -> Option<Hash> {
        let start = leaves.start.checked_mul(self.leaf_size_bytes)?;
        let end = leaves
            .end
            .checked_mul(self.leaf_size_bytes)?
            .min(self.size_bytes);
        let block_end = block_start.checked_add(u64::try_from(block.len()).ok()?)?;
        if leaves.end - leaves.start < self.block_leaves && start >= block_start && end <= block_end
        {
            // Narrower than a block and inside the opened leaf's block: hash its bytes.
            let from = usize::try_from(start - block_start).ok()?;
            let to = usize::try_from(end - block_start).ok()?;
            return Some(subtree_cv(start, block.get(from..to)?));
        }
        // Every node starts at a multiple of its size rounded up to a power of two, so a node
        // at least a block wide starts on a block boundary; a narrower one outside the opened
        // leaf's block is the short last block (the right sibling of a full left subtree).
        if !leaves.start.is_multiple_of(self.block_leaves) {
            return None;
        }
        let first = usize::try_from(leaves.start / self.block_leaves).ok()?;
        let last = usize::try_from(leaves.end.div_ceil(self.block_leaves)).ok()?;
        merge_units(self.blocks.get(first..last)?, false)
    }
}

/// Builds a [`ShardTree`] from bytes streamed in any split (a provider reading a shard from
/// disk): memory is one block plus 32 bytes per block.
#[derive(Clone, Debug)]
pub struct ShardTreeBuilder {
    leaf_size_bytes: u64,
    block_leaves: u64,
    block_bytes: usize,
    pending: Vec<u8>,
    blocks: Vec<Hash>,
    size_bytes: u64,
}

impl ShardTreeBuilder {
    /// `None` for an invalid leaf size (see [`valid_leaf_size`]).
    pub fn new(leaf_size_bytes: u32) -> Option<Self> {
        if !valid_leaf_size(leaf_size_bytes) {
            return None;
        }
        let leaf = u64::from(leaf_size_bytes);
        let block_leaves = (TREE_BLOCK_BYTES / leaf).max(1);
        let block_bytes = usize::try_from(block_leaves * leaf).ok()?;
        Some(Self {
            leaf_size_bytes: leaf,
            block_leaves,
            block_bytes,
            pending: Vec::with_capacity(block_bytes),
            blocks: Vec::new(),
            size_bytes: 0,
        })
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.size_bytes = self
            .size_bytes
            .saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        while !data.is_empty() {
            if self.pending.len() == self.block_bytes {
                self.flush();
            }
            let take = (self.block_bytes - self.pending.len()).min(data.len());
            let (head, rest) = data.split_at(take);
            self.pending.extend_from_slice(head);
            data = rest;
        }
    }

    /// Hashes the full pending block. Called only once more bytes follow it, so a shard of
    /// exactly one block keeps it for the root.
    fn flush(&mut self) {
        let index = u64::try_from(self.blocks.len()).unwrap_or(u64::MAX);
        let offset = index.saturating_mul(self.block_leaves * self.leaf_size_bytes);
        self.blocks.push(subtree_cv(offset, &self.pending));
        self.pending.clear();
    }

    pub fn finish(mut self) -> ShardTree {
        let root = if self.blocks.is_empty() {
            shard_root(&self.pending)
        } else {
            if !self.pending.is_empty() {
                self.flush();
            }
            // Two blocks at least: `flush` ran before bytes past the first block were taken.
            merge_units(&self.blocks, true).unwrap_or(Hash::ZERO)
        };
        ShardTree {
            leaf_size_bytes: self.leaf_size_bytes,
            size_bytes: self.size_bytes,
            block_leaves: self.block_leaves,
            blocks: self.blocks,
            root,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn bytes(len: usize, tag: u8) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut counter = 0u64;
        while out.len() < len {
            out.extend_from_slice(
                Hash::domain("test.shard", &[&[tag], &counter.to_be_bytes()]).as_bytes(),
            );
            counter += 1;
        }
        out.truncate(len);
        out
    }

    /// Chaining value of leaf `index` (of a shard of two leaves or more).
    fn leaf_cv(shard: &[u8], leaf: u64, index: u64) -> Hash {
        let start = usize::try_from(index * leaf).unwrap();
        let end = (start + usize::try_from(leaf).unwrap()).min(shard.len());
        subtree_cv(index * leaf, &shard[start..end])
    }

    #[test]
    fn root_is_blake3_derive_key_of_the_bytes() {
        for len in [0usize, 1, 1023, 1024, 1025, 4096, 70_000, 200_000] {
            let data = bytes(len, 1);
            assert_eq!(
                shard_root(&data).0,
                blake3::derive_key(SHARD_CONTEXT, &data)
            );
            for leaf in [1024u32, 4096, 65536] {
                let tree = ShardTree::build(&data, leaf).unwrap();
                assert_eq!(tree.root(), shard_root(&data), "len {len} leaf {leaf}");
            }
        }
    }

    #[test]
    fn every_leaf_opens_for_many_shapes() {
        for len in [
            1025usize,
            2048,
            3000,
            5 * 1024,
            7 * 1024 + 5,
            64 * 1024,
            64 * 1024 + 1,
            200_000,
            300_000,
        ] {
            let data = bytes(len, 2);
            for leaf in [1024u32, 2048, 16384] {
                let tree = ShardTree::build(&data, leaf).unwrap();
                let count = tree.leaf_count();
                if count < 2 {
                    continue;
                }
                for index in 0..count {
                    let range = tree.block_of(index);
                    let block = &data[usize::try_from(range.start).unwrap()
                        ..usize::try_from(range.end).unwrap()];
                    let path = tree.path(index, block).unwrap();
                    let cv = leaf_cv(&data, u64::from(leaf), index);
                    assert!(
                        verify_path(&tree.root(), count, index, &cv, &path.0),
                        "len {len} leaf {leaf} index {index}"
                    );
                    // Any other index, a tampered sibling or a cut path fails.
                    assert!(!verify_path(
                        &tree.root(),
                        count,
                        (index + 1) % count,
                        &cv,
                        &path.0
                    ));
                    let mut bad = path.0.clone();
                    bad[0].0[0] ^= 1;
                    assert!(!verify_path(&tree.root(), count, index, &cv, &bad));
                    assert!(!verify_path(&tree.root(), count, index, &cv, &path.0[1..]));
                    let mut longer = path.0.clone();
                    longer.push(Hash::ZERO);
                    assert!(!verify_path(&tree.root(), count, index, &cv, &longer));
                }
            }
        }
    }

    #[test]
    fn streaming_in_any_split_gives_the_same_tree() {
        let data = bytes(300_001, 3);
        let whole = ShardTree::build(&data, 1024).unwrap();
        for step in [1usize, 999, 65536, 65537, 300_001] {
            let mut builder = ShardTreeBuilder::new(1024).unwrap();
            for part in data.chunks(step) {
                builder.update(part);
            }
            assert_eq!(builder.finish(), whole, "step {step}");
        }
    }

    #[test]
    fn units_merge_to_the_root() {
        // Pieces of 4 KiB and a short trailer, merged from their chaining values.
        let data = bytes(3 * 4096 + 100, 4);
        let cvs: Vec<Hash> = data
            .chunks(4096)
            .zip(0u64..)
            .map(|(unit, i)| subtree_cv(i * 4096, unit))
            .collect();
        assert_eq!(merge_units(&cvs, true), Some(shard_root(&data)));
        assert_eq!(merge_units(&cvs[..1], true), None);
        assert_eq!(merge_units(&[], false), None);
    }

    #[test]
    fn leaf_sizes_must_be_chunk_powers_of_two() {
        for bad in [0u32, 1, 64, 512, 1000, 1536, 3072] {
            assert!(!valid_leaf_size(bad));
            assert!(ShardTreeBuilder::new(bad).is_none());
        }
        for good in [1024u32, 2048, 65536] {
            assert!(valid_leaf_size(good));
        }
    }

    #[test]
    fn wrong_block_is_refused() {
        let data = bytes(200_000, 5);
        let tree = ShardTree::build(&data, 1024).unwrap();
        assert!(tree.path(3, &data[..100]).is_none());
        assert!(tree.path(tree.leaf_count(), &[]).is_none());
    }
}
