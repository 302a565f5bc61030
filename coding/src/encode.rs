//! The write path: plaintext segments in, `n` shard streams and the blob metadata out.

use crate::commit::{piece_cv, root_from_pieces};
use crate::crypto::{Protection, SegmentCipher};
use crate::erasure::Erasure;
use crate::error::CodingError;
use crate::layout::{Layout, Params};
use cairn_types::Hash;
use cairn_types::tx::BlobMeta;
use std::io::{Read, Write};

/// What encoding a blob produced: the metadata for the chain (id, shard roots), its layout,
/// and the trailer every shard ends with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedBlob {
    pub meta: BlobMeta,
    pub layout: Layout,
    /// The bytes after the last piece of every shard (the same in all shards).
    pub trailer: Vec<u8>,
}

/// The `n` pieces of one encoded segment, borrowed from the encoder until the next push.
pub struct Pieces<'a> {
    segment: u64,
    piece_size: usize,
    data: &'a [u8],
    parity: &'a [u8],
}

impl<'a> Pieces<'a> {
    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// Piece of shard `shard_index` (data shards first, then parity), `None` past the end.
    pub fn piece(&self, shard_index: usize) -> Option<&'a [u8]> {
        let data_pieces = self.data.len() / self.piece_size.max(1);
        if shard_index < data_pieces {
            let start = shard_index * self.piece_size;
            self.data.get(start..start + self.piece_size)
        } else {
            let start = (shard_index - data_pieces) * self.piece_size;
            self.parity.get(start..start + self.piece_size)
        }
    }

    /// Every piece in shard order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let size = self.piece_size.max(1);
        self.data
            .chunks_exact(size)
            .chain(self.parity.chunks_exact(size))
    }
}

/// Encodes one blob segment by segment, keeping one segment's pieces in memory.
///
/// Feed the segments in order with [`Encoder::push_segment`] (each exactly
/// [`Layout::segment_plain_range`] long), send each returned piece to its shard, then
/// [`Encoder::finish`] gives the trailer to append to every shard and the [`BlobMeta`].
pub struct Encoder {
    layout: Layout,
    cipher: Option<SegmentCipher>,
    erasure: Erasure,
    data: Vec<u8>,
    parity: Vec<u8>,
    /// Shard-major: root of piece `segment` of shard `s` at `s * segment_count + segment`.
    piece_roots: Vec<Hash>,
    next_segment: u64,
}

fn usize_of(value: u64, what: &str) -> Result<usize, CodingError> {
    usize::try_from(value).map_err(|_| CodingError::InvalidParams {
        detail: format!("{what} of {value} does not fit in memory"),
    })
}

impl Encoder {
    pub fn new(
        size_bytes: u64,
        params: &Params,
        protection: &Protection,
    ) -> Result<Self, CodingError> {
        let layout = Layout::new(size_bytes, params, protection.is_encrypted())?;
        let cipher = SegmentCipher::for_layout(protection, &layout)?;
        let piece = usize_of(layout.piece_size_bytes, "a piece")?;
        let k = usize::from(params.data_shards);
        let m = usize::from(params.parity_shards);
        let roots = usize_of(layout.segment_count, "a segment count")?
            .checked_mul(k + m)
            .ok_or(CodingError::InvalidParams {
                detail: "too many segments".into(),
            })?;
        Ok(Self {
            erasure: Erasure::new(k, m, piece),
            data: vec![0; k * piece],
            parity: vec![0; m * piece],
            piece_roots: vec![Hash::ZERO; roots],
            next_segment: 0,
            cipher,
            layout,
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Index of the segment the next push encodes.
    pub fn next_segment(&self) -> u64 {
        self.next_segment
    }

    /// Encodes the next segment from its plaintext bytes.
    pub fn push_segment(&mut self, plaintext: &[u8]) -> Result<Pieces<'_>, CodingError> {
        let segment = self.next_segment;
        let slot = self.plaintext_slot()?;
        if slot.len() != plaintext.len() {
            return Err(CodingError::SegmentLength {
                segment,
                expected: u64::try_from(slot.len()).unwrap_or(u64::MAX),
                got: u64::try_from(plaintext.len()).unwrap_or(u64::MAX),
            });
        }
        slot.copy_from_slice(plaintext);
        self.seal_slot()
    }

    /// Where the next segment's plaintext goes, to read it in without a copy; then call
    /// [`Encoder::seal_slot`].
    pub fn plaintext_slot(&mut self) -> Result<&mut [u8], CodingError> {
        if self.next_segment >= self.layout.segment_count {
            return Err(CodingError::UnknownSegment {
                segment: self.next_segment,
                segment_count: self.layout.segment_count,
            });
        }
        let range = self.layout.segment_plain_range(self.next_segment);
        let len = usize_of(range.end - range.start, "a segment")?;
        self.data.get_mut(..len).ok_or(CodingError::SegmentLength {
            segment: self.next_segment,
            expected: range.end - range.start,
            got: 0,
        })
    }

    /// Encrypts and erasure-codes the plaintext now in [`Encoder::plaintext_slot`].
    pub fn seal_slot(&mut self) -> Result<Pieces<'_>, CodingError> {
        let segment = self.next_segment;
        let n = self.layout.shard_count();
        let mut cvs = vec![Hash::ZERO; n];
        code_segment(
            &self.layout,
            self.cipher.as_ref(),
            &mut self.erasure,
            segment,
            &mut self.data,
            &mut self.parity,
            Some(&mut cvs),
        )?;
        record_piece_roots(&mut self.piece_roots, &self.layout, segment, &cvs)?;
        self.next_segment += 1;
        let piece = usize_of(self.layout.piece_size_bytes, "a piece")?;
        Ok(Pieces {
            segment,
            piece_size: piece,
            data: &self.data,
            parity: &self.parity,
        })
    }

    /// After the last segment: the trailer and the metadata.
    pub fn finish(self) -> Result<EncodedBlob, CodingError> {
        if self.next_segment != self.layout.segment_count {
            return Err(CodingError::SegmentOrder {
                segment: self.layout.segment_count,
                expected: self.next_segment,
            });
        }
        seal_blob(self.layout, &self.piece_roots)
    }
}

/// Encrypts (unless public), zero-pads and erasure-codes one segment whose plaintext fills
/// `data[..len]`, and with `cvs` (one per shard) commits to every piece.
fn code_segment(
    layout: &Layout,
    cipher: Option<&SegmentCipher>,
    erasure: &mut Erasure,
    segment: u64,
    data: &mut [u8],
    parity: &mut [u8],
    cvs: Option<&mut [Hash]>,
) -> Result<(), CodingError> {
    if segment >= layout.segment_count {
        return Err(CodingError::UnknownSegment {
            segment,
            segment_count: layout.segment_count,
        });
    }
    let range = layout.segment_plain_range(segment);
    let len = usize_of(range.end - range.start, "a segment")?;
    let tag = usize_of(layout.tag_bytes(), "a tag")?;
    // Padding is zero so that re-encoding a decoded segment reproduces every piece.
    if let Some(padding) = data.get_mut(len..) {
        padding.fill(0);
    }
    if let Some(cipher) = cipher {
        cipher.seal(segment, data, len)?;
    }
    debug_assert!(len + tag <= data.len());
    erasure.encode(segment, data, parity)?;
    if let Some(cvs) = cvs {
        let piece = usize_of(layout.piece_size_bytes, "a piece")?;
        for (cv, bytes) in cvs
            .iter_mut()
            .zip(data.chunks_exact(piece).chain(parity.chunks_exact(piece)))
        {
            *cv = piece_cv(bytes, segment);
        }
    }
    Ok(())
}

/// Puts one segment's piece roots (one per shard) into the shard-major table.
fn record_piece_roots(
    piece_roots: &mut [Hash],
    layout: &Layout,
    segment: u64,
    cvs: &[Hash],
) -> Result<(), CodingError> {
    let segments = usize_of(layout.segment_count, "a segment count")?;
    let index = usize_of(segment, "a segment index")?;
    for (shard, cv) in cvs.iter().enumerate() {
        if let Some(slot) = piece_roots.get_mut(shard * segments + index) {
            *slot = *cv;
        }
    }
    Ok(())
}

/// The trailer and metadata of a blob from its shard-major piece roots.
fn seal_blob(layout: Layout, piece_roots: &[Hash]) -> Result<EncodedBlob, CodingError> {
    let mut trailer = Vec::with_capacity(piece_roots.len() * 32 + 16);
    trailer.extend_from_slice(&layout.trailer_header());
    for root in piece_roots {
        trailer.extend_from_slice(root.as_bytes());
    }
    let piece = usize_of(layout.piece_size_bytes, "a piece")?;
    let segments = usize_of(layout.segment_count, "a segment count")?;
    let roots = piece_roots
        .chunks(segments.max(1))
        .map(|row| {
            root_from_pieces(row.iter().copied(), &trailer, piece).ok_or_else(|| {
                CodingError::InvalidParams {
                    detail: "a shard with no trailer has no root".into(),
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let meta = layout.blob_meta(roots)?;
    Ok(EncodedBlob {
        meta,
        layout,
        trailer,
    })
}

/// Commits to whole shards held in memory as they are: computes every piece root, writes
/// the trailer over each shard's tail (the bytes after its last piece) and returns the
/// blob's metadata. The writer never needs this (it commits while it encodes); it is how a
/// tool re-seals shards it changed, and how the tests' `InconsistentUploader` commits to
/// pieces that are no longer one codeword, so each shard still matches its own root.
pub fn commit_shards(layout: &Layout, shards: &mut [Vec<u8>]) -> Result<EncodedBlob, CodingError> {
    let piece = usize_of(layout.piece_size_bytes, "a piece")?;
    let segments = usize_of(layout.segment_count, "a segment count")?;
    let data_end = usize_of(layout.trailer_range().start, "a shard")?;
    if shards.len() != layout.shard_count() {
        return Err(CodingError::InvalidParams {
            detail: format!(
                "{} shards for {} in the layout",
                shards.len(),
                layout.shard_count()
            ),
        });
    }
    let mut piece_roots = Vec::with_capacity(shards.len().saturating_mul(segments));
    for shard in shards.iter() {
        let pieces = shard.get(..data_end).ok_or(CodingError::InvalidParams {
            detail: format!(
                "a shard of {} bytes holds no {segments} pieces",
                shard.len()
            ),
        })?;
        piece_roots.extend(
            (0u64..)
                .zip(pieces.chunks_exact(piece))
                .map(|(segment, bytes)| piece_cv(bytes, segment)),
        );
    }
    let sealed = seal_blob(layout.clone(), &piece_roots)?;
    for shard in shards.iter_mut() {
        shard.truncate(data_end);
        shard.extend_from_slice(&sealed.trailer);
    }
    Ok(sealed)
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
pub(crate) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// One segment in flight through the pipeline, with the buffers it travels in.
struct Batch {
    segment: u64,
    data: Vec<u8>,
    parity: Vec<u8>,
    /// One piece root per shard, when committing.
    cvs: Vec<Hash>,
}

/// What the run does with commitments: compute them, or reuse those of an earlier pass.
enum Commitments<'a> {
    Compute,
    Known(&'a EncodedBlob),
}

fn run<R: Read, W: Write>(
    mut plaintext: R,
    layout: Layout,
    protection: &Protection,
    sinks: &mut [W],
    lanes: usize,
    commitments: Commitments<'_>,
) -> Result<EncodedBlob, CodingError> {
    let size_bytes = layout.size_bytes;
    let cipher = SegmentCipher::for_layout(protection, &layout)?;
    let piece = usize_of(layout.piece_size_bytes, "a piece")?;
    let k = layout.data_shards();
    let n = layout.shard_count();
    let segments = usize_of(layout.segment_count, "a segment count")?;
    let commit = matches!(commitments, Commitments::Compute);
    let mut piece_roots = if commit {
        let count = segments.checked_mul(n).ok_or(CodingError::InvalidParams {
            detail: "too many segments".into(),
        })?;
        vec![Hash::ZERO; count]
    } else {
        Vec::new()
    };
    // More lanes than segments would only allocate buffers that never fill.
    let width = lanes.clamp(1, segments.max(1));
    let mut erasures: Vec<Erasure> = (0..width).map(|_| Erasure::new(k, n - k, piece)).collect();
    let free: std::cell::RefCell<Vec<Batch>> = std::cell::RefCell::new(Vec::new());
    let mut next_segment = 0u64;
    let mut offset = 0u64;
    let mut written = 0u64;
    let layout_ref = &layout;
    let cipher_ref = cipher.as_ref();
    crate::pipeline::ordered(
        &mut erasures,
        &|erasure: &mut Erasure, mut batch: Batch| {
            let cvs = commit.then_some(&mut batch.cvs[..]);
            code_segment(
                layout_ref,
                cipher_ref,
                erasure,
                batch.segment,
                &mut batch.data,
                &mut batch.parity,
                cvs,
            )?;
            Ok(batch)
        },
        || {
            if next_segment >= layout_ref.segment_count {
                return Ok(None);
            }
            let mut batch = free.borrow_mut().pop().unwrap_or_else(|| Batch {
                segment: 0,
                data: vec![0; k * piece],
                parity: vec![0; (n - k) * piece],
                cvs: vec![Hash::ZERO; if commit { n } else { 0 }],
            });
            batch.segment = next_segment;
            let range = layout_ref.segment_plain_range(next_segment);
            let want = range.end - range.start;
            let slot = batch.data.get_mut(..usize_of(want, "a segment")?).ok_or(
                CodingError::SegmentLength {
                    segment: next_segment,
                    expected: want,
                    got: 0,
                },
            )?;
            let got = read_full(&mut plaintext, slot)
                .map_err(|source| CodingError::Read { offset, source })?;
            let got = u64::try_from(got).unwrap_or(u64::MAX);
            offset += got;
            if got != want {
                return Err(CodingError::InputTruncated {
                    expected: size_bytes,
                    got: offset,
                });
            }
            next_segment += 1;
            Ok(Some(batch))
        },
        |batch: Batch| {
            let pieces = batch
                .data
                .chunks_exact(piece)
                .chain(batch.parity.chunks_exact(piece));
            for ((shard_index, sink), bytes) in (0u16..).zip(sinks.iter_mut()).zip(pieces) {
                sink.write_all(bytes)
                    .map_err(|source| CodingError::ShardWrite {
                        shard_index,
                        offset: written,
                        source,
                    })?;
            }
            if commit {
                record_piece_roots(&mut piece_roots, layout_ref, batch.segment, &batch.cvs)?;
            }
            written += layout_ref.piece_size_bytes;
            free.borrow_mut().push(batch);
            Ok(())
        },
        || CodingError::InvalidParams {
            detail: "a coding lane stopped without an answer".into(),
        },
    )?;
    debug_assert_eq!(next_segment, layout.segment_count);
    let mut probe = [0u8; 1];
    if read_full(&mut plaintext, &mut probe)
        .map_err(|source| CodingError::Read { offset, source })?
        != 0
    {
        return Err(CodingError::InputTooLong {
            expected: size_bytes,
        });
    }
    let encoded = match commitments {
        Commitments::Compute => seal_blob(layout, &piece_roots)?,
        Commitments::Known(encoded) => encoded.clone(),
    };
    for (shard_index, sink) in (0u16..).zip(sinks.iter_mut()) {
        sink.write_all(&encoded.trailer)
            .and_then(|()| sink.flush())
            .map_err(|source| CodingError::ShardWrite {
                shard_index,
                offset: written,
                source,
            })?;
    }
    Ok(encoded)
}

fn check_sinks<W>(sinks: &[W], shard_count: usize) -> Result<(), CodingError> {
    if sinks.len() != shard_count {
        return Err(CodingError::InvalidParams {
            detail: format!("{} shard sinks for {shard_count} shards", sinks.len()),
        });
    }
    Ok(())
}

/// Encodes `size_bytes` of plaintext from `plaintext` into the `n = k + m` shard sinks
/// (`sinks[i]` receives shard `i` whole: pieces in segment order, then the trailer).
/// Memory stays at one segment's pieces whatever the size. One core; see
/// [`encode_on_lanes`] for more.
pub fn encode<R: Read, W: Write>(
    plaintext: R,
    size_bytes: u64,
    params: &Params,
    protection: &Protection,
    sinks: &mut [W],
) -> Result<EncodedBlob, CodingError> {
    encode_on_lanes(plaintext, size_bytes, params, protection, sinks, 1)
}

/// [`encode`] with segments coded on `lanes` threads (the caller's thread reads and writes);
/// the shards are byte-identical for any lane count. Memory: two segments per lane.
pub fn encode_on_lanes<R: Read, W: Write>(
    plaintext: R,
    size_bytes: u64,
    params: &Params,
    protection: &Protection,
    sinks: &mut [W],
    lanes: usize,
) -> Result<EncodedBlob, CodingError> {
    check_sinks(sinks, params.shard_count())?;
    let layout = Layout::new(size_bytes, params, protection.is_encrypted())?;
    run(
        plaintext,
        layout,
        protection,
        sinks,
        lanes,
        Commitments::Compute,
    )
}

/// The first pass of an upload: the metadata (shard roots, blob id) without keeping any
/// shard. Encoding is deterministic for a given key, so a later [`encode_again`] with the
/// same inputs streams exactly the shards these roots commit to.
pub fn compute_meta<R: Read>(
    plaintext: R,
    size_bytes: u64,
    params: &Params,
    protection: &Protection,
) -> Result<EncodedBlob, CodingError> {
    compute_meta_on_lanes(plaintext, size_bytes, params, protection, 1)
}

/// [`compute_meta`] with segments coded on `lanes` threads.
pub fn compute_meta_on_lanes<R: Read>(
    plaintext: R,
    size_bytes: u64,
    params: &Params,
    protection: &Protection,
    lanes: usize,
) -> Result<EncodedBlob, CodingError> {
    let layout = Layout::new(size_bytes, params, protection.is_encrypted())?;
    run::<R, std::io::Sink>(
        plaintext,
        layout,
        protection,
        &mut [],
        lanes,
        Commitments::Compute,
    )
}

/// The second pass of an upload: streams the shards of a blob whose metadata an earlier
/// pass ([`compute_meta`]) produced, without hashing again (the trailer is that pass's).
///
/// Pieces are not re-committed, so plaintext that changed between the passes yields shards
/// that do not match the roots on chain: every provider refuses them (each checks the whole
/// shard against its root before it signs). Callers should also check that the input did
/// not change (size and modification time) to name the cause.
pub fn encode_again<R: Read, W: Write>(
    plaintext: R,
    encoded: &EncodedBlob,
    protection: &Protection,
    sinks: &mut [W],
    lanes: usize,
) -> Result<EncodedBlob, CodingError> {
    check_sinks(sinks, encoded.layout.shard_count())?;
    if encoded.layout.encrypted != protection.is_encrypted() {
        return Err(CodingError::InvalidParams {
            detail: "the protection differs from the first pass's".into(),
        });
    }
    run(
        plaintext,
        encoded.layout.clone(),
        protection,
        sinks,
        lanes,
        Commitments::Known(encoded),
    )
}
