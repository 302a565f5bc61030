//! `cairn store`: put, get, status and list blobs, and run a storage provider.

use crate::Global;
use crate::account::{load_key, node_url, print};
use crate::keys::PassphraseArgs;
use anyhow::{Context, Result, bail};
use cairn_client::NodeClient;
use cairn_client::direct::{DEFAULT_WRITE_BUFFER_BYTES, DirectWriter};
use cairn_client::store::{self as flows, PutOptions};
use cairn_ledger::Params;
use cairn_proofs::timed::AuditRule;
use cairn_types::{Amount, DealId, Hash};
use clap::{Args, Subcommand};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Store a file: encode, place on providers, deal on chain, upload, certify. Prints the blob id.
    Put(PutArgs),
    /// Fetch a blob from the fastest k providers, verify, decode, decrypt, write to a file.
    Get {
        /// Blob id (64 hex digits).
        id: Hash,
        /// Output file.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
        /// Only bytes START..END of the blob (only the segments they touch are fetched).
        #[arg(long, value_name = "START..END", value_parser = parse_byte_range)]
        range: Option<std::ops::Range<u64>>,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// A blob's deals, shard holders and last proofs.
    Status {
        /// Blob id (64 hex digits).
        id: Hash,
    },
    /// The deals of an owner (by default the `default` key's).
    Ls {
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Keep a deal longer: pays the extra epochs into its escrow at the deal's own price.
    Extend {
        /// Deal id as cairn prints it (`deal-3`, or `3`); `cairn store ls` lists yours.
        deal: DealId,
        /// Epochs to add to the deal's term.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        epochs: u64,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// End a deal before its term: the unspent escrow comes back, the providers drop the
    /// shards, and the blob can no longer be read.
    Cancel {
        /// Deal id as cairn prints it (`deal-3`, or `3`); `cairn store ls` lists yours.
        deal: DealId,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Check that a deal's shards are one Reed-Solomon codeword; where they are not, post
    /// the inconsistency proof (signed by --from) that marks the deal invalid. Needs no data
    /// key: anyone may audit any deal.
    Audit {
        /// Deal id as cairn prints it (`deal-3`, or `3`); `cairn store status BLOB` lists a
        /// blob's deals.
        deal: DealId,
        /// Only bytes START..END of every shard (default: the whole shard).
        #[arg(long, value_name = "START..END", value_parser = parse_byte_range)]
        range: Option<std::ops::Range<u64>>,
        /// Key that signs (and pays the fee of) the report, from the home's keystore.
        #[arg(long, default_value = "default")]
        from: String,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Time each holder of a deal answering a long chained challenge (a timed audit): a
    /// provider that rebuilds its shard from peers instead of keeping it answers too late.
    /// Needs no key; exits non-zero when a holder fails. The verdict is this machine's
    /// measurement and is not posted on chain.
    Challenge {
        /// Deal id as cairn prints it (`deal-3`, or `3`); `cairn store status BLOB` lists a
        /// blob's deals.
        deal: DealId,
        /// Only this shard's holder (default: every holder, one after another).
        #[arg(long)]
        shard: Option<u16>,
        /// Dependent leaf reads per challenge (1..=4096).
        #[arg(long, default_value_t = AuditRule::default().steps)]
        steps: u32,
        /// Time allowed per read, in microseconds.
        #[arg(long, default_value_t = AuditRule::default().step_budget_us)]
        step_budget_us: u32,
        /// Fixed time for the round trip and the answer's transfer, in milliseconds.
        #[arg(long, default_value_t = AuditRule::default().allowance_ms)]
        allowance_ms: u32,
        /// How far past the deadline (percent of it) a right answer is only late, not failed.
        #[arg(long, default_value_t = AuditRule::default().fault_after_pct)]
        fault_after_pct: u32,
    },
    /// What a code buys: the chance of losing a blob per epoch and over a term, at the shard
    /// loss rate the chain has measured (faulted over challenged shard-epochs of the last
    /// 64 epochs, at its 95% upper bound; 10% until the chain has measured enough to show
    /// less). Failures are taken as independent, so the nines are upper bounds. With
    /// --durability, the cheapest code the live providers allow for that many nines.
    Durability(DurabilityArgs),
    /// Run a storage provider: shard API, proof responder, garbage collection.
    Serve(ServeArgs),
}

#[derive(Args, Debug)]
pub struct DurabilityArgs {
    /// The code to assess [default: what a put would pick on the live providers].
    #[arg(long, value_name = "K+M", value_parser = parse_redundancy)]
    pub redundancy: Option<(u16, u16)>,
    /// Find the cheapest code reaching this many nines over the term.
    #[arg(long, value_name = "NINES", conflicts_with = "redundancy", value_parser = parse_nines)]
    pub durability: Option<f64>,
    /// The term in epochs.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: u64,
    /// Quote over a year of epochs, as for a permanent deal.
    #[arg(long)]
    pub permanent: bool,
    #[command(flatten)]
    pub loss: LossRateArg,
}

/// `START..END` in bytes, START < END.
fn parse_byte_range(text: &str) -> Result<std::ops::Range<u64>, String> {
    let (start, end) = text
        .split_once("..")
        .ok_or_else(|| format!("{text:?} is not START..END"))?;
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("{s:?} in {text:?} is not a byte offset"))
    };
    let (start, end) = (number(start)?, number(end)?);
    if start >= end {
        return Err(format!("{text:?} is empty: START must be below END"));
    }
    Ok(start..end)
}

#[derive(Args, Debug)]
pub struct KeyArgs {
    /// Owner key (from the home's keystore).
    #[arg(long, default_value = "default")]
    pub from: String,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Args, Debug)]
pub struct PutArgs {
    /// The file to store.
    pub file: PathBuf,
    /// Epochs to keep it (ignored with --permanent).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: u64,
    /// Fund once into an endowment and keep forever.
    #[arg(long)]
    pub permanent: bool,
    /// Data + parity shards, e.g. 4+2 [default: adapts to the providers].
    #[arg(long, value_name = "K+M", value_parser = parse_redundancy)]
    pub redundancy: Option<(u16, u16)>,
    /// Instead of --redundancy: the cheapest code the live providers allow whose chance of
    /// loss over the deal's epochs (a year with --permanent) is at most 10^-NINES, at the
    /// shard loss rate the chain has measured (see `cairn store durability`).
    #[arg(long, value_name = "NINES", conflicts_with = "redundancy", value_parser = parse_nines)]
    pub durability: Option<f64>,
    #[command(flatten)]
    pub loss: LossRateArg,
    /// Store unencrypted (readable by anyone who has the blob id).
    #[arg(long)]
    pub public: bool,
    /// Price per GiB-epoch offered [default: 80% of the cheapest cloud GiB-month in the
    /// dated price table (`explorer/prices.toml`), per epoch of this chain].
    #[arg(long)]
    pub price: Option<Amount>,
    /// Print what the put would store, cost and buy, without reading the file, placing or
    /// paying anything.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub key: KeyArgs,
}

#[derive(Args, Debug)]
pub struct LossRateArg {
    /// Plan with this per-epoch shard loss rate (0.01 or 1%) instead of the chain's
    /// measured one.
    #[arg(long, value_name = "RATE", value_parser = parse_loss_rate)]
    pub loss_rate: Option<f64>,
}

/// Nines of durability: a positive number, e.g. 9 for 99.9999999%.
fn parse_nines(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 && n <= 300.0 => Ok(n),
        _ => Err(format!(
            "{text:?} is not a number of nines between 0 and 300 (e.g. 9 for 99.9999999%)"
        )),
    }
}

/// A probability as a fraction (0.01) or a percentage (1%).
fn parse_loss_rate(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (number, scale) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), 100.0),
        None => (t, 1.0),
    };
    match number.parse::<f64>() {
        Ok(r) if r.is_finite() && (0.0..=1.0).contains(&(r / scale)) => Ok(r / scale),
        _ => Err(format!(
            "{text:?} is not a loss rate between 0 and 1 (e.g. 0.01 or 1%)"
        )),
    }
}

pub(crate) fn parse_redundancy(text: &str) -> Result<(u16, u16), String> {
    let (k, m) = text
        .split_once('+')
        .ok_or_else(|| format!("{text:?} is not K+M (e.g. 4+2)"))?;
    let k: u16 = k
        .trim()
        .parse()
        .map_err(|_| format!("{k:?} is not a shard count"))?;
    let m: u16 = m
        .trim()
        .parse()
        .map_err(|_| format!("{m:?} is not a shard count"))?;
    if k == 0 {
        return Err("at least one data shard is needed".to_string());
    }
    Ok((k, m))
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The provider's key in the home's keystore (registered on chain with its endpoint).
    #[arg(long)]
    pub key: String,
    /// Where the shard API listens.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: SocketAddr,
    /// Shard directory [default: <home>/storage/<key>].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Bytes this provider stores at most [default: its declared capacity on chain].
    #[arg(long)]
    pub capacity_bytes: Option<u64>,
    /// Test double: `withholder` never answers challenges, `forger` bluffs for shards it
    /// cannot read, `laggard` answers timed audits only after 8 s (for the Byzantine-provider
    /// tests).
    #[arg(long, hide = true, default_value = "honest")]
    pub behaviour: cairn_storage::Behaviour,
    /// How shard files are written and read: `direct` bypasses the page cache (no memory
    /// per stored byte; reads come from the disk), `cached` goes through it (recent shards
    /// are served from memory, each written byte takes a page of it).
    #[arg(long, default_value_t = cairn_storage::IoMode::Direct)]
    pub shard_io: cairn_storage::IoMode,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Args, Debug)]
pub struct GatewayArgs {
    /// Where the gateway listens.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7790")]
    pub listen: SocketAddr,
}

/// The chain's parameters: the home's genesis if there is one, else the defaults.
/// The chain's parameters, from the node the command talks to (`GET /v1/params`): a local
/// genesis file may be another chain's, and guessing defaults silently was wrong against
/// any node but the devnet's.
pub(crate) fn chain_params(global: &Global) -> Result<Params> {
    let url = node_url(global)?;
    let value = NodeClient::new(&url).get("/v1/params")?;
    serde_json::from_value(value)
        .with_context(|| format!("{url}/v1/params is not the parameters this cairn knows"))
}

/// The storage price a put offers when none is given: below the cheapest listed cloud
/// price for the same GiB-month, on this chain's epochs.
pub(crate) fn default_storage_price(params: &Params) -> Amount {
    let ucrn = cairn_explorer::prices::PriceTable::builtin().map_or(1, |t| {
        t.default_storage_ucrn_per_gib_epoch(params.epoch_ms())
    });
    Amount::from_ucrn(u128::from(ucrn))
}

/// Where the owner's blob records (data keys) live: inside the keystore directory.
pub fn records_dir(global: &Global) -> Result<PathBuf> {
    Ok(cairn_client::Keystore::open(&global.home_dir()?)
        .dir()
        .join("blobs"))
}

fn progress_bar(global: &Global, total: u64, verb: &'static str) -> impl FnMut(u64) {
    // The one progress line every long command draws (terminal only, never under --json).
    let mut progress = Some(crate::progress::Progress::new(
        global.json,
        verb,
        Some(total >> 20),
        "MiB",
    ));
    move |done: u64| {
        if let Some(p) = progress.as_mut() {
            p.set(done >> 20);
        }
        if done >= total {
            // Cleared here, so the command's summary line starts on a clean line.
            progress = None;
        }
    }
}

pub fn run(global: &Global, command: StoreCommand) -> Result<()> {
    match command {
        StoreCommand::Put(args) => put(global, args),
        StoreCommand::Get {
            id,
            output,
            range,
            key,
        } => get(global, &id, &output, range, &key),
        StoreCommand::Status { id } => status(global, &id),
        StoreCommand::Ls { key } => ls(global, &key),
        StoreCommand::Extend { deal, epochs, key } => extend(global, deal, epochs, &key),
        StoreCommand::Cancel { deal, key } => cancel(global, deal, &key),
        StoreCommand::Audit {
            deal,
            range,
            from,
            passphrase,
        } => audit(global, deal, range, &from, &passphrase),
        StoreCommand::Challenge {
            deal,
            shard,
            steps,
            step_budget_us,
            allowance_ms,
            fault_after_pct,
        } => challenge(
            global,
            deal,
            shard,
            AuditRule {
                steps,
                step_budget_us,
                allowance_ms,
                fault_after_pct,
            },
        ),
        StoreCommand::Durability(args) => durability(global, &args),
        StoreCommand::Serve(args) => serve(global, args),
    }
}

fn durability(global: &Global, args: &DurabilityArgs) -> Result<()> {
    use cairn_client::durability::{DurabilityReport, NetworkLoss, plan};
    let node = NodeClient::new(&node_url(global)?);
    let network = NetworkLoss::fetch(&node)?;
    let providers = flows::live_storage_providers(&node)?.len();
    let loss = network.estimate(args.loss.loss_rate)?;
    let term = network.term(args.permanent, args.epochs);
    let (k, m) = match (args.redundancy, args.durability) {
        (Some(code), _) => code,
        (None, Some(nines)) => plan(providers, &loss, term, nines)?,
        (None, None) => flows::default_redundancy(providers),
    };
    let report = DurabilityReport::new(k, m, loss, term)?;
    if global.json {
        return print(
            global,
            &json!({
                "live_providers": providers,
                "window_epochs": network.window_epochs,
                "durability": report,
            }),
        );
    }
    let per_epoch = report.figures.nines_per_interval.map_or_else(
        || "no possible loss".to_string(),
        |n| format!("{n:.2} nines"),
    );
    outln!(
        "{k}+{m} ({:.2}x stored): {per_epoch} per epoch; {}",
        report.figures.overhead,
        report.summary()
    );
    outln!(
        "chance of loss: {:.3e} per epoch, {:.3e} over {} epochs",
        report.figures.loss_per_interval,
        report.figures.loss_over_term,
        term.epochs
    );
    outln!(
        "measured: {} faulted of {} challenged shard-epochs in the last {} epochs; {} live storage providers",
        loss.observed.faulted,
        loss.observed.shard_intervals,
        network.window_epochs,
        providers
    );
    Ok(())
}

fn put(global: &Global, args: PutArgs) -> Result<()> {
    let node = NodeClient::new(&node_url(global)?);
    let params = chain_params(global)?;
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?
        .len();
    let options = PutOptions {
        epochs: args.epochs,
        permanent: args.permanent,
        redundancy: args.redundancy,
        durability_nines: args.durability,
        loss_rate: args.loss.loss_rate,
        public: args.public,
        price_per_gib_epoch: args.price.unwrap_or_else(|| default_storage_price(&params)),
    };
    if args.dry_run {
        let plan = flows::plan_put(&node, size, &options, params.permanent_prepay_epochs)?;
        if global.json {
            outln!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            outln!(
                "would store {} bytes as {}+{} shards of {} bytes ({} bytes on {} of {} live providers), paying {} into the deal",
                plan.size_bytes,
                plan.data_shards,
                plan.parity_shards,
                plan.shard_size_bytes,
                plan.stored_bytes,
                u32::from(plan.data_shards) + u32::from(plan.parity_shards),
                plan.live_providers,
                plan.escrow,
            );
            if let Some(durability) = &plan.durability {
                outln!("durability: {}", durability.summary());
            }
        }
        return Ok(());
    }
    let key = load_key(global, &args.key.from, &args.key.passphrase)?;
    let mut bar = progress_bar(global, size, "put");
    let outcome = flows::put_file(
        &node,
        &key,
        &args.file,
        &options,
        &records_dir(global)?,
        params.certificate_margin,
        params.permanent_prepay_epochs,
        &mut bar,
    )?;
    if global.json {
        outln!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        outln!("{}", outcome.blob);
        errln!(
            "stored {} bytes as {}+{} shards in {} ({} receipts, {} ms: encode {} ms, deal {} ms, upload {} ms, certificate {} ms)",
            outcome.size_bytes,
            outcome.data_shards,
            outcome.parity_shards,
            outcome.deal,
            outcome.receipts,
            outcome.elapsed_ms,
            outcome.phases.encode_ms,
            outcome.phases.deal_ms,
            outcome.phases.upload_ms,
            outcome.phases.certify_ms,
        );
        if let Some(durability) = &outcome.durability {
            errln!("durability: {}", durability.summary());
        }
    }
    Ok(())
}

fn get(
    global: &Global,
    id: &Hash,
    output: &std::path::Path,
    range: Option<std::ops::Range<u64>>,
    key: &KeyArgs,
) -> Result<()> {
    // Where it goes is checked before anything is fetched.
    let target = OutputTarget::of(output, global.json)?;
    let node = NodeClient::new(&node_url(global)?);
    let records = records_dir(global)?;
    let owner = load_key(global, &key.from, &key.passphrase).ok();
    // The deal first: a blob proven inconsistent is refused as such, whatever its key.
    let (meta, deal) = flows::blob_deal(&node, id)?;
    let protection = flows::protection_of(&node, &records, id, owner.as_ref())?;
    let deal_id = deal["id"].as_u64().unwrap_or_default();
    // A strict read that finds two contents is evidence: say how to put it on chain.
    let hint = move |e: flows::StoreError| -> anyhow::Error {
        let inconsistent = matches!(
            e,
            flows::StoreError::Coding(cairn_coding::CodingError::InconsistentEncoding { .. })
        );
        let e = anyhow::Error::from(e);
        if inconsistent {
            e.context(format!(
                "the blob's shards are not one codeword: `cairn store audit {deal_id}` proves it on chain and ends the deal"
            ))
        } else {
            e
        }
    };
    if let Some(r) = &range
        && r.end > meta.size_bytes
    {
        bail!(
            "--range {}..{} is outside blob {id}, which has {} bytes",
            r.start,
            r.end,
            meta.size_bytes
        );
    }
    let total = range.as_ref().map_or(meta.size_bytes, |r| r.end - r.start);
    let mut bar = progress_bar(global, total, "get");
    // The whole blob, or only the range (its segments alone are fetched and decoded).
    let mut read = |out: &mut dyn std::io::Write| -> Result<flows::GetOutcome, flows::StoreError> {
        match &range {
            None => flows::read_blob(&node, id, &protection, &mut &mut *out, &mut bar),
            Some(r) => {
                let started = std::time::Instant::now();
                let failures =
                    flows::read_blob_range(&node, id, &protection, r.clone(), &mut &mut *out)?;
                bar(total);
                Ok(flows::GetOutcome {
                    blob: *id,
                    size_bytes: total,
                    failures,
                    elapsed_ms: started.elapsed().as_millis(),
                })
            }
        }
    };
    let outcome = match target {
        OutputTarget::Stdout => {
            let mut writer =
                std::io::BufWriter::with_capacity(1 << 20, crate::output::Stdout::new());
            let outcome = read(&mut writer).map_err(hint)?;
            std::io::Write::flush(&mut writer).context("writing to standard output")?;
            outcome
        }
        OutputTarget::InPlace => {
            // A pipe or character device (`-o /dev/null`, a FIFO): written in place, since
            // renaming a temp file over it would replace the device with a plain file.
            let device = std::fs::OpenOptions::new()
                .write(true)
                .open(output)
                .with_context(|| format!("opening {}", output.display()))?;
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, device);
            let outcome = read(&mut writer).map_err(hint)?;
            std::io::Write::flush(&mut writer)
                .with_context(|| format!("writing {}", output.display()))?;
            outcome
        }
        OutputTarget::File { partial } => {
            // A temp file beside the output, renamed over it at the end: a failed read leaves
            // no half file. Written around the page cache (cairn_client::direct): a large
            // download would otherwise fill memory with pages nobody reads soon. Created new
            // (O_EXCL), so a link planted at the temp name is never followed.
            let mut writer = DirectWriter::create(&partial, true, DEFAULT_WRITE_BUFFER_BYTES)
                .with_context(|| format!("creating {}", partial.display()))?;
            let result = read(&mut writer).map_err(hint).and_then(|o| {
                writer
                    .finish(false)
                    .with_context(|| format!("writing {}", partial.display()))?;
                Ok(o)
            });
            let outcome = match result {
                Ok(o) => o,
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(e);
                }
            };
            // Checked again just before the rename: what appeared at the path meanwhile
            // (a link, a directory) is not replaced either.
            if let Ok(meta) = std::fs::symlink_metadata(output)
                && !meta.file_type().is_file()
            {
                let _ = std::fs::remove_file(&partial);
                bail!(
                    "output {} is no longer a plain file (it changed during the get): nothing was replaced",
                    output.display()
                );
            }
            std::fs::rename(&partial, output)
                .with_context(|| format!("writing {}", output.display()))?;
            outcome
        }
    };
    if global.json {
        outln!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        errln!(
            "wrote {} bytes to {} in {} ms{}",
            outcome.size_bytes,
            if output.as_os_str() == "-" {
                "standard output".to_string()
            } else {
                output.display().to_string()
            },
            outcome.elapsed_ms,
            if outcome.failures.is_empty() {
                String::new()
            } else {
                format!(" (dropped: {})", outcome.failures.join("; "))
            }
        );
    }
    Ok(())
}

/// Where `store get -o` writes, decided before anything is fetched.
enum OutputTarget {
    /// `-o -`.
    Stdout,
    /// A FIFO or character device, opened and written as it is.
    InPlace,
    /// A regular file or a new name: written to `partial` and renamed over it.
    File { partial: PathBuf },
}

impl OutputTarget {
    /// What `-o PATH` means. Refuses, by name, what a rename would replace without writing
    /// into it: a symbolic link (`/dev/stdout` is one: renaming over it as root replaced the
    /// link itself), a directory, a block device (a disk), a socket.
    fn of(output: &std::path::Path, json: bool) -> Result<Self> {
        if output.as_os_str() == "-" {
            if json {
                bail!("-o - and --json both write to standard output: drop one");
            }
            return Ok(Self::Stdout);
        }
        let meta = match std::fs::symlink_metadata(output) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("output {}", output.display())),
        };
        let Some(meta) = meta else {
            return Ok(Self::File {
                partial: partial_path(output)?,
            });
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            let to = std::fs::read_link(output)
                .map_or_else(|_| "?".to_string(), |t| t.display().to_string());
            bail!(
                "output {} is a symbolic link (to {to}): cairn does not replace links; name the file itself, or use -o - for standard output",
                output.display()
            );
        }
        if kind.is_dir() {
            bail!("output {} is a directory: name a file", output.display());
        }
        if kind.is_file() {
            return Ok(Self::File {
                partial: partial_path(output)?,
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if kind.is_fifo() || kind.is_char_device() {
                return Ok(Self::InPlace);
            }
            if kind.is_block_device() {
                bail!(
                    "output {} is a block device: cairn writes files, pipes and character devices only",
                    output.display()
                );
            }
        }
        bail!(
            "output {} is neither a file, a pipe nor a character device",
            output.display()
        )
    }
}

/// `<path>.cairn-partial` beside the output. A leftover one (a get that was killed) is
/// removed when it is a plain file; anything else there is refused rather than followed.
fn partial_path(output: &std::path::Path) -> Result<PathBuf> {
    let mut name = output
        .file_name()
        .with_context(|| format!("output {} names no file", output.display()))?
        .to_os_string();
    name.push(".cairn-partial");
    let partial = output.with_file_name(name);
    match std::fs::symlink_metadata(&partial) {
        Ok(meta) if meta.file_type().is_file() => std::fs::remove_file(&partial)
            .with_context(|| format!("removing the leftover {}", partial.display()))?,
        Ok(_) => bail!(
            "{} exists and is not a file: remove it, or choose another output name",
            partial.display()
        ),
        Err(_) => {}
    }
    Ok(partial)
}

fn status(global: &Global, id: &Hash) -> Result<()> {
    let node = NodeClient::new(&node_url(global)?);
    let blob = node.get(&format!("/v1/blobs/{id}"))?;
    // Durability is quoted where the node counts shard loss; status works without it.
    let network = cairn_client::durability::NetworkLoss::fetch(&node).ok();
    // One planning rate for all the blob's deals.
    let quote = network
        .map(|n| n.estimate(None).map(|loss| (n, loss)))
        .transpose()?;
    let mut deals = Vec::new();
    for d in blob["deals"].as_array().cloned().unwrap_or_default() {
        let Some(deal_id) = d["id"].as_u64() else {
            continue;
        };
        let mut view = node.get(&format!("/v1/deals/{deal_id}"))?;
        // Only a live deal has a future to quote.
        if let Some((network, loss)) = &quote
            && view["deal"]["status"]["status"] == "active"
        {
            let report = cairn_client::durability::of_deal(network, *loss, &view["deal"])?;
            view["durability"] = json!({ "summary": report.summary(), "figures": report });
        }
        deals.push(view);
    }
    if global.json {
        return print(global, &json!({ "blob": blob["blob"], "deals": deals }));
    }
    print_status(id, &blob["blob"], &deals);
    Ok(())
}

/// `store status` for people: the blob in a line, then each deal in a line and its shards in
/// a table (holder, last challenge, verdict). The full record is under `--json`.
fn print_status(id: &Hash, blob: &serde_json::Value, deals: &[serde_json::Value]) {
    use crate::table::{Table, bytes, crn, tag};
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    outln!("blob {id}");
    outln!(
        "  {}, {}+{} shards of {}",
        bytes(n(&blob["size_bytes"])),
        n(&blob["data_shards"]),
        n(&blob["parity_shards"]),
        bytes(n(&blob["shard_size_bytes"]))
    );
    for view in deals {
        let d = &view["deal"];
        let term = if d["permanent"].as_bool() == Some(true) {
            "permanent".to_string()
        } else {
            match (d["start_epoch"].as_u64(), d["end_epoch"].as_u64()) {
                (Some(a), Some(b)) => format!("epochs {a}..={b}"),
                _ => format!("{} epochs, not started", n(&d["epochs"])),
            }
        };
        outln!(
            "deal-{}  {}  {term}  {}/GiB-epoch  escrow {}  paid {}",
            n(&d["id"]),
            tag(&d["status"], "status"),
            crn(&d["price_per_gib_epoch"]),
            crn(&d["escrow"]),
            crn(&d["paid_total"])
        );
        if let Some(summary) = view["durability"]["summary"].as_str() {
            outln!("  durability: {summary}");
        }
        let repair: Vec<u64> = d["repair_needed"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_u64)
            .collect();
        let mut table = Table::new(&["SHARD", "HOLDER", "CHALLENGED", "VERDICT"]);
        for (i, holder) in d["providers"].as_array().into_iter().flatten().enumerate() {
            let challenge = view["challenges"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["shard_index"].as_u64() == u64::try_from(i).ok());
            let (epoch, verdict) = challenge.map_or(("-".to_string(), "-".to_string()), |c| {
                (
                    format!("epoch {}", n(&c["challenge"]["epoch"])),
                    tag(&c["challenge"]["verdict"], "verdict"),
                )
            });
            let verdict = if repair.contains(&u64::try_from(i).unwrap_or(u64::MAX)) {
                format!("{verdict}, awaiting repair")
            } else {
                verdict
            };
            table.row(vec![
                i.to_string(),
                holder.as_str().unwrap_or("-").to_string(),
                epoch,
                verdict,
            ]);
        }
        if !table.is_empty() {
            table.print(2);
        }
    }
    outln!("(--json for the whole record: shard roots, challenges, seeds and reporters)");
}

fn audit(
    global: &Global,
    deal: DealId,
    range: Option<std::ops::Range<u64>>,
    from: &str,
    passphrase: &PassphraseArgs,
) -> Result<()> {
    let node = NodeClient::new(&node_url(global)?);
    let reporter = load_key(global, from, passphrase)?;
    let outcome = cairn_client::audit::audit(&node, &reporter, deal, range)?;
    if global.json {
        return print(global, &serde_json::to_value(&outcome)?);
    }
    match outcome {
        cairn_client::audit::Audit::Consistent {
            scanned_bytes,
            shards_read,
            ..
        } => outln!(
            "{deal}: consistent ({} of each of {shards_read} shards checked)",
            crate::table::bytes(scanned_bytes)
        ),
        cairn_client::audit::Audit::Reported { leaf_index, tx, .. } => outln!(
            "{deal}: shards are not one codeword at leaf {leaf_index}; proof posted in {tx}, the deal is now invalid"
        ),
    }
    Ok(())
}

fn challenge(global: &Global, deal: DealId, shard: Option<u16>, rule: AuditRule) -> Result<()> {
    // Refuse a bad rule before touching the network, naming the flag.
    if let Err(e) = rule.check() {
        bail!("--steps {}: {e}", rule.steps);
    }
    let node = NodeClient::new(&node_url(global)?);
    let verdicts = cairn_client::audit::timed_audit(&node, deal, shard, rule)?;
    use cairn_client::audit::TimedOutcome;
    let count = |o: TimedOutcome| verdicts.iter().filter(|v| v.outcome == o).count();
    // Wrong is what no load explains; too late faults too; late is only a strike.
    let wrong = count(TimedOutcome::Wrong);
    let failed = wrong + count(TimedOutcome::TooLate);
    let late = count(TimedOutcome::Late);
    if global.json {
        print(
            global,
            &json!({
                "deal": deal,
                "rule": rule,
                "deadline_ms": rule.deadline_ms(),
                "fault_after_ms": rule.fault_after_ms(),
                "failed": failed,
                "wrong": wrong,
                "late": late,
                "holders": verdicts,
            }),
        )?;
    } else {
        for v in &verdicts {
            let why = v.failure.as_deref().unwrap_or_default();
            let at = &v.endpoint;
            let (shard, ms) = (v.shard_index, v.elapsed_ms);
            match v.outcome {
                TimedOutcome::OnTime => outln!(
                    "{deal} shard {shard}: passed, {} reads in {ms} ms (deadline {} ms) at {at}",
                    v.steps,
                    v.deadline_ms
                ),
                TimedOutcome::Late => {
                    outln!("{deal} shard {shard}: late (a strike, not a fault) at {at}: {why}")
                }
                TimedOutcome::TooLate | TimedOutcome::Wrong => outln!(
                    "{deal} shard {shard}: FAILED after {ms} ms (deadline {} ms, fault line {} ms) at {at}: {why}",
                    v.deadline_ms,
                    v.fault_after_ms
                ),
            }
        }
    }
    if failed > 0 {
        let why = format!(
            "{failed} of {} holders of {deal} failed the timed audit",
            verdicts.len()
        );
        if global.json {
            errln!("error: {why}");
        }
        return Err(crate::Reported(why).into());
    }
    Ok(())
}

fn extend(global: &Global, deal: DealId, epochs: u64, key: &KeyArgs) -> Result<()> {
    let node = NodeClient::new(&node_url(global)?);
    let owner = load_key(global, &key.from, &key.passphrase)?;
    let outcome = flows::extend_deal(&node, &owner, deal, epochs)?;
    if global.json {
        return print(global, &serde_json::to_value(&outcome)?);
    }
    let until = outcome.end_epoch.map_or_else(
        || "its term starts when it activates".to_string(),
        |e| format!("it now ends after epoch {e}"),
    );
    outln!(
        "{deal} extended by {epochs} epochs for {}: {until}",
        outcome.paid
    );
    Ok(())
}

fn cancel(global: &Global, deal: DealId, key: &KeyArgs) -> Result<()> {
    let node = NodeClient::new(&node_url(global)?);
    let owner = load_key(global, &key.from, &key.passphrase)?;
    let outcome = flows::cancel_deal(&node, &owner, deal)?;
    if global.json {
        return print(global, &serde_json::to_value(&outcome)?);
    }
    outln!(
        "{deal} cancelled: {} of escrow refunded; its providers drop the shards",
        outcome.refunded
    );
    Ok(())
}

fn ls(global: &Global, key: &KeyArgs) -> Result<()> {
    let node = NodeClient::new(&node_url(global)?);
    let owner = cairn_client::Keystore::open(&global.home_dir()?)
        .info(&key.from)?
        .address;
    // Newest first, filtered to this owner by the node, every page.
    let deals: Vec<serde_json::Value> = node
        .list_all(&format!("/v1/deals?owner={owner}"), "deals")?
        .iter()
        .map(|d| {
            json!({
                "deal": d["id"], "blob": d["blob"]["id"], "size_bytes": d["blob"]["size_bytes"],
                "status": d["status"]["status"], "end_epoch": d["end_epoch"],
                "permanent": d["permanent"], "repair_needed": d["repair_needed"],
            })
        })
        .collect();
    if global.json {
        return print(global, &json!({ "owner": owner, "deals": deals }));
    }
    if deals.is_empty() {
        outln!("no deals for {owner}");
        return Ok(());
    }
    let mut table = crate::table::Table::new(&["DEAL", "STATUS", "BYTES", "ENDS", "BLOB"]);
    for d in &deals {
        table.row(vec![
            format!("deal-{}", d["deal"]),
            d["status"].as_str().unwrap_or("-").to_string(),
            crate::table::thousands(d["size_bytes"].as_u64().unwrap_or(0)),
            if d["permanent"].as_bool() == Some(true) {
                "permanent".to_string()
            } else {
                d["end_epoch"]
                    .as_u64()
                    .map_or_else(|| "-".to_string(), |e| format!("epoch {e}"))
            },
            d["blob"].as_str().unwrap_or("-").to_string(),
        ]);
    }
    table.print(0);
    Ok(())
}

fn serve(global: &Global, args: ServeArgs) -> Result<()> {
    let url = node_url(global)?;
    let key = load_key(global, &args.key, &args.passphrase)?;
    let node = NodeClient::new(&url);
    let listen = args.listen.to_string();
    let role = crate::provider::Role::Storage {
        listen: &listen,
        capacity_bytes: args.capacity_bytes,
    };
    let registered =
        crate::provider::require_registered(global, &node, &args.key, &key.address(), role)?;
    let capacity = args
        .capacity_bytes
        .unwrap_or(registered.declared.storage_bytes);
    if capacity == 0 {
        bail!("{} declares no storage capacity", key.address());
    }
    let params = chain_params(global)?;
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => global.home_dir()?.join("storage").join(&args.key),
    };
    let config = cairn_storage::ProviderConfig {
        data_dir,
        listen: args.listen,
        node_url: url,
        capacity_bytes: capacity,
        leaves_per_challenge: usize::from(params.storage_leaves_per_challenge),
        poll: Duration::from_millis(params.block_time_ms.max(100)),
        gc_every_polls: 10,
        behaviour: args.behaviour,
        shard_io: args.shard_io,
        read_budget: cairn_storage::throttle::ThrottleConfig::default(),
    };
    let json = global.json;
    let handle = cairn_storage::start_provider(config, key.clone(), move |event| {
        if !json {
            outln!("  {event:?}");
        }
    })?;
    if json {
        outln!(
            "{}",
            json!({ "address": key.address(), "endpoint": handle.endpoint() })
        );
    } else {
        outln!(
            "cairn storage provider {} on {}",
            key.address(),
            handle.endpoint()
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    handle.stop();
    Ok(())
}

/// `cairn gateway`: serves public blobs until Ctrl-C.
pub fn gateway(global: &Global, args: &GatewayArgs) -> Result<()> {
    let url = node_url(global)?;
    let handle = cairn_storage::start_gateway(&url, args.listen)?;
    if global.json {
        outln!("{}", json!({ "gateway": handle.url(), "node": url }));
    } else {
        outln!(
            "cairn gateway on {} (GET {}/v1/blobs/<id>; node {url})",
            handle.url(),
            handle.url()
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    handle.stop();
    Ok(())
}
