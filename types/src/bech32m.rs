//! Bech32m (BIP-350), the text form of addresses: a human-readable prefix, the separator `1`,
//! the data in a 32-letter alphabet without look-alikes (no `1`, `b`, `i`, `o`), and a
//! six-character BCH checksum that detects any error of up to four characters.
//!
//! Written here (about a hundred lines) rather than taken from the `bech32` crate: `types`
//! stays pure and small, and the BIP's own test vectors check it (`tests/it/keys.rs`).

/// The data alphabet: character `i` encodes the 5-bit value `i`.
const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
/// What the checksum polynomial must leave for Bech32m (plain Bech32 uses 1).
const BECH32M_CONST: u32 = 0x2bc8_30a3;
/// Checksum length in characters.
pub(crate) const CHECKSUM_CHARS: usize = 6;

/// Why a string is not Bech32m; the caller names what it expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bech32Error {
    /// Upper and lower case letters mixed (each alone is allowed).
    MixedCase,
    /// No `1` separates a prefix from the data, or the prefix is empty.
    NoSeparator,
    /// A character outside the alphabet, at this position (0-based, in characters).
    BadCharacter { character: char, position: usize },
    /// Fewer data characters than the checksum alone needs.
    TooShort,
    /// The checksum does not match: some character is wrong.
    Checksum,
}

fn polymod(values: impl Iterator<Item = u8>) -> u32 {
    const GENERATOR: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    let mut checksum: u32 = 1;
    for v in values {
        let top = checksum >> 25;
        checksum = ((checksum & 0x01ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GENERATOR.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                checksum ^= g;
            }
        }
    }
    checksum
}

/// The prefix as the checksum sees it: high bits of each byte, a zero, then the low bits.
fn hrp_expand(hrp: &[u8]) -> impl Iterator<Item = u8> + '_ {
    hrp.iter()
        .map(|c| c >> 5)
        .chain(std::iter::once(0))
        .chain(hrp.iter().map(|c| c & 31))
}

/// The 5-bit value of a data character (either case), `None` outside the alphabet.
pub(crate) fn value_of(c: char) -> Option<u8> {
    let c = c.to_ascii_lowercase();
    CHARSET
        .iter()
        .position(|&a| char::from(a) == c)
        .and_then(|v| u8::try_from(v).ok())
}

/// `hrp` (lower case ASCII) and 5-bit `data` as a Bech32m string.
pub(crate) fn encode(hrp: &str, data: &[u8]) -> String {
    let hrp = hrp.as_bytes();
    let pm = polymod(
        hrp_expand(hrp)
            .chain(data.iter().copied())
            .chain([0u8; CHECKSUM_CHARS]),
    ) ^ BECH32M_CONST;
    let mut out = String::with_capacity(hrp.len() + 1 + data.len() + CHECKSUM_CHARS);
    out.extend(hrp.iter().map(|&c| char::from(c)));
    out.push('1');
    let checksum = (0..CHECKSUM_CHARS).map(|i| {
        let shift = 5 * (CHECKSUM_CHARS - 1 - i);
        // Masked to 5 bits, so the cast cannot truncate anything that matters.
        u8::try_from((pm >> shift) & 31).unwrap_or(0)
    });
    for v in data.iter().copied().chain(checksum) {
        out.push(char::from(CHARSET[usize::from(v & 31)]));
    }
    out
}

/// Splits a Bech32m string into its prefix (lower-cased) and 5-bit data, checksum checked and
/// removed.
pub(crate) fn decode(text: &str) -> Result<(String, Vec<u8>), Bech32Error> {
    let has_lower = text.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = text.bytes().any(|b| b.is_ascii_uppercase());
    if has_lower && has_upper {
        return Err(Bech32Error::MixedCase);
    }
    let lower = text.to_ascii_lowercase();
    let split = match lower.rfind('1') {
        Some(i) if i > 0 => i,
        _ => return Err(Bech32Error::NoSeparator),
    };
    let (hrp, rest) = lower.split_at(split);
    let data_text = &rest[1..];
    // Prefix characters are printable ASCII 33..=126 (BIP-173).
    for (position, c) in hrp.chars().enumerate() {
        if !(c.is_ascii() && (33..=126).contains(&u32::from(c))) {
            return Err(Bech32Error::BadCharacter {
                character: c,
                position,
            });
        }
    }
    // `text` and `lower` differ only in ASCII case, so the byte offsets agree; the original
    // characters are iterated so that a message shows what was typed.
    let prefix_chars = text[..split].chars().count() + 1;
    let mut data = Vec::with_capacity(data_text.len());
    for (i, c) in text[split + 1..].chars().enumerate() {
        let value = value_of(c).ok_or(Bech32Error::BadCharacter {
            character: c,
            position: prefix_chars + i,
        })?;
        data.push(value);
    }
    if data.len() < CHECKSUM_CHARS {
        return Err(Bech32Error::TooShort);
    }
    if polymod(hrp_expand(hrp.as_bytes()).chain(data.iter().copied())) != BECH32M_CONST {
        return Err(Bech32Error::Checksum);
    }
    data.truncate(data.len() - CHECKSUM_CHARS);
    Ok((hrp.to_string(), data))
}

/// Bytes as 5-bit groups, the last one padded with zero bits.
pub(crate) fn to_base32(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity((bytes.len() * 8).div_ceil(5));
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(u8::try_from((acc >> bits) & 31).unwrap_or(0));
        }
    }
    if bits > 0 {
        out.push(u8::try_from((acc << (5 - bits)) & 31).unwrap_or(0));
    }
    out
}

/// 5-bit groups back to bytes; `None` unless the padding is under 5 bits and all zero (so
/// one byte string has exactly one text form).
pub(crate) fn from_base32(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &v in data {
        acc = ((acc << 5) | u32::from(v & 31)) & 0xfff;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).unwrap_or(0));
        }
    }
    if bits >= 5 || (acc & ((1 << bits) - 1)) != 0 {
        return None;
    }
    Some(out)
}

/// Whether `text` is valid Bech32m with any prefix (for the BIP-350 vectors in the tests).
#[doc(hidden)]
pub fn is_valid(text: &str) -> bool {
    decode(text).is_ok()
}
