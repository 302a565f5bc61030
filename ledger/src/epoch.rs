//! Epoch processing, run after the last block of each epoch: lease sweep, order expiry,
//! proof verdicts, storage payments, faults (warning, then slash), emission and rewards with
//! reward statements, unbonding releases, and the next epoch's challenges.

use crate::error::{TxError, overflow};
use crate::state::{
    ComputeChallenge, ComputePhase, DealStatus, EpochReport, LeaseState, OrderStatus,
    ProviderEpochRecord, ProviderStatus, RewardStatement, State, StorageChallenge, Verdict,
};
use crate::{Ctx, Ledger, RevenueSource};
use cairn_types::{Address, Amount, ChallengeId, DealId, Epoch, Hash};
use std::collections::{BTreeMap, BTreeSet};

/// A provider's proofs in one epoch.
#[derive(Clone, Debug, Default)]
struct Tally {
    passed: u64,
    failed: u64,
    missed: u64,
    proven_storage_bytes: u64,
    paid_storage_bytes: u64,
    proven_int8_ops: u64,
    fees: Amount,
}

impl Tally {
    fn faults(&self) -> u64 {
        self.failed.saturating_add(self.missed)
    }
}

const ADDRESS_MIN: Address = Address([0; 32]);
const ADDRESS_MAX: Address = Address([0xff; 32]);

impl Ledger {
    pub(crate) fn finish_epoch(&mut self, ctx: &Ctx) -> Result<(), TxError> {
        let epoch = ctx.epoch;
        self.sweep_leases(ctx)?;
        self.expire_orders(ctx)?;
        let mut tallies: BTreeMap<Address, Tally> = BTreeMap::new();
        // A shard already awaiting repair was lost in an earlier epoch: counting its
        // challenge again would count one loss once per epoch until the repair lands.
        let awaiting: BTreeSet<(DealId, u16)> = self
            .state
            .deals
            .iter()
            .flat_map(|(id, d)| d.repair_needed.iter().map(move |s| (*id, *s)))
            .collect();
        let storage_verdicts = self.storage_verdicts(epoch, &mut tallies);
        let fresh = || {
            storage_verdicts
                .iter()
                .filter(|(key, _)| !awaiting.contains(key))
        };
        let (challenged, faulted) = (fresh().count(), fresh().filter(|(_, p)| !**p).count());
        let report = self.report_mut(epoch);
        report.storage_shards_challenged = u64::try_from(challenged).unwrap_or(u64::MAX);
        report.storage_shards_faulted = u64::try_from(faulted).unwrap_or(u64::MAX);
        self.compute_verdicts(epoch, &mut tallies);
        self.pay_deals(ctx, &storage_verdicts, &mut tallies)?;
        let slashed = self.apply_faults(epoch, &tallies, &storage_verdicts)?;
        self.distribute_rewards(epoch, &tallies, &slashed)?;
        self.release_unbonding(epoch)?;
        self.close_report(epoch, &tallies)?;
        self.issue_challenges(ctx, epoch.saturating_add(1))?;
        self.prune(epoch);
        Ok(())
    }

    fn sweep_leases(&mut self, ctx: &Ctx) -> Result<(), TxError> {
        let live: Vec<_> = self
            .state
            .leases
            .iter()
            .filter(|(_, l)| !matches!(l.state, LeaseState::Closed { .. }))
            .map(|(id, _)| *id)
            .collect();
        for id in live {
            self.settle_lease(id, ctx.height, ctx.epoch)?;
        }
        Ok(())
    }

    fn expire_orders(&mut self, ctx: &Ctx) -> Result<(), TxError> {
        let expired: Vec<_> = self
            .state
            .orders
            .iter()
            .filter(|(_, o)| o.status == OrderStatus::Open && ctx.height > o.accept_deadline)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.end_order(id, OrderStatus::Expired)?;
        }
        Ok(())
    }

    /// Final verdicts of the epoch's storage challenges (unanswered → missed).
    fn storage_verdicts(
        &mut self,
        epoch: Epoch,
        tallies: &mut BTreeMap<Address, Tally>,
    ) -> BTreeMap<(DealId, u16), bool> {
        let mut verdicts = BTreeMap::new();
        // A copy of the validators' stake (a handful of entries), so the challenges and
        // providers can be updated while reports are weighed.
        let stakes: BTreeMap<Address, u128> = self
            .state
            .validators
            .iter()
            .map(|(a, v)| (*a, v.stake.0))
            .collect();
        let stake_of = |address: &Address| stakes.get(address).copied().unwrap_or(0);
        let total_stake = stakes.values().fold(0u128, |sum, v| sum.saturating_add(*v));
        // Stake as it is now: a reporter that has since left counts for nothing.
        let weight = |reporters: &BTreeSet<Address>| {
            let reported = reporters
                .iter()
                .fold(0u128, |sum, a| sum.saturating_add(stake_of(a)));
            (reported > 0 && reported.saturating_mul(3) > total_stake).then_some(reported)
        };
        // Lateness first: which providers more than a third of the stake found late (and
        // not worse) on some shard, and which were challenged without being found late.
        let mut late: BTreeSet<Address> = BTreeSet::new();
        let mut challenged: BTreeSet<Address> = BTreeSet::new();
        for challenge in self.state.storage_challenges.values() {
            if challenge.epoch != epoch {
                continue;
            }
            challenged.insert(challenge.provider);
            if weight(&challenge.audit_reporters).is_none()
                && weight(&challenge.late_reporters).is_some()
            {
                late.insert(challenge.provider);
            }
        }
        // A strike per late epoch; an epoch with challenges and no lateness clears them.
        // Strikes past the limit stay, so every further late epoch faults again and the
        // warnings run their course to a slash.
        let limit = self.params.late_audits_before_fault;
        let mut faulted_late: BTreeMap<Address, u32> = BTreeMap::new();
        for address in &challenged {
            let Some(provider) = self.state.providers.get_mut(address) else {
                continue;
            };
            if late.contains(address) {
                provider.late_audit_epochs = provider.late_audit_epochs.saturating_add(1);
                if provider.late_audit_epochs >= limit {
                    faulted_late.insert(*address, provider.late_audit_epochs);
                }
            } else {
                provider.late_audit_epochs = 0;
            }
        }
        self.report_mut(epoch).late_audit_strikes = u64::try_from(late.len()).unwrap_or(u64::MAX);
        for (key, challenge) in self.state.storage_challenges.iter_mut() {
            if challenge.epoch != epoch {
                continue;
            }
            if challenge.verdict == Verdict::Pending {
                challenge.verdict = Verdict::Missed;
            }
            if let Some(reported) = weight(&challenge.audit_reporters) {
                challenge.verdict = Verdict::Failed {
                    detail: format!(
                        "timed audit: {} validators holding {reported} of {total_stake} uCRN of stake found the holder wrong or past the fault line",
                        challenge.audit_reporters.len()
                    ),
                };
            } else if let Some(reported) = weight(&challenge.late_reporters)
                && let Some(strikes) = faulted_late.get(&challenge.provider)
            {
                challenge.verdict = Verdict::Failed {
                    detail: format!(
                        "timed audit: late in {strikes} consecutive audited epochs (the limit is {limit}); {} validators holding {reported} of {total_stake} uCRN of stake found it late this epoch",
                        challenge.late_reporters.len()
                    ),
                };
            }
            let tally = tallies.entry(challenge.provider).or_default();
            let passed = challenge.verdict == Verdict::Passed;
            match &challenge.verdict {
                Verdict::Passed => tally.passed += 1,
                Verdict::Failed { .. } => tally.failed += 1,
                Verdict::Missed | Verdict::Pending => tally.missed += 1,
            }
            if passed && let Some(deal) = self.state.deals.get(&key.0) {
                let bytes = deal.blob.shard_size_bytes;
                tally.proven_storage_bytes = tally.proven_storage_bytes.saturating_add(bytes);
                if deal.permanent || !deal.price_per_gib_epoch.is_zero() {
                    tally.paid_storage_bytes = tally.paid_storage_bytes.saturating_add(bytes);
                }
            }
            verdicts.insert(*key, passed);
        }
        verdicts
    }

    fn compute_verdicts(&mut self, epoch: Epoch, tallies: &mut BTreeMap<Address, Tally>) {
        for challenge in self.state.compute_challenges.values_mut() {
            if challenge.epoch != epoch {
                continue;
            }
            if matches!(
                challenge.phase,
                ComputePhase::Issued | ComputePhase::Committed { .. }
            ) {
                challenge.phase = ComputePhase::Missed;
            }
            let tally = tallies.entry(challenge.provider).or_default();
            let rate = match challenge.phase {
                ComputePhase::Passed { proven_int8_ops } => {
                    tally.passed += 1;
                    tally.proven_int8_ops = proven_int8_ops;
                    proven_int8_ops
                }
                ComputePhase::Failed { .. } => {
                    tally.failed += 1;
                    0
                }
                // Slower than claimed: no fault, but no proven rate either.
                ComputePhase::Unproven { .. } => 0,
                _ => {
                    tally.missed += 1;
                    0
                }
            };
            if let Some(p) = self.state.providers.get_mut(&challenge.provider) {
                // Unproven until the next pass: a claimed GPU earns nothing on faith.
                p.proven_int8_ops = rate;
            }
        }
        // Between challenges (one every `compute_challenge_interval_epochs`) the rate proven
        // last stands, so the compute pool pays every epoch, not only on challenge epochs.
        for (address, provider) in &self.state.providers {
            if provider.is_active() && provider.proven_int8_ops > 0 {
                let tally = tallies.entry(*address).or_default();
                if tally.proven_int8_ops == 0 && tally.faults() == 0 {
                    tally.proven_int8_ops = provider.proven_int8_ops;
                }
            }
        }
    }

    /// Pays each active deal's epoch to the providers whose shard passed, ends deals whose
    /// term is over and refunds pending deals that never got their certificate.
    fn pay_deals(
        &mut self,
        ctx: &Ctx,
        verdicts: &BTreeMap<(DealId, u16), bool>,
        tallies: &mut BTreeMap<Address, Tally>,
    ) -> Result<(), TxError> {
        let epoch = ctx.epoch;
        let ids: Vec<DealId> = self.state.deals.keys().copied().collect();
        for id in ids {
            let Some(deal) = self.state.deals.get(&id) else {
                continue;
            };
            match deal.status {
                DealStatus::Pending { expires_height } if ctx.height >= expires_height => {
                    self.end_deal(id, DealStatus::Expired)?;
                    continue;
                }
                DealStatus::Active => {}
                _ => continue,
            }
            if deal.start_epoch.is_none_or(|s| s > epoch) {
                continue;
            }
            let budget = if deal.permanent {
                deal.endowment.bps(self.params.endowment_payout_bps)
            } else {
                deal.epoch_cost()
                    .ok_or_else(|| overflow("deal cost"))?
                    .min(deal.escrow)
            };
            let shards = u128::try_from(deal.providers.len()).unwrap_or(1).max(1);
            let share = Amount::from_ucrn(budget.ucrn() / shards);
            let mut paid = Amount::ZERO;
            let payees: Vec<(u16, Address)> = deal
                .providers
                .iter()
                .enumerate()
                .filter_map(|(i, a)| u16::try_from(i).ok().map(|i| (i, *a)))
                .collect();
            let ends = !deal.permanent && deal.end_epoch.is_some_and(|e| e <= epoch);
            let permanent = deal.permanent;
            for (index, provider) in payees {
                if share.is_zero() || verdicts.get(&(id, index)) != Some(&true) {
                    continue;
                }
                let net = self.pay_provider(provider, share, RevenueSource::Storage, epoch)?;
                let tally = tallies.entry(provider).or_default();
                tally.fees = tally
                    .fees
                    .checked_add(net)
                    .ok_or_else(|| overflow("fees"))?;
                paid = paid
                    .checked_add(share)
                    .ok_or_else(|| overflow("deal paid"))?;
            }
            if let Some(deal) = self.state.deals.get_mut(&id) {
                let pot = if permanent {
                    &mut deal.endowment
                } else {
                    &mut deal.escrow
                };
                *pot = pot
                    .checked_sub(paid)
                    .ok_or_else(|| overflow("deal escrow"))?;
                deal.paid_total = deal
                    .paid_total
                    .checked_add(paid)
                    .ok_or_else(|| overflow("deal paid"))?;
            }
            if ends {
                self.end_deal(id, DealStatus::Expired)?;
            }
        }
        Ok(())
    }

    /// Records faults; a provider faulty for more consecutive epochs than the warnings allow
    /// is slashed and jailed. Returns what each provider lost.
    fn apply_faults(
        &mut self,
        epoch: Epoch,
        tallies: &BTreeMap<Address, Tally>,
        verdicts: &BTreeMap<(DealId, u16), bool>,
    ) -> Result<BTreeMap<Address, Amount>, TxError> {
        for ((deal, index), passed) in verdicts {
            if !passed
                && let Some(d) = self.state.deals.get_mut(deal)
                && !d.repair_needed.contains(index)
            {
                d.repair_needed.push(*index);
            }
        }
        // An epoch with nothing to prove has no fault either: it ends a run of faulty epochs,
        // so warnings come again before the next slash.
        // A compute provider between its challenges has not had a clean epoch, only an
        // unobserved one: its run of faults carries over to its next challenge, or a cheater
        // challenged every `compute_challenge_interval_epochs` would only ever be warned.
        let interval = self.params.compute_challenge_interval_epochs;
        for (address, provider) in self.state.providers.iter_mut() {
            let unobserved = provider.claimed_int8_ops > 0
                && !Self::compute_challenge_due(address, epoch, interval);
            if !tallies.contains_key(address) && !unobserved {
                provider.consecutive_faulty_epochs = 0;
            }
        }
        let mut slashed = BTreeMap::new();
        let mut faults_total = 0u64;
        for (address, tally) in tallies {
            let faults = tally.faults();
            faults_total = faults_total.saturating_add(faults);
            let Some(provider) = self.state.providers.get_mut(address) else {
                continue;
            };
            if faults == 0 {
                provider.consecutive_faulty_epochs = 0;
                if tally.passed > 0 || tally.proven_int8_ops > 0 {
                    provider.last_proven_epoch = Some(epoch);
                }
                continue;
            }
            provider.consecutive_faulty_epochs =
                provider.consecutive_faulty_epochs.saturating_add(1);
            provider.total_faults = provider.total_faults.saturating_add(faults);
            if provider.consecutive_faulty_epochs > self.params.warnings_before_slash {
                let lost = self.slash(address, epoch)?;
                slashed.insert(*address, lost);
            }
        }
        let report = self.report_mut(epoch);
        report.faults = faults_total;
        Ok(slashed)
    }

    /// Takes `slash_bps` of the provider's bonded, delegated and unbonding stake, in
    /// proportion, burns it, and jails the provider.
    fn slash(&mut self, address: &Address, epoch: Epoch) -> Result<Amount, TxError> {
        let bps = self.params.slash_bps;
        let keys: Vec<(Address, Address)> = self
            .state
            .delegations
            .range((*address, ADDRESS_MIN)..=(*address, ADDRESS_MAX))
            .map(|(k, _)| *k)
            .collect();
        let mut from_delegations = Amount::ZERO;
        for key in keys {
            if let Some(amount) = self.state.delegations.get_mut(&key) {
                let cut = amount.bps(bps);
                *amount = amount.checked_sub(cut).ok_or_else(|| overflow("slash"))?;
                from_delegations = from_delegations
                    .checked_add(cut)
                    .ok_or_else(|| overflow("slash"))?;
                if amount.is_zero() {
                    self.state.delegations.remove(&key);
                }
            }
        }
        // Stake on its way out is still answerable for faults committed while it was bonded.
        let unbonding: Vec<(Epoch, u64)> = self
            .state
            .unbonding
            .iter()
            .filter(|(_, u)| u.provider == *address)
            .map(|(k, _)| *k)
            .collect();
        let mut from_unbonding = Amount::ZERO;
        for key in unbonding {
            if let Some(entry) = self.state.unbonding.get_mut(&key) {
                let cut = entry.amount.bps(bps);
                entry.amount = entry
                    .amount
                    .checked_sub(cut)
                    .ok_or_else(|| overflow("slash"))?;
                from_unbonding = from_unbonding
                    .checked_add(cut)
                    .ok_or_else(|| overflow("slash"))?;
            }
        }
        let jail_until = epoch
            .saturating_add(1)
            .saturating_add(self.params.jail_epochs);
        let provider = self.provider_mut(address)?;
        let from_bond = provider.self_bond.bps(bps);
        provider.self_bond = provider
            .self_bond
            .checked_sub(from_bond)
            .ok_or_else(|| overflow("slash"))?;
        provider.delegated = provider
            .delegated
            .checked_sub(from_delegations)
            .ok_or_else(|| overflow("slash"))?;
        if provider.status != ProviderStatus::Leaving {
            provider.status = ProviderStatus::Jailed {
                until_epoch: jail_until,
            };
        }
        // A slashed provider proves its compute afresh after jail.
        provider.proven_int8_ops = 0;
        let total = from_bond
            .checked_add(from_delegations)
            .and_then(|v| v.checked_add(from_unbonding))
            .ok_or_else(|| overflow("slash"))?;
        provider.total_slashed = provider
            .total_slashed
            .checked_add(total)
            .ok_or_else(|| overflow("slash"))?;
        self.burn(total)?;
        let report = self.report_mut(epoch);
        report.slashed = report
            .slashed
            .checked_add(total)
            .ok_or_else(|| overflow("slash"))?;
        report.burned_slash = report
            .burned_slash
            .checked_add(total)
            .ok_or_else(|| overflow("slash"))?;
        Ok(total)
    }

    fn storage_weight(&self, tally: &Tally) -> u128 {
        let paid = u128::from(tally.paid_storage_bytes);
        let idle = u128::from(
            tally
                .proven_storage_bytes
                .saturating_sub(tally.paid_storage_bytes),
        );
        paid.saturating_mul(u128::from(self.params.demand_weight_bps)) / 10_000 + idle
    }

    /// Proven rate × (1 + (demand − 1) × leased share): capacity serving leases earns more.
    fn compute_weight(&self, address: &Address, tally: &Tally) -> (u128, u32) {
        let Some(p) = self.state.providers.get(address) else {
            return (0, 0);
        };
        let leased_bps = if !p.declared.gpus.is_empty() {
            let total = u64::try_from(p.declared.gpus.len()).unwrap_or(u64::MAX);
            p.committed.gpus.min(total).saturating_mul(10_000) / total.max(1)
        } else {
            p.committed
                .cpu_millicores
                .min(p.declared.cpu_millicores)
                .saturating_mul(10_000)
                .checked_div(p.declared.cpu_millicores)
                .unwrap_or(0)
        };
        let leased_bps = u32::try_from(leased_bps).unwrap_or(10_000);
        let bonus = u128::from(self.params.demand_weight_bps.saturating_sub(10_000));
        let multiplier = 10_000 + bonus * u128::from(leased_bps) / 10_000;
        (
            u128::from(tally.proven_int8_ops).saturating_mul(multiplier) / 10_000,
            leased_bps,
        )
    }

    fn mint(&mut self, amount: Amount, epoch: Epoch) -> Result<(), TxError> {
        self.state.supply.minted = self
            .state
            .supply
            .minted
            .checked_add(amount)
            .ok_or_else(|| overflow("mint"))?;
        let report = self.report_mut(epoch);
        report.minted = report
            .minted
            .checked_add(amount)
            .ok_or_else(|| overflow("mint"))?;
        Ok(())
    }

    fn distribute_rewards(
        &mut self,
        epoch: Epoch,
        tallies: &BTreeMap<Address, Tally>,
        slashed: &BTreeMap<Address, Amount>,
    ) -> Result<(), TxError> {
        let p = &self.params;
        let mut scheduled = self.state.next_emission;
        if !p.max_supply.is_zero() {
            let issued = self
                .state
                .supply
                .genesis
                .checked_add(self.state.supply.minted)
                .ok_or_else(|| overflow("supply"))?;
            scheduled = scheduled.min(p.max_supply.saturating_sub(issued));
        }
        let storage_pool = scheduled.bps(p.storage_pool_bps);
        let compute_pool = scheduled.bps(p.compute_pool_bps);
        let validator_pool = scheduled
            .checked_sub(storage_pool)
            .and_then(|v| v.checked_sub(compute_pool))
            .ok_or_else(|| overflow("pools"))?;
        self.state.next_emission = scheduled.bps(10_000 - p.emission_decay_bps);
        self.report_mut(epoch).emission_scheduled = scheduled;

        // Weights. Jailed providers still prove (their data is still there) but earn nothing.
        let mut storage_w: BTreeMap<Address, u128> = BTreeMap::new();
        let mut compute_w: BTreeMap<Address, (u128, u32)> = BTreeMap::new();
        for (address, tally) in tallies {
            let eligible = self
                .state
                .providers
                .get(address)
                .is_some_and(|p| p.status == ProviderStatus::Active);
            let sw = if eligible {
                self.storage_weight(tally)
            } else {
                0
            };
            let (cw, leased) = self.compute_weight(address, tally);
            storage_w.insert(*address, sw);
            compute_w.insert(*address, (if eligible { cw } else { 0 }, leased));
        }
        let storage_total: u128 = storage_w.values().fold(0u128, |a, w| a.saturating_add(*w));
        let compute_total: u128 = compute_w.values().fold(0u128, |a, w| a.saturating_add(w.0));

        let mut gross: BTreeMap<Address, (Amount, Amount)> = BTreeMap::new();
        for (pool, weights, total, is_storage) in [
            (storage_pool, &storage_w, storage_total, true),
            (
                compute_pool,
                &compute_w
                    .iter()
                    .map(|(a, w)| (*a, w.0))
                    .collect::<BTreeMap<_, _>>(),
                compute_total,
                false,
            ),
        ] {
            if total == 0 || pool.is_zero() {
                continue;
            }
            let mut distributed = Amount::ZERO;
            for (address, w) in weights {
                let share = pool
                    .mul_div(*w, total)
                    .ok_or_else(|| overflow("reward share"))?;
                let entry = gross.entry(*address).or_default();
                if is_storage {
                    entry.0 = share;
                } else {
                    entry.1 = share;
                }
                distributed = distributed
                    .checked_add(share)
                    .ok_or_else(|| overflow("rewards"))?;
            }
            // Rounding dust goes to the treasury so the whole pool is accounted for.
            let dust = pool
                .checked_sub(distributed)
                .ok_or_else(|| overflow("dust"))?;
            self.mint(pool, epoch)?;
            self.credit_treasury(dust, epoch)?;
            let report = self.report_mut(epoch);
            if is_storage {
                report.storage_rewards = distributed;
            } else {
                report.compute_rewards = distributed;
            }
        }

        // Validators: by blocks proposed this epoch.
        let blocks: u128 = self.state.validators.values().fold(0u128, |a, v| {
            a.saturating_add(u128::from(v.blocks_this_epoch))
        });
        if blocks > 0 && !validator_pool.is_zero() {
            let shares: Vec<(Address, Amount)> = self
                .state
                .validators
                .values()
                .map(|v| {
                    (
                        v.address,
                        validator_pool
                            .mul_div(u128::from(v.blocks_this_epoch), blocks)
                            .unwrap_or_default(),
                    )
                })
                .collect();
            let mut distributed = Amount::ZERO;
            for (address, share) in shares {
                self.state.credit(address, share)?;
                if let Some(v) = self.state.validators.get_mut(&address) {
                    v.rewards_total = v
                        .rewards_total
                        .checked_add(share)
                        .unwrap_or(v.rewards_total);
                }
                distributed = distributed
                    .checked_add(share)
                    .ok_or_else(|| overflow("rewards"))?;
            }
            let dust = validator_pool
                .checked_sub(distributed)
                .ok_or_else(|| overflow("dust"))?;
            self.mint(validator_pool, epoch)?;
            self.credit_treasury(dust, epoch)?;
            self.report_mut(epoch).validator_rewards = distributed;
        }
        for v in self.state.validators.values_mut() {
            v.blocks_this_epoch = 0;
        }

        // Providers and their delegators, with a statement each.
        let mut delegator_total = Amount::ZERO;
        for (address, tally) in tallies {
            let (storage_reward, compute_reward) = gross.get(address).copied().unwrap_or_default();
            let total = storage_reward
                .checked_add(compute_reward)
                .ok_or_else(|| overflow("reward"))?;
            let (commission, to_delegators) = self.pay_reward(address, total)?;
            delegator_total = delegator_total
                .checked_add(to_delegators)
                .ok_or_else(|| overflow("reward"))?;
            let provider_reward = total
                .checked_sub(to_delegators)
                .ok_or_else(|| overflow("reward"))?;
            let lost = slashed.get(address).copied().unwrap_or_default();
            let (cw, leased_bps) = compute_w.get(address).copied().unwrap_or_default();
            let statement = RewardStatement {
                epoch,
                provider: *address,
                proofs_passed: tally.passed,
                proofs_failed: tally.failed,
                proofs_missed: tally.missed,
                proven_storage_bytes: tally.proven_storage_bytes,
                paid_storage_bytes: tally.paid_storage_bytes,
                storage_weight: storage_w.get(address).copied().unwrap_or_default(),
                storage_pool,
                storage_pool_weight: storage_total,
                proven_int8_ops: tally.proven_int8_ops,
                leased_bps,
                compute_weight: cw,
                compute_pool,
                compute_pool_weight: compute_total,
                gross_reward: total,
                commission,
                delegator_rewards: to_delegators,
                provider_reward,
                fees_earned: tally.fees,
                warning: tally.faults() > 0 && lost.is_zero(),
                slashed: lost,
            };
            if let Some(p) = self.state.providers.get_mut(address) {
                p.rewards_total = p
                    .rewards_total
                    .checked_add(provider_reward)
                    .unwrap_or(p.rewards_total);
                p.proven_storage_bytes = tally.proven_storage_bytes;
                p.history.push_back(ProviderEpochRecord {
                    epoch,
                    proofs_passed: tally.passed,
                    proofs_failed: tally.failed,
                    proofs_missed: tally.missed,
                    proven_storage_bytes: tally.proven_storage_bytes,
                    proven_int8_ops: tally.proven_int8_ops,
                    reward: provider_reward,
                    fees_earned: tally.fees,
                    slashed: lost,
                });
                let keep = usize::try_from(self.params.history_epochs).unwrap_or(usize::MAX);
                while p.history.len() > keep {
                    p.history.pop_front();
                }
            }
            self.state.statements.insert((epoch, *address), statement);
        }
        self.report_mut(epoch).delegator_rewards = delegator_total;
        Ok(())
    }

    /// Credits a provider's reward, sharing the delegators' part (stake-weighted, minus
    /// commission). Returns (commission, paid to delegators).
    fn pay_reward(
        &mut self,
        address: &Address,
        reward: Amount,
    ) -> Result<(Amount, Amount), TxError> {
        if reward.is_zero() {
            return Ok((Amount::ZERO, Amount::ZERO));
        }
        let provider = self.provider(address)?;
        let stake = provider.total_stake().ok_or_else(|| overflow("stake"))?;
        let delegated = provider.delegated;
        let commission_bps = provider.commission_bps;
        if delegated.is_zero() || stake.is_zero() {
            self.state.credit(*address, reward)?;
            return Ok((Amount::ZERO, Amount::ZERO));
        }
        let delegators_gross = reward
            .mul_div(delegated.ucrn(), stake.ucrn())
            .ok_or_else(|| overflow("delegator share"))?;
        let commission = delegators_gross.bps(commission_bps);
        let pot = delegators_gross
            .checked_sub(commission)
            .ok_or_else(|| overflow("commission"))?;
        let entries: Vec<(Address, Amount)> = self
            .state
            .delegations
            .range((*address, ADDRESS_MIN)..=(*address, ADDRESS_MAX))
            .map(|((_, delegator), amount)| (*delegator, *amount))
            .collect();
        let mut paid = Amount::ZERO;
        for (delegator, amount) in entries {
            let share = pot
                .mul_div(amount.ucrn(), delegated.ucrn())
                .ok_or_else(|| overflow("delegator share"))?;
            self.state.credit(delegator, share)?;
            paid = paid
                .checked_add(share)
                .ok_or_else(|| overflow("delegators"))?;
        }
        // The provider keeps its own share, the commission and the rounding dust.
        let own = reward.checked_sub(paid).ok_or_else(|| overflow("reward"))?;
        self.state.credit(*address, own)?;
        Ok((commission, paid))
    }

    fn release_unbonding(&mut self, epoch: Epoch) -> Result<(), TxError> {
        let due: Vec<(Epoch, u64)> = self
            .state
            .unbonding
            .range(..=(epoch, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            // A leaving provider's own bond answers for the shards it still holds: it is
            // released only once every one of them has been repaired onto another
            // provider (or its deal has ended). It stays due, so it is looked at again at
            // every epoch's end.
            let held = self.state.unbonding.get(&key).is_some_and(|u| {
                u.owner == u.provider
                    && self
                        .state
                        .providers
                        .get(&u.provider)
                        .is_some_and(|p| p.status == ProviderStatus::Leaving)
                    && self.holds_live_shards(&u.provider)
            });
            if held {
                continue;
            }
            if let Some(entry) = self.state.unbonding.remove(&key) {
                self.state.credit(entry.owner, entry.amount)?;
            }
        }
        Ok(())
    }

    fn close_report(
        &mut self,
        epoch: Epoch,
        tallies: &BTreeMap<Address, Tally>,
    ) -> Result<(), TxError> {
        let registered = self
            .state
            .providers
            .values()
            .filter(|p| p.is_active())
            .count();
        let active = tallies.values().filter(|t| t.passed > 0).count();
        let proven = self
            .state
            .providers
            .values()
            .filter(|p| p.is_proven(epoch))
            .count();
        let report = self.report_mut(epoch);
        report.registered_providers = u64::try_from(registered).unwrap_or(u64::MAX);
        report.active_providers = u64::try_from(active).unwrap_or(u64::MAX);
        report.proven_providers = u64::try_from(proven).unwrap_or(u64::MAX);
        report.finished = true;
        let next = epoch.saturating_add(1);
        let emission = self.state.next_emission;
        let report: &mut EpochReport = self.report_mut(next);
        report.emission_scheduled = emission;
        Ok(())
    }

    /// Challenges for `epoch`, derived from the seed of the block that ends the previous one.
    pub(crate) fn issue_challenges(&mut self, ctx: &Ctx, epoch: Epoch) -> Result<(), TxError> {
        let length = self.params.epoch_length_blocks;
        let deadline = epoch
            .saturating_mul(length)
            .saturating_add(self.params.storage_proof_deadline_blocks);
        let mut storage = BTreeMap::new();
        for deal in self.state.deals.values() {
            if deal.status != DealStatus::Active {
                continue;
            }
            if deal.start_epoch.is_none_or(|s| s > epoch)
                || deal.end_epoch.is_some_and(|e| e < epoch)
            {
                continue;
            }
            for (index, provider) in deal.providers.iter().enumerate() {
                let Ok(index) = u16::try_from(index) else {
                    continue;
                };
                storage.insert(
                    (deal.id, index),
                    StorageChallenge {
                        epoch,
                        provider: *provider,
                        seed: ctx.seed,
                        deadline,
                        verdict: Verdict::Pending,
                        audit_reporters: BTreeSet::new(),
                        late_reporters: BTreeSet::new(),
                    },
                );
            }
        }
        self.state.storage_challenges = storage;

        let interval = self.params.compute_challenge_interval_epochs;
        let provers: Vec<(Address, u64)> = self
            .state
            .providers
            .values()
            .filter(|p| {
                p.is_active()
                    && p.claimed_int8_ops > 0
                    && Self::compute_challenge_due(&p.address, epoch, interval)
            })
            .map(|p| (p.address, p.claimed_int8_ops))
            .collect();
        for (provider, claimed) in provers {
            let id = ChallengeId(self.state.counters.challenge);
            self.state.counters.challenge = self.state.counters.challenge.saturating_add(1);
            let seed = Hash::domain(
                "cairn.compute.challenge.v1",
                &[&ctx.seed.0, &provider.0, &id.0.to_be_bytes()],
            );
            let shape = cairn_proofs::compute::shape_for(
                claimed,
                self.params.compute_challenge_ms,
                self.params.max_gemm_dim,
            );
            self.state.compute_challenges.insert(
                id,
                ComputeChallenge {
                    id,
                    epoch,
                    provider,
                    seed,
                    m: shape.m,
                    k: shape.k,
                    n: shape.n,
                    claimed_int8_ops: claimed,
                    issued_height: ctx.height,
                    issued_timestamp_ms: ctx.timestamp_ms,
                    commit_deadline: ctx
                        .height
                        .saturating_add(self.params.compute_commit_deadline_blocks),
                    openings: self.params.compute_openings,
                    phase: ComputePhase::Issued,
                },
            );
        }
        Ok(())
    }

    /// Whether `provider` is challenged in `epoch`: once every `interval` epochs, at an
    /// offset fixed by its address so that providers' challenges (and the validators'
    /// verification work) spread over the interval.
    pub(crate) fn compute_challenge_due(provider: &Address, epoch: Epoch, interval: u64) -> bool {
        let interval = interval.max(1);
        let offset =
            Hash::domain("cairn.compute.offset.v1", &[&provider.0]).prefix_u64() % interval;
        epoch % interval == offset
    }

    /// Bounds state growth: statements and finished challenges older than the history window.
    fn prune(&mut self, epoch: Epoch) {
        let keep = self.params.history_epochs;
        if epoch < keep {
            return;
        }
        let cutoff = epoch - keep;
        self.state.statements.retain(|(e, _), _| *e > cutoff);
        self.state
            .compute_challenges
            .retain(|_, c| c.epoch > cutoff);
    }
}

impl State {
    /// Reward statement of a provider for an epoch.
    pub fn statement(&self, epoch: Epoch, provider: &Address) -> Option<&RewardStatement> {
        self.statements.get(&(epoch, *provider))
    }
}
