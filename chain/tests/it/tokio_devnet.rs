//! The production wiring: validators on the tokio runtime with `authenticated::lookup` p2p on
//! loopback sockets, each with its own storage directory, all in this process (what
//! `cairn devnet` does). Real time and real sockets, so it is a `slow_` test.

use crate::harness::{genesis, transfer, validator_key};
use cairn_chain::{ChainConfig, NodeConfig, Validator, ValidatorConfig, start_validator};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn wait(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn slow_tokio_lookup_devnet() {
    let n = 4;
    let pid = std::process::id();
    let base = 20_000 + u16::try_from(pid % 20_000).unwrap();
    let mut genesis = genesis(n);
    for (i, v) in genesis.validators.iter_mut().enumerate() {
        v.p2p_address = format!("127.0.0.1:{}", base + u16::try_from(i).unwrap());
    }
    let root = std::env::temp_dir().join(format!("cairn-chain-devnet-{pid}"));
    let _ = std::fs::remove_dir_all(&root);
    let config = |i: usize| -> ValidatorConfig {
        let node = NodeConfig {
            genesis: genesis.clone(),
            key: validator_key(i),
            partition_prefix: "node".into(),
            chain: ChainConfig::default(),
        };
        let mut config = ValidatorConfig::new(node, root.join(format!("v{i}")));
        config.worker_threads = 1;
        config
    };
    let mut validators: Vec<Option<Validator>> = (0..n)
        .map(|i| Some(start_validator(config(i)).unwrap()))
        .collect();
    let handle = |vs: &[Option<Validator>], i: usize| vs[i].as_ref().unwrap().handle().clone();

    wait("first blocks", Duration::from_secs(60), || {
        (0..n).all(|i| handle(&validators, i).height() >= 3)
    });

    // A transfer submitted to one validator is finalized everywhere with one receipt.
    let hash = handle(&validators, 0)
        .submit(transfer(0, 1, 0, 42))
        .unwrap();
    wait("the transfer", Duration::from_secs(30), || {
        (0..n).all(|i| handle(&validators, i).receipt(&hash).is_some())
    });
    let record = handle(&validators, 0).receipt(&hash).unwrap();
    for i in 1..n {
        assert_eq!(handle(&validators, i).receipt(&hash), Some(record.clone()));
    }

    // Stop one, the rest go on; restart it from its directory and it catches up.
    let stopped_at = handle(&validators, 3).height();
    validators[3].take().unwrap().shutdown().unwrap();
    let target = handle(&validators, 0).height() + 5;
    wait(
        "progress without validator 3",
        Duration::from_secs(60),
        || (0..3).all(|i| handle(&validators, i).height() >= target),
    );
    validators[3] = Some(start_validator(config(3)).unwrap());
    assert!(handle(&validators, 3).height() >= stopped_at);
    assert_eq!(handle(&validators, 3).receipt(&hash), Some(record));
    let target = handle(&validators, 0).height() + 3;
    wait("validator 3 to catch up", Duration::from_secs(60), || {
        handle(&validators, 3).height() >= target
    });
    let height = (0..n)
        .map(|i| handle(&validators, i).height())
        .min()
        .unwrap();
    for h in 1..=height {
        let hashes: Vec<_> = (0..n)
            .map(|i| handle(&validators, i).block_hash(h).unwrap())
            .collect();
        assert!(hashes.windows(2).all(|w| w[0] == w[1]), "fork at {h}");
    }

    for v in validators.into_iter().flatten() {
        v.shutdown().unwrap();
    }
    let _ = std::fs::remove_dir_all(PathBuf::from(&root));
}
