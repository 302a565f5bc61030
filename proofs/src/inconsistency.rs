//! Inconsistency proofs: evidence, small enough for one transaction, that a blob's `n`
//! shards are not one Reed-Solomon codeword (design §10, "Inconsistent encoding").
//!
//! An uploader can publish `n` shards that each match their own root yet do not form a
//! codeword, so different `k`-subsets decode to different bytes. Readers are safe (the strict
//! read re-encodes and checks every root), but the blob cannot be repaired and its providers
//! would be paid to keep garbage. Whoever notices posts `k + 1` leaves at one leaf index,
//! from distinct shards, each opened to its shard root: decoding the first `k` predicts the
//! last one, and the proof holds when the prediction differs from what that shard holds.
//!
//! Why leaf `i` of every shard is one stripe: every piece of every shard has the same size
//! and a whole number of leaves, so leaf `i` of all shards sits at the same offset of the
//! same segment, and the code is position-wise (it works on 64-byte blocks, and a leaf is at
//! least 1 KiB), so those `n` leaves are themselves a codeword of the same code. That holds
//! for data leaves only: the trailer after the last piece is the same bytes in every shard,
//! which is not a codeword. So the proof also names the piece size and opens the leaf where
//! the trailer header must then start; the header records the piece size, and the shard
//! size fixes the segment count, so the data region is proven, not assumed.
//!
//! Soundness rests on the roots: leaves that open to the committed roots are the shards'
//! true bytes, and the true bytes of a consistent blob always agree with any decoding. A
//! claimed piece size other than the true one would put the claimed header either inside
//! the data (which then lies inside the true data region, where every stripe is a codeword)
//! or inside the trailer's piece roots, where the header's eight magic bytes would have to
//! appear in hash output.

use crate::shard;
use crate::storage::{expected_leaf_len, leaf_len, open_in, verify_leaf};
use cairn_types::proof::{InconsistencyProof, LeafOpening, StripeLeaf};
use cairn_types::tx::BlobMeta;
use cairn_types::{BoundedVec, DealId};
use commonware_cryptography::reed_solomon::{Decoder, Encoder};

/// The trailer (after the last piece of every shard) opens with these eight bytes, then a
/// protection byte (1 = encrypted), three zero bytes and the piece size (u32 BE). The
/// coding crate writes it with these constants.
pub const TRAILER_MAGIC: [u8; 8] = *b"cairnc02";
/// Bytes of the trailer header.
pub const TRAILER_HEADER_BYTES: u64 = 16;
/// Bytes of one piece root in the trailer, which holds `n` per segment.
pub const PIECE_ROOT_BYTES: u64 = 32;

/// The code works on whole 64-byte blocks; a short leaf (the shard's last) is zero-padded
/// to one in every shard alike, which keeps a codeword a codeword.
const BLOCK_BYTES: usize = 64;

/// Why an inconsistency proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InconsistencyError {
    #[error("the blob has no parity shards, so no subset of its shards can disagree")]
    NoParity,
    #[error("the blob's {data_shards} + {parity_shards} shards are not a supported code")]
    UnsupportedCode {
        data_shards: u16,
        parity_shards: u16,
    },
    #[error("the blob's leaf size {leaf_size_bytes} is not a power of two of at least 1024 bytes")]
    BadLeafSize { leaf_size_bytes: u32 },
    #[error("leaf {leaf_index} is not a data leaf: the pieces end before leaf {data_leaves}")]
    NotDataLeaf { leaf_index: u64, data_leaves: u64 },
    #[error(
        "a piece size of {piece_size_bytes} bytes does not lay out {shard_size_bytes}-byte shards of a blob of {shard_count} shards"
    )]
    BadPieceSize {
        piece_size_bytes: u32,
        shard_size_bytes: u64,
        shard_count: usize,
    },
    #[error(
        "shard {shard_index}'s leaf {leaf_index} does not start with a trailer header for {piece_size_bytes}-byte pieces"
    )]
    BadHeader {
        shard_index: u16,
        leaf_index: u64,
        piece_size_bytes: u32,
    },
    #[error("the proof carries {got} leaves; a {data_shards}-of-n blob needs exactly {expected}")]
    WrongLeafCount {
        data_shards: u16,
        expected: usize,
        got: usize,
    },
    #[error("shard {shard_index} does not exist: the blob has {shard_count} shards")]
    UnknownShard {
        shard_index: u16,
        shard_count: usize,
    },
    #[error("shard {shard_index} appears twice")]
    DuplicateShard { shard_index: u16 },
    #[error("shard {shard_index}'s leaf is {got} bytes, expected {expected}")]
    LeafLength {
        shard_index: u16,
        expected: u64,
        got: u64,
    },
    #[error("shard {shard_index}'s leaf {leaf_index} does not open to its root")]
    BadPath { shard_index: u16, leaf_index: u64 },
    #[error("the leaves agree: shard {shard_index}'s leaf is what the others decode to")]
    Consistent { shard_index: u16 },
    #[error("decoding failed: {detail}")]
    Decode { detail: String },
}

/// Leaves of the data region (every piece of every segment) if shards of `blob` hold
/// pieces of `piece_size_bytes`: `None` when that piece size cannot lay them out.
pub fn data_leaves(blob: &BlobMeta, piece_size_bytes: u32) -> Option<u64> {
    let leaf = u64::from(blob.leaf_size_bytes);
    let piece = u64::from(piece_size_bytes);
    if leaf == 0 || !piece.is_power_of_two() || piece < leaf || !piece.is_multiple_of(leaf) {
        return None;
    }
    let n = u64::try_from(blob.shard_roots.len()).ok()?;
    let per_segment = piece.checked_add(n.checked_mul(PIECE_ROOT_BYTES)?)?;
    let body = blob.shard_size_bytes.checked_sub(TRAILER_HEADER_BYTES)?;
    if body == 0 || !body.is_multiple_of(per_segment) {
        return None;
    }
    (body / per_segment).checked_mul(piece / leaf)
}

/// Whether `data` opens with the trailer header of a `piece_size_bytes` layout.
pub fn is_header(data: &[u8], piece_size_bytes: u32) -> bool {
    data.get(..8) == Some(&TRAILER_MAGIC[..])
        && data.get(8).is_some_and(|p| *p <= 1)
        && data.get(9..12) == Some(&[0u8; 3][..])
        && data.get(12..16) == Some(&piece_size_bytes.to_be_bytes()[..])
}

/// `(k, m)` of a code an inconsistency can be proven in: one with parity, that the
/// Reed-Solomon code supports.
fn code(data_shards: u16, parity_shards: u16) -> Result<(usize, usize), InconsistencyError> {
    let (k, m) = (usize::from(data_shards), usize::from(parity_shards));
    if m == 0 {
        return Err(InconsistencyError::NoParity);
    }
    if !Encoder::supports(k, m) {
        return Err(InconsistencyError::UnsupportedCode {
            data_shards,
            parity_shards,
        });
    }
    Ok((k, m))
}

/// Checks `proof` against `blob` (the deal's metadata, looked up by `proof.deal`). `Ok(())`
/// means the blob is proven inconsistent. Pure: every validator reaches the same verdict.
pub fn verify(blob: &BlobMeta, proof: &InconsistencyProof) -> Result<(), InconsistencyError> {
    let (k, m) = code(blob.data_shards, blob.parity_shards)?;
    if blob.shard_roots.len() != k.saturating_add(m) {
        return Err(InconsistencyError::UnsupportedCode {
            data_shards: blob.data_shards,
            parity_shards: blob.parity_shards,
        });
    }
    if !shard::valid_leaf_size(blob.leaf_size_bytes) {
        return Err(InconsistencyError::BadLeafSize {
            leaf_size_bytes: blob.leaf_size_bytes,
        });
    }
    let data_leaves =
        data_leaves(blob, proof.piece_size_bytes).ok_or(InconsistencyError::BadPieceSize {
            piece_size_bytes: proof.piece_size_bytes,
            shard_size_bytes: blob.shard_size_bytes,
            shard_count: blob.shard_roots.len(),
        })?;
    if proof.leaf_index >= data_leaves {
        return Err(InconsistencyError::NotDataLeaf {
            leaf_index: proof.leaf_index,
            data_leaves,
        });
    }
    // The trailer starts at the first leaf after the data, in whichever shard is opened.
    let header = &proof.header;
    if !opens(blob, header.shard_index, data_leaves, &header.opening)
        || !is_header(&header.opening.data.0, proof.piece_size_bytes)
    {
        return Err(InconsistencyError::BadHeader {
            shard_index: header.shard_index,
            leaf_index: data_leaves,
            piece_size_bytes: proof.piece_size_bytes,
        });
    }
    let expected = k.saturating_add(1);
    if proof.leaves.len() != expected {
        return Err(InconsistencyError::WrongLeafCount {
            data_shards: blob.data_shards,
            expected,
            got: proof.leaves.len(),
        });
    }
    let n = blob.shard_roots.len();
    let leaf_len = expected_leaf_len(blob, proof.leaf_index);
    let mut seen = vec![false; n];
    for leaf in proof.leaves.iter() {
        let index = usize::from(leaf.shard_index);
        let Some(slot) = seen.get_mut(index) else {
            return Err(InconsistencyError::UnknownShard {
                shard_index: leaf.shard_index,
                shard_count: n,
            });
        };
        if std::mem::replace(slot, true) {
            return Err(InconsistencyError::DuplicateShard {
                shard_index: leaf.shard_index,
            });
        }
        let data = &leaf.opening.data.0;
        let got = u64::try_from(data.len()).unwrap_or(u64::MAX);
        if got != leaf_len {
            return Err(InconsistencyError::LeafLength {
                shard_index: leaf.shard_index,
                expected: leaf_len,
                got,
            });
        }
        if !opens(blob, leaf.shard_index, proof.leaf_index, &leaf.opening) {
            return Err(InconsistencyError::BadPath {
                shard_index: leaf.shard_index,
                leaf_index: proof.leaf_index,
            });
        }
    }
    let (decode_set, witness) = proof.leaves.0.split_at(k);
    let witness = witness.first().ok_or(InconsistencyError::WrongLeafCount {
        data_shards: blob.data_shards,
        expected,
        got: proof.leaves.len(),
    })?;
    let decode_set: Vec<(u16, &[u8])> = decode_set
        .iter()
        .map(|l| (l.shard_index, l.opening.data.0.as_slice()))
        .collect();
    let stripe = codeword(k, m, &decode_set)?;
    let predicted = stripe.get(usize::from(witness.shard_index));
    if predicted.is_some_and(|p| *p == padded(&witness.opening.data.0)) {
        return Err(InconsistencyError::Consistent {
            shard_index: witness.shard_index,
        });
    }
    Ok(())
}

/// The whole stripe (`k + m` leaves, each padded to whole blocks) that `decode_set` (k
/// leaves of distinct shards, all the same length) belongs to if it is part of a codeword.
fn codeword(
    k: usize,
    m: usize,
    decode_set: &[(u16, &[u8])],
) -> Result<Vec<Vec<u8>>, InconsistencyError> {
    let failed = |e: commonware_cryptography::reed_solomon::Error| InconsistencyError::Decode {
        detail: e.to_string(),
    };
    let len = decode_set
        .first()
        .map_or(BLOCK_BYTES, |(_, data)| padded_len(data.len()));
    let mut data: Vec<Option<Vec<u8>>> = vec![None; k];
    let mut parity: Vec<(usize, Vec<u8>)> = Vec::new();
    for (shard_index, bytes) in decode_set {
        let index = usize::from(*shard_index);
        let bytes = padded(bytes);
        match data.get_mut(index) {
            Some(slot) => *slot = Some(bytes),
            None => parity.push((index.saturating_sub(k), bytes)),
        }
    }
    if data.iter().any(Option::is_none) {
        let mut decoder = Decoder::new(k, m, len).map_err(failed)?;
        for (index, piece) in data.iter().enumerate() {
            if let Some(piece) = piece {
                decoder.add_original_shard(index, piece).map_err(failed)?;
            }
        }
        for (index, piece) in &parity {
            decoder.add_recovery_shard(*index, piece).map_err(failed)?;
        }
        let result =
            decoder
                .decode()
                .map_err(failed)?
                .ok_or_else(|| InconsistencyError::Decode {
                    detail: "nothing was restored".into(),
                })?;
        for (index, slot) in data.iter_mut().enumerate() {
            if slot.is_none() {
                *slot = result.original(index).map(<[u8]>::to_vec);
            }
        }
    }
    let data: Vec<Vec<u8>> = data
        .into_iter()
        .enumerate()
        .map(|(index, piece)| {
            piece.ok_or_else(|| InconsistencyError::Decode {
                detail: format!("data shard {index} was not restored"),
            })
        })
        .collect::<Result<_, _>>()?;
    let mut encoder = Encoder::new(k, m, len).map_err(failed)?;
    for piece in &data {
        encoder.add_original_shard(piece).map_err(failed)?;
    }
    let result = encoder.encode().map_err(failed)?;
    let mut stripe = data;
    for index in 0..m {
        let piece = result
            .recovery(index)
            .ok_or_else(|| InconsistencyError::Decode {
                detail: format!("no parity shard {index}"),
            })?;
        stripe.push(piece.to_vec());
    }
    Ok(stripe)
}

/// Leaf `target` of a stripe, rebuilt from `decode_set`: `k` leaves `(shard index, bytes)` of
/// one data leaf index from distinct shards, all the same length. This is what makes
/// regeneration cheap (design §10, "Regeneration"): one leaf of any shard costs one stripe
/// from `k` peers, not their whole shards. The timed audit ([`crate::timed`]) is the answer.
pub fn rebuild_leaf(
    data_shards: u16,
    parity_shards: u16,
    decode_set: &[(u16, &[u8])],
    target: u16,
) -> Result<Vec<u8>, InconsistencyError> {
    let (k, m) = code(data_shards, parity_shards)?;
    let n = k.saturating_add(m);
    let decode_set = decode_set.get(..k).unwrap_or(decode_set);
    if decode_set.len() < k {
        return Err(InconsistencyError::Decode {
            detail: format!("{} leaves given, {k} needed", decode_set.len()),
        });
    }
    if let Some(bad) = decode_set
        .iter()
        .map(|(i, _)| *i)
        .chain(std::iter::once(target))
        .find(|i| usize::from(*i) >= n)
    {
        return Err(InconsistencyError::UnknownShard {
            shard_index: bad,
            shard_count: n,
        });
    }
    let len = decode_set.first().map_or(0, |(_, data)| data.len());
    let stripe = codeword(k, m, decode_set)?;
    let mut leaf =
        stripe
            .into_iter()
            .nth(usize::from(target))
            .ok_or_else(|| InconsistencyError::Decode {
                detail: format!("no shard {target} in the stripe"),
            })?;
    leaf.truncate(len);
    Ok(leaf)
}

/// Where a stripe seen by a reporter stops being a codeword: `leaves` are `(shard index,
/// bytes)` of one leaf index from distinct shards, at least `k + 1` of them; the first `k`
/// are decoded, and the position in `leaves` of the first later one that disagrees is
/// returned. Checks no roots: a reporter calls it on bytes it fetched to find the leaf worth
/// proving, then builds the proof from openings ([`build`]).
pub fn disagreement(
    data_shards: u16,
    parity_shards: u16,
    leaves: &[(u16, &[u8])],
) -> Result<Option<usize>, InconsistencyError> {
    let (k, m) = code(data_shards, parity_shards)?;
    let Some((decode_set, rest)) = leaves.split_at_checked(k) else {
        return Ok(None);
    };
    let n = k.saturating_add(m);
    if leaves.iter().any(|(i, _)| usize::from(*i) >= n) {
        return Err(InconsistencyError::UnknownShard {
            shard_index: leaves.iter().map(|(i, _)| *i).max().unwrap_or_default(),
            shard_count: n,
        });
    }
    let stripe = codeword(k, m, decode_set)?;
    Ok(rest
        .iter()
        .position(|(index, bytes)| {
            stripe
                .get(usize::from(*index))
                .is_some_and(|expected| *expected != padded(bytes))
        })
        .map(|p| p.saturating_add(k)))
}

fn padded_len(len: usize) -> usize {
    len.div_ceil(BLOCK_BYTES).max(1).saturating_mul(BLOCK_BYTES)
}

fn padded(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out.resize(padded_len(bytes.len()), 0);
    out
}

/// Builds a proof from the openings a reporter collected at `leaf_index` (at least `k + 1`
/// of distinct shards, each verified or not: the result is checked before it is returned).
/// `None` when the openings show no inconsistency at this leaf.
/// `header` opens, in one shard, the leaf where the trailer of `piece_size_bytes` pieces
/// starts (leaf [`data_leaves`]).
pub fn build(
    blob: &BlobMeta,
    deal: DealId,
    leaf_index: u64,
    piece_size_bytes: u32,
    header: &(u16, LeafOpening),
    openings: &[(u16, LeafOpening)],
) -> Option<InconsistencyProof> {
    let (k, m) = code(blob.data_shards, blob.parity_shards).ok()?;
    let (decode_set, rest) = openings.split_at_checked(k)?;
    // All the openings lie on one codeword exactly when every one outside the first k
    // agrees with their decoding: one decoding names every candidate witness, and the
    // first whose proof verifies (an unchecked opening may not) is the answer.
    let bytes: Vec<(u16, &[u8])> = decode_set
        .iter()
        .map(|(shard_index, opening)| (*shard_index, opening.data.0.as_slice()))
        .collect();
    let stripe = codeword(k, m, &bytes).ok()?;
    rest.iter()
        .filter(|(shard_index, opening)| {
            stripe
                .get(usize::from(*shard_index))
                .is_some_and(|expected| *expected != padded(&opening.data.0))
        })
        .find_map(|witness| {
            let leaves: Vec<StripeLeaf> = decode_set
                .iter()
                .chain(std::iter::once(witness))
                .map(|(shard_index, opening)| StripeLeaf {
                    shard_index: *shard_index,
                    opening: opening.clone(),
                })
                .collect();
            let proof = InconsistencyProof {
                deal,
                leaf_index,
                piece_size_bytes,
                header: StripeLeaf {
                    shard_index: header.0,
                    opening: header.1.clone(),
                },
                leaves: BoundedVec(leaves),
            };
            verify(blob, &proof).is_ok().then_some(proof)
        })
}

/// Whether `opening` is leaf `leaf_index` of shard `shard_index` of `blob`, so a reporter can
/// drop what a lying or rotten provider served before building a proof.
pub fn opens(blob: &BlobMeta, shard_index: u16, leaf_index: u64, opening: &LeafOpening) -> bool {
    let Some(root) = blob.shard_roots.0.get(usize::from(shard_index)) else {
        return false;
    };
    let expected = expected_leaf_len(blob, leaf_index);
    u64::try_from(opening.data.0.len()).is_ok_and(|len| len == expected)
        && verify_leaf(
            root,
            blob.leaf_size_bytes,
            blob.leaf_count(),
            leaf_index,
            &opening.data.0,
            &opening.path.0,
        )
}

/// An opening of leaf `leaf_index` of `shard` (the whole shard in memory), for reporters
/// and tests that hold shards; providers open leaves from disk instead.
pub fn open_leaf(shard: &[u8], leaf_size: u32, leaf_index: u64) -> Option<LeafOpening> {
    let tree = shard::ShardTree::build(shard, leaf_size)?;
    (leaf_index < tree.leaf_count())
        .then(|| open_in(shard, Some(&tree), leaf_len(leaf_size), leaf_index))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use cairn_types::Hash;

    const LEAF: u32 = 1024;
    const PIECE_BYTES: u32 = 4 * LEAF;
    const PIECE: usize = 4 * 1024;
    const LEAF_BYTES: usize = 1024;

    /// `k + m` shards of `segments` pieces of [`PIECE`] bytes, the parity coded per segment
    /// as the writer does, then the trailer every shard carries: the header and `n` piece
    /// roots per segment (arbitrary bytes here), so the last leaf is short.
    fn shards(k: usize, m: usize, segments: usize) -> Vec<Vec<u8>> {
        let mut out = vec![Vec::new(); k + m];
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ u64::try_from(k * 31 + m).unwrap();
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        };
        for _ in 0..segments {
            let data: Vec<Vec<u8>> = (0..k)
                .map(|_| (0..PIECE).map(|_| next()).collect())
                .collect();
            let mut encoder = Encoder::new(k, m, PIECE).unwrap();
            for d in &data {
                encoder.add_original_shard(d).unwrap();
            }
            let result = encoder.encode().unwrap();
            let parity: Vec<Vec<u8>> = (0..m)
                .map(|j| result.recovery(j).unwrap().to_vec())
                .collect();
            for (shard, piece) in out.iter_mut().zip(data.iter().chain(parity.iter())) {
                shard.extend_from_slice(piece);
            }
        }
        let mut trailer = TRAILER_MAGIC.to_vec();
        trailer.extend_from_slice(&[1, 0, 0, 0]);
        trailer.extend_from_slice(&PIECE_BYTES.to_be_bytes());
        trailer.extend((0..(k + m) * segments * 32).map(|_| next()));
        for shard in &mut out {
            shard.extend_from_slice(&trailer);
        }
        out
    }

    fn meta(k: usize, m: usize, shards: &[Vec<u8>]) -> BlobMeta {
        BlobMeta {
            id: Hash::ZERO,
            size_bytes: 1,
            data_shards: u16::try_from(k).unwrap(),
            parity_shards: u16::try_from(m).unwrap(),
            shard_size_bytes: u64::try_from(shards[0].len()).unwrap(),
            leaf_size_bytes: LEAF,
            shard_roots: BoundedVec(shards.iter().map(|s| shard::shard_root(s)).collect()),
        }
    }

    #[test]
    fn any_data_leaf_of_any_shard_rebuilds_from_k_others() {
        let (k, m) = (4, 2);
        let shards = shards(k, m, 3);
        let meta = meta(k, m, &shards);
        let data = data_leaves(&meta, PIECE_BYTES).unwrap();
        let leaf = |s: usize, i: u64| open_leaf(&shards[s], LEAF, i).unwrap().data.0;
        for index in 0..data {
            for target in 0..k + m {
                // The k shards after the target, wrapping: data and parity mixed.
                let others: Vec<usize> = (1..=k).map(|d| (target + d) % (k + m)).collect();
                let bytes: Vec<Vec<u8>> = others.iter().map(|&s| leaf(s, index)).collect();
                let set: Vec<(u16, &[u8])> = others
                    .iter()
                    .zip(&bytes)
                    .map(|(&s, b)| (u16::try_from(s).unwrap(), b.as_slice()))
                    .collect();
                let rebuilt = rebuild_leaf(4, 2, &set, u16::try_from(target).unwrap()).unwrap();
                assert_eq!(
                    rebuilt,
                    leaf(target, index),
                    "leaf {index} of shard {target}"
                );
            }
        }
        let one = leaf(0, 0);
        let short = [(1u16, one.as_slice())];
        assert!(matches!(
            rebuild_leaf(4, 2, &short, 0),
            Err(InconsistencyError::Decode { .. })
        ));
        let set: Vec<(u16, &[u8])> = (0..4).map(|s| (s, one.as_slice())).collect();
        assert!(matches!(
            rebuild_leaf(4, 2, &set, 6),
            Err(InconsistencyError::UnknownShard { shard_index: 6, .. })
        ));
    }

    fn openings(shards: &[Vec<u8>], order: &[usize], leaf: u64) -> Vec<(u16, LeafOpening)> {
        order
            .iter()
            .map(|&i| {
                (
                    u16::try_from(i).unwrap(),
                    open_leaf(&shards[i], LEAF, leaf).unwrap(),
                )
            })
            .collect()
    }

    fn header(shards: &[Vec<u8>], meta: &BlobMeta, shard: usize) -> (u16, LeafOpening) {
        let at = data_leaves(meta, PIECE_BYTES).unwrap();
        (
            u16::try_from(shard).unwrap(),
            open_leaf(&shards[shard], LEAF, at).unwrap(),
        )
    }

    fn hand_made(
        shards: &[Vec<u8>],
        meta: &BlobMeta,
        order: &[usize],
        leaf: u64,
        k: usize,
    ) -> InconsistencyProof {
        let (shard_index, opening) = header(shards, meta, 0);
        InconsistencyProof {
            deal: DealId(1),
            leaf_index: leaf,
            piece_size_bytes: PIECE_BYTES,
            header: StripeLeaf {
                shard_index,
                opening,
            },
            leaves: BoundedVec(
                openings(shards, order, leaf)[..=k]
                    .iter()
                    .map(|(shard_index, opening)| StripeLeaf {
                        shard_index: *shard_index,
                        opening: opening.clone(),
                    })
                    .collect(),
            ),
        }
    }

    /// The code is not position-free at the trailer: a constant stripe is no codeword,
    /// which is why the proof must show where the data ends.
    #[test]
    fn the_trailer_is_not_a_codeword_so_data_leaves_are_bounded() {
        let piece = vec![0x5au8; 64];
        let mut encoder = Encoder::new(4, 2, 64).unwrap();
        for _ in 0..4 {
            encoder.add_original_shard(&piece).unwrap();
        }
        assert_ne!(encoder.encode().unwrap().recovery(0).unwrap(), &piece[..]);
        let shards = shards(4, 2, 3);
        let meta = meta(4, 2, &shards);
        assert_eq!(data_leaves(&meta, PIECE_BYTES), Some(12));
        // Every other power of two fails to lay these shards out.
        for piece in [1024u32, 2048, 8192, 1 << 18] {
            assert_eq!(data_leaves(&meta, piece), None, "{piece}");
        }
        // A trailer leaf cannot be proven, even though its stripe is no codeword.
        let order: Vec<usize> = (0..6).collect();
        let proof = hand_made(&shards, &meta, &order, 12, 4);
        assert!(matches!(
            verify(&meta, &proof),
            Err(InconsistencyError::NotDataLeaf {
                leaf_index: 12,
                data_leaves: 12
            })
        ));
    }

    /// Every data leaf of an honest blob, from several decode sets (data only, parity mixed
    /// in, parity first): no proof can be built, and a hand-made one is refused as
    /// consistent.
    #[test]
    fn an_honest_blob_yields_no_proof_at_any_leaf() {
        for (k, m) in [(4, 2), (3, 3), (10, 4), (1, 1)] {
            let shards = shards(k, m, 3);
            let meta = meta(k, m, &shards);
            let n = k + m;
            let orders: Vec<Vec<usize>> = vec![
                (0..n).collect(),
                (0..n).rev().collect(),
                (1..n).chain(std::iter::once(0)).collect(),
            ];
            let head = header(&shards, &meta, n - 1);
            for leaf in 0..data_leaves(&meta, PIECE_BYTES).unwrap() {
                for order in &orders {
                    let openings = openings(&shards, order, leaf);
                    assert!(
                        build(&meta, DealId(1), leaf, PIECE_BYTES, &head, &openings).is_none(),
                        "{k}+{m} leaf {leaf}"
                    );
                    let proof = hand_made(&shards, &meta, order, leaf, k);
                    assert!(
                        matches!(
                            verify(&meta, &proof),
                            Err(InconsistencyError::Consistent { .. })
                        ),
                        "{k}+{m} leaf {leaf}: {:?}",
                        verify(&meta, &proof)
                    );
                }
            }
        }
    }

    /// An inconsistent uploader changes one leaf of one shard and commits to the changed
    /// shard: the proof is found at that leaf from any decode set that leaves the changed
    /// shard as a witness, verifies, and is found nowhere else.
    #[test]
    fn a_changed_leaf_in_any_shard_is_proven_at_that_leaf_only() {
        let (k, m) = (4, 2);
        let honest = meta(k, m, &shards(k, m, 2));
        for bad in 0..k + m {
            let mut shards = shards(k, m, 2);
            let leaf = 5u64;
            shards[bad][usize::try_from(leaf).unwrap() * LEAF_BYTES + 17] ^= 0x40;
            let meta = meta(k, m, &shards);
            let head = header(&shards, &meta, bad);
            // The changed shard last, so it is the witness.
            let order: Vec<usize> = (0..k + m).filter(|&i| i != bad).chain([bad]).collect();
            for at in 0..data_leaves(&meta, PIECE_BYTES).unwrap() {
                let found = build(
                    &meta,
                    DealId(3),
                    at,
                    PIECE_BYTES,
                    &head,
                    &openings(&shards, &order, at),
                );
                assert_eq!(found.is_some(), at == leaf, "shard {bad} leaf {at}");
                // The reporter's scan over raw bytes points at the same leaf and shard.
                let start = usize::try_from(at).unwrap() * LEAF_BYTES;
                let range = start..start + LEAF_BYTES;
                let raw: Vec<(u16, &[u8])> = order
                    .iter()
                    .map(|&i| (u16::try_from(i).unwrap(), &shards[i][range.clone()]))
                    .collect();
                let seen = disagreement(4, 2, &raw).unwrap();
                assert_eq!(
                    seen,
                    (at == leaf).then_some(k + m - 1),
                    "shard {bad} leaf {at}"
                );
                for &i in &order {
                    let opening = open_leaf(&shards[i], LEAF, at).unwrap();
                    assert!(opens(&meta, u16::try_from(i).unwrap(), at, &opening));
                    assert!(!opens(
                        &meta,
                        u16::try_from((i + 1) % 6).unwrap(),
                        at,
                        &opening
                    ));
                }
                if let Some(proof) = found {
                    assert_eq!(verify(&meta, &proof), Ok(()));
                    assert_eq!(proof.leaves.len(), k + 1);
                    // The same evidence against the honest roots is refused.
                    assert!(verify(&honest, &proof).is_err());
                }
            }
        }
    }

    /// Malformed proofs name what is wrong and never pass.
    #[test]
    fn malformed_proofs_are_refused_with_their_reason() {
        let (k, m) = (4, 2);
        let mut shards = shards(k, m, 2);
        shards[5][3] ^= 1;
        let meta = meta(k, m, &shards);
        let order: Vec<usize> = (0..6).collect();
        let head = header(&shards, &meta, 2);
        let proof = build(
            &meta,
            DealId(1),
            0,
            PIECE_BYTES,
            &head,
            &openings(&shards, &order, 0),
        )
        .unwrap();
        assert_eq!(verify(&meta, &proof), Ok(()));

        let mut short = proof.clone();
        short.leaves.0.pop();
        assert!(matches!(
            verify(&meta, &short),
            Err(InconsistencyError::WrongLeafCount { .. })
        ));

        let mut dup = proof.clone();
        dup.leaves.0[1] = dup.leaves.0[0].clone();
        assert!(matches!(
            verify(&meta, &dup),
            Err(InconsistencyError::DuplicateShard { shard_index: 0 })
        ));

        let mut unknown = proof.clone();
        unknown.leaves.0[0].shard_index = 9;
        assert!(matches!(
            verify(&meta, &unknown),
            Err(InconsistencyError::UnknownShard { .. })
        ));

        let mut forged = proof.clone();
        forged.leaves.0[2].opening.data.0[0] ^= 1;
        assert!(matches!(
            verify(&meta, &forged),
            Err(InconsistencyError::BadPath { shard_index: 2, .. })
        ));

        let mut truncated = proof.clone();
        truncated.leaves.0[2].opening.data.0.pop();
        assert!(matches!(
            verify(&meta, &truncated),
            Err(InconsistencyError::LeafLength { .. })
        ));

        let mut moved = proof.clone();
        moved.leaf_index = 1;
        assert!(verify(&meta, &moved).is_err());

        let mut past = proof.clone();
        past.leaf_index = 8;
        assert!(matches!(
            verify(&meta, &past),
            Err(InconsistencyError::NotDataLeaf { .. })
        ));

        let mut other_piece = proof.clone();
        other_piece.piece_size_bytes = 2 * PIECE_BYTES;
        assert!(matches!(
            verify(&meta, &other_piece),
            Err(InconsistencyError::BadPieceSize { .. })
        ));

        // A header leaf taken from the data instead of the trailer.
        let mut fake_header = proof.clone();
        fake_header.header.opening = open_leaf(&shards[2], LEAF, 3).unwrap();
        assert!(matches!(
            verify(&meta, &fake_header),
            Err(InconsistencyError::BadHeader { .. })
        ));

        let mut no_parity = meta.clone();
        no_parity.parity_shards = 0;
        no_parity.data_shards = 6;
        assert_eq!(
            verify(&no_parity, &proof),
            Err(InconsistencyError::NoParity)
        );
    }
}
