//! Name every value Cairn moves: keys, addresses, hashes, amounts, ids and the signed transaction envelope.
//!
//! This is the bottom of the workspace: every other crate speaks these types, and nothing
//! here does I/O, reads a clock or draws randomness. Two encodings exist for each wire type:
//! the canonical binary one (commonware-codec; the only one that is hashed or signed) and a
//! JSON one (serde) for the API and the CLI. Both are frozen by the test vectors in
//! `tests/it/vectors.rs`: changing a byte there is a protocol change.

pub mod amount;
#[doc(hidden)]
pub mod bech32m;
pub mod block;
pub mod codec;
pub mod hash;
pub mod ids;
pub mod keys;
pub mod proof;
pub mod tx;

pub use amount::{Amount, UCRN_PER_CRN};
pub use block::{Block, BlockHeader};
pub use codec::{BoundedBytes, BoundedString, BoundedVec};
pub use hash::Hash;
pub use ids::{
    Capacity, ChallengeId, CloseInitiator, DealId, Epoch, GpuSpec, Hardware, Height, LeaseId,
    OrderId, Resources,
};
pub use keys::{Address, Keypair, PublicKey, Signature};
pub use tx::{SignedTransaction, Transaction, TxBody};

/// Re-exported so downstream crates name one codec version.
pub use commonware_codec;
