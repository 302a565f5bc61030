//! The explorer against a real chain: known transactions, figures checked exactly against the
//! ledger, a restart (with a torn tail) that counts nothing twice, and bad input.

use super::harness::{EPOCH_BLOCKS, Net, get, get_json};
use cairn_explorer::demo::{LEASE_PRICE_UCRN, lease_round};
use cairn_explorer::{Config, Explorer};
use cairn_types::tx::{Delegation, Transfer};
use cairn_types::{Address, Amount, TxBody};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn explorer(net: &Net, dir: &Path) -> Explorer {
    Explorer::start(Config {
        node_url: net.url.clone(),
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        crn_usd: Some(0.5),
    })
    .expect("explorer starts")
}

fn amount(v: &Value) -> Amount {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("amount {v}: {e}"))
}

/// Finished epochs as the ledger has them: (epoch, storage, compute, tx fees, minted).
fn ledger_epochs(net: &Net) -> Vec<(u64, Amount, Amount, Amount, Amount)> {
    net.handle().with_ledger(|l| {
        l.state()
            .epochs
            .values()
            .filter(|r| r.finished)
            .map(|r| {
                (
                    r.epoch,
                    r.revenue.storage,
                    r.revenue.compute,
                    r.revenue.tx_fees,
                    r.minted,
                )
            })
            .collect()
    })
}

fn explorer_epochs(url: &str) -> Vec<(u64, Amount, Amount, Amount, Amount)> {
    let doc = get_json(&format!("{url}/api/v1/revenue?by=epoch"));
    doc["periods"]
        .as_array()
        .expect("periods")
        .iter()
        .map(|p| {
            (
                p["first_epoch"].as_u64().expect("epoch"),
                amount(&p["storage"]),
                amount(&p["compute"]),
                amount(&p["tx_fees"]),
                amount(&p["emission"]),
            )
        })
        .collect()
}

/// Transactions in finalized blocks 1..=height, as the node has them.
fn txs_through(net: &Net, height: u64) -> u64 {
    (1..=height)
        .map(|h| {
            let block = net.handle().block(h).expect("a finalized block");
            u64::try_from(block.txs.len()).expect("n")
        })
        .sum()
}

/// The explorer counted each block and each transaction exactly once.
fn counted_once(net: &Net, url: &str, what: &str) {
    let summary = get_json(&format!("{url}/api/v1/summary"));
    let height = summary["height"].as_u64().expect("height");
    assert_eq!(summary["blocks_indexed"].as_u64(), Some(height), "{what}");
    assert_eq!(
        summary["txs_indexed"].as_u64(),
        Some(txs_through(net, height)),
        "{what}"
    );
}

fn wait_indexed(net: &Net, e: &Explorer, height: u64) {
    net.wait(
        &format!("the explorer to index height {height}"),
        Duration::from_secs(60),
        || e.height() >= height,
    );
}

#[test]
fn slow_figures_match_the_ledger_exactly_and_a_restart_counts_nothing_twice() {
    let net = Net::start();
    let client = net.client();
    let dir = net.dir.path().join("explorer");
    let first = explorer(&net, &dir);

    // Known transactions: a transfer, a delegation, one compute lease (order, bid, accept,
    // start: 4 transactions).
    let to = Address::derived("explorer.test.recipient");
    let h = client
        .send(
            &net.tenant,
            TxBody::Transfer(Transfer {
                to,
                amount: Amount::from_ucrn(7),
            }),
            None,
        )
        .expect("transfer");
    client
        .wait_finalized(&h, Duration::from_secs(30))
        .expect("transfer final");
    let delegated = Amount::from_crn(25).expect("amount");
    let h = client
        .send(
            &net.tenant,
            TxBody::Delegate(Delegation {
                provider: net.provider.address(),
                amount: delegated,
            }),
            None,
        )
        .expect("delegate");
    client
        .wait_finalized(&h, Duration::from_secs(30))
        .expect("delegate final");
    let lease = lease_round(&client, &net.tenant, &net.provider, 0, 500).expect("a lease");
    let sent_txs = 6u64;
    assert_eq!(
        lease["lease"]["price_per_block"],
        Value::String(LEASE_PRICE_UCRN.to_string())
    );
    let lease_height = net.handle().height();

    // Three epochs after the lease: each pays for its blocks.
    let target = (lease_height / EPOCH_BLOCKS + 4) * EPOCH_BLOCKS;
    net.wait(
        "three epochs of lease payments",
        Duration::from_secs(120),
        || net.handle().height() >= target,
    );
    wait_indexed(&net, &first, target);

    // Revenue: every finished epoch, by source, exactly as the ledger reports it.
    let ledger = ledger_epochs(&net);
    let indexed = explorer_epochs(first.url());
    assert!(indexed.len() >= usize::try_from(target / EPOCH_BLOCKS).expect("usize"));
    assert_eq!(
        indexed[..],
        ledger[..indexed.len()],
        "explorer revenue differs from the ledger's epochs"
    );
    let compute: u128 = indexed.iter().map(|e| e.2.ucrn()).sum();
    assert!(compute > 0, "the lease paid nothing");
    assert_eq!(
        compute % LEASE_PRICE_UCRN,
        0,
        "compute revenue is whole blocks of the lease price"
    );
    assert_eq!(
        indexed.iter().map(|e| e.1.ucrn()).sum::<u128>(),
        0,
        "no storage deals were made"
    );
    let fees: u128 = indexed.iter().map(|e| e.3.ucrn()).sum();
    let min_fee = net.handle().with_ledger(|l| l.params().min_tx_fee.ucrn());
    // Every transaction pays the minimum fee: ours and the prover's.
    let last_indexed = indexed.last().expect("an epoch").0;
    let txs = txs_through(&net, (last_indexed + 1) * EPOCH_BLOCKS);
    assert!(txs > sent_txs, "the prover's transactions are on chain too");
    assert_eq!(
        fees,
        u128::from(txs) * min_fee,
        "tx fees are every transaction's minimum fee"
    );
    // By day and by month: the same epochs, regrouped.
    for by in ["day", "month"] {
        let doc = get_json(&format!(
            "{}/api/v1/revenue?by={by}&source=compute",
            first.url()
        ));
        let total: u128 = doc["periods"]
            .as_array()
            .expect("periods")
            .iter()
            .map(|p| amount(&p["revenue"]).ucrn())
            .sum();
        let epochs: u64 = doc["periods"]
            .as_array()
            .expect("periods")
            .iter()
            .map(|p| p["epochs"].as_u64().expect("n"))
            .sum();
        assert_eq!(total, compute, "by={by}");
        assert_eq!(epochs, u64::try_from(indexed.len()).expect("n"), "by={by}");
    }

    // TVL and providers, exactly as the ledger at the same height (retry until the explorer's
    // view and the ledger name the same height).
    // The prover is challenged every third epoch: wait for a finished epoch in which it
    // proved, so the active and proven counts checked below are not zero.
    let mut checked = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while std::time::Instant::now() < deadline {
        let summary = get_json(&format!("{}/api/v1/summary", first.url()));
        let (height, tvl, report, providers) = net.handle().with_ledger(|l| {
            let state = l.state();
            let report = state
                .epochs
                .values()
                .rev()
                .find(|r| r.finished)
                .cloned()
                .expect("a report");
            (
                l.height(),
                state
                    .supply_breakdown()
                    .expect("supply")
                    .tvl()
                    .expect("tvl"),
                report,
                state.providers.len(),
            )
        });
        if summary["tvl"]["as_of_height"].as_u64() == Some(height) {
            assert_eq!(amount(&summary["tvl"]["crn"]), tvl);
            let usd = summary["tvl"]["usd"].as_f64().expect("usd");
            assert!((usd - cairn_explorer::figures::crn_f64(tvl) * 0.5).abs() < 1e-6);
            assert_eq!(
                summary["providers"]["registered"].as_u64(),
                Some(u64::try_from(providers).expect("n"))
            );
            if summary["last_epoch"].as_u64() == Some(report.epoch) && report.proven_providers > 0 {
                assert_eq!(report.active_providers, 1, "only the prover proves");
                assert_eq!(report.proven_providers, 1, "only the prover proves");
                assert_eq!(
                    summary["providers"]["active"].as_u64(),
                    Some(report.active_providers)
                );
                assert_eq!(
                    summary["providers"]["proven"].as_u64(),
                    Some(report.proven_providers)
                );
                assert_eq!(
                    amount(&summary["last_epoch_revenue"]["compute"]),
                    report.revenue.compute
                );
                checked = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        checked,
        "never saw the explorer and the ledger at the same height after an epoch the prover proved"
    );
    // TVL includes the delegation and the bonds: 100k validator + 10k + 5k providers, 25 delegated
    // + the lease's escrow (what is left of it).
    let tvl = get_json(&format!("{}/api/v1/tvl", first.url()));
    assert_eq!(amount(&tvl["parts"]["delegations"]), delegated);
    assert_eq!(
        amount(&tvl["parts"]["validator_stake"]),
        Amount::from_crn(100_000).expect("a")
    );
    assert_eq!(
        amount(&tvl["parts"]["provider_bonds"]),
        Amount::from_crn(15_000).expect("a")
    );

    // The prover's proof history and rewards, exactly as the ledger's reward statements.
    let indexed = get_json(&format!(
        "{}/api/v1/providers/{}",
        first.url(),
        net.prover.address()
    ));
    let last = indexed["indexed"]["statements"]
        .as_array()
        .and_then(|s| s.last())
        .and_then(|s| s["epoch"].as_u64())
        .expect("indexed statements for the prover");
    let (passed, rewards) = net.handle().with_ledger(|l| {
        let mine = l
            .state()
            .statements
            .values()
            .filter(|s| s.provider == net.prover.address() && s.epoch <= last);
        mine.fold((0u64, 0u128), |(p, r), s| {
            (p + s.proofs_passed, r + s.provider_reward.ucrn())
        })
    });
    assert!(passed > 0, "the prover passed no proof");
    assert_eq!(indexed["indexed"]["proofs_passed"].as_u64(), Some(passed));
    assert_eq!(
        amount(&indexed["indexed"]["provider_rewards"]).ucrn(),
        rewards
    );
    assert!(
        indexed["node"]["provider"]["last_proven_epoch"]
            .as_u64()
            .is_some(),
        "the node lists the prover as proven: {}",
        indexed["node"]
    );

    // Each block and each transaction counted once (the prover's own transactions
    // included: they are counted from the finalized blocks).
    counted_once(&net, first.url(), "first run");

    // Restart, with a torn write at the end of the log: resumes, counts nothing twice.
    let stopped_at = first.height();
    first.stop();
    let log = dir.join("index.log");
    let mut bytes = std::fs::read(&log).expect("log");
    bytes.extend_from_slice(&[0, 0, 0, 200, 1, 2, 3]);
    std::fs::write(&log, &bytes).expect("torn tail");
    let second = explorer(&net, &dir);
    assert!(
        second.height() >= stopped_at,
        "the index replays from the log at start"
    );
    let later = net.handle().height() + 2 * EPOCH_BLOCKS;
    net.wait("two more epochs", Duration::from_secs(60), || {
        net.handle().height() >= later
    });
    wait_indexed(&net, &second, later);
    let resumed = explorer_epochs(second.url());
    let ledger = ledger_epochs(&net);
    assert_eq!(resumed[..], ledger[..resumed.len()], "after a restart");
    counted_once(&net, second.url(), "after a restart with a torn tail");
    // A fresh index from scratch agrees with the resumed one.
    let fresh = explorer(&net, &net.dir.path().join("fresh"));
    wait_indexed(&net, &fresh, later);
    let from_scratch = explorer_epochs(fresh.url());
    let n = from_scratch.len().min(resumed.len());
    assert_eq!(from_scratch[..n], resumed[..n]);

    bad_input(&net, second.url(), &lease);
    let (status, text) = get(&format!("{}/metrics", second.url()));
    assert_eq!(status, 200);
    assert!(text.contains("cairn_explorer_indexed_height "), "{text}");
    let (status, text) = get(&format!("{}/metrics", net.url));
    assert_eq!(status, 200);
    for metric in [
        "cairn_node_height ",
        "cairn_node_mempool_size ",
        "cairn_node_finality_latency_ms ",
    ] {
        assert!(text.contains(metric), "{metric} missing: {text}");
    }
    fresh.stop();
    second.stop();
}

fn error_code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}

fn bad_input(net: &Net, url: &str, lease: &Value) {
    // Malformed query parameters: 400 naming the parameter.
    for (path, needle) in [
        ("/api/v1/revenue?by=week", "week"),
        ("/api/v1/revenue?source=ads", "ads"),
        ("/api/v1/revenue?by=", "by"),
        ("/api/v1/revenue?color=red", "color"),
        ("/api/v1/summary?x=1", "x"),
        ("/api/v1/deals/deal-x", "deal"),
        ("/api/v1/leases/-1", "lease"),
        ("/api/v1/providers/cairn00", "provider"),
    ] {
        let (status, body) = get(&format!("{url}{path}"));
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(error_code(&body), "bad_request", "{path}");
        assert!(body.contains(needle), "{path}: {body}");
    }
    for path in [
        "/revenue?by=week",
        "/deals/nope",
        "/providers/nope",
        "/?x=1",
    ] {
        let (status, body) = get(&format!("{url}{path}"));
        assert_eq!(status, 400, "{path}");
        assert!(
            body.starts_with("<!doctype html>") && body.contains("400"),
            "{path}: {body}"
        );
    }
    // Unknown ids: 404, JSON under /api/, a page elsewhere.
    let nobody = Address::derived("explorer.test.nobody");
    for path in [
        "/api/v1/deals/999".to_string(),
        "/api/v1/leases/999".to_string(),
        format!("/api/v1/providers/{nobody}"),
        "/api/v1/nowhere".to_string(),
    ] {
        let (status, body) = get(&format!("{url}{path}"));
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(error_code(&body), "not_found", "{path}");
    }
    for path in [
        "/deals/999".to_string(),
        "/leases/999".to_string(),
        format!("/providers/{nobody}"),
        "/nowhere".to_string(),
    ] {
        let (status, body) = get(&format!("{url}{path}"));
        assert_eq!(status, 404, "{path}");
        assert!(
            body.starts_with("<!doctype html>") && body.contains("404"),
            "{path}: {body}"
        );
    }
    // Known ids: 200, with a chart.
    let lease_id = lease["lease"]["id"]
        .as_u64()
        .map(|n| n.to_string())
        .unwrap_or_else(|| lease["lease"]["id"].as_str().expect("id").to_string());
    for path in [
        format!("/leases/{lease_id}"),
        format!("/providers/{}", net.provider.address()),
    ] {
        let (status, body) = get(&format!("{url}{path}"));
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.contains("<svg"), "{path}");
    }
    assert_eq!(
        get_json(&format!("{url}/api/v1/leases/{lease_id}"))["lease"]["provider"],
        Value::String(net.provider.address().to_string())
    );
}
