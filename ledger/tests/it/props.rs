//! Property tests over long random workloads: valid activity from every module plus chaos
//! (random, mostly invalid transactions), across many epoch boundaries.
//!
//! After every block: the supply invariant of design §4 holds and delegation totals agree,
//! and no lease is billed for a block its workload was not reported running in.
//! Balances and escrows are `u128` with checked arithmetic, so "never negative" means no
//! operation ever underflowed: an underflow would surface as an `Overflow` error or a broken
//! invariant, and both fail the test. Replaying the same blocks on a fresh ledger from the
//! same genesis gives the same state root at every height.

use cairn_ledger::sim::{SimConfig, Simulation};
use cairn_ledger::state::LeaseState;
use cairn_ledger::{BlockError, Ledger};
use cairn_types::{Block, Hash};
use proptest::prelude::*;
use std::collections::BTreeSet;

/// Runs `blocks` blocks, checking invariants after each; returns the blocks and roots.
fn run(config: SimConfig, blocks: u64) -> (Simulation, Vec<Block>, Vec<Hash>, BTreeSet<String>) {
    let mut sim = Simulation::new(config).expect("genesis");
    let mut applied = Vec::new();
    let mut roots = Vec::new();
    let mut kinds = BTreeSet::new();
    for _ in 0..blocks {
        let (block, outcome) = sim
            .step()
            .expect("the honest simulated proposer's block applies");
        if let Err(e) = sim.ledger().state().check_invariants() {
            panic!("invariant broken at height {}: {e}", outcome.height);
        }
        check_lease_billing(sim.ledger(), outcome.height);
        for r in &outcome.receipts {
            kinds.insert(format!("{}:{}", r.kind, if r.ok() { "ok" } else { "err" }));
        }
        assert_eq!(outcome.state_root, sim.ledger().root());
        roots.push(outcome.state_root);
        applied.push(block);
    }
    (sim, applied, roots, kinds)
}

/// Failed work is not paid: a lease never reported started has paid nothing, and the
/// epoch sweep after its start deadline has closed it (refunding all escrow: a closed lease
/// holds none). A started lease has paid at most its price for every block since its start.
fn check_lease_billing(ledger: &Ledger, height: u64) {
    let epoch_blocks = ledger.params().epoch_length_blocks;
    for l in ledger.state().leases.values() {
        match l.started_height {
            None => {
                assert!(
                    l.paid_total.is_zero(),
                    "lease {} never started but paid {} (height {height})",
                    l.id,
                    l.paid_total
                );
                if let LeaseState::Starting { deadline } = l.state {
                    assert!(
                        height <= deadline + epoch_blocks,
                        "lease {} still starting at {height}, past its deadline {deadline} and a sweep",
                        l.id
                    );
                }
            }
            Some(started) => {
                let blocks = u128::from(l.settled_through.saturating_sub(started));
                assert!(
                    l.paid_total.ucrn() <= l.price_per_block.ucrn() * blocks,
                    "lease {} paid {} for at most {blocks} blocks at {}",
                    l.id,
                    l.paid_total,
                    l.price_per_block
                );
                assert!(!matches!(l.state, LeaseState::Starting { .. }));
            }
        }
        if let LeaseState::Closed { .. } = l.state {
            assert!(l.escrow.is_zero(), "closed lease {} holds escrow", l.id);
        }
    }
}

fn replay(sim: &Simulation, blocks: &[Block], roots: &[Hash]) {
    let mut fresh = Ledger::from_genesis(sim.genesis()).expect("genesis");
    for (block, root) in blocks.iter().zip(roots) {
        let outcome = fresh.apply_block(block).expect("replay applies");
        assert_eq!(
            &outcome.state_root, root,
            "root differs at height {}",
            outcome.height
        );
    }
    assert_eq!(fresh, *sim.ledger());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn supply_invariant_and_replay(seed in any::<u64>(), chaos in 0u64..80, blocks in 60u64..160) {
        let config = SimConfig { seed, chaos_percent: chaos, chaos_per_block: 6, ..SimConfig::default() };
        let (sim, applied, roots, _) = run(config, blocks);
        replay(&sim, &applied, &roots);
    }

    /// A lease whose provider never reports the start is never billed, whatever the tenant
    /// and provider do meanwhile (top-ups, withdrawals, at any heights), and the epoch sweep
    /// after its deadline closes it with every uCRN of escrow back with the tenant: the
    /// tenant is out exactly its transaction fees, the provider earned nothing.
    #[test]
    fn a_lease_never_started_is_never_billed_and_is_refunded_in_full(
        price in 1u128..50_000,
        deposit_blocks in 5u128..200,
        actions in prop::collection::vec((0u64..4, 0u8..3, 1u128..100_000), 0..12),
    ) {
        use crate::common::{Chain, alice, compute, hardware, GIB};
        use cairn_types::tx::{AcceptBid, CreateOrder, LeaseRef, PlaceBid, TopUpLease};
        use cairn_types::{Amount, Hash, LeaseId, OrderId, Resources, TxBody};
        let mut chain = Chain::sim(0);
        let fee = chain.fee().ucrn();
        let (tenant, provider) = (alice(), compute(1));
        let tenant0 = chain.balance(&tenant.address()).ucrn();
        let provider0 = chain.balance(&provider.address()).ucrn();
        let resources = Resources { cpu_millicores: 1_000, memory_bytes: GIB, ..Resources::default() };
        chain.ok(&tenant, TxBody::CreateOrder(CreateOrder {
            manifest_hash: Hash::domain("ledger-it.manifest", &[b"never"]),
            resources,
            max_price_per_block: Amount(price),
            deposit: Amount(price * deposit_blocks),
            bid_window_blocks: 1,
        }));
        chain.ok(&provider, TxBody::PlaceBid(PlaceBid {
            order: OrderId(0),
            price_per_block: Amount(price),
            hardware: hardware(1_000, GIB, 0, vec![]),
        }));
        chain.ok(&tenant, TxBody::AcceptBid(AcceptBid { order: OrderId(0), provider: provider.address() }));
        let lease = LeaseId(0);
        let LeaseState::Starting { deadline } = chain.state().leases[&lease].state else {
            panic!("an accepted lease starts unbilled");
        };
        prop_assert_eq!(deadline, chain.height() + chain.params().lease_start_timeout_blocks);
        let (mut tenant_fees, mut provider_fees) = (2u128, 1u128);
        for (gap, action, amount) in actions {
            let h = chain.height() + gap;
            chain.advance_to(h);
            let starting = matches!(chain.state().leases[&lease].state, LeaseState::Starting { .. });
            let body_of = |action| match action {
                0 => (true, TxBody::TopUpLease(TopUpLease { lease, amount: Amount(amount) })),
                _ => (false, TxBody::WithdrawLease(LeaseRef { lease })),
            };
            let (is_tenant, body) = body_of(action);
            let key = if is_tenant { &tenant } else { &provider };
            let receipt = chain.exec(key, body);
            if is_tenant { tenant_fees += 1 } else { provider_fees += 1 }
            // A top-up lands only while the lease still starts; it comes back at the close.
            if is_tenant && receipt.ok() {
                prop_assert!(starting);
            }
            prop_assert!(chain.state().leases[&lease].paid_total.is_zero());
        }
        // Through the first epoch end after the deadline: the sweep closes it.
        let len = chain.epoch_length();
        chain.advance_to(((deadline / len + 1) * len).max(chain.height()));
        let l = &chain.state().leases[&lease];
        prop_assert!(matches!(l.state, LeaseState::Closed { .. }), "{:?}", l.state);
        prop_assert!(l.paid_total.is_zero() && l.escrow.is_zero() && l.started_height.is_none());
        prop_assert_eq!(chain.balance(&tenant.address()).ucrn(), tenant0 - tenant_fees * fee);
        prop_assert_eq!(chain.balance(&provider.address()).ucrn(), provider0 - provider_fees * fee);
        prop_assert!(chain.state().epochs.values().all(|e| e.revenue.compute.is_zero()));
    }

    /// A block with one inadmissible transaction is refused whole and changes nothing.
    #[test]
    fn invalid_block_changes_nothing(seed in any::<u64>(), victim in any::<prop::sample::Index>(), mode in 0u8..4) {
        let config = SimConfig { seed, chaos_percent: 50, ..SimConfig::default() };
        let mut sim = Simulation::new(config).expect("genesis");
        for _ in 0..25 {
            sim.step().expect("block applies");
        }
        let mut block = sim.next_block();
        prop_assume!(!block.txs.is_empty());
        let i = victim.index(block.txs.len());
        match mode {
            // A tampered signature.
            0 => block.txs.0[i].tx.fee = block.txs.0[i].tx.fee.checked_add(cairn_types::Amount(1)).expect("fee"),
            // A nonce gap.
            1 => block.txs.0[i].tx.nonce += 5,
            // A foreign chain.
            2 => block.txs.0[i].tx.chain_id = cairn_types::BoundedString::new("other-chain").expect("id"),
            // A replay of the same transaction.
            _ => { let tx = block.txs.0[i].clone(); block.txs.0.push(tx); }
        }
        block.header.tx_root = cairn_types::block::tx_root(&block.txs.0);
        let before = sim.ledger().clone();
        let mut ledger = sim.ledger().clone();
        let result = ledger.apply_block(&block);
        prop_assert!(matches!(result, Err(BlockError::Inadmissible { .. })), "{result:?}");
        prop_assert_eq!(ledger, before);
    }
}

/// The workload reaches every module: each kind of transaction both succeeds and fails
/// somewhere in a long run, so the invariant checks above are not vacuous.
#[test]
fn workload_covers_every_module() {
    // The seed is one whose run reaches every kind below (most do; a change to the
    // generator's draws can move a rare one, such as a successful unjail, out of a seed).
    let config = SimConfig {
        seed: 2,
        chaos_percent: 60,
        chaos_per_block: 6,
        ..SimConfig::default()
    };
    let (sim, _, _, kinds) = run(config, 1_000);
    for kind in [
        "transfer:ok",
        "transfer:err",
        "delegate:ok",
        "undelegate:ok",
        "bond:err",
        "unbond:err",
        "unjail:ok",
        "create_deal:ok",
        "create_deal:err",
        "activate_deal:ok",
        "activate_deal:err",
        "extend_deal:ok",
        "cancel_deal:err",
        "submit_storage_proofs:ok",
        "submit_storage_proofs:err",
        "create_order:ok",
        "create_order:err",
        "cancel_order:err",
        "place_bid:ok",
        "place_bid:err",
        "accept_bid:ok",
        "accept_bid:err",
        "top_up_lease:ok",
        "top_up_lease:err",
        "close_lease:ok",
        "close_lease:err",
        "withdraw_lease:err",
        "lease_started:ok",
        "lease_started:err",
        "commit_compute:ok",
        "commit_compute:err",
        "open_compute:ok",
        "open_compute:err",
        "register_provider:err",
        "leave_provider:ok",
        "report_inconsistency:err",
        "report_audit_failures:ok",
        "report_audit_failures:err",
    ] {
        assert!(
            kinds.contains(kind),
            "the workload never produced {kind}: {kinds:?}"
        );
    }
    let state = sim.ledger().state();
    let finished = state.epochs.values().filter(|e| e.finished).count();
    assert!(finished >= 15, "only {finished} epochs finished");
    assert!(
        state.epochs.values().any(|e| !e.slashed.is_zero()),
        "no slash happened"
    );
    assert!(
        state.epochs.values().any(|e| !e.revenue.compute.is_zero()),
        "no compute revenue"
    );
    assert!(
        state.epochs.values().any(|e| !e.revenue.storage.is_zero()),
        "no storage revenue"
    );
    assert!(
        state
            .leases
            .values()
            .any(|l| matches!(l.state, LeaseState::Closed { .. }))
    );
    // Leases whose provider never reported a start were closed by the protocol, refunded.
    assert!(
        state.leases.values().any(|l| l.started_height.is_none()
            && matches!(&l.state, LeaseState::Closed { initiator: cairn_types::CloseInitiator::Protocol, reason, .. } if reason.contains("did not report the workload started"))),
        "no lease timed out before its start"
    );
}

/// Long runs, for the `slow` nextest profile (CI runs it): thousands of blocks per seed.
#[test]
fn slow_long_random_runs() {
    for seed in 0..4u64 {
        let config = SimConfig {
            seed: 1_000 + seed,
            chaos_percent: 40,
            chaos_per_block: 8,
            ..SimConfig::default()
        };
        let (sim, applied, roots, _) = run(config, 1_500);
        replay(&sim, &applied, &roots);
    }
}
