//! int8 GEMM throughput of the CPU backend against the naive reference, and the verifier's
//! cost per challenge. Figures go to docs/benchmarks.md (`cairn bench popw` prints the same
//! kind of figures for any backend, CUDA included).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_compute::popw::{CpuBackend, GemmBackend};
use cairn_proofs::GemmShape;
use cairn_proofs::compute::{
    commit, gemm_reference, generate_a, generate_b, open, opening_indices, verify_openings,
};
use cairn_types::{ChallengeId, Hash};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn gemm(c: &mut Criterion) {
    let shape = GemmShape {
        m: 512,
        k: 1024,
        n: 512,
    };
    let seed = Hash::domain("bench", &[]);
    let (a, b) = (generate_a(&seed, shape), generate_b(&seed, shape));
    let mut group = c.benchmark_group("int8_gemm_512x1024x512");
    group.sample_size(10);
    group.throughput(Throughput::Elements(u64::try_from(shape.ops()).unwrap()));
    group.bench_function("naive_reference", |bench| {
        bench.iter(|| gemm_reference(&a, &b, shape));
    });
    let one = CpuBackend::with_threads(1);
    group.bench_function("cpu_1_thread", |bench| {
        bench.iter(|| one.gemm(&a, &b, shape).unwrap());
    });
    let all = CpuBackend::new();
    group.bench_function("cpu_all_threads", |bench| {
        bench.iter(|| all.gemm(&a, &b, shape).unwrap());
    });
    group.finish();
}

fn verify(c: &mut Criterion) {
    // The verifier's work does not depend on m and n beyond the path length: a 4096×4096×4096
    // challenge (the ledger's k cap) with 700 openings, built from a small product whose tree
    // has the same depth would not be honest; build the real thing once (slow), then time
    // verification alone.
    let shape = GemmShape {
        m: 1024,
        k: 4096,
        n: 1024,
    };
    let seed = Hash::domain("bench.verify", &[]);
    let (a, b) = (generate_a(&seed, shape), generate_b(&seed, shape));
    let product = CpuBackend::new().gemm(&a, &b, shape).unwrap();
    let tree = commit(&product);
    let reveal = Hash::domain("bench.reveal", &[]);
    let indices = opening_indices(&reveal, ChallengeId(1), shape, 700);
    let openings = open(&tree, &product, &indices);
    let root = tree.root();
    let mut group = c.benchmark_group("verify_challenge");
    group.sample_size(20);
    group.bench_function("700_openings_k4096_1024x1024", |bench| {
        bench.iter(|| verify_openings(&seed, shape, &root, &indices, &openings).unwrap());
    });
    group.finish();
}

criterion_group!(benches, gemm, verify);
criterion_main!(benches);
