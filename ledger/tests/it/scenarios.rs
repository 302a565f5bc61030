//! End-to-end ledger scenarios with exact numbers, driven through real signed transactions in
//! real blocks, with valid proofs from the proofs crate:
//! (a) a storage deal from creation through provider-receipted activation, honest proofs and
//!     per-shard payment (minus the take, split burn/treasury) to expiry and refund;
//! (b) a lease from order and bids through settlement, running dry, pausing, top-up and close,
//!     and a lease that the protocol closes when its grace period runs out;
//! (c) faults: warnings, then a slash of bond and every delegation, jail and unjail;
//! (d) rewards shared with delegators by stake, minus commission, as the statement says;
//! (e) compute challenges: honest, wrong and late answers;
//! (f) the supply invariant after every block ([`Chain`] checks it on every block it applies).

use crate::common::*;
use cairn_ledger::state::{
    ComputePhase, DealStatus, LeaseState, OrderStatus, ProviderStatus, RewardStatement, State,
    Verdict, epoch_cost,
};
use cairn_ledger::{BlockOutcome, Params, TxError};
use cairn_types::tx::{
    AcceptBid, CloseLease, CreateDeal, CreateOrder, Delegation, Empty, LeaseRef, LeaseStarted,
    PlaceBid, TopUpLease,
};
use cairn_types::{
    Amount, BoundedVec, CloseInitiator, DealId, Epoch, Hash, Keypair, LeaseId, OrderId, Resources,
    TxBody,
};

fn bal(chain: &Chain, key: &Keypair) -> u128 {
    chain.balance(&key.address()).0
}

fn bps(value: u128, bps: u16) -> u128 {
    value * u128::from(bps) / 10_000
}

/// Applies the last block of the current epoch (empty) and returns the state just before it.
fn end_epoch(chain: &mut Chain) -> (State, BlockOutcome) {
    let end = chain.epoch_end(chain.epoch());
    chain.advance_to(end - 1);
    let before = chain.state().clone();
    let outcome = chain.empty();
    assert_eq!(
        outcome.finished_epoch,
        Some(State::epoch_of(end, chain.epoch_length()))
    );
    (before, outcome)
}

fn statement(chain: &Chain, epoch: Epoch, key: &Keypair) -> RewardStatement {
    chain
        .state()
        .statement(epoch, &key.address())
        .cloned()
        .unwrap_or_else(|| panic!("no statement for epoch {epoch}"))
}

/// The storage pool of `epoch` and a provider's share of it by weight, as design §4 says.
fn storage_share(chain: &Chain, epoch: Epoch, weight: u128, total: u128) -> (u128, u128) {
    let scheduled = chain.state().epochs[&epoch].emission_scheduled.0;
    let pool = bps(scheduled, chain.params().storage_pool_bps);
    (pool, pool * weight / total)
}

/// Take on a gross payment: (take, burned part, treasury part, provider's net).
fn take(params: &Params, gross: u128) -> (u128, u128, u128, u128) {
    let take = bps(gross, params.take_rate_bps);
    let burn = bps(take, params.take_burn_bps);
    (take, burn, take - burn, gross - take)
}

// ---------------------------------------------------------------------------------------
// (a) Storage deals.

#[test]
fn storage_deal_lifecycle() {
    let mut chain = Chain::sim(0);
    let p = chain.params().clone();
    let fee = chain.fee().0;
    let (fee_burn, fee_treasury) = fee_split(&p, chain.fee());
    let providers: Vec<Keypair> = (0..3).map(storage).collect();
    let b = blob(1, 2, 1, 2_000, 1024);
    let price = crn(10_000);

    // price × size / GiB per epoch, rounded up to whole uCRN; split evenly per shard.
    let cost = epoch_cost(price, b.meta.size_bytes).unwrap().0;
    assert_eq!(cost, (price.0 * 4_000).div_ceil(1 << 30));
    assert_eq!(cost, 37_253);
    let share = cost / 3;
    let (cut, cut_burn, cut_treasury, net) = take(&p, share);
    assert_eq!(
        (share, cut, cut_burn, cut_treasury, net),
        (12_417, 620, 310, 310, 11_797)
    );

    let extra = 5_000;
    let escrow = 2 * cost + extra;
    let alice0 = bal(&chain, &alice());
    let provider0: Vec<u128> = providers.iter().map(|k| bal(&chain, k)).collect();
    let deal = DealId(0);

    chain.ok(
        &alice(),
        create_deal(&b.meta, &addresses(&providers), 2, price, Amount(escrow)),
    );
    let d = &chain.state().deals[&deal];
    assert_eq!(
        d.status,
        DealStatus::Pending {
            expires_height: 1 + p.deal_activation_timeout_blocks
        }
    );
    assert_eq!(d.escrow, Amount(escrow));
    assert_eq!(chain.state().blobs[&b.meta.id], vec![deal]);
    assert_eq!(bal(&chain, &alice()), alice0 - fee - escrow);
    for k in &providers {
        assert_eq!(
            chain.state().providers[&k.address()].assigned_storage_bytes,
            2_000
        );
    }

    chain.ok(&alice(), activate(deal, &b.meta, &providers));
    let d = &chain.state().deals[&deal];
    assert_eq!(d.status, DealStatus::Active);
    assert_eq!((d.start_epoch, d.end_epoch), (Some(1), Some(2)));
    assert_eq!(
        chain.state().check_invariants().unwrap().deal_escrow,
        Amount(escrow)
    );

    // Epoch 0 ends: the deal is not paid yet, and its shards are challenged for epoch 1.
    let (_, _) = end_epoch(&mut chain);
    assert_eq!(chain.state().deals[&deal].escrow, Amount(escrow));
    for (i, k) in (0u16..).zip(&providers) {
        let c = &chain.state().storage_challenges[&(deal, i)];
        assert_eq!(
            (c.epoch, c.provider, c.seed, c.deadline, &c.verdict),
            (
                1,
                k.address(),
                Chain::seed_of(20),
                20 + p.storage_proof_deadline_blocks,
                &Verdict::Pending
            )
        );
    }

    let mut escrow_left = escrow;
    for epoch in 1..=2u64 {
        assert_eq!(chain.epoch(), epoch);
        let proofs: Vec<_> = (0u16..3)
            .map(|i| storage_proof(&chain, &b, deal, i))
            .collect();
        chain.run(
            providers
                .iter()
                .zip(proofs)
                .map(|(k, proof)| (k, submit_proofs(epoch, vec![proof])))
                .collect(),
        );
        for i in 0..3 {
            assert_eq!(
                chain.state().storage_challenges[&(deal, i)].verdict,
                Verdict::Passed
            );
        }
        let (before, outcome) = end_epoch(&mut chain);
        let after = chain.state();
        let report = &after.epochs[&epoch];

        // Each shard's provider: its share minus the take, plus its reward (no delegators).
        let weight = u128::from(2_000 * p.demand_weight_bps / 10_000);
        let (pool, reward) = storage_share(&chain, epoch, weight, 3 * weight);
        for k in &providers {
            let st = statement(&chain, epoch, k);
            assert_eq!(
                (st.proofs_passed, st.proofs_failed, st.proofs_missed),
                (1, 0, 0)
            );
            assert_eq!(
                (st.proven_storage_bytes, st.paid_storage_bytes),
                (2_000, 2_000)
            );
            assert_eq!(
                (st.storage_weight, st.storage_pool_weight),
                (weight, 3 * weight)
            );
            assert_eq!(st.storage_pool, Amount(pool));
            assert_eq!(st.fees_earned, Amount(net));
            assert_eq!(st.gross_reward, Amount(reward));
            assert_eq!(st.provider_reward, Amount(reward));
            assert!(!st.warning);
            assert_eq!(
                after.balance(&k.address()).0,
                before.balance(&k.address()).0 + net + reward
            );
        }
        escrow_left -= 3 * share;
        // The take, split as the parameters say, and the revenue booked by source.
        assert_eq!(report.revenue.storage, Amount(3 * share));
        assert_eq!(report.revenue.tx_fees, Amount(3 * fee));
        assert_eq!(report.protocol_take, Amount(3 * cut));
        assert_eq!(report.burned_take, Amount(3 * cut_burn));
        assert_eq!(report.burned_fees, Amount(3 * fee_burn.0));
        let validator_pool = report.emission_scheduled.0
            - pool
            - bps(report.emission_scheduled.0, p.compute_pool_bps);
        let dust = pool - 3 * reward;
        // No compute weight at all: the compute pool is not minted.
        assert_eq!(report.minted, Amount(pool + validator_pool));
        assert_eq!(report.validator_rewards, Amount(validator_pool));
        assert_eq!(
            report.to_treasury,
            Amount(3 * fee_treasury.0 + 3 * cut_treasury + dust)
        );
        assert_eq!(after.supply.burned.0 - before.supply.burned.0, 3 * cut_burn);
        assert_eq!(
            after.treasury.0 - before.treasury.0,
            3 * cut_treasury + dust
        );
        assert_eq!(
            after.supply.minted.0 - before.supply.minted.0,
            pool + validator_pool
        );
        assert!(outcome.receipts.is_empty());
        if epoch == 1 {
            let d = &after.deals[&deal];
            assert_eq!(d.escrow, Amount(escrow_left));
            assert_eq!(d.paid_total, Amount(3 * share));
            assert_eq!(d.status, DealStatus::Active);
        }
    }

    // Epoch 2 was the last paid one: the deal expired and the remainder went back.
    let d = &chain.state().deals[&deal];
    assert_eq!(d.status, DealStatus::Expired);
    assert_eq!(d.escrow, Amount::ZERO);
    assert_eq!(d.paid_total, Amount(6 * share));
    let refund = escrow - 6 * share;
    assert_eq!(refund, extra + 2 * (cost - 3 * share));
    assert_eq!(refund, 5_004);
    assert_eq!(bal(&chain, &alice()), alice0 - 2 * fee - escrow + refund);
    for (k, start) in providers.iter().zip(&provider0) {
        let pr = &chain.state().providers[&k.address()];
        assert_eq!(pr.assigned_storage_bytes, 0);
        assert_eq!(pr.fees_earned_total, Amount(2 * net));
        let rewards: u128 = (1..=2)
            .map(|e| statement(&chain, e, k).provider_reward.0)
            .sum();
        assert_eq!(bal(&chain, k), start - 2 * fee + 2 * net + rewards);
    }
    assert!(
        chain
            .state()
            .storage_challenges
            .keys()
            .all(|(id, _)| *id != deal)
    );
    // Nothing is challenged or paid any more.
    let (before, _) = end_epoch(&mut chain);
    assert_eq!(chain.state().deals[&deal], before.deals[&deal]);
    assert!(
        chain
            .state()
            .statement(3, &providers[0].address())
            .is_none()
    );
}

#[test]
fn permanent_deal_pays_a_declining_share_of_its_endowment() {
    let mut chain = Chain::sim(0);
    let p = chain.params().clone();
    let providers: Vec<Keypair> = (0..3).map(storage).collect();
    let b = blob(2, 2, 1, 2_000, 1024);
    let price = crn(10_000);
    let cost = epoch_cost(price, b.meta.size_bytes).unwrap().0;
    let endowment = cost * u128::from(p.permanent_prepay_epochs);
    let deal = DealId(0);
    chain.ok(
        &alice(),
        TxBody::CreateDeal(CreateDeal {
            blob: b.meta.clone(),
            providers: BoundedVec::new(addresses(&providers)).unwrap(),
            permanent: true,
            epochs: 0,
            price_per_gib_epoch: price,
            escrow: Amount(endowment),
            sealed_key: Default::default(),
        }),
    );
    chain.ok(&alice(), activate(deal, &b.meta, &providers));
    let d = &chain.state().deals[&deal];
    assert_eq!(
        (d.escrow, d.endowment, d.end_epoch),
        (Amount::ZERO, Amount(endowment), None)
    );
    assert_eq!(chain.state().epochs[&0].endowment_funded, Amount(endowment));
    end_epoch(&mut chain);
    let mut left = endowment;
    let mut last_payout = u128::MAX;
    for epoch in 1..=3u64 {
        let proofs: Vec<_> = (0u16..3)
            .map(|i| storage_proof(&chain, &b, deal, i))
            .collect();
        chain.run(
            providers
                .iter()
                .zip(proofs)
                .map(|(k, proof)| (k, submit_proofs(epoch, vec![proof])))
                .collect(),
        );
        end_epoch(&mut chain);
        let share = bps(left, p.endowment_payout_bps) / 3;
        let (_, _, _, net) = take(&p, share);
        left -= 3 * share;
        assert!(3 * share < last_payout, "payments decline");
        last_payout = 3 * share;
        let d = &chain.state().deals[&deal];
        assert_eq!(d.endowment, Amount(left));
        assert_eq!(d.status, DealStatus::Active);
        assert_eq!(
            chain.state().epochs[&epoch].revenue.storage,
            Amount(3 * share)
        );
        assert_eq!(
            statement(&chain, epoch, &providers[0]).fees_earned,
            Amount(net)
        );
    }
}

// ---------------------------------------------------------------------------------------
// (b) Compute leases.

fn resources() -> Resources {
    Resources {
        cpu_millicores: 2_000,
        memory_bytes: 4 * GIB,
        storage_bytes: 10 * GIB,
        gpu_count: 0,
        gpu_vendor: s(""),
        gpu_model: s(""),
        min_vram_mib: 0,
    }
}

fn order(resources: Resources, max_price: u128, deposit: u128, window: u64) -> TxBody {
    TxBody::CreateOrder(CreateOrder {
        manifest_hash: Hash::domain("ledger-it.manifest", &[b"web"]),
        resources,
        max_price_per_block: Amount(max_price),
        deposit: Amount(deposit),
        bid_window_blocks: window,
    })
}

fn place_bid(order: OrderId, price: u128, hardware: cairn_types::Hardware) -> TxBody {
    TxBody::PlaceBid(PlaceBid {
        order,
        price_per_block: Amount(price),
        hardware,
    })
}

fn withdraw(lease: LeaseId) -> TxBody {
    TxBody::WithdrawLease(LeaseRef { lease })
}

fn started(lease: LeaseId) -> TxBody {
    TxBody::LeaseStarted(LeaseStarted { lease })
}

fn accept(order: OrderId, provider: &Keypair) -> TxBody {
    TxBody::AcceptBid(AcceptBid {
        order,
        provider: provider.address(),
    })
}

#[test]
fn lease_lifecycle_with_pause_and_top_up() {
    let mut chain = Chain::sim(0);
    let p = chain.params().clone();
    let fee = chain.fee().0;
    let (tenant, cheap, dear) = (alice(), compute(1), compute(0));
    let (tenant0, cheap0, dear0) = (
        bal(&chain, &tenant),
        bal(&chain, &cheap),
        bal(&chain, &dear),
    );
    let hw = hardware(2_000, 4 * GIB, 10 * GIB, vec![]);
    let price = 8_000u128;
    // 8 000 a block: the 5% take is 400 a block exactly, however settlements group blocks.
    assert_eq!(take(&p, price), (400, 200, 200, 7_600));

    // h1: the order, with a deposit for 10 blocks at 8 000.
    chain.ok(&tenant, order(resources(), 10_000, 80_000, 3));
    let id = OrderId(0);
    assert_eq!(bal(&chain, &tenant), tenant0 - fee - 80_000);
    // h2: two bids, each carrying its exact hardware and the provider's proven rate.
    chain.run(vec![
        (&dear, place_bid(id, 9_000, hw.clone())),
        (&cheap, place_bid(id, price, hw.clone())),
    ]);
    let o = &chain.state().orders[&id];
    assert_eq!(o.bids.len(), 2);
    for (k, pr) in [(&dear, 9_000), (&cheap, price)] {
        let bid = &o.bids[&k.address()];
        assert_eq!(bid.price_per_block, Amount(pr));
        assert_eq!(bid.hardware, hw);
        assert_eq!(bid.proven_int8_ops, 0);
        assert_eq!(bid.placed_height, 2);
    }
    let best = o
        .bids
        .values()
        .min_by_key(|b| b.price_per_block)
        .unwrap()
        .provider;
    assert_eq!(best, cheap.address());

    // h5: accept the cheapest once bidding closed; its provider reports the workload
    // running in the same block, so billing starts with block 6.
    let bid_deadline = o.bid_deadline;
    chain.advance_to(bid_deadline);
    let lease = LeaseId(0);
    chain.run(vec![
        (
            &tenant,
            TxBody::AcceptBid(AcceptBid {
                order: id,
                provider: best,
            }),
        ),
        (&cheap, started(lease)),
    ]);
    let l = &chain.state().leases[&lease];
    assert_eq!(chain.height(), 5);
    assert_eq!(l.started_height, Some(5));
    assert_eq!(
        (l.tenant, l.provider, l.price_per_block),
        (tenant.address(), best, Amount(price))
    );
    assert_eq!(
        (l.escrow, l.settled_through, &l.state),
        (Amount(80_000), 5, &LeaseState::Active)
    );
    assert_eq!(l.hardware, hw);
    assert_eq!(
        chain.state().orders[&id].status,
        OrderStatus::Matched { lease }
    );
    assert_eq!(chain.state().orders[&id].deposit, Amount::ZERO);
    let pr = &chain.state().providers[&best];
    assert_eq!(
        (pr.committed.cpu_millicores, pr.committed.memory_bytes),
        (2_000, 4 * GIB)
    );
    assert_eq!(
        (pr.committed.storage_bytes, pr.active_leases),
        (10 * GIB, 1)
    );

    // h9: the provider settles blocks 6..=9.
    chain.advance_to(8);
    chain.ok(&cheap, withdraw(lease));
    let l = &chain.state().leases[&lease];
    assert_eq!(
        (l.escrow, l.settled_through, l.paid_total),
        (Amount(48_000), 9, Amount(32_000))
    );
    assert_eq!(bal(&chain, &cheap), cheap0 - 3 * fee + 4 * 7_600);

    // h18: escrow covered blocks 10..=15 only; the lease paused at 15.
    chain.advance_to(17);
    chain.ok(&cheap, withdraw(lease));
    let l = &chain.state().leases[&lease];
    assert_eq!(l.state, LeaseState::Paused { since: 15 });
    assert_eq!(
        (l.escrow, l.settled_through, l.paid_total),
        (Amount::ZERO, 15, Amount(80_000))
    );
    assert_eq!(bal(&chain, &cheap), cheap0 - 4 * fee + 10 * 7_600);
    // Settling again pays nothing: settlement is idempotent.
    chain.ok(&cheap, withdraw(lease));
    assert_eq!(bal(&chain, &cheap), cheap0 - 5 * fee + 10 * 7_600);
    // The epoch sweep at h20 leaves a paused lease within its grace alone.
    let before = chain.state().leases[&lease].clone();
    end_epoch(&mut chain);
    assert_eq!(chain.state().leases[&lease], before);
    let r0 = &chain.state().epochs[&0];
    assert_eq!(r0.revenue.compute, Amount(80_000));
    assert_eq!(
        (r0.protocol_take, r0.burned_take),
        (Amount(4_000), Amount(2_000))
    );

    // h22: a top-up resumes the lease; the paused blocks 16..=22 are not charged.
    chain.advance_to(21);
    chain.ok(
        &tenant,
        TxBody::TopUpLease(TopUpLease {
            lease,
            amount: Amount(40_000),
        }),
    );
    let l = &chain.state().leases[&lease];
    assert_eq!(
        (l.escrow, l.settled_through, &l.state),
        (Amount(40_000), 22, &LeaseState::Active)
    );
    assert_eq!(l.paid_total, Amount(80_000));
    assert_eq!(bal(&chain, &cheap), cheap0 - 5 * fee + 10 * 7_600);

    // h25: three more blocks.
    chain.advance_to(24);
    chain.ok(&cheap, withdraw(lease));
    assert_eq!(chain.state().leases[&lease].escrow, Amount(16_000));
    assert_eq!(bal(&chain, &cheap), cheap0 - 6 * fee + 13 * 7_600);

    // h26: the tenant closes: block 26 is paid, the rest of the escrow comes back.
    let reason = "workload finished";
    chain.ok(
        &tenant,
        TxBody::CloseLease(CloseLease {
            lease,
            reason: s(reason),
        }),
    );
    let l = &chain.state().leases[&lease];
    assert_eq!(
        l.state,
        LeaseState::Closed {
            at: 26,
            initiator: CloseInitiator::Tenant,
            reason: reason.to_string(),
        }
    );
    assert_eq!(
        (l.escrow, l.settled_through, l.paid_total),
        (Amount::ZERO, 26, Amount(14 * price))
    );
    let pr = &chain.state().providers[&best];
    assert_eq!(pr.committed, Default::default());
    assert_eq!(pr.active_leases, 0);
    assert_eq!(pr.fees_earned_total, Amount(14 * 7_600));

    // 14 blocks ran: the tenant paid exactly 14 × price, the provider got it minus the take.
    assert_eq!(bal(&chain, &tenant), tenant0 - 4 * fee - 14 * price);
    assert_eq!(bal(&chain, &cheap), cheap0 - 6 * fee + 14 * (price - 400));
    assert_eq!(bal(&chain, &dear), dear0 - fee);
    let r1 = &chain.state().epochs[&1];
    assert_eq!(r1.revenue.compute, Amount(4 * price));
    assert_eq!(
        (r1.protocol_take, r1.burned_take),
        (Amount(1_600), Amount(800))
    );
}

#[test]
fn lease_closes_by_protocol_after_grace() {
    let mut chain = Chain::sim(0);
    let p = chain.params().clone();
    assert_eq!(p.lease_grace_blocks, 10);
    let fee = chain.fee().0;
    let (tenant, provider) = (alice(), compute(1));
    let (tenant0, provider0) = (bal(&chain, &tenant), bal(&chain, &provider));
    // h1 order: 5 blocks of deposit at 8 000; h2 bid; h3 accept.
    chain.ok(&tenant, order(resources(), 8_000, 40_000, 1));
    let hw = hardware(2_000, 4 * GIB, 10 * GIB, vec![]);
    chain.ok(&provider, place_bid(OrderId(0), 8_000, hw));
    let lease = LeaseId(0);
    chain.run(vec![
        (
            &tenant,
            TxBody::AcceptBid(AcceptBid {
                order: OrderId(0),
                provider: provider.address(),
            }),
        ),
        (&provider, started(lease)),
    ]);
    // Escrow covers blocks 4..=8; the grace runs through height 18. Nobody settles until
    // then, and at height 19 a top-up comes too late.
    chain.advance_to(18);
    assert_eq!(chain.state().leases[&lease].state, LeaseState::Active);
    let e = reject(
        &mut chain,
        &tenant,
        TxBody::TopUpLease(TopUpLease {
            lease,
            amount: Amount(40_000),
        }),
    );
    assert!(
        matches!(e, TxError::LeaseClosed { lease: l } if l == lease),
        "{e:?}"
    );
    // The epoch sweep at height 20 settles the five paid blocks and closes the lease.
    end_epoch(&mut chain);
    let l = &chain.state().leases[&lease];
    let LeaseState::Closed {
        at,
        initiator,
        reason,
    } = &l.state
    else {
        panic!("lease not closed: {:?}", l.state);
    };
    assert_eq!((*at, *initiator), (20, CloseInitiator::Protocol));
    assert_eq!(
        reason,
        &format!(
            "escrow exhausted at height 8; not topped up within {} blocks",
            p.lease_grace_blocks
        )
    );
    assert_eq!(
        (l.escrow, l.settled_through, l.paid_total),
        (Amount::ZERO, 8, Amount(40_000))
    );
    assert_eq!(
        chain.state().providers[&provider.address()].active_leases,
        0
    );
    assert_eq!(bal(&chain, &tenant), tenant0 - 2 * fee - ODD_FEE.0 - 40_000);
    assert_eq!(bal(&chain, &provider), provider0 - 2 * fee + 5 * 7_600);
}

#[test]
fn provider_close_records_its_reason() {
    let mut chain = Chain::sim(0);
    let provider = compute(0);
    chain.ok(&alice(), order(resources(), 10_000, 100_000, 1));
    let hw = hardware(2_000, 4 * GIB, 10 * GIB, vec![]);
    chain.ok(&provider, place_bid(OrderId(0), 10_000, hw));
    chain.run(vec![
        (
            &alice(),
            TxBody::AcceptBid(AcceptBid {
                order: OrderId(0),
                provider: provider.address(),
            }),
        ),
        (&provider, started(LeaseId(0))),
    ]);
    let alice_before = bal(&chain, &alice());
    chain.advance_to(5);
    chain.ok(
        &provider,
        TxBody::CloseLease(CloseLease {
            lease: LeaseId(0),
            reason: s("maintenance window"),
        }),
    );
    let l = &chain.state().leases[&LeaseId(0)];
    assert_eq!(
        l.state,
        LeaseState::Closed {
            at: 6,
            initiator: CloseInitiator::Provider,
            reason: "maintenance window".to_string(),
        }
    );
    // Blocks 4..=6 were paid; the other 7 blocks of deposit went back to the tenant.
    assert_eq!(l.paid_total, Amount(30_000));
    assert_eq!(bal(&chain, &alice()), alice_before + 70_000);
}

/// Order, bid and acceptance of one lease of compute provider 1 at `price` a block, with
/// `deposit_blocks` of deposit; returns the lease and the acceptance height.
fn accepted_lease(chain: &mut Chain, price: u128, deposit_blocks: u128) -> (LeaseId, u64) {
    let order_id = OrderId(chain.state().counters.order);
    chain.ok(
        &alice(),
        order(resources(), price, price * deposit_blocks, 1),
    );
    let hw = hardware(2_000, 4 * GIB, 10 * GIB, vec![]);
    chain.ok(&compute(1), place_bid(order_id, price, hw));
    chain.ok(&alice(), accept(order_id, &compute(1)));
    let lease = LeaseId(chain.state().counters.lease - 1);
    (lease, chain.height())
}

#[test]
fn a_lease_never_reported_started_is_never_billed_and_closes_with_a_full_refund() {
    let mut chain = Chain::sim(0);
    let p = chain.params().clone();
    let fee = chain.fee().0;
    let (tenant0, provider0) = (bal(&chain, &alice()), bal(&chain, &compute(1)));
    let price = 8_000u128;
    // h1 order (10 blocks of deposit), h2 bid, h3 accept.
    let (lease, accepted) = accepted_lease(&mut chain, price, 10);
    let deadline = accepted + p.lease_start_timeout_blocks;
    let l = &chain.state().leases[&lease];
    assert_eq!(l.state, LeaseState::Starting { deadline });
    assert_eq!((l.started_height, l.escrow), (None, Amount(10 * price)));
    let pr = &chain.state().providers[&compute(1).address()];
    assert_eq!(
        (pr.committed.cpu_millicores, pr.active_leases),
        (2_000, 1),
        "a starting lease holds its capacity"
    );
    // A provider withdrawing before the start gets nothing; a tenant top-up is kept.
    chain.advance_to(deadline - 2);
    chain.ok(&compute(1), withdraw(lease));
    chain.ok(
        &alice(),
        TxBody::TopUpLease(TopUpLease {
            lease,
            amount: Amount(price),
        }),
    );
    let l = &chain.state().leases[&lease];
    assert_eq!((l.paid_total, l.settled_through), (Amount::ZERO, accepted));
    assert_eq!(l.escrow, Amount(11 * price));
    assert_eq!(l.state, LeaseState::Starting { deadline });
    // Past the deadline the start is refused and the projection says it must close.
    chain.advance_to(deadline);
    let e = reject(&mut chain, &compute(1), started(lease));
    assert!(
        matches!(e, TxError::DeadlinePassed { deadline: d, .. } if d == deadline),
        "{e:?}"
    );
    let s = cairn_ledger::compute::project_settlement(
        &chain.state().leases[&lease],
        chain.next_height(),
        p.lease_grace_blocks,
    );
    assert_eq!(s.pay, Amount::ZERO);
    assert_eq!(
        s.outcome,
        cairn_ledger::compute::SettledState::StartTimedOut { deadline }
    );
    // The epoch sweep at height 20 closes it for the protocol, refunding every uCRN.
    end_epoch(&mut chain);
    let l = &chain.state().leases[&lease];
    let LeaseState::Closed {
        at,
        initiator,
        reason,
    } = &l.state
    else {
        panic!("lease not closed: {:?}", l.state);
    };
    assert_eq!((*at, *initiator), (20, CloseInitiator::Protocol));
    assert_eq!(
        reason,
        &format!(
            "the provider did not report the workload started within {} blocks (by height {deadline})",
            p.lease_start_timeout_blocks
        )
    );
    assert_eq!(
        (l.escrow, l.paid_total, l.started_height),
        (Amount::ZERO, Amount::ZERO, None)
    );
    let pr = &chain.state().providers[&compute(1).address()];
    assert_eq!(
        (pr.committed.clone(), pr.active_leases),
        (Default::default(), 0)
    );
    assert_eq!(chain.state().epochs[&0].revenue.compute, Amount::ZERO);
    // The tenant paid its three fees (order, accept, top-up) and nothing else; the provider
    // its fees (bid, withdraw, and the refused start's odd one) and earned nothing.
    assert_eq!(bal(&chain, &alice()), tenant0 - 3 * fee);
    assert_eq!(bal(&chain, &compute(1)), provider0 - 2 * fee - ODD_FEE.0);
}

#[test]
fn billing_begins_with_the_block_after_the_reported_start() {
    let mut chain = Chain::sim(0);
    let fee = chain.fee().0;
    let (tenant0, provider0) = (bal(&chain, &alice()), bal(&chain, &compute(1)));
    let price = 8_000u128;
    let (lease, accepted) = accepted_lease(&mut chain, price, 10);
    assert_eq!(accepted, 3);
    // Blocks 4..=6 pass unbilled while the workload starts; the start lands at height 7.
    chain.advance_to(6);
    chain.ok(&compute(1), started(lease));
    let l = &chain.state().leases[&lease];
    assert_eq!(
        (&l.state, l.started_height, l.settled_through),
        (&LeaseState::Active, Some(7), 7)
    );
    assert_eq!(l.paid_total, Amount::ZERO);
    // Reporting again is refused: it could move the billing start.
    let e = reject(&mut chain, &compute(1), started(lease));
    assert!(
        matches!(&e, TxError::LeaseNotStarting { lease: l, state } if *l == lease && state == "active"),
        "{e:?}"
    );
    // At height 11 the provider settles: blocks 8..=11, four blocks.
    chain.advance_to(10);
    chain.ok(&compute(1), withdraw(lease));
    let l = &chain.state().leases[&lease];
    assert_eq!(
        (l.paid_total, l.settled_through, l.escrow),
        (Amount(4 * price), 11, Amount(6 * price))
    );
    // The tenant closes at height 12: block 12 is paid, the other five blocks come back.
    chain.ok(&alice(), close_lease(lease, "done"));
    let l = &chain.state().leases[&lease];
    assert_eq!(l.paid_total, Amount(5 * price));
    assert_eq!(bal(&chain, &alice()), tenant0 - 3 * fee - 5 * price);
    // 5 blocks less the 5% take (400 a block), less the fees of bid, start, withdraw and the
    // refused second start.
    assert_eq!(
        bal(&chain, &compute(1)),
        provider0 - 3 * fee - ODD_FEE.0 + 5 * (price - 400)
    );
}

#[test]
fn a_provider_that_cannot_start_the_workload_closes_the_lease_at_no_cost_to_the_tenant() {
    let mut chain = Chain::sim(0);
    let fee = chain.fee().0;
    let tenant0 = bal(&chain, &alice());
    let (lease, _) = accepted_lease(&mut chain, 8_000, 10);
    chain.advance_to(5);
    let reason =
        "workload failed to start: image busybox:nope is not on this provider's Docker Engine";
    chain.ok(&compute(1), close_lease(lease, reason));
    let l = &chain.state().leases[&lease];
    assert_eq!(
        l.state,
        LeaseState::Closed {
            at: 6,
            initiator: CloseInitiator::Provider,
            reason: reason.to_string(),
        }
    );
    assert_eq!(
        (l.paid_total, l.escrow, l.started_height),
        (Amount::ZERO, Amount::ZERO, None)
    );
    // Only the order's and the acceptance's fees.
    assert_eq!(bal(&chain, &alice()), tenant0 - 2 * fee);
    let e = reject(&mut chain, &compute(1), started(lease));
    assert!(
        matches!(e, TxError::LeaseClosed { lease: l } if l == lease),
        "{e:?}"
    );
}

fn close_lease(lease: LeaseId, reason: &str) -> TxBody {
    TxBody::CloseLease(CloseLease {
        lease,
        reason: s(reason),
    })
}

// ---------------------------------------------------------------------------------------
// (c) Faults.

fn fault_params() -> Params {
    Params {
        warnings_before_slash: 2,
        slash_bps: 500,
        jail_epochs: 1,
        ..cairn_ledger::sim::sim_params()
    }
}

fn delegate(provider: &Keypair, amount: Amount) -> TxBody {
    TxBody::Delegate(Delegation {
        provider: provider.address(),
        amount,
    })
}

/// Proofs for the current epoch from the given shard holders of `deal`.
fn prove(chain: &mut Chain, b: &Blob, deal: DealId, holders: &[(u16, Keypair)]) {
    let epoch = chain.epoch();
    let list: Vec<(&Keypair, TxBody)> = holders
        .iter()
        .map(|(i, k)| {
            (
                k,
                submit_proofs(epoch, vec![storage_proof(chain, b, deal, *i)]),
            )
        })
        .collect();
    chain.run(list);
}

#[test]
fn missed_storage_proofs_warn_then_slash_then_jail() {
    let mut chain = Chain::with_params(fault_params(), 0);
    let p = chain.params().clone();
    let (s0, s1, s2) = (storage(0), storage(1), storage(2));
    let flaky = s2.address();
    chain.run(vec![
        (&dave(), delegate(&s2, crn(200))),
        (&erin(), delegate(&s2, crn(100))),
    ]);
    assert_eq!(chain.state().providers[&flaky].delegated, crn(300));

    let b = blob(3, 2, 1, 2_000, 1024);
    let price = crn(10_000);
    let cost = epoch_cost(price, b.meta.size_bytes).unwrap().0;
    let deal = DealId(0);
    let three = vec![s0.clone(), s1.clone(), s2.clone()];
    chain.ok(
        &alice(),
        create_deal(&b.meta, &addresses(&three), 3, price, Amount(3 * cost)),
    );
    chain.ok(&alice(), activate(deal, &b.meta, &three));
    end_epoch(&mut chain);
    let alice_before_expiry = bal(&chain, &alice());

    let honest = [(0u16, s0.clone()), (1u16, s1.clone())];
    for epoch in 1..=3u64 {
        prove(&mut chain, &b, deal, &honest);
        let (before, _) = end_epoch(&mut chain);
        let st = statement(&chain, epoch, &s2);
        assert_eq!((st.proofs_passed, st.proofs_missed), (0, 1));
        assert_eq!(st.fees_earned, Amount::ZERO);
        assert_eq!(
            chain
                .state()
                .storage_challenges
                .get(&(deal, 2))
                .map(|c| c.epoch),
            (epoch < 3).then_some(epoch + 1)
        );
        let pr = &chain.state().providers[&flaky];
        assert_eq!(pr.consecutive_faulty_epochs, u32::try_from(epoch).unwrap());
        assert_eq!(pr.total_faults, epoch);
        assert!(chain.state().deals[&deal].repair_needed.contains(&2));
        if epoch <= u64::from(p.warnings_before_slash) {
            // A warning: recorded, nothing taken.
            assert!(st.warning, "epoch {epoch}");
            assert_eq!(st.slashed, Amount::ZERO);
            assert_eq!(pr.status, ProviderStatus::Active);
            assert_eq!(pr.self_bond, crn(PROVIDER_BOND));
            assert_eq!(pr.delegated, crn(300));
            assert_eq!(chain.state().epochs[&epoch].slashed, Amount::ZERO);
        } else {
            // The slash: slash_bps of the self-bond and of each delegation, burned; jailed.
            let from_bond = bps(crn(PROVIDER_BOND).0, p.slash_bps);
            let from_dave = bps(crn(200).0, p.slash_bps);
            let from_erin = bps(crn(100).0, p.slash_bps);
            assert_eq!(
                (from_bond, from_dave, from_erin),
                (crn(50).0, crn(10).0, crn(5).0)
            );
            let total = from_bond + from_dave + from_erin;
            assert!(!st.warning);
            assert_eq!(st.slashed, Amount(total));
            assert_eq!(pr.self_bond, crn(950));
            assert_eq!(pr.delegated, crn(285));
            assert_eq!(
                chain.state().delegations[&(flaky, dave().address())],
                crn(190)
            );
            assert_eq!(
                chain.state().delegations[&(flaky, erin().address())],
                crn(95)
            );
            assert_eq!(pr.total_slashed, Amount(total));
            assert_eq!(pr.history.back().unwrap().slashed, Amount(total));
            let until = epoch + 1 + p.jail_epochs;
            assert_eq!(pr.status, ProviderStatus::Jailed { until_epoch: until });
            let report = &chain.state().epochs[&epoch];
            assert_eq!(
                (report.slashed, report.burned_slash),
                (Amount(total), Amount(total))
            );
            let (_, cut_burn, _, _) = take(&p, cost / 3);
            assert_eq!(
                chain.state().supply.burned.0 - before.supply.burned.0,
                total + 2 * cut_burn
            );
        }
        // The honest holders are paid; the missed shard is not.
        assert_eq!(
            chain.state().epochs[&epoch].revenue.storage,
            Amount(2 * (cost / 3))
        );
    }
    // The deal ended with epoch 3: the unpaid shard's money went back to the owner.
    assert_eq!(chain.state().deals[&deal].status, DealStatus::Expired);
    assert_eq!(
        bal(&chain, &alice()),
        alice_before_expiry + 3 * cost - 6 * (cost / 3)
    );

    // Epoch 4: still jailed.
    assert_eq!(chain.epoch(), 4);
    let e = reject(&mut chain, &s2, TxBody::Unjail(Empty {}));
    assert!(
        matches!(e, TxError::StillJailed { until_epoch: 5 }),
        "{e:?}"
    );
    let e = reject(&mut chain, &carol(), delegate(&s2, crn(10)));
    assert!(
        matches!(&e, TxError::ProviderNotActive { status, .. } if status == "jailed"),
        "{e:?}"
    );
    // Epoch 5: the jail is over.
    chain.advance_to(chain.epoch_end(4));
    chain.ok(&s2, TxBody::Unjail(Empty {}));
    let pr = &chain.state().providers[&flaky];
    assert_eq!(pr.status, ProviderStatus::Active);
    assert_eq!(pr.self_bond, crn(950));
    chain.ok(&carol(), delegate(&s2, crn(10)));
}

#[test]
fn warnings_come_again_after_a_clean_stretch() {
    // warnings_before_slash = 1: one warning, then a slash. A provider that faults once,
    // then has nothing to prove for an epoch, then faults once more has faulted in two
    // epochs that are not consecutive: it is warned again, not slashed.
    let params = Params {
        warnings_before_slash: 1,
        ..fault_params()
    };
    let mut chain = Chain::with_params(params, 0);
    let (s0, s1, s2) = (storage(0), storage(1), storage(2));
    let three = vec![s0.clone(), s1.clone(), s2.clone()];
    let price = crn(10_000);
    let honest = [(0u16, s0.clone()), (1u16, s1.clone())];

    let first = blob(4, 2, 1, 2_000, 1024);
    let cost = epoch_cost(price, first.meta.size_bytes).unwrap().0;
    chain.ok(
        &alice(),
        create_deal(&first.meta, &addresses(&three), 1, price, Amount(cost)),
    );
    chain.ok(&alice(), activate(DealId(0), &first.meta, &three));
    end_epoch(&mut chain);
    // Epoch 1: storage provider 2 misses; the deal ends.
    prove(&mut chain, &first, DealId(0), &honest);
    end_epoch(&mut chain);
    assert!(statement(&chain, 1, &s2).warning);
    // Epoch 2: a new deal, nothing to prove yet (it starts in epoch 3).
    let second = blob(5, 2, 1, 2_000, 1024);
    chain.ok(
        &alice(),
        create_deal(&second.meta, &addresses(&three), 1, price, Amount(cost)),
    );
    chain.ok(&alice(), activate(DealId(1), &second.meta, &three));
    end_epoch(&mut chain);
    assert!(chain.state().statement(2, &s2.address()).is_none());
    assert_eq!(
        chain.state().providers[&s2.address()].consecutive_faulty_epochs,
        0
    );
    // Epoch 3: misses again: a warning, not a slash.
    prove(&mut chain, &second, DealId(1), &honest);
    end_epoch(&mut chain);
    let st = statement(&chain, 3, &s2);
    assert_eq!(st.proofs_missed, 1);
    assert!(st.warning);
    assert_eq!(st.slashed, Amount::ZERO);
    assert_eq!(
        chain.state().providers[&s2.address()].status,
        ProviderStatus::Active
    );
}

#[test]
fn corrupted_storage_proofs_fail_then_slash() {
    // Sim parameters: one warning, then a slash of 5% and a one-epoch jail.
    let mut chain = Chain::sim(0);
    let p = chain.params().clone();
    assert_eq!(
        (p.warnings_before_slash, p.slash_bps, p.jail_epochs),
        (1, 500, 1)
    );
    let three: Vec<Keypair> = (0..3).map(storage).collect();
    let b = blob(8, 2, 1, 2_000, 1024);
    let price = crn(10_000);
    let cost = epoch_cost(price, b.meta.size_bytes).unwrap().0;
    chain.ok(
        &alice(),
        create_deal(&b.meta, &addresses(&three), 2, price, Amount(2 * cost)),
    );
    chain.ok(&alice(), activate(DealId(0), &b.meta, &three));
    end_epoch(&mut chain);
    let corrupter = three[2].address();
    for epoch in 1..=2u64 {
        let mut bad = storage_proof(&chain, &b, DealId(0), 2);
        bad.leaves.0[0].data.0[0] ^= 0x01;
        let honest = [(0u16, three[0].clone()), (1u16, three[1].clone())];
        prove(&mut chain, &b, DealId(0), &honest);
        // A wrong answer is not a rejected transaction: it is a recorded failed verdict.
        let receipt = chain.exec(&three[2], submit_proofs(epoch, vec![bad]));
        assert!(receipt.ok(), "{:?}", receipt.error);
        let Verdict::Failed { detail } = &chain.state().storage_challenges[&(DealId(0), 2)].verdict
        else {
            panic!("corrupted proof passed");
        };
        assert!(detail.contains("does not open"), "{detail}");
        end_epoch(&mut chain);
        let st = statement(&chain, epoch, &three[2]);
        assert_eq!((st.proofs_failed, st.proofs_missed), (1, 0));
        assert_eq!(st.fees_earned, Amount::ZERO);
        let pr = &chain.state().providers[&corrupter];
        if epoch == 1 {
            assert!(st.warning);
            assert_eq!(st.slashed, Amount::ZERO);
            assert_eq!(pr.status, ProviderStatus::Active);
        } else {
            let lost = bps(crn(PROVIDER_BOND).0, p.slash_bps);
            assert!(!st.warning);
            assert_eq!(st.slashed, Amount(lost));
            assert_eq!(pr.self_bond, Amount(crn(PROVIDER_BOND).0 - lost));
            assert_eq!(pr.status, ProviderStatus::Jailed { until_epoch: 4 });
        }
    }
}

// ---------------------------------------------------------------------------------------
// (d) Rewards and delegation.

#[test]
fn delegators_share_rewards_by_stake_minus_commission() {
    let mut chain = Chain::sim(0);
    let p = chain.params().clone();
    let (s0, s1) = (storage(0), storage(1));
    chain.run(vec![
        (&dave(), delegate(&s0, crn(500))),
        (&erin(), delegate(&s0, crn(250))),
    ]);
    // One data shard and one parity shard: both holders must receipt it.
    let b = blob(6, 1, 1, 1_000, 1024);
    let price = crn(10_000);
    let cost = epoch_cost(price, b.meta.size_bytes).unwrap().0;
    assert_eq!(cost, 9_314);
    let pair = vec![s0.clone(), s1.clone()];
    chain.ok(
        &alice(),
        create_deal(&b.meta, &addresses(&pair), 1, price, Amount(cost)),
    );
    chain.ok(&alice(), activate(DealId(0), &b.meta, &pair));
    end_epoch(&mut chain);
    prove(
        &mut chain,
        &b,
        DealId(0),
        &[(0, s0.clone()), (1, s1.clone())],
    );
    let (before, _) = end_epoch(&mut chain);
    let after = chain.state();
    let delta = |k: &Keypair| after.balance(&k.address()).0 - before.balance(&k.address()).0;

    // Equal proven paid bytes, so equal halves of the storage pool.
    let weight = u128::from(1_000 * p.demand_weight_bps / 10_000);
    let (pool, gross) = storage_share(&chain, 1, weight, 2 * weight);
    assert_eq!((pool, gross), (4_477_500_000, 2_238_750_000));
    // Provider 0: stake 1 000 bonded + 750 delegated; delegators' part is 750/1 750 of the
    // reward, less 10% commission, shared 500:250.
    let stake = crn(PROVIDER_BOND + 750).0;
    let delegators_gross = gross * crn(750).0 / stake;
    let commission = bps(delegators_gross, COMMISSION_BPS);
    let pot = delegators_gross - commission;
    let to_dave = pot * crn(500).0 / crn(750).0;
    let to_erin = pot * crn(250).0 / crn(750).0;
    let own = gross - to_dave - to_erin;
    assert_eq!(
        (delegators_gross, commission, to_dave, to_erin, own),
        (
            959_464_285,
            95_946_428,
            575_678_571,
            287_839_285,
            1_375_232_144
        )
    );
    let st = statement(&chain, 1, &s0);
    assert_eq!(st.gross_reward, Amount(gross));
    assert_eq!(st.commission, Amount(commission));
    assert_eq!(st.delegator_rewards, Amount(to_dave + to_erin));
    assert_eq!(st.provider_reward, Amount(own));
    assert_eq!(
        (st.storage_weight, st.storage_pool_weight),
        (weight, 2 * weight)
    );
    assert_eq!(st.storage_pool, Amount(pool));
    assert_eq!(delta(&dave()), to_dave);
    assert_eq!(delta(&erin()), to_erin);
    let (_, _, _, net) = take(&p, cost / 2);
    assert_eq!(net, 4_425);
    assert_eq!(st.fees_earned, Amount(net));
    assert_eq!(delta(&s0), own + net);
    assert_eq!(after.providers[&s0.address()].rewards_total, Amount(own));
    // Provider 1 has no delegators: it keeps its whole reward.
    let st1 = statement(&chain, 1, &s1);
    assert_eq!(
        (st1.gross_reward, st1.commission),
        (Amount(gross), Amount::ZERO)
    );
    assert_eq!(
        (st1.delegator_rewards, st1.provider_reward),
        (Amount::ZERO, Amount(gross))
    );
    assert_eq!(delta(&s1), gross + net);
    let report = &after.epochs[&1];
    assert_eq!(report.delegator_rewards, Amount(to_dave + to_erin));
    assert_eq!(report.storage_rewards, Amount(2 * gross));
    // Delegations themselves are untouched by rewards.
    assert_eq!(
        after.delegations[&(s0.address(), dave().address())],
        crn(500)
    );
}

// ---------------------------------------------------------------------------------------
// (e) Compute challenges.

#[test]
fn compute_challenges_honest_wrong_and_late() {
    let mut chain = Chain::sim(4);
    let p = chain.params().clone();
    let (honest, wrong, late, slow) = (prover(0), prover(1), prover(2), prover(3));
    let c0 = challenge_of(&chain, &honest.address(), 0);
    let c1 = challenge_of(&chain, &wrong.address(), 0);
    let c2 = challenge_of(&chain, &late.address(), 0);
    let c3 = challenge_of(&chain, &slow.address(), 0);
    let shape =
        cairn_proofs::compute::shape_for(PROVER_CLAIM, p.compute_challenge_ms, p.max_gemm_dim);
    assert_eq!((c0.m, c0.k, c0.n), (shape.m, shape.k, shape.n));
    assert_eq!((shape.m, shape.k, shape.n), (64, 128, 64));
    assert_eq!(
        (c0.issued_height, c0.issued_timestamp_ms),
        (0, GENESIS_TIME_MS)
    );
    assert_eq!(c0.commit_deadline, p.compute_commit_deadline_blocks);

    // h1: the wrong prover commits to a product with every entry off by one.
    let (_, product1) = honest_product(&c1);
    let bad: Vec<i32> = product1.iter().map(|v| v.wrapping_add(1)).collect();
    let bad_tree = cairn_proofs::compute::commit(&bad);
    chain.ok(&wrong, commit(c1.id, bad_tree.root()));
    // h3: the honest prover commits, three seconds after the challenge was issued.
    let (tree0, product0) = honest_product(&c0);
    chain.advance_to(2);
    chain.ok(&honest, commit(c0.id, tree0.root()));
    // h4: both open.
    let open0 = open(&chain, c0.id, &tree0, &product0);
    let open1 = open(&chain, c1.id, &bad_tree, &bad);
    chain.run(vec![(&honest, open0), (&wrong, open1)]);
    let ops = shape.ops();
    assert_eq!(ops, 1_048_576);
    // Three seconds less the two-block latency allowance: the work took one second, at
    // slightly above the claim, so the proven rate is the claim.
    assert_eq!(p.compute_latency_allowance_blocks * p.block_time_ms, 2_000);
    let rate = PROVER_CLAIM;
    assert!(ops * 1_000 / 1_000 > u128::from(rate));
    assert_eq!(
        chain.state().compute_challenges[&c0.id].phase,
        ComputePhase::Passed {
            proven_int8_ops: rate
        }
    );
    let ComputePhase::Failed { detail } = &chain.state().compute_challenges[&c1.id].phase else {
        panic!("wrong opening passed");
    };
    assert!(detail.contains("A·B gives"), "{detail}");
    // h5: the slow prover commits a right product at its deadline: (5 s − 2 s) measured for
    // one second of claimed work is a third of the claim, below the 80% floor.
    chain.advance_to(c3.commit_deadline - 1);
    let (tree3, product3) = honest_product(&c3);
    chain.ok(&slow, commit(c3.id, tree3.root()));
    // h6: the late prover is past its commit deadline (height 5).
    chain.advance_to(c2.commit_deadline);
    let (tree2, _) = honest_product(&c2);
    let e = reject(&mut chain, &late, commit(c2.id, tree2.root()));
    assert!(
        matches!(
            e,
            TxError::DeadlinePassed {
                deadline: 5,
                height: 6
            }
        ),
        "{e:?}"
    );

    // h7: the slow prover opens; the openings are right, the rate is not.
    let open3 = open(&chain, c3.id, &tree3, &product3);
    chain.ok(&slow, open3);
    let measured = u64::try_from(ops * 1_000 / 3_000).unwrap();
    assert_eq!(
        chain.state().compute_challenges[&c3.id].phase,
        ComputePhase::Unproven {
            measured_int8_ops: measured
        }
    );

    // Epoch 0 ends: verdicts, proven rates, faults and the compute pool.
    let (before, _) = end_epoch(&mut chain);
    let state = chain.state();
    assert_eq!(state.compute_challenges[&c2.id].phase, ComputePhase::Missed);
    assert_eq!(state.providers[&honest.address()].proven_int8_ops, rate);
    assert_eq!(state.providers[&wrong.address()].proven_int8_ops, 0);
    assert_eq!(state.providers[&late.address()].proven_int8_ops, 0);
    // Slow is unproven: no compute reward, but no fault either.
    let slow_record = &state.providers[&slow.address()];
    assert_eq!(
        (slow_record.proven_int8_ops, slow_record.total_faults),
        (0, 0)
    );
    let st3 = statement(&chain, 0, &slow);
    assert_eq!((st3.gross_reward, st3.warning), (Amount::ZERO, false));
    let pool = bps(p.initial_emission_per_epoch.0, p.compute_pool_bps);
    let st0 = statement(&chain, 0, &honest);
    assert_eq!((st0.proofs_passed, st0.proven_int8_ops), (1, rate));
    assert_eq!(
        (st0.compute_weight, st0.compute_pool_weight),
        (u128::from(rate), u128::from(rate))
    );
    assert_eq!(
        (st0.compute_pool, st0.gross_reward),
        (Amount(pool), Amount(pool))
    );
    assert!(!st0.warning);
    assert_eq!(
        state.balance(&honest.address()).0 - before.balance(&honest.address()).0,
        pool
    );
    let st1 = statement(&chain, 0, &wrong);
    assert_eq!((st1.proofs_failed, st1.gross_reward), (1, Amount::ZERO));
    assert!(st1.warning);
    let st2 = statement(&chain, 0, &late);
    assert_eq!((st2.proofs_missed, st2.gross_reward), (1, Amount::ZERO));
    assert!(st2.warning);
    for k in [&wrong, &late] {
        let pr = &state.providers[&k.address()];
        assert_eq!((pr.total_faults, pr.consecutive_faulty_epochs), (1, 1));
        assert_eq!(pr.status, ProviderStatus::Active);
    }
    assert_eq!(state.epochs[&0].faults, 2);
    assert_eq!(state.epochs[&0].compute_rewards, Amount(pool));

    // Epoch 1: a bid shows each provider's proven rate beside its hardware.
    let gpu_order = Resources {
        gpu_count: 1,
        gpu_vendor: s("nvidia"),
        ..resources()
    };
    chain.ok(&alice(), order(gpu_order, 10_000, 100_000, 3));
    let hw = hardware(2_000, 4 * GIB, 10 * GIB, vec![h100()]);
    chain.run(vec![
        (&honest, place_bid(OrderId(0), 9_000, hw.clone())),
        (&wrong, place_bid(OrderId(0), 8_000, hw.clone())),
    ]);
    let bids = &chain.state().orders[&OrderId(0)].bids;
    assert_eq!(bids[&honest.address()].proven_int8_ops, rate);
    assert_eq!(bids[&wrong.address()].proven_int8_ops, 0);
    assert_eq!(bids[&honest.address()].hardware, hw);
}

// ---------------------------------------------------------------------------------------
// (f) The supply invariant over a mixed workload.

#[test]
fn supply_invariant_holds_through_a_mixed_workload() {
    // Every module at once, across epoch boundaries: Chain checks check_invariants() after
    // every block; here the breakdown is also reconciled with the objects that hold value.
    let mut chain = Chain::sim(1);
    let three: Vec<Keypair> = (0..3).map(storage).collect();
    let b = blob(7, 2, 1, 2_000, 1024);
    let cost = epoch_cost(crn(10_000), b.meta.size_bytes).unwrap().0;
    chain.run(vec![
        (&dave(), delegate(&storage(0), crn(40))),
        (
            &alice(),
            create_deal(
                &b.meta,
                &addresses(&three),
                3,
                crn(10_000),
                Amount(3 * cost),
            ),
        ),
        (&bob(), order(resources(), 5_000, 60_000, 2)),
        (
            &storage(1),
            TxBody::Unbond(cairn_types::tx::StakeAmount { amount: crn(10) }),
        ),
    ]);
    chain.ok(&alice(), activate(DealId(0), &b.meta, &three));
    let hw = hardware(2_000, 4 * GIB, 10 * GIB, vec![]);
    chain.ok(&compute(1), place_bid(OrderId(0), 5_000, hw));
    chain.ok(
        &bob(),
        TxBody::AcceptBid(AcceptBid {
            order: OrderId(0),
            provider: compute(1).address(),
        }),
    );
    chain.ok(&compute(1), started(LeaseId(0)));
    let mut seen_unbonding = false;
    for _ in 0..4 {
        if chain.epoch() >= 1 && chain.state().deals[&DealId(0)].status == DealStatus::Active {
            prove(
                &mut chain,
                &b,
                DealId(0),
                &[(0, three[0].clone()), (1, three[1].clone())],
            );
        }
        end_epoch(&mut chain);
        let s = chain.state();
        let breakdown = s.check_invariants().unwrap();
        let escrow: u128 = s.deals.values().map(|d| d.escrow.0).sum();
        let leases: u128 = s.leases.values().map(|l| l.escrow.0).sum();
        assert_eq!(breakdown.deal_escrow.0, escrow);
        assert_eq!(breakdown.lease_escrow.0, leases);
        assert_eq!(
            breakdown.delegations,
            s.providers
                .values()
                .fold(Amount::ZERO, |a, p| Amount(a.0 + p.delegated.0))
        );
        assert_eq!(
            breakdown.expected.0,
            s.supply.genesis.0 + s.supply.minted.0 - s.supply.burned.0
        );
        seen_unbonding |= !breakdown.unbonding.is_zero();
    }
    assert!(seen_unbonding);
    // The unbonded 10 CRN came back after unbonding_epochs.
    assert!(chain.state().unbonding.is_empty());
}

#[test]
fn compute_faults_carry_over_between_challenges() {
    // With a challenge every `interval` epochs, the epochs in between tell nothing about a
    // compute provider: a prover that ignores every challenge must still reach a slash (sim
    // params tolerate one warning) at its second challenge, not be warned forever.
    let params = cairn_ledger::sim::sim_params();
    let interval = params.compute_challenge_interval_epochs;
    assert!(interval > 1);
    let mut chain = Chain::with_params(params, 1);
    let g = prover(0);
    let mut challenged = Vec::new();
    for epoch in 0..=2 * interval {
        if chain
            .state()
            .compute_challenges
            .values()
            .any(|c| c.provider == g.address() && c.epoch == epoch)
        {
            challenged.push(epoch);
        }
        let end = chain.epoch_end(epoch);
        chain.advance_to(end);
        if challenged.len() == 2 {
            break;
        }
    }
    assert_eq!(challenged.len(), 2, "challenged in epochs {challenged:?}");
    assert_eq!(challenged[1] - challenged[0], interval);
    let provider = &chain.state().providers[&g.address()];
    assert_eq!(provider.total_faults, 2);
    assert!(
        matches!(provider.status, ProviderStatus::Jailed { .. }),
        "{:?}",
        provider.status
    );
    assert!(provider.total_slashed > Amount::ZERO);
}

#[test]
fn a_clamped_challenge_proves_its_ceiling_not_unproven() {
    // max_gemm_dim caps the work a challenge can ask for: a GPU faster than the cap can
    // show in one block passes at the cap (the most the chain can measure) rather than
    // being left unproven for failing to reach a claim no challenge could have measured.
    let params = Params {
        max_gemm_dim: 16,
        ..compute_every_epoch()
    };
    let mut chain = Chain::with_params(params, 1);
    let g = prover(0);
    let c = challenge_of(&chain, &g.address(), 0);
    let shape = c.shape();
    assert_eq!((shape.m, shape.k, shape.n), (16, 16, 16));
    let ceiling = u64::try_from(shape.ops()).unwrap(); // per 1 s block
    assert!(ceiling < PROVER_CLAIM);
    let (tree, product) = honest_product(&c);
    chain.ok(&g, commit(c.id, tree.root()));
    let opening = open(&chain, c.id, &tree, &product);
    chain.ok(&g, opening);
    assert_eq!(
        chain.state().compute_challenges[&c.id].phase,
        ComputePhase::Passed {
            proven_int8_ops: ceiling
        }
    );
}
