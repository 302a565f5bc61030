//! The in-memory index: rebuilt from the log at start, then advanced one batch at a time.
//! [`Index::apply`] refuses anything but the next height, which is what makes indexing
//! idempotent: a batch that was already counted (a replay, a retried append) is refused, not
//! added again.

use crate::model::{Batch, EpochRecord, NetworkView};
use cairn_ledger::state::{EpochReport, RewardStatement};
use cairn_types::{Address, Amount, Epoch, Height};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IndexError {
    #[error("batch starts at height {got}, the index expects {expected}")]
    Gap { expected: Height, got: Height },
    #[error("batch heights are not consecutive after {after}")]
    NotConsecutive { after: Height },
}

/// A finished epoch in the index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EpochEntry {
    pub report: EpochReport,
    pub end_timestamp_ms: u64,
}

/// TVL seen at an epoch end while indexing live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TvlPoint {
    pub epoch: Epoch,
    pub height: Height,
    pub timestamp_ms: u64,
    pub tvl: Amount,
}

#[derive(Debug, Default)]
pub struct Index {
    pub height: Height,
    pub first_timestamp_ms: Option<u64>,
    pub last_timestamp_ms: u64,
    pub blocks: u64,
    pub txs: u64,
    pub epochs: BTreeMap<Epoch, EpochEntry>,
    pub statements: BTreeMap<Address, BTreeMap<Epoch, RewardStatement>>,
    pub tvl_history: Vec<TvlPoint>,
    /// Latest network figures: from the last epoch snapshot, refreshed live at the tip.
    pub network: Option<NetworkView>,
    /// Latest provider list of the node (`/v1/providers`), refreshed live at the tip.
    pub providers: Vec<serde_json::Value>,
}

impl Index {
    /// Counts `batch`, which must start right after the indexed height.
    pub fn apply(&mut self, batch: &Batch) -> Result<(), IndexError> {
        let Some(first) = batch.first_height() else {
            return Ok(());
        };
        let expected = self.height.saturating_add(1);
        if first != expected {
            return Err(IndexError::Gap {
                expected,
                got: first,
            });
        }
        for pair in batch.blocks.windows(2) {
            if pair[1].height != pair[0].height.saturating_add(1) {
                return Err(IndexError::NotConsecutive {
                    after: pair[0].height,
                });
            }
        }
        for block in &batch.blocks {
            self.height = block.height;
            self.first_timestamp_ms.get_or_insert(block.timestamp_ms);
            self.last_timestamp_ms = block.timestamp_ms;
            self.blocks = self.blocks.saturating_add(1);
            self.txs = self.txs.saturating_add(block.tx_count);
            if let Some(epoch) = &block.epoch {
                self.apply_epoch(epoch);
            }
        }
        Ok(())
    }

    fn apply_epoch(&mut self, record: &EpochRecord) {
        let n = record.report.epoch;
        self.epochs.insert(
            n,
            EpochEntry {
                report: record.report.clone(),
                end_timestamp_ms: record.end_timestamp_ms,
            },
        );
        for s in &record.statements {
            self.statements
                .entry(s.provider)
                .or_default()
                .insert(n, s.clone());
        }
        if let Some(snapshot) = &record.snapshot {
            if let Some(tvl) = snapshot.tvl {
                self.tvl_history.push(TvlPoint {
                    epoch: n,
                    height: snapshot.height,
                    timestamp_ms: snapshot.last_timestamp_ms,
                    tvl,
                });
            }
            self.network = Some(snapshot.clone());
        }
    }

    /// The last finished epoch and the one before it.
    pub fn last_two_epochs(&self) -> (Option<&EpochEntry>, Option<&EpochEntry>) {
        let mut it = self.epochs.values().rev();
        (it.next(), it.next())
    }
}
