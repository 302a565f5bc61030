//! The network pages: summary, revenue, capacity, prices.

use super::{COMPUTE, EMISSION, OTHER, STORAGE, card, charts, layout, num, table, text};
use crate::figures::{self, Period, Source, crn_f64};
use crate::index::Index;
use crate::prices::PriceTable;
use crate::svg::{HBar, Panel, Series, bar_chart, esc, hbar_chart, panels};
use crate::units;
use cairn_types::Amount;
use std::fmt::Write as _;

fn by_name(by: Period) -> &'static str {
    match by {
        Period::Epoch => "epoch",
        Period::Day => "day",
        Period::Month => "month",
    }
}

fn by_caption(by: Period) -> &'static str {
    match by {
        Period::Epoch => "epoch",
        Period::Day => "day (UTC)",
        Period::Month => "month (UTC)",
    }
}

fn by_header(by: Period) -> &'static str {
    match by {
        Period::Epoch => "Epoch",
        Period::Day => "Day (UTC)",
        Period::Month => "Month (UTC)",
    }
}

fn source_name(source: Source) -> &'static str {
    match source {
        Source::All => "tenant revenue (storage + compute)",
        Source::Storage => "storage revenue",
        Source::Compute => "compute revenue",
        Source::TxFees => "transaction fees",
    }
}

fn source_param(source: Source) -> &'static str {
    match source {
        Source::All => "all",
        Source::Storage => "storage",
        Source::Compute => "compute",
        Source::TxFees => "tx_fees",
    }
}

/// Storage revenue, compute revenue and emission by period, each in its own panel: tenant
/// revenue is a few thousandths of emission on a young network, and on one axis its bars
/// were 0 px tall.
fn revenue_panels(index: &Index, by: Period, source: Source, limit: usize, ratio: bool) -> String {
    let rows = figures::revenue(index, by, source);
    let rows = &rows[rows.len().saturating_sub(limit)..];
    let labels: Vec<String> = rows
        .iter()
        .map(|r| {
            r.period
                .strip_prefix("epoch ")
                .unwrap_or(&r.period)
                .to_string()
        })
        .collect();
    let mut list = vec![
        Panel {
            name: "Storage revenue",
            unit: "CRN",
            color: STORAGE,
            values: rows.iter().map(|r| crn_f64(r.storage)).collect(),
        },
        Panel {
            name: "Compute revenue",
            unit: "CRN",
            color: COMPUTE,
            values: rows.iter().map(|r| crn_f64(r.compute)).collect(),
        },
        Panel {
            name: "Emission (CRN minted)",
            unit: "CRN",
            color: EMISSION,
            values: rows.iter().map(|r| crn_f64(r.emission)).collect(),
        },
    ];
    if ratio {
        list.push(Panel {
            name: "Revenue as a share of emission",
            unit: "%",
            color: OTHER,
            values: rows
                .iter()
                .map(|r| r.revenue_emission_ratio.unwrap_or(0.0) * 100.0)
                .collect(),
        });
    }
    panels(
        &format!("Tenant revenue and emission by {}", by_name(by)),
        by_caption(by),
        &labels,
        &list,
    )
}

fn tvl_parts(index: &Index) -> Vec<(&'static str, Amount)> {
    let Some(s) = index.network.as_ref().and_then(|n| n.supply.as_ref()) else {
        return Vec::new();
    };
    vec![
        ("Validator stake", s.validator_stake),
        ("Provider bonds", s.provider_bonds),
        ("Delegations", s.delegations),
        ("Unbonding", s.unbonding),
        ("Deal escrow", s.deal_escrow),
        ("Endowments", s.endowments),
        ("Order deposits", s.order_deposits),
        ("Lease escrow", s.lease_escrow),
    ]
}

pub fn summary(index: &Index, crn_usd: f64) -> String {
    let (last, before) = index.last_two_epochs();
    let network = index.network.as_ref();
    let epoch_name = |e: Option<u64>| e.map_or("last epoch".to_string(), |n| format!("epoch {n}"));
    let last_name = epoch_name(last.map(|e| e.report.epoch));
    let mut out = String::new();

    out.push_str("<h2>Network</h2><div class=\"cards\">");
    card(
        &mut out,
        "Finalized height",
        &units::count(index.height),
        &format!(
            "{} transactions in {} blocks indexed",
            units::count(index.txs),
            units::count(index.blocks)
        ),
    );
    let tvl = network.and_then(|n| n.tvl);
    card(
        &mut out,
        "Total value locked",
        &tvl.map_or("—".to_string(), units::crn_rounded),
        &format!(
            "≈ {} at {} per CRN (reference price); stake, escrows and endowments",
            tvl.map_or("—".to_string(), |t| units::usd(crn_f64(t) * crn_usd)),
            units::usd(crn_usd)
        ),
    );
    let supply = network.and_then(|n| n.supply.as_ref());
    card(
        &mut out,
        "Supply",
        &supply.map_or("—".to_string(), |s| units::crn_rounded(s.expected)),
        &supply.map_or(String::new(), |s| {
            format!(
                "{} minted and {} burned since genesis",
                units::crn_rounded(s.minted),
                units::crn_rounded(s.burned)
            )
        }),
    );
    card(
        &mut out,
        &format!("Emission, {last_name}"),
        &last.map_or("—".to_string(), |e| units::crn_rounded(e.report.minted)),
        &network.map_or(String::new(), |n| {
            format!("next epoch: {}", units::crn_rounded(n.next_emission))
        }),
    );
    let loss = figures::storage_loss(index);
    card(
        &mut out,
        "Shard loss per epoch",
        &loss["rate_per_epoch"]
            .as_f64()
            .map_or("—".to_string(), units::percent),
        &format!(
            "{} of {} challenged shard-epochs faulted over {}; planning at {} ({}): a 4+2 code keeps {} nines per epoch",
            super::count_text(&loss["shards_faulted"]),
            super::count_text(&loss["shards_challenged"]),
            loss["epochs"]
                .as_u64()
                .map_or("—".to_string(), units::epochs),
            loss["planning_rate"]
                .as_f64()
                .map_or("—".to_string(), units::percent),
            loss["planning_rate_source"].as_str().unwrap_or("—"),
            loss["nines_per_epoch"]["4+2"]
                .as_f64()
                .map_or("—".to_string(), |n| format!("{n:.1}")),
        ),
    );
    out.push_str("</div><h2>Revenue</h2><div class=\"cards\">");
    let total = last.and_then(|e| e.report.revenue.tenant_fees());
    let previous = before.and_then(|e| e.report.revenue.tenant_fees());
    let change = match (total, previous) {
        (Some(now), Some(then)) if then.is_zero() => format!(
            "{} over {}",
            if now.is_zero() {
                "no change"
            } else {
                "up from nothing"
            },
            epoch_name(before.map(|e| e.report.epoch))
        ),
        (Some(now), Some(then)) => format!(
            "{} over {}",
            units::signed_percent((crn_f64(now) - crn_f64(then)) / crn_f64(then) * 100.0),
            epoch_name(before.map(|e| e.report.epoch))
        ),
        _ => String::new(),
    };
    card(
        &mut out,
        &format!("Tenant revenue, {last_name}"),
        &total.map_or("—".to_string(), units::crn_rounded),
        &last.map_or(String::new(), |e| {
            format!(
                "storage {} + compute {}; {change}",
                units::crn(e.report.revenue.storage),
                units::crn(e.report.revenue.compute)
            )
        }),
    );
    let ratio = last.and_then(|e| {
        let minted = crn_f64(e.report.minted);
        total.filter(|_| minted > 0.0).map(|t| crn_f64(t) / minted)
    });
    card(
        &mut out,
        &format!("Revenue ÷ emission, {last_name}"),
        &ratio.map_or("—".to_string(), units::percent),
        "tenant revenue as a share of the CRN minted in the epoch",
    );
    card(
        &mut out,
        &format!("Transaction fees, {last_name}"),
        &last.map_or("—".to_string(), |e| {
            units::crn_rounded(e.report.revenue.tx_fees)
        }),
        "paid by every transaction; reported apart from tenant revenue",
    );
    out.push_str("</div><h2>Providers</h2>");
    super::providers::standing_cards(&mut out, index);

    let history: Vec<&crate::index::TvlPoint> = index
        .tvl_history
        .iter()
        .skip(index.tvl_history.len().saturating_sub(30))
        .collect();
    let tvl_chart = bar_chart(
        "Total value locked at epoch ends",
        "CRN",
        "epoch (seen live by this explorer)",
        &history
            .iter()
            .map(|p| p.epoch.to_string())
            .collect::<Vec<_>>(),
        &[Series {
            name: "TVL",
            color: OTHER,
            values: history.iter().map(|p| crn_f64(p.tvl)).collect(),
        }],
    );
    let parts = hbar_chart(
        "Where the value is locked now",
        "CRN",
        &tvl_parts(index)
            .into_iter()
            .map(|(label, a)| HBar {
                label: label.to_string(),
                value: crn_f64(a),
                text: units::crn_rounded(a),
                color: STORAGE.to_string(),
            })
            .collect::<Vec<_>>(),
    );
    out.push_str("<h2>Charts</h2>");
    charts(
        &mut out,
        &[
            revenue_panels(index, Period::Epoch, Source::All, 30, false),
            super::providers::growth_chart(index, 30),
            tvl_chart,
            parts,
        ],
    );
    layout("Network summary", &out)
}

pub fn revenue(index: &Index, by: Period, source: Source) -> String {
    let rows = figures::revenue(index, by, source);
    let mut out = String::from("<p>Group by: ");
    let periods = [Period::Epoch, Period::Day, Period::Month];
    let sources = [
        Source::All,
        Source::Storage,
        Source::Compute,
        Source::TxFees,
    ];
    let choice = |href: String, name: &str, chosen: bool| {
        if chosen {
            format!("<b>{}</b>", esc(name))
        } else {
            format!("<a href=\"{}\">{}</a>", esc(&href), esc(name))
        }
    };
    let links: Vec<String> = periods
        .iter()
        .map(|p| {
            choice(
                format!(
                    "/revenue?by={}&source={}",
                    by_name(*p),
                    source_param(source)
                ),
                by_name(*p),
                *p == by,
            )
        })
        .collect();
    out.push_str(&links.join(" · "));
    out.push_str(". Count: ");
    let links: Vec<String> = sources
        .iter()
        .map(|s| {
            choice(
                format!("/revenue?by={}&source={}", by_name(by), source_param(*s)),
                source_name(*s),
                *s == source,
            )
        })
        .collect();
    out.push_str(&links.join(" · "));
    out.push_str(
        ".</p><p class=\"muted\">Tenant revenue is what tenants paid for storage and compute, \
         recognized when the epoch that earned it ends. Transaction fees are shown apart. \
         Emission is the CRN minted as rewards. Each panel has its own scale: tenant revenue \
         on a young network is a small fraction of emission.</p>",
    );
    charts(&mut out, &[revenue_panels(index, by, source, 40, true)]);
    let column = match source {
        Source::All => "Tenant revenue",
        Source::Storage => "Counted: storage",
        Source::Compute => "Counted: compute",
        Source::TxFees => "Counted: transaction fees",
    };
    let body: Vec<Vec<super::Cell>> = rows
        .iter()
        .rev()
        .map(|r| {
            vec![
                text(r.period.clone()),
                num(units::count(r.epochs)),
                num(units::crn(r.storage)),
                num(units::crn(r.compute)),
                num(units::crn(r.revenue)),
                num(units::crn(r.tx_fees)),
                num(units::crn(r.emission)),
                num(r
                    .revenue_emission_ratio
                    .map_or("—".to_string(), units::percent)),
                num(r.growth_pct.map_or("—".to_string(), units::signed_percent)),
            ]
        })
        .collect();
    out.push_str("<h2>By period, newest first</h2>");
    table(
        &mut out,
        &[
            (by_header(by), false),
            ("Epochs", true),
            ("Storage revenue", true),
            ("Compute revenue", true),
            (column, true),
            ("Transaction fees", true),
            ("Emission", true),
            (
                if source == Source::All {
                    "Revenue ÷ emission"
                } else {
                    "Counted ÷ emission"
                },
                true,
            ),
            ("Change over the period before", true),
        ],
        body,
    );
    let title = format!("Revenue by {}", by_name(by));
    layout(&title, &out)
}

pub fn capacity(index: &Index) -> String {
    let Some(n) = index.network.as_ref() else {
        return layout(
            "Capacity and utilization",
            "<p>No network view yet: the explorer has not reached the node's tip.</p>",
        );
    };
    let c = &n.capacity;
    let mut out = String::from("<div class=\"cards\">");
    card(
        &mut out,
        "Providers",
        &units::count(c.providers),
        &format!(
            "{} in good standing (not jailed, not leaving)",
            units::count(c.providers_in_good_standing)
        ),
    );
    card(
        &mut out,
        "Storage declared",
        &units::bytes(c.storage_bytes_declared),
        &format!(
            "{} assigned to deals, {} proven last epoch",
            units::bytes(c.storage_bytes_assigned),
            units::bytes(c.storage_bytes_proven)
        ),
    );
    card(
        &mut out,
        "CPU declared",
        &units::cores(c.cpu_millicores_declared),
        &format!(
            "{} committed to leases",
            units::cores(c.cpu_millicores_committed)
        ),
    );
    card(
        &mut out,
        "Proven compute",
        &units::ops(c.int8_ops_proven),
        "the sum of the rates providers proved at their last challenge",
    );
    out.push_str("</div>");
    #[allow(clippy::cast_precision_loss)]
    let share = |used: u64, of: u64| (of > 0).then(|| used as f64 / of as f64);
    let uses = [
        (
            "Storage assigned",
            share(c.storage_bytes_assigned, c.storage_bytes_declared),
            units::bytes(c.storage_bytes_assigned),
            units::bytes(c.storage_bytes_declared),
        ),
        (
            "Storage proven",
            share(c.storage_bytes_proven, c.storage_bytes_declared),
            units::bytes(c.storage_bytes_proven),
            units::bytes(c.storage_bytes_declared),
        ),
        (
            "CPU committed",
            share(c.cpu_millicores_committed, c.cpu_millicores_declared),
            units::cores(c.cpu_millicores_committed),
            units::cores(c.cpu_millicores_declared),
        ),
        (
            "Memory committed",
            share(c.memory_bytes_committed, c.memory_bytes_declared),
            units::bytes(c.memory_bytes_committed),
            units::bytes(c.memory_bytes_declared),
        ),
        (
            "GPUs committed",
            share(c.gpus_committed, c.gpus_declared),
            units::count(c.gpus_committed),
            units::count(c.gpus_declared),
        ),
    ];
    let utilization = hbar_chart(
        "Utilization: share of declared capacity in use",
        "% of declared",
        &uses
            .iter()
            .map(|(label, s, _, _)| HBar {
                label: (*label).to_string(),
                value: s.unwrap_or(0.0) * 100.0,
                text: s.map_or("nothing declared".to_string(), units::percent),
                color: COMPUTE.to_string(),
            })
            .collect::<Vec<_>>(),
    );
    #[allow(clippy::cast_precision_loss)]
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    let storage = hbar_chart(
        "Storage",
        "GiB",
        &[
            ("Declared", c.storage_bytes_declared),
            ("Assigned to deals", c.storage_bytes_assigned),
            ("Proven last epoch", c.storage_bytes_proven),
        ]
        .iter()
        .map(|(label, b)| HBar {
            label: (*label).to_string(),
            value: gib(*b),
            text: units::bytes(*b),
            color: STORAGE.to_string(),
        })
        .collect::<Vec<_>>(),
    );
    charts(&mut out, &[utilization, storage]);
    out.push_str("<h2>In use and declared</h2>");
    table(
        &mut out,
        &[
            ("Resource", false),
            ("In use", true),
            ("Declared", true),
            ("Share", true),
        ],
        uses.iter()
            .map(|(label, s, used, of)| {
                vec![
                    text(*label),
                    num(used.clone()),
                    num(of.clone()),
                    num(s.map_or("—".to_string(), units::percent)),
                ]
            })
            .collect(),
    );
    let _ = write!(
        out,
        "<p class=\"muted\">As of {}. Declared capacity is what providers registered; proven storage is shard bytes that passed their challenges in the last finished epoch.</p>",
        esc(&units::height(n.height))
    );
    layout("Capacity and utilization", &out)
}

pub fn prices(index: &Index, table_: &PriceTable, crn_usd: f64) -> String {
    let p = crate::prices::comparison(index, table_, crn_usd);
    let cairn = &p["cairn"];
    let mut out = String::new();
    let f = |k: &str| cairn[k].as_f64();
    let cheapest = |v: Vec<f64>| v.into_iter().filter(|v| *v > 0.0).min_by(f64::total_cmp);
    let storage_cheapest = cheapest(table_.storage.iter().map(|s| s.usd_per_gib_month).collect());
    let gpu_cheapest = cheapest(table_.gpu.iter().map(|g| g.usd_per_gpu_hour).collect());
    let times = |cairn: Option<f64>, cloud: Option<f64>| match (cairn, cloud) {
        (Some(c), Some(l)) if l > 0.0 => {
            format!("{}× the cheapest cloud list price", units::decimal(c / l))
        }
        _ => "no Cairn price yet".to_string(),
    };
    out.push_str("<div class=\"cards\">");
    card(
        &mut out,
        "Cairn storage, per GiB-month",
        &f("storage_usd_per_gib_month").map_or("—".to_string(), units::usd),
        &format!(
            "{} · {}",
            f("storage_crn_per_gib_month").map_or("no active deal".to_string(), |c| format!(
                "{} CRN",
                units::decimal(c)
            )),
            times(f("storage_usd_per_gib_month"), storage_cheapest)
        ),
    );
    card(
        &mut out,
        "Cairn GPU, per GPU-hour",
        &f("gpu_usd_per_gpu_hour").map_or("—".to_string(), units::usd),
        &format!(
            "{} · {}",
            f("gpu_crn_per_gpu_hour").map_or("no active GPU lease".to_string(), |c| format!(
                "{} CRN",
                units::decimal(c)
            )),
            times(f("gpu_usd_per_gpu_hour"), gpu_cheapest)
        ),
    );
    card(
        &mut out,
        "Cairn CPU, per core-hour",
        &f("cpu_usd_per_core_hour").map_or("—".to_string(), units::usd),
        &f("cpu_crn_per_core_hour").map_or("no active CPU lease".to_string(), |c| {
            format!("{} CRN", units::decimal(c))
        }),
    );
    out.push_str("</div>");
    let bars = |cairn_usd: Option<f64>, list: Vec<(String, f64)>, unit: &str| -> Vec<HBar> {
        let mut bars = vec![HBar {
            label: "Cairn (market now)".to_string(),
            value: cairn_usd.unwrap_or(0.0),
            text: cairn_usd.map_or("no price yet".to_string(), |v| {
                format!("{}{unit}", units::usd(v))
            }),
            color: OTHER.to_string(),
        }];
        bars.extend(list.into_iter().map(|(label, v)| HBar {
            label,
            value: v,
            text: format!("{}{unit}", units::usd(v)),
            color: EMISSION.to_string(),
        }));
        bars
    };
    let storage = hbar_chart(
        "Storage price",
        "USD per GiB-month",
        &bars(
            f("storage_usd_per_gib_month"),
            table_
                .storage
                .iter()
                .map(|s| (s.provider.clone(), s.usd_per_gib_month))
                .collect(),
            " /GiB-month",
        ),
    );
    let gpu = hbar_chart(
        "GPU price",
        "USD per GPU-hour",
        &bars(
            f("gpu_usd_per_gpu_hour"),
            table_
                .gpu
                .iter()
                .map(|g| (g.provider.clone(), g.usd_per_gpu_hour))
                .collect(),
            " /GPU-hour",
        ),
    );
    charts(&mut out, &[storage, gpu]);
    let _ = write!(
        out,
        "<p>Cairn's storage price is the size-weighted mean price of the {} active deal(s); its GPU and CPU prices are the mean prices of the {} active lease(s). They convert to USD at {} per CRN, the reference price (a parameter: a devnet has no market price for CRN).</p>",
        super::count_text(&cairn["active_deals"]),
        super::count_text(&cairn["active_leases"]),
        esc(&units::usd(crn_usd))
    );
    out.push_str("<h2>Cloud list prices</h2>");
    let mut rows = Vec::new();
    for s in &table_.storage {
        rows.push(vec![
            text(s.provider.clone()),
            text(s.product.clone()),
            num(format!("{} per GiB-month", units::usd(s.usd_per_gib_month))),
            super::link(s.source.clone(), s.source.clone()),
        ]);
    }
    for g in &table_.gpu {
        rows.push(vec![
            text(g.provider.clone()),
            text(g.product.clone()),
            num(format!("{} per GPU-hour", units::usd(g.usd_per_gpu_hour))),
            super::link(g.source.clone(), g.source.clone()),
        ]);
    }
    table(
        &mut out,
        &[
            ("Cloud", false),
            ("Product", false),
            ("List price", true),
            ("Source", false),
        ],
        rows,
    );
    let _ = write!(
        out,
        "<p class=\"muted\">List prices as of {} (explorer/prices.toml).</p>",
        esc(&table_.as_of)
    );
    layout("Prices: Cairn against cloud list prices", &out)
}
