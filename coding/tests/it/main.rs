//! Integration tests of cairn-coding: one binary, one module per concern.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod commit;
mod durability;
mod faults;
mod keys;
mod layout;
mod roundtrip;
mod support;
