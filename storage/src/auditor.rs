//! The validators' timed auditor (reliability.md §2a): once per epoch, a sample of the
//! epoch's challenged shards is audited with `cairn_proofs::timed` over the providers' shard
//! API, and the holders found wanting are reported on chain, signed with the validator's key:
//! wrong, missing or past the fault line in one `ReportAuditFailures` (a fault), right but
//! late in one `ReportAuditLateness` (a strike: see `late_audits_before_fault`).
//!
//! Every validator draws the same sample, so their reports add up to the stake the ledger
//! needs (more than a third) to fail a challenge. The sample is drawn from the hash of the
//! block a quarter into the epoch and the audits start as soon as it is final: a provider
//! learns that it is audited when the auditors do, too late to fetch its whole shard back
//! before the chain of reads begins. What one validator measures is not a proof; the
//! threshold is what keeps a single slow or hostile validator from faulting an honest
//! provider. Validators take turns (an order drawn from the same block), so a holder's disk
//! serves one audit at a time.
//!
//! Fairness to busy providers (issue "fair audits"): a provider with a strike on chain is
//! audited by every validator each epoch until an epoch clears it, and an auditor whose own
//! machine is overloaded ([`crate::load`]) reports no lateness at all, since its clock would
//! blame the provider for its own delays.

use crate::chain;
use crate::load::{Load, LoadGauge, LoadLimits};
use cairn_client::NodeClient;
use cairn_client::audit::{TimedOutcome, timed_audit};
use cairn_proofs::timed::AuditRule;
use cairn_types::tx::{AuditedShard, MAX_AUDIT_REPORT_SHARDS, ReportAuditFailures};
use cairn_types::{Address, BoundedVec, DealId, Epoch, Hash, Height, Keypair, TxBody};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How the auditor runs.
#[derive(Clone, Copy, Debug)]
pub struct AuditorConfig {
    pub rule: AuditRule,
    /// Shards audited per epoch (the same ones by every validator); at most
    /// [`MAX_AUDIT_REPORT_SHARDS`].
    pub shards_per_epoch: usize,
    pub epoch_length_blocks: u64,
    pub poll: Duration,
    /// When this auditor counts itself too busy to report lateness.
    pub load: LoadLimits,
}

/// One challenged shard: who must hold it this epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Candidate {
    pub deal: DealId,
    pub shard_index: u16,
    pub provider: Address,
}

/// The epoch the block after `height` belongs to, as the ledger counts it (the epoch a
/// report sent now lands in).
fn epoch_of_next(height: Height, epoch_length_blocks: u64) -> Epoch {
    height / epoch_length_blocks.max(1)
}

/// The height whose block hash draws epoch `epoch`'s sample: a quarter into the epoch, so
/// on-chain proofs and audits overlap and reports still land within the epoch.
pub fn sample_height(epoch: Epoch, epoch_length_blocks: u64) -> Height {
    let length = epoch_length_blocks.max(1);
    epoch
        .saturating_mul(length)
        .saturating_add(1)
        .saturating_add(length / 4)
}

/// The `count` candidates ranked first by `H(seed, deal, shard)`: the same sample for
/// everyone holding the seed, unknown to anyone before it. Every provider in `suspects`
/// (a strike on chain) has its first-ranked shard in the sample as well, ahead of the rest,
/// so a strike is confirmed or cleared the next epoch.
pub fn sample(
    seed: &Hash,
    mut candidates: Vec<Candidate>,
    count: usize,
    suspects: &BTreeSet<Address>,
) -> Vec<Candidate> {
    let rank = |c: &Candidate| {
        Hash::domain(
            "cairn.audit.sample.v1",
            &[
                seed.as_bytes(),
                &c.deal.0.to_be_bytes(),
                &c.shard_index.to_be_bytes(),
            ],
        )
    };
    candidates.sort_by_cached_key(|c| (rank(c), *c));
    candidates.dedup_by_key(|c| (c.deal, c.shard_index));
    let mut picked: Vec<Candidate> = Vec::new();
    for suspect in suspects {
        if let Some(c) = candidates.iter().find(|c| c.provider == *suspect) {
            picked.push(*c);
        }
    }
    let want = count.max(picked.len()).min(MAX_AUDIT_REPORT_SHARDS);
    picked.truncate(want);
    for c in candidates {
        if picked.len() >= want {
            break;
        }
        if !picked.contains(&c) {
            picked.push(c);
        }
    }
    picked
}

/// `me`'s place in the validators' audit order for the sample drawn from `seed` (0 when it
/// is not listed: it goes first and shares the slot).
pub fn turn_of(seed: &Hash, validators: &[Address], me: &Address) -> usize {
    let rank = |a: &Address| Hash::domain("cairn.audit.turn.v1", &[seed.as_bytes(), &a.0]);
    let mut order: Vec<&Address> = validators.iter().collect();
    order.sort_by_cached_key(|a| (rank(a), **a));
    order.dedup();
    order.iter().position(|a| *a == me).unwrap_or(0)
}

/// This epoch's challenged shards, from every active storage provider's challenge list, and
/// the providers with a timed-audit strike on chain.
fn candidates(
    node: &NodeClient,
    epoch: Epoch,
) -> Result<(Vec<Candidate>, BTreeSet<Address>), String> {
    let providers = cairn_client::store::storage_providers(node).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut suspects = BTreeSet::new();
    for p in providers {
        if p.late_audit_epochs > 0 {
            suspects.insert(p.address);
        }
        let challenges = chain::challenges(node, &p.address).map_err(|e| e.to_string())?;
        out.extend(
            challenges
                .into_iter()
                .filter(|c| c.epoch == epoch)
                .map(|c| Candidate {
                    deal: c.deal,
                    shard_index: c.shard_index,
                    provider: p.address,
                }),
        );
    }
    Ok((out, suspects))
}

/// What one epoch's audits found, before it is sent.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Wrong, missing or past the fault line: a fault.
    pub failed: Vec<AuditedShard>,
    /// Right but late: a strike.
    pub late: Vec<AuditedShard>,
    /// Verdicts of the clock left out because this auditor was overloaded.
    pub withheld: usize,
}

/// Sorts outcomes into reports. When the auditor was overloaded, only answers that are wrong
/// whatever the load are kept: its clock cannot tell a late provider from its own delays.
pub fn findings(outcomes: &[(AuditedShard, TimedOutcome)], overloaded: bool) -> Findings {
    let mut out = Findings::default();
    for (shard, outcome) in outcomes {
        match outcome {
            TimedOutcome::OnTime => {}
            o if o.is_timing() && overloaded => out.withheld += 1,
            TimedOutcome::Late => out.late.push(shard.clone()),
            TimedOutcome::TooLate | TimedOutcome::Wrong => out.failed.push(shard.clone()),
        }
    }
    out
}

/// Audits epoch `epoch`'s sample and reports the failures; returns what it did, for the log.
fn audit_epoch(
    node: &NodeClient,
    key: &Keypair,
    config: &AuditorConfig,
    gauge: &mut LoadGauge,
    epoch: Epoch,
    stop: &AtomicBool,
) -> Result<String, String> {
    let at = sample_height(epoch, config.epoch_length_blocks);
    let block = node
        .get(&format!("/v1/blocks/{at}"))
        .map_err(|e| e.to_string())?;
    let seed: Hash = block["hash"]
        .as_str()
        .and_then(|h| h.parse().ok())
        .ok_or_else(|| format!("block {at} has no hash"))?;
    let (candidates, suspects) = candidates(node, epoch)?;
    let picked = sample(&seed, candidates, config.shards_per_epoch, &suspects);
    // Validators take turns, in an order drawn from the same seed: audits of one shard at
    // the same moment would share its holder's disk and make an honest holder look slow.
    let status = node.status().map_err(|e| e.to_string())?;
    let validators: Vec<Address> = status["validators"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().and_then(|a| a.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    let turn = turn_of(&seed, &validators, &key.address());
    let slot_ms = config
        .rule
        .deadline_ms()
        .saturating_mul(u64::try_from(picked.len()).unwrap_or(u64::MAX));
    // Waited out in poll-sized steps, so a stop is not held up by a late turn.
    let wait = Duration::from_millis(slot_ms.saturating_mul(u64::try_from(turn).unwrap_or(0)));
    let waiting = std::time::Instant::now();
    while waiting.elapsed() < wait {
        if stop.load(Ordering::Relaxed) {
            return Ok(format!("epoch {epoch}: stopped before turn {turn}"));
        }
        std::thread::sleep(config.poll.min(wait.saturating_sub(waiting.elapsed())));
    }
    // A turn that comes after the epoch ended could only send a report the chain refuses.
    let epoch_ended =
        || chain::height(node).is_ok_and(|h| epoch_of_next(h, config.epoch_length_blocks) > epoch);
    if epoch_ended() {
        return Ok(format!(
            "epoch {epoch}: turn {turn} came after the epoch ended; nothing audited"
        ));
    }
    let before = gauge.check();
    let mut outcomes = Vec::new();
    for c in &picked {
        if stop.load(Ordering::Relaxed) {
            return Ok(format!("epoch {epoch}: stopped during the audits"));
        }
        let verdicts = timed_audit(node, c.deal, Some(c.shard_index), config.rule)
            .map_err(|e| format!("deal {} shard {}: {e}", c.deal, c.shard_index))?;
        // The worst of the holder's verdicts (one per audited shard).
        let outcome = verdicts
            .iter()
            .map(|v| v.outcome)
            .max()
            .unwrap_or(TimedOutcome::OnTime);
        let shard = AuditedShard {
            deal: c.deal,
            shard_index: c.shard_index,
            provider: c.provider,
        };
        outcomes.push((shard, outcome));
    }
    // Busy before or after: either way the clock in between is not to be trusted.
    let load = match (before, gauge.check()) {
        (Load::Overloaded { reason }, _) | (_, Load::Overloaded { reason }) => Some(reason),
        (Load::Calm, Load::Calm) => None,
    };
    let found = findings(&outcomes, load.is_some());
    let mut line = format!("epoch {epoch}: {} shard(s) audited", picked.len());
    if let Some(reason) = &load {
        line.push_str(&format!(
            "; this auditor is overloaded ({reason}): {} verdict(s) of the clock withheld",
            found.withheld
        ));
    }
    if found.failed.is_empty() && found.late.is_empty() {
        line.push_str(if load.is_some() {
            ", nothing else to report"
        } else {
            ", all in time"
        });
        return Ok(line);
    }
    let named = |list: &[AuditedShard]| -> String {
        list.iter()
            .map(|f| format!("deal {} shard {}", f.deal, f.shard_index))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if epoch_ended() {
        line.push_str(&format!(
            "; found {} wrong or too late and {} late, but the epoch ended before the report",
            named(&found.failed),
            named(&found.late)
        ));
        return Ok(line);
    }
    for (list, what) in [(&found.failed, "wrong or too late"), (&found.late, "late")] {
        if list.is_empty() {
            continue;
        }
        let report = ReportAuditFailures {
            epoch,
            shards: BoundedVec::new(list.clone()).ok_or("more shards than one report holds")?,
        };
        let body = if what == "late" {
            TxBody::ReportAuditLateness(report)
        } else {
            TxBody::ReportAuditFailures(report)
        };
        let tx = node.send(key, body, None).map_err(|e| e.to_string())?;
        line.push_str(&format!("; reported {} {what} in {tx}", named(list)));
    }
    Ok(line)
}

/// Audits one epoch after another until `stop`, logging one line per epoch (and errors).
pub fn run(
    node_url: &str,
    key: &Keypair,
    config: AuditorConfig,
    stop: &AtomicBool,
    mut log: impl FnMut(String),
) {
    let node = NodeClient::new(node_url);
    let mut gauge = LoadGauge::new(config.load);
    let mut done: Option<Epoch> = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(config.poll);
        let Ok(height) = chain::height(&node) else {
            continue;
        };
        let epoch = epoch_of_next(height, config.epoch_length_blocks);
        if done.is_some_and(|d| d >= epoch)
            || height < sample_height(epoch, config.epoch_length_blocks)
        {
            continue;
        }
        match audit_epoch(&node, key, &config, &mut gauge, epoch, stop) {
            Ok(line) => log(line),
            Err(e) => log(format!("epoch {epoch}: audit failed: {e}")),
        }
        done = Some(epoch);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn candidate(deal: u64, shard_index: u16) -> Candidate {
        Candidate {
            deal: DealId(deal),
            shard_index,
            provider: Address([u8::try_from(deal).unwrap(); 32]),
        }
    }

    #[test]
    fn everyone_draws_the_same_sample_and_a_new_seed_draws_another() {
        let all: Vec<Candidate> = (0..20)
            .flat_map(|d| (0..6).map(move |s| candidate(d, s)))
            .collect();
        let seed = Hash::domain("test", &[b"a"]);
        let mut shuffled = all.clone();
        shuffled.reverse();
        let none = BTreeSet::new();
        let one = sample(&seed, all.clone(), 5, &none);
        assert_eq!(one.len(), 5);
        assert_eq!(
            one,
            sample(&seed, shuffled, 5, &none),
            "order of discovery does not matter"
        );
        let other = sample(&Hash::domain("test", &[b"b"]), all.clone(), 5, &none);
        assert_ne!(one, other);
        assert_eq!(
            sample(&seed, all, 1000, &none).len(),
            MAX_AUDIT_REPORT_SHARDS
        );
    }

    #[test]
    fn a_provider_with_a_strike_is_always_in_the_sample() {
        let all: Vec<Candidate> = (0..20)
            .flat_map(|d| (0..6).map(move |s| candidate(d, s)))
            .collect();
        let seed = Hash::domain("test", &[b"a"]);
        let plain = sample(&seed, all.clone(), 3, &BTreeSet::new());
        // A provider the plain sample left out.
        let outside = (0..20u8)
            .map(|d| Address([d; 32]))
            .find(|a| plain.iter().all(|c| c.provider != *a))
            .unwrap();
        let suspects = BTreeSet::from([outside]);
        let with = sample(&seed, all.clone(), 3, &suspects);
        assert_eq!(with.len(), 3);
        assert_eq!(with[0].provider, outside, "{with:?}");
        assert_eq!(
            with,
            sample(&seed, all.clone(), 3, &suspects),
            "deterministic"
        );
        // More suspects than the sample size: every suspect still gets a shard.
        let many: BTreeSet<Address> = (0..10u8).map(|d| Address([d; 32])).collect();
        let wide = sample(&seed, all, 3, &many);
        assert_eq!(wide.len(), 10);
        let named: BTreeSet<Address> = wide.iter().map(|c| c.provider).collect();
        assert_eq!(named, many);
    }

    #[test]
    fn an_overloaded_auditor_withholds_the_clock_but_not_wrong_bytes() {
        let shard = |d| AuditedShard {
            deal: DealId(d),
            shard_index: 0,
            provider: Address([1; 32]),
        };
        let outcomes = vec![
            (shard(1), TimedOutcome::OnTime),
            (shard(2), TimedOutcome::Late),
            (shard(3), TimedOutcome::TooLate),
            (shard(4), TimedOutcome::Wrong),
        ];
        let calm = findings(&outcomes, false);
        assert_eq!(calm.late, vec![shard(2)]);
        assert_eq!(calm.failed, vec![shard(3), shard(4)]);
        assert_eq!(calm.withheld, 0);
        let busy = findings(&outcomes, true);
        assert!(busy.late.is_empty());
        assert_eq!(busy.failed, vec![shard(4)]);
        assert_eq!(busy.withheld, 2);
    }

    #[test]
    fn validators_take_distinct_turns_that_change_with_the_seed() {
        let validators: Vec<Address> = (1..=5u8).map(|i| Address([i; 32])).collect();
        let turns = |seed: &Hash| -> Vec<usize> {
            validators
                .iter()
                .map(|v| turn_of(seed, &validators, v))
                .collect()
        };
        let a = Hash::domain("t", &[b"1"]);
        let mut sorted = turns(&a);
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
        let changed = (0..20u8).any(|i| turns(&Hash::domain("t", &[&[i]])) != turns(&a));
        assert!(changed, "the order never moved");
        assert_eq!(turn_of(&a, &validators, &Address([9; 32])), 0);
    }

    #[test]
    fn the_sample_block_lies_a_quarter_into_the_epoch() {
        // Epoch 2 of 40-block epochs runs over heights 81..=120.
        assert_eq!(sample_height(2, 40), 91);
        assert_eq!(sample_height(0, 4), 2);
        assert_eq!(sample_height(u64::MAX, 40), u64::MAX);
    }
}
