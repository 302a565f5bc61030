//! Binary BLAKE3 Merkle trees with domain-separated leaves and nodes.
//!
//! Leaves and inner nodes hash under different domains, so no inner node can be passed off
//! as a leaf (the classic second-preimage trick on plain Merkle trees). Levels are built
//! pairwise left to right; when a level has an odd number of nodes the last one is promoted
//! to the next level unchanged, so a path has no entry for that level. The shape of the tree
//! is therefore a function of the leaf count alone, and the verifier takes the leaf count
//! from the chain (the challenge shape), never from the prover. Shards use BLAKE3's own tree
//! instead ([`crate::shard`]).

use blake3::hazmat::{ContextKey, HasherExt, hash_derive_key_context};
use cairn_types::Hash;
use cairn_types::proof::MerklePath;
use std::sync::LazyLock;

const LEAF_DOMAIN: &str = "cairn.merkle.leaf.v1";
const NODE_DOMAIN: &str = "cairn.merkle.node.v1";
const EMPTY_DOMAIN: &str = "cairn.merkle.empty.v1";

// The derive-key contexts hashed once: `Hash::domain` re-derives the key from the context
// string on every call, which doubles the cost of the tiny inputs trees hash by the million.
// Same digests by construction (BLAKE3's derive_key mode), checked in the tests.
static LEAF_KEY: LazyLock<ContextKey> = LazyLock::new(|| hash_derive_key_context(LEAF_DOMAIN));
static NODE_KEY: LazyLock<ContextKey> = LazyLock::new(|| hash_derive_key_context(NODE_DOMAIN));

fn keyed(key: &ContextKey, parts: &[&[u8]]) -> Hash {
    let mut hasher = blake3::Hasher::new_from_context_key(key);
    for part in parts {
        hasher.update(part);
    }
    Hash(*hasher.finalize().as_bytes())
}

/// Hash of one leaf's bytes.
pub fn leaf_hash(data: &[u8]) -> Hash {
    keyed(&LEAF_KEY, &[data])
}

/// Hash of an inner node from its two children.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    keyed(&NODE_KEY, &[left.as_bytes(), right.as_bytes()])
}

/// Root of a tree with no leaves. Storage never produces one (an empty shard has one empty
/// leaf), but a total function is easier to reason about than a panic.
fn empty_root() -> Hash {
    Hash::domain(EMPTY_DOMAIN, &[])
}

/// A whole tree kept in memory, level by level: enough to answer any path query.
///
/// This is the reference implementation: it keeps every level (about two hashes per leaf).
/// Provers with very large products can keep a sparser structure, as long as it produces the
/// same roots and paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleTree {
    /// `levels[0]` holds the leaf hashes, the last level holds the root alone. Empty when
    /// the tree has no leaves.
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// Builds the tree over `leaves` (already hashed with [`leaf_hash`]).
    pub fn from_leaf_hashes(leaves: Vec<Hash>) -> Self {
        if leaves.is_empty() {
            return Self { levels: Vec::new() };
        }
        let mut levels = vec![leaves];
        while let Some(top) = levels.last().filter(|level| level.len() > 1) {
            let parent = top
                .chunks(2)
                .filter_map(|pair| match pair {
                    [left, right] => Some(node_hash(left, right)),
                    [single] => Some(*single),
                    _ => None,
                })
                .collect();
            levels.push(parent);
        }
        Self { levels }
    }

    /// Adopts levels built elsewhere (a parallel builder): `levels[0]` the leaf hashes, each
    /// next level ⌈previous / 2⌉ long, ending in a single root. `None` when the shape is not
    /// that of [`Self::from_leaf_hashes`]; the contents are the builder's responsibility (a
    /// wrong hash yields a root that no honest check will accept).
    pub fn from_levels(levels: Vec<Vec<Hash>>) -> Option<Self> {
        if levels.is_empty() {
            return Some(Self { levels });
        }
        let shaped = levels
            .windows(2)
            .all(|w| w[1].len() == w[0].len().div_ceil(2))
            && levels.last().is_some_and(|top| top.len() == 1)
            && levels.iter().all(|level| !level.is_empty());
        shaped.then_some(Self { levels })
    }

    pub fn root(&self) -> Hash {
        self.levels
            .last()
            .and_then(|top| top.first())
            .copied()
            .unwrap_or_else(empty_root)
    }

    pub fn leaf_count(&self) -> u64 {
        self.levels
            .first()
            .map_or(0, |leaves| u64::try_from(leaves.len()).unwrap_or(u64::MAX))
    }

    /// Sibling hashes from leaf `index` up to the root, bottom first; `None` when `index` is
    /// not a leaf or the path would be deeper than the wire allows.
    pub fn path(&self, index: u64) -> Option<MerklePath> {
        let mut position = usize::try_from(index).ok()?;
        if position >= self.levels.first()?.len() {
            return None;
        }
        let mut siblings = Vec::new();
        // The top level is the root itself and has no sibling.
        for level in self.levels.iter().take(self.levels.len().saturating_sub(1)) {
            if let Some(sibling) = level.get(position ^ 1) {
                siblings.push(*sibling);
            }
            position /= 2;
        }
        MerklePath::new(siblings)
    }
}

/// Whether `path` opens `leaf` at `index` in the tree of `leaf_count` leaves with `root`.
///
/// The path must have exactly the length the tree shape implies: a path with spare or
/// missing siblings is rejected even if some prefix of it would hash to the root.
pub fn verify_path(root: &Hash, leaf_count: u64, index: u64, leaf: &Hash, path: &[Hash]) -> bool {
    if index >= leaf_count {
        return false;
    }
    let mut siblings = path.iter();
    let mut position = index;
    let mut width = leaf_count;
    let mut acc = *leaf;
    while width > 1 {
        // `position ^ 1 < width` is false only for the unpaired last node, which is promoted.
        if (position ^ 1) < width {
            let Some(sibling) = siblings.next() else {
                return false;
            };
            acc = if position.is_multiple_of(2) {
                node_hash(&acc, sibling)
            } else {
                node_hash(sibling, &acc)
            };
        }
        position /= 2;
        width = width.div_ceil(2);
    }
    siblings.next().is_none() && acc == *root
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn leaves(count: u64) -> Vec<Hash> {
        (0..count).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn cached_context_keys_hash_like_the_domain_function() {
        for data in [&b""[..], b"x", &[7u8; 16], &[9u8; 100]] {
            assert_eq!(leaf_hash(data), Hash::domain(LEAF_DOMAIN, &[data]));
        }
        let (l, r) = (leaf_hash(b"l"), leaf_hash(b"r"));
        assert_eq!(
            node_hash(&l, &r),
            Hash::domain(NODE_DOMAIN, &[l.as_bytes(), r.as_bytes()])
        );
    }

    #[test]
    fn from_levels_accepts_only_the_reference_shape() {
        for count in [1u64, 2, 3, 5, 8, 13] {
            let tree = MerkleTree::from_leaf_hashes(leaves(count));
            let rebuilt = MerkleTree::from_levels(tree.levels.clone()).unwrap();
            assert_eq!(rebuilt, tree);
        }
        let mut bad = MerkleTree::from_leaf_hashes(leaves(5)).levels;
        bad[1].pop();
        assert!(MerkleTree::from_levels(bad).is_none());
        assert!(MerkleTree::from_levels(vec![leaves(2)]).is_none());
    }

    /// Recomputes the root by the textbook recursion, independently of `from_leaf_hashes`.
    fn naive_root(level: &[Hash]) -> Hash {
        if level.len() == 1 {
            return level[0];
        }
        let next: Vec<Hash> = level
            .chunks(2)
            .map(|pair| {
                if pair.len() == 2 {
                    node_hash(&pair[0], &pair[1])
                } else {
                    pair[0]
                }
            })
            .collect();
        naive_root(&next)
    }

    #[test]
    fn round_trip_every_index_of_every_small_tree() {
        for count in 1..=33u64 {
            let hashes = leaves(count);
            let tree = MerkleTree::from_leaf_hashes(hashes.clone());
            assert_eq!(tree.leaf_count(), count);
            assert_eq!(tree.root(), naive_root(&hashes), "count {count}");
            for index in 0..count {
                let path = tree.path(index).unwrap();
                let leaf = hashes[usize::try_from(index).unwrap()];
                assert!(
                    verify_path(&tree.root(), count, index, &leaf, &path.0),
                    "count {count} index {index}"
                );
                // Depth is at most ceil(log2(count)).
                assert!(path.len() <= 64 - usize::try_from((count - 1).leading_zeros()).unwrap());
            }
            assert!(tree.path(count).is_none());
        }
    }

    #[test]
    fn single_leaf_tree_is_the_leaf() {
        let hashes = leaves(1);
        let tree = MerkleTree::from_leaf_hashes(hashes.clone());
        assert_eq!(tree.root(), hashes[0]);
        assert!(tree.path(0).unwrap().is_empty());
    }

    #[test]
    fn empty_tree_has_the_empty_root_and_no_paths() {
        let tree = MerkleTree::from_leaf_hashes(Vec::new());
        assert_eq!(tree.root(), Hash::domain("cairn.merkle.empty.v1", &[]));
        assert_eq!(tree.leaf_count(), 0);
        assert!(tree.path(0).is_none());
        assert!(!verify_path(&tree.root(), 0, 0, &leaf_hash(b""), &[]));
    }

    #[test]
    fn leaf_and_node_domains_differ() {
        let a = leaf_hash(b"a");
        let b = leaf_hash(b"b");
        let mut concatenated = Vec::new();
        concatenated.extend_from_slice(a.as_bytes());
        concatenated.extend_from_slice(b.as_bytes());
        assert_ne!(node_hash(&a, &b), leaf_hash(&concatenated));
    }

    #[test]
    fn tampering_is_rejected() {
        for count in [2u64, 3, 5, 8, 13, 33] {
            let hashes = leaves(count);
            let tree = MerkleTree::from_leaf_hashes(hashes.clone());
            let root = tree.root();
            for index in 0..count {
                let leaf = hashes[usize::try_from(index).unwrap()];
                let path = tree.path(index).unwrap().0;

                // Tampered leaf.
                assert!(!verify_path(&root, count, index, &leaf_hash(b"x"), &path));

                // Each sibling tampered in turn.
                for position in 0..path.len() {
                    let mut bad = path.clone();
                    bad[position].0[0] ^= 1;
                    assert!(!verify_path(&root, count, index, &leaf, &bad));
                }

                // Any other index (a leaf is bound to its position).
                for other in (0..count).filter(|&other| other != index) {
                    assert!(!verify_path(&root, count, other, &leaf, &path));
                }
                assert!(!verify_path(&root, count, count, &leaf, &path));
                assert!(!verify_path(&root, count, u64::MAX, &leaf, &path));

                // Wrong length: an extra sibling, a missing one.
                let mut longer = path.clone();
                longer.push(root);
                assert!(!verify_path(&root, count, index, &leaf, &longer));
                if !path.is_empty() {
                    assert!(!verify_path(
                        &root,
                        count,
                        index,
                        &leaf,
                        &path[..path.len() - 1]
                    ));
                }
            }
        }
    }

    #[test]
    fn inner_node_cannot_pose_as_a_leaf() {
        let hashes = leaves(4);
        let tree = MerkleTree::from_leaf_hashes(hashes.clone());
        let inner = node_hash(&hashes[0], &hashes[1]);
        let right = node_hash(&hashes[2], &hashes[3]);
        // Presenting an inner node as leaf 0 needs a path one level short; the verifier takes
        // the shape from the leaf count it is given, so the short path is refused. (Under a
        // claimed count of 2 it would pass: that is why the count must come from the chain.)
        assert!(!verify_path(&tree.root(), 4, 0, &inner, &[right]));
    }

    #[test]
    fn golden_root_is_frozen() {
        // Changing this value is a protocol change: every stored shard root depends on it.
        let tree = MerkleTree::from_leaf_hashes(leaves(5));
        assert_eq!(tree.root().to_string(), GOLDEN_ROOT_5);
    }

    const GOLDEN_ROOT_5: &str = "a98d93930ada5708d95650680984ce471a554472fee303c9147b72f375c75512";
}
