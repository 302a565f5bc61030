//! Genesis and protocol parameters: every number of the economics lives here, in a TOML file,
//! not in code.

use cairn_types::{Address, Amount, Capacity};
use serde::{Deserialize, Serialize};

/// Protocol parameters. Basis points (bps) are 1/10 000.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Blocks per epoch; rewards, payments and challenges happen at epoch boundaries.
    pub epoch_length_blocks: u64,
    /// Target block time, used to turn block counts into time for proven compute rates.
    pub block_time_ms: u64,
    pub min_tx_fee: Amount,
    /// Share of transaction fees burned; the rest goes to the treasury.
    pub fee_burn_bps: u16,
    /// Protocol take on every storage and compute payment.
    pub take_rate_bps: u16,
    /// Share of the take that is burned; the rest goes to the treasury.
    pub take_burn_bps: u16,

    pub min_provider_bond: Amount,
    pub max_commission_bps: u16,
    pub unbonding_epochs: u64,
    pub min_delegation: Amount,

    /// Emission of the first epoch, declining by `emission_decay_bps` each epoch.
    pub initial_emission_per_epoch: Amount,
    pub emission_decay_bps: u16,
    /// Hard cap on genesis + minted; zero for none.
    pub max_supply: Amount,
    pub storage_pool_bps: u16,
    pub compute_pool_bps: u16,
    pub validator_pool_bps: u16,
    /// Weight multiplier (bps) of proven capacity that serves paying tenants, against 10 000
    /// for idle proven capacity.
    pub demand_weight_bps: u32,

    pub min_data_shards: u16,
    pub max_data_shards: u16,
    pub max_parity_shards: u16,
    /// Receipts needed to activate a deal: data shards + this margin (capped at n).
    pub certificate_margin: u16,
    pub min_leaf_size_bytes: u32,
    pub max_leaf_size_bytes: u32,
    pub max_blob_size_bytes: u64,
    pub min_deal_epochs: u64,
    pub max_deal_epochs: u64,
    /// Blocks a deal may wait for its availability certificate before it is refunded.
    pub deal_activation_timeout_blocks: u64,
    /// A permanent deal's endowment must cover this many epochs at the deal's price.
    pub permanent_prepay_epochs: u64,
    /// Share of the remaining endowment paid out each epoch (so payments decline).
    pub endowment_payout_bps: u16,
    /// Chained leaves opened per shard per epoch.
    pub storage_leaves_per_challenge: u16,
    /// Blocks after the epoch start by which storage proofs must land.
    pub storage_proof_deadline_blocks: u64,
    /// Share of a deal's remaining escrow and endowment paid to whoever proves its blob
    /// inconsistent; the rest is burned. An owner who reports itself gets this share back,
    /// less than cancelling would refund, so the bounty pays auditors without making an
    /// inconsistent upload cheaper.
    pub inconsistency_bounty_bps: u16,

    /// Wall time a compute challenge should take at the claimed rate.
    pub compute_challenge_ms: u64,
    /// A compute provider is challenged once every this many epochs (at an epoch fixed by
    /// its address, which spreads the work): with `compute_challenge_ms` this bounds the
    /// share of a provider's time spent proving, which `validate` holds to at most 1%.
    pub compute_challenge_interval_epochs: u64,
    pub max_gemm_dim: u32,
    pub compute_commit_deadline_blocks: u64,
    pub compute_open_deadline_blocks: u64,
    pub compute_openings: u16,
    /// Blocks of latency forgiven when measuring the proven rate: the challenge becomes
    /// visible one block after it is issued and the commitment lands a block after it is sent.
    pub compute_latency_allowance_blocks: u64,
    /// A measured rate below this share of the claim leaves the provider unproven (no
    /// compute rewards), though not faulted: its hardware is slower than it said.
    pub compute_proven_floor_bps: u16,

    pub max_bid_window_blocks: u64,
    /// Blocks after the bid window during which the tenant may still accept a bid.
    pub accept_window_blocks: u64,
    /// Blocks a lease stays paused (escrow empty) before it closes.
    pub lease_grace_blocks: u64,
    /// An order's deposit must cover this many blocks at its max price.
    pub min_lease_deposit_blocks: u64,
    /// Blocks after its acceptance within which a lease's provider must report the workload
    /// started (`LeaseStarted`); a lease not started by then is closed at the next epoch
    /// sweep and its escrow refunded in full. Until the start it is never billed.
    pub lease_start_timeout_blocks: u64,

    /// Faulty epochs tolerated as warnings before a slash.
    pub warnings_before_slash: u32,
    /// Consecutive audited epochs in which a provider may be found late (right answer,
    /// after the timed audit's deadline but before its fault line: `ReportAuditLateness`)
    /// before the lateness faults it. Each late epoch is a strike shown on chain and
    /// brings audits by every validator the next epoch; an epoch audited on time clears
    /// them. A busy honest machine is late now and then; a provider that regenerates its
    /// leaves is late every time, so it reaches the limit and the usual warnings follow.
    pub late_audits_before_fault: u32,
    pub slash_bps: u16,
    pub jail_epochs: u64,
    /// Epochs of reward statements and provider history kept in state.
    pub history_epochs: u64,
}

impl Default for Params {
    fn default() -> Self {
        let crn = |v: u128| Amount::from_ucrn(v * cairn_types::UCRN_PER_CRN);
        Self {
            epoch_length_blocks: 60,
            block_time_ms: 1_000,
            min_tx_fee: Amount::from_ucrn(1_000),
            fee_burn_bps: 5_000,
            take_rate_bps: 500,
            take_burn_bps: 5_000,
            min_provider_bond: crn(100),
            max_commission_bps: 5_000,
            unbonding_epochs: 7,
            min_delegation: crn(1),
            initial_emission_per_epoch: crn(10_000),
            emission_decay_bps: 10,
            max_supply: crn(2_000_000_000),
            storage_pool_bps: 4_500,
            compute_pool_bps: 4_500,
            validator_pool_bps: 1_000,
            demand_weight_bps: 30_000,
            min_data_shards: 1,
            max_data_shards: 128,
            max_parity_shards: 128,
            certificate_margin: 1,
            min_leaf_size_bytes: 1024,
            max_leaf_size_bytes: 64 * 1024,
            max_blob_size_bytes: 1 << 40,
            min_deal_epochs: 1,
            max_deal_epochs: 100_000,
            deal_activation_timeout_blocks: 600,
            permanent_prepay_epochs: 2_000,
            endowment_payout_bps: 5,
            storage_leaves_per_challenge: 8,
            storage_proof_deadline_blocks: 30,
            inconsistency_bounty_bps: 1_000,
            compute_challenge_ms: 4_000,
            compute_challenge_interval_epochs: 12,
            max_gemm_dim: 16_384,
            compute_commit_deadline_blocks: 20,
            compute_open_deadline_blocks: 10,
            compute_openings: 700,
            compute_latency_allowance_blocks: 2,
            compute_proven_floor_bps: 8_000,
            max_bid_window_blocks: 600,
            accept_window_blocks: 60,
            lease_grace_blocks: 600,
            min_lease_deposit_blocks: 10,
            lease_start_timeout_blocks: 300,
            warnings_before_slash: 2,
            late_audits_before_fault: 3,
            slash_bps: 100,
            jail_epochs: 2,
            history_epochs: 64,
        }
    }
}

/// Why a genesis or parameter set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    #[error("genesis TOML: {reason}")]
    Toml { reason: String },
    #[error("parameter {field}: {reason}")]
    Param { field: &'static str, reason: String },
    #[error("account {address} appears twice in genesis")]
    DuplicateAccount { address: Address },
    #[error("validator {address} appears twice in genesis")]
    DuplicateValidator { address: Address },
    #[error("genesis needs at least one validator")]
    NoValidators,
    #[error("chain id {chain_id:?}: 1 to 64 characters of [a-z0-9-]")]
    ChainId { chain_id: String },
    #[error("genesis supply overflows u128")]
    SupplyOverflow,
    #[error("genesis supply {supply} exceeds max_supply {max}")]
    AboveMaxSupply { supply: Amount, max: Amount },
}

fn param(field: &'static str, reason: impl Into<String>) -> GenesisError {
    GenesisError::Param {
        field,
        reason: reason.into(),
    }
}

impl Params {
    /// These parameters at another block time, with the compute challenge rescaled to fit:
    /// its work shrinks until it fits the commit deadline (less the latency allowance) and
    /// the interval grows until proving stays within 1% of a provider's time. Devnets with
    /// fast blocks use this; the result always passes [`Self::validate`] when `self` does.
    pub fn with_block_time(mut self, block_time_ms: u64) -> Self {
        let block_time_ms = block_time_ms.max(1);
        self.block_time_ms = block_time_ms;
        let room_blocks = self
            .compute_commit_deadline_blocks
            .saturating_sub(self.compute_latency_allowance_blocks.saturating_add(1));
        let room_ms = room_blocks.saturating_mul(block_time_ms);
        self.compute_challenge_ms = self.compute_challenge_ms.min(room_ms).max(block_time_ms);
        self.compute_challenge_interval_epochs = self
            .compute_challenge_interval_epochs
            .max(self.min_compute_challenge_interval_epochs());
        self
    }

    /// Wall time of one epoch, at least 1 ms.
    pub fn epoch_ms(&self) -> u64 {
        self.epoch_length_blocks
            .saturating_mul(self.block_time_ms)
            .max(1)
    }

    /// The shortest challenge interval (at least 1) that keeps proving within 1% of a
    /// provider's time at the current challenge length: the bound [`Self::validate`] checks.
    pub fn min_compute_challenge_interval_epochs(&self) -> u64 {
        self.compute_challenge_ms
            .saturating_mul(100)
            .div_ceil(self.epoch_ms())
            .max(1)
    }

    /// Checks internal consistency; the ledger relies on these holding.
    pub fn validate(&self) -> Result<(), GenesisError> {
        if self.epoch_length_blocks < 4 {
            return Err(param("epoch_length_blocks", "must be at least 4"));
        }
        if self.block_time_ms == 0 {
            return Err(param("block_time_ms", "must be positive"));
        }
        for (field, v) in [
            ("fee_burn_bps", self.fee_burn_bps),
            ("take_rate_bps", self.take_rate_bps),
            ("take_burn_bps", self.take_burn_bps),
            ("max_commission_bps", self.max_commission_bps),
            ("emission_decay_bps", self.emission_decay_bps),
            ("endowment_payout_bps", self.endowment_payout_bps),
            ("slash_bps", self.slash_bps),
            ("compute_proven_floor_bps", self.compute_proven_floor_bps),
            ("inconsistency_bounty_bps", self.inconsistency_bounty_bps),
        ] {
            if v > 10_000 {
                return Err(param(field, format!("{v} is above 10000 bps")));
            }
        }
        let pools = u32::from(self.storage_pool_bps)
            + u32::from(self.compute_pool_bps)
            + u32::from(self.validator_pool_bps);
        if pools != 10_000 {
            return Err(param(
                "storage_pool_bps",
                format!("the three pools must sum to 10000 bps, they sum to {pools}"),
            ));
        }
        if self.demand_weight_bps < 10_000 {
            return Err(param(
                "demand_weight_bps",
                "must be at least 10000 (paid capacity never weighs less than idle)",
            ));
        }
        if self.min_data_shards == 0 || self.min_data_shards > self.max_data_shards {
            return Err(param("min_data_shards", "must be in 1..=max_data_shards"));
        }
        if usize::from(self.max_data_shards) + usize::from(self.max_parity_shards) > 256 {
            return Err(param(
                "max_data_shards",
                "data + parity shards must be at most 256",
            ));
        }
        // Leaves are powers of two of whole BLAKE3 chunks (the shard commitment's tree).
        if !cairn_proofs::shard::valid_leaf_size(self.min_leaf_size_bytes)
            || !cairn_proofs::shard::valid_leaf_size(self.max_leaf_size_bytes)
            || self.min_leaf_size_bytes > self.max_leaf_size_bytes
            || usize::try_from(self.max_leaf_size_bytes)
                .map_or(true, |v| v > cairn_types::proof::MAX_LEAF_BYTES)
        {
            return Err(param(
                "min_leaf_size_bytes",
                "leaf sizes must be powers of two with 1024 <= min <= max <= 65536",
            ));
        }
        if self.min_deal_epochs == 0 || self.min_deal_epochs > self.max_deal_epochs {
            return Err(param("min_deal_epochs", "must be in 1..=max_deal_epochs"));
        }
        if self.storage_leaves_per_challenge == 0 || self.storage_leaves_per_challenge > 64 {
            return Err(param("storage_leaves_per_challenge", "must be in 1..=64"));
        }
        if self.storage_proof_deadline_blocks == 0
            || self.storage_proof_deadline_blocks >= self.epoch_length_blocks
        {
            return Err(param(
                "storage_proof_deadline_blocks",
                "must be in 1..epoch_length_blocks",
            ));
        }
        let compute_window = self
            .compute_commit_deadline_blocks
            .saturating_add(self.compute_open_deadline_blocks);
        if self.compute_commit_deadline_blocks == 0
            || self.compute_open_deadline_blocks == 0
            || compute_window >= self.epoch_length_blocks
        {
            return Err(param(
                "compute_commit_deadline_blocks",
                "commit + open deadlines must be positive and end within the epoch",
            ));
        }
        if self.compute_challenge_ms < self.block_time_ms {
            return Err(param(
                "compute_challenge_ms",
                "must be at least one block time: rates are measured between block timestamps",
            ));
        }
        if self.compute_challenge_interval_epochs == 0 {
            return Err(param(
                "compute_challenge_interval_epochs",
                "must be at least 1",
            ));
        }
        // Proving may take at most 1% of a provider's time.
        let period_ms = u128::from(self.compute_challenge_interval_epochs)
            * u128::from(self.epoch_length_blocks)
            * u128::from(self.block_time_ms);
        if u128::from(self.compute_challenge_ms) * 100 > period_ms {
            return Err(param(
                "compute_challenge_ms",
                format!(
                    "{} ms every {} epochs of {} blocks of {} ms is more than 1% of a provider's time",
                    self.compute_challenge_ms,
                    self.compute_challenge_interval_epochs,
                    self.epoch_length_blocks,
                    self.block_time_ms
                ),
            ));
        }
        if u128::from(self.compute_commit_deadline_blocks) * u128::from(self.block_time_ms)
            <= u128::from(self.compute_challenge_ms)
                + u128::from(self.compute_latency_allowance_blocks) * u128::from(self.block_time_ms)
        {
            return Err(param(
                "compute_commit_deadline_blocks",
                "the commit deadline leaves no time for the challenge's work plus the latency allowance",
            ));
        }
        if self.lease_start_timeout_blocks == 0 {
            return Err(param(
                "lease_start_timeout_blocks",
                "must be at least 1: a provider needs a block to report the start",
            ));
        }
        if self.compute_openings == 0 || self.compute_openings > 4_096 {
            return Err(param("compute_openings", "must be in 1..=4096"));
        }
        if self.max_gemm_dim < 16 {
            return Err(param("max_gemm_dim", "must be at least 16"));
        }
        if self.max_bid_window_blocks == 0 {
            return Err(param("max_bid_window_blocks", "must be positive"));
        }
        if self.history_epochs == 0 {
            return Err(param("history_epochs", "must be positive"));
        }
        Ok(())
    }
}

/// An account funded at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    pub address: Address,
    pub balance: Amount,
}

/// A validator of the genesis set with its bonded stake (part of the genesis supply).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    pub address: Address,
    pub stake: Amount,
    /// `host:port` of its p2p endpoint (used by the chain, not by the ledger).
    #[serde(default)]
    pub p2p_address: String,
}

/// A provider registered at genesis (devnets start with their providers in place).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisProvider {
    pub address: Address,
    pub endpoint: String,
    pub region: String,
    pub capacity: Capacity,
    pub commission_bps: u16,
    pub bond: Amount,
    #[serde(default)]
    pub claimed_int8_ops: u64,
}

/// The genesis file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub chain_id: String,
    pub genesis_time_ms: u64,
    #[serde(default)]
    pub params: Params,
    #[serde(default)]
    pub accounts: Vec<GenesisAccount>,
    pub validators: Vec<GenesisValidator>,
    #[serde(default)]
    pub providers: Vec<GenesisProvider>,
}

impl Genesis {
    pub fn from_toml(text: &str) -> Result<Self, GenesisError> {
        let genesis: Self = toml::from_str(text).map_err(|e| GenesisError::Toml {
            reason: e.to_string(),
        })?;
        genesis.validate()?;
        Ok(genesis)
    }

    pub fn to_toml(&self) -> Result<String, GenesisError> {
        toml::to_string_pretty(self).map_err(|e| GenesisError::Toml {
            reason: e.to_string(),
        })
    }

    /// Checks everything the ledger assumes about its genesis.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let id_ok = !self.chain_id.is_empty()
            && self.chain_id.len() <= 64
            && self
                .chain_id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            return Err(GenesisError::ChainId {
                chain_id: self.chain_id.clone(),
            });
        }
        self.params.validate()?;
        if self.validators.is_empty() {
            return Err(GenesisError::NoValidators);
        }
        let mut seen = std::collections::BTreeSet::new();
        for account in &self.accounts {
            if !seen.insert(account.address) {
                return Err(GenesisError::DuplicateAccount {
                    address: account.address,
                });
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for validator in &self.validators {
            if !seen.insert(validator.address) {
                return Err(GenesisError::DuplicateValidator {
                    address: validator.address,
                });
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for provider in &self.providers {
            if !seen.insert(provider.address) {
                return Err(param(
                    "providers",
                    format!("{} appears twice", provider.address),
                ));
            }
            if provider.bond < self.params.min_provider_bond {
                return Err(param(
                    "providers",
                    format!("{} bonds less than min_provider_bond", provider.address),
                ));
            }
            if provider.commission_bps > self.params.max_commission_bps {
                return Err(param(
                    "providers",
                    format!("{} commission above max_commission_bps", provider.address),
                ));
            }
        }
        let supply = self.supply().ok_or(GenesisError::SupplyOverflow)?;
        if !self.params.max_supply.is_zero() && supply > self.params.max_supply {
            return Err(GenesisError::AboveMaxSupply {
                supply,
                max: self.params.max_supply,
            });
        }
        Ok(())
    }

    /// Everything that exists at genesis: balances, validator stake and provider bonds.
    pub fn supply(&self) -> Option<Amount> {
        let balances = cairn_types::amount::checked_sum(self.accounts.iter().map(|a| a.balance))?;
        let stakes = cairn_types::amount::checked_sum(self.validators.iter().map(|v| v.stake))?;
        let bonds = cairn_types::amount::checked_sum(self.providers.iter().map(|p| p.bond))?;
        balances.checked_add(stakes)?.checked_add(bonds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_keep_proving_within_one_percent() {
        let p = Params::default();
        assert!(p.validate().is_ok());
        let period_ms =
            p.compute_challenge_interval_epochs * p.epoch_length_blocks * p.block_time_ms;
        assert!(p.compute_challenge_ms * 100 <= period_ms);
    }

    #[test]
    fn any_block_time_gives_valid_parameters() {
        for block_time_ms in [1, 7, 50, 100, 250, 1_000, 2_000, 6_000, 60_000] {
            let p = Params::default().with_block_time(block_time_ms);
            assert_eq!(p.block_time_ms, block_time_ms);
            assert!(p.validate().is_ok(), "{block_time_ms}: {:?}", p.validate());
        }
        // At the default block time nothing changes.
        assert_eq!(Params::default().with_block_time(1_000), Params::default());
    }

    #[test]
    fn proving_more_than_one_percent_of_the_time_is_refused() {
        let p = Params {
            compute_challenge_interval_epochs: 1,
            ..Params::default()
        };
        let e = p.validate().unwrap_err().to_string();
        assert!(
            e.contains("compute_challenge_ms") && e.contains("1%"),
            "{e}"
        );
    }
}
