//! The compute provider daemon: watches open orders through the node API and bids on those
//! its free capacity can serve; runs the workloads of its leases once their tenant sends the
//! manifest; pauses, resumes and stops them as the leases' on-chain state says; serves the
//! lease API and the HTTP ingress (`/l/<lease-id>/...` → the workload's exposed port).
//!
//! State that must survive a restart lives in `data_dir/leases/<n>/`: the manifest, the
//! runtime handle (pid and start time, or container id) and the event log. A restarted
//! provider reads them back and re-attaches; it never stops a workload because it restarted.
//!
//! A lease is billed only while its workload runs, so the provider tells the chain: once a
//! workload runs it sends `LeaseStarted` (billing starts then); a workload it cannot start,
//! or one that keeps exiting, it closes with `CloseLease` and the reason, and the tenant's
//! unspent escrow goes back. All of its transactions leave from the chain thread, one batch
//! per poll, so their nonces never race.

use crate::auth;
use crate::bid::{self, Free, Prices};
use crate::manifest::{self, Manifest, RuntimeKind};
use crate::runtime::{Endpoint, Handle, Runtime, RuntimeError, WorkloadState};
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use axum::{Json, Router};
use cairn_client::NodeClient;
use cairn_ledger::state::{Lease, LeaseState, Order};
use cairn_types::tx::{CloseLease, LeaseStarted, PlaceBid};
use cairn_types::{Address, Amount, BoundedString, Keypair, LeaseId, OrderId, Resources, TxBody};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Events kept per lease in memory (the file keeps them all).
const MAX_EVENTS: usize = 256;
/// Log bytes per read.
const LOG_CHUNK_BYTES: usize = 64 * 1024;
/// A workload that exits is restarted; this many exits within [`CRASH_WINDOW_MS`] is a
/// crash loop, and the provider closes the lease rather than bill for a workload that does
/// not run.
pub const CRASH_LOOP_EXITS: usize = 3;
/// The window over which exits are counted towards a crash loop.
pub const CRASH_WINDOW_MS: u64 = 120_000;
/// Longest close reason the chain takes (`CloseLease.reason`).
const MAX_REASON_BYTES: usize = 256;

/// Declared capacity (GPUs come from NVML discovery).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityConfig {
    pub cpu_millicores: u64,
    pub memory_bytes: u64,
    pub storage_bytes: u64,
}

/// `cairn provider run --config FILE`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The provider key's name in the keystore (its address is the on-chain provider).
    pub key: String,
    /// Node API base URL.
    pub node: String,
    /// Where the lease API and ingress listen.
    pub listen: std::net::SocketAddr,
    /// Directory for lease state; relative paths are relative to the config file.
    pub data_dir: PathBuf,
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    pub capacity: CapacityConfig,
    pub prices: Prices,
}

fn default_poll_ms() -> u64 {
    250
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("provider config: {0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeaseEvent {
    pub time_ms: u64,
    pub message: String,
}

#[derive(Default)]
struct Slot {
    tenant: Option<Address>,
    chain_state: String,
    manifest: Option<Manifest>,
    handle: Option<Handle>,
    /// Host GPUs reserved for this lease while its workload starts (then in `handle`).
    gpus: Vec<u32>,
    events: VecDeque<LeaseEvent>,
    /// `LeaseStarted` has been sent for the running workload.
    start_reported: bool,
    /// Why this provider closes the lease on chain (a failed start, a crash loop).
    close_reason: Option<String>,
    /// The `CloseLease` carrying `close_reason` has been sent.
    close_sent: bool,
    /// When the workload was seen exited, within the last [`CRASH_WINDOW_MS`].
    exits_ms: VecDeque<u64>,
    /// Stopped at the tenant's request: its exit is no crash and it is not restarted.
    stopped: bool,
}

/// What the provider tells the chain about one of its leases.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Report {
    /// The workload runs: billing may start.
    Started,
    /// The provider cannot run the workload: close the lease with this reason.
    Close(String),
}

impl Report {
    fn body(&self, lease: LeaseId) -> TxBody {
        match self {
            Self::Started => TxBody::LeaseStarted(LeaseStarted { lease }),
            Self::Close(reason) => TxBody::CloseLease(CloseLease {
                lease,
                reason: close_reason(reason),
            }),
        }
    }
}

/// `reason` cut to what the chain takes, at a character boundary.
fn close_reason(reason: &str) -> BoundedString<MAX_REASON_BYTES> {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    BoundedString::new(&reason[..end]).unwrap_or_default()
}

struct Inner {
    capacity: bid::Ledger,
    /// Orders bid on and not yet decided.
    bids: BTreeMap<OrderId, ()>,
    leases: BTreeMap<LeaseId, Slot>,
}

struct Shared {
    address: Address,
    key: Keypair,
    node: NodeClient,
    prices: Prices,
    data_dir: PathBuf,
    poll: Duration,
    process: Option<Arc<dyn Runtime>>,
    container: Option<Arc<dyn Runtime>>,
    unavailable: BTreeMap<String, String>,
    /// The host's GPUs as NVML numbers them; leases get exact devices from this list.
    gpu_devices: Vec<cairn_compute::gpu::GpuInfo>,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn runtime(&self, kind: RuntimeKind) -> Result<Arc<dyn Runtime>, RuntimeError> {
        let rt = match kind {
            RuntimeKind::Process => self.process.clone(),
            RuntimeKind::Container => self.container.clone(),
        };
        rt.ok_or_else(|| RuntimeError::Unavailable {
            runtime: kind,
            reason: self
                .unavailable
                .get(&kind.to_string())
                .cloned()
                .unwrap_or_default(),
        })
    }

    /// Records that this provider must close `id` on chain because of `reason`; the chain
    /// thread sends the `CloseLease` at its next poll.
    fn fail(&self, id: LeaseId, reason: String) {
        self.event(id, format!("closing the lease on chain: {reason}"));
        let mut inner = self.lock();
        let slot = inner.leases.entry(id).or_default();
        if slot.close_reason.is_none() {
            slot.close_reason = Some(reason);
        }
    }

    fn lease_dir(&self, id: LeaseId) -> PathBuf {
        self.data_dir.join("leases").join(id.0.to_string())
    }

    fn event(&self, id: LeaseId, message: String) {
        let event = LeaseEvent {
            time_ms: auth::now_ms(),
            message,
        };
        let dir = self.lease_dir(id);
        if std::fs::create_dir_all(&dir).is_ok()
            && let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("events.jsonl"))
        {
            use std::io::Write;
            let _ = writeln!(f, "{}", serde_json::to_string(&event).unwrap_or_default());
        }
        let mut inner = self.lock();
        let slot = inner.leases.entry(id).or_default();
        if slot.events.len() >= MAX_EVENTS {
            slot.events.pop_front();
        }
        slot.events.push_back(event);
    }
}

/// The runtimes a provider offers, each with why not where it cannot.
pub struct Runtimes {
    pub process: Result<Arc<dyn Runtime>, RuntimeError>,
    pub container: Result<Arc<dyn Runtime>, RuntimeError>,
}

/// Why a runtime is not offered, without the "not available" its error already says (the
/// provider says that itself).
fn unavailable_reason(e: RuntimeError) -> String {
    match e {
        RuntimeError::Unavailable { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// A running provider; [`ProviderHandle::stop`] stops its threads, never its workloads.
pub struct ProviderHandle {
    pub address: Address,
    pub url: String,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Held so that the provider's state is dropped here, on the caller's thread, after
    /// both threads end: it owns the container runtime's Tokio runtime, which panics if it
    /// is dropped inside another runtime's async context (the HTTP thread's, at shutdown).
    shared: Arc<Shared>,
}

impl ProviderHandle {
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        drop(self.shared);
    }
}

/// Starts the provider: one thread for the chain loop, one for the HTTP server.
pub fn start(
    config: &ProviderConfig,
    key: Keypair,
    runtimes: Runtimes,
) -> Result<ProviderHandle, ProviderError> {
    if config.poll_ms == 0 || config.poll_ms > 60_000 {
        return Err(ProviderError::Config(format!(
            "poll_ms {}: use 1 to 60000",
            config.poll_ms
        )));
    }
    let leases_dir = config.data_dir.join("leases");
    std::fs::create_dir_all(&leases_dir).map_err(|source| ProviderError::Io {
        path: leases_dir.clone(),
        source,
    })?;
    let gpu_devices = cairn_compute::gpu::discover().gpus().to_vec();
    let gpus = gpu_devices
        .iter()
        .map(cairn_compute::gpu::GpuInfo::spec)
        .collect();
    let total = Free {
        cpu_millicores: config.capacity.cpu_millicores,
        memory_bytes: config.capacity.memory_bytes,
        storage_bytes: config.capacity.storage_bytes,
        gpus,
    };
    let mut unavailable = BTreeMap::new();
    let process = runtimes
        .process
        .map_err(|e| unavailable.insert("process".to_string(), unavailable_reason(e)))
        .ok();
    let container = runtimes
        .container
        .map_err(|e| unavailable.insert("container".to_string(), unavailable_reason(e)))
        .ok();
    let shared = Arc::new(Shared {
        address: key.address(),
        key,
        node: NodeClient::new(&config.node),
        prices: config.prices.clone(),
        data_dir: config.data_dir.clone(),
        poll: Duration::from_millis(config.poll_ms),
        process,
        container,
        unavailable,
        gpu_devices,
        inner: Mutex::new(Inner {
            capacity: bid::Ledger::new(total),
            bids: BTreeMap::new(),
            leases: BTreeMap::new(),
        }),
    });
    reattach(&shared);
    let listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| ProviderError::Io {
            path: PathBuf::from(config.listen.to_string()),
            source,
        })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ProviderError::Io {
            path: PathBuf::from(config.listen.to_string()),
            source,
        })?;
    let url = format!(
        "http://{}",
        listener.local_addr().map_err(|source| ProviderError::Io {
            path: PathBuf::from(config.listen.to_string()),
            source,
        })?
    );
    let stop = Arc::new(AtomicBool::new(false));
    let chain = {
        let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = tick(&shared) {
                    tracing::debug!("provider tick: {e}");
                }
                std::thread::sleep(shared.poll);
            }
        })
    };
    let http = {
        let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
        std::thread::spawn(move || {
            // The router's reference is dropped inside the runtime; this one outlives it,
            // so the state is never last dropped in an async context.
            let _keep = Arc::clone(&shared);
            let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let shutdown = async move {
                    while !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                };
                let _ = cairn_http::serve(
                    listener,
                    router(shared),
                    cairn_http::Limits::default(),
                    shutdown,
                )
                .await;
            });
        })
    };
    Ok(ProviderHandle {
        address: shared.address,
        url,
        stop,
        threads: vec![chain, http],
        shared,
    })
}

/// Reads back every lease directory and re-attaches to workloads still running.
fn reattach(shared: &Shared) {
    let Ok(dirs) = std::fs::read_dir(shared.data_dir.join("leases")) else {
        return;
    };
    for entry in dirs.flatten() {
        let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let id = LeaseId(id);
        let dir = entry.path();
        let manifest = std::fs::read_to_string(dir.join("manifest.yaml"))
            .ok()
            .and_then(|t| manifest::parse(&t).ok());
        let handle: Option<Handle> = std::fs::read(dir.join("handle.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let mut events = VecDeque::new();
        if let Ok(text) = std::fs::read_to_string(dir.join("events.jsonl")) {
            for line in text.lines() {
                if let Ok(e) = serde_json::from_str::<LeaseEvent>(line) {
                    if events.len() >= MAX_EVENTS {
                        events.pop_front();
                    }
                    events.push_back(e);
                }
            }
        }
        let state = handle
            .as_ref()
            .and_then(|h| shared.runtime(h.kind).ok().map(|rt| rt.state(h)));
        {
            let mut inner = shared.lock();
            let slot = inner.leases.entry(id).or_default();
            slot.manifest = manifest;
            slot.events = events;
            slot.handle = handle.clone();
        }
        if let Some(state) = state {
            let what = match state {
                WorkloadState::Exited => "workload had exited while the provider was down",
                _ => "re-attached to the running workload after a provider restart",
            };
            shared.event(id, what.to_string());
        }
    }
}

fn from_value<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
    serde_json::from_value(v.clone()).ok()
}

/// Every lease of `provider` on chain with its projected state, newest first: filtered by the
/// node (`provider=`) and read to the last page, so a provider reconciles all of its leases
/// however many other leases the chain holds.
pub fn provider_leases(
    node: &NodeClient,
    provider: Address,
) -> Result<Vec<(Lease, String)>, cairn_client::NodeError> {
    let items = node.list_all(&format!("/v1/leases?provider={provider}"), "leases")?;
    let mut mine = Vec::with_capacity(items.len());
    for item in &items {
        let Some(lease) = from_value::<Lease>(&item["lease"]) else {
            continue;
        };
        if lease.provider != provider {
            continue;
        }
        let projected = item["projected_state"]
            .as_str()
            .unwrap_or("active")
            .to_string();
        mine.push((lease, projected));
    }
    Ok(mine)
}

/// One poll of the chain: reconcile leases, then bid on open orders.
fn tick(shared: &Shared) -> Result<(), String> {
    let mine = provider_leases(&shared.node, shared.address).map_err(|e| e.to_string())?;
    let mut reports = Vec::new();
    for (lease, projected) in mine {
        if let Some(report) = reconcile(shared, &lease, &projected) {
            reports.push((lease.id, report));
        }
    }
    // Every open order, not the newest page: a bid of ours on an order missing from `open`
    // counts as decided below and its capacity is released, so an open order past the first
    // page would have its reserved capacity handed to another bid. Open orders end at their
    // accept deadline, so the list stays short.
    let orders = shared
        .node
        .list_all("/v1/orders?status=open", "orders")
        .map_err(|e| e.to_string())?;
    let height = shared.node.status().map_err(|e| e.to_string())?["height"]
        .as_u64()
        .unwrap_or(0);
    let open: BTreeMap<OrderId, Order> = orders
        .iter()
        .filter_map(from_value::<Order>)
        .map(|o| (o.id, o))
        .collect();
    let mut bodies: Vec<TxBody> = reports.iter().map(|(id, r)| r.body(*id)).collect();
    {
        let mut inner = shared.lock();
        // A bid on an order that is no longer open is decided: won (the lease holds the
        // capacity now) or lost.
        let decided: Vec<OrderId> = inner
            .bids
            .keys()
            .filter(|id| !open.contains_key(id))
            .copied()
            .collect();
        for id in decided {
            inner.bids.remove(&id);
            inner.capacity.release(&id.to_string());
        }
        for order in open.values() {
            if inner.bids.contains_key(&order.id)
                || order.bids.contains_key(&shared.address)
                || height >= order.bid_deadline
            {
                continue;
            }
            let free = inner.capacity.free();
            match bid::evaluate(
                &order.resources,
                order.max_price_per_block,
                &free,
                &shared.prices,
            ) {
                Ok(offer) => {
                    inner
                        .capacity
                        .hold(&order.id.to_string(), offer.hardware.clone());
                    inner.bids.insert(order.id, ());
                    bodies.push(TxBody::PlaceBid(PlaceBid {
                        order: order.id,
                        price_per_block: offer.price_per_block,
                        hardware: offer.hardware,
                    }));
                }
                Err(_) => {
                    // Remembered so the refusal is not re-evaluated every poll.
                    inner.bids.insert(order.id, ());
                }
            }
        }
    }
    if bodies.is_empty() {
        return Ok(());
    }
    let hashes = shared
        .node
        .send_all(&shared.key, bodies, None)
        .map_err(|e| e.to_string())?;
    // Marked only once submitted: a report that did not leave is made again next poll.
    for ((id, report), hash) in reports.iter().zip(&hashes) {
        {
            let mut inner = shared.lock();
            let slot = inner.leases.entry(*id).or_default();
            match report {
                Report::Started => slot.start_reported = true,
                Report::Close(_) => slot.close_sent = true,
            }
        }
        let what = match report {
            Report::Started => "reported the start on chain: billing starts".to_string(),
            Report::Close(reason) => format!("sent the close on chain: {reason}"),
        };
        shared.event(*id, format!("{what} (tx {hash})"));
    }
    if let Some(last) = hashes.last() {
        // The next batch needs these nonces finalized.
        shared
            .node
            .wait_finalized(last, Duration::from_secs(20))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Brings a lease's workload in line with its on-chain state; returns what the chain must
/// hear about it: the workload runs (a starting lease), or the provider cannot run it.
fn reconcile(shared: &Shared, lease: &Lease, projected: &str) -> Option<Report> {
    let id = lease.id;
    let closed = matches!(lease.state, LeaseState::Closed { .. }) || projected == "closed";
    let starting = matches!(lease.state, LeaseState::Starting { .. });
    let (handle, changed, pending_close, start_reported, stopped) = {
        let mut inner = shared.lock();
        if closed {
            inner.capacity.release(&id.to_string());
        } else {
            inner.capacity.hold(&id.to_string(), lease.hardware.clone());
        }
        let slot = inner.leases.entry(id).or_default();
        slot.tenant = Some(lease.tenant);
        let changed = slot.chain_state != projected;
        slot.chain_state = projected.to_string();
        let pending_close = slot.close_reason.clone().filter(|_| !slot.close_sent);
        (
            slot.handle.clone(),
            changed,
            pending_close,
            slot.start_reported,
            slot.stopped,
        )
    };
    if changed {
        let reason = match &lease.state {
            LeaseState::Closed {
                reason, initiator, ..
            } => format!(" by {initiator:?}: {reason}"),
            _ => String::new(),
        };
        shared.event(id, format!("lease is {projected} on chain{reason}"));
    }
    if !closed && let Some(reason) = pending_close {
        return Some(Report::Close(reason));
    }
    let handle = handle?;
    let rt = shared.runtime(handle.kind).ok()?;
    let state = rt.state(&handle);
    let result = match (closed, projected, state) {
        (true, _, WorkloadState::Exited) => Ok(None),
        (false, "active" | "starting", WorkloadState::Exited) if !stopped => {
            return workload_exited(shared, lease, rt.as_ref(), &handle);
        }
        (_, _, WorkloadState::Exited) => Ok(None),
        (true, _, _) => rt
            .stop(&handle)
            .map(|()| Some("workload stopped: the lease is closed")),
        (false, "paused", WorkloadState::Running) => rt
            .pause(&handle)
            .map(|()| Some("workload paused: the lease's escrow is empty")),
        (false, "closing", WorkloadState::Running) => rt.pause(&handle).map(|()| {
            Some("workload paused: the protocol closes the lease at its next settlement")
        }),
        (false, "active", WorkloadState::Paused) => rt
            .resume(&handle)
            .map(|()| Some("workload resumed: the lease is active again")),
        _ => Ok(None),
    };
    match result {
        Ok(Some(message)) => shared.event(id, message.to_string()),
        Ok(None) => {}
        Err(e) => shared.event(id, format!("runtime: {e}")),
    }
    // Not once the start deadline has passed ("closing"): the chain would refuse the report.
    let report = starting && projected == "starting" && !start_reported;
    (report && state == WorkloadState::Running).then_some(Report::Started)
}

/// A live lease's workload has exited: restart it, unless that makes a crash loop
/// ([`CRASH_LOOP_EXITS`] exits within [`CRASH_WINDOW_MS`]); then close the lease.
fn workload_exited(
    shared: &Shared,
    lease: &Lease,
    rt: &dyn Runtime,
    handle: &Handle,
) -> Option<Report> {
    let id = lease.id;
    let now_ms = auth::now_ms();
    let (exits, manifest) = {
        let mut inner = shared.lock();
        let slot = inner.leases.entry(id).or_default();
        slot.exits_ms.push_back(now_ms);
        while slot
            .exits_ms
            .front()
            .is_some_and(|t| now_ms.saturating_sub(*t) > CRASH_WINDOW_MS)
        {
            slot.exits_ms.pop_front();
        }
        (slot.exits_ms.len(), slot.manifest.clone())
    };
    if exits >= CRASH_LOOP_EXITS {
        let reason = format!(
            "workload crash loop: it exited {exits} times within {} s",
            CRASH_WINDOW_MS / 1_000
        );
        shared.fail(id, reason.clone());
        return Some(Report::Close(reason));
    }
    let Some(m) = manifest else {
        let reason = "workload exited and its manifest is gone: it cannot be restarted".to_string();
        shared.fail(id, reason.clone());
        return Some(Report::Close(reason));
    };
    let dir = shared.lease_dir(id);
    let restarted = rt.start(id, &m, &dir, &handle.gpus).and_then(|h| {
        save_handle(&dir, &h)?;
        Ok(h)
    });
    match restarted {
        Ok(h) => {
            shared.lock().leases.entry(id).or_default().handle = Some(h);
            shared.event(
                id,
                format!(
                    "workload exited; restarted it ({exits} exit(s) within {} s; {CRASH_LOOP_EXITS} close the lease)",
                    CRASH_WINDOW_MS / 1_000
                ),
            );
            None
        }
        Err(e) => {
            let reason = format!("workload exited and failed to restart: {}", e.cause());
            shared.fail(id, reason.clone());
            Some(Report::Close(reason))
        }
    }
}

fn save_handle(dir: &Path, handle: &Handle) -> Result<(), RuntimeError> {
    let path = dir.join("handle.json");
    let bytes = serde_json::to_vec(handle).map_err(|e| RuntimeError::Start {
        lease: handle.lease,
        reason: format!("encoding the handle: {e}"),
    })?;
    std::fs::write(&path, bytes).map_err(crate::runtime::io(&path))
}

// ---------------------------------------------------------------------------------------
// HTTP: lease API and ingress.

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/bid-check", post(bid_check))
        .route("/v1/leases/{id}/manifest", put(put_manifest))
        .route("/v1/leases/{id}", get(lease_status))
        .route("/v1/leases/{id}/logs", get(logs))
        .route("/v1/leases/{id}/events", get(events))
        .route("/v1/leases/{id}/close", post(close))
        .route("/l/{id}", any(ingress))
        .route("/l/{id}/", any(ingress))
        .route("/l/{id}/{*rest}", any(ingress))
        .with_state(shared)
}

/// Set on every answer the provider itself gives, so a client can tell them from the
/// workload's own.
pub const HEADER_PROVIDER_ANSWER: &str = "x-cairn-provider-answer";

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        [(HEADER_PROVIDER_ANSWER, "1")],
        Json(json!({ "error": { "code": code, "message": message.into() } })),
    )
        .into_response()
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let inner = shared.lock();
    Json(json!({
        "address": shared.address,
        "capacity": inner.capacity.total(),
        "free": inner.capacity.free(),
        "prices": shared.prices,
        "runtimes": {
            "process": shared.process.is_some(),
            "container": shared.container.is_some(),
        },
        "unavailable": shared.unavailable,
        "leases": inner.leases.len(),
    }))
    .into_response()
}

/// What a dry-run asks: would this provider bid, and at what price?
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BidCheck {
    pub resources: Resources,
    pub max_price_per_block: Amount,
    pub runtime: RuntimeKind,
    /// The container image: an order carries only the manifest's hash, so the provider's
    /// bids cannot see it, but the dry run can ask whether the engine has it.
    #[serde(default)]
    pub image: Option<String>,
}

/// The dry run: the bid rule on live free capacity and prices (GPUs included), after what
/// the start will need from the runtime (the image on the engine, bubblewrap).
async fn bid_check(State(shared): State<Arc<Shared>>, Json(q): Json<BidCheck>) -> Response {
    let refuse = |reason: String| Json(json!({ "would_bid": false, "reason": reason }));
    let rt = match shared.runtime(q.runtime) {
        Ok(rt) => rt,
        Err(e) => return refuse(format!("runtime: {e}")).into_response(),
    };
    // The container runtime blocks on its own tokio runtime.
    let image = q.image.clone();
    let checked = tokio::task::spawn_blocking(move || rt.check(image.as_deref())).await;
    match checked {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return refuse(e.to_string()).into_response(),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
    let free = shared.lock().capacity.free();
    match bid::evaluate(&q.resources, q.max_price_per_block, &free, &shared.prices) {
        Ok(offer) => Json(json!({ "would_bid": true, "offer": offer })).into_response(),
        Err(refusal) => Json(json!({
            "would_bid": false,
            "reason": refusal.to_string(),
            "refusal": refusal,
        }))
        .into_response(),
    }
}

/// Checks the signature and that the signer is the lease's tenant on chain.
/// The lease named by the path, once the request is shown to be signed by its tenant.
async fn authorize(
    shared: &Arc<Shared>,
    id: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(LeaseId, Lease), Response> {
    let id = parse_lease(id)?;
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let signer = auth::verify(
        |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        },
        method.as_str(),
        path,
        body,
        auth::now_ms(),
    )
    .map_err(|e| error(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()))?;
    let node = shared.node.clone();
    let answer = tokio::task::spawn_blocking(move || node.get(&format!("/v1/leases/{id}")))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let view =
        answer.map_err(|e| error(StatusCode::NOT_FOUND, "unknown_lease", format!("{id}: {e}")))?;
    let lease: Lease = from_value(&view["lease"]).ok_or_else(|| {
        error(
            StatusCode::BAD_GATEWAY,
            "bad_node_answer",
            "unreadable lease",
        )
    })?;
    if lease.provider != shared.address {
        return Err(error(
            StatusCode::NOT_FOUND,
            "not_this_provider",
            format!(
                "{id} is with provider {}, not {}",
                lease.provider, shared.address
            ),
        ));
    }
    if lease.tenant != signer {
        return Err(error(
            StatusCode::FORBIDDEN,
            "not_tenant",
            format!("{signer} is not the tenant of {id}"),
        ));
    }
    Ok((id, lease))
}

#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
fn parse_lease(id: &str) -> Result<LeaseId, Response> {
    id.parse().map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            "bad_lease_id",
            format!("{id:?} is not a lease id"),
        )
    })
}

async fn put_manifest(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (id, lease) = match authorize(&shared, &id, &method, &uri, &headers, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if matches!(lease.state, LeaseState::Closed { .. }) {
        return error(
            StatusCode::CONFLICT,
            "lease_closed",
            format!("{id} is closed"),
        );
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_manifest",
            "the manifest is not UTF-8",
        );
    };
    let m = match manifest::parse(text) {
        Ok(m) => m,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": { "code": "bad_manifest", "message": e.to_string(), "problems": e.problems } })),
            )
                .into_response();
        }
    };
    if m.hash() != lease.manifest_hash {
        return error(
            StatusCode::CONFLICT,
            "manifest_hash_mismatch",
            format!(
                "this manifest hashes to {}, but {id}'s order carries {}: send the manifest the order was made for",
                m.hash(),
                lease.manifest_hash
            ),
        );
    }
    if let Err(detail) = cairn_ledger::compute::hardware_satisfies(&m.resources(), &lease.hardware)
    {
        return error(StatusCode::CONFLICT, "hardware_mismatch", detail);
    }
    // From here on the manifest is the order's: a failure is the provider's, and the lease
    // it cannot run is closed on chain (refunding the tenant) instead of left to bill.
    let rt = match shared.runtime(m.runtime) {
        Ok(rt) => rt,
        Err(e) => {
            shared.fail(id, format!("workload failed to start: {e}"));
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "runtime_unavailable",
                e.to_string(),
            );
        }
    };
    {
        let inner = shared.lock();
        if let Some(h) = inner.leases.get(&id).and_then(|s| s.handle.clone())
            && rt.state(&h) != WorkloadState::Exited
        {
            return Json(json!({ "lease": id, "state": "running", "already": true }))
                .into_response();
        }
    }
    // Exact host GPUs for the lease's hardware, reserved under the lock so two manifests
    // arriving together never get the same device.
    let gpus = {
        let mut inner = shared.lock();
        let in_use: BTreeSet<u32> = inner
            .leases
            .iter()
            .filter(|(lease, _)| **lease != id)
            .flat_map(|(_, s)| {
                s.handle
                    .iter()
                    .flat_map(|h| h.gpus.iter().copied())
                    .chain(s.gpus.iter().copied())
            })
            .collect();
        let wanted: Vec<cairn_types::GpuSpec> = lease.hardware.gpus.iter().cloned().collect();
        match assign_gpus(&shared.gpu_devices, &wanted, &in_use) {
            Ok(gpus) => {
                inner.leases.entry(id).or_default().gpus.clone_from(&gpus);
                gpus
            }
            Err(detail) => {
                drop(inner);
                shared.fail(id, format!("workload failed to start: {detail}"));
                return error(StatusCode::CONFLICT, "gpus_unavailable", detail);
            }
        }
    };
    let dir = shared.lease_dir(id);
    let started = {
        let (shared2, m2, text) = (Arc::clone(&shared), m.clone(), text.to_string());
        let gpus2 = gpus.clone();
        tokio::task::spawn_blocking(move || -> Result<Handle, RuntimeError> {
            std::fs::create_dir_all(&dir).map_err(crate::runtime::io(&dir))?;
            let path = dir.join("manifest.yaml");
            std::fs::write(&path, text).map_err(crate::runtime::io(&path))?;
            shared2.event(
                id,
                format!(
                    "manifest received ({}), starting the {} workload",
                    m2.hash(),
                    m2.runtime
                ),
            );
            let handle = rt.start(id, &m2, &dir, &gpus2)?;
            save_handle(&dir, &handle)?;
            Ok(handle)
        })
        .await
    };
    match started {
        Ok(Ok(handle)) => {
            {
                let mut inner = shared.lock();
                let slot = inner.leases.entry(id).or_default();
                slot.manifest = Some(m);
                slot.handle = Some(handle);
                slot.gpus.clear();
                // A fresh start: earlier exits and a not yet sent close no longer apply.
                slot.exits_ms.clear();
                slot.stopped = false;
                slot.start_reported = false;
                if !slot.close_sent {
                    slot.close_reason = None;
                }
            }
            shared.event(id, "workload started".to_string());
            Json(json!({ "lease": id, "state": "running" })).into_response()
        }
        Ok(Err(e)) => {
            release_gpus(&shared, id);
            let reason = format!("workload failed to start: {}", e.cause());
            shared.event(id, reason.clone());
            shared.fail(id, reason.clone());
            error(StatusCode::INTERNAL_SERVER_ERROR, "start_failed", reason)
        }
        Err(e) => {
            release_gpus(&shared, id);
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        }
    }
}

fn release_gpus(shared: &Shared, id: LeaseId) {
    if let Some(slot) = shared.lock().leases.get_mut(&id) {
        slot.gpus.clear();
    }
}

/// Host GPU indices for a lease's hardware: for each GPU the bid promised, a free device of
/// exactly that vendor, model and memory. Pure, so the choice is tested without a GPU.
pub fn assign_gpus(
    devices: &[cairn_compute::gpu::GpuInfo],
    wanted: &[cairn_types::GpuSpec],
    in_use: &BTreeSet<u32>,
) -> Result<Vec<u32>, String> {
    let mut chosen: Vec<u32> = Vec::with_capacity(wanted.len());
    for spec in wanted {
        let device = devices.iter().find(|d| {
            !in_use.contains(&d.index) && !chosen.contains(&d.index) && d.spec() == *spec
        });
        match device {
            Some(d) => chosen.push(d.index),
            None => {
                return Err(format!(
                    "the lease needs {} {} {} ({} MiB) GPU(s) but this host has {} free of that kind",
                    wanted.iter().filter(|w| *w == spec).count(),
                    spec.vendor.as_str(),
                    spec.model.as_str(),
                    spec.vram_mib,
                    devices
                        .iter()
                        .filter(|d| !in_use.contains(&d.index) && d.spec() == *spec)
                        .count()
                ));
            }
        }
    }
    Ok(chosen)
}

fn workload_view(shared: &Shared, id: LeaseId) -> Value {
    let inner = shared.lock();
    let Some(slot) = inner.leases.get(&id) else {
        return json!({ "lease": id, "workload": "none", "chain_state": null });
    };
    let state = slot
        .handle
        .as_ref()
        .map_or("awaiting_manifest".to_string(), |h| {
            shared
                .runtime(h.kind)
                .map_or("runtime_unavailable".to_string(), |rt| {
                    serde_json::to_value(rt.state(h))
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                })
        });
    json!({
        "lease": id,
        "workload": state,
        "chain_state": slot.chain_state,
        "runtime": slot.manifest.as_ref().map(|m| m.runtime),
        "service": slot.manifest.as_ref().map(|m| m.service.clone()),
        "ingress": slot.manifest.as_ref().and_then(Manifest::ingress_port).map(|_| format!("/l/{id}/")),
        "handle": slot.handle,
    })
}

async fn lease_status(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let id = match authorize(&shared, &id, &method, &uri, &headers, b"").await {
        Ok((id, _)) => id,
        Err(r) => return r,
    };
    // Runtimes block (the container runtime drives its own tokio runtime).
    let shared2 = Arc::clone(&shared);
    match tokio::task::spawn_blocking(move || workload_view(&shared2, id)).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

async fn events(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let id = match authorize(&shared, &id, &method, &uri, &headers, b"").await {
        Ok((id, _)) => id,
        Err(r) => return r,
    };
    let events: Vec<LeaseEvent> = shared
        .lock()
        .leases
        .get(&id)
        .map(|s| s.events.iter().cloned().collect())
        .unwrap_or_default();
    Json(json!({ "lease": id, "events": events })).into_response()
}

#[derive(Deserialize)]
struct LogQuery {
    #[serde(default)]
    follow: bool,
    #[serde(default)]
    offset: u64,
}

async fn logs(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<LogQuery>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let id = match authorize(&shared, &id, &method, &uri, &headers, b"").await {
        Ok((id, _)) => id,
        Err(r) => return r,
    };
    let Some(handle) = shared.lock().leases.get(&id).and_then(|s| s.handle.clone()) else {
        return error(
            StatusCode::NOT_FOUND,
            "no_workload",
            format!("{id} has no workload yet"),
        );
    };
    let rt = match shared.runtime(handle.kind) {
        Ok(rt) => rt,
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "runtime_unavailable",
                e.to_string(),
            );
        }
    };
    let dir = shared.lease_dir(id);
    if !q.follow {
        let read =
            tokio::task::spawn_blocking(move || rt.logs(&handle, &dir, q.offset, 16 * 1024 * 1024))
                .await;
        return match read {
            Ok(Ok(bytes)) => ([(header::CONTENT_TYPE, "text/plain")], bytes).into_response(),
            Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, "logs", e.to_string()),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        };
    }
    // Follow: stream new output as it is written, until the workload exits.
    let stream = futures::stream::unfold(
        (rt, handle, dir, q.offset, false),
        |(rt, handle, dir, offset, done)| async move {
            if done {
                return None;
            }
            loop {
                let (rt2, h2, d2) = (Arc::clone(&rt), handle.clone(), dir.clone());
                let read = tokio::task::spawn_blocking(move || {
                    let bytes = rt2.logs(&h2, &d2, offset, LOG_CHUNK_BYTES);
                    (bytes, rt2.state(&h2))
                })
                .await;
                let Ok((Ok(bytes), state)) = read else {
                    return None;
                };
                if !bytes.is_empty() {
                    let next = offset.saturating_add(u64::try_from(bytes.len()).unwrap_or(0));
                    return Some((
                        Ok::<_, std::io::Error>(Bytes::from(bytes)),
                        (rt, handle, dir, next, false),
                    ));
                }
                if state == WorkloadState::Exited {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        },
    );
    (
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn close(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (id, lease) = match authorize(&shared, &id, &method, &uri, &headers, b"").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let handle = {
        let mut inner = shared.lock();
        let slot = inner.leases.entry(id).or_default();
        slot.stopped = true;
        slot.handle.clone()
    };
    // A lease still live on chain would go on billing a workload that no longer runs.
    if !matches!(lease.state, LeaseState::Closed { .. }) {
        shared.fail(
            id,
            "the tenant stopped the workload through the lease API".to_string(),
        );
    }
    let Some(handle) = handle else {
        return Json(json!({ "lease": id, "workload": "none" })).into_response();
    };
    let Ok(rt) = shared.runtime(handle.kind) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "runtime_unavailable",
            "runtime gone",
        );
    };
    let stopped = tokio::task::spawn_blocking(move || rt.stop(&handle)).await;
    match stopped {
        Ok(Ok(())) => {
            shared.event(id, "workload stopped at the tenant's request".to_string());
            Json(json!({ "lease": id, "workload": "exited" })).into_response()
        }
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "stop_failed",
            e.to_string(),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

async fn ingress(
    State(shared): State<Arc<Shared>>,
    UrlPath(params): UrlPath<Vec<(String, String)>>,
    req: Request,
) -> Response {
    let id = params
        .iter()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let rest = params
        .iter()
        .find(|(k, _)| k == "rest")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let id = match parse_lease(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let (endpoint, chain_state) = {
        let inner = shared.lock();
        let Some(slot) = inner.leases.get(&id) else {
            return error(
                StatusCode::NOT_FOUND,
                "unknown_lease",
                format!("{id} does not run here"),
            );
        };
        (
            slot.handle.as_ref().and_then(|h| h.endpoint.clone()),
            slot.chain_state.clone(),
        )
    };
    if chain_state != "active" && !chain_state.is_empty() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "lease_not_active",
            format!("{id} is {chain_state}"),
        );
    }
    let Some(endpoint) = endpoint else {
        return error(
            StatusCode::NOT_FOUND,
            "no_ingress",
            format!("{id} exposes no global port"),
        );
    };
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let target = format!("/{rest}{query}");
    match proxy(endpoint, req, &target).await {
        Ok(r) => r,
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            "upstream",
            format!("{id}'s workload: {e}"),
        ),
    }
}

async fn proxy(endpoint: Endpoint, req: Request, target: &str) -> Result<Response, String> {
    let (mut parts, body) = req.into_parts();
    parts.uri = target
        .parse()
        .map_err(|e: axum::http::uri::InvalidUri| e.to_string())?;
    parts
        .headers
        .insert(header::HOST, header::HeaderValue::from_static("localhost"));
    let req = axum::http::Request::from_parts(parts, body);
    let timeout = Duration::from_secs(30);
    let fut = async {
        match endpoint {
            Endpoint::Unix(path) => {
                let s = tokio::net::UnixStream::connect(&path)
                    .await
                    .map_err(|e| e.to_string())?;
                send(hyper_util::rt::TokioIo::new(s), req).await
            }
            Endpoint::Tcp(addr) => {
                let s = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| e.to_string())?;
                send(hyper_util::rt::TokioIo::new(s), req).await
            }
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| "timed out".to_string())?
}

async fn send<I>(io: I, req: axum::http::Request<Body>) -> Result<Response, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    Ok(resp.map(Body::new))
}

/// The paths under a data dir (for tests and tools).
pub fn lease_dir(data_dir: &Path, id: LeaseId) -> PathBuf {
    data_dir.join("leases").join(id.0.to_string())
}

/// What each devnet compute provider declares.
pub fn devnet_capacity() -> CapacityConfig {
    CapacityConfig {
        cpu_millicores: 2_000,
        memory_bytes: 2 << 30,
        storage_bytes: 2 << 30,
    }
}

/// Devnet prices: provider `i` asks `i + 1` times the base, so the cheapest is provider 0.
/// The GPU base is given (the CLI derives it from the dated cloud price table and the
/// block time, so a GPU-hour costs less than the listed ones).
pub fn devnet_prices(i: u64, base_ucrn_per_gpu_block: u64) -> Prices {
    let k = i.saturating_add(1);
    Prices {
        ucrn_per_cpu_core_block: 1_000 * k,
        ucrn_per_gib_memory_block: 100 * k,
        ucrn_per_gib_storage_block: 10 * k,
        ucrn_per_gpu_block: base_ucrn_per_gpu_block.saturating_mul(k),
    }
}

#[cfg(test)]
mod gpu_tests {
    use super::assign_gpus;
    use cairn_compute::gpu::GpuInfo;
    use std::collections::BTreeSet;

    fn gpu(index: u32, model: &str, vram_mib: u64) -> GpuInfo {
        GpuInfo {
            index,
            vendor: "nvidia".to_string(),
            model: model.to_string(),
            vram_mib,
            int8_dense_peak_tops: None,
        }
    }

    #[test]
    fn leases_get_free_devices_of_exactly_the_promised_kind() {
        let host = [
            gpu(0, "h100", 81_559),
            gpu(1, "a100", 40_960),
            gpu(2, "h100", 81_559),
        ];
        let h100 = host[0].spec();
        let none = BTreeSet::new();
        assert_eq!(assign_gpus(&host, &[], &none), Ok(vec![]));
        assert_eq!(
            assign_gpus(&host, std::slice::from_ref(&h100), &none),
            Ok(vec![0])
        );
        assert_eq!(
            assign_gpus(&host, &[h100.clone(), h100.clone()], &none),
            Ok(vec![0, 2])
        );
        // Device 0 is another lease's: the next H100, never the A100.
        let taken = BTreeSet::from([0]);
        assert_eq!(
            assign_gpus(&host, std::slice::from_ref(&h100), &taken),
            Ok(vec![2])
        );
        let err = assign_gpus(&host, &[h100.clone(), h100], &taken).unwrap_err();
        assert!(
            err.contains("needs 2 nvidia h100") && err.contains("1 free"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod report_tests {
    use super::{MAX_REASON_BYTES, Report, close_reason};
    use cairn_types::{LeaseId, TxBody};

    #[test]
    fn close_reasons_fit_the_chain_and_are_cut_at_a_character() {
        assert_eq!(close_reason("short").as_str(), "short");
        // 'é' is two bytes: 255 of 'a' then 'é' would split it at 256.
        let long = format!("{}é and more", "a".repeat(MAX_REASON_BYTES - 1));
        let cut = close_reason(&long);
        assert_eq!(cut.as_str(), "a".repeat(MAX_REASON_BYTES - 1));
        match Report::Close(long).body(LeaseId(4)) {
            TxBody::CloseLease(c) => assert_eq!((c.lease, c.reason), (LeaseId(4), cut)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Report::Started.body(LeaseId(4)),
            TxBody::LeaseStarted(s) if s.lease == LeaseId(4)
        ));
    }
}
