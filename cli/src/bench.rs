//! `cairn bench chain`: a load generator for a running node. Funds fresh sender accounts from
//! the `default` key, then submits pre-signed transfers from several threads and watches the
//! node's event stream: finalized transactions per second, and submit-to-finality latency
//! percentiles measured per transaction.

use crate::Global;
use crate::account::node_url;
use anyhow::{Context, Result, bail};
use cairn_client::direct::{DEFAULT_WRITE_BUFFER_BYTES, DirectWriter};
use cairn_client::{Keystore, NodeClient};
use cairn_coding::{DataKey, Params, Protection, available_lanes, compute_meta_on_lanes};
use cairn_types::tx::Transfer;
use cairn_types::{Amount, BoundedString, Hash, Keypair, SignedTransaction, Transaction, TxBody};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::BufRead;
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Finalized transfers per second and submit-to-finality latency against a running node.
    Chain(ChainBenchArgs),
    /// Proof-of-compute backends: exactness, int8 rate, verification cost per challenge.
    Popw(crate::popw::PopwBenchArgs),
    /// End-to-end put and get of a generated file on the running network's storage
    /// providers: put, get with every shard, get with m data shards lost.
    Store(StoreBenchArgs),
}

#[derive(Args, Debug)]
pub struct StoreBenchArgs {
    /// Size of the generated file in MiB.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub size_mib: u64,
    /// Data + parity shards, e.g. 4+2 [default: adapts to the providers].
    #[arg(long, value_name = "K+M", value_parser = crate::store::parse_redundancy)]
    pub redundancy: Option<(u16, u16)>,
    /// Store unencrypted.
    #[arg(long)]
    pub public: bool,
    /// Rounds of put and gets (a new deal each); the median of each figure is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
    pub rounds: u64,
}

#[derive(Args, Debug)]
pub struct ChainBenchArgs {
    /// Transfers to submit.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub txs: u64,
    /// Distinct sender accounts (each sends txs/senders in nonce order).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub senders: u64,
    /// Submitting threads.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub threads: u64,
    /// Target submission rate in tx/s (0: as fast as possible). Light load for latency.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Extra node API URLs to spread submissions over (a cluster).
    #[arg(long = "also", value_name = "URL")]
    pub also: Vec<String>,
    /// Transactions per request: 1 uses `POST /v1/txs`, more use `POST /v1/txs/batch`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4_096))]
    pub batch: u64,
}

fn percentile(sorted: &[f64], percent: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank, in integers (no float-to-index casts).
    let rank = (percent * (sorted.len() - 1) + 50) / 100;
    sorted[rank.min(sorted.len() - 1)]
}

/// Finality times of transaction hashes, read from `/v1/events` on a thread.
fn watch(url: &str, tx: mpsc::Sender<(Hash, Instant)>) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let mut response = agent
        .get(&format!("{url}/v1/events"))
        .call()
        .context("subscribing to /v1/events")?;
    let reader = std::io::BufReader::new(response.body_mut().as_reader());
    for line in reader.lines() {
        let line = line?;
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        let now = Instant::now();
        let event: Value = serde_json::from_str(data)?;
        for receipt in event["receipts"].as_array().into_iter().flatten() {
            if let Some(hash) = receipt["tx"].as_str().and_then(|h| h.parse().ok())
                && tx.send((hash, now)).is_err()
            {
                return Ok(());
            }
        }
    }
    Ok(())
}

pub fn run(global: &Global, command: BenchCommand) -> Result<()> {
    let args = match command {
        BenchCommand::Chain(args) => args,
        BenchCommand::Popw(args) => return crate::popw::run(global, args),
        BenchCommand::Store(args) => return bench_store(global, &args),
    };
    let url = node_url(global)?;
    let client = NodeClient::new(&url);
    let status = client.status()?;
    let chain_id = status["chain_id"]
        .as_str()
        .context("no chain id")?
        .to_string();
    let fee = Amount::from_ucrn(1_000);
    let store = Keystore::open(&global.home_dir()?);
    let funder = store
        .load("default", None)
        .context("the bench funds its senders from the unencrypted devnet `default` key")?;
    let chain_id_b = BoundedString::new(chain_id.as_str()).context("chain id")?;
    let sign = |key: &Keypair, nonce: u64, body: TxBody| -> SignedTransaction {
        Transaction {
            chain_id: chain_id_b.clone(),
            sender: key.public_key().clone(),
            nonce,
            fee,
            body,
        }
        .sign(key)
    };

    let mut progress = crate::progress::Progress::new(global.json, "", None, "");
    progress.phase(&format!("funding {} senders", args.senders));
    // Fresh senders for this run, funded in one burst.
    let run_id = Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id());
    let senders: Vec<Keypair> = (0..args.senders)
        .map(|i| Keypair::from_test_seed(&format!("bench-{run_id}-{i}")))
        .collect();
    let per_sender = args.txs.div_ceil(args.senders);
    let budget = Amount::from_ucrn(u128::from(per_sender) * 2_000 + 1_000_000);
    let first_nonce = client.nonce(&funder.address())?;
    let funding: Vec<SignedTransaction> = (first_nonce..)
        .zip(&senders)
        .map(|(nonce, s)| {
            sign(
                &funder,
                nonce,
                TxBody::Transfer(Transfer {
                    to: s.address(),
                    amount: budget,
                }),
            )
        })
        .collect();
    let mut last = Hash::ZERO;
    for chunk in funding.chunks(500) {
        for result in client.submit_batch(chunk)? {
            last = result.map_err(|e| anyhow::anyhow!("funding a sender: {e}"))?;
        }
    }
    client.wait_finalized(&last, Duration::from_secs(120))?;

    // Pre-sign everything so signing is not measured.
    progress.phase(&format!("signing {} transfers", args.txs));
    let sink = Keypair::from_test_seed("bench-sink").address();
    let mut work: Vec<Vec<SignedTransaction>> = vec![Vec::new(); usize::try_from(args.threads)?];
    let mut count = 0u64;
    'outer: for n in 0..per_sender {
        for (i, s) in senders.iter().enumerate() {
            if count == args.txs {
                break 'outer;
            }
            let tx = sign(
                s,
                n,
                TxBody::Transfer(Transfer {
                    to: sink,
                    amount: Amount::from_ucrn(1),
                }),
            );
            // A sender always goes to the same thread so its nonces arrive in order.
            let lane = i % work.len();
            work[lane].push(tx);
            count += 1;
        }
    }
    let urls: Vec<String> = std::iter::once(url.clone())
        .chain(args.also.iter().cloned())
        .collect();

    let (event_tx, event_rx) = mpsc::channel();
    let watch_url = url.clone();
    std::thread::spawn(move || {
        if let Err(e) = watch(&watch_url, event_tx) {
            errln!("event stream ended: {e:#}");
        }
    });
    std::thread::sleep(Duration::from_millis(300));

    progress.phase(&format!("submitting {} transfers", args.txs));
    let start = Instant::now();
    let batch_size = usize::try_from(args.batch)?;
    // With batches the pacing applies per request: a request every batch/rate·threads seconds.
    let per_thread_interval = if args.rate == 0 {
        None
    } else {
        Some(Duration::from_secs_f64(
            (args.threads * args.batch) as f64 / args.rate as f64,
        ))
    };
    let (submitted_tx, submitted_rx) = mpsc::channel::<(Hash, Instant)>();
    let mut workers = Vec::new();
    for (t, lane) in work.into_iter().enumerate() {
        let node = NodeClient::new(&urls[t % urls.len()]);
        let submitted = submitted_tx.clone();
        workers.push(std::thread::spawn(move || -> Result<u64> {
            let mut rejected = 0;
            let mut next = Instant::now();
            for chunk in lane.chunks(batch_size) {
                if let Some(interval) = per_thread_interval {
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                    next += interval;
                }
                let at = Instant::now();
                if let [tx] = chunk {
                    match node.submit(tx) {
                        Ok(hash) => {
                            let _ = submitted.send((hash, at));
                        }
                        Err(_) => rejected += 1,
                    }
                    continue;
                }
                match node.submit_batch(chunk) {
                    Ok(results) => {
                        for result in results {
                            match result {
                                Ok(hash) => {
                                    let _ = submitted.send((hash, at));
                                }
                                Err(_) => rejected += 1,
                            }
                        }
                    }
                    Err(_) => rejected += u64::try_from(chunk.len()).unwrap_or(u64::MAX),
                }
            }
            Ok(rejected)
        }));
    }
    drop(submitted_tx);
    let mut rejected = 0;
    for w in workers {
        rejected += w
            .join()
            .map_err(|_| anyhow::anyhow!("a submitter panicked"))??;
    }
    let submit_elapsed = start.elapsed();
    let submitted: HashMap<Hash, Instant> = submitted_rx.iter().collect();
    if submitted.is_empty() {
        bail!("every submission was refused");
    }

    let mut latencies_ms = Vec::with_capacity(submitted.len());
    let total = u64::try_from(submitted.len()).unwrap_or(u64::MAX);
    drop(progress);
    let mut progress =
        crate::progress::Progress::new(global.json, "finalized", Some(total), "transfers");
    let mut last_final = start;
    let deadline = Instant::now() + Duration::from_secs(120);
    while latencies_ms.len() < submitted.len() && Instant::now() < deadline {
        match event_rx.recv_timeout(Duration::from_secs(1)) {
            Ok((hash, at)) => {
                if let Some(sent) = submitted.get(&hash) {
                    latencies_ms.push(at.saturating_duration_since(*sent).as_secs_f64() * 1e3);
                    progress.set(
                        u64::try_from(latencies_ms.len())
                            .unwrap_or(u64::MAX)
                            .min(total),
                    );
                    last_final = last_final.max(at);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    drop(progress);
    latencies_ms.sort_by(|a, b| a.total_cmp(b));
    let finalized = latencies_ms.len();
    let window = last_final.saturating_duration_since(start).as_secs_f64();
    let report = json!({
        "node": url,
        "validators": status["validators"].as_array().map(Vec::len),
        "block_time_ms": status["block_time_ms"],
        "nodes": urls.len(),
        "batch": args.batch,
        "submitted": submitted.len(),
        "refused": rejected,
        "finalized": finalized,
        "submit_rate_tx_s": submitted.len() as f64 / submit_elapsed.as_secs_f64(),
        "finalized_tx_s": if window > 0.0 { finalized as f64 / window } else { 0.0 },
        "latency_ms": {
            "p50": percentile(&latencies_ms, 50),
            "p90": percentile(&latencies_ms, 90),
            "p99": percentile(&latencies_ms, 99),
            "max": latencies_ms.last().copied().unwrap_or(0.0),
        },
    });
    if global.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!(
            "{} submitted ({} refused) at {:.0} tx/s; {} finalized at {:.0} tx/s; submit-to-finality p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms",
            submitted.len(),
            rejected,
            report["submit_rate_tx_s"].as_f64().unwrap_or(0.0),
            finalized,
            report["finalized_tx_s"].as_f64().unwrap_or(0.0),
            report["latency_ms"]["p50"].as_f64().unwrap_or(0.0),
            report["latency_ms"]["p90"].as_f64().unwrap_or(0.0),
            report["latency_ms"]["p99"].as_f64().unwrap_or(0.0),
        );
    }
    Ok(())
}

/// Fills `buf` with xorshift64 output: incompressible enough, and fast (the bench measures
/// the storage path, not the generator).
fn fill(buf: &mut [u8], state: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let bytes = state.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// BLAKE3 of a file, streamed.
fn file_hash(path: &std::path::Path) -> Result<Hash> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = blake3::Hasher::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(Hash(*hasher.finalize().as_bytes()))
}

fn gb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    // Bytes and nanoseconds stay exact in f64 far beyond any bench size.
    let (bytes, ns) = (bytes as f64, elapsed.as_nanos().max(1) as f64);
    bytes / ns
}

/// Runs `f` on every path at once, one thread each; the first error wins.
fn on_each(
    paths: &[std::path::PathBuf],
    f: impl Fn(&std::path::Path) -> Result<()> + Sync,
) -> Result<()> {
    std::thread::scope(|scope| {
        let f = &f;
        let running: Vec<_> = paths
            .iter()
            .map(|path| scope.spawn(move || f(path)))
            .collect();
        running.into_iter().try_for_each(|thread| {
            thread
                .join()
                .map_err(|_| anyhow::anyhow!("a calibration thread panicked"))?
        })
    })
}

/// What this machine can do right now, measured just before the rounds, in the shapes a put
/// and a get load it: `n` `O_DIRECT` streams written and synced at once (the providers'
/// shard writes), `k` of them read back at once (a get's data shards), in the bench
/// directory (on the devnet the file system of the providers' data); and the client's pass 1
/// (encrypt, Reed-Solomon, commit) on its lanes from memory. The same kind of VM has shown a
/// third of the disk rate from one hour to the next, so the end-to-end figures only mean
/// something beside these.
struct HostRates {
    disk_write_gb_per_s: f64,
    disk_read_gb_per_s: f64,
    encode_gb_per_s: f64,
    lanes: usize,
}

impl HostRates {
    fn measure(
        dir: &std::path::Path,
        bytes: u64,
        params: &Params,
        protection: &Protection,
    ) -> Result<Self> {
        use cairn_client::direct::{AlignedBuf, DirectReader};
        use std::io::Write;
        const CHUNK_BYTES: usize = 4 << 20;
        let k = usize::from(params.data_shards.max(1));
        let n = k + usize::from(params.parity_shards);
        // Each stream carries a shard's share; whole chunks keep the arithmetic simple.
        let chunks = usize::try_from(bytes)
            .context("calibration size")?
            .div_ceil(k * CHUNK_BYTES)
            .max(1);
        let stream_bytes = u64::try_from(chunks * CHUNK_BYTES).unwrap_or(u64::MAX);
        let paths: Vec<_> = (0..n).map(|i| dir.join(format!("calibrate-{i}"))).collect();
        let mut data = vec![0u8; CHUNK_BYTES];
        fill(&mut data, &mut 0x2545_f491_4f6c_dd1du64);
        // The files go whatever happens to the measurement.
        let disk = (|| -> Result<(f64, f64)> {
            let start = Instant::now();
            on_each(&paths, |path| {
                let mut w = DirectWriter::create(path, false, DEFAULT_WRITE_BUFFER_BYTES)
                    .with_context(|| format!("creating {}", path.display()))?;
                for _ in 0..chunks {
                    w.write_all(&data)?;
                }
                w.finish(true)
                    .with_context(|| format!("writing {}", path.display()))?;
                Ok(())
            })?;
            let written = stream_bytes.saturating_mul(u64::try_from(n).unwrap_or(u64::MAX));
            let write = gb_per_s(written, start.elapsed());
            let start = Instant::now();
            on_each(&paths[..k], |path| {
                let mut r = DirectReader::open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                let mut buf = AlignedBuf::new(DirectReader::buffer_bytes_for(CHUNK_BYTES));
                for chunk in 0..chunks {
                    let at = u64::try_from(chunk * CHUNK_BYTES).unwrap_or(u64::MAX);
                    r.read_into(&mut buf, at, CHUNK_BYTES)
                        .with_context(|| format!("reading {}", path.display()))?;
                }
                Ok(())
            })?;
            let read = stream_bytes.saturating_mul(u64::try_from(k).unwrap_or(u64::MAX));
            Ok((write, gb_per_s(read, start.elapsed())))
        })();
        for path in &paths {
            let _ = std::fs::remove_file(path);
        }
        let (disk_write_gb_per_s, disk_read_gb_per_s) = disk?;
        // Pass 1 of a put on the same lanes, from memory, after one short warm-up run (the
        // first run pays for fresh pages and cold code).
        let lanes = available_lanes(cairn_client::store::MAX_CODING_LANES);
        let plain = vec![0x5au8; usize::try_from(bytes.min(256 << 20)).unwrap_or(0)];
        let plain_bytes = u64::try_from(plain.len()).unwrap_or(0);
        let warm = plain.len().min(16 << 20);
        compute_meta_on_lanes(
            &plain[..warm],
            u64::try_from(warm).unwrap_or(0),
            params,
            protection,
            lanes,
        )
        .context("encoding the calibration buffer")?;
        let start = Instant::now();
        compute_meta_on_lanes(&plain[..], plain_bytes, params, protection, lanes)
            .context("encoding the calibration buffer")?;
        let encode_gb_per_s = gb_per_s(plain_bytes, start.elapsed());
        Ok(Self {
            disk_write_gb_per_s,
            disk_read_gb_per_s,
            encode_gb_per_s,
            lanes,
        })
    }

    /// The fastest put this machine allows: pass 1 is CPU alone, pass 2 at best hides the
    /// encoding behind the shard writes (`n / k` bytes per byte put). Finality waits and the
    /// providers' hashing come on top.
    fn put_ceiling(&self, data_shards: u16, parity_shards: u16) -> f64 {
        let k = f64::from(data_shards.max(1));
        let n = k + f64::from(parity_shards);
        let per_byte = 1.0 / self.encode_gb_per_s
            + (1.0 / self.encode_gb_per_s).max(n / (k * self.disk_write_gb_per_s));
        1.0 / per_byte
    }

    /// The fastest get into a file: the providers read every byte from the same device the
    /// output is written to, so the two transfers share it.
    fn get_file_ceiling(&self) -> f64 {
        1.0 / (1.0 / self.disk_read_gb_per_s + 1.0 / self.disk_write_gb_per_s)
    }

    /// The names of [`HostRates::rates`], in order.
    const RATE_NAMES: [&'static str; 5] = [
        "disk_write_gb_per_s",
        "disk_read_gb_per_s",
        "encode_gb_per_s",
        "put_ceiling_gb_per_s",
        "get_file_ceiling_gb_per_s",
    ];

    fn rates(&self, data_shards: u16, parity_shards: u16) -> [f64; 5] {
        [
            self.disk_write_gb_per_s,
            self.disk_read_gb_per_s,
            self.encode_gb_per_s,
            self.put_ceiling(data_shards, parity_shards),
            self.get_file_ceiling(),
        ]
    }

    fn json(&self, data_shards: u16, parity_shards: u16) -> Value {
        let mut doc = json!({ "lanes": self.lanes });
        for (name, rate) in Self::RATE_NAMES
            .iter()
            .zip(self.rates(data_shards, parity_shards))
        {
            doc[*name] = json!(rate);
        }
        doc
    }
}

/// `cairn bench store`: writes a file of `size_mib` MiB under `<home>/bench-store`, then per
/// round measures what the machine can do right now ([`HostRates`]: the disk, the coding
/// pipeline alone and the ceilings they put on a put and a get), puts the file, gets it back
/// into a file (all shards; the first m data shards skipped, each copy checked) and into
/// nothing, and reports every round and the medians. Rounds tame this kind of machine's
/// noise: a VM pays the host for every page it touches first.
fn bench_store(global: &Global, args: &StoreBenchArgs) -> Result<()> {
    use cairn_client::store::{self as flows, PutOptions};
    use std::io::Write;
    let url = node_url(global)?;
    let node = NodeClient::new(&url);
    let home = global.home_dir()?;
    let key = Keystore::open(&home)
        .load("default", None)
        .context("the bench stores with the unencrypted devnet `default` key")?;
    let params = crate::store::chain_params(global)?;
    let dir = home.join("bench-store");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let size = args.size_mib << 20;
    let (k, m) = match args.redundancy {
        Some(r) => r,
        None => flows::default_redundancy(flows::live_storage_providers(&node)?.len()),
    };
    let protection = if args.public {
        Protection::Public
    } else {
        Protection::Encrypted(DataKey::from_bytes([7u8; 32]))
    };
    let coding = Params::new(k, m);
    let input = dir.join("input");
    {
        let file = std::fs::File::create(&input)
            .with_context(|| format!("creating {}", input.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..args.size_mib {
            fill(&mut buf, &mut state);
            w.write_all(&buf)?;
        }
        w.flush()?;
        w.get_ref().sync_all()?;
    }
    let want = file_hash(&input)?;
    // Deals that outlive every round, even a slow one: a deal that expired before its round
    // read it back made the bench fail on a loaded machine (issue "fair audits"). Ten
    // minutes a round is well past any round seen; devnet money is free.
    let epochs = args
        .rounds
        .saturating_mul(600_000)
        .div_ceil(params.epoch_ms())
        .saturating_add(2)
        .clamp(params.min_deal_epochs.max(2), params.max_deal_epochs);
    let options = PutOptions {
        epochs,
        permanent: false,
        redundancy: args.redundancy,
        durability_nines: None,
        loss_rate: None,
        public: args.public,
        price_per_gib_epoch: Amount::from_ucrn(1_000_000),
    };
    let records = crate::store::records_dir(global)?;
    // Each get is timed twice: into a file (what `cairn store get -o` does, checked by
    // hash afterwards) and into nothing (network, verification and decoding alone, counted).
    let mut rounds = Vec::new();
    for round in 0..args.rounds {
        // Measured again each round: the host drifts within a run as well.
        let host = HostRates::measure(&dir, size.min(512 << 20), &coding, &protection)?;
        if !global.json {
            errln!(
                "round {round}, this machine now: O_DIRECT write {:.3} GB/s, read {:.3} GB/s; \
                 encode on {} lane(s) {:.3} GB/s; which allow a put of at most {:.3} GB/s and a \
                 get into a file of {:.3} GB/s",
                host.disk_write_gb_per_s,
                host.disk_read_gb_per_s,
                host.lanes,
                host.encode_gb_per_s,
                host.put_ceiling(k, m),
                host.get_file_ceiling()
            );
        }
        let start = Instant::now();
        let put = flows::put_file(
            &node,
            &key,
            &input,
            &options,
            &records,
            params.certificate_margin,
            params.permanent_prepay_epochs,
            &mut |_| {},
        )?;
        let put_time = start.elapsed();
        let stored = flows::protection_of(&node, &records, &put.blob, Some(&key))?;
        let lost: Vec<usize> = (0..usize::from(put.parity_shards)).collect();
        let to_file = |skip: &[usize], name: &str| -> Result<Duration> {
            let out = dir.join(name);
            // The same writer as `cairn store get -o`.
            let mut w = DirectWriter::create(&out, false, DEFAULT_WRITE_BUFFER_BYTES)
                .with_context(|| format!("creating {}", out.display()))?;
            let start = Instant::now();
            flows::read_blob_without(&node, &put.blob, &stored, skip, &mut w, &mut |_| {})?;
            w.finish(false)
                .with_context(|| format!("writing {}", out.display()))?;
            let elapsed = start.elapsed();
            if file_hash(&out)? != want {
                bail!("{name}: the bytes read back differ from the file put");
            }
            let _ = std::fs::remove_file(&out);
            Ok(elapsed)
        };
        let to_nothing = |skip: &[usize], name: &str| -> Result<Duration> {
            let start = Instant::now();
            let got = flows::read_blob_without(
                &node,
                &put.blob,
                &stored,
                skip,
                &mut std::io::sink(),
                &mut |_| {},
            )?;
            let elapsed = start.elapsed();
            if got.size_bytes != size {
                bail!("{name}: read {} bytes of {size}", got.size_bytes);
            }
            Ok(elapsed)
        };
        let get_time = to_file(&[], "get-all")?;
        let figures = [
            ("put", put_time),
            ("get", get_time),
            ("get_lost", to_file(&lost, "get-lost")?),
            ("get_no_output", to_nothing(&[], "get-all")?),
            ("get_lost_no_output", to_nothing(&lost, "get-lost")?),
        ];
        let mut doc = json!({
            "round": round,
            "blob": put.blob,
            "deal": put.deal,
            "data_shards": put.data_shards,
            "parity_shards": put.parity_shards,
            "lost_shards": lost.len(),
            "put_phases": put.phases,
            "host": host.json(k, m),
        });
        for (name, elapsed) in figures {
            doc[format!("{name}_ms")] = json!(elapsed.as_millis());
            doc[format!("{name}_gb_per_s")] = json!(gb_per_s(size, elapsed));
        }
        // How close each came to what the machine allowed in this round.
        doc["put_of_ceiling"] = json!(gb_per_s(size, put_time) / host.put_ceiling(k, m));
        doc["get_of_ceiling"] = json!(gb_per_s(size, get_time) / host.get_file_ceiling());
        if !global.json {
            errln!(
                "round {round}: {}",
                figures
                    .iter()
                    .map(|(name, e)| format!("{name} {:.3} GB/s", gb_per_s(size, *e)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        rounds.push(doc);
    }
    let _ = std::fs::remove_file(&input);
    // The median over the rounds of whatever `pick` reads from each.
    let median_of = |pick: &dyn Fn(&Value) -> &Value| -> f64 {
        let mut values: Vec<f64> = rounds.iter().filter_map(|r| pick(r).as_f64()).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(0.0)
    };
    let median = |name: &str| median_of(&|r| &r[format!("{name}_gb_per_s")]);
    let names = [
        "put",
        "get",
        "get_lost",
        "get_no_output",
        "get_lost_no_output",
    ];
    let mut medians = json!({});
    for name in names {
        medians[format!("{name}_gb_per_s")] = json!(median(name));
    }
    for ratio in ["put_of_ceiling", "get_of_ceiling"] {
        medians[ratio] = json!(median_of(&|r| &r[ratio]));
    }
    let mut host = json!({});
    for rate in HostRates::RATE_NAMES {
        host[rate] = json!(median_of(&|r| &r["host"][rate]));
    }
    let doc = json!({
        "size_bytes": size,
        "public": args.public,
        "host": host,
        "rounds": rounds,
        "median": medians,
    });
    if global.json {
        outln!("{doc}");
    } else {
        outln!(
            "{} MiB{}, median of {} rounds: {}",
            args.size_mib,
            if args.public {
                ", public"
            } else {
                ", encrypted"
            },
            args.rounds,
            names
                .iter()
                .map(|name| format!("{name} {:.3} GB/s", median(name)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
