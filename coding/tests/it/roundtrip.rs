//! Encode then decode gives the bytes back, for every size class and every k-subset.

use crate::support::{bytes, encode_vecs, encrypted, small_params, sources};
use bytes::BytesMut;
use cairn_coding::{
    CodingError, Decoder, Encoder, Layout, Params, Protection, SegmentPieces, compute_meta, encode,
};
use proptest::prelude::*;

fn read(
    meta_shards: (&cairn_coding::EncodedBlob, &[Vec<u8>]),
    params: &Params,
    protection: &Protection,
    keep: &[bool],
) -> Vec<u8> {
    let (encoded, shards) = meta_shards;
    let mut decoder = Decoder::new(&encoded.meta, params.max_piece_size_bytes, protection).unwrap();
    let mut out = Vec::new();
    let report = decoder
        .read_all(&mut sources(shards, keep), &mut out)
        .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.bytes_written, u64::try_from(out.len()).unwrap());
    out
}

fn sizes(params: &Params, encrypted: bool) -> Vec<usize> {
    let capacity = usize::try_from(
        Layout::new(1 << 40, params, encrypted)
            .unwrap()
            .segment_capacity_bytes(),
    )
    .unwrap();
    vec![
        0,
        1,
        2,
        100,
        capacity - 1,
        capacity,
        capacity + 1,
        2 * capacity,
        3 * capacity - 1,
        5 * capacity + 77,
    ]
}

#[test]
fn every_size_class_round_trips_public_and_encrypted() {
    let params = small_params();
    for protection in [Protection::Public, encrypted(5)] {
        for size in sizes(&params, protection.is_encrypted()) {
            let data = bytes(u64::try_from(size).unwrap(), size);
            let (encoded, shards) = encode_vecs(&data, &params, &protection);
            assert_eq!(encoded.meta.computed_id(), encoded.meta.id);
            let out = read((&encoded, &shards), &params, &protection, &[true; 6]);
            assert_eq!(
                out,
                data,
                "size {size} encrypted {}",
                protection.is_encrypted()
            );
        }
    }
}

#[test]
fn any_k_of_n_shards_decode() {
    let params = small_params();
    let protection = encrypted(3);
    let data = bytes(9, 4321);
    let (encoded, shards) = encode_vecs(&data, &params, &protection);
    let mut subsets = 0;
    for mask in 0u32..64 {
        let keep: Vec<bool> = (0..6).map(|i| mask & (1 << i) != 0).collect();
        if keep.iter().filter(|&&k| k).count() < 4 {
            continue;
        }
        assert_eq!(
            read((&encoded, &shards), &params, &protection, &keep),
            data,
            "mask {mask:06b}"
        );
        subsets += 1;
    }
    assert_eq!(subsets, 15 + 6 + 1);
}

#[test]
fn default_params_round_trip_with_parity_only_reads() {
    let params = Params::new(10, 4);
    let protection = encrypted(8);
    let size = 10 * 256 * 1024 * 2 + 12_345;
    let data = bytes(77, size);
    let (encoded, shards) = encode_vecs(&data, &params, &protection);
    assert_eq!(encoded.layout.segment_count, 3);
    // The 4 parity shards and 6 data shards: the worst case, 4 data pieces rebuilt.
    let keep: Vec<bool> = (0..14).map(|i| i >= 4).collect();
    assert_eq!(read((&encoded, &shards), &params, &protection, &keep), data);
}

#[test]
fn encoding_is_deterministic_and_the_first_pass_agrees() {
    let params = small_params();
    let protection = encrypted(4);
    let data = bytes(10, 7000);
    let size = u64::try_from(data.len()).unwrap();
    let (first, shards) = encode_vecs(&data, &params, &protection);
    let (second, again) = encode_vecs(&data, &params, &protection);
    assert_eq!(first, second);
    assert_eq!(shards, again);
    assert_eq!(
        compute_meta(&data[..], size, &params, &protection).unwrap(),
        first
    );
    // A different key is a different blob.
    let other = compute_meta(&data[..], size, &params, &encrypted(5)).unwrap();
    assert_ne!(other.meta.id, first.meta.id);
}

#[test]
fn segment_by_segment_encoder_matches_the_streaming_one() {
    let params = small_params();
    let protection = encrypted(4);
    let data = bytes(11, 5000);
    let (expected, shards) = encode_vecs(&data, &params, &protection);
    let mut encoder = Encoder::new(5000, &params, &protection).unwrap();
    let mut built = vec![Vec::new(); 6];
    for segment in 0..encoder.layout().segment_count {
        let range = encoder.layout().segment_plain_range(segment);
        let plain =
            &data[usize::try_from(range.start).unwrap()..usize::try_from(range.end).unwrap()];
        let pieces = encoder.push_segment(plain).unwrap();
        assert_eq!(pieces.segment(), segment);
        for (shard, piece) in built.iter_mut().zip(pieces.iter()) {
            shard.extend_from_slice(piece);
        }
    }
    assert!(matches!(
        encoder.push_segment(&[]),
        Err(CodingError::UnknownSegment { .. })
    ));
    let encoded = encoder.finish().unwrap();
    for shard in &mut built {
        shard.extend_from_slice(&encoded.trailer);
    }
    assert_eq!(encoded, expected);
    assert_eq!(built, shards);
}

#[test]
fn range_reads_return_exactly_the_range() {
    let params = small_params();
    let protection = encrypted(6);
    let data = bytes(12, 12_000);
    let (encoded, shards) = encode_vecs(&data, &params, &protection);
    let capacity = encoded.layout.segment_capacity_bytes();
    let c = usize::try_from(capacity).unwrap();
    assert!(2 * c < 12_000);
    for (start, end) in [
        (0, 0),
        (0, 1),
        (5, 12_000),
        (c - 3, c + 3),
        (2 * c, 12_000),
        (c, 2 * c),
        (11_999, 12_000),
        (1234, 4321),
    ] {
        let mut decoder =
            Decoder::new(&encoded.meta, params.max_piece_size_bytes, &protection).unwrap();
        let mut out = Vec::new();
        let keep = [false, true, true, true, true, false];
        decoder
            .read_range(
                &mut sources(&shards, &keep),
                u64::try_from(start).unwrap()..u64::try_from(end).unwrap(),
                &mut out,
            )
            .unwrap();
        assert_eq!(out, &data[start..end], "{start}..{end}");
    }
}

#[test]
fn input_shorter_or_longer_than_announced_is_refused() {
    let params = small_params();
    let data = bytes(13, 3000);
    let mut sinks = vec![Vec::new(); 6];
    assert!(matches!(
        encode(&data[..], 3001, &params, &Protection::Public, &mut sinks),
        Err(CodingError::InputTruncated {
            expected: 3001,
            got: 3000
        })
    ));
    let mut sinks = vec![Vec::new(); 6];
    assert!(matches!(
        encode(&data[..], 2999, &params, &Protection::Public, &mut sinks),
        Err(CodingError::InputTooLong { expected: 2999 })
    ));
    let mut wrong_sinks = vec![Vec::new(); 5];
    assert!(matches!(
        encode(
            &data[..],
            3000,
            &params,
            &Protection::Public,
            &mut wrong_sinks
        ),
        Err(CodingError::InvalidParams { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn random_blobs_round_trip_from_random_subsets(
        size in 0usize..12000,
        k in 1u16..6,
        m in 0u16..4,
        encrypt: bool,
        drop_seed: u64,
    ) {
        let params = Params { data_shards: k, parity_shards: m, leaf_size_bytes: 1024, max_piece_size_bytes: 1024 };
        let protection = if encrypt { encrypted(1) } else { Protection::Public };
        let data = bytes(drop_seed ^ u64::try_from(size).unwrap(), size);
        let (encoded, shards) = encode_vecs(&data, &params, &protection);
        let n = usize::from(k + m);
        // Drop m shards, chosen by the seed.
        let mut keep = vec![true; n];
        let mut state = drop_seed | 1;
        let mut dropped = 0;
        while dropped < usize::from(m) {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let index = usize::try_from(state >> 33).unwrap() % n;
            if keep[index] {
                keep[index] = false;
                dropped += 1;
            }
        }
        prop_assert_eq!(read((&encoded, &shards), &params, &protection, &keep), data);
    }
}

/// A reader that produces `len` bytes of a pattern without holding them.
struct Pattern {
    left: u64,
    counter: u8,
}

impl std::io::Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = usize::try_from(self.left.min(u64::try_from(buf.len()).unwrap())).unwrap();
        for byte in &mut buf[..n] {
            *byte = self.counter;
            self.counter = self.counter.wrapping_mul(31).wrapping_add(7);
        }
        self.left -= u64::try_from(n).unwrap();
        Ok(n)
    }
}

/// Counts bytes and hashes them, keeping nothing.
#[derive(Default)]
struct Digest {
    len: u64,
    hasher: blake3::Hasher,
}

impl std::io::Write for Digest {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.len += u64::try_from(buf.len()).unwrap();
        self.hasher.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn slow_gibibyte_streams_through_bounded_memory() {
    // 1 GiB in, 14 shards out, nothing but one segment's pieces held.
    let params = Params::new(10, 4);
    let size = 1u64 << 30;
    let mut sinks: Vec<Digest> = (0..14).map(|_| Digest::default()).collect();
    let encoded = encode(
        Pattern {
            left: size,
            counter: 1,
        },
        size,
        &params,
        &encrypted(2),
        &mut sinks,
    )
    .unwrap();
    for sink in &sinks {
        assert_eq!(sink.len, encoded.meta.shard_size_bytes);
    }
    assert_eq!(encoded.meta.size_bytes, size);
}

#[test]
fn lanes_and_the_second_pass_stream_the_same_shards() {
    let params = small_params();
    for protection in [Protection::Public, encrypted(6)] {
        for size in sizes(&params, protection.is_encrypted()) {
            let data = bytes(12, size);
            let size = u64::try_from(size).unwrap();
            let (expected, shards) = encode_vecs(&data, &params, &protection);
            for lanes in [1, 2, 3, 7] {
                let mut sinks = vec![Vec::new(); 6];
                let encoded = cairn_coding::encode_on_lanes(
                    &data[..],
                    size,
                    &params,
                    &protection,
                    &mut sinks,
                    lanes,
                )
                .unwrap();
                assert_eq!(encoded, expected, "size {size}, {lanes} lanes");
                assert_eq!(sinks, shards, "size {size}, {lanes} lanes");
                let meta = cairn_coding::compute_meta_on_lanes(
                    &data[..],
                    size,
                    &params,
                    &protection,
                    lanes,
                )
                .unwrap();
                assert_eq!(meta, expected);
                let mut again = vec![Vec::new(); 6];
                let second =
                    cairn_coding::encode_again(&data[..], &meta, &protection, &mut again, lanes)
                        .unwrap();
                assert_eq!(second, expected);
                assert_eq!(again, shards, "second pass, size {size}, {lanes} lanes");
            }
        }
    }
}

#[test]
fn a_second_pass_over_changed_input_yields_shards_no_root_accepts() {
    let params = small_params();
    let protection = encrypted(6);
    let mut data = bytes(13, 9000);
    let size = u64::try_from(data.len()).unwrap();
    let first = compute_meta(&data[..], size, &params, &protection).unwrap();
    data[4000] ^= 1;
    let mut shards = vec![Vec::new(); 6];
    cairn_coding::encode_again(&data[..], &first, &protection, &mut shards, 2).unwrap();
    let changed: Vec<usize> = (0..6)
        .filter(|&i| {
            let mut verifier = cairn_coding::ShardVerifier::new(
                first.meta.shard_roots.0[i],
                first.meta.shard_size_bytes,
            );
            verifier.update(&shards[i]).is_err() || verifier.finish().is_err()
        })
        .collect();
    // The flipped byte's data shard and every parity shard differ from their roots.
    assert!(changed.len() >= 3, "{changed:?}");
    // Wrong lengths and a mismatched protection are refused before any byte is written.
    let mut sinks = vec![Vec::new(); 6];
    assert!(matches!(
        cairn_coding::encode_again(&data[..data.len() - 1], &first, &protection, &mut sinks, 2),
        Err(CodingError::InputTruncated { .. })
    ));
    assert!(matches!(
        cairn_coding::encode_again(&data[..], &first, &Protection::Public, &mut sinks, 2),
        Err(CodingError::InvalidParams { .. })
    ));
    assert!(matches!(
        cairn_coding::encode_again(&data[..], &first, &protection, &mut sinks[..5], 2),
        Err(CodingError::InvalidParams { .. })
    ));
}

#[test]
fn lanes_decode_verified_pieces_like_one_thread_and_refuse_misplaced_ones() {
    let params = small_params();
    let protection = encrypted(7);
    let data = bytes(14, 23_456);
    let (encoded, shards) = encode_vecs(&data, &params, &protection);
    let layout = encoded.layout.clone();
    let pieces_of = |checker: &cairn_coding::PieceChecker, segment: u64, lost: &[usize]| {
        let range = layout.piece_range(segment);
        let r = usize::try_from(range.start).unwrap()..usize::try_from(range.end).unwrap();
        (0u16..)
            .zip(&shards)
            .map(|(i, s)| {
                (!lost.contains(&usize::from(i)))
                    .then(|| checker.check(i, segment, &s[r.clone()]).unwrap())
            })
            .collect::<Vec<_>>()
    };
    for lanes in [1, 2, 4] {
        for lost in [&[][..], &[0, 2][..], &[1, 3][..]] {
            let mut decoder =
                Decoder::new(&encoded.meta, params.max_piece_size_bytes, &protection).unwrap();
            assert!(matches!(
                decoder.piece_checker(),
                Err(CodingError::TrailerMissing)
            ));
            decoder.load_trailer(&encoded.trailer).unwrap();
            let checker = decoder.piece_checker().unwrap();
            let mut segment = 0;
            let mut out = Vec::new();
            let mut recycled = 0usize;
            decoder
                .decode_on_lanes::<CodingError>(
                    lanes,
                    || {
                        if segment == layout.segment_count {
                            return Ok(None);
                        }
                        segment += 1;
                        Ok(Some(SegmentPieces::new(
                            segment - 1,
                            pieces_of(&checker, segment - 1, lost),
                        )))
                    },
                    |s, plain| {
                        let range = layout.segment_plain_range(s);
                        out.extend_from_slice(
                            &plain[..usize::try_from(range.end - range.start).unwrap()],
                        );
                        Ok(())
                    },
                    |buf| recycled += buf.len(),
                )
                .unwrap();
            assert_eq!(out, data, "{lanes} lanes, lost {lost:?}");
            assert_eq!(
                recycled,
                usize::try_from(layout.segment_count * layout.piece_size_bytes).unwrap()
                    * (layout.shard_count() - lost.len()),
                "every piece's buffer comes back ({lanes} lanes, lost {lost:?})"
            );
        }
    }
    let mut decoder =
        Decoder::new(&encoded.meta, params.max_piece_size_bytes, &protection).unwrap();
    decoder.load_trailer(&encoded.trailer).unwrap();
    let checker = decoder.piece_checker().unwrap();
    // A wrong piece never verifies; a verified piece in another slot or segment is refused.
    let range = layout.piece_range(0);
    let r = usize::try_from(range.start).unwrap()..usize::try_from(range.end).unwrap();
    let mut bad = shards[1][r.clone()].to_vec();
    bad[0] ^= 1;
    assert!(matches!(
        checker.check(1, 0, &bad[..]),
        Err(CodingError::PieceMismatch {
            shard_index: 1,
            segment: 0
        })
    ));
    let mut swapped = pieces_of(&checker, 0, &[]);
    swapped.swap(0, 1);
    assert!(matches!(
        decoder.decode_pieces(0, &swapped),
        Err(CodingError::InvalidParams { .. })
    ));
    let later = pieces_of(&checker, 1, &[]);
    assert!(matches!(
        decoder.decode_pieces(0, &later),
        Err(CodingError::InvalidParams { .. })
    ));
    let plain = decoder
        .decode_pieces(0, &pieces_of(&checker, 0, &[]))
        .unwrap();
    assert_eq!(plain, &data[..plain.len()]);
}

/// Pieces read into one allocation per segment (as the client's download does) are decoded
/// in place and come back as that one allocation; a slot whose buffer was replaced (a
/// stream that died and was re-opened) falls back to gathering by copy. Both give the same
/// bytes, and every buffer handed in comes back.
#[test]
fn lanes_decode_in_place_when_pieces_share_one_allocation() {
    let params = small_params();
    let protection = encrypted(9);
    let data = bytes(15, 31_337);
    let (encoded, shards) = encode_vecs(&data, &params, &protection);
    let layout = encoded.layout.clone();
    let n = layout.shard_count();
    let piece = usize::try_from(layout.piece_size_bytes).unwrap();
    // (lost shards, slot read into a buffer of its own instead of the segment's)
    let cases: [(&[usize], Option<usize>); 6] = [
        (&[], None),
        (&[0, 2], None),
        (&[1, 3], None),
        (&[n - 2, n - 1], None),
        (&[], Some(1)),
        (&[2], Some(0)),
    ];
    for lanes in [1, 2] {
        for (lost, replaced) in cases {
            let mut decoder =
                Decoder::new(&encoded.meta, params.max_piece_size_bytes, &protection).unwrap();
            decoder.load_trailer(&encoded.trailer).unwrap();
            let checker = decoder.piece_checker().unwrap();
            let mut segment = 0;
            let mut out = Vec::new();
            let (mut whole, mut given_bytes, mut recycled_bytes) = (0usize, 0usize, 0usize);
            decoder
                .decode_on_lanes::<CodingError>(
                    lanes,
                    || {
                        if segment == layout.segment_count {
                            return Ok(None);
                        }
                        let s = segment;
                        segment += 1;
                        let range = layout.piece_range(s);
                        let r = usize::try_from(range.start).unwrap()
                            ..usize::try_from(range.end).unwrap();
                        let mut buffer = BytesMut::zeroed(n * piece);
                        let mut slots: Vec<BytesMut> =
                            (0..n).map(|_| buffer.split_to(piece)).collect();
                        if let Some(i) = replaced {
                            slots[i] = BytesMut::zeroed(piece);
                        }
                        given_bytes += n * piece;
                        let mut pieces = Vec::new();
                        let mut spare = Vec::new();
                        for (i, mut slot) in slots.into_iter().enumerate() {
                            if lost.contains(&i) {
                                pieces.push(None);
                                spare.push(Some(slot));
                            } else {
                                slot.copy_from_slice(&shards[i][r.clone()]);
                                let index = u16::try_from(i).unwrap();
                                pieces.push(Some(checker.check(index, s, slot).unwrap()));
                                spare.push(None);
                            }
                        }
                        Ok(Some(SegmentPieces {
                            segment: s,
                            pieces,
                            spare,
                        }))
                    },
                    |s, plain| {
                        let range = layout.segment_plain_range(s);
                        out.extend_from_slice(
                            &plain[..usize::try_from(range.end - range.start).unwrap()],
                        );
                        Ok(())
                    },
                    |buf| {
                        recycled_bytes += buf.len();
                        whole += usize::from(buf.len() == n * piece);
                    },
                )
                .unwrap();
            let what = format!("{lanes} lanes, lost {lost:?}, replaced {replaced:?}");
            assert_eq!(out, data, "{what}");
            assert_eq!(
                recycled_bytes, given_bytes,
                "every buffer comes back ({what})"
            );
            let segments = usize::try_from(layout.segment_count).unwrap();
            let expect_whole = if replaced.is_some() { 0 } else { segments };
            assert_eq!(
                whole, expect_whole,
                "joined back into one allocation ({what})"
            );
        }
    }
}
