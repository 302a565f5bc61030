//! Reed-Solomon over GF(2^16) (Leopard-style FFT), through the copy of reed-solomon-simd that
//! commonware-cryptography vendors (AVX2/AVX-512/GFNI engines picked at run time); see
//! docs/benchmarks.md for why this one. The code is systematic: data pieces are the segment
//! bytes themselves, so a read of the k data shards decodes nothing.

use crate::error::CodingError;
use commonware_cryptography::reed_solomon::{Decoder, Encoder};

pub(crate) fn supports(data_shards: usize, parity_shards: usize) -> bool {
    Encoder::supports(data_shards, parity_shards)
}

/// Encoder and decoder for one (k, m, piece) shape, built on first use and reused.
pub(crate) struct Erasure {
    k: usize,
    m: usize,
    piece: usize,
    encoder: Option<Encoder>,
    decoder: Option<Decoder>,
}

fn failed(segment: u64, error: impl std::fmt::Display) -> CodingError {
    CodingError::Erasure {
        segment,
        detail: error.to_string(),
    }
}

impl Erasure {
    pub(crate) fn new(k: usize, m: usize, piece: usize) -> Self {
        Self {
            k,
            m,
            piece,
            encoder: None,
            decoder: None,
        }
    }

    /// Writes the `m` parity pieces of `data` (`k` pieces back to back) into `parity`.
    pub(crate) fn encode(
        &mut self,
        segment: u64,
        data: &[u8],
        parity: &mut [u8],
    ) -> Result<(), CodingError> {
        let mut outs = parity.chunks_exact_mut(self.piece);
        self.encode_each(segment, data, |index, recovery| {
            outs.next()
                .ok_or_else(|| failed(segment, format!("no room for parity piece {index}")))?
                .copy_from_slice(recovery);
            Ok(())
        })
    }

    /// Hands each of the `m` parity pieces of `data` to `each` (index, bytes) where the
    /// encoder computed it, so a check that only hashes them copies nothing.
    pub(crate) fn encode_each(
        &mut self,
        segment: u64,
        data: &[u8],
        mut each: impl FnMut(usize, &[u8]) -> Result<(), CodingError>,
    ) -> Result<(), CodingError> {
        if self.m == 0 {
            return Ok(());
        }
        let encoder = match &mut self.encoder {
            Some(encoder) => encoder,
            slot => slot
                .insert(Encoder::new(self.k, self.m, self.piece).map_err(|e| failed(segment, e))?),
        };
        for piece in data.chunks_exact(self.piece) {
            encoder
                .add_original_shard(piece)
                .map_err(|e| failed(segment, e))?;
        }
        let result = encoder.encode().map_err(|e| failed(segment, e))?;
        for index in 0..self.m {
            let recovery = result
                .recovery(index)
                .ok_or_else(|| failed(segment, format!("no recovery piece {index}")))?;
            each(index, recovery)?;
        }
        Ok(())
    }

    /// Fills the missing data pieces of `data` from the present ones (`have_data`) and the
    /// parity pieces given; at least `k` pieces in all must be present.
    pub(crate) fn decode(
        &mut self,
        segment: u64,
        data: &mut [u8],
        have_data: &[bool],
        parity: &[Option<&[u8]>],
    ) -> Result<(), CodingError> {
        if have_data.iter().all(|&have| have) {
            return Ok(());
        }
        let decoder = match &mut self.decoder {
            Some(decoder) => decoder,
            slot => slot
                .insert(Decoder::new(self.k, self.m, self.piece).map_err(|e| failed(segment, e))?),
        };
        for (index, piece) in data.chunks_exact(self.piece).enumerate() {
            if have_data.get(index).copied().unwrap_or(false) {
                decoder
                    .add_original_shard(index, piece)
                    .map_err(|e| failed(segment, e))?;
            }
        }
        for (index, piece) in parity.iter().enumerate() {
            if let Some(piece) = piece {
                decoder
                    .add_recovery_shard(index, piece)
                    .map_err(|e| failed(segment, e))?;
            }
        }
        let result = decoder
            .decode()
            .map_err(|e| failed(segment, e))?
            .ok_or_else(|| failed(segment, "decoder restored nothing"))?;
        for (index, out) in data.chunks_exact_mut(self.piece).enumerate() {
            if !have_data.get(index).copied().unwrap_or(false) {
                let restored = result
                    .original(index)
                    .ok_or_else(|| failed(segment, format!("data piece {index} not restored")))?;
                out.copy_from_slice(restored);
            }
        }
        Ok(())
    }
}
