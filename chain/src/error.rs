//! Errors of the chain crate, as types.

use cairn_ledger::{AdmissionError, BlockError, GenesisError};
use cairn_types::{Address, Hash, Height};

/// Why a transaction was not accepted into the mempool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The ledger refused it (signature, chain id, nonce, fee).
    #[error("transaction is not admissible: {0}")]
    Admission(#[from] AdmissionError),
    #[error("mempool is full ({pending} of {capacity} pending)")]
    MempoolFull { pending: usize, capacity: usize },
    #[error("{sender} already has {capacity} pending transactions")]
    SenderQueueFull { sender: Address, capacity: usize },
    /// Already pending or already finalized.
    #[error("transaction {hash} is already known")]
    Duplicate { hash: Hash },
    /// A batch with nothing in it.
    #[error("no transaction given")]
    Empty,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("invalid genesis: {source}")]
    Genesis {
        #[from]
        source: GenesisError,
    },
    #[error("validator {address} in genesis is not a valid ed25519 public key")]
    BadValidatorKey { address: Address },
    #[error("this node's key {address} is not a genesis validator")]
    NotAValidator { address: Address },
    #[error("genesis validator {address} has an unusable p2p address {p2p_address:?}: {reason}")]
    BadP2pAddress {
        address: Address,
        p2p_address: String,
        reason: String,
    },
    #[error("storage: {reason}")]
    Storage { reason: String },
    #[error("replaying finalized block {height} from the archive failed: {source}")]
    Replay {
        height: Height,
        #[source]
        source: Box<BlockError>,
    },
    #[error("the node stopped before it finished starting")]
    StartAborted,
    #[error("runtime: {reason}")]
    Runtime { reason: String },
}

/// Why a finalized block could not be applied. Finalized blocks were verified by a quorum, so
/// this means a bug or more than `f` faulty validators: the node halts rather than diverge.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FinalizeError {
    #[error("finalized block {height} does not apply: {source}")]
    Invalid {
        height: Height,
        #[source]
        source: Box<BlockError>,
    },
    #[error("finalized block {got} delivered while the ledger is at {have}")]
    Gap { have: Height, got: Height },
}
