//! Shared fixtures: deterministic bytes, small parameters, encode-to-memory.

use cairn_coding::{DataKey, EncodedBlob, Params, Protection, SliceSource, encode};

/// Deterministic pseudo-random bytes (xorshift), distinct per `seed`.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// 4 + 2 with the smallest leaves and pieces (1 KiB): many segments from small inputs.
pub fn small_params() -> Params {
    Params {
        data_shards: 4,
        parity_shards: 2,
        leaf_size_bytes: 1024,
        max_piece_size_bytes: 1024,
    }
}

pub fn key(seed: u8) -> DataKey {
    DataKey::from_bytes([seed; 32])
}

pub fn encrypted(seed: u8) -> Protection {
    Protection::Encrypted(key(seed))
}

/// Encodes `data` into in-memory shards.
pub fn encode_vecs(
    data: &[u8],
    params: &Params,
    protection: &Protection,
) -> (EncodedBlob, Vec<Vec<u8>>) {
    let mut sinks = vec![Vec::new(); params.shard_count()];
    let size = u64::try_from(data.len()).unwrap();
    let encoded = encode(data, size, params, protection, &mut sinks).unwrap();
    for shard in &sinks {
        assert_eq!(
            u64::try_from(shard.len()).unwrap(),
            encoded.meta.shard_size_bytes
        );
    }
    (encoded, sinks)
}

/// Sources over the given shards, `None` where `keep` is false.
pub fn sources<'a>(shards: &'a [Vec<u8>], keep: &[bool]) -> Vec<Option<SliceSource<'a>>> {
    shards
        .iter()
        .zip(keep)
        .map(|(shard, &keep)| keep.then(|| SliceSource(&shard[..])))
        .collect()
}
