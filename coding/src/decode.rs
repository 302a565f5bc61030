//! The read path: any `k` verified pieces per segment in, plaintext out, strictly.
//!
//! Order of checks for every segment: each piece is hashed and compared with its root in the
//! trailer (which was itself checked against all `n` shard roots on chain) before it is used;
//! a piece that fails is dropped and another shard is read. After decoding, the segment is
//! re-encoded and every piece not used for decoding is compared with its committed root, so
//! two different `k`-subsets can never yield different bytes (design §10, "Inconsistent
//! encoding"). Only then is the segment decrypted (AEAD) and written out.

use crate::commit::{piece_cv, root_from_pieces};
use crate::crypto::{Protection, SegmentCipher};
use crate::erasure::Erasure;
use crate::error::{CodingError, ShardFailure};
use crate::layout::{Layout, PIECE_ROOT_BYTES, TRAILER_HEADER_BYTES};
use bytes::BytesMut;
use cairn_types::Hash;
use cairn_types::tx::BlobMeta;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::sync::Arc;

/// One shard, readable at offsets (an HTTP Range client, a file, a buffer).
///
/// The decoder first reads the trailer (once, from one shard), then the pieces of the
/// segments it decodes at increasing offsets, each piece right after the previous one, so
/// an implementation can serve them from one streaming response over the announced range.
pub trait ShardSource {
    /// Fills `buf` with the shard's bytes at `offset`; an error drops this shard.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

/// A shard held in memory.
pub struct SliceSource<'a>(pub &'a [u8]);

impl ShardSource for SliceSource<'_> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::UnexpectedEof)?;
        let bytes = start
            .checked_add(buf.len())
            .and_then(|end| self.0.get(start..end))
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

/// A shard behind anything seekable (a file opened by the caller, a cursor).
pub struct SeekSource<T>(pub T);

impl<T: Read + Seek> ShardSource for SeekSource<T> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.0.seek(SeekFrom::Start(offset))?;
        self.0.read_exact(buf)
    }
}

/// What a read did besides writing the plaintext.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadReport {
    pub bytes_written: u64,
    /// Shards dropped on the way (corrupt, truncated, unreachable): candidates for repair.
    pub failures: Vec<ShardFailure>,
}

/// Decodes one blob. Load the trailer first ([`Decoder::load_trailer`]), then decode segments
/// one by one ([`Decoder::decode_segment`]) or let [`Decoder::read_range`] drive sources.
pub struct Decoder {
    layout: Layout,
    meta: BlobMeta,
    cipher: Option<SegmentCipher>,
    erasure: Erasure,
    /// Shard-major piece roots, once a trailer has been checked against every shard root.
    checker: Option<PieceChecker>,
    data: Vec<u8>,
}

impl Decoder {
    /// A decoder for the blob `meta` describes (checked: id, shard size, root count) with the
    /// piece size it was encoded with and its protection.
    pub fn new(
        meta: &BlobMeta,
        max_piece_size_bytes: u32,
        protection: &Protection,
    ) -> Result<Self, CodingError> {
        let layout = Layout::from_meta(meta, max_piece_size_bytes, protection.is_encrypted())?;
        let cipher = SegmentCipher::for_layout(protection, &layout)?;
        let piece = to_usize(layout.piece_size_bytes)?;
        let k = layout.data_shards();
        let m = layout.shard_count() - k;
        Ok(Self {
            erasure: Erasure::new(k, m, piece),
            data: vec![0; k * piece],
            checker: None,
            cipher,
            meta: meta.clone(),
            layout,
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn meta(&self) -> &BlobMeta {
        &self.meta
    }

    /// Whether a trailer has been loaded.
    pub fn has_trailer(&self) -> bool {
        self.checker.is_some()
    }

    /// Checks `trailer` (the bytes at [`Layout::trailer_range`] of any one shard) against all
    /// `n` shard roots and keeps its piece roots. A trailer that opens some roots but not
    /// all means the shards are not one encoding, or this copy is corrupt: try another shard's.
    pub fn load_trailer(&mut self, trailer: &[u8]) -> Result<(), CodingError> {
        let expected = self.layout.trailer_size_bytes();
        let got = u64::try_from(trailer.len()).unwrap_or(u64::MAX);
        if got != expected {
            return Err(CodingError::TrailerLength { expected, got });
        }
        let header_len = to_usize(TRAILER_HEADER_BYTES)?;
        let (header, roots) = trailer.split_at(header_len.min(trailer.len()));
        let table: Vec<Hash> = roots
            .chunks_exact(to_usize(PIECE_ROOT_BYTES)?)
            .map(|bytes| {
                let mut root = [0u8; 32];
                root.copy_from_slice(bytes);
                Hash(root)
            })
            .collect();
        let segments = to_usize(self.layout.segment_count)?;
        let piece = to_usize(self.layout.piece_size_bytes)?;
        for ((shard_index, row), root) in (0u16..)
            .zip(table.chunks(segments.max(1)))
            .zip(self.meta.shard_roots.iter())
        {
            if root_from_pieces(row.iter().copied(), trailer, piece) != Some(*root) {
                return Err(CodingError::TrailerMismatch { shard_index });
            }
        }
        // Authenticated now: a header that differs is the blob's real format, not corruption.
        let expected_header = self.layout.trailer_header();
        if header != expected_header {
            return Err(CodingError::TrailerHeader {
                detail: if header.get(8) != expected_header.get(8) {
                    format!(
                        "the blob is {}, the reader expected it {}",
                        if header.get(8) == Some(&1) {
                            "encrypted"
                        } else {
                            "public"
                        },
                        if self.layout.encrypted {
                            "encrypted"
                        } else {
                            "public"
                        }
                    )
                } else {
                    format!(
                        "header {:?} differs from the expected {:?} (other format or piece size)",
                        header, expected_header
                    )
                },
            });
        }
        self.checker = Some(PieceChecker {
            table: Arc::new(table),
            layout: self.layout.clone(),
        });
        Ok(())
    }

    /// The committed root of piece `segment` of shard `shard_index`.
    pub fn piece_root(&self, shard_index: u16, segment: u64) -> Result<Hash, CodingError> {
        self.checker()?.root(shard_index, segment)
    }

    fn checker(&self) -> Result<&PieceChecker, CodingError> {
        self.checker.as_ref().ok_or(CodingError::TrailerMissing)
    }

    /// A checker of pieces against the loaded trailer, for download threads: pieces it
    /// passes go to [`Decoder::decode_pieces`] or [`Decoder::decode_on_lanes`] unhashed.
    pub fn piece_checker(&self) -> Result<PieceChecker, CodingError> {
        self.checker().cloned()
    }

    /// Verifies one piece against its commitment (length, then root).
    pub fn check_piece(
        &self,
        shard_index: u16,
        segment: u64,
        piece: &[u8],
    ) -> Result<(), CodingError> {
        self.checker()?.verify(shard_index, segment, piece)
    }

    /// [`Decoder::decode_segment`] from pieces a [`PieceChecker`] already verified (they are
    /// not hashed again). `pieces[i]` must be shard `i`'s piece of `segment`.
    pub fn decode_pieces(
        &mut self,
        segment: u64,
        pieces: &[Option<VerifiedPiece>],
    ) -> Result<&[u8], CodingError> {
        let slices = verified_slices(&self.layout, segment, pieces)?;
        self.decode_verified(segment, &slices)
    }

    /// Decodes the segments `next` yields (each with its verified pieces, in increasing
    /// segment order) on `lanes` threads and hands each plaintext to `sink` in that order,
    /// then every buffer the segment came with (pieces and spares) to `recycle`, joined into
    /// one where they are adjacent parts of one allocation (so the caller can read the next
    /// pieces into them instead of into fresh, zeroed memory). The caller's thread runs
    /// `next`, `sink` and `recycle`, so it can gather the following pieces while the lanes
    /// decode; memory is two segments per lane.
    ///
    /// When a segment's data slots (pieces, or spares where a data piece is missing) are
    /// adjacent parts of one allocation, it is decoded and decrypted right there: no copy of
    /// its pieces into a segment buffer, which is a sixth of a read's memory traffic.
    pub fn decode_on_lanes<E>(
        &mut self,
        lanes: usize,
        mut next: impl FnMut() -> Result<Option<SegmentPieces>, E>,
        mut sink: impl FnMut(u64, &[u8]) -> Result<(), E>,
        mut recycle: impl FnMut(BytesMut),
    ) -> Result<(), E>
    where
        E: From<CodingError> + Send,
    {
        let checker = self.checker.as_ref().ok_or(CodingError::TrailerMissing)?;
        let layout = &self.layout;
        let cipher = self.cipher.as_ref();
        let piece = to_usize(layout.piece_size_bytes)?;
        let n = layout.shard_count();
        let k = layout.data_shards();
        let m = n - k;
        // More lanes than segments would only start threads that get no job.
        let width = lanes.clamp(1, to_usize(layout.segment_count)?.max(1));
        let mut workspaces: Vec<Erasure> = (0..width).map(|_| Erasure::new(k, m, piece)).collect();
        // Segment buffers for segments whose pieces are not adjacent (gathered by copying).
        let free: std::cell::RefCell<Vec<Vec<u8>>> = std::cell::RefCell::new(Vec::new());
        crate::pipeline::ordered(
            &mut workspaces,
            &|erasure: &mut Erasure, mut job: LaneJob| {
                let len = job.decode(checker, cipher, erasure)?;
                Ok((job, len))
            },
            || {
                let Some(given) = next()? else {
                    return Ok(None);
                };
                let job = LaneJob::assemble(layout, given, k, piece, || {
                    free.borrow_mut()
                        .pop()
                        .unwrap_or_else(|| vec![0u8; k * piece])
                })?;
                Ok(Some(job))
            },
            |(job, len): (LaneJob, usize)| {
                let segment = job.segment;
                let result = match job.data().get(..len) {
                    Some(plain) => sink(segment, plain),
                    None => Err(E::from(CodingError::SegmentLength {
                        segment,
                        expected: u64::try_from(len).unwrap_or(u64::MAX),
                        got: u64::try_from(job.data().len()).unwrap_or(u64::MAX),
                    })),
                };
                let (own, buffers) = job.into_buffers();
                if let Some(own) = own {
                    free.borrow_mut().push(own);
                }
                buffers.into_iter().for_each(&mut recycle);
                result
            },
            || {
                E::from(CodingError::InvalidParams {
                    detail: "a decoding lane stopped without an answer".into(),
                })
            },
        )
    }

    /// Decodes `segment` from the pieces given (`pieces[i]` is shard `i`'s piece, `None` when
    /// not fetched; at least `k` needed). Every given piece is verified first and a bad one is
    /// an error naming it (drop it and call again); the plaintext returned has passed the
    /// strict re-encoding check and, when encrypted, AEAD authentication.
    pub fn decode_segment(
        &mut self,
        segment: u64,
        pieces: &[Option<&[u8]>],
    ) -> Result<&[u8], CodingError> {
        let n = self.layout.shard_count();
        if pieces.len() != n {
            return Err(CodingError::InvalidParams {
                detail: format!("{} piece slots for {n} shards", pieces.len()),
            });
        }
        self.checker()?;
        for (shard_index, piece) in (0u16..).zip(pieces) {
            if let Some(piece) = piece {
                self.check_piece(shard_index, segment, piece)?;
            }
        }
        self.decode_verified(segment, pieces)
    }

    fn decode_verified(
        &mut self,
        segment: u64,
        pieces: &[Option<&[u8]>],
    ) -> Result<&[u8], CodingError> {
        let checker = self.checker.as_ref().ok_or(CodingError::TrailerMissing)?;
        let present: Vec<bool> = pieces.iter().map(Option::is_some).collect();
        let len = decode_into(
            checker,
            self.cipher.as_ref(),
            &mut self.erasure,
            &mut self.data,
            segment,
            &present,
            pieces,
        )?;
        let range = self.layout.segment_plain_range(segment);
        self.data.get(..len).ok_or(CodingError::SegmentLength {
            segment,
            expected: range.end - range.start,
            got: 0,
        })
    }

    /// Reads the trailer from the first source that yields a valid one.
    fn fetch_trailer<S: ShardSource>(
        &mut self,
        sources: &mut [Option<S>],
        failures: &mut Vec<ShardFailure>,
    ) -> Result<(), CodingError> {
        let range = self.layout.trailer_range();
        let mut buf = vec![0u8; to_usize(range.end - range.start)?];
        for (shard_index, slot) in (0u16..).zip(sources.iter_mut()) {
            let Some(source) = slot else { continue };
            let outcome = match source.read_at(range.start, &mut buf) {
                Err(error) => Err(format!("reading the trailer: {error}")),
                Ok(()) => match self.load_trailer(&buf) {
                    Ok(()) => Ok(()),
                    Err(error @ CodingError::TrailerHeader { .. }) => return Err(error),
                    Err(error) => Err(error.to_string()),
                },
            };
            match outcome {
                Ok(()) => return Ok(()),
                Err(reason) => {
                    failures.push(ShardFailure {
                        shard_index,
                        segment: None,
                        reason,
                    });
                    *slot = None;
                }
            }
        }
        Err(CodingError::NotEnoughShards {
            segment: None,
            available: 0,
            required: self.layout.data_shards(),
            failures: std::mem::take(failures),
        })
    }

    /// Writes the plaintext bytes `range` to `out`, reading pieces from `sources`
    /// (`sources[i]` is shard `i`, `None` if unavailable; data shards are tried first). A
    /// source that fails to read or whose piece does not verify is dropped for the rest of
    /// the read and reported; the read fails only when fewer than `k` remain.
    pub fn read_range<S: ShardSource, W: Write>(
        &mut self,
        sources: &mut [Option<S>],
        range: Range<u64>,
        out: &mut W,
    ) -> Result<ReadReport, CodingError> {
        let n = self.layout.shard_count();
        if sources.len() != n {
            return Err(CodingError::InvalidParams {
                detail: format!("{} shard sources for {n} shards", sources.len()),
            });
        }
        let plan = self.layout.plan_range(range)?;
        let mut report = ReadReport::default();
        if self.checker.is_none() {
            self.fetch_trailer(sources, &mut report.failures)?;
        }
        let k = self.layout.data_shards();
        let piece = to_usize(self.layout.piece_size_bytes)?;
        let mut buffers = vec![vec![0u8; piece]; n];
        let mut skip = plan.skip_bytes;
        let mut left = plan.take_bytes;
        for segment in plan.segments.clone() {
            if left == 0 {
                break;
            }
            let offset = self.layout.piece_range(segment).start;
            let mut present = vec![false; n];
            let mut good = 0;
            for (index, slot) in sources.iter_mut().enumerate() {
                if good == k {
                    break;
                }
                let Some(source) = slot else { continue };
                let shard_index = u16::try_from(index).unwrap_or(u16::MAX);
                let outcome = source
                    .read_at(offset, &mut buffers[index])
                    .map_err(|error| format!("reading: {error}"))
                    .and_then(|()| {
                        self.check_piece(shard_index, segment, &buffers[index])
                            .map_err(|error| error.to_string())
                    });
                match outcome {
                    Ok(()) => {
                        present[index] = true;
                        good += 1;
                    }
                    Err(reason) => {
                        report.failures.push(ShardFailure {
                            shard_index,
                            segment: Some(segment),
                            reason,
                        });
                        *slot = None;
                    }
                }
            }
            if good < k {
                return Err(CodingError::NotEnoughShards {
                    segment: Some(segment),
                    available: good,
                    required: k,
                    failures: report.failures,
                });
            }
            let pieces: Vec<Option<&[u8]>> = buffers
                .iter()
                .zip(&present)
                .map(|(buf, &present)| present.then_some(&buf[..]))
                .collect();
            let plain = self.decode_verified(segment, &pieces)?;
            let start = to_usize(skip)?.min(plain.len());
            let end = start.saturating_add(to_usize(left)?).min(plain.len());
            let chunk = &plain[start..end];
            out.write_all(chunk).map_err(|source| CodingError::Write {
                offset: report.bytes_written,
                source,
            })?;
            let written = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
            report.bytes_written += written;
            left -= written;
            skip = 0;
        }
        out.flush().map_err(|source| CodingError::Write {
            offset: report.bytes_written,
            source,
        })?;
        Ok(report)
    }

    /// The whole blob: [`Decoder::read_range`] over `0..size_bytes`.
    pub fn read_all<S: ShardSource, W: Write>(
        &mut self,
        sources: &mut [Option<S>],
        out: &mut W,
    ) -> Result<ReadReport, CodingError> {
        let size = self.layout.size_bytes;
        self.read_range(sources, 0..size, out)
    }
}

/// Checks pieces against a blob's authenticated trailer; cheap to clone and `Send`, so each
/// download thread verifies what it receives (hashing spreads over the threads).
#[derive(Clone, Debug)]
pub struct PieceChecker {
    table: Arc<Vec<Hash>>,
    layout: Layout,
}

impl PieceChecker {
    /// The piece if it is the committed piece `segment` of shard `shard_index`.
    pub fn check(
        &self,
        shard_index: u16,
        segment: u64,
        bytes: impl Into<BytesMut>,
    ) -> Result<VerifiedPiece, CodingError> {
        let bytes = bytes.into();
        self.verify(shard_index, segment, &bytes)?;
        Ok(VerifiedPiece {
            shard_index,
            segment,
            bytes,
        })
    }
}

/// One segment's verified pieces, as [`Decoder::decode_on_lanes`] takes them.
#[derive(Debug)]
pub struct SegmentPieces {
    pub segment: u64,
    /// `pieces[i]` is shard `i`'s piece, `None` where none was fetched.
    pub pieces: Vec<Option<VerifiedPiece>>,
    /// Piece-sized buffers for slots without a piece (`spare[i]` for shard `i`; may be
    /// shorter than `pieces`). They only matter when they are the missing parts of the
    /// allocation the pieces were read into: the segment is then rebuilt in place.
    pub spare: Vec<Option<BytesMut>>,
}

impl SegmentPieces {
    /// Pieces without spare buffers.
    pub fn new(segment: u64, pieces: Vec<Option<VerifiedPiece>>) -> Self {
        Self {
            segment,
            pieces,
            spare: Vec::new(),
        }
    }
}

/// A piece that matched its committed root; only [`PieceChecker::check`] makes one.
#[derive(Debug)]
pub struct VerifiedPiece {
    shard_index: u16,
    segment: u64,
    bytes: BytesMut,
}

impl VerifiedPiece {
    pub fn shard_index(&self) -> u16 {
        self.shard_index
    }
    pub fn segment(&self) -> u64 {
        self.segment
    }
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// The piece's buffer, for reuse once it is decoded.
    pub fn into_bytes(self) -> BytesMut {
        self.bytes
    }
}

/// Joins `parts` into one buffer when each follows the previous in one allocation (no
/// copy); gives them back, unchanged and in order, when they do not.
fn join(parts: Vec<BytesMut>) -> Result<BytesMut, Vec<BytesMut>> {
    let adjacent = parts
        .windows(2)
        .all(|w| w[0].as_ptr_range().end == w[1].as_ptr());
    if !adjacent {
        return Err(parts);
    }
    let mut sizes = Vec::with_capacity(parts.len());
    let mut rest = parts.into_iter();
    let Some(mut joined) = rest.next() else {
        return Err(Vec::new());
    };
    sizes.push(joined.len());
    while let Some(part) = rest.next() {
        let size = part.len();
        if let Err(part) = joined.try_unsplit(part) {
            // Adjacent by chance but separate allocations: cut the joined ones apart again.
            let mut back: Vec<BytesMut> = sizes.iter().map(|&s| joined.split_to(s)).collect();
            back.push(part);
            back.extend(rest);
            return Err(back);
        }
        sizes.push(size);
    }
    Ok(joined)
}

/// Where a segment's `k` data pieces are decoded.
enum SegmentData {
    /// The data slots joined in place (their pieces already sit where decoding needs them).
    Joined(BytesMut),
    /// A buffer of the decoder's own; the used data pieces are copied into it.
    Own(Vec<u8>),
}

/// One segment on its way through a lane.
struct LaneJob {
    segment: u64,
    /// Shard `i` gave a verified piece.
    present: Vec<bool>,
    data: SegmentData,
    /// Every buffer not in `data`: per slot, its piece or spare.
    rest: Vec<Option<BytesMut>>,
}

impl LaneJob {
    fn assemble(
        layout: &Layout,
        given: SegmentPieces,
        k: usize,
        piece: usize,
        own: impl FnOnce() -> Vec<u8>,
    ) -> Result<Self, CodingError> {
        let SegmentPieces {
            segment,
            pieces,
            mut spare,
        } = given;
        verified_slices(layout, segment, &pieces)?;
        let present: Vec<bool> = pieces.iter().map(Option::is_some).collect();
        spare.resize_with(pieces.len(), || None);
        let mut rest: Vec<Option<BytesMut>> = pieces
            .into_iter()
            .zip(spare)
            .map(|(piece, spare)| piece.map(VerifiedPiece::into_bytes).or(spare))
            .collect();
        let data_slots = rest.get(..k).unwrap_or_default();
        if data_slots
            .iter()
            .all(|slot| slot.as_ref().is_some_and(|b| b.len() == piece))
        {
            let parts: Vec<BytesMut> = rest.iter_mut().take(k).filter_map(Option::take).collect();
            match join(parts) {
                Ok(data) => {
                    return Ok(Self {
                        segment,
                        present,
                        data: SegmentData::Joined(data),
                        rest,
                    });
                }
                Err(parts) => {
                    for (slot, part) in rest.iter_mut().zip(parts) {
                        *slot = Some(part);
                    }
                }
            }
        }
        Ok(Self {
            segment,
            present,
            data: SegmentData::Own(own()),
            rest,
        })
    }

    fn data(&self) -> &[u8] {
        match &self.data {
            SegmentData::Joined(data) => data,
            SegmentData::Own(data) => data,
        }
    }

    fn decode(
        &mut self,
        checker: &PieceChecker,
        cipher: Option<&SegmentCipher>,
        erasure: &mut Erasure,
    ) -> Result<usize, CodingError> {
        // Spares are not pieces: only a verified piece's bytes go to the decoder.
        let outside: Vec<Option<&[u8]>> = self
            .rest
            .iter()
            .zip(&self.present)
            .map(|(slot, &present)| slot.as_deref().filter(|_| present))
            .collect();
        let data: &mut [u8] = match &mut self.data {
            SegmentData::Joined(data) => data,
            SegmentData::Own(data) => data,
        };
        decode_into(
            checker,
            cipher,
            erasure,
            data,
            self.segment,
            &self.present,
            &outside,
        )
    }

    /// The decoder's own buffer (if used) and the caller's buffers, joined where adjacent.
    fn into_buffers(self) -> (Option<Vec<u8>>, Vec<BytesMut>) {
        let (own, mut parts) = match self.data {
            SegmentData::Joined(data) => (None, vec![data]),
            SegmentData::Own(data) => (Some(data), Vec::new()),
        };
        parts.extend(self.rest.into_iter().flatten());
        match join(parts) {
            Ok(whole) => (own, vec![whole]),
            Err(parts) => (own, parts),
        }
    }
}

/// The pieces as slices, after checking each sits in its own slot for `segment`.
fn verified_slices<'a>(
    layout: &Layout,
    segment: u64,
    pieces: &'a [Option<VerifiedPiece>],
) -> Result<Vec<Option<&'a [u8]>>, CodingError> {
    let n = layout.shard_count();
    if pieces.len() != n {
        return Err(CodingError::InvalidParams {
            detail: format!("{} piece slots for {n} shards", pieces.len()),
        });
    }
    (0u16..)
        .zip(pieces)
        .map(|(slot, piece)| match piece {
            None => Ok(None),
            Some(p) if p.shard_index == slot && p.segment == segment => Ok(Some(&p.bytes[..])),
            Some(p) => Err(CodingError::InvalidParams {
                detail: format!(
                    "slot {slot} of segment {segment} holds shard {}'s piece of segment {}",
                    p.shard_index, p.segment
                ),
            }),
        })
        .collect()
}

impl PieceChecker {
    /// The committed root of piece `segment` of shard `shard_index`.
    fn root(&self, shard_index: u16, segment: u64) -> Result<Hash, CodingError> {
        let layout = &self.layout;
        if segment >= layout.segment_count {
            return Err(CodingError::UnknownSegment {
                segment,
                segment_count: layout.segment_count,
            });
        }
        let index = usize::from(shard_index)
            .checked_mul(to_usize(layout.segment_count)?)
            .and_then(|row| row.checked_add(usize::try_from(segment).ok()?));
        index
            .and_then(|index| self.table.get(index))
            .copied()
            .ok_or(CodingError::UnknownShard {
                shard_index,
                shard_count: layout.shard_count(),
            })
    }

    /// Checks one piece against its commitment (length, then root).
    fn verify(&self, shard_index: u16, segment: u64, piece: &[u8]) -> Result<(), CodingError> {
        let expected_root = self.root(shard_index, segment)?;
        let expected = self.layout.piece_size_bytes;
        let got = u64::try_from(piece.len()).unwrap_or(u64::MAX);
        if got != expected {
            return Err(CodingError::PieceLength {
                shard_index,
                segment,
                expected,
                got,
            });
        }
        if piece_cv(piece, segment) != expected_root {
            return Err(CodingError::PieceMismatch {
                shard_index,
                segment,
            });
        }
        Ok(())
    }
}

/// Decodes one segment from verified pieces into `data` (`k` pieces long), strictly: the
/// codeword through the pieces used must be the committed one, the padding zero, and the
/// ciphertext authentic. Returns the plaintext length, at the start of `data`.
///
/// `present[i]`: shard `i`'s piece is verified. Its bytes are `outside[i]`, or, for a data
/// piece with no `outside` bytes, already in its slot of `data`.
fn decode_into(
    checker: &PieceChecker,
    cipher: Option<&SegmentCipher>,
    erasure: &mut Erasure,
    data: &mut [u8],
    segment: u64,
    present: &[bool],
    outside: &[Option<&[u8]>],
) -> Result<usize, CodingError> {
    let layout = &checker.layout;
    let k = layout.data_shards();
    let piece = to_usize(layout.piece_size_bytes)?;
    // Use exactly k pieces, data first (no decoding at all when they are all there).
    let mut used = vec![false; present.len()];
    let mut chosen = 0;
    for (index, &present) in present.iter().enumerate() {
        if chosen < k && present {
            used[index] = true;
            chosen += 1;
        }
    }
    if chosen < k {
        return Err(CodingError::NotEnoughShards {
            segment: Some(segment),
            available: chosen,
            required: k,
            failures: Vec::new(),
        });
    }
    for (index, out) in data.chunks_exact_mut(piece).enumerate() {
        if let (true, Some(Some(bytes))) = (used[index], outside.get(index)) {
            out.copy_from_slice(bytes);
        }
    }
    let mut parity_given: Vec<Option<&[u8]>> = Vec::with_capacity(present.len() - k);
    for (index, &used) in used.iter().enumerate().skip(k) {
        let bytes = outside.get(index).copied().flatten();
        if used && bytes.is_none() {
            return Err(CodingError::InvalidParams {
                detail: format!("segment {segment}: parity piece {index} has no bytes"),
            });
        }
        parity_given.push(bytes.filter(|_| used));
    }
    erasure.decode(segment, data, &used[..k], &parity_given)?;
    // Strict read: the codeword through the k pieces used must be the committed one, so
    // every piece not used is recomputed and compared with its root. Rebuilt data pieces
    // are at hand; parity is recomputed only when some parity piece went unused (when all
    // were used, as with m data pieces lost, every piece is already checked), and hashed
    // where the encoder left it.
    let mismatch = |shard_index: usize| CodingError::InconsistentEncoding {
        segment,
        shard_index: u16::try_from(shard_index).unwrap_or(u16::MAX),
    };
    let root =
        |shard_index: usize| checker.root(u16::try_from(shard_index).unwrap_or(u16::MAX), segment);
    for (index, bytes) in data.chunks_exact(piece).enumerate() {
        if !used[index] && piece_cv(bytes, segment) != root(index)? {
            return Err(mismatch(index));
        }
    }
    if used[k..].iter().any(|&used| !used) {
        erasure.encode_each(segment, data, |parity_index, bytes| {
            let index = k + parity_index;
            if !used[index] && piece_cv(bytes, segment) != root(index)? {
                return Err(mismatch(index));
            }
            Ok(())
        })?;
    }
    let range = layout.segment_plain_range(segment);
    let len = to_usize(range.end - range.start)?;
    let tag = to_usize(layout.tag_bytes())?;
    if data
        .get(len + tag..)
        .is_some_and(|padding| padding.iter().any(|&byte| byte != 0))
    {
        return Err(CodingError::Padding { segment });
    }
    if let Some(cipher) = cipher {
        cipher.open(segment, data, len)?;
    }
    Ok(len)
}

fn to_usize(value: u64) -> Result<usize, CodingError> {
    usize::try_from(value).map_err(|_| CodingError::InvalidParams {
        detail: format!("{value} bytes do not fit in memory"),
    })
}
