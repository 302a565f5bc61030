//! The tenant's side: deploy a manifest (order → bids → cheapest matching bid → lease →
//! manifest to the provider → the start on chain) and talk to a lease's provider with signed
//! requests. A deploy succeeds only once the provider has reported the workload running on
//! chain (billing starts there); a lease closed before that is reported with the reason and
//! what it cost, which for a workload that never ran is the transaction fees alone.
//!
//! Blocking (ureq through [`cairn_client::NodeClient`] and a plain agent): the CLI's
//! commands are a short sequence of requests and polls.

use crate::auth;
use crate::manifest::{self, Manifest};
use crate::provider::BidCheck;
use cairn_client::{NodeClient, NodeError};
use cairn_ledger::state::{Lease, LeaseState, Order, OrderStatus};
use cairn_types::tx::{AcceptBid, CloseLease, CreateOrder};
use cairn_types::{
    Address, Amount, BoundedString, CloseInitiator, Hash, Keypair, LeaseId, OrderId, TxBody,
};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How long a deploy waits for the provider to close a lease whose workload it could not
/// start, before closing it itself: the provider sends the close at its next poll.
const PROVIDER_CLOSE_WAIT: Duration = Duration::from_secs(60);

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
    #[error(transparent)]
    LeaseClosed(Box<LeaseFailure>),
}

/// A deploy's lease closed before (or soon after) its workload ran: who closed it, why, and
/// what it cost the tenant.
#[derive(Clone, Debug, Serialize, thiserror::Error)]
#[error(
    "{lease} was closed by the {} at height {closed_height}: {reason}\n  compute paid {} uCRN{}; escrow refunded {} uCRN; transaction fees {} uCRN",
    initiator_name(*initiator),
    compute_paid.ucrn(),
    if started_height.is_none() { " (the workload never ran)" } else { "" },
    escrow_refunded.ucrn(),
    fees_paid.ucrn()
)]
pub struct LeaseFailure {
    pub order: OrderId,
    pub lease: LeaseId,
    pub provider: Address,
    pub initiator: CloseInitiator,
    pub reason: String,
    pub closed_height: u64,
    /// The height the start was recorded at; `None` if the workload never ran.
    pub started_height: Option<u64>,
    /// Compute payment out of the escrow: zero for a lease that never started.
    pub compute_paid: Amount,
    /// The unspent escrow, back in the tenant's balance.
    pub escrow_refunded: Amount,
    /// Fees of the deploy's own transactions (order, acceptance, a close it sent).
    pub fees_paid: Amount,
}

fn initiator_name(initiator: CloseInitiator) -> &'static str {
    match initiator {
        CloseInitiator::Provider => "provider",
        CloseInitiator::Tenant => "tenant",
        CloseInitiator::Protocol => "protocol",
    }
}

/// Why a request to a provider's lease API failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseApiError {
    #[error("{url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("{code} ({status}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("{url}: unreadable answer: {reason}")]
    BadAnswer { url: String, reason: String },
    #[error("writing the output: {0}")]
    Output(#[source] std::io::Error),
}

impl LeaseApiError {
    /// The provider's error code, when it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
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
    /// The block that recorded the provider's start report: billing starts after it.
    pub started_height: u64,
    /// The height when the workload ran and its ingress answered.
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
    // Every page: a dry run that asked only the first page's providers would miss the rest.
    let list = node.list_all("/v1/providers?status=active", "providers")?;
    let mut out = Vec::new();
    for p in &list {
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
        image: m.image.clone(),
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
                    verdict: format!("would bid {}/block", price.unwrap_or(Amount::ZERO)),
                    price_per_block: price,
                }
            }
            Ok(v) => ProviderVerdict {
                provider,
                endpoint,
                would_bid: false,
                verdict: format!(
                    "would not bid: {}",
                    v["reason"].as_str().unwrap_or("refused")
                ),
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
    let mut fees = receipt_fee(&record);
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
    // The cheapest bid, preferring providers whose dry run said they would bid: a provider
    // cannot see the image or runtime behind an order's hash, so it may bid on one it
    // cannot start; the dry run could.
    let said_yes: BTreeSet<Address> = verdicts
        .iter()
        .filter(|v| v.would_bid)
        .map(|v| v.provider)
        .collect();
    let Some(best) = order
        .bids
        .values()
        .filter(|b| b.price_per_block <= max_price)
        .min_by(|a, b| {
            (!said_yes.contains(&a.provider))
                .cmp(&!said_yes.contains(&b.provider))
                .then(a.price_per_block.cmp(&b.price_per_block))
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
    if let Some(v) = verdicts
        .iter()
        .find(|v| v.provider == best.provider && !v.would_bid)
    {
        progress(&format!(
            "note: no provider that said it would bid has bid; {} said: {}",
            best.provider, v.verdict
        ));
    }
    progress(&format!(
        "accepting {}'s bid of {}/block",
        best.provider, best.price_per_block
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
    fees = fees.checked_add(receipt_fee(&record)).unwrap_or(fees);
    let lease_height = record["height"].as_u64().unwrap_or(0);
    let o = fetch_order(node, order_id)?;
    let OrderStatus::Matched { lease: lease_id } = o.status else {
        return Err(DeployError::Refused(format!(
            "accepting the bid failed on chain: {}",
            record["receipt"]
        )));
    };
    let failed = Failed {
        node,
        key,
        order: order_id,
        lease: lease_id,
        provider: best.provider,
        deposit,
    };
    let endpoint = providers(node)?
        .into_iter()
        .find(|(a, _)| *a == best.provider)
        .map(|(_, e)| e);
    let Some(endpoint) = endpoint else {
        let reason = format!("provider {} has no endpoint on chain", best.provider);
        return Err(failed.close_and_report(fees, &reason, opts.timeout));
    };
    progress(&format!(
        "lease {lease_id} at height {lease_height}; sending the manifest to {endpoint}"
    ));
    let api = LeaseApi::new(&endpoint, key.clone());
    if let Err(e) = api.send_manifest(lease_id, manifest_text) {
        // A provider that cannot run the workload closes the lease on chain with its
        // reason; anything else (it did not answer) the deploy closes itself.
        let provider_closes = matches!(
            e.code(),
            Some("start_failed" | "runtime_unavailable" | "gpus_unavailable")
        );
        progress(&format!("the provider did not start the workload: {e}"));
        if provider_closes {
            let wait = PROVIDER_CLOSE_WAIT.min(opts.timeout.saturating_sub(start.elapsed()));
            if let Some(failure) = failed.wait_closed(fees, wait)? {
                return Err(DeployError::LeaseClosed(Box::new(failure)));
            }
        }
        let reason = format!("the provider did not start the workload: {e}");
        return Err(failed.close_and_report(fees, &reason, opts.timeout));
    }
    progress("manifest accepted; waiting for the provider to report the start on chain");
    // Running: the start is on chain and, when the workload exposes a port, it answers.
    let url = format!("{}/l/{lease_id}/", endpoint.trim_end_matches('/'));
    let started_height = loop {
        let (l, _) = lease(node, lease_id)?;
        if let Some(failure) = failed.closed(&l, fees) {
            return Err(DeployError::LeaseClosed(Box::new(failure)));
        }
        if let Some(started) = l.started_height
            && (m.ingress_port().is_none() || ingress_answers(&url))
        {
            break started;
        }
        if start.elapsed() > opts.timeout {
            if l.started_height.is_some() {
                return Err(DeployError::Timeout(format!(
                    "{lease_id} runs and is billed, but its ingress did not answer within {} s: see `cairn lease logs {lease_id}`, or `cairn lease close {lease_id}`",
                    opts.timeout.as_secs()
                )));
            }
            let reason = format!(
                "cairn deploy stopped waiting: the provider did not report the workload running within {} s",
                opts.timeout.as_secs()
            );
            return Err(failed.close_and_report(fees, &reason, opts.timeout));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    Ok(Deployed {
        order: order_id,
        lease: lease_id,
        provider: best.provider,
        price_per_block: best.price_per_block,
        url,
        manifest_hash: m.hash(),
        order_height,
        lease_height,
        started_height,
        running_height: height(node)?,
        order_to_running_ms: start.elapsed().as_millis(),
    })
}

/// Whether the lease's ingress reaches the workload (not the provider answering for it).
fn ingress_answers(url: &str) -> bool {
    agent()
        .get(url)
        .call()
        .map(|r| {
            r.headers()
                .get(crate::provider::HEADER_PROVIDER_ANSWER)
                .is_none()
                && r.status().as_u16() < 500
        })
        .unwrap_or(false)
}

/// A transaction's fee, from its finalized record.
fn receipt_fee(record: &Value) -> Amount {
    serde_json::from_value(record["receipt"]["fee"].clone()).unwrap_or(Amount::ZERO)
}

/// A deploy's lease that may end before its workload runs, and how to report it.
struct Failed<'a> {
    node: &'a NodeClient,
    key: &'a Keypair,
    order: OrderId,
    lease: LeaseId,
    provider: Address,
    deposit: Amount,
}

impl Failed<'_> {
    /// The failure, if `l` is closed.
    fn closed(&self, l: &Lease, fees: Amount) -> Option<LeaseFailure> {
        let LeaseState::Closed {
            at,
            initiator,
            reason,
        } = &l.state
        else {
            return None;
        };
        Some(LeaseFailure {
            order: self.order,
            lease: self.lease,
            provider: self.provider,
            initiator: *initiator,
            reason: reason.clone(),
            closed_height: *at,
            started_height: l.started_height,
            compute_paid: l.paid_total,
            escrow_refunded: self
                .deposit
                .checked_sub(l.paid_total)
                .unwrap_or(Amount::ZERO),
            fees_paid: fees,
        })
    }

    /// Polls until the lease is closed on chain, for at most `wait`.
    fn wait_closed(&self, fees: Amount, wait: Duration) -> Result<Option<LeaseFailure>, NodeError> {
        let until = Instant::now() + wait;
        loop {
            let (l, _) = lease(self.node, self.lease)?;
            if let Some(failure) = self.closed(&l, fees) {
                return Ok(Some(failure));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Closes the lease from the tenant's side with `reason` (its unspent escrow returns)
    /// and reports how it ended. If it closed meanwhile, that close is reported instead.
    fn close_and_report(&self, fees: Amount, reason: &str, timeout: Duration) -> DeployError {
        let mut end = reason.len().min(256);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let body = TxBody::CloseLease(CloseLease {
            lease: self.lease,
            reason: BoundedString::new(&reason[..end]).unwrap_or_default(),
        });
        let mut fees = fees;
        let sent = self
            .node
            .send(self.key, body, None)
            .and_then(|hash| self.node.wait_finalized(&hash, timeout));
        match sent {
            Ok(record) => fees = fees.checked_add(receipt_fee(&record)).unwrap_or(fees),
            Err(e) => {
                return DeployError::Refused(format!(
                    "{}: {reason}; closing it failed too ({e}): close it with `cairn lease close {}`",
                    self.lease, self.lease
                ));
            }
        }
        match lease(self.node, self.lease) {
            Ok((l, _)) => match self.closed(&l, fees) {
                Some(failure) => DeployError::LeaseClosed(Box::new(failure)),
                None => DeployError::Refused(format!(
                    "{}: {reason}; it is still {} on chain",
                    self.lease,
                    l.state.name()
                )),
            },
            Err(e) => e.into(),
        }
    }
}

/// The order `tenant` made for the manifest `hash` at height `at`: the node keeps only this
/// tenant's orders (`tenant=`), newest first, and the pages are read until it turns up, so an
/// order is found however many orders the chain (or the tenant) holds.
pub fn find_order(
    node: &NodeClient,
    tenant: Address,
    hash: Hash,
    at: u64,
) -> Result<OrderId, DeployError> {
    let mut found = None;
    node.list_pages(&format!("/v1/orders?tenant={tenant}"), "orders", |page| {
        found = page
            .iter()
            .filter_map(|o| serde_json::from_value::<Order>(o.clone()).ok())
            .find(|o| o.tenant == tenant && o.manifest_hash == hash && o.created_height == at)
            .map(|o| o.id);
        if found.is_some() {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    })?;
    found.ok_or_else(|| {
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
    ) -> Result<ureq::http::Response<ureq::Body>, LeaseApiError> {
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
        result.map_err(|e| LeaseApiError::Transport {
            url,
            reason: e.to_string(),
        })
    }

    /// The provider's error answer, as a typed refusal.
    fn refusal(&self, path: &str, mut r: ureq::http::Response<ureq::Body>) -> LeaseApiError {
        let status = r.status().as_u16();
        match r.body_mut().read_json::<Value>() {
            Ok(v) => LeaseApiError::Refused {
                status,
                code: v["error"]["code"].as_str().unwrap_or("error").to_string(),
                message: v["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            },
            Err(e) => LeaseApiError::BadAnswer {
                url: format!("{}{path}", self.base),
                reason: format!("HTTP {status}: {e}"),
            },
        }
    }

    fn json(&self, method: &str, path: &str, body: &[u8]) -> Result<Value, LeaseApiError> {
        let mut r = self.request(method, path, body)?;
        if r.status().as_u16() >= 400 {
            return Err(self.refusal(path, r));
        }
        r.body_mut()
            .read_json()
            .map_err(|e| LeaseApiError::BadAnswer {
                url: format!("{}{path}", self.base),
                reason: e.to_string(),
            })
    }

    pub fn send_manifest(&self, lease: LeaseId, text: &str) -> Result<Value, LeaseApiError> {
        self.json(
            "PUT",
            &format!("/v1/leases/{lease}/manifest"),
            text.as_bytes(),
        )
    }

    pub fn status(&self, lease: LeaseId) -> Result<Value, LeaseApiError> {
        self.json("GET", &format!("/v1/leases/{lease}"), b"")
    }

    pub fn events(&self, lease: LeaseId) -> Result<Value, LeaseApiError> {
        self.json("GET", &format!("/v1/leases/{lease}/events"), b"")
    }

    pub fn close(&self, lease: LeaseId) -> Result<Value, LeaseApiError> {
        self.json("POST", &format!("/v1/leases/{lease}/close"), b"")
    }

    /// Writes the workload's output to `out`; with `follow`, until it exits.
    pub fn logs(
        &self,
        lease: LeaseId,
        follow: bool,
        out: &mut dyn std::io::Write,
    ) -> Result<(), LeaseApiError> {
        let path = format!("/v1/leases/{lease}/logs?follow={follow}");
        let mut r = self.request("GET", &path, b"")?;
        if r.status().as_u16() >= 400 {
            return Err(self.refusal(&path, r));
        }
        let mut reader = r.body_mut().as_reader();
        std::io::copy(&mut reader, out).map_err(LeaseApiError::Output)?;
        Ok(())
    }
}
