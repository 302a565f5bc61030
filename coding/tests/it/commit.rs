//! The incremental commitment is the storage-proof root, and PUT verification uses it.

use crate::support::{bytes, encode_vecs, small_params};
use cairn_coding::{CodingError, Protection, ShardHasher, ShardVerifier, piece_cv};
use cairn_proofs::storage::{self, shard_root};
use cairn_types::DealId;
use cairn_types::Hash;
use proptest::prelude::*;

#[test]
fn incremental_root_equals_the_proofs_root_for_any_split() {
    for len in [
        0usize, 1, 63, 64, 65, 128, 1000, 4096, 4097, 10_000, 100_000,
    ] {
        let data = bytes(u64::try_from(len).unwrap(), len);
        let expected = shard_root(&data);
        for split in [1usize, 7, 64, 333, 5000, 65536] {
            let mut hasher = ShardHasher::new();
            for chunk in data.chunks(split) {
                hasher.update(chunk);
            }
            assert_eq!(hasher.finalize(), expected, "len {len} split {split}");
        }
    }
}

proptest! {
    #[test]
    fn incremental_root_matches_reference(len in 0usize..20000, split in 1usize..3000) {
        let data = bytes(u64::try_from(len).unwrap(), len);
        let mut hasher = ShardHasher::new();
        for chunk in data.chunks(split) {
            hasher.update(chunk);
        }
        prop_assert_eq!(hasher.finalize(), shard_root(&data));
    }
}

#[test]
fn piece_roots_are_subtrees_of_the_shard_tree() {
    let params = small_params();
    let data = bytes(1, 10_000);
    let (encoded, shards) = encode_vecs(&data, &params, &Protection::Public);
    let layout = &encoded.layout;
    assert!(layout.segment_count > 2);
    let piece = usize::try_from(layout.piece_size_bytes).unwrap();
    for (index, shard) in shards.iter().enumerate() {
        assert_eq!(encoded.meta.shard_roots.0[index], shard_root(shard));
        let trailer = &shard[usize::try_from(layout.trailer_range().start).unwrap()..];
        assert_eq!(trailer, &encoded.trailer[..]);
        for (segment, bytes) in shard
            .chunks(piece)
            .take(usize::try_from(layout.segment_count).unwrap())
            .enumerate()
        {
            let at = 16 + (index * usize::try_from(layout.segment_count).unwrap() + segment) * 32;
            assert_eq!(
                piece_cv(bytes, u64::try_from(segment).unwrap()).as_bytes(),
                &trailer[at..at + 32]
            );
        }
    }
}

#[test]
fn storage_proofs_over_coded_shards_verify() {
    let params = small_params();
    let (encoded, shards) = encode_vecs(&bytes(2, 3000), &params, &crate::support::encrypted(1));
    for (index, shard) in (0u16..).zip(&shards) {
        for n in 0..5u64 {
            let seed = Hash::domain("test.seed", &[&n.to_be_bytes()]);
            let proof = storage::prove(shard, params.leaf_size_bytes, &seed, DealId(3), index, 8);
            assert_eq!(storage::verify(&encoded.meta, &seed, &proof, 8), Ok(()));
        }
    }
}

#[test]
fn put_verifier_accepts_the_shard_and_refuses_tampering() {
    let params = small_params();
    let (encoded, shards) = encode_vecs(&bytes(3, 2500), &params, &Protection::Public);
    let meta = &encoded.meta;
    let shard = &shards[1];
    let root = meta.shard_roots.0[1];
    let verifier = |root| ShardVerifier::new(root, meta.shard_size_bytes);

    let mut honest = verifier(root);
    for chunk in shard.chunks(999) {
        honest.update(chunk).unwrap();
    }
    assert_eq!(honest.finish().unwrap(), root);

    let mut flipped = shard.clone();
    flipped[17] ^= 1;
    let mut bad = verifier(root);
    bad.update(&flipped).unwrap();
    assert!(matches!(
        bad.finish(),
        Err(CodingError::ShardRootMismatch { .. })
    ));

    let mut short = verifier(root);
    short.update(&shard[..shard.len() - 1]).unwrap();
    assert!(
        matches!(short.finish(), Err(CodingError::ShardTruncated { got, .. }) if got + 1 == meta.shard_size_bytes)
    );

    let mut long = verifier(root);
    long.update(shard).unwrap();
    assert!(matches!(
        long.update(&[0]),
        Err(CodingError::ShardTooLong { .. })
    ));

    // Another shard's bytes do not pass for this one.
    let mut other = verifier(root);
    other.update(&shards[2]).unwrap();
    assert!(matches!(
        other.finish(),
        Err(CodingError::ShardRootMismatch { .. })
    ));
}
