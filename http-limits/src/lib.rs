//! Serve an axum router so that it cannot be exhausted from outside.
//!
//! `axum::serve` holds every connection it accepts for as long as the peer likes: ten thousand
//! sockets that never send a byte, or send half a header, stay open and cost memory in the
//! process that also runs consensus. [`serve`] is the one way every Cairn HTTP server (node
//! API, shard API, gateway, lease API and ingress, explorer) accepts connections instead:
//!
//! - a cap on open connections in all, and per client network (an IPv4 address, an IPv6 /64),
//!   so that one client cannot take every slot; a connection over a cap is closed at once;
//! - a header-read timeout that starts whenever the connection waits for a request, new or
//!   kept alive, so idle and half-header connections are closed after it;
//! - an idle timeout for a connection on which no byte moves either way while a request is in
//!   flight (minutes: a large shard upload under load is slow, and a streaming response such as
//!   server-sent events keeps moving bytes, so neither is cut);
//! - graceful shutdown bounded by a drain timeout.
//!
//! Two layers bound what a request may cost once admitted: [`concurrency_limit`] refuses a
//! route's requests beyond a number in flight (a batch body may be 16 MiB; without a bound the
//! number buffered at once had none), and [`json_errors`], which [`serve`] applies to every
//! router, answers axum's plain-text refusals (413 body too large) in the servers' shared JSON
//! error shape `{"error": {"code", "message"}}`.

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// The bounds [`serve`] holds a server to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open connections in all; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Open connections from one client network (an IPv4 address or an IPv6 /64).
    pub max_connections_per_ip: usize,
    /// From the moment a connection waits for a request (just accepted, or kept alive after a
    /// response) until that request's head is complete. Bounds idle keep-alive connections and
    /// slowloris alike; it never runs while a response is being written.
    pub header_read_timeout_ms: u64,
    /// No byte read or written for this long, request in flight or not: the connection is
    /// closed. Minutes, so that a slow upload or a quiet stream is not cut.
    pub idle_timeout_ms: u64,
    /// After shutdown, how long open connections get to finish before they are dropped.
    pub drain_timeout_ms: u64,
}

impl Default for Limits {
    /// About 30 KiB per open connection: 2 048 of them cost some 60 MiB at most, and the
    /// per-network cap leaves most of them to other clients. The header timeout is longer
    /// than ureq's 15 s pool age, so that a client never reuses a connection the server is
    /// closing as idle.
    fn default() -> Self {
        Self {
            max_connections: 2048,
            max_connections_per_ip: 256,
            header_read_timeout_ms: 20_000,
            idle_timeout_ms: 300_000,
            drain_timeout_ms: 5_000,
        }
    }
}

/// The client network a connection counts against: IPv6 clients get a /64 each, as one host
/// usually holds a whole /64.
fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// Open connections, in all and per client network. The map holds only networks with a
/// connection open, so it is bounded by `max_connections`.
struct Tracker {
    limits: Limits,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

impl Tracker {
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let network = client_network(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_network) = &mut *open;
        let from_network = per_network.get(&network).copied().unwrap_or(0);
        if *total >= self.limits.max_connections
            || from_network >= self.limits.max_connections_per_ip
        {
            return None;
        }
        *total += 1;
        per_network.insert(network, from_network + 1);
        Some(Slot {
            tracker: Arc::clone(self),
            network,
        })
    }
}

/// One admitted connection; its slot is given back when the connection's task ends.
struct Slot {
    tracker: Arc<Tracker>,
    network: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.tracker.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_network) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = per_network.get_mut(&self.network) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_network.remove(&self.network);
            }
        }
    }
}

/// A socket that notes when a byte last moved, for the idle timeout.
struct Tracked {
    inner: TcpStream,
    epoch: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Tracked {
    fn touch(&self) {
        let now_ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now_ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        poll
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then lets open
/// connections finish for at most `limits.drain_timeout_ms`.
///
/// Handlers may extract `ConnectInfo<SocketAddr>` as under
/// `into_make_service_with_connect_info::<SocketAddr>()`. Every server's errors share one
/// JSON shape, so [`json_errors`] is applied here once rather than by each router.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router.layer(axum::middleware::from_fn(json_errors));
    let tracker = Arc::new(Tracker {
        limits,
        open: Mutex::new((0, HashMap::new())),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Reap finished connections so the set holds only open ones (at most max_connections).
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors (or similar): wait rather than spin on accept.
                tracing::debug!("accept: {e}");
                if !is_connection_error(&e) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
        };
        let Some(slot) = tracker.admit(remote.ip()) else {
            // Over a cap: dropping the stream closes it at once, costing nothing further.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(serve_connection(
            stream,
            remote,
            router.clone(),
            limits,
            stop_rx.clone(),
            slot,
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_millis(limits.drain_timeout_ms), drain)
        .await
        .is_err()
    {
        tracing::debug!(
            "{} connections still open after the drain timeout: dropped",
            connections.len()
        );
        connections.abort_all();
    }
    Ok(())
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    _slot: Slot,
) {
    let epoch = Instant::now();
    let last_ms = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Tracked {
        inner: stream,
        epoch,
        last_ms: Arc::clone(&last_ms),
    });
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        let mut router = router.clone();
        // A Router is always ready: poll_ready need not be awaited before call.
        async move { tower_service::Service::call(&mut router, request).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
        .keep_alive(true);
    let connection = builder.serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let idle = Duration::from_millis(limits.idle_timeout_ms);
    let mut stopping = *stop.borrow();
    if stopping {
        connection.as_mut().graceful_shutdown();
    }
    // Each turn ends the connection, starts its shutdown once, or finds it idle-checked with a
    // later deadline: it ends when the connection does.
    loop {
        let last = Duration::from_millis(last_ms.load(Ordering::Relaxed));
        let deadline = tokio::time::Instant::from_std(epoch + last + idle);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("connection from {remote}: {e}");
                }
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                let moved = Duration::from_millis(last_ms.load(Ordering::Relaxed));
                if epoch.elapsed().saturating_sub(moved) >= idle {
                    tracing::debug!("connection from {remote}: idle for {idle:?}, closed");
                    return;
                }
            }
        }
    }
}

/// A JSON error in the API's shape: `{"error": {"code": "...", "message": "..."}}`.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    (status, axum::Json(body)).into_response()
}

/// Largest plain-text refusal [`json_errors`] reads back to rewrite: axum's are a line.
const MAX_REWRITTEN_BYTES: usize = 4096;

/// Middleware (for `axum::middleware::from_fn`): a plain-text 413 from axum's body limit
/// becomes the JSON error `too_large`, with the same message.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE || !plain {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), MAX_REWRITTEN_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|_| "request body too large".to_string());
    json_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &text)
}

/// A layer's worth of state for [`concurrency_limit`]: at most `max` requests in flight.
#[derive(Clone, Debug)]
pub struct InFlight {
    permits: Arc<Semaphore>,
    max: usize,
}

impl InFlight {
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
        }
    }
}

/// Middleware (for `axum::middleware::from_fn_with_state`): beyond `InFlight::max` requests in
/// flight on the route, answers 503 `busy` at once rather than queueing, so the route's large
/// bodies are never buffered more than `max` at a time. The permit is held until the response
/// is produced, body read included.
pub async fn concurrency_limit(
    axum::extract::State(in_flight): axum::extract::State<InFlight>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_permit) = in_flight.permits.try_acquire() else {
        let mut response = json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            &format!(
                "{} requests of this kind are in flight, the most at once: retry shortly",
                in_flight.max
            ),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return response;
    };
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_by_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(client_network(a), client_network(b));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_network(mapped), IpAddr::V4([10, 0, 0, 1].into()));
    }

    #[test]
    fn caps_refuse_and_free_slots() {
        let tracker = Arc::new(Tracker {
            limits: Limits {
                max_connections: 3,
                max_connections_per_ip: 2,
                ..Limits::default()
            },
            open: Mutex::new((0, HashMap::new())),
        });
        let a = IpAddr::V4([127, 0, 0, 1].into());
        let b = IpAddr::V4([127, 0, 0, 2].into());
        let first = tracker.admit(a);
        let second = tracker.admit(a);
        assert!(first.is_some() && second.is_some());
        assert!(tracker.admit(a).is_none(), "per-network cap");
        let third = tracker.admit(b);
        assert!(third.is_some());
        assert!(tracker.admit(b).is_none(), "total cap");
        drop(first);
        assert!(tracker.admit(a).is_some(), "a slot given back is reusable");
    }
}
