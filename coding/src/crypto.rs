//! AES-256-GCM per segment, and the data key sealed to its owner.
//!
//! Every blob has its own random 32-byte data key (the caller draws it: this crate has no
//! randomness). Segment `i` is sealed under the nonce `0^4 ‖ i (u64 BE)` with associated data
//! binding the segment index, the segment count and the blob size, so segments cannot be
//! reordered, dropped or moved to another blob. Nonces are a function of the index, which is
//! what makes a second encoding pass produce identical shards; it is safe because a data key
//! encrypts exactly one blob. Never reuse a data key for a second blob.
//!
//! The data key also travels sealed to the owner: the wrapping key is BLAKE3 `derive_key`
//! of the owner's 32-byte ed25519 secret and a context (the blob id), and the key is sealed
//! with AES-256-GCM under it. Each (owner, context) pair wraps one key, so a fixed nonce is
//! safe, and the owner's secret is all a device needs to open it.

use crate::error::CodingError;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

const SEGMENT_AAD_DOMAIN: &[u8] = b"cairn.coding.segment.v1";
const SEAL_DOMAIN: &str = "cairn.coding.seal.v1";

/// A blob's 32-byte data key.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey([u8; 32]);

impl DataKey {
    /// A key from caller-supplied random bytes (draw them from the OS RNG, once per blob).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key, for the owner's keystore.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// Whether a blob is encrypted, and with which key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Stored as is (`--public`): anyone holding k shards can read it.
    Public,
    /// AES-256-GCM per segment under this data key.
    Encrypted(DataKey),
}

impl Protection {
    pub fn is_encrypted(&self) -> bool {
        matches!(self, Self::Encrypted(_))
    }
}

/// A data key sealed to its owner: 32 bytes of ciphertext and a 16-byte tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealedKey(pub [u8; 48]);

impl SealedKey {
    pub fn as_bytes(&self) -> &[u8; 48] {
        &self.0
    }
    pub fn to_hex(&self) -> String {
        hex_lower(&self.0)
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

fn wrapping_key(owner_secret: &[u8; 32], context: &[u8]) -> Result<LessSafeKey, CodingError> {
    let mut hasher = blake3::Hasher::new_derive_key(SEAL_DOMAIN);
    hasher.update(owner_secret);
    hasher.update(
        &u64::try_from(context.len())
            .unwrap_or(u64::MAX)
            .to_be_bytes(),
    );
    hasher.update(context);
    let key = UnboundKey::new(&AES_256_GCM, hasher.finalize().as_bytes())
        .map_err(|_| CodingError::Unseal)?;
    Ok(LessSafeKey::new(key))
}

/// Seals `data_key` to the owner of `owner_secret` (the ed25519 secret key bytes) for
/// `context` (use the blob id's bytes).
pub fn seal_key(
    owner_secret: &[u8; 32],
    context: &[u8],
    data_key: &DataKey,
) -> Result<SealedKey, CodingError> {
    let key = wrapping_key(owner_secret, context)?;
    let mut buf = data_key.0;
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from(context),
            &mut buf,
        )
        .map_err(|_| CodingError::Unseal)?;
    let mut out = [0u8; 48];
    out[..32].copy_from_slice(&buf);
    out[32..].copy_from_slice(tag.as_ref());
    Ok(SealedKey(out))
}

/// Opens a key sealed by [`seal_key`]; a wrong owner key or context fails with
/// [`CodingError::Unseal`].
pub fn open_key(
    owner_secret: &[u8; 32],
    context: &[u8],
    sealed: &SealedKey,
) -> Result<DataKey, CodingError> {
    let key = wrapping_key(owner_secret, context)?;
    let mut buf = sealed.0;
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from(context),
            &mut buf,
        )
        .map_err(|_| CodingError::Unseal)?;
    let bytes: [u8; 32] = plain.try_into().map_err(|_| CodingError::Unseal)?;
    Ok(DataKey(bytes))
}

/// The segment cipher of one blob.
pub(crate) struct SegmentCipher {
    key: LessSafeKey,
    segment_count: u64,
    size_bytes: u64,
}

impl SegmentCipher {
    pub(crate) fn new(
        key: &DataKey,
        segment_count: u64,
        size_bytes: u64,
    ) -> Result<Self, CodingError> {
        let key = UnboundKey::new(&AES_256_GCM, &key.0)
            .map_err(|_| CodingError::Encrypt { segment: 0 })?;
        Ok(Self {
            key: LessSafeKey::new(key),
            segment_count,
            size_bytes,
        })
    }

    /// The cipher a layout's segments use under `protection` (`None` for public blobs).
    pub(crate) fn for_layout(
        protection: &Protection,
        layout: &crate::layout::Layout,
    ) -> Result<Option<Self>, CodingError> {
        match protection {
            Protection::Public => Ok(None),
            Protection::Encrypted(key) => {
                Self::new(key, layout.segment_count, layout.size_bytes).map(Some)
            }
        }
    }

    fn nonce_and_aad(&self, segment: u64) -> (Nonce, [u8; 47]) {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&segment.to_be_bytes());
        let mut aad = [0u8; 47];
        aad[..23].copy_from_slice(SEGMENT_AAD_DOMAIN);
        aad[23..31].copy_from_slice(&segment.to_be_bytes());
        aad[31..39].copy_from_slice(&self.segment_count.to_be_bytes());
        aad[39..47].copy_from_slice(&self.size_bytes.to_be_bytes());
        (Nonce::assume_unique_for_key(nonce), aad)
    }

    /// Encrypts `buf[..len]` in place and writes the tag at `buf[len..len + 16]`.
    pub(crate) fn seal(&self, segment: u64, buf: &mut [u8], len: usize) -> Result<(), CodingError> {
        let (nonce, aad) = self.nonce_and_aad(segment);
        let (body, rest) = buf
            .split_at_mut_checked(len)
            .ok_or(CodingError::Encrypt { segment })?;
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(&aad[..]), body)
            .map_err(|_| CodingError::Encrypt { segment })?;
        rest.get_mut(..16)
            .ok_or(CodingError::Encrypt { segment })?
            .copy_from_slice(tag.as_ref());
        Ok(())
    }

    /// Decrypts `buf[..len + 16]` (ciphertext then tag) in place; the plaintext is `buf[..len]`.
    pub(crate) fn open(&self, segment: u64, buf: &mut [u8], len: usize) -> Result<(), CodingError> {
        let (nonce, aad) = self.nonce_and_aad(segment);
        let sealed = buf
            .get_mut(..len + 16)
            .ok_or(CodingError::Decrypt { segment })?;
        self.key
            .open_in_place(nonce, Aad::from(&aad[..]), sealed)
            .map_err(|_| CodingError::Decrypt { segment })?;
        Ok(())
    }
}
