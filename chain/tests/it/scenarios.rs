//! The scenarios: all online, one crashed, a 2|2 partition, a Byzantine validator, restarts
//! from storage (one validator, and all of them with torn unsynced writes).

use crate::harness::{Byzantine, Cluster, Workload, recover, run, run_and_crash, secs};
use cairn_chain::FinalizedEvent;
use commonware_p2p::simulated::Link;
use commonware_utils::probability;
use std::time::Duration;

/// (a) Four validators, all online: progress, agreement, events.
fn all_online(seed: u64, blocks: u64, lossy: bool) {
    run(seed, |context| async move {
        let mut cluster = Cluster::new(context, 4).await;
        if lossy {
            let link = Link {
                latency: Duration::from_millis(80),
                jitter: Duration::from_millis(60),
                success_rate: probability!(0.9),
            };
            cluster.relink_all(link).await;
        }
        cluster.start_all().await;
        let mut events = cluster.handle(0).unwrap().subscribe();
        let mut workload = Workload::new(seed);
        cluster.reach(blocks, secs(240), &mut workload).await;
        cluster.check_agreement(&workload);
        assert!(
            workload.finalized.len() >= 10,
            "only {} transfers finalized",
            workload.finalized.len()
        );

        // The subscription saw every finalized block in order, each event agreeing with the
        // chain: the next header commits to the event's state root.
        let h = cluster.handle(0).unwrap();
        let mut seen: Vec<FinalizedEvent> = Vec::new();
        while let Ok(event) = events.try_recv() {
            seen.push(event);
        }
        assert!(!seen.is_empty());
        for pair in seen.windows(2) {
            assert_eq!(pair[1].height, pair[0].height + 1);
        }
        for event in &seen {
            let block = h.block(event.height).unwrap();
            assert_eq!(block.hash(), event.block_hash);
            assert_eq!(block.txs.len(), event.tx_count);
            if let Some(next) = h.block(event.height + 1) {
                assert_eq!(next.header.state_root, event.state_root);
            }
            for receipt in &event.receipts {
                assert_eq!(h.receipt(&receipt.tx).unwrap().receipt, *receipt);
            }
        }
        // Epochs of 20 blocks: the first one ended inside the run.
        if blocks > 20 {
            assert!(seen.iter().any(|e| e.finished_epoch == Some(0)));
        }
    });
}

#[test]
fn all_online_progress_and_agreement() {
    for seed in [1, 2] {
        all_online(seed, 24, false);
    }
}

#[test]
fn slow_all_online_many_seeds() {
    for seed in 3..9 {
        all_online(seed, 60, seed % 2 == 0);
    }
}

/// (b) One validator crashes: the other three keep finalizing.
fn one_crashed(seed: u64, after: u64) {
    run(seed, |context| async move {
        let mut cluster = Cluster::new(context, 4).await;
        cluster.start_all().await;
        let mut workload = Workload::new(seed);
        cluster.reach(4, secs(60), &mut workload).await;
        cluster.crash(3).await;
        for other in 0..3 {
            cluster.unlink(3, other).await;
            cluster.unlink(other, 3).await;
        }
        let base = cluster.max_height();
        cluster.reach(base + after, secs(240), &mut workload).await;
        cluster.check_agreement(&workload);
        assert!(!workload.finalized.is_empty());
    });
}

#[test]
fn one_crashed_others_keep_finalizing() {
    one_crashed(11, 10);
}

#[test]
fn slow_one_crashed_many_seeds() {
    for seed in 12..16 {
        one_crashed(seed, 30);
    }
}

/// (c) A 2|2 partition: no progress during it, progress after healing.
fn partition(seed: u64) {
    run(seed, |context| async move {
        let mut cluster = Cluster::new(context, 4).await;
        cluster.start_all().await;
        let mut workload = Workload::new(seed);
        cluster.reach(4, secs(60), &mut workload).await;
        for a in [0, 1] {
            for b in [2, 3] {
                cluster.unlink(a, b).await;
                cluster.unlink(b, a).await;
            }
        }
        // Let what was in flight settle, then nothing may finalize.
        cluster.wait_for(secs(3), &mut workload, |_| false).await;
        let stalled = cluster.max_height();
        cluster.wait_for(secs(30), &mut workload, |_| false).await;
        assert_eq!(
            cluster.max_height(),
            stalled,
            "a partition without a quorum finalized blocks"
        );
        for a in [0, 1] {
            for b in [2, 3] {
                cluster.link(a, b).await;
                cluster.link(b, a).await;
            }
        }
        cluster.reach(stalled + 5, secs(240), &mut workload).await;
        cluster.check_agreement(&workload);
    });
}

#[test]
fn partition_stalls_then_heals() {
    partition(21);
}

#[test]
fn slow_partition_many_seeds() {
    for seed in 22..26 {
        partition(seed);
    }
}

/// (d) One Byzantine validator (commonware's simplex doubles: the conflicter notarizes and
/// finalizes a random digest alongside every honest vote and never proposes; the nuller
/// nullifies and finalizes the same view): the honest three agree and progress.
fn byzantine(seed: u64, blocks: u64, kind: Byzantine) {
    run(seed, |context| async move {
        let mut cluster = Cluster::new(context, 4).await;
        cluster.start_byzantine(0, kind).await;
        for i in 1..4 {
            cluster.start(i).await;
        }
        let mut workload = Workload::new(seed);
        cluster.reach(blocks, secs(300), &mut workload).await;
        cluster.check_agreement(&workload);
        assert!(!workload.finalized.is_empty());
    });
}

#[test]
fn byzantine_conflicter_cannot_split_honest() {
    byzantine(31, 10, Byzantine::Conflicter);
}

#[test]
fn byzantine_nuller_cannot_split_honest() {
    byzantine(37, 10, Byzantine::Nuller);
}

#[test]
fn slow_byzantine_many_seeds() {
    for seed in 32..36 {
        let kind = if seed % 2 == 0 {
            Byzantine::Conflicter
        } else {
            Byzantine::Nuller
        };
        byzantine(seed, 30, kind);
    }
}

/// (e) A validator stops mid-stream and restarts from its storage: it catches up and its
/// ledger equals the others'.
fn restart(seed: u64, behind: u64) {
    run(seed, |context| async move {
        let mut cluster = Cluster::new(context, 4).await;
        cluster.start_all().await;
        let mut workload = Workload::new(seed);
        cluster.reach(5, secs(60), &mut workload).await;
        let victim = 2;
        let before = cluster.handle(victim).unwrap().height();
        cluster.crash(victim).await;
        let base = cluster.max_height();
        cluster.reach(base + behind, secs(240), &mut workload).await;

        cluster.start(victim).await;
        // Replay restored at least what it had applied before the crash.
        let replayed = cluster.handle(victim).unwrap().height();
        assert!(replayed >= before, "replayed {replayed} < {before}");
        let target = cluster.max_height() + 3;
        cluster.reach(target, secs(240), &mut workload).await;
        cluster.check_agreement(&workload);
        assert!(cluster.handle(victim).unwrap().height() >= target);
    });
}

#[test]
fn restart_catches_up_from_storage() {
    restart(41, 8);
}

#[test]
fn slow_restart_many_seeds() {
    for seed in 42..46 {
        restart(seed, 30);
    }
}

/// `kill -9` of the whole network: the runtime stops at an arbitrary instant, unsynced writes
/// are torn (a random prefix of each survives), and every validator restarts from what is on
/// disk. No transaction reported finalized before the crash is lost, and the chain continues.
fn kill_all(seed: u64) {
    let (finalized, checkpoint) = run_and_crash(seed, |context| async move {
        let mut cluster = Cluster::new(context, 4).await;
        cluster.start_all().await;
        let mut workload = Workload::new(seed);
        cluster.reach(8, secs(60), &mut workload).await;
        // Stop between two polls, not at a quiet point.
        cluster
            .wait_for(Duration::from_millis(370), &mut workload, |_| false)
            .await;
        assert!(!workload.finalized.is_empty());
        workload.finalized
    });
    recover(checkpoint, |context| async move {
        let mut cluster = Cluster::new(context, 4).await;
        cluster.start_all().await;
        for (hash, record) in &finalized {
            for i in 0..4 {
                let h = cluster.handle(i).unwrap();
                assert_eq!(
                    h.receipt(hash).as_ref(),
                    Some(record),
                    "validator {i} lost finalized transaction {hash} (height {})",
                    h.height()
                );
            }
        }
        let mut workload = Workload::new(seed + 1);
        let target = cluster.max_height() + 5;
        cluster.reach(target, secs(240), &mut workload).await;
        cluster.check_agreement(&workload);
    });
}

#[test]
fn kill_all_recovers_every_finalized_transaction() {
    kill_all(51);
}

#[test]
fn slow_kill_all_many_seeds() {
    for seed in 52..58 {
        kill_all(seed);
    }
}

/// One validator is a network of its own: it finalizes alone (the one-node devnet).
#[test]
fn single_validator_makes_progress() {
    run(61, |context| async move {
        let mut cluster = Cluster::new(context, 1).await;
        cluster.start_all().await;
        let mut workload = Workload::new(61);
        cluster.reach(10, secs(60), &mut workload).await;
        cluster.check_agreement(&workload);
        assert!(!workload.finalized.is_empty());
        // An idle chain does not spin: one block per block time, no more.
        let h = cluster.handle(0).unwrap();
        let first = h.block(1).unwrap().header.timestamp_ms;
        let last = h.block(10).unwrap().header.timestamp_ms;
        assert!(last - first >= 9 * crate::harness::BLOCK_TIME_MS);
    });
}
