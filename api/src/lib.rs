//! Serve a Cairn node over HTTP: JSON routes, server-sent events of finalized blocks, and the OpenAPI document.
//!
//! The routes are design §5's binding node API. Everything is read from the node's finalized
//! state through [`cairn_chain::NodeHandle`]; the only write is `POST /v1/txs`, which goes
//! through the same admission as a block (signature, chain id, nonce, fee, size) before it
//! reaches the mempool. Every error is JSON: `{"error": {"code": "...", "message": "..."}}`
//! with a 4xx status naming what was wrong.

pub mod metrics;
pub mod openapi;
mod views;

pub use views::STORAGE_LOSS_WINDOW_EPOCHS;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cairn_chain::{NodeHandle, SubmitError};
use cairn_types::tx::MAX_TX_BYTES;
use cairn_types::{Address, DealId, Hash, LeaseId, OrderId, SignedTransaction};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;

/// Largest request body: a transaction in JSON is at most about twice its binary size.
pub const MAX_BODY_BYTES: usize = 2 * MAX_TX_BYTES + 4096;

/// An error answer: a status and a stable code, with a message for people.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
    fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} {id}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request("bad_query", rejection.body_text())
    }
}

type ApiResult = Result<axum::Json<Value>, ApiError>;

fn ok(value: Value) -> ApiResult {
    Ok(axum::Json(value))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "serialization",
            e.to_string(),
        )
    })
}

fn parse<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e| ApiError::bad_request(&format!("bad_{what}"), format!("{what} {text:?}: {e}")))
}

/// The router of every route, for [`serve`] or for embedding.
pub fn router(node: NodeHandle) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/txs", post(submit))
        .route(
            "/v1/txs/batch",
            post(submit_batch)
                .layer(DefaultBodyLimit::max(MAX_BATCH_BODY_BYTES))
                // Outside the body limit: the permit is taken before the body is buffered.
                .layer(axum::middleware::from_fn_with_state(
                    cairn_http::InFlight::new(MAX_CONCURRENT_BATCHES),
                    cairn_http::concurrency_limit,
                )),
        )
        .route("/v1/txs/check", post(check))
        .route("/v1/txs/{hash}", get(tx))
        .route("/v1/accounts/{address}", get(account))
        .route("/v1/blocks/{height}", get(block))
        .route("/v1/providers", get(providers))
        .route("/v1/providers/{id}", get(provider))
        .route("/v1/blobs/{id}", get(blob))
        .route("/v1/deals", get(deals))
        .route("/v1/deals/{id}", get(deal))
        .route("/v1/orders", get(orders))
        .route("/v1/orders/{id}", get(order))
        .route("/v1/leases", get(leases))
        .route("/v1/leases/{id}", get(lease))
        .route("/v1/epochs/{n}", get(epoch))
        .route("/v1/network", get(network))
        .route("/v1/params", get(params))
        .route("/v1/events", get(events))
        .route("/v1/openapi.json", get(openapi_doc))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_route",
                "no such route: see /v1/openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(node.clone())
        .merge(metrics::node_router(node))
}

/// Serves the API on `listener` until `shutdown` resolves, within [`cairn_http::Limits`]'s
/// defaults: the node shares its process with consensus, so no client may exhaust it.
pub async fn serve(
    listener: tokio::net::TcpListener,
    node: NodeHandle,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    cairn_http::serve(
        listener,
        router(node),
        cairn_http::Limits::default(),
        shutdown,
    )
    .await
}

async fn openapi_doc() -> axum::Json<Value> {
    axum::Json(openapi::document())
}

async fn status(State(node): State<NodeHandle>) -> ApiResult {
    ok(to_json(&node.status())?)
}

/// How a request body is encoded, from its Content-Type (JSON when none is given).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyFormat {
    Binary,
    Json,
}

fn body_format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if content_type.starts_with("application/octet-stream") {
        Ok(BodyFormat::Binary)
    } else if content_type.starts_with("application/json") {
        Ok(BodyFormat::Json)
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type {content_type:?}: use application/json or application/octet-stream"
            ),
        ))
    }
}

/// `POST /v1/txs`: the canonical encoding (`application/octet-stream`) or the JSON form.
async fn submit(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let tx: SignedTransaction = if body_format(&headers)? == BodyFormat::Binary {
        SignedTransaction::from_bytes(&body).map_err(|e| match e {
            cairn_types::tx::DecodeError::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
            }
            cairn_types::tx::DecodeError::Malformed { .. } => {
                ApiError::bad_request("malformed_tx", e.to_string())
            }
        })?
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("malformed_tx", format!("transaction JSON: {e}")))?
    };
    match node.submit(tx) {
        Ok(hash) => Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({ "hash": hash, "status": "pending" })),
        )),
        Err(e) => Err(submit_error(e)),
    }
}

/// An unsigned transaction to check: who sends it, what it does, and its fee (the chain's
/// minimum when left out).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    sender: Address,
    body: cairn_types::TxBody,
    fee: Option<cairn_types::Amount>,
}

/// `POST /v1/txs/check`: whether a transaction would go through on the finalized state, asked
/// before it is signed, so a client refuses what would fail instead of paying its fee.
/// Always 200 when the request is well-formed: `{"ok": true}` or `{"ok": false, "stage":
/// "admission" | "body", "error": {reason, ...}, "message"}`.
async fn check(State(node): State<NodeHandle>, body: Bytes) -> ApiResult {
    let request: CheckRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("malformed_check", format!("{{sender, body, fee?}}: {e}"))
    })?;
    // A copy of the state per check: off the async workers.
    let verdict = tokio::task::spawn_blocking(move || {
        node.with_ledger(|l| {
            let fee = request.fee.unwrap_or(l.params().min_tx_fee);
            l.preview(request.sender, fee, &request.body)
        })
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    match verdict {
        Ok(()) => ok(json!({ "ok": true })),
        Err(e) => {
            let (stage, error) = match &e {
                cairn_ledger::PreviewError::Admission(a) => ("admission", to_json(a)?),
                cairn_ledger::PreviewError::Body(b) => ("body", to_json(b)?),
            };
            ok(json!({ "ok": false, "stage": stage, "error": error, "message": e.to_string() }))
        }
    }
}

/// The API error for a refused submission.
fn submit_error(e: SubmitError) -> ApiError {
    match e {
        SubmitError::Admission(e) => {
            let code = serde_json::to_value(&e)
                .ok()
                .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| "inadmissible".to_string());
            let status = if matches!(e, cairn_ledger::AdmissionError::TooLarge { .. }) {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            ApiError::new(status, code, e.to_string())
        }
        e @ SubmitError::Duplicate { .. } => {
            ApiError::new(StatusCode::CONFLICT, "duplicate", e.to_string())
        }
        e @ SubmitError::Empty => ApiError::bad_request("empty_batch", e.to_string()),
        e => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "mempool_full",
            e.to_string(),
        ),
    }
}

pub use cairn_types::tx::MAX_BATCH_TXS;
/// Largest `POST /v1/txs/batch` body.
pub const MAX_BATCH_BODY_BYTES: usize = 16 << 20;
/// Batch requests in flight at once; one more is answered 503 `busy`. Bounds the memory that
/// batch bodies may hold to this many times [`MAX_BATCH_BODY_BYTES`] (64 MiB).
pub const MAX_CONCURRENT_BATCHES: usize = 4;

/// `POST /v1/txs/batch`: many transactions in one request, admitted with one batched
/// signature verification. The body is the canonical encoding of a length-prefixed list
/// (`application/octet-stream`) or a JSON array. Each transaction gets its own result, in
/// order; the request fails as a whole only when the body itself is malformed.
async fn submit_batch(
    State(node): State<NodeHandle>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let txs: Vec<SignedTransaction> = if body_format(&headers)? == BodyFormat::Binary {
        cairn_types::tx::decode_batch(&body).map_err(|e| {
            ApiError::bad_request(
                "malformed_batch",
                format!("batch of at most {MAX_BATCH_TXS} encoded transactions: {e}"),
            )
        })?
    } else {
        let txs: Vec<SignedTransaction> = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "malformed_batch",
                format!("JSON array of transactions: {e}"),
            )
        })?;
        if txs.len() > MAX_BATCH_TXS {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "{} transactions, at most {MAX_BATCH_TXS} per batch",
                    txs.len()
                ),
            ));
        }
        txs
    };
    if txs.is_empty() {
        return Err(submit_error(SubmitError::Empty));
    }
    // Verification of a large batch takes milliseconds: keep it off the async workers.
    let results = tokio::task::spawn_blocking(move || node.submit_batch(txs))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let refused = results.len() - accepted;
    let results: Vec<Value> = results
        .into_iter()
        .map(|r| match r {
            Ok(hash) => json!({ "hash": hash, "status": "pending" }),
            Err(e) => {
                let e = submit_error(e);
                json!({ "error": { "code": e.code, "message": e.message } })
            }
        })
        .collect();
    ok(json!({ "accepted": accepted, "refused": refused, "results": results }))
}

async fn tx(State(node): State<NodeHandle>, Path(hash): Path<String>) -> ApiResult {
    let hash: Hash = parse("hash", &hash)?;
    if let Some(record) = node.receipt(&hash) {
        let mut value = to_json(&record)?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("status".into(), json!("finalized"));
        }
        return ok(value);
    }
    if node.is_pending(&hash) {
        return ok(json!({ "hash": hash, "status": "pending" }));
    }
    Err(ApiError::not_found("transaction", hash))
}

async fn account(State(node): State<NodeHandle>, Path(address): Path<String>) -> ApiResult {
    let address: Address = parse("address", &address)?;
    ok(node.with_ledger(|l| views::account(l, &address)))
}

async fn block(State(node): State<NodeHandle>, Path(height): Path<String>) -> ApiResult {
    let height: u64 = parse("height", &height)?;
    // The archive too, not only the cache: an indexer catching up asks for old blocks.
    let block = node
        .fetch_block(height)
        .await
        .ok_or_else(|| ApiError::not_found("finalized block at height", height))?;
    ok(views::block(&block))
}

/// The query of every list route: a page (`limit`, `after`) and filters. One struct for all
/// four routes, not `#[serde(flatten)]` (flattened fields lose their types in a query string:
/// "5" would not read as a number); [`ListQuery::filter`] refuses a filter its route lacks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// At most this many items (default 100, at most 1000).
    limit: Option<usize>,
    /// The `next` cursor of the previous page: items after it, in the route's order.
    after: Option<String>,
    /// Only items with this status.
    status: Option<String>,
    /// Only this owner's items (deals).
    owner: Option<String>,
    /// Only items of this provider (deals it holds shards of, its leases).
    provider: Option<String>,
    /// Only this tenant's items (orders, leases).
    tenant: Option<String>,
}

/// Largest page a list route answers.
pub const MAX_PAGE_ITEMS: usize = 1000;

/// A filter a list route takes, for [`ListQuery::filter`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum FilterParam {
    Owner,
    Provider,
    Tenant,
}

impl ListQuery {
    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(100),
            Some(n) if (1..=MAX_PAGE_ITEMS).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::bad_request(
                "bad_query",
                format!("limit {n}: use 1 to {MAX_PAGE_ITEMS}"),
            )),
        }
    }

    /// The cursor, parsed as the key of the route's items.
    fn after<K: std::str::FromStr>(&self) -> Result<Option<K>, ApiError>
    where
        K::Err: std::fmt::Display,
    {
        self.after
            .as_deref()
            .map(|text| {
                text.parse().map_err(|e| {
                    ApiError::bad_request(
                        "bad_after",
                        format!("after {text:?}: not a cursor of this list (pass the `next` of its previous page): {e}"),
                    )
                })
            })
            .transpose()
    }

    /// The filter, checked against what `route` takes: its status names and its filters.
    fn filter(
        &self,
        route: &str,
        statuses: &[&str],
        takes: &[FilterParam],
    ) -> Result<views::Filter, ApiError> {
        let address = |param: FilterParam, name: &str, text: &Option<String>| {
            let Some(text) = text.as_deref() else {
                return Ok(None);
            };
            if !takes.contains(&param) {
                return Err(ApiError::bad_request(
                    "bad_query",
                    format!("{name}: {route} takes no {name} filter"),
                ));
            }
            parse::<Address>(name, text).map(Some)
        };
        if let Some(status) = self.status.as_deref()
            && !statuses.contains(&status)
        {
            return Err(ApiError::bad_request(
                "bad_status",
                format!(
                    "status {status:?}: {route} lists these statuses: {}",
                    statuses.join(", ")
                ),
            ));
        }
        Ok(views::Filter {
            status: self.status.clone(),
            owner: address(FilterParam::Owner, "owner", &self.owner)?,
            provider: address(FilterParam::Provider, "provider", &self.provider)?,
            tenant: address(FilterParam::Tenant, "tenant", &self.tenant)?,
        })
    }
}

/// `GET /v1/providers`: in address order, a page at a time.
async fn providers(
    State(node): State<NodeHandle>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = query?;
    let limit = q.limit()?;
    let after: Option<Address> = q.after()?;
    let filter = q.filter("/v1/providers", views::PROVIDER_STATUSES, &[])?;
    ok(node.with_ledger(|l| views::providers(l, &filter, after, limit)))
}

async fn provider(State(node): State<NodeHandle>, Path(id): Path<String>) -> ApiResult {
    let address: Address = parse("provider", &id)?;
    node.with_ledger(|l| views::provider(l, &address))
        .ok_or_else(|| ApiError::not_found("provider", address))
        .map(axum::Json)
}

async fn blob(State(node): State<NodeHandle>, Path(id): Path<String>) -> ApiResult {
    let id: Hash = parse("blob_id", &id)?;
    node.with_ledger(|l| views::blob(l, &id))
        .ok_or_else(|| ApiError::not_found("blob", id))
        .map(axum::Json)
}

/// `GET /v1/deals`: newest first, a page at a time.
async fn deals(
    State(node): State<NodeHandle>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = query?;
    let limit = q.limit()?;
    let after: Option<DealId> = q.after()?;
    let filter = q.filter(
        "/v1/deals",
        views::DEAL_STATUSES,
        &[FilterParam::Owner, FilterParam::Provider],
    )?;
    ok(node.with_ledger(|l| views::deals(l, &filter, after, limit)))
}

async fn deal(State(node): State<NodeHandle>, Path(id): Path<String>) -> ApiResult {
    let id: DealId = parse("deal_id", &id)?;
    node.with_ledger(|l| views::deal(l, id))
        .ok_or_else(|| ApiError::not_found("deal", id))
        .map(axum::Json)
}

/// `GET /v1/orders`: newest first, a page at a time.
async fn orders(
    State(node): State<NodeHandle>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = query?;
    let limit = q.limit()?;
    let after: Option<OrderId> = q.after()?;
    let filter = q.filter("/v1/orders", views::ORDER_STATUSES, &[FilterParam::Tenant])?;
    ok(node.with_ledger(|l| views::orders(l, &filter, after, limit)))
}

async fn order(State(node): State<NodeHandle>, Path(id): Path<String>) -> ApiResult {
    let id: OrderId = parse("order_id", &id)?;
    node.with_ledger(|l| views::order(l, id))
        .ok_or_else(|| ApiError::not_found("order", id))
        .map(axum::Json)
}

/// `GET /v1/leases`: newest first, a page at a time.
async fn leases(
    State(node): State<NodeHandle>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = query?;
    let limit = q.limit()?;
    let after: Option<LeaseId> = q.after()?;
    let filter = q.filter(
        "/v1/leases",
        views::LEASE_STATUSES,
        &[FilterParam::Tenant, FilterParam::Provider],
    )?;
    ok(node.with_ledger(|l| views::leases(l, &filter, after, limit)))
}

async fn lease(State(node): State<NodeHandle>, Path(id): Path<String>) -> ApiResult {
    let id: LeaseId = parse("lease_id", &id)?;
    node.with_ledger(|l| views::lease(l, id))
        .ok_or_else(|| ApiError::not_found("lease", id))
        .map(axum::Json)
}

async fn epoch(State(node): State<NodeHandle>, Path(n): Path<String>) -> ApiResult {
    let n: u64 = parse("epoch", &n)?;
    node.with_ledger(|l| views::epoch(l, n))
        .ok_or_else(|| ApiError::not_found("epoch", n))
        .map(axum::Json)
}

async fn network(State(node): State<NodeHandle>) -> ApiResult {
    ok(node.with_ledger(views::network))
}

/// The chain's parameters, as genesis fixed them: clients read them here rather than from
/// a local genesis file that may belong to another chain.
async fn params(State(node): State<NodeHandle>) -> ApiResult {
    ok(node.with_ledger(views::params))
}

/// Server-sent events: one `block` event per finalized block, with its receipts.
async fn events(
    State(node): State<NodeHandle>,
) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    let stream = node.subscribe().map(|event| {
        let data = serde_json::to_string(&event).unwrap_or_else(|e| {
            json!({ "error": { "code": "serialization", "message": e.to_string() } }).to_string()
        });
        Ok(Event::default().event("block").data(data))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
