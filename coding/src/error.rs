//! Everything that can go wrong while encoding or decoding, with the segment and shard it
//! concerns, so a client can drop one bad shard and carry on with the others.

use cairn_types::Hash;

/// Why one shard was dropped during a read (reported, and the read went on without it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardFailure {
    pub shard_index: u16,
    /// The segment whose piece failed, `None` for the trailer.
    pub segment: Option<u64>,
    pub reason: String,
}

/// Why encoding, verification or decoding failed.
#[derive(Debug, thiserror::Error)]
pub enum CodingError {
    #[error("invalid coding parameters: {detail}")]
    InvalidParams { detail: String },
    #[error("blob metadata does not match the coding layout: {detail}")]
    LayoutMismatch { detail: String },
    #[error("plaintext ended after {got} bytes, {expected} were announced")]
    InputTruncated { expected: u64, got: u64 },
    #[error("plaintext is longer than the {expected} bytes announced")]
    InputTooLong { expected: u64 },
    #[error("reading the plaintext failed after {offset} bytes: {source}")]
    Read {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("writing shard {shard_index} failed at byte {offset}: {source}")]
    ShardWrite {
        shard_index: u16,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the plaintext failed at byte {offset}: {source}")]
    Write {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("segment {segment} pushed out of order: segment {expected} is next")]
    SegmentOrder { segment: u64, expected: u64 },
    #[error("segment {segment} holds {got} plaintext bytes, the layout needs {expected}")]
    SegmentLength {
        segment: u64,
        expected: u64,
        got: u64,
    },
    #[error("segment {segment} does not exist: the blob has {segment_count} segments")]
    UnknownSegment { segment: u64, segment_count: u64 },
    #[error("erasure coding failed in segment {segment}: {detail}")]
    Erasure { segment: u64, detail: String },
    #[error("encrypting segment {segment} failed")]
    Encrypt { segment: u64 },
    #[error("segment {segment} failed AEAD authentication: wrong data key or tampered ciphertext")]
    Decrypt { segment: u64 },
    #[error("segment {segment} has non-zero padding after its ciphertext")]
    Padding { segment: u64 },
    #[error("the sealed data key does not open with this owner key and context")]
    Unseal,
    #[error("trailer is {got} bytes, the layout needs {expected}")]
    TrailerLength { expected: u64, got: u64 },
    #[error(
        "the trailer does not open shard {shard_index}'s root: the shards are not one encoding"
    )]
    TrailerMismatch { shard_index: u16 },
    #[error("the trailer is authentic but does not fit this reader: {detail}")]
    TrailerHeader { detail: String },
    #[error("no trailer loaded: fetch the trailer range of any shard and load it first")]
    TrailerMissing,
    #[error(
        "inconsistent encoding in segment {segment}: shard {shard_index} is not part of the codeword the other shards decode to"
    )]
    InconsistentEncoding { segment: u64, shard_index: u16 },
    #[error("shard {shard_index} is not in this blob: it has {shard_count} shards")]
    UnknownShard {
        shard_index: u16,
        shard_count: usize,
    },
    #[error(
        "piece of shard {shard_index} for segment {segment} is {got} bytes, expected {expected}"
    )]
    PieceLength {
        shard_index: u16,
        segment: u64,
        expected: u64,
        got: u64,
    },
    #[error("piece of shard {shard_index} for segment {segment} does not match its commitment")]
    PieceMismatch { shard_index: u16, segment: u64 },
    #[error(
        "{available} usable shards, {required} needed{}",
        segment.map(|s| format!(" for segment {s}")).unwrap_or_default()
    )]
    NotEnoughShards {
        segment: Option<u64>,
        available: usize,
        required: usize,
        failures: Vec<ShardFailure>,
    },
    #[error("shard is longer than the {expected} bytes declared")]
    ShardTooLong { expected: u64 },
    #[error("shard ended after {got} bytes, {expected} declared")]
    ShardTruncated { expected: u64, got: u64 },
    #[error("shard root {got} differs from the expected {expected}")]
    ShardRootMismatch { expected: Hash, got: Hash },
    #[error("range {start}..{end} is not inside the blob's {size_bytes} bytes")]
    RangeOutOfBounds {
        start: u64,
        end: u64,
        size_bytes: u64,
    },
}
