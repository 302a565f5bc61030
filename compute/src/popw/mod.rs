//! Proof of physical work for compute: fast provers for the int8 GEMM challenges that
//! `cairn_proofs::compute` defines and the ledger verifies.
//!
//! A backend only multiplies; everything consensus-critical (matrix generation, the
//! commitment layout, opening indices) comes from `cairn_proofs`, so a backend that
//! computes the right product produces the root and openings the ledger expects, and one
//! that does not is caught by the same checks as a cheating prover. [`check_exact`] holds a
//! backend to the reference before it is trusted with a challenge.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;

use std::time::{Duration, Instant};

use cairn_proofs::GemmShape;
use cairn_proofs::compute::{self, generate_a, generate_b};
use cairn_proofs::merkle::{self, MerkleTree};
use cairn_types::Hash;
use cairn_types::proof::ComputeOpening;

pub use cpu::CpuBackend;

/// Entries of C a backend may be asked for at most (4 GiB of i32): far above any challenge
/// the ledger issues (`max_gemm_dim`² ≤ 2^28), low enough to refuse absurd shapes early.
pub const MAX_ENTRIES: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("operand {operand} has {actual} elements, the shape {m}×{k}×{n} needs {expected}")]
    OperandLength {
        operand: &'static str,
        expected: u64,
        actual: u64,
        m: u32,
        k: u32,
        n: u32,
    },
    #[error("shape {m}×{k}×{n} has {entries} output entries, more than the limit of {limit}")]
    TooLarge {
        m: u32,
        k: u32,
        n: u32,
        entries: u64,
        limit: u64,
    },
    #[error("backend {backend} is not available: {reason}")]
    Unavailable {
        backend: &'static str,
        reason: String,
    },
    #[error("{backend} failed during {step}: {detail}")]
    Device {
        backend: &'static str,
        step: &'static str,
        detail: String,
    },
    #[error(
        "{backend} is not exact: entry {index} of {m}×{k}×{n} is {got}, the reference says {expected}"
    )]
    NotExact {
        backend: String,
        index: u64,
        got: i32,
        expected: i32,
        m: u32,
        k: u32,
        n: u32,
    },
}

/// Something that computes C = A·B (row-major int8 in, row-major int32 out) exactly.
pub trait GemmBackend: Send + Sync {
    /// Human-readable name with the details that matter for a benchmark (kernel, threads, device).
    fn name(&self) -> String;

    /// The exact product, entries wrapping modulo 2^32 like the reference.
    fn gemm(&self, a: &[i8], b: &[i8], shape: GemmShape) -> Result<Vec<i32>, BackendError>;
}

/// Validates operand lengths and the output size; returns (m, k, n) as usize.
pub(crate) fn check_operands(
    a: &[i8],
    b: &[i8],
    shape: GemmShape,
) -> Result<(usize, usize, usize), BackendError> {
    let GemmShape { m, k, n } = shape;
    if shape.entries() > MAX_ENTRIES {
        return Err(BackendError::TooLarge {
            m,
            k,
            n,
            entries: shape.entries(),
            limit: MAX_ENTRIES,
        });
    }
    let len = |v: &[i8]| u64::try_from(v.len()).unwrap_or(u64::MAX);
    for (operand, data, expected) in [
        ("A", a, u64::from(m) * u64::from(k)),
        ("B", b, u64::from(k) * u64::from(n)),
    ] {
        if len(data) != expected {
            return Err(BackendError::OperandLength {
                operand,
                expected,
                actual: len(data),
                m,
                k,
                n,
            });
        }
    }
    let size = |d: u32| usize::try_from(d).unwrap_or(usize::MAX);
    Ok((size(m), size(k), size(n)))
}

/// A solved challenge: the product, its commitment, and where the time went.
pub struct Solution {
    pub shape: GemmShape,
    pub product: Vec<i32>,
    pub tree: MerkleTree,
    pub generate: Duration,
    pub multiply: Duration,
    pub commit: Duration,
}

impl Solution {
    pub fn root(&self) -> Hash {
        self.tree.root()
    }

    /// Openings for the entries the reveal seed picked.
    pub fn open(&self, indices: &[u64]) -> Vec<ComputeOpening> {
        compute::open(&self.tree, &self.product, indices)
    }

    pub fn total(&self) -> Duration {
        self.generate + self.multiply + self.commit
    }
}

/// Expands the seed, multiplies on `backend` and commits to the product.
pub fn solve(
    backend: &dyn GemmBackend,
    seed: &Hash,
    shape: GemmShape,
    threads: usize,
) -> Result<Solution, BackendError> {
    let start = Instant::now();
    let (a, b) = (generate_a(seed, shape), generate_b(seed, shape));
    let generated = Instant::now();
    let product = backend.gemm(&a, &b, shape)?;
    let multiplied = Instant::now();
    let tree = commit_parallel(&product, threads);
    Ok(Solution {
        shape,
        product,
        tree,
        generate: generated - start,
        multiply: multiplied - generated,
        commit: multiplied.elapsed(),
    })
}

/// The commitment of `cairn_proofs::compute::commit`, built on `threads` threads: leaf
/// hashes and each level of nodes split into contiguous, even-aligned chunks. Same root and
/// paths by construction (same leaves, same pairing); the tests compare it with the
/// reference.
pub fn commit_parallel(product: &[i32], threads: usize) -> MerkleTree {
    const LEAF: usize = cairn_types::proof::ENTRIES_PER_LEAF;
    let leaves = product.len().div_ceil(LEAF);
    let threads = threads.clamp(1, 64);
    if threads == 1 || leaves < 4096 {
        return compute::commit(product);
    }
    let leaves_per_thread = leaves.div_ceil(threads);
    let mut level = vec![Hash::default(); leaves];
    std::thread::scope(|scope| {
        for (chunk, out) in product
            .chunks(leaves_per_thread * LEAF)
            .zip(level.chunks_mut(leaves_per_thread))
        {
            scope.spawn(move || {
                for (leaf, slot) in chunk.chunks(LEAF).zip(out.iter_mut()) {
                    *slot = compute::leaf_hash_of(leaf);
                }
            });
        }
    });
    let mut levels = vec![level];
    while let Some(below) = levels.last().filter(|l| l.len() > 1) {
        let mut next = vec![Hash::default(); below.len().div_ceil(2)];
        // Chunks of an even number of children map onto whole parents.
        let parents_per_thread = next.len().div_ceil(threads).max(1024);
        std::thread::scope(|scope| {
            for (children, parents) in below
                .chunks(parents_per_thread * 2)
                .zip(next.chunks_mut(parents_per_thread))
            {
                scope.spawn(move || {
                    for (pair, slot) in children.chunks(2).zip(parents.iter_mut()) {
                        *slot = match pair {
                            [left, right] => merkle::node_hash(left, right),
                            [single] => *single,
                            _ => Hash::default(),
                        };
                    }
                });
            }
        });
        levels.push(next);
    }
    // The shape is right by construction; fall back to the reference if that ever breaks.
    MerkleTree::from_levels(levels).unwrap_or_else(|| compute::commit(product))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_commitment_equals_the_reference() {
        for entries in [1usize, 5, 16_384, 16_385, 70_001, 262_144] {
            let product: Vec<i32> = (0..entries)
                .map(|i| i32::try_from(i).unwrap().wrapping_mul(2_654_435))
                .collect();
            let reference = compute::commit(&product);
            for threads in [1, 2, 3, 7] {
                assert_eq!(
                    commit_parallel(&product, threads),
                    reference,
                    "{entries} on {threads}"
                );
            }
        }
    }
}

/// What [`check_exact`] compared.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExactnessReport {
    pub backend: String,
    pub m: u32,
    pub k: u32,
    pub n: u32,
    /// Entries compared with the naive reference product (all of them for small shapes).
    pub full_compared: u64,
    /// Entries recomputed from the seed alone, as a verifier does.
    pub sampled_compared: u64,
}

/// Holds `backend` to the reference: the whole product against `gemm_reference` when the
/// shape is small enough for the naive loop (≤ 2^31 multiply-adds), and always `samples`
/// entries against the verifier's own recomputation from the seed.
pub fn check_exact(
    backend: &dyn GemmBackend,
    seed: &Hash,
    shape: GemmShape,
    samples: u32,
) -> Result<ExactnessReport, BackendError> {
    let (a, b) = (generate_a(seed, shape), generate_b(seed, shape));
    let product = backend.gemm(&a, &b, shape)?;
    let not_exact = |index: u64, got: i32, expected: i32| BackendError::NotExact {
        backend: backend.name(),
        index,
        got,
        expected,
        m: shape.m,
        k: shape.k,
        n: shape.n,
    };
    let mut full_compared = 0;
    if shape.ops() / 2 <= 1 << 31 {
        let reference = compute::gemm_reference(&a, &b, shape);
        if let Some((index, (got, expected))) = product
            .iter()
            .zip(&reference)
            .enumerate()
            .find(|(_, (g, e))| g != e)
        {
            return Err(not_exact(
                u64::try_from(index).unwrap_or(u64::MAX),
                *got,
                *expected,
            ));
        }
        full_compared = shape.entries();
    }
    let indices = compute::opening_indices(
        &Hash::domain("cairn.popw.exactness.v1", &[seed.as_bytes()]),
        cairn_types::ChallengeId(0),
        shape,
        usize::try_from(samples).unwrap_or(usize::MAX),
    );
    for &index in &indices {
        let expected = compute::entry(seed, shape, index);
        let got = usize::try_from(index)
            .ok()
            .and_then(|i| product.get(i))
            .copied()
            .unwrap_or(!expected);
        if got != expected {
            return Err(not_exact(index, got, expected));
        }
    }
    Ok(ExactnessReport {
        backend: backend.name(),
        m: shape.m,
        k: shape.k,
        n: shape.n,
        full_compared,
        sampled_compared: u64::try_from(indices.len()).unwrap_or(u64::MAX),
    })
}

/// Picks a backend by name: `cpu`, or `cuda` when built with the `cuda` feature.
pub fn backend_named(
    name: &str,
    threads: Option<usize>,
) -> Result<Box<dyn GemmBackend>, BackendError> {
    match name {
        "cpu" => Ok(Box::new(
            threads.map_or_else(CpuBackend::new, CpuBackend::with_threads),
        )),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Box::new(cuda::CudaBackend::new(0)?)),
        #[cfg(not(feature = "cuda"))]
        "cuda" => Err(BackendError::Unavailable {
            backend: "cuda",
            reason:
                "this binary was built without the `cuda` feature (cargo build --release -p cairn-cli --features cuda)"
                    .to_string(),
        }),
        _ => Err(BackendError::Unavailable {
            backend: "unknown",
            reason: format!("no backend named {name:?}: expected cpu or cuda"),
        }),
    }
}
