//! Human output: tables padded to their widest cell, amounts in CRN, times as UTC dates.
//! The full record is always one `--json` away; these are for reading at a glance.

use cairn_types::Amount;
use serde_json::Value;

/// Columns of text under a header, each padded to its widest cell.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Self {
        Self {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len(), "a row per column");
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as lines, with `indent` spaces before each.
    pub fn lines(&self, indent: usize) -> Vec<String> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let pad = " ".repeat(indent);
        let line = |cells: Vec<&str>| {
            let mut out = pad.clone();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                if i + 1 == cells.len() {
                    out.push_str(cell);
                } else {
                    out.push_str(&format!("{cell:<w$}  "));
                }
            }
            out.trim_end().to_string()
        };
        let mut out = vec![line(self.header.clone())];
        out.extend(
            self.rows
                .iter()
                .map(|r| line(r.iter().map(String::as_str).collect())),
        );
        out
    }

    pub fn print(&self, indent: usize) {
        for l in self.lines(indent) {
            outln!("{l}");
        }
    }
}

/// A uCRN digit string from the node's JSON, in CRN with separators ("1,234.5 CRN").
pub fn crn(v: &Value) -> String {
    v.as_str()
        .and_then(|t| t.parse::<u128>().ok())
        .map_or_else(|| "-".to_string(), |u| Amount::from_ucrn(u).to_string())
}

/// A count with thousands separators ("8,388,608").
pub fn thousands(n: u64) -> String {
    cairn_types::amount::group_thousands(&n.to_string())
}

/// Bytes for people: "8.0 MiB (8,388,608 bytes)".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit} ({} bytes)", thousands(n))
}

/// Milliseconds since the Unix epoch as a UTC date and time ("2026-12-08 03:04:05 UTC").
pub fn utc(ms: u64) -> String {
    let (y, m, d) = cairn_explorer::figures::civil_date(ms);
    let secs = (ms / 1_000) % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3_600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Whether a JSON field holds a Unix time in milliseconds, by its name: the node names them
/// `…time_ms`, `…timestamp_ms` or `…_at_ms` (durations are `…_ms` without those words).
pub fn is_unix_ms_field(key: &str) -> bool {
    key.ends_with("timestamp_ms")
        || key.ends_with("time_ms") && key != "block_time_ms"
        || key.ends_with("_at_ms")
}

/// A verdict or state tag (`{"verdict": "passed"}`, `{"state": "closed", ...}`) as its word.
pub fn tag(v: &Value, field: &str) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) => m
            .get(field)
            .and_then(Value::as_str)
            .map_or_else(|| "-".to_string(), str::to_string),
        _ => "-".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_to_the_widest_cell() {
        let mut t = Table::new(&["SHARD", "PROVIDER"]);
        t.row(vec!["0".into(), "cairn1abc".into()]);
        t.row(vec!["10".into(), "x".into()]);
        assert_eq!(
            t.lines(2),
            ["  SHARD  PROVIDER", "  0      cairn1abc", "  10     x"]
        );
    }

    #[test]
    fn figures_for_people() {
        assert_eq!(thousands(8_388_608), "8,388,608");
        assert_eq!(thousands(999), "999");
        assert_eq!(bytes(8_388_608), "8.0 MiB (8,388,608 bytes)");
        assert_eq!(bytes(12), "12 bytes");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_796_699_045_000), "2026-12-08 03:04:05 UTC");
        assert!(is_unix_ms_field("genesis_time_ms") && is_unix_ms_field("timestamp_ms"));
        assert!(is_unix_ms_field("last_timestamp_ms"));
        assert!(!is_unix_ms_field("block_time_ms") && !is_unix_ms_field("elapsed_ms"));
        assert_eq!(crn(&Value::String("1234500000".into())), "1,234.5 CRN");
    }
}
