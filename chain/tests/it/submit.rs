//! Admission through `NodeHandle::submit`: typed refusals, mempool bounds, and the life of a
//! transaction from pending to finalized.

use crate::harness::{CHAIN_ID, Cluster, Workload, run, secs, transfer, user_key};
use cairn_chain::SubmitError;
use cairn_ledger::AdmissionError;
use cairn_types::{Amount, BoundedString};

#[test]
fn submit_refuses_with_typed_errors() {
    run(71, |context| async move {
        let mut cluster = Cluster::new(context, 1).await;
        cluster.config.mempool_max_per_sender = 3;
        cluster.config.mempool_max_txs = 5;
        cluster.config.block_cache = 2;
        cluster.start_all().await;
        let h = cluster.handle(0).unwrap().clone();
        let me = user_key(0).address();

        // Wrong nonce (the sender has none pending, so 0 is expected).
        let err = h.submit(transfer(0, 1, 1, 5)).unwrap_err();
        assert_eq!(
            err,
            SubmitError::Admission(AdmissionError::BadNonce {
                sender: me,
                expected: 0,
                got: 1
            })
        );

        // Wrong chain.
        let mut foreign = transfer(0, 1, 0, 5);
        foreign.tx.chain_id = BoundedString::new("other-chain").unwrap();
        let foreign = foreign.tx.sign(&user_key(0));
        assert!(matches!(
            h.submit(foreign),
            Err(SubmitError::Admission(AdmissionError::WrongChain { .. }))
        ));

        // Forged signature: the body changed after signing.
        let mut forged = transfer(0, 1, 0, 5);
        forged.tx.fee = Amount::from_ucrn(2_000);
        assert!(matches!(
            h.submit(forged),
            Err(SubmitError::Admission(AdmissionError::BadSignature { .. }))
        ));

        // Fee below the minimum.
        let mut cheap = transfer(0, 1, 0, 5);
        cheap.tx.fee = Amount::from_ucrn(1);
        let cheap = cheap.tx.sign(&user_key(0));
        assert!(matches!(
            h.submit(cheap),
            Err(SubmitError::Admission(AdmissionError::FeeTooLow { .. }))
        ));

        // Nonces chain through the pending queue; duplicates and the per-sender cap.
        let first = transfer(0, 1, 0, 5);
        let hash = h.submit(first.clone()).unwrap();
        assert!(h.is_pending(&hash));
        assert_eq!(
            h.submit(first.clone()),
            Err(SubmitError::Duplicate { hash })
        );
        h.submit(transfer(0, 1, 1, 5)).unwrap();
        h.submit(transfer(0, 1, 2, 5)).unwrap();
        assert_eq!(
            h.submit(transfer(0, 1, 3, 5)),
            Err(SubmitError::SenderQueueFull {
                sender: me,
                capacity: 3
            })
        );
        // The global cap.
        h.submit(transfer(1, 0, 0, 5)).unwrap();
        h.submit(transfer(1, 0, 1, 5)).unwrap();
        assert_eq!(
            h.submit(transfer(2, 0, 0, 5)),
            Err(SubmitError::MempoolFull {
                pending: 5,
                capacity: 5
            })
        );
        assert_eq!(h.status().mempool_size, 5);

        // Everything finalizes; the mempool empties; the receipt is there; a resubmission
        // is a duplicate, not a second transfer.
        let mut idle = Workload::new(0);
        idle.enabled = false;
        let done = cluster
            .wait_for(secs(30), &mut idle, |c| {
                c.handle(0).unwrap().status().mempool_size == 0
            })
            .await;
        assert!(done, "mempool did not drain: {:?}", h.status());
        assert!(!h.is_pending(&hash));
        let record = h.receipt(&hash).unwrap();
        assert!(record.receipt.ok());
        assert_eq!(h.submit(first), Err(SubmitError::Duplicate { hash }));
        let nonce = h.with_ledger(|l| l.state().nonce(&me));
        assert_eq!(nonce, 3);

        let status = h.status();
        assert_eq!(status.chain_id, CHAIN_ID);
        assert_eq!(status.validators.len(), 1);
        assert!(status.height >= record.height);
        assert_eq!(status.halted, None);
        assert_eq!(h.block_hash(status.height), Some(status.last_block_hash));
        // Old blocks leave the cache but not the archive.
        let wait = cluster
            .wait_for(secs(10), &mut idle, |c| {
                c.handle(0).unwrap().height() > record.height + 3
            })
            .await;
        assert!(wait);
        assert!(h.block(record.height).is_none());
        let from_archive = h.fetch_block(record.height).await.unwrap();
        assert_eq!(from_archive.header.height, record.height);
        let index = usize::try_from(record.index).unwrap();
        assert_eq!(from_archive.txs.0[index].hash(), hash);
    });
}

#[test]
fn submit_batch_gives_each_transaction_its_own_result_in_order() {
    run(72, |context| async move {
        let mut cluster = Cluster::new(context, 1).await;
        cluster.start_all().await;
        let h = cluster.handle(0).unwrap().clone();

        let first = transfer(0, 1, 0, 5);
        let mut forged = transfer(1, 0, 0, 5);
        forged.tx.fee = Amount::from_ucrn(2_000);
        let mut foreign = transfer(2, 0, 0, 5);
        foreign.tx.chain_id = BoundedString::new("other-chain").unwrap();
        let foreign = foreign.tx.sign(&user_key(2));
        let batch = vec![
            first.clone(),
            // The same sender's next nonce in the same batch is admissible.
            transfer(0, 1, 1, 5),
            forged,
            foreign,
            first.clone(),
            // A gap in the nonces.
            transfer(3, 0, 7, 5),
        ];
        let results = h.submit_batch(batch);
        assert_eq!(results.len(), 6);
        assert_eq!(results[0], Ok(first.hash()));
        assert!(results[1].is_ok());
        assert!(matches!(
            results[2],
            Err(SubmitError::Admission(AdmissionError::BadSignature { .. }))
        ));
        assert!(matches!(
            results[3],
            Err(SubmitError::Admission(AdmissionError::WrongChain { .. }))
        ));
        assert_eq!(
            results[4],
            Err(SubmitError::Duplicate { hash: first.hash() })
        );
        assert!(matches!(
            results[5],
            Err(SubmitError::Admission(AdmissionError::BadNonce {
                expected: 0,
                got: 7,
                ..
            }))
        ));
        assert_eq!(h.status().mempool_size, 2);
        assert!(h.submit_batch(Vec::new()).is_empty());

        // Only the two admitted transfers reach the chain.
        let mut idle = Workload::new(0);
        idle.enabled = false;
        let done = cluster
            .wait_for(secs(30), &mut idle, |c| {
                c.handle(0).unwrap().status().mempool_size == 0
            })
            .await;
        assert!(done);
        assert_eq!(
            h.with_ledger(|l| l.state().nonce(&user_key(0).address())),
            2
        );
        for k in 1..4 {
            assert_eq!(
                h.with_ledger(|l| l.state().nonce(&user_key(k).address())),
                0
            );
        }
    });
}

/// Without gossip, a transaction submitted to validator 0 can only land in a block validator 0
/// proposes. With it, the other leaders include it too.
#[test]
fn gossiped_transactions_land_in_other_leaders_blocks() {
    run(73, |context| async move {
        let mut cluster = Cluster::new(context, 4).await;
        cluster.start_all().await;
        let mut idle = Workload::new(0);
        idle.enabled = false;
        cluster.reach(2, secs(30), &mut idle).await;
        let h0 = cluster.handle(0).unwrap().clone();
        let me = h0.validator();

        let mut proposers = Vec::new();
        for user in 0..8 {
            let hash = h0.submit(transfer(user, (user + 1) % 8, 0, 5)).unwrap();
            let done = cluster
                .wait_for(secs(30), &mut idle, |c| {
                    c.handle(0).unwrap().receipt(&hash).is_some()
                })
                .await;
            assert!(done, "transaction {user} did not finalize");
            let record = h0.receipt(&hash).unwrap();
            let block = h0.fetch_block(record.height).await.unwrap();
            proposers.push(block.header.proposer);
            // Every validator has the transaction finalized, and none still holds it pending.
            for i in 1..4 {
                let done = cluster
                    .wait_for(secs(10), &mut idle, |c| {
                        c.handle(i).unwrap().receipt(&hash).is_some()
                    })
                    .await;
                assert!(done);
                assert!(!cluster.handle(i).unwrap().is_pending(&hash));
            }
        }
        let elsewhere = proposers.iter().filter(|p| **p != me).count();
        assert!(
            elsewhere > 0,
            "every transaction waited for validator 0 to lead: {proposers:?}"
        );
    });
}
