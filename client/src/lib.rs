//! Talk to a Cairn network as a user: keystore, typed node client, and the flows the CLI drives.
//!
//! The CLI stays thin by calling into this crate; other Rust programs can do the same.

pub mod audit;
pub mod direct;
pub mod durability;
pub mod keystore;
pub mod network;
pub mod node;
pub mod shards;
pub mod store;
pub mod wire;

pub use keystore::{KeyInfo, Keystore, KeystoreError};
pub use node::{CheckRefusal, NodeClient, NodeError};
pub use shards::{Receipt, ShardClient, ShardError};
