//! Providers joining a running network (issue 22), end to end: a devnet with no provider at
//! genesis; three storage providers and one compute provider register with `cairn provider
//! register` and run as processes of their own (`cairn store serve`, `cairn provider run`);
//! the next puts place shards on them and the next order gets their bid; they pass their
//! challenges and are paid and rewarded; a fourth storage provider joins and one of the
//! first leaves: its shards are repaired onto the others before its bond is released, and
//! every blob stays readable. Bad input (no bond, a bond below the minimum, a taken
//! endpoint, daemons started with an unregistered key) is refused by name before any fee.

use super::cairn;
use crate::devnet::{Devnet, free_port};
use cairn_client::NodeClient;
use cairn_types::{Address, Hash};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Blocks per epoch on this devnet (its flag below), for the release-height check.
const EPOCH_BLOCKS: u64 = 40;
const BOND: &str = "1000 CRN";

/// A process of the test's, killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stops the sandboxes a compute provider left (their own process groups) when the test
/// ends, whichever way.
struct Sandboxes(PathBuf);

impl Drop for Sandboxes {
    fn drop(&mut self) {
        let Ok(leases) = std::fs::read_dir(self.0.join("leases")) else {
            return;
        };
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

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn http_get(url: &str) -> (u16, String) {
    match agent().get(url).call() {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(e) => (0, e.to_string()),
    }
}

fn ucrn(v: &Value) -> u128 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a uCRN string: {v}"))
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn run_ok(net: &Devnet, args: &[&str]) -> Value {
    let out = net.cli(args);
    assert!(
        out.status.success(),
        "cairn {args:?}:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// A command that must fail at once; returns its stderr.
fn run_err(net: &Devnet, args: &[&str]) -> String {
    let mut child = cairn()
        .arg("--home")
        .arg(&net.home)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cairn");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("cairn {args:?} did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success(), "cairn {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Balance and nonce: what a refusal before signing must leave alone.
fn balance_nonce(node: &NodeClient, address: &Address) -> (u128, u64) {
    let a = node.account(address).expect("account");
    (ucrn(&a["balance"]), a["nonce"].as_u64().expect("nonce"))
}

fn provider(node: &NodeClient, address: &Address) -> Value {
    node.get(&format!("/v1/providers/{address}"))
        .expect("provider")
}

fn deal(node: &NodeClient, id: u64) -> Value {
    node.get(&format!("/v1/deals/{id}")).expect("deal")["deal"].clone()
}

fn holders(node: &NodeClient, id: u64) -> Vec<String> {
    deal(node, id)["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .map(|p| p.as_str().expect("address").to_string())
        .collect()
}

fn height(node: &NodeClient) -> u64 {
    node.status().expect("status")["height"]
        .as_u64()
        .expect("height")
}

/// `cairn store serve` for `key` on `port`, waited for until its shard API answers.
fn serve(net: &Devnet, key: &str, port: u16) -> Killed {
    let log = std::fs::File::create(net.home.join(format!("serve-{key}.log"))).expect("log");
    let mut child = Killed(
        cairn()
            .arg("--home")
            .arg(&net.home)
            .args(["store", "serve", "--key", key])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn cairn store serve"),
    );
    let url = format!("http://127.0.0.1:{port}/v1/provider");
    wait_for(
        &format!("{key}'s shard API"),
        Duration::from_secs(60),
        || {
            let exited = child.0.try_wait().ok().flatten();
            assert!(
                exited.is_none(),
                "{key} exited ({exited:?}): {}",
                std::fs::read_to_string(net.home.join(format!("serve-{key}.log")))
                    .unwrap_or_default()
            );
            http_get(&url).0 == 200
        },
    );
    child
}

fn register(net: &Devnet, key: &str, endpoint: &str, region: &str, offer: &[&str]) -> Value {
    let mut args = vec![
        "provider",
        "register",
        "--from",
        key,
        "--endpoint",
        endpoint,
        "--region",
        region,
        "--bond",
        BOND,
        "--json",
    ];
    args.extend_from_slice(offer);
    run_ok(net, &args)
}

fn get_blob(net: &Devnet, blob: &Hash, out: &Path) -> Vec<u8> {
    run_ok(
        net,
        &[
            "store",
            "get",
            &blob.to_string(),
            "-o",
            out.to_str().unwrap(),
            "--from",
            "tenant",
            "--json",
        ],
    );
    std::fs::read(out).expect("the blob read back")
}

fn compute_config(home: &Path, node: &str, port: u16) -> PathBuf {
    let text = format!(
        r#"key = "joiner-compute"
node = "{node}"
listen = "127.0.0.1:{port}"
data_dir = "compute-data"
poll_ms = 100

[capacity]
cpu_millicores = 2000
memory_bytes = 2147483648
storage_bytes = 2147483648

[prices]
ucrn_per_cpu_core_block = 1000
ucrn_per_gib_memory_block = 100
ucrn_per_gib_storage_block = 10
ucrn_per_gpu_block = 100000
"#
    );
    let path = home.join("compute.toml");
    std::fs::write(&path, text).expect("config");
    path
}

#[test]
fn slow_providers_join_a_live_devnet_and_one_leaves_safely() {
    assert!(
        Path::new("/usr/bin/bwrap").exists() || which("bwrap"),
        "bubblewrap is needed for the compute provider's process runtime (apt-get install bubblewrap busybox-static)"
    );
    let mut net = Devnet::new("join");
    let epoch = EPOCH_BLOCKS.to_string();
    let node = net.start_with(&[
        "--block-time-ms",
        "200",
        "--epoch-length-blocks",
        &epoch,
        "--storage-providers",
        "0",
        "--compute-providers",
        "0",
        "--compute-provers",
        "0",
    ]);
    assert_eq!(
        node.get("/v1/providers").unwrap()["providers"]
            .as_array()
            .map(Vec::len),
        Some(0),
        "no provider at genesis"
    );

    // Keys of their own, funded from `default` now: later `default` signs the repairer's
    // transactions, and two senders of one key race for its nonces.
    let names = [
        "joiner-store-0",
        "joiner-store-1",
        "joiner-store-2",
        "joiner-store-3",
        "joiner-compute",
        "tenant",
    ];
    let mut addresses = std::collections::BTreeMap::new();
    for name in names {
        let key = run_ok(
            &net,
            &["keys", "new", name, "--unencrypted-devnet", "--json"],
        );
        let address: Address = key["address"].as_str().unwrap().parse().unwrap();
        run_ok(
            &net,
            &[
                "account",
                "transfer",
                &address.to_string(),
                "20000 CRN",
                "--json",
            ],
        );
        addresses.insert(name, address);
    }
    let store_port: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let endpoint = |i: usize| format!("http://127.0.0.1:{}", store_port[i]);
    let first = addresses["joiner-store-0"];

    // Bad input, each refused by name before any fee.
    let before = balance_nonce(&node, &first);
    // joiner-store-0's registration, with these bond arguments.
    let register_0 = |bond: &[&str]| {
        let endpoint = endpoint(0);
        let mut args = vec![
            "provider",
            "register",
            "--from",
            "joiner-store-0",
            "--endpoint",
            &endpoint,
            "--region",
            "eu-west",
            "--storage-bytes",
            "256Mi",
        ];
        args.extend_from_slice(bond);
        run_err(&net, &args)
    };
    let e = register_0(&[]);
    assert!(e.contains("--bond"), "no bond: {e}");
    let e = register_0(&["--bond", "1 CRN"]);
    assert!(
        e.contains("below the minimum") && e.contains("no fee paid"),
        "a bond below the minimum: {e}"
    );
    let e = register_0(&["--bond", "1000"]);
    assert!(
        e.contains("--bond") && e.contains("CRN"),
        "a bare number: {e}"
    );
    let listen = format!("127.0.0.1:{}", store_port[0]);
    let e = run_err(
        &net,
        &[
            "store",
            "serve",
            "--key",
            "joiner-store-0",
            "--listen",
            &listen,
        ],
    );
    assert!(
        e.contains("not a registered provider")
            && e.contains(&format!(
                "cairn provider register --from joiner-store-0 --endpoint http://{listen}"
            )),
        "store serve with an unregistered key: {e}"
    );
    let compute_port = free_port();
    let config = compute_config(&net.home, &net.url(), compute_port);
    let e = run_err(
        &net,
        &["provider", "run", "--config", config.to_str().unwrap()],
    );
    assert!(
        e.contains("not a registered provider")
            && e.contains("cairn provider register --from joiner-compute"),
        "provider run with an unregistered key: {e}"
    );
    assert_eq!(
        balance_nonce(&node, &first),
        before,
        "refusals cost nothing"
    );

    // Three storage providers join and serve.
    let regions = ["eu-west", "us-east", "ap-south", "eu-north"];
    for (i, region) in regions.iter().enumerate().take(3) {
        let doc = register(
            &net,
            &format!("joiner-store-{i}"),
            &endpoint(i),
            region,
            &["--storage-bytes", "256Mi"],
        );
        assert_eq!(doc["provider"]["status"]["status"], "active", "{doc}");
        assert_eq!(doc["provider"]["declared"]["storage_bytes"], 256 << 20);
    }
    // A fourth key cannot take an endpoint already held.
    let fourth = addresses["joiner-store-3"];
    let before = balance_nonce(&node, &fourth);
    let e = run_err(
        &net,
        &[
            "provider",
            "register",
            "--from",
            "joiner-store-3",
            "--endpoint",
            &endpoint(0),
            "--region",
            "eu-north",
            "--storage-bytes",
            "256Mi",
            "--bond",
            BOND,
        ],
    );
    assert!(
        e.contains(&format!(
            "endpoint {} is already the endpoint of provider {first}",
            endpoint(0)
        )) && e.contains("no fee paid"),
        "a taken endpoint: {e}"
    );
    assert_eq!(balance_nonce(&node, &fourth), before);
    let mut serving: Vec<Option<Killed>> = (0..3)
        .map(|i| Some(serve(&net, &format!("joiner-store-{i}"), store_port[i])))
        .collect();

    // A compute provider joins (no GPU on this machine: NVML finds none) and runs.
    let compute = addresses["joiner-compute"];
    let doc = register(
        &net,
        "joiner-compute",
        &format!("http://127.0.0.1:{compute_port}"),
        "local",
        &[
            "--cpu-millicores",
            "2000",
            "--memory-bytes",
            "2Gi",
            "--storage-bytes",
            "2Gi",
        ],
    );
    assert_eq!(doc["provider"]["declared"]["cpu_millicores"], 2000);
    let _sandboxes = Sandboxes(net.home.join("compute-data"));
    let mut compute_daemon = Killed(
        cairn()
            .arg("--home")
            .arg(&net.home)
            .args(["provider", "run", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(net.home.join("compute.log")).unwrap())
            .spawn()
            .expect("spawn cairn provider run"),
    );
    wait_for("the compute provider", Duration::from_secs(60), || {
        assert!(
            compute_daemon.0.try_wait().ok().flatten().is_none(),
            "provider run exited: {}",
            std::fs::read_to_string(net.home.join("compute.log")).unwrap_or_default()
        );
        http_get(&format!("http://127.0.0.1:{compute_port}/v1/status")).0 == 200
    });

    // The next puts place their shards on the three that joined.
    let dir = tempfile::tempdir().unwrap();
    let mut blobs = Vec::new();
    for (i, (len, public)) in [(300_000usize, false), (1_200_000, true)]
        .into_iter()
        .enumerate()
    {
        let data: Vec<u8> = (0..len)
            .map(|j| (j * 31 + i * 7).to_le_bytes()[0])
            .collect();
        let path = dir.path().join(format!("in-{i}"));
        std::fs::write(&path, &data).unwrap();
        let mut args = vec![
            "store",
            "put",
            path.to_str().unwrap(),
            "--from",
            "tenant",
            "--redundancy",
            "2+1",
            "--epochs",
            "50",
            // A price that pays three holders of a small blob something each epoch (the
            // default, 80% of the cheapest cloud GiB-month, rounds to nothing here).
            "--price",
            "1 CRN",
            "--json",
        ];
        if public {
            args.push("--public");
        }
        let doc = run_ok(&net, &args);
        let blob: Hash = doc["blob"].as_str().unwrap().parse().unwrap();
        let id = doc["deal"].as_u64().unwrap();
        let mut on: Vec<String> = holders(&node, id);
        on.sort();
        let mut joined: Vec<String> = (0..3)
            .map(|i| addresses[format!("joiner-store-{i}").as_str()].to_string())
            .collect();
        joined.sort();
        assert_eq!(on, joined, "deal {id} is on the providers that joined");
        blobs.push((blob, id, data));
    }

    // The next order gets the joined compute provider's bid and runs on it.
    let manifest = net.home.join("web.yaml");
    std::fs::write(&manifest, crate::market::PROCESS_MANIFEST).unwrap();
    let d = run_ok(
        &net,
        &[
            "deploy",
            manifest.to_str().unwrap(),
            "--from",
            "tenant",
            "--bid-window-blocks",
            "15",
            "--json",
        ],
    );
    assert_eq!(d["provider"].as_str(), Some(compute.to_string().as_str()));
    let lease = d["lease"].as_u64().unwrap();
    let url = d["url"].as_str().unwrap().to_string();
    assert_eq!(http_get(&url).1.trim(), "hello cairn");
    let order = node.get(&format!("/v1/leases/{lease}")).unwrap()["lease"]["order"]
        .as_u64()
        .unwrap();
    let bids = &node.get(&format!("/v1/orders/{order}")).unwrap();
    assert!(
        bids.to_string().contains(&compute.to_string()),
        "the order carries the joined provider's bid: {bids}"
    );

    // They pass their challenges and are paid and rewarded like genesis providers.
    wait_for(
        "the joined storage providers to prove, be paid and be rewarded",
        Duration::from_secs(120),
        || {
            (0..3).all(|i| {
                let v = provider(&node, &addresses[format!("joiner-store-{i}").as_str()]);
                let p = &v["provider"];
                let statements = v["reward_statements"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                ucrn(&p["fees_earned_total"]) > 0
                    && ucrn(&p["rewards_total"]) > 0
                    && statements.iter().any(|s| {
                        s["proofs_passed"].as_u64() > Some(0) && ucrn(&s["provider_reward"]) > 0
                    })
            })
        },
    );
    wait_for(
        "the compute provider to be paid for the lease",
        Duration::from_secs(60),
        || ucrn(&provider(&node, &compute)["provider"]["fees_earned_total"]) > 0,
    );

    // A fourth storage provider joins; then the first leaves.
    register(
        &net,
        "joiner-store-3",
        &endpoint(3),
        regions[3],
        &["--storage-bytes", "256Mi"],
    );
    serving.push(Some(serve(&net, "joiner-store-3", store_port[3])));
    let (balance_before_leave, _) = balance_nonce(&node, &first);
    let left = run_ok(
        &net,
        &["provider", "leave", "--from", "joiner-store-0", "--json"],
    );
    let leave_height = left["tx"]["height"].as_u64().unwrap();
    let shards = left["shards_held"].as_array().unwrap();
    assert_eq!(shards.len(), 2, "one shard of each blob: {left}");
    assert!(
        shards.iter().all(|s| s["awaiting_repair"] == true),
        "{left}"
    );
    let unbonding = left["unbonding"].as_array().unwrap();
    assert_eq!(unbonding.len(), 1, "{left}");
    let bond = ucrn(&unbonding[0]["amount"]);
    assert_eq!(bond, 1000 * 1_000_000);
    let release_epoch = unbonding[0]["release_epoch"].as_u64().unwrap();
    assert!(release_epoch > leave_height / EPOCH_BLOCKS, "{left}");

    // Its shards are repaired onto the others before its bond is released: never is the
    // bond back while a deal still names it.
    let first_text = first.to_string();
    let released = |node: &NodeClient| {
        node.account(&first).unwrap()["unbonding"]
            .as_array()
            .is_some_and(Vec::is_empty)
    };
    let still_holds = |node: &NodeClient| {
        blobs
            .iter()
            .any(|(_, id, _)| holders(node, *id).contains(&first_text))
    };
    wait_for(
        "the leaver's shards to be repaired",
        Duration::from_secs(120),
        || {
            // Released first: a provider that left never gets a shard back, so a release
            // seen before a deal still naming it would be a release before the repair.
            let gone = released(&node);
            let holds = still_holds(&node);
            assert!(!(gone && holds), "bond released before the repair");
            !holds
        },
    );
    for (_, id, _) in &blobs {
        let d = deal(&node, *id);
        assert_eq!(d["repair_needed"].as_array().map(Vec::len), Some(0), "{d}");
        assert!(
            holders(&node, *id).contains(&addresses["joiner-store-3"].to_string()),
            "deal {id} was repaired onto the provider that joined last: {d}"
        );
    }
    // The leaver can stop now; every blob reads back from the others.
    serving[0] = None;
    for (i, (blob, _, data)) in blobs.iter().enumerate() {
        let out = dir.path().join(format!("out-{i}"));
        assert!(get_blob(&net, blob, &out) == *data, "blob {blob} changed");
    }
    // The bond comes back at the end of its release epoch (the repair took less than the
    // unbonding period), not before: the height read just after the release is first seen.
    wait_for(
        "the leaver's bond to be released",
        Duration::from_secs(180),
        || released(&node),
    );
    let seen_at = height(&node);
    assert!(
        seen_at >= (release_epoch + 1) * EPOCH_BLOCKS,
        "released by height {seen_at}, before the end of epoch {release_epoch}"
    );
    let (balance_after, _) = balance_nonce(&node, &first);
    assert!(
        balance_after >= balance_before_leave + bond - 1_000_000,
        "the bond came back: {balance_before_leave} -> {balance_after}"
    );
    let shown = run_ok(&net, &["provider", "show", "joiner-store-0", "--json"]);
    assert_eq!(shown["provider"]["status"]["status"], "leaving", "{shown}");
    assert_eq!(shown["shards_held"].as_array().map(Vec::len), Some(0));

    // The compute provider leaves too: its lease closes with the reason, the tenant's
    // unspent escrow comes back, and the workload stops.
    let tenant = addresses["tenant"];
    let (tenant_before, _) = balance_nonce(&node, &tenant);
    let left = run_ok(
        &net,
        &["provider", "leave", "--from", "joiner-compute", "--json"],
    );
    assert_eq!(left["leases_closed"], serde_json::json!([lease]), "{left}");
    let l = &node.get(&format!("/v1/leases/{lease}")).unwrap()["lease"];
    assert_eq!(l["state"]["state"], "closed", "{l}");
    assert_eq!(l["state"]["reason"], "provider left", "{l}");
    assert_eq!(l["state"]["initiator"], "provider", "{l}");
    let (tenant_after, _) = balance_nonce(&node, &tenant);
    assert!(tenant_after > tenant_before, "the unspent escrow came back");
    wait_for("the workload to stop", Duration::from_secs(30), || {
        http_get(&url).0 != 200
    });
    // Every blob is still readable.
    for (i, (blob, _, data)) in blobs.iter().enumerate() {
        let out = dir.path().join(format!("last-{i}"));
        assert!(get_blob(&net, blob, &out) == *data, "blob {blob} changed");
    }
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
