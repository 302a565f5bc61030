//! `cairn devnet`: the whole network on this machine.
//!
//! Until the chain lands (consensus, node API, providers), the devnet runs what exists: the
//! ledger, fed by the simulated workload, one block per block time, with its genesis and a
//! `default` devnet key written under the home directory. It says so when it starts.

use crate::Global;
use anyhow::{Context, Result};
use cairn_ledger::sim::{SimConfig, Simulation};
use clap::Args;
use std::time::{Duration, Instant};

/// Port of the devnet's node API on loopback.
pub const DEFAULT_API_PORT: u16 = 7700;

#[derive(Args, Debug)]
pub struct DevnetArgs {
    /// Validators in the devnet.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub validators: u64,
    /// Stop after this many blocks (default: run until Ctrl-C).
    #[arg(long)]
    pub blocks: Option<u64>,
    /// Block time in milliseconds.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub block_time_ms: u64,
}

pub fn run(global: &Global, args: DevnetArgs) -> Result<()> {
    let home = global.home_dir()?;
    std::fs::create_dir_all(&home)
        .with_context(|| format!("creating the devnet home {}", home.display()))?;
    let mut sim = Simulation::new(SimConfig {
        validators: usize::try_from(args.validators)?,
        chaos_percent: 5,
        ..SimConfig::default()
    })?;
    let genesis_path = home.join("genesis.toml");
    std::fs::write(&genesis_path, sim.genesis().to_toml()?)
        .with_context(|| format!("writing {}", genesis_path.display()))?;
    if !global.json {
        println!(
            "cairn devnet (ledger-only: consensus, node API and providers arrive with the chain issue)"
        );
        println!("  home     {}", home.display());
        println!("  genesis  {}", genesis_path.display());
        println!("  chain id {}", sim.genesis().chain_id);
    }
    let block_time = Duration::from_millis(args.block_time_ms);
    let mut next = Instant::now();
    let mut produced = 0u64;
    loop {
        if args.blocks.is_some_and(|limit| produced >= limit) {
            break;
        }
        next += block_time;
        let (_, outcome) = sim.step().context("applying a devnet block")?;
        produced += 1;
        let b = sim.ledger().state().check_invariants()?;
        if global.json {
            let line = serde_json::json!({
                "height": outcome.height,
                "state_root": outcome.state_root.to_string(),
                "txs": outcome.receipts.len(),
                "failed": outcome.receipts.iter().filter(|r| !r.ok()).count(),
                "supply_ucrn": b.total.ucrn().to_string(),
                "finished_epoch": outcome.finished_epoch,
            });
            println!("{line}");
        } else {
            println!(
                "height {:>6}  txs {:>3}  root {}  supply {}{}",
                outcome.height,
                outcome.receipts.len(),
                &outcome.state_root.to_string()[..16],
                b.total,
                outcome
                    .finished_epoch
                    .map(|e| format!("  (epoch {e} finished)"))
                    .unwrap_or_default()
            );
        }
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    Ok(())
}
