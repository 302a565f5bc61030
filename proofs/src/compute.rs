//! Compute challenges (proof of GPU): an exact int8 GEMM, committed, then spot-checked.
//!
//! # Protocol
//!
//! 1. The ledger sizes a challenge to take about T at the provider's claimed int8 rate
//!    ([`shape_for`]) and fixes a seed. Both sides expand the seed into int8 matrices
//!    A (m×k) and B (k×n) ([`generate_a`], [`generate_b`]).
//! 2. The provider computes C = A·B with int32 accumulation ([`gemm_reference`] on a CPU, a
//!    fast backend on a GPU), commits to C ([`commit`]) and posts the root before the
//!    deadline.
//! 3. A later seed, unknown when the root was posted, picks r entries
//!    ([`opening_indices`]); the provider opens them with their paths ([`open`]).
//! 4. The verifier recomputes each opened entry from the seed alone ([`entry`]) and checks
//!    it and its path against the root ([`verify_openings`]).
//!
//! # Exactness
//!
//! Every product of two int8 values lies in [-16256, 16384], so a sum of k of them is exact
//! in i32 for k ≤ 131 071; [`shape_for`] never picks k above 4096 (sums within ±2^26). The
//! reference accumulates with `wrapping_add`, so a hand-built shape with a larger k still has
//! one defined answer (the sum modulo 2^32, what int32 hardware accumulators produce) rather
//! than a panic. There is no rounding anywhere: the result is bit-identical on any hardware.
//!
//! # Matrix generation (consensus-critical)
//!
//! ```text
//! seed_word(tag)  = Hash::domain("cairn.gemm.matrix.v1", [seed (32 bytes), tag]).prefix_u64()
//!                   with tag = b"A" or b"B"; prefix_u64 reads the first 8 digest bytes big-endian
//! element(idx)    = byte (idx mod 8) of splitmix64(seed_word(tag) XOR (idx div 8)), as i8,
//!                   byte b of a u64 being bits 8b..8b+8 (little-endian byte order)
//! A[r][c]         = element(r·k + c) with tag "A"   (A counted row by row)
//! B[r][c]         = element(c·k + r) with tag "B"   (B counted column by column)
//! splitmix64(x)   : z = x + 0x9E3779B97F4A7C15
//!                   z = (z XOR (z >> 30)) · 0xBF58476D1CE4E5B9
//!                   z = (z XOR (z >> 27)) · 0x94D049BB133111EB
//!                   return z XOR (z >> 31)            (all arithmetic mod 2^64)
//! ```
//!
//! Counter-based rather than a stream so that the verifier can produce one row of A and one
//! column of B without generating the matrices; B is counted column by column so that a
//! column, like a row of A, is k consecutive counters: k/8 draws each, not k.
//!
//! # Commitment
//!
//! Leaves are [`ENTRIES_PER_LEAF`] consecutive row-major entries of C, each as four
//! little-endian bytes, the last leaf zero-padded; a leaf hashes with [`merkle::leaf_hash`]
//! over those 16 bytes. The tree has ⌈m·n / 4⌉ leaves, a number the verifier derives from the
//! shape, never from the prover.
//!
//! # Opening indices
//!
//! Opening `i` (counting from 0) is `Hash::domain("cairn.gemm.open.v1", [reveal_seed,
//! challenge (u64 BE), i (u64 BE)]).prefix_u64() mod (m·n)`. Draws are independent, so an
//! entry may be opened twice; the modulo bias is below m·n / 2^64.
//!
//! # Detection probability
//!
//! A prover that skipped (or faked) a fraction f of C, then committed honestly to what it
//! has, survives one uniform opening with probability 1 − f and r independent ones with
//! (1 − f)^r. It is caught with probability 1 − (1 − f)^r ([`detection_probability`]):
//! r ≈ 700 openings catch f = 1% with 1 − 0.99^700 ≈ 0.99912, i.e. 99.9%. Committing to
//! values it did not compute does not help: the root fixes every leaf before the openings are
//! known, so a wrong value fails the recomputation and a changed one fails its path.
//!
//! # Verifier cost
//!
//! Per opening: k multiply-adds, the k/4 splitmix64 draws that regenerate row i of A and
//! column j of B, and one leaf hash plus ⌈log2(m·n / 4)⌉ node hashes. In all r·k
//! multiply-adds, r·k/4 draws and r·log2(entries/4) hashes: for r = 700, k = 4096 and a
//! 16384×16384 C, about 2.9 M multiply-adds, 0.7 M draws and 18 k hashes; measured in
//! docs/benchmarks.md (`cairn bench popw`), within the 5 ms of one core the design allows.
//!
//! # What it does not prove
//!
//! A root delivered by the deadline shows that about 2·m·k·n exact integer operations were
//! done in time by some hardware, not by whose or where: a provider could rent the work out.
//! The ledger should bound the challenge's wall time and tie rewards to leases actually
//! served (design §10).

use crate::merkle::{self, MerkleTree};
use cairn_types::proof::{ComputeOpening, ENTRIES_PER_LEAF};
use cairn_types::{ChallengeId, Hash};

const MATRIX_DOMAIN: &str = "cairn.gemm.matrix.v1";
const OPEN_DOMAIN: &str = "cairn.gemm.open.v1";

/// Every dimension [`shape_for`] picks is a multiple of this (GPU tensor-core tiles).
pub const DIM_STEP: u32 = 16;
/// The inner dimension [`shape_for`] never exceeds: large enough to amortize the output
/// write, small enough to keep each verifier recomputation cheap.
pub const MAX_K: u32 = 4096;

/// `ENTRIES_PER_LEAF` as the index type; the const assertion keeps the two in step.
const LEAF_ENTRIES: u64 = 4;
const _: () = assert!(ENTRIES_PER_LEAF == 4);

/// Dimensions of a GEMM challenge: A is m×k, B is k×n, C is m×n.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GemmShape {
    pub m: u32,
    pub k: u32,
    pub n: u32,
}

impl GemmShape {
    /// Integer operations of the product, counting a multiply and an add as two.
    pub fn ops(&self) -> u128 {
        2 * u128::from(self.m) * u128::from(self.k) * u128::from(self.n)
    }

    /// Entries of C.
    pub fn entries(&self) -> u64 {
        u64::from(self.m) * u64::from(self.n)
    }

    /// Leaves of the commitment tree over C.
    fn leaf_count(&self) -> u64 {
        self.entries().div_ceil(LEAF_ENTRIES)
    }
}

/// Shape sized so that 2·m·k·n ≈ `claimed_ops_per_sec` × `target_ms` / 1000, with k fixed
/// at min(4096, max_dim), m = n, every dim clamped to [16, max_dim] and a multiple of 16.
///
/// `max_dim` is first rounded down to a multiple of 16, and below 16 it is read as 16, so
/// the result is always a valid shape. m is the nearest multiple of 16 to the exact square
/// root, so the work lands within a few percent of the target unless a clamp bites.
pub fn shape_for(claimed_ops_per_sec: u64, target_ms: u64, max_dim: u32) -> GemmShape {
    let max_dim = (max_dim / DIM_STEP * DIM_STEP).max(DIM_STEP);
    let k = max_dim.min(MAX_K);
    let target_ops = u128::from(claimed_ops_per_sec) * u128::from(target_ms) / 1000;
    let side = (target_ops / (2 * u128::from(k))).isqrt();
    let step = u128::from(DIM_STEP);
    let rounded = (side + step / 2) / step * step;
    let m = u32::try_from(rounded.clamp(step, u128::from(max_dim))).unwrap_or(max_dim);
    GemmShape { m, k, n: m }
}

/// The splitmix64 output function (Steele, Lea and Flood), used as a counter-based generator.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn seed_word(seed: &Hash, tag: &[u8]) -> u64 {
    Hash::domain(MATRIX_DOMAIN, &[seed.as_bytes(), tag]).prefix_u64()
}

/// The first `len` elements of the stream for `word`, eight per splitmix64 call.
fn fill(word: u64, len: u64) -> Vec<i8> {
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    for block in 0..len.div_ceil(8) {
        let bytes = splitmix64(word ^ block).to_le_bytes();
        let take = usize::try_from((len - block * 8).min(8)).unwrap_or(8);
        out.extend(bytes.iter().take(take).map(|&b| i8::from_le_bytes([b])));
    }
    out
}

/// A (m×k, row-major) for the challenge `seed`.
pub fn generate_a(seed: &Hash, shape: GemmShape) -> Vec<i8> {
    fill(
        seed_word(seed, b"A"),
        u64::from(shape.m) * u64::from(shape.k),
    )
}

/// B (k×n, row-major) for the challenge `seed`; its counters run column by column.
pub fn generate_b(seed: &Hash, shape: GemmShape) -> Vec<i8> {
    let columns = generate_b_columns(seed, shape);
    let (Ok(k), Ok(n)) = (usize::try_from(shape.k), usize::try_from(shape.n)) else {
        return Vec::new();
    };
    let mut b = vec![0i8; columns.len()];
    for (j, column) in columns.chunks_exact(k.max(1)).enumerate().take(n) {
        for (p, &value) in column.iter().enumerate() {
            b[p * n + j] = value;
        }
    }
    b
}

/// Bᵀ (n×k, row-major: row j is column j of B) for the challenge `seed`, in generation
/// order. Backends that want B transposed (most GEMM kernels do) take it from here.
pub fn generate_b_columns(seed: &Hash, shape: GemmShape) -> Vec<i8> {
    fill(
        seed_word(seed, b"B"),
        u64::from(shape.k) * u64::from(shape.n),
    )
}

/// `len` consecutive elements (as raw two's-complement bytes) from counter index `start`.
fn run_of(word: u64, start: u64, len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    let end = start.saturating_add(len);
    let mut idx = start;
    while idx < end {
        let bytes = splitmix64(word ^ (idx / 8)).to_le_bytes();
        let from = usize::try_from(idx % 8).unwrap_or(0);
        let take = usize::try_from((end - idx).min(8 - idx % 8)).unwrap_or(0);
        out.extend_from_slice(&bytes[from..from + take]);
        idx += 8 - idx % 8;
    }
    out
}

/// C = A·B (m×n, row-major) with int32 accumulation; see the module docs on exactness.
///
/// `a` and `b` are expected at the shape's sizes; shorter slices act as if zero-padded
/// (the result keeps the shape's size) rather than panicking.
pub fn gemm_reference(a: &[i8], b: &[i8], shape: GemmShape) -> Vec<i32> {
    let mut c = vec![0i32; usize::try_from(shape.entries()).unwrap_or(0)];
    let (Ok(k), Ok(n)) = (usize::try_from(shape.k), usize::try_from(shape.n)) else {
        return c;
    };
    if k == 0 || n == 0 {
        return c;
    }
    // i-p-j order: the inner loop streams one row of B into one row of C, both contiguous,
    // which the compiler vectorizes; the naive i-j-p order strides down B's columns.
    for (c_row, a_row) in c.chunks_exact_mut(n).zip(a.chunks_exact(k)) {
        for (&a_ip, b_row) in a_row.iter().zip(b.chunks_exact(n)) {
            if a_ip == 0 {
                continue;
            }
            let a_ip = i32::from(a_ip);
            for (c_ij, &b_pj) in c_row.iter_mut().zip(b_row) {
                *c_ij = c_ij.wrapping_add(a_ip * i32::from(b_pj));
            }
        }
    }
    c
}

/// Entry `entry_index` (row-major) of C, recomputed from the seed with k multiply-adds.
///
/// Returns 0 for an index outside C; [`verify_openings`] refuses such indices before it
/// gets here.
pub fn entry(seed: &Hash, shape: GemmShape, entry_index: u64) -> i32 {
    entry_from_words(
        seed_word(seed, b"A"),
        seed_word(seed, b"B"),
        shape,
        entry_index,
    )
}

/// [`entry`] with the two seed words already derived (a verifier derives them once per
/// challenge, not once per opening).
fn entry_from_words(a_word: u64, b_word: u64, shape: GemmShape, entry_index: u64) -> i32 {
    if entry_index >= shape.entries() {
        return 0;
    }
    let k = u64::from(shape.k);
    let n = u64::from(shape.n);
    let (row, col) = (entry_index / n, entry_index % n);
    // Row `row` of A and column `col` of B are each k consecutive counters.
    let (a_start, b_start) = (row * k, col * k);
    if k % 8 != 0 {
        return dot_bytes(&run_of(a_word, a_start, k), &run_of(b_word, b_start, k));
    }
    // k a multiple of 8 (every shape `shape_for` picks): both runs start on a draw
    // boundary. Draw them into stack buffers, then one vectorizable dot product.
    const MAX_BYTES: usize = MAX_K as usize;
    let Some(len) = usize::try_from(k).ok().filter(|&len| len <= MAX_BYTES) else {
        return dot_bytes(&run_of(a_word, a_start, k), &run_of(b_word, b_start, k));
    };
    let mut x = [0u8; MAX_BYTES];
    let mut y = [0u8; MAX_BYTES];
    let (a_block, b_block) = (a_start / 8, b_start / 8);
    for ((block, xs), ys) in (0u64..)
        .zip(x[..len].chunks_exact_mut(8))
        .zip(y[..len].chunks_exact_mut(8))
    {
        xs.copy_from_slice(&splitmix64(a_word ^ (a_block + block)).to_le_bytes());
        ys.copy_from_slice(&splitmix64(b_word ^ (b_block + block)).to_le_bytes());
    }
    dot_bytes(&x[..len], &y[..len])
}

/// Σ a·b over bytes read as two's-complement i8, with wrapping i32 accumulation, in lanes
/// the compiler can vectorize.
fn dot_bytes(a: &[u8], b: &[u8]) -> i32 {
    const LANES: usize = 32;
    let mut lanes = [0i32; LANES];
    let (mut ca, mut cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in (&mut ca).zip(&mut cb) {
        for ((lane, &p), &q) in lanes.iter_mut().zip(x).zip(y) {
            let product = i32::from(i8::from_le_bytes([p])) * i32::from(i8::from_le_bytes([q]));
            *lane = lane.wrapping_add(product);
        }
    }
    let tail = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .fold(0i32, |acc, (&p, &q)| {
            acc.wrapping_add(i32::from(i8::from_le_bytes([p])) * i32::from(i8::from_le_bytes([q])))
        });
    lanes.iter().fold(tail, |acc, &v| acc.wrapping_add(v))
}

/// Leaf `leaf_index` of C: four consecutive entries, zero past the end.
fn leaf_entries(c: &[i32], leaf_index: u64) -> [i32; ENTRIES_PER_LEAF] {
    let mut leaf = [0i32; ENTRIES_PER_LEAF];
    let start = usize::try_from(leaf_index)
        .ok()
        .and_then(|index| index.checked_mul(ENTRIES_PER_LEAF))
        .unwrap_or(usize::MAX);
    if let Some(entries) = c.get(start..) {
        for (slot, value) in leaf.iter_mut().zip(entries) {
            *slot = *value;
        }
    }
    leaf
}

fn hash_leaf(leaf: &[i32; ENTRIES_PER_LEAF]) -> Hash {
    let mut bytes = [0u8; ENTRIES_PER_LEAF * 4];
    for (chunk, value) in bytes.chunks_exact_mut(4).zip(leaf) {
        chunk.copy_from_slice(&value.to_le_bytes());
    }
    merkle::leaf_hash(&bytes)
}

/// Hash of one commitment leaf: up to [`ENTRIES_PER_LEAF`] consecutive entries of C,
/// zero-padded (the last leaf may be short). Fast provers that hash leaves in parallel call
/// this so that their trees equal [`commit`]'s.
pub fn leaf_hash_of(entries: &[i32]) -> Hash {
    let mut leaf = [0i32; ENTRIES_PER_LEAF];
    for (slot, value) in leaf.iter_mut().zip(entries) {
        *slot = *value;
    }
    hash_leaf(&leaf)
}

/// Merkle commitment to C (see the module docs for the leaf layout).
pub fn commit(c: &[i32]) -> MerkleTree {
    let leaves = c.chunks(ENTRIES_PER_LEAF).map(leaf_hash_of).collect();
    MerkleTree::from_leaf_hashes(leaves)
}

/// `count` entry indices in [0, m·n), drawn independently (repeats possible) from the reveal
/// seed; empty when C has no entries.
pub fn opening_indices(
    reveal_seed: &Hash,
    challenge: ChallengeId,
    shape: GemmShape,
    count: usize,
) -> Vec<u64> {
    let entries = shape.entries();
    if entries == 0 {
        return Vec::new();
    }
    (0u64..)
        .take(count)
        .map(|i| {
            Hash::domain(
                OPEN_DOMAIN,
                &[
                    reveal_seed.as_bytes(),
                    &challenge.0.to_be_bytes(),
                    &i.to_be_bytes(),
                ],
            )
            .prefix_u64()
                % entries
        })
        .collect()
}

/// Opens `indices` of the committed `c`. An index outside `tree` gets an empty path, which
/// [`verify_openings`] refuses.
pub fn open(tree: &MerkleTree, c: &[i32], indices: &[u64]) -> Vec<ComputeOpening> {
    indices
        .iter()
        .map(|&entry_index| {
            let leaf_index = entry_index / LEAF_ENTRIES;
            ComputeOpening {
                entry_index,
                leaf: leaf_entries(c, leaf_index),
                path: tree.path(leaf_index).unwrap_or_default(),
            }
        })
        .collect()
}

/// Checks that `openings[i]` opens `indices[i]` under `root` and holds the true value of
/// that entry of A·B.
///
/// The path is checked before the value: it costs a few hashes against k multiply-adds,
/// so a garbage opening is refused cheaply.
pub fn verify_openings(
    seed: &Hash,
    shape: GemmShape,
    root: &Hash,
    indices: &[u64],
    openings: &[ComputeOpening],
) -> Result<(), ComputeProofError> {
    if indices.len() != openings.len() {
        return Err(ComputeProofError::CountMismatch {
            expected: indices.len(),
            got: openings.len(),
        });
    }
    let entries = shape.entries();
    let leaf_count = shape.leaf_count();
    let (a_word, b_word) = (seed_word(seed, b"A"), seed_word(seed, b"B"));
    for (position, (&entry_index, opening)) in indices.iter().zip(openings).enumerate() {
        if opening.entry_index != entry_index {
            return Err(ComputeProofError::WrongIndex {
                position,
                expected: entry_index,
                got: opening.entry_index,
            });
        }
        if entry_index >= entries {
            return Err(ComputeProofError::IndexOutOfRange {
                entry_index,
                entries,
            });
        }
        let leaf_index = entry_index / LEAF_ENTRIES;
        let leaf = hash_leaf(&opening.leaf);
        if !merkle::verify_path(root, leaf_count, leaf_index, &leaf, &opening.path.0) {
            return Err(ComputeProofError::BadPath {
                position,
                entry_index,
            });
        }
        let slot = usize::try_from(entry_index % LEAF_ENTRIES).unwrap_or(0);
        let got = opening.leaf.get(slot).copied().unwrap_or(0);
        let expected = entry_from_words(a_word, b_word, shape, entry_index);
        if got != expected {
            return Err(ComputeProofError::WrongValue {
                entry_index,
                expected,
                got,
            });
        }
    }
    Ok(())
}

/// 1 − (1 − f)^r: the chance that r uniform openings catch a prover that skipped a fraction
/// f of C. For documentation, parameter choice and tests only: no verdict depends on a float.
pub fn detection_probability(skipped_fraction: f64, openings: u32) -> f64 {
    1.0 - (1.0 - skipped_fraction).powi(i32::try_from(openings).unwrap_or(i32::MAX))
}

/// Why a compute opening was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComputeProofError {
    #[error("{got} openings for {expected} challenged entries")]
    CountMismatch { expected: usize, got: usize },
    #[error("opening {position} opens entry {got}, entry {expected} was challenged")]
    WrongIndex {
        position: usize,
        expected: u64,
        got: u64,
    },
    #[error("entry {entry_index} is outside C ({entries} entries)")]
    IndexOutOfRange { entry_index: u64, entries: u64 },
    #[error("opening {position} (entry {entry_index}) does not open to the committed root")]
    BadPath { position: usize, entry_index: u64 },
    #[error("entry {entry_index} is {got}, A·B gives {expected}")]
    WrongValue {
        entry_index: u64,
        expected: i32,
        got: i32,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn seed(n: u64) -> Hash {
        Hash::domain("test.gemm.seed", &[&n.to_be_bytes()])
    }

    fn honest(seed: &Hash, shape: GemmShape) -> (MerkleTree, Vec<i32>) {
        let c = gemm_reference(&generate_a(seed, shape), &generate_b(seed, shape), shape);
        (commit(&c), c)
    }

    /// Byzantine test double (design §10): computes only the first `computed_rows` rows of C,
    /// leaves the rest zero, and then commits honestly to that wrong C, hoping the openings
    /// miss the rows it skipped.
    struct LazyProver {
        computed_rows: u32,
    }

    impl LazyProver {
        fn respond(&self, seed: &Hash, shape: GemmShape) -> (MerkleTree, Vec<i32>) {
            let done = GemmShape {
                m: self.computed_rows,
                ..shape
            };
            let a = generate_a(seed, shape);
            let rows = usize::try_from(done.m * done.k).unwrap();
            let mut c = gemm_reference(&a[..rows], &generate_b(seed, shape), done);
            c.resize(usize::try_from(shape.entries()).unwrap(), 0);
            (commit(&c), c)
        }
    }

    #[test]
    fn splitmix64_matches_the_published_sequence() {
        // First output of the reference splitmix64 generator seeded with 0.
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn generation_follows_the_documented_formula() {
        let shape = GemmShape { m: 5, k: 7, n: 3 };
        let s = seed(1);
        let a = generate_a(&s, shape);
        let b = generate_b(&s, shape);
        assert_eq!(a.len(), 35);
        assert_eq!(b.len(), 21);
        let a_word = Hash::domain("cairn.gemm.matrix.v1", &[s.as_bytes(), b"A"]).prefix_u64();
        let b_word = Hash::domain("cairn.gemm.matrix.v1", &[s.as_bytes(), b"B"]).prefix_u64();
        for (idx, &value) in (0u64..).zip(&a) {
            let byte =
                splitmix64(a_word ^ (idx / 8)).to_le_bytes()[usize::try_from(idx % 8).unwrap()];
            assert_eq!(value, i8::from_le_bytes([byte]));
        }
        for (pos, &value) in (0u64..).zip(&b) {
            // B is counted column by column: B[r][c] is element c·k + r.
            let (r, c) = (pos / 3, pos % 3);
            let idx = c * 7 + r;
            let byte =
                splitmix64(b_word ^ (idx / 8)).to_le_bytes()[usize::try_from(idx % 8).unwrap()];
            assert_eq!(value, i8::from_le_bytes([byte]));
        }
        assert_ne!(a[..21], b[..]);
    }

    #[test]
    fn golden_matrices_are_frozen() {
        // Changing these bytes is a protocol change: every provider's backend must agree.
        // Cross-checked against an independent implementation of the module-doc formula.
        let shape = GemmShape { m: 2, k: 8, n: 2 };
        assert_eq!(generate_a(&Hash::ZERO, shape), GOLDEN_A);
        assert_eq!(generate_b(&Hash::ZERO, shape), GOLDEN_B);
    }

    const GOLDEN_A: [i8; 16] = [
        47, -76, 32, 31, -100, -85, -118, -126, 87, 6, -44, -105, 90, 85, -107, 73,
    ];

    // Column-major counters: column 0 is elements 0..8, column 1 elements 8..16.
    const GOLDEN_B: [i8; 16] = [
        62, -17, -61, 68, 127, -120, -112, -81, 120, 0, -1, 81, -101, -112, 116, 96,
    ];

    #[test]
    fn gemm_reference_matches_the_definition() {
        let shape = GemmShape { m: 3, k: 5, n: 4 };
        let a = generate_a(&seed(2), shape);
        let b = generate_b(&seed(2), shape);
        let c = gemm_reference(&a, &b, shape);
        for i in 0..3 {
            for j in 0..4 {
                let want: i32 = (0..5)
                    .map(|p| i32::from(a[i * 5 + p]) * i32::from(b[p * 4 + j]))
                    .sum();
                assert_eq!(c[i * 4 + j], want);
            }
        }
    }

    #[test]
    fn extreme_operands_accumulate_exactly() {
        let shape = GemmShape {
            m: 1,
            k: 4096,
            n: 1,
        };
        let a = vec![i8::MIN; 4096];
        let c = gemm_reference(&a, &a, shape);
        assert_eq!(c, vec![4096 * 16384]);
    }

    #[test]
    fn entry_matches_the_full_product() {
        // Every entry of shapes whose rows straddle splitmix64 words.
        for (m, k, n) in [(1, 1, 1), (3, 5, 7), (4, 9, 2), (16, 16, 16), (5, 17, 11)] {
            let shape = GemmShape { m, k, n };
            let (_, c) = honest(&seed(3), shape);
            for (index, &value) in (0u64..).zip(&c) {
                assert_eq!(
                    entry(&seed(3), shape, index),
                    value,
                    "{shape:?} entry {index}"
                );
            }
            assert_eq!(entry(&seed(3), shape, shape.entries()), 0);
        }
        // Sampled entries of a larger shape.
        let shape = GemmShape {
            m: 48,
            k: 256,
            n: 40,
        };
        let (_, c) = honest(&seed(4), shape);
        for index in opening_indices(&seed(5), ChallengeId(1), shape, 64) {
            assert_eq!(
                entry(&seed(4), shape, index),
                c[usize::try_from(index).unwrap()]
            );
        }
    }

    #[test]
    fn honest_openings_verify() {
        for (n, shape) in [
            GemmShape {
                m: 48,
                k: 64,
                n: 32,
            },
            // m·n not a multiple of four: the last leaf is padded.
            GemmShape { m: 5, k: 9, n: 3 },
            GemmShape { m: 1, k: 1, n: 1 },
        ]
        .into_iter()
        .enumerate()
        {
            let n = u64::try_from(n).unwrap();
            let (tree, c) = honest(&seed(n), shape);
            assert_eq!(tree.leaf_count(), shape.entries().div_ceil(4));
            let indices = opening_indices(&seed(100 + n), ChallengeId(n), shape, 64);
            let openings = open(&tree, &c, &indices);
            assert_eq!(
                verify_openings(&seed(n), shape, &tree.root(), &indices, &openings),
                Ok(())
            );
        }
    }

    #[test]
    fn forged_openings_are_refused() {
        let shape = GemmShape {
            m: 32,
            k: 32,
            n: 32,
        };
        let (tree, c) = honest(&seed(7), shape);
        let root = tree.root();
        let indices = opening_indices(&seed(8), ChallengeId(7), shape, 16);
        let openings = open(&tree, &c, &indices);

        // Changed value, leaf recomputed by the verifier from the new value, old path.
        let mut forged = openings.clone();
        let slot = usize::try_from(indices[3] % 4).unwrap();
        forged[3].leaf[slot] = forged[3].leaf[slot].wrapping_add(1);
        assert_eq!(
            verify_openings(&seed(7), shape, &root, &indices, &forged),
            Err(ComputeProofError::BadPath {
                position: 3,
                entry_index: indices[3]
            })
        );

        // An honest opening of a different entry than the one challenged.
        let mut swapped = openings.clone();
        swapped[0] = open(&tree, &c, &[(indices[0] + 1) % shape.entries()])[0].clone();
        assert!(matches!(
            verify_openings(&seed(7), shape, &root, &indices, &swapped),
            Err(ComputeProofError::WrongIndex { position: 0, .. })
        ));

        // Too few openings.
        assert_eq!(
            verify_openings(&seed(7), shape, &root, &indices, &openings[..15]),
            Err(ComputeProofError::CountMismatch {
                expected: 16,
                got: 15
            })
        );

        // An index outside C, even if the prover "opens" it.
        let outside = [shape.entries()];
        assert!(matches!(
            verify_openings(&seed(7), shape, &root, &outside, &open(&tree, &c, &outside)),
            Err(ComputeProofError::IndexOutOfRange { .. })
        ));

        // Openings of the right root checked against another challenge's seed.
        assert!(matches!(
            verify_openings(&seed(9), shape, &root, &indices, &openings),
            Err(ComputeProofError::WrongValue { .. })
        ));
    }

    #[test]
    fn consistent_but_wrong_commitment_is_caught_by_value() {
        let shape = GemmShape { m: 8, k: 8, n: 8 };
        let (_, mut c) = honest(&seed(10), shape);
        for value in &mut c {
            *value = value.wrapping_add(1);
        }
        let tree = commit(&c);
        let indices = opening_indices(&seed(11), ChallengeId(10), shape, 1);
        let openings = open(&tree, &c, &indices);
        let expected = entry(&seed(10), shape, indices[0]);
        assert_eq!(
            verify_openings(&seed(10), shape, &tree.root(), &indices, &openings),
            Err(ComputeProofError::WrongValue {
                entry_index: indices[0],
                expected,
                got: expected.wrapping_add(1)
            })
        );
    }

    #[test]
    fn lazy_prover_is_caught_at_the_predicted_rate() {
        let shape = GemmShape {
            m: 32,
            k: 32,
            n: 32,
        };
        // Skips 2 of 32 rows: f = 1/16. With r = 16, 1 − (15/16)^16 ≈ 0.644.
        let lazy = LazyProver { computed_rows: 30 };
        let openings_per_challenge = 16u32;
        let trials = 200u32;
        let mut caught = 0u32;
        for trial in 0..trials {
            let n = u64::from(trial);
            let (tree, c) = lazy.respond(&seed(n), shape);
            let count = usize::try_from(openings_per_challenge).unwrap();
            let indices = opening_indices(&seed(1000 + n), ChallengeId(n), shape, count);
            let openings = open(&tree, &c, &indices);
            match verify_openings(&seed(n), shape, &tree.root(), &indices, &openings) {
                Ok(()) => {}
                // The commitment is honest to the wrong C: only the value check can fire.
                Err(ComputeProofError::WrongValue { entry_index, .. }) => {
                    assert!(entry_index >= 30 * 32);
                    caught += 1;
                }
                Err(other) => panic!("unexpected refusal {other}"),
            }
        }
        let rate = f64::from(caught) / f64::from(trials);
        let predicted = detection_probability(2.0 / 32.0, openings_per_challenge);
        // Binomial standard deviation is about 0.034 here: the band is over 3.5 of them.
        assert!(
            (rate - predicted).abs() < 0.12,
            "caught {rate}, predicted {predicted}"
        );

        // Negative control: the same double doing all the rows is never caught.
        let diligent = LazyProver { computed_rows: 32 };
        for n in 0..20u64 {
            let (tree, c) = diligent.respond(&seed(n), shape);
            let indices = opening_indices(&seed(1000 + n), ChallengeId(n), shape, 16);
            let openings = open(&tree, &c, &indices);
            assert_eq!(
                verify_openings(&seed(n), shape, &tree.root(), &indices, &openings),
                Ok(())
            );
        }
    }

    #[test]
    fn detection_probability_matches_the_docs() {
        let p = detection_probability(0.01, 700);
        assert!((p - 0.99912).abs() < 0.00001, "{p}");
        assert!(detection_probability(0.0, 700).abs() < f64::EPSILON);
        assert!((detection_probability(1.0, 1) - 1.0).abs() < f64::EPSILON);
    }

    #[test]
    fn opening_indices_are_deterministic_and_in_range() {
        let shape = GemmShape { m: 3, k: 4, n: 5 };
        let first = opening_indices(&seed(1), ChallengeId(2), shape, 100);
        assert_eq!(first, opening_indices(&seed(1), ChallengeId(2), shape, 100));
        assert_ne!(first, opening_indices(&seed(1), ChallengeId(3), shape, 100));
        assert_ne!(first, opening_indices(&seed(2), ChallengeId(2), shape, 100));
        assert!(first.iter().all(|&i| i < 15));
        // Every entry of a small C gets drawn.
        assert!((0..15).all(|i| first.contains(&i)));
        let empty = GemmShape { m: 0, k: 4, n: 5 };
        assert!(opening_indices(&seed(1), ChallengeId(2), empty, 10).is_empty());
    }

    #[test]
    fn shape_for_hits_the_target_and_respects_the_bounds() {
        // 1 T int8 ops/s for 100 ms: 1e11 ops, k = 4096, m = n ≈ 3494 → 3488.
        let shape = shape_for(1_000_000_000_000, 100, 16_384);
        assert_eq!(
            shape,
            GemmShape {
                m: 3488,
                k: 4096,
                n: 3488
            }
        );
        let ops = shape.ops();
        assert!(
            ops.abs_diff(100_000_000_000) * 100 < 100_000_000_000,
            "{ops}"
        );

        // Tiny claims clamp up to 16; huge ones clamp down to max_dim.
        assert_eq!(
            shape_for(0, 0, 1024),
            GemmShape {
                m: 16,
                k: 1024,
                n: 16
            }
        );
        assert_eq!(
            shape_for(u64::MAX, u64::MAX, 1000),
            GemmShape {
                m: 992,
                k: 992,
                n: 992
            }
        );
        assert_eq!(
            shape_for(u64::MAX, 1000, 5),
            GemmShape {
                m: 16,
                k: 16,
                n: 16
            }
        );

        for claimed in [1u64, 1_000, 1_000_000_000, 5_000_000_000_000, u64::MAX] {
            for max_dim in [0u32, 16, 100, 4096, 65_536, u32::MAX] {
                let shape = shape_for(claimed, 2_000, max_dim);
                for dim in [shape.m, shape.k, shape.n] {
                    assert_eq!(dim % 16, 0);
                    assert!(dim >= 16);
                    assert!(dim <= max_dim.max(16));
                }
                assert!(shape.k <= MAX_K);
                assert_eq!(shape.m, shape.n);
            }
        }
    }
}
