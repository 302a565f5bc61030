//! Prometheus text format (version 0.0.4) without a metrics framework: a small writer, the
//! node's `/metrics` (height, finality latency, mempool size), and [`ProviderMetrics`], a
//! registry that the storage and compute provider processes mount on their own servers.
//!
//! Why no `prometheus` crate: a handful of gauges and counters do not need a global registry,
//! and the text format is four lines per metric.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use cairn_chain::NodeHandle;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Builds a Prometheus text document.
#[derive(Debug, Default)]
pub struct MetricsText {
    out: String,
}

/// Escapes a label value: backslash, quote and newline (the format's only escapes).
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl MetricsText {
    pub fn new() -> Self {
        Self::default()
    }

    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// A gauge with one value.
    pub fn gauge(&mut self, name: &str, help: &str, value: impl std::fmt::Display) -> &mut Self {
        self.header(name, help, "gauge");
        let _ = writeln!(self.out, "{name} {value}");
        self
    }

    /// A counter with one value (monotonic since the process started).
    pub fn counter(&mut self, name: &str, help: &str, value: impl std::fmt::Display) -> &mut Self {
        self.header(name, help, "counter");
        let _ = writeln!(self.out, "{name} {value}");
        self
    }

    /// A metric with one label and a value per label value.
    pub fn labeled(
        &mut self,
        name: &str,
        help: &str,
        kind: &str,
        label: &str,
        values: &[(String, u64)],
    ) -> &mut Self {
        self.header(name, help, kind);
        for (value_label, value) in values {
            let _ = writeln!(
                self.out,
                "{name}{{{label}=\"{}\"}} {value}",
                escape_label(value_label)
            );
        }
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Serves `text` as a Prometheus scrape answer.
pub fn response(text: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Finality latency: wall time when this node applied a finalized block minus the block's
/// timestamp (the proposer's clock), so it includes proposal, notarization and finalization.
#[derive(Debug, Default)]
pub struct FinalityTracker {
    last_ms: AtomicU64,
    sum_ms: AtomicU64,
    count: AtomicU64,
}

impl FinalityTracker {
    fn observe(&self, block_timestamp_ms: u64) {
        let latency = now_ms().saturating_sub(block_timestamp_ms);
        self.last_ms.store(latency, Ordering::Relaxed);
        self.sum_ms.fetch_add(latency, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Follows the node's finalized blocks on the current tokio runtime, resubscribing when a
    /// slow subscription is dropped. Does nothing outside a runtime.
    pub fn spawn(node: &NodeHandle) -> Arc<Self> {
        let tracker = Arc::new(Self::default());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (node, tracker) = (node.clone(), Arc::clone(&tracker));
            runtime.spawn(async move {
                use futures::StreamExt;
                loop {
                    let mut events = node.subscribe();
                    while let Some(event) = events.next().await {
                        tracker.observe(event.timestamp_ms);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            });
        }
        tracker
    }
}

#[derive(Clone)]
struct NodeMetricsState {
    node: NodeHandle,
    finality: Arc<FinalityTracker>,
}

/// The node's metrics as Prometheus text.
pub fn node_metrics(node: &NodeHandle, finality: &FinalityTracker) -> String {
    let status = node.status();
    let mut m = MetricsText::new();
    m.gauge(
        "cairn_node_height",
        "Height of the finalized ledger this node has applied.",
        status.height,
    )
    .gauge(
        "cairn_node_finalized_tip",
        "Highest finalized height this node has heard of.",
        status.finalized_tip,
    )
    .gauge(
        "cairn_node_mempool_size",
        "Transactions waiting in the mempool.",
        status.mempool_size,
    )
    .gauge(
        "cairn_node_finality_latency_ms",
        "Wall time at application minus block timestamp, for the last finalized block.",
        finality.last_ms.load(Ordering::Relaxed),
    )
    .counter(
        "cairn_node_finality_latency_ms_sum",
        "Sum of finality latencies observed since this process started.",
        finality.sum_ms.load(Ordering::Relaxed),
    )
    .counter(
        "cairn_node_finality_latency_ms_count",
        "Finalized blocks observed since this process started.",
        finality.count.load(Ordering::Relaxed),
    )
    .gauge(
        "cairn_node_halted",
        "1 when the node stopped following the chain.",
        u8::from(status.halted.is_some()),
    );
    m.finish()
}

async fn node_metrics_route(State(state): State<NodeMetricsState>) -> impl IntoResponse {
    response(node_metrics(&state.node, &state.finality))
}

/// `GET /metrics` for a node, merged into the node API's router.
pub fn node_router(node: NodeHandle) -> Router {
    let finality = FinalityTracker::spawn(&node);
    Router::new()
        .route("/metrics", get(node_metrics_route))
        .with_state(NodeMetricsState { node, finality })
}

/// What a storage or compute provider process exposes: stored shard bytes, proofs passed and
/// failed, and its leases by state. Cheap to update from any thread.
#[derive(Debug, Default)]
pub struct ProviderMetrics {
    stored_shard_bytes: AtomicU64,
    proofs_passed: AtomicU64,
    proofs_failed: AtomicU64,
    leases: Mutex<BTreeMap<String, u64>>,
}

impl ProviderMetrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    pub fn set_stored_shard_bytes(&self, bytes: u64) {
        self.stored_shard_bytes.store(bytes, Ordering::Relaxed);
    }
    pub fn proof_passed(&self) {
        self.proofs_passed.fetch_add(1, Ordering::Relaxed);
    }
    pub fn proof_failed(&self) {
        self.proofs_failed.fetch_add(1, Ordering::Relaxed);
    }
    /// Replaces the lease counts (state name → number of leases).
    pub fn set_leases(&self, by_state: BTreeMap<String, u64>) {
        if let Ok(mut leases) = self.leases.lock() {
            *leases = by_state;
        }
    }

    pub fn render(&self) -> String {
        let leases: Vec<(String, u64)> = self
            .leases
            .lock()
            .map(|l| l.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        let mut m = MetricsText::new();
        m.gauge(
            "cairn_provider_stored_shard_bytes",
            "Bytes of shards this provider stores.",
            self.stored_shard_bytes.load(Ordering::Relaxed),
        )
        .counter(
            "cairn_provider_proofs_passed_total",
            "Proofs this provider answered that passed.",
            self.proofs_passed.load(Ordering::Relaxed),
        )
        .counter(
            "cairn_provider_proofs_failed_total",
            "Proofs this provider answered that failed or were missed.",
            self.proofs_failed.load(Ordering::Relaxed),
        )
        .labeled(
            "cairn_provider_leases",
            "This provider's leases by state.",
            "gauge",
            "state",
            &leases,
        );
        m.finish()
    }
}

async fn provider_metrics_route(State(metrics): State<Arc<ProviderMetrics>>) -> impl IntoResponse {
    response(metrics.render())
}

/// `GET /metrics` for a provider process: merge it into the provider's own router.
pub fn provider_router(metrics: Arc<ProviderMetrics>) -> Router {
    Router::new()
        .route("/metrics", get(provider_metrics_route))
        .with_state(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_metrics_render_counts_and_escapes_labels() {
        let m = ProviderMetrics::new();
        m.set_stored_shard_bytes(4096);
        m.proof_passed();
        m.proof_passed();
        m.proof_failed();
        m.set_leases(BTreeMap::from([
            ("active".to_string(), 3),
            ("odd\"name".to_string(), 1),
        ]));
        let text = m.render();
        assert!(
            text.contains("cairn_provider_stored_shard_bytes 4096\n"),
            "{text}"
        );
        assert!(
            text.contains("cairn_provider_proofs_passed_total 2\n"),
            "{text}"
        );
        assert!(
            text.contains("cairn_provider_proofs_failed_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("cairn_provider_leases{state=\"active\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("cairn_provider_leases{state=\"odd\\\"name\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE cairn_provider_leases gauge\n"),
            "{text}"
        );
    }
}
