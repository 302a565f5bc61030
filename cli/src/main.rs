//! Run and use a Cairn network from one binary: devnet, node roles, keys, transactions and queries.
//!
//! The binary is thin: it parses arguments, calls into the library crates and prints. Every
//! command accepts `--json` for one machine-readable JSON document on stdout, and `--home`
//! (default `$CAIRN_HOME`, else `~/.cairn`) for where keys, genesis and data live.

// First, so its print macros are in scope in every module below.
#[macro_use]
mod output;

mod account;
mod bench;
mod devnet;
mod explorer;
mod keys;
mod market;
mod popw;
mod progress;
mod provider;
mod simulate;
mod store;
mod table;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "cairn",
    version,
    about = "Cairn: a DePIN for storage and GPU compute"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Print one JSON document instead of human-readable text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Home directory for keys, genesis and data [default: $CAIRN_HOME, else ~/.cairn].
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Node API URL [default: $CAIRN_NODE, else the running devnet's, else http://127.0.0.1:7700].
    #[arg(long, global = true, value_name = "URL")]
    pub node: Option<String>,
}

impl Global {
    /// `--home`, else `$CAIRN_HOME`, else `~/.cairn`.
    pub fn home_dir(&self) -> Result<PathBuf> {
        if let Some(home) = &self.home {
            return Ok(home.clone());
        }
        if let Some(home) = std::env::var_os("CAIRN_HOME").filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(home));
        }
        let user_home = std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .context("neither --home, CAIRN_HOME nor HOME is set")?;
        Ok(PathBuf::from(user_home).join(".cairn"))
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole network on this machine: validators, node API, a funded `default` key.
    Devnet(devnet::DevnetArgs),
    /// Run one validator from a config file (see `cairn devnet --init-only`).
    Node(devnet::NodeArgs),
    /// The node's chain id, finalized height, state root and validators.
    Status,
    /// Show an account; transfer, stake, delegate, undelegate.
    #[command(subcommand)]
    Account(account::AccountCommand),
    /// Look up transactions.
    #[command(subcommand)]
    Tx(account::TxCommand),
    /// Create, list, show, import and export keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Store and fetch files on the network's storage providers, or run one.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Serve public blobs to plain HTTP clients: GET /v1/blobs/{id} with Range, ETag, caching.
    Gateway(store::GatewayArgs),
    /// Measure a running network, or this machine's proof-of-compute backends.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Work with the ledger state machine directly, without a network.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Check deployment manifests.
    #[command(subcommand)]
    Manifest(market::ManifestCommand),
    /// Deploy a manifest: order, bids, the cheapest matching bid, lease, workload running (its start on chain).
    Deploy(market::DeployArgs),
    /// Your compute leases: ls, status, logs, events, close, topup.
    #[command(subcommand)]
    Lease(market::LeaseCommand),
    /// Join the network as a provider, update or leave it, show one; run a compute provider.
    #[command(subcommand)]
    Provider(market::ProviderCommand),
    /// Run the explorer against a node: index finalized blocks, serve the dashboard and API.
    Explorer(explorer::ExplorerArgs),
    /// Network summary: height, providers, TVL, supply, emission, last-epoch revenue.
    Stats(explorer::StatsArgs),
    /// Print the CLI reference (docs/cli.md) generated from every command's --help.
    #[command(hide = true)]
    CliReference,
}

#[derive(Subcommand, Debug)]
enum LedgerCommand {
    /// Drive a random but realistic workload through the ledger and print the economics.
    Simulate(simulate::SimulateArgs),
    /// Print the default genesis parameters as TOML.
    Params,
}

fn main() {
    let cli = Cli::parse();
    let json = cli.global.json;
    if let Err(error) = run(cli) {
        if json && error.downcast_ref::<Reported>().is_some() {
            // The command's own JSON document already says what failed: one document only.
        } else if json {
            let doc = serde_json::json!({ "error": format!("{error:#}") });
            outln!("{doc}");
        } else {
            errln!("error: {error:#}");
        }
        std::process::exit(1);
    }
}

/// A failure the command already reported in its `--json` document (and on stderr): exit
/// non-zero without a second document.
#[derive(Debug)]
pub struct Reported(pub String);

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Reported {}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Devnet(args) => devnet::run(&cli.global, args),
        Command::Node(args) => devnet::node(&cli.global, args),
        Command::Keys(command) => keys::run(&cli.global, command),
        Command::Status => account::status(&cli.global),
        Command::Bench(command) => bench::run(&cli.global, command),
        Command::Store(command) => store::run(&cli.global, command),
        Command::Gateway(args) => store::gateway(&cli.global, &args),
        Command::Account(command) => account::account(&cli.global, command),
        Command::Tx(command) => account::tx(&cli.global, command),
        Command::Ledger(LedgerCommand::Simulate(args)) => simulate::run(&cli.global, args),
        Command::Manifest(command) => market::manifest(&cli.global, command),
        Command::Deploy(args) => market::deploy(&cli.global, args),
        Command::Lease(command) => market::lease(&cli.global, command),
        Command::Provider(command) => market::provider_cmd(&cli.global, command),
        Command::Explorer(args) => explorer::run(&cli.global, args),
        Command::Stats(args) => explorer::stats(&cli.global, args),
        Command::CliReference => {
            out!("{}", cli_reference());
            Ok(())
        }
        Command::Ledger(LedgerCommand::Params) => {
            let params = cairn_ledger::Params::default();
            if cli.global.json {
                outln!("{}", serde_json::to_string_pretty(&params)?);
            } else {
                out!("{}", toml::to_string_pretty(&params)?);
            }
            Ok(())
        }
    }
}

/// The Markdown CLI reference: each visible command's long help, depth first. A test keeps
/// docs/cli.md equal to it, so the reference cannot drift from the code.
fn cli_reference() -> String {
    fn walk(command: &mut clap::Command, path: &str, out: &mut String) {
        let name = if path.is_empty() {
            command.get_name().to_string()
        } else {
            format!("{path} {}", command.get_name())
        };
        let help = command.render_long_help().to_string();
        out.push_str(&format!(
            "## `{name}`\n\n```text\n{}\n```\n\n",
            help.trim_end()
        ));
        let children: Vec<String> = command
            .get_subcommands()
            .filter(|c| !c.is_hide_set() && c.get_name() != "help")
            .map(|c| c.get_name().to_string())
            .collect();
        for child in children {
            if let Some(sub) = command.find_subcommand_mut(&child) {
                walk(sub, &name, out);
            }
        }
    }
    let mut out = String::from(
        "# CLI reference\n\nGenerated from `--help` by `cairn cli-reference > docs/cli.md`; a test fails when\nthis file and the binary disagree.\n\n",
    );
    let mut command = Cli::command();
    command.build();
    walk(&mut command, "", &mut out);
    out
}
