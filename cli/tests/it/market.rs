//! The compute market end to end: a devnet with its compute providers, `cairn deploy` of a
//! busybox httpd in a bubblewrap sandbox and in a Docker container, the ingress, logs,
//! settlement to the uCRN from the reported start, pause on empty escrow, top-up, close with
//! a reason, a provider killed and restarted under a running lease, a workload in a crash
//! loop, a container image the provider does not have (the dry run says so; a deploy is
//! closed by the provider and costs only fees), an order nobody can serve, and bad input.

use super::cairn;
use cairn_client::{Keystore, NodeClient};
use cairn_market::tenant::LeaseApi;
use cairn_types::{Amount, LeaseId};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::devnet::free_port;

/// A port p with p + 1 free too.
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let p = free_port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no two consecutive free ports");
}

/// The README's example web service (busybox httpd in a bubblewrap sandbox), as shipped.
pub(crate) const PROCESS_MANIFEST: &str = include_str!("../../../examples/web-process.yaml");
/// The same service in a container; the tests swap in an image of their own.
const CONTAINER_MANIFEST: &str = include_str!("../../../examples/web-container.yaml");

struct Net {
    home: PathBuf,
    api_port: u16,
    p2p_port: u16,
    provider_port: u16,
    child: Option<Child>,
}

impl Net {
    fn new(tag: &str) -> Self {
        let home = std::env::temp_dir().join(format!("cairn-market-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home).unwrap();
        Self {
            home,
            api_port: free_port(),
            p2p_port: free_port(),
            provider_port: free_port_pair(),
            child: None,
        }
    }

    fn node(&self) -> NodeClient {
        NodeClient::new(&format!("http://127.0.0.1:{}", self.api_port))
    }

    fn start(&mut self) -> NodeClient {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.join("devnet.log"))
            .unwrap();
        let child = cairn()
            .arg("devnet")
            .args(["--block-time-ms", "200", "--epoch-length-blocks", "40"])
            .args(["--compute-provers", "0", "--compute-providers", "2"])
            .args(["--lease-grace-blocks", "40"])
            // Storage has its own tests; its fixed ports would only collide here.
            .args(["--storage-providers", "0", "--no-gateway"])
            .args([
                "--compute-provider-base-port",
                &self.provider_port.to_string(),
            ])
            .args(["--api-port", &self.api_port.to_string()])
            .args(["--p2p-base-port", &self.p2p_port.to_string()])
            .arg("--home")
            .arg(&self.home)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn cairn devnet");
        self.child = Some(child);
        let node = self.node();
        wait("the devnet and its providers to start", 90, || {
            node.status()
                .is_ok_and(|s| s["height"].as_u64().unwrap_or(0) >= 1)
                && (0..2).all(|i| {
                    ureq::get(&format!(
                        "http://127.0.0.1:{}/v1/status",
                        self.provider_port + i
                    ))
                    .call()
                    .is_ok()
                })
        });
        node
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn cairn(&self, args: &[&str]) -> std::process::Output {
        cairn()
            .args(args)
            .arg("--home")
            .arg(&self.home)
            .args(["--node", &format!("http://127.0.0.1:{}", self.api_port)])
            .output()
            .expect("run cairn")
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.home.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.kill9();
        // Sandboxes are their own process groups: stop any this test left.
        if let Ok(dirs) = std::fs::read_dir(self.home.join("devnet")) {
            for d in dirs.flatten() {
                if let Ok(leases) = std::fs::read_dir(d.path().join("leases")) {
                    for l in leases.flatten() {
                        if let Ok(h) = std::fs::read(l.path().join("handle.json"))
                            && let Ok(v) = serde_json::from_slice::<Value>(&h)
                            && let Some(pid) = v["pid"].as_u64().filter(|p| *p > 1)
                        {
                            let _ = std::process::Command::new("kill")
                                .args(["-KILL", "--", &format!("-{pid}")])
                                .status();
                        }
                    }
                }
            }
        }
        let _ = std::process::Command::new("sh")
            .args(["-c", "docker ps -aq --filter label=cairn.test=1 --filter label=cairn.lease | xargs -r docker rm -f >/dev/null 2>&1"])
            .status();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

fn wait(what: &str, seconds: u64, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(seconds),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ucrn(v: &Value) -> u128 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a uCRN string: {v}"))
}

fn get(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    match agent.get(url).call() {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(e) => (0, e.to_string()),
    }
}

fn lease_view(node: &NodeClient, id: LeaseId) -> Value {
    node.get(&format!("/v1/leases/{id}")).unwrap()
}

fn balance_nonce(node: &NodeClient, address: &cairn_types::Address) -> (u128, u64) {
    let a = node.account(address).unwrap();
    (ucrn(&a["balance"]), a["nonce"].as_u64().unwrap())
}

fn json_out(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

/// Process runtime, the whole lifecycle; a kill -9 and restart of the devnet (with its
/// providers) while the lease runs; an order nobody can serve; bad lease-API requests.
#[test]
fn slow_process_lease_lifecycle_on_devnet() {
    let mut net = Net::new("process");
    let node = net.start();
    let store = Keystore::open(&net.home);
    let tenant = store.load("default", None).unwrap();
    let provider0 = store.load("market-0", None).unwrap();
    let min_fee = ucrn(&node.status().unwrap()["min_tx_fee"]);
    let (t0, tn0) = balance_nonce(&node, &tenant.address());
    let (p0, pn0) = balance_nonce(&node, &provider0.address());
    let p0_earned = ucrn(
        &node
            .get(&format!("/v1/providers/{}", provider0.address()))
            .unwrap()["provider"]["fees_earned_total"],
    );

    let manifest = net.write("web.yaml", PROCESS_MANIFEST);
    let out = net.cairn(&[
        "deploy",
        manifest.to_str().unwrap(),
        "--json",
        "--deposit-blocks",
        "10",
        // Both providers' bids must land before the window closes, also on a loaded
        // machine (3 blocks of 200 ms once left only the dearer one's in).
        "--bid-window-blocks",
        "15",
    ]);
    let d = json_out(&out);
    let lease = LeaseId(d["lease"].as_u64().unwrap());
    assert_eq!(
        d["provider"].as_str(),
        Some(provider0.address().to_string().as_str()),
        "the cheaper provider wins"
    );
    let price = ucrn(&d["price_per_block"]);
    assert_eq!(
        price,
        500 + 7 + 1,
        "0.5 core + 64 MiB + 16 MiB at provider 0's prices"
    );
    let url = d["url"].as_str().unwrap().to_string();
    let (status, body) = get(&url);
    assert_eq!(
        (status, body.trim()),
        (200, "hello cairn"),
        "the ingress reaches the workload"
    );
    // Counted in blocks, which a loaded machine slows as much as the deploy, and generous:
    // the 15-block bid window ends early once both bids are in, then acceptance, manifest
    // and the provider's start report take a few blocks each.
    let blocks = d["running_height"].as_u64().unwrap() - d["order_height"].as_u64().unwrap();
    assert!(blocks <= 20, "order to running in {blocks} blocks");
    let started = d["started_height"].as_u64().unwrap();
    assert!(started >= d["lease_height"].as_u64().unwrap());

    // Logs through the provider's signed lease API.
    let out = net.cairn(&["lease", "logs", &lease.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("serving lease {}", lease.0)));

    // Bad lease-API requests: unsigned, another key, a manifest that is not the order's.
    let provider_url = format!("http://127.0.0.1:{}", net.provider_port);
    let (status, body) = get(&format!("{provider_url}/v1/leases/{lease}"));
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("unsigned"), "{body}");
    let stranger = LeaseApi::new(
        &provider_url,
        cairn_types::Keypair::from_test_seed("stranger"),
    );
    let e = stranger.status(lease).unwrap_err();
    assert_eq!(e.code(), Some("not_tenant"), "{e}");
    let api = LeaseApi::new(&provider_url, tenant.clone());
    let other = PROCESS_MANIFEST.replace("hello cairn", "something else");
    let e = api.send_manifest(lease, &other).unwrap_err();
    assert_eq!(e.code(), Some("manifest_hash_mismatch"), "{e}");
    assert_eq!(
        get(&url).1.trim(),
        "hello cairn",
        "the refused manifest changed nothing"
    );

    // Provider restart (the whole devnet, kill -9): the workload keeps running, the lease
    // stays active, and the provider re-attaches.
    let pid = api.status(lease).unwrap()["handle"]["pid"]
        .as_u64()
        .unwrap();
    net.kill9();
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the sandbox outlived the provider"
    );
    let node = net.start();
    wait("the re-attached lease to answer", 30, || get(&url).0 == 200);
    assert_eq!(lease_view(&node, lease)["projected_state"], "active");
    assert_eq!(
        api.status(lease).unwrap()["handle"]["pid"].as_u64(),
        Some(pid)
    );
    let events = api.events(lease).unwrap().to_string();
    assert!(events.contains("re-attached"), "{events}");

    // Escrow (10 blocks at the max price) runs dry: paused, the ingress refuses.
    wait("the lease to pause", 60, || {
        lease_view(&node, lease)["projected_state"] == "paused"
    });
    let since = lease_view(&node, lease)["settled_through"]
        .as_u64()
        .unwrap();
    wait("the ingress to refuse a paused lease", 10, || {
        get(&url).0 == 503
    });
    // Top-up: active again (the paused blocks are not charged).
    let out = net.cairn(&["lease", "topup", &lease.to_string(), "20000 uCRN", "--json"]);
    let topped = json_out(&out);
    let topup_height = topped["chain"]["lease"]["settled_through"]
        .as_u64()
        .unwrap();
    assert_eq!(topped["chain"]["projected_state"], "active");
    wait("the resumed lease to answer", 20, || get(&url).0 == 200);
    std::thread::sleep(Duration::from_secs(1));

    let out = net.cairn(&[
        "lease",
        "close",
        &lease.to_string(),
        "--reason",
        "test is done",
        "--json",
    ]);
    let closed = json_out(&out);
    let state = &closed["chain"]["lease"]["state"];
    assert_eq!(state["state"], "closed");
    assert_eq!(state["reason"], "test is done");
    assert_eq!(state["initiator"], "tenant");
    wait("the workload to stop", 10, || {
        !Path::new(&format!("/proc/{pid}/stat")).exists() || get(&url).0 != 200
    });

    // Money: paid = price × blocks run from the reported start, to the uCRN; tenant paid
    // that plus its fees, the provider got that less the protocol's take, minus its own
    // fees (bids, the start report).
    let l = &closed["chain"]["lease"];
    assert_eq!(l["started_height"].as_u64(), Some(started));
    let closed_at = state["at"].as_u64().unwrap();
    let paid = ucrn(&l["paid_total"]);
    let run_blocks = u128::from((since - started) + (closed_at - topup_height));
    assert_eq!(
        paid,
        price * run_blocks,
        "paid {paid} for {run_blocks} blocks at {price}"
    );
    let (t1, tn1) = balance_nonce(&node, &tenant.address());
    assert_eq!(t0 - t1, paid + u128::from(tn1 - tn0) * min_fee);
    let (p1, pn1) = balance_nonce(&node, &provider0.address());
    let earned = ucrn(
        &node
            .get(&format!("/v1/providers/{}", provider0.address()))
            .unwrap()["provider"]["fees_earned_total"],
    ) - p0_earned;
    let params: Value = serde_json::from_slice(
        &cairn()
            .args(["ledger", "params", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let take = params["take_rate_bps"].as_u64().unwrap();
    assert!(
        earned <= paid && earned >= paid - paid * u128::from(take) / 10_000 - run_blocks,
        "earned {earned} of {paid}"
    );
    assert_eq!(p1 + u128::from(pn1 - pn0) * min_fee - p0, earned);

    // A workload that exits at once is restarted until it makes a crash loop; then the
    // provider closes the lease with the reason and deploy fails, naming it.
    let crashing = PROCESS_MANIFEST.replace(
        "args: [\"echo serving lease $CAIRN_LEASE; echo hello cairn > /tmp/index.html; exec /bin/busybox httpd -f -v -p 8080 -h /tmp\"]",
        "args: [\"echo giving up; exit 3\"]",
    );
    assert_ne!(crashing, PROCESS_MANIFEST);
    let crashing = net.write("crash.yaml", &crashing);
    let out = net.cairn(&[
        "deploy",
        crashing.to_str().unwrap(),
        "--json",
        "--deposit-blocks",
        "10",
    ]);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let failed: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let f = &failed["failure"];
    assert_eq!(f["initiator"], "provider", "{failed}");
    assert!(
        f["reason"]
            .as_str()
            .unwrap()
            .starts_with("workload crash loop: it exited 3 times"),
        "{failed}"
    );
    let crashed = lease_view(&node, LeaseId(f["lease"].as_u64().unwrap()));
    assert_eq!(crashed["lease"]["state"]["state"], "closed");
    // Billed only between a reported start and the close, if it was seen running at all.
    let paid = ucrn(&crashed["lease"]["paid_total"]);
    match crashed["lease"]["started_height"].as_u64() {
        None => assert_eq!(paid, 0),
        Some(s) => {
            let at = crashed["lease"]["state"]["at"].as_u64().unwrap();
            assert_eq!(paid, price * u128::from(at - s));
        }
    }
    assert_eq!(ucrn(&f["compute_paid"]), paid);
    // Each of the crash loop's sandboxes was reaped when it exited: none is left a zombie
    // of the provider (the devnet process) that started it.
    let devnet_pid = net.child.as_ref().unwrap().id();
    wait("the exited sandboxes to be reaped", 10, || {
        zombie_children(devnet_pid).is_empty()
    });

    // An order no provider can serve: the reasons, and only the fee is spent once the
    // order expires and its deposit returns.
    let huge = PROCESS_MANIFEST.replace("units: 0.5", "units: 64");
    let huge = net.write("huge.yaml", &huge);
    let out = net.cairn(&["deploy", huge.to_str().unwrap(), "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert_eq!(
        text.matches("capacity: cpu_millicores needed 64000")
            .count(),
        2,
        "{text}"
    );
    let (b0, n0) = balance_nonce(&node, &tenant.address());
    let out = net.cairn(&["deploy", huge.to_str().unwrap(), "--deposit-blocks", "10"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("capacity: cpu_millicores").count(), 2, "{err}");
    wait("the unserved order to expire", 60, || {
        node.get("/v1/orders?status=expired").unwrap()["orders"]
            .as_array()
            .is_some_and(|o| !o.is_empty())
    });
    let (b1, n1) = balance_nonce(&node, &tenant.address());
    assert_eq!(n1 - n0, 1);
    assert_eq!(b0 - b1, min_fee, "nothing beyond the order's fee");
    let _ = Amount::ZERO;
}

/// Container runtime: a `FROM scratch` image with Debian's static busybox, built locally.
/// First an image no provider has: the dry run says so, and a deploy anyway is closed by the
/// provider with the reason, costing the tenant its fees and no compute payment.
#[test]
fn slow_container_lease_on_devnet() {
    let docker = std::process::Command::new("docker").arg("info").output();
    assert!(
        docker.is_ok_and(|o| o.status.success()),
        "this test needs a running Docker Engine (docker info failed)"
    );
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "this test needs busybox-static (apt-get install busybox-static)"
    );
    let mut net = Net::new("container");
    let ctx = net.home.join("image");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(busybox, ctx.join("busybox")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nLABEL cairn.test=1\n",
    )
    .unwrap();
    let tag = "cairn-test-busybox:1";
    let built = std::process::Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let node = net.start();
    let container = |image: &str| CONTAINER_MANIFEST.replace("cairn-example-busybox:1", image);
    assert_ne!(container(tag), CONTAINER_MANIFEST);

    // An image that is nowhere: the dry run names it for both providers.
    let absent = "cairn-test-busybox:absent";
    let missing = format!("would not bid: image {absent} is not on this provider's Docker Engine");
    let nope = net.write("absent.yaml", &container(absent));
    let out = net.cairn(&["deploy", nope.to_str().unwrap(), "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches(missing.as_str()).count(), 2, "{text}");
    let present = net.write("present.yaml", &container(tag));
    let out = net.cairn(&["deploy", present.to_str().unwrap(), "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("would bid").count(), 2, "{text}");
    assert!(!text.contains("would not bid"), "{text}");

    // Deployed anyway (providers cannot see the image behind an order's hash, so they bid):
    // the provider cannot start it, closes the lease with the reason, and the tenant is out
    // only the fees of its order and acceptance: no compute payment, all escrow back.
    let store = Keystore::open(&net.home);
    let tenant = store.load("default", None).unwrap();
    let min_fee = ucrn(&node.status().unwrap()["min_tx_fee"]);
    let (b0, n0) = balance_nonce(&node, &tenant.address());
    // No provider said it would bid, so the deploy waits out the whole window: long
    // enough that the bids land on a loaded machine too.
    let out = net.cairn(&[
        "deploy",
        nope.to_str().unwrap(),
        "--deposit-blocks",
        "10",
        "--bid-window-blocks",
        "15",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let reason =
        format!("workload failed to start: image {absent} is not on this provider's Docker Engine");
    assert!(err.contains(&reason), "{err}");
    assert!(
        err.contains("compute paid 0 uCRN (the workload never ran)"),
        "{err}"
    );
    let leases = node.get("/v1/leases?limit=10").unwrap();
    let l = &leases["leases"][0]["lease"];
    assert_eq!(l["state"]["state"], "closed", "{l}");
    assert_eq!(l["state"]["initiator"], "provider", "{l}");
    assert!(
        l["state"]["reason"].as_str().unwrap().starts_with(&reason),
        "{l}"
    );
    assert_eq!((ucrn(&l["paid_total"]), ucrn(&l["escrow"])), (0, 0), "{l}");
    assert!(l["started_height"].is_null(), "{l}");
    let (b1, n1) = balance_nonce(&node, &tenant.address());
    assert_eq!(n1 - n0, 2, "order and acceptance");
    assert_eq!(b0 - b1, 2 * min_fee, "only the two fees");

    let manifest = net.write("web.yaml", &container(tag));
    let d = json_out(&net.cairn(&["deploy", manifest.to_str().unwrap(), "--json"]));
    let lease = LeaseId(d["lease"].as_u64().unwrap());
    let url = d["url"].as_str().unwrap().to_string();
    let (status, body) = get(&url);
    assert_eq!((status, body.trim()), (200, "hello cairn"));
    let out = net.cairn(&["lease", "logs", &lease.to_string()]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("serving lease"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let listed = std::process::Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=cairn.lease={}", lease.0),
        ])
        .output()
        .unwrap();
    assert!(
        !listed.stdout.is_empty(),
        "the container carries its lease label"
    );
    let closed = json_out(&net.cairn(&[
        "lease",
        "close",
        &lease.to_string(),
        "--reason",
        "done",
        "--json",
    ]));
    assert_eq!(closed["chain"]["lease"]["state"]["reason"], "done");
    wait("the container to go", 20, || {
        std::process::Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=cairn.lease={}", lease.0),
            ])
            .output()
            .is_ok_and(|o| o.stdout.is_empty())
    });
    let _ = node;
}

/// Bad manifests: each a clear error with its line and field; nothing is ordered.
#[test]
fn manifest_validate_names_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let units_line = format!(
        ":{}:",
        PROCESS_MANIFEST
            .lines()
            .position(|l| l.contains("units: 0.5"))
            .unwrap()
            + 1
    );
    for (text, needle) in [
        (
            "version: \"2.0\"\nservices: [\n".to_string(),
            "malformed YAML",
        ),
        (
            PROCESS_MANIFEST.replace("units: 0.5", "units: -1"),
            units_line.as_str(),
        ),
        (
            PROCESS_MANIFEST.replace("size: 64Mi", "size: 900Pi"),
            "absurd",
        ),
        (
            PROCESS_MANIFEST.replace("runtime: process", "runtime: vm"),
            "unknown runtime \"vm\"",
        ),
        (
            PROCESS_MANIFEST.replace("count: 1", "count: 2"),
            "not supported: count 2",
        ),
    ] {
        let path = dir.path().join("m.yaml");
        std::fs::write(&path, &text).unwrap();
        let out = cairn()
            .args(["manifest", "validate"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{needle}: {err}");
        // deploy refuses before touching any node (none runs at this address).
        let out = cairn()
            .args(["deploy", "--node", "http://127.0.0.1:9"])
            .arg(&path)
            .arg("--home")
            .arg(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("nothing was ordered"),
            "{err}"
        );
    }
    let path = dir.path().join("ok.yaml");
    std::fs::write(&path, PROCESS_MANIFEST).unwrap();
    let out = cairn()
        .args(["manifest", "validate", "--json"])
        .arg(&path)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["manifest"]["cpu_millicores"], 500);
}

/// Every manifest in `examples/` is valid as shipped: the README points users at them.
#[test]
fn every_example_manifest_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let out = cairn()
            .args(["manifest", "validate", "--json"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["valid"], true, "{}", path.display());
        checked.push(path.file_name().unwrap().to_string_lossy().to_string());
    }
    checked.sort();
    assert_eq!(
        checked,
        ["gpu-service.yaml", "web-container.yaml", "web-process.yaml"],
        "a new example needs a line in examples/README.md and here"
    );
    let gpu: Value = serde_json::from_slice(
        &cairn()
            .args(["manifest", "validate", "--json"])
            .arg(dir.join("gpu-service.yaml"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(gpu["manifest"]["gpu_count"], 1, "{gpu}");
}

/// Children of `pid` that have exited and not been waited for.
fn zombie_children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") && fields.get(1).and_then(|p| p.parse().ok()) == Some(pid) {
            out.push(child);
        }
    }
    out
}
