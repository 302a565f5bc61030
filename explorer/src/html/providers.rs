//! The providers pages: the list with its growth over epochs, and one provider's record.

use super::{
    COMPUTE, EMISSION, FAULT, OTHER, STORAGE, amount, card, charts, code, crn_text, fields, layout,
    link, num, table, text, unreadable,
};
use crate::figures::{self, crn_f64, provider_standing};
use crate::index::Index;
use crate::svg::{HBar, Panel, Series, bar_chart, hbar_chart, line_chart, panels};
use crate::units;
use cairn_ledger::state::{
    ComputeChallenge, ComputePhase, Provider, ProviderStatus, RewardStatement, StorageChallenge,
    Verdict,
};
use cairn_types::Address;
use serde_json::Value;
use std::fmt::Write as _;

/// A provider's status in words: "active", "jailed until epoch 12", "leaving".
fn status_words(status: &Value) -> String {
    match status["status"].as_str() {
        Some("jailed") => status["until_epoch"]
            .as_u64()
            .map_or("jailed".to_string(), |e| format!("jailed until epoch {e}")),
        Some(other) => units::words(other),
        None => "—".to_string(),
    }
}

fn growth_note(now: u64, before: Option<u64>, epoch: Option<u64>) -> String {
    match (before, epoch) {
        (Some(b), Some(e)) => format!(
            "{} over epoch {e}",
            units::signed_count(i128::from(now) - i128::from(b))
        ),
        _ => String::new(),
    }
}

/// The provider cards: registered, proven and active, labelled so that proven above active
/// reads as what it is.
pub(crate) fn standing_cards(out: &mut String, index: &Index) {
    let (last, before) = index.last_two_epochs();
    let standing = last.map(|e| provider_standing(index, e));
    let previous = before.map(|e| provider_standing(index, e));
    let epoch = standing.map_or("last epoch".to_string(), |s| format!("epoch {}", s.epoch));
    let before_epoch = previous.map(|p| p.epoch);
    out.push_str("<div class=\"cards\">");
    let registered = index
        .network
        .as_ref()
        .map(|n| n.capacity.providers)
        .or(standing.map(|s| s.in_good_standing));
    card(
        out,
        "Registered providers",
        &registered.map_or("—".to_string(), units::count),
        &standing.map_or(String::new(), |s| {
            format!(
                "{} in good standing (not jailed, not leaving) at the end of {epoch}",
                units::count(s.in_good_standing)
            )
        }),
    );
    let split = standing.and_then(|s| s.breakdown);
    card(
        out,
        &format!("Proven providers, {epoch}"),
        &standing.map_or("—".to_string(), |s| units::count(s.proven)),
        &standing.map_or(String::new(), |s| {
            let parts = split.map_or(String::new(), |b| {
                format!(
                    ": {} passed every proof, {} between compute challenges on the rate proven at the last one",
                    units::count(b.passed_every_proof),
                    units::count(b.on_standing_compute_rate)
                )
            });
            format!(
                "no failed or missed proof{parts}; {}",
                growth_note(s.proven, previous.map(|p| p.proven), before_epoch)
            )
        }),
    );
    card(
        out,
        &format!("Providers that passed a proof, {epoch}"),
        &standing.map_or("—".to_string(), |s| units::count(s.active)),
        &standing.map_or(String::new(), |s| {
            let parts = split.map_or(String::new(), |b| {
                format!(
                    ": {} passed every proof, {} also failed or missed one",
                    units::count(b.passed_every_proof),
                    units::count(b.passed_and_faulted)
                )
            });
            format!(
                "\"active\" in design §8{parts}; {}",
                growth_note(s.active, previous.map(|p| p.active), before_epoch)
            )
        }),
    );
    out.push_str("</div>");
}

/// Providers in good standing, proven and active over the last `limit` finished epochs.
pub(crate) fn growth_chart(index: &Index, limit: usize) -> String {
    let epochs: Vec<_> = index
        .epochs
        .values()
        .skip(index.epochs.len().saturating_sub(limit))
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let values = |f: fn(&cairn_ledger::state::EpochReport) -> u64| {
        epochs
            .iter()
            .map(|e| f(&e.report) as f64)
            .collect::<Vec<f64>>()
    };
    line_chart(
        "Providers by epoch",
        "providers",
        "epoch",
        &epochs
            .iter()
            .map(|e| e.report.epoch.to_string())
            .collect::<Vec<_>>(),
        &[
            Series {
                name: "in good standing",
                color: EMISSION,
                values: values(|r| r.registered_providers),
            },
            Series {
                name: "proven",
                color: OTHER,
                values: values(|r| r.proven_providers),
            },
            Series {
                name: "passed a proof (active)",
                color: STORAGE,
                values: values(|r| r.active_providers),
            },
        ],
    )
}

/// How the providers stood in the last finished epoch: parts that add up to both counts.
fn standing_table(out: &mut String, index: &Index) {
    let Some(last) = index.last_two_epochs().0 else {
        return;
    };
    let s = provider_standing(index, last);
    let _ = write!(out, "<h2>How providers stood in epoch {}</h2>", s.epoch);
    let Some(b) = s.breakdown else {
        out.push_str("<p class=\"muted\">The index has no reward statements for this epoch to split the counts with.</p>");
        return;
    };
    table(
        out,
        &[
            ("Standing", false),
            ("Providers", true),
            ("Counted as", false),
        ],
        vec![
            vec![
                text("Passed every proof it had"),
                num(units::count(b.passed_every_proof)),
                text("proven and active"),
            ],
            vec![
                text("Passed a proof, failed or missed another"),
                num(units::count(b.passed_and_faulted)),
                text("active, not proven"),
            ],
            vec![
                text(
                    "No proof due (a compute prover between challenges); its last proven rate stands",
                ),
                num(units::count(b.on_standing_compute_rate)),
                text("proven, not active"),
            ],
            vec![
                text("Failed or missed, passed nothing"),
                num(units::count(b.faulted_only)),
                text("neither"),
            ],
        ],
    );
    let _ = write!(
        out,
        "<p class=\"muted\">Proven {} = {} + {}; active {} = {} + {}. {} providers were in good standing at the epoch's end.</p>",
        units::count(s.proven),
        units::count(b.passed_every_proof),
        units::count(b.on_standing_compute_rate),
        units::count(s.active),
        units::count(b.passed_every_proof),
        units::count(b.passed_and_faulted),
        units::count(s.in_good_standing)
    );
}

#[allow(clippy::cast_precision_loss)]
pub fn providers(index: &Index) -> String {
    let list = figures::providers(index);
    let items = list["providers"].as_array().cloned().unwrap_or_default();
    let mut out = String::new();
    standing_cards(&mut out, index);
    let stake: Vec<HBar> = items
        .iter()
        .map(|p| {
            let v = &p["provider"];
            let own = amount(&v["self_bond"]).unwrap_or_default();
            let delegated = amount(&v["delegated"]).unwrap_or_default();
            let total = own.checked_add(delegated).unwrap_or(own);
            HBar {
                label: units::short_address(v["address"].as_str().unwrap_or("")),
                value: crn_f64(total),
                text: if delegated.is_zero() {
                    units::crn_rounded(total)
                } else {
                    format!(
                        "{} ({} delegated)",
                        units::crn_rounded(total),
                        units::crn_rounded(delegated)
                    )
                },
                color: STORAGE.to_string(),
            }
        })
        .collect();
    // Chart labels: the address's last four characters, as the table's short addresses end.
    let tails: Vec<String> = items
        .iter()
        .map(|p| {
            let a: Vec<char> = p["provider"]["address"]
                .as_str()
                .unwrap_or("")
                .chars()
                .collect();
            format!(
                "…{}",
                a[a.len().saturating_sub(4)..].iter().collect::<String>()
            )
        })
        .collect();
    let proofs = |k: &str| {
        items
            .iter()
            .map(|p| p["indexed"][k].as_u64().unwrap_or(0) as f64)
            .collect::<Vec<f64>>()
    };
    charts(
        &mut out,
        &[
            growth_chart(index, 40),
            hbar_chart("Stake by provider", "CRN", &stake),
            bar_chart(
                "Proofs by provider, all indexed epochs",
                "proofs",
                "provider (address ending)",
                &tails,
                &[
                    Series {
                        name: "passed",
                        color: OTHER,
                        values: proofs("proofs_passed"),
                    },
                    Series {
                        name: "failed",
                        color: FAULT,
                        values: proofs("proofs_failed"),
                    },
                    Series {
                        name: "missed",
                        color: EMISSION,
                        values: proofs("proofs_missed"),
                    },
                ],
            ),
        ],
    );
    standing_table(&mut out, index);
    out.push_str("<h2>Registered providers</h2>");
    let rows = items
        .iter()
        .map(|p| {
            let v = &p["provider"];
            let address = v["address"].as_str().unwrap_or("").to_string();
            let i = &p["indexed"];
            vec![
                link(
                    format!("/providers/{address}"),
                    units::short_address(&address),
                ),
                text(status_words(&v["status"])),
                text(v["region"].as_str().unwrap_or("—")),
                num(crn_text(&v["self_bond"])),
                num(crn_text(&v["delegated"])),
                num(units::bytes(
                    v["proven_storage_bytes"].as_u64().unwrap_or(0),
                )),
                num(units::ops(v["proven_int8_ops"].as_u64().unwrap_or(0))),
                text(units::yes_no(
                    v["proven_last_epoch"].as_bool().unwrap_or(false),
                )),
                num(format!(
                    "{} / {} / {}",
                    units::count(i["proofs_passed"].as_u64().unwrap_or(0)),
                    units::count(i["proofs_failed"].as_u64().unwrap_or(0)),
                    units::count(i["proofs_missed"].as_u64().unwrap_or(0))
                )),
                num(crn_text(&i["provider_rewards"])),
            ]
        })
        .collect();
    table(
        &mut out,
        &[
            ("Provider", false),
            ("Status", false),
            ("Region", false),
            ("Self bond", true),
            ("Delegated", true),
            ("Proven storage", true),
            ("Proven compute", true),
            ("Proven last epoch", false),
            ("Proofs passed / failed / missed", true),
            ("Rewards (indexed)", true),
        ],
        rows,
    );
    layout("Providers", &out)
}

fn provider_status(status: &ProviderStatus) -> String {
    match status {
        ProviderStatus::Active => "active".to_string(),
        ProviderStatus::Jailed { until_epoch } => format!("jailed until epoch {until_epoch}"),
        ProviderStatus::Leaving => "leaving".to_string(),
    }
}

fn compute_phase(phase: &ComputePhase) -> String {
    match phase {
        ComputePhase::Issued => "issued, waiting for the commitment".to_string(),
        ComputePhase::Committed { opened, .. } => format!("committed, {opened} openings verified"),
        ComputePhase::Passed { proven_int8_ops } => {
            format!("passed at {}", units::ops(*proven_int8_ops))
        }
        ComputePhase::Unproven { measured_int8_ops } => format!(
            "slower than claimed ({}): unproven",
            units::ops(*measured_int8_ops)
        ),
        ComputePhase::Failed { detail } => format!("failed: {detail}"),
        ComputePhase::Missed => "missed".to_string(),
    }
}

pub(crate) fn verdict(v: &Verdict) -> String {
    match v {
        Verdict::Pending => "pending".to_string(),
        Verdict::Passed => "passed".to_string(),
        Verdict::Failed { detail } => format!("failed: {detail}"),
        Verdict::Missed => "missed".to_string(),
    }
}

pub(crate) fn gpus(list: &[cairn_types::GpuSpec]) -> String {
    if list.is_empty() {
        return "none".to_string();
    }
    let names: Vec<String> = list
        .iter()
        .map(|g| {
            format!(
                "{} {} ({})",
                g.vendor.as_str(),
                g.model.as_str(),
                units::bytes(g.vram_mib.saturating_mul(1 << 20))
            )
        })
        .collect();
    names.join(", ")
}

/// A provider's page: the node's record and the indexed reward statements.
#[allow(clippy::cast_precision_loss)]
pub fn provider(index: &Index, address: &Address, node_view: &Value) -> String {
    let title = format!("Provider {address}");
    let p: Provider = match serde_json::from_value(node_view["provider"].clone()) {
        Ok(p) => p,
        Err(e) => return unreadable(&title, &e.to_string()),
    };
    let history = figures::provider_history(index, address);
    let statements: Vec<RewardStatement> =
        serde_json::from_value(history["statements"].clone()).unwrap_or_default();
    let tail = &statements[statements.len().saturating_sub(40)..];
    let labels: Vec<String> = tail.iter().map(|s| s.epoch.to_string()).collect();
    let mut out = String::from("<div class=\"cards\">");
    card(
        &mut out,
        "Status",
        &provider_status(&p.status),
        &format!("region {}", p.region),
    );
    let stake = p.total_stake().unwrap_or(p.self_bond);
    card(
        &mut out,
        "Stake",
        &units::crn_rounded(stake),
        &format!(
            "self bond {}, delegated {}",
            units::crn_rounded(p.self_bond),
            units::crn_rounded(p.delegated)
        ),
    );
    if p.claimed_int8_ops == 0 {
        card(
            &mut out,
            "Proven compute",
            "no claim",
            "a provider proves compute only once it claims a rate",
        );
    } else {
        card(
            &mut out,
            "Proven compute",
            &units::ops(p.proven_int8_ops),
            &format!("claimed {}", units::ops(p.claimed_int8_ops)),
        );
    }
    card(
        &mut out,
        "Proven storage, last epoch",
        &units::bytes(p.proven_storage_bytes),
        &format!(
            "{} assigned by deals",
            units::bytes(p.assigned_storage_bytes)
        ),
    );
    card(
        &mut out,
        "Rewards (indexed epochs)",
        &super::crn_card(&history["provider_rewards"]),
        &format!("tenant fees earned {}", crn_text(&history["fees_earned"])),
    );
    card(
        &mut out,
        "Faults",
        &units::count(p.total_faults),
        &format!(
            "{} slashed; {} faulty epochs in a row now",
            units::crn(p.total_slashed),
            p.consecutive_faulty_epochs
        ),
    );
    out.push_str("</div>");
    let count = |f: fn(&RewardStatement) -> u64| tail.iter().map(|s| f(s) as f64).collect();
    let money = |f: fn(&RewardStatement) -> cairn_types::Amount| {
        tail.iter().map(|s| crn_f64(f(s))).collect()
    };
    charts(
        &mut out,
        &[
            bar_chart(
                "Proofs by epoch",
                "proofs",
                "epoch",
                &labels,
                &[
                    Series {
                        name: "passed",
                        color: OTHER,
                        values: count(|s| s.proofs_passed),
                    },
                    Series {
                        name: "failed",
                        color: FAULT,
                        values: count(|s| s.proofs_failed),
                    },
                    Series {
                        name: "missed",
                        color: EMISSION,
                        values: count(|s| s.proofs_missed),
                    },
                ],
            ),
            panels(
                "Rewards and fees by epoch",
                "epoch",
                &labels,
                &[
                    Panel {
                        name: "Reward kept by the provider",
                        unit: "CRN",
                        color: STORAGE,
                        values: money(|s| s.provider_reward),
                    },
                    Panel {
                        name: "Paid on to delegators",
                        unit: "CRN",
                        color: COMPUTE,
                        values: money(|s| s.delegator_rewards),
                    },
                    Panel {
                        name: "Tenant fees earned",
                        unit: "CRN",
                        color: OTHER,
                        values: money(|s| s.fees_earned),
                    },
                ],
            ),
        ],
    );
    out.push_str("<h2>Record</h2>");
    fields(
        &mut out,
        vec![
            ("Address", code(p.address.to_string())),
            ("Endpoint", text(p.endpoint.clone())),
            ("Region", text(p.region.clone())),
            ("Status", text(provider_status(&p.status))),
            (
                "Commission",
                text(units::percent(f64::from(p.commission_bps) / 10_000.0)),
            ),
            ("Self bond", text(units::crn(p.self_bond))),
            ("Delegated to it", text(units::crn(p.delegated))),
            (
                "Declared storage",
                text(units::bytes(p.declared.storage_bytes)),
            ),
            (
                "Declared CPU",
                text(units::cores(p.declared.cpu_millicores)),
            ),
            (
                "Declared memory",
                text(units::bytes(p.declared.memory_bytes)),
            ),
            ("Declared GPUs", text(gpus(&p.declared.gpus.0))),
            (
                "Committed to leases",
                text(format!(
                    "{}, {} memory, {} GPUs, in {} active lease(s)",
                    units::cores(p.committed.cpu_millicores),
                    units::bytes(p.committed.memory_bytes),
                    units::count(p.committed.gpus),
                    units::count(p.active_leases)
                )),
            ),
            ("Claimed compute rate", text(units::ops(p.claimed_int8_ops))),
            ("Proven compute rate", text(units::ops(p.proven_int8_ops))),
            (
                "Last proven epoch",
                text(
                    p.last_proven_epoch
                        .map_or("never".to_string(), |e| format!("epoch {e}")),
                ),
            ),
            (
                "Timed-audit strikes in a row",
                text(units::count(u64::from(p.late_audit_epochs))),
            ),
            ("Faults, all time", text(units::count(p.total_faults))),
            ("Slashed, all time", text(units::crn(p.total_slashed))),
            ("Rewards, all time", text(units::crn(p.rewards_total))),
            (
                "Tenant fees, all time",
                text(units::crn(p.fees_earned_total)),
            ),
            ("Registered at", text(units::height(p.registered_height))),
        ],
    );
    out.push_str("<h2>Reward statements, newest first</h2>");
    table(
        &mut out,
        &[
            ("Epoch", true),
            ("Passed", true),
            ("Failed", true),
            ("Missed", true),
            ("Proven storage", true),
            ("Proven compute", true),
            ("Gross reward", true),
            ("Commission", true),
            ("To delegators", true),
            ("Kept", true),
            ("Tenant fees", true),
            ("Slashed", true),
        ],
        statements
            .iter()
            .rev()
            .map(|s| {
                vec![
                    num(units::count(s.epoch)),
                    num(units::count(s.proofs_passed)),
                    num(units::count(s.proofs_failed)),
                    num(units::count(s.proofs_missed)),
                    num(units::bytes(s.proven_storage_bytes)),
                    num(units::ops(s.proven_int8_ops)),
                    num(units::crn(s.gross_reward)),
                    num(units::crn(s.commission)),
                    num(units::crn(s.delegator_rewards)),
                    num(units::crn(s.provider_reward)),
                    num(units::crn(s.fees_earned)),
                    num(units::crn(s.slashed)),
                ]
            })
            .collect(),
    );
    let compute: Vec<ComputeChallenge> =
        serde_json::from_value(node_view["compute_challenges"].clone()).unwrap_or_default();
    out.push_str("<h2>Compute challenges the node holds</h2>");
    table(
        &mut out,
        &[
            ("Challenge", false),
            ("Epoch", true),
            ("Issued at", true),
            ("Claimed rate", true),
            ("Outcome", false),
        ],
        compute
            .iter()
            .rev()
            .map(|c| {
                vec![
                    text(c.id.to_string()),
                    num(units::count(c.epoch)),
                    num(units::height(c.issued_height)),
                    num(units::ops(c.claimed_int8_ops)),
                    text(compute_phase(&c.phase)),
                ]
            })
            .collect(),
    );
    let storage = node_view["storage_challenges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    out.push_str("<h2>Storage challenges the node holds</h2>");
    table(
        &mut out,
        &[
            ("Deal", false),
            ("Shard", true),
            ("Epoch", true),
            ("Deadline", true),
            ("Verdict", false),
        ],
        storage
            .iter()
            .filter_map(|c| {
                let challenge: StorageChallenge =
                    serde_json::from_value(c["challenge"].clone()).ok()?;
                let deal = c["deal"].as_u64()?;
                Some(vec![
                    link(format!("/deals/{deal}"), format!("deal-{deal}")),
                    num(units::count(c["shard_index"].as_u64().unwrap_or(0))),
                    num(units::count(challenge.epoch)),
                    num(units::height(challenge.deadline)),
                    text(verdict(&challenge.verdict)),
                ])
            })
            .collect(),
    );
    layout(&title, &out)
}
