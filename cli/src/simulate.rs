//! `cairn ledger simulate`: the economics, readable before the network exists.

use crate::Global;
use anyhow::{Context, Result, bail};
use cairn_ledger::sim::{SimConfig, Simulation};
use cairn_ledger::state::EpochReport;
use cairn_types::Amount;
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Number of blocks to apply.
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub blocks: u64,
    /// Seed of the workload; the same seed gives the same chain.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Tenant accounts.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub tenants: u64,
    /// Percent of blocks that also carry random, mostly invalid transactions.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=100))]
    pub chaos_percent: u64,
}

#[derive(Serialize)]
struct Report {
    seed: u64,
    blocks: u64,
    height: u64,
    state_root: String,
    transactions: u64,
    failed_transactions: BTreeMap<String, u64>,
    /// Every holding of the supply; `parts` sum to `total`, which equals
    /// `genesis + minted - burned`.
    supply: SupplyReport,
    tvl_ucrn: String,
    epochs: Vec<EpochReport>,
}

#[derive(Serialize)]
struct SupplyReport {
    parts: BTreeMap<&'static str, Amount>,
    total: Amount,
    genesis: Amount,
    minted: Amount,
    burned: Amount,
    expected: Amount,
    invariant_holds: bool,
}

pub fn run(global: &Global, args: SimulateArgs) -> Result<()> {
    let config = SimConfig {
        seed: args.seed,
        tenants: usize::try_from(args.tenants)?,
        chaos_percent: args.chaos_percent,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(config).context("building the simulation genesis")?;
    let mut transactions = 0u64;
    let mut failed: BTreeMap<String, u64> = BTreeMap::new();
    let mut progress =
        crate::progress::Progress::new(global.json, "simulating", Some(args.blocks), "blocks");
    for block in 0..args.blocks {
        progress.set(block);
        let (_, outcome) = sim
            .step()
            .context("the simulated proposer built an invalid block")?;
        transactions += u64::try_from(outcome.receipts.len())?;
        for receipt in &outcome.receipts {
            if let Some(error) = &receipt.error {
                *failed.entry(error.code()).or_default() += 1;
            }
        }
        if let Err(e) = sim.ledger().state().check_invariants() {
            bail!("invariant broken at height {}: {e}", outcome.height);
        }
    }
    let ledger = sim.ledger();
    let state = ledger.state();
    let b = state.supply_breakdown()?;
    let parts = BTreeMap::from([
        ("balances", b.balances),
        ("validator_stake", b.validator_stake),
        ("provider_bonds", b.provider_bonds),
        ("delegations", b.delegations),
        ("unbonding", b.unbonding),
        ("deal_escrow", b.deal_escrow),
        ("endowments", b.endowments),
        ("order_deposits", b.order_deposits),
        ("lease_escrow", b.lease_escrow),
        ("treasury", b.treasury),
    ]);
    let report = Report {
        seed: args.seed,
        blocks: args.blocks,
        height: state.height,
        state_root: ledger.root().to_string(),
        transactions,
        failed_transactions: failed,
        supply: SupplyReport {
            parts,
            total: b.total,
            genesis: b.genesis,
            minted: b.minted,
            burned: b.burned,
            expected: b.expected,
            invariant_holds: b.total == b.expected,
        },
        tvl_ucrn: b.tvl().unwrap_or_default().ucrn().to_string(),
        epochs: state
            .epochs
            .values()
            .filter(|e| e.finished)
            .cloned()
            .collect(),
    };
    if global.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    print_human(&report);
    Ok(())
}

fn crn(a: Amount) -> String {
    // Whole CRN with thousands separators keeps the table readable; exact figures are in --json.
    let whole = a.ucrn() / cairn_types::UCRN_PER_CRN;
    let s = whole.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn print_human(r: &Report) {
    outln!(
        "simulated {} blocks (seed {}): height {}, state root {}",
        r.blocks,
        r.seed,
        r.height,
        r.state_root
    );
    outln!(
        "{} transactions, {} failed (fee charged, typed reason):",
        r.transactions,
        r.failed_transactions.values().sum::<u64>()
    );
    for (code, count) in &r.failed_transactions {
        outln!("  {code:<28} {count}");
    }
    outln!("\nsupply (CRN, rounded down; --json for exact uCRN)");
    for (name, amount) in &r.supply.parts {
        outln!("  {name:<16} {:>20}", crn(*amount));
    }
    outln!("  {:<16} {:>20}", "total", crn(r.supply.total));
    outln!(
        "  genesis {} + minted {} - burned {} = {}  [{}]",
        crn(r.supply.genesis),
        crn(r.supply.minted),
        crn(r.supply.burned),
        crn(r.supply.expected),
        if r.supply.invariant_holds {
            "invariant holds"
        } else {
            "INVARIANT BROKEN"
        }
    );
    outln!("  TVL {} uCRN\n", r.tvl_ucrn);
    outln!(
        "{:>5} {:>12} {:>12} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>6} {:>7}",
        "epoch",
        "rev.storage",
        "rev.compute",
        "tx fees",
        "emission",
        "rw.stor",
        "rw.comp",
        "rw.valid",
        "burned",
        "slashed",
        "faults",
        "prov/act/reg"
    );
    for e in &r.epochs {
        let burned = e
            .burned_fees
            .checked_add(e.burned_take)
            .and_then(|v| v.checked_add(e.burned_slash))
            .and_then(|v| v.checked_add(e.burned_forfeit))
            .unwrap_or_default();
        outln!(
            "{:>5} {:>12} {:>12} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>6} {:>3}/{}/{}",
            e.epoch,
            e.revenue.storage.ucrn(),
            e.revenue.compute.ucrn(),
            e.revenue.tx_fees.ucrn(),
            crn(e.emission_scheduled),
            crn(e.storage_rewards),
            crn(e.compute_rewards),
            crn(e.validator_rewards),
            burned.ucrn(),
            crn(e.slashed),
            e.faults,
            e.proven_providers,
            e.active_providers,
            e.registered_providers
        );
    }
    outln!("(revenue, fees and burn in uCRN; emission and rewards in CRN)");
}
