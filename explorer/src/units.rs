//! How figures read on the pages: thousands separators, a unit on every number, precision
//! that fits the size. An analyst reads "12,345.6 CRN", "1.5 GiB" and "0.0012%", never
//! "12345600000" or "0.000012".
//!
//! Display only: money stays integer uCRN everywhere else, and an amount in a table is
//! printed exactly ([`crn`]); only headline cards round ([`crn_rounded`]).

use cairn_types::{Amount, UCRN_PER_CRN};

/// "1234567" as "1,234,567" (digits only; a sign or a fraction is the caller's): the
/// grouping `Amount` prints CRN with.
pub use cairn_types::amount::group_thousands as group_digits;

/// A count: "1,234".
pub fn count(n: u64) -> String {
    group_digits(&n.to_string())
}

/// A change in a count: "+3", "-2", "±0".
pub fn signed_count(n: i128) -> String {
    match n {
        0 => "±0".to_string(),
        n if n > 0 => format!("+{}", group_digits(&n.to_string())),
        n => format!("-{}", group_digits(&n.unsigned_abs().to_string())),
    }
}

/// An amount, exactly: "1,234.5 CRN", "0.000001 CRN".
pub fn crn(amount: Amount) -> String {
    amount.to_string()
}

/// An amount for a headline: whole CRN from 1,000 up, cents from 1 up, exact below
/// (rounded half up, in integer uCRN).
pub fn crn_rounded(amount: Amount) -> String {
    let ucrn = amount.ucrn();
    let keep: u128 = if ucrn >= 1_000 * UCRN_PER_CRN {
        UCRN_PER_CRN
    } else if ucrn >= UCRN_PER_CRN {
        UCRN_PER_CRN / 100
    } else {
        1
    };
    let rounded = ucrn.saturating_add(keep / 2) / keep * keep;
    Amount::from_ucrn(rounded).to_string()
}

/// A non-negative real for display: separators from 1,000 up, two decimals from 1 up,
/// three significant digits below (so 0.000123 is not "0.00").
pub fn decimal(v: f64) -> String {
    if !v.is_finite() {
        return "—".to_string();
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let a = v.abs();
    let text = if a == 0.0 {
        "0".to_string()
    } else if a >= 999.995 {
        let whole = format!("{a:.0}");
        group_digits(&whole)
    } else if a >= 1.0 {
        trim(&format!("{a:.2}"))
    } else {
        // Three significant digits: 0.0123, 0.000123.
        #[allow(clippy::cast_possible_truncation)]
        let magnitude = a.log10().floor() as i32;
        let decimals = usize::try_from(2 - magnitude).unwrap_or(0).min(12);
        trim(&format!("{a:.decimals$}"))
    };
    format!("{sign}{text}")
}

fn trim(text: &str) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text.to_string()
    }
}

/// A share (0.25 = a quarter) as a percentage: "25%", "2.5%", "0.0012%".
pub fn percent(share: f64) -> String {
    if !share.is_finite() {
        return "—".to_string();
    }
    let p = share * 100.0;
    let text = if p.abs() >= 10.0 {
        trim(&format!("{p:.1}"))
    } else {
        decimal(p)
    };
    format!("{text}%")
}

/// A change in percent with its sign: "+12.5%", "-3%".
pub fn signed_percent(pct: f64) -> String {
    if !pct.is_finite() {
        return "—".to_string();
    }
    let sign = if pct > 0.0 { "+" } else { "" };
    format!("{sign}{}", percent(pct / 100.0))
}

/// US dollars: "$1,234", "$4.10", "$0.10", "$0.0172" (cents at least, three significant
/// digits below a dollar).
pub fn usd(v: f64) -> String {
    if !v.is_finite() {
        return "—".to_string();
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let a = v.abs();
    let text = if a >= 999.995 {
        decimal(a)
    } else if a >= 1.0 || a == 0.0 {
        format!("{a:.2}")
    } else {
        #[allow(clippy::cast_possible_truncation)]
        let magnitude = a.log10().floor() as i32;
        let decimals = usize::try_from(2 - magnitude).unwrap_or(2).clamp(2, 12);
        let text = format!("{a:.decimals$}");
        // Trailing zeros go, down to the cents.
        let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
        let frac = frac.trim_end_matches('0');
        format!("{whole}.{frac:0<2}")
    };
    format!("{sign}${text}")
}

/// Bytes in binary units: "512 B", "1.5 KiB", "12.3 GiB", "2 TiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    let text = if v >= 100.0 {
        format!("{v:.0}")
    } else {
        trim(&format!("{v:.1}"))
    };
    format!("{text} {}", UNITS[unit])
}

/// A compute rate: "850 int8 ops/s", "200 M int8 ops/s", "1.2 P int8 ops/s".
pub fn ops(n: u64) -> String {
    const PREFIXES: [(f64, &str); 5] = [
        (1e18, "E"),
        (1e15, "P"),
        (1e12, "T"),
        (1e9, "G"),
        (1e6, "M"),
    ];
    #[allow(clippy::cast_precision_loss)]
    let v = n as f64;
    for (scale, prefix) in PREFIXES {
        if v >= scale {
            return format!("{} {prefix} int8 ops/s", decimal(v / scale));
        }
    }
    format!("{} int8 ops/s", count(n))
}

/// CPU in cores: "4 cores", "0.1 cores", "1 core".
pub fn cores(millicores: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let v = millicores as f64 / 1000.0;
    if millicores == 1000 {
        "1 core".to_string()
    } else {
        format!("{} cores", decimal(v))
    }
}

/// A number of blocks: "1 block", "400 blocks".
pub fn blocks(n: u64) -> String {
    if n == 1 {
        "1 block".to_string()
    } else {
        format!("{} blocks", count(n))
    }
}

/// A number of epochs: "1 epoch", "50 epochs".
pub fn epochs(n: u64) -> String {
    if n == 1 {
        "1 epoch".to_string()
    } else {
        format!("{} epochs", count(n))
    }
}

/// A height: "height 1,234".
pub fn height(h: u64) -> String {
    format!("height {}", count(h))
}

/// "yes" / "no".
pub fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// An address short enough for a chart label or a table cell: "cairn1qy3k…7x9f".
pub fn short_address(address: &str) -> String {
    let chars: Vec<char> = address.chars().collect();
    if chars.len() <= 16 {
        return address.to_string();
    }
    let head: String = chars[..10].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// A hash short enough to read: "3f9a1c…e02b".
pub fn short_hash(hash: &str) -> String {
    let chars: Vec<char> = hash.chars().collect();
    if chars.len() <= 14 {
        return hash.to_string();
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// A machine name ("tx_fees", "start_timed_out") as words ("tx fees").
pub fn words(name: &str) -> String {
    name.replace('_', " ")
}

/// UTC time of a Unix timestamp in milliseconds: "2024-06-01 12:34:56 UTC".
pub fn utc(timestamp_ms: u64) -> String {
    let (y, m, d) = crate::figures::civil_date(timestamp_ms);
    let secs = timestamp_ms / 1000 % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_with_separators_and_units() {
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(999), "999");
        assert_eq!(signed_count(-1_234), "-1,234");
        assert_eq!(signed_count(3), "+3");
        assert_eq!(signed_count(0), "±0");
        let a = |ucrn: u128| Amount::from_ucrn(ucrn);
        assert_eq!(crn(a(1_234_500_000)), "1,234.5 CRN");
        assert_eq!(crn_rounded(a(1_234_567_891)), "1,235 CRN");
        assert_eq!(crn_rounded(a(12_345_678)), "12.35 CRN");
        assert_eq!(crn_rounded(a(80_000)), "0.08 CRN");
        assert_eq!(crn_rounded(a(1)), "0.000001 CRN");
        assert_eq!(decimal(1_234_567.8), "1,234,568");
        assert_eq!(decimal(4.1), "4.1");
        assert_eq!(decimal(0.017_2), "0.0172");
        assert_eq!(decimal(0.000_123_4), "0.000123");
        assert_eq!(decimal(0.0), "0");
        assert_eq!(percent(0.25), "25%");
        assert_eq!(percent(0.025), "2.5%");
        assert_eq!(percent(0.000_012), "0.0012%");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(signed_percent(12.5), "+12.5%");
        assert_eq!(signed_percent(-3.0), "-3%");
        assert_eq!(usd(12_345.6), "$12,346");
        assert_eq!(usd(0.0247), "$0.0247");
        assert_eq!(usd(0.1), "$0.10");
        assert_eq!(usd(4.1), "$4.10");
        assert_eq!(usd(0.000_05), "$0.00005");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(4 << 30), "4 GiB");
        assert_eq!(bytes(3 << 40), "3 TiB");
        assert_eq!(ops(200_000_000), "200 M int8 ops/s");
        assert_eq!(ops(850), "850 int8 ops/s");
        assert_eq!(ops(1_200_000_000_000_000), "1.2 P int8 ops/s");
        assert_eq!(cores(4_000), "4 cores");
        assert_eq!(cores(100), "0.1 cores");
        assert_eq!(blocks(400), "400 blocks");
        assert_eq!(epochs(1), "1 epoch");
        assert_eq!(words("tx_fees"), "tx fees");
        assert_eq!(utc(86_400_000 + 3_723_000), "1970-01-02 01:02:03 UTC");
        assert_eq!(
            short_address("cairn1qy3kxyzxyzxyzxyzxyzxyzxyz7x9f"),
            "cairn1qy3k…7x9f"
        );
    }
}
