//! Timed-audit reports on chain (`ReportAuditFailures`, reliability.md §2a): only validators
//! report, a report names this epoch's challenged holder, and a shard's challenge fails at
//! the epoch's end only when validators holding more than a third of the stake reported it,
//! whatever its on-chain proof said; the fault, the missing payment and the repair follow
//! as for any failed proof.

use crate::common::*;
use cairn_ledger::params::{GenesisAccount, GenesisValidator};
use cairn_ledger::sim::sim_params;
use cairn_ledger::state::Verdict;
use cairn_ledger::{Genesis, TxError};
use cairn_types::tx::{AuditedShard, ReportAuditFailures};
// `Blob` is the fixture's encoded test blob (common.rs).
use cairn_types::{Address, BoundedVec, DealId, Epoch, Keypair, TxBody};

/// Three validators: 50% (the fixture's proposer), 30% and 20% of the stake.
fn val_b() -> Keypair {
    key("validator-b")
}
fn val_c() -> Keypair {
    key("validator-c")
}

fn chain() -> Chain {
    let mut genesis: Genesis = genesis(sim_params(), 0);
    for (k, stake) in [(validator(), 50_000), (val_b(), 30_000), (val_c(), 20_000)] {
        genesis.accounts.push(GenesisAccount {
            address: k.address(),
            balance: crn(1_000),
        });
        if k.address() != validator().address() {
            genesis.validators.push(GenesisValidator {
                address: k.address(),
                stake: crn(stake),
                p2p_address: String::new(),
            });
        }
    }
    Chain::new(&genesis)
}

fn report(epoch: Epoch, shards: &[(DealId, u16, Address)]) -> TxBody {
    TxBody::ReportAuditFailures(ReportAuditFailures {
        epoch,
        shards: BoundedVec(
            shards
                .iter()
                .map(|&(deal, shard_index, provider)| AuditedShard {
                    deal,
                    shard_index,
                    provider,
                })
                .collect(),
        ),
    })
}

fn lateness(epoch: Epoch, shards: &[(DealId, u16, Address)]) -> TxBody {
    let TxBody::ReportAuditFailures(body) = report(epoch, shards) else {
        unreachable!("report builds a failure report");
    };
    TxBody::ReportAuditLateness(body)
}

/// A 2+1 deal on storage providers 0..3, active, with this epoch's challenges issued and
/// every shard's on-chain proof submitted and passed.
fn proven_deal(chain: &mut Chain) -> (DealId, Vec<Keypair>) {
    let (deal, three, _) = proven_deal_and_blob(chain);
    (deal, three)
}

/// Every shard of `deal` proves this epoch's challenge on chain.
fn prove_all(chain: &mut Chain, b: &Blob, deal: DealId, holders: &[Keypair]) {
    let epoch = chain.epoch();
    for (index, k) in (0u16..).zip(holders) {
        chain.ok(
            k,
            submit_proofs(epoch, vec![storage_proof(chain, b, deal, index)]),
        );
    }
}

fn proven_deal_and_blob(chain: &mut Chain) -> (DealId, Vec<Keypair>, Blob) {
    let three: Vec<Keypair> = (0..3).map(storage).collect();
    let b = blob(41, 2, 1, 3_000, 1024);
    let price = crn(10_000);
    let cost = cairn_ledger::state::epoch_cost(price, b.meta.size_bytes).unwrap();
    let deal = DealId(0);
    chain.ok(
        &alice(),
        create_deal(
            &b.meta,
            &addresses(&three),
            20,
            price,
            cost.checked_mul(20).unwrap(),
        ),
    );
    chain.ok(&alice(), activate(deal, &b.meta, &three));
    chain.finish_epoch();
    prove_all(chain, &b, deal, &three);
    for index in 0..3u16 {
        let challenge = &chain.state().storage_challenges[&(deal, index)];
        assert_eq!(challenge.verdict, Verdict::Passed);
    }
    (deal, three, b)
}

#[test]
fn reports_from_a_third_of_the_stake_fail_a_proven_shard() {
    let mut chain = chain();
    let (deal, three) = proven_deal(&mut chain);
    let epoch = chain.epoch();
    let holder = |i: usize| three[i].address();
    // Shard 0: 30% then 50% report it (together 80%). Shard 1: only 20% (below a third).
    chain.ok(&val_b(), report(epoch, &[(deal, 0, holder(0))]));
    chain.ok(&val_c(), report(epoch, &[(deal, 1, holder(1))]));
    chain.ok(&validator(), report(epoch, &[(deal, 0, holder(0))]));
    // A repeat by the same validator is accepted and changes nothing.
    chain.ok(&val_b(), report(epoch, &[(deal, 0, holder(0))]));
    let reporters = &chain.state().storage_challenges[&(deal, 0)].audit_reporters;
    assert_eq!(reporters.len(), 2);
    let faults_before: Vec<u64> = (0..3)
        .map(|i| chain.state().providers[&holder(i)].total_faults)
        .collect();
    let outcome = chain.finish_epoch();
    assert_eq!(outcome.finished_epoch, Some(epoch));
    let state = chain.state();
    assert_eq!(
        state.providers[&holder(0)].total_faults,
        faults_before[0] + 1,
        "shard 0's holder is faulted"
    );
    assert_eq!(state.providers[&holder(1)].total_faults, faults_before[1]);
    assert_eq!(state.providers[&holder(2)].total_faults, faults_before[2]);
    assert_eq!(state.deals[&deal].repair_needed, vec![0]);
    let report = &state.epochs[&epoch];
    assert_eq!(report.faults, 1);
    // The durability figures' input: one faulted of three challenged shards.
    assert_eq!(
        (
            report.storage_shards_challenged,
            report.storage_shards_faulted
        ),
        (3, 1)
    );
    // The faulted shard earned nothing this epoch; the other two were paid.
    let statement = |i: usize| {
        chain
            .state()
            .statement(epoch, &holder(i))
            .cloned()
            .expect("a statement")
    };
    assert!(statement(0).warning, "{:?}", statement(0));
    assert!(!statement(1).warning);
    assert!(statement(1).proven_storage_bytes > 0);
    assert_eq!(statement(0).proven_storage_bytes, 0);

    // Next epoch nobody proves: shards 1 and 2 are fresh losses; shard 0, still awaiting its
    // repair, is not counted a second time.
    let next = chain.epoch();
    chain.finish_epoch();
    let report = &chain.state().epochs[&next];
    assert_eq!(
        (
            report.storage_shards_challenged,
            report.storage_shards_faulted
        ),
        (2, 2)
    );
}

#[test]
fn reports_below_a_third_change_no_verdict() {
    let mut chain = chain();
    let (deal, three) = proven_deal(&mut chain);
    let epoch = chain.epoch();
    // 30% alone: 3 x 30 000 is below 100 000.
    chain.ok(&val_b(), report(epoch, &[(deal, 2, three[2].address())]));
    let before = chain.state().providers[&three[2].address()].total_faults;
    chain.finish_epoch();
    assert_eq!(
        chain.state().providers[&three[2].address()].total_faults,
        before
    );
    assert!(chain.state().deals[&deal].repair_needed.is_empty());

    // An epoch where nobody proves anything: three missed proofs, three faults. The
    // measured loss sums finished epochs, newest first, within the window.
    let last = chain.epoch();
    chain.finish_epoch();
    let loss = |window| chain.state().measured_shard_loss(window);
    assert_eq!(
        (
            loss(1).epochs,
            loss(1).shards_challenged,
            loss(1).shards_faulted
        ),
        (1, 3, 3)
    );
    assert_eq!(
        (loss(1).first_epoch, loss(1).last_epoch),
        (Some(last), Some(last))
    );
    let all = loss(64);
    assert_eq!((all.shards_challenged, all.shards_faulted), (6, 3));
    assert_eq!(all.last_epoch, Some(last));
    assert!(all.epochs >= 3 && all.first_epoch == Some(0), "{all:?}");
    assert_eq!(loss(0), cairn_ledger::state::ShardLoss::default());
}

#[test]
fn bad_audit_reports_are_refused_whole() {
    let mut chain = chain();
    let (deal, three) = proven_deal(&mut chain);
    let epoch = chain.epoch();
    let holder = three[0].address();
    // Not a validator: a tenant, and a storage provider reporting a rival.
    for sender in [alice(), three[1].clone()] {
        let err = reject(&mut chain, &sender, report(epoch, &[(deal, 0, holder)]));
        assert_eq!(
            err,
            TxError::NotValidator {
                sender: sender.address()
            }
        );
    }
    let err = reject(
        &mut chain,
        &val_b(),
        report(epoch + 1, &[(deal, 0, holder)]),
    );
    assert_eq!(
        err,
        TxError::WrongEpoch {
            given: epoch + 1,
            current: epoch
        }
    );
    // The named holder is not the challenged one (as after a repair moved the shard).
    let err = reject(
        &mut chain,
        &val_b(),
        report(epoch, &[(deal, 0, three[1].address())]),
    );
    assert_eq!(err, TxError::NotChallengedProvider { provider: holder });
    let err = reject(
        &mut chain,
        &val_b(),
        report(epoch, &[(DealId(9), 0, holder)]),
    );
    assert_eq!(
        err,
        TxError::UnknownStorageChallenge {
            deal: DealId(9),
            shard_index: 0
        }
    );
    // One bad entry refuses the good one beside it: nothing is recorded.
    let err = reject(
        &mut chain,
        &val_b(),
        report(epoch, &[(deal, 0, holder), (deal, 5, holder)]),
    );
    assert!(
        matches!(err, TxError::UnknownStorageChallenge { .. }),
        "{err:?}"
    );
    let err = reject(
        &mut chain,
        &val_b(),
        report(epoch, &[(deal, 0, holder), (deal, 0, holder)]),
    );
    assert_eq!(
        err,
        TxError::DuplicateAuditedShard {
            deal,
            shard_index: 0
        }
    );
    assert!(
        chain.state().storage_challenges[&(deal, 0)]
            .audit_reporters
            .is_empty()
    );
}

/// Issue "fair audits": a late answer is a strike, not a fault. Strikes come only from more
/// than a third of the stake, are shown on the provider, clear after an epoch audited on
/// time, and fault only at `late_audits_before_fault` in a row; after that every further
/// late epoch faults, so the warnings run to a slash as for any fault.
#[test]
fn late_answers_are_strikes_that_fault_only_when_they_repeat() {
    let mut chain = chain();
    let limit = sim_params().late_audits_before_fault;
    assert_eq!(limit, 3, "sim_params keeps the default");
    let (deal, three, b) = proven_deal_and_blob(&mut chain);
    let late_one = three[0].address();
    let strikes = |chain: &Chain| chain.state().providers[&late_one].late_audit_epochs;
    let faults = |chain: &Chain| chain.state().providers[&late_one].total_faults;
    let paid = |chain: &Chain, epoch| {
        chain
            .state()
            .statement(epoch, &late_one)
            .map_or(0, |s| s.proven_storage_bytes)
    };
    // Epoch A: 20% finds it late (below a third): nothing.
    let epoch = chain.epoch();
    chain.ok(&val_c(), lateness(epoch, &[(deal, 0, late_one)]));
    chain.finish_epoch();
    assert_eq!((strikes(&chain), faults(&chain)), (0, 0));

    // Two late epochs (80% each): two strikes, no fault, still paid, no repair.
    for strike in 1..limit {
        prove_all(&mut chain, &b, deal, &three);
        let epoch = chain.epoch();
        chain.ok(&validator(), lateness(epoch, &[(deal, 0, late_one)]));
        chain.ok(&val_b(), lateness(epoch, &[(deal, 0, late_one)]));
        chain.finish_epoch();
        assert_eq!(strikes(&chain), strike);
        assert_eq!(faults(&chain), 0, "a strike is not a fault");
        assert!(paid(&chain, epoch) > 0, "a late but right shard is paid");
        assert!(chain.state().deals[&deal].repair_needed.is_empty());
        assert_eq!(chain.state().epochs[&epoch].late_audit_strikes, 1);
    }
    // An epoch without lateness clears the strikes.
    prove_all(&mut chain, &b, deal, &three);
    chain.finish_epoch();
    assert_eq!(strikes(&chain), 0, "an epoch on time clears the strikes");

    // Late `limit` epochs in a row: the last one faults the shard, and so does the next.
    for round in 1..=limit + 1 {
        prove_all(&mut chain, &b, deal, &three);
        let epoch = chain.epoch();
        chain.ok(&validator(), lateness(epoch, &[(deal, 0, late_one)]));
        chain.finish_epoch();
        if round < limit {
            assert_eq!(faults(&chain), 0, "round {round}");
        } else {
            assert_eq!(
                faults(&chain),
                u64::from(round - limit + 1),
                "round {round}"
            );
            assert_eq!(paid(&chain, epoch), 0, "a faulted shard is not paid");
        }
        if round == limit {
            // The verdict says why: the strikes, not one late answer.
            let statement = chain.state().statement(epoch, &late_one).unwrap();
            assert!(statement.warning, "{statement:?}");
        }
    }
    assert!(strikes(&chain) > limit, "strikes past the limit stay");
}

#[test]
fn a_failure_report_outranks_lateness_and_faults_at_once() {
    let mut chain = chain();
    let (deal, three) = proven_deal(&mut chain);
    let epoch = chain.epoch();
    let holder = three[1].address();
    chain.ok(&validator(), lateness(epoch, &[(deal, 1, holder)]));
    chain.ok(&val_b(), report(epoch, &[(deal, 1, holder)]));
    chain.ok(&val_c(), report(epoch, &[(deal, 1, holder)]));
    chain.finish_epoch();
    let provider = &chain.state().providers[&holder];
    assert_eq!(provider.total_faults, 1);
    assert_eq!(
        provider.late_audit_epochs, 0,
        "a failure is not also a strike"
    );
    assert_eq!(chain.state().deals[&deal].repair_needed, vec![1]);
}
