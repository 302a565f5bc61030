//! The dated table of cloud list prices (`explorer/prices.toml`, compiled in) and the
//! comparison of Cairn's market prices against it.

use crate::figures::{block_time_ms, crn_f64};
use crate::index::Index;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The table shipped with the explorer.
pub const PRICES_TOML: &str = include_str!("../prices.toml");

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoragePrice {
    pub provider: String,
    pub product: String,
    pub usd_per_gib_month: f64,
    pub source: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuPrice {
    pub provider: String,
    pub product: String,
    pub usd_per_gpu_hour: f64,
    pub source: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    pub as_of: String,
    pub crn_usd: f64,
    pub storage: Vec<StoragePrice>,
    pub gpu: Vec<GpuPrice>,
}

#[derive(Debug, thiserror::Error)]
#[error("price table: {reason}")]
pub struct PriceTableError {
    pub reason: String,
}

impl PriceTable {
    pub fn parse(text: &str) -> Result<Self, PriceTableError> {
        let table: Self = toml::from_str(text).map_err(|e| PriceTableError {
            reason: e.to_string(),
        })?;
        let bad = |v: f64| !(v.is_finite() && v > 0.0);
        if bad(table.crn_usd)
            || table.storage.iter().any(|s| bad(s.usd_per_gib_month))
            || table.gpu.iter().any(|g| bad(g.usd_per_gpu_hour))
        {
            return Err(PriceTableError {
                reason: "every price must be a positive finite number".to_string(),
            });
        }
        Ok(table)
    }

    /// The compiled-in table (checked by a test, so this cannot fail in a release).
    pub fn builtin() -> Result<Self, PriceTableError> {
        Self::parse(PRICES_TOML)
    }
}

const MS_PER_MONTH: f64 = 30.0 * 86_400_000.0;
const MS_PER_HOUR: f64 = 3_600_000.0;

/// Cairn's current market prices beside the cloud list prices, in CRN and USD.
pub fn comparison(index: &Index, table: &PriceTable, crn_usd: f64) -> Value {
    let Some(n) = index.network.as_ref() else {
        return json!({ "as_of": table.as_of, "cairn": null, "storage": table.storage, "gpu": table.gpu });
    };
    let block_ms = block_time_ms(index, n);
    #[allow(clippy::cast_precision_loss)]
    let epoch_ms = block_ms * n.epoch_length_blocks as f64;
    let storage_crn = n
        .market
        .storage_price_per_gib_epoch
        .map(|p| crn_f64(p) * MS_PER_MONTH / epoch_ms);
    let gpu_crn = n
        .market
        .gpu_price_per_gpu_block
        .map(|p| crn_f64(p) * MS_PER_HOUR / block_ms);
    let cpu_crn = n
        .market
        .cpu_price_per_core_block
        .map(|p| crn_f64(p) * MS_PER_HOUR / block_ms);
    json!({
        "as_of": table.as_of,
        "crn_usd": crn_usd,
        "block_time_ms": block_ms,
        "cairn": {
            "storage_crn_per_gib_month": storage_crn,
            "storage_usd_per_gib_month": storage_crn.map(|c| c * crn_usd),
            "active_deals": n.market.active_deals,
            "gpu_crn_per_gpu_hour": gpu_crn,
            "gpu_usd_per_gpu_hour": gpu_crn.map(|c| c * crn_usd),
            "cpu_crn_per_core_hour": cpu_crn,
            "cpu_usd_per_core_hour": cpu_crn.map(|c| c * crn_usd),
            "active_leases": n.market.active_leases,
        },
        "storage": table.storage,
        "gpu": table.gpu,
    })
}
