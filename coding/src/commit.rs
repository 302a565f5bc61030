//! Shard commitments, computed as the bytes stream past.
//!
//! The root is exactly [`cairn_proofs::shard::shard_root`], BLAKE3's own chunk tree (the
//! tree storage proofs open), so streaming a shard through it runs at full BLAKE3 speed. A
//! piece (a power of two of 1 KiB chunks at a multiple of its size) is a subtree of that
//! tree: the trailer lists every piece's chaining value, and a reader checks a piece alone
//! from its bytes and position.

use crate::error::CodingError;
use cairn_proofs::shard;
use cairn_types::Hash;

/// Incremental shard root over bytes fed in any split.
#[derive(Clone, Debug)]
pub struct ShardHasher {
    hasher: blake3::Hasher,
    bytes: u64,
}

impl Default for ShardHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl ShardHasher {
    pub fn new() -> Self {
        Self {
            hasher: shard::root_hasher(),
            bytes: 0,
        }
    }

    /// Bytes fed so far.
    pub fn len_bytes(&self) -> u64 {
        self.bytes
    }

    pub fn update(&mut self, data: &[u8]) {
        self.bytes = self
            .bytes
            .saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        self.hasher.update(data);
    }

    /// The root of everything fed.
    pub fn finalize(self) -> Hash {
        Hash(*self.hasher.finalize().as_bytes())
    }
}

/// Chaining value of piece `segment` of a shard (every piece of a blob is `piece.len()`
/// bytes, so the piece starts at `segment · piece.len()`). The shard always extends past its
/// last piece (the trailer follows), so a piece is never the whole tree.
pub fn piece_cv(piece: &[u8], segment: u64) -> Hash {
    let offset = u64::try_from(piece.len())
        .unwrap_or(u64::MAX)
        .saturating_mul(segment);
    shard::subtree_cv(offset, piece)
}

/// The root of a shard whose pieces have chaining values `piece_cvs` and which ends in
/// `trailer`: BLAKE3's tree seen from the level of the pieces. Pieces and trailer blocks are
/// each `piece_size` bytes (the last trailer block may be short) and start at multiples of
/// it. `None` only for a shape no layout produces (no trailer).
pub(crate) fn root_from_pieces(
    piece_cvs: impl Iterator<Item = Hash>,
    trailer: &[u8],
    piece_size: usize,
) -> Option<Hash> {
    let mut units: Vec<Hash> = piece_cvs.collect();
    let unit_bytes = u64::try_from(piece_size).ok()?;
    // Trailer blocks continue the piece numbering: unit `i` starts at `i · piece_size`.
    for block in trailer.chunks(piece_size.max(1)) {
        let offset = u64::try_from(units.len()).ok()?.checked_mul(unit_bytes)?;
        units.push(shard::subtree_cv(offset, block));
    }
    shard::merge_units(&units, true)
}

/// Checks a shard as it streams in (a provider receiving a PUT body): feed the bytes, then
/// [`ShardVerifier::finish`] compares length and root with what the chain recorded.
#[derive(Clone, Debug)]
pub struct ShardVerifier {
    hasher: ShardHasher,
    expected_root: Hash,
    expected_size_bytes: u64,
}

impl ShardVerifier {
    pub fn new(expected_root: Hash, shard_size_bytes: u64) -> Self {
        Self {
            hasher: ShardHasher::new(),
            expected_root,
            expected_size_bytes: shard_size_bytes,
        }
    }

    /// Feeds the next bytes; refuses (before hashing them) bytes past the declared size, so a
    /// provider can stop reading an oversized body at once.
    pub fn update(&mut self, data: &[u8]) -> Result<(), CodingError> {
        let after = self
            .hasher
            .len_bytes()
            .saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        if after > self.expected_size_bytes {
            return Err(CodingError::ShardTooLong {
                expected: self.expected_size_bytes,
            });
        }
        self.hasher.update(data);
        Ok(())
    }

    /// Bytes accepted so far.
    pub fn len_bytes(&self) -> u64 {
        self.hasher.len_bytes()
    }

    /// The root, if the shard is complete and matches.
    pub fn finish(self) -> Result<Hash, CodingError> {
        let got = self.hasher.len_bytes();
        if got != self.expected_size_bytes {
            return Err(CodingError::ShardTruncated {
                expected: self.expected_size_bytes,
                got,
            });
        }
        let root = self.hasher.finalize();
        if root != self.expected_root {
            return Err(CodingError::ShardRootMismatch {
                expected: self.expected_root,
                got: root,
            });
        }
        Ok(root)
    }
}
