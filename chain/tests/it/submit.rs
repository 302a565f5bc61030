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
