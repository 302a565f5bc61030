//! Integration tests of the compute provider's proof side against a real ledger.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod responder;
