//! The timed storage audit: a long chain of dependent leaf reads, answered against a clock.
//!
//! The on-chain proof ([`crate::storage`]) is a short chain (`storage_leaves_per_challenge`,
//! 8 by default) with a deadline of whole blocks (30 s by default). That proves the bytes
//! exist *somewhere*, not that the provider keeps them: a `Regenerator` that kept only its
//! shard's tree rebuilds each challenged leaf from one stripe of `k` peers ([`crate::
//! inconsistency::rebuild_leaf`]), one peer round trip per step, and 8 round trips fit a
//! 30 s deadline with room to spare. A deadline of blocks cannot be tightened enough, and
//! opening the ~1 000 leaves that would need on chain costs about 1.5 MB per shard per epoch.
//!
//! So the audit runs off chain, between an auditor and the provider's shard API: the
//! auditor draws a fresh seed, the provider walks [`AuditRule::steps`] links of the same
//! chain the ledger uses ([`crate::storage::next_index`]: each index comes from the bytes
//! of the previous leaf) and returns every opening, and the auditor times the whole
//! exchange. An honest provider pays one local read per step (well under a millisecond on
//! an SSD); a regenerator pays one network round trip per *distinct* leaf, and the chain
//! makes those round trips sequential. [`AuditRule::deadline_ms`] sits between the two:
//! `step_budget_us` per step (500 µs, several times an SSD's random read) plus
//! `allowance_ms` for the auditor's own round trip and the transfer of the answer (about
//! 2.9 MB at the defaults: 2 048 openings of 1 KiB leaves).
//!
//! What this does not catch, by design of the numbers: a regenerator whose `k` peers answer
//! in less than `deadline / distinct leaves` (about 1.5 ms at the defaults on a shard of
//! 2 049 leaves, so inside one datacenter); a provider that deleted only a few percent of its
//! leaves (it regenerates the few it is asked for in time); and honest providers on disks
//! slower than the step budget (spinning disks fail it). The deterministic simulation in `storage/tests/it/regeneration.rs` measures
//! both sides with the `Regenerator`, `PartialStorer` and `Outsourcer` doubles.
//!
//! Everything here is pure: the caller measures `elapsed_ms` with its own clock (the
//! deterministic runtime in the simulation, a monotonic clock over HTTP) and passes it in.

use crate::storage::{StorageProofError, verify_chain};
use cairn_types::proof::LeafOpening;
use cairn_types::tx::BlobMeta;
use cairn_types::{DealId, Hash};
use serde::{Deserialize, Serialize};

/// Most links one audit may ask for: bounds the provider's work and the answer's size
/// (4096 openings of 64 KiB leaves is 256 MiB; of the default 1 KiB leaves, under 6 MiB).
/// The wire bound of [`cairn_types::proof::AuditAnswer`].
pub const MAX_AUDIT_STEPS: u32 = 4096;
const _: () = assert!(MAX_AUDIT_STEPS as usize == cairn_types::proof::MAX_AUDIT_LEAVES);

/// How long a chain an audit asks for and how long it waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRule {
    /// Links of the chain, each one dependent read of the provider's shard.
    pub steps: u32,
    /// Time allowed per link: several times an SSD's random read (60–140 µs), so an honest
    /// chain uses a small part of it while a network round trip per link cannot fit.
    pub step_budget_us: u32,
    /// Fixed time for the auditor's round trip to the provider and the answer's transfer.
    pub allowance_ms: u32,
    /// Past the deadline, how far (in percent of it) an answer may come and still be only
    /// [`Timeliness::Late`]: a strike that brings re-audits, not a fault. Beyond it the
    /// answer is [`Timeliness::TooLate`], which faults the shard. 200% puts the fault line
    /// at about 6 s by default: an honest provider on a saturated two-core machine was
    /// measured at 2.1–2.4 s, while a regenerator needs at least 6.5 s over the internet
    /// (1 300 distinct leaves, each a round trip of at least 5 ms) and a nearby one is held
    /// by the peers' read budgets to about 18 s (docs/benchmarks.md, "Fair audits").
    #[serde(default = "default_fault_after_pct")]
    pub fault_after_pct: u32,
}

fn default_fault_after_pct() -> u32 {
    200
}

impl Default for AuditRule {
    fn default() -> Self {
        Self {
            steps: 2048,
            step_budget_us: 500,
            allowance_ms: 1_000,
            fault_after_pct: default_fault_after_pct(),
        }
    }
}

/// How an answer's time reads against the rule (a wrong answer is wrong whatever its time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timeliness {
    /// Within [`AuditRule::deadline_ms`].
    OnTime,
    /// After the deadline but within [`AuditRule::fault_after_ms`]: what a busy honest
    /// machine and a provider that regenerates a few leaves both look like. It is reported
    /// as a strike: the provider is audited again by every validator, and only
    /// consecutive strikes (which a regenerator cannot avoid, since its lateness comes from
    /// the missing bytes and not from the moment) fault it (`late_audits_before_fault`).
    Late,
    /// After [`AuditRule::fault_after_ms`], or no answer by then: faults the shard.
    TooLate,
}

/// Why an audit failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditFailure {
    #[error("the audit rule is unusable: {reason}")]
    BadRule { reason: &'static str },
    #[error("the answer took {elapsed_ms} ms, the deadline is {deadline_ms} ms")]
    Late { elapsed_ms: u64, deadline_ms: u64 },
    #[error("the answer is wrong: {0}")]
    Wrong(#[from] StorageProofError),
}

impl AuditRule {
    /// Whether the rule can be run: at least one step, at most [`MAX_AUDIT_STEPS`].
    pub fn check(&self) -> Result<(), AuditFailure> {
        if self.steps == 0 {
            return Err(AuditFailure::BadRule {
                reason: "steps must be at least 1",
            });
        }
        if self.steps > MAX_AUDIT_STEPS {
            return Err(AuditFailure::BadRule {
                reason: "steps exceeds MAX_AUDIT_STEPS (4096)",
            });
        }
        Ok(())
    }

    /// The whole exchange's deadline: `steps * step_budget_us` plus `allowance_ms`.
    pub fn deadline_ms(&self) -> u64 {
        let steps_us = u64::from(self.steps).saturating_mul(u64::from(self.step_budget_us));
        steps_us
            .div_ceil(1_000)
            .saturating_add(u64::from(self.allowance_ms))
    }

    /// The time past which an answer faults the shard: the deadline plus
    /// `fault_after_pct` percent of it.
    pub fn fault_after_ms(&self) -> u64 {
        let deadline = self.deadline_ms();
        deadline.saturating_add(
            deadline
                .saturating_mul(u64::from(self.fault_after_pct))
                .div_ceil(100),
        )
    }

    /// How `elapsed_ms` reads against the deadline and the fault line.
    pub fn timeliness(&self, elapsed_ms: u64) -> Timeliness {
        if elapsed_ms <= self.deadline_ms() {
            Timeliness::OnTime
        } else if elapsed_ms <= self.fault_after_ms() {
            Timeliness::Late
        } else {
            Timeliness::TooLate
        }
    }

    /// The verdict on one answer: every link of the chain checked against the shard root
    /// (the same check as the on-chain proof, [`verify_chain`]), and the exchange within the
    /// deadline. A wrong answer is reported as wrong even when it was also late.
    pub fn judge(
        &self,
        blob: &BlobMeta,
        seed: &Hash,
        deal: DealId,
        shard_index: u16,
        leaves: &[LeafOpening],
        elapsed_ms: u64,
    ) -> Result<(), AuditFailure> {
        self.check()?;
        let steps = usize::try_from(self.steps).unwrap_or(usize::MAX);
        verify_chain(blob, seed, deal, shard_index, leaves, steps)?;
        let deadline_ms = self.deadline_ms();
        if elapsed_ms > deadline_ms {
            return Err(AuditFailure::Late {
                elapsed_ms,
                deadline_ms,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::storage::{prove_chain, shard_root};
    use cairn_types::BoundedVec;

    fn shard(tag: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| u8::try_from((i * 31 + usize::from(tag) * 7) % 251).unwrap())
            .collect()
    }

    fn blob(shards: &[Vec<u8>]) -> BlobMeta {
        BlobMeta {
            id: Hash::ZERO,
            size_bytes: 2 * u64::try_from(shards[0].len()).unwrap(),
            data_shards: 2,
            parity_shards: 1,
            shard_size_bytes: u64::try_from(shards[0].len()).unwrap(),
            leaf_size_bytes: 1024,
            shard_roots: BoundedVec::new(shards.iter().map(|s| shard_root(s)).collect()).unwrap(),
        }
    }

    #[test]
    fn the_deadline_is_steps_times_budget_plus_allowance() {
        let rule = AuditRule::default();
        assert_eq!(rule.deadline_ms(), 2048 * 500 / 1000 + 1000);
        let odd = AuditRule {
            steps: 3,
            step_budget_us: 333,
            allowance_ms: 0,
            fault_after_pct: 0,
        };
        assert_eq!(odd.deadline_ms(), 1, "rounded up, never down");
        let huge = AuditRule {
            steps: u32::MAX,
            step_budget_us: u32::MAX,
            allowance_ms: u32::MAX,
            fault_after_pct: u32::MAX,
        };
        assert!(huge.deadline_ms() > u64::from(u32::MAX));
        assert!(
            huge.fault_after_ms() >= huge.deadline_ms(),
            "saturates, never wraps"
        );
    }

    #[test]
    fn lateness_has_a_band_between_the_deadline_and_the_fault_line() {
        let rule = AuditRule::default();
        let deadline = rule.deadline_ms();
        assert_eq!(rule.fault_after_ms(), deadline * 3);
        assert_eq!(rule.timeliness(0), Timeliness::OnTime);
        assert_eq!(rule.timeliness(deadline), Timeliness::OnTime);
        assert_eq!(rule.timeliness(deadline + 1), Timeliness::Late);
        assert_eq!(rule.timeliness(deadline * 3), Timeliness::Late);
        assert_eq!(rule.timeliness(deadline * 3 + 1), Timeliness::TooLate);
        let strict = AuditRule {
            fault_after_pct: 0,
            ..rule
        };
        assert_eq!(strict.timeliness(deadline + 1), Timeliness::TooLate);
        // A rule written before the band existed reads with the default band.
        let old: AuditRule =
            serde_json::from_str(r#"{"steps":8,"step_budget_us":500,"allowance_ms":10}"#).unwrap();
        assert_eq!(old.fault_after_pct, 200);
    }

    #[test]
    fn honest_answers_pass_and_late_wrong_or_short_ones_fail_by_name() {
        let shards: Vec<Vec<u8>> = (0..3).map(|t| shard(t, 100_000)).collect();
        let meta = blob(&shards);
        let rule = AuditRule {
            steps: 300,
            ..AuditRule::default()
        };
        let seed = Hash::domain("test.audit", &[b"seed"]);
        let deal = DealId(4);
        let leaves = prove_chain(&shards[1], 1024, &seed, deal, 1, 300);
        assert_eq!(rule.judge(&meta, &seed, deal, 1, &leaves, 0), Ok(()));
        let deadline = rule.deadline_ms();
        assert_eq!(rule.judge(&meta, &seed, deal, 1, &leaves, deadline), Ok(()));
        assert_eq!(
            rule.judge(&meta, &seed, deal, 1, &leaves, deadline + 1),
            Err(AuditFailure::Late {
                elapsed_ms: deadline + 1,
                deadline_ms: deadline
            })
        );
        // Another shard's chain, a short chain, a flipped byte: wrong, however fast.
        let other = prove_chain(&shards[2], 1024, &seed, deal, 1, 300);
        assert!(matches!(
            rule.judge(&meta, &seed, deal, 1, &other, 0),
            Err(AuditFailure::Wrong(StorageProofError::BadPath {
                step: 0,
                ..
            }))
        ));
        assert!(matches!(
            rule.judge(&meta, &seed, deal, 1, &leaves[..299], 0),
            Err(AuditFailure::Wrong(StorageProofError::WrongLeafCount {
                expected: 300,
                got: 299
            }))
        ));
        let mut flipped = leaves.clone();
        flipped[150].data.0[7] ^= 1;
        assert!(matches!(
            rule.judge(&meta, &seed, deal, 1, &flipped, deadline + 5),
            Err(AuditFailure::Wrong(StorageProofError::BadPath {
                step: 150,
                ..
            }))
        ));
        for (steps, reason) in [(0, "at least 1"), (MAX_AUDIT_STEPS + 1, "MAX_AUDIT_STEPS")] {
            let bad = AuditRule { steps, ..rule };
            let err = bad.judge(&meta, &seed, deal, 1, &leaves, 0).unwrap_err();
            assert!(err.to_string().contains(reason), "{err}");
        }
    }
}
