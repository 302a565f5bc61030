#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Deterministic simulations of the chain: validators on the deterministic runtime, linked by
//! the simulated network, with real signed transfers submitted through `NodeHandle::submit`.
//!
//! Every scenario checks, among the honest validators: no two finalize different blocks at a
//! height, state roots agree at every height, every transaction reported finalized is in every
//! honest chain with the same receipt, and the chain progresses (after healing where there is
//! something to heal). Tests named `slow_*` run more seeds and longer; CI runs them through a
//! nextest profile.

mod harness;
mod scenarios;
mod submit;
mod tokio_devnet;
