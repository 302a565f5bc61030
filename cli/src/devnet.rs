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
use cairn_ledger::params::{GenesisAccount, GenesisProvider, GenesisValidator};
use cairn_ledger::{Genesis, Params};
use cairn_types::{Amount, Capacity, Keypair};
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
    /// Compute providers that prove their CPU's int8 rate by answering GEMM challenges
    /// (registered at genesis with a claim calibrated on this machine; fixed at creation).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=8))]
    pub compute_provers: u64,
    /// Port in the endpoint the first compute prover registers (prover i: base + i; fixed at
    /// creation). A prover answers its challenges through the chain and opens no port of
    /// its own; the endpoint is where its operator would serve one, kept clear of the others.
    #[arg(long, default_value_t = DEFAULT_PROVER_BASE_PORT)]
    pub compute_prover_base_port: u16,
    /// Compute-market providers (bid on orders, run leases through bubblewrap or Docker,
    /// serve the lease API and ingress), registered at genesis (fixed at creation).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=8))]
    pub compute_providers: u64,
    /// Port of the first compute provider's lease API and ingress (provider i: base + i;
    /// fixed at creation).
    #[arg(long, default_value_t = 7950)]
    pub compute_provider_base_port: u16,
    /// Blocks a lease with empty escrow stays paused before it closes (genesis parameter).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub lease_grace_blocks: Option<u64>,
    /// Blocks per epoch (a genesis parameter, fixed at creation; default 60).
    #[arg(long, value_parser = clap::value_parser!(u64).range(4..=100_000))]
    pub epoch_length_blocks: Option<u64>,
    /// Wall time of a compute challenge at the claimed rate (genesis parameter). By default
    /// 1% of an epoch (at least one block, at most 4 s) with a challenge every epoch the 1%
    /// budget allows, so devnet provers are proven within their first epochs; given, the
    /// challenge interval grows instead to keep proving within 1% of a provider's time.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub compute_challenge_ms: Option<u64>,
    /// Port of the explorer (dashboard and JSON API) the devnet serves.
    #[arg(long, default_value_t = crate::explorer::DEFAULT_EXPLORER_PORT)]
    pub explorer_port: u16,
    /// Do not serve the explorer.
    #[arg(long)]
    pub no_explorer: bool,
    /// Generate load: transfers, delegations and compute leases from the `default` key.
    #[arg(long)]
    pub demo: bool,
    /// Storage providers, each registered at genesis with its own port and data directory
    /// (fixed at creation), run in this process with a repairer. Eight, so that a 4+2 blob
    /// has two providers to repair a faulted shard onto.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(0..=32))]
    pub storage_providers: u64,
    /// Port of the first storage provider (provider i listens on base + i; fixed at creation).
    #[arg(long, default_value_t = DEFAULT_STORAGE_BASE_PORT)]
    pub storage_base_port: u16,
    /// Register the storage providers at genesis but run none of them here: each runs as its
    /// own process (`cairn store serve --key storage-i --listen <its endpoint>`), so it can
    /// be stopped alone. The repairer still runs in the devnet.
    #[arg(long)]
    pub storage_external: bool,
    /// Shards each validator's timed auditor checks per epoch (the same sample for all, drawn
    /// a quarter into the epoch; `cairn_storage::auditor`); 0 turns the auditors off.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(0..=64))]
    pub audited_shards_per_epoch: u16,
    /// Port of the gateway (public blobs over plain HTTP) the devnet serves.
    #[arg(long, default_value_t = DEFAULT_GATEWAY_PORT)]
    pub gateway_port: u16,
    /// Do not serve the gateway.
    #[arg(long)]
    pub no_gateway: bool,
    /// How the in-process storage providers write and read shard files: `direct` (around
    /// the page cache) or `cached` (through it); see `cairn store serve --shard-io`.
    #[arg(long, default_value_t = cairn_storage::IoMode::Direct)]
    pub shard_io: cairn_storage::IoMode,
}

/// First port in the devnet's compute provers' endpoints: 7970..=7977, after the compute
/// providers' (7950 + i, at most 8).
pub const DEFAULT_PROVER_BASE_PORT: u16 = 7970;
/// First port of the devnet's storage providers: 7900..=7931 sits between the validators'
/// p2p ports (7800 + i) and the compute providers' (7950 + i).
pub const DEFAULT_STORAGE_BASE_PORT: u16 = 7900;
/// Port of the devnet's gateway (beside the explorer's 7780).
pub const DEFAULT_GATEWAY_PORT: u16 = 7790;
/// Storage each devnet provider declares.
const STORAGE_CAPACITY_BYTES: u64 = 64 << 30;
const STORAGE_REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];

/// The compute provers' share of this machine's int8 rate they claim: below what they reach
/// so that scheduling noise on a shared machine does not leave them unproven.
const CLAIM_SHARE_PERCENT: u64 = 60;

/// This machine's int8 rate on the CPU backend, from one small product (about 0.1 s).
fn calibrate_int8_ops() -> Result<u64> {
    use cairn_compute::popw::{CpuBackend, GemmBackend};
    let shape = cairn_proofs::GemmShape {
        m: 512,
        k: 4096,
        n: 512,
    };
    let seed = cairn_types::Hash::domain("cairn.devnet.calibrate", &[]);
    let (a, b) = (
        cairn_proofs::compute::generate_a(&seed, shape),
        cairn_proofs::compute::generate_b(&seed, shape),
    );
    let backend = CpuBackend::new();
    backend.gemm(&a, &b, shape)?;
    let start = std::time::Instant::now();
    backend.gemm(&a, &b, shape)?;
    let micros = start.elapsed().as_micros().max(1);
    Ok(u64::try_from(shape.ops() * 1_000_000 / micros).unwrap_or(u64::MAX))
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
    /// Shards this validator's timed auditor checks per epoch through its own node API
    /// (`cairn_storage::auditor`); 0 turns it off. Needs `api`.
    #[serde(default = "default_audited_shards")]
    pub audited_shards_per_epoch: u16,
}

fn default_audited_shards() -> u16 {
    2
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
    let mut accounts = vec![GenesisAccount {
        address: default.address,
        balance: crn(1_000_000_000),
    }];
    let mut keys = Vec::new();
    let mut validators = Vec::new();
    for i in 0..args.validators {
        let name = format!("validator-{i}");
        let info = match store.info(&name) {
            Ok(info) => info,
            Err(_) => store.create(&name, None)?,
        };
        keys.push(store.load(&name, None)?);
        // Validators send transactions of their own (timed-audit reports): fees.
        accounts.push(GenesisAccount {
            address: info.address,
            balance: crn(10_000),
        });
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
    let mut params = Params::default();
    if let Some(blocks) = args.epoch_length_blocks {
        params.epoch_length_blocks = blocks;
    }
    if let Some(ms) = args.compute_challenge_ms {
        params.compute_challenge_ms = ms;
    }
    if let Some(blocks) = args.lease_grace_blocks {
        params.lease_grace_blocks = blocks;
    }
    let mut params = params.with_block_time(args.block_time_ms);
    if args.compute_challenge_ms.is_none() {
        // A devnet prover should be proven within a few epochs, not after the production
        // interval (12 epochs): shorten the challenge to 1% of an epoch where the block time
        // allows, then challenge as often as the 1% budget permits.
        params.compute_challenge_ms = (params.epoch_ms() / 100).clamp(
            params.block_time_ms,
            params.compute_challenge_ms.max(params.block_time_ms),
        );
        params.compute_challenge_interval_epochs = params.min_compute_challenge_interval_epochs();
    }
    params
        .validate()
        .context("these devnet flags give invalid genesis parameters")?;
    let mut providers = Vec::new();
    if let Some(share) = CLAIM_SHARE_PERCENT.checked_div(args.compute_provers) {
        let claim = calibrate_int8_ops()? / 100 * share;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let gpus: Vec<cairn_types::GpuSpec> = cairn_compute::gpu::discover()
            .gpus()
            .iter()
            .map(cairn_compute::gpu::GpuInfo::spec)
            .collect();
        for i in 0..args.compute_provers {
            let name = format!("compute-{i}");
            let info = match store.info(&name) {
                Ok(info) => info,
                Err(_) => store.create(&name, None)?,
            };
            accounts.push(GenesisAccount {
                address: info.address,
                balance: crn(100_000),
            });
            let port = args
                .compute_prover_base_port
                .checked_add(u16::try_from(i)?)
                .context("compute prover port out of range")?;
            providers.push(GenesisProvider {
                address: info.address,
                endpoint: format!("http://127.0.0.1:{port}"),
                region: "local".to_string(),
                capacity: Capacity {
                    cpu_millicores: u64::try_from(cores)? * 1_000,
                    memory_bytes: 4 << 30,
                    gpus: cairn_types::BoundedVec::new(gpus.clone()).unwrap_or_default(),
                    ..Capacity::default()
                },
                commission_bps: 500,
                bond: crn(10_000),
                claimed_int8_ops: claim,
            });
        }
    }
    // Compute-market providers: no proof-of-compute claim, their own keys and ports.
    for i in 0..args.compute_providers {
        let name = format!("market-{i}");
        let info = match store.info(&name) {
            Ok(info) => info,
            Err(_) => store.create(&name, None)?,
        };
        let port = args
            .compute_provider_base_port
            .checked_add(u16::try_from(i)?)
            .context("compute provider port out of range")?;
        let capacity = cairn_market::provider::devnet_capacity();
        accounts.push(GenesisAccount {
            address: info.address,
            balance: crn(100_000),
        });
        providers.push(GenesisProvider {
            address: info.address,
            endpoint: format!("http://127.0.0.1:{port}"),
            region: "local".to_string(),
            capacity: Capacity {
                cpu_millicores: capacity.cpu_millicores,
                memory_bytes: capacity.memory_bytes,
                storage_bytes: capacity.storage_bytes,
                gpus: cairn_types::BoundedVec::new(
                    cairn_compute::gpu::discover()
                        .gpus()
                        .iter()
                        .map(cairn_compute::gpu::GpuInfo::spec)
                        .collect(),
                )
                .unwrap_or_default(),
            },
            commission_bps: 500,
            bond: crn(10_000),
            claimed_int8_ops: 0,
        });
    }
    // Storage providers (design §6): registered here, started by `run`.
    for i in 0..args.storage_providers {
        let name = format!("storage-{i}");
        let info = match store.info(&name) {
            Ok(info) => info,
            Err(_) => store.create(&name, None)?,
        };
        let port = args
            .storage_base_port
            .checked_add(u16::try_from(i)?)
            .context("storage port out of range")?;
        accounts.push(GenesisAccount {
            address: info.address,
            balance: crn(100_000),
        });
        providers.push(GenesisProvider {
            address: info.address,
            endpoint: format!("http://127.0.0.1:{port}"),
            region: STORAGE_REGIONS[usize::try_from(i)? % STORAGE_REGIONS.len()].to_string(),
            capacity: Capacity {
                storage_bytes: STORAGE_CAPACITY_BYTES,
                ..Capacity::default()
            },
            commission_bps: 500,
            bond: crn(10_000),
            claimed_int8_ops: 0,
        });
    }
    let genesis = Genesis {
        chain_id: DEVNET_CHAIN_ID.to_string(),
        genesis_time_ms: u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis(),
        )?,
        params,
        accounts,
        validators,
        providers,
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
            audited_shards_per_epoch: default_audited_shards(),
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

/// Serves the API until Ctrl-C (or `until_height`), then stops everything cleanly:
/// `on_ready` starts the roles once the API listens, and `on_stop` stops them while it
/// still answers, so that no role logs an error about a node that went away before it.
fn serve<R: Send + 'static>(
    global: &Global,
    handle: NodeHandle,
    api: SocketAddr,
    until_height: Option<u64>,
    on_ready: impl FnOnce(&str) -> R,
    on_stop: impl FnOnce(R) + Send + 'static,
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
        let roles = on_ready(&url);
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
            if !json {
                outln!("stopping");
            }
            // Stopping joins threads: off the runtime's workers, which keep serving the
            // roles' last requests meanwhile.
            if tokio::task::spawn_blocking(move || on_stop(roles))
                .await
                .is_err()
            {
                errln!("a role panicked while stopping");
            }
        };
        cairn_api::serve(listener, handle, shutdown)
            .await
            .context("serving the node API")?;
        anyhow::Ok(())
    })
}

/// What a devnet runs beside its validators, stopped together.
#[derive(Default)]
struct Roles {
    market: Vec<(String, cairn_market::provider::ProviderHandle)>,
    storage: Option<cairn_storage::DevnetStorage>,
    gateway: Option<cairn_storage::GatewayHandle>,
    explorer: Option<cairn_explorer::Explorer>,
    demo: Option<std::thread::JoinHandle<()>>,
    provers: Vec<std::thread::JoinHandle<()>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Roles {
    /// Stops every role and waits for it, the load generator and provers first (they
    /// send transactions), then the services.
    fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(demo) = self.demo {
            let _ = demo.join();
        }
        for prover in self.provers {
            let _ = prover.join();
        }
        for (_, provider) in self.market {
            provider.stop();
        }
        if let Some(s) = self.storage {
            s.stop();
        }
        if let Some(g) = self.gateway {
            g.stop();
        }
        if let Some(explorer) = self.explorer {
            explorer.stop();
        }
    }
}

/// The lock a running devnet holds on its home: its pid inside, locked for its lifetime.
const LOCK_FILE: &str = "devnet.lock";

/// Takes the home's devnet lock, or says which process holds it. Two devnets on one home
/// would fight over its data directories and ports; the second one used to hang silently.
/// The lock is the kernel's (`flock`), so it goes with its process, SIGKILL included.
fn lock_home(home: &Path) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
    let path = home.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            let who = if pid.is_empty() {
                "another process".to_string()
            } else {
                format!("process {pid}")
            };
            bail!(
                "a devnet is already running on {} ({who} holds {}): stop it, or give this one \
                 another home with --home DIR and other ports",
                home.display(),
                path.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
}

pub fn run(global: &Global, args: DevnetArgs) -> Result<()> {
    let home = global.home_dir()?;
    let _lock = lock_home(&home)?;
    let (genesis, keys) = init(&home, &args)?;
    if args.init_only {
        let files = write_node_files(&home, &genesis, args.api_port)?;
        if global.json {
            let doc = serde_json::json!({ "home": home, "genesis": home.join("genesis.toml"), "node_configs": files });
            outln!("{doc}");
        } else {
            outln!("devnet initialised in {}", home.display());
            for f in files {
                outln!(
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
    let block_time = Duration::from_millis(genesis.params.block_time_ms);
    let store = Keystore::open(&home);
    let prover_keys: Vec<(String, Keypair)> = genesis
        .providers
        .iter()
        .filter(|p| p.claimed_int8_ops > 0)
        .enumerate()
        .filter_map(|(i, _)| {
            let name = format!("compute-{i}");
            store.load(&name, None).ok().map(|key| (name, key))
        })
        .collect();
    let on_ready = |url: &str| {
        let mut roles = Roles::default();
        let stop = std::sync::Arc::clone(&roles.stop);
        let market = crate::market::start_devnet_providers(&home, &genesis, url, json);
        let mut storage = None;
        let mut gateway = None;
        let mut explorer = None;
        let mut demo = None;
        let mut provers = Vec::new();
        match start_storage(
            &home,
            &genesis,
            url,
            !args.storage_external,
            args.shard_io,
            args.audited_shards_per_epoch,
            json,
        ) {
            Ok(s) => storage = Some(s),
            Err(e) => {
                errln!("warning: storage providers did not start: {e:#}");
            }
        }
        if !args.no_gateway {
            let listen = SocketAddr::from(([127, 0, 0, 1], args.gateway_port));
            match cairn_storage::start_gateway(url, listen) {
                Ok(g) => gateway = Some(g),
                Err(e) => errln!("warning: gateway: {e}"),
            }
        }
        // Explorer role (design §8) and the --demo load generator: one block of their own.
        if !args.no_explorer {
            let listen = SocketAddr::from(([127, 0, 0, 1], args.explorer_port));
            match crate::explorer::start(url, home.join("explorer"), listen, None) {
                Ok(e) => explorer = Some(e),
                Err(e) => errln!("warning: {e:#}"),
            }
        }
        if args.demo {
            let tenant = store.load("default", None);
            let provider = prover_keys.first().map(|(_, k)| k.clone());
            match (tenant, provider) {
                (Ok(tenant), Some(provider)) => {
                    let (url, stop) = (url.to_string(), std::sync::Arc::clone(&stop));
                    demo = Some(std::thread::spawn(move || {
                        cairn_explorer::demo::run(
                            &url,
                            &tenant,
                            &provider,
                            None,
                            block_time * 2,
                            &stop,
                            |step| match step {
                                Ok(line) if !json => outln!("  {line}"),
                                Ok(_) => {}
                                Err(e) => errln!("  demo: {e}"),
                            },
                        );
                    }));
                }
                _ => errln!(
                    "warning: --demo needs the `default` key and a compute provider (--compute-provers >= 1)"
                ),
            }
        }
        let explorer_url = explorer.as_ref().map(|e| e.url().to_string());
        for (name, key) in prover_keys {
            let (url, stop) = (url.to_string(), std::sync::Arc::clone(&stop));
            provers.push(std::thread::spawn(move || {
                prove_forever(&name, &url, &key, block_time, &stop, json);
            }));
        }
        let endpoints: Vec<serde_json::Value> = market
            .iter()
            .map(
                |(name, h)| serde_json::json!({ "name": name, "address": h.address, "url": h.url }),
            )
            .collect();
        let gateway_url = gateway.as_ref().map(cairn_storage::GatewayHandle::url);
        let storage_endpoints: Vec<serde_json::Value> = storage
            .as_ref()
            .map(|s| {
                s.endpoints()
                    .into_iter()
                    .map(|(name, url)| serde_json::json!({ "name": name, "url": url }))
                    .collect()
            })
            .unwrap_or_default();
        let doc = serde_json::json!({ "api": url, "explorer": explorer_url, "gateway": gateway_url, "chain_id": chain_id, "p2p": p2p, "resumed_at_height": height, "compute_providers": endpoints, "storage_providers": storage_endpoints });
        if let Err(e) = std::fs::write(&node_json, doc.to_string()) {
            errln!("warning: cannot write {}: {e}", node_json.display());
        }
        if json {
            outln!("{doc}");
        } else {
            outln!(
                "cairn devnet: chain {chain_id}, {} validator(s), resumed at height {height}",
                p2p.len()
            );
            outln!("  node API   {url}  (OpenAPI: {url}/v1/openapi.json, events: {url}/v1/events)");
            if let Some(e) = &explorer_url {
                outln!("  explorer   {e}  (API: {e}/api/v1/summary, metrics: {url}/metrics)");
            }
            outln!("  p2p        {}", p2p.join(", "));
            outln!("  home       {}", home.display());
            outln!(
                "  account    `default` (devnet key, unencrypted) funded with 1,000,000,000 CRN"
            );
            outln!(
                "  provers    {} compute prover(s) answering proof-of-compute challenges",
                genesis
                    .providers
                    .iter()
                    .filter(|p| p.claimed_int8_ops > 0)
                    .count()
            );
            for (name, h) in &market {
                outln!(
                    "  market     {name} {} (lease API and ingress {})",
                    h.address,
                    h.url
                );
            }
            if let Some(s) = &storage {
                for (name, endpoint) in s.endpoints() {
                    outln!("  storage    {name} {endpoint}");
                }
            }
            if let Some(g) = &gateway_url {
                outln!("  gateway    {g}/v1/blobs/<id>  (public blobs)");
            }
            outln!("  Ctrl-C stops; starting again resumes from disk");
        }
        roles.market = market;
        roles.storage = storage;
        roles.gateway = gateway;
        roles.explorer = explorer;
        roles.demo = demo;
        roles.provers = provers;
        roles
    };
    let result = serve(
        global,
        handle,
        api,
        args.until_height,
        on_ready,
        Roles::stop,
    );
    for v in validators {
        v.shutdown().context("stopping a validator")?;
    }
    result
}

/// Starts the genesis storage providers (keys `storage-i`, data under `devnet/storage-i`),
/// a repairer signing with the `default` key (which holds the devnet owner's data keys) and
/// every validator's timed auditor.
fn start_storage(
    home: &Path,
    genesis: &Genesis,
    url: &str,
    serve_providers: bool,
    shard_io: cairn_storage::IoMode,
    audited_shards_per_epoch: u16,
    quiet: bool,
) -> Result<cairn_storage::DevnetStorage> {
    let store = Keystore::open(home);
    let mut list = Vec::new();
    for p in &genesis.providers {
        if !serve_providers || p.capacity.storage_bytes == 0 {
            continue;
        }
        let Some(i) = list_index(&store, &p.address) else {
            continue;
        };
        let name = format!("storage-{i}");
        let listen: SocketAddr = p
            .endpoint
            .trim_start_matches("http://")
            .parse()
            .with_context(|| format!("storage endpoint {}", p.endpoint))?;
        list.push(cairn_storage::DevnetProvider {
            key: store.load(&name, None)?,
            data_dir: home.join(format!("devnet/{name}")),
            name,
            listen,
            capacity_bytes: p.capacity.storage_bytes,
            shard_io,
        });
    }
    let repairer = store
        .load("default", None)
        .ok()
        .map(|k| (k, store.dir().join("blobs")));
    let config = auditor_config(genesis, audited_shards_per_epoch);
    let poll = config.poll;
    // Every validator audits: the devnet holds their keys.
    let auditors = cairn_storage::devnet::DevnetAuditors {
        keys: (0..genesis.validators.len())
            .filter_map(|i| {
                let name = format!("validator-{i}");
                store.load(&name, None).ok().map(|k| (name, k))
            })
            .collect(),
        config,
    };
    Ok(cairn_storage::spawn_devnet_providers(
        url,
        list,
        usize::from(genesis.params.storage_leaves_per_challenge),
        poll,
        repairer,
        (audited_shards_per_epoch > 0).then_some(auditors),
        quiet,
    )?)
}

/// When an auditor counts itself too busy to report lateness: the defaults, or
/// `CAIRN_AUDIT_MAX_CPU_PRESSURE` (percent; 100 turns the pressure check off) and
/// `CAIRN_AUDIT_MAX_PROBE_SLOWDOWN` (0 turns the probe off), which the fair-audit
/// measurements use to see what the strikes alone do.
fn load_limits() -> cairn_storage::load::LoadLimits {
    let mut limits = cairn_storage::load::LoadLimits::default();
    if let Some(pct) = std::env::var("CAIRN_AUDIT_MAX_CPU_PRESSURE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
    {
        limits.max_cpu_pressure_pct = pct;
    }
    if let Some(times) = std::env::var("CAIRN_AUDIT_MAX_PROBE_SLOWDOWN")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        limits.max_probe_slowdown = times;
    }
    limits
}

/// A validator's timed auditor on this chain: the default rule, polling once a block.
fn auditor_config(
    genesis: &Genesis,
    shards_per_epoch: u16,
) -> cairn_storage::auditor::AuditorConfig {
    cairn_storage::auditor::AuditorConfig {
        rule: cairn_proofs::timed::AuditRule::default(),
        shards_per_epoch: usize::from(shards_per_epoch),
        epoch_length_blocks: genesis.params.epoch_length_blocks,
        poll: Duration::from_millis(genesis.params.block_time_ms.max(100)),
        load: load_limits(),
    }
}

/// The `i` of the keystore's `storage-i` key with this address.
fn list_index(store: &Keystore, address: &cairn_types::Address) -> Option<usize> {
    (0..64).find(|i| {
        store
            .info(&format!("storage-{i}"))
            .is_ok_and(|info| info.address == *address)
    })
}

/// A compute prover of the devnet: answers its GEMM challenges until `stop`.
fn prove_forever(
    name: &str,
    url: &str,
    key: &Keypair,
    poll: Duration,
    stop: &std::sync::atomic::AtomicBool,
    json: bool,
) {
    use cairn_compute::popw::CpuBackend;
    use cairn_compute::prover::{self, Event, Responder};
    let client = cairn_client::NodeClient::new(url);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut responder = Responder::new(Box::new(CpuBackend::new()), threads);
    prover::run(&client, key, &mut responder, poll, stop, |event| {
        if json {
            return;
        }
        match event {
            Ok(Event::Committed {
                challenge,
                compute_ms,
            }) => outln!("  {name}: solved compute challenge {challenge} in {compute_ms} ms"),
            Ok(Event::Opened { challenge, entries }) => {
                outln!("  {name}: opened {entries} entries of challenge {challenge}");
            }
            Ok(Event::Decided { challenge, verdict }) => {
                outln!("  {name}: challenge {challenge} {verdict}");
            }
            Err(e) => errln!("  {name}: {e}"),
        }
    });
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
    if file.audited_shards_per_epoch > 64 {
        bail!(
            "audited_shards_per_epoch is {}: at most 64 (one report's worth)",
            file.audited_shards_per_epoch
        );
    }
    let auditor_key = key.clone();
    let validator = start(&genesis, key, base.join(&file.data_dir))?;
    let handle = validator.handle().clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let result = match file.api {
        Some(api) => {
            let on_ready = |url: &str| {
                if !global.json {
                    outln!("cairn node: chain {}, node API {url}", genesis.chain_id);
                }
                (file.audited_shards_per_epoch > 0).then(|| {
                    let config = auditor_config(&genesis, file.audited_shards_per_epoch);
                    let (flag, url, quiet) =
                        (std::sync::Arc::clone(&stop), url.to_string(), global.json);
                    std::thread::spawn(move || {
                        cairn_storage::auditor::run(&url, &auditor_key, config, &flag, |line| {
                            if !quiet {
                                outln!("  auditor: {line}");
                            }
                        });
                    })
                })
            };
            let flag = std::sync::Arc::clone(&stop);
            let on_stop = move |auditor: Option<std::thread::JoinHandle<()>>| {
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
                if let Some(auditor) = auditor {
                    let _ = auditor.join();
                }
            };
            serve(global, handle, api, None, on_ready, on_stop)
        }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The second devnet on a home is refused at once, naming the first's pid; the lock
    /// goes with the first (here: its file handle), and the next devnet takes it.
    #[test]
    fn a_home_holds_one_devnet() {
        let home = tempfile::tempdir().unwrap();
        let first = lock_home(home.path()).unwrap();
        let err = lock_home(home.path()).unwrap_err().to_string();
        assert!(
            err.contains("already running")
                && err.contains(&format!("process {}", std::process::id())),
            "{err}"
        );
        drop(first);
        lock_home(home.path()).unwrap();
    }
}
