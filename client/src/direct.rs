//! Bulk files written and read around the page cache (`O_DIRECT`): a provider's shards, a
//! client's downloaded blob.
//!
//! Why: bulk bytes written once and read rarely gain nothing from the page cache, and every
//! fresh page-cache page costs memory the kernel must first find, and on a VM whose freed
//! memory goes back to the host (free page reporting), a host fault as well. On the devnet
//! machine a buffered, fsynced 1.5 GiB of shard writes took several times as long as the same
//! writes with `O_DIRECT` (docs/benchmarks.md has the figures). Where the file system
//! refuses `O_DIRECT` (tmpfs, some overlays) or the platform has none, the same calls fall
//! back to ordinary buffered I/O, so callers never need to care.
//!
//! `O_DIRECT` needs the buffer's address, the length and the file offset aligned to the
//! device's block size. Everything here keeps all three at [`ALIGN_BYTES`] (a multiple of
//! every common logical block size): writers stage bytes in an aligned buffer, write whole
//! blocks, pad the last one and truncate the file to its real length; readers read the
//! aligned blocks around the range asked for and hand back the part wanted.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The alignment of every direct transfer: buffer address, length and file offset.
pub const ALIGN_BYTES: usize = 4096;
const ALIGN_U64: u64 = ALIGN_BYTES as u64;
/// The staging buffer of a [`DirectWriter`] unless the caller asks for another size.
pub const DEFAULT_WRITE_BUFFER_BYTES: usize = 4 << 20;

#[cfg(target_os = "linux")]
const DIRECT_FLAG: i32 = libc::O_DIRECT;
#[cfg(not(target_os = "linux"))]
const DIRECT_FLAG: i32 = 0;

/// Whether bulk files go around the page cache or through it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoMode {
    /// `O_DIRECT` where the file system takes it: no page cache, no fresh kernel memory per
    /// byte; reads come from the device.
    #[default]
    Direct,
    /// Ordinary buffered I/O: every byte written takes a page-cache page, and recent data
    /// is read back from memory. For machines with memory to spare and hot data.
    Cached,
}

impl std::str::FromStr for IoMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "direct" => Ok(Self::Direct),
            "cached" => Ok(Self::Cached),
            other => Err(format!("unknown I/O mode {other:?} (direct or cached)")),
        }
    }
}

impl std::fmt::Display for IoMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Direct => "direct",
            Self::Cached => "cached",
        })
    }
}

fn round_up(n: usize) -> usize {
    n.div_ceil(ALIGN_BYTES).saturating_mul(ALIGN_BYTES)
}

/// A zeroed heap buffer whose usable part starts on an [`ALIGN_BYTES`] boundary (the
/// allocation carries one block of slack, so no `unsafe` allocator call is needed).
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// At least `len_bytes` usable bytes, rounded up to whole blocks.
    pub fn new(len_bytes: usize) -> Self {
        let len = round_up(len_bytes.max(1));
        let raw = vec![0u8; len.saturating_add(ALIGN_BYTES)];
        let offset = raw.as_ptr().align_offset(ALIGN_BYTES);
        // align_offset may decline to answer; then the buffer is used unaligned and the
        // files it touches fall back to buffered I/O (see `is_aligned`).
        let start = if offset < ALIGN_BYTES { offset } else { 0 };
        Self { raw, start, len }
    }

    fn is_aligned(&self) -> bool {
        self.raw
            .as_ptr()
            .wrapping_add(self.start)
            .align_offset(ALIGN_BYTES)
            == 0
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

fn is_refusal(e: &io::Error) -> bool {
    // EINVAL: the file system (or this offset/length) does not take direct I/O.
    e.raw_os_error() == Some(22)
}

/// Opens `path` for reading, directly where asked and the file system allows it; the flag
/// says which.
fn open_read(path: &Path, mode: IoMode) -> io::Result<(File, bool)> {
    if DIRECT_FLAG != 0 && mode == IoMode::Direct {
        match OpenOptions::new()
            .read(true)
            .custom_flags(DIRECT_FLAG)
            .open(path)
        {
            Ok(f) => return Ok((f, true)),
            Err(e) if is_refusal(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((File::open(path)?, false))
}

/// Disk threads per writer. One direct write in flight leaves the device idle between
/// writes (one 1 MiB `O_DIRECT` stream reached 1.5–1.75 GB/s on the devnet VM where six
/// reached 2.0), so a writer keeps this many in flight, at distinct offsets.
const WRITE_THREADS: usize = 2;

/// Buffers queued for the disk threads behind the one being filled.
const WRITE_QUEUE_BUFFERS: usize = WRITE_THREADS + 1;

/// One staged buffer for a disk thread: `buf[..len]` goes at `offset`.
struct WriteJob {
    buf: AlignedBuf,
    len: usize,
    offset: u64,
}

/// Writes `block` at `offset`; a direct write the file system refuses reopens the file
/// buffered and carries on (the bytes before it are already there).
fn write_block(
    file: &mut File,
    direct: &AtomicBool,
    path: &Path,
    block: &[u8],
    offset: u64,
) -> io::Result<()> {
    match file.write_all_at(block, offset) {
        Ok(()) => Ok(()),
        Err(e) if direct.load(Ordering::Relaxed) && is_refusal(&e) => {
            direct.store(false, Ordering::Relaxed);
            *file = OpenOptions::new().write(true).open(path)?;
            file.write_all_at(block, offset)
        }
        Err(e) => Err(e),
    }
}

/// A sequential file writer that bypasses the page cache where it can. Bytes are staged in
/// an aligned buffer; each full buffer goes to one of [`WRITE_THREADS`] disk threads, so
/// the caller fills the next one while earlier ones are written (at most
/// [`WRITE_QUEUE_BUFFERS`] wait). A direct write blocks until the device has the bytes, so
/// without those threads every write would stall the caller. [`DirectWriter::finish`]
/// writes the last block padded, truncates the file to the bytes actually written and
/// optionally syncs it. Dropping it unfinished leaves a file whose tail is missing: callers
/// that care write to a temporary name and rename after `finish`.
pub struct DirectWriter {
    path: PathBuf,
    direct: Arc<AtomicBool>,
    staging: AlignedBuf,
    filled: usize,
    /// Bytes handed to the disk threads so far (whole buffers, so whole blocks).
    flushed: u64,
    /// Buffers allocated so far (staging, queued and being written), at most
    /// `WRITE_QUEUE_BUFFERS + WRITE_THREADS + 1`.
    buffers: usize,
    jobs: Option<SyncSender<WriteJob>>,
    spares: Receiver<AlignedBuf>,
    disk: Vec<JoinHandle<io::Result<File>>>,
}

impl DirectWriter {
    /// Creates `path` (which must not exist when `create_new`, else it is truncated).
    pub fn create(path: &Path, create_new: bool, buffer_bytes: usize) -> io::Result<Self> {
        Self::create_with(path, create_new, buffer_bytes, IoMode::Direct)
    }

    /// [`DirectWriter::create`] in the given mode (`Cached` writes through the page cache,
    /// still from the disk threads).
    pub fn create_with(
        path: &Path,
        create_new: bool,
        buffer_bytes: usize,
        mode: IoMode,
    ) -> io::Result<Self> {
        let staging = AlignedBuf::new(buffer_bytes.max(ALIGN_BYTES));
        let mut options = OpenOptions::new();
        options.write(true);
        if create_new {
            options.create_new(true);
        } else {
            options.create(true).truncate(true);
        }
        let mut direct = DIRECT_FLAG != 0 && mode == IoMode::Direct && staging.is_aligned();
        let file = if direct {
            match options.clone().custom_flags(DIRECT_FLAG).open(path) {
                Ok(f) => f,
                Err(e) if is_refusal(&e) => {
                    direct = false;
                    options.open(path)?
                }
                Err(e) => return Err(e),
            }
        } else {
            options.open(path)?
        };
        let direct = Arc::new(AtomicBool::new(direct));
        let (jobs, queue) = sync_channel::<WriteJob>(WRITE_QUEUE_BUFFERS);
        let queue = Arc::new(Mutex::new(queue));
        // Room for every buffer, so a disk thread never waits to give one back.
        let (give, spares) = sync_channel::<AlignedBuf>(WRITE_QUEUE_BUFFERS + WRITE_THREADS + 1);
        let mut disk = Vec::with_capacity(WRITE_THREADS);
        for _ in 0..WRITE_THREADS {
            let mut file = file.try_clone()?;
            let (path, direct) = (path.to_path_buf(), Arc::clone(&direct));
            let (queue, give) = (Arc::clone(&queue), give.clone());
            let thread = std::thread::Builder::new()
                .name("direct-writer".into())
                .spawn(move || -> io::Result<File> {
                    loop {
                        // The lock is held only to take a job, never across a write.
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return Err(io::Error::other("a disk thread panicked")),
                        };
                        let Ok(job) = job else { return Ok(file) };
                        let block = &job.buf.as_slice()[..job.len];
                        write_block(&mut file, &direct, &path, block, job.offset)?;
                        let _ = give.send(job.buf);
                    }
                })?;
            disk.push(thread);
        }
        Ok(Self {
            path: path.to_path_buf(),
            direct,
            staging,
            filled: 0,
            flushed: 0,
            buffers: 1,
            jobs: Some(jobs),
            spares,
            disk,
        })
    }

    /// Whether the file is being written around the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct.load(Ordering::Relaxed)
    }

    /// Bytes accepted so far (written or staged).
    pub fn len_bytes(&self) -> u64 {
        self.flushed
            .saturating_add(u64::try_from(self.filled).unwrap_or(u64::MAX))
    }

    /// Closes the queue and waits for the disk threads: the file once every queued buffer
    /// is written, or the first error that stopped one of them.
    fn join_disk(&mut self) -> io::Result<File> {
        self.jobs = None;
        let mut file = None;
        let mut error = None;
        for thread in self.disk.drain(..) {
            match thread.join() {
                Ok(Ok(f)) => file = file.or(Some(f)),
                Ok(Err(e)) => error = error.or(Some(e)),
                Err(_) => {
                    error = error.or_else(|| {
                        Some(io::Error::other(format!(
                            "the writer of {} panicked",
                            self.path.display()
                        )))
                    })
                }
            }
        }
        match (error, file) {
            (Some(e), _) => Err(e),
            (None, Some(f)) => Ok(f),
            (None, None) => Err(io::Error::other(format!(
                "the writer of {} stopped",
                self.path.display()
            ))),
        }
    }

    /// The disk threads' error once they have stopped.
    fn disk_error(&mut self) -> io::Error {
        match self.join_disk() {
            Err(e) => e,
            Ok(_) => io::Error::other(format!("the writer of {} stopped", self.path.display())),
        }
    }

    /// Hands `staging[..len]` to the disk threads and takes a fresh staging buffer.
    fn hand_off(&mut self, len: usize) -> io::Result<()> {
        let next = match self.spares.try_recv() {
            Ok(buf) => buf,
            Err(_) if self.buffers <= WRITE_QUEUE_BUFFERS + WRITE_THREADS => {
                self.buffers += 1;
                AlignedBuf::new(self.staging.len())
            }
            Err(_) => match self.spares.recv() {
                Ok(buf) => buf,
                Err(_) => return Err(self.disk_error()),
            },
        };
        let buf = std::mem::replace(&mut self.staging, next);
        let job = WriteJob {
            buf,
            len,
            offset: self.flushed,
        };
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job).is_ok());
        if sent != Some(true) {
            return Err(self.disk_error());
        }
        self.flushed = self
            .flushed
            .saturating_add(u64::try_from(len).unwrap_or(u64::MAX));
        self.filled = 0;
        Ok(())
    }

    /// Writes what is staged, sets the file's length to the bytes written, syncs it
    /// (data and metadata) when `sync`, and returns it.
    pub fn finish(mut self, sync: bool) -> io::Result<File> {
        let total = self.len_bytes();
        let padded = round_up(self.filled);
        if padded > 0 {
            // Whole blocks for a direct file; the padding is cut off again below.
            self.staging.as_mut_slice()[self.filled..padded].fill(0);
            self.hand_off(padded)?;
        }
        let file = self.join_disk()?;
        if padded > 0 {
            file.set_len(total)?;
        }
        if sync {
            file.sync_all()?;
        }
        Ok(file)
    }
}

impl Write for DirectWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.staging.len() - self.filled;
        let n = data.len().min(room);
        self.staging.as_mut_slice()[self.filled..self.filled + n].copy_from_slice(&data[..n]);
        self.filled += n;
        if self.filled == self.staging.len() {
            self.hand_off(self.filled)?;
        }
        Ok(n)
    }

    /// Staged bytes stay staged until a whole buffer or [`DirectWriter::finish`]: a direct
    /// file can only take whole blocks.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads byte ranges of a file around the page cache where it can.
pub struct DirectReader {
    file: File,
    path: PathBuf,
    direct: bool,
}

impl DirectReader {
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::open_with(path, IoMode::Direct)
    }

    /// [`DirectReader::open`] in the given mode.
    pub fn open_with(path: &Path, mode: IoMode) -> io::Result<Self> {
        let (file, direct) = open_read(path, mode)?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            direct,
        })
    }

    /// The buffer size that [`DirectReader::read_into`] needs for `len` bytes at any offset.
    pub fn buffer_bytes_for(len: usize) -> usize {
        round_up(len).saturating_add(ALIGN_BYTES)
    }

    /// Reads `offset .. offset + len` into `buf` (at least [`Self::buffer_bytes_for`]`(len)`
    /// bytes) and returns where in `buf` those bytes are. Fails with `UnexpectedEof` when the
    /// file ends before the range does.
    pub fn read_into(
        &mut self,
        buf: &mut AlignedBuf,
        offset: u64,
        len: usize,
    ) -> io::Result<Range<usize>> {
        if buf.len() < Self::buffer_bytes_for(len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a {}-byte buffer cannot hold an aligned read of {len} bytes",
                    buf.len()
                ),
            ));
        }
        let direct = self.direct && buf.is_aligned();
        let (first, skip) = if direct {
            let first = offset - offset % ALIGN_U64;
            (first, usize::try_from(offset - first).unwrap_or(0))
        } else {
            (offset, 0)
        };
        let want = if direct { round_up(skip + len) } else { len };
        let mut got = 0usize;
        while got < skip + len {
            let at = first.saturating_add(u64::try_from(got).unwrap_or(u64::MAX));
            let dest = &mut buf.as_mut_slice()[got..want];
            let n = match self.file.read_at(dest, at) {
                Ok(n) => n,
                Err(e) if self.direct && is_refusal(&e) => {
                    // This file system took the open but not the read: read buffered.
                    self.file = File::open(&self.path)?;
                    self.direct = false;
                    return self.read_into(buf, offset, len);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} ends before byte {}",
                        self.path.display(),
                        offset.saturating_add(u64::try_from(len).unwrap_or(u64::MAX))
                    ),
                ));
            }
            got += n;
        }
        Ok(skip..skip + len)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| u8::try_from(i * 31 % 251).unwrap())
            .collect()
    }

    #[test]
    fn writes_any_length_and_reads_any_range_back() {
        let dir = tempfile::tempdir().unwrap();
        for (len, mode) in [0usize, 1, 64, 4095, 4096, 4097, 70_000, (1 << 20) + 5]
            .into_iter()
            .flat_map(|len| [(len, IoMode::Direct), (len, IoMode::Cached)])
        {
            let path = dir.path().join(format!("f{len}-{mode}"));
            let data = pattern(len);
            let mut w = DirectWriter::create_with(&path, true, 8192, mode).unwrap();
            if mode == IoMode::Cached {
                assert!(!w.is_direct());
            }
            // Uneven pieces cross the staging buffer's edges.
            for piece in data.chunks(3001) {
                w.write_all(piece).unwrap();
            }
            assert_eq!(w.len_bytes(), len as u64);
            w.finish(true).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), data, "length {len}");
            let mut r = DirectReader::open_with(&path, mode).unwrap();
            for (start, n) in [(0, len), (len / 3, len / 2), (len.saturating_sub(1), 1)] {
                if start + n > len {
                    continue;
                }
                let mut buf = AlignedBuf::new(DirectReader::buffer_bytes_for(n));
                let at = r.read_into(&mut buf, start as u64, n).unwrap();
                assert_eq!(&buf.as_slice()[at], &data[start..start + n]);
            }
        }
    }

    #[test]
    fn a_read_past_the_end_is_an_error_and_create_new_keeps_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = DirectWriter::create(&path, true, 4096).unwrap();
        w.write_all(&pattern(5000)).unwrap();
        w.finish(false).unwrap();
        let mut r = DirectReader::open(&path).unwrap();
        let mut buf = AlignedBuf::new(DirectReader::buffer_bytes_for(100));
        let err = r.read_into(&mut buf, 4950, 100).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let mut small = AlignedBuf::new(10);
        assert!(r.read_into(&mut small, 0, 8192).is_err());
        assert!(DirectWriter::create(&path, true, 4096).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), pattern(5000));
    }
}
