//! `cairn bench popw`: the proof-of-compute backends measured on this machine.
//!
//! Checks the backend bit for bit against the reference first (a backend that is fast and
//! wrong would fail every challenge), then reports its int8 rate beside the naive loop (CPU)
//! or the GPU's datasheet peak (CUDA), the validators' verification cost per challenge, and
//! what answering the challenge the default parameters would issue costs a provider.

use crate::Global;
use crate::account::print;
use anyhow::{Context, Result, bail};
use cairn_compute::gpu;
use cairn_compute::popw::{self, GemmBackend};
use cairn_ledger::Params;
use cairn_proofs::GemmShape;
use cairn_proofs::compute::{
    commit, gemm_reference, generate_a, generate_b, open, opening_indices, shape_for,
    verify_openings,
};
use cairn_types::{ChallengeId, Hash};
use clap::Args;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct PopwBenchArgs {
    /// Backend to measure: `cpu`, or `cuda` in a binary built with `--features cuda`.
    #[arg(long, default_value = "cpu")]
    pub backend: String,
    /// CPU threads (default: every core).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,
    /// Rows of A and C (default 2048 on the CPU, 8192 on a GPU).
    #[arg(long, value_parser = clap::value_parser!(u32).range(16..=65_536))]
    pub m: Option<u32>,
    /// Inner dimension (default 4096 on the CPU, 8192 on a GPU).
    #[arg(long, value_parser = clap::value_parser!(u32).range(16..=131_056))]
    pub k: Option<u32>,
    /// Columns of B and C (default: m).
    #[arg(long, value_parser = clap::value_parser!(u32).range(16..=65_536))]
    pub n: Option<u32>,
    /// Timed repetitions of the product.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub iterations: u32,
    /// Skip solving the challenge the default parameters would issue at the measured rate.
    #[arg(long)]
    pub skip_challenge: bool,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Operations per second in units of 10^9.
fn gops(ops: u128, elapsed: Duration) -> f64 {
    let ops = u64::try_from(ops).unwrap_or(u64::MAX);
    // Precision is irrelevant at these magnitudes: a benchmark figure, not a verdict.
    #[allow(clippy::cast_precision_loss)]
    let ops = ops as f64;
    ops / secs(elapsed).max(1e-9) / 1e9
}

fn round(v: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (v * scale).round() / scale
}

pub fn run(global: &Global, args: PopwBenchArgs) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = args
        .threads
        .map(|t| usize::try_from(t).unwrap_or(usize::MAX));
    let backend = popw::backend_named(&args.backend, threads)?;
    let on_gpu = args.backend == "cuda";
    let default_dim = if on_gpu { 8192 } else { 2048 };
    let m = args.m.unwrap_or(default_dim);
    let shape = GemmShape {
        m,
        k: args.k.unwrap_or(if on_gpu { 8192 } else { 4096 }),
        n: args.n.unwrap_or(m),
    };
    let discovery = gpu::discover();

    // 1. Exactness: a small shape against the naive product in full, then the benchmark
    //    shape against the verifier's recomputation of sampled entries.
    let seed = Hash::domain("cairn.bench.popw.v1", &[]);
    let mut progress = crate::progress::Progress::new(global.json, "", None, "");
    progress.phase("checking exactness against the reference");
    let small = GemmShape {
        m: 160,
        k: 1040,
        n: 176,
    };
    let small_report = popw::check_exact(backend.as_ref(), &seed, small, 256)
        .context("exactness against the reference")?;
    let (a, b) = (generate_a(&seed, shape), generate_b(&seed, shape));

    // 2. Throughput of the product (transfers included for a GPU; kernel-only below).
    progress.phase(&format!(
        "timing {} products of {}x{}x{}",
        args.iterations, shape.m, shape.k, shape.n
    ));
    let mut product = backend.gemm(&a, &b, shape)?; // warm-up
    let start = Instant::now();
    for _ in 0..args.iterations {
        product = backend.gemm(&a, &b, shape)?;
    }
    let mean = start.elapsed() / args.iterations;
    let sampled = opening_indices(
        &Hash::domain("cairn.bench.popw.sample", &[]),
        ChallengeId(0),
        shape,
        512,
    );
    for &index in &sampled {
        let expected = cairn_proofs::compute::entry(&seed, shape, index);
        let got = usize::try_from(index)
            .ok()
            .and_then(|i| product.get(i))
            .copied();
        if got != Some(expected) {
            bail!(
                "{} is not exact on {}×{}×{}: entry {index} is {got:?}, the reference says {expected}",
                backend.name(),
                shape.m,
                shape.k,
                shape.n
            );
        }
    }
    let rate_gops = gops(shape.ops(), mean);
    let mut gemm = json!({
        "m": shape.m, "k": shape.k, "n": shape.n,
        "ops": shape.ops().to_string(),
        "iterations": args.iterations,
        "mean_s": round(secs(mean), 4),
        "gops": round(rate_gops, 1),
        "sampled_entries_checked": sampled.len(),
    });

    let mut comparison = json!({});
    if on_gpu {
        #[cfg(feature = "cuda")]
        {
            let cuda = cairn_compute::popw::cuda::CudaBackend::new(0)?;
            let iterations = args.iterations.max(10);
            let (kernel_product, kernel_mean) = cuda.time_kernel(&a, &b, shape, iterations)?;
            if kernel_product != product {
                bail!("the timed kernel's product differs from the checked one");
            }
            let cpu = popw::CpuBackend::new().gemm(&a, &b, shape)?;
            let full_match = cpu == product;
            if !full_match {
                bail!("the GPU product differs from the CPU backend's on the benchmark shape");
            }
            let tops = gops(shape.ops(), kernel_mean) / 1e3;
            let peak = gpu::int8_dense_peak_tops(cuda.device_name());
            comparison = json!({
                "device": cuda.device_name(),
                "kernel_mean_s": round(secs(kernel_mean), 6),
                "kernel_tops": round(tops, 1),
                "int8_dense_peak_tops": peak,
                "share_of_peak": peak.map(|p| round(tops / p, 3)),
                "full_product_equals_cpu_backend": full_match,
            });
        }
    } else {
        let naive_shape = GemmShape {
            m: 256,
            k: 1024,
            n: 256,
        };
        let (na, nb) = (
            generate_a(&seed, naive_shape),
            generate_b(&seed, naive_shape),
        );
        let start = Instant::now();
        let reference = gemm_reference(&na, &nb, naive_shape);
        let naive_time = start.elapsed();
        let one = popw::CpuBackend::with_threads(1);
        let start = Instant::now();
        let fast = one.gemm(&na, &nb, naive_shape)?;
        let one_time = start.elapsed();
        if fast != reference {
            bail!("the one-thread CPU backend differs from the reference");
        }
        let threads_used = threads.unwrap_or(cores);
        comparison = json!({
            "kernel": popw::CpuBackend::kernel(),
            "threads": threads_used,
            "gops_per_core": round(rate_gops / f64::from(u32::try_from(threads_used.min(cores)).unwrap_or(1)), 1),
            "naive_loop_gops_one_core": round(gops(naive_shape.ops(), naive_time), 2),
            "backend_gops_one_thread": round(gops(naive_shape.ops(), one_time), 1),
            "speedup_one_thread_over_naive": round(secs(naive_time) / secs(one_time).max(1e-9), 1),
        });
    }
    gemm["comparison"] = comparison;

    // 3. Verification: what each validator spends on one challenge (700 openings, k = 4096,
    //    a 4096×4096 product: paths of 22 hashes; the largest challenge adds 4 per path).
    let params = Params::default();
    progress.phase("timing the verifier on a 4096x4096x4096 challenge");
    let verify_shape = GemmShape {
        m: 4096,
        k: 4096,
        n: 4096,
    };
    let (va, vb) = (
        generate_a(&seed, verify_shape),
        generate_b(&seed, verify_shape),
    );
    let vc = backend.gemm(&va, &vb, verify_shape)?;
    let tree = commit(&vc);
    let indices = opening_indices(
        &Hash::domain("cairn.bench.popw.reveal", &[]),
        ChallengeId(1),
        verify_shape,
        usize::from(params.compute_openings),
    );
    let openings = open(&tree, &vc, &indices);
    let root = tree.root();
    let rounds = 20u32;
    let start = Instant::now();
    for _ in 0..rounds {
        verify_openings(&seed, verify_shape, &root, &indices, &openings)
            .context("verifying an honest challenge")?;
    }
    let verify_ms = secs(start.elapsed() / rounds) * 1e3;

    // 4. The challenge default parameters would issue at the measured rate, solved for real.
    let challenge = if args.skip_challenge {
        Value::Null
    } else {
        let claimed = u64::try_from(shape.ops().saturating_mul(1_000) / mean.as_millis().max(1))
            .unwrap_or(u64::MAX);
        let issued = shape_for(claimed, params.compute_challenge_ms, params.max_gemm_dim);
        progress.phase("solving the challenge the default parameters would issue");
        let solution = popw::solve(
            backend.as_ref(),
            &Hash::domain("cairn.bench.popw.challenge", &[]),
            issued,
            threads.unwrap_or(cores),
        )?;
        let period_ms = params.compute_challenge_interval_epochs
            * params.epoch_length_blocks
            * params.block_time_ms;
        let total_ms = solution.total().as_secs_f64() * 1e3;
        json!({
            "claimed_gops": round(gops(u128::from(claimed), Duration::from_secs(1)), 1),
            "m": issued.m, "k": issued.k, "n": issued.n,
            "target_ms": params.compute_challenge_ms,
            "generate_ms": round(secs(solution.generate) * 1e3, 1),
            "multiply_ms": round(secs(solution.multiply) * 1e3, 1),
            "commit_ms": round(secs(solution.commit) * 1e3, 1),
            "total_ms": round(total_ms, 1),
            "challenge_period_ms": period_ms,
            "share_of_provider_time_percent": round(total_ms * 100.0 / f64::from(u32::try_from(period_ms).unwrap_or(u32::MAX)), 3),
        })
    };

    let report = json!({
        "backend": backend.name(),
        "cores": cores,
        "gpus": discovery,
        "exactness": {
            "full_reference_check": small_report,
            "benchmark_shape_sampled_entries": sampled.len(),
        },
        "gemm": gemm,
        "verification": {
            "openings": params.compute_openings,
            "k": verify_shape.k,
            "m": verify_shape.m,
            "n": verify_shape.n,
            "ms_per_challenge_one_core": round(verify_ms, 3),
        },
        "challenge": challenge,
    });
    print(global, &report)
}
