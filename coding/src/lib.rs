//! Encode blobs for storage: streaming segmentation, AES-256-GCM encryption, Reed-Solomon shards and their commitments.
//!
//! The client's write path (design §6) runs here: a file of any size is cut into segments,
//! each segment is sealed with AES-256-GCM under the blob's data key (unless public), split
//! into `k` data pieces and extended with `m` Reed-Solomon parity pieces; piece `i` of every
//! segment goes to shard `i`. Each shard ends with a trailer of every piece root, and its
//! root is BLAKE3's tree root of [`cairn_proofs::shard::shard_root`] (what storage proofs open), so the
//! chain, the providers and the readers all check the same commitment. The [`BlobMeta`]
//! produced (blob id, shard roots) is what `CreateDeal` carries and the ledger accepts.
//!
//! The read path verifies every piece against its commitment before decoding, drops bad or
//! missing shards, decodes from any `k`, re-encodes to check that the other pieces are the
//! committed ones (strict read), and decrypts. Providers check an incoming shard with
//! [`ShardVerifier`]. See `API.md` for how the client and provider use it.
//!
//! [`durability`] turns a code's parameters and a measured shard loss rate into nines, and
//! picks the cheapest code for the nines a user asks for (design §10).
//!
//! Pure: no async runtime, file system, clock or randomness (keys come from the caller).
//! Memory is bounded by one segment's pieces whatever the blob size (two per lane when the
//! caller asks for several: segments are then coded on scoped threads, with byte-identical
//! output), plus the piece-root table (32 bytes per piece).
//!
//! [`BlobMeta`]: cairn_types::tx::BlobMeta

pub mod commit;
pub mod crypto;
pub mod decode;
pub mod durability;
pub mod encode;
mod erasure;
pub mod error;
pub mod layout;
mod pipeline;

pub use commit::{ShardHasher, ShardVerifier, piece_cv};
pub use crypto::{DataKey, Protection, SealedKey, open_key, seal_key};
pub use decode::{
    Decoder, PieceChecker, ReadReport, SeekSource, SegmentPieces, ShardSource, SliceSource,
    VerifiedPiece,
};
pub use encode::{
    EncodedBlob, Encoder, Pieces, commit_shards, compute_meta, compute_meta_on_lanes, encode,
    encode_again, encode_on_lanes,
};
pub use error::{CodingError, ShardFailure};
pub use layout::{
    AEAD_TAG_BYTES, DEFAULT_LEAF_SIZE_BYTES, DEFAULT_MAX_PIECE_SIZE_BYTES, Layout, Params,
    RangePlan,
};
pub use pipeline::available_lanes;
