//! The tenant's side: deploy a manifest (order → bids → cheapest matching bid → lease →
//! manifest to the provider) and talk to a lease's provider with signed requests.
//!
//! Blocking (ureq through [`cairn_client::NodeClient`] and a plain agent): the CLI's
//! commands are a short sequence of requests and polls.

use crate::auth;
use crate::manifest::{self, Manifest};
use crate::provider::BidCheck;
use cairn_client::{NodeClient, NodeError};
use cairn_ledger::state::{Lease, Order, OrderStatus};
use cairn_types::tx::{AcceptBid, CreateOrder};
use cairn_types::{Address, Amount, Hash, Keypair, LeaseId, OrderId, TxBody};
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("{0}")]
    Refused(String),
    #[error("no bid for {order} before its deadline (height {deadline}); why each provider did not bid:\n{}", reasons_text(.reasons))]
    NoBid {
        order: OrderId,
        deadline: u64,
        reasons: Vec<ProviderVerdict>,
    },
    #[error("provider {provider} at {url}: {message}")]
    Provider {
        provider: Address,
        url: String,
        message: String,
    },
    #[error("timed out: {0}")]
    Timeout(String),
}

fn reasons_text(reasons: &[ProviderVerdict]) -> String {
    reasons
        .iter()
        .map(|r| format!("  {} ({}): {}", r.provider, r.endpoint, r.verdict))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One provider's answer to "would you bid on this?".
#[derive(Clone, Debug, Serialize)]
pub struct ProviderVerdict {
    pub provider: Address,
    pub endpoint: String,
    pub would_bid: bool,
    /// The price it would bid, or why not.
    pub verdict: String,
    pub price_per_block: Option<Amount>,
}

#[derive(Clone, Debug)]
pub struct DeployOptions {
    /// Caps the price per block below the manifest's pricing.
    pub max_price_per_block: Option<Amount>,
    /// The order's deposit covers this many blocks at the max price.
    pub deposit_blocks: u64,
    pub bid_window_blocks: u64,
    pub timeout: Duration,
}

#[derive(Clone, Debug, Serialize)]
pub struct Deployed {
    pub order: OrderId,
    pub lease: LeaseId,
    pub provider: Address,
    pub price_per_block: Amount,
    pub url: String,
    pub manifest_hash: Hash,
    pub order_height: u64,
    pub lease_height: u64,
    pub running_height: u64,
    pub order_to_running_ms: u128,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// The active providers on chain with their endpoints.
pub fn providers(node: &NodeClient) -> Result<Vec<(Address, String)>, NodeError> {
    let doc = node.get("/v1/providers?status=active&limit=1000")?;
    let mut out = Vec::new();
    for p in doc["providers"].as_array().into_iter().flatten() {
        let p = if p["provider"].is_object() {
            &p["provider"]
        } else {
            p
        };
        let (Some(address), Some(endpoint)) = (
            p["address"].as_str().and_then(|a| a.parse().ok()),
            p["endpoint"].as_str(),
        ) else {
            continue;
        };
        if p["status"].as_str().is_some_and(|s| s != "active")
            || p["status"]["status"]
                .as_str()
                .is_some_and(|s| s != "active")
        {
            continue;
        }
        out.push((address, endpoint.to_string()));
    }
    Ok(out)
}

/// Asks every provider whether it would bid on `manifest` at `max_price`.
pub fn dry_run(
    node: &NodeClient,
    m: &Manifest,
    max_price: Amount,
) -> Result<Vec<ProviderVerdict>, NodeError> {
    let check = BidCheck {
        resources: m.resources(),
        max_price_per_block: max_price,
        runtime: m.runtime,
    };
    let agent = agent();
    let mut out = Vec::new();
    for (provider, endpoint) in providers(node)? {
        let url = format!("{}/v1/bid-check", endpoint.trim_end_matches('/'));
        let answer = agent
            .post(&url)
            .send_json(&check)
            .map_err(|e| e.to_string())
            .and_then(|mut r| {
                let status = r.status().as_u16();
                let v: Value = r.body_mut().read_json().map_err(|e| e.to_string())?;
                if status >= 400 {
                    return Err(format!("HTTP {status}: {}", v["error"]["message"]));
                }
                Ok(v)
            });
        let verdict = match answer {
            Ok(v) if v["would_bid"] == true => {
                let price: Option<Amount> =
                    serde_json::from_value(v["offer"]["price_per_block"].clone()).ok();
                ProviderVerdict {
                    provider,
                    endpoint,
                    would_bid: true,
                    verdict: format!("would bid {} uCRN/block", price.map_or(0, Amount::ucrn)),
                    price_per_block: price,
                }
            }
            Ok(v) => ProviderVerdict {
                provider,
                endpoint,
                would_bid: false,
                verdict: v["reason"].as_str().unwrap_or("refused").to_string(),
                price_per_block: None,
            },
            Err(e) => ProviderVerdict {
                provider,
                endpoint,
                would_bid: false,
                verdict: format!("unreachable or not a compute provider: {e}"),
                price_per_block: None,
            },
        };
        out.push(verdict);
    }
    Ok(out)
}

fn fetch_order(node: &NodeClient, id: OrderId) -> Result<Order, NodeError> {
    let v = node.get(&format!("/v1/orders/{id}"))?;
    serde_json::from_value(v).map_err(|e| NodeError::BadAnswer {
        url: format!("{}/v1/orders/{id}", node.base()),
        reason: e.to_string(),
    })
}

pub fn lease(node: &NodeClient, id: LeaseId) -> Result<(Lease, Value), NodeError> {
    let v = node.get(&format!("/v1/leases/{id}"))?;
    let lease = serde_json::from_value(v["lease"].clone()).map_err(|e| NodeError::BadAnswer {
        url: format!("{}/v1/leases/{id}", node.base()),
        reason: e.to_string(),
    })?;
    Ok((lease, v))
}

fn height(node: &NodeClient) -> Result<u64, NodeError> {
    Ok(node.status()?["height"].as_u64().unwrap_or(0))
}

/// Places the order and waits for its bids; returns the order once the bid window has
/// closed or every provider that said it would bid has.
pub fn deploy(
    node: &NodeClient,
    key: &Keypair,
    manifest_text: &str,
    opts: &DeployOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Deployed, DeployError> {
    let m = manifest::parse(manifest_text)?;
    let max_price = opts
        .max_price_per_block
        .map_or(m.max_price_per_block, |p| p.min(m.max_price_per_block));
    let verdicts = dry_run(node, &m, max_price)?;
    let expected = verdicts.iter().filter(|v| v.would_bid).count();
    let deposit = max_price
        .checked_mul(u128::from(opts.deposit_blocks))
        .ok_or_else(|| DeployError::Refused("deposit overflows".to_string()))?;
    let start = Instant::now();
    let body = TxBody::CreateOrder(CreateOrder {
        manifest_hash: m.hash(),
        resources: m.resources(),
        max_price_per_block: max_price,
        deposit,
        bid_window_blocks: opts.bid_window_blocks,
    });
    // Checked before it is signed: a deposit above the balance costs no fee.
    if let Some(refusal) = node.check(&key.address(), &body, None)? {
        return Err(DeployError::Refused(format!(
            "the order would fail, so nothing was signed or paid: {}",
            refusal.message
        )));
    }
    let hash = node.send(key, body, None)?;
    let record = node.wait_finalized(&hash, opts.timeout)?;
    let err = &record["receipt"]["error"];
    if !err.is_null() {
        return Err(DeployError::Refused(format!(
            "the order was refused on chain: {err}"
        )));
    }
    let order_height = record["height"].as_u64().unwrap_or(0);
    let order_id = find_order(node, key.address(), m.hash(), order_height)?;
    progress(&format!(
        "order {order_id} placed at height {order_height}; waiting for bids"
    ));
    let order = loop {
        let o = fetch_order(node, order_id)?;
        let h = height(node)?;
        let in_ = o.bids.len();
        if h > o.bid_deadline || (expected > 0 && in_ >= expected) {
            break o;
        }
        if start.elapsed() > opts.timeout {
            return Err(DeployError::Timeout(format!(
                "waiting for bids on {order_id}"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let Some(best) = order
        .bids
        .values()
        .filter(|b| b.price_per_block <= max_price)
        .min_by(|a, b| {
            a.price_per_block
                .cmp(&b.price_per_block)
                .then(b.proven_int8_ops.cmp(&a.proven_int8_ops))
                .then(a.provider.cmp(&b.provider))
        })
        .cloned()
    else {
        // Ask again now: the providers' answers at the deadline are the reasons.
        let reasons = dry_run(node, &m, max_price)?;
        return Err(DeployError::NoBid {
            order: order_id,
            deadline: order.bid_deadline,
            reasons,
        });
    };
    progress(&format!(
        "accepting {}'s bid of {} uCRN/block",
        best.provider,
        best.price_per_block.ucrn()
    ));
    let hash = node.send(
        key,
        TxBody::AcceptBid(AcceptBid {
            order: order_id,
            provider: best.provider,
        }),
        None,
    )?;
    let record = node.wait_finalized(&hash, opts.timeout)?;
    let lease_height = record["height"].as_u64().unwrap_or(0);
    let o = fetch_order(node, order_id)?;
    let OrderStatus::Matched { lease: lease_id } = o.status else {
        return Err(DeployError::Refused(format!(
            "accepting the bid failed on chain: {}",
            record["receipt"]
        )));
    };
    let endpoint = providers(node)?
        .into_iter()
        .find(|(a, _)| *a == best.provider)
        .map(|(_, e)| e)
        .ok_or_else(|| {
            DeployError::Refused(format!("provider {} has no endpoint", best.provider))
        })?;
    let api = LeaseApi::new(&endpoint, key.clone());
    api.send_manifest(lease_id, manifest_text)
        .map_err(|message| DeployError::Provider {
            provider: best.provider,
            url: endpoint.clone(),
            message,
        })?;
    // Running: the workload's process is up and, when it exposes a port, answers on it.
    let url = format!("{}/l/{lease_id}/", endpoint.trim_end_matches('/'));
    loop {
        let status = api
            .status(lease_id)
            .map_err(|message| DeployError::Provider {
                provider: best.provider,
                url: endpoint.clone(),
                message,
            })?;
        let running = status["workload"] == "running";
        let answers = m.ingress_port().is_none()
            || agent()
                .get(&url)
                .call()
                .map(|r| {
                    r.headers()
                        .get(crate::provider::HEADER_PROVIDER_ANSWER)
                        .is_none()
                        && r.status().as_u16() < 500
                })
                .unwrap_or(false);
        if running && answers {
            break;
        }
        if status["workload"] == "exited" {
            return Err(DeployError::Provider {
                provider: best.provider,
                url: endpoint,
                message: "the workload exited right after starting: see `cairn lease logs`"
                    .to_string(),
            });
        }
        if start.elapsed() > opts.timeout {
            return Err(DeployError::Timeout(format!(
                "waiting for {lease_id} to run"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Deployed {
        order: order_id,
        lease: lease_id,
        provider: best.provider,
        price_per_block: best.price_per_block,
        url,
        manifest_hash: m.hash(),
        order_height,
        lease_height,
        running_height: height(node)?,
        order_to_running_ms: start.elapsed().as_millis(),
    })
}

fn find_order(
    node: &NodeClient,
    tenant: Address,
    hash: Hash,
    at: u64,
) -> Result<OrderId, DeployError> {
    let doc = node.get("/v1/orders?limit=1000")?;
    doc["orders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| serde_json::from_value::<Order>(o.clone()).ok())
        .find(|o| o.tenant == tenant && o.manifest_hash == hash && o.created_height == at)
        .map(|o| o.id)
        .ok_or_else(|| {
            DeployError::Refused(format!("the order made at height {at} is not on chain"))
        })
}

/// Signed requests to one provider's lease API.
pub struct LeaseApi {
    base: String,
    key: Keypair,
    agent: ureq::Agent,
}

impl LeaseApi {
    pub fn new(base: &str, key: Keypair) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            key,
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(60)))
                .http_status_as_error(false)
                .build()
                .into(),
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<ureq::http::Response<ureq::Body>, String> {
        let url = format!("{}{path}", self.base);
        let headers = auth::sign(&self.key, method, path, auth::now_ms(), body);
        let result = match method {
            "PUT" | "POST" => {
                let mut req = if method == "PUT" {
                    self.agent.put(&url)
                } else {
                    self.agent.post(&url)
                };
                for (h, v) in &headers {
                    req = req.header(*h, v);
                }
                req.send(body)
            }
            _ => {
                let mut req = self.agent.get(&url);
                for (h, v) in &headers {
                    req = req.header(*h, v);
                }
                req.call()
            }
        };
        let response = result.map_err(|e| format!("{url}: {e}"))?;
        Ok(response)
    }

    fn json(&self, method: &str, path: &str, body: &[u8]) -> Result<Value, String> {
        let mut r = self.request(method, path, body)?;
        let status = r.status().as_u16();
        let v: Value = r.body_mut().read_json().map_err(|e| e.to_string())?;
        if status >= 400 {
            return Err(format!(
                "{} ({status}): {}",
                v["error"]["code"].as_str().unwrap_or("error"),
                v["error"]["message"].as_str().unwrap_or_default()
            ));
        }
        Ok(v)
    }

    pub fn send_manifest(&self, lease: LeaseId, text: &str) -> Result<Value, String> {
        self.json(
            "PUT",
            &format!("/v1/leases/{lease}/manifest"),
            text.as_bytes(),
        )
    }

    pub fn status(&self, lease: LeaseId) -> Result<Value, String> {
        self.json("GET", &format!("/v1/leases/{lease}"), b"")
    }

    pub fn events(&self, lease: LeaseId) -> Result<Value, String> {
        self.json("GET", &format!("/v1/leases/{lease}/events"), b"")
    }

    pub fn close(&self, lease: LeaseId) -> Result<Value, String> {
        self.json("POST", &format!("/v1/leases/{lease}/close"), b"")
    }

    /// Writes the workload's output to `out`; with `follow`, until it exits.
    pub fn logs(
        &self,
        lease: LeaseId,
        follow: bool,
        out: &mut dyn std::io::Write,
    ) -> Result<(), String> {
        let path = format!("/v1/leases/{lease}/logs?follow={follow}");
        let mut r = self.request("GET", &path, b"")?;
        let status = r.status().as_u16();
        if status >= 400 {
            let v: Value = r.body_mut().read_json().map_err(|e| e.to_string())?;
            return Err(format!(
                "{} ({status})",
                v["error"]["message"].as_str().unwrap_or_default()
            ));
        }
        let mut reader = r.body_mut().as_reader();
        std::io::copy(&mut reader, out).map_err(|e| e.to_string())?;
        Ok(())
    }
}
