//! A user's first hour: money that a typo cannot lose. A mistyped address, a bare number and
//! an unknown name are refused before anything is asked of a node; an overdraft is refused
//! by the node's check before it is signed, so no fee is paid; `-o` never replaces a link; a
//! pipe closed early (`| head`) ends every listing command with exit 0.

use super::cairn;
use crate::devnet::Devnet;
use cairn_client::{Keystore, NodeClient};
use cairn_types::{Address, Amount};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// No node listens here: a command that gets as far as asking one says "cannot reach".
const NO_NODE: &str = "http://127.0.0.1:9";

fn home(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cairn-money-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(home: &Path, args: &[&str]) -> Output {
    cairn()
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("run cairn")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command that must fail; returns what it said on stderr.
fn refused(home: &Path, args: &[&str]) -> String {
    let out = run(home, args);
    assert!(!out.status.success(), "cairn {args:?} succeeded");
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    err
}

fn new_key(home: &Path, name: &str) -> Address {
    let out = run(
        home,
        &["keys", "new", name, "--unencrypted-devnet", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["address"].as_str().unwrap().parse().unwrap()
}

/// The address with one data character changed to another of the alphabet: only the
/// checksum can tell.
fn mistype(address: &Address) -> String {
    let mut chars: Vec<char> = address.to_string().chars().collect();
    chars[20] = if chars[20] == 'q' { 'p' } else { 'q' };
    chars.into_iter().collect()
}

/// Runs `cmd` with its stdout a pipe whose reader is already gone, so every write to it
/// fails (EPIPE), as for `cmd | head` once head has exited. Deterministic: no race with the
/// reader.
fn into_closed_pipe(mut cmd: Command) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    cmd.stdout(writer)
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .output()
        .expect("run cairn")
}

fn assert_quiet_on_closed_pipe(home: &Path, node: &str, args: &[&str]) {
    let mut cmd = cairn();
    cmd.arg("--home")
        .arg(home)
        .args(["--node", node])
        .args(args);
    let out = into_closed_pipe(cmd);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "cairn {args:?} into a closed pipe: {err}"
    );
    assert!(!err.contains("panicked"), "cairn {args:?}: {err}");
}

#[test]
fn mistyped_addresses_bare_amounts_and_unknown_names_are_refused_before_any_node() {
    let home = home("typos");
    // The signer: the refusals below come before it is ever used.
    new_key(&home, "default");
    let alice = new_key(&home, "alice");
    let transfer = |to: &str, amount: &str| {
        refused(
            &home,
            &["account", "transfer", to, amount, "--node", NO_NODE],
        )
    };

    let typo = mistype(&alice);
    let err = transfer(&typo, "1 CRN");
    assert!(
        err.contains(&format!(
            "address {typo} has a bad checksum: a character is mistyped"
        )),
        "{err}"
    );
    assert!(!err.contains("cannot reach"), "{err}");

    // The old unchecked form: refused, and the checked form of the same bytes is shown.
    let legacy = format!("cairn{}", hex::encode(alice.as_bytes()));
    let err = transfer(&legacy, "1 CRN");
    assert!(err.contains("old unchecked address form"), "{err}");
    assert!(err.contains(&alice.to_string()), "{err}");

    // One character short, another chain's prefix.
    let short = &alice.to_string()[..63];
    assert!(transfer(short, "1 CRN").contains("63 characters long"));
    let other = format!("cosmos1{}", &alice.to_string()[6..]);
    assert!(transfer(&other, "1 CRN").contains("has the prefix \"cosmos\""));

    // Neither an address nor a key: both readings named.
    let err = transfer("bob", "1 CRN");
    assert!(
        err.contains("\"bob\" is neither an address nor a key name"),
        "{err}"
    );
    assert!(err.contains("no key named \"bob\""), "{err}");

    // A bare number has no unit, whichever was meant.
    for (amount, hint) in [
        (
            "5000000",
            "5000000 has no unit: write 5000000 uCRN or 5 CRN",
        ),
        ("12.5", "12.5 has no unit: write 12.5 CRN"),
    ] {
        let err = transfer(&alice.to_string(), amount);
        assert!(err.contains(hint), "{err}");
        assert!(!err.contains("cannot reach"), "{err}");
    }
    // A key name where an address is expected is resolved (and only then is a node asked).
    for args in [
        vec!["account", "transfer", "alice", "1 CRN", "--node", NO_NODE],
        vec!["account", "show", "alice", "--node", NO_NODE],
        vec![
            "account", "delegate", "alice", "500 uCRN", "--node", NO_NODE,
        ],
    ] {
        let err = refused(&home, &args);
        assert!(err.contains("cannot reach"), "{args:?}: {err}");
    }
    // A lease and a deal in the form cairn prints them get past parsing too.
    for args in [
        vec![
            "store", "extend", "deal-0", "--epochs", "1", "--node", NO_NODE,
        ],
        vec!["store", "cancel", "0", "--node", NO_NODE],
        vec!["lease", "topup", "lease-0", "1 CRN", "--node", NO_NODE],
    ] {
        let err = refused(&home, &args);
        assert!(err.contains("cannot reach"), "{args:?}: {err}");
    }
    let err = refused(
        &home,
        &[
            "store", "extend", "lease-0", "--epochs", "1", "--node", NO_NODE,
        ],
    );
    assert!(err.contains("is not a deal id"), "{err}");
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn store_get_never_replaces_a_link_a_directory_or_a_device() {
    let home = home("output");
    let blob = "ab".repeat(32);
    let get = |output: &Path, extra: &[&str]| {
        let mut args = vec![
            "store",
            "get",
            blob.as_str(),
            "-o",
            output.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--node", NO_NODE]);
        refused(&home, &args)
    };

    // A link (as /dev/stdout is one) is refused by name and left exactly as it was.
    let target = home.join("precious");
    std::fs::write(&target, b"keep me").unwrap();
    let link = home.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = get(&link, &[]);
    assert!(err.contains("is a symbolic link"), "{err}");
    assert!(
        !err.contains("cannot reach"),
        "refused before any node: {err}"
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_link(&link).unwrap(), target);
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    assert!(!home.join("link.cairn-partial").exists());
    let err = get(Path::new("/dev/stdout"), &[]);
    assert!(err.contains("/dev/stdout is a symbolic link"), "{err}");
    assert!(
        err.contains("-o -"),
        "the message names the way to stdout: {err}"
    );

    let err = get(&home, &[]);
    assert!(err.contains("is a directory"), "{err}");
    // `-o -` is standard output, which --json needs for its document (where the error goes).
    let out = run(
        &home,
        &[
            "store", "get", &blob, "-o", "-", "--json", "--node", NO_NODE,
        ],
    );
    assert!(!out.status.success());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("both write to standard output"),
        "{doc}"
    );
    assert!(!home.join("-").exists());
    // A plain file and /dev/null get as far as the node.
    let err = get(&home.join("new-file"), &[]);
    assert!(err.contains("cannot reach"), "{err}");
    let err = get(Path::new("/dev/null"), &[]);
    assert!(err.contains("cannot reach"), "{err}");
    let _ = std::fs::remove_dir_all(&home);
}

/// `cairn ... | head`: the reader goes away and the command ends quietly with exit 0.
#[test]
fn listing_commands_end_quietly_on_a_closed_pipe() {
    let home = home("pipe");
    for name in ["alice", "bob"] {
        new_key(&home, name);
    }
    let manifest = home.join("web.yaml");
    std::fs::write(&manifest, crate::market::PROCESS_MANIFEST).unwrap();
    let bad_manifest = home.join("bad.yaml");
    std::fs::write(&bad_manifest, "version: \"2.0\"\nservices: [\n").unwrap();
    let manifest = manifest.to_str().unwrap();
    let bad_manifest = bad_manifest.to_str().unwrap();
    for args in [
        vec!["keys", "list"],
        vec!["keys", "list", "--json"],
        vec!["keys", "show", "alice"],
        vec!["ledger", "params"],
        vec!["ledger", "params", "--json"],
        vec!["ledger", "simulate", "--blocks", "20"],
        vec!["cli-reference"],
        vec!["manifest", "validate", manifest],
        vec!["manifest", "validate", manifest, "--json"],
        vec!["manifest", "validate", bad_manifest, "--json"],
        vec!["--help"],
    ] {
        assert_quiet_on_closed_pipe(&home, NO_NODE, &args);
    }
    let _ = std::fs::remove_dir_all(&home);
}

fn balance_nonce(client: &NodeClient, address: &Address) -> (u128, u64) {
    let account = client.account(address).expect("account");
    (
        account["balance"].as_str().unwrap().parse().unwrap(),
        account["nonce"].as_u64().unwrap(),
    )
}

#[test]
fn slow_money_is_checked_against_the_chain_before_it_is_signed() {
    let mut net = Devnet::new("money");
    let client = net.start_with(&[
        "--block-time-ms",
        "200",
        "--compute-providers",
        "0",
        "--compute-provers",
        "0",
    ]);
    let home = net.home.clone();
    let default = Keystore::open(&home)
        .info("default")
        .expect("the devnet's default key")
        .address;
    let alice = new_key(&home, "alice");
    let (balance, nonce) = balance_nonce(&client, &default);
    let unchanged = |what: &str| {
        assert_eq!(
            balance_nonce(&client, &default),
            (balance, nonce),
            "{what} changed the balance or the nonce"
        );
    };

    // A mistyped address: refused, nothing signed.
    let err = refused(&home, &["account", "transfer", &mistype(&alice), "1 CRN"]);
    assert!(err.contains("bad checksum"), "{err}");
    unchanged("a mistyped address");

    // An overdraft: the node's check refuses it before it is signed, naming the reason.
    let over = format!("{} uCRN", balance + 1);
    let err = refused(&home, &["account", "transfer", "alice", &over]);
    assert!(err.contains("transfer refused before signing"), "{err}");
    assert!(err.contains("insufficient balance"), "{err}");
    assert!(err.contains("no fee paid"), "{err}");
    // So is a delegation to something that is no provider, and a bond without one.
    let err = refused(&home, &["account", "delegate", "alice", "1 CRN"]);
    assert!(err.contains("delegate refused before signing"), "{err}");
    let err = refused(&home, &["account", "stake", "1 CRN", "--from", "alice"]);
    assert!(err.contains("refused before signing"), "{err}");
    unchanged("refused transactions");

    // What is right goes through: to a key by name, in CRN, with exactly one nonce used
    // (none of the refusals above took one).
    let out = run(
        &home,
        &["account", "transfer", "alice", "1.5 CRN", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["status"], "finalized", "{record}");
    let fee: u128 = record["receipt"]["fee"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        balance_nonce(&client, &default),
        (balance - 1_500_000 - fee, nonce + 1)
    );
    assert_eq!(balance_nonce(&client, &alice), (1_500_000, 0));
    let tx = record["hash"].as_str().unwrap().to_string();

    // --force sends what the check refuses: it is included, fails, and pays its fee.
    let err = refused(
        &home,
        &["account", "transfer", "default", "2 CRN", "--from", "alice"],
    );
    assert!(err.contains("insufficient balance"), "{err}");
    assert_eq!(balance_nonce(&client, &alice), (1_500_000, 0));
    let err = refused(
        &home,
        &[
            "account", "transfer", "default", "2 CRN", "--from", "alice", "--force",
        ],
    );
    assert!(err.contains("included but failed"), "{err}");
    let (after, alice_nonce) = balance_nonce(&client, &alice);
    assert_eq!(alice_nonce, 1);
    assert!(after < 1_500_000, "the forced failure paid its fee");

    // People read CRN with thousands separators; JSON keeps uCRN digit strings.
    let out = run(&home, &["account", "show"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let (now, _) = balance_nonce(&client, &default);
    let shown = Amount::from_ucrn(now).to_string();
    assert!(
        shown.contains(','),
        "a devnet balance is in the thousands: {shown}"
    );
    assert!(text.contains(&format!("balance: {shown}")), "{text}");
    let out = run(&home, &["account", "show", "--json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["balance"], now.to_string());
    assert!(doc["address"].as_str().unwrap().starts_with("cairn1"));

    // `deal-0` is taken as the deal it names (none exists on this devnet), not refused as
    // an argument.
    let err = refused(&home, &["store", "extend", "deal-0", "--epochs", "1"]);
    assert!(!err.contains("invalid value"), "{err}");
    assert!(err.contains("deal"), "{err}");

    // Every listing command, its reader gone early, exits 0 without a panic.
    let url = net.url();
    let blob = "cd".repeat(32);
    for args in [
        vec!["status"],
        vec!["status", "--json"],
        vec!["account", "show"],
        vec!["account", "show", "alice", "--json"],
        vec!["tx", "show", tx.as_str()],
        vec!["tx", "show", tx.as_str(), "--json"],
        vec!["store", "ls"],
        vec!["store", "ls", "--json"],
        vec!["store", "status", blob.as_str(), "--json"],
        vec!["store", "durability", "--redundancy", "4+2"],
        vec!["lease", "ls"],
        vec!["lease", "ls", "--json"],
        vec!["keys", "list"],
    ] {
        assert_quiet_on_closed_pipe(&home, &url, &args);
    }
}
