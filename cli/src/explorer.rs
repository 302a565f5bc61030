//! `cairn explorer` (the explorer role against a node) and `cairn stats` (the network summary
//! in the terminal).

use crate::Global;
use anyhow::{Context, Result};
use cairn_explorer::{Config, Explorer};
use clap::Args;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Port of the devnet's explorer on loopback.
pub const DEFAULT_EXPLORER_PORT: u16 = 7780;

#[derive(Args, Debug)]
pub struct ExplorerArgs {
    /// Where the dashboard and the JSON API listen.
    #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_EXPLORER_PORT)))]
    pub listen: SocketAddr,
    /// Directory of the index log [default: <home>/explorer].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Reference CRN price in USD for TVL and price comparisons [default: explorer/prices.toml].
    #[arg(long, value_name = "USD")]
    pub crn_usd: Option<f64>,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Explorer URL [default: $CAIRN_EXPLORER, else the running devnet's]; without one the
    /// summary is computed from the node API (last two epochs and the network view).
    #[arg(long, value_name = "URL")]
    pub explorer: Option<String>,
    /// Reference CRN price in USD when computing from the node.
    #[arg(long, value_name = "USD")]
    pub crn_usd: Option<f64>,
}

/// Starts an explorer following `node_url` (the devnet calls this too).
pub fn start(
    node_url: &str,
    data_dir: PathBuf,
    listen: SocketAddr,
    crn_usd: Option<f64>,
) -> Result<Explorer> {
    Explorer::start(Config {
        node_url: node_url.to_string(),
        data_dir,
        listen,
        crn_usd,
    })
    .context("starting the explorer")
}

pub fn run(global: &Global, args: ExplorerArgs) -> Result<()> {
    let node = crate::account::node_url(global)?;
    let dir = match args.data_dir {
        Some(d) => d,
        None => global.home_dir()?.join("explorer"),
    };
    let explorer = start(&node, dir.clone(), args.listen, args.crn_usd)?;
    if global.json {
        outln!(
            "{}",
            serde_json::json!({ "explorer": explorer.url(), "node": node, "data_dir": dir })
        );
    } else {
        outln!(
            "cairn explorer: {} following {node} (index in {})",
            explorer.url(),
            dir.display()
        );
        outln!("  Ctrl-C stops; starting again resumes from the index");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    explorer.stop();
    Ok(())
}

fn explorer_url(global: &Global, args: &StatsArgs) -> Result<Option<String>> {
    if let Some(url) = &args.explorer {
        return Ok(Some(url.clone()));
    }
    if let Some(url) = std::env::var_os("CAIRN_EXPLORER").filter(|v| !v.is_empty()) {
        return Ok(Some(url.to_string_lossy().into_owned()));
    }
    let path = global.home_dir()?.join("node.json");
    Ok(std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|d| d["explorer"].as_str().map(str::to_string)))
}

fn fetch_summary(url: &str) -> Result<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut response = agent
        .get(&format!("{}/api/v1/summary", url.trim_end_matches('/')))
        .call()
        .with_context(|| format!("asking the explorer at {url}"))?;
    response
        .body_mut()
        .read_json()
        .context("reading the explorer's summary")
}

fn crn(v: &Value) -> String {
    v.as_str().and_then(|s| s.parse::<u128>().ok()).map_or_else(
        || "-".to_string(),
        |u| cairn_types::Amount::from_ucrn(u).to_string(),
    )
}

pub fn stats(global: &Global, args: StatsArgs) -> Result<()> {
    let (summary, from) = match explorer_url(global, &args)? {
        Some(url) => match fetch_summary(&url) {
            Ok(s) => (s, format!("explorer {url}")),
            Err(e) if args.explorer.is_none() => {
                let node = crate::account::node_url(global)?;
                errln!("note: {e:#}; computing from the node at {node}");
                (
                    cairn_explorer::summary_from_node(&node, args.crn_usd)?,
                    format!("node {node}"),
                )
            }
            Err(e) => return Err(e),
        },
        None => {
            let node = crate::account::node_url(global)?;
            (
                cairn_explorer::summary_from_node(&node, args.crn_usd)?,
                format!("node {node}"),
            )
        }
    };
    if global.json {
        outln!("{summary}");
        return Ok(());
    }
    let p = &summary["providers"];
    let r = &summary["last_epoch_revenue"];
    outln!("Cairn network (from {from})");
    outln!("  height            {}", summary["height"]);
    outln!("  last epoch        {}", summary["last_epoch"]);
    outln!(
        "  providers         {} registered, {} active ({:+}), {} proven ({:+})",
        p["registered"],
        p["active"],
        p["active_growth"].as_i64().unwrap_or(0),
        p["proven"],
        p["proven_growth"].as_i64().unwrap_or(0)
    );
    outln!(
        "  TVL               {} (~${:.2} at ${}/CRN)",
        crn(&summary["tvl"]["crn"]),
        summary["tvl"]["usd"].as_f64().unwrap_or(0.0),
        summary["tvl"]["crn_usd"]
    );
    outln!("  supply            {}", crn(&summary["supply"]["total"]));
    outln!(
        "  emission          {} last epoch, {} next",
        crn(&summary["emission"]["last_epoch"]),
        crn(&summary["emission"]["next_epoch"])
    );
    outln!(
        "  revenue           {} last epoch (storage {}, compute {}; tx fees {})",
        crn(&r["total"]),
        crn(&r["storage"]),
        crn(&r["compute"]),
        crn(&r["tx_fees"])
    );
    Ok(())
}
