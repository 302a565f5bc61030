//! Inconsistency proofs on chain (design §10, "Inconsistent encoding"): a deal whose shards
//! are not one codeword is marked invalid by anyone's proof, its escrow goes to the
//! reporter's bounty and the burn (never back to the owner), its shards stop being challenged, paid and repaired; an honest blob can never
//! be reported, and every refused report changes nothing but fee and nonce.

use crate::common::*;
use cairn_ledger::TxError;
use cairn_ledger::state::{DealStatus, epoch_cost};
use cairn_proofs::inconsistency::{build, open_leaf};
use cairn_types::proof::{InconsistencyProof, LeafOpening, StripeLeaf};
use cairn_types::tx::{DealRef, ReportInconsistency};
use cairn_types::{Amount, BoundedVec, DealId, Hash, Keypair, TxBody};
use commonware_cryptography::reed_solomon::Encoder;

const LEAF: u32 = 1024;
/// One-leaf pieces, three segments.
const PIECE: u32 = LEAF;
const SEGMENTS: usize = 3;
const DATA_BYTES: usize = SEGMENTS * PIECE as usize;
/// Three segments of pieces, then the trailer: header and 3 piece roots per segment.
const SHARD_BYTES: usize = DATA_BYTES + 16 + 3 * 32 * SEGMENTS;

/// A 2+1 blob laid out as the writer lays one out, whose parity really is the Reed-Solomon
/// parity of its data pieces (the `blob` fixture's shards are independent random bytes).
fn coded_blob(tag: u8) -> Blob {
    let mut b = blob(tag, 2, 1, SHARD_BYTES, LEAF);
    // The code is position-wise, so coding the whole data region codes every piece.
    let mut encoder = Encoder::new(2, 1, DATA_BYTES).unwrap();
    encoder
        .add_original_shard(&b.shards[0][..DATA_BYTES])
        .unwrap();
    encoder
        .add_original_shard(&b.shards[1][..DATA_BYTES])
        .unwrap();
    let parity = encoder.encode().unwrap().recovery(0).unwrap().to_vec();
    b.shards[2][..DATA_BYTES].copy_from_slice(&parity);
    let mut trailer = cairn_proofs::inconsistency::TRAILER_MAGIC.to_vec();
    trailer.extend_from_slice(&[1, 0, 0, 0]);
    trailer.extend_from_slice(&PIECE.to_be_bytes());
    trailer.extend_from_slice(&b.shards[0][16..16 + 3 * 32 * SEGMENTS]);
    for shard in &mut b.shards {
        shard[DATA_BYTES..].copy_from_slice(&trailer);
    }
    recommit(&mut b);
    b
}

/// The opening of shard 0's trailer header leaf (the first leaf after the data).
fn header(b: &Blob) -> (u16, LeafOpening) {
    let at = u64::try_from(DATA_BYTES).unwrap() / u64::from(LEAF);
    (0, open_leaf(&b.shards[0], LEAF, at).unwrap())
}

/// Builds the proof at `leaf` from openings in `order`, if they show an inconsistency.
fn find(b: &Blob, deal: DealId, order: &[u16], leaf: u64) -> Option<InconsistencyProof> {
    build(
        &b.meta,
        deal,
        leaf,
        PIECE,
        &header(b),
        &openings(b, order, leaf),
    )
}

/// Roots and id from the shards as they now are (an uploader commits to what it sends).
fn recommit(b: &mut Blob) {
    let roots: Vec<Hash> = b
        .shards
        .iter()
        .map(|s| cairn_proofs::storage::shard_root(s))
        .collect();
    let m = &mut b.meta;
    m.shard_roots = BoundedVec::new(roots).unwrap();
    m.id = cairn_types::ids::blob_id(
        m.size_bytes,
        m.data_shards,
        m.parity_shards,
        m.shard_size_bytes,
        m.leaf_size_bytes,
        &m.shard_roots.0,
    );
}

/// `coded_blob` with one byte of leaf 1 of `shard` changed and committed to.
fn inconsistent_blob(tag: u8, shard: usize) -> Blob {
    let mut b = coded_blob(tag);
    b.shards[shard][LEAF as usize + 5] ^= 0x21;
    recommit(&mut b);
    b
}

fn openings(b: &Blob, order: &[u16], leaf: u64) -> Vec<(u16, LeafOpening)> {
    order
        .iter()
        .map(|&i| (i, open_leaf(&b.shards[usize::from(i)], LEAF, leaf).unwrap()))
        .collect()
}

fn report(proof: InconsistencyProof) -> TxBody {
    TxBody::ReportInconsistency(ReportInconsistency { proof })
}

/// A hand-made proof from `order` (decode set first, witness last), valid or not.
fn proof_of(b: &Blob, deal: DealId, order: &[u16], leaf: u64) -> InconsistencyProof {
    let (shard_index, opening) = header(b);
    InconsistencyProof {
        deal,
        leaf_index: leaf,
        piece_size_bytes: PIECE,
        header: StripeLeaf {
            shard_index,
            opening,
        },
        leaves: BoundedVec(
            openings(b, order, leaf)
                .into_iter()
                .map(|(shard_index, opening)| StripeLeaf {
                    shard_index,
                    opening,
                })
                .collect(),
        ),
    }
}

fn open_deal(chain: &mut Chain, b: &Blob, keys: &[Keypair], activate_it: bool) -> (DealId, Amount) {
    let price = crn(10_000);
    let escrow = epoch_cost(price, b.meta.size_bytes)
        .unwrap()
        .checked_mul(4)
        .unwrap();
    let deal = DealId(u64::try_from(chain.state().deals.len()).unwrap());
    chain.ok(
        &alice(),
        create_deal(&b.meta, &addresses(keys), 4, price, escrow),
    );
    if activate_it {
        chain.ok(&alice(), activate(deal, &b.meta, keys));
    }
    (deal, escrow)
}

#[test]
fn an_inconsistent_deal_is_invalidated_and_its_escrow_forfeited() {
    let mut chain = Chain::sim(0);
    let three: Vec<Keypair> = (0..3).map(storage).collect();
    let b = inconsistent_blob(31, 2);
    let (deal, escrow) = open_deal(&mut chain, &b, &three, true);
    chain.finish_epoch();
    let epoch = chain.epoch();
    assert!(chain.state().storage_challenges.contains_key(&(deal, 0)));
    let proof = find(&b, deal, &[0, 1, 2], 1).expect("leaf 1 disagrees");
    // Nowhere else: the other leaves are consistent.
    for leaf in [0u64, 2, 3] {
        assert!(find(&b, deal, &[0, 1, 2], leaf).is_none());
    }
    let burned_before = chain.state().supply.burned;
    let bob_before = chain.balance(&bob().address());
    let alice_before = chain.balance(&alice().address());
    let assigned_before: Vec<u64> = three
        .iter()
        .map(|k| chain.state().providers[&k.address()].assigned_storage_bytes)
        .collect();
    let outcome = chain.ok(&bob(), report(proof.clone()));
    let fee = outcome.receipts[0].fee;
    let d = &chain.state().deals[&deal];
    assert_eq!(
        d.status,
        DealStatus::Invalid {
            height: chain.height(),
            reporter: bob().address()
        }
    );
    assert_eq!(d.escrow, Amount::ZERO);
    assert_eq!(d.endowment, Amount::ZERO);
    assert!(d.repair_needed.is_empty());
    let (fee_burn, _) = fee_split(chain.params(), fee);
    // The reporter's bounty; the rest of the escrow is burned, none goes back to the owner.
    let bounty = escrow.bps(chain.params().inconsistency_bounty_bps);
    assert!(!bounty.is_zero());
    assert_eq!(
        chain.balance(&bob().address()),
        bob_before
            .checked_add(bounty)
            .unwrap()
            .checked_sub(fee)
            .unwrap()
    );
    let burned = escrow.checked_sub(bounty).unwrap();
    assert_eq!(
        chain.state().supply.burned,
        burned_before
            .checked_add(burned)
            .unwrap()
            .checked_add(fee_burn)
            .unwrap()
    );
    assert_eq!(chain.state().epochs[&epoch].burned_forfeit, burned);
    assert!(
        !chain
            .state()
            .storage_challenges
            .keys()
            .any(|(id, _)| *id == deal)
    );
    for (k, before) in three.iter().zip(assigned_before) {
        assert_eq!(
            chain.state().providers[&k.address()].assigned_storage_bytes,
            before - b.meta.shard_size_bytes
        );
    }
    chain.state().check_invariants().unwrap();

    // A second report, and the owner's attempts to get the escrow back, are refused.
    let err = reject(&mut chain, &carol(), report(proof));
    assert!(matches!(err, TxError::DealWrongStatus { .. }), "{err:?}");
    let err = reject(&mut chain, &alice(), TxBody::CancelDeal(DealRef { deal }));
    assert!(matches!(err, TxError::DealWrongStatus { .. }), "{err:?}");
    // Nothing is paid or refunded for the rest of the term.
    let provider_balances: Vec<Amount> =
        three.iter().map(|k| chain.balance(&k.address())).collect();
    for _ in 0..5 {
        chain.finish_epoch();
    }
    assert!(chain.balance(&alice().address()) <= alice_before);
    for (k, before) in three.iter().zip(provider_balances) {
        assert_eq!(chain.balance(&k.address()), before);
    }
    assert!(matches!(
        chain.state().deals[&deal].status,
        DealStatus::Invalid { .. }
    ));
    chain.state().check_invariants().unwrap();
}

#[test]
fn a_pending_deal_can_be_reported_so_a_lapsed_certificate_refunds_nothing() {
    let mut chain = Chain::sim(0);
    let three: Vec<Keypair> = (0..3).map(storage).collect();
    // A changed data shard this time, witnessed from a decode set that includes parity.
    let b = inconsistent_blob(32, 0);
    let (deal, _) = open_deal(&mut chain, &b, &three, false);
    let proof = find(&b, deal, &[1, 2, 0], 1).expect("leaf 1 disagrees");
    chain.ok(&dave(), report(proof));
    assert!(matches!(
        chain.state().deals[&deal].status,
        DealStatus::Invalid { .. }
    ));
    let err = reject(&mut chain, &alice(), activate(deal, &b.meta, &three));
    assert!(matches!(err, TxError::DealWrongStatus { .. }), "{err:?}");
    chain.state().check_invariants().unwrap();
}

#[test]
fn an_honest_blob_cannot_be_reported() {
    let mut chain = Chain::sim(0);
    let three: Vec<Keypair> = (0..3).map(storage).collect();
    let honest = coded_blob(33);
    let (deal, escrow) = open_deal(&mut chain, &honest, &three, true);
    for leaf in 0..honest.meta.leaf_count() {
        for order in [[0u16, 1, 2], [2, 1, 0], [0, 2, 1]] {
            assert!(find(&honest, deal, &order, leaf).is_none());
        }
    }
    // Honest leaves: they agree.
    let err = reject(
        &mut chain,
        &bob(),
        report(proof_of(&honest, deal, &[2, 0, 1], 2)),
    );
    assert!(
        matches!(&err, TxError::BadInconsistencyProof { deal: d, detail } if *d == deal && detail.contains("agree")),
        "{err:?}"
    );
    // A real proof against another, inconsistent blob, aimed at this deal: its leaves do
    // not open to this deal's roots.
    let other = inconsistent_blob(33, 2);
    let forged = find(&other, deal, &[0, 1, 2], 1).unwrap();
    let err = reject(&mut chain, &bob(), report(forged));
    assert!(
        matches!(&err, TxError::BadInconsistencyProof { detail, .. } if detail.contains("does not open")),
        "{err:?}"
    );
    // The trailer's stripe is the same bytes in every shard, which is no codeword: it must
    // not be provable, whatever piece size is claimed.
    let trailer = proof_of(&honest, deal, &[0, 1, 2], 3);
    let err = reject(&mut chain, &bob(), report(trailer.clone()));
    assert!(
        matches!(&err, TxError::BadInconsistencyProof { detail, .. } if detail.contains("not a data leaf")),
        "{err:?}"
    );
    let mut claimed = trailer;
    claimed.piece_size_bytes = 2 * PIECE;
    let err = reject(&mut chain, &bob(), report(claimed));
    assert!(
        matches!(err, TxError::BadInconsistencyProof { .. }),
        "{err:?}"
    );
    // Malformed: too few leaves, a leaf past the end, an unknown deal.
    let mut short = proof_of(&honest, deal, &[0, 1, 2], 0);
    short.leaves.0.pop();
    let err = reject(&mut chain, &bob(), report(short));
    assert!(
        matches!(err, TxError::BadInconsistencyProof { .. }),
        "{err:?}"
    );
    let mut past = proof_of(&honest, deal, &[0, 1, 2], 0);
    past.leaf_index = honest.meta.leaf_count();
    let err = reject(&mut chain, &bob(), report(past));
    assert!(
        matches!(err, TxError::BadInconsistencyProof { .. }),
        "{err:?}"
    );
    let mut unknown = proof_of(&honest, deal, &[0, 1, 2], 0);
    unknown.deal = DealId(99);
    let err = reject(&mut chain, &bob(), report(unknown));
    assert_eq!(err, TxError::UnknownDeal { deal: DealId(99) });
    let d = &chain.state().deals[&deal];
    assert_eq!(d.status, DealStatus::Active);
    assert_eq!(d.escrow, escrow);
}
