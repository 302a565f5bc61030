//! The README's quickstart, run as written: `scripts/quickstart.sh` follows every command in
//! its blocks, in order, on a new home and free ports, and checks each result.

/// The script fails on any README command it does not know, so a new line in the README
/// needs a check there too.
#[test]
fn slow_readme_quickstart_runs_as_written() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/quickstart.sh"))
        .env("CAIRN_BIN", env!("CARGO_BIN_EXE_cairn"))
        .env_remove("CAIRN_HOME")
        .env_remove("CAIRN_NODE")
        .output()
        .expect("run scripts/quickstart.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("README commands ran as written"), "{text}");
}
