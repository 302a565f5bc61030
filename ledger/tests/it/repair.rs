//! Repair on chain: a shard whose provider missed its proof awaits repair; `RepairShard`
//! moves it to a provider that receipted the rebuilt shard, after checking everything, and
//! every bad repair is refused with nothing changed.

use crate::common::*;
use cairn_ledger::TxError;
use cairn_ledger::state::{DealStatus, Verdict, epoch_cost};
use cairn_types::tx::{RepairShard, SHARD_RECEIPT_NAMESPACE, shard_receipt_message};
use cairn_types::{Amount, DealId, Hash, Keypair, TxBody};

fn repair(deal: DealId, index: u16, new: &Keypair, signer: &Keypair, b: &Blob) -> TxBody {
    let root = b
        .meta
        .shard_roots
        .0
        .get(usize::from(index))
        .copied()
        .unwrap_or(Hash::ZERO);
    let message = shard_receipt_message(deal, &b.meta.id, index, &root);
    TxBody::RepairShard(RepairShard {
        deal,
        shard_index: index,
        new_provider: new.address(),
        receipt: signer.sign(SHARD_RECEIPT_NAMESPACE, &message),
    })
}

/// Applies empty blocks to the end of the current epoch.
fn finish(chain: &mut Chain) {
    let end = chain.epoch_end(chain.epoch());
    chain.advance_to(end - 1);
    chain.empty();
}

#[test]
fn missed_proof_queues_repair_and_repair_moves_the_shard() {
    let mut chain = Chain::sim(0);
    let three: Vec<Keypair> = (0..3).map(storage).collect();
    let spare = storage(3);
    let b = blob(21, 2, 1, 2_000, 1024);
    let price = crn(10_000);
    let cost = epoch_cost(price, b.meta.size_bytes).unwrap().0;
    let deal = DealId(0);
    chain.ok(
        &alice(),
        create_deal(&b.meta, &addresses(&three), 4, price, Amount(4 * cost)),
    );
    // Before activation nothing awaits repair.
    let err = reject(&mut chain, &bob(), repair(deal, 2, &spare, &spare, &b));
    assert!(matches!(err, TxError::DealWrongStatus { .. }), "{err:?}");
    chain.ok(&alice(), activate(deal, &b.meta, &three));
    finish(&mut chain);
    // Epoch 1: shards 0 and 1 prove, shard 2's provider (a withholder) says nothing.
    let epoch = chain.epoch();
    chain.run(vec![
        (
            &three[0],
            submit_proofs(epoch, vec![storage_proof(&chain, &b, deal, 0)]),
        ),
        (
            &three[1],
            submit_proofs(epoch, vec![storage_proof(&chain, &b, deal, 1)]),
        ),
    ]);
    finish(&mut chain);
    assert_eq!(chain.state().deals[&deal].repair_needed, vec![2]);
    let withholder = &chain.state().providers[&three[2].address()];
    assert_eq!(withholder.total_faults, 1);

    // Refusals, each changing nothing but fee and nonce.
    let err = reject(&mut chain, &bob(), repair(deal, 0, &spare, &spare, &b));
    assert_eq!(
        err,
        TxError::NotAwaitingRepair {
            deal,
            shard_index: 0
        }
    );
    let err = reject(&mut chain, &bob(), repair(deal, 2, &spare, &bob(), &b));
    assert!(
        matches!(err, TxError::BadReceipt { shard_index: 2, .. }),
        "{err:?}"
    );
    let err = reject(
        &mut chain,
        &bob(),
        repair(deal, 2, &three[0], &three[0], &b),
    );
    assert!(
        matches!(err, TxError::DuplicateShardProvider { .. }),
        "{err:?}"
    );
    let err = reject(&mut chain, &bob(), repair(deal, 2, &bob(), &bob(), &b));
    assert!(matches!(err, TxError::UnknownProvider { .. }), "{err:?}");
    let err = reject(&mut chain, &bob(), repair(deal, 9, &spare, &spare, &b));
    assert!(
        matches!(err, TxError::BadReceipt { shard_index: 9, .. }),
        "{err:?}"
    );
    let err = reject(&mut chain, &bob(), repair(DealId(7), 2, &spare, &spare, &b));
    assert_eq!(err, TxError::UnknownDeal { deal: DealId(7) });

    // The repair: anyone may send it, with the new provider's receipt.
    let before = chain.state().clone();
    chain.ok(&bob(), repair(deal, 2, &spare, &spare, &b));
    let d = &chain.state().deals[&deal];
    assert_eq!(d.providers[2], spare.address());
    assert!(d.repair_needed.is_empty());
    assert_eq!(d.status, DealStatus::Active);
    let assigned = |k: &Keypair| chain.state().providers[&k.address()].assigned_storage_bytes;
    let was = |k: &Keypair| before.providers[&k.address()].assigned_storage_bytes;
    assert_eq!(assigned(&three[2]), was(&three[2]) - 2_000);
    assert_eq!(assigned(&spare), was(&spare) + 2_000);
    // Done once: a second repair of the same shard is refused.
    let err = reject(
        &mut chain,
        &bob(),
        repair(deal, 2, &storage(3), &storage(3), &b),
    );
    assert!(matches!(err, TxError::NotAwaitingRepair { .. }), "{err:?}");

    // Next epoch the new holder is challenged and passes with the rebuilt shard.
    finish(&mut chain);
    let epoch = chain.epoch();
    let c = &chain.state().storage_challenges[&(deal, 2)];
    assert_eq!(c.provider, spare.address());
    chain.run(vec![(
        &spare,
        submit_proofs(epoch, vec![storage_proof(&chain, &b, deal, 2)]),
    )]);
    assert_eq!(
        chain.state().storage_challenges[&(deal, 2)].verdict,
        Verdict::Passed
    );
}
