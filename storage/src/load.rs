//! Whether this machine is too busy for its own clock to judge anyone (issue "fair audits").
//!
//! A timed audit's verdict is only as good as the auditor's clock: an auditor starved of
//! CPU reads the provider's answer late and blames the provider. So before and after each
//! round of audits the auditor asks [`LoadGauge::check`], and an overloaded auditor reports
//! no lateness at all (wrong bytes are still wrong, whatever the load). Two signs, either
//! enough:
//! - CPU pressure (Linux PSI, `/proc/pressure/cpu`, "some avg10"): the share of the last
//!   10 s in which a runnable task waited for a CPU. A quiet machine reads a few percent; one
//!   whose cores are all taken by another process reads most of the time.
//! - A probe: a fixed piece of hashing, timed, against the fastest it has ever run here. It
//!   covers kernels without PSI and throttled containers that PSI does not see.

use std::time::{Duration, Instant};

/// When the auditor counts itself overloaded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadLimits {
    /// CPU pressure ("some avg10", percent) at or above which lateness is not reported;
    /// 100 or more turns the PSI check off.
    pub max_cpu_pressure_pct: f64,
    /// The probe may take this many times its fastest run before the auditor counts itself
    /// overloaded; 0 turns the probe off.
    pub max_probe_slowdown: u32,
}

impl Default for LoadLimits {
    fn default() -> Self {
        Self {
            max_cpu_pressure_pct: 40.0,
            max_probe_slowdown: 3,
        }
    }
}

/// What [`LoadGauge::check`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum Load {
    Calm,
    Overloaded { reason: String },
}

/// Remembers the probe's fastest run on this machine.
#[derive(Debug, Default)]
pub struct LoadGauge {
    limits: LoadLimits,
    fastest_probe: Option<Duration>,
}

/// Bytes the probe hashes per run: about a millisecond of one core.
const PROBE_BYTES: usize = 2 << 20;

impl LoadGauge {
    pub fn new(limits: LoadLimits) -> Self {
        Self {
            limits,
            fastest_probe: None,
        }
    }

    /// Reads the pressure and runs the probe (three runs, the fastest counts, so one
    /// preemption does not make a calm machine look busy).
    pub fn check(&mut self) -> Load {
        if let Some(pressure) = cpu_pressure_pct()
            && pressure >= self.limits.max_cpu_pressure_pct
            && self.limits.max_cpu_pressure_pct < 100.0
        {
            return Load::Overloaded {
                reason: format!(
                    "CPU pressure {pressure:.0}% over the last 10 s (the limit is {:.0}%)",
                    self.limits.max_cpu_pressure_pct
                ),
            };
        }
        if self.limits.max_probe_slowdown == 0 {
            return Load::Calm;
        }
        let probe = (0..3).map(|_| probe()).min().unwrap_or_default();
        let fastest = *self.fastest_probe.get_or_insert(probe);
        self.fastest_probe = Some(fastest.min(probe));
        judge_probe(probe, fastest, self.limits.max_probe_slowdown)
    }
}

/// The probe's verdict: overloaded when `probe` took more than `max_slowdown` times
/// `fastest`.
fn judge_probe(probe: Duration, fastest: Duration, max_slowdown: u32) -> Load {
    if probe > fastest.saturating_mul(max_slowdown) {
        Load::Overloaded {
            reason: format!(
                "a fixed probe took {} µs, {:.1} times its fastest run here ({} µs; the limit is {max_slowdown} times)",
                probe.as_micros(),
                probe.as_secs_f64() / fastest.as_secs_f64().max(1e-9),
                fastest.as_micros()
            ),
        }
    } else {
        Load::Calm
    }
}

fn probe() -> Duration {
    static DATA: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let data = DATA.get_or_init(|| {
        (0..PROBE_BYTES)
            .map(|i| u8::try_from(i % 251).unwrap_or(0))
            .collect()
    });
    let start = Instant::now();
    std::hint::black_box(blake3::hash(std::hint::black_box(data)));
    start.elapsed()
}

/// Linux PSI's "some avg10" for CPU, in percent; `None` where the kernel has no PSI.
fn cpu_pressure_pct() -> Option<f64> {
    parse_pressure(&std::fs::read_to_string("/proc/pressure/cpu").ok()?)
}

fn parse_pressure(text: &str) -> Option<f64> {
    let some = text.lines().find(|l| l.starts_with("some "))?;
    some.split_whitespace()
        .find_map(|field| field.strip_prefix("avg10="))?
        .parse()
        .ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pressure_is_read_from_the_some_line() {
        let text = "some avg10=73.25 avg60=40.00 avg300=10.00 total=123\nfull avg10=1.00 avg60=0.00 avg300=0.00 total=4\n";
        assert_eq!(parse_pressure(text), Some(73.25));
        assert_eq!(parse_pressure("full avg10=1.00\n"), None);
        assert_eq!(parse_pressure("some avg10=x\n"), None);
    }

    #[test]
    fn a_probe_over_the_slowdown_is_overloaded_and_names_the_figures() {
        let fastest = Duration::from_micros(1_000);
        assert_eq!(
            judge_probe(Duration::from_micros(3_000), fastest, 3),
            Load::Calm
        );
        let Load::Overloaded { reason } = judge_probe(Duration::from_micros(3_001), fastest, 3)
        else {
            panic!("3.001 ms against 1 ms is over 3 times");
        };
        assert!(
            reason.contains("3001 µs") && reason.contains("1000 µs"),
            "{reason}"
        );
    }

    #[test]
    fn limits_of_100_percent_and_0_times_turn_the_checks_off() {
        let mut gauge = LoadGauge::new(LoadLimits {
            max_cpu_pressure_pct: 100.0,
            max_probe_slowdown: 0,
        });
        assert_eq!(gauge.check(), Load::Calm);
    }
}
