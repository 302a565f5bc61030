//! Sell and buy compute: manifests, the provider's bid engine, runtimes, lease API and ingress.
//!
//! The market half of design §7, beside `cairn-compute` (the proof-of-compute half, whose
//! GPU discovery it reuses). It is its own crate so that the proof side stays free of the
//! Docker client and the HTTP server:
//! - [`manifest`]: Akash-SDL-shaped YAML → a validated [`manifest::Manifest`] and its hash;
//! - [`bid`]: the pure bid rule and capacity accounting;
//! - [`runtime`]: the [`runtime::Runtime`] trait, with bubblewrap processes and Docker
//!   containers (bollard);
//! - [`provider`]: the provider daemon (order watcher, bidder, lease API, ingress);
//! - [`tenant`]: deploy and lease flows for the CLI;
//! - [`auth`]: signed lease-API requests.
//!
//! The ledger (orders, bids, leases, settlement) is in `cairn-ledger`; this crate only reads
//! chain state through the node API and submits transactions.

pub mod auth;
pub mod bid;
pub mod manifest;
pub mod provider;
pub mod runtime;
pub mod tenant;
mod yaml;
