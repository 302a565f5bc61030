//! A small load generator for `cairn devnet --demo` (and the explorer's tests): transfers,
//! delegations and compute leases (order → bid → accept) signed by genesis-funded keys, so
//! the dashboard shows real on-chain activity. Storage deals need provider-signed shard
//! receipts from a storage provider process, which the devnet does not run yet.

use cairn_client::{NodeClient, NodeError};
use cairn_types::tx::{AcceptBid, CreateOrder, Delegation, LeaseStarted, PlaceBid, Transfer};
use cairn_types::{Address, Amount, BoundedString, Hardware, Hash, Keypair, Resources, TxBody};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Price a demo lease pays per block, in uCRN.
pub const LEASE_PRICE_UCRN: u128 = 2_000;
/// Blocks of escrow a demo lease starts with.
pub const LEASE_BLOCKS: u128 = 400;
const WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("{what} failed on chain: {error}")]
    Failed { what: String, error: String },
    #[error("order for manifest {manifest} not found after it was finalized")]
    NoOrder { manifest: Hash },
}

fn finalized(client: &NodeClient, hash: &Hash, what: &str) -> Result<Value, DemoError> {
    let record = client.wait_finalized(hash, WAIT)?;
    if !record["receipt"]["error"].is_null() {
        return Err(DemoError::Failed {
            what: what.to_string(),
            error: record["receipt"]["error"].to_string(),
        });
    }
    Ok(record)
}

/// One compute lease from `tenant` on `provider` at [`LEASE_PRICE_UCRN`] per block for
/// `cpu_millicores`. Returns the lease's node view.
pub fn lease_round(
    client: &NodeClient,
    tenant: &Keypair,
    provider: &Keypair,
    round: u64,
    cpu_millicores: u64,
) -> Result<Value, DemoError> {
    let manifest = Hash::domain(
        "cairn.demo.manifest",
        &[&round.to_be_bytes(), tenant.address().0.as_slice()],
    );
    let price = Amount::from_ucrn(LEASE_PRICE_UCRN);
    let create = TxBody::CreateOrder(CreateOrder {
        manifest_hash: manifest,
        resources: Resources {
            cpu_millicores,
            memory_bytes: 0,
            storage_bytes: 0,
            gpu_count: 0,
            gpu_vendor: BoundedString::default(),
            gpu_model: BoundedString::default(),
            min_vram_mib: 0,
        },
        max_price_per_block: price,
        deposit: Amount::from_ucrn(LEASE_PRICE_UCRN * LEASE_BLOCKS),
        bid_window_blocks: 50,
    });
    let hash = client.send(tenant, create, None)?;
    finalized(client, &hash, "create order")?;
    // This tenant's orders only (the node filters), every page.
    let orders = client.list_all(&format!("/v1/orders?tenant={}", tenant.address()), "orders")?;
    let order = orders
        .iter()
        .find(|o| o["manifest_hash"] == serde_json::json!(manifest))
        .ok_or(DemoError::NoOrder { manifest })?;
    let order_id = serde_json::from_value(order["id"].clone()).map_err(|e| DemoError::Failed {
        what: "order id".to_string(),
        error: e.to_string(),
    })?;
    let bid = TxBody::PlaceBid(PlaceBid {
        order: order_id,
        price_per_block: price,
        hardware: Hardware {
            cpu_millicores,
            memory_bytes: 0,
            storage_bytes: 0,
            gpus: cairn_types::BoundedVec::default(),
        },
    });
    let hash = client.send(provider, bid, None)?;
    finalized(client, &hash, "place bid")?;
    let accept = TxBody::AcceptBid(AcceptBid {
        order: order_id,
        provider: provider.address(),
    });
    let hash = client.send(tenant, accept, None)?;
    finalized(client, &hash, "accept bid")?;
    let find = || -> Result<Value, DemoError> {
        let leases =
            client.list_all(&format!("/v1/leases?tenant={}", tenant.address()), "leases")?;
        leases
            .iter()
            .find(|l| l["lease"]["manifest_hash"] == serde_json::json!(manifest))
            .cloned()
            .ok_or(DemoError::NoOrder { manifest })
    };
    let lease =
        serde_json::from_value(find()?["lease"]["id"].clone()).map_err(|e| DemoError::Failed {
            what: "lease id".to_string(),
            error: e.to_string(),
        })?;
    // The demo stands in for the provider's daemon too: a lease is billed only once its
    // provider reports the workload running.
    let hash = client.send(provider, TxBody::LeaseStarted(LeaseStarted { lease }), None)?;
    finalized(client, &hash, "lease started")?;
    find()
}

/// Runs rounds of load until `stop` (or `rounds`): each a transfer, every third a delegation,
/// every fifth a compute lease. Reports each step through `log`.
pub fn run(
    node_url: &str,
    tenant: &Keypair,
    provider: &Keypair,
    rounds: Option<u64>,
    pause: Duration,
    stop: &AtomicBool,
    mut log: impl FnMut(Result<String, DemoError>),
) {
    let client = NodeClient::new(node_url);
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) && rounds.is_none_or(|r| round < r) {
        let to = Address::derived(&format!("cairn.demo.recipient.{}", round % 16));
        let step = client
            .send(
                tenant,
                TxBody::Transfer(Transfer {
                    to,
                    amount: Amount::from_ucrn(1_000_000 + u128::from(round)),
                }),
                None,
            )
            .map_err(DemoError::from)
            .and_then(|h| finalized(&client, &h, "transfer"))
            .map(|_| format!("demo: transfer to {to}"));
        log(step);
        if round.is_multiple_of(3) {
            let body = TxBody::Delegate(Delegation {
                provider: provider.address(),
                amount: Amount::from_ucrn(5_000_000),
            });
            let step = client
                .send(tenant, body, None)
                .map_err(DemoError::from)
                .and_then(|h| finalized(&client, &h, "delegate"))
                .map(|_| format!("demo: delegated 5 CRN to {}", provider.address()));
            log(step);
        }
        if round.is_multiple_of(5) {
            log(lease_round(&client, tenant, provider, round, 100)
                .map(|l| format!("demo: lease {} running", l["lease"]["id"])));
        }
        round += 1;
        std::thread::sleep(pause);
    }
}
