//! No list read assumes one page: a one-validator chain with more than a page (1 000) of
//! providers, orders and leases, served through the real node API, and the real client
//! functions that read those lists: placement's provider registry (and its liveness probe),
//! deploy's order lookup, a compute provider's lease listing for its reconcile.

use cairn_chain::{ChainConfig, NodeConfig, ValidatorConfig};
use cairn_client::NodeClient;
use cairn_ledger::params::{GenesisAccount, GenesisProvider, GenesisValidator};
use cairn_ledger::{Genesis, Params};
use cairn_types::tx::{AcceptBid, CreateOrder, PlaceBid};
use cairn_types::{
    Address, Amount, BoundedString, Capacity, Hardware, Hash, Keypair, OrderId, Resources,
    Transaction, TxBody,
};
use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

/// More than the node's largest page, so one page cannot be the whole.
const ITEMS: usize = 1_100;
/// Storage providers per fake shard endpoint: each listener's backlog holds its share of the
/// probes placement sends all at once.
const PROVIDERS_PER_LISTENER: usize = 100;

fn crn(v: u128) -> Amount {
    Amount::from_crn(v).expect("amount")
}

use super::devnet::free_port;

/// A stand-in for many storage providers' shard servers: `GET /p/<address>/v1/provider`
/// answers that address, as a live provider at that endpoint would.
fn fake_shard_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                // The request line: `GET /p/<address>/v1/provider HTTP/1.1`.
                let address = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|path| path.strip_prefix("/p/"))
                    .and_then(|rest| rest.strip_suffix("/v1/provider"))
                    .unwrap_or_default()
                    .to_string();
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let body = serde_json::json!({ "address": address }).to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    base
}

/// Signs `bodies` from `key` with consecutive nonces from `nonce`, submits them as one batch,
/// and waits until the account's finalized nonce has moved past them all.
fn send_batch(
    client: &NodeClient,
    chain_id: &str,
    key: &Keypair,
    bodies: Vec<TxBody>,
    fee: Amount,
) {
    let first = client.nonce(&key.address()).expect("nonce");
    let count = u64::try_from(bodies.len()).expect("count");
    let txs: Vec<_> = bodies
        .into_iter()
        .zip(first..)
        .map(|(body, nonce)| {
            Transaction {
                chain_id: BoundedString::new(chain_id).expect("chain id"),
                sender: key.public_key().clone(),
                nonce,
                fee,
                body,
            }
            .sign(key)
        })
        .collect();
    for result in client.submit_batch(&txs).expect("batch") {
        result.expect("admitted");
    }
    let start = Instant::now();
    while client.nonce(&key.address()).expect("nonce") < first + count {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the batch did not land"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn lists_past_one_page_are_read_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tenant = Keypair::from_test_seed("paging-tenant");
    let compute = Keypair::from_test_seed("paging-compute");
    let validator_key = Keypair::from_test_seed("paging-validator");
    let mut params = Params::default().with_block_time(100);
    // Leases stay starting through the test: nothing closes them under it.
    params.lease_start_timeout_blocks = 100_000;
    params.validate().expect("valid test params");
    let bond = params.min_provider_bond;
    let endpoints: Vec<String> = (0..ITEMS.div_ceil(PROVIDERS_PER_LISTENER))
        .map(|_| fake_shard_endpoint())
        .collect();
    let storage: Vec<Keypair> = (0..ITEMS)
        .map(|i| Keypair::from_test_seed(&format!("paging-storage-{i}")))
        .collect();
    let mut providers: Vec<GenesisProvider> = storage
        .iter()
        .enumerate()
        .map(|(i, key)| GenesisProvider {
            address: key.address(),
            endpoint: format!(
                "{}/p/{}",
                endpoints[i / PROVIDERS_PER_LISTENER],
                key.address()
            ),
            region: "test".to_string(),
            capacity: Capacity {
                storage_bytes: 1 << 30,
                ..Capacity::default()
            },
            commission_bps: 500,
            bond,
            claimed_int8_ops: 0,
        })
        .collect();
    let per_lease = Hardware {
        cpu_millicores: 1,
        memory_bytes: 1 << 20,
        ..Hardware::default()
    };
    let items = u64::try_from(ITEMS).expect("items");
    providers.push(GenesisProvider {
        address: compute.address(),
        endpoint: "http://127.0.0.1:1".to_string(),
        region: "test".to_string(),
        capacity: Capacity {
            cpu_millicores: per_lease.cpu_millicores * items,
            memory_bytes: per_lease.memory_bytes * items,
            ..Capacity::default()
        },
        commission_bps: 500,
        bond,
        claimed_int8_ops: 0,
    });
    let genesis = Genesis {
        chain_id: "paging-test".to_string(),
        genesis_time_ms: u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis(),
        )
        .expect("ms"),
        params: params.clone(),
        accounts: vec![
            GenesisAccount {
                address: tenant.address(),
                balance: crn(1_000_000),
            },
            GenesisAccount {
                address: compute.address(),
                balance: crn(100_000),
            },
        ],
        validators: vec![GenesisValidator {
            address: validator_key.address(),
            stake: crn(100_000),
            p2p_address: format!("127.0.0.1:{}", free_port()),
        }],
        providers,
    };
    let validator = cairn_chain::start_validator(ValidatorConfig::new(
        NodeConfig {
            genesis,
            key: validator_key,
            partition_prefix: "cairn".to_string(),
            chain: ChainConfig::default(),
        },
        dir.path().join("validator"),
    ))
    .expect("validator starts");
    let handle = validator.handle().clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind api");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop_api, stopped) = tokio::sync::oneshot::channel::<()>();
    let api = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = cairn_api::serve(listener, handle, async {
                let _ = stopped.await;
            })
            .await;
        });
    });
    let client = NodeClient::new(&url);
    let start = Instant::now();
    while client
        .status()
        .map_or(0, |s| s["height"].as_u64().unwrap_or(0))
        < 1
    {
        assert!(start.elapsed() < Duration::from_secs(60), "no first block");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Placement: every active storage provider, the registry read to its end, and every
    // one of them answers the liveness probe.
    let registry = cairn_client::store::storage_providers(&client).expect("registry");
    assert_eq!(registry.len(), ITEMS, "placement's registry");
    let live = cairn_client::store::live_storage_providers(&client).expect("live");
    assert_eq!(live.len(), ITEMS, "placement's live providers");
    assert_eq!(
        cairn_market::tenant::providers(&client)
            .expect("dry run's providers")
            .len(),
        ITEMS + 1,
        "a dry run asks every active provider"
    );

    // A tenant's orders, a bid on each, each accepted: a lease apiece for one provider.
    let fee = params.min_tx_fee;
    let manifest = |i: usize| Hash::domain("paging.manifest", &[i.to_string().as_bytes()]);
    let orders: Vec<TxBody> = (0..ITEMS)
        .map(|i| {
            TxBody::CreateOrder(CreateOrder {
                manifest_hash: manifest(i),
                resources: Resources {
                    cpu_millicores: per_lease.cpu_millicores,
                    memory_bytes: per_lease.memory_bytes,
                    ..Resources::default()
                },
                max_price_per_block: Amount::from_ucrn(1),
                deposit: Amount::from_ucrn(u128::from(params.min_lease_deposit_blocks)),
                bid_window_blocks: params.max_bid_window_blocks,
            })
        })
        .collect();
    send_batch(&client, "paging-test", &tenant, orders, fee);
    let order_ids: Vec<OrderId> = (0..items).map(OrderId).collect();
    let bids: Vec<TxBody> = order_ids
        .iter()
        .map(|&order| {
            TxBody::PlaceBid(PlaceBid {
                order,
                price_per_block: Amount::from_ucrn(1),
                hardware: per_lease.clone(),
            })
        })
        .collect();
    send_batch(&client, "paging-test", &compute, bids, fee);
    let accepts: Vec<TxBody> = order_ids
        .iter()
        .map(|&order| {
            TxBody::AcceptBid(AcceptBid {
                order,
                provider: compute.address(),
            })
        })
        .collect();
    send_batch(&client, "paging-test", &tenant, accepts, fee);

    // Deploy's lookup finds the tenant's oldest order, past the newest-first first page.
    let oldest = client.get("/v1/orders/order-0").expect("order 0");
    let at = oldest["created_height"].as_u64().expect("created height");
    let found = cairn_market::tenant::find_order(&client, tenant.address(), manifest(0), at)
        .expect("the oldest order is found");
    assert_eq!(found, OrderId(0));

    // The provider's reconcile sees every one of its leases.
    let leases =
        cairn_market::provider::provider_leases(&client, compute.address()).expect("leases");
    assert_eq!(leases.len(), ITEMS, "the provider's leases");
    assert!(leases.iter().all(|(l, _)| l.provider == compute.address()));

    // The pages themselves: whole, in order, without repeats, and the cursor ends.
    let all = client.list_all("/v1/orders", "orders").expect("orders");
    let ids: Vec<u64> = all.iter().filter_map(|o| o["id"].as_u64()).collect();
    let newest_first: Vec<u64> = (0..items).rev().collect();
    assert_eq!(ids, newest_first, "orders newest first across pages");
    let first = client.get("/v1/providers?limit=1000").expect("a page");
    let next = first["next"].as_str().expect("a cursor after a full page");
    let rest = client
        .get(&format!("/v1/providers?limit=1000&after={next}"))
        .expect("the next page");
    assert_eq!(
        rest["providers"].as_array().map(Vec::len),
        Some(ITEMS + 1 - 1000)
    );
    assert!(rest["next"].is_null(), "the last page ends the list");
    let others = Address([7; 32]);
    for (path, code) in [
        ("/v1/leases?after=order-3".to_string(), "bad_after"),
        ("/v1/providers?after=nope".to_string(), "bad_after"),
        ("/v1/orders?status=bogus".to_string(), "bad_status"),
        ("/v1/providers?tenant=x".to_string(), "bad_query"),
        ("/v1/leases?provider=cairn00".to_string(), "bad_provider"),
        (format!("/v1/orders?owner={others}"), "bad_query"),
    ] {
        match client.get(&path) {
            Err(cairn_client::NodeError::Refused { code: got, .. }) => {
                assert_eq!(got, code, "{path}")
            }
            other => panic!("{path}: {other:?}"),
        }
    }
    let _ = stop_api.send(());
    api.join().expect("api thread");
    validator.shutdown().expect("validator stops");
}
