#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit;
mod common;
mod fuzz;
mod inconsistency;
mod props;
mod providers;
mod purity;
mod rejections;
mod repair;
mod scenarios;
