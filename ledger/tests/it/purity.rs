//! The pure crates stay pure (design §3): no async runtime, clock, file system, system
//! randomness, hash-ordered collections or floats in the code that decides state.
//! A source scan, because a transitive dependency (commonware-macros pulls tokio) cannot be
//! ruled out by Cargo.toml alone: what matters is that our code never calls it.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "tokio",
    "std::time",
    "SystemTime",
    "Instant::",
    "std::fs",
    "std::net",
    "HashMap",
    "HashSet",
    "thread_rng",
    "OsRng",
    "getrandom",
    "f32",
    "f64",
    "std::env",
    "std::thread",
];

fn scan(dir: &Path, allowed: &[(&str, &str)], hits: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        panic!("cannot read {}", dir.display());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            scan(&path, allowed, hits);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        // Unit tests may use anything.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (number, line) in code.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") {
                continue;
            }
            for word in FORBIDDEN {
                if line.contains(word)
                    && !allowed
                        .iter()
                        .any(|(file, w)| path.ends_with(file) && w == word)
                {
                    hits.push(format!(
                        "{}:{}: {}",
                        path.display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
}

#[test]
fn pure_crates_use_no_clock_io_randomness_or_floats() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut hits = Vec::new();
    scan(&root.join("types/src"), &[], &mut hits);
    scan(&root.join("ledger/src"), &[], &mut hits);
    // Coding lanes: scoped threads whose results come back in job order, so the bytes are
    // the same for any lane count (coding's tests check it); no clock, I/O or randomness.
    // Durability figures are a client's planning arithmetic: no state or verdict depends on
    // them (the chain only counts challenged and faulted shards, in integers).
    scan(
        &root.join("coding/src"),
        &[("pipeline.rs", "std::thread"), ("durability.rs", "f64")],
        &mut hits,
    );
    // The detection-probability helper is documentation arithmetic, never a verdict.
    scan(
        &root.join("proofs/src"),
        &[("compute.rs", "f64")],
        &mut hits,
    );
    assert!(
        hits.is_empty(),
        "impure code in a pure crate:\n{}",
        hits.join("\n")
    );
}
