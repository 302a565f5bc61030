//! `cairn keys` end to end: encrypted and devnet keys, import/export round trip, clear errors.

use super::cairn;

fn home(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cairn-keys-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn new_list_show_export_import() {
    let home = home("round");
    let run = |args: &[&str], pass: Option<&str>| {
        let mut cmd = cairn();
        cmd.env("CAIRN_HOME", &home).args(args);
        if let Some(p) = pass {
            cmd.env("CAIRN_PASSPHRASE", p);
        }
        cmd.output().expect("run cairn")
    };
    let out = run(&["keys", "new", "alice", "--json"], Some("s3cret"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(info["encrypted"], true);
    let address = info["address"].as_str().expect("address").to_string();

    let out = run(&["keys", "export", "alice", "--json"], Some("s3cret"));
    assert!(out.status.success());
    let exported: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let secret = exported["secret_hex"].as_str().expect("secret").to_string();
    assert_eq!(exported["address"], address.as_str());

    // Import the same secret under another name, unencrypted: same address, labelled.
    let secret_file = home.join("secret.hex");
    std::fs::write(&secret_file, format!("{secret}\n")).expect("write");
    let out = run(
        &[
            "keys",
            "import",
            "copy",
            "--unencrypted-devnet",
            "--json",
            "--secret-file",
            secret_file.to_str().expect("path"),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copy: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(copy["address"], address.as_str());
    assert_eq!(copy["devnet_unencrypted"], true);

    let out = run(&["keys", "list", "--json"], None);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    assert_eq!(names, ["alice", "copy"]);

    // Wrong passphrase, existing name, bad name: clear errors, nothing overwritten.
    let out = run(&["keys", "export", "alice"], Some("wrong"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
    let out = run(&["keys", "new", "alice"], Some("other"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = run(&["keys", "show", "alice", "--json"], None);
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(again["address"], address.as_str());
    let out = run(&["keys", "show", "../etc"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("key name"));
    let out = run(&["keys", "show", "nobody"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no key named"));
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn encrypted_key_needs_a_passphrase_without_a_terminal() {
    let home = home("nopass");
    let out = cairn()
        .env("CAIRN_HOME", &home)
        .env_remove("CAIRN_PASSPHRASE")
        .args(["keys", "new", "bob"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run cairn");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CAIRN_PASSPHRASE"));
    assert!(!home.join("keys/bob.json").exists());
    let _ = std::fs::remove_dir_all(&home);
}
