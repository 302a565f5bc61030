//! Where every byte goes: segments of the plaintext, pieces of each shard, the trailer.
//!
//! A blob of `size_bytes` is cut into segments. Each segment (plus its 16-byte AEAD tag when
//! encrypted) fills `k` data pieces of `piece_size_bytes`, zero-padded at the end, and the
//! Reed-Solomon code adds `m` parity pieces; piece `i` of every segment goes to shard `i`, in
//! segment order. All pieces have the same size, a power of two number of leaves, so each
//! piece is one complete subtree of its shard's BLAKE3 tree. After the last piece every shard
//! carries the same trailer: a 16-byte header (format, protection, piece size), then the root
//! of every piece of every shard (`n · segments · 32` bytes, shard-major). A reader fetches the trailer of any one shard, checks it against all
//! `n` shard roots on chain, and from then on can verify each piece the moment it arrives and
//! check that re-encoded pieces are the ones committed to (strict read).
//!
//! The piece size is `max_piece_size_bytes` when the blob needs more than one segment and the
//! smallest power-of-two number of leaves that holds it otherwise, so small blobs stay small
//! and the shard size stays within what the ledger's `check_blob` accepts.

use crate::error::CodingError;
use cairn_types::proof::MAX_LEAF_BYTES;
use cairn_types::tx::BlobMeta;
use cairn_types::{BoundedVec, Hash};
use std::ops::Range;

/// AES-256-GCM tag length, appended to every encrypted segment.
pub const AEAD_TAG_BYTES: u64 = 16;
use cairn_proofs::inconsistency::TRAILER_MAGIC;
/// The trailer opens with `"cairnc02"` (02: piece entries are BLAKE3 chaining values), a
/// protection byte (1 = encrypted), three zero bytes and the piece size (u32 BE), so a
/// reader with the wrong mode or piece size is told so. The constants live beside the
/// inconsistency proof, whose verifier finds the end of the data by this header.
pub use cairn_proofs::inconsistency::{PIECE_ROOT_BYTES, TRAILER_HEADER_BYTES};
/// Default leaf of the shard tree (what storage proofs open).
pub const DEFAULT_LEAF_SIZE_BYTES: u32 = 1024;
/// Default (and largest) piece: bytes of one shard per segment. Memory while coding is about
/// `(k + m) · piece` plus one plaintext segment.
pub const DEFAULT_MAX_PIECE_SIZE_BYTES: u32 = 256 * 1024;
/// Upper bound on the piece size, which bounds coder memory (`n · piece`).
pub const MAX_PIECE_SIZE_BYTES: u32 = 16 * 1024 * 1024;
/// Most shards a blob can have (the width of `BlobMeta::shard_roots`).
pub const MAX_SHARDS: usize = 256;

/// How a blob is cut: shard counts, proof leaf and largest piece. Reader and writer must use
/// the same `max_piece_size_bytes` (the blob metadata on chain carries the rest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub data_shards: u16,
    pub parity_shards: u16,
    pub leaf_size_bytes: u32,
    pub max_piece_size_bytes: u32,
}

impl Params {
    /// `k + m` shards with the default leaf and piece sizes.
    pub fn new(data_shards: u16, parity_shards: u16) -> Self {
        Self {
            data_shards,
            parity_shards,
            leaf_size_bytes: DEFAULT_LEAF_SIZE_BYTES,
            max_piece_size_bytes: DEFAULT_MAX_PIECE_SIZE_BYTES,
        }
    }

    pub fn shard_count(&self) -> usize {
        usize::from(self.data_shards) + usize::from(self.parity_shards)
    }

    /// Checks every field, naming the first that is wrong.
    pub fn validate(&self) -> Result<(), CodingError> {
        let bad = |detail: String| Err(CodingError::InvalidParams { detail });
        if self.data_shards == 0 {
            return bad("at least one data shard is needed".into());
        }
        if self.shard_count() > MAX_SHARDS {
            return bad(format!(
                "{} + {} shards, at most {MAX_SHARDS} in all",
                self.data_shards, self.parity_shards
            ));
        }
        let leaf = self.leaf_size_bytes;
        if !cairn_proofs::shard::valid_leaf_size(leaf)
            || usize::try_from(leaf).map_or(true, |l| l > MAX_LEAF_BYTES)
        {
            return bad(format!(
                "leaf size {leaf} must be a power of two within {}..={MAX_LEAF_BYTES}",
                cairn_proofs::shard::MIN_LEAF_BYTES
            ));
        }
        let piece = self.max_piece_size_bytes;
        if piece > MAX_PIECE_SIZE_BYTES
            || !piece.is_multiple_of(leaf)
            || !(piece / leaf).is_power_of_two()
        {
            return bad(format!(
                "piece size {piece} must be the leaf size {leaf} times a power of two, at most {MAX_PIECE_SIZE_BYTES}"
            ));
        }
        if self.parity_shards > 0
            && !crate::erasure::supports(
                usize::from(self.data_shards),
                usize::from(self.parity_shards),
            )
        {
            return bad(format!(
                "{} + {} shards are not supported by the Reed-Solomon code",
                self.data_shards, self.parity_shards
            ));
        }
        Ok(())
    }
}

/// The byte map of one blob: derived from its size, the parameters and whether it is
/// encrypted, so writer and reader compute the same one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub params: Params,
    pub size_bytes: u64,
    pub encrypted: bool,
    /// Bytes of one shard per segment (a power-of-two number of leaves).
    pub piece_size_bytes: u64,
    pub segment_count: u64,
    /// Whole shard: every piece, then the trailer.
    pub shard_size_bytes: u64,
}

impl Layout {
    /// The layout of a blob of `size_bytes` under `params`.
    pub fn new(size_bytes: u64, params: &Params, encrypted: bool) -> Result<Self, CodingError> {
        params.validate()?;
        let k = u64::from(params.data_shards);
        let tag = if encrypted { AEAD_TAG_BYTES } else { 0 };
        let leaf = u64::from(params.leaf_size_bytes);
        let max_piece = u64::from(params.max_piece_size_bytes);
        let full_capacity = k * max_piece - tag;
        let overflow = || CodingError::InvalidParams {
            detail: format!("a blob of {size_bytes} bytes is too large to lay out"),
        };
        let (piece_size_bytes, segment_count) = if size_bytes <= full_capacity {
            let needed = (size_bytes + tag).div_ceil(k).max(1);
            let leaves = needed.div_ceil(leaf).next_power_of_two();
            (leaves * leaf, 1)
        } else {
            (max_piece, size_bytes.div_ceil(full_capacity))
        };
        let n = u64::try_from(params.shard_count()).map_err(|_| overflow())?;
        let shard_size_bytes = segment_count
            .checked_mul(piece_size_bytes + n * PIECE_ROOT_BYTES)
            .and_then(|size| size.checked_add(TRAILER_HEADER_BYTES))
            .ok_or_else(overflow)?;
        Ok(Self {
            params: *params,
            size_bytes,
            encrypted,
            piece_size_bytes,
            segment_count,
            shard_size_bytes,
        })
    }

    /// The layout a blob's on-chain metadata implies, checked against it field by field.
    pub fn from_meta(
        meta: &BlobMeta,
        max_piece_size_bytes: u32,
        encrypted: bool,
    ) -> Result<Self, CodingError> {
        let params = Params {
            data_shards: meta.data_shards,
            parity_shards: meta.parity_shards,
            leaf_size_bytes: meta.leaf_size_bytes,
            max_piece_size_bytes,
        };
        let layout = Self::new(meta.size_bytes, &params, encrypted)?;
        if layout.shard_size_bytes != meta.shard_size_bytes {
            return Err(CodingError::LayoutMismatch {
                detail: format!(
                    "shard size {} on chain, {} for {} bytes with pieces of at most {max_piece_size_bytes} ({})",
                    meta.shard_size_bytes,
                    layout.shard_size_bytes,
                    meta.size_bytes,
                    if encrypted { "encrypted" } else { "public" }
                ),
            });
        }
        if meta.shard_roots.len() != layout.shard_count() {
            return Err(CodingError::LayoutMismatch {
                detail: format!(
                    "{} shard roots for {} shards",
                    meta.shard_roots.len(),
                    layout.shard_count()
                ),
            });
        }
        if meta.computed_id() != meta.id {
            return Err(CodingError::LayoutMismatch {
                detail: format!("blob id {} is not the hash of its metadata", meta.id),
            });
        }
        Ok(layout)
    }

    pub fn shard_count(&self) -> usize {
        self.params.shard_count()
    }

    pub fn data_shards(&self) -> usize {
        usize::from(self.params.data_shards)
    }

    /// AEAD tag bytes per segment (0 for a public blob).
    pub fn tag_bytes(&self) -> u64 {
        if self.encrypted { AEAD_TAG_BYTES } else { 0 }
    }

    /// Plaintext bytes a full segment holds.
    pub fn segment_capacity_bytes(&self) -> u64 {
        u64::from(self.params.data_shards) * self.piece_size_bytes - self.tag_bytes()
    }

    /// Plaintext byte range of `segment` (the last one may be short; an empty blob has one
    /// empty segment).
    pub fn segment_plain_range(&self, segment: u64) -> Range<u64> {
        let capacity = self.segment_capacity_bytes();
        let start = segment.saturating_mul(capacity).min(self.size_bytes);
        let end = start.saturating_add(capacity).min(self.size_bytes);
        start..end
    }

    /// Byte range of `segment`'s piece inside every shard.
    pub fn piece_range(&self, segment: u64) -> Range<u64> {
        let start = segment.saturating_mul(self.piece_size_bytes);
        start..start.saturating_add(self.piece_size_bytes)
    }

    /// Byte range of the trailer inside every shard.
    pub fn trailer_range(&self) -> Range<u64> {
        self.segment_count * self.piece_size_bytes..self.shard_size_bytes
    }

    pub fn trailer_size_bytes(&self) -> u64 {
        self.shard_size_bytes - self.segment_count * self.piece_size_bytes
    }

    /// The first [`TRAILER_HEADER_BYTES`] of the trailer for this layout.
    pub fn trailer_header(&self) -> [u8; 16] {
        let mut header = [0u8; 16];
        header[..8].copy_from_slice(&TRAILER_MAGIC);
        header[8] = u8::from(self.encrypted);
        let piece = u32::try_from(self.piece_size_bytes).unwrap_or(u32::MAX);
        header[12..].copy_from_slice(&piece.to_be_bytes());
        header
    }

    /// What to fetch for the plaintext bytes `range`: which segments, which byte range of
    /// every shard (the same for all shards), and which part of the decoded segments to keep.
    pub fn plan_range(&self, range: Range<u64>) -> Result<RangePlan, CodingError> {
        if range.start > range.end || range.end > self.size_bytes {
            return Err(CodingError::RangeOutOfBounds {
                start: range.start,
                end: range.end,
                size_bytes: self.size_bytes,
            });
        }
        let capacity = self.segment_capacity_bytes();
        let first = range.start / capacity;
        let last = if range.is_empty() {
            first
        } else {
            (range.end - 1) / capacity
        };
        let segments = first..last.saturating_add(1).min(self.segment_count.max(1));
        let shard_bytes = self.piece_range(segments.start).start
            ..self.piece_range(segments.end.saturating_sub(1)).end;
        Ok(RangePlan {
            skip_bytes: range.start - first * capacity,
            take_bytes: range.end - range.start,
            segments,
            shard_bytes,
        })
    }

    /// The metadata that goes on chain for these shard roots (the id is computed here).
    pub fn blob_meta(&self, shard_roots: Vec<Hash>) -> Result<BlobMeta, CodingError> {
        let count = shard_roots.len();
        let shard_roots = BoundedVec::new(shard_roots).ok_or(CodingError::InvalidParams {
            detail: format!("{count} shard roots, at most {MAX_SHARDS}"),
        })?;
        let mut meta = BlobMeta {
            id: Hash::ZERO,
            size_bytes: self.size_bytes,
            data_shards: self.params.data_shards,
            parity_shards: self.params.parity_shards,
            shard_size_bytes: self.shard_size_bytes,
            leaf_size_bytes: self.params.leaf_size_bytes,
            shard_roots,
        };
        meta.id = meta.computed_id();
        Ok(meta)
    }
}

/// The fetch plan of a plaintext byte range (see [`Layout::plan_range`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangePlan {
    /// Segments to decode, in order.
    pub segments: Range<u64>,
    /// Byte range to fetch from each of the `k` (or more) shards read.
    pub shard_bytes: Range<u64>,
    /// Plaintext bytes to drop at the start of the first decoded segment.
    pub skip_bytes: u64,
    /// Plaintext bytes to keep after that.
    pub take_bytes: u64,
}
