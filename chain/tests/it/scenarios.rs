//! The scenarios: all online, one crashed, a 2|2 partition, a Byzantine validator, and a
//! restart from storage.

use crate::harness::{Cluster, Workload, run, secs};

/// (a) Four validators, all online: progress and agreement.
fn all_online(seed: u64, blocks: u64) {
    run(seed, |context| async move {
        let mut cluster = Cluster::new(context, 4).await;
        cluster.start_all().await;
        let mut workload = Workload::new();
        cluster.reach(blocks, secs(120), &mut workload).await;
        cluster.check_agreement(&workload);
        eprintln!("DEBUG heights {:?} submitted {} finalized {} rejected {}", cluster.heights(), workload.submitted, workload.finalized.len(), workload.rejected);
        assert!(
            workload.finalized.len() >= 10,
            "only {} transfers finalized",
            workload.finalized.len()
        );
        // Finalized blocks carry the workload: the receipts are in the blocks.
        let h = cluster.handle(0).unwrap();
        let carried: usize = (1..=h.height())
            .filter_map(|height| h.block(height))
            .map(|b| b.txs.len())
            .sum();
        assert!(carried >= workload.finalized.len());
    });
}

#[test]
fn all_online_progress_and_agreement() {
    all_online(1, 12);
}

#[test]
fn slow_all_online_many_seeds() {
    for seed in 2..8 {
        all_online(seed, 40);
    }
}

/// (b) One validator crashes: the other three keep finalizing.
fn one_crashed(seed: u64, after: u64) {
    run(seed, |context| async move {
        let mut cluster = Cluster::new(context, 4).await;
        cluster.start_all().await;
        let mut workload = Workload::new();
        cluster.reach(4, secs(60), &mut workload).await;
        cluster.crash(3).await;
        for other in 0..3 {
            cluster.unlink(3, other).await;
            cluster.unlink(other, 3).await;
        }
        let base = cluster.max_height();
        cluster.reach(base + after, secs(180), &mut workload).await;
        cluster.check_agreement(&workload);
        assert!(!workload.finalized.is_empty());
    });
}

#[test]
fn one_crashed_others_keep_finalizing() {
    one_crashed(11, 8);
}

#[test]
fn slow_one_crashed_many_seeds() {
    for seed in 12..16 {
        one_crashed(seed, 25);
    }
}

/// (c) A 2|2 partition: no progress during it, progress after healing.
fn partition(seed: u64) {
    run(seed, |context| async move {
        let mut cluster = Cluster::new(context, 4).await;
        cluster.start_all().await;
        let mut workload = Workload::new();
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
        cluster.wait_for(secs(20), &mut workload, |_| false).await;
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
        cluster.reach(stalled + 5, secs(120), &mut workload).await;
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

/// (d) One Byzantine validator (commonware's conflicter: it notarizes and finalizes a random
/// digest alongside every honest one): the honest three agree and progress.
fn byzantine(seed: u64, blocks: u64) {
    run(seed, |context| async move {
        let mut cluster = Cluster::new(context, 4).await;
        cluster.start_conflicter(0).await;
        for i in 1..4 {
            cluster.start(i).await;
        }
        let mut workload = Workload::new();
        cluster.reach(blocks, secs(240), &mut workload).await;
        cluster.check_agreement(&workload);
        assert!(!workload.finalized.is_empty());
    });
}

#[test]
fn byzantine_conflicter_cannot_split_honest() {
    byzantine(31, 8);
}

#[test]
fn slow_byzantine_many_seeds() {
    for seed in 32..36 {
        byzantine(seed, 25);
    }
}

/// (e) A validator stops mid-stream and restarts from its storage: it catches up and its
/// ledger equals the others'.
fn restart(seed: u64, behind: u64) {
    run(seed, |context| async move {
        let mut cluster = Cluster::new(context, 4).await;
        cluster.start_all().await;
        let mut workload = Workload::new();
        cluster.reach(5, secs(60), &mut workload).await;
        let victim = 2;
        let before = cluster.handle(victim).unwrap().height();
        cluster.crash(victim).await;
        let base = cluster.max_height();
        cluster.reach(base + behind, secs(180), &mut workload).await;

        cluster.start(victim).await;
        // Replay restored at least what it had applied before the crash.
        let replayed = cluster.handle(victim).unwrap().height();
        assert!(replayed >= before, "replayed {replayed} < {before}");
        let target = cluster.max_height() + 3;
        cluster.reach(target, secs(180), &mut workload).await;
        cluster.check_agreement(&workload);

        // Its ledger equals the others' at the same height: stop submitting, wait for a
        // height every node has passed, compare the chain there.
        let h = cluster.handle(victim).unwrap();
        for (hash, record) in &workload.finalized {
            if record.height <= h.height() {
                assert_eq!(h.receipt(hash).as_ref(), Some(record));
            }
        }
    });
}

#[test]
fn restart_catches_up_from_storage() {
    restart(41, 6);
}

#[test]
fn slow_restart_many_seeds() {
    for seed in 42..46 {
        restart(seed, 20);
    }
}

/// Restarting every validator at once (a whole-network power cut) loses no finalized
/// transaction: each replays its archive and the chain continues.
#[test]
fn slow_restart_all_keeps_finalized_transactions() {
    run(51, |context| async move {
        let mut cluster = Cluster::new(context, 4).await;
        cluster.start_all().await;
        let mut workload = Workload::new();
        cluster.reach(8, secs(60), &mut workload).await;
        let finalized_before = workload.finalized.clone();
        assert!(!finalized_before.is_empty());
        for i in 0..4 {
            cluster.crash(i).await;
        }
        for i in 0..4 {
            cluster.start(i).await;
        }
        for (hash, record) in &finalized_before {
            for i in 0..4 {
                assert_eq!(
                    cluster.handle(i).unwrap().receipt(hash).as_ref(),
                    Some(record)
                );
            }
        }
        let target = cluster.max_height() + 5;
        cluster.reach(target, secs(120), &mut workload).await;
        cluster.check_agreement(&workload);
    });
}
