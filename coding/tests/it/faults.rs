//! Byzantine and faulty shards: corrupted, truncated, withheld, failing mid-stream, and an
//! uploader whose shards are not one codeword.

use crate::support::{bytes, encode_vecs, encrypted, small_params, sources};
use cairn_coding::{
    CodingError, Decoder, EncodedBlob, Params, Protection, ShardSource, SliceSource, commit_shards,
};
use cairn_proofs::storage::shard_root;

fn setup() -> (Params, Protection, Vec<u8>, EncodedBlob, Vec<Vec<u8>>) {
    let params = small_params();
    let protection = encrypted(7);
    let data = bytes(21, 10_000);
    let (encoded, shards) = encode_vecs(&data, &params, &protection);
    assert!(encoded.layout.segment_count >= 3);
    (params, protection, data, encoded, shards)
}

fn decoder(encoded: &EncodedBlob, params: &Params, protection: &Protection) -> Decoder {
    Decoder::new(&encoded.meta, params.max_piece_size_bytes, protection).unwrap()
}

/// `Corrupter`: flips one byte of a piece; the piece fails its root and another shard is used.
#[test]
fn corrupted_piece_is_detected_and_another_shard_used() {
    let (params, protection, data, encoded, mut shards) = setup();
    let piece = usize::try_from(encoded.layout.piece_size_bytes).unwrap();
    shards[0][piece + 10] ^= 0x01; // segment 1 of shard 0
    let mut out = Vec::new();
    let report = decoder(&encoded, &params, &protection)
        .read_all(&mut sources(&shards, &[true; 6]), &mut out)
        .unwrap();
    assert_eq!(out, data);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].shard_index, 0);
    assert_eq!(report.failures[0].segment, Some(1));
    assert!(
        report.failures[0].reason.contains("does not match"),
        "{}",
        report.failures[0].reason
    );
}

#[test]
fn truncated_shard_is_dropped() {
    let (params, protection, data, encoded, mut shards) = setup();
    let piece = usize::try_from(encoded.layout.piece_size_bytes).unwrap();
    // A shard cut after one piece: its trailer is unreadable and its later pieces are missing.
    shards[2].truncate(piece + 3);
    let mut out = Vec::new();
    let report = decoder(&encoded, &params, &protection)
        .read_all(&mut sources(&shards, &[true; 6]), &mut out)
        .unwrap();
    assert_eq!(out, data);
    assert!(report.failures.iter().any(|f| f.shard_index == 2));
}

/// A source that serves `budget` bytes and then fails (a provider that dies mid-download).
struct DiesAfter<'a> {
    shard: &'a [u8],
    budget: usize,
}

impl ShardSource for DiesAfter<'_> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if buf.len() > self.budget {
            return Err(std::io::Error::other("connection reset"));
        }
        self.budget -= buf.len();
        SliceSource(self.shard).read_at(offset, buf)
    }
}

#[test]
fn sources_failing_mid_stream_are_replaced() {
    let (params, protection, data, encoded, shards) = setup();
    let piece = usize::try_from(encoded.layout.piece_size_bytes).unwrap();
    let trailer = usize::try_from(encoded.layout.trailer_size_bytes()).unwrap();
    let mut sources: Vec<Option<DiesAfter<'_>>> = shards
        .iter()
        .enumerate()
        .map(|(i, shard)| {
            Some(DiesAfter {
                shard,
                budget: match i {
                    0 => trailer + piece,
                    1 => 2 * piece,
                    _ => usize::MAX,
                },
            })
        })
        .collect();
    let mut out = Vec::new();
    let report = decoder(&encoded, &params, &protection)
        .read_all(&mut sources, &mut out)
        .unwrap();
    assert_eq!(out, data);
    let failed: Vec<u16> = report.failures.iter().map(|f| f.shard_index).collect();
    assert_eq!(failed, vec![0, 1]);
}

#[test]
fn fewer_than_k_shards_is_a_clear_error() {
    let (params, protection, _, encoded, shards) = setup();
    let keep = [true, false, true, false, true, false];
    let error = decoder(&encoded, &params, &protection)
        .read_all(&mut sources(&shards, &keep), &mut Vec::new())
        .unwrap_err();
    match &error {
        CodingError::NotEnoughShards {
            segment,
            available,
            required,
            ..
        } => {
            assert_eq!((*segment, *available, *required), (Some(0), 3, 4));
        }
        other => panic!("{other}"),
    }
    assert!(
        error.to_string().contains("3 usable shards, 4 needed"),
        "{error}"
    );

    // Too many corrupted: 3 good shards after corruption of 3 of 6.
    let mut bad = shards.clone();
    for shard in bad.iter_mut().take(3) {
        shard[0] ^= 1;
    }
    let error = decoder(&encoded, &params, &protection)
        .read_all(&mut sources(&bad, &[true; 6]), &mut Vec::new())
        .unwrap_err();
    assert!(
        matches!(&error, CodingError::NotEnoughShards { failures, .. } if failures.len() == 3),
        "{error}"
    );
}

#[test]
fn corrupted_trailer_copy_is_skipped() {
    let (params, protection, data, encoded, mut shards) = setup();
    let at = usize::try_from(encoded.layout.trailer_range().start).unwrap() + 5;
    shards[0][at] ^= 0x40;
    let mut out = Vec::new();
    let report = decoder(&encoded, &params, &protection)
        .read_all(&mut sources(&shards, &[true; 6]), &mut out)
        .unwrap();
    assert_eq!(out, data);
    assert_eq!(report.failures[0].shard_index, 0);
    assert_eq!(report.failures[0].segment, None);
}

/// `InconsistentUploader`: shards that each match their own root (so providers accept them
/// and storage proofs pass) but whose parity piece is not the code of the data pieces.
fn inconsistent_upload() -> (Params, Protection, EncodedBlob, Vec<Vec<u8>>) {
    let (params, protection, _, honest, mut shards) = setup();
    let layout = honest.layout.clone();
    let piece = usize::try_from(layout.piece_size_bytes).unwrap();
    // Replace piece 0 of parity shard 4 with other bytes.
    shards[4][..piece].copy_from_slice(&bytes(99, piece));
    // Commit to these shards (trailer, roots, id), as a cheating uploader would.
    let encoded = commit_shards(&layout, &mut shards).unwrap();
    (params, protection, encoded, shards)
}

#[test]
fn inconsistent_uploader_is_refused_by_strict_read_whatever_the_subset() {
    let (params, protection, encoded, shards) = inconsistent_upload();
    // Every shard matches its own root: a provider's PUT check passes.
    for (shard, root) in shards.iter().zip(encoded.meta.shard_roots.iter()) {
        assert_eq!(shard_root(shard), *root);
    }
    // Data shards only: decodes nothing, but the re-encoded parity 4 differs from its root.
    let error = decoder(&encoded, &params, &protection)
        .read_all(
            &mut sources(&shards, &[true, true, true, true, false, false]),
            &mut Vec::new(),
        )
        .unwrap_err();
    assert!(
        matches!(
            error,
            CodingError::InconsistentEncoding {
                segment: 0,
                shard_index: 4
            }
        ),
        "{error}"
    );
    // A subset using the bad parity piece would decode other bytes: refused as well.
    let error = decoder(&encoded, &params, &protection)
        .read_all(
            &mut sources(&shards, &[false, true, true, true, true, false]),
            &mut Vec::new(),
        )
        .unwrap_err();
    assert!(
        matches!(error, CodingError::InconsistentEncoding { segment: 0, .. }),
        "{error}"
    );
    // m data pieces lost, every parity piece used (parity is then not recomputed): the
    // rebuilt data pieces differ from their roots.
    let error = decoder(&encoded, &params, &protection)
        .read_all(
            &mut sources(&shards, &[false, false, true, true, true, true]),
            &mut Vec::new(),
        )
        .unwrap_err();
    assert!(
        matches!(
            error,
            CodingError::InconsistentEncoding {
                segment: 0,
                shard_index: 0 | 1
            }
        ),
        "{error}"
    );
}

#[test]
fn trailers_differing_between_shards_are_refused() {
    let (params, protection, _, honest, mut shards) = setup();
    // Shard 5 claims other piece roots in its trailer and the uploader publishes a root for that.
    let start = usize::try_from(honest.layout.trailer_range().start).unwrap();
    shards[5][start + 16] ^= 1;
    let mut roots: Vec<_> = honest.meta.shard_roots.0.clone();
    roots[5] = shard_root(&shards[5]);
    let meta = honest.layout.blob_meta(roots).unwrap();
    let mut decoder = Decoder::new(&meta, params.max_piece_size_bytes, &protection).unwrap();
    for shard in &shards {
        let trailer = &shard[start..];
        assert!(matches!(
            decoder.load_trailer(trailer),
            Err(CodingError::TrailerMismatch { .. })
        ));
    }
    let error = decoder
        .read_all(&mut sources(&shards, &[true; 6]), &mut Vec::new())
        .unwrap_err();
    assert!(
        matches!(error, CodingError::NotEnoughShards { segment: None, .. }),
        "{error}"
    );
}

#[test]
fn segment_api_checks_every_piece_before_decoding() {
    let (params, protection, data, encoded, shards) = setup();
    let layout = encoded.layout.clone();
    let mut decoder = decoder(&encoded, &params, &protection);
    let pieces_of = |segment: u64| -> Vec<&[u8]> {
        let range = layout.piece_range(segment);
        let r = usize::try_from(range.start).unwrap()..usize::try_from(range.end).unwrap();
        shards.iter().map(|s| &s[r.clone()]).collect()
    };
    assert!(matches!(
        decoder.decode_segment(0, &[None; 6]),
        Err(CodingError::TrailerMissing)
    ));
    decoder.load_trailer(&encoded.trailer).unwrap();
    let pieces = pieces_of(1);
    let mut slots: Vec<Option<&[u8]>> = vec![
        None,
        Some(pieces[1]),
        Some(pieces[2]),
        None,
        Some(pieces[4]),
        Some(pieces[5]),
    ];
    let plain = decoder.decode_segment(1, &slots).unwrap().to_vec();
    let range = layout.segment_plain_range(1);
    assert_eq!(
        plain,
        &data[usize::try_from(range.start).unwrap()..usize::try_from(range.end).unwrap()]
    );

    let mut flipped = pieces[2].to_vec();
    flipped[0] ^= 1;
    slots[2] = Some(&flipped);
    assert!(matches!(
        decoder.decode_segment(1, &slots),
        Err(CodingError::PieceMismatch {
            shard_index: 2,
            segment: 1
        })
    ));
    slots[2] = Some(&pieces[2][1..]);
    assert!(matches!(
        decoder.decode_segment(1, &slots),
        Err(CodingError::PieceLength { shard_index: 2, .. })
    ));
    // A piece of another segment is refused too.
    let other = pieces_of(0);
    slots[2] = Some(other[2]);
    assert!(matches!(
        decoder.decode_segment(1, &slots),
        Err(CodingError::PieceMismatch { .. })
    ));
    slots[2] = None;
    assert!(matches!(
        decoder.decode_segment(1, &slots),
        Err(CodingError::NotEnoughShards { available: 3, .. })
    ));
}

/// The writer's real layout against the inconsistency proof (design §10): from the honest
/// encoding no data leaf yields a proof, and the trailer header sits exactly where the
/// verifier looks for it; from the `InconsistentUploader`'s shards the proof is found in the
/// changed piece only, verifies, and names the shard that disagrees.
#[test]
fn inconsistent_uploader_is_proven_and_the_honest_encoding_is_not() {
    use cairn_proofs::inconsistency::{build, data_leaves, open_leaf, verify};
    use cairn_types::DealId;
    let leaf_of = |encoded: &EncodedBlob| u64::from(encoded.meta.leaf_size_bytes);
    let (_, _, _, honest, honest_shards) = setup();
    // Committing to the honest shards again reproduces the writer's trailer and metadata.
    let mut again = honest_shards.clone();
    let resealed = commit_shards(&honest.layout, &mut again).unwrap();
    assert_eq!(
        (&resealed.meta, &resealed.trailer),
        (&honest.meta, &honest.trailer)
    );
    assert_eq!(again, honest_shards);
    let piece = u32::try_from(honest.layout.piece_size_bytes).unwrap();
    let leaves = data_leaves(&honest.meta, piece).unwrap();
    assert_eq!(
        leaves * leaf_of(&honest),
        honest.layout.trailer_range().start
    );
    // No other piece size lays these shards out.
    for other in (10..24).map(|b| 1u32 << b).filter(|p| *p != piece) {
        assert_eq!(data_leaves(&honest.meta, other), None, "{other}");
    }
    let leaf = honest.meta.leaf_size_bytes;
    let all: Vec<u16> = (0..6).collect();
    let open = |shards: &[Vec<u8>], at: u64| -> Vec<(u16, _)> {
        all.iter()
            .map(|&i| (i, open_leaf(&shards[usize::from(i)], leaf, at).unwrap()))
            .collect()
    };
    let header = (3u16, open_leaf(&honest_shards[3], leaf, leaves).unwrap());
    for at in 0..leaves {
        assert!(
            build(
                &honest.meta,
                DealId(0),
                at,
                piece,
                &header,
                &open(&honest_shards, at)
            )
            .is_none()
        );
    }

    let (_, _, bad, bad_shards) = inconsistent_upload();
    assert_eq!(data_leaves(&bad.meta, piece), Some(leaves));
    let header = (0u16, open_leaf(&bad_shards[0], leaf, leaves).unwrap());
    let piece_leaves = u64::from(piece) / leaf_of(&bad);
    for at in 0..leaves {
        let proof = build(
            &bad.meta,
            DealId(0),
            at,
            piece,
            &header,
            &open(&bad_shards, at),
        );
        // Piece 0 of parity shard 4 was replaced: every leaf of segment 0 disagrees.
        assert_eq!(proof.is_some(), at < piece_leaves, "leaf {at}");
        if let Some(proof) = proof {
            assert_eq!(verify(&bad.meta, &proof), Ok(()));
            assert_eq!(proof.leaves.0.last().map(|l| l.shard_index), Some(4));
        }
    }
}

/// The first data leaf whose stripe (all shards' bytes) is not a codeword, as an auditor
/// scanning raw bytes finds it.
fn first_disagreement(
    meta: &cairn_types::tx::BlobMeta,
    shards: &[Vec<u8>],
    piece: u32,
) -> Option<u64> {
    use cairn_proofs::inconsistency::{data_leaves, disagreement};
    let leaf = usize::try_from(meta.leaf_size_bytes).unwrap();
    (0..data_leaves(meta, piece).unwrap()).find(|&at| {
        let at_bytes = usize::try_from(at).unwrap() * leaf;
        let stripe: Vec<(u16, &[u8])> = (0u16..)
            .zip(shards)
            .map(|(i, s)| (i, &s[at_bytes..at_bytes + leaf]))
            .collect();
        disagreement(meta.data_shards, meta.parity_shards, &stripe)
            .unwrap()
            .is_some()
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 1_000, ..Default::default() })]
    /// Campaign 6 of reliability.md, scaled to CI: random codes, sizes, piece sizes and
    /// protections; 1..=m shards changed at random places and committed to. Every such
    /// upload is found by a raw-byte scan and proven (the proof verifies), a strict read
    /// of any k shards never returns other bytes than the original, and the honest encoding
    /// of the same data yields nothing to prove at any data leaf.
    #[test]
    fn random_inconsistent_uploads_are_always_proven_and_never_misread(
        size in 1usize..20_000,
        k in 1u16..6,
        m in 1u16..4,
        big_pieces: bool,
        encrypt: bool,
        seed: u64,
    ) {
        use cairn_proofs::inconsistency::{build, data_leaves, open_leaf, verify};
        let params = Params {
            data_shards: k,
            parity_shards: m,
            leaf_size_bytes: 1024,
            max_piece_size_bytes: if big_pieces { 4096 } else { 1024 },
        };
        let protection = if encrypt { encrypted(3) } else { Protection::Public };
        let data = bytes(seed, size);
        let (honest, mut shards) = encode_vecs(&data, &params, &protection);
        let layout = honest.layout.clone();
        let piece = u32::try_from(layout.piece_size_bytes).unwrap();
        let n = usize::from(k + m);
        let data_end = layout.trailer_range().start;
        proptest::prop_assert_eq!(
            data_leaves(&honest.meta, piece).unwrap() * 1024,
            data_end
        );
        proptest::prop_assert_eq!(first_disagreement(&honest.meta, &shards, piece), None);

        // Change t of the n shards, each at its own random data byte.
        let mut state = seed | 1;
        let mut draw = |bound: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) % bound
        };
        let t = 1 + usize::try_from(draw(u64::from(m))).unwrap();
        let mut changed = Vec::new();
        while changed.len() < t {
            let shard = usize::try_from(draw(n as u64)).unwrap();
            if !changed.contains(&shard) {
                let at = usize::try_from(draw(data_end)).unwrap();
                shards[shard][at] ^= 1 << draw(8);
                changed.push(shard);
            }
        }
        let bad = commit_shards(&layout, &mut shards).unwrap();
        let meta = bad.meta.clone();

        // Reads: any k shards give the original bytes or an error, never other bytes.
        let mut keep = vec![false; n];
        while keep.iter().filter(|&&x| x).count() < usize::from(k) {
            keep[usize::try_from(draw(n as u64)).unwrap()] = true;
        }
        let mut out = Vec::new();
        let read = decoder(&bad, &params, &protection).read_all(&mut sources(&shards, &keep), &mut out);
        proptest::prop_assert!(read.is_err() || out == data, "a read returned other bytes");

        // Found and proven: at most m changed positions cannot form another codeword.
        let at = first_disagreement(&meta, &shards, piece);
        proptest::prop_assert!(at.is_some(), "{t} changed shards {changed:?} were not found");
        let at = at.unwrap();
        let header = (0u16, open_leaf(&shards[0], 1024, data_end / 1024).unwrap());
        let openings: Vec<_> = (0u16..)
            .zip(&shards)
            .map(|(i, s)| (i, open_leaf(s, 1024, at).unwrap()))
            .collect();
        let proof = build(&meta, cairn_types::DealId(9), at, piece, &header, &openings);
        proptest::prop_assert!(proof.is_some(), "leaf {at} disagrees but no proof was built");
        proptest::prop_assert_eq!(verify(&meta, &proof.unwrap()), Ok(()));
    }
}
