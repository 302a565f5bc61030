//! Production wiring: one validator on the Commonware `tokio` runtime with
//! `authenticated::lookup` p2p (peers and their addresses from the genesis validator list).
//!
//! Each validator runs on its own OS thread with its own runtime, p2p network instance, listen
//! port and storage directory, so `cairn devnet` can run N validators in one process on loopback
//! sockets, and `cairn node` runs one. The caller talks to it through the returned
//! [`NodeHandle`], which is runtime-agnostic (call it from any thread or async runtime).

use crate::config::NodeConfig;
use crate::error::ChainError;
use crate::handle::NodeHandle;
use crate::node::{NodeChannels, channels, max_message_size, signing_key, start_node};
use cairn_ledger::Genesis;
use commonware_cryptography::{ChaCha20Poly1305, ed25519};
use commonware_p2p::authenticated::lookup;
use commonware_p2p::{Address, AddressableManager as _};
use commonware_runtime::{Quota, Runner as _, Spawner as _, Supervisor as _, tokio};
use commonware_stream::cups::{self, Cups};
use commonware_stream::sake::{self, Sake};
use commonware_utils::ordered::Map;
use commonware_utils::{NZU32, NZUsize};
use futures::channel::oneshot;
use std::net::{SocketAddr, ToSocketAddrs};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;
use tracing::{error, info};

/// One validator process (or one validator of a devnet).
#[derive(Clone, Debug)]
pub struct ValidatorConfig {
    pub node: NodeConfig,
    /// This validator's storage directory (created if missing). One per validator.
    pub data_dir: PathBuf,
    /// Socket to listen on for p2p. `None` listens on this validator's genesis `p2p_address`.
    pub listen: Option<SocketAddr>,
    /// Tokio worker threads of this validator's runtime.
    pub worker_threads: usize,
}

impl ValidatorConfig {
    pub fn new(node: NodeConfig, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            node,
            data_dir: data_dir.into(),
            listen: None,
            worker_threads: 2,
        }
    }
}

/// A running validator. Dropping it stops the validator (and waits for its thread).
pub struct Validator {
    handle: NodeHandle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Validator {
    pub fn handle(&self) -> &NodeHandle {
        &self.handle
    }

    /// Stops the validator and waits for its runtime to wind down.
    pub fn shutdown(mut self) -> Result<(), ChainError> {
        self.stop_and_join()
    }

    /// Blocks until the validator stops on its own (it does not, unless consensus fails).
    pub fn wait(mut self) -> Result<(), ChainError> {
        // Hold the stop signal while waiting: dropping it would stop the validator.
        let _stop = self.stop.take();
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| ChainError::Runtime {
                reason: "validator thread panicked".into(),
            }),
            None => Ok(()),
        }
    }

    fn stop_and_join(&mut self) -> Result<(), ChainError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| ChainError::Runtime {
                reason: "validator thread panicked".into(),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Validator {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_join() {
            error!(error = %e, "validator did not stop cleanly");
        }
    }
}

/// Resolves a genesis `p2p_address` (`host:port`).
fn resolve(address: &cairn_types::Address, text: &str) -> Result<SocketAddr, ChainError> {
    let bad = |reason: String| ChainError::BadP2pAddress {
        address: *address,
        p2p_address: text.to_string(),
        reason,
    };
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Ok(socket);
    }
    text.to_socket_addrs()
        .map_err(|e| bad(e.to_string()))?
        .next()
        .ok_or_else(|| bad("resolves to no address".into()))
}

/// The genesis validators with their p2p sockets.
fn peers(genesis: &Genesis) -> Result<Vec<(ed25519::PublicKey, SocketAddr)>, ChainError> {
    genesis
        .validators
        .iter()
        .map(|v| {
            let key = v
                .address
                .public_key()
                .map_err(|_| ChainError::BadValidatorKey { address: v.address })?;
            Ok((key.0, resolve(&v.address, &v.p2p_address)?))
        })
        .collect()
}

/// Starts a validator on its own thread and returns once it has replayed its history and
/// joined the network (a blocking call: run it off async worker threads).
pub fn start_validator(config: ValidatorConfig) -> Result<Validator, ChainError> {
    let me = config.node.key.address();
    let peers = peers(&config.node.genesis)?;
    let my_socket = config
        .node
        .genesis
        .validators
        .iter()
        .zip(&peers)
        .find(|(v, _)| v.address == me)
        .map(|(_, (_, socket))| *socket)
        .ok_or(ChainError::NotAValidator { address: me })?;
    let listen = config.listen.unwrap_or(my_socket);
    let signer = signing_key(&config.node.key)?;
    std::fs::create_dir_all(&config.data_dir).map_err(|e| ChainError::Storage {
        reason: format!("{}: {e}", config.data_dir.display()),
    })?;

    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let runtime = tokio::Config::new()
        .with_worker_threads(config.worker_threads.max(1))
        .with_storage_directory(config.data_dir.clone());
    let node = config.node;
    let thread = std::thread::Builder::new()
        .name(format!(
            "validator-{}",
            me.to_string().get(5..13).unwrap_or_default()
        ))
        .spawn(move || {
            tokio::Runner::new(runtime).start(|context| async move {
                let n = peers.len();
                let local = peers.iter().all(|(_, s)| {
                    let ip = s.ip();
                    ip.is_loopback() || ip.is_unspecified() || is_private(&ip)
                });
                let handshake = Cups::<_, ChaCha20Poly1305>::new(
                    Sake {
                        signer,
                        synchrony_bound: Duration::from_secs(5),
                        max_handshake_age: Duration::from_secs(10),
                        version: sake::Version::V1,
                    },
                    cups::Version::V1,
                );
                let namespace = format!("_CAIRN_P2P_{}", node.genesis.chain_id).into_bytes();
                let max_peers = NonZeroUsize::new(n.max(1)).unwrap_or(NZUsize!(1));
                let p2p_config = if local {
                    lookup::Config::local(
                        handshake,
                        &namespace,
                        listen,
                        max_peers,
                        max_message_size(n),
                        NZUsize!(4_096),
                    )
                } else {
                    lookup::Config::recommended(
                        handshake,
                        &namespace,
                        listen,
                        max_peers,
                        max_message_size(n),
                        NZUsize!(4_096),
                    )
                };
                let (mut network, mut oracle) =
                    lookup::Network::new(context.child("p2p"), p2p_config);
                let _ = oracle.track(
                    0,
                    Map::from_iter_dedup(peers.into_iter().map(|(k, s)| (k, Address::from(s)))),
                );
                let quota = Quota::per_second(NZU32!(1_024));
                let mut registered = channels::ALL.map(|c| Some(network.register(c, quota)));
                network.start();
                let mut take = |i: usize| registered[i].take();
                let (
                    Some(votes),
                    Some(certificates),
                    Some(resolver),
                    Some(backfill),
                    Some(broadcast),
                    Some(txs),
                ) = (take(0), take(1), take(2), take(3), take(4), take(5))
                else {
                    let _ = ready_tx.send(Err(ChainError::StartAborted));
                    return;
                };
                let node_channels = NodeChannels {
                    votes,
                    certificates,
                    resolver,
                    backfill,
                    broadcast,
                    txs,
                };
                let running = match start_node(
                    context.child("validator"),
                    node,
                    node_channels,
                    oracle.clone(),
                    oracle,
                )
                .await
                {
                    Ok(running) => running,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                info!(validator = %me, %listen, "validator started");
                let _ = ready_tx.send(Ok(running.handle.clone()));
                futures::future::select(stop_rx, running.task).await;
                // Ask every actor to wind down, then return (which cancels what remains).
                let _ = context.stop(0, Some(Duration::from_secs(5))).await;
            });
        })
        .map_err(|e| ChainError::Runtime {
            reason: e.to_string(),
        })?;

    match ready_rx.recv() {
        Ok(Ok(handle)) => Ok(Validator {
            handle,
            stop: Some(stop_tx),
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(ChainError::StartAborted)
        }
    }
}

fn is_private(ip: &std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_private() || v4.is_link_local(),
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}
