//! The compute market from the command line: `cairn manifest validate`, `cairn deploy`,
//! `cairn lease ...` and `cairn provider run`.

use crate::Global;
use crate::account::{check_before_signing, load_key, node_url, print};
use crate::keys::PassphraseArgs;
use anyhow::{Context, Result, bail};
use cairn_client::NodeClient;
use cairn_market::manifest;
use cairn_market::manifest::RuntimeKind;
use cairn_market::provider::{self, ProviderConfig, Runtimes};
use cairn_market::runtime::{Runtime, RuntimeError};
use cairn_market::tenant::{self, DeployError, DeployOptions, LeaseApi};
use cairn_types::tx::{CloseLease, TopUpLease};
use cairn_types::{Amount, BoundedString, LeaseId, TxBody};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum ManifestCommand {
    /// Check a manifest; every problem is printed with its line and field.
    Validate { file: PathBuf },
}

#[derive(Args, Debug)]
pub struct TenantArgs {
    /// Key that signs (from the home's keystore).
    #[arg(long, default_value = "default")]
    pub from: String,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The manifest (Akash SDL v2 shape plus `runtime`).
    pub file: PathBuf,
    /// Ask every provider whether it would bid, and why not; place nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Highest price per block, below the manifest's pricing (e.g. "1000 uCRN").
    #[arg(long)]
    pub max_price: Option<Amount>,
    /// The order's deposit, in blocks at the max price (it becomes the lease's escrow).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub deposit_blocks: u64,
    /// Blocks providers have to bid.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub bid_window_blocks: u64,
    /// Give up after this many seconds; a lease whose workload is not reported running by
    /// then is closed, its escrow refunded.
    #[arg(long, default_value_t = 120)]
    pub timeout_s: u64,
    #[command(flatten)]
    pub tenant: TenantArgs,
}

#[derive(Subcommand, Debug)]
pub enum LeaseCommand {
    /// Your leases on chain.
    Ls {
        #[command(flatten)]
        tenant: TenantArgs,
    },
    /// A lease on chain and its workload at the provider.
    Status {
        lease: LeaseId,
        #[command(flatten)]
        tenant: TenantArgs,
    },
    /// The workload's output.
    Logs {
        lease: LeaseId,
        /// Keep printing new output until the workload exits.
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        tenant: TenantArgs,
    },
    /// What the provider did with the lease.
    Events {
        lease: LeaseId,
        #[command(flatten)]
        tenant: TenantArgs,
    },
    /// Close the lease on chain (with a reason) and stop its workload.
    Close {
        lease: LeaseId,
        #[arg(long, default_value = "closed by the tenant")]
        reason: String,
        /// Send it even when the node's check says it would fail (the fee is charged).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        tenant: TenantArgs,
    },
    /// Add to the lease's escrow (a paused lease resumes).
    Topup {
        lease: LeaseId,
        /// With its unit: "12.5 CRN" or "500 uCRN".
        amount: Amount,
        /// Send it even when the node's check says it would fail (the fee is charged).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        tenant: TenantArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProviderCommand {
    /// Join a running network: sends RegisterProvider with the storage and/or compute
    /// offered (GPUs found through NVML), region, endpoint and bond.
    Register(crate::provider::RegisterArgs),
    /// Change what a registered provider offers or where it is reached (UpdateProvider);
    /// fields not given keep their value on chain.
    Update(crate::provider::UpdateArgs),
    /// Leave the network (LeaveProvider): leases close with the reason "provider left"
    /// and their unspent escrow goes back; shards are repaired onto other providers; the
    /// bond is released after the unbonding period, once no shard is left here.
    Leave(crate::provider::LeaveArgs),
    /// A provider's record: status, offer, stake, shards, leases, earnings, unbonding.
    Show(crate::provider::ShowArgs),
    /// Run a compute provider: bid on orders, run leases, serve the lease API and ingress.
    Run {
        /// The provider's TOML config.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Runs inside a process sandbox: relays the ingress socket and runs the workload.
    #[command(hide = true)]
    SandboxInit {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long)]
        port: Option<u16>,
        #[arg(long)]
        memory_bytes: u64,
        #[arg(last = true)]
        command: Vec<String>,
    },
}

pub fn manifest(global: &Global, command: ManifestCommand) -> Result<()> {
    let ManifestCommand::Validate { file } = command;
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    match manifest::parse(&text) {
        Ok(m) => {
            if global.json {
                outln!(
                    "{}",
                    json!({ "valid": true, "manifest_hash": m.hash(), "manifest": m })
                );
            } else {
                outln!(
                    "{}: valid ({} runtime, service {})",
                    file.display(),
                    m.runtime,
                    m.service
                );
                outln!("  manifest hash  {}", m.hash());
                outln!(
                    "  resources      {} millicores, {} memory bytes, {} storage bytes, {} GPU(s)",
                    m.cpu_millicores,
                    m.memory_bytes,
                    m.storage_bytes,
                    m.gpu_count
                );
                outln!("  max price      {}/block", m.max_price_per_block);
            }
            Ok(())
        }
        Err(e) => {
            if global.json {
                outln!("{}", json!({ "valid": false, "problems": e.problems }));
                std::process::exit(1);
            }
            for p in &e.problems {
                errln!(
                    "{}:{}:{}: {}: {}",
                    file.display(),
                    p.line,
                    p.column,
                    p.field,
                    p.message
                );
            }
            bail!(
                "{} is not a valid manifest ({} problem(s))",
                file.display(),
                e.problems.len()
            )
        }
    }
}

pub fn deploy(global: &Global, args: DeployArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let m = manifest::parse(&text).map_err(|e| {
        for p in &e.problems {
            errln!(
                "{}:{}:{}: {}: {}",
                args.file.display(),
                p.line,
                p.column,
                p.field,
                p.message
            );
        }
        anyhow::anyhow!(
            "{} is not a valid manifest: nothing was ordered",
            args.file.display()
        )
    })?;
    let node = NodeClient::new(&node_url(global)?);
    let max_price = args
        .max_price
        .map_or(m.max_price_per_block, |p| p.min(m.max_price_per_block));
    if args.dry_run {
        let verdicts = tenant::dry_run(&node, &m, max_price)?;
        if global.json {
            outln!(
                "{}",
                json!({ "manifest_hash": m.hash(), "max_price_per_block": max_price, "providers": verdicts })
            );
        } else {
            outln!(
                "dry run: {} at most {}/block; nothing placed",
                m.hash(),
                max_price
            );
            if verdicts.is_empty() {
                outln!("  no active providers on chain");
            }
            for v in &verdicts {
                outln!("  {} ({}): {}", v.provider, v.endpoint, v.verdict);
            }
        }
        return Ok(());
    }
    let key = load_key(global, &args.tenant.from, &args.tenant.passphrase)?;
    let opts = DeployOptions {
        max_price_per_block: args.max_price,
        deposit_blocks: args.deposit_blocks,
        bid_window_blocks: args.bid_window_blocks,
        timeout: Duration::from_secs(args.timeout_s),
    };
    let json_out = global.json;
    let mut progress = |line: &str| {
        if !json_out {
            outln!("{line}");
        }
    };
    match tenant::deploy(&node, &key, &text, &opts, &mut progress) {
        Ok(d) => {
            if global.json {
                outln!("{}", serde_json::to_value(&d)?);
            } else {
                outln!(
                    "{} with {} at {}/block",
                    d.lease,
                    d.provider,
                    d.price_per_block
                );
                outln!(
                    "  started on chain at height {} (billed from the next block); running after {} blocks ({} ms) from the order",
                    d.started_height,
                    d.running_height.saturating_sub(d.order_height),
                    d.order_to_running_ms
                );
                outln!("  url  {}", d.url);
            }
            Ok(())
        }
        Err(DeployError::NoBid {
            order,
            deadline,
            reasons,
        }) => {
            if global.json {
                outln!(
                    "{}",
                    json!({ "error": "no bid", "order": order, "bid_deadline": deadline, "providers": reasons })
                );
                std::process::exit(1);
            }
            errln!("no provider bid on {order} before height {deadline}:");
            for r in &reasons {
                errln!("  {} ({}): {}", r.provider, r.endpoint, r.verdict);
            }
            bail!(
                "no bid: the order expires on chain and its deposit returns to you (only its fee is spent)"
            )
        }
        Err(DeployError::LeaseClosed(failure)) => {
            if global.json {
                println!(
                    "{}",
                    json!({ "error": "lease closed", "failure": *failure })
                );
                std::process::exit(1);
            }
            bail!("deploy failed: {failure}")
        }
        Err(e) => Err(e.into()),
    }
}

fn lease_api(node: &NodeClient, lease: LeaseId, key: &cairn_types::Keypair) -> Result<LeaseApi> {
    let (l, _) = tenant::lease(node, lease)?;
    let endpoint = tenant::providers(node)?
        .into_iter()
        .find(|(a, _)| *a == l.provider)
        .map(|(_, e)| e)
        .with_context(|| {
            format!(
                "{lease}'s provider {} is not an active provider",
                l.provider
            )
        })?;
    Ok(LeaseApi::new(&endpoint, key.clone()))
}

pub fn lease(global: &Global, command: LeaseCommand) -> Result<()> {
    let node = NodeClient::new(&node_url(global)?);
    match command {
        LeaseCommand::Ls { tenant } => {
            let key = load_key(global, &tenant.from, &tenant.passphrase)?;
            // The node keeps only this tenant's leases; every page of them.
            let mine = node.list_all(&format!("/v1/leases?tenant={}", key.address()), "leases")?;
            if global.json {
                outln!("{}", json!({ "leases": mine }));
            } else {
                // Amounts arrive as uCRN digit strings; people read CRN.
                use crate::table::{Table, crn};
                let mut table =
                    Table::new(&["LEASE", "STATE", "PRICE/BLOCK", "ESCROW LEFT", "PROVIDER"]);
                for l in &mine {
                    table.row(vec![
                        format!("lease-{}", l["lease"]["id"]),
                        l["projected_state"].as_str().unwrap_or("?").to_string(),
                        crn(&l["lease"]["price_per_block"]),
                        crn(&l["escrow_left"]),
                        l["lease"]["provider"].as_str().unwrap_or("?").to_string(),
                    ]);
                }
                if mine.is_empty() {
                    outln!("no leases");
                } else {
                    table.print(0);
                }
            }
            Ok(())
        }
        LeaseCommand::Status { lease, tenant } => {
            let key = load_key(global, &tenant.from, &tenant.passphrase)?;
            let (_, chain) = tenant::lease(&node, lease)?;
            let workload = lease_api(&node, lease, &key)?
                .status(lease)
                .unwrap_or_else(|e| json!({ "error": e.to_string() }));
            if global.json {
                return print(global, &json!({ "chain": chain, "provider": workload }));
            }
            print_lease_status(&chain, &workload);
            Ok(())
        }
        LeaseCommand::Logs {
            lease,
            follow,
            tenant,
        } => {
            let key = load_key(global, &tenant.from, &tenant.passphrase)?;
            let api = lease_api(&node, lease, &key)?;
            let mut out = crate::output::Stdout::new();
            api.logs(lease, follow, &mut out)
                .map_err(anyhow::Error::msg)
        }
        LeaseCommand::Events { lease, tenant } => {
            let key = load_key(global, &tenant.from, &tenant.passphrase)?;
            let doc = lease_api(&node, lease, &key)?
                .events(lease)
                .map_err(anyhow::Error::msg)?;
            if global.json {
                outln!("{doc}");
            } else {
                for e in doc["events"].as_array().into_iter().flatten() {
                    outln!(
                        "{}  {}",
                        e["time_ms"]
                            .as_u64()
                            .map_or_else(|| "-".to_string(), crate::table::utc),
                        e["message"].as_str().unwrap_or_default()
                    );
                }
            }
            Ok(())
        }
        LeaseCommand::Close {
            lease,
            reason,
            force,
            tenant,
        } => {
            let key = load_key(global, &tenant.from, &tenant.passphrase)?;
            let reason = BoundedString::new(&reason).context("--reason: at most 256 bytes")?;
            let body = TxBody::CloseLease(CloseLease { lease, reason });
            check_before_signing(&node, &key.address(), &body, None, force)?;
            let hash = node.send(&key, body, None)?;
            let record = node.wait_finalized(&hash, Duration::from_secs(60))?;
            if !record["receipt"]["error"].is_null() {
                bail!(
                    "closing {lease} failed on chain: {}",
                    record["receipt"]["error"]
                );
            }
            // The provider stops it on seeing the close; asking directly makes it immediate.
            let stopped = lease_api(&node, lease, &key)
                .and_then(|a| a.close(lease).map_err(anyhow::Error::msg));
            let (_, chain) = tenant::lease(&node, lease)?;
            print(
                global,
                &json!({ "lease": lease, "tx": hash, "chain": chain, "provider": stopped.map_err(|e| e.to_string()).err() }),
            )
        }
        LeaseCommand::Topup {
            lease,
            amount,
            force,
            tenant,
        } => {
            let key = load_key(global, &tenant.from, &tenant.passphrase)?;
            let body = TxBody::TopUpLease(TopUpLease { lease, amount });
            check_before_signing(&node, &key.address(), &body, None, force)?;
            let hash = node.send(&key, body, None)?;
            let record = node.wait_finalized(&hash, Duration::from_secs(60))?;
            if !record["receipt"]["error"].is_null() {
                bail!(
                    "topping up {lease} failed on chain: {}",
                    record["receipt"]["error"]
                );
            }
            let (_, chain) = tenant::lease(&node, lease)?;
            print(
                global,
                &json!({ "lease": lease, "tx": hash, "chain": chain }),
            )
        }
    }
}

/// The runtimes this machine offers, each with why not when it does not.
pub fn runtimes(provider_address: &str) -> Runtimes {
    let init = std::env::current_exe()
        .map(|exe| {
            vec![
                exe.to_string_lossy().into_owned(),
                "provider".into(),
                "sandbox-init".into(),
            ]
        })
        .map_err(|e| RuntimeError::Unavailable {
            runtime: RuntimeKind::Process,
            reason: format!("this program's path, for the sandbox's init: {e}"),
        });
    let process = init.and_then(|init| {
        cairn_market::runtime::process::ProcessRuntime::new(init)
            .map(|r| Arc::new(r) as Arc<dyn Runtime>)
    });
    let container = cairn_market::runtime::container::ContainerRuntime::connect(provider_address)
        .map(|r| Arc::new(r) as Arc<dyn Runtime>);
    Runtimes { process, container }
}

pub fn provider_cmd(global: &Global, command: ProviderCommand) -> Result<()> {
    match command {
        ProviderCommand::Register(args) => crate::provider::register(global, args),
        ProviderCommand::Update(args) => crate::provider::update(global, args),
        ProviderCommand::Leave(args) => crate::provider::leave(global, args),
        ProviderCommand::Show(args) => crate::provider::show(global, args),
        ProviderCommand::SandboxInit {
            socket,
            port,
            memory_bytes,
            command,
        } => {
            std::process::exit(cairn_market::runtime::process::sandbox_init(
                &socket,
                port,
                memory_bytes,
                &command,
            ));
        }
        ProviderCommand::Run { config, passphrase } => {
            let text = std::fs::read_to_string(&config)
                .with_context(|| format!("reading {}", config.display()))?;
            let mut cfg: ProviderConfig = toml::from_str(&text)
                .with_context(|| format!("{} is not a valid provider config", config.display()))?;
            if cfg.data_dir.is_relative() {
                cfg.data_dir = config
                    .parent()
                    .unwrap_or(std::path::Path::new("."))
                    .join(&cfg.data_dir);
            }
            let key = load_key(global, &cfg.key, &passphrase)?;
            let listen = cfg.listen.to_string();
            let node = NodeClient::new(&cfg.node);
            let role = crate::provider::Role::Compute {
                listen: &listen,
                capacity: &cfg.capacity,
            };
            crate::provider::require_registered(global, &node, &cfg.key, &key.address(), role)?;
            let handle = provider::start(&cfg, key.clone(), runtimes(&key.address().to_string()))?;
            if global.json {
                outln!(
                    "{}",
                    json!({ "provider": handle.address, "url": handle.url })
                );
            } else {
                outln!(
                    "cairn provider {} serving the lease API and ingress at {}",
                    handle.address,
                    handle.url
                );
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let _ = tokio::signal::ctrl_c().await;
            });
            handle.stop();
            Ok(())
        }
    }
}

/// Starts the devnet's compute-market providers (`market-N` keys in the home, registered at
/// genesis) against the devnet's node API. A provider that cannot start is reported and
/// skipped: the chain runs without it.
pub fn start_devnet_providers(
    home: &std::path::Path,
    genesis: &cairn_ledger::Genesis,
    node_url: &str,
    json_out: bool,
) -> Vec<(String, provider::ProviderHandle)> {
    let (home, genesis, node_url) = (home.to_path_buf(), genesis.clone(), node_url.to_string());
    // Runtimes start their own tokio runtimes: set up outside the caller's async context.
    let setup = std::thread::spawn(move || {
        let store = cairn_client::Keystore::open(&home);
        let mut out = Vec::new();
        // A GPU-hour below the cheapest listed cloud one (the table is checked by a test).
        let gpu_base = cairn_explorer::prices::PriceTable::builtin().map_or(1, |t| {
            t.default_gpu_ucrn_per_block(genesis.params.block_time_ms)
        });
        for (i, p) in genesis
            .providers
            .iter()
            .filter(|p| p.claimed_int8_ops == 0)
            .enumerate()
        {
            let name = format!("market-{i}");
            let Ok(key) = store.load(&name, None) else {
                continue;
            };
            if key.address() != p.address {
                continue;
            }
            let Some(listen) = p
                .endpoint
                .strip_prefix("http://")
                .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
            else {
                errln!(
                    "warning: {name}'s endpoint {} is not http://IP:PORT",
                    p.endpoint
                );
                continue;
            };
            let cfg = ProviderConfig {
                key: name.clone(),
                node: node_url.clone(),
                listen,
                data_dir: home.join(format!("devnet/{name}")),
                poll_ms: (genesis.params.block_time_ms / 2).clamp(50, 1_000),
                capacity: provider::devnet_capacity(),
                prices: provider::devnet_prices(u64::try_from(i).unwrap_or(0), gpu_base),
            };
            match provider::start(&cfg, key.clone(), runtimes(&key.address().to_string())) {
                Ok(h) => out.push((name, h)),
                Err(e) => {
                    if !json_out {
                        errln!("warning: compute provider {name} did not start: {e}");
                    }
                }
            }
        }
        out
    });
    setup.join().unwrap_or_default()
}

/// `lease status` for people: what the chain says in a few lines, then what the provider
/// says of the workload. The full record is under `--json`.
fn print_lease_status(chain: &serde_json::Value, workload: &serde_json::Value) {
    use crate::table::{crn, tag};
    let l = &chain["lease"];
    outln!(
        "lease-{}  {}  provider {}",
        l["id"],
        chain["projected_state"].as_str().unwrap_or("?"),
        l["provider"].as_str().unwrap_or("?")
    );
    outln!(
        "  price {}/block, escrow left {}, paid {}",
        crn(&l["price_per_block"]),
        crn(&chain["escrow_left"]),
        crn(&l["paid_total"])
    );
    match l["started_height"].as_u64() {
        Some(h) => outln!(
            "  billed from block {} (the provider reported it running)",
            h + 1
        ),
        None => outln!("  not started: nothing billed"),
    }
    if tag(&l["state"], "state") == "closed" {
        outln!(
            "  closed at block {} by the {}: {}",
            l["state"]["at"],
            l["state"]["initiator"].as_str().unwrap_or("?"),
            l["state"]["reason"].as_str().unwrap_or("-")
        );
    }
    match workload["error"].as_str() {
        Some(e) => outln!("  workload: the provider did not answer: {e}"),
        None => outln!(
            "  workload: {}",
            workload["state"]
                .as_str()
                .or_else(|| workload["workload"].as_str())
                .unwrap_or("unknown")
        ),
    }
    outln!("(--json for the whole record)");
}
