//! Storage end to end: a devnet with six storage providers (real HTTP, real files), files
//! put and got back through the `cairn` binary, the shard API's refusals, shards lost or
//! rotten on providers' disks, the fault that records, and the repair that follows.

use super::cairn;
use crate::devnet::Devnet;
use cairn_client::NodeClient;
use cairn_types::{Hash, Keypair};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// Eight providers for 4+2 shards: two are free to take repaired shards.
const PROVIDERS: u16 = 8;

/// A base port with `PROVIDERS` free ports after it.
fn free_run() -> u16 {
    for _ in 0..200 {
        let base = crate::devnet::free_port();
        if base > 60_000 {
            continue;
        }
        let all_free =
            (0..PROVIDERS).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no run of free ports");
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn bytes(len: usize, tag: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            Hash::domain("store-it", &[&tag.to_be_bytes(), &i.to_be_bytes()]).as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

fn run_ok(net: &Devnet, args: &[&str]) -> Value {
    let out = net.cli(args);
    assert!(
        out.status.success(),
        "cairn {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn put(net: &Devnet, path: &Path, extra: &[&str]) -> (Hash, u64) {
    let mut args = vec![
        "store",
        "put",
        path.to_str().unwrap(),
        "--json",
        "--epochs",
        "50",
    ];
    args.extend_from_slice(extra);
    let doc = run_ok(net, &args);
    (
        doc["blob"].as_str().unwrap().parse().unwrap(),
        doc["deal"].as_u64().unwrap(),
    )
}

fn get(net: &Devnet, blob: &Hash, out: &Path) -> Value {
    run_ok(
        net,
        &[
            "store",
            "get",
            &blob.to_string(),
            "-o",
            out.to_str().unwrap(),
            "--json",
        ],
    )
}

fn deal(client: &NodeClient, id: u64) -> Value {
    client.get(&format!("/v1/deals/{id}")).expect("deal")
}

fn shard_file(home: &Path, provider: usize, blob: &Hash, index: usize) -> PathBuf {
    home.join(format!(
        "devnet/storage-{provider}/shards/{blob}/{index}.shard"
    ))
}

/// Which `storage-i` holds shard `index` of the deal.
fn holder(net: &Devnet, client: &NodeClient, deal_id: u64, index: usize) -> usize {
    let address = deal(client, deal_id)["deal"]["providers"][index]
        .as_str()
        .unwrap()
        .to_string();
    let store = cairn_client::Keystore::open(&net.home);
    (0..usize::from(PROVIDERS))
        .find(|i| {
            store
                .info(&format!("storage-{i}"))
                .unwrap()
                .address
                .to_string()
                == address
        })
        .expect("a devnet provider")
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn slow_store_round_trips_refuses_bad_input_and_repairs_lost_shards() {
    let mut net = Devnet::new("store");
    let base = free_run();
    let client = net.start_with(&[
        "--block-time-ms",
        "200",
        "--compute-provers",
        "0",
        "--epoch-length-blocks",
        "40",
        "--storage-providers",
        &PROVIDERS.to_string(),
        "--storage-base-port",
        &base.to_string(),
    ]);
    let endpoint = |i: u16| format!("http://127.0.0.1:{}", base + i);
    wait_for("storage providers", Duration::from_secs(30), || {
        (0..PROVIDERS).all(|i| {
            agent()
                .get(&format!("{}/v1/provider", endpoint(i)))
                .call()
                .is_ok()
        })
    });
    let dir = tempfile::tempdir().unwrap();

    // 1. Round trips: empty, one byte, several segments; encrypted and public.
    let mut stored = Vec::new();
    for (len, public) in [
        (0usize, false),
        (1, false),
        (2_500_000, false),
        (70_000, true),
    ] {
        let path = dir.path().join(format!("in-{len}"));
        let data = bytes(len, len as u64);
        std::fs::write(&path, &data).unwrap();
        let flags: &[&str] = if public { &["--public"] } else { &[] };
        let (blob, deal_id) = put(&net, &path, flags);
        let out = dir.path().join(format!("out-{len}"));
        get(&net, &blob, &out);
        assert_eq!(std::fs::read(&out).unwrap(), data, "{len} bytes round trip");
        assert_eq!(deal(&client, deal_id)["deal"]["status"]["status"], "active");
        stored.push((blob, deal_id, data));
    }
    let (blob, deal_id, data) = stored[2].clone();
    let root: Hash = deal(&client, deal_id)["deal"]["blob"]["shard_roots"][0]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let p0 = holder(&net, &client, deal_id, 0);
    let shard0 = shard_file(&net.home, p0, &blob, 0);
    let good_shard = std::fs::read(&shard0).unwrap();
    let shard_url = format!(
        "{}/v1/shards/{blob}/0",
        endpoint(u16::try_from(p0).unwrap())
    );

    // 4. Bad input on the shard API: each a clear 4xx, nothing stored changes.
    let owner = Keypair::from_secret(&[7; 32]);
    let sig = owner.sign(
        cairn_types::tx::SHARD_PUT_NAMESPACE,
        &cairn_types::tx::shard_put_message(cairn_types::DealId(deal_id), &blob, 0, &root),
    );
    let cases: Vec<(ureq::RequestBuilder<ureq::typestate::WithBody>, u16, &str)> = vec![
        (
            agent().put(&format!("{shard_url}?deal={deal_id}")),
            401,
            "unsigned",
        ),
        (
            agent()
                .put(&format!("{shard_url}?deal={deal_id}"))
                .header("x-cairn-signer", owner.address().to_string())
                .header("x-cairn-signature", sig.to_hex()),
            403,
            "not_authorized",
        ),
        (
            agent()
                .put(&format!("{shard_url}?deal={deal_id}"))
                .header("x-cairn-signer", owner.address().to_string())
                .header("x-cairn-signature", owner.sign(b"_CAIRN_TX", b"x").to_hex()),
            401,
            "bad_signature",
        ),
        (
            agent().put(&format!("{}/v1/shards/nothex/0?deal=0", endpoint(0))),
            400,
            "bad_blob_id",
        ),
        (agent().put(&shard_url), 400, "missing_deal"),
    ];
    for (request, status, code) in cases {
        let mut response = request.send(&b"garbage"[..]).expect("answer");
        assert_eq!(response.status().as_u16(), status, "{code}");
        let body: Value = response.body_mut().read_json().expect("json error");
        assert_eq!(body["error"]["code"], code);
    }
    let mut response = agent()
        .get(&shard_url)
        .header("range", format!("bytes={}-", good_shard.len() * 2))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 416);
    let body: Value = response.body_mut().read_json().unwrap();
    assert_eq!(body["error"]["code"], "range_not_satisfiable");
    let mut response = agent()
        .get(&format!(
            "{}/v1/shards/{blob}/0/proof?leaves=1,x",
            endpoint(0)
        ))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let _ = response.body_mut().read_to_string();
    // A ranged read returns exactly those bytes (after the 64-byte header on disk).
    let mut response = agent()
        .get(&shard_url)
        .header("range", "bytes=10-19")
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 206);
    let part = response.body_mut().read_to_vec().unwrap();
    assert_eq!(part, good_shard[64 + 10..64 + 20]);
    assert_eq!(
        std::fs::read(&shard0).unwrap(),
        good_shard,
        "refusals changed a shard"
    );

    // 1/2. Lose m = 2 shards (deleted on their providers' disks): reads still succeed.
    let p1 = holder(&net, &client, deal_id, 1);
    let lost = shard_file(&net.home, p1, &blob, 1);
    std::fs::remove_file(&lost).unwrap();
    let mut rotten = good_shard.clone();
    for b in rotten.iter_mut().skip(64).step_by(1000) {
        *b ^= 0x5a;
    }
    std::fs::write(&shard0, &rotten).unwrap();
    let out = dir.path().join("out-lost");
    let doc = get(&net, &blob, &out);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        data,
        "read with 2 shards lost"
    );
    assert!(!doc["failures"].as_array().unwrap().is_empty(), "{doc}");

    // 2/3. The rotten and the deleted shard fail their next proofs, are recorded faulted,
    // and the repairer rebuilds them onto the providers that hold nothing of the deal.
    let before: Vec<Value> = deal(&client, deal_id)["deal"]["providers"]
        .as_array()
        .unwrap()
        .clone();
    wait_for(
        "the faulted shards to be repaired",
        Duration::from_secs(120),
        || {
            let d = deal(&client, deal_id);
            let providers = d["deal"]["providers"].as_array().unwrap();
            providers[0] != before[0] && providers[1] != before[1]
        },
    );
    for index in [0, 1] {
        let address = before[index].as_str().unwrap();
        let p = client.get(&format!("/v1/providers/{address}")).unwrap();
        assert!(p["provider"]["total_faults"].as_u64().unwrap() >= 1, "{p}");
    }
    let out = dir.path().join("out-repaired");
    get(&net, &blob, &out);
    assert_eq!(std::fs::read(&out).unwrap(), data, "read after repair");
    // The old holders collect the shards no deal assigns to them any more.
    wait_for("garbage collection", Duration::from_secs(60), || {
        !shard0.exists()
    });

    // status and ls.
    let status = run_ok(&net, &["store", "status", &blob.to_string(), "--json"]);
    assert_eq!(status["blob"]["id"], blob.to_string());
    let ls = run_ok(&net, &["store", "ls", "--json"]);
    assert_eq!(ls["deals"].as_array().unwrap().len(), stored.len());
    net.kill9();
}

#[test]
fn store_put_names_bad_arguments() {
    for (args, needle) in [
        (
            vec!["store", "put", "x", "--redundancy", "4-2"],
            "--redundancy",
        ),
        (
            vec!["store", "put", "x", "--redundancy", "0+2"],
            "--redundancy",
        ),
        (vec!["store", "get", "nothex", "-o", "y"], "ID"),
    ] {
        let out = cairn().args(&args).output().expect("run cairn");
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
