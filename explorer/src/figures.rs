//! The figures of design §8, computed from the index (binding meanings):
//! - on-chain revenue: fees paid by tenants, storage + compute, by period and source
//!   (transaction fees are reported beside it, as their own source, not inside it);
//! - TVL: bonded + delegated + unbonding stake + escrows (deals, orders, leases) +
//!   endowments, in CRN and in USD at the reference price;
//! - active providers: a passing proof in the last finished epoch (`EpochReport`);
//! - growth: change over the previous period; revenue/emission ratio per period.
//!
//! Days and months are UTC calendar periods of the epoch's last block's timestamp: an epoch's
//! revenue is recognized when the epoch ends.

use crate::index::{EpochEntry, Index};
use crate::model::NetworkView;
use cairn_types::{Amount, Epoch, UCRN_PER_CRN};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// CRN as a float, for display and USD conversion only (never for money on chain).
#[allow(clippy::cast_precision_loss)]
pub fn crn_f64(amount: Amount) -> f64 {
    amount.ucrn() as f64 / UCRN_PER_CRN as f64
}

/// `(year, month, day)` of a Unix time in milliseconds (proleptic Gregorian, UTC).
pub fn civil_date(timestamp_ms: u64) -> (i64, u32, u32) {
    let days = i64::try_from(timestamp_ms / 86_400_000).unwrap_or(i64::MAX);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// How revenue is grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Epoch,
    Day,
    Month,
}

impl std::str::FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "epoch" => Ok(Self::Epoch),
            "day" => Ok(Self::Day),
            "month" => Ok(Self::Month),
            other => Err(format!("by={other:?}: use epoch, day or month")),
        }
    }
}

/// Which revenue is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Storage + compute (design §8's on-chain revenue).
    All,
    Storage,
    Compute,
    /// Transaction fees: reported, but not tenant revenue.
    TxFees,
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Self::All),
            "storage" => Ok(Self::Storage),
            "compute" => Ok(Self::Compute),
            "tx_fees" => Ok(Self::TxFees),
            other => Err(format!(
                "source={other:?}: use all, storage, compute or tx_fees"
            )),
        }
    }
}

fn period_key(by: Period, entry: &EpochEntry) -> String {
    match by {
        Period::Epoch => format!("epoch {}", entry.report.epoch),
        Period::Day => {
            let (y, m, d) = civil_date(entry.end_timestamp_ms);
            format!("{y:04}-{m:02}-{d:02}")
        }
        Period::Month => {
            let (y, m, _) = civil_date(entry.end_timestamp_ms);
            format!("{y:04}-{m:02}")
        }
    }
}

/// Revenue of one period.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PeriodRevenue {
    pub period: String,
    pub first_epoch: Epoch,
    pub last_epoch: Epoch,
    pub epochs: u64,
    pub storage: Amount,
    pub compute: Amount,
    pub tx_fees: Amount,
    /// The selected source's revenue.
    pub revenue: Amount,
    /// Minted in the period.
    pub emission: Amount,
    /// revenue / emission, `None` when nothing was minted.
    pub revenue_emission_ratio: Option<f64>,
    /// Change of `revenue` over the previous period, in uCRN (signed decimal string).
    pub growth_ucrn: String,
    /// That change relative to the previous period, `None` after a zero.
    pub growth_pct: Option<f64>,
}

fn add(a: Amount, b: Amount) -> Amount {
    a.checked_add(b).unwrap_or(Amount::from_ucrn(u128::MAX))
}

fn signed_change(now: Amount, before: Amount) -> (String, Option<f64>) {
    let text = if now >= before {
        format!("+{}", now.ucrn() - before.ucrn())
    } else {
        format!("-{}", before.ucrn() - now.ucrn())
    };
    let pct =
        (!before.is_zero()).then(|| (crn_f64(now) - crn_f64(before)) / crn_f64(before) * 100.0);
    (text, pct)
}

fn ratio(a: Amount, b: Amount) -> Option<f64> {
    (!b.is_zero()).then(|| crn_f64(a) / crn_f64(b))
}

/// Revenue by period, oldest first.
pub fn revenue(index: &Index, by: Period, source: Source) -> Vec<PeriodRevenue> {
    let mut periods: BTreeMap<(Epoch, String), PeriodRevenue> = BTreeMap::new();
    let mut order: BTreeMap<String, Epoch> = BTreeMap::new();
    for entry in index.epochs.values() {
        let key = period_key(by, entry);
        let first = *order.entry(key.clone()).or_insert(entry.report.epoch);
        let p = periods
            .entry((first, key.clone()))
            .or_insert_with(|| PeriodRevenue {
                period: key,
                first_epoch: entry.report.epoch,
                ..PeriodRevenue::default()
            });
        let r = &entry.report.revenue;
        p.last_epoch = entry.report.epoch;
        p.epochs += 1;
        p.storage = add(p.storage, r.storage);
        p.compute = add(p.compute, r.compute);
        p.tx_fees = add(p.tx_fees, r.tx_fees);
        p.emission = add(p.emission, entry.report.minted);
    }
    let mut out: Vec<PeriodRevenue> = periods.into_values().collect();
    let mut previous: Option<Amount> = None;
    for p in &mut out {
        p.revenue = match source {
            Source::All => add(p.storage, p.compute),
            Source::Storage => p.storage,
            Source::Compute => p.compute,
            Source::TxFees => p.tx_fees,
        };
        p.revenue_emission_ratio = ratio(p.revenue, p.emission);
        let (text, pct) = signed_change(p.revenue, previous.unwrap_or(Amount::ZERO));
        (p.growth_ucrn, p.growth_pct) = (text, if previous.is_some() { pct } else { None });
        previous = Some(p.revenue);
    }
    out
}

/// How the providers of one finished epoch stood. The epoch report counts "active" (a
/// passing proof in the epoch, design §8) and "proven" (no fault, and a passing proof or a
/// compute rate proven at an earlier challenge that still stands) on their own, so proven
/// can exceed active: a compute prover between its challenges proves nothing that epoch yet
/// stays proven. The reward statements (one per provider with a proof or a standing rate)
/// split the two into parts that add up, so a page can say why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProviderStanding {
    pub epoch: Epoch,
    /// Registered and in good standing (not jailed, not leaving) at the epoch's end.
    pub in_good_standing: u64,
    /// The report's "active": at least one passing proof in the epoch.
    pub active: u64,
    /// The report's "proven".
    pub proven: u64,
    /// The split, `None` when the indexed statements do not add up to the report (an index
    /// without statements for the epoch).
    pub breakdown: Option<StandingBreakdown>,
}

/// [`ProviderStanding`]'s parts: `active = passed_every_proof + passed_and_faulted` and
/// `proven = passed_every_proof + on_standing_compute_rate`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StandingBreakdown {
    /// Passed every proof it had: active and proven.
    pub passed_every_proof: u64,
    /// Passed a proof, failed or missed another: active, not proven.
    pub passed_and_faulted: u64,
    /// No proof due (a compute prover between challenges), its last proven rate standing:
    /// proven, not active.
    pub on_standing_compute_rate: u64,
    /// Failed or missed and passed nothing.
    pub faulted_only: u64,
}

/// [`ProviderStanding`] of a finished epoch in the index.
pub fn provider_standing(index: &Index, entry: &EpochEntry) -> ProviderStanding {
    let r = &entry.report;
    let mut split = StandingBreakdown::default();
    let mut seen = false;
    for s in index.statements.values().filter_map(|by| by.get(&r.epoch)) {
        seen = true;
        let faults = s.proofs_failed.saturating_add(s.proofs_missed);
        let part = match (s.proofs_passed > 0, faults > 0) {
            (true, false) => &mut split.passed_every_proof,
            (true, true) => &mut split.passed_and_faulted,
            (false, true) => &mut split.faulted_only,
            (false, false) if s.proven_int8_ops > 0 => &mut split.on_standing_compute_rate,
            (false, false) => continue,
        };
        *part = part.saturating_add(1);
    }
    let adds_up = split.passed_every_proof + split.passed_and_faulted == r.active_providers
        && split.passed_every_proof + split.on_standing_compute_rate == r.proven_providers;
    ProviderStanding {
        epoch: r.epoch,
        in_good_standing: r.registered_providers,
        active: r.active_providers,
        proven: r.proven_providers,
        breakdown: ((seen || (r.active_providers == 0 && r.proven_providers == 0)) && adds_up)
            .then_some(split),
    }
}

fn usd(amount: Amount, crn_usd: f64) -> f64 {
    crn_f64(amount) * crn_usd
}

/// `GET /api/v1/summary`.
pub fn summary(index: &Index, crn_usd: f64) -> Value {
    let (last, before) = index.last_two_epochs();
    let count = |e: Option<&EpochEntry>, f: fn(&EpochEntry) -> u64| e.map_or(0, f);
    let active = count(last, |e| e.report.active_providers);
    let proven = count(last, |e| e.report.proven_providers);
    let registered = count(last, |e| e.report.registered_providers);
    let growth = |now: u64, then: u64| i128::from(now) - i128::from(then);
    let revenue = last.map(|e| {
        let r = &e.report.revenue;
        let total = add(r.storage, r.compute);
        let prev = before.map_or(Amount::ZERO, |b| {
            add(b.report.revenue.storage, b.report.revenue.compute)
        });
        let (change, pct) = signed_change(total, prev);
        json!({
            "epoch": e.report.epoch,
            "storage": r.storage,
            "compute": r.compute,
            "total": total,
            "tx_fees": r.tx_fees,
            "emission": e.report.minted,
            "revenue_emission_ratio": ratio(total, e.report.minted),
            "growth_ucrn": change,
            "growth_pct": before.and(pct),
        })
    });
    let network = index.network.as_ref();
    let tvl = network.and_then(|n| n.tvl);
    json!({
        "storage_loss": storage_loss(index),
        "height": index.height,
        "timestamp_ms": index.last_timestamp_ms,
        "blocks_indexed": index.blocks,
        "txs_indexed": index.txs,
        "last_epoch": last.map(|e| e.report.epoch),
        "providers": {
            "registered": network.map_or(registered, |n| n.capacity.providers),
            "registered_in_last_epoch": registered,
            "active": active,
            "proven": proven,
            "active_growth": growth(active, count(before, |e| e.report.active_providers)),
            "proven_growth": growth(proven, count(before, |e| e.report.proven_providers)),
            "breakdown": last.and_then(|e| provider_standing(index, e).breakdown),
        },
        "tvl": {
            "crn": tvl,
            "usd": tvl.map(|t| usd(t, crn_usd)),
            "crn_usd": crn_usd,
            "as_of_height": network.map(|n| n.height),
        },
        "supply": network.and_then(|n| n.supply.as_ref()).map(|s| json!({
            "total": s.expected,
            "genesis": s.genesis,
            "minted": s.minted,
            "burned": s.burned,
            "balances": s.balances,
            "treasury": s.treasury,
        })),
        "emission": {
            "last_epoch": last.map(|e| e.report.minted),
            "next_epoch": network.map(|n| n.next_emission),
        },
        "last_epoch_revenue": revenue,
    })
}

/// Shard loss over the last finished epochs indexed, in the node's own window (`/v1/network`):
/// challenged and faulted shard-epochs,
/// its rate and one-sided 95% upper bound, and what that bound leaves the devnet's and a
/// larger network's default codes per epoch: the figures `cairn store durability` plans with.
pub fn storage_loss(index: &Index) -> Value {
    let loss = cairn_ledger::state::ShardLoss::over(
        index.epochs.values().map(|e| &e.report),
        cairn_api::STORAGE_LOSS_WINDOW_EPOCHS,
    );
    let (challenged, faulted) = (loss.shards_challenged, loss.shards_faulted);
    let Ok(observed) = cairn_coding::durability::Observed::new(challenged, faulted) else {
        return Value::Null;
    };
    let estimate = observed.estimate();
    let nines = |k: u16, m: u16| {
        cairn_coding::durability::Durability::of(k, m, estimate.rate, 1)
            .ok()
            .and_then(|d| d.nines_per_interval)
    };
    json!({
        "epochs": loss.epochs,
        "shards_challenged": challenged,
        "shards_faulted": faulted,
        "rate_per_epoch": observed.point(),
        "planning_rate": estimate.rate,
        "planning_rate_source": estimate.source,
        "nines_per_epoch": { "4+2": nines(4, 2), "10+5": nines(10, 5) },
    })
}

/// `GET /api/v1/tvl`.
pub fn tvl(index: &Index, crn_usd: f64) -> Value {
    let network = index.network.as_ref();
    let s = network.and_then(|n| n.supply.as_ref());
    let part = |f: fn(&cairn_ledger::state::SupplyBreakdown) -> Amount| s.map(f);
    let history: Vec<Value> = index
        .tvl_history
        .iter()
        .map(|p| json!({ "epoch": p.epoch, "height": p.height, "timestamp_ms": p.timestamp_ms, "crn": p.tvl, "usd": usd(p.tvl, crn_usd) }))
        .collect();
    let tvl = network.and_then(|n| n.tvl);
    json!({
        "height": network.map(|n| n.height),
        "crn": tvl,
        "usd": tvl.map(|t| usd(t, crn_usd)),
        "crn_usd": crn_usd,
        "parts": {
            "validator_stake": part(|s| s.validator_stake),
            "provider_bonds": part(|s| s.provider_bonds),
            "delegations": part(|s| s.delegations),
            "unbonding": part(|s| s.unbonding),
            "deal_escrow": part(|s| s.deal_escrow),
            "endowments": part(|s| s.endowments),
            "order_deposits": part(|s| s.order_deposits),
            "lease_escrow": part(|s| s.lease_escrow),
        },
        "history": history,
    })
}

#[allow(clippy::cast_precision_loss)]
fn share(used: u64, of: u64) -> Option<f64> {
    (of > 0).then(|| used as f64 / of as f64)
}

/// `GET /api/v1/capacity`.
pub fn capacity(index: &Index) -> Value {
    let Some(n) = index.network.as_ref() else {
        return json!({ "height": null, "capacity": null });
    };
    let c = &n.capacity;
    json!({
        "height": n.height,
        "capacity": c,
        "utilization": {
            "storage_assigned": share(c.storage_bytes_assigned, c.storage_bytes_declared),
            "storage_proven": share(c.storage_bytes_proven, c.storage_bytes_declared),
            "cpu": share(c.cpu_millicores_committed, c.cpu_millicores_declared),
            "memory": share(c.memory_bytes_committed, c.memory_bytes_declared),
            "gpus": share(c.gpus_committed, c.gpus_declared),
        },
    })
}

/// `GET /api/v1/emission`.
pub fn emission(index: &Index) -> Value {
    let mut cumulative = Amount::ZERO;
    let epochs: Vec<Value> = index
        .epochs
        .values()
        .map(|e| {
            let r = &e.report;
            cumulative = add(cumulative, r.minted);
            json!({
                "epoch": r.epoch,
                "end_height": r.end_height,
                "scheduled": r.emission_scheduled,
                "minted": r.minted,
                "minted_cumulative": cumulative,
                "storage_rewards": r.storage_rewards,
                "compute_rewards": r.compute_rewards,
                "validator_rewards": r.validator_rewards,
                "delegator_rewards": r.delegator_rewards,
                "burned": add(add(add(r.burned_fees, r.burned_take), r.burned_slash), r.burned_forfeit),
            })
        })
        .collect();
    let n = index.network.as_ref();
    json!({
        "next_epoch": n.map(|n| n.next_emission),
        "max_supply": n.map(|n| n.max_supply),
        "minted_total": n.and_then(|n| n.supply.as_ref()).map(|s| s.minted),
        "epochs": epochs,
    })
}

/// Totals of one provider's reward statements, oldest first.
pub fn provider_history(index: &Index, address: &cairn_types::Address) -> Value {
    let statements = index.statements.get(address);
    let list: Vec<&cairn_ledger::state::RewardStatement> =
        statements.map(|s| s.values().collect()).unwrap_or_default();
    let (mut passed, mut failed, mut missed) = (0u64, 0u64, 0u64);
    let mut rewards = Amount::ZERO;
    let mut fees = Amount::ZERO;
    for s in &list {
        passed += s.proofs_passed;
        failed += s.proofs_failed;
        missed += s.proofs_missed;
        rewards = add(rewards, s.provider_reward);
        fees = add(fees, s.fees_earned);
    }
    json!({
        "epochs": list.len(),
        "proofs_passed": passed,
        "proofs_failed": failed,
        "proofs_missed": missed,
        "provider_rewards": rewards,
        "fees_earned": fees,
        "statements": list,
    })
}

/// `GET /api/v1/providers`: the node's registry at the tip with indexed reward totals.
pub fn providers(index: &Index) -> Value {
    let items: Vec<Value> = index
        .providers
        .iter()
        .map(|p| {
            let totals = p["address"].as_str().and_then(|a| a.parse().ok()).map(|a| {
                let mut h = provider_history(index, &a);
                if let Some(obj) = h.as_object_mut() {
                    obj.remove("statements");
                }
                h
            });
            json!({ "provider": p, "indexed": totals })
        })
        .collect();
    json!({ "height": index.network.as_ref().map(|n| n.height), "providers": items })
}

/// Measured milliseconds per block (timestamps of indexed blocks), else the genesis target.
#[allow(clippy::cast_precision_loss)]
pub fn block_time_ms(index: &Index, network: &NetworkView) -> f64 {
    match index.first_timestamp_ms {
        Some(first) if index.blocks > 10 && index.last_timestamp_ms > first => {
            (index.last_timestamp_ms - first) as f64 / (index.blocks - 1) as f64
        }
        _ => network.block_time_ms.max(1) as f64,
    }
}

#[cfg(test)]
mod standing_tests {
    use super::*;
    use cairn_ledger::state::{EpochReport, RewardStatement};
    use cairn_types::Address;

    fn statement(who: &str, passed: u64, failed: u64, missed: u64, ops: u64) -> RewardStatement {
        RewardStatement {
            epoch: 5,
            provider: Address::derived(who),
            proofs_passed: passed,
            proofs_failed: failed,
            proofs_missed: missed,
            proven_int8_ops: ops,
            ..Default::default()
        }
    }

    #[test]
    fn proven_above_active_splits_into_parts_that_add_up() {
        let mut index = Index::default();
        let entry = EpochEntry {
            report: EpochReport {
                epoch: 5,
                registered_providers: 6,
                active_providers: 3,
                proven_providers: 3,
                finished: true,
                ..Default::default()
            },
            end_timestamp_ms: 0,
        };
        index.epochs.insert(5, entry.clone());
        for s in [
            statement("storage-a", 4, 0, 0, 0),
            statement("storage-b", 3, 0, 1, 0),
            statement("prover", 0, 0, 0, 200_000_000),
            statement("storage-c", 2, 0, 0, 0),
            statement("storage-d", 0, 1, 0, 0),
        ] {
            index.statements.entry(s.provider).or_default().insert(5, s);
        }
        let standing = provider_standing(&index, &entry);
        assert_eq!(
            standing.breakdown,
            Some(StandingBreakdown {
                passed_every_proof: 2,
                passed_and_faulted: 1,
                on_standing_compute_rate: 1,
                faulted_only: 1,
            })
        );
        // Statements that do not add up to the report: no split rather than a wrong one.
        let mut other = entry;
        other.report.proven_providers = 7;
        assert_eq!(provider_standing(&index, &other).breakdown, None);
        let summary = summary(&index, 0.1);
        assert_eq!(
            summary["providers"]["breakdown"]["on_standing_compute_rate"],
            1
        );
    }
}

#[cfg(test)]
mod storage_loss_tests {
    use super::*;
    use cairn_ledger::state::EpochReport;

    fn epoch(n: u64, challenged: u64, faulted: u64, finished: bool) -> EpochEntry {
        EpochEntry {
            report: EpochReport {
                epoch: n,
                storage_shards_challenged: challenged,
                storage_shards_faulted: faulted,
                finished,
                ..Default::default()
            },
            end_timestamp_ms: 0,
        }
    }

    #[test]
    fn shard_loss_sums_the_last_finished_epochs() {
        let mut index = Index::default();
        // 70 finished epochs of 100 shards with one fault each, then one still open.
        for n in 0..70 {
            index.epochs.insert(n, epoch(n, 100, 1, true));
        }
        index.epochs.insert(70, epoch(70, 100, 50, false));
        let loss = storage_loss(&index);
        assert_eq!(loss["epochs"], 64);
        assert_eq!(loss["shards_challenged"], 6400);
        assert_eq!(loss["shards_faulted"], 64);
        assert_eq!(loss["rate_per_epoch"].as_f64(), Some(0.01));
        assert_eq!(loss["planning_rate_source"], "measured");
        let rate = loss["planning_rate"].as_f64().unwrap();
        assert!(rate > 0.01 && rate < 0.0125, "{loss}");
        assert!(
            loss["nines_per_epoch"]["10+5"].as_f64().unwrap() > 7.0,
            "{loss}"
        );
        // Nothing indexed: no rate, the assumption to plan with.
        let empty = storage_loss(&Index::default());
        assert!(empty["rate_per_epoch"].is_null());
        assert_eq!(empty["planning_rate_source"], "assumed");
    }
}
