//! Index finalized blocks into an embedded log and serve network figures: JSON API, SVG dashboard, Prometheus metrics.
//!
//! The explorer role of design §8. It is a client of the node API only (never of the chain's
//! internals): [`follow::Indexer`] follows finalized blocks (`/v1/events` wakes it, blocks and
//! epoch reports are read by height) into [`store::Log`], an append-only file of checksummed
//! batches that carry their own heights, so the index resumes after a restart and never counts
//! a block twice. [`figures`] turns the index into the binding figures (revenue by period and
//! source, TVL, active/proven providers, growth, revenue/emission), [`server`] serves them as
//! JSON and as server-rendered pages with SVG charts ([`html`], [`svg`]).
//!
//! Flows (revenue, emission, rewards, proofs) come from the log; state figures (TVL, supply,
//! capacity, prices) are the node's `/v1/network` view, exact at the height it names. The
//! deal and lease pages (the lists and each one) and the provider pages read the node's
//! current records at request time. Every figure on a page reads with its unit and
//! separators ([`units`]); flows of very different sizes get panels of their own ([`svg`]).

pub mod demo;
pub mod figures;
pub mod follow;
pub mod html;
pub mod index;
pub mod model;
pub mod openapi;
pub mod prices;
pub mod server;
pub mod store;
pub mod svg;
pub mod units;

use follow::{FollowError, Indexer};
use prices::{PriceTable, PriceTableError};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum ExplorerError {
    #[error(transparent)]
    Follow(#[from] FollowError),
    #[error(transparent)]
    Prices(#[from] PriceTableError),
    #[error("explorer: binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("explorer: {what}: {source}")]
    Runtime {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("reference price {crn_usd} USD/CRN: must be a positive finite number")]
    BadPrice { crn_usd: f64 },
}

/// How to run an explorer.
#[derive(Clone, Debug)]
pub struct Config {
    /// The node API it follows.
    pub node_url: String,
    /// Where the index log lives.
    pub data_dir: PathBuf,
    /// Where the dashboard and API listen (port 0: any free port).
    pub listen: SocketAddr,
    /// Reference price for USD figures; the price table's when `None`.
    pub crn_usd: Option<f64>,
}

/// A running explorer: the indexer thread and the HTTP server. Stops on [`Explorer::stop`]
/// or when dropped.
pub struct Explorer {
    url: String,
    stop: Arc<AtomicBool>,
    index: Arc<RwLock<index::Index>>,
    threads: Vec<JoinHandle<()>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Explorer {
    /// Replays the log, binds the listener, then starts following and serving.
    pub fn start(config: Config) -> Result<Self, ExplorerError> {
        let table = PriceTable::builtin()?;
        let crn_usd = config.crn_usd.unwrap_or(table.crn_usd);
        if !(crn_usd.is_finite() && crn_usd > 0.0) {
            return Err(ExplorerError::BadPrice { crn_usd });
        }
        let mut indexer = Indexer::open(&config.node_url, &config.data_dir)?;
        let listener =
            std::net::TcpListener::bind(config.listen).map_err(|source| ExplorerError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ExplorerError::Bind {
                addr: config.listen,
                source,
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| ExplorerError::Runtime {
                what: "listener",
                source,
            })?;
        let state = server::AppState {
            index: indexer.index(),
            status: indexer.status(),
            node: cairn_client::NodeClient::new(&config.node_url),
            prices: Arc::new(table),
            crn_usd,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|source| ExplorerError::Runtime {
                what: "starting the runtime",
                source,
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let index = indexer.index();
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let server = std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let _ = cairn_http::serve(
                    listener,
                    server::router(state),
                    cairn_http::Limits::default(),
                    async {
                        let _ = shutdown_rx.await;
                    },
                )
                .await;
            });
        });
        let indexer_stop = Arc::clone(&stop);
        let follower = std::thread::spawn(move || indexer.run(&indexer_stop));
        Ok(Self {
            url: format!("http://{addr}"),
            stop,
            index,
            threads: vec![server, follower],
            shutdown: Some(shutdown),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Last indexed height.
    pub fn height(&self) -> u64 {
        self.index.read().map_or(0, |i| i.height)
    }

    /// Stops the indexer and the server and waits for both.
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

impl Drop for Explorer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The summary computed straight from the node (no explorer running): the same figures, from
/// the last two finished epochs and the node's network view.
pub fn summary_from_node(
    node_url: &str,
    crn_usd: Option<f64>,
) -> Result<serde_json::Value, FollowError> {
    let client = cairn_client::NodeClient::new(node_url);
    let network: model::NetworkView =
        serde_json::from_value(client.get("/v1/network")?).map_err(|e| FollowError::BadAnswer {
            what: "network view".into(),
            reason: e.to_string(),
        })?;
    let mut index = index::Index {
        height: network.height,
        last_timestamp_ms: network.last_timestamp_ms,
        ..index::Index::default()
    };
    let last_finished = (network.height / network.epoch_length_blocks.max(1)).checked_sub(1);
    for n in last_finished
        .into_iter()
        .flat_map(|n| [n.checked_sub(1), Some(n)])
        .flatten()
    {
        let mut doc = client.get(&format!("/v1/epochs/{n}"))?;
        let report: cairn_ledger::state::EpochReport = serde_json::from_value(doc["report"].take())
            .map_err(|e| FollowError::BadAnswer {
                what: format!("epoch {n}"),
                reason: e.to_string(),
            })?;
        // The statements split the epoch's provider counts (`figures::provider_standing`).
        let statements: Vec<cairn_ledger::state::RewardStatement> =
            serde_json::from_value(doc["reward_statements"].take()).unwrap_or_default();
        for s in statements {
            index.statements.entry(s.provider).or_default().insert(n, s);
        }
        let end = client
            .get(&format!("/v1/blocks/{}", report.end_height))
            .ok();
        let end_timestamp_ms = end
            .and_then(|b| b["header"]["timestamp_ms"].as_u64())
            .unwrap_or(0);
        index.epochs.insert(
            n,
            index::EpochEntry {
                report,
                end_timestamp_ms,
            },
        );
    }
    index.network = Some(network);
    let table = PriceTable::builtin().map_err(|e| FollowError::BadAnswer {
        what: "price table".into(),
        reason: e.reason,
    })?;
    Ok(figures::summary(&index, crn_usd.unwrap_or(table.crn_usd)))
}
