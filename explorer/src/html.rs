//! The dashboard's pages: server-rendered HTML with inline SVG charts. This file holds the
//! frame every page shares (menu, cards, tables); the pages are in [`network`] (summary,
//! revenue, capacity, prices), [`providers`] and [`market`] (deals and leases).
//!
//! What a reader sees is words and figures with units (see [`crate::units`]): never a field
//! name of the API, never a JSON document.

mod market;
mod network;
mod providers;

pub use market::{deal, deals, lease, leases};
pub use network::{capacity, prices, revenue, summary};
pub use providers::{provider, providers};

use crate::svg::esc;
use cairn_types::Amount;
use serde_json::Value;
use std::fmt::Write as _;

pub(crate) const STORAGE: &str = "#2b7bb9";
pub(crate) const COMPUTE: &str = "#e0892b";
pub(crate) const EMISSION: &str = "#7a7a7a";
pub(crate) const OTHER: &str = "#3aa35b";
pub(crate) const FAULT: &str = "#c33";

/// The menu: every page of the dashboard (the browser test follows each link).
pub const MENU: &[(&str, &str)] = &[
    ("/", "Summary"),
    ("/revenue", "Revenue"),
    ("/capacity", "Capacity"),
    ("/prices", "Prices"),
    ("/providers", "Providers"),
    ("/deals", "Deals"),
    ("/leases", "Leases"),
];

const STYLE: &str = "body{font-family:sans-serif;margin:0;color:#222;background:#f6f7f9}\
header{background:#1d2733;color:#fff;padding:10px 20px}\
header a{color:#cfe3ff;margin-right:16px;text-decoration:none}header a:hover{text-decoration:underline}\
header .api{float:right;color:#9ab;font-size:13px}\
main{padding:8px 20px 24px}h1{font-size:22px}h2{font-size:17px;margin:22px 0 6px}\
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:10px}\
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:170px;max-width:300px}\
.card .label{font-size:13px;color:#444}.card b{display:block;font-size:20px;margin:2px 0}\
.charts{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}\
table{border-collapse:collapse;background:#fff;margin:8px 0}\
td,th{border:1px solid #ddd;padding:4px 8px;font-size:13px;text-align:left;vertical-align:top}\
th{background:#eef;font-weight:600}td.n,th.n{text-align:right;white-space:nowrap}\
table.fields th{width:230px}code{font-size:12px}\
svg.chart{background:#fff;border:1px solid #ddd}\
.muted{color:#666;font-size:12px}p{max-width:1000px}";

/// A whole page: the menu, the title and `body` (HTML).
pub fn layout(title: &str, body: &str) -> String {
    let mut menu = String::new();
    for (href, name) in MENU {
        let _ = write!(menu, "<a href=\"{href}\">{name}</a>");
    }
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{t} · Cairn explorer</title><style>{STYLE}</style></head>
<body><header><nav><strong>Cairn explorer</strong> &nbsp; {menu}<a class="api" href="/api/v1/openapi.json">JSON API</a></nav></header><main><h1>{t}</h1>{body}</main></body></html>"#,
        t = esc(title)
    )
}

/// An error page (404, 400, 502) with the reason.
pub fn error_page(status: u16, reason: &str) -> String {
    let title = match status {
        404 => "Not found",
        400 => "Bad request",
        502 => "The node did not answer",
        _ => "Error",
    };
    layout(
        title,
        &format!("<p class=\"error\">{status}: {}</p>", esc(reason)),
    )
}

/// A headline figure: what it is, the figure, and a line that says what it counts.
pub(crate) fn card(out: &mut String, label: &str, value: &str, note: &str) {
    let _ = write!(
        out,
        "<div class=\"card\"><span class=\"label\">{}</span><b>{}</b><span class=\"muted\">{}</span></div>",
        esc(label),
        esc(value),
        esc(note)
    );
}

/// One table cell: text, a figure (right-aligned) or a link. Escaped when written.
pub(crate) enum Cell {
    Text(String),
    Num(String),
    /// An identifier (hash, address): monospace, and not a figure to read.
    Code(String),
    Link {
        href: String,
        text: String,
    },
}

impl Cell {
    fn write(&self, out: &mut String) {
        match self {
            Cell::Text(t) => {
                let _ = write!(out, "<td>{}</td>", esc(t));
            }
            Cell::Num(t) => {
                let _ = write!(out, "<td class=\"n\">{}</td>", esc(t));
            }
            Cell::Code(t) => {
                let _ = write!(out, "<td><code>{}</code></td>", esc(t));
            }
            Cell::Link { href, text } => {
                let _ = write!(out, "<td><a href=\"{}\">{}</a></td>", esc(href), esc(text));
            }
        }
    }
}

pub(crate) fn text(t: impl Into<String>) -> Cell {
    Cell::Text(t.into())
}

pub(crate) fn num(t: impl Into<String>) -> Cell {
    Cell::Num(t.into())
}

pub(crate) fn code(t: impl Into<String>) -> Cell {
    Cell::Code(t.into())
}

pub(crate) fn link(href: impl Into<String>, t: impl Into<String>) -> Cell {
    Cell::Link {
        href: href.into(),
        text: t.into(),
    }
}

/// A table with a header row: `(name, numeric)` per column.
pub(crate) fn table(out: &mut String, columns: &[(&str, bool)], rows: Vec<Vec<Cell>>) {
    out.push_str("<table><tr>");
    for (name, numeric) in columns {
        let class = if *numeric { " class=\"n\"" } else { "" };
        let _ = write!(out, "<th{class}>{}</th>", esc(name));
    }
    out.push_str("</tr>");
    if rows.is_empty() {
        let _ = write!(
            out,
            "<tr><td colspan=\"{}\" class=\"muted\">none</td></tr>",
            columns.len()
        );
    }
    for row in rows {
        out.push_str("<tr>");
        for cell in &row {
            cell.write(out);
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// One record as a table of fields, one per row: a label and its value.
pub(crate) fn fields(out: &mut String, rows: Vec<(&str, Cell)>) {
    out.push_str("<table class=\"fields\">");
    for (label, cell) in rows {
        let _ = write!(out, "<tr><th>{}</th>", esc(label));
        cell.write(out);
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

pub(crate) fn charts(out: &mut String, charts: &[String]) {
    out.push_str("<div class=\"charts\">");
    for c in charts {
        out.push_str(c);
    }
    out.push_str("</div>");
}

/// A uCRN decimal string (as the API carries amounts).
pub(crate) fn amount(v: &Value) -> Option<Amount> {
    v.as_str()
        .and_then(|s| s.parse::<u128>().ok())
        .map(Amount::from_ucrn)
}

/// An API amount, exactly, or "—".
pub(crate) fn crn_text(v: &Value) -> String {
    amount(v).map_or_else(|| "—".to_string(), crate::units::crn)
}

/// An API amount rounded for a card, or "—".
pub(crate) fn crn_card(v: &Value) -> String {
    amount(v).map_or_else(|| "—".to_string(), crate::units::crn_rounded)
}

/// An API count with separators, or "—".
pub(crate) fn count_text(v: &Value) -> String {
    v.as_u64()
        .map_or_else(|| "—".to_string(), crate::units::count)
}

/// A page of a record the node holds, when the node's answer does not read as one.
pub(crate) fn unreadable(what: &str, reason: &str) -> String {
    layout(
        what,
        &format!(
            "<p class=\"error\">The node's record of {} did not read as the explorer expects: {}</p>",
            esc(what),
            esc(reason)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_links_every_page() {
        let page = layout("t", "");
        for (href, name) in MENU {
            assert!(page.contains(&format!("<a href=\"{href}\">{name}</a>")));
        }
    }

    #[test]
    fn cells_are_escaped() {
        let mut out = String::new();
        table(
            &mut out,
            &[("a", false), ("b", true)],
            vec![vec![text("<x>"), link("/p?a=1&b=2", "y")]],
        );
        assert!(out.contains("&lt;x&gt;") && out.contains("/p?a=1&amp;b=2"));
    }
}
