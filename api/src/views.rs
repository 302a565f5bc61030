//! JSON views of the finalized state. Lazy lease settlement means a stored lease can be
//! behind: lease views carry the settlement as of the next block, as a client would see it.

use cairn_ledger::Ledger;
use cairn_ledger::compute::{SettledState, project_settlement};
use cairn_ledger::state::{Deal, Lease, Order};
use cairn_types::{Address, Amount, Block, DealId, Epoch, Hash, LeaseId, OrderId};
use serde_json::{Value, json};
use std::ops::Bound;

/// What a list request keeps: each field, when given, must match. The handler checks which
/// apply to its route and parses them, so a view only compares.
#[derive(Debug, Default)]
pub struct Filter {
    pub status: Option<String>,
    pub owner: Option<Address>,
    pub provider: Option<Address>,
    pub tenant: Option<Address>,
}

impl Filter {
    fn status(&self, name: &str) -> bool {
        self.status.as_deref().is_none_or(|s| s == name)
    }
}

/// The status names a list filters by, per route: they mirror the `name()` of the ledger's
/// status enums, so a misspelt filter is refused instead of answering an empty list.
pub const PROVIDER_STATUSES: &[&str] = &["active", "jailed", "leaving"];
pub const DEAL_STATUSES: &[&str] = &["pending", "active", "expired", "cancelled", "invalid"];
pub const ORDER_STATUSES: &[&str] = &["open", "matched", "cancelled", "expired"];
pub const LEASE_STATUSES: &[&str] = &["starting", "active", "paused", "closed"];

/// One page of a list: at most `limit` items from `items` (already after the cursor and
/// filtered), and the cursor of the last one when at least one more follows (`None` at the
/// end, so a reader stops without asking for an empty page).
fn page<K: std::fmt::Display, T>(
    mut items: impl Iterator<Item = (K, T)>,
    limit: usize,
    mut view: impl FnMut(T) -> Value,
) -> (Vec<Value>, Option<String>) {
    let mut out = Vec::with_capacity(limit.min(1000));
    let mut last = None;
    for (key, item) in items.by_ref().take(limit) {
        out.push(view(item));
        last = Some(key);
    }
    let next = if items.next().is_some() {
        last.map(|k| k.to_string())
    } else {
        None
    };
    (out, next)
}

/// Keys strictly after `after` in a newest-first (descending) walk.
fn before<K: Ord + Copy>(after: Option<K>) -> (Bound<K>, Bound<K>) {
    match after {
        Some(k) => (Bound::Unbounded, Bound::Excluded(k)),
        None => (Bound::Unbounded, Bound::Unbounded),
    }
}

fn value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

pub fn account(ledger: &Ledger, address: &Address) -> Value {
    let state = ledger.state();
    let delegations: Vec<Value> = state
        .delegations
        .iter()
        .filter(|((_, delegator), _)| delegator == address)
        .map(|((provider, _), amount)| json!({ "provider": provider, "amount": amount }))
        .collect();
    let unbonding: Vec<Value> = state
        .unbonding
        .values()
        .filter(|u| u.owner == *address)
        .map(value)
        .collect();
    let provider = state.providers.get(address).map(|p| {
        json!({ "self_bond": p.self_bond, "delegated": p.delegated, "status": value(&p.status) })
    });
    let validator_stake = state.validators.get(address).map(|v| v.stake);
    json!({
        "address": address,
        "balance": state.balance(address),
        "nonce": state.nonce(address),
        "provider": provider,
        "validator_stake": validator_stake,
        "delegations": delegations,
        "unbonding": unbonding,
    })
}

pub fn block(block: &Block) -> Value {
    let hashes: Vec<Hash> = block.txs.iter().map(|t| t.hash()).collect();
    json!({
        "hash": block.hash(),
        "header": value(&block.header),
        "tx_count": hashes.len(),
        "tx_hashes": hashes,
    })
}

/// Providers in address order, after the cursor (an address), optionally of one status.
pub fn providers(ledger: &Ledger, filter: &Filter, after: Option<Address>, limit: usize) -> Value {
    let last = ledger.current_epoch().checked_sub(1);
    let range = match after {
        Some(a) => (Bound::Excluded(a), Bound::Unbounded),
        None => (Bound::Unbounded, Bound::Unbounded),
    };
    let items = ledger
        .state()
        .providers
        .range(range)
        .filter(|(_, p)| filter.status(p.status.name()));
    let (items, next) = page(items, limit, |p| {
        json!({
            "address": p.address,
            "endpoint": p.endpoint,
            "region": p.region,
            "status": value(&p.status),
            "declared": value(&p.declared),
            "self_bond": p.self_bond,
            "delegated": p.delegated,
            "claimed_int8_ops": p.claimed_int8_ops,
            "proven_int8_ops": p.proven_int8_ops,
            "proven_storage_bytes": p.proven_storage_bytes,
            "proven_last_epoch": last.is_some_and(|e| p.is_proven(e)),
            // Timed-audit strikes (late, not faulted) and faulty epochs in a row: the
            // warnings an operator sees before any slash.
            "late_audit_epochs": p.late_audit_epochs,
            "consecutive_faulty_epochs": p.consecutive_faulty_epochs,
            "total_faults": p.total_faults,
            "total_slashed": p.total_slashed,
        })
    });
    json!({ "providers": items, "next": next })
}

pub fn provider(ledger: &Ledger, address: &Address) -> Option<Value> {
    let state = ledger.state();
    let p = state.providers.get(address)?;
    let statements: Vec<Value> = state
        .statements
        .iter()
        .filter(|((_, a), _)| a == address)
        .map(|(_, s)| value(s))
        .collect();
    let storage_challenges: Vec<Value> = state
        .storage_challenges
        .iter()
        .filter(|(_, c)| c.provider == *address)
        .map(|((deal, shard), c)| json!({ "deal": deal, "shard_index": shard, "challenge": value(c) }))
        .collect();
    let compute_challenges: Vec<Value> = state
        .compute_challenges
        .values()
        .filter(|c| c.provider == *address)
        .map(value)
        .collect();
    Some(json!({
        "provider": value(p),
        "reward_statements": statements,
        "storage_challenges": storage_challenges,
        "compute_challenges": compute_challenges,
    }))
}

fn deal_view(deal: &Deal) -> Value {
    value(deal)
}

pub fn deal(ledger: &Ledger, id: DealId) -> Option<Value> {
    let state = ledger.state();
    let deal = state.deals.get(&id)?;
    let challenges: Vec<Value> = state
        .storage_challenges
        .iter()
        .filter(|((d, _), _)| *d == id)
        .map(|((_, shard), c)| json!({ "shard_index": shard, "challenge": value(c) }))
        .collect();
    Some(json!({ "deal": deal_view(deal), "challenges": challenges }))
}

/// Deals newest first after the cursor, optionally one owner's, held by one provider, of one
/// status (`active`, `pending`, ...).
pub fn deals(ledger: &Ledger, filter: &Filter, after: Option<DealId>, limit: usize) -> Value {
    let items = ledger
        .state()
        .deals
        .range(before(after))
        .rev()
        .filter(|(_, d)| filter.owner.is_none_or(|o| d.owner == o))
        .filter(|(_, d)| filter.provider.is_none_or(|p| d.providers.contains(&p)))
        .filter(|(_, d)| filter.status(d.status.name()));
    let (items, next) = page(items, limit, deal_view);
    json!({ "deals": items, "next": next })
}

pub fn blob(ledger: &Ledger, id: &Hash) -> Option<Value> {
    let state = ledger.state();
    let deals = state.blobs.get(id)?;
    let views: Vec<Value> = deals
        .iter()
        .filter_map(|d| state.deals.get(d))
        .map(deal_view)
        .collect();
    let meta = deals
        .first()
        .and_then(|d| state.deals.get(d))
        .map(|d| value(&d.blob));
    Some(json!({ "blob": meta, "deals": views }))
}

fn order_view(order: &Order) -> Value {
    value(order)
}

/// Orders newest first after the cursor, optionally one tenant's and of one status.
pub fn orders(ledger: &Ledger, filter: &Filter, after: Option<OrderId>, limit: usize) -> Value {
    let items = ledger
        .state()
        .orders
        .range(before(after))
        .rev()
        .filter(|(_, o)| filter.tenant.is_none_or(|t| o.tenant == t))
        .filter(|(_, o)| filter.status(o.status.name()));
    let (items, next) = page(items, limit, order_view);
    json!({ "orders": items, "next": next })
}

pub fn order(ledger: &Ledger, id: OrderId) -> Option<Value> {
    ledger.state().orders.get(&id).map(order_view)
}

fn lease_view(ledger: &Ledger, lease: &Lease) -> Value {
    let next = ledger.height().saturating_add(1);
    let s = project_settlement(lease, next, ledger.params().lease_grace_blocks);
    let projected_state = match s.outcome {
        SettledState::Starting { .. } => "starting",
        // The protocol closes a lease never reported started at the next settlement.
        SettledState::StartTimedOut { .. } => "closing",
        SettledState::Active => "active",
        SettledState::Paused { .. } => "paused",
        SettledState::Expired { .. } => "closing",
        SettledState::Closed => "closed",
    };
    let escrow_left = lease.escrow.checked_sub(s.pay).unwrap_or(Amount::ZERO);
    json!({
        "lease": value(lease),
        "as_of_height": next,
        "projected_state": projected_state,
        "owed": s.pay,
        "escrow_left": escrow_left,
        "settled_through": s.settled_through,
    })
}

/// Leases newest first after the cursor, optionally one tenant's, one provider's, of one
/// (stored, not projected) state.
pub fn leases(ledger: &Ledger, filter: &Filter, after: Option<LeaseId>, limit: usize) -> Value {
    let items = ledger
        .state()
        .leases
        .range(before(after))
        .rev()
        .filter(|(_, l)| filter.tenant.is_none_or(|t| l.tenant == t))
        .filter(|(_, l)| filter.provider.is_none_or(|p| l.provider == p))
        .filter(|(_, l)| filter.status(l.state.name()));
    let (items, next) = page(items, limit, |l| lease_view(ledger, l));
    json!({ "leases": items, "next": next })
}

pub fn lease(ledger: &Ledger, id: LeaseId) -> Option<Value> {
    ledger
        .state()
        .leases
        .get(&id)
        .map(|l| lease_view(ledger, l))
}

pub fn epoch(ledger: &Ledger, n: Epoch) -> Option<Value> {
    let state = ledger.state();
    let report = state.epochs.get(&n)?;
    let statements: Vec<Value> = state
        .statements
        .range((n, Address([0; 32]))..=(n, Address([0xff; 32])))
        .map(|(_, s)| value(s))
        .collect();
    Some(json!({ "report": value(report), "reward_statements": statements }))
}

/// Σ price × weight / Σ weight, or `None` without weight (or on overflow).
fn weighted_mean(items: impl Iterator<Item = (Amount, u128)>) -> Option<Amount> {
    let (mut num, mut den) = (0u128, 0u128);
    for (price, weight) in items {
        num = num.checked_add(price.ucrn().checked_mul(weight)?)?;
        den = den.checked_add(weight)?;
    }
    num.checked_div(den).map(Amount::from_ucrn)
}

/// Network-wide figures for the explorer: supply and where it sits, TVL, capacity and its
/// use, and the market's current prices. Read-only, from the finalized state.
/// The ledger's parameters (`Params`, as in genesis; amounts as uCRN strings).
pub fn params(ledger: &Ledger) -> Value {
    value(ledger.params())
}

pub fn network(ledger: &Ledger) -> Value {
    let state = ledger.state();
    let params = ledger.params();
    let supply = state.supply_breakdown().ok();
    let tvl = supply
        .as_ref()
        .and_then(cairn_ledger::state::SupplyBreakdown::tvl);
    let (mut storage_declared, mut storage_assigned, mut storage_proven) = (0u64, 0u64, 0u64);
    let (mut cpu_declared, mut cpu_committed, mut memory_declared, mut memory_committed) =
        (0u64, 0u64, 0u64, 0u64);
    let (mut gpus_declared, mut gpus_committed, mut int8_proven) = (0u64, 0u64, 0u64);
    let mut good_standing = 0u64;
    for p in state.providers.values() {
        if p.is_active() {
            good_standing = good_standing.saturating_add(1);
        }
        storage_declared = storage_declared.saturating_add(p.declared.storage_bytes);
        storage_assigned = storage_assigned.saturating_add(p.assigned_storage_bytes);
        storage_proven = storage_proven.saturating_add(p.proven_storage_bytes);
        cpu_declared = cpu_declared.saturating_add(p.declared.cpu_millicores);
        cpu_committed = cpu_committed.saturating_add(p.committed.cpu_millicores);
        memory_declared = memory_declared.saturating_add(p.declared.memory_bytes);
        memory_committed = memory_committed.saturating_add(p.committed.memory_bytes);
        gpus_declared =
            gpus_declared.saturating_add(u64::try_from(p.declared.gpus.len()).unwrap_or(u64::MAX));
        gpus_committed = gpus_committed.saturating_add(p.committed.gpus);
        int8_proven = int8_proven.saturating_add(p.proven_int8_ops);
    }
    let active_deals: Vec<&Deal> = state
        .deals
        .values()
        .filter(|d| d.status == cairn_ledger::state::DealStatus::Active)
        .collect();
    let storage_price = weighted_mean(
        active_deals
            .iter()
            .map(|d| (d.price_per_gib_epoch, u128::from(d.blob.size_bytes))),
    );
    let running: Vec<&Lease> = state
        .leases
        .values()
        .filter(|l| l.state == cairn_ledger::state::LeaseState::Active)
        .collect();
    // A lease's price covers all its hardware; per GPU it is split evenly across its GPUs.
    let gpu_price = weighted_mean(running.iter().filter(|l| !l.hardware.gpus.is_empty()).map(
        |l| {
            let gpus = u128::try_from(l.hardware.gpus.len())
                .unwrap_or(u128::MAX)
                .max(1);
            (Amount::from_ucrn(l.price_per_block.ucrn() / gpus), gpus)
        },
    ));
    let cpu_price = weighted_mean(
        running
            .iter()
            .filter(|l| l.hardware.gpus.is_empty() && l.hardware.cpu_millicores > 0)
            .map(|l| {
                let cores = u128::from(l.hardware.cpu_millicores);
                (
                    Amount::from_ucrn(l.price_per_block.ucrn().saturating_mul(1000) / cores),
                    cores,
                )
            }),
    );
    json!({
        "height": ledger.height(),
        "current_epoch": ledger.current_epoch(),
        "epoch_length_blocks": params.epoch_length_blocks,
        "block_time_ms": params.block_time_ms,
        "last_timestamp_ms": state.last_timestamp_ms,
        "supply": supply.as_ref().map(value),
        "tvl": tvl,
        "next_emission": state.next_emission,
        "max_supply": params.max_supply,
        "capacity": {
            "providers": state.providers.len(),
            "providers_in_good_standing": good_standing,
            "storage_bytes_declared": storage_declared,
            "storage_bytes_assigned": storage_assigned,
            "storage_bytes_proven": storage_proven,
            "cpu_millicores_declared": cpu_declared,
            "cpu_millicores_committed": cpu_committed,
            "memory_bytes_declared": memory_declared,
            "memory_bytes_committed": memory_committed,
            "gpus_declared": gpus_declared,
            "gpus_committed": gpus_committed,
            "int8_ops_proven": int8_proven,
        },
        "market": {
            "active_deals": active_deals.len(),
            "storage_price_per_gib_epoch": storage_price,
            "active_leases": running.len(),
            "gpu_price_per_gpu_block": gpu_price,
            "cpu_price_per_core_block": cpu_price,
        },
        "storage_loss": value(&state.measured_shard_loss(STORAGE_LOSS_WINDOW_EPOCHS)),
        "storage_loss_window_epochs": STORAGE_LOSS_WINDOW_EPOCHS,
    })
}

/// How many recent epochs the measured shard loss rate sums: enough shard-epochs for a
/// tight bound on a busy network, recent enough to follow a changing provider set.
pub const STORAGE_LOSS_WINDOW_EPOCHS: u64 = 64;
