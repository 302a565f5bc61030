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

/// Default prices sit at this share of the cheapest listed cloud price: a devnet's figures
/// (and a tenant who gives no price) should tell the truth a DePIN network sells, that it
/// is cheaper than the cloud, not 175 000 times dearer as a flat "1 CRN" once was.
pub const DEFAULT_PRICE_SHARE_PCT: u32 = 80;

impl PriceTable {
    /// The cheapest listed storage price, USD per GiB-month.
    pub fn cheapest_storage_usd_per_gib_month(&self) -> Option<f64> {
        self.storage
            .iter()
            .map(|s| s.usd_per_gib_month)
            .min_by(f64::total_cmp)
    }

    /// The cheapest listed GPU price, USD per GPU-hour.
    pub fn cheapest_gpu_usd_per_hour(&self) -> Option<f64> {
        self.gpu
            .iter()
            .map(|g| g.usd_per_gpu_hour)
            .min_by(f64::total_cmp)
    }

    /// The default storage price per GiB-epoch on a chain with epochs of `epoch_ms`:
    /// [`DEFAULT_PRICE_SHARE_PCT`] of the cheapest listed GiB-month at the table's CRN price,
    /// rounded down (so it stays below), and at least 1 uCRN.
    pub fn default_storage_ucrn_per_gib_epoch(&self, epoch_ms: u64) -> u64 {
        let usd = self.cheapest_storage_usd_per_gib_month().unwrap_or(0.0);
        #[allow(clippy::cast_precision_loss)]
        let per_epoch = usd / self.crn_usd * (epoch_ms as f64) / MS_PER_MONTH;
        to_ucrn_floor(per_epoch * f64::from(DEFAULT_PRICE_SHARE_PCT) / 100.0)
    }

    /// The default price of one GPU for one block of `block_ms`, the same way.
    pub fn default_gpu_ucrn_per_block(&self, block_ms: u64) -> u64 {
        let usd = self.cheapest_gpu_usd_per_hour().unwrap_or(0.0);
        #[allow(clippy::cast_precision_loss)]
        let per_block = usd / self.crn_usd * (block_ms as f64) / MS_PER_HOUR;
        to_ucrn_floor(per_block * f64::from(DEFAULT_PRICE_SHARE_PCT) / 100.0)
    }
}

/// CRN to whole uCRN, rounded down, at least 1 (a price of nothing is no price).
fn to_ucrn_floor(crn: f64) -> u64 {
    #[allow(clippy::cast_precision_loss)]
    let ucrn = (crn * cairn_types::UCRN_PER_CRN as f64).floor();
    if ucrn.is_finite() && ucrn >= 1.0 {
        // Saturating: `as` clamps floats above u64::MAX.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let v = ucrn as u64;
        v
    } else {
        1
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_prices_sit_below_every_listed_price() {
        let table = PriceTable::builtin().unwrap();
        for epoch_ms in [6_000, 60_000, 600_000, 3_600_000] {
            let ucrn = table.default_storage_ucrn_per_gib_epoch(epoch_ms);
            #[allow(clippy::cast_precision_loss)]
            let usd_month = ucrn as f64 / 1e6 * MS_PER_MONTH / epoch_ms as f64 * table.crn_usd;
            for listed in &table.storage {
                assert!(
                    usd_month < listed.usd_per_gib_month || ucrn == 1,
                    "{ucrn} uCRN per GiB-epoch of {epoch_ms} ms is ${usd_month}/GiB-month, not below {}",
                    listed.product
                );
            }
        }
        for block_ms in [200, 1_000, 6_000] {
            let ucrn = table.default_gpu_ucrn_per_block(block_ms);
            #[allow(clippy::cast_precision_loss)]
            let usd_hour = ucrn as f64 / 1e6 * MS_PER_HOUR / block_ms as f64 * table.crn_usd;
            let cheapest = table.cheapest_gpu_usd_per_hour().unwrap();
            assert!(
                usd_hour < cheapest && usd_hour > cheapest * 0.7,
                "{usd_hour}"
            );
        }
        // The devnet's one-second blocks and 60-block epochs, worked by hand: GCP's
        // $0.0215 per GiB-month x 0.8 / $0.10 = 0.172 CRN a month, 3.98 uCRN an epoch;
        // GCP's $3.67 per GPU-hour x 0.8 / $0.10 / 3 600 blocks = 8 155 uCRN a block.
        assert_eq!(table.default_storage_ucrn_per_gib_epoch(60_000), 3);
        assert_eq!(table.default_gpu_ucrn_per_block(1_000), 8_155);
    }
}
