//! The crash-safe shard store: one file per shard, written whole or not at all.
//!
//! Layout under the data directory:
//!
//! ```text
//! shards/<blob hex>/<index>.shard   64-byte header (magic, leaf size, size, root) + bytes
//! tmp/<random>.part                 shards being received; removed on open
//! ```
//!
//! A shard is received into `tmp/`, hashed (BLAKE3's tree, the shard root) as it arrives, checked against the
//! root the chain recorded, fsynced, renamed into `shards/` and the directory fsynced; only
//! then does [`ShardWriter::finish`] return and the caller sign a receipt. So a restart finds
//! every shard it acknowledged, and a torn or wrong upload never replaces a good shard (the
//! rename is the only step that touches `shards/`, and it happens after the checks). The
//! header travels in the same file, so a shard and its metadata cannot disagree after a crash.
//!
//! By default shard bytes go to disk and come back around the page cache
//! (`cairn_client::direct`, [`IoMode::Direct`]): a provider's shards are written once and
//! read a few times an epoch, and fresh page-cache pages were the largest cost of a put on
//! the devnet machine (docs/benchmarks.md). [`IoMode::Cached`] keeps the page cache, for a
//! provider with memory to spare whose recent shards are read often. Read buffers come from
//! a small pool so serving a shard reuses memory instead of asking the kernel for more.

use cairn_client::direct::{AlignedBuf, DirectReader, DirectWriter, IoMode};
use cairn_proofs::shard::{self, ShardTree, ShardTreeBuilder};
use cairn_types::proof::{LeafOpening, StorageProof};
use cairn_types::{BoundedBytes, BoundedVec, DealId, Hash};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

const MAGIC: &[u8; 8] = b"CAIRNSH1";
/// Bytes of the header in front of every stored shard.
pub const HEADER_BYTES: u64 = 64;
/// Most leaves one proof request may open (the HTTP route's bound).
pub const MAX_OPEN_LEAVES: usize = 256;
/// Most chained leaves the chain asks for in one storage proof (the wire type's bound).
const MAX_CHAIN_LEAVES: usize = cairn_proofs::storage::MAX_PROOF_LEAVES;
/// Read buffer when hashing or serving a stored shard.
pub const READ_CHUNK_BYTES: usize = 1 << 20;
/// Staging buffer of a shard being received (whole blocks go to disk).
const WRITE_BUFFER_BYTES: usize = 1 << 20;
/// Most read buffers the pool keeps for reuse (each [`READ_CHUNK_BYTES`] plus alignment).
const POOLED_BUFFERS: usize = 32;
/// Memory the cached shard trees may take (32 bytes per 64 KiB block: 128 KiB for a
/// 256 MiB shard, so 64 MiB covers 128 GiB of shards; beyond it trees are rebuilt by reading
/// their shard in full).
const TREE_CACHE_BYTES: u64 = 64 << 20;

/// What the store knows of one stored shard (its header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    pub size_bytes: u64,
    pub leaf_size_bytes: u32,
    pub root: Hash,
}

impl ShardInfo {
    pub fn leaf_count(&self) -> u64 {
        self.size_bytes
            .div_ceil(u64::from(self.leaf_size_bytes.max(1)))
            .max(1)
    }
    fn header(&self) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&self.leaf_size_bytes.to_be_bytes());
        h[16..24].copy_from_slice(&self.size_bytes.to_be_bytes());
        h[24..56].copy_from_slice(self.root.as_bytes());
        h
    }
    fn parse(h: &[u8; 64]) -> Option<Self> {
        if &h[..8] != MAGIC {
            return None;
        }
        let leaf = u32::from_be_bytes(h[8..12].try_into().ok()?);
        let size = u64::from_be_bytes(h[16..24].try_into().ok()?);
        let root: [u8; 32] = h[24..56].try_into().ok()?;
        Some(Self {
            size_bytes: size,
            leaf_size_bytes: leaf,
            root: Hash(root),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no shard {index} of blob {blob} is stored here")]
    NotFound { blob: Hash, index: u16 },
    #[error(
        "storing {needed_bytes} more bytes would exceed the declared capacity ({used_bytes} of {capacity_bytes} used)"
    )]
    CapacityFull {
        needed_bytes: u64,
        used_bytes: u64,
        capacity_bytes: u64,
    },
    #[error("the shard is longer than its declared {expected_bytes} bytes")]
    TooLong { expected_bytes: u64 },
    #[error("the shard is {got_bytes} bytes, its deal declares {expected_bytes}")]
    WrongLength { expected_bytes: u64, got_bytes: u64 },
    #[error("the shard's Merkle root is {got}, its commitment on chain is {expected}")]
    RootMismatch { expected: Hash, got: Hash },
    #[error("range {start}..{end} is outside the shard's {size_bytes} bytes")]
    RangeOutside {
        start: u64,
        end: u64,
        size_bytes: u64,
    },
    #[error("leaf {leaf} is outside the shard's {leaf_count} leaves")]
    LeafOutside { leaf: u64, leaf_count: u64 },
    #[error("{count} leaves asked for, at most {max} per request")]
    TooManyLeaves { count: usize, max: usize },
    #[error("shard {index} of blob {blob} is being written by another upload")]
    Busy { blob: Hash, index: u16 },
    #[error("leaf size {leaf_size_bytes} is not a power of two within 1024..={max}")]
    BadLeafSize { leaf_size_bytes: u32, max: usize },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Default)]
struct Inner {
    shards: BTreeMap<(Hash, u16), ShardInfo>,
    /// Shards being received, with the bytes each has reserved.
    writing: BTreeMap<(Hash, u16), u64>,
    used_bytes: u64,
}

impl Inner {
    fn reserved(&self) -> u64 {
        self.writing
            .values()
            .fold(0u64, |a, b| a.saturating_add(*b))
    }
}

/// The shard store of one provider.
pub struct ShardStore {
    dir: PathBuf,
    capacity_bytes: u64,
    inner: Mutex<Inner>,
    buffers: BufferPool,
    io: IoMode,
    /// Each shard's tree as it was verified against its root (when written, or when first
    /// read in full after a restart), with the bytes it takes.
    trees: Mutex<TreeCache>,
}

#[derive(Default)]
struct TreeCache {
    trees: BTreeMap<(Hash, u16), Arc<ShardTree>>,
    bytes: u64,
}

fn tree_bytes(tree: &ShardTree) -> u64 {
    tree.size_bytes()
        .div_ceil(shard::TREE_BLOCK_BYTES)
        .saturating_mul(32)
        .saturating_add(128)
}

impl TreeCache {
    fn insert(&mut self, key: (Hash, u16), tree: Arc<ShardTree>) {
        self.remove(&key);
        let size = tree_bytes(&tree);
        // Bounded: evict (lowest keys first, a deterministic choice) until the new one fits.
        while self.bytes.saturating_add(size) > TREE_CACHE_BYTES {
            let Some(first) = self.trees.keys().next().copied() else {
                break;
            };
            self.remove(&first);
        }
        if size <= TREE_CACHE_BYTES {
            self.bytes = self.bytes.saturating_add(size);
            self.trees.insert(key, tree);
        }
    }

    fn remove(&mut self, key: &(Hash, u16)) {
        if let Some(old) = self.trees.remove(key) {
            self.bytes = self.bytes.saturating_sub(tree_bytes(&old));
        }
    }
}

/// Read buffers of [`READ_CHUNK_BYTES`] (aligned for direct reads), kept for reuse.
#[derive(Clone, Default)]
pub struct BufferPool {
    free: Arc<Mutex<Vec<AlignedBuf>>>,
}

impl BufferPool {
    fn lock(&self) -> MutexGuard<'_, Vec<AlignedBuf>> {
        self.free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A buffer that holds one aligned read of up to [`READ_CHUNK_BYTES`].
    pub fn take(&self) -> AlignedBuf {
        self.lock()
            .pop()
            .unwrap_or_else(|| AlignedBuf::new(DirectReader::buffer_bytes_for(READ_CHUNK_BYTES)))
    }

    /// Hands a buffer back; beyond [`POOLED_BUFFERS`] it is freed.
    pub fn give(&self, buf: AlignedBuf) {
        let mut free = self.lock();
        if free.len() < POOLED_BUFFERS
            && buf.len() >= DirectReader::buffer_bytes_for(READ_CHUNK_BYTES)
        {
            free.push(buf);
        }
    }
}

/// A stored shard opened for reading: its header and a direct reader of its bytes.
pub struct OpenShard {
    reader: DirectReader,
    info: ShardInfo,
    path: PathBuf,
}

impl OpenShard {
    pub fn info(&self) -> ShardInfo {
        self.info
    }

    /// Reads the shard's bytes `range` into `buf` (big enough for
    /// [`DirectReader::buffer_bytes_for`] of the range's length); returns where they are in it.
    pub fn read_into(
        &mut self,
        buf: &mut AlignedBuf,
        range: Range<u64>,
    ) -> Result<Range<usize>, StoreError> {
        if range.start > range.end || range.end > self.info.size_bytes {
            return Err(StoreError::RangeOutside {
                start: range.start,
                end: range.end,
                size_bytes: self.info.size_bytes,
            });
        }
        let len = usize::try_from(range.end - range.start).unwrap_or(usize::MAX);
        self.reader
            .read_into(buf, HEADER_BYTES.saturating_add(range.start), len)
            .map_err(io("reading", &self.path))
    }

    /// The shard's bytes `range` as a new vector.
    pub fn read(&mut self, range: Range<u64>) -> Result<Vec<u8>, StoreError> {
        let len = usize::try_from(range.end.saturating_sub(range.start)).unwrap_or(usize::MAX);
        let mut buf = AlignedBuf::new(DirectReader::buffer_bytes_for(len));
        let at = self.read_into(&mut buf, range)?;
        Ok(buf.as_slice()[at].to_vec())
    }
}

impl std::fmt::Debug for ShardStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardStore")
            .field("dir", &self.dir)
            .field("capacity_bytes", &self.capacity_bytes)
            .finish_non_exhaustive()
    }
}

fn tree_builder(info: &ShardInfo) -> Result<ShardTreeBuilder, StoreError> {
    ShardTreeBuilder::new(info.leaf_size_bytes).ok_or(StoreError::BadLeafSize {
        leaf_size_bytes: info.leaf_size_bytes,
        max: cairn_types::proof::MAX_LEAF_BYTES,
    })
}

fn sync_dir(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing directory", path))
}

impl ShardStore {
    /// Opens (or creates) the store in `dir`: removes unfinished uploads, then indexes every
    /// shard file whose header parses. A file with a bad header is not a shard this store
    /// wrote; it is left alone but not served.
    pub fn open(
        dir: &Path,
        capacity_bytes: u64,
        shard_io: IoMode,
    ) -> Result<Arc<Self>, StoreError> {
        let shards = dir.join("shards");
        let tmp = dir.join("tmp");
        fs::create_dir_all(&shards).map_err(io("creating", &shards))?;
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io("clearing", &tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io("creating", &tmp))?;
        let mut inner = Inner::default();
        for entry in fs::read_dir(&shards).map_err(io("listing", &shards))? {
            let entry = entry.map_err(io("listing", &shards))?;
            let Some(blob) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Hash>().ok())
            else {
                continue;
            };
            let blob_dir = entry.path();
            for file in fs::read_dir(&blob_dir).map_err(io("listing", &blob_dir))? {
                let file = file.map_err(io("listing", &blob_dir))?;
                let name = file.file_name();
                let Some(index) = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".shard"))
                    .and_then(|n| n.parse::<u16>().ok())
                else {
                    continue;
                };
                let path = file.path();
                let mut header = [0u8; 64];
                let parsed = File::open(&path)
                    .and_then(|mut f| f.read_exact(&mut header))
                    .ok()
                    .and_then(|()| ShardInfo::parse(&header));
                if let Some(info) = parsed {
                    inner.used_bytes = inner
                        .used_bytes
                        .saturating_add(info.size_bytes.saturating_add(HEADER_BYTES));
                    inner.shards.insert((blob, index), info);
                }
            }
        }
        Ok(Arc::new(Self {
            dir: dir.to_path_buf(),
            capacity_bytes,
            inner: Mutex::new(inner),
            buffers: BufferPool::default(),
            io: shard_io,
            trees: Mutex::new(TreeCache::default()),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves only counters behind: keep serving.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    /// The pool that serving reads take their buffers from.
    pub fn buffers(&self) -> &BufferPool {
        &self.buffers
    }

    /// Bytes on disk (headers included) plus bytes reserved by uploads in flight.
    pub fn used_bytes(&self) -> u64 {
        let inner = self.lock();
        inner.used_bytes.saturating_add(inner.reserved())
    }

    pub fn path_of(&self, blob: &Hash, index: u16) -> PathBuf {
        self.dir
            .join("shards")
            .join(blob.to_string())
            .join(format!("{index}.shard"))
    }

    pub fn get(&self, blob: &Hash, index: u16) -> Option<ShardInfo> {
        self.lock().shards.get(&(*blob, index)).copied()
    }

    /// Every stored shard.
    pub fn list(&self) -> Vec<(Hash, u16, ShardInfo)> {
        self.lock()
            .shards
            .iter()
            .map(|((b, i), info)| (*b, *i, *info))
            .collect()
    }

    /// Starts receiving a shard: reserves its bytes against the capacity. The upload must
    /// match `info` (size and root) or [`ShardWriter::finish`] refuses it.
    pub fn begin(
        self: &Arc<Self>,
        blob: Hash,
        index: u16,
        info: ShardInfo,
    ) -> Result<ShardWriter, StoreError> {
        let leaf = usize::try_from(info.leaf_size_bytes).unwrap_or(usize::MAX);
        if !shard::valid_leaf_size(info.leaf_size_bytes)
            || leaf > cairn_types::proof::MAX_LEAF_BYTES
        {
            return Err(StoreError::BadLeafSize {
                leaf_size_bytes: info.leaf_size_bytes,
                max: cairn_types::proof::MAX_LEAF_BYTES,
            });
        }
        let needed = info.size_bytes.saturating_add(HEADER_BYTES);
        {
            let mut inner = self.lock();
            if inner.writing.contains_key(&(blob, index)) {
                return Err(StoreError::Busy { blob, index });
            }
            let used = inner.used_bytes.saturating_add(inner.reserved());
            if used.saturating_add(needed) > self.capacity_bytes {
                return Err(StoreError::CapacityFull {
                    needed_bytes: needed,
                    used_bytes: used,
                    capacity_bytes: self.capacity_bytes,
                });
            }
            inner.writing.insert((blob, index), needed);
        }
        let mut name = [0u8; 16];
        getrandom::fill(&mut name).map_err(|e| StoreError::Io {
            action: "drawing a temp name in",
            path: self.dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let tmp = self
            .dir
            .join("tmp")
            .join(format!("{}.part", hex::encode(name)));
        let mut writer = ShardWriter {
            store: Arc::clone(self),
            blob,
            index,
            info,
            tmp: tmp.clone(),
            file: None,
            builder: Some(tree_builder(&info)?),
            written: 0,
            done: false,
        };
        let mut file = DirectWriter::create_with(&tmp, true, WRITE_BUFFER_BYTES, self.io)
            .map_err(io("creating", &tmp))?;
        file.write_all(&info.header())
            .map_err(io("writing", &tmp))?;
        writer.file = Some(file);
        Ok(writer)
    }

    fn release(&self, blob: Hash, index: u16) {
        self.lock().writing.remove(&(blob, index));
    }

    /// Opens a stored shard for reading.
    pub fn open_shard(&self, blob: &Hash, index: u16) -> Result<OpenShard, StoreError> {
        self.open_shard_with(blob, index, self.io)
    }

    fn open_shard_with(
        &self,
        blob: &Hash,
        index: u16,
        mode: IoMode,
    ) -> Result<OpenShard, StoreError> {
        let info = self
            .get(blob, index)
            .ok_or(StoreError::NotFound { blob: *blob, index })?;
        let path = self.path_of(blob, index);
        let reader = DirectReader::open_with(&path, mode).map_err(io("opening", &path))?;
        Ok(OpenShard { reader, info, path })
    }

    /// Reads `start..end` of a stored shard's bytes.
    pub fn read_range(
        &self,
        blob: &Hash,
        index: u16,
        start: u64,
        end: u64,
    ) -> Result<Vec<u8>, StoreError> {
        self.open_shard(blob, index)?.read(start..end)
    }

    fn trees(&self) -> MutexGuard<'_, TreeCache> {
        self.trees
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The tree of a stored shard: cached from when the shard was written (or first read in
    /// full after a restart), else built by reading the shard in full.
    ///
    /// Why cached: a proof then reads only the blocks its chained leaves fall in, and the
    /// path through each block is hashed from the block's bytes on disk, so rot in any
    /// opened block fails the proof. Re-reading every stored byte for every proof would
    /// make a provider read all it holds every epoch (terabytes on a real one), and with
    /// direct I/O that would compete with serving reads. Rot outside the opened blocks is
    /// found by later epochs' challenges and by every client read (pieces are verified).
    /// A tree read from disk is cached only when its root matches the header's (a rotten
    /// shard is re-read at every proof, and keeps failing).
    pub fn tree(&self, blob: &Hash, index: u16) -> Result<(Arc<ShardTree>, ShardInfo), StoreError> {
        let info = self
            .get(blob, index)
            .ok_or(StoreError::NotFound { blob: *blob, index })?;
        if let Some(tree) = self.trees().trees.get(&(*blob, index)) {
            return Ok((Arc::clone(tree), info));
        }
        let (tree, info) = self.tree_from_disk(blob, index)?;
        let tree = Arc::new(tree);
        if tree.root() == info.root {
            self.trees().insert((*blob, index), Arc::clone(&tree));
        }
        Ok((tree, info))
    }

    /// The tree of the shard as it is on disk now (read and hashed in full).
    pub fn tree_from_disk(
        &self,
        blob: &Hash,
        index: u16,
    ) -> Result<(ShardTree, ShardInfo), StoreError> {
        let mut shard = self.open_shard(blob, index)?;
        let info = shard.info();
        let mut builder = tree_builder(&info)?;
        let chunk = u64::try_from(READ_CHUNK_BYTES).unwrap_or(u64::MAX);
        let mut buf = self.buffers.take();
        let mut hash_all = || -> Result<(), StoreError> {
            let mut at = 0u64;
            while at < info.size_bytes {
                let end = at.saturating_add(chunk).min(info.size_bytes);
                let got = shard.read_into(&mut buf, at..end)?;
                builder.update(&buf.as_slice()[got]);
                at = end;
            }
            Ok(())
        };
        let hashed = hash_all();
        self.buffers.give(buf);
        hashed?;
        Ok((builder.finish(), info))
    }

    /// Leaf `leaf` (the last may be short) and its path: one read of the block holding it.
    fn open_leaf(
        &self,
        shard: &mut OpenShard,
        tree: &ShardTree,
        info: &ShardInfo,
        leaf: u64,
    ) -> Result<LeafOpening, StoreError> {
        let block = tree.block_of(leaf);
        let len = usize::try_from(block.end - block.start).unwrap_or(usize::MAX);
        let mut buf = AlignedBuf::new(DirectReader::buffer_bytes_for(len));
        Self::open_leaf_into(shard, &mut buf, tree, info, leaf)
    }

    /// [`Self::open_leaf`] reading into `buf` (large enough for any block of the shard).
    fn open_leaf_into(
        shard: &mut OpenShard,
        buf: &mut AlignedBuf,
        tree: &ShardTree,
        info: &ShardInfo,
        leaf: u64,
    ) -> Result<LeafOpening, StoreError> {
        let block = tree.block_of(leaf);
        let at = shard.read_into(buf, block.clone())?;
        let bytes = &buf.as_slice()[at];
        let size = u64::from(info.leaf_size_bytes.max(1));
        let start = leaf.saturating_mul(size).min(info.size_bytes);
        let end = start.saturating_add(size).min(info.size_bytes);
        let data = bytes
            .get(
                usize::try_from(start.saturating_sub(block.start)).unwrap_or(usize::MAX)
                    ..usize::try_from(end.saturating_sub(block.start)).unwrap_or(usize::MAX),
            )
            .unwrap_or_default()
            .to_vec();
        Ok(LeafOpening {
            data: BoundedBytes(data),
            // Empty for a shard of one leaf (its hash is the root).
            path: tree.path(leaf, bytes).unwrap_or_default(),
        })
    }

    /// Leaves `leaves` with their Merkle paths, from the shard on disk.
    pub fn open_leaves(
        &self,
        blob: &Hash,
        index: u16,
        leaves: &[u64],
    ) -> Result<(Vec<LeafOpening>, ShardInfo), StoreError> {
        if leaves.len() > MAX_OPEN_LEAVES {
            return Err(StoreError::TooManyLeaves {
                count: leaves.len(),
                max: MAX_OPEN_LEAVES,
            });
        }
        let (tree, info) = self.tree(blob, index)?;
        let mut shard = self.open_shard(blob, index)?;
        let mut out = Vec::with_capacity(leaves.len());
        for &leaf in leaves {
            if leaf >= info.leaf_count() {
                return Err(StoreError::LeafOutside {
                    leaf,
                    leaf_count: info.leaf_count(),
                });
            }
            out.push(self.open_leaf(&mut shard, &tree, &info, leaf)?);
        }
        Ok((out, info))
    }

    /// The chained storage proof (proofs/src/storage.rs) of a stored shard, reading the
    /// chain's leaves from disk one after the other.
    pub fn prove(
        &self,
        blob: &Hash,
        index: u16,
        seed: &Hash,
        deal: DealId,
        leaves: usize,
    ) -> Result<StorageProof, StoreError> {
        Ok(StorageProof {
            deal,
            shard_index: index,
            leaves: BoundedVec(self.prove_chain(
                blob,
                index,
                seed,
                deal,
                leaves.min(MAX_CHAIN_LEAVES),
            )?),
        })
    }

    /// The first `steps` leaves of a stored shard's chain (at most
    /// [`cairn_types::proof::MAX_AUDIT_LEAVES`]), read from disk one after the other: the
    /// on-chain proof and the answer to a timed audit (`cairn_proofs::timed`).
    pub fn prove_chain(
        &self,
        blob: &Hash,
        index: u16,
        seed: &Hash,
        deal: DealId,
        steps: usize,
    ) -> Result<Vec<LeafOpening>, StoreError> {
        use cairn_proofs::storage::{first_index, next_index};
        if steps > cairn_types::proof::MAX_AUDIT_LEAVES {
            return Err(StoreError::TooManyLeaves {
                count: steps,
                max: cairn_types::proof::MAX_AUDIT_LEAVES,
            });
        }
        let (tree, info) = self.tree(blob, index)?;
        // Through the page cache, whatever the store's mode: a timed audit is thousands of
        // dependent 64 KiB reads, and a direct read waits for the disk every time, behind
        // any other writer (a concurrent writer made honest providers late: issue "fair
        // audits"). Cached pages serve repeated blocks at once; a provider that does not
        // hold the bytes has no pages to serve them from.
        let mut shard = self.open_shard_with(blob, index, IoMode::Cached)?;
        let count = tree.leaf_count();
        let mut leaf = first_index(seed, deal, index, count);
        let mut openings = Vec::with_capacity(steps);
        // One buffer for every step (a block is at most 64 KiB).
        let block_bytes = usize::try_from(tree.block_of(0).end).unwrap_or(usize::MAX);
        let mut buf = AlignedBuf::new(DirectReader::buffer_bytes_for(block_bytes));
        for step in (1u32..).take(steps) {
            let opening = Self::open_leaf_into(&mut shard, &mut buf, &tree, &info, leaf)?;
            leaf = next_index(seed, step, &opening.data.0, count);
            openings.push(opening);
        }
        Ok(openings)
    }

    /// Deletes a stored shard (garbage collection). Missing is not an error.
    pub fn remove(&self, blob: &Hash, index: u16) -> Result<bool, StoreError> {
        self.trees().remove(&(*blob, index));
        let path = self.path_of(blob, index);
        let mut inner = self.lock();
        let Some(info) = inner.shards.remove(&(*blob, index)) else {
            return Ok(false);
        };
        inner.used_bytes = inner
            .used_bytes
            .saturating_sub(info.size_bytes.saturating_add(HEADER_BYTES));
        drop(inner);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("removing", &path)(e)),
        }
        if let Some(parent) = path.parent() {
            // Only succeeds when empty: the blob's last shard here.
            let _ = fs::remove_dir(parent);
        }
        Ok(true)
    }
}

/// A shard being received: hashes leaves as bytes arrive and bounds the length.
pub struct ShardWriter {
    store: Arc<ShardStore>,
    blob: Hash,
    index: u16,
    info: ShardInfo,
    tmp: PathBuf,
    file: Option<DirectWriter>,
    /// Builds the tree (and so the root) as bytes arrive; cached once the shard is stored.
    builder: Option<ShardTreeBuilder>,
    written: u64,
    done: bool,
}

impl ShardWriter {
    /// Appends bytes; refuses (and the upload fails) once they exceed the declared size.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        if self.written.saturating_add(len) > self.info.size_bytes {
            return Err(StoreError::TooLong {
                expected_bytes: self.info.size_bytes,
            });
        }
        if let Some(file) = self.file.as_mut() {
            file.write_all(data).map_err(io("writing", &self.tmp))?;
        }
        self.written = self.written.saturating_add(len);
        if let Some(builder) = self.builder.as_mut() {
            builder.update(data);
        }
        Ok(())
    }

    /// Checks length and root, makes the shard durable and visible, and only then returns.
    pub fn finish(mut self) -> Result<ShardInfo, StoreError> {
        if self.written != self.info.size_bytes {
            return Err(StoreError::WrongLength {
                expected_bytes: self.info.size_bytes,
                got_bytes: self.written,
            });
        }
        let tree = self
            .builder
            .take()
            .ok_or_else(|| io("hashing", &self.tmp)(std::io::Error::other("already finished")))?
            .finish();
        let root = tree.root();
        if root != self.info.root {
            return Err(StoreError::RootMismatch {
                expected: self.info.root,
                got: root,
            });
        }
        let file = self
            .file
            .take()
            .ok_or_else(|| io("writing", &self.tmp)(std::io::Error::other("already closed")))?;
        drop(file.finish(true).map_err(io("syncing", &self.tmp))?);
        let target = self.store.path_of(&self.blob, self.index);
        let parent = target.parent().unwrap_or(&self.store.dir).to_path_buf();
        let created = !parent.exists();
        fs::create_dir_all(&parent).map_err(io("creating", &parent))?;
        if created {
            sync_dir(&self.store.dir.join("shards"))?;
        }
        fs::rename(&self.tmp, &target).map_err(io("renaming into", &target))?;
        sync_dir(&parent)?;
        self.done = true;
        // The tree just checked against the chain's root: proofs start from it.
        self.store
            .trees()
            .insert((self.blob, self.index), Arc::new(tree));
        let mut inner = self.store.lock();
        inner.writing.remove(&(self.blob, self.index));
        if inner
            .shards
            .insert((self.blob, self.index), self.info)
            .is_none()
        {
            inner.used_bytes = inner
                .used_bytes
                .saturating_add(self.info.size_bytes.saturating_add(HEADER_BYTES));
        }
        Ok(self.info)
    }
}

impl Drop for ShardWriter {
    fn drop(&mut self) {
        if !self.done {
            drop(self.file.take());
            let _ = fs::remove_file(&self.tmp);
            self.store.release(self.blob, self.index);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn bytes(len: usize, tag: u8) -> Vec<u8> {
        (0..len)
            .map(|i| u8::try_from((i * 31 + usize::from(tag)) % 251).unwrap())
            .collect()
    }

    fn info(data: &[u8], leaf: u32) -> ShardInfo {
        ShardInfo {
            size_bytes: u64::try_from(data.len()).unwrap(),
            leaf_size_bytes: leaf,
            root: cairn_proofs::storage::shard_root(data),
        }
    }

    fn put(store: &Arc<ShardStore>, blob: Hash, index: u16, data: &[u8], leaf: u32) {
        let mut w = store.begin(blob, index, info(data, leaf)).unwrap();
        for chunk in data.chunks(777) {
            w.write(chunk).unwrap();
        }
        w.finish().unwrap();
    }

    #[test]
    fn streaming_root_and_proofs_match_the_reference() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path(), 1 << 30, IoMode::Direct).unwrap();
        let blob = Hash::of(b"blob");
        for (i, len) in [0usize, 1, 1023, 1024, 1025, 5000, 70_000, 200_000]
            .into_iter()
            .enumerate()
        {
            let index = u16::try_from(i).unwrap();
            let data = bytes(len, 3);
            put(&store, blob, index, &data, 1024);
            let (tree, _) = store.tree(&blob, index).unwrap();
            assert_eq!(tree.root(), cairn_proofs::storage::shard_root(&data));
            let seed = Hash::of(b"seed");
            let ours = store.prove(&blob, index, &seed, DealId(3), 8).unwrap();
            let reference = cairn_proofs::storage::prove(&data, 1024, &seed, DealId(3), index, 8);
            assert_eq!(ours, reference, "len {len}");
            assert_eq!(
                store
                    .read_range(&blob, index, 0, u64::try_from(len).unwrap())
                    .unwrap(),
                data
            );
        }
    }

    /// The first opening of a proof, checked against the root the shard was stored under.
    fn first_opening_verifies(store: &Arc<ShardStore>, blob: Hash, data: &[u8]) -> bool {
        let seed = Hash::of(b"seed");
        let proof = store.prove(&blob, 0, &seed, DealId(1), 4).unwrap();
        let count = u64::try_from(data.len().div_ceil(1024)).unwrap();
        let first = cairn_proofs::storage::first_index(&seed, DealId(1), 0, count);
        let opening = &proof.leaves.0[0];
        cairn_proofs::storage::verify_leaf(
            &cairn_proofs::storage::shard_root(data),
            1024,
            count,
            first,
            &opening.data.0,
            &opening.path.0,
        )
    }

    #[test]
    fn cached_trees_match_the_disk_and_rot_in_an_opened_block_still_fails_the_proof() {
        for mode in [IoMode::Direct, IoMode::Cached] {
            let dir = tempfile::tempdir().unwrap();
            let blob = Hash::of(b"rot");
            let data = bytes(300_000, 9);
            {
                let store = ShardStore::open(dir.path(), 1 << 30, mode).unwrap();
                put(&store, blob, 0, &data, 1024);
                let (cached, _) = store.tree(&blob, 0).unwrap();
                let (fresh, _) = store.tree_from_disk(&blob, 0).unwrap();
                assert_eq!(*cached, fresh, "{mode}");
                assert!(first_opening_verifies(&store, blob, &data), "{mode}");
                // Rot on disk under a cached tree: every block has a flipped byte.
                let path = store.path_of(&blob, 0);
                let mut on_disk = std::fs::read(&path).unwrap();
                for b in on_disk.iter_mut().skip(64).step_by(1000) {
                    *b ^= 0x5a;
                }
                std::fs::write(&path, &on_disk).unwrap();
                assert!(!first_opening_verifies(&store, blob, &data), "{mode}");
            }
            // After a restart the tree is rebuilt from the rotten bytes: never cached, and the
            // proof keeps failing.
            let store = ShardStore::open(dir.path(), 1 << 30, mode).unwrap();
            assert!(!first_opening_verifies(&store, blob, &data), "{mode}");
            assert!(store.trees().trees.is_empty());
            // A good copy replaces the rotten one, and its tree with it.
            put(&store, blob, 0, &data, 1024);
            assert!(first_opening_verifies(&store, blob, &data), "{mode}");
            assert!(store.remove(&blob, 0).unwrap());
            assert!(store.trees().trees.is_empty());
            assert!(matches!(
                store.tree(&blob, 0),
                Err(StoreError::NotFound { .. })
            ));
        }
    }

    #[test]
    fn the_tree_cache_stays_within_its_budget() {
        let mut cache = TreeCache::default();
        let tree = Arc::new(ShardTree::build(&bytes(1 << 20, 1), 1024).unwrap());
        let each = tree_bytes(&tree);
        let fit = TREE_CACHE_BYTES / each;
        for i in 0..fit + 10 {
            cache.insert((Hash::of(&i.to_be_bytes()), 0), Arc::clone(&tree));
            assert!(cache.bytes <= TREE_CACHE_BYTES);
        }
        assert_eq!(u64::try_from(cache.trees.len()).unwrap(), fit);
        assert_eq!(cache.bytes, fit * each);
    }

    #[test]
    fn restart_finds_acknowledged_shards_and_drops_partial_ones() {
        let dir = tempfile::tempdir().unwrap();
        let blob = Hash::of(b"b");
        let data = bytes(4096, 1);
        {
            let store = ShardStore::open(dir.path(), 1 << 20, IoMode::Direct).unwrap();
            put(&store, blob, 0, &data, 1024);
            // An upload cut off mid-way (process dies with the temp file on disk).
            let mut w = store.begin(blob, 1, info(&data, 1024)).unwrap();
            w.write(&data[..100]).unwrap();
            std::mem::forget(w);
        }
        let store = ShardStore::open(dir.path(), 1 << 20, IoMode::Direct).unwrap();
        assert_eq!(store.list().len(), 1);
        assert_eq!(store.read_range(&blob, 0, 0, 4096).unwrap(), data);
        assert_eq!(store.used_bytes(), 4096 + HEADER_BYTES);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn bad_uploads_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path(), 10_000, IoMode::Direct).unwrap();
        let blob = Hash::of(b"b");
        let good = bytes(2000, 1);
        put(&store, blob, 0, &good, 1024);
        // Wrong bytes for the same shard: refused at finish, the good shard stays.
        let mut bad = good.clone();
        bad[1500] ^= 1;
        let mut w = store.begin(blob, 0, info(&good, 1024)).unwrap();
        w.write(&bad).unwrap();
        assert!(matches!(w.finish(), Err(StoreError::RootMismatch { .. })));
        // Too long, too short.
        let mut w = store.begin(blob, 0, info(&good, 1024)).unwrap();
        assert!(matches!(
            w.write(&bytes(2001, 1)),
            Err(StoreError::TooLong { .. })
        ));
        drop(w);
        let mut w = store.begin(blob, 0, info(&good, 1024)).unwrap();
        w.write(&good[..1999]).unwrap();
        assert!(matches!(w.finish(), Err(StoreError::WrongLength { .. })));
        assert_eq!(store.read_range(&blob, 0, 0, 2000).unwrap(), good);
        assert_eq!(store.used_bytes(), 2000 + HEADER_BYTES);
        // Capacity: a second shard of 8000 does not fit in 10000.
        let big = bytes(8000, 2);
        assert!(matches!(
            store.begin(blob, 1, info(&big, 1024)),
            Err(StoreError::CapacityFull { .. })
        ));
        assert!(matches!(
            store.read_range(&blob, 0, 1000, 2001),
            Err(StoreError::RangeOutside { .. })
        ));
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert!(store.remove(&blob, 0).unwrap());
        assert_eq!(store.used_bytes(), 0);
    }
}
