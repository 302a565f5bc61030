//! Exhaustion from outside: idle and half-header floods, caps, timeouts, bounded bodies.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use cairn_http::{InFlight, Limits, concurrency_limit};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

const HONEST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const FLOOD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const SLOWLORIS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

fn app() -> Router {
    Router::new()
        .route("/ping", get(|| async { "pong" }))
        .route(
            "/big",
            post(|body: Bytes| async move { body.len().to_string() })
                .layer(DefaultBodyLimit::max(1024)),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                "done"
            })
            .layer(axum::middleware::from_fn_with_state(
                InFlight::new(2),
                concurrency_limit,
            )),
        )
        .route(
            "/stream",
            get(|| async {
                let chunks = futures::stream::unfold(0u32, |i| async move {
                    if i == 6 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Some((
                        Ok::<_, std::io::Error>(Bytes::from(format!("chunk{i};"))),
                        i + 1,
                    ))
                });
                Body::from_stream(chunks)
            }),
        )
}

/// Serves `app()` on 127.0.0.1 within `limits`; dropping the sender shuts it down.
async fn start(
    limits: Limits,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind((FLOOD, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        cairn_http::serve(listener, app(), limits, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (addr, tx, server)
}

async fn connect_from(ip: Ipv4Addr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(ip), 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

/// One request on a fresh connection from `ip`: the status and the body.
async fn request(ip: Ipv4Addr, addr: SocketAddr, head_and_body: &[u8]) -> (u16, String) {
    let mut stream = connect_from(ip, addr).await;
    stream.write_all(head_and_body).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

const PING: &[u8] = b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

/// Whether the server has closed `stream` within `wait` (EOF or reset).
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut byte = [0u8; 64];
    loop {
        match tokio::time::timeout(wait, stream.read(&mut byte)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // The server's 408 for a timed-out head, if it sends one: keep reading to EOF.
            Ok(Ok(_)) => {}
        }
    }
}

/// For each stream, when (since `start`) it was seen closed, or None if open after `wait`.
async fn when_closed(
    streams: Vec<TcpStream>,
    start: Instant,
    wait: Duration,
) -> Vec<Option<Duration>> {
    let mut tasks = JoinSet::new();
    for mut s in streams {
        tasks.spawn(async move { closed_within(&mut s, wait).await.then(|| start.elapsed()) });
    }
    tasks.join_all().await
}

/// The soft limit on open files (Linux), to size the flood below it.
fn open_files_soft_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(1024)
}

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_idle_and_half_header_floods_leave_an_honest_client_answered() {
    // Client and server ends of each admitted connection are both in this process.
    let flood = 2000.min(open_files_soft_limit().saturating_sub(300) / 2);
    let per_ip = flood / 2;
    let half_headers = 100;
    let header_timeout = Duration::from_millis(2000);
    let (addr, _stop, _server) = start(Limits {
        max_connections: flood + half_headers + 16,
        max_connections_per_ip: per_ip,
        header_read_timeout_ms: 2000,
        ..Limits::default()
    })
    .await;
    let (status, _) = request(HONEST, addr, PING).await;
    assert_eq!(status, 200);

    let rss_before_kib = resident_kib();
    let start_time = Instant::now();
    let mut idle = Vec::with_capacity(flood);
    for _ in 0..flood {
        idle.push(connect_from(FLOOD, addr).await);
    }
    let mut lorises = Vec::with_capacity(half_headers);
    for _ in 0..half_headers {
        let mut s = connect_from(SLOWLORIS, addr).await;
        s.write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            .await
            .unwrap();
        lorises.push(s);
    }
    let opened = start_time.elapsed();

    let honest_start = Instant::now();
    let (status, body) = request(HONEST, addr, PING).await;
    let honest = honest_start.elapsed();
    assert_eq!((status, body.as_str()), (200, "pong"));
    println!(
        "{flood} idle + {half_headers} half-header connections opened in {opened:?}; \
         honest request answered in {honest:?}; process RSS {rss_before_kib} -> {} KiB",
        resident_kib()
    );
    assert!(
        honest < Duration::from_secs(1),
        "honest request took {honest:?}"
    );

    // Over the per-network cap, connections were closed at once; the rest are still open,
    // for less than the header timeout has run.
    let seen = when_closed(idle, start_time, header_timeout * 4).await;
    let early = seen
        .iter()
        .filter(|t| t.is_some_and(|t| t < header_timeout / 2))
        .count();
    assert!(
        early >= flood - per_ip,
        "{early} of {flood} closed at once, cap {per_ip}"
    );
    // And every connection is closed once the header timeout has run.
    assert!(
        seen.iter().all(Option::is_some),
        "an idle connection outlived the timeout"
    );
    let late = seen
        .iter()
        .flatten()
        .filter(|t| **t >= header_timeout - Duration::from_millis(200))
        .count();
    assert!(
        late > 0 && late <= per_ip,
        "{late} held to the timeout, cap {per_ip}"
    );

    let lorises = when_closed(lorises, start_time, header_timeout * 3).await;
    assert!(
        lorises.iter().all(Option::is_some),
        "a half-header connection outlived the header timeout"
    );
    let last = lorises.iter().flatten().max().copied().unwrap_or_default();
    println!(
        "the last of {per_ip} held idle and {half_headers} half-header connections closed {last:?} after the flood began"
    );

    let (status, _) = request(HONEST, addr, PING).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_total_cap_are_closed_at_once() {
    let (addr, _stop, _server) = start(Limits {
        max_connections: 20,
        max_connections_per_ip: 1000,
        ..Limits::default()
    })
    .await;
    let mut streams = Vec::new();
    for _ in 0..30 {
        streams.push(connect_from(FLOOD, addr).await);
    }
    let seen = when_closed(streams, Instant::now(), Duration::from_millis(500)).await;
    assert_eq!(seen.iter().filter(|t| t.is_some()).count(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_gets_the_json_413() {
    let (addr, _stop, _server) = start(Limits::default()).await;
    let mut raw =
        b"POST /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 4096\r\n\r\n"
            .to_vec();
    raw.extend(std::iter::repeat_n(b'x', 4096));
    let (status, body) = request(HONEST, addr, &raw).await;
    assert_eq!(status, 413, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["error"]["code"], "too_large", "{doc}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );

    // A body under the limit still goes through.
    let mut raw =
        b"POST /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 10\r\n\r\n"
            .to_vec();
    raw.extend(b"0123456789");
    assert_eq!(request(HONEST, addr, &raw).await, (200, "10".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_in_flight_bound_are_refused_busy() {
    let (addr, _stop, _server) = start(Limits::default()).await;
    const SLOW: &[u8] =
        b"POST /slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    let mut tasks = JoinSet::new();
    for _ in 0..2 {
        tasks.spawn(async move { request(HONEST, addr, SLOW).await });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = request(HONEST, addr, SLOW).await;
    assert_eq!(status, 503, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["error"]["code"], "busy");
    for (status, body) in tasks.join_all().await {
        assert_eq!((status, body.as_str()), (200, "done"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_response_outlives_the_header_timeout() {
    // 1.8 s of response against a 500 ms header timeout and a 1 s idle timeout.
    let (addr, _stop, _server) = start(Limits {
        header_read_timeout_ms: 500,
        idle_timeout_ms: 1000,
        ..Limits::default()
    })
    .await;
    let (status, body) = request(
        HONEST,
        addr,
        b"GET /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    for i in 0..6 {
        assert!(body.contains(&format!("chunk{i};")), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_closed_after_the_idle_timeout() {
    let (addr, _stop, _server) = start(Limits {
        idle_timeout_ms: 800,
        ..Limits::default()
    })
    .await;
    let mut s = connect_from(HONEST, addr).await;
    s.write_all(b"POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let start = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_connections_and_returns() {
    let (addr, stop, server) = start(Limits::default()).await;
    let mut kept_alive = connect_from(HONEST, addr).await;
    kept_alive
        .write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 256];
    let n = kept_alive.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    let start = Instant::now();
    drop(stop);
    tokio::time::timeout(Duration::from_secs(3), server)
        .await
        .expect("serve returns after shutdown")
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(closed_within(&mut kept_alive, Duration::from_secs(1)).await);
}
