//! The embedded store: an append-only log of framed batches, one file, written by this crate.
//!
//! A frame is `len: u32 BE | blake3(payload): 32 bytes | payload` where the payload is one
//! [`Batch`] in JSON. A batch carries the blocks it indexes *and* their heights, so the last
//! indexed height is stored atomically with the data it produced: a frame is either wholly
//! there (checksum matches) or ignored. Opening replays every whole frame and truncates a torn
//! tail (a crash mid-append), so nothing is ever counted twice or half.
//!
//! Why not redb or RocksDB: the index is rebuilt in memory from the log at start (devnet and
//! testnet scale: a few hundred bytes per block, a few KiB per epoch), the only write pattern
//! is append, and a 100-line format we can reason about beats a dependency (RocksDB is C++).

use crate::model::Batch;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Largest frame accepted on replay: a hostile or corrupt length cannot make us allocate more.
pub const MAX_FRAME_BYTES: usize = 64 << 20;
const HEADER_BYTES: usize = 4 + 32;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("index log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("index log {path}: frame at byte {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("batch too large for the log: {size_bytes} bytes (limit {MAX_FRAME_BYTES})")]
    TooLarge { size_bytes: usize },
}

/// The open log.
#[derive(Debug)]
pub struct Log {
    path: PathBuf,
    file: File,
    len_bytes: u64,
    /// Bytes cut off a torn tail when it was opened.
    pub truncated_bytes: u64,
}

impl Log {
    /// Opens (or creates) the log and returns every whole batch in order.
    pub fn open(path: &Path) -> Result<(Self, Vec<Batch>), StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let mut batches = Vec::new();
        let mut offset = 0usize;
        while let Some(header) = bytes.get(offset..offset.saturating_add(HEADER_BYTES)) {
            let mut len = [0u8; 4];
            len.copy_from_slice(&header[..4]);
            let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
            let start = offset + HEADER_BYTES;
            let Some(payload) = (len <= MAX_FRAME_BYTES)
                .then(|| bytes.get(start..start.saturating_add(len)))
                .flatten()
            else {
                break; // torn tail: the length or payload never fully reached the disk
            };
            if blake3::hash(payload).as_bytes()[..] != header[4..] {
                break; // torn tail: a partly written payload
            }
            let batch: Batch =
                serde_json::from_slice(payload).map_err(|e| StoreError::Corrupt {
                    path: path.to_path_buf(),
                    offset: u64::try_from(offset).unwrap_or(u64::MAX),
                    reason: e.to_string(),
                })?;
            batches.push(batch);
            offset = start + len;
        }
        let whole = u64::try_from(offset).unwrap_or(u64::MAX);
        let total = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if whole < total {
            file.set_len(whole).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok((
            Self {
                path: path.to_path_buf(),
                file,
                len_bytes: whole,
                truncated_bytes: total - whole,
            },
            batches,
        ))
    }

    /// Appends one batch and waits until it is on disk.
    pub fn append(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let payload = serde_json::to_vec(batch).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            offset: self.len_bytes,
            reason: e.to_string(),
        })?;
        if payload.len() > MAX_FRAME_BYTES {
            return Err(StoreError::TooLarge {
                size_bytes: payload.len(),
            });
        }
        let len = u32::try_from(payload.len()).map_err(|_| StoreError::TooLarge {
            size_bytes: payload.len(),
        })?;
        let mut frame = Vec::with_capacity(HEADER_BYTES + payload.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(blake3::hash(&payload).as_bytes());
        frame.extend_from_slice(&payload);
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&frame).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.len_bytes += u64::try_from(frame.len()).unwrap_or(u64::MAX);
        Ok(())
    }

    pub fn len_bytes(&self) -> u64 {
        self.len_bytes
    }
}
