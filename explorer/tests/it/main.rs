//! The explorer's integration tests: one binary, modules by subject.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;
mod live;
mod store;
