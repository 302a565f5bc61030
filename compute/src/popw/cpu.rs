//! The CPU backend: a cache-blocked, multi-threaded int8 GEMM with exact int32 sums.
//!
//! Operands are widened once to i16 and B is transposed, so that every entry of C is a dot
//! product of two contiguous i16 rows. On x86-64 with AVX2 the dot products run on
//! `vpmaddwd` (sixteen i16 products summed pairwise into eight i32 lanes), four rows of A
//! against two rows of Bᵀ at a time so each load feeds several multiply-adds. Elsewhere the
//! same loops run in portable code that the compiler vectorizes as it can.
//!
//! Exactness: a product of two int8 values and the sum of two such products fit in i32, and
//! every further addition wraps modulo 2^32 exactly like the reference's `wrapping_add`, so
//! the result is bit-identical to [`cairn_proofs::compute::gemm_reference`] for any shape,
//! whatever the blocking or the number of threads.

use super::{BackendError, GemmBackend, check_operands};
use cairn_proofs::GemmShape;

/// Inner-dimension block (i16 elements): 4 + 2 rows of it stay within L1.
const K_BLOCK: usize = 1024;
/// Columns of C per block: that many rows of Bᵀ (×K_BLOCK) stay within L2.
const N_BLOCK: usize = 128;
/// SIMD width in i16 elements; rows are zero-padded to a multiple of it.
const LANES: usize = 16;

/// Multi-threaded CPU backend.
#[derive(Clone, Debug)]
pub struct CpuBackend {
    threads: usize,
}

impl CpuBackend {
    /// Uses every core the OS reports.
    pub fn new() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        Self { threads }
    }

    /// Uses exactly `threads` threads (at least one).
    pub fn with_threads(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The instruction set the kernel runs on this machine.
    pub fn kernel() -> &'static str {
        if simd::available() {
            "avx2"
        } else {
            "portable"
        }
    }
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl GemmBackend for CpuBackend {
    fn name(&self) -> String {
        format!("cpu ({}, {} threads)", Self::kernel(), self.threads)
    }

    fn gemm(&self, a: &[i8], b: &[i8], shape: GemmShape) -> Result<Vec<i32>, BackendError> {
        let dims = check_operands(a, b, shape)?;
        let (m, k, n) = dims;
        let mut c = vec![0i32; m * n];
        if m == 0 || n == 0 || k == 0 {
            return Ok(c);
        }
        let kp = k.div_ceil(LANES) * LANES;
        let a16 = widen_rows(a, m, k, kp);
        let bt16 = transpose_widen(b, k, n, kp);
        let packed = Packed {
            a: &a16,
            bt: &bt16,
            kp,
            n,
        };
        // Row ranges in multiples of 4 so every thread but the last runs whole tiles.
        let rows_per_thread = m.div_ceil(self.threads).div_ceil(4) * 4;
        std::thread::scope(|scope| {
            for (chunk_index, c_rows) in c.chunks_mut(rows_per_thread * n).enumerate() {
                let first_row = chunk_index * rows_per_thread;
                let packed = &packed;
                scope.spawn(move || packed.rows(first_row, c_rows));
            }
        });
        Ok(c)
    }
}

/// A as i16 rows of stride `kp`, zero-padded.
fn widen_rows(a: &[i8], rows: usize, k: usize, kp: usize) -> Vec<i16> {
    let mut out = vec![0i16; rows * kp];
    for (dst, src) in out.chunks_exact_mut(kp).zip(a.chunks_exact(k)) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = i16::from(s);
        }
    }
    out
}

/// Bᵀ as i16 rows of stride `kp`: row j holds column j of B.
fn transpose_widen(b: &[i8], k: usize, n: usize, kp: usize) -> Vec<i16> {
    let mut out = vec![0i16; n * kp];
    for (p, b_row) in b.chunks_exact(n).enumerate().take(k) {
        for (j, &value) in b_row.iter().enumerate() {
            out[j * kp + p] = i16::from(value);
        }
    }
    out
}

struct Packed<'a> {
    a: &'a [i16],
    bt: &'a [i16],
    kp: usize,
    n: usize,
}

impl Packed<'_> {
    fn a_row(&self, i: usize, k0: usize, k1: usize) -> &[i16] {
        &self.a[i * self.kp + k0..i * self.kp + k1]
    }

    fn bt_row(&self, j: usize, k0: usize, k1: usize) -> &[i16] {
        &self.bt[j * self.kp + k0..j * self.kp + k1]
    }

    /// Fills `c_rows` (whole rows of C starting at `first_row`), block by block.
    fn rows(&self, first_row: usize, c_rows: &mut [i32]) {
        let n = self.n;
        let rows = c_rows.len() / n;
        let use_simd = simd::available();
        for j0 in (0..n).step_by(N_BLOCK) {
            let j1 = (j0 + N_BLOCK).min(n);
            for k0 in (0..self.kp).step_by(K_BLOCK) {
                let k1 = (k0 + K_BLOCK).min(self.kp);
                let mut r = 0;
                while r < rows {
                    let tile_rows = (rows - r).min(4);
                    let mut j = j0;
                    while j < j1 {
                        let tile_cols = (j1 - j).min(2);
                        if tile_rows == 4 && tile_cols == 2 {
                            let a = [0, 1, 2, 3].map(|d| self.a_row(first_row + r + d, k0, k1));
                            let b = [0, 1].map(|d| self.bt_row(j + d, k0, k1));
                            let sums = if use_simd {
                                simd::tile_4x2(a, b)
                            } else {
                                portable_tile(a, b)
                            };
                            for (d, row) in sums.iter().enumerate() {
                                for (e, sum) in row.iter().enumerate() {
                                    let slot = &mut c_rows[(r + d) * n + j + e];
                                    *slot = slot.wrapping_add(*sum);
                                }
                            }
                        } else {
                            for d in 0..tile_rows {
                                for e in 0..tile_cols {
                                    let a = self.a_row(first_row + r + d, k0, k1);
                                    let b = self.bt_row(j + e, k0, k1);
                                    let sum = if use_simd {
                                        simd::dot(a, b)
                                    } else {
                                        portable_dot(a, b)
                                    };
                                    let slot = &mut c_rows[(r + d) * n + j + e];
                                    *slot = slot.wrapping_add(sum);
                                }
                            }
                        }
                        j += tile_cols;
                    }
                    r += tile_rows;
                }
            }
        }
    }
}

fn portable_dot(a: &[i16], b: &[i16]) -> i32 {
    // Lane-wise partial sums in the shape of the SIMD kernel; the compiler vectorizes it.
    let mut lanes = [0i32; LANES];
    for (ca, cb) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(ca).zip(cb) {
            *lane = lane.wrapping_add(i32::from(x) * i32::from(y));
        }
    }
    lanes.iter().fold(0i32, |acc, &v| acc.wrapping_add(v))
}

fn portable_tile(a: [&[i16]; 4], b: [&[i16]; 2]) -> [[i32; 2]; 4] {
    a.map(|row| b.map(|col| portable_dot(row, col)))
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod simd {
    //! AVX2 kernels. `unsafe` is confined here: the intrinsics need it, and every entry point
    //! is reached only after `available()` said the CPU has AVX2.
    use super::LANES;
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi32, _mm256_loadu_si256, _mm256_madd_epi16, _mm256_setzero_si256,
        _mm256_storeu_si256,
    };

    pub fn available() -> bool {
        std::is_x86_feature_detected!("avx2")
    }

    fn hsum(v: __m256i) -> i32 {
        let mut lanes = [0i32; 8];
        // SAFETY: `lanes` is 32 writable bytes; the unaligned store has no other requirement.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast::<__m256i>(), v) };
        lanes.iter().fold(0i32, |acc, &x| acc.wrapping_add(x))
    }

    pub fn dot(a: &[i16], b: &[i16]) -> i32 {
        assert!(available() && a.len() == b.len() && a.len().is_multiple_of(LANES));
        // SAFETY: AVX2 checked above; lengths checked so every 16-lane load is in bounds.
        unsafe { dot_avx2(a, b) }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn dot_avx2(a: &[i16], b: &[i16]) -> i32 {
        let mut acc = _mm256_setzero_si256();
        for (ca, cb) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
            // SAFETY: each chunk is exactly 16 i16 = 32 bytes; unaligned loads are allowed.
            let (va, vb) = unsafe {
                (
                    _mm256_loadu_si256(ca.as_ptr().cast::<__m256i>()),
                    _mm256_loadu_si256(cb.as_ptr().cast::<__m256i>()),
                )
            };
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(va, vb));
        }
        hsum(acc)
    }

    pub fn tile_4x2(a: [&[i16]; 4], b: [&[i16]; 2]) -> [[i32; 2]; 4] {
        let len = b[0].len();
        assert!(
            available()
                && len.is_multiple_of(LANES)
                && b.iter().all(|r| r.len() == len)
                && a.iter().all(|r| r.len() == len)
        );
        // SAFETY: AVX2 checked above; all six rows have the same length, a multiple of 16.
        unsafe { tile_4x2_avx2(a, b) }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn tile_4x2_avx2(a: [&[i16]; 4], b: [&[i16]; 2]) -> [[i32; 2]; 4] {
        let mut acc = [[_mm256_setzero_si256(); 2]; 4];
        let len = b[0].len();
        let mut t = 0;
        while t < len {
            // SAFETY: t + 16 <= len for every row (checked by the caller), unaligned loads.
            unsafe {
                let b0 = _mm256_loadu_si256(b[0].as_ptr().add(t).cast::<__m256i>());
                let b1 = _mm256_loadu_si256(b[1].as_ptr().add(t).cast::<__m256i>());
                for (row, acc_row) in a.iter().zip(acc.iter_mut()) {
                    let va = _mm256_loadu_si256(row.as_ptr().add(t).cast::<__m256i>());
                    acc_row[0] = _mm256_add_epi32(acc_row[0], _mm256_madd_epi16(va, b0));
                    acc_row[1] = _mm256_add_epi32(acc_row[1], _mm256_madd_epi16(va, b1));
                }
            }
            t += LANES;
        }
        acc.map(|row| row.map(hsum))
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod simd {
    pub fn available() -> bool {
        false
    }
    pub fn dot(a: &[i16], b: &[i16]) -> i32 {
        super::portable_dot(a, b)
    }
    pub fn tile_4x2(a: [&[i16]; 4], b: [&[i16]; 2]) -> [[i32; 2]; 4] {
        super::portable_tile(a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proofs::compute::{gemm_reference, generate_a, generate_b};
    use cairn_types::Hash;

    fn shape(m: u32, k: u32, n: u32) -> GemmShape {
        GemmShape { m, k, n }
    }

    #[test]
    fn matches_the_reference_on_odd_shapes_and_thread_counts() {
        for (i, (m, k, n)) in [
            (1, 1, 1),
            (5, 3, 7),
            (17, 33, 9),
            (64, 1040, 48),
            (9, 2049, 131),
        ]
        .into_iter()
        .enumerate()
        {
            let s = shape(m, k, n);
            let seed = Hash::domain("test", &[&[u8::try_from(i).unwrap()]]);
            let (a, b) = (generate_a(&seed, s), generate_b(&seed, s));
            let expected = gemm_reference(&a, &b, s);
            for threads in [1, 2, 3, 8] {
                assert_eq!(
                    CpuBackend::with_threads(threads).gemm(&a, &b, s).unwrap(),
                    expected,
                    "{s:?} with {threads} threads"
                );
            }
        }
    }

    #[test]
    fn extreme_operands_wrap_like_the_reference() {
        // k large enough that sums of -128·-128 overflow i32: both must wrap identically.
        let s = shape(4, 140_000, 2);
        let a = vec![i8::MIN; 4 * 140_000];
        let b = vec![i8::MIN; 140_000 * 2];
        assert_eq!(
            CpuBackend::with_threads(2).gemm(&a, &b, s).unwrap(),
            gemm_reference(&a, &b, s)
        );
    }

    #[test]
    fn portable_path_matches_too() {
        let s = shape(8, 100, 6);
        let seed = Hash::domain("portable", &[]);
        let (a, b) = (generate_a(&seed, s), generate_b(&seed, s));
        let kp = 112;
        let packed_a = widen_rows(&a, 8, 100, kp);
        let packed_b = transpose_widen(&b, 100, 6, kp);
        let expected = gemm_reference(&a, &b, s);
        for i in 0..8 {
            for j in 0..6 {
                let got = portable_dot(
                    &packed_a[i * kp..(i + 1) * kp],
                    &packed_b[j * kp..(j + 1) * kp],
                );
                assert_eq!(got, expected[i * 6 + j]);
            }
        }
    }
}
