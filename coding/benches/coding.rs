//! Per-core (single-thread) rates of every stage of the coding pipeline, and of storage-proof
//! verification. Figures and what bounds them: docs/benchmarks.md, "Coding pipeline".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use cairn_coding::{
    CodingError, DataKey, Decoder, Encoder, Params, Protection, SegmentPieces, piece_cv,
};
use cairn_types::{DealId, Hash};
use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use std::num::NonZeroU16;

const K: usize = 10;
const M: usize = 4;
const PIECE: usize = 256 * 1024;

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 131 + i / 7) % 251).unwrap())
        .collect()
}

fn primitives(c: &mut Criterion) {
    let mut group = c.benchmark_group("primitives");
    let size = 1 << 20;
    group.throughput(Throughput::Bytes(u64::try_from(size).unwrap()));
    let mut buf = pattern(size);
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).unwrap());
    group.bench_function("aes256gcm_seal_1MiB", |b| {
        b.iter(|| {
            let tag = key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key([0; 12]),
                    Aad::empty(),
                    &mut buf,
                )
                .unwrap();
            let _ = black_box(tag);
        })
    });
    let src = pattern(size);
    let mut dst = vec![0u8; size];
    group.bench_function("memcpy_1MiB", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        })
    });
    let piece = pattern(PIECE);
    group.throughput(Throughput::Bytes(u64::try_from(PIECE).unwrap()));
    group.bench_function("commit_piece_cv_blake3_tree", |b| {
        b.iter(|| black_box(piece_cv(black_box(&piece), 1)))
    });
    group.bench_function("blake3_hash_whole_piece", |b| {
        b.iter(|| black_box(blake3::hash(black_box(&piece))))
    });
    group.finish();
}

fn erasure(c: &mut Criterion) {
    let mut group = c.benchmark_group("reed_solomon_10_4");
    let data: Vec<Vec<u8>> = (0..K).map(|i| pattern(PIECE + i)[i..].to_vec()).collect();
    group.throughput(Throughput::Bytes(u64::try_from(K * PIECE).unwrap()));

    let mut encoder = commonware_cryptography::reed_solomon::Encoder::new(K, M, PIECE).unwrap();
    group.bench_function("encode/commonware_vendored", |b| {
        b.iter(|| {
            for piece in &data {
                encoder.add_original_shard(piece).unwrap();
            }
            let result = encoder.encode().unwrap();
            black_box(result.recovery(0).unwrap()[0]);
        })
    });
    let mut simd = reed_solomon_simd::ReedSolomonEncoder::new(K, M, PIECE).unwrap();
    group.bench_function("encode/reed_solomon_simd", |b| {
        b.iter(|| {
            for piece in &data {
                simd.add_original_shard(piece).unwrap();
            }
            let result = simd.encode().unwrap();
            black_box(result.recovery(0).unwrap()[0]);
        })
    });
    let parity: Vec<Vec<u8>> = {
        for piece in &data {
            encoder.add_original_shard(piece).unwrap();
        }
        let result = encoder.encode().unwrap();
        (0..M)
            .map(|i| result.recovery(i).unwrap().to_vec())
            .collect()
    };
    // Worst case: m data pieces lost, rebuilt from the rest plus every parity piece.
    let mut decoder = commonware_cryptography::reed_solomon::Decoder::new(K, M, PIECE).unwrap();
    group.bench_function("decode_m_lost/commonware_vendored", |b| {
        b.iter(|| {
            for (i, piece) in data.iter().enumerate().skip(M) {
                decoder.add_original_shard(i, piece).unwrap();
            }
            for (i, piece) in parity.iter().enumerate() {
                decoder.add_recovery_shard(i, piece).unwrap();
            }
            let result = decoder.decode().unwrap().unwrap();
            black_box(result.original(0).unwrap()[0]);
        })
    });
    let mut simd_decoder = reed_solomon_simd::ReedSolomonDecoder::new(K, M, PIECE).unwrap();
    group.bench_function("decode_m_lost/reed_solomon_simd", |b| {
        b.iter(|| {
            for (i, piece) in data.iter().enumerate().skip(M) {
                simd_decoder.add_original_shard(i, piece).unwrap();
            }
            for (i, piece) in parity.iter().enumerate() {
                simd_decoder.add_recovery_shard(i, piece).unwrap();
            }
            let result = simd_decoder.decode().unwrap();
            black_box(result.restored_original(0).unwrap()[0]);
        })
    });
    // commonware-coding's Scheme: RS plus its own SHA-256 binary Merkle tree over shards.
    use commonware_coding::{Config, ReedSolomon, Scheme};
    let config = Config {
        minimum_shards: NonZeroU16::new(10).unwrap(),
        extra_shards: NonZeroU16::new(4).unwrap(),
    };
    let flat: Vec<u8> = data.concat();
    group.bench_function("encode/commonware_coding_scheme_sha256", |b| {
        b.iter(|| {
            let out = ReedSolomon::<commonware_cryptography::Sha256>::encode(
                &config,
                &flat[..],
                &commonware_parallel::Sequential,
            )
            .unwrap();
            black_box(out.0);
        })
    });
    group.finish();
}

fn pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline_10_4");
    group.sample_size(10);
    let params = Params::new(10, 4);
    let protection = Protection::Encrypted(DataKey::from_bytes([3; 32]));
    let segments = 8u64;
    let capacity = cairn_coding::Layout::new(1 << 40, &params, true)
        .unwrap()
        .segment_capacity_bytes();
    let size = capacity * segments;
    let data = pattern(usize::try_from(size).unwrap());
    group.throughput(Throughput::Bytes(size));
    group.bench_function("encode_encrypt_rs_commit", |b| {
        b.iter(|| {
            let mut encoder = Encoder::new(size, &params, &protection).unwrap();
            for chunk in data.chunks(usize::try_from(capacity).unwrap()) {
                black_box(encoder.push_segment(chunk).unwrap().piece(13).unwrap()[0]);
            }
        })
    });
    // Build real shards once for the decode side.
    let mut sinks = vec![Vec::new(); 14];
    let encoded = cairn_coding::encode(&data[..], size, &params, &protection, &mut sinks).unwrap();
    let layout = encoded.layout.clone();
    let mut decoder =
        Decoder::new(&encoded.meta, params.max_piece_size_bytes, &protection).unwrap();
    decoder.load_trailer(&encoded.trailer).unwrap();
    for (name, lost) in [
        ("decode_verify_rs_strict_decrypt/m_data_lost", M),
        ("decode_verify_rs_strict_decrypt/none_lost", 0),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                for segment in 0..segments {
                    let range = layout.piece_range(segment);
                    let r =
                        usize::try_from(range.start).unwrap()..usize::try_from(range.end).unwrap();
                    let pieces: Vec<Option<&[u8]>> = sinks
                        .iter()
                        .enumerate()
                        .map(|(i, s)| (i >= lost).then(|| &s[r.clone()]))
                        .collect();
                    black_box(decoder.decode_segment(segment, &pieces).unwrap()[0]);
                }
            })
        });
    }
    // Every core: segments coded on one lane per core (the client's put and get do this),
    // over 64 segments so the pipeline's fill, drain and buffers are amortized as in a put.
    let lanes = cairn_coding::available_lanes(8);
    let long_size = capacity * 64;
    let long_data = pattern(usize::try_from(long_size).unwrap());
    group.throughput(Throughput::Bytes(long_size));
    for lanes in [1, lanes] {
        group.bench_function(format!("encode_encrypt_rs_commit/{lanes}_lanes"), |b| {
            b.iter(|| {
                let encoded = cairn_coding::compute_meta_on_lanes(
                    &long_data[..],
                    long_size,
                    &params,
                    &protection,
                    lanes,
                )
                .unwrap();
                black_box(encoded.meta.id);
            })
        });
    }
    group.throughput(Throughput::Bytes(size));
    // The same 64 segments decoded on lanes, 4 data shards lost. The caller's thread
    // verifies each piece first (in the client, the download threads do).
    let mut long_sinks = vec![Vec::new(); 14];
    let long = cairn_coding::encode(
        &long_data[..],
        long_size,
        &params,
        &protection,
        &mut long_sinks,
    )
    .unwrap();
    let long_layout = long.layout.clone();
    let mut long_decoder =
        Decoder::new(&long.meta, params.max_piece_size_bytes, &protection).unwrap();
    long_decoder.load_trailer(&long.trailer).unwrap();
    let checker = long_decoder.piece_checker().unwrap();
    group.throughput(Throughput::Bytes(long_size));
    for lanes in [1, lanes] {
        group.bench_function(
            format!("decode_verify_rs_strict_decrypt/m_data_lost/{lanes}_lanes"),
            |b| {
                b.iter(|| {
                    let mut segment = 0u64;
                    long_decoder
                        .decode_on_lanes::<CodingError>(
                            lanes,
                            || {
                                if segment == long_layout.segment_count {
                                    return Ok(None);
                                }
                                let range = long_layout.piece_range(segment);
                                let r = usize::try_from(range.start).unwrap()
                                    ..usize::try_from(range.end).unwrap();
                                let pieces = (0u16..)
                                    .zip(&long_sinks)
                                    .map(|(i, s)| {
                                        (usize::from(i) >= M)
                                            .then(|| checker.check(i, segment, &s[r.clone()]))
                                            .transpose()
                                    })
                                    .collect::<Result<Vec<_>, _>>()?;
                                segment += 1;
                                Ok(Some(SegmentPieces::new(segment - 1, pieces)))
                            },
                            |_, plain| {
                                black_box(plain[0]);
                                Ok(())
                            },
                            drop,
                        )
                        .unwrap();
                })
            },
        );
    }
    group.finish();
}

fn storage_proofs(c: &mut Criterion) {
    let mut group = c.benchmark_group("storage_proof_verify");
    // A 64 MiB shard of 1 KiB leaves (depth 16), 8 chained leaves per proof (the default).
    let shard = pattern(64 << 20);
    let tree = cairn_proofs::storage::shard_tree(&shard, 1024).unwrap();
    let roots = vec![tree.root(); 14];
    let meta = cairn_types::tx::BlobMeta {
        id: Hash::ZERO,
        size_bytes: 640 << 20,
        data_shards: 10,
        parity_shards: 4,
        shard_size_bytes: 64 << 20,
        leaf_size_bytes: 1024,
        shard_roots: cairn_types::BoundedVec::new(roots).unwrap(),
    };
    // What an auditor pays per timed audit at the default rule (2 048 chained leaves).
    let rule = cairn_proofs::timed::AuditRule::default();
    let steps = usize::try_from(rule.steps).unwrap();
    let answers: Vec<_> = (0..4u64)
        .map(|n| {
            let seed = Hash::domain("bench.audit.seed", &[&n.to_be_bytes()]);
            (
                seed,
                cairn_proofs::storage::prove_chain(&shard, 1024, &seed, DealId(1), 0, steps),
            )
        })
        .collect();
    group.throughput(Throughput::Elements(1));
    group.bench_with_input(
        BenchmarkId::new("timed_audit", steps),
        &answers,
        |b, answers| {
            let mut i = 0;
            b.iter(|| {
                let (seed, leaves) = &answers[i % answers.len()];
                i += 1;
                rule.judge(&meta, seed, DealId(1), 0, leaves, 0).unwrap();
            })
        },
    );
    for leaves in [8usize, 64] {
        let proofs: Vec<_> = (0..32u64)
            .map(|n| {
                let seed = Hash::domain("bench.seed", &[&n.to_be_bytes()]);
                (
                    seed,
                    cairn_proofs::storage::prove(&shard, 1024, &seed, DealId(1), 0, leaves),
                )
            })
            .collect();
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("leaves", leaves), &proofs, |b, proofs| {
            let mut i = 0;
            b.iter(|| {
                let (seed, proof) = &proofs[i % proofs.len()];
                i += 1;
                cairn_proofs::storage::verify(&meta, seed, proof, leaves).unwrap();
            })
        });
    }
    group.finish();
}

/// What a validator pays per `ReportInconsistency`: k + 1 leaf openings and the header's
/// checked against their roots, one Reed-Solomon decode of k one-leaf shards and the
/// comparison. A 10 + 4 blob of 4 segments whose parity shard 12 has one changed piece.
fn inconsistency_proofs(c: &mut Criterion) {
    use cairn_proofs::inconsistency::{build, data_leaves, open_leaf, verify};
    let params = Params::new(u16::try_from(K).unwrap(), u16::try_from(M).unwrap());
    let data = pattern(K * PIECE * 4 - 1000);
    let mut shards: Vec<Vec<u8>> = vec![Vec::new(); K + M];
    let honest = cairn_coding::encode(
        &data[..],
        data.len() as u64,
        &params,
        &Protection::Public,
        &mut shards,
    )
    .unwrap();
    let layout = honest.layout.clone();
    let piece = usize::try_from(layout.piece_size_bytes).unwrap();
    shards[12][3 * piece..4 * piece].copy_from_slice(&pattern(piece)[..]);
    let meta = cairn_coding::commit_shards(&layout, &mut shards)
        .unwrap()
        .meta;
    let piece_size = u32::try_from(piece).unwrap();
    let header_leaf = data_leaves(&meta, piece_size).unwrap();
    let header = (0u16, open_leaf(&shards[0], 1024, header_leaf).unwrap());
    let leaf = 3 * (piece as u64 / 1024) + 7;
    // Parity in the decode set too (the harder case): shards 1..=10, witness 12.
    let order: Vec<u16> = (1..=10).chain([12]).collect();
    let openings: Vec<_> = order
        .iter()
        .map(|&i| (i, open_leaf(&shards[usize::from(i)], 1024, leaf).unwrap()))
        .collect();
    let proof = build(&meta, DealId(1), leaf, piece_size, &header, &openings).unwrap();
    let mut group = c.benchmark_group("inconsistency_proof_verify");
    group.throughput(Throughput::Elements(1));
    group.bench_function("10+4", |b| {
        b.iter(|| verify(black_box(&meta), black_box(&proof)).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = primitives, erasure, pipeline, storage_proofs, inconsistency_proofs
}
criterion_main!(benches);
