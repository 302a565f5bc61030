//! Keys, addresses and signatures: ed25519 through commonware-cryptography.
//!
//! An account's address is its ed25519 public key. That costs nothing to derive, needs no
//! registry, and lets every node check a signature from the transaction alone.

use crate::hash::Hash;
use bytes::BufMut;
use commonware_codec::Buf;
use commonware_codec::{DecodeExt, Encode, Error as CodecError, FixedSize, Read, Write};
use commonware_cryptography::{Signer as _, Verifier as _, ed25519};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Human-readable prefix of a printed address (the Bech32m HRP; `1` separates it from the data).
pub const ADDRESS_PREFIX: &str = "cairn";

/// Characters of a printed address: `cairn`, `1`, 52 data characters (256 bits and 4 zero
/// bits of padding) and the 6-character checksum.
pub const ADDRESS_CHARS: usize = ADDRESS_PREFIX.len() + 1 + 52 + crate::bech32m::CHECKSUM_CHARS;

/// An account address: the 32 bytes of an ed25519 public key, printed in Bech32m with the
/// prefix `cairn` (`cairn1…`, 64 characters), so a mistyped character is caught by the
/// checksum instead of sending funds to a key nobody holds. The binary encoding is the 32
/// bytes alone.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 32]);

impl Address {
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// An address that no private key is known for, derived from a label; used for
    /// protocol-owned pseudo-accounts in tests and genesis tooling.
    pub fn derived(label: &str) -> Self {
        Self(Hash::domain("cairn.address.derived", &[label.as_bytes()]).0)
    }
    /// The public key behind this address, if the bytes are a valid curve point.
    pub fn public_key(&self) -> Result<PublicKey, KeyError> {
        PublicKey::from_bytes(&self.0)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::bech32m::encode(
            ADDRESS_PREFIX,
            &crate::bech32m::to_base32(&self.0),
        ))
    }
}
impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.to_string();
        write!(f, "{}…", &s[..s.len().min(13)])
    }
}

/// Why a key, address or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{text:?} is not an address: a Cairn address is {ADDRESS_PREFIX}1 followed by 58 letters and digits"
    )]
    NotAnAddress { text: String },
    #[error(
        "address {text} has the prefix {prefix:?}: a Cairn address starts with {ADDRESS_PREFIX}1"
    )]
    WrongPrefix { text: String, prefix: String },
    #[error("address {text} mixes upper and lower case: write it in one case")]
    MixedCase { text: String },
    #[error(
        "address {text} has {character:?} at character {position}, which addresses never use (they leave out 1, b, i and o after the prefix)"
    )]
    BadCharacter {
        text: String,
        character: char,
        position: usize,
    },
    #[error(
        "address {text} is {got} characters long: a Cairn address has {ADDRESS_CHARS} (a character is missing or extra)"
    )]
    WrongLength { text: String, got: usize },
    #[error("address {text} has a bad checksum: a character is mistyped")]
    BadChecksum { text: String },
    #[error("address {text} is not the canonical form of any address")]
    NonCanonical { text: String },
    #[error(
        "{text} is the old unchecked address form (cairn + 64 hex), which can hide a typo, and is no longer accepted; the same 32 bytes with a checksum are {bech32} (compare it with where the address came from before using it)"
    )]
    Legacy { text: String, bech32: String },
    #[error("{what} must be {expected} hex characters, got {got}")]
    Length {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{what} is not hex: {reason}")]
    NotHex { what: &'static str, reason: String },
    #[error("not a valid ed25519 public key")]
    InvalidPoint,
}

fn decode_hex<const N: usize>(what: &'static str, text: &str) -> Result<[u8; N], KeyError> {
    if text.len() != N * 2 {
        return Err(KeyError::Length {
            what,
            expected: N * 2,
            got: text.len(),
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|e| KeyError::NotHex {
        what,
        reason: e.to_string(),
    })?;
    Ok(out)
}

impl FromStr for Address {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use crate::bech32m::{Bech32Error, decode, from_base32};
        let text = || s.to_string();
        // The old form is recognised only to say what replaced it: it has no checksum, so a
        // typo in it would silently name another key.
        if let Some(rest) = s.strip_prefix(ADDRESS_PREFIX)
            && rest.len() == 64
            && let Ok(bytes) = decode_hex::<32>("address", rest)
        {
            return Err(KeyError::Legacy {
                text: text(),
                bech32: Self(bytes).to_string(),
            });
        }
        if s.bytes().any(|b| b.is_ascii_lowercase()) && s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(KeyError::MixedCase { text: text() });
        }
        // The prefix, the characters and the length are checked here, before the checksum,
        // so that each mistake is named as what it is rather than as a bad checksum.
        let separator = match s.find('1') {
            Some(i) if i > 0 => i,
            _ => return Err(KeyError::NotAnAddress { text: text() }),
        };
        let prefix = s[..separator].to_ascii_lowercase();
        if prefix != ADDRESS_PREFIX {
            // Another chain's address has a word for a prefix; hex, a key name or stray
            // spaces are just not an address.
            if prefix.bytes().all(|b| b.is_ascii_lowercase()) {
                return Err(KeyError::WrongPrefix {
                    text: text(),
                    prefix,
                });
            }
            return Err(KeyError::NotAnAddress { text: text() });
        }
        for (i, c) in s[separator + 1..].chars().enumerate() {
            if crate::bech32m::value_of(c).is_none() {
                return Err(KeyError::BadCharacter {
                    text: text(),
                    character: c,
                    // 1-based for people; the prefix and separator are ASCII.
                    position: separator + 2 + i,
                });
            }
        }
        let got = s.chars().count();
        if got != ADDRESS_CHARS {
            return Err(KeyError::WrongLength { text: text(), got });
        }
        let (_, data) = decode(s).map_err(|e| match e {
            Bech32Error::Checksum => KeyError::BadChecksum { text: text() },
            // Ruled out above; kept total rather than panicking.
            Bech32Error::MixedCase
            | Bech32Error::NoSeparator
            | Bech32Error::BadCharacter { .. }
            | Bech32Error::TooShort => KeyError::NotAnAddress { text: text() },
        })?;
        let bytes = from_base32(&data)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| KeyError::NonCanonical { text: text() })?;
        Ok(Self(bytes))
    }
}

impl Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_string())
        } else {
            self.0.serialize(s)
        }
    }
}
impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return <[u8; 32]>::deserialize(d).map(Self);
        }
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}
impl Write for Address {
    fn write(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }
}
impl FixedSize for Address {
    const SIZE: usize = 32;
}
impl Read for Address {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self(<[u8; 32]>::read_cfg(buf, &())?))
    }
}

/// A validated ed25519 public key. Decoding checks the curve point once, so a transaction
/// that reaches signature verification never carries a malformed key.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(pub ed25519::PublicKey);

impl PublicKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        ed25519::PublicKey::decode(commonware_codec::Copying(&bytes[..]))
            .map(Self)
            .map_err(|_| KeyError::InvalidPoint)
    }
    pub fn address(&self) -> Address {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.as_ref());
        Address(out)
    }
    /// Checks `signature` over `message` under `namespace`.
    pub fn verify(&self, namespace: &[u8], message: &[u8], signature: &Signature) -> bool {
        self.0.verify(namespace, message, &signature.0)
    }
}
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.address(), f)
    }
}
impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.address(), f)
    }
}
impl Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.address().serialize(s)
    }
}
impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let address = Address::deserialize(d)?;
        address.public_key().map_err(serde::de::Error::custom)
    }
}
impl Write for PublicKey {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.write(buf);
    }
}
impl FixedSize for PublicKey {
    const SIZE: usize = 32;
}
impl Read for PublicKey {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self(ed25519::PublicKey::read_cfg(buf, &())?))
    }
}

/// An ed25519 signature, hex in JSON.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Signature(pub ed25519::Signature);

impl Signature {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.encode())
    }
}
impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.to_hex();
        write!(f, "Signature({}…)", &h[..16])
    }
}
impl FromStr for Signature {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let raw = decode_hex::<64>("signature", s)?;
        ed25519::Signature::decode(commonware_codec::Copying(&raw[..]))
            .map(Self)
            .map_err(|_| KeyError::InvalidPoint)
    }
}
impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}
impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}
impl Write for Signature {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.write(buf);
    }
}
impl FixedSize for Signature {
    const SIZE: usize = 64;
}
impl Read for Signature {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self(ed25519::Signature::read_cfg(buf, &())?))
    }
}

/// A private signing key. Never printed; `secret_bytes` is for the keystore only.
#[derive(Clone)]
pub struct Keypair {
    private: ed25519::PrivateKey,
    public: PublicKey,
}

impl Keypair {
    /// A key from 32 secret bytes (the ed25519 seed).
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        // Any 32 bytes are a valid ed25519 seed, so this decode cannot fail; fall back to
        // hashing the input rather than panicking if the library ever disagrees.
        let private = ed25519::PrivateKey::decode(commonware_codec::Copying(&secret[..]))
            .unwrap_or_else(|_| {
                let fallback = Hash::domain("cairn.keypair.fallback", &[secret]);
                <ed25519::PrivateKey as commonware_cryptography::Signer>::from_seed(
                    fallback.prefix_u64(),
                )
            });
        let public = PublicKey(private.public_key());
        Self { private, public }
    }
    /// A deterministic key for tests, simulations and devnet accounts: never for real funds.
    pub fn from_test_seed(label: &str) -> Self {
        Self::from_secret(&Hash::domain("cairn.keypair.test", &[label.as_bytes()]).0)
    }
    pub fn secret_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.private.encode());
        out
    }
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }
    pub fn address(&self) -> Address {
        self.public.address()
    }
    pub fn sign(&self, namespace: &[u8], message: &[u8]) -> Signature {
        Signature(self.private.sign(namespace, message))
    }
}
impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({:?})", self.address())
    }
}
