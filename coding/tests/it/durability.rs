//! Reliability campaign 10: the durability formula against a Monte-Carlo repair simulation.
//!
//! The simulator plays blobs through repair intervals shard by shard: each held shard is
//! lost with probability p, a blob with fewer than k shards left is lost, and repair
//! restores every shard at the interval's end once fewer than `repair_below` remain
//! (`n` = Cairn's eager repair). It knows nothing of `cairn_coding::durability`, so
//! agreement checks the formula and the simulator against each other; the negative control
//! (a simulator that loses the blob at m lost shards instead of m + 1) must visibly disagree.

use cairn_coding::durability::{loss_probability, over_intervals};

/// SplitMix64: deterministic, so every run draws the same trials.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum LossRule {
    /// Lost when more than m shards are gone: fewer than k remain.
    MoreThanParity,
    /// The off-by-one the negative control plants: lost when m shards are gone.
    AtLeastParity,
}

struct RepairSim {
    k: usize,
    m: usize,
    p: f64,
    /// Repair once fewer than this many shards remain (n: after any loss).
    repair_below: usize,
    rule: LossRule,
}

impl RepairSim {
    fn eager(k: usize, m: usize, p: f64) -> Self {
        Self {
            k,
            m,
            p,
            repair_below: k + m,
            rule: LossRule::MoreThanParity,
        }
    }

    /// Blobs lost among `trials`, each followed for `intervals` repair intervals.
    fn lost(&self, trials: u64, intervals: u32, seed: u64) -> u64 {
        let n = self.k + self.m;
        let needed = match self.rule {
            LossRule::MoreThanParity => self.k,
            LossRule::AtLeastParity => self.k + 1,
        };
        let mut rng = Rng(seed);
        let mut lost = 0;
        for _ in 0..trials {
            let mut held = n;
            for _ in 0..intervals {
                let losses = (0..held).filter(|_| rng.unit() < self.p).count();
                held -= losses;
                if held < needed {
                    lost += 1;
                    break;
                }
                if held < self.repair_below {
                    held = n;
                }
            }
        }
        lost
    }
}

fn rate(lost: u64, trials: u64) -> f64 {
    lost as f64 / trials as f64
}

fn relative_error(simulated: f64, formula: f64) -> f64 {
    (simulated - formula).abs() / formula
}

const TRIALS: u64 = 1_000_000;

#[test]
fn the_formula_agrees_with_a_million_simulated_intervals() {
    for (k, m, seed) in [(4u16, 2u16, 1u64), (10, 5, 2)] {
        let formula = loss_probability(k, m, 0.10).unwrap();
        let sim = RepairSim::eager(usize::from(k), usize::from(m), 0.10);
        let simulated = rate(sim.lost(TRIALS, 1, seed), TRIALS);
        let err = relative_error(simulated, formula);
        println!("{k}+{m} at p = 10%: simulated {simulated:.4e}, formula {formula:.4e}");
        assert!(
            err < 0.10,
            "{k}+{m} at p = 10%: simulated {simulated:.3e}, formula {formula:.3e} ({:.1}% apart)",
            err * 100.0
        );

        // Negative control: the off-by-one simulator is far outside the same band.
        let buggy = RepairSim {
            rule: LossRule::AtLeastParity,
            ..RepairSim::eager(usize::from(k), usize::from(m), 0.10)
        };
        let off = rate(buggy.lost(TRIALS, 1, seed), TRIALS);
        println!("{k}+{m}: the off-by-one simulator gives {off:.4e}");
        assert!(
            relative_error(off, formula) > 1.0,
            "{k}+{m}: an off-by-one simulator ({off:.3e}) should disagree with {formula:.3e}"
        );
    }
}

/// Over a term of many intervals the blob survives only if it survives each: the formula's
/// 1 − (1 − P)^T against blobs followed through 12 intervals with eager repair.
#[test]
fn eager_repair_compounds_per_interval_loss_over_a_term() {
    let (k, m, p, intervals, trials) = (4u16, 2u16, 0.10, 12u32, 200_000u64);
    let formula = over_intervals(loss_probability(k, m, p).unwrap(), u64::from(intervals));
    let sim = RepairSim::eager(usize::from(k), usize::from(m), p);
    let simulated = rate(sim.lost(trials, intervals, 3), trials);
    assert!(
        relative_error(simulated, formula) < 0.05,
        "simulated {simulated:.4}, formula {formula:.4}"
    );

    // Reliability §2c's caveat: a lazy trigger (repair only at k + 1 shards left, as Storj
    // does near its threshold) loses far more than the eager formula promises.
    let lazy = RepairSim {
        repair_below: usize::from(k) + 1,
        ..RepairSim::eager(usize::from(k), usize::from(m), p)
    };
    let lazy_rate = rate(lazy.lost(trials, intervals, 3), trials);
    println!(
        "4+2 over 12 intervals: simulated {simulated:.4}, formula {formula:.4}, lazy repair {lazy_rate:.4}"
    );
    assert!(
        lazy_rate > 2.0 * formula,
        "lazy repair lost {lazy_rate:.4}, eager formula {formula:.4}"
    );
}
