//! The validators' timed auditor (reliability.md §2a): once per epoch, a sample of the
//! epoch's challenged shards is audited with `cairn_proofs::timed` over the providers' shard
//! API, and the holders that answered late or wrongly are reported on chain in one
//! `ReportAuditFailures`, signed with the validator's key.
//!
//! Every validator draws the same sample, so their reports add up to the stake the ledger
//! needs (more than a third) to fail a challenge. The sample is drawn from the hash of the
//! block a quarter into the epoch and the audits start as soon as it is final: a provider
//! learns that it is audited when the auditors do, too late to fetch its whole shard back
//! before the chain of reads begins. What one validator measures is not a proof; the
//! threshold is what keeps a single slow or hostile validator from faulting an honest
//! provider. Validators take turns (an order drawn from the same block), so a holder's disk
//! serves one audit at a time.

use crate::chain;
use cairn_client::NodeClient;
use cairn_client::audit::timed_audit;
use cairn_proofs::timed::AuditRule;
use cairn_types::tx::{AuditedShard, MAX_AUDIT_REPORT_SHARDS, ReportAuditFailures};
use cairn_types::{Address, BoundedVec, DealId, Epoch, Hash, Height, Keypair, TxBody};
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
/// everyone holding the seed, unknown to anyone before it.
pub fn sample(seed: &Hash, mut candidates: Vec<Candidate>, count: usize) -> Vec<Candidate> {
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
    candidates.truncate(count.min(MAX_AUDIT_REPORT_SHARDS));
    candidates
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

/// This epoch's challenged shards, from every active storage provider's challenge list.
fn candidates(node: &NodeClient, epoch: Epoch) -> Result<Vec<Candidate>, String> {
    let providers = cairn_client::store::storage_providers(node).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for p in providers {
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
    Ok(out)
}

/// Audits epoch `epoch`'s sample and reports the failures; returns what it did, for the log.
fn audit_epoch(
    node: &NodeClient,
    key: &Keypair,
    config: &AuditorConfig,
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
    let picked = sample(&seed, candidates(node, epoch)?, config.shards_per_epoch);
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
    let mut failed = Vec::new();
    for c in &picked {
        let verdicts = timed_audit(node, c.deal, Some(c.shard_index), config.rule)
            .map_err(|e| format!("deal {} shard {}: {e}", c.deal, c.shard_index))?;
        if verdicts.iter().any(|v| v.failure.is_some()) {
            failed.push(AuditedShard {
                deal: c.deal,
                shard_index: c.shard_index,
                provider: c.provider,
            });
        }
    }
    if failed.is_empty() {
        return Ok(format!(
            "epoch {epoch}: {} shard(s) audited, all in time",
            picked.len()
        ));
    }
    let named: Vec<String> = failed
        .iter()
        .map(|f| format!("deal {} shard {}", f.deal, f.shard_index))
        .collect();
    if epoch_ended() {
        return Ok(format!(
            "epoch {epoch}: {} found late or wrong, but the epoch ended before the report",
            named.join(", ")
        ));
    }
    let body = TxBody::ReportAuditFailures(ReportAuditFailures {
        epoch,
        shards: BoundedVec::new(failed).ok_or("more failures than one report holds")?,
    });
    let tx = node.send(key, body, None).map_err(|e| e.to_string())?;
    Ok(format!(
        "epoch {epoch}: {} shard(s) audited; reported {} late or wrong in {tx}",
        picked.len(),
        named.join(", ")
    ))
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
        match audit_epoch(&node, key, &config, epoch, stop) {
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
        let one = sample(&seed, all.clone(), 5);
        assert_eq!(one.len(), 5);
        assert_eq!(
            one,
            sample(&seed, shuffled, 5),
            "order of discovery does not matter"
        );
        let other = sample(&Hash::domain("test", &[b"b"]), all.clone(), 5);
        assert_ne!(one, other);
        assert_eq!(sample(&seed, all, 1000).len(), MAX_AUDIT_REPORT_SHARDS);
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
