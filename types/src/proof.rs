//! Wire forms of proof responses carried in transactions. Building and checking them is the
//! `proofs` crate's job; these are just the bounded shapes.

use crate::codec::{BoundedBytes, BoundedVec};
use crate::codec_struct;
use crate::hash::Hash;
use crate::ids::DealId;
use serde::{Deserialize, Serialize};

/// Largest storage-proof leaf accepted on chain.
pub const MAX_LEAF_BYTES: usize = 64 * 1024;
/// Deepest Merkle path accepted (2^48 leaves).
pub const MAX_PATH_DEPTH: usize = 48;

/// Sibling hashes from a leaf up to the root, bottom first.
pub type MerklePath = BoundedVec<Hash, MAX_PATH_DEPTH>;

/// One opened leaf of a stored shard.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafOpening {
    pub data: BoundedBytes<MAX_LEAF_BYTES>,
    pub path: MerklePath,
}
codec_struct!(LeafOpening { data, path });

/// A provider's answer to one shard's storage challenge: the chained leaves in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageProof {
    pub deal: DealId,
    pub shard_index: u16,
    pub leaves: BoundedVec<LeafOpening, 64>,
}
codec_struct!(StorageProof {
    deal,
    shard_index,
    leaves
});

/// Most chained leaves one timed-audit answer carries (off chain: the provider's shard API
/// answers an auditor with them; see `cairn_proofs::timed`).
pub const MAX_AUDIT_LEAVES: usize = 4096;

/// A provider's answer to a timed audit: the first `steps` leaves of the shard's chain.
pub type AuditAnswer = BoundedVec<LeafOpening, MAX_AUDIT_LEAVES>;

/// The canonical encoding of a timed-audit answer (a length-prefixed list of openings).
pub fn encode_audit_answer(leaves: &[LeafOpening]) -> Vec<u8> {
    use commonware_codec::EncodeSize;
    let mut buf = Vec::with_capacity(leaves.iter().map(|l| l.encode_size()).sum::<usize>() + 4);
    commonware_codec::Write::write(&leaves.to_vec(), &mut buf);
    buf
}

/// Decodes [`encode_audit_answer`]'s output, refusing more than [`MAX_AUDIT_LEAVES`]
/// openings (or a leaf over [`MAX_LEAF_BYTES`]) before allocating for them.
pub fn decode_audit_answer(bytes: &[u8]) -> Result<Vec<LeafOpening>, crate::tx::DecodeError> {
    use commonware_codec::Decode;
    AuditAnswer::decode_cfg(commonware_codec::Copying(bytes), &())
        .map(|answer| answer.0)
        .map_err(|source| crate::tx::DecodeError::Malformed {
            what: "audit answer",
            source,
        })
}

/// Entries of C per compute-commitment leaf.
pub const ENTRIES_PER_LEAF: usize = 4;

/// One opened entry of a compute challenge's product matrix C, with the leaf that holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputeOpening {
    /// Row-major index of the opened entry in C.
    pub entry_index: u64,
    /// The whole leaf (ENTRIES_PER_LEAF consecutive row-major entries) holding the entry.
    pub leaf: [i32; ENTRIES_PER_LEAF],
    pub path: MerklePath,
}
codec_struct!(ComputeOpening {
    entry_index,
    leaf,
    path
});

/// One shard's leaf at a stripe of an [`InconsistencyProof`], opened against that shard's
/// root on chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripeLeaf {
    pub shard_index: u16,
    pub opening: LeafOpening,
}
codec_struct!(StripeLeaf {
    shard_index,
    opening
});

/// Evidence that a blob's shards are not one Reed-Solomon codeword (design §10,
/// "Inconsistent encoding"): `k + 1` leaves at the same leaf index of distinct shards,
/// each opening to its shard root, where decoding the first `k` predicts bytes for the
/// last one that differ from what its shard holds. Leaf `leaf_index` of every shard lies in
/// one stripe because all pieces have the same size; `header` opens the leaf where the
/// trailer starts under the claimed piece size, proving that `leaf_index` is a data leaf.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InconsistencyProof {
    pub deal: DealId,
    pub leaf_index: u64,
    /// The blob's piece size, as its trailer header records it.
    pub piece_size_bytes: u32,
    /// The leaf of one shard that opens with the trailer header.
    pub header: StripeLeaf,
    /// The decode set (`k` leaves) followed by the witness that disagrees with it.
    pub leaves: BoundedVec<StripeLeaf, 256>,
}
codec_struct!(InconsistencyProof {
    deal,
    leaf_index,
    piece_size_bytes,
    header,
    leaves
});
