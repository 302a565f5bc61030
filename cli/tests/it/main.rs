//! End-to-end tests of the `cairn` binary as a user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

mod devnet;
mod explorer;
mod keys;
mod market;
mod money;
mod paging;
mod providers;
mod readme;
mod store;
mod webdriver;

pub(crate) fn cairn() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.env_remove("CAIRN_HOME");
    cmd
}

fn ucrn(v: &serde_json::Value) -> u128 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a uCRN string: {v}"))
}

/// The JSON supply parts sum to the total, which equals genesis + minted − burned, and the
/// per-epoch figures are there to read.
#[test]
fn simulate_json_supply_parts_sum() {
    let out = cairn()
        .args([
            "ledger", "simulate", "--blocks", "120", "--seed", "5", "--json",
        ])
        .output()
        .expect("run cairn");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let supply = &doc["supply"];
    let parts = supply["parts"].as_object().expect("parts");
    assert_eq!(parts.len(), 10);
    let sum: u128 = parts.values().map(ucrn).sum();
    assert_eq!(sum, ucrn(&supply["total"]));
    assert_eq!(
        ucrn(&supply["genesis"]) + ucrn(&supply["minted"]) - ucrn(&supply["burned"]),
        sum
    );
    assert_eq!(supply["invariant_holds"], true);
    let epochs = doc["epochs"].as_array().expect("epochs");
    assert_eq!(epochs.len(), 6, "120 blocks of 20 finish 6 epochs");
    for e in epochs {
        for field in [
            "emission_scheduled",
            "minted",
            "storage_rewards",
            "compute_rewards",
            "slashed",
        ] {
            ucrn(&e[field]);
        }
        for source in ["storage", "compute", "tx_fees"] {
            ucrn(&e["revenue"][source]);
        }
    }
    assert_eq!(doc["height"], 120);
}

/// Same seed, same chain; another seed, another chain.
#[test]
fn simulate_is_deterministic() {
    let root = |seed: &str| {
        let out = cairn()
            .args([
                "ledger", "simulate", "--blocks", "60", "--seed", seed, "--json",
            ])
            .output()
            .expect("run cairn");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        doc["state_root"].as_str().expect("root").to_string()
    };
    assert_eq!(root("11"), root("11"));
    assert_ne!(root("11"), root("12"));
}

#[test]
fn simulate_human_output_names_the_invariant() {
    let out = cairn()
        .args(["ledger", "simulate", "--blocks", "40"])
        .output()
        .expect("run cairn");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("invariant holds"), "{text}");
    assert!(text.contains("epoch"), "{text}");
}

#[test]
fn bad_arguments_are_named() {
    for (args, needle) in [
        (vec!["ledger", "simulate", "--blocks", "0"], "--blocks"),
        (vec!["ledger", "simulate", "--blocks", "many"], "--blocks"),
        (
            vec!["ledger", "simulate", "--chaos-percent", "101"],
            "--chaos-percent",
        ),
        (vec!["ledger", "frobnicate"], "frobnicate"),
    ] {
        let out = cairn().args(&args).output().expect("run cairn");
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn devnet_honours_home_and_cairn_home() {
    let dir = std::env::temp_dir().join(format!("cairn-cli-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let flag_home = dir.join("flag");
    let out = cairn()
        .args([
            "devnet",
            "--init-only",
            "--validators",
            "4",
            "--json",
            "--home",
        ])
        .arg(&flag_home)
        .output()
        .expect("run cairn");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["node_configs"].as_array().map(Vec::len), Some(4));
    assert!(flag_home.join("genesis.toml").exists());
    assert!(flag_home.join("keys/default.json").exists());
    assert!(flag_home.join("node-3.toml").exists());
    let genesis = std::fs::read_to_string(flag_home.join("genesis.toml")).expect("genesis");
    assert_eq!(genesis.matches("p2p_address").count(), 4);

    let env_home = dir.join("env");
    let out = cairn()
        .env("CAIRN_HOME", &env_home)
        .args(["devnet", "--init-only"])
        .output()
        .expect("run cairn");
    assert!(out.status.success());
    assert!(env_home.join("genesis.toml").exists());
    // A home's devnet keeps its validator count.
    let out = cairn()
        .env("CAIRN_HOME", &env_home)
        .args(["devnet", "--init-only", "--validators", "3"])
        .output()
        .expect("run cairn");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("validators"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn params_print_as_toml_and_parse_back() {
    let out = cairn()
        .args(["ledger", "params"])
        .output()
        .expect("run cairn");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("epoch_length_blocks"));
}

#[test]
fn cli_reference_is_current() {
    let out = cairn().arg("cli-reference").output().unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        generated == committed,
        "docs/cli.md is out of date: run `cargo run -p cairn-cli -- cli-reference > docs/cli.md`"
    );
    // Every visible command is in it.
    for command in [
        "devnet",
        "node",
        "keys new",
        "account transfer",
        "bench popw",
        "ledger simulate",
        "manifest validate",
        "deploy",
        "lease logs",
        "provider run",
    ] {
        assert!(
            generated.contains(&format!("## `cairn {command}`")),
            "{command}"
        );
    }
}
