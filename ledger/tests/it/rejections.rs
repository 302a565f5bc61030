//! Every rejection reason has a test that checks it by type.
//!
//! Each [`TxError`] variant is provoked through real transactions in real blocks and matched
//! on the receipt's typed error (and its key fields). Every refused transaction goes through
//! [`reject`], which checks reliability.md §2e rule 2 on the whole state: the sender paid
//! exactly its fee (split into burn and treasury as the parameters say) and consumed its
//! nonce, and nothing else changed. Every [`AdmissionError`] and [`BlockError`] variant makes
//! the whole block invalid and leaves the ledger (state and root) exactly as it was; a
//! replayed transaction is refused as `BadNonce`.
//!
//! The exhaustive `match`es in [`tx_error_test`], [`admission_error_test`] and
//! [`block_error_test`] name the test of every variant, so a new variant does not compile
//! until someone says which test covers it.

use crate::common::*;
use cairn_ledger::state::{
    ComputePhase, DealStatus, LeaseState, OrderStatus, ProviderStatus, epoch_cost,
};
use cairn_ledger::{AdmissionError, BlockError, TxError};
use cairn_types::tx::{
    AcceptBid, BlobMeta, CloseLease, CreateOrder, DealRef, Delegation, Empty, ExtendDeal, LeaseRef,
    LeaseStarted, OrderRef, PlaceBid, RegisterProvider, StakeAmount, TopUpLease, Transfer,
    UpdateProvider,
};
use cairn_types::{
    Amount, Block, BoundedVec, Capacity, ChallengeId, DealId, GpuSpec, Hash, Keypair, LeaseId,
    OrderId, Resources, SignedTransaction, Transaction, TxBody,
};

/// The test that covers each transaction error.
#[allow(dead_code)]
fn tx_error_test(e: &TxError) -> &'static str {
    match e {
        TxError::ZeroAmount => "zero_amount",
        TxError::InsufficientBalance { .. } => "insufficient_balance",
        TxError::InvalidField { .. } => "invalid_field",
        TxError::ProviderExists { .. } => "provider_exists",
        TxError::EndpointTaken { .. } => {
            "providers::a_taken_endpoint_is_refused_by_name_for_registration_and_update"
        }
        TxError::UnknownProvider { .. } => "unknown_provider",
        TxError::ProviderNotActive { .. } => "provider_not_active",
        TxError::BondBelowMinimum { .. } => "bond_below_minimum",
        TxError::CommissionTooHigh { .. } => "commission_too_high",
        TxError::InsufficientStake { .. } => "insufficient_stake",
        TxError::DelegationBelowMinimum { .. } => "delegation_below_minimum",
        TxError::UnknownDelegation { .. } => "unknown_delegation",
        TxError::NotJailed => "not_jailed",
        TxError::StillJailed { .. } => "still_jailed_and_jailed_provider_not_active",
        TxError::InvalidBlob { .. } => "invalid_blob",
        TxError::ProviderCountMismatch { .. } => "provider_count_mismatch",
        TxError::DuplicateShardProvider { .. } => "duplicate_shard_provider",
        TxError::DealTerm { .. } => "deal_term",
        TxError::InsufficientEscrow { .. } => "insufficient_escrow",
        TxError::UnknownDeal { .. } => "unknown_deal",
        TxError::NotDealOwner { .. } => "not_deal_owner",
        TxError::DealWrongStatus { .. } => "deal_wrong_status",
        TxError::BadInconsistencyProof { .. } => "inconsistency::an_honest_blob_cannot_be_reported",
        TxError::NotValidator { .. } | TxError::DuplicateAuditedShard { .. } => {
            "audit::bad_audit_reports_are_refused_whole"
        }
        TxError::NotEnoughReceipts { .. } => "not_enough_receipts",
        TxError::BadReceipt { .. } => "bad_receipt",
        TxError::NotAwaitingRepair { .. } => {
            "repair::missed_proof_queues_repair_and_repair_moves_the_shard"
        }
        TxError::PermanentDeal { .. } => "permanent_deal",
        TxError::WrongEpoch { .. } => "storage_proof_rejections",
        TxError::UnknownStorageChallenge { .. } => "storage_proof_rejections",
        TxError::UnknownComputeChallenge { .. } => "compute_challenge_rejections",
        TxError::NotChallengedProvider { .. } => {
            "storage_proof_rejections, compute_challenge_rejections"
        }
        TxError::DeadlinePassed { .. } => "storage_proof_rejections, compute_challenge_rejections",
        TxError::AlreadyAnswered => "storage_proof_rejections",
        TxError::ChallengeWrongStatus { .. } => "compute_challenge_rejections",
        TxError::OpeningsOutOfOrder { .. } | TxError::OpeningsBeyondChallenge { .. } => {
            "compute_openings_arrive_in_parts"
        }
        TxError::UnknownOrder { .. } => "unknown_order",
        TxError::NotOrderOwner { .. } => "not_order_owner",
        TxError::OrderNotOpen { .. } => "order_not_open",
        TxError::BidWindowClosed { .. } => "bid_and_accept_windows_closed",
        TxError::AcceptWindowClosed { .. } => "bid_and_accept_windows_closed",
        TxError::BidWindow { .. } => "bid_window",
        TxError::PriceAboveMax { .. } => "price_above_max",
        TxError::HardwareMismatch { .. } => "hardware_mismatch",
        TxError::InsufficientCapacity { .. } => {
            "insufficient_capacity, leases_and_deals_share_one_disk"
        }
        TxError::UnknownBid { .. } => "unknown_bid",
        TxError::UnknownLease { .. } => "unknown_lease",
        TxError::NotLeaseParty { .. } => "not_lease_party",
        TxError::LeaseClosed { .. } => "lease_closed",
        TxError::NotLeaseProvider { .. } | TxError::LeaseNotStarting { .. } => {
            "lease_start_rejections"
        }
        TxError::Overflow { .. } => "overflow_and_huge_amounts",
    }
}

#[allow(dead_code)]
fn admission_error_test(e: &AdmissionError) -> &'static str {
    match e {
        AdmissionError::TooLarge { .. } => "oversized_transaction",
        AdmissionError::WrongChain { .. } => "wrong_chain",
        AdmissionError::BadSignature { .. } => "bad_signature",
        AdmissionError::BadNonce { .. } => "bad_nonce, replayed_transaction_is_bad_nonce",
        AdmissionError::FeeTooLow { .. } => "fee_too_low",
        AdmissionError::CannotPayFee { .. } => "cannot_pay_fee",
    }
}

#[allow(dead_code)]
fn block_error_test(e: &BlockError) -> &'static str {
    match e {
        BlockError::WrongHeight { .. } => "wrong_height",
        BlockError::WrongParent { .. } => "wrong_parent",
        BlockError::TimestampDecreased { .. } => "timestamp_decreased",
        BlockError::TxRootMismatch { .. } => "tx_root_mismatch",
        BlockError::StateRootMismatch { .. } => "state_root_mismatch",
        BlockError::Inadmissible { .. } => "every admission test",
        // Only reachable if fee, nonce or epoch arithmetic overflowed u128/u64, which admission
        // (fees bounded by balances, balances by the supply) rules out.
        BlockError::Overflow { .. } => "unreachable through valid input",
    }
}

// ---------------------------------------------------------------------------------------
// Fixtures.

/// 10 000 CRN per GiB-epoch: a 4 000-byte blob then costs 37 253 uCRN an epoch.
fn price() -> Amount {
    crn(10_000)
}

fn cost(meta: &BlobMeta, epochs: u64) -> Amount {
    epoch_cost(price(), meta.size_bytes)
        .and_then(|c| c.checked_mul(u128::from(epochs)))
        .expect("small cost")
}

fn three_storage() -> Vec<Keypair> {
    (0..3).map(storage).collect()
}

/// A 2+1 blob of 2 000-byte shards (two 1 KiB leaves each) on storage providers 0..3.
fn blob3(tag: u8) -> Blob {
    blob(tag, 2, 1, 2_000, 1024)
}

/// Alice creates a 2-epoch deal for `blob` on storage providers 0..3 (not activated).
fn new_deal(chain: &mut Chain, blob: &Blob) -> DealId {
    let id = DealId(chain.state().counters.deal);
    let body = create_deal(
        &blob.meta,
        &addresses(&three_storage()),
        2,
        price(),
        cost(&blob.meta, 2),
    );
    chain.ok(&alice(), body);
    id
}

fn active_deal(chain: &mut Chain, blob: &Blob) -> DealId {
    let id = new_deal(chain, blob);
    chain.ok(&alice(), activate(id, &blob.meta, &three_storage()));
    assert_eq!(chain.state().deals[&id].status, DealStatus::Active);
    id
}

const MAX_PRICE: Amount = Amount(10_000);

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

fn fitting_hardware() -> cairn_types::Hardware {
    hardware(2_000, 4 * GIB, 10 * GIB, vec![])
}

fn order_body(resources: Resources, max_price: Amount, deposit: Amount, window: u64) -> TxBody {
    TxBody::CreateOrder(CreateOrder {
        manifest_hash: Hash::domain("ledger-it.manifest", &[b"app"]),
        resources,
        max_price_per_block: max_price,
        deposit,
        bid_window_blocks: window,
    })
}

/// `tenant` orders `resources` at up to 10 000 uCRN a block with a 10-block deposit.
fn new_order(chain: &mut Chain, tenant: &Keypair, resources: Resources, window: u64) -> OrderId {
    let id = OrderId(chain.state().counters.order);
    let deposit = Amount(MAX_PRICE.0 * 10);
    chain.ok(tenant, order_body(resources, MAX_PRICE, deposit, window));
    id
}

fn bid(order: OrderId, price: u128, hardware: cairn_types::Hardware) -> TxBody {
    TxBody::PlaceBid(PlaceBid {
        order,
        price_per_block: Amount(price),
        hardware,
    })
}

fn accept(order: OrderId, provider: &Keypair) -> TxBody {
    TxBody::AcceptBid(AcceptBid {
        order,
        provider: provider.address(),
    })
}

/// Alice leases compute provider 1's hardware at 8 000 uCRN a block.
fn new_lease(chain: &mut Chain) -> LeaseId {
    let order = new_order(chain, &alice(), resources(), 3);
    chain.ok(&compute(1), bid(order, 8_000, fitting_hardware()));
    let id = LeaseId(chain.state().counters.lease);
    chain.run(vec![
        (&alice(), accept(order, &compute(1))),
        (&compute(1), started(id)),
    ]);
    assert_eq!(chain.state().leases[&id].state, LeaseState::Active);
    id
}

fn started(lease: LeaseId) -> TxBody {
    TxBody::LeaseStarted(LeaseStarted { lease })
}

fn close(lease: LeaseId, reason: &str) -> TxBody {
    TxBody::CloseLease(CloseLease {
        lease,
        reason: s(reason),
    })
}

fn transfer(to: &Keypair, amount: Amount) -> TxBody {
    TxBody::Transfer(Transfer {
        to: to.address(),
        amount,
    })
}

fn delegate(provider: &Keypair, amount: Amount) -> TxBody {
    TxBody::Delegate(Delegation {
        provider: provider.address(),
        amount,
    })
}

fn undelegate(provider: &Keypair, amount: Amount) -> TxBody {
    TxBody::Undelegate(Delegation {
        provider: provider.address(),
        amount,
    })
}

fn register(
    endpoint: &str,
    region: &str,
    capacity: Capacity,
    commission: u16,
    bond: Amount,
) -> TxBody {
    TxBody::RegisterProvider(RegisterProvider {
        endpoint: s(endpoint),
        region: s(region),
        capacity,
        commission_bps: commission,
        bond,
        claimed_int8_ops: 0,
    })
}

fn disk(bytes: u64) -> Capacity {
    Capacity {
        storage_bytes: bytes,
        ..Capacity::default()
    }
}

fn update(commission: u16) -> TxBody {
    TxBody::UpdateProvider(UpdateProvider {
        endpoint: s("https://s0.example"),
        region: s("eu-west"),
        capacity: disk(10 * GIB),
        commission_bps: commission,
        claimed_int8_ops: 0,
    })
}

fn unjail() -> TxBody {
    TxBody::Unjail(Empty {})
}

fn leave() -> TxBody {
    TxBody::LeaveProvider(Empty {})
}

// ---------------------------------------------------------------------------------------
// Bank and staking.

#[test]
fn zero_amount() {
    let mut chain = Chain::sim(0);
    let e = reject(&mut chain, &alice(), transfer(&bob(), Amount::ZERO));
    assert!(matches!(e, TxError::ZeroAmount), "{e:?}");
    let zero = StakeAmount {
        amount: Amount::ZERO,
    };
    for body in [
        TxBody::Bond(zero.clone()),
        TxBody::Unbond(zero),
        undelegate(&storage(1), Amount::ZERO),
    ] {
        let e = reject(&mut chain, &storage(0), body);
        assert!(matches!(e, TxError::ZeroAmount), "{e:?}");
    }
    let lease = new_lease(&mut chain);
    let e = reject(
        &mut chain,
        &alice(),
        TxBody::TopUpLease(TopUpLease {
            lease,
            amount: Amount::ZERO,
        }),
    );
    assert!(matches!(e, TxError::ZeroAmount), "{e:?}");
}

#[test]
fn insufficient_balance() {
    let mut chain = Chain::sim(0);
    let balance = chain.balance(&alice().address());
    // The fee is taken first, so the body sees the balance without it.
    let e = reject(&mut chain, &alice(), transfer(&bob(), balance));
    let available = Amount(balance.0 - ODD_FEE.0);
    assert!(
        matches!(e, TxError::InsufficientBalance { needed, available: a } if needed == balance && a == available),
        "{e:?}"
    );
    // Every body that moves balance into something checks the same way.
    let more = Amount(balance.0 * 2);
    let capacity = disk(GIB);
    for body in [
        delegate(&storage(0), more),
        register("https://carol.example", "eu", capacity, 0, more),
        order_body(resources(), MAX_PRICE, more, 3),
    ] {
        let e = reject(&mut chain, &alice(), body);
        assert!(
            matches!(e, TxError::InsufficientBalance { needed, .. } if needed == more),
            "{e:?}"
        );
    }
    let provider_balance = chain.balance(&storage(0).address());
    let e = reject(
        &mut chain,
        &storage(0),
        TxBody::Bond(StakeAmount {
            amount: Amount(provider_balance.0),
        }),
    );
    assert!(matches!(e, TxError::InsufficientBalance { .. }), "{e:?}");
}

#[test]
fn invalid_field() {
    let mut chain = Chain::sim(0);
    let gpu_without_vram = Capacity {
        gpus: BoundedVec::new(vec![GpuSpec {
            vendor: s("nvidia"),
            model: s("h100"),
            vram_mib: 0,
        }])
        .unwrap(),
        ..Capacity::default()
    };
    let cases = [
        (
            "endpoint",
            register("ftp://carol", "eu", disk(GIB), 0, crn(100)),
        ),
        (
            "region",
            register("https://carol", "", disk(GIB), 0, crn(100)),
        ),
        (
            "capacity",
            register("https://carol", "eu", Capacity::default(), 0, crn(100)),
        ),
        (
            "capacity.gpus",
            register("https://carol", "eu", gpu_without_vram, 0, crn(100)),
        ),
        (
            "resources",
            order_body(Resources::default(), MAX_PRICE, Amount(MAX_PRICE.0 * 10), 3),
        ),
    ];
    for (expected, body) in cases {
        let e = reject(&mut chain, &carol(), body);
        assert!(
            matches!(&e, TxError::InvalidField { field, .. } if field == expected),
            "{e:?}"
        );
    }
    // An update is checked like a registration.
    let bad_update = TxBody::UpdateProvider(UpdateProvider {
        endpoint: s("gopher://s0"),
        region: s("eu"),
        capacity: disk(GIB),
        commission_bps: 0,
        claimed_int8_ops: 0,
    });
    let e = reject(&mut chain, &storage(0), bad_update);
    assert!(
        matches!(&e, TxError::InvalidField { field, .. } if field == "endpoint"),
        "{e:?}"
    );
    // A close needs a reason.
    let lease = new_lease(&mut chain);
    let e = reject(&mut chain, &alice(), close(lease, "   "));
    assert!(
        matches!(&e, TxError::InvalidField { field, .. } if field == "reason"),
        "{e:?}"
    );
}

#[test]
fn provider_exists() {
    let mut chain = Chain::sim(0);
    let e = reject(
        &mut chain,
        &storage(0),
        register("https://s0.example", "eu", disk(GIB), 0, crn(100)),
    );
    assert!(
        matches!(e, TxError::ProviderExists { provider } if provider == storage(0).address()),
        "{e:?}"
    );
}

#[test]
fn unknown_provider() {
    let mut chain = Chain::sim(0);
    let me = alice().address();
    let unknown_self =
        |e: &TxError| matches!(e, TxError::UnknownProvider { provider } if *provider == me);
    for body in [
        TxBody::Bond(StakeAmount { amount: crn(1) }),
        TxBody::Unbond(StakeAmount { amount: crn(1) }),
        update(0),
        leave(),
        unjail(),
    ] {
        let e = reject(&mut chain, &alice(), body);
        assert!(unknown_self(&e), "{e:?}");
    }
    let e = reject(&mut chain, &alice(), delegate(&bob(), crn(10)));
    assert!(
        matches!(e, TxError::UnknownProvider { provider } if provider == bob().address()),
        "{e:?}"
    );
    // A deal naming a non-provider for a shard.
    let b = blob3(1);
    let providers = [storage(0).address(), bob().address(), storage(2).address()];
    let e = reject(
        &mut chain,
        &alice(),
        create_deal(&b.meta, &providers, 2, price(), cost(&b.meta, 2)),
    );
    assert!(
        matches!(e, TxError::UnknownProvider { provider } if provider == bob().address()),
        "{e:?}"
    );
    // A bid from a non-provider.
    let order = new_order(&mut chain, &bob(), resources(), 5);
    let e = reject(&mut chain, &alice(), bid(order, 5_000, fitting_hardware()));
    assert!(unknown_self(&e), "{e:?}");
}

#[test]
fn provider_not_active() {
    let mut chain = Chain::sim(0);
    let order = new_order(&mut chain, &alice(), resources(), 5);
    chain.ok(&compute(1), bid(order, 5_000, fitting_hardware()));
    chain.ok(&storage(3), leave());
    chain.ok(&compute(1), leave());
    let leaving = |e: &TxError, who: &Keypair| {
        matches!(e, TxError::ProviderNotActive { provider, status }
            if *provider == who.address() && status == "leaving")
    };
    let e = reject(&mut chain, &dave(), delegate(&storage(3), crn(10)));
    assert!(leaving(&e, &storage(3)), "{e:?}");
    let e = reject(&mut chain, &storage(3), leave());
    assert!(leaving(&e, &storage(3)), "{e:?}");
    let b = blob3(2);
    let providers = [
        storage(0).address(),
        storage(1).address(),
        storage(3).address(),
    ];
    let e = reject(
        &mut chain,
        &alice(),
        create_deal(&b.meta, &providers, 2, price(), cost(&b.meta, 2)),
    );
    assert!(leaving(&e, &storage(3)), "{e:?}");
    // A leaving provider can neither bid nor have an earlier bid accepted.
    let other = new_order(&mut chain, &bob(), resources(), 5);
    let e = reject(
        &mut chain,
        &compute(1),
        bid(other, 5_000, fitting_hardware()),
    );
    assert!(leaving(&e, &compute(1)), "{e:?}");
    let e = reject(&mut chain, &alice(), accept(order, &compute(1)));
    assert!(leaving(&e, &compute(1)), "{e:?}");
}

#[test]
fn bond_below_minimum() {
    let mut chain = Chain::sim(0);
    let minimum = chain.params().min_provider_bond;
    let low = Amount(minimum.0 - 1);
    let e = reject(
        &mut chain,
        &carol(),
        register("https://carol.example", "eu", disk(GIB), 0, low),
    );
    assert!(
        matches!(e, TxError::BondBelowMinimum { bond, minimum: m } if bond == low && m == minimum),
        "{e:?}"
    );
    // An active provider keeps the minimum when it unbonds.
    let amount = Amount(crn(PROVIDER_BOND).0 - minimum.0 + 1);
    let e = reject(
        &mut chain,
        &storage(0),
        TxBody::Unbond(StakeAmount { amount }),
    );
    assert!(
        matches!(e, TxError::BondBelowMinimum { bond, .. } if bond == low),
        "{e:?}"
    );
}

#[test]
fn commission_too_high() {
    let mut chain = Chain::sim(0);
    let maximum = chain.params().max_commission_bps;
    let e = reject(
        &mut chain,
        &carol(),
        register(
            "https://carol.example",
            "eu",
            disk(GIB),
            maximum + 1,
            crn(100),
        ),
    );
    assert!(
        matches!(e, TxError::CommissionTooHigh { commission_bps, maximum_bps }
            if commission_bps == maximum + 1 && maximum_bps == maximum),
        "{e:?}"
    );
    let e = reject(&mut chain, &storage(0), update(10_000));
    assert!(
        matches!(
            e,
            TxError::CommissionTooHigh {
                commission_bps: 10_000,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn insufficient_stake() {
    let mut chain = Chain::sim(0);
    let bonded = crn(PROVIDER_BOND);
    let requested = Amount(bonded.0 + 1);
    let e = reject(
        &mut chain,
        &storage(0),
        TxBody::Unbond(StakeAmount { amount: requested }),
    );
    assert!(
        matches!(e, TxError::InsufficientStake { requested: r, bonded: b } if r == requested && b == bonded),
        "{e:?}"
    );
    chain.ok(&dave(), delegate(&storage(0), crn(10)));
    let e = reject(&mut chain, &dave(), undelegate(&storage(0), crn(11)));
    assert!(
        matches!(e, TxError::InsufficientStake { requested, bonded } if requested == crn(11) && bonded == crn(10)),
        "{e:?}"
    );
}

#[test]
fn delegation_below_minimum() {
    let mut chain = Chain::sim(0);
    let minimum = chain.params().min_delegation;
    let amount = Amount(minimum.0 - 1);
    let e = reject(&mut chain, &dave(), delegate(&storage(0), amount));
    assert!(
        matches!(e, TxError::DelegationBelowMinimum { amount: a, minimum: m } if a == amount && m == minimum),
        "{e:?}"
    );
}

#[test]
fn unknown_delegation() {
    let mut chain = Chain::sim(0);
    let e = reject(&mut chain, &bob(), undelegate(&storage(1), crn(1)));
    assert!(
        matches!(e, TxError::UnknownDelegation { delegator, provider }
            if delegator == bob().address() && provider == storage(1).address()),
        "{e:?}"
    );
}

#[test]
fn not_jailed() {
    let mut chain = Chain::sim(0);
    let e = reject(&mut chain, &storage(0), unjail());
    assert!(matches!(e, TxError::NotJailed), "{e:?}");
    // Leaving is not jailed either.
    chain.ok(&storage(1), leave());
    let e = reject(&mut chain, &storage(1), unjail());
    assert!(matches!(e, TxError::NotJailed), "{e:?}");
}

#[test]
fn still_jailed_and_jailed_provider_not_active() {
    // Prover 0 ignores its compute challenges: a warning after epoch 0, then (sim params
    // tolerate one warning) a slash and jail after epoch 1, until epoch 1 + 1 + jail_epochs.
    let mut chain = Chain::sim(1);
    let g = prover(0);
    chain.advance_to(chain.epoch_end(1));
    let until = 1 + 1 + chain.params().jail_epochs;
    assert_eq!(
        chain.state().providers[&g.address()].status,
        ProviderStatus::Jailed { until_epoch: until }
    );
    assert_eq!(chain.epoch(), 2);
    let e = reject(&mut chain, &g, unjail());
    assert!(
        matches!(e, TxError::StillJailed { until_epoch } if until_epoch == until),
        "{e:?}"
    );
    let e = reject(&mut chain, &dave(), delegate(&g, crn(5)));
    assert!(
        matches!(&e, TxError::ProviderNotActive { status, .. } if status == "jailed"),
        "{e:?}"
    );
    let order = new_order(&mut chain, &alice(), resources(), 5);
    let e = reject(&mut chain, &g, bid(order, 5_000, fitting_hardware()));
    assert!(
        matches!(&e, TxError::ProviderNotActive { status, .. } if status == "jailed"),
        "{e:?}"
    );
    // Once the jail epoch comes, the same transaction goes through.
    chain.advance_to(chain.epoch_end(until - 1));
    chain.ok(&g, unjail());
    assert_eq!(
        chain.state().providers[&g.address()].status,
        ProviderStatus::Active
    );
}

// ---------------------------------------------------------------------------------------
// Storage market.

#[test]
fn invalid_blob() {
    let mut chain = Chain::sim(0);
    let good = blob3(3);
    let providers = addresses(&three_storage());
    let mut wrong_id = good.meta.clone();
    wrong_id.id = Hash::domain("ledger-it.not-the-id", &[]);
    let mut no_data = good.meta.clone();
    no_data.data_shards = 0;
    let mut roots_missing = good.meta.clone();
    roots_missing.shard_roots.0.pop();
    let mut tiny_leaf = good.meta.clone();
    tiny_leaf.leaf_size_bytes = 32;
    // Within bounds but not a power of two: no subtree of BLAKE3's tree.
    let mut odd_leaf = good.meta.clone();
    odd_leaf.leaf_size_bytes = 1536;
    let mut short_shards = good.meta.clone();
    short_shards.shard_size_bytes = 1_000;
    for (meta, needle) in [
        (wrong_id, "does not match its contents"),
        (no_data, "data shards"),
        (roots_missing, "shard roots"),
        (tiny_leaf, "leaf size"),
        (odd_leaf, "power of two"),
        (short_shards, "shard size"),
    ] {
        let e = reject(
            &mut chain,
            &alice(),
            create_deal(&meta, &providers, 2, price(), cost(&good.meta, 2)),
        );
        assert!(
            matches!(&e, TxError::InvalidBlob { detail } if detail.contains(needle)),
            "{needle}: {e:?}"
        );
    }
}

#[test]
fn cut_sealed_key() {
    let mut chain = Chain::sim(0);
    let b = blob3(14);
    let providers = addresses(&three_storage());
    for len in [1usize, 32, 47] {
        let mut body = create_deal(&b.meta, &providers, 2, price(), cost(&b.meta, 2));
        if let TxBody::CreateDeal(deal) = &mut body {
            deal.sealed_key = cairn_types::BoundedBytes::new(vec![9; len]).unwrap();
        }
        let e = reject(&mut chain, &alice(), body);
        assert!(
            matches!(&e, TxError::InvalidField { field, detail } if field == "sealed_key" && detail.contains("48 bytes")),
            "{len}: {e:?}"
        );
    }
    // Whole or absent, the deal goes through and keeps it for the owner.
    let deal = DealId(chain.state().counters.deal);
    chain.ok(
        &alice(),
        create_deal(&b.meta, &providers, 2, price(), cost(&b.meta, 2)),
    );
    assert_eq!(chain.state().deals[&deal].sealed_key.0, vec![0xa7; 48]);
}

#[test]
fn provider_count_mismatch() {
    let mut chain = Chain::sim(0);
    let b = blob3(4);
    let two = [storage(0).address(), storage(1).address()];
    let e = reject(
        &mut chain,
        &alice(),
        create_deal(&b.meta, &two, 2, price(), cost(&b.meta, 2)),
    );
    assert!(
        matches!(
            e,
            TxError::ProviderCountMismatch {
                expected: 3,
                got: 2
            }
        ),
        "{e:?}"
    );
}

#[test]
fn duplicate_shard_provider() {
    let mut chain = Chain::sim(0);
    let b = blob3(5);
    let twice = [
        storage(0).address(),
        storage(1).address(),
        storage(0).address(),
    ];
    let e = reject(
        &mut chain,
        &alice(),
        create_deal(&b.meta, &twice, 2, price(), cost(&b.meta, 2)),
    );
    assert!(
        matches!(e, TxError::DuplicateShardProvider { provider } if provider == storage(0).address()),
        "{e:?}"
    );
}

#[test]
fn deal_term() {
    let mut chain = Chain::sim(0);
    let (min, max) = (
        chain.params().min_deal_epochs,
        chain.params().max_deal_epochs,
    );
    let b = blob3(6);
    let providers = addresses(&three_storage());
    for epochs in [0, max + 1] {
        let e = reject(
            &mut chain,
            &alice(),
            create_deal(&b.meta, &providers, epochs, price(), cost(&b.meta, 3)),
        );
        assert!(
            matches!(e, TxError::DealTerm { epochs: got, minimum, maximum }
                if got == epochs && minimum == min && maximum == max),
            "{e:?}"
        );
    }
    // Extending by nothing, or past the maximum.
    let deal = new_deal(&mut chain, &b);
    for extra in [0, max] {
        let e = reject(
            &mut chain,
            &alice(),
            TxBody::ExtendDeal(ExtendDeal {
                deal,
                extra_epochs: extra,
                amount: crn(1_000),
            }),
        );
        assert!(
            matches!(e, TxError::DealTerm { epochs, minimum: 3, maximum } if epochs == 2 + extra && maximum == max),
            "{e:?}"
        );
    }
}

#[test]
fn insufficient_escrow() {
    let mut chain = Chain::sim(0);
    let b = blob3(7);
    let needed = cost(&b.meta, 2);
    assert_eq!(needed, Amount(2 * 37_253));
    let short = Amount(needed.0 - 1);
    let e = reject(
        &mut chain,
        &alice(),
        create_deal(&b.meta, &addresses(&three_storage()), 2, price(), short),
    );
    assert!(
        matches!(e, TxError::InsufficientEscrow { needed: n, provided } if n == needed && provided == short),
        "{e:?}"
    );
    let deal = new_deal(&mut chain, &b);
    let e = reject(
        &mut chain,
        &alice(),
        TxBody::ExtendDeal(ExtendDeal {
            deal,
            extra_epochs: 3,
            amount: Amount(3 * 37_253 - 1),
        }),
    );
    assert!(
        matches!(e, TxError::InsufficientEscrow { needed, .. } if needed == Amount(3 * 37_253)),
        "{e:?}"
    );
    // An order's deposit must cover min_lease_deposit_blocks at its maximum price.
    let blocks = u128::from(chain.params().min_lease_deposit_blocks);
    let deposit = Amount(MAX_PRICE.0 * blocks - 1);
    let e = reject(
        &mut chain,
        &alice(),
        order_body(resources(), MAX_PRICE, deposit, 3),
    );
    assert!(
        matches!(e, TxError::InsufficientEscrow { needed, provided }
            if needed == Amount(MAX_PRICE.0 * blocks) && provided == deposit),
        "{e:?}"
    );
    // A free order still needs a deposit.
    let e = reject(
        &mut chain,
        &alice(),
        order_body(resources(), Amount::ZERO, Amount::ZERO, 3),
    );
    assert!(
        matches!(
            e,
            TxError::InsufficientEscrow {
                needed: Amount(1),
                provided: Amount::ZERO
            }
        ),
        "{e:?}"
    );
}

#[test]
fn unknown_deal() {
    let mut chain = Chain::sim(0);
    let deal = DealId(42);
    let b = blob3(8);
    for body in [
        TxBody::CancelDeal(DealRef { deal }),
        TxBody::ExtendDeal(ExtendDeal {
            deal,
            extra_epochs: 1,
            amount: crn(1),
        }),
        activate(deal, &b.meta, &three_storage()),
    ] {
        let e = reject(&mut chain, &alice(), body);
        assert!(
            matches!(e, TxError::UnknownDeal { deal: d } if d == deal),
            "{e:?}"
        );
    }
}

#[test]
fn not_deal_owner() {
    let mut chain = Chain::sim(0);
    let deal = new_deal(&mut chain, &blob3(9));
    for body in [
        TxBody::CancelDeal(DealRef { deal }),
        TxBody::ExtendDeal(ExtendDeal {
            deal,
            extra_epochs: 1,
            amount: crn(1),
        }),
    ] {
        let e = reject(&mut chain, &bob(), body);
        assert!(
            matches!(e, TxError::NotDealOwner { deal: d, sender } if d == deal && sender == bob().address()),
            "{e:?}"
        );
    }
}

#[test]
fn deal_wrong_status() {
    let mut chain = Chain::sim(0);
    let b = blob3(10);
    let deal = active_deal(&mut chain, &b);
    let e = reject(
        &mut chain,
        &alice(),
        activate(deal, &b.meta, &three_storage()),
    );
    assert!(
        matches!(&e, TxError::DealWrongStatus { deal: d, status } if *d == deal && status == "active"),
        "{e:?}"
    );
    chain.ok(&alice(), TxBody::CancelDeal(DealRef { deal }));
    for body in [
        TxBody::CancelDeal(DealRef { deal }),
        TxBody::ExtendDeal(ExtendDeal {
            deal,
            extra_epochs: 1,
            amount: crn(1),
        }),
        activate(deal, &b.meta, &three_storage()),
    ] {
        let e = reject(&mut chain, &alice(), body);
        assert!(
            matches!(&e, TxError::DealWrongStatus { status, .. } if status == "cancelled"),
            "{e:?}"
        );
    }
}

#[test]
fn not_enough_receipts() {
    let mut chain = Chain::sim(0);
    let b = blob3(11);
    let deal = new_deal(&mut chain, &b);
    let two: Vec<Keypair> = (0..2).map(storage).collect();
    let e = reject(&mut chain, &alice(), activate(deal, &b.meta, &two));
    assert!(
        matches!(e, TxError::NotEnoughReceipts { got: 2, needed: 3 }),
        "{e:?}"
    );
}

#[test]
fn bad_receipt() {
    let mut chain = Chain::sim(0);
    let b = blob3(12);
    let deal = new_deal(&mut chain, &b);
    let certificate = |receipts| {
        TxBody::ActivateDeal(cairn_types::tx::ActivateDeal {
            deal,
            receipts: BoundedVec::new(receipts).unwrap(),
        })
    };
    let honest = |i: usize| receipt(&storage(i), deal, &b.meta, u16::try_from(i).unwrap());
    // Shard 1 receipted by storage provider 3, which does not hold it.
    let forged = receipt(&storage(3), deal, &b.meta, 1);
    // A receipt for another deal id.
    let stale = receipt(&storage(2), DealId(deal.0 + 1), &b.meta, 2);
    let mut out_of_range = receipt(&storage(2), deal, &b.meta, 2);
    out_of_range.shard_index = 3;
    let cases = [
        (vec![honest(0), forged, honest(2)], 1, "signature is not"),
        (vec![honest(0), honest(1), stale], 2, "signature is not"),
        (vec![honest(0), honest(0), honest(1)], 0, "duplicate"),
        (vec![honest(0), honest(1), out_of_range], 3, "no shard 3"),
    ];
    for (receipts, index, needle) in cases {
        let e = reject(&mut chain, &alice(), certificate(receipts));
        assert!(
            matches!(&e, TxError::BadReceipt { shard_index, detail } if *shard_index == index && detail.contains(needle)),
            "{e:?}"
        );
    }
}

#[test]
fn permanent_deal() {
    let mut chain = Chain::sim(0);
    let b = blob3(13);
    let deal = DealId(chain.state().counters.deal);
    let prepay = chain.params().permanent_prepay_epochs;
    chain.ok(
        &alice(),
        TxBody::CreateDeal(cairn_types::tx::CreateDeal {
            blob: b.meta.clone(),
            providers: BoundedVec::new(addresses(&three_storage())).unwrap(),
            permanent: true,
            epochs: 0,
            price_per_gib_epoch: price(),
            escrow: cost(&b.meta, prepay),
            sealed_key: Default::default(),
        }),
    );
    for body in [
        TxBody::CancelDeal(DealRef { deal }),
        TxBody::ExtendDeal(ExtendDeal {
            deal,
            extra_epochs: 1,
            amount: crn(1),
        }),
    ] {
        let e = reject(&mut chain, &alice(), body);
        assert!(
            matches!(e, TxError::PermanentDeal { deal: d } if d == deal),
            "{e:?}"
        );
    }
}

#[test]
fn storage_proof_rejections() {
    let mut chain = Chain::sim(0);
    let b = blob3(14);
    // WrongEpoch: proofs name the epoch they answer.
    let e = reject(&mut chain, &storage(0), submit_proofs(1, vec![]));
    assert!(
        matches!(
            e,
            TxError::WrongEpoch {
                given: 1,
                current: 0
            }
        ),
        "{e:?}"
    );
    let deal = active_deal(&mut chain, &b);
    // Activated in epoch 0: first challenged in epoch 1, so nothing to answer yet.
    let early = cairn_types::proof::StorageProof {
        deal,
        shard_index: 0,
        leaves: BoundedVec::default(),
    };
    let e = reject(&mut chain, &storage(0), submit_proofs(0, vec![early]));
    assert!(
        matches!(e, TxError::UnknownStorageChallenge { deal: d, shard_index: 0 } if d == deal),
        "{e:?}"
    );
    chain.advance_to(chain.epoch_end(0));
    assert_eq!(chain.epoch(), 1);
    let proofs: Vec<_> = (0..3).map(|i| storage_proof(&chain, &b, deal, i)).collect();
    // A shard that does not exist has no challenge.
    let mut ghost = proofs[0].clone();
    ghost.shard_index = 7;
    let e = reject(&mut chain, &storage(0), submit_proofs(1, vec![ghost]));
    assert!(
        matches!(e, TxError::UnknownStorageChallenge { shard_index: 7, .. }),
        "{e:?}"
    );
    // Stale epoch.
    let e = reject(
        &mut chain,
        &storage(0),
        submit_proofs(0, vec![proofs[0].clone()]),
    );
    assert!(
        matches!(
            e,
            TxError::WrongEpoch {
                given: 0,
                current: 1
            }
        ),
        "{e:?}"
    );
    // Someone else's shard.
    let e = reject(
        &mut chain,
        &storage(1),
        submit_proofs(1, vec![proofs[0].clone()]),
    );
    assert!(
        matches!(e, TxError::NotChallengedProvider { provider } if provider == storage(0).address()),
        "{e:?}"
    );
    // The same shard twice in one transaction, then again after it was answered.
    let e = reject(
        &mut chain,
        &storage(1),
        submit_proofs(1, vec![proofs[1].clone(), proofs[1].clone()]),
    );
    assert!(matches!(e, TxError::AlreadyAnswered), "{e:?}");
    chain.ok(&storage(0), submit_proofs(1, vec![proofs[0].clone()]));
    let e = reject(
        &mut chain,
        &storage(0),
        submit_proofs(1, vec![proofs[0].clone()]),
    );
    assert!(matches!(e, TxError::AlreadyAnswered), "{e:?}");
    // One bad entry refuses the whole transaction: shard 1's valid proof is not recorded.
    let e = reject(
        &mut chain,
        &storage(1),
        submit_proofs(1, vec![proofs[1].clone(), proofs[2].clone()]),
    );
    assert!(matches!(e, TxError::NotChallengedProvider { .. }), "{e:?}");
    // After the deadline.
    let deadline = chain.state().storage_challenges[&(deal, 2)].deadline;
    assert_eq!(
        deadline,
        chain.epoch_end(0) + chain.params().storage_proof_deadline_blocks
    );
    chain.advance_to(deadline);
    let e = reject(
        &mut chain,
        &storage(2),
        submit_proofs(1, vec![proofs[2].clone()]),
    );
    assert!(
        matches!(e, TxError::DeadlinePassed { deadline: d, height } if d == deadline && height == deadline + 1),
        "{e:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Compute challenges.

#[test]
fn compute_challenge_rejections() {
    let mut chain = Chain::sim(2);
    let (g0, g1) = (prover(0), prover(1));
    let c0 = challenge_of(&chain, &g0.address(), 0);
    let c1 = challenge_of(&chain, &g1.address(), 0);
    let (tree0, product0) = honest_product(&c0);
    let unknown = ChallengeId(999);
    let e = reject(&mut chain, &g0, commit(unknown, tree0.root()));
    assert!(
        matches!(e, TxError::UnknownComputeChallenge { challenge } if challenge == unknown),
        "{e:?}"
    );
    let e = reject(
        &mut chain,
        &g0,
        TxBody::OpenCompute(cairn_types::tx::OpenCompute {
            challenge: unknown,
            first_opening: 0,
            openings: BoundedVec::default(),
        }),
    );
    assert!(
        matches!(e, TxError::UnknownComputeChallenge { .. }),
        "{e:?}"
    );
    // Someone else's challenge.
    let e = reject(&mut chain, &g1, commit(c0.id, tree0.root()));
    assert!(
        matches!(e, TxError::NotChallengedProvider { provider } if provider == g0.address()),
        "{e:?}"
    );
    // Opening before committing.
    let e = reject(
        &mut chain,
        &g0,
        TxBody::OpenCompute(cairn_types::tx::OpenCompute {
            challenge: c0.id,
            first_opening: 0,
            openings: BoundedVec::default(),
        }),
    );
    assert!(
        matches!(&e, TxError::ChallengeWrongStatus { status, expected } if status == "issued" && expected == "committed"),
        "{e:?}"
    );
    chain.ok(&g0, commit(c0.id, tree0.root()));
    // Committing twice.
    let e = reject(&mut chain, &g0, commit(c0.id, tree0.root()));
    assert!(
        matches!(&e, TxError::ChallengeWrongStatus { status, expected } if status == "committed" && expected == "issued"),
        "{e:?}"
    );
    let opening = open(&chain, c0.id, &tree0, &product0);
    let e = reject(&mut chain, &g1, opening);
    assert!(matches!(e, TxError::NotChallengedProvider { .. }), "{e:?}");
    // A late commitment.
    let late = chain.next_height();
    assert!(late > c1.commit_deadline);
    let e = reject(&mut chain, &g1, commit(c1.id, Hash::ZERO));
    assert!(
        matches!(e, TxError::DeadlinePassed { deadline, height } if deadline == c1.commit_deadline && height == late),
        "{e:?}"
    );
    // A late opening.
    let ComputePhase::Committed { open_deadline, .. } =
        chain.state().compute_challenges[&c0.id].phase
    else {
        panic!("committed");
    };
    chain.advance_to(open_deadline);
    let opening = open(&chain, c0.id, &tree0, &product0);
    let e = reject(&mut chain, &g0, opening);
    assert!(
        matches!(e, TxError::DeadlinePassed { deadline, height } if deadline == open_deadline && height == deadline + 1),
        "{e:?}"
    );
}

#[test]
fn compute_openings_arrive_in_parts() {
    // Default challenges open 700 entries, more than one transaction carries: openings come
    // in consecutive parts, each verified as it lands; the verdict comes with the last part.
    let mut chain = Chain::sim(1);
    let g = prover(0);
    let c = challenge_of(&chain, &g.address(), 0);
    let (tree, product) = honest_product(&c);
    chain.ok(&g, commit(c.id, tree.root()));
    let TxBody::OpenCompute(all) = open(&chain, c.id, &tree, &product) else {
        panic!("an opening");
    };
    let openings = all.openings.0.clone();
    assert_eq!(openings.len(), usize::from(c.openings));
    let part = |first: usize, len: usize| {
        TxBody::OpenCompute(cairn_types::tx::OpenCompute {
            challenge: c.id,
            first_opening: u16::try_from(first).unwrap(),
            openings: BoundedVec::new(openings[first..first + len].to_vec()).unwrap(),
        })
    };
    let half = openings.len() / 2;
    // Starting anywhere but at 0 is out of order.
    let e = reject(&mut chain, &g, part(1, 2));
    assert!(
        matches!(
            e,
            TxError::OpeningsOutOfOrder {
                expected: 0,
                got: 1
            }
        ),
        "{e:?}"
    );
    chain.ok(&g, part(0, half));
    assert!(matches!(
        chain.state().compute_challenges[&c.id].phase,
        ComputePhase::Committed { opened, .. } if usize::from(opened) == half
    ));
    // The same part again is out of order now; running past the end is refused.
    let e = reject(&mut chain, &g, part(0, half));
    assert!(matches!(e, TxError::OpeningsOutOfOrder { .. }), "{e:?}");
    let mut too_many = openings[half..].to_vec();
    too_many.push(openings[0].clone());
    let e = reject(
        &mut chain,
        &g,
        TxBody::OpenCompute(cairn_types::tx::OpenCompute {
            challenge: c.id,
            first_opening: u16::try_from(half).unwrap(),
            openings: BoundedVec::new(too_many).unwrap(),
        }),
    );
    assert!(
        matches!(e, TxError::OpeningsBeyondChallenge { .. }),
        "{e:?}"
    );
    chain.ok(&g, part(half, openings.len() - half));
    assert!(matches!(
        chain.state().compute_challenges[&c.id].phase,
        ComputePhase::Passed { .. }
    ));
}

// ---------------------------------------------------------------------------------------
// Compute market.

#[test]
fn unknown_order() {
    let mut chain = Chain::sim(0);
    let order = OrderId(9);
    let e = reject(
        &mut chain,
        &alice(),
        TxBody::CancelOrder(OrderRef { order }),
    );
    assert!(
        matches!(e, TxError::UnknownOrder { order: o } if o == order),
        "{e:?}"
    );
    let e = reject(
        &mut chain,
        &compute(1),
        bid(order, 1_000, fitting_hardware()),
    );
    assert!(matches!(e, TxError::UnknownOrder { .. }), "{e:?}");
    let e = reject(&mut chain, &alice(), accept(order, &compute(1)));
    assert!(matches!(e, TxError::UnknownOrder { .. }), "{e:?}");
}

#[test]
fn not_order_owner() {
    let mut chain = Chain::sim(0);
    let order = new_order(&mut chain, &alice(), resources(), 3);
    chain.ok(&compute(1), bid(order, 8_000, fitting_hardware()));
    for body in [
        TxBody::CancelOrder(OrderRef { order }),
        accept(order, &compute(1)),
    ] {
        let e = reject(&mut chain, &bob(), body);
        assert!(
            matches!(e, TxError::NotOrderOwner { order: o, sender } if o == order && sender == bob().address()),
            "{e:?}"
        );
    }
}

#[test]
fn order_not_open() {
    let mut chain = Chain::sim(0);
    let cancelled = new_order(&mut chain, &alice(), resources(), 3);
    chain.ok(&alice(), TxBody::CancelOrder(OrderRef { order: cancelled }));
    assert_eq!(
        chain.state().orders[&cancelled].status,
        OrderStatus::Cancelled
    );
    let not_open = |e: &TxError, order: OrderId, expected: &str| matches!(e, TxError::OrderNotOpen { order: o, status } if *o == order && status == expected);
    let e = reject(
        &mut chain,
        &alice(),
        TxBody::CancelOrder(OrderRef { order: cancelled }),
    );
    assert!(not_open(&e, cancelled, "cancelled"), "{e:?}");
    let e = reject(
        &mut chain,
        &compute(1),
        bid(cancelled, 1_000, fitting_hardware()),
    );
    assert!(not_open(&e, cancelled, "cancelled"), "{e:?}");
    let lease = new_lease(&mut chain);
    let matched = chain.state().leases[&lease].order;
    let e = reject(
        &mut chain,
        &compute(0),
        bid(matched, 1_000, fitting_hardware()),
    );
    assert!(not_open(&e, matched, "matched"), "{e:?}");
    let e = reject(&mut chain, &alice(), accept(matched, &compute(1)));
    assert!(not_open(&e, matched, "matched"), "{e:?}");
}

#[test]
fn bid_and_accept_windows_closed() {
    let mut chain = Chain::sim(0);
    let order = new_order(&mut chain, &alice(), resources(), 2);
    let o = chain.state().orders[&order].clone();
    assert_eq!(o.bid_deadline, o.created_height + 2);
    assert_eq!(
        o.accept_deadline,
        o.bid_deadline + chain.params().accept_window_blocks
    );
    chain.ok(&compute(1), bid(order, 8_000, fitting_hardware()));
    chain.advance_to(o.bid_deadline);
    let e = reject(
        &mut chain,
        &compute(0),
        bid(order, 7_000, fitting_hardware()),
    );
    assert!(
        matches!(e, TxError::BidWindowClosed { deadline } if deadline == o.bid_deadline),
        "{e:?}"
    );
    chain.advance_to(o.accept_deadline);
    assert!(
        chain.next_height() < chain.epoch_end(0),
        "still open until the epoch sweep"
    );
    let e = reject(&mut chain, &alice(), accept(order, &compute(1)));
    assert!(
        matches!(e, TxError::AcceptWindowClosed { deadline } if deadline == o.accept_deadline),
        "{e:?}"
    );
}

#[test]
fn bid_window() {
    let mut chain = Chain::sim(0);
    let maximum = chain.params().max_bid_window_blocks;
    for window in [0, maximum + 1] {
        let e = reject(
            &mut chain,
            &alice(),
            order_body(resources(), MAX_PRICE, Amount(MAX_PRICE.0 * 10), window),
        );
        assert!(
            matches!(e, TxError::BidWindow { blocks, maximum: m } if blocks == window && m == maximum),
            "{e:?}"
        );
    }
}

#[test]
fn price_above_max() {
    let mut chain = Chain::sim(0);
    let order = new_order(&mut chain, &alice(), resources(), 3);
    let e = reject(
        &mut chain,
        &compute(1),
        bid(order, MAX_PRICE.0 + 1, fitting_hardware()),
    );
    assert!(
        matches!(e, TxError::PriceAboveMax { price, maximum } if price == Amount(MAX_PRICE.0 + 1) && maximum == MAX_PRICE),
        "{e:?}"
    );
}

#[test]
fn hardware_mismatch() {
    let mut chain = Chain::sim(0);
    let order = new_order(&mut chain, &alice(), resources(), 3);
    let too_small = hardware(1_999, 4 * GIB, 10 * GIB, vec![]);
    let e = reject(&mut chain, &compute(1), bid(order, 8_000, too_small));
    assert!(
        matches!(&e, TxError::HardwareMismatch { detail } if detail.contains("millicores")),
        "{e:?}"
    );
    let gpu_order = Resources {
        gpu_count: 1,
        gpu_vendor: s("nvidia"),
        gpu_model: s("h100"),
        min_vram_mib: 40_000,
        ..resources()
    };
    let order = new_order(&mut chain, &alice(), gpu_order, 3);
    let wrong_model = hardware(2_000, 4 * GIB, 10 * GIB, vec![a100()]);
    let e = reject(&mut chain, &compute(0), bid(order, 8_000, wrong_model));
    assert!(
        matches!(&e, TxError::HardwareMismatch { detail } if detail.contains("model")),
        "{e:?}"
    );
    // Any model will do, but a bid may only offer GPUs the provider declared (an H100 here).
    let any_gpu = Resources {
        gpu_count: 1,
        ..resources()
    };
    let order = new_order(&mut chain, &alice(), any_gpu, 3);
    let undeclared = hardware(2_000, 4 * GIB, 10 * GIB, vec![a100()]);
    let e = reject(&mut chain, &compute(0), bid(order, 8_000, undeclared));
    assert!(
        matches!(&e, TxError::HardwareMismatch { detail } if detail.contains("not among the declared")),
        "{e:?}"
    );
}

#[test]
fn insufficient_capacity() {
    let mut chain = Chain::sim(0);
    let order = new_order(&mut chain, &alice(), resources(), 3);
    let huge = hardware(32_000, 4 * GIB, 10 * GIB, vec![]);
    let e = reject(&mut chain, &compute(1), bid(order, 8_000, huge));
    assert!(
        matches!(&e, TxError::InsufficientCapacity { resource, needed: 32_000, free: 16_000 } if resource == "cpu_millicores"),
        "{e:?}"
    );
    // A GPU from a provider that declares none.
    let gpu_hw = hardware(2_000, 4 * GIB, 10 * GIB, vec![h100()]);
    let e = reject(&mut chain, &compute(1), bid(order, 8_000, gpu_hw));
    assert!(
        matches!(&e, TxError::InsufficientCapacity { resource, needed: 1, free: 0 } if resource == "gpus"),
        "{e:?}"
    );
    // Capacity taken between bid and accept: two 10-core orders, one 16-core provider.
    let big = Resources {
        cpu_millicores: 10_000,
        ..resources()
    };
    let first = new_order(&mut chain, &alice(), big.clone(), 3);
    let second = new_order(&mut chain, &alice(), big, 3);
    let ten_cores = hardware(10_000, 4 * GIB, 10 * GIB, vec![]);
    chain.run(vec![
        (&compute(1), bid(first, 8_000, ten_cores.clone())),
        (&compute(1), bid(second, 8_000, ten_cores)),
    ]);
    chain.ok(&alice(), accept(first, &compute(1)));
    let e = reject(&mut chain, &alice(), accept(second, &compute(1)));
    assert!(
        matches!(&e, TxError::InsufficientCapacity { resource, needed: 10_000, free: 6_000 } if resource == "cpu_millicores"),
        "{e:?}"
    );
    // Storage: a shard larger than the provider's free disk.
    let meta = big_blob(2, 1, 20 * GIB);
    let e = reject(
        &mut chain,
        &alice(),
        create_deal(&meta, &addresses(&three_storage()), 1, Amount(1), crn(1)),
    );
    assert!(
        matches!(&e, TxError::InsufficientCapacity { resource, needed, free }
            if resource.starts_with("storage bytes") && *needed == 20 * GIB && *free == 10 * GIB),
        "{e:?}"
    );
}

/// A blob with placeholder roots (creating a deal checks the id, not the bytes).
fn big_blob(data: u16, parity: u16, shard: u64) -> BlobMeta {
    let roots: Vec<Hash> = (0..data + parity)
        .map(|i| Hash::domain("ledger-it.fake-root", &[&i.to_be_bytes()]))
        .collect();
    let size = shard * u64::from(data);
    BlobMeta {
        id: cairn_types::ids::blob_id(size, data, parity, shard, 65_536, &roots),
        size_bytes: size,
        data_shards: data,
        parity_shards: parity,
        shard_size_bytes: shard,
        leaf_size_bytes: 65_536,
        shard_roots: BoundedVec::new(roots).unwrap(),
    }
}

#[test]
fn leases_and_deals_share_one_disk() {
    // A provider's declared storage serves both lease disks and deal shards; neither market
    // may book what the other already holds.
    let mut chain = Chain::sim(0);
    let disk_order = Resources {
        storage_bytes: 90 * GIB,
        ..resources()
    };
    let order = new_order(&mut chain, &alice(), disk_order, 3);
    let ninety = hardware(2_000, 4 * GIB, 90 * GIB, vec![]);
    chain.ok(&compute(1), bid(order, 8_000, ninety));
    chain.ok(&alice(), accept(order, &compute(1)));
    let pair = [compute(0).address(), compute(1).address()];
    let meta = big_blob(1, 1, 20 * GIB);
    let e = reject(
        &mut chain,
        &bob(),
        create_deal(&meta, &pair, 1, Amount(1), crn(1)),
    );
    assert!(
        matches!(&e, TxError::InsufficientCapacity { resource, needed, free }
            if resource.ends_with(&compute(1).address().to_string()) && *needed == 20 * GIB && *free == 10 * GIB),
        "{e:?}"
    );
    // And the other way round: deal shards count against a bid's disk.
    let meta = big_blob(1, 0, 60 * GIB);
    chain.ok(
        &bob(),
        create_deal(&meta, &[compute(0).address()], 1, Amount(1), crn(1)),
    );
    let disk_order = Resources {
        storage_bytes: 50 * GIB,
        ..resources()
    };
    let order = new_order(&mut chain, &alice(), disk_order, 3);
    let fifty = hardware(2_000, 4 * GIB, 50 * GIB, vec![]);
    let e = reject(&mut chain, &compute(0), bid(order, 8_000, fifty));
    assert!(
        matches!(&e, TxError::InsufficientCapacity { resource, needed, free }
            if resource == "storage_bytes" && *needed == 50 * GIB && *free == 40 * GIB),
        "{e:?}"
    );
}

#[test]
fn unknown_bid() {
    let mut chain = Chain::sim(0);
    let order = new_order(&mut chain, &alice(), resources(), 3);
    chain.ok(&compute(1), bid(order, 8_000, fitting_hardware()));
    let e = reject(&mut chain, &alice(), accept(order, &compute(0)));
    assert!(
        matches!(e, TxError::UnknownBid { provider } if provider == compute(0).address()),
        "{e:?}"
    );
}

#[test]
fn unknown_lease() {
    let mut chain = Chain::sim(0);
    let lease = LeaseId(5);
    for (key, body) in [
        (
            alice(),
            TxBody::TopUpLease(TopUpLease {
                lease,
                amount: crn(1),
            }),
        ),
        (alice(), close(lease, "done")),
        (compute(1), TxBody::WithdrawLease(LeaseRef { lease })),
        (compute(1), started(lease)),
    ] {
        let e = reject(&mut chain, &key, body);
        assert!(
            matches!(e, TxError::UnknownLease { lease: l } if l == lease),
            "{e:?}"
        );
    }
}

#[test]
fn not_lease_party() {
    let mut chain = Chain::sim(0);
    let lease = new_lease(&mut chain);
    let e = reject(&mut chain, &bob(), close(lease, "not mine"));
    assert!(
        matches!(e, TxError::NotLeaseParty { lease: l, sender } if l == lease && sender == bob().address()),
        "{e:?}"
    );
    // Only the provider withdraws.
    let e = reject(
        &mut chain,
        &alice(),
        TxBody::WithdrawLease(LeaseRef { lease }),
    );
    assert!(
        matches!(e, TxError::NotLeaseParty { sender, .. } if sender == alice().address()),
        "{e:?}"
    );
}

#[test]
fn lease_closed() {
    let mut chain = Chain::sim(0);
    let lease = new_lease(&mut chain);
    chain.ok(&alice(), close(lease, "finished"));
    for (key, body) in [
        (
            alice(),
            TxBody::TopUpLease(TopUpLease {
                lease,
                amount: crn(1),
            }),
        ),
        (alice(), close(lease, "again")),
        (compute(1), close(lease, "again")),
        (compute(1), TxBody::WithdrawLease(LeaseRef { lease })),
        (compute(1), started(lease)),
    ] {
        let e = reject(&mut chain, &key, body);
        assert!(
            matches!(e, TxError::LeaseClosed { lease: l } if l == lease),
            "{e:?}"
        );
    }
}

#[test]
fn lease_start_rejections() {
    let mut chain = Chain::sim(0);
    let order = new_order(&mut chain, &alice(), resources(), 3);
    chain.ok(&compute(1), bid(order, 8_000, fitting_hardware()));
    chain.ok(&alice(), accept(order, &compute(1)));
    let lease = LeaseId(chain.state().counters.lease - 1);
    // Only the provider reports a start: not the tenant (who would bill itself), not anyone.
    for key in [alice(), bob(), compute(0)] {
        let e = reject(&mut chain, &key, started(lease));
        assert!(
            matches!(e, TxError::NotLeaseProvider { lease: l, provider, sender }
                if l == lease && provider == compute(1).address() && sender == key.address()),
            "{e:?}"
        );
    }
    assert!(matches!(
        chain.state().leases[&lease].state,
        LeaseState::Starting { .. }
    ));
    // Once: a second report would move the start of billing.
    chain.ok(&compute(1), started(lease));
    let e = reject(&mut chain, &compute(1), started(lease));
    assert!(
        matches!(&e, TxError::LeaseNotStarting { lease: l, state } if *l == lease && state == "active"),
        "{e:?}"
    );
    assert_eq!(e.code(), "lease_not_starting");
}

/// `Overflow` is a backstop for arithmetic on amounts that are not balances: prices and
/// terms a transaction names. Balances cannot overflow (they are bounded by the supply), so a
/// huge amount to move is refused as `InsufficientBalance`; a huge price or term whose
/// product does not fit in u128/u64 is refused as `Overflow` with its context.
#[test]
fn overflow_and_huge_amounts() {
    let mut chain = Chain::sim(0);
    let huge = Amount(u128::MAX / 2);
    for body in [
        transfer(&bob(), huge),
        delegate(&storage(0), huge),
        order_body(resources(), Amount(1), huge, 3),
    ] {
        let e = reject(&mut chain, &alice(), body);
        assert!(
            matches!(e, TxError::InsufficientBalance { needed, .. } if needed == huge),
            "{e:?}"
        );
    }
    let e = reject(
        &mut chain,
        &storage(0),
        TxBody::Bond(StakeAmount { amount: huge }),
    );
    assert!(matches!(e, TxError::InsufficientBalance { .. }), "{e:?}");
    // max price × min_lease_deposit_blocks does not fit.
    let e = reject(&mut chain, &alice(), order_body(resources(), huge, huge, 3));
    assert!(
        matches!(&e, TxError::Overflow { context } if context == "deposit"),
        "{e:?}"
    );
    // price per GiB-epoch × size does not fit.
    let b = blob3(15);
    let e = reject(
        &mut chain,
        &alice(),
        create_deal(
            &b.meta,
            &addresses(&three_storage()),
            2,
            Amount(u128::MAX),
            crn(1),
        ),
    );
    assert!(
        matches!(&e, TxError::Overflow { context } if context == "deal cost"),
        "{e:?}"
    );
    // The term does not fit in u64.
    let deal = new_deal(&mut chain, &b);
    let e = reject(
        &mut chain,
        &alice(),
        TxBody::ExtendDeal(ExtendDeal {
            deal,
            extra_epochs: u64::MAX,
            amount: crn(1),
        }),
    );
    assert!(
        matches!(&e, TxError::Overflow { context } if context == "deal term"),
        "{e:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Admission and block errors: the whole block is refused and nothing changes.

fn raw_tx(key: &Keypair, chain_id: &str, nonce: u64, fee: Amount) -> SignedTransaction {
    Transaction {
        chain_id: s(chain_id),
        sender: key.public_key().clone(),
        nonce,
        fee,
        body: transfer(&bob(), crn(1)),
    }
    .sign(key)
}

/// Refuses `txs` as a block with `Inadmissible` at `index`, checks `admit` agrees on the
/// transaction alone, shows that the chain then goes on with a valid block, and returns the
/// admission error.
fn inadmissible(chain: &mut Chain, txs: Vec<SignedTransaction>, index: usize) -> AdmissionError {
    let block = chain.block(txs.clone());
    let e = refuse_block(chain, &block);
    let BlockError::Inadmissible {
        index: i,
        tx,
        source,
    } = e
    else {
        panic!("expected Inadmissible, got {e:?}");
    };
    assert_eq!(i, index);
    assert_eq!(tx, txs[index].hash());
    // The chain is not stuck: a valid block at the same height applies.
    let mut probe = Chain {
        ledger: chain.ledger.clone(),
        proposer: chain.proposer,
    };
    probe.ok(&carol(), transfer(&dave(), crn(1)));
    source
}

#[test]
fn wrong_chain() {
    let mut chain = Chain::sim(0);
    let tx = raw_tx(&alice(), "cairn-other", 0, chain.fee());
    let e = chain.ledger.admit(&tx, 0, Amount::ZERO).unwrap_err();
    assert!(
        matches!(&e, AdmissionError::WrongChain { expected, got } if expected == CHAIN_ID && got == "cairn-other"),
        "{e:?}"
    );
    let e = inadmissible(&mut chain, vec![tx], 0);
    assert!(matches!(e, AdmissionError::WrongChain { .. }), "{e:?}");
}

#[test]
fn bad_signature() {
    let mut chain = Chain::sim(0);
    // Signed, then altered: the fee no longer matches the signature.
    let mut altered = chain.tx(&alice(), transfer(&bob(), crn(1)));
    altered.tx.fee = Amount(altered.tx.fee.0 + 1);
    // Signed by bob, sent as alice.
    let mut impostor = chain.tx(&bob(), transfer(&carol(), crn(1)));
    impostor.tx.sender = alice().public_key().clone();
    impostor.tx.nonce = 0;
    for tx in [altered, impostor] {
        let e = chain.ledger.admit(&tx, 0, Amount::ZERO).unwrap_err();
        assert!(
            matches!(e, AdmissionError::BadSignature { sender } if sender == alice().address()),
            "{e:?}"
        );
        // Behind a valid transaction, so the batch check has to find the culprit.
        let valid = chain.tx(&carol(), transfer(&dave(), crn(1)));
        let e = inadmissible(&mut chain, vec![valid, tx], 1);
        assert!(
            matches!(e, AdmissionError::BadSignature { sender } if sender == alice().address()),
            "{e:?}"
        );
    }
}

#[test]
fn bad_nonce() {
    let mut chain = Chain::sim(0);
    let ahead = chain.sign(&alice(), 1, chain.fee(), transfer(&bob(), crn(1)));
    let e = chain.ledger.admit(&ahead, 0, Amount::ZERO).unwrap_err();
    assert!(
        matches!(e, AdmissionError::BadNonce { sender, expected: 0, got: 1 } if sender == alice().address()),
        "{e:?}"
    );
    assert_eq!(chain.ledger.admit(&ahead, 1, Amount::ZERO), Ok(()));
    let e = inadmissible(&mut chain, vec![ahead], 0);
    assert!(
        matches!(
            e,
            AdmissionError::BadNonce {
                expected: 0,
                got: 1,
                ..
            }
        ),
        "{e:?}"
    );
    // Two transactions with the same nonce in one block: the second is a replay.
    let first = chain.sign(&alice(), 0, chain.fee(), transfer(&bob(), crn(1)));
    let again = chain.sign(&alice(), 0, chain.fee(), transfer(&carol(), crn(1)));
    let e = inadmissible(&mut chain, vec![first, again], 1);
    assert!(
        matches!(
            e,
            AdmissionError::BadNonce {
                expected: 1,
                got: 0,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn replayed_transaction_is_bad_nonce() {
    let mut chain = Chain::sim(0);
    let executed = chain.tx(&alice(), transfer(&bob(), crn(1)));
    chain.apply(vec![executed.clone()]);
    let e = inadmissible(&mut chain, vec![executed.clone()], 0);
    assert!(
        matches!(e, AdmissionError::BadNonce { sender, expected: 1, got: 0 } if sender == alice().address()),
        "{e:?}"
    );
    // A transaction that failed consumed its nonce too: it cannot run later when it would
    // succeed.
    let balance = chain.balance(&bob().address());
    let failed = chain.tx(&bob(), transfer(&carol(), Amount(balance.0 + crn(10).0)));
    let outcome = chain.apply(vec![failed.clone()]);
    assert!(matches!(
        outcome.receipts[0].error,
        Some(TxError::InsufficientBalance { .. })
    ));
    chain.ok(&alice(), transfer(&bob(), crn(100)));
    let e = inadmissible(&mut chain, vec![failed.clone()], 0);
    assert!(
        matches!(
            e,
            AdmissionError::BadNonce {
                expected: 1,
                got: 0,
                ..
            }
        ),
        "{e:?}"
    );
    let bytes = failed.to_bytes();
    let decoded = SignedTransaction::from_bytes(&bytes).unwrap();
    assert_eq!(decoded, failed);
    let e = chain.ledger.admit(
        &decoded,
        chain.state().nonce(&bob().address()),
        Amount::ZERO,
    );
    assert!(matches!(e, Err(AdmissionError::BadNonce { .. })), "{e:?}");
}

#[test]
fn fee_too_low() {
    let mut chain = Chain::sim(0);
    let minimum = chain.fee();
    let cheap = chain.sign(&alice(), 0, Amount(minimum.0 - 1), transfer(&bob(), crn(1)));
    let e = chain.ledger.admit(&cheap, 0, Amount::ZERO).unwrap_err();
    assert!(
        matches!(e, AdmissionError::FeeTooLow { fee, minimum: m } if fee == Amount(minimum.0 - 1) && m == minimum),
        "{e:?}"
    );
    let e = inadmissible(&mut chain, vec![cheap], 0);
    assert!(matches!(e, AdmissionError::FeeTooLow { .. }), "{e:?}");
}

#[test]
fn oversized_transaction() {
    // Every field within its own bound, the whole above MAX_TX_BYTES: 4096 openings of a
    // 48-deep path are about 6.4 MB.
    let mut chain = Chain::sim(0);
    let opening = cairn_types::proof::ComputeOpening {
        entry_index: 0,
        leaf: [0; 4],
        path: cairn_types::BoundedVec::new(vec![Hash::ZERO; 48]).unwrap(),
    };
    let body = TxBody::OpenCompute(cairn_types::tx::OpenCompute {
        challenge: cairn_types::ChallengeId(0),
        first_opening: 0,
        openings: cairn_types::BoundedVec::new(vec![opening; 4096]).unwrap(),
    });
    let fee = chain.fee();
    let big = chain.sign(&alice(), 0, fee, body);
    let e = chain.ledger.admit(&big, 0, Amount::ZERO).unwrap_err();
    assert!(
        matches!(e, AdmissionError::TooLarge { size_bytes, limit_bytes }
            if size_bytes > limit_bytes && limit_bytes == cairn_types::tx::MAX_TX_BYTES),
        "{e:?}"
    );
    let e = inadmissible(&mut chain, vec![big], 0);
    assert!(matches!(e, AdmissionError::TooLarge { .. }), "{e:?}");
}

/// Before signing, a client learns that a fee cannot be paid or is too low (it would be
/// refused at admission), and that a body would fail (its fee would be charged); every body
/// refusal of [`reject`] is predicted the same way.
#[test]
fn preview_refuses_before_the_fee_is_paid() {
    use cairn_ledger::PreviewError;
    let chain = Chain::sim(0);
    let fee = chain.fee();
    let before = chain.ledger.clone();
    assert_eq!(
        chain
            .ledger
            .preview(pauper().address(), fee, &transfer(&bob(), Amount(1))),
        Err(PreviewError::Admission(AdmissionError::CannotPayFee {
            sender: pauper().address(),
            needed: fee,
            available: Amount::ZERO
        }))
    );
    assert!(matches!(
        chain.ledger.preview(
            alice().address(),
            Amount(fee.0 - 1),
            &transfer(&bob(), Amount(1))
        ),
        Err(PreviewError::Admission(AdmissionError::FeeTooLow { .. }))
    ));
    // The body sees the balance after its fee: all of it is an overdraft, all but the fee
    // is not.
    let balance = chain.balance(&alice().address());
    assert!(matches!(
        chain
            .ledger
            .preview(alice().address(), fee, &transfer(&bob(), balance)),
        Err(PreviewError::Body(TxError::InsufficientBalance { .. }))
    ));
    assert_eq!(
        chain.ledger.preview(
            alice().address(),
            fee,
            &transfer(&bob(), Amount(balance.0 - fee.0))
        ),
        Ok(())
    );
    assert_eq!(chain.ledger, before, "asking changed nothing");
}

#[test]
fn cannot_pay_fee() {
    let mut chain = Chain::sim(0);
    let fee = chain.fee();
    let broke = chain.sign(&pauper(), 0, fee, transfer(&bob(), Amount(1)));
    let e = chain.ledger.admit(&broke, 0, Amount::ZERO).unwrap_err();
    assert!(
        matches!(e, AdmissionError::CannotPayFee { sender, needed, available: Amount::ZERO }
            if sender == pauper().address() && needed == fee),
        "{e:?}"
    );
    let e = inadmissible(&mut chain, vec![broke], 0);
    assert!(matches!(e, AdmissionError::CannotPayFee { .. }), "{e:?}");
    // Enough for one fee but not two in the same block.
    let budget = Amount(fee.0 + fee.0 / 2);
    chain.ok(&alice(), transfer(&pauper(), budget));
    let txs: Vec<SignedTransaction> = (0..2)
        .map(|n| chain.sign(&pauper(), n, fee, transfer(&bob(), Amount(1))))
        .collect();
    assert_eq!(chain.ledger.admit(&txs[0], 0, Amount::ZERO), Ok(()));
    let e = chain.ledger.admit(&txs[1], 1, fee).unwrap_err();
    assert!(
        matches!(e, AdmissionError::CannotPayFee { needed, available, .. } if needed == Amount(2 * fee.0) && available == budget),
        "{e:?}"
    );
    let e = inadmissible(&mut chain, txs, 1);
    assert!(
        matches!(e, AdmissionError::CannotPayFee { needed, available, .. } if needed == Amount(2 * fee.0) && available == budget),
        "{e:?}"
    );
    // Pending fees that overflow are refused, not wrapped.
    let one = chain.sign(
        &alice(),
        chain.state().nonce(&alice().address()),
        fee,
        transfer(&bob(), Amount(1)),
    );
    let e = chain
        .ledger
        .admit(&one, one.tx.nonce, Amount(u128::MAX))
        .unwrap_err();
    assert!(
        matches!(
            e,
            AdmissionError::CannotPayFee {
                needed: Amount(u128::MAX),
                ..
            }
        ),
        "{e:?}"
    );
}

fn block_with(chain: &Chain, height: u64, parent: Hash, timestamp: u64) -> Block {
    let txs = vec![chain.tx(&alice(), transfer(&bob(), crn(1)))];
    Block::new(
        height,
        parent,
        timestamp,
        chain.proposer,
        Chain::seed_of(height),
        txs,
    )
    .unwrap()
    .with_state_root(chain.ledger.root())
}

#[test]
fn wrong_height() {
    let mut chain = Chain::sim(0);
    chain.empty();
    let parent = chain.state().last_block_hash;
    let ts = chain.timestamp_of(3);
    for height in [1, 3] {
        let block = block_with(&chain, height, parent, ts);
        let e = refuse_block(&mut chain, &block);
        assert!(
            matches!(e, BlockError::WrongHeight { expected: 2, got } if got == height),
            "{e:?}"
        );
    }
}

#[test]
fn wrong_parent() {
    let mut chain = Chain::sim(0);
    let genesis_hash = chain.state().last_block_hash;
    chain.empty();
    let tip = chain.state().last_block_hash;
    for parent in [Hash::ZERO, genesis_hash] {
        let block = block_with(&chain, 2, parent, chain.timestamp_of(2));
        let e = refuse_block(&mut chain, &block);
        assert!(
            matches!(e, BlockError::WrongParent { expected, got } if expected == tip && got == parent),
            "{e:?}"
        );
    }
}

#[test]
fn timestamp_decreased() {
    let mut chain = Chain::sim(0);
    chain.empty();
    let parent_ms = chain.state().last_timestamp_ms;
    let block = block_with(&chain, 2, chain.state().last_block_hash, parent_ms - 1);
    let e = refuse_block(&mut chain, &block);
    assert!(
        matches!(e, BlockError::TimestampDecreased { parent_ms: p, got_ms } if p == parent_ms && got_ms == parent_ms - 1),
        "{e:?}"
    );
    // An equal timestamp is fine.
    let same = block_with(&chain, 2, chain.state().last_block_hash, parent_ms);
    chain.apply_block(&same);
}

#[test]
fn tx_root_mismatch() {
    let mut chain = Chain::sim(0);
    let txs = chain.txs(vec![
        (&alice(), transfer(&bob(), crn(1))),
        (&carol(), transfer(&dave(), crn(1))),
    ]);
    let mut swapped = chain.block(txs.clone());
    swapped.txs.0.swap(0, 1);
    let mut dropped = chain.block(txs.clone());
    dropped.txs.0.pop();
    let mut zeroed = chain.block(txs);
    zeroed.header.tx_root = Hash::ZERO;
    for block in [swapped, dropped, zeroed] {
        let e = refuse_block(&mut chain, &block);
        assert!(
            matches!(e, BlockError::TxRootMismatch { expected, got }
                if expected == cairn_types::block::tx_root(&block.txs.0) && got == block.header.tx_root),
            "{e:?}"
        );
    }
}

#[test]
fn state_root_mismatch() {
    let mut chain = Chain::sim(0);
    chain.empty();
    let mut block = chain.block(vec![chain.tx(&alice(), transfer(&bob(), crn(1)))]);
    let parent_root = block.header.state_root;
    block.header.state_root = Hash::of(b"a different history");
    let e = refuse_block(&mut chain, &block);
    assert!(
        matches!(e, BlockError::StateRootMismatch { expected, got }
            if expected == parent_root && got == block.header.state_root),
        "{e:?}"
    );
}

#[test]
fn refused_block_keeps_earlier_valid_transactions_out() {
    // A block whose first transaction is valid and whose second is not changes nothing at
    // all: not even the first transaction's fee or nonce.
    let mut chain = Chain::sim(0);
    let valid = chain.tx(&alice(), transfer(&bob(), crn(5)));
    let stale = chain.sign(&carol(), 7, chain.fee(), transfer(&dave(), crn(1)));
    let e = inadmissible(&mut chain, vec![valid.clone(), stale], 1);
    assert!(
        matches!(
            e,
            AdmissionError::BadNonce {
                expected: 0,
                got: 7,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(chain.state().nonce(&alice().address()), 0);
    assert_eq!(chain.balance(&alice().address()), crn(USER_BALANCE));
    // The valid transaction still applies on its own.
    chain.apply(vec![valid]);
    assert_eq!(chain.balance(&bob().address()), crn(USER_BALANCE + 5));
}

#[test]
fn every_failed_body_burns_and_books_its_fee() {
    // Several failing transactions from several senders in one block: each pays its own fee,
    // the block books the sum, and the receipts keep their order and reasons.
    let mut chain = Chain::sim(0);
    let before = chain.state().clone();
    let txs = chain.txs(vec![
        (&alice(), transfer(&bob(), Amount::ZERO)),
        (&bob(), undelegate(&storage(0), crn(1))),
        (&alice(), unjail()),
    ]);
    let outcome = chain.apply(txs);
    let reasons: Vec<String> = outcome
        .receipts
        .iter()
        .map(|r| r.error.as_ref().map(TxError::code).unwrap_or_default())
        .collect();
    assert_eq!(
        reasons,
        ["zero_amount", "unknown_delegation", "unknown_provider"]
    );
    let fee = chain.fee();
    let (burn, treasury) = fee_split(chain.params(), fee);
    assert_eq!(
        chain.balance(&alice().address()),
        Amount(crn(USER_BALANCE).0 - 2 * fee.0)
    );
    assert_eq!(chain.state().nonce(&alice().address()), 2);
    assert_eq!(chain.state().nonce(&bob().address()), 1);
    assert_eq!(
        chain.state().supply.burned,
        Amount(before.supply.burned.0 + 3 * burn.0)
    );
    assert_eq!(
        chain.state().treasury,
        Amount(before.treasury.0 + 3 * treasury.0)
    );
    let report = &chain.state().epochs[&0];
    assert_eq!(report.revenue.tx_fees, Amount(3 * fee.0));
    assert_eq!(report.burned_fees, Amount(3 * burn.0));
    assert_eq!(report.to_treasury, Amount(3 * treasury.0));
    assert_eq!(chain.state().delegations, before.delegations);
    assert_eq!(chain.state().providers, before.providers);
}
