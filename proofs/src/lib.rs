//! Challenge and check proofs of physical work: Merkle openings of stored shards and int8 GEMM results.
//!
//! Providers prove, the ledger verifies, and both call the same functions here so that they
//! cannot disagree about what a valid answer is. [`storage`] draws chained leaf challenges
//! over a shard and checks the openings against the shard root recorded in the blob
//! metadata; [`compute`] sizes and generates int8 GEMM challenges, commits to a product and
//! checks random entries of it against a recomputation from the seed; [`inconsistency`]
//! proves that a blob's shards are not one Reed-Solomon codeword; [`shard`] is the
//! shard commitment (BLAKE3's own chunk tree) and [`merkle`] the tree compute proofs rest on; [`timed`] is the off-chain timed audit
//! (a long chain against a clock) that catches a provider regenerating its shard from peers. Everything is pure and deterministic: no clock, no I/O, no randomness
//! beyond the seeds passed in, and no floating point in any verdict, so every validator
//! reaches the same result bit for bit.
//!
//! The provers here are reference implementations, simple and slow on purpose. The storage
//! crate (streaming trees over shards on disk) and the compute crate (CUDA GEMM) will add
//! fast backends; they must produce the same roots, paths and products, and the tests here
//! are the yardstick they are checked against.

pub mod compute;
pub mod inconsistency;
pub mod merkle;
pub mod shard;
pub mod storage;
pub mod timed;

pub use compute::{ComputeProofError, GemmShape};
pub use inconsistency::InconsistencyError;
pub use storage::StorageProofError;
pub use timed::{AuditFailure, AuditRule, Timeliness};
