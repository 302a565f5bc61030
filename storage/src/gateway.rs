//! The gateway (design §6, binding): `GET /v1/blobs/{id}` serves a public blob's plaintext
//! to plain HTTP clients, reconstructed from the fastest k shards like `cairn store get`.
//!
//! - `Range: bytes=a-b` (one range) answers 206 with only the segments that hold the range
//!   fetched and decoded; a range outside the blob answers 416.
//! - `ETag` is the blob id: a blob id is the hash of its content's encoding, so the bytes
//!   behind it never change, and `Cache-Control` says so (`immutable`, a year).
//!   `If-None-Match` with that tag answers 304 without touching a provider.
//! - An encrypted blob answers 403: the gateway holds no data keys.
//!
//! Every refusal is the JSON `{"error": {"code", "message"}}` of the shard API.

use crate::http::{HttpError, parse_range};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use cairn_client::store::{StoreError, blob_deal, read_blob_range, shard_endpoints};
use cairn_client::{NodeClient, ShardClient};
use cairn_coding::{DEFAULT_MAX_PIECE_SIZE_BYTES, Layout, Protection};
use cairn_types::Hash;
use cairn_types::tx::BlobMeta;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Bytes per body chunk handed from the decoder to the socket.
const CHUNK_BYTES: usize = 1 << 20;
/// Chunks queued between the decoder and the socket (bounds memory per request).
const QUEUE_CHUNKS: usize = 8;
/// What the gateway says about caching: the content of a blob id never changes.
const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

struct GatewayState {
    node: NodeClient,
}

type Shared = Arc<GatewayState>;

/// The gateway's router, reading the chain through the node API at `node_url`.
pub fn router(node_url: &str) -> Router {
    let state = Arc::new(GatewayState {
        node: NodeClient::new(node_url),
    });
    Router::new()
        .route("/v1/blobs/{id}", get(blob))
        .fallback(|| async {
            HttpError::new(
                StatusCode::NOT_FOUND,
                "no_route",
                "no such route: the gateway serves GET /v1/blobs/{id}",
            )
        })
        .with_state(state)
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("binding the gateway to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the gateway's runtime: {source}")]
    Runtime {
        #[source]
        source: std::io::Error,
    },
}

/// A running gateway; [`GatewayHandle::stop`] (or drop) stops it.
pub struct GatewayHandle {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GatewayHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn stop(mut self) {
        self.halt();
    }
    fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Serves the gateway on `listen` (port 0 picks one) on a runtime of its own.
pub fn start_gateway(node_url: &str, listen: SocketAddr) -> Result<GatewayHandle, GatewayError> {
    let listener = std::net::TcpListener::bind(listen).map_err(|source| GatewayError::Bind {
        addr: listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| GatewayError::Bind {
        addr: listen,
        source,
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| GatewayError::Bind { addr, source })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cairn-gateway")
        .enable_all()
        .build()
        .map_err(|source| GatewayError::Runtime { source })?;
    let app = router(node_url);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("cairn-gateway".to_string())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                tokio::select! {
                    _ = cairn_http::serve(
                        listener,
                        app,
                        cairn_http::Limits::default(),
                        std::future::pending(),
                    ) => {}
                    _ = rx => {}
                }
            });
            runtime.shutdown_timeout(Duration::from_secs(2));
        })
        .map_err(|source| GatewayError::Runtime { source })?;
    Ok(GatewayHandle {
        addr,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

impl From<StoreError> for HttpError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::UnknownBlob { .. } => {
                HttpError::new(StatusCode::NOT_FOUND, "unknown_blob", e.to_string())
            }
            StoreError::InvalidBlob { .. } => {
                HttpError::new(StatusCode::GONE, "invalid_blob", e.to_string())
            }
            StoreError::Node(_) => {
                HttpError::new(StatusCode::BAD_GATEWAY, "node_unavailable", e.to_string())
            }
            _ => HttpError::new(StatusCode::BAD_GATEWAY, "unreadable", e.to_string()),
        }
    }
}

/// A `Write` that hands chunks to the response body; fails once the client has gone.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = CHUNK_BYTES.saturating_sub(self.buf.len()).max(1);
        let take = room.min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(take)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Whether the blob was stored without encryption. The metadata on chain does not say, but
/// every shard's trailer header does (and its layout must fit the public one at all): the
/// first shard whose header can be read decides; one that reads as neither layout's (rot)
/// is passed over for the next.
fn is_public(node: &NodeClient, meta: &BlobMeta, deal: &Value) -> Result<bool, StoreError> {
    let Ok(public) = Layout::from_meta(meta, DEFAULT_MAX_PIECE_SIZE_BYTES, false) else {
        return Ok(false);
    };
    let encrypted = Layout::from_meta(meta, DEFAULT_MAX_PIECE_SIZE_BYTES, true).ok();
    let start = public.trailer_range().start;
    let mut read_any = false;
    for (i, endpoint) in shard_endpoints(node, deal)?.iter().enumerate() {
        let (Some(endpoint), Ok(index)) = (endpoint, u16::try_from(i)) else {
            continue;
        };
        let mut header = [0u8; 16];
        let read = ShardClient::new(endpoint)
            .get(&meta.id, index, Some((start, start + 16)))
            .is_ok_and(|mut r| r.read_exact(&mut header).is_ok());
        if !read {
            continue;
        }
        read_any = true;
        if header == public.trailer_header() {
            return Ok(true);
        }
        if encrypted
            .as_ref()
            .is_some_and(|l| l.trailer_range().start == start && header == l.trailer_header())
        {
            return Ok(false);
        }
    }
    if read_any {
        return Ok(false);
    }
    Err(StoreError::Unreadable {
        blob: meta.id,
        detail: "no shard holder answered".to_string(),
    })
}

fn etag(blob: &Hash) -> String {
    format!("\"{blob}\"")
}

/// Whether `If-None-Match` names this tag (or `*`).
fn not_modified(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t.trim_start_matches("W/") == tag
            })
        })
}

fn cache_headers(h: &mut HeaderMap, tag: &str) {
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
}

async fn blob(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let blob: Hash = id.parse().map_err(|e| {
        HttpError::bad(
            "bad_blob_id",
            format!("blob id {id:?} is not 64 hex digits: {e}"),
        )
    })?;
    let tag = etag(&blob);
    if not_modified(&headers, &tag) {
        // The id fixes the content: no need to look anything up.
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        cache_headers(response.headers_mut(), &tag);
        return Ok(response);
    }
    let node = state.node.clone();
    let (meta, public) = tokio::task::spawn_blocking(move || {
        let (meta, deal) = blob_deal(&node, &blob)?;
        let public = is_public(&node, &meta, &deal)?;
        Ok::<_, StoreError>((meta, public))
    })
    .await
    .map_err(|e| {
        HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("worker failed: {e}"),
        )
    })??;
    if !public {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "not_public",
            format!("blob {blob} is encrypted: only its owner can read it (cairn store get)"),
        ));
    }
    let size = meta.size_bytes;
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
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUE_CHUNKS);
    let node = state.node.clone();
    let errors = tx.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK_BYTES),
        };
        if let Err(e) = read_blob_range(&node, &blob, &Protection::Public, start..end, &mut out) {
            // After the first byte the status is sent: the client sees a cut-short body.
            let _ = errors.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    // Wait for the first chunk: a blob whose shards cannot be read gets a status, not a
    // truncated 200.
    let first = rx.recv().await;
    let first = match first {
        Some(Err(e)) => {
            return Err(HttpError::new(
                StatusCode::BAD_GATEWAY,
                "unreadable",
                e.to_string(),
            ));
        }
        Some(Ok(chunk)) => Some(chunk),
        None => None,
    };
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let body = match first {
        Some(chunk) => Body::from_stream(futures::StreamExt::chain(
            futures::stream::once(async move { Ok::<Bytes, std::io::Error>(chunk) }),
            rest,
        )),
        None => Body::empty(),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(end.saturating_sub(start)),
    );
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    cache_headers(h, &tag);
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) =
            HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end.saturating_sub(1)))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(response)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_names_the_tag() {
        let blob = Hash::domain("gateway-test", &[b"x"]);
        let tag = etag(&blob);
        let mut h = HeaderMap::new();
        assert!(!not_modified(&h, &tag));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&tag).unwrap());
        assert!(not_modified(&h, &tag));
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"other\", W/{tag}")).unwrap(),
        );
        assert!(not_modified(&h, &tag));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!not_modified(&h, &tag));
    }
}
