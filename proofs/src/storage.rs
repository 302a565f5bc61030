//! Storage challenges: chained leaf openings of one stored shard.
//!
//! A shard is cut into consecutive leaves of the blob's `leaf_size_bytes` (the last leaf may
//! be short; an empty shard is one empty leaf) and committed to by its BLAKE3 tree root
//! recorded in the blob metadata ([`crate::shard`]: a leaf opens with the chaining values of
//! its siblings). Every proving window the ledger draws an unpredictable seed, and
//! each provider answers, per stored shard, with a chain of leaves:
//!
//! ```text
//! index_0     = H_first(seed, deal, shard_index)        mod leaf_count
//! index_{j+1} = H_next(seed, j + 1, leaf_hash(leaf_j))  mod leaf_count
//! ```
//!
//! `H_first` is `Hash::domain("cairn.storage.chain.first.v1", [seed, deal (u64 BE),
//! shard_index (u16 BE)])` and `H_next` is `Hash::domain("cairn.storage.chain.next.v1",
//! [seed, step (u32 BE), leaf_hash])`; each is reduced through [`Hash::prefix_u64`]. The
//! modulo bias is below `leaf_count / 2^64`, far beneath anything a prover could exploit.
//!
//! Why a chain rather than independent draws (design §10, "Regeneration"): a provider that
//! deleted its shard can rebuild any one leaf from k peers' stripes, and with independent
//! indices it could fetch all of them in one parallel round. With a chain it learns leaf
//! `j + 1`'s index only after it holds leaf `j`'s bytes, so it pays one sequential peer round
//! trip per step, which the ledger's deadline (sized to local-disk latency) exposes.

use crate::merkle;
use crate::shard::{self, ShardTree};
use cairn_types::proof::{LeafOpening, StorageProof};
use cairn_types::tx::BlobMeta;
use cairn_types::{BoundedBytes, BoundedVec, DealId, Hash};

const FIRST_DOMAIN: &str = "cairn.storage.chain.first.v1";
const NEXT_DOMAIN: &str = "cairn.storage.chain.next.v1";

/// Most chained leaves one [`StorageProof`] can carry on the wire.
///
/// [`prove`] builds its leaf list as a `BoundedVec<_, MAX_PROOF_LEAVES>` and stores it in
/// `StorageProof::leaves`, so if `cairn-types` changes that bound this crate stops compiling
/// instead of silently disagreeing with it.
pub const MAX_PROOF_LEAVES: usize = 64;

/// Root of a shard (the BLAKE3 tree of [`crate::shard`]; the leaf size does not change it).
pub fn shard_root(shard: &[u8]) -> Hash {
    shard::shard_root(shard)
}

/// The tree of a shard held in memory, for a prover that answers many challenges; `None`
/// for a leaf size that is not a power of two of at least 1 KiB.
pub fn shard_tree(shard: &[u8], leaf_size: u32) -> Option<ShardTree> {
    ShardTree::build(shard, leaf_size)
}

/// First leaf of a shard's chain.
pub fn first_index(seed: &Hash, deal: DealId, shard_index: u16, leaf_count: u64) -> u64 {
    let draw = Hash::domain(
        FIRST_DOMAIN,
        &[
            seed.as_bytes(),
            &deal.0.to_be_bytes(),
            &shard_index.to_be_bytes(),
        ],
    );
    reduce(&draw, leaf_count)
}

/// Leaf `step` of a chain, from the bytes of leaf `step - 1`.
pub fn next_index(seed: &Hash, step: u32, previous_leaf: &[u8], leaf_count: u64) -> u64 {
    let previous = merkle::leaf_hash(previous_leaf);
    let draw = Hash::domain(
        NEXT_DOMAIN,
        &[seed.as_bytes(), &step.to_be_bytes(), previous.as_bytes()],
    );
    reduce(&draw, leaf_count)
}

/// Honest reference prover: walks the chain over `shard` and opens `leaves` leaves.
///
/// `leaves` is capped at [`MAX_PROOF_LEAVES`], the most the wire type holds. The blob's leaf
/// size must not exceed `cairn_types::proof::MAX_LEAF_BYTES`; beyond it the openings are
/// still built (and verify here) but the codec refuses to decode them, so the ledger must
/// bound the leaf size when a deal is created.
pub fn prove(
    shard: &[u8],
    leaf_size: u32,
    seed: &Hash,
    deal: DealId,
    shard_index: u16,
    leaves: usize,
) -> StorageProof {
    let openings = prove_chain(
        shard,
        leaf_size,
        seed,
        deal,
        shard_index,
        leaves.min(MAX_PROOF_LEAVES),
    );
    StorageProof {
        deal,
        shard_index,
        leaves: BoundedVec::<LeafOpening, MAX_PROOF_LEAVES>(openings),
    }
}

/// The first `steps` leaves of a shard's chain (held whole in memory), of any length: the
/// reference for the off-chain timed audit ([`crate::timed`]) as [`prove`] is for the
/// on-chain proof.
pub fn prove_chain(
    shard: &[u8],
    leaf_size: u32,
    seed: &Hash,
    deal: DealId,
    shard_index: u16,
    steps: usize,
) -> Vec<LeafOpening> {
    let tree = shard_tree(shard, leaf_size);
    let leaf_count = tree.as_ref().map_or(1, ShardTree::leaf_count);
    let leaf_size = leaf_len(leaf_size);
    let mut index = first_index(seed, deal, shard_index, leaf_count);
    let mut openings = Vec::with_capacity(steps);
    for step in (1u32..).take(steps) {
        let opening = open_in(shard, tree.as_ref(), leaf_size, index);
        index = next_index(seed, step, &opening.data.0, leaf_count);
        openings.push(opening);
    }
    openings
}

/// Leaf `index` of `shard` (held whole in memory) with its sibling chaining values in
/// `tree`; no path without a tree. The reference prover and in-memory reporters open leaves
/// this way.
pub(crate) fn open_in(
    shard: &[u8],
    tree: Option<&ShardTree>,
    leaf_size: usize,
    index: u64,
) -> LeafOpening {
    let data = leaf_bytes(shard, leaf_size, index);
    let path = tree.and_then(|tree| {
        let block = tree.block_of(index);
        let block =
            shard.get(usize::try_from(block.start).ok()?..usize::try_from(block.end).ok()?)?;
        tree.path(index, block)
    });
    LeafOpening {
        data: BoundedBytes(data.to_vec()),
        path: path.unwrap_or_default(),
    }
}

/// Whether `data` is leaf `leaf_index` of the shard with `root` and `leaf_count` leaves of
/// `leaf_size` bytes, by the sibling chaining values `path`. The caller has checked the
/// leaf's length against the shard size (so a leaf is never empty unless it is the whole,
/// empty shard).
pub fn verify_leaf(
    root: &Hash,
    leaf_size: u32,
    leaf_count: u64,
    leaf_index: u64,
    data: &[u8],
    path: &[Hash],
) -> bool {
    if leaf_count == 1 {
        // The leaf is the whole shard: its hash is the root and there are no siblings.
        return leaf_index == 0 && path.is_empty() && shard::shard_root(data) == *root;
    }
    if !shard::valid_leaf_size(leaf_size) || data.is_empty() || leaf_index >= leaf_count {
        return false;
    }
    let Some(offset) = leaf_index.checked_mul(u64::from(leaf_size)) else {
        return false;
    };
    let leaf_cv = shard::subtree_cv(offset, data);
    shard::verify_path(root, leaf_count, leaf_index, &leaf_cv, path)
}

/// Checks a proof against the blob's shard root: correct count, each leaf at the chained
/// index, each path valid, leaf length correct.
///
/// The caller must have looked `blob` up by `proof.deal`: the chain starts from that deal id,
/// so a proof naming another deal simply lands on other leaves and fails, but only if the
/// roots it is checked against are the named deal's.
pub fn verify(
    blob: &BlobMeta,
    seed: &Hash,
    proof: &StorageProof,
    leaves_required: usize,
) -> Result<(), StorageProofError> {
    verify_chain(
        blob,
        seed,
        proof.deal,
        proof.shard_index,
        &proof.leaves.0,
        leaves_required,
    )
}

/// [`verify`] for a chain of any length: the on-chain proof and the off-chain timed audit
/// ([`crate::timed`]) check their leaves here, so the two cannot drift apart.
pub fn verify_chain(
    blob: &BlobMeta,
    seed: &Hash,
    deal: DealId,
    shard_index: u16,
    leaves: &[LeafOpening],
    leaves_required: usize,
) -> Result<(), StorageProofError> {
    let root = blob.shard_roots.0.get(usize::from(shard_index)).ok_or(
        StorageProofError::UnknownShard {
            shard_index,
            shard_count: blob.shard_roots.len(),
        },
    )?;
    if !shard::valid_leaf_size(blob.leaf_size_bytes) {
        return Err(StorageProofError::BadLeafSize {
            leaf_size_bytes: blob.leaf_size_bytes,
        });
    }
    if leaves.len() != leaves_required {
        return Err(StorageProofError::WrongLeafCount {
            expected: leaves_required,
            got: leaves.len(),
        });
    }
    let leaf_count = blob.leaf_count();
    let mut leaf_index = first_index(seed, deal, shard_index, leaf_count);
    for (step, opening) in (0u32..).zip(leaves.iter()) {
        let data = &opening.data.0;
        let expected = expected_leaf_len(blob, leaf_index);
        let got = u64::try_from(data.len()).unwrap_or(u64::MAX);
        if got != expected {
            return Err(StorageProofError::LeafLength {
                step,
                leaf_index,
                expected,
                got,
            });
        }
        if !verify_leaf(
            root,
            blob.leaf_size_bytes,
            leaf_count,
            leaf_index,
            data,
            &opening.path.0,
        ) {
            return Err(StorageProofError::BadPath { step, leaf_index });
        }
        leaf_index = next_index(seed, step.saturating_add(1), data, leaf_count);
    }
    Ok(())
}

/// Why a storage proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageProofError {
    #[error("shard {shard_index} does not exist: the blob has {shard_count} shards")]
    UnknownShard {
        shard_index: u16,
        shard_count: usize,
    },
    #[error("the blob's leaf size {leaf_size_bytes} is not a power of two of at least 1024 bytes")]
    BadLeafSize { leaf_size_bytes: u32 },
    #[error("proof carries {got} leaves, {expected} required")]
    WrongLeafCount { expected: usize, got: usize },
    #[error("step {step}: leaf {leaf_index} is {got} bytes, expected {expected}")]
    LeafLength {
        step: u32,
        leaf_index: u64,
        expected: u64,
        got: u64,
    },
    #[error("step {step}: leaf {leaf_index} does not open to the shard root")]
    BadPath { step: u32, leaf_index: u64 },
}

/// The leaf size as a chunk length; 0 is read as 1 so chunking never panics.
pub(crate) fn leaf_len(leaf_size: u32) -> usize {
    usize::try_from(leaf_size.max(1)).unwrap_or(usize::MAX)
}

/// Bytes of leaf `index` (empty past the end, which only an empty shard reaches).
fn leaf_bytes(shard: &[u8], leaf_size: usize, index: u64) -> &[u8] {
    let start = usize::try_from(index)
        .ok()
        .and_then(|index| index.checked_mul(leaf_size))
        .unwrap_or(usize::MAX)
        .min(shard.len());
    let end = start.saturating_add(leaf_size).min(shard.len());
    shard.get(start..end).unwrap_or_default()
}

/// Length leaf `index` must have in a shard of the blob's declared size.
pub(crate) fn expected_leaf_len(blob: &BlobMeta, index: u64) -> u64 {
    let leaf_size = u64::from(blob.leaf_size_bytes.max(1));
    let start = index.saturating_mul(leaf_size);
    blob.shard_size_bytes.saturating_sub(start).min(leaf_size)
}

fn reduce(draw: &Hash, modulus: u64) -> u64 {
    draw.prefix_u64().checked_rem(modulus).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use cairn_types::proof::MAX_LEAF_BYTES;

    const LEAF: u32 = 1024;

    /// Deterministic pseudo-random bytes, distinct per `tag`.
    fn shard_bytes(tag: u8, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut counter = 0u64;
        while out.len() < len {
            let block = Hash::domain("test.shard", &[&[tag], &counter.to_be_bytes()]);
            out.extend_from_slice(block.as_bytes());
            counter += 1;
        }
        out.truncate(len);
        out
    }

    fn seed(n: u64) -> Hash {
        Hash::domain("test.seed", &[&n.to_be_bytes()])
    }

    /// A blob whose shard `i` is `shards[i]`.
    fn blob(shards: &[Vec<u8>], leaf_size: u32) -> BlobMeta {
        let shard_size = u64::try_from(shards[0].len()).unwrap();
        let roots = shards.iter().map(|s| shard_root(s)).collect();
        BlobMeta {
            id: Hash::ZERO,
            size_bytes: shard_size * 2,
            data_shards: 2,
            parity_shards: u16::try_from(shards.len() - 2).unwrap(),
            shard_size_bytes: shard_size,
            leaf_size_bytes: leaf_size,
            shard_roots: BoundedVec::new(roots).unwrap(),
        }
    }

    fn fixture() -> (Vec<Vec<u8>>, BlobMeta) {
        // 63 leaves, the last one 512 bytes (64000 = 62 * 1024 + 512).
        let shards: Vec<Vec<u8>> = (0..3).map(|tag| shard_bytes(tag, 64000)).collect();
        let meta = blob(&shards, LEAF);
        (shards, meta)
    }

    #[test]
    fn honest_proofs_verify_for_every_shard_and_many_seeds() {
        let (shards, meta) = fixture();
        assert_eq!(meta.leaf_count(), 63);
        for (shard_index, shard) in (0u16..).zip(&shards) {
            assert_eq!(
                shard_tree(shard, LEAF).unwrap().leaf_count(),
                meta.leaf_count()
            );
            for n in 0..20 {
                let proof = prove(shard, LEAF, &seed(n), DealId(7), shard_index, 16);
                assert_eq!(proof.leaves.len(), 16);
                assert_eq!(verify(&meta, &seed(n), &proof, 16), Ok(()));
            }
        }
    }

    #[test]
    fn chain_follows_the_documented_recurrence() {
        let (shards, meta) = fixture();
        let proof = prove(&shards[1], LEAF, &seed(3), DealId(9), 1, 8);
        let leaf_count = meta.leaf_count();
        let mut index = first_index(&seed(3), DealId(9), 1, leaf_count);
        for (step, opening) in (1u32..).zip(proof.leaves.iter()) {
            let start = usize::try_from(index * u64::from(LEAF)).unwrap();
            let end = (start + 1024).min(shards[1].len());
            assert_eq!(opening.data.0, shards[1][start..end]);
            index = next_index(&seed(3), step, &opening.data.0, leaf_count);
        }
    }

    #[test]
    fn short_last_leaf_and_tiny_shards() {
        // Shard smaller than one leaf, exactly one leaf, and empty.
        for len in [0usize, 1, 1023, 1024, 1025, 2048, 2049] {
            let shards: Vec<Vec<u8>> = (0..3).map(|tag| shard_bytes(tag, len)).collect();
            let meta = blob(&shards, LEAF);
            for (shard_index, shard) in (0u16..).zip(&shards) {
                let proof = prove(shard, LEAF, &seed(1), DealId(1), shard_index, 5);
                assert_eq!(verify(&meta, &seed(1), &proof, 5), Ok(()), "len {len}");
            }
        }
        assert_eq!(
            shard_root(&[]).0,
            blake3::derive_key(crate::shard::SHARD_CONTEXT, &[])
        );
    }

    #[test]
    fn padded_or_cut_last_leaf_is_refused() {
        let (shards, meta) = fixture();
        // Find a seed whose chain visits the short last leaf.
        let last = meta.leaf_count() - 1;
        let (n, step) = (0..1000u64)
            .find_map(|n| {
                let proof = prove(&shards[0], LEAF, &seed(n), DealId(7), 0, 16);
                let mut index = first_index(&seed(n), DealId(7), 0, meta.leaf_count());
                for (step, opening) in (1u32..).zip(proof.leaves.iter()) {
                    if index == last {
                        return Some((n, step - 1));
                    }
                    index = next_index(&seed(n), step, &opening.data.0, meta.leaf_count());
                }
                None
            })
            .unwrap();
        let honest = prove(&shards[0], LEAF, &seed(n), DealId(7), 0, 16);
        let position = usize::try_from(step).unwrap();
        let mut padded = honest.clone();
        padded.leaves.0[position].data.0.push(0);
        assert_eq!(
            verify(&meta, &seed(n), &padded, 16),
            Err(StorageProofError::LeafLength {
                step,
                leaf_index: last,
                expected: 512,
                got: 513
            })
        );
        let mut cut = honest;
        cut.leaves.0[position].data.0.pop();
        assert!(matches!(
            verify(&meta, &seed(n), &cut, 16),
            Err(StorageProofError::LeafLength { got: 511, .. })
        ));
    }

    #[test]
    fn wrong_seed_is_refused() {
        let (shards, meta) = fixture();
        for n in 0..10 {
            let proof = prove(&shards[0], LEAF, &seed(n), DealId(7), 0, 16);
            assert!(matches!(
                verify(&meta, &seed(n + 100), &proof, 16),
                Err(StorageProofError::BadPath { .. })
            ));
        }
    }

    #[test]
    fn flipped_byte_in_any_leaf_is_refused() {
        let (shards, meta) = fixture();
        let honest = prove(&shards[2], LEAF, &seed(5), DealId(7), 2, 16);
        for position in 0..honest.leaves.len() {
            let mut bad = honest.clone();
            bad.leaves.0[position].data.0[0] ^= 0x80;
            let step = u32::try_from(position).unwrap();
            assert!(
                matches!(
                    verify(&meta, &seed(5), &bad, 16),
                    Err(StorageProofError::BadPath { step: s, .. }) if s == step
                ),
                "position {position}"
            );
        }
    }

    #[test]
    fn tampered_path_is_refused() {
        let (shards, meta) = fixture();
        let mut bad = prove(&shards[0], LEAF, &seed(2), DealId(7), 0, 16);
        bad.leaves.0[3].path.0[0].0[5] ^= 1;
        assert!(matches!(
            verify(&meta, &seed(2), &bad, 16),
            Err(StorageProofError::BadPath { step: 3, .. })
        ));
    }

    #[test]
    fn truncated_or_padded_proof_is_refused() {
        let (shards, meta) = fixture();
        let honest = prove(&shards[0], LEAF, &seed(4), DealId(7), 0, 16);
        let mut truncated = honest.clone();
        truncated.leaves.0.truncate(15);
        assert_eq!(
            verify(&meta, &seed(4), &truncated, 16),
            Err(StorageProofError::WrongLeafCount {
                expected: 16,
                got: 15
            })
        );
        // A longer chain is honest work but not what was asked: refused, not ignored.
        let longer = prove(&shards[0], LEAF, &seed(4), DealId(7), 0, 17);
        assert!(matches!(
            verify(&meta, &seed(4), &longer, 16),
            Err(StorageProofError::WrongLeafCount { got: 17, .. })
        ));
    }

    #[test]
    fn wrong_shard_or_deal_is_refused() {
        let (shards, meta) = fixture();
        // Shard 0's data presented as shard 1: other root, other chain.
        let mut relabelled = prove(&shards[0], LEAF, &seed(6), DealId(7), 0, 16);
        relabelled.shard_index = 1;
        assert!(matches!(
            verify(&meta, &seed(6), &relabelled, 16),
            Err(StorageProofError::BadPath { .. })
        ));
        // Honest chain over shard 0 but computed for shard index 1.
        let wrong_chain = prove(&shards[0], LEAF, &seed(6), DealId(7), 1, 16);
        assert!(verify(&meta, &seed(6), &wrong_chain, 16).is_err());
        // Shard index past the blob.
        let mut missing = prove(&shards[0], LEAF, &seed(6), DealId(7), 0, 16);
        missing.shard_index = 3;
        assert_eq!(
            verify(&meta, &seed(6), &missing, 16),
            Err(StorageProofError::UnknownShard {
                shard_index: 3,
                shard_count: 3
            })
        );
        // The chain starts from the deal id: a proof built for another deal does not verify.
        let mut other_deal = prove(&shards[0], LEAF, &seed(6), DealId(8), 0, 16);
        other_deal.deal = DealId(7);
        assert!(verify(&meta, &seed(6), &other_deal, 16).is_err());
    }

    #[test]
    fn invalid_leaf_size_is_refused_not_hashed() {
        let (shards, mut meta) = fixture();
        let proof = prove(&shards[0], LEAF, &seed(1), DealId(7), 0, 4);
        for bad in [0u32, 64, 1000, 1536] {
            meta.leaf_size_bytes = bad;
            assert_eq!(
                verify(&meta, &seed(1), &proof, 4),
                Err(StorageProofError::BadLeafSize {
                    leaf_size_bytes: bad
                })
            );
        }
    }

    #[test]
    fn leaf_count_is_capped_at_the_wire_bound() {
        let (shards, meta) = fixture();
        let proof = prove(&shards[0], LEAF, &seed(1), DealId(7), 0, 1000);
        assert_eq!(proof.leaves.len(), MAX_PROOF_LEAVES);
        assert_eq!(verify(&meta, &seed(1), &proof, MAX_PROOF_LEAVES), Ok(()));
        assert!(usize::try_from(LEAF).unwrap() <= MAX_LEAF_BYTES);
    }

    #[test]
    fn indices_stay_in_range_and_tolerate_zero_counts() {
        for n in 0..200 {
            for count in [1u64, 2, 7, 1000] {
                assert!(first_index(&seed(n), DealId(n), 3, count) < count);
                assert!(next_index(&seed(n), 5, b"leaf", count) < count);
            }
        }
        assert_eq!(first_index(&seed(0), DealId(0), 0, 0), 0);
        assert_eq!(next_index(&seed(0), 1, b"", 0), 0);
        // The chain depends on the previous leaf's bytes and on the step.
        let differs = (0..50u64).any(|n| {
            next_index(&seed(n), 1, b"a", 1 << 40) != next_index(&seed(n), 1, b"b", 1 << 40)
                && next_index(&seed(n), 1, b"a", 1 << 40) != next_index(&seed(n), 2, b"a", 1 << 40)
        });
        assert!(differs);
    }
}
