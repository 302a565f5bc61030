//! The market pages: storage deals and compute leases, listed and one by one, from the
//! node's current records (read at request time).

use super::providers::{gpus, verdict};
use super::{
    COMPUTE, EMISSION, OTHER, STORAGE, amount, card, charts, code, fields, layout, link, num,
    table, text, unreadable,
};
use crate::figures::{self, crn_f64};
use crate::index::Index;
use crate::svg::{HBar, Series, bar_chart, hbar_chart};
use crate::units;
use cairn_ledger::state::{Deal, DealStatus, Lease, LeaseState, StorageChallenge};
use cairn_types::{Amount, CloseInitiator, Hardware};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

fn deal_status(status: &DealStatus) -> String {
    match status {
        DealStatus::Pending { expires_height } => format!(
            "pending its availability certificate (until {})",
            units::height(*expires_height)
        ),
        DealStatus::Active => "active".to_string(),
        DealStatus::Expired => "expired".to_string(),
        DealStatus::Cancelled => "cancelled".to_string(),
        DealStatus::Invalid { height, .. } => {
            format!("proven invalid at {}", units::height(*height))
        }
    }
}

fn term(d: &Deal) -> String {
    if d.permanent {
        return "permanent, paid from its endowment".to_string();
    }
    match (d.start_epoch, d.end_epoch) {
        (Some(s), Some(e)) => format!("{}: epoch {s} to {e}", units::epochs(d.epochs)),
        _ => format!("{}, from its activation", units::epochs(d.epochs)),
    }
}

fn erasure_code(d: &Deal) -> String {
    format!("{}+{}", d.blob.data_shards, d.blob.parity_shards)
}

fn parse_list<T: serde::de::DeserializeOwned>(view: &Value, key: &str) -> Result<Vec<T>, String> {
    serde_json::from_value(view[key].clone()).map_err(|e| e.to_string())
}

/// How many records have each status, as bars.
#[allow(clippy::cast_precision_loss)]
fn status_bars(names: impl Iterator<Item = &'static str>, color: &str) -> Vec<HBar> {
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    for n in names {
        *counts.entry(n).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(name, n)| HBar {
            label: name.to_string(),
            value: n as f64,
            text: units::count(n),
            color: color.to_string(),
        })
        .collect()
}

/// The link to the page after this one, when the node's answer has a `next` cursor. Cursors
/// are `deal-N` / `lease-N`; anything else is not linked (the page says it is the last).
fn older_link(out: &mut String, view: &Value, route: &str, noun: &str) {
    let Some(next) = view["next"].as_str() else {
        let _ = write!(out, "<p>No older {noun}.</p>");
        return;
    };
    if next.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        let _ = write!(
            out,
            "<p><a href=\"{route}?after={next}\">Older {noun}, after {next} →</a></p>"
        );
    }
}

/// What the first card says the list holds: the newest page, or the page after a cursor.
fn listed_note(after: Option<&str>) -> String {
    match after {
        None => "the node's newest, up to 100".to_string(),
        Some(a) => format!("up to 100 older than {}", super::esc(a)),
    }
}

/// `/deals`: a page of the node's deals, newest first (the newest, or those after `after`).
pub fn deals(view: &Value, after: Option<&str>) -> String {
    let list: Vec<Deal> = match parse_list(view, "deals") {
        Ok(l) => l,
        Err(e) => return unreadable("the deals", &e),
    };
    let mut out = String::from("<div class=\"cards\">");
    let active: Vec<&Deal> = list
        .iter()
        .filter(|d| d.status == DealStatus::Active)
        .collect();
    card(
        &mut out,
        "Deals listed",
        &units::count(list.len() as u64),
        &listed_note(after),
    );
    card(
        &mut out,
        "Active deals",
        &units::count(active.len() as u64),
        &format!(
            "storing {}",
            units::bytes(active.iter().map(|d| d.blob.size_bytes).sum())
        ),
    );
    let escrow =
        cairn_types::amount::checked_sum(list.iter().map(|d| d.escrow)).unwrap_or_default();
    let paid =
        cairn_types::amount::checked_sum(list.iter().map(|d| d.paid_total)).unwrap_or_default();
    card(
        &mut out,
        "In escrow",
        &units::crn_rounded(escrow),
        &format!("{} paid to providers so far", units::crn(paid)),
    );
    out.push_str("</div>");
    let sizes: Vec<HBar> = list
        .iter()
        .take(20)
        .map(|d| HBar {
            label: d.id.to_string(),
            value: {
                #[allow(clippy::cast_precision_loss)]
                let v = d.blob.size_bytes as f64;
                v
            },
            text: units::bytes(d.blob.size_bytes),
            color: STORAGE.to_string(),
        })
        .collect();
    charts(
        &mut out,
        &[
            hbar_chart(
                "Deals by status",
                "deals",
                &status_bars(list.iter().map(|d| d.status.name()), OTHER),
            ),
            hbar_chart("Size of each deal (newest 20)", "bytes", &sizes),
        ],
    );
    out.push_str("<h2>Deals, newest first</h2>");
    table(
        &mut out,
        &[
            ("Deal", false),
            ("Status", false),
            ("Owner", false),
            ("Size", true),
            ("Code", true),
            ("Term", false),
            ("Price per GiB-epoch", true),
            ("Escrow", true),
            ("Paid so far", true),
            ("Shards awaiting repair", true),
        ],
        list.iter()
            .map(|d| {
                vec![
                    link(format!("/deals/{}", d.id.0), d.id.to_string()),
                    text(deal_status(&d.status)),
                    text(units::short_address(&d.owner.to_string())),
                    num(units::bytes(d.blob.size_bytes)),
                    num(erasure_code(d)),
                    text(term(d)),
                    num(units::crn(d.price_per_gib_epoch)),
                    num(units::crn(d.escrow)),
                    num(units::crn(d.paid_total)),
                    num(units::count(d.repair_needed.len() as u64)),
                ]
            })
            .collect(),
    );
    older_link(&mut out, view, "/deals", "deals");
    layout("Storage deals", &out)
}

/// `/deals/{id}`: one deal, its funds and its shards.
pub fn deal(id: &str, view: &Value) -> String {
    let title = format!("{id}: a storage deal");
    let d: Deal = match serde_json::from_value(view["deal"].clone()) {
        Ok(d) => d,
        Err(e) => return unreadable(&title, &e.to_string()),
    };
    let mut out = String::from("<div class=\"cards\">");
    let detail = deal_status(&d.status);
    card(
        &mut out,
        "Status",
        d.status.name(),
        if detail == d.status.name() {
            ""
        } else {
            &detail
        },
    );
    card(
        &mut out,
        "Size",
        &units::bytes(d.blob.size_bytes),
        &format!(
            "{} data + {} parity shards of {} each",
            d.blob.data_shards,
            d.blob.parity_shards,
            units::bytes(d.blob.shard_size_bytes)
        ),
    );
    card(
        &mut out,
        "Cost per epoch",
        &d.epoch_cost().map_or("—".to_string(), units::crn),
        &format!("at {} per GiB-epoch", units::crn(d.price_per_gib_epoch)),
    );
    card(&mut out, "Term", &units::epochs(d.epochs), &term(&d));
    card(
        &mut out,
        "Paid so far",
        &units::crn(d.paid_total),
        &format!("{} left in escrow", units::crn(d.escrow)),
    );
    out.push_str("</div>");
    let funds = [
        ("Paid to providers", d.paid_total, OTHER),
        ("Escrow left", d.escrow, STORAGE),
        ("Endowment", d.endowment, EMISSION),
    ];
    charts(
        &mut out,
        &[hbar_chart(
            "Deal funds",
            "CRN",
            &funds
                .iter()
                .map(|(label, a, color)| HBar {
                    label: (*label).to_string(),
                    value: crn_f64(*a),
                    text: units::crn(*a),
                    color: (*color).to_string(),
                })
                .collect::<Vec<_>>(),
        )],
    );
    out.push_str("<h2>Deal</h2>");
    fields(
        &mut out,
        vec![
            ("Deal", text(d.id.to_string())),
            ("Owner", code(d.owner.to_string())),
            ("Status", text(deal_status(&d.status))),
            ("Blob", code(d.blob.id.to_string())),
            (
                "Size",
                text(format!(
                    "{} ({} bytes)",
                    units::bytes(d.blob.size_bytes),
                    units::count(d.blob.size_bytes)
                )),
            ),
            (
                "Erasure code",
                text(format!(
                    "{} data + {} parity shards: any {} of them rebuild the blob",
                    d.blob.data_shards, d.blob.parity_shards, d.blob.data_shards
                )),
            ),
            ("Shard size", text(units::bytes(d.blob.shard_size_bytes))),
            (
                "Proof leaf size",
                text(units::bytes(u64::from(d.blob.leaf_size_bytes))),
            ),
            ("Term", text(term(&d))),
            (
                "Price",
                text(format!(
                    "{} per GiB-epoch",
                    units::crn(d.price_per_gib_epoch)
                )),
            ),
            (
                "Cost per epoch",
                text(d.epoch_cost().map_or("—".to_string(), units::crn)),
            ),
            ("Escrow left", text(units::crn(d.escrow))),
            ("Endowment", text(units::crn(d.endowment))),
            ("Paid so far", text(units::crn(d.paid_total))),
            ("Created at", text(units::height(d.created_height))),
            (
                "Encryption",
                text(if d.sealed_key.0.is_empty() {
                    "public: stored in the clear"
                } else {
                    "encrypted; the data key is sealed to the owner"
                }),
            ),
            (
                "Shards awaiting repair",
                text(if d.repair_needed.is_empty() {
                    "none".to_string()
                } else {
                    let list: Vec<String> = d.repair_needed.iter().map(u16::to_string).collect();
                    list.join(", ")
                }),
            ),
        ],
    );
    let challenges: BTreeMap<u64, StorageChallenge> = view["challenges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c["shard_index"].as_u64()?,
                serde_json::from_value(c["challenge"].clone()).ok()?,
            ))
        })
        .collect();
    out.push_str("<h2>Shards and their holders</h2>");
    let rows = d
        .providers
        .iter()
        .enumerate()
        .map(|(i, holder)| {
            let index = u16::try_from(i).unwrap_or(u16::MAX);
            let challenge = challenges.get(&(i as u64));
            vec![
                num(i.to_string()),
                text(if index < d.blob.data_shards {
                    "data"
                } else {
                    "parity"
                }),
                link(
                    format!("/providers/{holder}"),
                    units::short_address(&holder.to_string()),
                ),
                code(
                    d.blob
                        .shard_roots
                        .0
                        .get(i)
                        .map_or("—".to_string(), |r| units::short_hash(&r.to_string())),
                ),
                text(challenge.map_or("none open".to_string(), |c| {
                    format!("epoch {}: {}", c.epoch, verdict(&c.verdict))
                })),
                text(units::yes_no(d.repair_needed.contains(&index))),
            ]
        })
        .collect();
    table(
        &mut out,
        &[
            ("Shard", true),
            ("Kind", false),
            ("Holder", false),
            ("Merkle root", false),
            ("Current challenge", false),
            ("Awaiting repair", false),
        ],
        rows,
    );
    layout(&title, &out)
}

fn initiator(i: &CloseInitiator) -> &'static str {
    match i {
        CloseInitiator::Tenant => "the tenant",
        CloseInitiator::Provider => "the provider",
        CloseInitiator::Protocol => "the protocol",
    }
}

fn lease_state(state: &LeaseState) -> String {
    match state {
        LeaseState::Starting { deadline } => format!(
            "starting: its provider must report it running by {}",
            units::height(*deadline)
        ),
        LeaseState::Active => "active: running and billed every block".to_string(),
        LeaseState::Paused { since } => {
            format!("paused since {}: its escrow ran dry", units::height(*since))
        }
        LeaseState::Closed {
            at,
            initiator: by,
            reason,
        } => format!(
            "closed at {} by {}: {reason}",
            units::height(*at),
            initiator(by)
        ),
    }
}

fn hardware(h: &Hardware) -> String {
    let mut parts = vec![units::cores(h.cpu_millicores)];
    if h.memory_bytes > 0 {
        parts.push(format!("{} memory", units::bytes(h.memory_bytes)));
    }
    if h.storage_bytes > 0 {
        parts.push(format!("{} disk", units::bytes(h.storage_bytes)));
    }
    if !h.gpus.is_empty() {
        parts.push(gpus(&h.gpus.0));
    }
    parts.join(", ")
}

/// A lease view of the node: the lease with its settlement projected to the next block.
struct LeaseView {
    lease: Lease,
    projected_state: String,
    as_of_height: u64,
    owed: Amount,
    escrow_left: Amount,
}

fn lease_view(v: &Value) -> Result<LeaseView, String> {
    Ok(LeaseView {
        lease: serde_json::from_value(v["lease"].clone()).map_err(|e| e.to_string())?,
        projected_state: v["projected_state"].as_str().unwrap_or("—").to_string(),
        as_of_height: v["as_of_height"].as_u64().unwrap_or(0),
        owed: amount(&v["owed"]).unwrap_or_default(),
        escrow_left: amount(&v["escrow_left"]).unwrap_or_default(),
    })
}

/// `/leases`: a page of the node's leases, newest first (the newest, or those after `after`).
pub fn leases(view: &Value, after: Option<&str>) -> String {
    let list: Vec<LeaseView> = match view["leases"]
        .as_array()
        .into_iter()
        .flatten()
        .map(lease_view)
        .collect::<Result<_, _>>()
    {
        Ok(l) => l,
        Err(e) => return unreadable("the leases", &e),
    };
    let mut out = String::from("<div class=\"cards\">");
    let running = list
        .iter()
        .filter(|l| l.projected_state == "active")
        .count();
    card(
        &mut out,
        "Leases listed",
        &units::count(list.len() as u64),
        &listed_note(after),
    );
    card(
        &mut out,
        "Running",
        &units::count(running as u64),
        "active as of the next block",
    );
    let paid = cairn_types::amount::checked_sum(list.iter().map(|l| l.lease.paid_total))
        .unwrap_or_default();
    let left =
        cairn_types::amount::checked_sum(list.iter().map(|l| l.escrow_left)).unwrap_or_default();
    card(
        &mut out,
        "Paid to providers",
        &units::crn_rounded(paid),
        &format!("{} left in escrow", units::crn(left)),
    );
    out.push_str("</div>");
    let shown: Vec<&LeaseView> = list.iter().take(30).collect();
    charts(
        &mut out,
        &[
            hbar_chart(
                "Leases by state (as of the next block)",
                "leases",
                &status_bars(
                    list.iter().map(|l| match l.projected_state.as_str() {
                        "starting" => "starting",
                        "active" => "active",
                        "paused" => "paused",
                        "closing" => "closing",
                        "closed" => "closed",
                        _ => "other",
                    }),
                    COMPUTE,
                ),
            ),
            bar_chart(
                "Paid and escrow left by lease (newest 30)",
                "CRN",
                "lease",
                &shown
                    .iter()
                    .rev()
                    .map(|l| l.lease.id.0.to_string())
                    .collect::<Vec<_>>(),
                &[
                    Series {
                        name: "paid",
                        color: OTHER,
                        values: shown
                            .iter()
                            .rev()
                            .map(|l| crn_f64(l.lease.paid_total))
                            .collect(),
                    },
                    Series {
                        name: "escrow left",
                        color: COMPUTE,
                        values: shown.iter().rev().map(|l| crn_f64(l.escrow_left)).collect(),
                    },
                ],
            ),
        ],
    );
    out.push_str("<h2>Leases, newest first</h2>");
    table(
        &mut out,
        &[
            ("Lease", false),
            ("State", false),
            ("Tenant", false),
            ("Provider", false),
            ("Hardware", false),
            ("Price per block", true),
            ("Paid so far", true),
            ("Escrow left", true),
            ("Created at", true),
        ],
        list.iter()
            .map(|l| {
                let lease = &l.lease;
                vec![
                    link(format!("/leases/{}", lease.id.0), lease.id.to_string()),
                    text(l.projected_state.clone()),
                    text(units::short_address(&lease.tenant.to_string())),
                    link(
                        format!("/providers/{}", lease.provider),
                        units::short_address(&lease.provider.to_string()),
                    ),
                    text(hardware(&lease.hardware)),
                    num(units::crn(lease.price_per_block)),
                    num(units::crn(lease.paid_total)),
                    num(units::crn(l.escrow_left)),
                    num(units::height(lease.created_height)),
                ]
            })
            .collect(),
    );
    older_link(&mut out, view, "/leases", "leases");
    layout("Compute leases", &out)
}

/// `/leases/{id}`: one lease, its funds and its terms.
pub fn lease(index: &Index, id: &str, view: &Value) -> String {
    let title = format!("{id}: a compute lease");
    let v = match lease_view(view) {
        Ok(v) => v,
        Err(e) => return unreadable(&title, &e),
    };
    let l = &v.lease;
    let block_ms = index
        .network
        .as_ref()
        .map(|n| figures::block_time_ms(index, n));
    #[allow(clippy::cast_precision_loss)]
    let per_hour = block_ms.map(|ms| crn_f64(l.price_per_block) * 3_600_000.0 / ms);
    let blocks_left = l
        .escrow
        .ucrn()
        .checked_div(l.price_per_block.ucrn())
        .map(|b| u64::try_from(b).unwrap_or(u64::MAX));
    let mut out = String::from("<div class=\"cards\">");
    card(
        &mut out,
        "State",
        &v.projected_state,
        &format!("as of {}", units::height(v.as_of_height)),
    );
    card(
        &mut out,
        "Price",
        &format!("{} per block", units::crn(l.price_per_block)),
        &per_hour.map_or(String::new(), |h| {
            format!(
                "≈ {} CRN per hour at the measured block time",
                units::decimal(h)
            )
        }),
    );
    card(
        &mut out,
        "Paid so far",
        &units::crn(l.paid_total),
        &format!("{} owed since the last settlement", units::crn(v.owed)),
    );
    card(
        &mut out,
        "Escrow left",
        &units::crn(v.escrow_left),
        &blocks_left.map_or(String::new(), |b| {
            format!("{} at this price", units::blocks(b))
        }),
    );
    out.push_str("</div>");
    let funds = [
        ("Paid to the provider", l.paid_total, OTHER),
        ("Owed now", v.owed, EMISSION),
        ("Escrow left", v.escrow_left, COMPUTE),
    ];
    charts(
        &mut out,
        &[hbar_chart(
            "Lease funds",
            "CRN",
            &funds
                .iter()
                .map(|(label, a, color)| HBar {
                    label: (*label).to_string(),
                    value: crn_f64(*a),
                    text: units::crn(*a),
                    color: (*color).to_string(),
                })
                .collect::<Vec<_>>(),
        )],
    );
    out.push_str("<h2>Lease</h2>");
    fields(
        &mut out,
        vec![
            ("Lease", text(l.id.to_string())),
            ("Order", text(l.order.to_string())),
            ("State as stored", text(lease_state(&l.state))),
            (
                "State as of the next block",
                text(format!(
                    "{} ({})",
                    v.projected_state,
                    units::height(v.as_of_height)
                )),
            ),
            ("Tenant", code(l.tenant.to_string())),
            (
                "Provider",
                link(format!("/providers/{}", l.provider), l.provider.to_string()),
            ),
            ("Workload manifest", code(l.manifest_hash.to_string())),
            ("Hardware", text(hardware(&l.hardware))),
            ("Price per block", text(units::crn(l.price_per_block))),
            (
                "Price per hour",
                text(per_hour.map_or("—".to_string(), |h| {
                    format!("≈ {} CRN", units::decimal(h))
                })),
            ),
            ("Escrow as stored", text(units::crn(l.escrow))),
            ("Paid through", text(units::height(l.settled_through))),
            ("Paid so far", text(units::crn(l.paid_total))),
            ("Created at", text(units::height(l.created_height))),
            (
                "Started at",
                text(
                    l.started_height
                        .map_or("not reported running yet".to_string(), units::height),
                ),
            ),
        ],
    );
    let _ = write!(
        out,
        "<p class=\"muted\">Leases settle lazily: the node projects what is owed to its next block. Storage held by the lease: {}.</p>",
        units::bytes(l.hardware.storage_bytes)
    );
    layout(&title, &out)
}
