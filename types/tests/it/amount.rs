//! Money: parsing, printing, checked arithmetic, `mul_div` and `bps`.

use cairn_types::amount::{AmountParseError, checked_sum};
use cairn_types::{Amount, UCRN_PER_CRN};
use proptest::prelude::*;

fn parse(text: &str) -> Result<Amount, AmountParseError> {
    text.parse()
}

#[test]
fn parse_and_print_round_trip() {
    // (input, base units, canonical print)
    let cases: &[(&str, u128, &str)] = &[
        ("12.5 CRN", 12_500_000, "12.5 CRN"),
        ("0.000001 CRN", 1, "0.000001 CRN"),
        ("3 CRN", 3_000_000, "3 CRN"),
        ("7 uCRN", 7, "0.000007 CRN"),
        ("12.5CRN", 12_500_000, "12.5 CRN"),
        ("  1.230000 crn  ", 1_230_000, "1.23 CRN"),
        ("12500000 ucrn", 12_500_000, "12.5 CRN"),
        ("0 CRN", 0, "0 CRN"),
        ("0 uCRN", 0, "0 CRN"),
        ("0.1 crn", 100_000, "0.1 CRN"),
        ("999 CRN", 999_000_000, "999 CRN"),
        ("1000 CRN", 1_000_000_000, "1,000 CRN"),
        ("1,000 CRN", 1_000_000_000, "1,000 CRN"),
        ("5,000,000 uCRN", 5_000_000, "5 CRN"),
        (
            "1000000.000001 CRN",
            1_000_000_000_001,
            "1,000,000.000001 CRN",
        ),
        (
            "340282366920938463463374607431768211455 uCRN",
            u128::MAX,
            "340,282,366,920,938,463,463,374,607,431,768.211455 CRN",
        ),
        (
            "340282366920938463463374607431768.211455 CRN",
            u128::MAX,
            "340,282,366,920,938,463,463,374,607,431,768.211455 CRN",
        ),
    ];
    for &(text, ucrn, printed) in cases {
        let amount = parse(text).unwrap_or_else(|e| panic!("{text:?} did not parse: {e}"));
        assert_eq!(amount, Amount::from_ucrn(ucrn), "{text:?}");
        assert_eq!(amount.to_string(), printed, "{text:?}");
        assert_eq!(
            parse(printed).unwrap(),
            amount,
            "{printed:?} does not parse back"
        );
        // Debug is the base-unit form, which parses too.
        assert_eq!(format!("{amount:?}"), format!("{ucrn}uCRN"));
        assert_eq!(parse(&format!("{amount:?}")).unwrap(), amount);
    }
}

#[test]
fn parse_errors_by_type() {
    for text in ["", "   ", "\t\n"] {
        assert_eq!(parse(text), Err(AmountParseError::Empty), "{text:?}");
    }

    let unknown: &[(&str, &str)] = &[
        ("12.5 BTC", "BTC"),
        ("12 crns", "crns"),
        ("1 Crn", "Crn"),
        ("1 mCRN", "mCRN"),
        ("1 2 CRN", "2 CRN"),
        ("5e3", "e3"),
    ];
    for &(text, unit) in unknown {
        assert_eq!(
            parse(text),
            Err(AmountParseError::UnknownUnit {
                unit: unit.to_string()
            }),
            "{text:?}"
        );
    }

    for text in [
        ".5 CRN",
        "1.2.3",
        "CRN",
        "-1 CRN",
        "+1",
        "1.5 uCRN",
        "..",
        ".",
        "abc",
        "1..2 CRN",
        // Separators in groups of three, in the whole part only.
        "1,00 CRN",
        "1000,000 CRN",
        ",100 CRN",
        "1,000, CRN",
        "1.000,5 CRN",
        "1,,000 uCRN",
    ] {
        assert!(
            matches!(parse(text), Err(AmountParseError::InvalidNumber { .. })),
            "{text:?} gave {:?}",
            parse(text)
        );
    }

    for text in [
        "0.0000001 CRN",
        "1.1234567 CRN",
        "0.0000000 CRN",
        "3.1415926535 crn",
    ] {
        assert_eq!(
            parse(text),
            Err(AmountParseError::TooPrecise {
                text: text.trim().to_string()
            }),
            "{text:?}"
        );
    }

    for text in [
        // The whole part fits a u128 but not once scaled to base units.
        "340282366920938463463374607431769 CRN",
        // The fraction tips it over.
        "340282366920938463463374607431768.211456 CRN",
        // Larger than any u128, in either unit.
        "340282366920938463463374607431768211456 uCRN",
        "999999999999999999999999999999999999999999999 CRN",
        "999999999999999999999999999999999999999999999.5 CRN",
    ] {
        assert_eq!(
            parse(text),
            Err(AmountParseError::Overflow {
                text: text.to_string()
            }),
            "{text:?}"
        );
    }
}

/// A bare number is never given a unit: JSON reads digits as uCRN, people often mean CRN.
#[test]
fn a_bare_number_is_refused_with_both_readings() {
    let cases = [
        (
            "5000000",
            "5000000 has no unit: write 5000000 uCRN or 5 CRN",
        ),
        ("5", "5 has no unit: write 5 uCRN or 0.000005 CRN"),
        ("0", "0 has no unit: write 0 uCRN or 0 CRN"),
        (" 12.5 ", "12.5 has no unit: write 12.5 CRN"),
        ("1,500", "1,500 has no unit: write 1,500 uCRN or 0.0015 CRN"),
    ];
    for (text, message) in cases {
        let err = parse(text).unwrap_err();
        assert!(
            matches!(err, AmountParseError::NoUnit { .. }),
            "{text:?}: {err:?}"
        );
        assert_eq!(err.to_string(), message, "{text:?}");
    }
    // A bare number that is not one stays a number error.
    assert!(matches!(
        parse("1.1234567"),
        Err(AmountParseError::TooPrecise { .. })
    ));
    assert!(matches!(
        parse("1,00"),
        Err(AmountParseError::InvalidNumber { .. })
    ));
}

#[test]
fn parse_errors_explain_themselves() {
    let cases = [
        ("", "empty"),
        ("1 BTC", "BTC"),
        ("-1", "invalid number"),
        ("0.0000001 CRN", "6 decimal places"),
        ("340282366920938463463374607431769 CRN", "too large"),
    ];
    for (text, needle) in cases {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{text:?}: {err:?} lacks {needle:?}");
    }
}

#[test]
fn constructors_and_accessors() {
    assert_eq!(UCRN_PER_CRN, 1_000_000);
    assert_eq!(Amount::from_crn(3), Some(Amount::from_ucrn(3_000_000)));
    assert_eq!(Amount::from_crn(0), Some(Amount::ZERO));
    assert_eq!(Amount::from_crn(u128::MAX), None);
    assert_eq!(Amount::from_crn(u128::MAX / UCRN_PER_CRN + 1), None);
    assert!(Amount::from_crn(u128::MAX / UCRN_PER_CRN).is_some());
    assert_eq!(Amount::from_ucrn(42).ucrn(), 42);
    assert!(Amount::ZERO.is_zero());
    assert!(Amount::default().is_zero());
    assert!(!Amount::from_ucrn(1).is_zero());
}

#[test]
fn checked_arithmetic_returns_none_on_overflow() {
    let max = Amount::from_ucrn(u128::MAX);
    let one = Amount::from_ucrn(1);
    assert_eq!(max.checked_add(one), None);
    assert_eq!(max.checked_add(Amount::ZERO), Some(max));
    assert_eq!(
        Amount::from_ucrn(2).checked_add(one),
        Some(Amount::from_ucrn(3))
    );

    assert_eq!(Amount::ZERO.checked_sub(one), None);
    assert_eq!(one.checked_sub(one), Some(Amount::ZERO));
    assert_eq!(max.checked_sub(max), Some(Amount::ZERO));

    assert_eq!(max.checked_mul(2), None);
    assert_eq!(Amount::from_ucrn(1 << 64).checked_mul(1 << 64), None);
    assert_eq!(max.checked_mul(1), Some(max));
    assert_eq!(max.checked_mul(0), Some(Amount::ZERO));

    assert_eq!(checked_sum([max, one]), None);
    assert_eq!(checked_sum(Vec::<Amount>::new()), Some(Amount::ZERO));
    assert_eq!(
        checked_sum([one, one, Amount::from_ucrn(5)]),
        Some(Amount::from_ucrn(7))
    );

    assert_eq!(Amount::ZERO.saturating_sub(max), Amount::ZERO);
    assert_eq!(max.saturating_sub(one), Amount::from_ucrn(u128::MAX - 1));
    assert_eq!(one.min(max), one);
    assert_eq!(max.min(one), one);
}

#[test]
fn mul_div_is_exact_on_the_fast_path() {
    let a = Amount::from_ucrn;
    assert_eq!(a(10).mul_div(1, 3), Some(a(3)));
    assert_eq!(a(100).mul_div(2, 3), Some(a(66)));
    // Multiplying first keeps what dividing first would lose.
    assert_eq!(a(7).mul_div(3, 2), Some(a(10)));
    assert_eq!(a(1).mul_div(10, 20), Some(a(0)));
    assert_eq!(a(1).mul_div(20, 10), Some(a(2)));
    assert_eq!(a(0).mul_div(u128::MAX, 1), Some(a(0)));
    assert_eq!(a(5).mul_div(0, 7), Some(a(0)));
    assert_eq!(a(5).mul_div(1, 0), None);
    assert_eq!(a(0).mul_div(0, 0), None);
}

#[test]
fn mul_div_fallback_for_huge_values() {
    let a = Amount::from_ucrn;
    let max = u128::MAX;
    // max = 4q + 3 with q = 2^126 - 1: max * 3 / 4 = 3q + floor(9 / 4).
    let q = (1u128 << 126) - 1;
    assert_eq!(a(max).mul_div(3, 4), Some(a(3 * q + 2)));
    assert_eq!(a(max).mul_div(1, 1), Some(a(max)));
    assert_eq!(a(max).mul_div(max, max), Some(a(max)));
    assert_eq!(a(max).mul_div(2, 2), Some(a(max)));
    assert_eq!(
        a(max).mul_div(9_999, 10_000),
        Some(a(max / 10_000 * 9_999 + (max % 10_000) * 9_999 / 10_000))
    );
    // The product overflows and so does the quotient.
    assert_eq!(a(max).mul_div(3, 2), None);
    assert_eq!(a(max).mul_div(max, max - 1), None);
    // The product overflows, the remainder times the numerator overflows too, and yet the
    // quotient fits: the answer must still be exact, not a spurious overflow.
    assert_eq!(a(max - 1).mul_div(max, max), Some(a(max - 1)));
    assert_eq!(a(max - 1).mul_div(max - 1, max), Some(a(max - 2)));
    assert_eq!(a(1 << 127).mul_div(1 << 127, 1 << 127), Some(a(1 << 127)));
    assert_eq!(
        a(10u128.pow(21)).mul_div(10u128.pow(20), 10u128.pow(22) + 7),
        Some(a(check::reference(
            10u128.pow(21),
            10u128.pow(20),
            10u128.pow(22) + 7
        )
        .unwrap()))
    );
    for (x, n, d) in [
        (max, max - 5, max - 3),
        (max / 3, max / 2, max / 5 + 11),
        (1u128 << 100, 1u128 << 100, (1u128 << 90) + 1),
        (
            123_456_789_012_345_678_901_234_567,
            987_654_321_098_765_432_109,
            555_555_555_555_555_555_555_555,
        ),
    ] {
        let got = a(x).mul_div(n, d).map(Amount::ucrn);
        assert!(
            check::is_exact(x, n, d, got),
            "{x} * {n} / {d} gave {got:?}"
        );
        assert_eq!(got, check::reference(x, n, d), "{x} * {n} / {d}");
    }
}

#[test]
fn bps_shares() {
    let a = Amount::from_ucrn;
    assert_eq!(a(10_000).bps(250), a(250));
    assert_eq!(a(1_000_000).bps(1), a(100));
    assert_eq!(a(9_999).bps(1), a(0));
    assert_eq!(a(1).bps(9_999), a(0));
    assert_eq!(a(12_345).bps(0), a(0));
    assert_eq!(a(12_345).bps(10_000), a(12_345));
    assert_eq!(a(100).bps(u16::MAX), a(655));
    assert_eq!(a(u128::MAX).bps(10_000), a(u128::MAX));
    assert_eq!(a(u128::MAX).bps(5_000), a(u128::MAX >> 1));
    assert_eq!(
        a(u128::MAX).bps(1),
        a(check::reference(u128::MAX, 1, 10_000).unwrap())
    );
}

/// An independent 256-bit check of `x * n / d`.
mod check {
    const LOW: u128 = (1 << 64) - 1;

    /// `x * n` as (high, low) 128-bit halves.
    pub fn wide_mul(x: u128, n: u128) -> (u128, u128) {
        let (x1, x0) = (x >> 64, x & LOW);
        let (n1, n0) = (n >> 64, n & LOW);
        let p00 = x0 * n0;
        let p01 = x0 * n1;
        let p10 = x1 * n0;
        let p11 = x1 * n1;
        let (mid, c1) = p01.overflowing_add(p10);
        let (mid, c2) = mid.overflowing_add(p00 >> 64);
        let lo = (mid << 64) | (p00 & LOW);
        let hi = p11 + (mid >> 64) + ((u128::from(c1) + u128::from(c2)) << 64);
        (hi, lo)
    }

    fn wide_add(a: (u128, u128), b: u128) -> (u128, u128) {
        let (lo, carry) = a.1.overflowing_add(b);
        (a.0 + u128::from(carry), lo)
    }

    /// Whether `got` is exactly `floor(x * n / d)`, or `None` when that does not fit.
    pub fn is_exact(x: u128, n: u128, d: u128, got: Option<u128>) -> bool {
        if d == 0 {
            return got.is_none();
        }
        let product = wide_mul(x, n);
        match got {
            // q*d <= x*n < q*d + d
            Some(q) => {
                let qd = wide_mul(q, d);
                qd <= product && product < wide_add(qd, d)
            }
            // x*n >= d * 2^128
            None => product.0 >= d,
        }
    }

    /// `floor(x * n / d)` by 256-bit long division, `None` when it does not fit.
    pub fn reference(x: u128, n: u128, d: u128) -> Option<u128> {
        if d == 0 {
            return None;
        }
        let (hi, lo) = wide_mul(x, n);
        if hi >= d {
            return None;
        }
        // Shift the 256-bit dividend through a remainder that stays below d.
        let mut rem = hi;
        let mut quot = 0u128;
        for i in (0..128).rev() {
            let top = rem >> 127;
            rem = (rem << 1) | ((lo >> i) & 1);
            quot <<= 1;
            if top == 1 || rem >= d {
                rem = rem.wrapping_sub(d);
                quot |= 1;
            }
        }
        Some(quot)
    }

    #[test]
    fn the_checker_itself() {
        assert_eq!(wide_mul(u128::MAX, u128::MAX), (u128::MAX - 1, 1));
        assert_eq!(wide_mul(1 << 64, 1 << 64), (1, 0));
        assert_eq!(wide_mul(3, 5), (0, 15));
        assert_eq!(reference(7, 3, 2), Some(10));
        assert_eq!(reference(u128::MAX, u128::MAX, u128::MAX), Some(u128::MAX));
        assert_eq!(reference(u128::MAX, 2, 1), None);
        assert!(is_exact(7, 3, 2, Some(10)));
        assert!(!is_exact(7, 3, 2, Some(9)));
        assert!(!is_exact(7, 3, 2, None));
        assert!(is_exact(u128::MAX, 2, 1, None));
    }
}

/// Values across the whole range, weighted towards the extremes where overflow lives.
fn wide_u128() -> impl Strategy<Value = u128> {
    prop_oneof![
        any::<u128>(),
        0u128..=20_000,
        (0u32..128).prop_map(|s| 1u128 << s),
        (0u128..=1_000).prop_map(|k| u128::MAX - k),
        any::<u64>().prop_map(u128::from),
    ]
}

proptest! {
    #[test]
    fn display_then_parse_round_trips(v in any::<u128>()) {
        let amount = Amount::from_ucrn(v);
        let printed = amount.to_string();
        prop_assert_eq!(printed.parse::<Amount>(), Ok(amount));
        prop_assert_eq!(format!("{amount:?}").parse::<Amount>(), Ok(amount));
        prop_assert!(printed.ends_with(" CRN"));
        prop_assert!(v % UCRN_PER_CRN == 0 || !printed.ends_with("0 CRN"), "untrimmed: {}", printed);
    }

    #[test]
    fn decimal_text_parses_exactly(whole in 0u128..=u128::MAX / UCRN_PER_CRN - 1, frac in 0u128..UCRN_PER_CRN) {
        let text = format!("{whole}.{frac:06} CRN");
        prop_assert_eq!(text.parse::<Amount>(), Ok(Amount::from_ucrn(whole * UCRN_PER_CRN + frac)));
    }

    #[test]
    fn mul_div_is_exact_or_overflows(x in wide_u128(), n in wide_u128(), d in wide_u128()) {
        let got = Amount::from_ucrn(x).mul_div(n, d).map(Amount::ucrn);
        prop_assert!(check::is_exact(x, n, d, got), "{} * {} / {} gave {:?}", x, n, d, got);
    }

    #[test]
    fn bps_up_to_whole_never_fails(x in wide_u128(), bps in 0u16..=10_000) {
        let share = Amount::from_ucrn(x).bps(bps);
        prop_assert!(share.ucrn() <= x);
        prop_assert_eq!(Some(share.ucrn()), check::reference(x, u128::from(bps), 10_000));
    }
}
