//! Durability figures from the chain's own measurements (design §10): the shard loss rate
//! the chain has observed (`/v1/network`'s `storage_loss`, faulted over challenged
//! shard-epochs of recent epochs), what a `k + m` code buys against it over a deal's term,
//! and the cheapest code for the nines a user asks for. The arithmetic is
//! [`cairn_coding::durability`]; this module only fetches its inputs.

use crate::node::{NodeClient, NodeError};
use cairn_coding::durability::{
    Durability, DurabilityError, LossEstimate, MAX_PLANNED_PARITY_SHARDS, Observed, cheapest_for,
};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum DurabilityQueryError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Model(#[from] DurabilityError),
    #[error("no live storage provider to plan a code for")]
    NoProviders,
    #[error("bad answer from the node: {from} has no {field}")]
    BadAnswer {
        from: &'static str,
        field: &'static str,
    },
    #[error(
        "no code on {providers} live providers reaches {nines} nines over {term_epochs} epochs at a shard loss rate of {loss_rate:.3e} per epoch ({rate_source}); the most durable, {best}, reaches {best_nines}"
    )]
    Unreachable {
        nines: f64,
        providers: usize,
        term_epochs: u64,
        loss_rate: f64,
        rate_source: &'static str,
        best: String,
        best_nines: String,
    },
}

/// What `/v1/network` says about loss and time.
#[derive(Clone, Copy, Debug)]
pub struct NetworkLoss {
    pub observed: Observed,
    /// Finished epochs the observation sums (at most the node's window).
    pub window_epochs: u64,
    pub epoch_length_blocks: u64,
    pub block_time_ms: u64,
    pub current_epoch: u64,
}

const YEAR_MS: u64 = 31_557_600_000; // 365.25 days

impl NetworkLoss {
    pub fn fetch(node: &NodeClient) -> Result<Self, DurabilityQueryError> {
        let network = node.get("/v1/network")?;
        let field = |value: &serde_json::Value, name: &'static str| {
            value.as_u64().ok_or(DurabilityQueryError::BadAnswer {
                from: "/v1/network",
                field: name,
            })
        };
        let loss = &network["storage_loss"];
        Ok(Self {
            observed: Observed::new(
                field(&loss["shards_challenged"], "storage_loss.shards_challenged")?,
                field(&loss["shards_faulted"], "storage_loss.shards_faulted")?,
            )?,
            window_epochs: field(&loss["epochs"], "storage_loss.epochs")?,
            epoch_length_blocks: field(&network["epoch_length_blocks"], "epoch_length_blocks")?,
            block_time_ms: field(&network["block_time_ms"], "block_time_ms")?,
            current_epoch: field(&network["current_epoch"], "current_epoch")?,
        })
    }

    /// Epochs in a year at the chain's target block time (at least one).
    pub fn epochs_per_year(&self) -> u64 {
        let epoch_ms = self
            .epoch_length_blocks
            .saturating_mul(self.block_time_ms)
            .max(1);
        (YEAR_MS / epoch_ms).max(1)
    }

    /// The rate to plan with: `given`, else the measured upper bound (or the assumption when
    /// the chain has observed nothing).
    pub fn estimate(&self, given: Option<f64>) -> Result<LossEstimate, DurabilityQueryError> {
        Ok(match given {
            Some(rate) => LossEstimate::given(rate, self.observed)?,
            None => self.observed.estimate(),
        })
    }

    /// The figures' term: a term deal's epochs, or a year for a permanent one.
    pub fn term(&self, permanent: bool, epochs: u64) -> Term {
        if permanent {
            Term {
                epochs: self.epochs_per_year(),
                kind: "year",
            }
        } else {
            Term {
                epochs,
                kind: "deal",
            }
        }
    }
}

/// A stored deal's durability from now on: the epochs it has left (a year when permanent),
/// with the shards awaiting repair counted as already lost.
pub fn of_deal(
    network: &NetworkLoss,
    loss: LossEstimate,
    deal: &serde_json::Value,
) -> Result<DurabilityReport, DurabilityQueryError> {
    let shards = |name: &'static str| {
        deal["blob"][name]
            .as_u64()
            .and_then(|v| u16::try_from(v).ok())
            .ok_or(DurabilityQueryError::BadAnswer {
                from: "the deal's blob",
                field: name,
            })
    };
    let (k, m) = (shards("data_shards")?, shards("parity_shards")?);
    let awaiting = deal["repair_needed"]
        .as_array()
        .map_or(0, |r| u16::try_from(r.len()).unwrap_or(u16::MAX));
    let term = match deal["end_epoch"].as_u64() {
        Some(end) => Term {
            epochs: end.saturating_sub(network.current_epoch).saturating_add(1),
            kind: "deal",
        },
        None => network.term(true, 0),
    };
    let mut report = DurabilityReport::new(k, m.saturating_sub(awaiting), loss, term)?;
    report.awaiting_repair = awaiting;
    report.at_risk = awaiting > m;
    Ok(report)
}

/// The span durability is quoted over.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Term {
    pub epochs: u64,
    /// `deal` (its epochs) or `year` (a permanent deal: a year of epochs).
    pub kind: &'static str,
}

/// A code's durability as a put or a status reports it.
#[derive(Clone, Debug, Serialize)]
pub struct DurabilityReport {
    #[serde(flatten)]
    pub figures: Durability,
    pub term: Term,
    pub loss: LossEstimate,
    /// Shards of the deal awaiting repair (already taken off `parity_shards`).
    pub awaiting_repair: u16,
    /// More shards await repair than the code has parity: fewer than k may be left.
    pub at_risk: bool,
}

impl DurabilityReport {
    pub fn new(
        data_shards: u16,
        parity_shards: u16,
        loss: LossEstimate,
        term: Term,
    ) -> Result<Self, DurabilityQueryError> {
        Ok(Self {
            figures: Durability::of(data_shards, parity_shards, loss.rate, term.epochs)?,
            term,
            loss,
            awaiting_repair: 0,
            at_risk: false,
        })
    }

    /// One line for humans: "4.7 nines over the deal's 10 epochs (shard loss ≤ 1.2e-3 per
    /// epoch, measured over 340 shard-epochs)".
    pub fn summary(&self) -> String {
        let nines = self.figures.nines_over_term.map_or_else(
            || "no possible loss".to_string(),
            |n| format!("{n:.1} nines"),
        );
        let over = match self.term.kind {
            "year" => "a year".to_string(),
            _ => format!("the deal's {} epochs", self.term.epochs),
        };
        let source = match self.loss.source {
            "measured" => format!(
                "measured over {} shard-epochs, {} faulted",
                self.loss.observed.shard_intervals, self.loss.observed.faulted
            ),
            "assumed" if self.loss.observed.shard_intervals == 0 => {
                "assumed: the chain has measured none yet".to_string()
            }
            "assumed" => format!(
                "assumed: {} shard-epochs measured so far, too few to show a lower rate",
                self.loss.observed.shard_intervals
            ),
            _ => "given".to_string(),
        };
        // A measured rate is the bound of what was seen; the others are one number.
        let relation = if self.loss.source == "measured" {
            "≤"
        } else {
            "="
        };
        let at_risk = if self.at_risk {
            format!(
                "; at risk now: {} shards await repair, more than the code's parity",
                self.awaiting_repair
            )
        } else {
            String::new()
        };
        format!(
            "{nines} over {over} (shard loss {relation} {:.2e} per epoch, {source}; failures taken as independent, so at most this many nines){at_risk}",
            self.loss.rate
        )
    }
}

/// The cheapest code on `providers` for `nines` over `term`, or why there is none.
pub fn plan(
    providers: usize,
    loss: &LossEstimate,
    term: Term,
    nines: f64,
) -> Result<(u16, u16), DurabilityQueryError> {
    if providers == 0 {
        return Err(DurabilityQueryError::NoProviders);
    }
    if let Some(d) = cheapest_for(providers, loss.rate, term.epochs, nines)? {
        return Ok((d.data_shards, d.parity_shards));
    }
    // The most durable code the planner may propose is replication on every provider.
    let limit = usize::from(MAX_PLANNED_PARITY_SHARDS) + 1;
    let copies = u16::try_from(providers.min(limit)).unwrap_or(1);
    let best = Durability::of(1, copies - 1, loss.rate, term.epochs)?;
    Err(DurabilityQueryError::Unreachable {
        nines,
        providers,
        term_epochs: term.epochs,
        loss_rate: loss.rate,
        rate_source: loss.source,
        best: format!("1+{}", copies - 1),
        best_nines: best
            .nines_over_term
            .map_or_else(|| "no possible loss".into(), |n| format!("{n:.2} nines")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn network(current_epoch: u64) -> NetworkLoss {
        NetworkLoss {
            observed: Observed::new(1000, 10).unwrap(),
            window_epochs: 64,
            epoch_length_blocks: 40,
            block_time_ms: 200,
            current_epoch,
        }
    }

    #[test]
    fn a_deal_is_quoted_over_the_epochs_it_has_left() {
        let net = network(7);
        let loss = net.estimate(None).unwrap();
        let deal = json!({
            "blob": { "data_shards": 4, "parity_shards": 2 },
            "end_epoch": 16, "repair_needed": [],
        });
        let report = of_deal(&net, loss, &deal).unwrap();
        // Epochs 7..=16: the current one and the nine after it (end_epoch is inclusive).
        assert_eq!(report.term.epochs, 10);
        assert_eq!(report.figures.parity_shards, 2);
        assert!(!report.at_risk);
        // Shards awaiting repair count as lost; more of them than the parity is a warning.
        let waiting = json!({
            "blob": { "data_shards": 4, "parity_shards": 2 },
            "end_epoch": 16, "repair_needed": [0],
        });
        let report = of_deal(&net, loss, &waiting).unwrap();
        assert_eq!(
            (report.figures.parity_shards, report.awaiting_repair),
            (1, 1)
        );
        let lost = json!({
            "blob": { "data_shards": 4, "parity_shards": 2 },
            "end_epoch": 16, "repair_needed": [0, 1, 3],
        });
        let report = of_deal(&net, loss, &lost).unwrap();
        assert!(
            report.at_risk && report.summary().contains("at risk"),
            "{}",
            report.summary()
        );
        // A permanent deal is quoted over a year: 365.25 days of 8 s epochs.
        let permanent =
            json!({ "blob": { "data_shards": 4, "parity_shards": 2 }, "end_epoch": null });
        assert_eq!(
            of_deal(&net, loss, &permanent).unwrap().term.epochs,
            3_944_700
        );
        let broken = json!({ "blob": {} });
        let err = of_deal(&net, loss, &broken).unwrap_err().to_string();
        assert!(err.contains("data_shards"), "{err}");
    }

    #[test]
    fn the_planner_says_why_it_cannot() {
        let loss = network(0).estimate(Some(0.1)).unwrap();
        let term = Term {
            epochs: 10,
            kind: "deal",
        };
        assert!(matches!(
            plan(0, &loss, term, 3.0),
            Err(DurabilityQueryError::NoProviders)
        ));
        let err = plan(6, &loss, term, 30.0).unwrap_err().to_string();
        assert!(
            err.contains("no code on 6 live providers reaches 30 nines"),
            "{err}"
        );
        assert!(err.contains("the most durable, 1+5"), "{err}");
        assert_eq!(
            plan(
                15,
                &loss,
                Term {
                    epochs: 1,
                    kind: "deal"
                },
                2.5
            )
            .unwrap(),
            (10, 5)
        );
    }
}
