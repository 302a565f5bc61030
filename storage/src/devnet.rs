//! The devnet's storage providers: several providers in one process, each with its own data
//! directory and port, plus (optionally) the repairer, all stopped by one handle.

use crate::{Event, ProviderConfig, ProviderError, ProviderHandle, start_provider};
use cairn_types::Keypair;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// `println!` for the devnet's chatter that never panics: a `cairn devnet | head` whose
/// reader went away must not kill the repairer or an auditor thread (the CLI's own next
/// print ends the process quietly).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that never panics, for the same reason.
macro_rules! say_err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// One provider to start.
pub struct DevnetProvider {
    pub name: String,
    pub key: Keypair,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub capacity_bytes: u64,
    pub shard_io: crate::IoMode,
}

/// The running providers (and repairer); [`DevnetStorage::stop`] stops all.
pub struct DevnetStorage {
    pub providers: Vec<(String, ProviderHandle)>,
    stop: Arc<AtomicBool>,
    repairer: Option<std::thread::JoinHandle<()>>,
    auditors: Vec<std::thread::JoinHandle<()>>,
}

impl DevnetStorage {
    /// `(name, endpoint)` of every provider.
    pub fn endpoints(&self) -> Vec<(String, String)> {
        self.providers
            .iter()
            .map(|(n, h)| (n.clone(), h.endpoint()))
            .collect()
    }

    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for (_, p) in self.providers.drain(..) {
            p.stop();
        }
        if let Some(r) = self.repairer.take() {
            let _ = r.join();
        }
        for a in self.auditors.drain(..) {
            let _ = a.join();
        }
    }
}

impl Drop for DevnetStorage {
    fn drop(&mut self) {
        self.halt();
    }
}

fn log(name: &str, event: &Event) {
    match event {
        Event::Answered { epoch, proofs, txs } => {
            say!("  {name}: answered {proofs} storage challenge(s) of epoch {epoch} in {txs} tx");
        }
        Event::Unprovable {
            deal,
            shard_index,
            reason,
        } => say_err!("  {name}: cannot prove deal {deal} shard {shard_index}: {reason}"),
        Event::Collected { blob, shard_index } => {
            say!("  {name}: collected shard {shard_index} of {blob} (no live deal keeps it)");
        }
        Event::Error(e) => say_err!("  {name}: {e}"),
    }
}

/// The validators' timed auditors to run beside the providers: one per key.
pub struct DevnetAuditors {
    pub keys: Vec<(String, Keypair)>,
    pub config: crate::auditor::AuditorConfig,
}

/// Starts every provider against the node at `node_url`; `repairer` (a funded key and the
/// directory of its blob records) also runs the repair loop, and `auditors` the validators'
/// timed audits. `quiet` silences the per-event log lines.
pub fn spawn_devnet_providers(
    node_url: &str,
    providers: Vec<DevnetProvider>,
    leaves_per_challenge: usize,
    poll: Duration,
    repairer: Option<(Keypair, PathBuf)>,
    auditors: Option<DevnetAuditors>,
    quiet: bool,
) -> Result<DevnetStorage, ProviderError> {
    let mut running = Vec::with_capacity(providers.len());
    for p in providers {
        let config = ProviderConfig {
            data_dir: p.data_dir,
            listen: p.listen,
            node_url: node_url.to_string(),
            capacity_bytes: p.capacity_bytes,
            leaves_per_challenge,
            poll,
            gc_every_polls: 10,
            behaviour: crate::Behaviour::Honest,
            shard_io: p.shard_io,
            read_budget: crate::throttle::ThrottleConfig::default(),
        };
        let name = p.name.clone();
        let handle = start_provider(config, p.key, move |event| {
            if !quiet {
                log(&name, &event);
            }
        })?;
        running.push((p.name, handle));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let repairer = repairer.map(|(key, records)| {
        let (flag, url) = (Arc::clone(&stop), node_url.to_string());
        std::thread::spawn(move || {
            let spool = records.join("repair-spool");
            crate::repair::run(&url, &key, &records, &spool, poll, &flag, |line| {
                if !quiet {
                    say!("  repairer: {line}");
                }
            });
        })
    });
    let auditors = auditors
        .map(|a| {
            a.keys
                .into_iter()
                .map(|(name, key)| {
                    let (flag, url, config) = (Arc::clone(&stop), node_url.to_string(), a.config);
                    std::thread::spawn(move || {
                        crate::auditor::run(&url, &key, config, &flag, |line| {
                            if !quiet {
                                say!("  auditor {name}: {line}");
                            }
                        });
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(DevnetStorage {
        providers: running,
        stop,
        repairer,
        auditors,
    })
}
