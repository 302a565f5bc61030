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

/// Human prefix of a printed address.
pub const ADDRESS_PREFIX: &str = "cairn";

/// An account address: the 32 bytes of an ed25519 public key, printed as `cairn` + 64 hex.
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
        write!(f, "{ADDRESS_PREFIX}{}", hex::encode(self.0))
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
    #[error("address must start with {ADDRESS_PREFIX:?}: {text:?}")]
    MissingPrefix { text: String },
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
        let rest = s
            .strip_prefix(ADDRESS_PREFIX)
            .ok_or_else(|| KeyError::MissingPrefix {
                text: s.to_string(),
            })?;
        Ok(Self(decode_hex::<32>("address", rest)?))
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
