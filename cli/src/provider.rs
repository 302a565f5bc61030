//! A provider's life on a running chain: `cairn provider register`, `update`, `leave` and
//! `show`, and the check `cairn store serve` and `cairn provider run` make first, that their
//! key is a registered provider.
//!
//! Each command sends the ledger's own transaction (`RegisterProvider`, `UpdateProvider`,
//! `LeaveProvider`) the way `cairn account` does: built here, checked by the node before it
//! is signed (`--force` skips that), signed with a keystore key (`--from`), and waited for
//! until final. What the ledger refuses (a bond below the minimum, an endpoint another
//! provider holds, a bad field) is refused by name before any fee is paid.

use crate::Global;
use crate::account::{SignArgs, check_before_signing, load_key, node_url, print, resolve_address};
use anyhow::{Context, Result, bail};
use cairn_client::{Keystore, NodeClient, NodeError};
use cairn_compute::gpu::Discovery;
use cairn_ledger::state::Provider;
use cairn_types::tx::{Empty, RegisterProvider, UpdateProvider};
use cairn_types::{Address, Amount, BoundedString, BoundedVec, Capacity, GpuSpec, Hash, TxBody};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use std::time::Duration;

/// How long a command waits for its transaction to be final.
const FINALITY_TIMEOUT: Duration = Duration::from_secs(60);

/// Which GPUs a provider declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GpuChoice {
    /// This machine's NVIDIA GPUs, found through NVML (none where there is no driver).
    Auto,
    /// No GPU.
    None,
}

/// What a provider offers; every field optional so `update` changes only what is given.
#[derive(Args, Debug, Clone)]
pub struct ProviderFields {
    /// Storage offered for deals' shards (and the disks of leases), e.g. "10Gi", "500G" or
    /// a number of bytes.
    #[arg(long, alias = "capacity", value_name = "SIZE", value_parser = parse_size)]
    pub storage_bytes: Option<u64>,
    /// CPU offered to leases, in millicores (1000 = one core).
    #[arg(long, value_name = "MILLICORES")]
    pub cpu_millicores: Option<u64>,
    /// Memory offered to leases, e.g. "4Gi" or a number of bytes.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_bytes: Option<u64>,
    /// GPUs to declare: `auto` finds this machine's NVIDIA GPUs through NVML (run it on
    /// the provider's host), `none` declares none [register: auto when CPU is declared,
    /// else none; update: the GPUs declared now].
    #[arg(long, value_enum, value_name = "auto|none")]
    pub gpus: Option<GpuChoice>,
    /// Share of delegators' rewards the provider keeps, in basis points [register
    /// default: 500].
    #[arg(long, value_name = "BPS")]
    pub commission_bps: Option<u16>,
    /// Claimed int8 rate in operations per second, proven by compute challenges: a claim
    /// that is not answered is a fault [register default: 0, no claim].
    #[arg(long, value_name = "OPS")]
    pub claimed_int8_ops: Option<u64>,
}

#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// The base URL clients reach the provider at: the shard API of `cairn store serve`
    /// or the lease API of `cairn provider run` (http:// or https://). No other provider
    /// may hold it.
    #[arg(long, value_name = "URL")]
    pub endpoint: String,
    /// Where the provider is, for placement's spread across regions (e.g. "eu-west").
    #[arg(long)]
    pub region: String,
    #[command(flatten)]
    pub fields: ProviderFields,
    /// Self-bond moved from the balance into stake, with its unit ("10000 CRN"); at least
    /// the chain's minimum provider bond. Released only after the unbonding period once
    /// the provider leaves.
    #[arg(long)]
    pub bond: Amount,
    #[command(flatten)]
    pub sign: SignArgs,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// A new base URL for the provider (no other provider may hold it) [default: the
    /// current one].
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// A new region [default: the current one].
    #[arg(long)]
    pub region: Option<String>,
    #[command(flatten)]
    pub fields: ProviderFields,
    #[command(flatten)]
    pub sign: SignArgs,
}

#[derive(Args, Debug)]
pub struct LeaveArgs {
    #[command(flatten)]
    pub sign: SignArgs,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// An address (cairn1...) or the name of a key in the home's keystore [default: --key].
    pub address: Option<String>,
    #[arg(long, default_value = "default")]
    pub key: String,
}

/// A size in bytes: a number, or one with a unit (`512Mi`, `10Gi`, `1T`).
fn parse_size(text: &str) -> Result<u64, String> {
    cairn_market::manifest::size_bytes(text).ok_or_else(|| {
        format!("{text:?} is not a size: give bytes or a number with a unit (512Mi, 10Gi, 1T)")
    })
}

fn bounded<const N: usize>(field: &str, text: &str) -> Result<BoundedString<N>> {
    BoundedString::new(text).with_context(|| format!("--{field}: at most {N} bytes"))
}

/// This machine's GPUs as the chain records them, and what discovery said.
fn discover_gpus() -> (Vec<GpuSpec>, Discovery) {
    let discovery = cairn_compute::gpu::discover();
    let gpus = discovery
        .gpus()
        .iter()
        .map(cairn_compute::gpu::GpuInfo::spec)
        .collect();
    (gpus, discovery)
}

/// The GPUs to declare: `choice`, else `default`.
fn gpus_for(choice: Option<GpuChoice>, default: impl FnOnce() -> Vec<GpuSpec>) -> Vec<GpuSpec> {
    match choice {
        Some(GpuChoice::Auto) => discover_gpus().0,
        Some(GpuChoice::None) => Vec::new(),
        None => default(),
    }
}

fn capacity(storage: u64, cpu: u64, memory: u64, gpus: Vec<GpuSpec>) -> Result<Capacity> {
    let gpus = BoundedVec::new(gpus).context("more GPUs than a provider may declare (64)")?;
    Ok(Capacity {
        storage_bytes: storage,
        cpu_millicores: cpu,
        memory_bytes: memory,
        gpus,
    })
}

/// `bytes` for people: whole KiB/MiB/GiB/TiB where exact, else bytes.
fn human_bytes(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.trailing_zeros() >= shift {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

/// What a provider declares, naming only what it offers.
fn describe_capacity(c: &Capacity) -> String {
    let mut parts = Vec::new();
    if c.storage_bytes > 0 {
        parts.push(format!("{} storage", human_bytes(c.storage_bytes)));
    }
    if c.cpu_millicores > 0 {
        parts.push(format!("{} millicores", c.cpu_millicores));
    }
    if c.memory_bytes > 0 {
        parts.push(format!("{} memory", human_bytes(c.memory_bytes)));
    }
    for g in c.gpus.iter() {
        parts.push(format!("GPU {} {} ({} MiB)", g.vendor, g.model, g.vram_mib));
    }
    if c.cpu_millicores > 0 && c.gpus.is_empty() {
        parts.push("no GPU".to_string());
    }
    if parts.is_empty() {
        return "nothing".to_string();
    }
    parts.join(", ")
}

/// The provider record of `address`, `None` when it is not registered.
fn provider_record(node: &NodeClient, address: &Address) -> Result<Option<(Provider, Value)>> {
    match node.get(&format!("/v1/providers/{address}")) {
        Ok(view) => {
            let provider: Provider = serde_json::from_value(view["provider"].clone())
                .with_context(|| format!("the node's record of provider {address}"))?;
            Ok(Some((provider, view)))
        }
        Err(NodeError::Refused { status: 404, .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The `host:port` an endpoint URL names, for `--listen`.
fn listen_of(endpoint: &str) -> Option<&str> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))?;
    let authority = rest.split('/').next()?;
    (!authority.is_empty()).then_some(authority)
}

/// Which daemon a key is about to run, for the hint that registers it.
pub(crate) enum Role<'a> {
    /// `cairn store serve --listen ADDR [--capacity-bytes N]`.
    Storage {
        listen: &'a str,
        capacity_bytes: Option<u64>,
    },
    /// `cairn provider run` with its config's `listen` and capacity.
    Compute {
        listen: &'a str,
        capacity: &'a cairn_market::provider::CapacityConfig,
    },
}

impl Role<'_> {
    /// The daemon's command, where it listens and the offer flags that match it.
    fn hint(&self) -> (&'static str, &str, String) {
        match self {
            Self::Storage {
                listen,
                capacity_bytes,
            } => (
                "cairn store serve",
                listen,
                format!(
                    "--storage-bytes {}",
                    capacity_bytes.map_or_else(|| "10Gi".to_string(), |b| b.to_string())
                ),
            ),
            Self::Compute { listen, capacity } => {
                let mut flags = vec![format!("--cpu-millicores {}", capacity.cpu_millicores)];
                if capacity.memory_bytes > 0 {
                    flags.push(format!("--memory-bytes {}", capacity.memory_bytes));
                }
                if capacity.storage_bytes > 0 {
                    flags.push(format!("--storage-bytes {}", capacity.storage_bytes));
                }
                ("cairn provider run", listen, flags.join(" "))
            }
        }
    }
}

/// The chain's record of the provider a daemon is about to run as. A key that is not a
/// registered provider is refused at once, with the `cairn provider register` command
/// that makes it one: nothing would place shards on it, accept its bids or pay it, and its
/// shard API would refuse every upload.
pub(crate) fn require_registered(
    global: &Global,
    node: &NodeClient,
    key_name: &str,
    address: &Address,
    role: Role<'_>,
) -> Result<Provider> {
    if let Some((provider, _)) = provider_record(node, address)? {
        return Ok(provider);
    }
    let min_bond = crate::store::chain_params(global)
        .map(|p| p.min_provider_bond)
        .unwrap_or_default();
    let (daemon, listen, resources) = role.hint();
    bail!(
        "key {key_name:?} ({address}) is not a registered provider on the chain at {}: {daemon} would serve nobody (no placement, bids or pay). Register it first (the bond is at least {min_bond}):\n  cairn provider register --from {key_name} --endpoint http://{listen} --region REGION {resources} --bond \"{min_bond}\"",
        node.base()
    )
}

/// Checks `body` with the node, signs it with `--from`, sends it and waits until final.
/// Returns the record, failing when the transaction was included but failed.
fn send(global: &Global, sign: &SignArgs, body: TxBody) -> Result<(NodeClient, Address, Value)> {
    let node = NodeClient::new(&node_url(global)?);
    let key = load_key(global, &sign.from, &sign.passphrase)?;
    let address = key.address();
    check_before_signing(&node, &address, &body, sign.fee, sign.force)?;
    let kind = body.kind();
    let hash: Hash = node.send(&key, body, sign.fee)?;
    if sign.no_wait {
        return Ok((node, address, json!({ "hash": hash, "status": "pending" })));
    }
    let record = node.wait_finalized(&hash, FINALITY_TIMEOUT)?;
    if !record["receipt"]["error"].is_null() {
        print(global, &record)?;
        bail!(
            "{kind} {hash} was included but failed: {} (fee charged)",
            record["receipt"]["error"]
        );
    }
    Ok((node, address, record))
}

pub fn register(global: &Global, args: RegisterArgs) -> Result<()> {
    let f = &args.fields;
    let (endpoint, region) = (args.endpoint.as_str(), args.region.as_str());
    let cpu = f.cpu_millicores.unwrap_or(0);
    // A GPU serves leases: declared with compute, unless asked otherwise.
    let gpus = gpus_for(f.gpus, || {
        if cpu > 0 {
            discover_gpus().0
        } else {
            Vec::new()
        }
    });
    let capacity = capacity(
        f.storage_bytes.unwrap_or(0),
        cpu,
        f.memory_bytes.unwrap_or(0),
        gpus,
    )?;
    let body = TxBody::RegisterProvider(RegisterProvider {
        endpoint: bounded("endpoint", endpoint)?,
        region: bounded("region", region)?,
        capacity: capacity.clone(),
        commission_bps: f.commission_bps.unwrap_or(500),
        bond: args.bond,
        claimed_int8_ops: f.claimed_int8_ops.unwrap_or(0),
    });
    let (node, address, record) = send(global, &args.sign, body)?;
    let view = provider_record(&node, &address)?.map(|(_, v)| v);
    let next = next_steps(&args.sign.from, &capacity, endpoint);
    if global.json {
        return print(
            global,
            &json!({ "tx": record, "provider": view.map(|v| v["provider"].clone()), "next": next }),
        );
    }
    outln!(
        "registered {address} as a provider{} (tx {})",
        height_of(&record),
        record["hash"].as_str().unwrap_or("?")
    );
    outln!("  endpoint  {endpoint}   region {region}");
    outln!("  declared  {}", describe_capacity(&capacity));
    outln!("  bond      {}", args.bond);
    if cpu > 0
        && f.gpus.is_none()
        && capacity.gpus.is_empty()
        && let Discovery::NoDriver { reason } = discover_gpus().1
    {
        outln!("  GPUs      none found: {reason}");
    }
    for line in next
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        outln!("  next      {line}");
    }
    Ok(())
}

/// The daemons a registered provider runs, as commands.
fn next_steps(key: &str, capacity: &Capacity, endpoint: &str) -> Value {
    let listen = listen_of(endpoint).unwrap_or("HOST:PORT");
    let mut steps = Vec::new();
    if capacity.storage_bytes > 0 && capacity.cpu_millicores == 0 {
        steps.push(format!("cairn store serve --key {key} --listen {listen}"));
    }
    if capacity.cpu_millicores > 0 || !capacity.gpus.is_empty() {
        steps.push(format!(
            "cairn provider run --config FILE   (key = \"{key}\", listen = \"{listen}\")"
        ));
    }
    json!(steps)
}

fn height_of(record: &Value) -> String {
    record["height"]
        .as_u64()
        .or_else(|| record["receipt"]["height"].as_u64())
        .map(|h| format!(" at height {h}"))
        .unwrap_or_default()
}

pub fn update(global: &Global, args: UpdateArgs) -> Result<()> {
    let node = NodeClient::new(&node_url(global)?);
    let address = Keystore::open(&global.home_dir()?)
        .info(&args.sign.from)?
        .address;
    let Some((current, _)) = provider_record(&node, &address)? else {
        bail!(
            "key {:?} ({address}) is not a registered provider: `cairn provider register --from {}` first",
            args.sign.from,
            args.sign.from
        );
    };
    let f = &args.fields;
    let declared = &current.declared;
    let gpus = gpus_for(f.gpus, || declared.gpus.0.clone());
    let capacity = capacity(
        f.storage_bytes.unwrap_or(declared.storage_bytes),
        f.cpu_millicores.unwrap_or(declared.cpu_millicores),
        f.memory_bytes.unwrap_or(declared.memory_bytes),
        gpus,
    )?;
    let endpoint = args
        .endpoint
        .clone()
        .unwrap_or_else(|| current.endpoint.clone());
    let region = args
        .region
        .clone()
        .unwrap_or_else(|| current.region.clone());
    let body = TxBody::UpdateProvider(UpdateProvider {
        endpoint: bounded("endpoint", &endpoint)?,
        region: bounded("region", &region)?,
        capacity: capacity.clone(),
        commission_bps: f.commission_bps.unwrap_or(current.commission_bps),
        claimed_int8_ops: f.claimed_int8_ops.unwrap_or(current.claimed_int8_ops),
    });
    let (node, address, record) = send(global, &args.sign, body)?;
    let view = provider_record(&node, &address)?.map(|(_, v)| v);
    if global.json {
        return print(
            global,
            &json!({ "tx": record, "provider": view.map(|v| v["provider"].clone()) }),
        );
    }
    outln!(
        "updated provider {address}{} (tx {})",
        height_of(&record),
        record["hash"].as_str().unwrap_or("?")
    );
    outln!("  endpoint  {endpoint}   region {region}");
    outln!("  declared  {}", describe_capacity(&capacity));
    Ok(())
}

/// The shards `address` holds in live deals, as `(deal, shard index, awaiting repair)`.
fn shards_held(node: &NodeClient, address: &Address) -> Result<Vec<(u64, usize, bool)>> {
    let me = address.to_string();
    let mut out = Vec::new();
    for status in ["active", "pending"] {
        // The node filters by holder and every page is read: a provider may hold shards
        // of any number of deals.
        let deals = node.list_all(&format!("/v1/deals?status={status}&provider={me}"), "deals")?;
        for deal in &deals {
            let id = deal["id"].as_u64().unwrap_or_default();
            let awaiting: Vec<u64> = deal["repair_needed"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .collect();
            for (index, holder) in deal["providers"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if holder.as_str() == Some(me.as_str()) {
                    let queued = u64::try_from(index).is_ok_and(|i| awaiting.contains(&i));
                    out.push((id, index, queued));
                }
            }
        }
    }
    Ok(out)
}

pub fn leave(global: &Global, args: LeaveArgs) -> Result<()> {
    let (node, address, record) = send(global, &args.sign, TxBody::LeaveProvider(Empty {}))?;
    if args.sign.no_wait {
        return print(global, &record);
    }
    let height = record["height"]
        .as_u64()
        .or_else(|| record["receipt"]["height"].as_u64());
    let closed: Vec<Value> = node
        .list_all(
            &format!("/v1/leases?status=closed&provider={address}"),
            "leases",
        )?
        .iter()
        .filter(|l| {
            let lease = &l["lease"];
            lease["provider"].as_str() == Some(address.to_string().as_str())
                && lease["state"]["reason"] == cairn_ledger::PROVIDER_LEFT
                && lease["state"]["at"].as_u64() == height
        })
        .map(|l| l["lease"]["id"].clone())
        .collect();
    let shards = shards_held(&node, &address)?;
    let unbonding = node.account(&address)?["unbonding"].clone();
    if global.json {
        let shards: Vec<Value> = shards
            .iter()
            .map(|(deal, index, queued)| json!({ "deal": deal, "shard_index": index, "awaiting_repair": queued }))
            .collect();
        return print(
            global,
            &json!({ "tx": record, "leases_closed": closed, "shards_held": shards, "unbonding": unbonding }),
        );
    }
    outln!(
        "provider {address} is leaving{} (tx {})",
        height_of(&record),
        record["hash"].as_str().unwrap_or("?")
    );
    outln!(
        "  leases    {} closed (\"{}\"), their unspent escrow back to the tenants",
        closed.len(),
        cairn_ledger::PROVIDER_LEFT
    );
    outln!(
        "  shards    {} queued for repair onto other providers: keep serving them until they are moved (you are still challenged on them)",
        shards.len()
    );
    for u in unbonding.as_array().into_iter().flatten() {
        let amount: Amount = serde_json::from_value(u["amount"].clone()).unwrap_or_default();
        outln!(
            "  bond      {amount} unbonding: released at the end of epoch {} at the earliest, once no shard is left on you",
            u["release_epoch"]
        );
    }
    Ok(())
}

pub fn show(global: &Global, args: ShowArgs) -> Result<()> {
    let address = match &args.address {
        Some(a) => resolve_address(global, a)?,
        None => Keystore::open(&global.home_dir()?).info(&args.key)?.address,
    };
    let node = NodeClient::new(&node_url(global)?);
    let Some((p, view)) = provider_record(&node, &address)? else {
        bail!("{address} is not a registered provider (`cairn provider register` makes a key one)");
    };
    let shards = shards_held(&node, &address)?;
    let unbonding = node.account(&address)?["unbonding"].clone();
    if global.json {
        let mut doc = view;
        doc["shards_held"] = shards
            .iter()
            .map(|(deal, index, queued)| json!({ "deal": deal, "shard_index": index, "awaiting_repair": queued }))
            .collect();
        doc["unbonding"] = unbonding;
        return print(global, &doc);
    }
    outln!(
        "provider {address}  {} (registered at height {})",
        p.status.name(),
        p.registered_height
    );
    outln!("  endpoint  {}   region {}", p.endpoint, p.region);
    outln!("  declared  {}", describe_capacity(&p.declared));
    outln!(
        "  stake     {} self, {} delegated, commission {} bps",
        p.self_bond,
        p.delegated,
        p.commission_bps
    );
    let queued = shards.iter().filter(|s| s.2).count();
    outln!(
        "  shards    {} held ({} awaiting repair), {} assigned",
        shards.len(),
        queued,
        human_bytes(p.assigned_storage_bytes)
    );
    outln!(
        "  leases    {} live, {} millicores and {} committed",
        p.active_leases,
        p.committed.cpu_millicores,
        human_bytes(p.committed.memory_bytes)
    );
    if p.claimed_int8_ops > 0 {
        outln!(
            "  compute   claims {} int8 ops/s, proven {}",
            p.claimed_int8_ops,
            p.proven_int8_ops
        );
    }
    outln!(
        "  earned    {} in fees, {} in rewards; {} faults, {} slashed",
        p.fees_earned_total,
        p.rewards_total,
        p.total_faults,
        p.total_slashed
    );
    for u in unbonding.as_array().into_iter().flatten() {
        let amount: Amount = serde_json::from_value(u["amount"].clone()).unwrap_or_default();
        let held = if p.status.name() == "leaving" && !shards.is_empty() {
            " (held until its shards are moved)"
        } else {
            ""
        };
        outln!(
            "  unbonding {amount}, released at the end of epoch {} at the earliest{held}",
            u["release_epoch"]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("10Gi"), Ok(10 << 30));
        assert_eq!(parse_size("1.5Gi"), Ok(3 << 29));
        assert_eq!(parse_size("2048"), Ok(2048));
        let e = parse_size("ten gigs").unwrap_err();
        assert!(e.contains("ten gigs") && e.contains("10Gi"), "{e}");
    }

    #[test]
    fn bytes_read_in_whole_units() {
        assert_eq!(human_bytes(10 << 30), "10 GiB");
        assert_eq!(human_bytes(3 << 29), "1536 MiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }

    #[test]
    fn listen_address_of_an_endpoint() {
        assert_eq!(listen_of("http://127.0.0.1:7901"), Some("127.0.0.1:7901"));
        assert_eq!(listen_of("https://p.example:443/x"), Some("p.example:443"));
        assert_eq!(listen_of("ftp://x"), None);
    }
}
