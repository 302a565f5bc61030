//! A real one-validator chain in this process (tokio, real sockets, data on disk) with the
//! node API on an ephemeral port, plus small HTTP helpers.

use cairn_chain::{ChainConfig, NodeConfig, NodeHandle, Validator, ValidatorConfig};
use cairn_ledger::params::{GenesisAccount, GenesisProvider, GenesisValidator};
use cairn_ledger::{Genesis, Params};
use cairn_types::{Amount, Capacity, Keypair};
use serde_json::Value;
use std::time::{Duration, Instant};

pub const EPOCH_BLOCKS: u64 = 40;

fn crn(v: u128) -> Amount {
    Amount::from_crn(v).expect("amount")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The prover's claimed int8 rate: far below what the CPU backend does even on a loaded
/// 2-core machine, so its proofs pass and it counts as active and proven.
pub const PROVER_CLAIM_INT8_OPS: u64 = 200_000_000;

pub struct Net {
    pub url: String,
    pub tenant: Keypair,
    pub provider: Keypair,
    /// A compute provider with a claim, answering its challenges with the CPU backend.
    pub prover: Keypair,
    prover_thread: Option<(
        std::thread::JoinHandle<()>,
        std::sync::Arc<std::sync::atomic::AtomicBool>,
    )>,
    validator: Option<Validator>,
    api: Option<(
        std::thread::JoinHandle<()>,
        tokio::sync::oneshot::Sender<()>,
    )>,
    pub dir: tempfile::TempDir,
}

impl Net {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let tenant = Keypair::from_test_seed("explorer-tenant");
        let provider = Keypair::from_test_seed("explorer-provider");
        let prover = Keypair::from_test_seed("explorer-prover");
        let validator_key = Keypair::from_test_seed("explorer-validator");
        let mut params = Params {
            epoch_length_blocks: EPOCH_BLOCKS,
            ..Params::default()
        };
        params = params.with_block_time(100);
        // A challenge every third epoch (4 s epochs; a 100 ms challenge stays within 1% of
        // the time), so the prover is proven within the test's few epochs.
        params.compute_challenge_ms = 100;
        params.compute_challenge_interval_epochs = 3;
        params.validate().expect("valid test params");
        let genesis = Genesis {
            chain_id: "explorer-test".to_string(),
            genesis_time_ms: u64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock")
                    .as_millis(),
            )
            .expect("ms"),
            params,
            accounts: vec![
                GenesisAccount {
                    address: tenant.address(),
                    balance: crn(1_000_000),
                },
                GenesisAccount {
                    address: provider.address(),
                    balance: crn(100_000),
                },
                GenesisAccount {
                    address: prover.address(),
                    balance: crn(100_000),
                },
            ],
            validators: vec![GenesisValidator {
                address: validator_key.address(),
                stake: crn(100_000),
                p2p_address: format!("127.0.0.1:{}", free_port()),
            }],
            providers: vec![
                GenesisProvider {
                    address: provider.address(),
                    endpoint: "http://127.0.0.1:1".to_string(),
                    region: "test".to_string(),
                    capacity: Capacity {
                        cpu_millicores: 4_000,
                        memory_bytes: 4 << 30,
                        ..Capacity::default()
                    },
                    commission_bps: 500,
                    bond: crn(10_000),
                    claimed_int8_ops: 0,
                },
                GenesisProvider {
                    address: prover.address(),
                    endpoint: "http://127.0.0.1:2".to_string(),
                    region: "test".to_string(),
                    capacity: Capacity {
                        cpu_millicores: 1_000,
                        memory_bytes: 1 << 30,
                        ..Capacity::default()
                    },
                    commission_bps: 1_000,
                    bond: crn(5_000),
                    claimed_int8_ops: PROVER_CLAIM_INT8_OPS,
                },
            ],
        };
        let validator = cairn_chain::start_validator(ValidatorConfig::new(
            NodeConfig {
                genesis,
                key: validator_key,
                partition_prefix: "cairn".to_string(),
                chain: ChainConfig::default(),
            },
            dir.path().join("validator"),
        ))
        .expect("validator starts");
        let handle = validator.handle().clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind api");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let api = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let _ = cairn_api::serve(listener, handle, async {
                    let _ = rx.await;
                })
                .await;
            });
        });
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let prover_thread = {
            let (url, key, stop) = (url.clone(), prover.clone(), stop.clone());
            std::thread::spawn(move || {
                use cairn_compute::popw::CpuBackend;
                let client = cairn_client::NodeClient::new(&url);
                let mut responder =
                    cairn_compute::prover::Responder::new(Box::new(CpuBackend::new()), 1);
                cairn_compute::prover::run(
                    &client,
                    &key,
                    &mut responder,
                    Duration::from_millis(50),
                    &stop,
                    |_| {},
                );
            })
        };
        let net = Self {
            url,
            tenant,
            provider,
            prover,
            prover_thread: Some((prover_thread, stop)),
            validator: Some(validator),
            api: Some((api, tx)),
            dir,
        };
        net.wait("the first block", Duration::from_secs(60), || {
            net.handle().height() >= 1
        });
        net
    }

    pub fn handle(&self) -> &NodeHandle {
        self.validator.as_ref().expect("running").handle()
    }

    pub fn client(&self) -> cairn_client::NodeClient {
        cairn_client::NodeClient::new(&self.url)
    }

    pub fn wait(&self, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < limit, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some((thread, stop)) = self.prover_thread.take() {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = thread.join();
        }
        if let Some((thread, tx)) = self.api.take() {
            let _ = tx.send(());
            let _ = thread.join();
        }
        if let Some(v) = self.validator.take() {
            let _ = v.shutdown();
        }
    }
}

/// GET returning (status, body text).
pub fn get(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(20)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (status, body)
}

pub fn get_json(url: &str) -> Value {
    let (status, body) = get(url);
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}
