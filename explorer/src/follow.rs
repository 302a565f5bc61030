//! The indexer: follows the node's finalized blocks and appends what it learns to the log.
//!
//! Server-sent events (`/v1/events`) wake it up; the blocks themselves are read by height
//! (`/v1/blocks/{h}`, `/v1/epochs/{n}`), so a missed event, a reconnect or a restart only
//! delays indexing and never skips or repeats a height. Each batch is appended to the log
//! (and synced) before the in-memory index counts it.

use crate::index::{Index, IndexError};
use crate::model::{Batch, BlockRecord, EpochRecord, NetworkView};
use crate::store::{Log, StoreError};
use cairn_client::{NodeClient, NodeError};
use cairn_ledger::state::{EpochReport, RewardStatement};
use cairn_types::Height;
use serde_json::Value;
use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Blocks per log frame while catching up.
pub const BATCH_BLOCKS: u64 = 128;
/// How long one events connection waits for a block before the indexer polls anyway.
const EVENT_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("the node's {what} is not what the explorer expects: {reason}")]
    BadAnswer { what: String, reason: String },
    #[error("epoch {epoch} ended at height {height} but the node does not report it finished")]
    EpochNotFinished { epoch: u64, height: Height },
}

fn field<T: serde::de::DeserializeOwned>(what: &str, value: Value) -> Result<T, FollowError> {
    serde_json::from_value(value).map_err(|e| FollowError::BadAnswer {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// Where the indexer stands, for `/metrics` and the dashboard.
#[derive(Debug, Default, Clone)]
pub struct FollowStatus {
    pub node_height: Height,
    pub log_bytes: u64,
    pub truncated_bytes: u64,
    pub batches_replayed: u64,
    pub last_error: Option<String>,
}

pub struct Indexer {
    client: NodeClient,
    log: Log,
    index: Arc<RwLock<Index>>,
    status: Arc<RwLock<FollowStatus>>,
}

impl Indexer {
    /// Opens the log under `data_dir` and rebuilds the index from it.
    pub fn open(node_url: &str, data_dir: &Path) -> Result<Self, FollowError> {
        let (log, batches) = Log::open(&data_dir.join("index.log"))?;
        let mut index = Index::default();
        for batch in &batches {
            index.apply(batch)?;
        }
        let status = FollowStatus {
            log_bytes: log.len_bytes(),
            truncated_bytes: log.truncated_bytes,
            batches_replayed: u64::try_from(batches.len()).unwrap_or(u64::MAX),
            ..FollowStatus::default()
        };
        Ok(Self {
            client: NodeClient::new(node_url),
            log,
            index: Arc::new(RwLock::new(index)),
            status: Arc::new(RwLock::new(status)),
        })
    }

    pub fn index(&self) -> Arc<RwLock<Index>> {
        Arc::clone(&self.index)
    }

    pub fn status(&self) -> Arc<RwLock<FollowStatus>> {
        Arc::clone(&self.status)
    }

    pub fn height(&self) -> Height {
        self.index.read().map_or(0, |i| i.height)
    }

    fn record(&self, height: Height, tip: &NetworkView) -> Result<BlockRecord, FollowError> {
        let block = self.client.get(&format!("/v1/blocks/{height}"))?;
        let timestamp_ms =
            block["header"]["timestamp_ms"]
                .as_u64()
                .ok_or_else(|| FollowError::BadAnswer {
                    what: format!("block {height}"),
                    reason: "no header.timestamp_ms".to_string(),
                })?;
        let tx_count = block["tx_count"].as_u64().unwrap_or(0);
        let length = tip.epoch_length_blocks;
        let epoch = if length > 0 && height.is_multiple_of(length) {
            let n = height / length - 1;
            let mut doc = self.client.get(&format!("/v1/epochs/{n}"))?;
            let report: EpochReport = field(&format!("epoch {n}"), doc["report"].take())?;
            if !report.finished {
                return Err(FollowError::EpochNotFinished { epoch: n, height });
            }
            let statements: Vec<RewardStatement> = field(
                &format!("epoch {n} statements"),
                doc["reward_statements"].take(),
            )?;
            Some(EpochRecord {
                report,
                statements,
                end_timestamp_ms: timestamp_ms,
                // Exact only when the node's figures were read at this very height.
                snapshot: (tip.height == height).then(|| tip.clone()),
            })
        } else {
            None
        };
        Ok(BlockRecord {
            height,
            timestamp_ms,
            tx_count,
            epoch,
        })
    }

    /// Indexes every finalized block up to the node's tip (bounded batches), then refreshes
    /// the live figures. Returns how many blocks it indexed.
    pub fn catch_up(&mut self, stop: &AtomicBool) -> Result<u64, FollowError> {
        let tip: NetworkView = field("network view", self.client.get("/v1/network")?)?;
        if tip.epoch_length_blocks == 0 {
            return Err(FollowError::BadAnswer {
                what: "network view".to_string(),
                reason: "epoch_length_blocks is 0".to_string(),
            });
        }
        let mut indexed = 0u64;
        let mut height = self.height();
        while height < tip.height && !stop.load(Ordering::Relaxed) {
            let end = tip.height.min(height.saturating_add(BATCH_BLOCKS));
            let blocks = (height + 1..=end)
                .map(|h| self.record(h, &tip))
                .collect::<Result<Vec<_>, _>>()?;
            let batch = Batch { blocks };
            self.log.append(&batch)?;
            self.index
                .write()
                .map_err(|_| FollowError::BadAnswer {
                    what: "index lock".to_string(),
                    reason: "poisoned".to_string(),
                })?
                .apply(&batch)?;
            indexed += end - height;
            height = end;
        }
        // Every page: the providers page and the figures count the whole registry.
        let providers: Vec<Value> = self.client.list_all("/v1/providers", "providers")?;
        if let Ok(mut index) = self.index.write()
            && tip.height >= index.height
        {
            index.network = Some(tip.clone());
            index.providers = providers;
        }
        if let Ok(mut status) = self.status.write() {
            status.node_height = tip.height;
            status.log_bytes = self.log.len_bytes();
            status.last_error = None;
        }
        Ok(indexed)
    }

    /// Waits for the next finalized-block event (or [`EVENT_WAIT`]).
    fn wait_for_block(&self) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(2)))
            .timeout_recv_body(Some(EVENT_WAIT))
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("{}/v1/events", self.client.base());
        let Ok(response) = agent.get(&url).call() else {
            std::thread::sleep(Duration::from_millis(500));
            return;
        };
        if response.status() != 200 {
            std::thread::sleep(EVENT_WAIT);
            return;
        }
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        for line in reader.lines().take(1_000) {
            match line {
                Ok(line) if line.starts_with("data:") => return,
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    /// Follows the chain until `stop`.
    pub fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            match self.catch_up(stop) {
                Ok(_) => self.wait_for_block(),
                Err(e) => {
                    if let Ok(mut status) = self.status.write() {
                        status.last_error = Some(e.to_string());
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }
}
