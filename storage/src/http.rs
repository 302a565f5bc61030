//! The provider shard API (design §6, binding) on axum:
//!
//! ```text
//! PUT /v1/shards/{blob}/{index}?deal=<id>              body = the shard
//! GET /v1/shards/{blob}/{index}                        Range: bytes=a-b supported
//! GET /v1/shards/{blob}/{index}/proof?leaves=i,j,...   leaves + Merkle paths
//! GET /v1/shards/{blob}/{index}/chain?deal=&seed=&steps=   a timed audit's chained leaves
//! GET /v1/provider                                     address, capacity, shards held
//! ```
//!
//! PUT authorization: headers `x-cairn-signer` (an address) and `x-cairn-signature` (hex
//! ed25519 over [`cairn_types::tx::shard_put_message`] under `_CAIRN_SHARD_PUT`, covering
//! deal, blob, index and the shard's root). The provider looks the deal up on chain and
//! accepts the shard when either the signer owns the deal, the deal is pending or active and
//! assigns this index to this provider; or the deal is active, the index awaits repair and
//! this provider holds no other shard of it (a repairer, who may be anyone, re-homing a lost
//! shard: the content is checked against the chain's root either way). The body is bounded
//! by the shard size, hashed while it streams to disk, and only after the root matched and
//! the file is fsynced and renamed does the answer carry the signed receipt.
//!
//! `/chain` reads its links from disk in order and answers the codec-encoded openings; at
//! most [`MAX_CONCURRENT_AUDITS`] run at once, and one more is refused with 429 `audits_busy`.
//!
//! Every refusal is a JSON `{"error": {"code", "message"}}` with a 4xx status (5xx only when
//! the node or the disk fails) and leaves what is stored unchanged.

use crate::chain::{self, DealView};
use crate::store::{BufferPool, READ_CHUNK_BYTES, ShardInfo, ShardStore, StoreError};
use crate::throttle::ReadThrottle;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cairn_client::NodeClient;
use cairn_client::direct::AlignedBuf;
use cairn_types::tx::{
    SHARD_PUT_NAMESPACE, SHARD_RECEIPT_NAMESPACE, shard_put_message, shard_receipt_message,
};
use cairn_types::{Address, DealId, Hash, Keypair, Signature};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

/// Header naming who signed a PUT.
pub const SIGNER_HEADER: &str = "x-cairn-signer";
/// Header carrying the PUT's signature (hex).
pub const SIGNATURE_HEADER: &str = "x-cairn-signature";
/// Chunks queued between the body and the disk writer of an upload (bounds its memory).
const QUEUE_CHUNKS: usize = 8;
/// Chunk reads a shard download keeps in flight (bounds its memory to as many chunks).
const READS_IN_FLIGHT: usize = 2;
/// Most bytes of a refused upload read (and dropped) so its sender sees the answer.
const REJECT_DRAIN_BYTES: u64 = 16 << 20;
/// Longest a refused upload is read for before the answer goes out regardless.
const REJECT_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What the handlers share.
pub struct ProviderState {
    pub key: Keypair,
    pub store: Arc<ShardStore>,
    pub node: NodeClient,
    /// Held before a timed audit is answered: only the `Laggard` test double sets it.
    pub chain_delay: Option<std::time::Duration>,
    /// Timed audits answered at once (each is thousands of disk reads); one more is refused
    /// with 429 rather than queued, since a queued audit would only time out.
    pub chain_permits: Arc<tokio::sync::Semaphore>,
    /// Every read of a shard takes a token from its bucket (`crate::throttle`): a peer
    /// serves a regenerator only so many leaves a second, however close it is.
    pub reads: std::sync::Mutex<ReadThrottle>,
    /// The throttle's clock.
    pub started: std::time::Instant,
}

impl ProviderState {
    /// Charges one read of a shard to the requester's network, or refuses with 429
    /// `reads_throttled` and a Retry-After. Called only once the request is known to be
    /// valid, so a malformed one costs nobody a token.
    fn charge_read(&self, blob: &Hash, index: u16, from: SocketAddr) -> Result<(), HttpError> {
        let now_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut throttle = self
            .reads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let network = crate::throttle::Network::of(from.ip());
        throttle.take(blob, index, network, now_us).map_err(|t| {
            let retry_ms = t.retry_after_us.div_ceil(1000);
            HttpError {
                retry_after_s: Some(retry_ms.div_ceil(1000).max(1)),
                ..HttpError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "reads_throttled",
                    format!(
                        "shard {blob}/{index} answers one network at most {} reads at once and {} a second; retry in {retry_ms} ms",
                        t.config.burst, t.config.per_second
                    ),
                )
            }
        })
    }
}

/// Timed audits a provider answers at once: validators take turns, so more than this at a
/// time is someone else's load.
pub const MAX_CONCURRENT_AUDITS: usize = 4;

#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Sent as Retry-After (seconds) with a 429.
    retry_after_s: Option<u64>,
}

impl HttpError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }
    pub(crate) fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for HttpError {
    fn from(e: StoreError) -> Self {
        let (status, code) = match &e {
            StoreError::NotFound { .. } => (StatusCode::NOT_FOUND, "shard_not_found"),
            StoreError::CapacityFull { .. } => (StatusCode::INSUFFICIENT_STORAGE, "capacity_full"),
            StoreError::TooLong { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "shard_too_large"),
            StoreError::WrongLength { .. } => (StatusCode::BAD_REQUEST, "shard_wrong_length"),
            StoreError::RootMismatch { .. } => (StatusCode::BAD_REQUEST, "shard_root_mismatch"),
            StoreError::RangeOutside { .. } => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable")
            }
            StoreError::LeafOutside { .. } => (StatusCode::BAD_REQUEST, "leaf_outside"),
            StoreError::TooManyLeaves { .. } => (StatusCode::BAD_REQUEST, "too_many_leaves"),
            StoreError::Busy { .. } => (StatusCode::CONFLICT, "upload_in_progress"),
            StoreError::BadLeafSize { .. } => (StatusCode::BAD_REQUEST, "bad_leaf_size"),
            StoreError::Io { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "disk_error"),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<cairn_client::NodeError> for HttpError {
    fn from(e: cairn_client::NodeError) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "node_unavailable", e.to_string())
    }
}

type Shared = Arc<ProviderState>;

/// The shard API's router.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/shards/{blob}/{index}", get(get_shard).put(put_shard))
        .route("/v1/shards/{blob}/{index}/proof", get(proof))
        .route("/v1/shards/{blob}/{index}/chain", get(chain))
        .route("/v1/provider", get(provider_info))
        .fallback(|| async {
            HttpError::new(
                StatusCode::NOT_FOUND,
                "no_route",
                "no such route: the shard API is /v1/shards/{blob}/{index}[/proof|/chain]",
            )
        })
        .with_state(state)
}

fn parse_target(blob: &str, index: &str) -> Result<(Hash, u16), HttpError> {
    let blob: Hash = blob.parse().map_err(|e| {
        HttpError::bad(
            "bad_blob_id",
            format!("blob id {blob:?} is not 64 hex digits: {e}"),
        )
    })?;
    let index: u16 = index.parse().map_err(|_| {
        HttpError::bad(
            "bad_shard_index",
            format!("shard index {index:?} is not a number in 0..=65535"),
        )
    })?;
    Ok((blob, index))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HttpError> + Send + 'static,
) -> Result<T, HttpError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("worker failed: {e}"),
        )
    })?
}

#[derive(Deserialize)]
struct PutQuery {
    deal: Option<String>,
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, HttpError> {
    headers
        .get(name)
        .ok_or_else(|| {
            HttpError::new(
                StatusCode::UNAUTHORIZED,
                "unsigned",
                format!("a shard PUT needs the {SIGNER_HEADER} and {SIGNATURE_HEADER} headers"),
            )
        })?
        .to_str()
        .map_err(|_| HttpError::bad("bad_header", format!("{name} is not text")))
}

/// Who may store shard `index` of `deal` here, or why not.
fn authorize(deal: &DealView, me: &Address, signer: &Address, index: u16) -> Result<(), HttpError> {
    let forbidden = |m: String| HttpError::new(StatusCode::FORBIDDEN, "not_authorized", m);
    let assigned = deal.providers.get(usize::from(index)) == Some(me);
    if assigned && deal.is_live() {
        if signer != &deal.owner {
            return Err(forbidden(format!(
                "{signer} does not own deal {}: its owner {} must sign the upload",
                deal.id, deal.owner
            )));
        }
        return Ok(());
    }
    if deal.is_active() && deal.repair_needed.contains(&index) && !deal.providers.contains(me) {
        return Ok(());
    }
    if !deal.is_live() {
        return Err(forbidden(format!(
            "deal {} is {}: it takes no shards",
            deal.id, deal.status.status
        )));
    }
    Err(forbidden(format!(
        "deal {} assigns shard {index} to {}, not to this provider ({me}), and it awaits no repair here",
        deal.id,
        deal.providers
            .get(usize::from(index))
            .map_or_else(|| "nobody".to_string(), ToString::to_string)
    )))
}

fn receipt(
    state: &ProviderState,
    deal: DealId,
    blob: &Hash,
    index: u16,
    info: &ShardInfo,
) -> Value {
    let message = shard_receipt_message(deal, blob, index, &info.root);
    let signature = state.key.sign(SHARD_RECEIPT_NAMESPACE, &message);
    json!({
        "deal": deal,
        "blob": blob,
        "shard_index": index,
        "root": info.root,
        "size_bytes": info.size_bytes,
        "provider": state.key.address(),
        "signature": signature.to_hex(),
    })
}

async fn put_shard(
    State(state): State<Shared>,
    Path((blob, index)): Path<(String, String)>,
    query: Result<Query<PutQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<Value>, HttpError> {
    match admit_put(&state, &blob, &index, query, &headers).await {
        Ok(admitted) => receive_put(state, admitted, body).await,
        Err(e) => {
            drain_rejected(&headers, body).await;
            Err(e)
        }
    }
}

/// Reads and drops (boundedly) the body of a refused upload before the error is sent.
///
/// Answering while the client is still writing makes the server close a socket with
/// unread bytes, which resets the connection: a client without `Expect: 100-continue`
/// then sees a broken pipe instead of the error naming what was wrong. A body declared
/// larger than [`REJECT_DRAIN_BYTES`] is not read at all (the answer races the reset, as
/// it must: the provider will not take in unbounded bytes it has already refused).
async fn drain_rejected(headers: &HeaderMap, body: Body) {
    if declared_length(headers).is_some_and(|len| len > REJECT_DRAIN_BYTES) {
        return;
    }
    let drain = async {
        let mut stream = body.into_data_stream();
        let mut seen_bytes = 0u64;
        while let Some(Ok(chunk)) = stream.next().await {
            seen_bytes = seen_bytes.saturating_add(chunk.len() as u64);
            if seen_bytes > REJECT_DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(REJECT_DRAIN_TIMEOUT, drain).await;
}

/// The body length a request declares (`Content-Length`), if it declares a number.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// What a PUT that passed every check before its body carries into the upload.
struct AdmittedPut {
    deal_id: DealId,
    blob: Hash,
    index: u16,
    writer: crate::store::ShardWriter,
}

/// Every check of a shard PUT that needs no body: target, deal, signature, authority,
/// declared length. The body is not touched, so a refusal costs no upload.
async fn admit_put(
    state: &Shared,
    blob: &str,
    index: &str,
    query: Result<Query<PutQuery>, axum::extract::rejection::QueryRejection>,
    headers: &HeaderMap,
) -> Result<AdmittedPut, HttpError> {
    let (blob, index) = parse_target(blob, index)?;
    let Query(query) = query.map_err(|e| HttpError::bad("bad_query", e.body_text()))?;
    let deal_text = query
        .deal
        .ok_or_else(|| HttpError::bad("missing_deal", "a shard PUT needs ?deal=<deal id>"))?;
    let deal_id: DealId = deal_text.parse().map_err(|_| {
        HttpError::bad(
            "bad_deal_id",
            format!("deal {deal_text:?} is not a deal id"),
        )
    })?;
    let signer: Address = header_str(headers, SIGNER_HEADER)?
        .parse()
        .map_err(|e| HttpError::bad("bad_signer", format!("{SIGNER_HEADER}: {e}")))?;
    let signature: Signature = header_str(headers, SIGNATURE_HEADER)?
        .parse()
        .map_err(|_| {
            HttpError::bad(
                "bad_signature",
                format!("{SIGNATURE_HEADER} is not a hex signature"),
            )
        })?;
    let node = state.node.clone();
    let deal = blocking(move || {
        chain::deal(&node, deal_id)?.ok_or_else(|| {
            HttpError::new(
                StatusCode::NOT_FOUND,
                "unknown_deal",
                format!("the chain has no deal {deal_id}"),
            )
        })
    })
    .await?;
    if deal.blob.id != blob {
        return Err(HttpError::bad(
            "blob_mismatch",
            format!("deal {deal_id} stores blob {}, not {blob}", deal.blob.id),
        ));
    }
    let Some(root) = deal.blob.shard_roots.0.get(usize::from(index)).copied() else {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            "no_such_shard",
            format!(
                "blob {blob} has {} shards, no shard {index}",
                deal.blob.shard_count()
            ),
        ));
    };
    let me = state.key.address();
    let key = signer
        .public_key()
        .map_err(|e| HttpError::bad("bad_signer", format!("{signer} is not a public key: {e}")))?;
    if !key.verify(
        SHARD_PUT_NAMESPACE,
        &shard_put_message(deal_id, &blob, index, &root),
        &signature,
    ) {
        return Err(HttpError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            format!(
                "the signature is not {signer}'s over deal {deal_id}, blob {blob}, shard {index} and its root"
            ),
        ));
    }
    authorize(&deal, &me, &signer, index)?;
    let info = ShardInfo {
        size_bytes: deal.blob.shard_size_bytes,
        leaf_size_bytes: deal.blob.leaf_size_bytes,
        root,
    };
    if let Some(len) = declared_length(headers)
        && len != info.size_bytes
    {
        let status = if len > info.size_bytes {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        return Err(HttpError::new(
            status,
            "shard_wrong_length",
            format!(
                "the body is {len} bytes, shard {index} of deal {deal_id} is {} bytes",
                info.size_bytes
            ),
        ));
    }
    // A shard already held is received again all the same (a retried upload): its bytes
    // are checked against the root like any upload, so a wrong body is refused even here,
    // and a matching one replaces the copy on disk by rename (healing local rot).
    let writer = state.store.begin(blob, index, info)?;
    Ok(AdmittedPut {
        deal_id,
        blob,
        index,
        writer,
    })
}

/// Streams an admitted PUT's body into its shard writer and signs the receipt.
async fn receive_put(
    state: Shared,
    admitted: AdmittedPut,
    body: Body,
) -> Result<axum::Json<Value>, HttpError> {
    let AdmittedPut {
        deal_id,
        blob,
        index,
        mut writer,
    } = admitted;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUE_CHUNKS);
    let task = tokio::task::spawn_blocking(move || -> Result<ShardInfo, StoreError> {
        while let Some(chunk) = rx.blocking_recv() {
            writer.write(&chunk)?;
        }
        writer.finish()
    });
    let mut stream = body.into_data_stream();
    let mut read_error = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                if tx.send(chunk).await.is_err() {
                    // The writer stopped (too long): its error is the answer.
                    break;
                }
            }
            Err(e) => {
                read_error = Some(e.to_string());
                break;
            }
        }
    }
    if let Some(e) = read_error {
        drop(tx);
        // Dropping the writer without finish removes the partial file.
        task.abort();
        return Err(HttpError::bad(
            "body_error",
            format!("reading the shard body failed: {e}"),
        ));
    }
    drop(tx);
    let stored = task.await.map_err(|e| {
        HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    })??;
    Ok(axum::Json(receipt(&state, deal_id, &blob, index, &stored)))
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` of a `size`-byte shard, as `start..end`.
pub fn parse_range(value: &str, size: u64) -> Result<(u64, u64), HttpError> {
    let unsatisfiable = || {
        HttpError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            format!("range {value:?} is outside the {size} bytes"),
        )
    };
    let spec = value
        .strip_prefix("bytes=")
        .ok_or_else(|| HttpError::bad("bad_range", format!("range {value:?} is not bytes=a-b")))?;
    if spec.contains(',') {
        return Err(HttpError::bad("bad_range", "one range per request"));
    }
    let (a, b) = spec
        .split_once('-')
        .ok_or_else(|| HttpError::bad("bad_range", format!("range {value:?} is not bytes=a-b")))?;
    let num = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| HttpError::bad("bad_range", format!("range {value:?} is not bytes=a-b")))
    };
    let (start, end) = match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, true) => return Err(HttpError::bad("bad_range", "empty range")),
        (true, false) => {
            let n = num(b)?;
            if n == 0 {
                return Err(unsatisfiable());
            }
            (size.saturating_sub(n), size)
        }
        (false, true) => (num(a)?, size),
        (false, false) => {
            let (s, e) = (num(a)?, num(b)?);
            if e < s {
                return Err(HttpError::bad(
                    "bad_range",
                    format!("range {value:?} ends before it starts"),
                ));
            }
            (s, e.saturating_add(1).min(size))
        }
    };
    if start >= size || start >= end {
        return Err(unsatisfiable());
    }
    Ok((start, end))
}

/// A chunk of a shard being sent: the bytes stay in their pooled read buffer until hyper
/// has written them, then the buffer goes back to the pool (no copy, no fresh memory).
struct PooledChunk {
    buf: Option<AlignedBuf>,
    at: std::ops::Range<usize>,
    pool: BufferPool,
}

impl AsRef<[u8]> for PooledChunk {
    fn as_ref(&self) -> &[u8] {
        self.buf
            .as_ref()
            .and_then(|b| b.as_slice().get(self.at.clone()))
            .unwrap_or_default()
    }
}

impl Drop for PooledChunk {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.pool.give(buf);
        }
    }
}

/// Reads `at..next` of a stored shard into a pooled buffer, as a zero-copy chunk.
fn read_chunk(
    store: &ShardStore,
    blob: &Hash,
    index: u16,
    at: u64,
    next: u64,
) -> std::io::Result<Bytes> {
    let pool = store.buffers().clone();
    let mut buf = pool.take();
    let read = store
        .open_shard(blob, index)
        .and_then(|mut shard| shard.read_into(&mut buf, at..next));
    match read {
        Ok(range) => Ok(Bytes::from_owner(PooledChunk {
            buf: Some(buf),
            at: range,
            pool,
        })),
        Err(e) => {
            pool.give(buf);
            Err(std::io::Error::other(e.to_string()))
        }
    }
}

/// Streams `start..end` of a stored shard from disk, [`READS_IN_FLIGHT`] chunk reads at a
/// time (in order): one read at a time leaves a direct-I/O disk idle between requests.
pub fn stream_shard(store: Arc<ShardStore>, blob: Hash, index: u16, start: u64, end: u64) -> Body {
    // One pooled buffer per chunk.
    let chunk = u64::try_from(READ_CHUNK_BYTES).unwrap_or(u64::MAX);
    let chunks = (start..end)
        .step_by(READ_CHUNK_BYTES)
        .map(move |at| (at, at.saturating_add(chunk).min(end)));
    let stream = futures::stream::iter(chunks)
        .map(move |(at, next)| {
            let store = Arc::clone(&store);
            async move {
                tokio::task::spawn_blocking(move || read_chunk(&store, &blob, index, at, next))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?
            }
        })
        .buffered(READS_IN_FLIGHT);
    Body::from_stream(stream)
}

async fn get_shard(
    State(state): State<Shared>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path((blob, index)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let (blob, index) = parse_target(&blob, &index)?;
    let info = state
        .store
        .get(&blob, index)
        .ok_or(StoreError::NotFound { blob, index })?;
    let size = info.size_bytes;
    let range = headers
        .get(header::RANGE)
        .map(|v| {
            v.to_str()
                .map_err(|_| HttpError::bad("bad_range", "range header is not text"))
                .and_then(|v| parse_range(v, size))
        })
        .transpose()?;
    let (status, start, end) = match range {
        Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
        None => (StatusCode::OK, 0, size),
    };
    state.charge_read(&blob, index, from)?;
    let body = stream_shard(Arc::clone(&state.store), blob, index, start, end);
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(end.saturating_sub(start)),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(root) = HeaderValue::from_str(&info.root.to_string()) {
        h.insert("x-cairn-shard-root", root);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) =
            HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end.saturating_sub(1)))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(response)
}

#[derive(Deserialize)]
struct ProofQuery {
    leaves: Option<String>,
}

async fn proof(
    State(state): State<Shared>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path((blob, index)): Path<(String, String)>,
    query: Result<Query<ProofQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Value>, HttpError> {
    let (blob, index) = parse_target(&blob, &index)?;
    let Query(query) = query.map_err(|e| HttpError::bad("bad_query", e.body_text()))?;
    let text = query
        .leaves
        .ok_or_else(|| HttpError::bad("missing_leaves", "?leaves=i,j,... is required"))?;
    let leaves = text
        .split(',')
        .map(|s| {
            s.trim().parse::<u64>().map_err(|_| {
                HttpError::bad(
                    "bad_leaves",
                    format!("leaf {s:?} in {text:?} is not a number"),
                )
            })
        })
        .collect::<Result<Vec<u64>, HttpError>>()?;
    // Checked before it is charged: a bad or oversized leaf list costs no token. One token
    // per request whatever its leaf count: a chained challenge needs each leaf before it
    // knows the next, so batching leaves does not help a regenerator.
    if let Some(info) = state.store.get(&blob, index) {
        if leaves.len() > crate::store::MAX_OPEN_LEAVES {
            return Err(StoreError::TooManyLeaves {
                count: leaves.len(),
                max: crate::store::MAX_OPEN_LEAVES,
            }
            .into());
        }
        if let Some(&leaf) = leaves.iter().find(|&&l| l >= info.leaf_count()) {
            return Err(StoreError::LeafOutside {
                leaf,
                leaf_count: info.leaf_count(),
            }
            .into());
        }
        state.charge_read(&blob, index, from)?;
    }
    let store = Arc::clone(&state.store);
    let picked = leaves.clone();
    let (openings, info) = blocking(move || {
        store
            .open_leaves(&blob, index, &picked)
            .map_err(HttpError::from)
    })
    .await?;
    let items: Vec<Value> = leaves
        .iter()
        .zip(openings)
        .map(|(leaf, opening)| json!({ "leaf": leaf, "opening": opening }))
        .collect();
    Ok(axum::Json(json!({
        "blob": blob,
        "shard_index": index,
        "root": info.root,
        "size_bytes": info.size_bytes,
        "leaf_size_bytes": info.leaf_size_bytes,
        "leaf_count": info.leaf_count(),
        "leaves": items,
    })))
}

#[derive(Deserialize)]
struct ChainQuery {
    deal: Option<String>,
    seed: Option<String>,
    steps: Option<String>,
}

/// The answer to a timed audit (`cairn_proofs::timed`): the first `steps` leaves of the
/// shard's chain under `seed`, read from disk one after the other, as the canonical encoding
/// of [`cairn_types::proof::AuditAnswer`]. The auditor times the exchange; nothing here is
/// recorded, and a seed the auditor chose cannot be precomputed by the provider.
async fn chain(
    State(state): State<Shared>,
    Path((blob, index)): Path<(String, String)>,
    query: Result<Query<ChainQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, HttpError> {
    let (blob, index) = parse_target(&blob, &index)?;
    let Query(query) = query.map_err(|e| HttpError::bad("bad_query", e.body_text()))?;
    let required = |value: Option<String>, name: &'static str| {
        value.ok_or_else(|| {
            HttpError::bad(
                "missing_parameter",
                format!("?{name}= is required (deal, seed and steps)"),
            )
        })
    };
    let deal_text = required(query.deal, "deal")?;
    let deal = deal_text.parse::<u64>().map(DealId).map_err(|_| {
        HttpError::bad(
            "bad_deal",
            format!("deal {deal_text:?} is not a deal number"),
        )
    })?;
    let seed_text = required(query.seed, "seed")?;
    let seed: Hash = seed_text.parse().map_err(|e| {
        HttpError::bad(
            "bad_seed",
            format!("seed {seed_text:?} is not 64 hex digits: {e}"),
        )
    })?;
    let steps_text = required(query.steps, "steps")?;
    let max = cairn_types::proof::MAX_AUDIT_LEAVES;
    let steps = steps_text
        .parse::<usize>()
        .ok()
        .filter(|steps| (1..=max).contains(steps))
        .ok_or_else(|| {
            HttpError::bad(
                "bad_steps",
                format!("steps {steps_text:?} is not a number within 1..={max}"),
            )
        })?;
    let Ok(_permit) = Arc::clone(&state.chain_permits).try_acquire_owned() else {
        return Err(HttpError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "audits_busy",
            format!(
                "{MAX_CONCURRENT_AUDITS} timed audits are being answered; try again when one ends"
            ),
        ));
    };
    if let Some(delay) = state.chain_delay {
        tokio::time::sleep(delay).await;
    }
    let store = Arc::clone(&state.store);
    let leaves = blocking(move || {
        store
            .prove_chain(&blob, index, &seed, deal, steps)
            .map_err(HttpError::from)
    })
    .await?;
    let body = cairn_types::proof::encode_audit_answer(&leaves);
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}

async fn provider_info(State(state): State<Shared>) -> axum::Json<Value> {
    axum::Json(json!({
        "address": state.key.address(),
        "capacity_bytes": state.store.capacity_bytes(),
        "used_bytes": state.store.used_bytes(),
        "shards": state.store.list().len(),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), (0, 10));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), (90, 100));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), (90, 100));
        assert_eq!(parse_range("bytes=-1000", 100).unwrap(), (0, 100));
        assert_eq!(parse_range("bytes=50-1000", 100).unwrap(), (50, 100));
        for bad in ["bytes=100-", "bytes=200-300", "bytes=-0"] {
            assert_eq!(
                parse_range(bad, 100).unwrap_err().status,
                StatusCode::RANGE_NOT_SATISFIABLE,
                "{bad}"
            );
        }
        for bad in [
            "items=0-1",
            "bytes=a-b",
            "bytes=5-1",
            "bytes=0-1,3-4",
            "bytes=-",
        ] {
            assert_eq!(
                parse_range(bad, 100).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
        // An empty shard has no satisfiable range.
        assert!(parse_range("bytes=0-0", 0).is_err());
    }
}
