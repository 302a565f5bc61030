//! Be a Cairn storage provider: crash-safe shard store, shard HTTP API, storage-proof responder and repair.
//!
//! The storage provider role of design §2 and §6, as a library the CLI runs (`cairn store
//! serve`, and `cairn devnet`, which starts several):
//!
//! - [`store`]: shards on disk, written to a temp file, hashed while they arrive, fsynced and
//!   renamed into place only when they match the root the chain recorded; capacity bounded.
//! - [`http`]: the binding shard API (`PUT`/`GET /v1/shards/{blob}/{index}`, Range, and
//!   `/proof?leaves=`), checking deals on chain through the node API before storing, and
//!   answering a signed receipt only once the shard is durable; `/chain` answers a timed
//!   audit (`cairn_proofs::timed`) by reading the chain's leaves from disk in order.
//! - [`responder`]: each epoch's storage challenges answered in one batched
//!   `SubmitStorageProofs`, and garbage collection of shards no live deal keeps here.
//! - [`gateway`]: `GET /v1/blobs/{id}`, public blobs for plain HTTP clients (Range, ETag =
//!   blob id, immutable caching).
//! - [`auditor`]: the validators' timed auditor: a sample of each epoch's challenged shards
//!   (and every provider with a strike) audited against the clock, the wrong or too-late
//!   holders reported in `ReportAuditFailures`, the late ones in `ReportAuditLateness`.
//! - [`load`]: whether the auditor's own machine is too busy for its clock to judge.
//! - [`throttle`]: a read budget per stored shard, so that peers serve a regenerator only
//!   so many leaves a second.
//! - [`repair`]: the repairer loop: finds shards the chain marked for repair, fetches k
//!   shards from the other holders, rebuilds the lost one, stores it with a new provider and
//!   posts `RepairShard`.
//!
//! The node is reached only through its HTTP API (`cairn-client`), so a provider runs next to
//! any node. Erasure coding (the rebuild) is the `coding` crate's.

pub mod auditor;
pub mod chain;
pub mod devnet;
pub mod gateway;
pub mod http;
pub mod load;
pub mod repair;
pub mod responder;
pub mod store;
pub mod throttle;

use cairn_client::NodeClient;
use cairn_types::Keypair;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use cairn_client::direct::IoMode;
pub use devnet::{DevnetProvider, DevnetStorage, spawn_devnet_providers};
pub use gateway::{GatewayError, GatewayHandle, start_gateway};
pub use responder::{Behaviour, Event};
pub use store::{ShardInfo, ShardStore, StoreError};

/// How one provider runs.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// Where shards live (created if missing).
    pub data_dir: PathBuf,
    /// Where the shard API listens (port 0 picks one).
    pub listen: SocketAddr,
    /// The node API the provider reads deals and challenges from and submits proofs to.
    pub node_url: String,
    /// Never store more than this (the capacity declared on chain).
    pub capacity_bytes: u64,
    /// Leaves per storage proof (the genesis parameter `storage_leaves_per_challenge`).
    pub leaves_per_challenge: usize,
    /// How often the chain is polled for challenges.
    pub poll: Duration,
    /// Garbage collection every this many polls (0: never).
    pub gc_every_polls: u32,
    pub behaviour: Behaviour,
    /// Shards around the page cache (the default) or through it.
    pub shard_io: IoMode,
    /// Reads each stored shard answers at once and per second ([`throttle`]).
    pub read_budget: throttle::ThrottleConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("opening the shard store in {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("binding the shard API to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the provider's runtime: {source}")]
    Runtime {
        #[source]
        source: std::io::Error,
    },
}

/// A running provider; [`ProviderHandle::stop`] (or drop) stops it and waits.
pub struct ProviderHandle {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    store: Arc<ShardStore>,
}

impl ProviderHandle {
    /// Where the shard API listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn store(&self) -> &Arc<ShardStore> {
        &self.store
    }
    /// Stops the API and the responder and waits for both.
    pub fn stop(mut self) {
        self.halt();
    }
    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for ProviderHandle {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Starts a provider: opens the store, binds the API, spawns the responder. `events` sees
/// what the responder does.
pub fn start_provider(
    config: ProviderConfig,
    key: Keypair,
    events: impl FnMut(Event) + Send + 'static,
) -> Result<ProviderHandle, ProviderError> {
    let store = ShardStore::open(&config.data_dir, config.capacity_bytes, config.shard_io)
        .map_err(|source| ProviderError::Store {
            path: config.data_dir.clone(),
            source,
        })?;
    let listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| ProviderError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ProviderError::Bind {
            addr: config.listen,
            source,
        })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ProviderError::Bind { addr, source })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cairn-storage")
        .enable_all()
        .build()
        .map_err(|source| ProviderError::Runtime { source })?;
    let node = NodeClient::new(&config.node_url);
    let state = Arc::new(http::ProviderState {
        key: key.clone(),
        store: Arc::clone(&store),
        node: node.clone(),
        chain_delay: (config.behaviour == Behaviour::Laggard).then_some(responder::LAGGARD_DELAY),
        chain_permits: Arc::new(tokio::sync::Semaphore::new(http::MAX_CONCURRENT_AUDITS)),
        reads: std::sync::Mutex::new(throttle::ReadThrottle::new(config.read_budget)),
        started: std::time::Instant::now(),
    });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::Builder::new()
        .name("cairn-storage-api".to_string())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                // Stop drops open connections too: a keep-alive client must not hold it up.
                tokio::select! {
                    // Handlers see ConnectInfo<SocketAddr> as under axum's connect-info service.
                    _ = cairn_http::serve(
                        listener,
                        http::router(state),
                        cairn_http::Limits::default(),
                        std::future::pending(),
                    ) => {}
                    _ = rx => {}
                }
            });
            runtime.shutdown_timeout(Duration::from_secs(2));
        })
        .map_err(|source| ProviderError::Runtime { source })?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut responder =
        responder::Responder::new(node, key, Arc::clone(&store), config.leaves_per_challenge);
    responder.behaviour = config.behaviour;
    let (poll, gc, flag) = (config.poll, config.gc_every_polls, Arc::clone(&stop));
    let responder = std::thread::Builder::new()
        .name("cairn-storage-responder".to_string())
        .spawn(move || responder::run(responder, poll, gc, &flag, events))
        .map_err(|source| ProviderError::Runtime { source })?;
    Ok(ProviderHandle {
        addr,
        stop,
        shutdown: Some(tx),
        threads: vec![server, responder],
        store,
    })
}
