//! Node configuration: what a validator needs to join the chain, and the knobs that are local
//! policy rather than consensus rules.
//!
//! Consensus rules come from the genesis file only (validator set, chain id and the minimum
//! block time `params.block_time_ms`), so two validators cannot disagree about them through
//! their local configuration.

use cairn_ledger::Genesis;
use cairn_types::Keypair;
use std::time::Duration;

/// Local policy of one node. Every field has a sensible default ([`ChainConfig::default`]).
#[derive(Clone, Debug)]
pub struct ChainConfig {
    /// Most transactions this node puts in a block it proposes. Local policy: a block from
    /// another validator is bounded only by the ledger's limit (and the chain's byte limit).
    pub max_block_txs: usize,
    /// Most pending transactions in the mempool.
    pub mempool_max_txs: usize,
    /// Most pending transactions of one sender.
    pub mempool_max_per_sender: usize,
    /// Finalized blocks kept in memory for [`crate::NodeHandle::block`]; older ones are read
    /// from the archive with [`crate::NodeHandle::fetch_block`].
    pub block_cache: usize,
    /// Capacity of each [`crate::NodeHandle::subscribe`] channel; a subscriber that falls this
    /// far behind is dropped.
    pub subscriber_buffer: usize,
    /// How far in the future a proposed block's timestamp may be before verification waits for
    /// the local clock to catch up (it never rejects for this: clocks skew temporarily).
    pub max_future_drift: Duration,
    /// Time a validator waits for a leader's proposal. `None` derives it from the block time.
    pub leader_timeout: Option<Duration>,
    /// Most speculative (verified, not yet finalized) block states kept in memory.
    pub max_speculative: usize,
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            max_block_txs: 10_000,
            mempool_max_txs: 100_000,
            mempool_max_per_sender: 10_000,
            block_cache: 4_096,
            subscriber_buffer: 1_024,
            max_future_drift: Duration::from_secs(5),
            leader_timeout: None,
            max_speculative: 512,
        }
    }
}

impl ChainConfig {
    /// The leader timeout: at least two seconds and comfortably above the block time, since a
    /// leader waits up to one block time before it proposes.
    pub fn leader_timeout(&self, block_time_ms: u64) -> Duration {
        self.leader_timeout.unwrap_or_else(|| {
            Duration::from_millis(block_time_ms.saturating_mul(2))
                .saturating_add(Duration::from_secs(2))
        })
    }
}

/// Everything one validator needs, independent of the runtime and the network it runs on.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub genesis: Genesis,
    /// The validator's key: signs votes and identifies it on the p2p network. Must be one of
    /// `genesis.validators`.
    pub key: Keypair,
    /// Prefix of every storage partition of this node. Nodes sharing one storage (the
    /// deterministic runtime in tests) need distinct prefixes.
    pub partition_prefix: String,
    pub chain: ChainConfig,
}
