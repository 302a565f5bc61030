//! Identifiers of on-chain objects and the resource vocabulary they share.

use crate::codec::{BoundedString, BoundedVec};
use crate::hash::Hash;
use crate::{codec_struct, codec_unit_enum};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A block height. Height 0 is genesis; the first block is 1.
pub type Height = u64;
/// An epoch number: epoch `e` covers heights `e*L + 1 ..= (e+1)*L` for epoch length `L`.
pub type Epoch = u64;

/// Why an id did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a {kind} id: write it as cairn prints it, {kind}-N or N (e.g. {kind}-0)")]
pub struct IdParseError {
    pub kind: &'static str,
    pub text: String,
}

macro_rules! sequence_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "-{}"), self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
        /// Both forms cairn prints: `deal-3` (Display) and `3` (JSON).
        impl std::str::FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let digits = s.strip_prefix(concat!($prefix, "-")).unwrap_or(s);
                // Digits only: `u64::from_str` would also take a sign.
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(IdParseError { kind: $prefix, text: s.to_string() });
                }
                digits
                    .parse()
                    .map(Self)
                    .map_err(|_| IdParseError { kind: $prefix, text: s.to_string() })
            }
        }
        impl ::commonware_codec::Write for $name {
            fn write(&self, buf: &mut impl ::bytes::BufMut) {
                ::commonware_codec::Write::write(&self.0, buf);
            }
        }
        impl ::commonware_codec::FixedSize for $name {
            const SIZE: usize = 8;
        }
        impl ::commonware_codec::Read for $name {
            type Cfg = ();
            fn read_cfg(
                buf: &mut impl ::commonware_codec::Buf,
                _: &(),
            ) -> Result<Self, ::commonware_codec::Error> {
                Ok(Self(<u64 as ::commonware_codec::Read>::read_cfg(buf, &())?))
            }
        }
    };
}

sequence_id!(
    /// A storage deal, numbered in creation order.
    DealId,
    "deal"
);
sequence_id!(
    /// A compute order, numbered in creation order.
    OrderId,
    "order"
);
sequence_id!(
    /// A compute lease, numbered in creation order.
    LeaseId,
    "lease"
);
sequence_id!(
    /// A compute (proof-of-GPU) challenge, numbered in issue order.
    ChallengeId,
    "chal"
);

/// A GPU as a provider declares it and a bid offers it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GpuSpec {
    pub vendor: BoundedString<32>,
    pub model: BoundedString<64>,
    pub vram_mib: u64,
}
codec_struct!(GpuSpec {
    vendor,
    model,
    vram_mib
});

/// Capacity a provider declares (and later proves).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    pub storage_bytes: u64,
    pub cpu_millicores: u64,
    pub memory_bytes: u64,
    pub gpus: BoundedVec<GpuSpec, 64>,
}
codec_struct!(Capacity {
    storage_bytes,
    cpu_millicores,
    memory_bytes,
    gpus
});

/// What a compute order asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub cpu_millicores: u64,
    pub memory_bytes: u64,
    pub storage_bytes: u64,
    pub gpu_count: u32,
    /// Required GPU vendor, empty for any.
    pub gpu_vendor: BoundedString<32>,
    /// Required GPU model, empty for any.
    pub gpu_model: BoundedString<64>,
    pub min_vram_mib: u64,
}
codec_struct!(Resources {
    cpu_millicores,
    memory_bytes,
    storage_bytes,
    gpu_count,
    gpu_vendor,
    gpu_model,
    min_vram_mib
});

/// The exact hardware a bid offers: no hidden substitutions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hardware {
    pub cpu_millicores: u64,
    pub memory_bytes: u64,
    pub storage_bytes: u64,
    pub gpus: BoundedVec<GpuSpec, 16>,
}
codec_struct!(Hardware {
    cpu_millicores,
    memory_bytes,
    storage_bytes,
    gpus
});

/// Who ended a lease and why; recorded on chain for every close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseInitiator {
    Tenant,
    Provider,
    Protocol,
}
codec_unit_enum!(CloseInitiator { 0 => Tenant, 1 => Provider, 2 => Protocol });

/// Blob id: the hash of the coding parameters, the size and every shard root, so one id
/// names exactly one set of shards.
pub fn blob_id(
    size_bytes: u64,
    data_shards: u16,
    parity_shards: u16,
    shard_size_bytes: u64,
    leaf_size_bytes: u32,
    shard_roots: &[Hash],
) -> Hash {
    let mut hasher = blake3::Hasher::new_derive_key("cairn.blob.id.v1");
    hasher.update(&size_bytes.to_be_bytes());
    hasher.update(&data_shards.to_be_bytes());
    hasher.update(&parity_shards.to_be_bytes());
    hasher.update(&shard_size_bytes.to_be_bytes());
    hasher.update(&leaf_size_bytes.to_be_bytes());
    for root in shard_roots {
        hasher.update(&root.0);
    }
    Hash(*hasher.finalize().as_bytes())
}
