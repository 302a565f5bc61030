//! What the indexer stores and the views of the node API it reads.

use cairn_ledger::state::{EpochReport, RewardStatement, SupplyBreakdown};
use cairn_types::{Amount, Epoch, Height};
use serde::{Deserialize, Serialize};

/// One indexed finalized block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRecord {
    pub height: Height,
    pub timestamp_ms: u64,
    pub tx_count: u64,
    /// Present on an epoch's last block.
    pub epoch: Option<EpochRecord>,
}

/// A finished epoch as the node reported it, stamped with its last block's time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub report: EpochReport,
    pub statements: Vec<RewardStatement>,
    pub end_timestamp_ms: u64,
    /// Network figures observed when the indexer was at the tip (live indexing only: a state
    /// figure such as TVL cannot be read back for a past height).
    pub snapshot: Option<NetworkView>,
}

/// Consecutive blocks appended to the log in one frame.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub blocks: Vec<BlockRecord>,
}

impl Batch {
    pub fn first_height(&self) -> Option<Height> {
        self.blocks.first().map(|b| b.height)
    }
    pub fn last_height(&self) -> Option<Height> {
        self.blocks.last().map(|b| b.height)
    }
}

/// `GET /v1/network` of the node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkView {
    pub height: Height,
    pub current_epoch: Epoch,
    pub epoch_length_blocks: u64,
    pub block_time_ms: u64,
    pub last_timestamp_ms: u64,
    pub supply: Option<SupplyBreakdown>,
    pub tvl: Option<Amount>,
    pub next_emission: Amount,
    pub max_supply: Amount,
    pub capacity: CapacityView,
    pub market: MarketView,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityView {
    pub providers: u64,
    pub providers_in_good_standing: u64,
    pub storage_bytes_declared: u64,
    pub storage_bytes_assigned: u64,
    pub storage_bytes_proven: u64,
    pub cpu_millicores_declared: u64,
    pub cpu_millicores_committed: u64,
    pub memory_bytes_declared: u64,
    pub memory_bytes_committed: u64,
    pub gpus_declared: u64,
    pub gpus_committed: u64,
    pub int8_ops_proven: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketView {
    pub active_deals: u64,
    pub storage_price_per_gib_epoch: Option<Amount>,
    pub active_leases: u64,
    pub gpu_price_per_gpu_block: Option<Amount>,
    pub cpu_price_per_core_block: Option<Amount>,
}
