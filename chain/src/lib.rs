//! Replicate the ledger with Commonware simplex consensus: p2p, block building, mempool, finality and durable state.
//!
//! # How it fits
//!
//! The ledger (`cairn-ledger`) is a pure state machine: `apply(state, block)`. This crate runs
//! it on every validator and makes them agree on the blocks:
//!
//! ```text
//! NodeHandle::submit ─► mempool ─► App::propose (leader) ─► simplex (ed25519, round robin)
//!                                     │                        │ notarize / finalize
//!                         buffered broadcast ─► App::verify    ▼
//!                                           marshal (ordered finalized blocks, backfill,
//!                                           immutable archives on disk)
//!                                                              │ Update::Block + ack
//!                                           finalizer ─► finalized Ledger, tx index, events
//! ```
//!
//! - [`block`]: the consensus block (a `cairn_types::Block`; digest = its BLAKE3 header hash).
//! - [`app`]: proposal and verification with speculative execution, minimum block time, seed.
//! - [`mempool`]: per-sender nonce-ordered pending transactions, bounded.
//! - [`gossip`]: submitted transactions reach every validator's mempool (one hop, batched).
//! - [`node`]: the runtime- and network-agnostic wiring ([`start_node`]); the durability story.
//! - [`runner`]: production wiring on the tokio runtime and `authenticated::lookup` p2p
//!   ([`start_validator`]), used by `cairn node` and `cairn devnet`.
//! - [`handle`]: [`NodeHandle`], the interface of the node API.
//!
//! # Choices
//!
//! - **Marshal `Inline`, not `Deferred`.** `Deferred` needs blocks that embed their consensus
//!   context (round, leader, parent view) and a digest over it; our block is the ledger's block
//!   and its digest is the ledger's header hash, which carries no round. `Inline` verifies the
//!   block fully before the notarize vote, which is what the ledger wants anyway (a block is
//!   valid or not on its parent's state, independent of the round), at the cost of verification
//!   latency on the voting path.
//! - **Digest**: `commonware_cryptography::sha256::Digest` as a 32-byte container holding the
//!   BLAKE3 header hash (see [`block`]).
//! - **Authenticated state**: the state root is the ledger's canonical BLAKE3 commitment over
//!   its ordered state, computed after every block, and each header commits to its parent's
//!   root (app-hash style). QMDB through `commonware_glue::stateful` is not used yet: it is ALPHA
//!   (storage format may change without migration), and our ledger is a rich in-memory state
//!   machine of ordered maps rather than a key-value store. Migration path: map each ledger
//!   table to QMDB keys (`qmdb::current` gives per-key proofs and state sync), let
//!   `glue::stateful` own speculative batches instead of our `Ledger` clones, and commit the
//!   QMDB root in the header in place of the BLAKE3 one.
//! - **Validator set**: fixed by genesis (one consensus epoch); reconfiguration is future work.
//! - **Seed**: `H(parent, view)`, predictable by the leader; unbiasable randomness needs the
//!   `bls12381_threshold::vrf` scheme and a DKG (future work).
//!
//! # Known limits
//!
//! - The transaction index and the ledger live in memory and are rebuilt from the archive at
//!   start; replay time grows with the chain (a state snapshot is future work, with QMDB).
//! - Equivocation evidence from consensus is not yet fed to the ledger's slashing.

pub mod app;
pub mod block;
pub mod config;
pub mod error;
pub mod gossip;
pub mod handle;
mod mempool;
pub mod node;
pub mod runner;
mod state;

pub use block::ChainBlock;
pub use config::{ChainConfig, NodeConfig};
pub use error::{ChainError, FinalizeError, SubmitError};
pub use handle::{FinalizedEvent, NodeHandle, NodeStatus, TxRecord};
pub use node::{
    NodeChannels, RunningNode, channels, consensus_namespace, max_message_size, start_node,
    validator_set,
};
pub use runner::{Validator, ValidatorConfig, start_validator};
