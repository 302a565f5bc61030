//! Money: integer base units with checked arithmetic.

use bytes::BufMut;
use commonware_codec::Buf;
use commonware_codec::{Error as CodecError, FixedSize, Read, Write};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Base units per CRN: 1 CRN = 10^6 uCRN.
pub const UCRN_PER_CRN: u128 = 1_000_000;

/// An amount of CRN in base units (uCRN). There is no float anywhere near money: every
/// operation is checked and returns `None` on overflow or underflow.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(pub u128);

impl Amount {
    pub const ZERO: Self = Self(0);

    pub const fn from_ucrn(ucrn: u128) -> Self {
        Self(ucrn)
    }
    /// Whole CRN; `None` when it does not fit.
    pub const fn from_crn(crn: u128) -> Option<Self> {
        match crn.checked_mul(UCRN_PER_CRN) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }
    pub const fn ucrn(self) -> u128 {
        self.0
    }
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }
    pub fn checked_mul(self, factor: u128) -> Option<Self> {
        self.0.checked_mul(factor).map(Self)
    }
    /// `self * numerator / denominator`, rounded down; `None` on overflow or a zero
    /// denominator. The multiplication happens first so small shares are not lost.
    pub fn mul_div(self, numerator: u128, denominator: u128) -> Option<Self> {
        if denominator == 0 {
            return None;
        }
        self.0
            .checked_mul(numerator)
            .map(|v| Self(v / denominator))
            .or_else(|| {
                // The product does not fit: with self = q*d + r, self*n/d = q*n + r*n/d exactly
                // (rounded down), and r*n/d < n always fits, so this is `None` only when the
                // quotient itself does not fit.
                let q = self.0 / denominator;
                let r = self.0 % denominator;
                let whole = q.checked_mul(numerator)?;
                let part = r.checked_mul(numerator).map_or_else(
                    || mul_div_below(r, numerator, denominator),
                    |v| v / denominator,
                );
                whole.checked_add(part).map(Self)
            })
    }
    /// Share in basis points (1/10 000), rounded down.
    pub fn bps(self, bps: u16) -> Self {
        // bps <= 65 535 and the fallback path in mul_div cannot overflow for it.
        self.mul_div(u128::from(bps), 10_000).unwrap_or(Self::ZERO)
    }
    pub fn min(self, other: Self) -> Self {
        if self <= other { self } else { other }
    }
    pub fn saturating_sub(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }
}

impl fmt::Display for Amount {
    /// "12.5 CRN", "0.000001 CRN", "1,234,567 CRN": exact, trailing zeros trimmed, the whole
    /// part in groups of three (which parse back).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = group_thousands(&(self.0 / UCRN_PER_CRN).to_string());
        let frac = self.0 % UCRN_PER_CRN;
        if frac == 0 {
            write!(f, "{whole} CRN")
        } else {
            let digits = format!("{frac:06}");
            write!(f, "{whole}.{} CRN", digits.trim_end_matches('0'))
        }
    }
}

/// "1234567" as "1,234,567".
pub fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "1,234,567" as "1234567"; `None` unless every group after the first has three digits
/// (so "1,23" is a typo, not 123).
fn ungroup_thousands(text: &str) -> Option<String> {
    if !text.contains(',') {
        return Some(text.to_string());
    }
    let mut groups = text.split(',');
    let first = groups.next()?;
    if first.is_empty() || first.len() > 3 {
        return None;
    }
    let mut out = first.to_string();
    for g in groups {
        if g.len() != 3 {
            return None;
        }
        out.push_str(g);
    }
    Some(out)
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}uCRN", self.0)
    }
}

/// `floor(r * n / d)` for `r < d` without a 256-bit type: binary long multiplication of `r`
/// by the bits of `n`, keeping the running product as `quot * d + rem` with `rem < d`. The
/// quotient never exceeds `n`, so nothing overflows.
fn mul_div_below(r: u128, n: u128, d: u128) -> u128 {
    // (rem + x) with rem, x < d, as (sum mod d, carry into the quotient).
    let add = |rem: u128, x: u128| {
        if rem >= d - x {
            (rem - (d - x), 1)
        } else {
            (rem + x, 0)
        }
    };
    let mut quot = 0u128;
    let mut rem = 0u128;
    for bit in (0..128).rev() {
        let (doubled, carry) = add(rem, rem);
        quot = 2 * quot + carry;
        rem = doubled;
        if (n >> bit) & 1 == 1 {
            let (sum, carry) = add(rem, r);
            quot += carry;
            rem = sum;
        }
    }
    quot
}

/// Why an amount string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountParseError {
    #[error("empty amount")]
    Empty,
    #[error("unknown unit {unit:?}: use CRN or uCRN")]
    UnknownUnit { unit: String },
    #[error("invalid number {text:?}")]
    InvalidNumber { text: String },
    #[error("{text:?} has more than 6 decimal places: the smallest unit is 0.000001 CRN")]
    TooPrecise { text: String },
    #[error("{text:?} is too large")]
    Overflow { text: String },
    /// A bare number: JSON reads digits as uCRN while people tend to mean CRN, a factor of a
    /// million apart, so the unit is never guessed.
    #[error("{text} has no unit: write {hint}")]
    NoUnit { text: String, hint: String },
}

impl FromStr for Amount {
    type Err = AmountParseError;
    /// Accepts "12.5 CRN", "12.5CRN", "1,000 CRN" and "12500000 uCRN" (`crn`, `ucrn` too);
    /// refuses a bare number, naming both readings.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(AmountParseError::Empty);
        }
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
            .unwrap_or(s.len());
        let (grouped, unit) = s.split_at(split);
        let unit = unit.trim();
        let invalid = || AmountParseError::InvalidNumber {
            text: grouped.to_string(),
        };
        let overflow = || AmountParseError::Overflow {
            text: s.to_string(),
        };
        // A run of digits too long for a u128 is an overflow, not a malformed number.
        let digits_error = |e: std::num::ParseIntError| match e.kind() {
            std::num::IntErrorKind::PosOverflow => overflow(),
            _ => invalid(),
        };
        if grouped.is_empty() {
            return Err(invalid());
        }
        // Separators only in the whole part, in groups of three.
        let (whole_grouped, frac) = match grouped.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (grouped, None),
        };
        if frac.is_some_and(|f| f.contains(['.', ','])) {
            return Err(invalid());
        }
        let whole_text = ungroup_thousands(whole_grouped).ok_or_else(invalid)?;
        let crn = |whole_text: &str, frac: &str| -> Result<Self, AmountParseError> {
            if whole_text.is_empty() {
                return Err(invalid());
            }
            if frac.len() > 6 {
                return Err(AmountParseError::TooPrecise {
                    text: s.to_string(),
                });
            }
            let whole: u128 = whole_text.parse().map_err(digits_error)?;
            let frac_units: u128 = if frac.is_empty() {
                0
            } else {
                let padded = format!("{frac:0<6}");
                padded.parse().map_err(|_| invalid())?
            };
            whole
                .checked_mul(UCRN_PER_CRN)
                .and_then(|v| v.checked_add(frac_units))
                .map(Self)
                .ok_or_else(overflow)
        };
        match unit {
            "uCRN" | "ucrn" => {
                if frac.is_some() {
                    return Err(invalid());
                }
                let v: u128 = whole_text.parse().map_err(digits_error)?;
                Ok(Self(v))
            }
            "CRN" | "crn" => crn(&whole_text, frac.unwrap_or("")),
            "" => {
                // Valid as a number first, so the hint never suggests something unparseable.
                let hint = match frac {
                    None => {
                        let v: u128 = whole_text.parse().map_err(digits_error)?;
                        format!("{grouped} uCRN or {}", Self(v))
                    }
                    Some(f) => {
                        crn(&whole_text, f)?;
                        format!("{grouped} CRN")
                    }
                };
                Err(AmountParseError::NoUnit {
                    text: s.to_string(),
                    hint,
                })
            }
            other => Err(AmountParseError::UnknownUnit {
                unit: other.to_string(),
            }),
        }
    }
}

/// JSON carries amounts as decimal strings of base units ("12500000") so no JSON parser ever
/// rounds them through a double; the human form is accepted on input too.
impl Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.0.to_string())
        } else {
            s.serialize_u128(self.0)
        }
    }
}
impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return u128::deserialize(d).map(Self);
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Int(u64),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Int(v) => Ok(Self(u128::from(v))),
            Repr::Text(t) => {
                if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                    t.parse::<u128>()
                        .map(Self)
                        .map_err(serde::de::Error::custom)
                } else if t.contains('.')
                    && t.trim().bytes().all(|b| b.is_ascii_digit() || b == b'.')
                {
                    // "12" means uCRN in JSON; a bare "12.5" would read as CRN, a million
                    // times more. Refuse the ambiguity instead of guessing.
                    Err(serde::de::Error::custom(format!(
                        "ambiguous amount {t:?}: give uCRN as a digit string, or add a unit (\"12.5 CRN\")"
                    )))
                } else {
                    t.parse().map_err(serde::de::Error::custom)
                }
            }
        }
    }
}

impl Write for Amount {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.write(buf);
    }
}
impl FixedSize for Amount {
    const SIZE: usize = 16;
}
impl Read for Amount {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self(u128::read_cfg(buf, &())?))
    }
}

/// Sums amounts with overflow checking.
pub fn checked_sum<I: IntoIterator<Item = Amount>>(items: I) -> Option<Amount> {
    items
        .into_iter()
        .try_fold(Amount::ZERO, |acc, a| acc.checked_add(a))
}
