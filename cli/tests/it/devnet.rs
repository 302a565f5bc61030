//! The devnet as a user runs it: a real process, transfers through the CLI and through the
//! HTTP API, SIGKILL, restart from disk, and nothing finalized lost. Plus the API's refusals.

use super::cairn;
use cairn_client::{Keystore, NodeClient};
use cairn_types::tx::Transfer;
use cairn_types::{
    Address, Amount, BoundedString, Hash, Keypair, SignedTransaction, Transaction, TxBody,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub(crate) struct Devnet {
    pub(crate) home: PathBuf,
    api_port: u16,
    p2p_port: u16,
    child: Option<Child>,
}

impl Devnet {
    pub(crate) fn new(tag: &str) -> Self {
        let home = std::env::temp_dir().join(format!("cairn-devnet-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        Self {
            home,
            api_port: free_port(),
            p2p_port: free_port(),
            child: None,
        }
    }

    fn log_path(&self) -> PathBuf {
        self.home.join("devnet-test.log")
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    fn start(&mut self) -> NodeClient {
        self.start_with(&["--block-time-ms", "200"])
    }

    /// Starts the devnet with these genesis flags (they matter only on first start).
    pub(crate) fn start_with(&mut self, flags: &[&str]) -> NodeClient {
        // Storage providers listen on ports of their own: only tests that ask get them.
        let storage: &[&str] = if flags.contains(&"--storage-providers") {
            &[]
        } else {
            &["--storage-providers", "0"]
        };
        // The validators' timed auditors only where a test asks: their verdicts are
        // timings, and a test about something else should not depend on this machine's load.
        let audits: &[&str] = if flags.contains(&"--audited-shards-per-epoch") {
            &[]
        } else {
            &["--audited-shards-per-epoch", "0"]
        };
        // The devnet's own log, shown when a test fails (see `Drop`): a flake is diagnosed
        // from the CI output alone.
        std::fs::create_dir_all(&self.home).expect("devnet home");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("devnet log");
        // A test that asks for auditors asks them to catch a double: their check of their
        // own load (`cairn_storage::load`, which withholds lateness on a busy machine and is
        // tested on its own) is off, so a loaded CI machine cannot hide the double.
        let audit_env: &[(&str, &str)] = if audits.is_empty() {
            &[
                ("CAIRN_AUDIT_MAX_CPU_PRESSURE", "100"),
                ("CAIRN_AUDIT_MAX_PROBE_SLOWDOWN", "0"),
            ]
        } else {
            &[]
        };
        let child = cairn()
            .envs(audit_env.iter().copied())
            .arg("devnet")
            .args(flags)
            .args(storage)
            .args(audits)
            .arg("--home")
            .arg(&self.home)
            .args(["--api-port", &self.api_port.to_string()])
            .args(["--p2p-base-port", &self.p2p_port.to_string()])
            .arg("--no-explorer")
            .arg("--no-gateway")
            .stdout(log.try_clone().map_or_else(|_| Stdio::null(), Stdio::from))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn cairn devnet");
        self.child = Some(child);
        let client = NodeClient::new(&self.url());
        let start = Instant::now();
        loop {
            if let Ok(status) = client.status()
                && status["height"].as_u64().unwrap_or(0) >= 1
            {
                return client;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "devnet did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // std's kill is SIGKILL on unix: no chance to flush or shut down cleanly.
            child.kill().expect("SIGKILL");
            let _ = child.wait();
        }
    }

    pub(crate) fn cli(&self, args: &[&str]) -> std::process::Output {
        cairn()
            .arg("--home")
            .arg(&self.home)
            .args(args)
            .output()
            .expect("run cairn")
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(120)..];
            eprintln!(
                "--- the devnet's last {} log lines ---\n{}\n---",
                tail.len(),
                tail.join("\n")
            );
        }
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

fn default_key(home: &Path) -> Keypair {
    Keystore::open(home)
        .load("default", None)
        .expect("the devnet's default key")
}

fn signed(key: &Keypair, chain_id: &str, nonce: u64, to: Address, ucrn: u128) -> SignedTransaction {
    Transaction {
        chain_id: BoundedString::new(chain_id).expect("chain id"),
        sender: key.public_key().clone(),
        nonce,
        fee: Amount::from_ucrn(1_000),
        body: TxBody::Transfer(Transfer {
            to,
            amount: Amount::from_ucrn(ucrn),
        }),
    }
    .sign(key)
}

fn post_raw(url: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    post_to(url, "/v1/txs", content_type, body)
}

fn post_to(url: &str, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(&format!("{url}{path}"))
        .header("Content-Type", content_type)
        .send(&body[..])
        .expect("POST");
    let status = response.status().as_u16();
    let value: Value = response.body_mut().read_json().unwrap_or(Value::Null);
    (status, value)
}

#[test]
fn slow_devnet_survives_sigkill_with_every_finalized_transfer() {
    let mut net = Devnet::new("kill");
    let client = net.start();
    let chain_id = client.chain_id().expect("chain id");
    let key = default_key(&net.home);

    // Three transfers through the CLI (each waits for finality)...
    let mut hashes: Vec<Hash> = Vec::new();
    for i in 0..3u8 {
        let to = Keypair::from_secret(&[i + 1; 32]).address().to_string();
        let out = net.cli(&["account", "transfer", &to, "1.5 CRN", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let record: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(record["status"], "finalized");
        hashes.push(
            record["hash"]
                .as_str()
                .expect("hash")
                .parse()
                .expect("hash"),
        );
    }
    // ...and three through the HTTP API in the binary encoding.
    let nonce = client.nonce(&key.address()).expect("nonce");
    for i in 0..3u64 {
        let tx = signed(
            &key,
            &chain_id,
            nonce + i,
            Keypair::from_secret(&[9; 32]).address(),
            1_000 + u128::from(i),
        );
        hashes.push(client.submit(&tx).expect("submit"));
    }
    let mut records = Vec::new();
    for hash in &hashes {
        let record = client
            .wait_finalized(hash, Duration::from_secs(30))
            .expect("finalized");
        assert!(record["receipt"]["error"].is_null(), "{record}");
        records.push(record);
    }
    let height = client.status().expect("status")["height"]
        .as_u64()
        .expect("height");
    let blocks: Vec<Value> = (1..=height)
        .map(|h| client.get(&format!("/v1/blocks/{h}")).expect("block")["hash"].clone())
        .collect();
    let recipient = client
        .account(&Keypair::from_secret(&[9; 32]).address())
        .expect("account")["balance"]
        .clone();

    net.kill9();
    let client = net.start();
    let start = Instant::now();
    while client.status().expect("status")["height"]
        .as_u64()
        .unwrap_or(0)
        < height
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "did not catch up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for (hash, before) in hashes.iter().zip(&records) {
        let after = client.tx(hash).expect("receipt after restart");
        assert_eq!(after["height"], before["height"]);
        assert_eq!(after["index"], before["index"]);
        assert_eq!(after["receipt"], before["receipt"]);
    }
    // Same block hashes at every height: each header commits to its parent's state root, so
    // this also proves the same state roots.
    for (h, hash) in (1..=height).zip(&blocks) {
        assert_eq!(
            &client.get(&format!("/v1/blocks/{h}")).expect("block")["hash"],
            hash,
            "height {h}"
        );
    }
    assert_eq!(
        client
            .account(&Keypair::from_secret(&[9; 32]).address())
            .expect("account")["balance"],
        recipient
    );
    // And the chain goes on.
    let out = net.cli(&[
        "account",
        "transfer",
        &Keypair::from_secret(&[1; 32]).address().to_string(),
        "1 CRN",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn slow_api_refuses_bad_transactions() {
    let mut net = Devnet::new("bad");
    let client = net.start();
    let url = net.url();
    let chain_id = client.chain_id().expect("chain id");
    let key = default_key(&net.home);
    let nonce = client.nonce(&key.address()).expect("nonce");
    let to = Keypair::from_secret(&[5; 32]).address();

    let good = signed(&key, &chain_id, nonce, to, 10);
    let mut refused: Vec<Hash> = Vec::new();
    let expect = |name: &str, status: u16, code: &str, (got_status, body): (u16, Value)| {
        assert_eq!(got_status, status, "{name}: {body}");
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        assert!(
            !body["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{name}"
        );
    };
    expect(
        "malformed bytes",
        400,
        "malformed_tx",
        post_raw(&url, "application/octet-stream", vec![1, 2, 3]),
    );
    expect(
        "malformed json",
        400,
        "malformed_tx",
        post_raw(&url, "application/json", b"{\"tx\":".to_vec()),
    );
    expect(
        "oversized",
        413,
        "too_large",
        post_raw(&url, "application/octet-stream", vec![0; 300 * 1024]),
    );
    expect(
        "media type",
        415,
        "unsupported_media_type",
        post_raw(&url, "text/plain", b"hi".to_vec()),
    );

    let wrong_chain = signed(&key, "other-chain", nonce, to, 11);
    expect(
        "wrong chain",
        400,
        "wrong_chain",
        post_raw(&url, "application/octet-stream", wrong_chain.to_bytes()),
    );
    refused.push(wrong_chain.hash());
    let wrong_nonce = signed(&key, &chain_id, nonce + 7, to, 12);
    expect(
        "wrong nonce",
        400,
        "bad_nonce",
        post_raw(&url, "application/octet-stream", wrong_nonce.to_bytes()),
    );
    refused.push(wrong_nonce.hash());
    let mut bad_sig = signed(&key, &chain_id, nonce, to, 13);
    bad_sig.tx.body = TxBody::Transfer(Transfer {
        to,
        amount: Amount::from_ucrn(999_999),
    });
    expect(
        "bad signature",
        400,
        "bad_signature",
        post_raw(&url, "application/octet-stream", bad_sig.to_bytes()),
    );
    refused.push(bad_sig.hash());

    // Batches: a malformed or empty body fails whole; otherwise each transaction gets its own
    // result, in order.
    let batch = "/v1/txs/batch";
    expect(
        "malformed batch",
        400,
        "malformed_batch",
        post_to(&url, batch, "application/octet-stream", vec![9, 9, 9]),
    );
    expect(
        "malformed json batch",
        400,
        "malformed_batch",
        post_to(&url, batch, "application/json", b"[{}]".to_vec()),
    );
    expect(
        "empty batch",
        400,
        "empty_batch",
        post_to(
            &url,
            batch,
            "application/octet-stream",
            cairn_types::tx::encode_batch(&[]),
        ),
    );
    let late_nonce = signed(&key, &chain_id, nonce + 9, to, 14);
    let (status, body) = post_to(
        &url,
        batch,
        "application/octet-stream",
        cairn_types::tx::encode_batch(&[late_nonce.clone(), bad_sig.clone(), wrong_chain.clone()]),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 0, "{body}");
    assert_eq!(body["refused"], 3, "{body}");
    let codes: Vec<&str> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["error"]["code"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        codes,
        ["bad_nonce", "bad_signature", "wrong_chain"],
        "{body}"
    );
    refused.push(late_nonce.hash());

    // The good one lands; replaying it is refused.
    let hash = client.submit(&good).expect("submit");
    client
        .wait_finalized(&hash, Duration::from_secs(30))
        .expect("finalized");
    let (status, body) = post_raw(&url, "application/octet-stream", good.to_bytes());
    // Known as finalized (409 duplicate) or, once forgotten, a stale nonce (400).
    assert!(
        (status == 409 && body["error"]["code"] == "duplicate")
            || (status == 400 && body["error"]["code"] == "bad_nonce"),
        "{status} {body}"
    );
    refused.push(Hash::ZERO);

    // None of the refused ones ever reaches a block.
    let height = client.status().expect("status")["height"]
        .as_u64()
        .expect("height");
    let start = Instant::now();
    while client.status().expect("status")["height"]
        .as_u64()
        .unwrap_or(0)
        < height + 3
    {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(100));
    }
    for hash in refused {
        assert!(matches!(
            client.tx(&hash),
            Err(cairn_client::NodeError::Refused { status: 404, .. })
        ));
    }
    // Query errors name the problem.
    for (path, code) in [
        ("/v1/blocks/abc", "bad_height"),
        ("/v1/accounts/nope", "bad_address"),
        ("/v1/orders?limit=5000", "bad_query"),
        ("/v1/leases?bogus=1", "bad_query"),
        ("/v1/deals?bogus=1", "bad_query"),
        ("/v1/deals?limit=0", "bad_query"),
        ("/v1/deals?owner=cairn00", "bad_owner"),
        ("/v1/deals/999999", "not_found"),
        ("/v1/nowhere", "no_route"),
    ] {
        match client.get(path) {
            Err(cairn_client::NodeError::Refused { code: got, .. }) => {
                assert_eq!(got, code, "{path}")
            }
            other => panic!("{path}: {other:?}"),
        }
    }
    // The OpenAPI document names every route.
    let doc = client.get("/v1/openapi.json").expect("openapi");
    for path in cairn_api::openapi::PATHS {
        assert!(doc["paths"].get(*path).is_some(), "{path} undocumented");
    }
}

#[test]
fn slow_events_stream_finalized_blocks() {
    let mut net = Devnet::new("sse");
    let _client = net.start();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let mut response = agent
        .get(&format!("{}/v1/events", net.url()))
        .call()
        .expect("events");
    let mut reader = std::io::BufReader::new(response.body_mut().as_reader());
    let mut seen = 0;
    let mut line = String::new();
    while seen < 2 {
        line.clear();
        let n = std::io::BufRead::read_line(&mut reader, &mut line).expect("read");
        assert!(n > 0, "stream ended");
        if let Some(data) = line.strip_prefix("data: ") {
            let event: Value = serde_json::from_str(data.trim()).expect("event json");
            assert!(event["height"].as_u64().is_some());
            assert!(event["state_root"].as_str().is_some());
            seen += 1;
        }
    }
}

#[test]
fn slow_devnet_prover_proves_its_rate_on_chain() {
    // The devnet's compute prover answers a real challenge: commitment before the deadline,
    // 700 openings in parts, verdict and proven rate on chain. 100 ms blocks, 4 s epochs and
    // 200 ms challenges put one challenge every 12 epochs (48 s) within the 1% bound; the
    // 2 s commit deadline leaves room for a loaded CI machine.
    let mut net = Devnet::new("popw");
    let client = net.start_with(&[
        "--block-time-ms",
        "100",
        "--epoch-length-blocks",
        "40",
        "--compute-challenge-ms",
        "200",
    ]);
    let prover = Keystore::open(&net.home)
        .info("compute-0")
        .expect("the devnet's compute prover key")
        .address;
    let start = Instant::now();
    let (provider, challenge) = loop {
        let view = client
            .get(&format!("/v1/providers/{prover}"))
            .expect("provider view");
        let decided = view["compute_challenges"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| !matches!(c["phase"]["phase"].as_str(), Some("issued" | "committed")))
            .cloned();
        if let Some(challenge) = decided {
            break (view["provider"].clone(), challenge);
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no compute challenge decided in 120 s: {view}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let claimed = provider["claimed_int8_ops"].as_u64().expect("claim");
    assert!(claimed > 0);
    assert_eq!(challenge["openings"], 700);
    // On a loaded CI machine the prover may come in under its claim's floor (unproven, no
    // fault); it must never fail or miss.
    match challenge["phase"]["phase"].as_str() {
        Some("passed") => {
            // Passed means at least the floor (80%) of the claim, never above it. (The
            // provider record takes the rate at the epoch's end.)
            let proven = challenge["phase"]["proven_int8_ops"]
                .as_u64()
                .expect("rate");
            assert!(
                proven <= claimed && proven >= claimed / 10 * 8,
                "{proven} of {claimed}"
            );
        }
        Some("unproven") => {}
        other => panic!("the devnet prover's challenge ended {other:?}: {challenge}"),
    }
}
