//! `cairn devnet` and `cairn node`: validators on real sockets with the node API.
//!
//! The devnet is the whole network in one process: N validators (each its own runtime,
//! lookup p2p on a loopback port, data directory), the node API of validator 0 on
//! `127.0.0.1:7700`, and a funded `default` devnet key in the home's keystore so that other
//! `cairn` commands work against it with no flags. Its genesis, keys and data live in the
//! home, so starting it again resumes from disk. `--init-only` writes the same files plus one
//! `cairn node` config per validator, for a cluster of separate processes.

use crate::Global;
use anyhow::{Context, Result, bail};
use cairn_chain::{ChainConfig, NodeConfig, NodeHandle, Validator, ValidatorConfig};
use cairn_client::Keystore;
use cairn_ledger::params::{GenesisAccount, GenesisValidator};
use cairn_ledger::{Genesis, Params};
use cairn_types::{Amount, Keypair};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Port of the devnet's node API on loopback.
pub const DEFAULT_API_PORT: u16 = 7700;
/// First p2p port of the devnet's validators (validator i listens on base + i).
pub const DEFAULT_P2P_BASE_PORT: u16 = 7800;
const DEVNET_CHAIN_ID: &str = "cairn-devnet";

#[derive(Args, Debug)]
pub struct DevnetArgs {
    /// Validators in the devnet (fixed when the devnet is first created in a home).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub validators: u64,
    /// Minimum block time in milliseconds (a genesis parameter, fixed at creation).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub block_time_ms: u64,
    /// Port of the node API.
    #[arg(long, default_value_t = DEFAULT_API_PORT)]
    pub api_port: u16,
    /// First validator p2p port (fixed at creation).
    #[arg(long, default_value_t = DEFAULT_P2P_BASE_PORT)]
    pub p2p_base_port: u16,
    /// Write genesis, keys and one `cairn node` config per validator, then exit.
    #[arg(long)]
    pub init_only: bool,
    /// Stop once this height is finalized (default: run until Ctrl-C).
    #[arg(long)]
    pub until_height: Option<u64>,
}

/// A `cairn node --config` file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    /// Genesis TOML, relative to this file.
    pub genesis: PathBuf,
    /// The validator key's name in the home's keystore.
    pub key: String,
    /// Storage directory, relative to this file.
    pub data_dir: PathBuf,
    /// Where the node API listens (`host:port`); omit to serve none.
    #[serde(default)]
    pub api: Option<SocketAddr>,
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// The node's TOML config (see `cairn devnet --init-only`).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    #[command(flatten)]
    pub passphrase: crate::keys::PassphraseArgs,
}

fn crn(v: u128) -> Amount {
    Amount::from_ucrn(v * cairn_types::UCRN_PER_CRN)
}

/// Loads the home's devnet genesis, or creates it with its keys.
fn init(home: &Path, args: &DevnetArgs) -> Result<(Genesis, Vec<Keypair>)> {
    let store = Keystore::open(home);
    let genesis_path = home.join("genesis.toml");
    if genesis_path.exists() {
        let text = std::fs::read_to_string(&genesis_path)
            .with_context(|| format!("reading {}", genesis_path.display()))?;
        let genesis = Genesis::from_toml(&text)
            .with_context(|| format!("{} is not a valid genesis", genesis_path.display()))?;
        let count = u64::try_from(genesis.validators.len())?;
        if count != args.validators && args.validators != 1 {
            bail!(
                "this home's devnet has {count} validators, not {}: use another --home for a new devnet",
                args.validators
            );
        }
        let keys = (0..genesis.validators.len())
            .map(|i| store.load(&format!("validator-{i}"), None))
            .collect::<Result<Vec<_>, _>>()
            .context("loading the devnet's validator keys")?;
        return Ok((genesis, keys));
    }
    std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
    let default = match store.info("default") {
        Ok(info) => info,
        Err(_) => store.create("default", None)?,
    };
    let mut keys = Vec::new();
    let mut validators = Vec::new();
    for i in 0..args.validators {
        let name = format!("validator-{i}");
        let info = match store.info(&name) {
            Ok(info) => info,
            Err(_) => store.create(&name, None)?,
        };
        keys.push(store.load(&name, None)?);
        let port = args
            .p2p_base_port
            .checked_add(u16::try_from(i)?)
            .context("p2p port out of range")?;
        validators.push(GenesisValidator {
            address: info.address,
            stake: crn(100_000),
            p2p_address: format!("127.0.0.1:{port}"),
        });
    }
    let genesis = Genesis {
        chain_id: DEVNET_CHAIN_ID.to_string(),
        genesis_time_ms: u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis(),
        )?,
        params: Params::default().with_block_time(args.block_time_ms),
        accounts: vec![GenesisAccount {
            address: default.address,
            balance: crn(1_000_000_000),
        }],
        validators,
        providers: vec![],
    };
    std::fs::write(&genesis_path, genesis.to_toml()?)
        .with_context(|| format!("writing {}", genesis_path.display()))?;
    Ok((genesis, keys))
}

fn write_node_files(home: &Path, genesis: &Genesis, api_port: u16) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for i in 0..genesis.validators.len() {
        let file = NodeFile {
            genesis: PathBuf::from("genesis.toml"),
            key: format!("validator-{i}"),
            data_dir: PathBuf::from(format!("devnet/validator-{i}")),
            api: Some(SocketAddr::from((
                [127, 0, 0, 1],
                api_port.saturating_add(u16::try_from(i)?),
            ))),
        };
        let path = home.join(format!("node-{i}.toml"));
        std::fs::write(&path, toml::to_string_pretty(&file)?)
            .with_context(|| format!("writing {}", path.display()))?;
        paths.push(path);
    }
    Ok(paths)
}

fn start(genesis: &Genesis, key: Keypair, data_dir: PathBuf) -> Result<Validator> {
    let config = ValidatorConfig::new(
        NodeConfig {
            genesis: genesis.clone(),
            key,
            partition_prefix: "cairn".to_string(),
            chain: ChainConfig::default(),
        },
        data_dir,
    );
    cairn_chain::start_validator(config).context("starting a validator")
}

/// Serves the API until Ctrl-C (or `until_height`), then stops everything cleanly.
fn serve(
    global: &Global,
    handle: NodeHandle,
    api: SocketAddr,
    until_height: Option<u64>,
    on_ready: impl FnOnce(&str),
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the API runtime")?;
    let json = global.json;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(api)
            .await
            .with_context(|| format!("binding the node API to {api}"))?;
        let url = format!("http://{}", listener.local_addr()?);
        on_ready(&url);
        let watched = handle.clone();
        let shutdown = async move {
            let until = async {
                match until_height {
                    Some(h) => loop {
                        if watched.height() >= h {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    },
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = until => {}
            }
        };
        cairn_api::serve(listener, handle, shutdown)
            .await
            .context("serving the node API")?;
        if !json {
            println!("stopping");
        }
        anyhow::Ok(())
    })
}

pub fn run(global: &Global, args: DevnetArgs) -> Result<()> {
    let home = global.home_dir()?;
    let (genesis, keys) = init(&home, &args)?;
    if args.init_only {
        let files = write_node_files(&home, &genesis, args.api_port)?;
        if global.json {
            let doc = serde_json::json!({ "home": home, "genesis": home.join("genesis.toml"), "node_configs": files });
            println!("{doc}");
        } else {
            println!("devnet initialised in {}", home.display());
            for f in files {
                println!(
                    "  cairn node --home {} --config {}",
                    home.display(),
                    f.display()
                );
            }
        }
        return Ok(());
    }
    let mut validators = Vec::new();
    for (i, key) in keys.into_iter().enumerate() {
        let dir = home.join(format!("devnet/validator-{i}"));
        validators.push(start(&genesis, key, dir)?);
    }
    let Some(first) = validators.first() else {
        bail!("the devnet has no validators");
    };
    let handle = first.handle().clone();
    let api = SocketAddr::from(([127, 0, 0, 1], args.api_port));
    let node_json = home.join("node.json");
    let json = global.json;
    let chain_id = genesis.chain_id.clone();
    let p2p: Vec<String> = genesis
        .validators
        .iter()
        .map(|v| v.p2p_address.clone())
        .collect();
    let height = handle.height();
    let result = serve(global, handle, api, args.until_height, |url| {
        let doc = serde_json::json!({ "api": url, "chain_id": chain_id, "p2p": p2p, "resumed_at_height": height });
        if let Err(e) = std::fs::write(&node_json, doc.to_string()) {
            eprintln!("warning: cannot write {}: {e}", node_json.display());
        }
        if json {
            println!("{doc}");
        } else {
            println!(
                "cairn devnet: chain {chain_id}, {} validator(s), resumed at height {height}",
                p2p.len()
            );
            println!(
                "  node API   {url}  (OpenAPI: {url}/v1/openapi.json, events: {url}/v1/events)"
            );
            println!("  p2p        {}", p2p.join(", "));
            println!("  home       {}", home.display());
            println!(
                "  account    `default` (devnet key, unencrypted) funded with 1,000,000,000 CRN"
            );
            println!("  Ctrl-C stops; starting again resumes from disk");
        }
    });
    for v in validators {
        v.shutdown().context("stopping a validator")?;
    }
    result
}

pub fn node(global: &Global, args: NodeArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let file: NodeFile = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid node config", args.config.display()))?;
    let base = args.config.parent().unwrap_or(Path::new("."));
    let genesis_path = base.join(&file.genesis);
    let genesis = Genesis::from_toml(
        &std::fs::read_to_string(&genesis_path)
            .with_context(|| format!("reading {}", genesis_path.display()))?,
    )
    .with_context(|| format!("{} is not a valid genesis", genesis_path.display()))?;
    let store = Keystore::open(&global.home_dir()?);
    let passphrase = if store.is_encrypted(&file.key)? {
        Some(args.passphrase.get(false)?)
    } else {
        None
    };
    let key = store.load(&file.key, passphrase.as_deref())?;
    if !genesis
        .validators
        .iter()
        .any(|v| v.address == key.address())
    {
        bail!(
            "key {} ({}) is not a genesis validator",
            file.key,
            key.address()
        );
    }
    let validator = start(&genesis, key, base.join(&file.data_dir))?;
    let handle = validator.handle().clone();
    let result = match file.api {
        Some(api) => serve(global, handle, api, None, |url| {
            if !global.json {
                println!("cairn node: chain {}, node API {url}", genesis.chain_id);
            }
        }),
        None => validator_wait(),
    };
    validator.shutdown().context("stopping the validator")?;
    result
}

fn validator_wait() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    Ok(())
}
