//! Providers joining and leaving a running chain (issue 22): a provider registered after
//! genesis is placed, challenged, paid and rewarded from the next block like a genesis one;
//! a registration without the minimum bond or with an endpoint another provider holds is
//! refused by name with nothing changed; and leaving closes the provider's leases with a
//! reason (unspent escrow back to the tenant), queues its shards for repair, and keeps its
//! self-bond until every shard has been moved and the unbonding period has passed.

use crate::common::*;
use cairn_ledger::TxError;
use cairn_ledger::compute::project_settlement;
use cairn_ledger::state::{DealStatus, LeaseState, ProviderStatus, Verdict, epoch_cost};
use cairn_types::tx::{
    AcceptBid, CreateOrder, Empty, LeaseStarted, PlaceBid, RegisterProvider, RepairShard,
    SHARD_RECEIPT_NAMESPACE, Transfer, UpdateProvider, shard_receipt_message,
};
use cairn_types::{
    Address, Amount, Capacity, CloseInitiator, DealId, Hash, Keypair, LeaseId, OrderId, Resources,
    TxBody,
};

/// The endpoint genesis gives storage provider `i` (see `common::genesis`).
fn storage_endpoint(i: usize) -> String {
    format!("http://127.0.0.1:{}", 7100 + i)
}

fn disk(bytes: u64) -> Capacity {
    Capacity {
        storage_bytes: bytes,
        ..Capacity::default()
    }
}

fn register(endpoint: &str, capacity: Capacity, bond: Amount) -> TxBody {
    TxBody::RegisterProvider(RegisterProvider {
        endpoint: s(endpoint),
        region: s("eu-west"),
        capacity,
        commission_bps: COMMISSION_BPS,
        bond,
        claimed_int8_ops: 0,
    })
}

fn update(endpoint: &str, capacity: Capacity, commission_bps: u16) -> TxBody {
    TxBody::UpdateProvider(UpdateProvider {
        endpoint: s(endpoint),
        region: s("eu-west"),
        capacity,
        commission_bps,
        claimed_int8_ops: 0,
    })
}

fn leave() -> TxBody {
    TxBody::LeaveProvider(Empty {})
}

/// A key with no account at genesis, funded by Alice so it can bond and pay fees.
fn newcomer(chain: &mut Chain, label: &str) -> Keypair {
    let key = key(label);
    chain.ok(
        &alice(),
        TxBody::Transfer(Transfer {
            to: key.address(),
            amount: crn(10_000),
        }),
    );
    key
}

fn repair(deal: DealId, index: u16, new: &Keypair, b: &Blob) -> TxBody {
    let root = b.meta.shard_roots.0[usize::from(index)];
    let message = shard_receipt_message(deal, &b.meta.id, index, &root);
    TxBody::RepairShard(RepairShard {
        deal,
        shard_index: index,
        new_provider: new.address(),
        receipt: new.sign(SHARD_RECEIPT_NAMESPACE, &message),
    })
}

/// A 20-epoch deal for `b` on `holders`, created and activated by Alice.
fn active_deal(chain: &mut Chain, b: &Blob, holders: &[Keypair]) -> DealId {
    let deal = pending_deal(chain, b, holders);
    chain.ok(&alice(), activate(deal, &b.meta, holders));
    assert_eq!(chain.state().deals[&deal].status, DealStatus::Active);
    deal
}

fn pending_deal(chain: &mut Chain, b: &Blob, holders: &[Keypair]) -> DealId {
    let price = crn(10_000);
    let cost = epoch_cost(price, b.meta.size_bytes).unwrap();
    let deal = DealId(chain.state().counters.deal);
    chain.ok(
        &alice(),
        create_deal(
            &b.meta,
            &addresses(holders),
            20,
            price,
            cost.checked_mul(20).unwrap(),
        ),
    );
    deal
}

/// Every current holder of `deal` answers its challenge (if it has one this epoch).
fn prove_all(chain: &mut Chain, b: &Blob, deal: DealId, keys: &[Keypair]) {
    let epoch = chain.epoch();
    let holders = chain.state().deals[&deal].providers.clone();
    let mut list = Vec::new();
    for (index, holder) in (0u16..).zip(&holders) {
        let Some(c) = chain.state().storage_challenges.get(&(deal, index)) else {
            continue;
        };
        if c.epoch != epoch {
            continue;
        }
        let key = keys
            .iter()
            .find(|k| k.address() == *holder)
            .expect("a key for every holder");
        list.push((
            key,
            submit_proofs(epoch, vec![storage_proof(chain, b, deal, index)]),
        ));
    }
    chain.run(list);
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

fn order(chain: &mut Chain, tenant: &Keypair) -> OrderId {
    let id = OrderId(chain.state().counters.order);
    chain.ok(
        tenant,
        TxBody::CreateOrder(CreateOrder {
            manifest_hash: Hash::domain("ledger-it.manifest", &[b"providers"]),
            resources: resources(),
            max_price_per_block: MAX_PRICE,
            deposit: Amount(MAX_PRICE.0 * 100),
            bid_window_blocks: 3,
        }),
    );
    id
}

/// `tenant` orders, `provider` bids `price` a block, the tenant accepts; started if asked.
fn lease(
    chain: &mut Chain,
    tenant: &Keypair,
    provider: &Keypair,
    price: u128,
    start: bool,
) -> LeaseId {
    let order = order(chain, tenant);
    chain.ok(
        provider,
        TxBody::PlaceBid(PlaceBid {
            order,
            price_per_block: Amount(price),
            hardware: hardware(2_000, 4 * GIB, 10 * GIB, vec![]),
        }),
    );
    let id = LeaseId(chain.state().counters.lease);
    chain.ok(
        tenant,
        TxBody::AcceptBid(AcceptBid {
            order,
            provider: provider.address(),
        }),
    );
    if start {
        chain.ok(provider, TxBody::LeaseStarted(LeaseStarted { lease: id }));
        assert_eq!(chain.state().leases[&id].state, LeaseState::Active);
    }
    id
}

fn unbonding_of(chain: &Chain, owner: &Address) -> Vec<(u64, Amount)> {
    chain
        .state()
        .unbonding
        .values()
        .filter(|u| u.owner == *owner)
        .map(|u| (u.release_epoch, u.amount))
        .collect()
}

/// A storage provider and a compute provider registered after genesis take part from the
/// next block: a deal places a shard on the first, which is challenged, proves, is paid
/// and rewarded; the second bids, gets the lease and is paid for the blocks it ran.
#[test]
fn providers_that_join_are_placed_challenged_paid_and_rewarded() {
    let mut chain = Chain::sim(0);
    let joiner = newcomer(&mut chain, "joiner-storage");
    let bond = crn(PROVIDER_BOND);
    let before = chain.balance(&joiner.address());
    chain.ok(
        &joiner,
        register("https://joiner.example", disk(10 * GIB), bond),
    );
    let registered = chain.height();
    let p = &chain.state().providers[&joiner.address()];
    assert_eq!(p.status, ProviderStatus::Active);
    assert_eq!(p.self_bond, bond);
    assert_eq!(p.registered_height, registered);
    assert_eq!(
        chain.balance(&joiner.address()),
        Amount(before.0 - bond.0 - chain.fee().0),
        "the bond and the fee left the balance"
    );

    // Placement: the next block's deal may name it.
    let holders = vec![storage(0), storage(1), joiner.clone()];
    let b = blob(31, 2, 1, 2_000, 1024);
    let deal = active_deal(&mut chain, &b, &holders);
    assert_eq!(
        chain.state().providers[&joiner.address()].assigned_storage_bytes,
        2_000
    );
    // Challenges start with the deal's first epoch; it proves like the genesis holders.
    chain.finish_epoch();
    let epoch = chain.epoch();
    let c = &chain.state().storage_challenges[&(deal, 2)];
    assert_eq!((c.provider, c.epoch), (joiner.address(), epoch));
    prove_all(&mut chain, &b, deal, &holders);
    assert_eq!(
        chain.state().storage_challenges[&(deal, 2)].verdict,
        Verdict::Passed
    );
    chain.finish_epoch();
    let p = &chain.state().providers[&joiner.address()];
    assert!(!p.fees_earned_total.is_zero(), "paid for its shard");
    assert!(!p.rewards_total.is_zero(), "rewarded from the storage pool");
    assert_eq!(p.total_faults, 0);
    let statement = chain
        .state()
        .statement(epoch, &joiner.address())
        .expect("a reward statement for the joiner");
    assert_eq!(statement.proofs_passed, 1);
    assert_eq!(statement.proven_storage_bytes, 2_000);

    // A compute provider joins and is seen by the market at once.
    let compute_joiner = newcomer(&mut chain, "joiner-compute");
    chain.ok(
        &compute_joiner,
        register("https://gpu.joiner.example", compute_capacity(vec![]), bond),
    );
    let id = lease(&mut chain, &bob(), &compute_joiner, 4_000, true);
    let started = chain.state().leases[&id].settled_through;
    chain.advance_to(started + 5);
    chain.finish_epoch();
    let l = &chain.state().leases[&id];
    assert_eq!(l.provider, compute_joiner.address());
    let ran = chain.height() - started;
    assert_eq!(l.paid_total, Amount(4_000 * u128::from(ran)));
    let p = &chain.state().providers[&compute_joiner.address()];
    assert!(!p.fees_earned_total.is_zero(), "paid for the lease");
    assert_eq!((p.active_leases, p.committed.cpu_millicores), (1, 2_000));
}

/// Without the minimum bond a registration is refused by name before anything moves.
#[test]
fn a_registration_without_the_minimum_bond_is_refused() {
    let mut chain = Chain::sim(0);
    let minimum = chain.params().min_provider_bond;
    for bond in [Amount::ZERO, Amount(minimum.0 - 1)] {
        let e = reject(
            &mut chain,
            &carol(),
            register("https://carol.example", disk(GIB), bond),
        );
        assert_eq!(e, TxError::BondBelowMinimum { bond, minimum });
        assert!(!chain.state().providers.contains_key(&carol().address()));
    }
    chain.ok(
        &carol(),
        register("https://carol.example", disk(GIB), minimum),
    );
    assert!(chain.state().providers[&carol().address()].is_active());
}

/// An endpoint already held is refused by name, for a registration and for an update that
/// changes to it, however its case or trailing slash is written; an update keeping its
/// own endpoint goes through; a provider that left and holds nothing frees its endpoint,
/// one that left but still holds a shard keeps it.
#[test]
fn a_taken_endpoint_is_refused_by_name_for_registration_and_update() {
    let mut chain = Chain::sim(0);
    let taken = storage_endpoint(1);
    let holder = storage(1).address();
    for endpoint in [taken.clone(), format!("{taken}/")] {
        let e = reject(
            &mut chain,
            &carol(),
            register(&endpoint, disk(GIB), crn(PROVIDER_BOND)),
        );
        assert_eq!(
            e,
            TxError::EndpointTaken {
                endpoint: endpoint.clone(),
                holder
            }
        );
        assert!(
            e.to_string().contains(&endpoint) && e.to_string().contains(&holder.to_string()),
            "the message names the endpoint and its holder: {e}"
        );
    }
    let e = reject(
        &mut chain,
        &storage(0),
        update(&taken, disk(10 * GIB), COMMISSION_BPS),
    );
    assert_eq!(
        e,
        TxError::EndpointTaken {
            endpoint: taken.clone(),
            holder
        }
    );
    // Host names compare without case.
    chain.ok(
        &erin(),
        register("https://Erin.Example", disk(GIB), crn(PROVIDER_BOND)),
    );
    let e = reject(
        &mut chain,
        &bob(),
        register("https://erin.example/", disk(GIB), crn(PROVIDER_BOND)),
    );
    assert!(
        matches!(&e, TxError::EndpointTaken { holder, .. } if *holder == erin().address()),
        "{e:?}"
    );
    // Keeping its own endpoint is no conflict.
    chain.ok(
        &storage(0),
        update(&storage_endpoint(0), disk(10 * GIB), 42),
    );
    assert_eq!(
        chain.state().providers[&storage(0).address()].commission_bps,
        42
    );

    // storage(2) holds a shard of a live deal when it leaves: its endpoint stays taken.
    let b = blob(32, 2, 1, 2_000, 1024);
    let deal = active_deal(&mut chain, &b, &[storage(0), storage(1), storage(2)]);
    // storage(3) holds nothing.
    chain.ok(&storage(3), leave());
    chain.ok(&storage(2), leave());
    let e = reject(
        &mut chain,
        &dave(),
        register(&storage_endpoint(2), disk(GIB), crn(PROVIDER_BOND)),
    );
    assert_eq!(
        e,
        TxError::EndpointTaken {
            endpoint: storage_endpoint(2),
            holder: storage(2).address()
        }
    );
    chain.ok(
        &carol(),
        register(&storage_endpoint(3), disk(10 * GIB), crn(PROVIDER_BOND)),
    );
    // Once the shard is repaired away, storage(2)'s endpoint is free too.
    chain.ok(&bob(), repair(deal, 2, &carol(), &b));
    chain.ok(
        &dave(),
        register(&storage_endpoint(2), disk(GIB), crn(PROVIDER_BOND)),
    );
}

/// Leaving queues every shard the provider holds in a live deal for repair (and none of
/// anyone else's); the provider stays challenged on them; its self-bond is not released
/// at the end of the unbonding period while a shard is still on it, and is released, in
/// full, at the first epoch end after the repair moved the last one.
#[test]
fn leaving_sends_every_shard_to_repair_and_holds_the_bond_until_they_are_moved() {
    let mut chain = Chain::sim(0);
    let all: Vec<Keypair> = (0..STORAGE_PROVIDERS).map(storage).collect();
    let leaver = storage(2);
    let (a, b, c) = (
        blob(41, 2, 1, 2_000, 1024),
        blob(42, 2, 1, 2_000, 1024),
        blob(43, 2, 1, 2_000, 1024),
    );
    let with_leaver = active_deal(&mut chain, &a, &[storage(0), leaver.clone(), storage(1)]);
    let without = active_deal(&mut chain, &b, &[storage(0), storage(1), storage(3)]);
    chain.finish_epoch();
    prove_all(&mut chain, &a, with_leaver, &all);
    prove_all(&mut chain, &b, without, &all);
    // Not yet certified when the provider leaves (it expires unactivated later).
    let pending = pending_deal(&mut chain, &c, &[storage(3), storage(0), leaver.clone()]);

    let balance = chain.balance(&leaver.address());
    let income = |chain: &Chain| {
        let p = &chain.state().providers[&leaver.address()];
        p.fees_earned_total.0 + p.rewards_total.0
    };
    let income0 = income(&chain);
    chain.ok(&leaver, leave());
    let left_epoch = chain.epoch();
    let deals = &chain.state().deals;
    assert_eq!(deals[&with_leaver].repair_needed, vec![1]);
    assert!(deals[&without].repair_needed.is_empty());
    assert_eq!(deals[&pending].repair_needed, vec![2]);
    let p = &chain.state().providers[&leaver.address()];
    assert_eq!(p.status, ProviderStatus::Leaving);
    assert!(p.self_bond.is_zero());
    let bond = crn(PROVIDER_BOND);
    let release_epoch = left_epoch + chain.params().unbonding_epochs;
    assert_eq!(
        unbonding_of(&chain, &leaver.address()),
        vec![(release_epoch, bond)]
    );
    let fee = chain.fee();
    let mut fees_paid = fee.0;

    // It keeps proving what it still holds, epoch after epoch, past the release epoch:
    // the bond waits for the repair.
    while chain.epoch() <= release_epoch + 1 {
        chain.finish_epoch();
        let before = chain.state().nonce(&leaver.address());
        prove_all(&mut chain, &a, with_leaver, &all);
        fees_paid += fee.0 * u128::from(chain.state().nonce(&leaver.address()) - before);
        prove_all(&mut chain, &b, without, &all);
    }
    assert_eq!(
        chain.state().storage_challenges[&(with_leaver, 1)].provider,
        leaver.address(),
        "still challenged on the shard it holds"
    );
    assert_eq!(
        unbonding_of(&chain, &leaver.address()),
        vec![(release_epoch, bond)],
        "past its release epoch, the bond waits for the shard to be moved"
    );

    // The repair moves it; the next epoch end releases the whole bond.
    chain.ok(&bob(), repair(with_leaver, 1, &storage(3), &a));
    assert!(chain.state().deals[&with_leaver].repair_needed.is_empty());
    assert_eq!(
        chain.state().providers[&leaver.address()].assigned_storage_bytes,
        0
    );
    assert_eq!(unbonding_of(&chain, &leaver.address()).len(), 1);
    chain.finish_epoch();
    assert!(unbonding_of(&chain, &leaver.address()).is_empty());
    assert_eq!(
        chain.state().providers[&leaver.address()].total_slashed,
        Amount::ZERO
    );
    // Balance = before − its fees + what its shards earned meanwhile + the whole bond.
    assert_eq!(
        chain.balance(&leaver.address()),
        Amount(balance.0 - fees_paid + (income(&chain) - income0) + bond.0),
        "the bond came back in full"
    );
}

/// Leaving settles and closes every live lease of the provider with the reason "provider
/// left", initiated by the provider: it is paid for the blocks its workloads ran, the
/// tenants get the rest of the escrow back, its capacity is freed; other providers'
/// leases are untouched.
#[test]
fn leaving_closes_every_lease_with_the_reason_and_refunds_the_escrow() {
    let mut chain = Chain::sim(0);
    let leaver = compute(1);
    let running = lease(&mut chain, &alice(), &leaver, 3_000, true);
    let starting = lease(&mut chain, &bob(), &leaver, 2_000, false);
    // Few blocks in all: the starting lease must still be within its start deadline.
    let other = lease(&mut chain, &carol(), &compute(0), 1_000, true);

    let height = chain.next_height();
    let grace = chain.params().lease_grace_blocks;
    let owed = project_settlement(&chain.state().leases[&running], height, grace).pay;
    assert!(!owed.is_zero());
    let escrow = |id: LeaseId, chain: &Chain| chain.state().leases[&id].escrow;
    let (running_escrow, starting_escrow) = (escrow(running, &chain), escrow(starting, &chain));
    let (alice0, bob0, leaver0) = (
        chain.balance(&alice().address()),
        chain.balance(&bob().address()),
        chain.balance(&leaver.address()),
    );
    let earned0 = chain.state().providers[&leaver.address()].fees_earned_total;
    chain.ok(&leaver, leave());

    for (id, paid) in [(running, owed), (starting, Amount::ZERO)] {
        let l = &chain.state().leases[&id];
        assert_eq!(
            l.state,
            LeaseState::Closed {
                at: height,
                initiator: CloseInitiator::Provider,
                reason: "provider left".to_string(),
            },
            "{id}"
        );
        assert!(l.escrow.is_zero(), "{id}: escrow emptied");
        assert_eq!(l.paid_total, paid, "{id}");
    }
    assert_eq!(
        chain.balance(&alice().address()),
        Amount(alice0.0 + running_escrow.0 - owed.0),
        "the running lease's tenant got the unspent escrow back"
    );
    assert_eq!(
        chain.balance(&bob().address()),
        Amount(bob0.0 + starting_escrow.0),
        "a lease that never started is refunded in full"
    );
    let p = &chain.state().providers[&leaver.address()];
    let net = Amount(p.fees_earned_total.0 - earned0.0);
    assert_eq!(
        net,
        Amount(owed.0 - owed.bps(chain.params().take_rate_bps).0)
    );
    assert_eq!(
        chain.balance(&leaver.address()),
        Amount(leaver0.0 - chain.fee().0 + net.0),
        "paid for the blocks its workload ran, less the take"
    );
    assert_eq!(p.active_leases, 0);
    assert_eq!(p.committed, Default::default());
    assert_eq!(chain.state().leases[&other].state, LeaseState::Active);
}
