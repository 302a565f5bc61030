//! Durability as a number (design §10, reliability §2c): what a `k + m` code buys against a
//! per-interval shard loss rate, how sure the chain's measurement of that rate is, and the
//! cheapest code that reaches a durability a user asks for.
//!
//! The model: a blob's `n = k + m` shards sit on `n` distinct providers; in each repair
//! interval each shard is lost independently with probability `p`; repair restores every
//! shard at the interval's end. Cairn's interval is the epoch: a shard whose proof fails or
//! is missed is faulted at the epoch's end and goes to repair then, so the chain's measured
//! `p` is faulted shard-epochs over challenged shard-epochs. The blob is lost in an interval
//! when more than `m` shards go:
//!
//! ```text
//! P_loss = Σ_{i=m+1..n} C(n,i) · pⁱ · (1−p)ⁿ⁻ⁱ        nines = −log10(P_loss)
//! P_term = 1 − (1 − P_loss)^intervals
//! ```
//!
//! Correlated failures (one operator, one datacenter) break the independence assumption, so
//! every figure here is an upper bound on durability; the measured rate is taken at its
//! one-sided 95% upper confidence bound so that a young chain with few observations does
//! not promise more than it has seen. `coding/tests/it/durability.rs` checks the formula
//! against a Monte-Carlo repair simulation (reliability campaign 10).
//!
//! Pure floating point with no allocation: the sums run in log space where a term could
//! underflow, and every loop is bounded by the shard count.

use crate::layout::MAX_SHARDS;
use serde::Serialize;

/// The most parity shards the planner proposes: the chain's default `max_parity_shards`.
pub const MAX_PLANNED_PARITY_SHARDS: u16 = 128;

/// The widest data-shard count the planner proposes. An inconsistency proof carries `k + 1`
/// leaves and must fit one transaction (about 100 data shards at the deepest path), and a
/// read opens `k` connections; 64 stays clear of both.
pub const MAX_PLANNED_DATA_SHARDS: u16 = 64;

/// One-sided 95% normal quantile, for the upper bound on a measured loss rate.
const Z_95_ONE_SIDED: f64 = 1.644_853_626_951_472_2;

/// The loss rate assumed where the chain has measured nothing yet: reliability §2c's
/// pessimistic 10% column. A user can plan with another rate explicitly.
pub const ASSUMED_LOSS_RATE: f64 = 0.10;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DurabilityError {
    #[error("loss rate {rate} is not a probability between 0 and 1")]
    BadLossRate { rate: f64 },
    #[error(
        "{data_shards} + {parity_shards} shards: a code needs at least one data shard and at most {MAX_SHARDS} shards in all"
    )]
    BadShape {
        data_shards: u16,
        parity_shards: u16,
    },
    #[error("a durability of {nines} nines is not a positive number (e.g. 9 for 99.9999999%)")]
    BadTarget { nines: f64 },
    #[error(
        "{faulted} faulted of {observed} observed shard-intervals: more faults than observations"
    )]
    BadCounts { observed: u64, faulted: u64 },
}

fn check_rate(rate: f64) -> Result<f64, DurabilityError> {
    if rate.is_finite() && (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(DurabilityError::BadLossRate { rate })
    }
}

fn check_shape(data_shards: u16, parity_shards: u16) -> Result<u32, DurabilityError> {
    let n = u32::from(data_shards) + u32::from(parity_shards);
    if data_shards == 0 || n > u32::try_from(MAX_SHARDS).unwrap_or(u32::MAX) {
        return Err(DurabilityError::BadShape {
            data_shards,
            parity_shards,
        });
    }
    Ok(n)
}

/// ln C(n, i), summed term by term (exact enough for n ≤ 256 and free of overflow).
fn ln_choose(n: u32, i: u32) -> f64 {
    let i = i.min(n - i);
    (1..=i).fold(0.0, |sum, j| {
        sum + (f64::from(n - i + j)).ln() - f64::from(j).ln()
    })
}

/// Probability that a `data_shards + parity_shards` blob loses more than `parity_shards`
/// shards in one interval when each is lost with probability `loss_rate`.
pub fn loss_probability(
    data_shards: u16,
    parity_shards: u16,
    loss_rate: f64,
) -> Result<f64, DurabilityError> {
    let n = check_shape(data_shards, parity_shards)?;
    let p = check_rate(loss_rate)?;
    let first = u32::from(parity_shards) + 1;
    if p == 0.0 {
        return Ok(0.0);
    }
    if p == 1.0 {
        return Ok(1.0);
    }
    let (ln_p, ln_q) = (p.ln(), (-p).ln_1p());
    let ratio = p / (1.0 - p);
    // t(i+1) / t(i) for the binomial terms t(i) = C(n,i) pⁱ (1−p)ⁿ⁻ⁱ.
    let step = |i: u32| f64::from(n - i) / f64::from(i + 1) * ratio;
    // Summed relative to the tail's largest term (the mode, or the tail's first term when the
    // mode lies below it): every other term is that one times a ratio below 1, so no term
    // that matters can underflow, and all are positive, so nothing cancels.
    let mut peak = first;
    while peak < n && step(peak) > 1.0 {
        peak += 1;
    }
    let (mut relative, mut t) = (1.0, 1.0);
    for i in peak..n {
        t *= step(i);
        relative += t;
    }
    t = 1.0;
    for i in (first..peak).rev() {
        t /= step(i);
        relative += t;
    }
    let ln_peak = ln_choose(n, peak) + f64::from(peak) * ln_p + f64::from(n - peak) * ln_q;
    Ok((ln_peak + relative.ln()).exp().min(1.0))
}

/// −log10 of a loss probability; infinite when the loss is 0 (no figure to print).
pub fn nines(loss: f64) -> f64 {
    if loss <= 0.0 {
        f64::INFINITY
    } else {
        -loss.log10()
    }
}

/// Probability of a loss in any of `intervals` independent intervals: 1 − (1 − P)^T,
/// computed so that a tiny P over many intervals keeps its digits.
pub fn over_intervals(per_interval: f64, intervals: u64) -> f64 {
    if per_interval >= 1.0 {
        return if intervals == 0 { 0.0 } else { 1.0 };
    }
    // u64 → f64 rounds only above 2^53, far beyond any count here.
    let t = intervals as f64;
    -(t * (-per_interval).ln_1p()).exp_m1()
}

/// What one code buys at one loss rate, per interval and over a term.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Durability {
    pub data_shards: u16,
    pub parity_shards: u16,
    pub loss_rate_per_interval: f64,
    pub loss_per_interval: f64,
    /// `None` when the loss is 0 (JSON has no infinity).
    pub nines_per_interval: Option<f64>,
    pub term_intervals: u64,
    pub loss_over_term: f64,
    pub nines_over_term: Option<f64>,
    /// Stored bytes per data byte: n / k.
    pub overhead: f64,
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

impl Durability {
    pub fn of(
        data_shards: u16,
        parity_shards: u16,
        loss_rate: f64,
        term_intervals: u64,
    ) -> Result<Self, DurabilityError> {
        let per = loss_probability(data_shards, parity_shards, loss_rate)?;
        let term = over_intervals(per, term_intervals);
        Ok(Self {
            data_shards,
            parity_shards,
            loss_rate_per_interval: loss_rate,
            loss_per_interval: per,
            nines_per_interval: finite(nines(per)),
            term_intervals,
            loss_over_term: term,
            nines_over_term: finite(nines(term)),
            overhead: (f64::from(data_shards) + f64::from(parity_shards)) / f64::from(data_shards),
        })
    }

    /// Nines over the term, infinite when no loss is possible.
    pub fn term_nines(&self) -> f64 {
        nines(self.loss_over_term)
    }
}

/// The cheapest code on at most `providers` distinct providers (one shard each) whose loss
/// over `term_intervals` is at most 10^−`target_nines`: the least overhead n/k, then the
/// least loss. `None` when no code the providers allow reaches it.
pub fn cheapest_for(
    providers: usize,
    loss_rate: f64,
    term_intervals: u64,
    target_nines: f64,
) -> Result<Option<Durability>, DurabilityError> {
    check_rate(loss_rate)?;
    if !(target_nines.is_finite() && target_nines > 0.0) {
        return Err(DurabilityError::BadTarget {
            nines: target_nines,
        });
    }
    let max_n = u16::try_from(providers.min(MAX_SHARDS)).unwrap_or(u16::MAX);
    let mut best: Option<Durability> = None;
    for k in 1..=max_n.min(MAX_PLANNED_DATA_SHARDS) {
        // For a fixed k the loss falls as m grows: the first m that reaches the target is
        // the cheapest with this k.
        for m in 0..=(max_n - k).min(MAX_PLANNED_PARITY_SHARDS) {
            let d = Durability::of(k, m, loss_rate, term_intervals)?;
            if d.term_nines() < target_nines {
                continue;
            }
            let cheaper = best.is_none_or(|b| {
                // n/k < n'/k' exactly, in integers. At equal cost the wider code is the
                // more durable one (4+2 over 2+1), and its reads spread over more providers.
                let (n, bn) = (u32::from(k + m), u32::from(b.data_shards + b.parity_shards));
                let (lhs, rhs) = (n * u32::from(b.data_shards), bn * u32::from(k));
                lhs < rhs || (lhs == rhs && d.loss_over_term < b.loss_over_term)
            });
            if cheaper {
                best = Some(d);
            }
            break;
        }
    }
    Ok(best)
}

/// The chain's observations of shard loss: challenged shard-intervals and how many of them
/// faulted (failed or missed proofs, each of which sends the shard to repair).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Observed {
    pub shard_intervals: u64,
    pub faulted: u64,
}

/// A loss rate to plan with, and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LossEstimate {
    /// The rate the figures use: the upper bound when measured, else the assumption.
    pub rate: f64,
    /// `measured` (one-sided 95% upper bound of the chain's observations), `assumed` (the
    /// chain has observed nothing) or `given` (the user's own rate).
    pub source: &'static str,
    /// Faulted / observed, when anything was observed.
    pub point: Option<f64>,
    pub observed: Observed,
}

impl Observed {
    pub fn new(shard_intervals: u64, faulted: u64) -> Result<Self, DurabilityError> {
        if faulted > shard_intervals {
            return Err(DurabilityError::BadCounts {
                observed: shard_intervals,
                faulted,
            });
        }
        Ok(Self {
            shard_intervals,
            faulted,
        })
    }

    /// Faulted / observed.
    pub fn point(&self) -> Option<f64> {
        (self.shard_intervals > 0).then(|| self.faulted as f64 / self.shard_intervals as f64)
    }

    /// The Wilson score upper bound at one-sided 95%: about 2.7 / N with no fault seen, so
    /// a few clean epochs do not read as a perfect network.
    pub fn upper_bound(&self) -> Option<f64> {
        let p = self.point()?;
        let n = self.shard_intervals as f64;
        let z2 = Z_95_ONE_SIDED * Z_95_ONE_SIDED;
        let centre = p + z2 / (2.0 * n);
        let spread = Z_95_ONE_SIDED * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
        Some(((centre + spread) / (1.0 + z2 / n)).clamp(0.0, 1.0))
    }

    /// The rate to plan with: the upper bound, except while the chain has seen no fault in
    /// too few shard-epochs to rule [`ASSUMED_LOSS_RATE`] out (or nothing at all), when the
    /// assumption stands, so that a young chain's first clean epochs never make the quote
    /// worse than no data. One fault seen makes the bound the rate, however few the
    /// observations.
    pub fn estimate(&self) -> LossEstimate {
        match (self.point(), self.upper_bound()) {
            (Some(point), Some(bound)) if self.faulted > 0 || bound < ASSUMED_LOSS_RATE => {
                LossEstimate {
                    rate: bound,
                    source: "measured",
                    point: Some(point),
                    observed: *self,
                }
            }
            (point, _) => LossEstimate {
                rate: ASSUMED_LOSS_RATE,
                source: "assumed",
                point,
                observed: *self,
            },
        }
    }
}

impl LossEstimate {
    /// A rate the user gave, beside what the chain observed.
    pub fn given(rate: f64, observed: Observed) -> Result<Self, DurabilityError> {
        Ok(Self {
            rate: check_rate(rate)?,
            source: "given",
            point: observed.point(),
            observed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs()
    }

    /// Reliability §2c's table (exact binomial, rational arithmetic there).
    #[test]
    fn matches_the_reference_table() {
        for (k, m, p, want) in [
            (4, 2, 0.01, 2.0e-5),
            (4, 2, 0.05, 2.2e-3),
            (4, 2, 0.10, 1.6e-2),
            (10, 5, 0.01, 4.6e-9),
            (10, 5, 0.05, 5.3e-5),
            (10, 5, 0.10, 2.3e-3),
            (29, 51, 0.01, 2.2e-83),
            (29, 51, 0.10, 1.6e-32),
            (1, 2, 0.01, 1.0e-6),
        ] {
            let got = loss_probability(k, m, p).unwrap();
            assert!(
                close(got, want, 0.05),
                "{k}+{m} at {p}: {got:e}, table {want:e}"
            );
        }
        // Same 2× overhead, wider codes (§2c): 8+8 7.8 nines, 16+16 13.7 at 5%.
        assert!(close(
            nines(loss_probability(8, 8, 0.05).unwrap()),
            7.8,
            0.01
        ));
        assert!(close(
            nines(loss_probability(16, 16, 0.05).unwrap()),
            13.7,
            0.01
        ));
    }

    #[test]
    fn edges() {
        assert_eq!(loss_probability(4, 2, 0.0).unwrap(), 0.0);
        assert_eq!(loss_probability(4, 2, 1.0).unwrap(), 1.0);
        // No parity: any loss loses the blob.
        assert!(close(
            loss_probability(3, 0, 0.1).unwrap(),
            1.0 - 0.9f64.powi(3),
            1e-12
        ));
        assert!(matches!(
            loss_probability(0, 2, 0.1),
            Err(DurabilityError::BadShape { .. })
        ));
        assert!(matches!(
            loss_probability(200, 100, 0.1),
            Err(DurabilityError::BadShape { .. })
        ));
        for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                loss_probability(4, 2, bad),
                Err(DurabilityError::BadLossRate { .. })
            ));
        }
        // Wide codes at loss rates near 1: the tail's first term underflows on its own, the
        // sum does not.
        assert!(loss_probability(200, 10, 0.99).unwrap() > 0.999_999);
        assert!(loss_probability(255, 1, 0.95).unwrap() > 0.999_999);
        assert!(close(
            loss_probability(200, 50, 0.5).unwrap(),
            1.0 - loss_probability(50, 200, 0.5).unwrap(),
            1e-9
        ));
        assert_eq!(nines(0.0), f64::INFINITY);
        assert!(close(over_intervals(1e-12, 1_000_000), 1e-6, 1e-6));
        assert_eq!(over_intervals(0.5, 0), 0.0);
        assert!(close(over_intervals(0.5, 2), 0.75, 1e-12));
    }

    #[test]
    fn the_planner_picks_the_cheapest_code_that_reaches_the_target() {
        // 2.7 nines per interval at 10% is 10+5's figure; 4+2 (same overhead) has only 1.8.
        let d = cheapest_for(15, 0.10, 1, 2.5).unwrap().unwrap();
        assert_eq!((d.data_shards, d.parity_shards), (10, 5));
        // Six providers cannot reach it with 1.5× overhead; the planner pays more instead.
        let d = cheapest_for(6, 0.10, 1, 2.5).unwrap().unwrap();
        assert!(d.term_nines() >= 2.5 && d.overhead > 1.5, "{d:?}");
        // Every cheaper code on six providers misses the target.
        for k in 1..=6u16 {
            for m in 0..=(6 - k) {
                let o = Durability::of(k, m, 0.10, 1).unwrap();
                if o.overhead < d.overhead {
                    assert!(o.term_nines() < 2.5, "{o:?} is cheaper and reaches it");
                }
            }
        }
        // Equal cost: 4+2 (4.6 nines over 10 epochs at 0.5%) over 2+1 (3.1).
        let d = cheapest_for(6, 0.005, 10, 3.0).unwrap().unwrap();
        assert_eq!((d.data_shards, d.parity_shards), (4, 2));
        // Unreachable: one provider cannot hold a blob through a 10% loss rate at 3 nines.
        assert_eq!(cheapest_for(1, 0.10, 1, 3.0).unwrap(), None);
        assert!(matches!(
            cheapest_for(6, 0.1, 1, 0.0),
            Err(DurabilityError::BadTarget { .. })
        ));
    }

    #[test]
    fn an_unobserved_chain_promises_little() {
        let none = Observed::new(0, 0).unwrap().estimate();
        assert_eq!((none.source, none.rate), ("assumed", ASSUMED_LOSS_RATE));
        // Twelve clean shard-epochs cannot rule out 10% (their bound is 18%): still assumed.
        let young = Observed::new(12, 0).unwrap();
        assert!(young.upper_bound().unwrap() > ASSUMED_LOSS_RATE);
        let e = young.estimate();
        assert_eq!(
            (e.source, e.rate, e.point),
            ("assumed", ASSUMED_LOSS_RATE, Some(0.0))
        );
        // No fault in 1000 shard-epochs: about 2.7/1000, not 0.
        let clean = Observed::new(1000, 0).unwrap();
        let ub = clean.upper_bound().unwrap();
        assert!((0.0025..0.003).contains(&ub), "{ub}");
        assert_eq!(clean.estimate().source, "measured");
        assert_eq!(clean.estimate().rate, ub);
        // Few observations but many faults: the bound, which is worse than the assumption.
        let bad = Observed::new(10, 5).unwrap().estimate();
        assert_eq!(bad.source, "measured");
        assert!(bad.rate > 0.5, "{bad:?}");
        // One fault in twenty: a point of 5%, but the bound (about 20%) is what was shown.
        let one = Observed::new(20, 1).unwrap().estimate();
        assert_eq!(one.source, "measured");
        assert!((0.18..0.22).contains(&one.rate), "{one:?}");
        // 50 faults of 1000: above 5%, below 6.5%.
        let some = Observed::new(1000, 50).unwrap();
        let ub = some.upper_bound().unwrap();
        assert!((0.05..0.065).contains(&ub), "{ub}");
        assert!(Observed::new(3, 4).is_err());
        assert!(LossEstimate::given(2.0, clean).is_err());
    }
}
