//! The dashboard's pages: server-rendered HTML with inline SVG charts.

use crate::figures::{self, Period, Source, crn_f64};
use crate::index::Index;
use crate::prices::PriceTable;
use crate::svg::{Series, bar_chart, esc};
use serde_json::Value;
use std::fmt::Write as _;

const STORAGE: &str = "#2b7bb9";
const COMPUTE: &str = "#e0892b";
const EMISSION: &str = "#7a7a7a";
const OTHER: &str = "#3aa35b";

pub fn layout(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{t} · Cairn explorer</title>
<style>body{{font-family:sans-serif;margin:0;color:#222;background:#f6f7f9}}header{{background:#1d2733;color:#fff;padding:10px 20px}}header a{{color:#cfe3ff;margin-right:16px;text-decoration:none}}main{{padding:16px 20px}}.cards{{display:flex;flex-wrap:wrap;gap:12px}}.card{{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:150px}}.card b{{display:block;font-size:20px}}table{{border-collapse:collapse;background:#fff;margin:10px 0}}td,th{{border:1px solid #ddd;padding:4px 8px;font-size:13px;text-align:right}}th{{background:#eef}}td.l,th.l{{text-align:left}}svg.chart{{background:#fff;border:1px solid #ddd;margin:8px 8px 8px 0}}.muted{{color:#777;font-size:12px}}</style></head>
<body><header><strong>Cairn explorer</strong> &nbsp; <a href="/">Summary</a><a href="/revenue">Revenue</a><a href="/capacity">Capacity</a><a href="/prices">Prices</a><a href="/providers">Providers</a><a href="/api/v1/openapi.json">API</a></header><main><h1>{t}</h1>{body}</main></body></html>"#,
        t = esc(title)
    )
}

/// An error page (404, 400, 502) with the reason.
pub fn error_page(status: u16, reason: &str) -> String {
    let title = match status {
        404 => "Not found",
        400 => "Bad request",
        _ => "Error",
    };
    layout(
        title,
        &format!("<p class=\"error\">{status}: {}</p>", esc(reason)),
    )
}

fn card(out: &mut String, label: &str, value: &str, note: &str) {
    let _ = write!(
        out,
        "<div class=\"card\">{}<b>{}</b><span class=\"muted\">{}</span></div>",
        esc(label),
        esc(value),
        esc(note)
    );
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".to_string(),
        other => other.to_string(),
    }
}

/// uCRN decimal string (as the API carries amounts) → "12.5 CRN".
fn crn_text(v: &Value) -> String {
    v.as_str().and_then(|s| s.parse::<u128>().ok()).map_or_else(
        || "—".to_string(),
        |u| cairn_types::Amount::from_ucrn(u).to_string(),
    )
}

fn crn_value(v: &Value) -> f64 {
    v.as_str()
        .and_then(|s| s.parse::<u128>().ok())
        .map_or(0.0, |u| crn_f64(cairn_types::Amount::from_ucrn(u)))
}

fn signed(n: &Value) -> String {
    match n.as_i64() {
        Some(v) if v >= 0 => format!("+{v}"),
        Some(v) => v.to_string(),
        None => "—".to_string(),
    }
}

fn revenue_chart(index: &Index, by: Period, limit: usize) -> String {
    let rows = figures::revenue(index, by, Source::All);
    let rows = &rows[rows.len().saturating_sub(limit)..];
    let labels: Vec<String> = rows.iter().map(|r| r.period.clone()).collect();
    bar_chart(
        &format!("On-chain revenue and emission by {}", by_name(by)),
        "CRN",
        &labels,
        &[
            Series {
                name: "storage",
                color: STORAGE,
                values: rows.iter().map(|r| crn_f64(r.storage)).collect(),
            },
            Series {
                name: "compute",
                color: COMPUTE,
                values: rows.iter().map(|r| crn_f64(r.compute)).collect(),
            },
            Series {
                name: "emission",
                color: EMISSION,
                values: rows.iter().map(|r| crn_f64(r.emission)).collect(),
            },
        ],
    )
}

fn by_name(by: Period) -> &'static str {
    match by {
        Period::Epoch => "epoch",
        Period::Day => "day",
        Period::Month => "month",
    }
}

pub fn summary(index: &Index, crn_usd: f64) -> String {
    let s = figures::summary(index, crn_usd);
    let mut out = String::from("<div class=\"cards\">");
    card(
        &mut out,
        "Height",
        &text(&s["height"]),
        &format!("{} txs indexed", text(&s["txs_indexed"])),
    );
    card(
        &mut out,
        "Active providers",
        &text(&s["providers"]["active"]),
        &format!(
            "{} over the previous epoch",
            signed(&s["providers"]["active_growth"])
        ),
    );
    card(
        &mut out,
        "Proven providers",
        &text(&s["providers"]["proven"]),
        &format!(
            "{} over the previous epoch",
            signed(&s["providers"]["proven_growth"])
        ),
    );
    card(
        &mut out,
        "Registered providers",
        &text(&s["providers"]["registered"]),
        "",
    );
    card(
        &mut out,
        "TVL",
        &crn_text(&s["tvl"]["crn"]),
        &format!(
            "≈ ${:.0} at ${crn_usd}/CRN",
            s["tvl"]["usd"].as_f64().unwrap_or(0.0)
        ),
    );
    card(
        &mut out,
        "Supply",
        &crn_text(&s["supply"]["total"]),
        &format!(
            "minted {}, burned {}",
            crn_text(&s["supply"]["minted"]),
            crn_text(&s["supply"]["burned"])
        ),
    );
    card(
        &mut out,
        "Emission (last epoch)",
        &crn_text(&s["emission"]["last_epoch"]),
        &format!("next {}", crn_text(&s["emission"]["next_epoch"])),
    );
    let loss = &s["storage_loss"];
    card(
        &mut out,
        "Shard loss per epoch",
        &loss["rate_per_epoch"]
            .as_f64()
            .map_or("—".to_string(), |r| format!("{:.3}%", r * 100.0)),
        &format!(
            "{} of {} shard-epochs in {} epochs; plan at {} ({}): 4+2 {} nines per epoch",
            text(&loss["shards_faulted"]),
            text(&loss["shards_challenged"]),
            text(&loss["epochs"]),
            loss["planning_rate"]
                .as_f64()
                .map_or("—".to_string(), |r| format!("{:.2}%", r * 100.0)),
            text(&loss["planning_rate_source"]),
            loss["nines_per_epoch"]["4+2"]
                .as_f64()
                .map_or("—".to_string(), |n| format!("{n:.1}")),
        ),
    );
    let r = &s["last_epoch_revenue"];
    card(
        &mut out,
        "Revenue (last epoch)",
        &crn_text(&r["total"]),
        &format!(
            "revenue/emission {}",
            r["revenue_emission_ratio"]
                .as_f64()
                .map_or("—".to_string(), |v| format!("{v:.4}"))
        ),
    );
    out.push_str("</div>");
    out.push_str(&revenue_chart(index, Period::Epoch, 30));
    let epochs: Vec<&crate::index::EpochEntry> = index
        .epochs
        .values()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let labels: Vec<String> = epochs
        .iter()
        .map(|e| format!("epoch {}", e.report.epoch))
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let count = |f: fn(&crate::index::EpochEntry) -> u64| {
        epochs.iter().map(|e| f(e) as f64).collect::<Vec<f64>>()
    };
    out.push_str(&bar_chart(
        "Providers by epoch",
        "count",
        &labels,
        &[
            Series {
                name: "registered",
                color: EMISSION,
                values: count(|e| e.report.registered_providers),
            },
            Series {
                name: "active",
                color: STORAGE,
                values: count(|e| e.report.active_providers),
            },
            Series {
                name: "proven",
                color: OTHER,
                values: count(|e| e.report.proven_providers),
            },
        ],
    ));
    let tvl = figures::tvl(index, crn_usd);
    let history = tvl["history"].as_array().cloned().unwrap_or_default();
    let labels: Vec<String> = history
        .iter()
        .map(|p| format!("epoch {}", text(&p["epoch"])))
        .collect();
    out.push_str(&bar_chart(
        "TVL at epoch ends",
        "CRN",
        &labels,
        &[Series {
            name: "TVL",
            color: OTHER,
            values: history.iter().map(|p| crn_value(&p["crn"])).collect(),
        }],
    ));
    let parts = &tvl["parts"];
    let names = [
        "validator_stake",
        "provider_bonds",
        "delegations",
        "unbonding",
        "deal_escrow",
        "endowments",
        "order_deposits",
        "lease_escrow",
    ];
    out.push_str(&bar_chart(
        "TVL by part (now)",
        "CRN",
        &names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        &[Series {
            name: "CRN",
            color: STORAGE,
            values: names.iter().map(|n| crn_value(&parts[*n])).collect(),
        }],
    ));
    layout("Network summary", &out)
}

pub fn revenue(index: &Index, by: Period, source: Source) -> String {
    let rows = figures::revenue(index, by, source);
    let mut out = String::new();
    let _ = write!(
        out,
        "<p>Group by: <a href=\"/revenue?by=epoch\">epoch</a> · <a href=\"/revenue?by=day\">day</a> · <a href=\"/revenue?by=month\">month</a>. Revenue = fees paid by tenants (storage + compute); transaction fees are shown apart.</p>"
    );
    out.push_str(&revenue_chart(index, by, 40));
    let tail = &rows[rows.len().saturating_sub(40)..];
    let labels: Vec<String> = tail.iter().map(|r| r.period.clone()).collect();
    out.push_str(&bar_chart(
        "Revenue / emission",
        "ratio",
        &labels,
        &[Series {
            name: "revenue/emission",
            color: OTHER,
            values: tail
                .iter()
                .map(|r| r.revenue_emission_ratio.unwrap_or(0.0))
                .collect(),
        }],
    ));
    out.push_str("<table><tr><th class=\"l\">period</th><th>epochs</th><th>storage</th><th>compute</th><th>revenue</th><th>tx fees</th><th>emission</th><th>ratio</th><th>growth</th></tr>");
    for r in rows.iter().rev() {
        let _ = write!(
            out,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.period),
            r.epochs,
            r.storage,
            r.compute,
            r.revenue,
            r.tx_fees,
            r.emission,
            r.revenue_emission_ratio
                .map_or("—".to_string(), |v| format!("{v:.4}")),
            r.growth_pct
                .map_or("—".to_string(), |v| format!("{v:+.1}%"))
        );
    }
    out.push_str("</table>");
    layout(&format!("Revenue by {}", by_name(by)), &out)
}

#[allow(clippy::cast_precision_loss)]
pub fn capacity(index: &Index) -> String {
    let c = figures::capacity(index);
    let cap = &c["capacity"];
    let n = |k: &str| cap[k].as_u64().unwrap_or(0) as f64;
    let gib = (1u64 << 30) as f64;
    let mut out = String::new();
    out.push_str(&bar_chart(
        "Storage",
        "GiB",
        &["declared".into(), "assigned".into(), "proven".into()],
        &[Series {
            name: "storage",
            color: STORAGE,
            values: vec![
                n("storage_bytes_declared") / gib,
                n("storage_bytes_assigned") / gib,
                n("storage_bytes_proven") / gib,
            ],
        }],
    ));
    out.push_str(&bar_chart(
        "Compute",
        "cores / GPUs",
        &["CPU cores".into(), "GPUs".into()],
        &[
            Series {
                name: "declared",
                color: EMISSION,
                values: vec![n("cpu_millicores_declared") / 1000.0, n("gpus_declared")],
            },
            Series {
                name: "committed to leases",
                color: COMPUTE,
                values: vec![n("cpu_millicores_committed") / 1000.0, n("gpus_committed")],
            },
        ],
    ));
    let u = &c["utilization"];
    let pct = |k: &str| {
        u[k].as_f64()
            .map_or("—".to_string(), |v| format!("{:.1}%", v * 100.0))
    };
    let _ = write!(
        out,
        "<table><tr><th class=\"l\">utilization</th><th>share</th></tr><tr><td class=\"l\">storage assigned</td><td>{}</td></tr><tr><td class=\"l\">storage proven</td><td>{}</td></tr><tr><td class=\"l\">CPU</td><td>{}</td></tr><tr><td class=\"l\">memory</td><td>{}</td></tr><tr><td class=\"l\">GPUs</td><td>{}</td></tr></table><p class=\"muted\">Proven compute rate: {} int8 ops/s.</p>",
        pct("storage_assigned"),
        pct("storage_proven"),
        pct("cpu"),
        pct("memory"),
        pct("gpus"),
        text(&cap["int8_ops_proven"])
    );
    layout("Capacity and utilization", &out)
}

pub fn prices(index: &Index, table: &PriceTable, crn_usd: f64) -> String {
    let p = crate::prices::comparison(index, table, crn_usd);
    let cairn = &p["cairn"];
    let mut out = String::new();
    let mut labels = vec!["Cairn".to_string()];
    let mut values = vec![cairn["storage_usd_per_gib_month"].as_f64().unwrap_or(0.0)];
    for s in &table.storage {
        labels.push(s.provider.clone());
        values.push(s.usd_per_gib_month);
    }
    out.push_str(&bar_chart(
        "Storage price",
        "USD per GiB-month",
        &labels,
        &[Series {
            name: "USD/GiB-month",
            color: STORAGE,
            values,
        }],
    ));
    let mut labels = vec!["Cairn".to_string()];
    let mut values = vec![cairn["gpu_usd_per_gpu_hour"].as_f64().unwrap_or(0.0)];
    for g in &table.gpu {
        labels.push(g.provider.clone());
        values.push(g.usd_per_gpu_hour);
    }
    out.push_str(&bar_chart(
        "GPU price",
        "USD per GPU-hour",
        &labels,
        &[Series {
            name: "USD/GPU-hour",
            color: COMPUTE,
            values,
        }],
    ));
    let _ = write!(
        out,
        "<p>Cairn: the size-weighted mean price of {} active deal(s) and the mean per-GPU price of {} active lease(s), at ${crn_usd}/CRN (reference price, a parameter). Storage {} CRN/GiB-month, GPU {} CRN/GPU-hour, CPU {} CRN/core-hour.</p>",
        text(&cairn["active_deals"]),
        text(&cairn["active_leases"]),
        text(&cairn["storage_crn_per_gib_month"]),
        text(&cairn["gpu_crn_per_gpu_hour"]),
        text(&cairn["cpu_crn_per_core_hour"])
    );
    let _ = write!(
        out,
        "<table><tr><th class=\"l\">cloud</th><th class=\"l\">product</th><th>list price</th><th class=\"l\">source</th></tr>"
    );
    for s in &table.storage {
        let _ = write!(
            out,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>${} /GiB-month</td><td class=\"l\">{}</td></tr>",
            esc(&s.provider),
            esc(&s.product),
            s.usd_per_gib_month,
            esc(&s.source)
        );
    }
    for g in &table.gpu {
        let _ = write!(
            out,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>${} /GPU-hour</td><td class=\"l\">{}</td></tr>",
            esc(&g.provider),
            esc(&g.product),
            g.usd_per_gpu_hour,
            esc(&g.source)
        );
    }
    let _ = write!(
        out,
        "</table><p class=\"muted\">List prices as of {} (explorer/prices.toml).</p>",
        esc(&table.as_of)
    );
    layout("Prices: Cairn against cloud list prices", &out)
}

#[allow(clippy::cast_precision_loss)]
pub fn providers(index: &Index) -> String {
    let list = figures::providers(index);
    let items = list["providers"].as_array().cloned().unwrap_or_default();
    let mut out = String::new();
    let labels: Vec<String> = items
        .iter()
        .map(|p| {
            text(&p["provider"]["address"])
                .chars()
                .skip(5)
                .take(8)
                .collect()
        })
        .collect();
    out.push_str(&bar_chart(
        "Stake by provider",
        "CRN",
        &labels,
        &[
            Series {
                name: "self bond",
                color: STORAGE,
                values: items
                    .iter()
                    .map(|p| crn_value(&p["provider"]["self_bond"]))
                    .collect(),
            },
            Series {
                name: "delegated",
                color: COMPUTE,
                values: items
                    .iter()
                    .map(|p| crn_value(&p["provider"]["delegated"]))
                    .collect(),
            },
        ],
    ));
    out.push_str(&bar_chart(
        "Proofs by provider (indexed epochs)",
        "count",
        &labels,
        &[
            Series {
                name: "passed",
                color: OTHER,
                values: items
                    .iter()
                    .map(|p| p["indexed"]["proofs_passed"].as_u64().unwrap_or(0) as f64)
                    .collect(),
            },
            Series {
                name: "failed",
                color: "#c33",
                values: items
                    .iter()
                    .map(|p| p["indexed"]["proofs_failed"].as_u64().unwrap_or(0) as f64)
                    .collect(),
            },
            Series {
                name: "missed",
                color: EMISSION,
                values: items
                    .iter()
                    .map(|p| p["indexed"]["proofs_missed"].as_u64().unwrap_or(0) as f64)
                    .collect(),
            },
        ],
    ));
    out.push_str("<table><tr><th class=\"l\">provider</th><th class=\"l\">status</th><th class=\"l\">region</th><th>self bond</th><th>delegated</th><th>proven int8 ops/s</th><th>proven last epoch</th><th>rewards (indexed)</th></tr>");
    for p in &items {
        let v = &p["provider"];
        let address = text(&v["address"]);
        let _ = write!(
            out,
            "<tr><td class=\"l\"><a href=\"/providers/{a}\">{a}</a></td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&text(&v["status"]["status"])),
            esc(&text(&v["region"])),
            crn_text(&v["self_bond"]),
            crn_text(&v["delegated"]),
            text(&v["proven_int8_ops"]),
            text(&v["proven_last_epoch"]),
            crn_text(&p["indexed"]["provider_rewards"]),
            a = esc(&address)
        );
    }
    out.push_str("</table>");
    layout("Providers", &out)
}

/// A provider's page: the node's record and the indexed reward statements.
#[allow(clippy::cast_precision_loss)]
pub fn provider(index: &Index, address: &cairn_types::Address, node_view: &Value) -> String {
    let history = figures::provider_history(index, address);
    let statements = history["statements"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let tail = &statements[statements.len().saturating_sub(40)..];
    let labels: Vec<String> = tail
        .iter()
        .map(|s| format!("epoch {}", text(&s["epoch"])))
        .collect();
    let count = |k: &str| {
        tail.iter()
            .map(|s| s[k].as_u64().unwrap_or(0) as f64)
            .collect::<Vec<f64>>()
    };
    let mut out = String::new();
    let p = &node_view["provider"];
    let _ = write!(out, "<div class=\"cards\">");
    card(
        &mut out,
        "Status",
        &text(&p["status"]["status"]),
        &text(&p["region"]),
    );
    card(
        &mut out,
        "Self bond",
        &crn_text(&p["self_bond"]),
        &format!("delegated {}", crn_text(&p["delegated"])),
    );
    card(
        &mut out,
        "Proven int8 ops/s",
        &text(&p["proven_int8_ops"]),
        &format!("claimed {}", text(&p["claimed_int8_ops"])),
    );
    card(
        &mut out,
        "Rewards (indexed)",
        &crn_text(&history["provider_rewards"]),
        &format!("fees earned {}", crn_text(&history["fees_earned"])),
    );
    out.push_str("</div>");
    out.push_str(&bar_chart(
        "Proof history",
        "proofs per epoch",
        &labels,
        &[
            Series {
                name: "passed",
                color: OTHER,
                values: count("proofs_passed"),
            },
            Series {
                name: "failed",
                color: "#c33",
                values: count("proofs_failed"),
            },
            Series {
                name: "missed",
                color: EMISSION,
                values: count("proofs_missed"),
            },
        ],
    ));
    out.push_str(&bar_chart(
        "Rewards",
        "CRN per epoch",
        &labels,
        &[
            Series {
                name: "provider reward",
                color: STORAGE,
                values: tail
                    .iter()
                    .map(|s| crn_value(&s["provider_reward"]))
                    .collect(),
            },
            Series {
                name: "delegators",
                color: COMPUTE,
                values: tail
                    .iter()
                    .map(|s| crn_value(&s["delegator_rewards"]))
                    .collect(),
            },
            Series {
                name: "fees earned",
                color: EMISSION,
                values: tail.iter().map(|s| crn_value(&s["fees_earned"])).collect(),
            },
        ],
    ));
    out.push_str("<h2>Reward statements</h2><table><tr><th>epoch</th><th>passed</th><th>failed</th><th>missed</th><th>proven bytes</th><th>proven int8 ops/s</th><th>gross</th><th>commission</th><th>delegators</th><th>provider</th><th>fees</th><th>slashed</th></tr>");
    for s in statements.iter().rev() {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(&s["epoch"]),
            text(&s["proofs_passed"]),
            text(&s["proofs_failed"]),
            text(&s["proofs_missed"]),
            text(&s["proven_storage_bytes"]),
            text(&s["proven_int8_ops"]),
            crn_text(&s["gross_reward"]),
            crn_text(&s["commission"]),
            crn_text(&s["delegator_rewards"]),
            crn_text(&s["provider_reward"]),
            crn_text(&s["fees_earned"]),
            crn_text(&s["slashed"])
        );
    }
    out.push_str("</table><h2>Compute challenges (current)</h2><table><tr><th>id</th><th>epoch</th><th class=\"l\">phase</th><th>claimed</th></tr>");
    for c in node_view["compute_challenges"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td></tr>",
            esc(&text(&c["id"])),
            text(&c["epoch"]),
            esc(&text(&c["phase"]["phase"])),
            text(&c["claimed_int8_ops"])
        );
    }
    out.push_str("</table>");
    layout(&format!("Provider {address}"), &out)
}

fn kv_table(out: &mut String, value: &Value) {
    out.push_str("<table>");
    if let Some(obj) = value.as_object() {
        for (k, v) in obj {
            let _ = write!(
                out,
                "<tr><th class=\"l\">{}</th><td class=\"l\">{}</td></tr>",
                esc(k),
                esc(&text(v))
            );
        }
    }
    out.push_str("</table>");
}

/// A deal's page, from the node's view of it.
pub fn deal(id: &str, view: &Value) -> String {
    let d = &view["deal"];
    let mut out = String::new();
    out.push_str(&bar_chart(
        "Deal funds",
        "CRN",
        &["paid".into(), "escrow".into(), "endowment".into()],
        &[Series {
            name: "CRN",
            color: STORAGE,
            values: vec![
                crn_value(&d["paid_total"]),
                crn_value(&d["escrow"]),
                crn_value(&d["endowment"]),
            ],
        }],
    ));
    kv_table(&mut out, d);
    layout(&format!("Deal {id}"), &out)
}

/// A lease's page, from the node's view of it (settlement projected to the next block).
pub fn lease(id: &str, view: &Value) -> String {
    let l = &view["lease"];
    let mut out = String::new();
    out.push_str(&bar_chart(
        "Lease funds",
        "CRN",
        &["paid".into(), "owed now".into(), "escrow left".into()],
        &[Series {
            name: "CRN",
            color: COMPUTE,
            values: vec![
                crn_value(&l["paid_total"]),
                crn_value(&view["owed"]),
                crn_value(&view["escrow_left"]),
            ],
        }],
    ));
    let _ = write!(
        out,
        "<p>Projected state: <b>{}</b> as of height {}.</p>",
        esc(&text(&view["projected_state"])),
        text(&view["as_of_height"])
    );
    kv_table(&mut out, l);
    layout(&format!("Lease {id}"), &out)
}
