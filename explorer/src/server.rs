//! The explorer's HTTP server: the JSON API of design §8, the dashboard pages and `/metrics`.
//! Unknown ids answer 404 (an HTML page, or JSON under `/api/`); malformed ids or query
//! parameters answer 400 naming what is wrong.

use crate::figures::{self, Period, Source};
use crate::follow::FollowStatus;
use crate::html;
use crate::index::Index;
use crate::prices::PriceTable;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use cairn_client::{NodeClient, NodeError};
use cairn_types::{Address, DealId, LeaseId};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::{Arc, RwLock};

#[derive(Clone)]
pub struct AppState {
    pub index: Arc<RwLock<Index>>,
    pub status: Arc<RwLock<FollowStatus>>,
    pub node: NodeClient,
    pub prices: Arc<PriceTable>,
    pub crn_usd: f64,
}

impl AppState {
    fn read<R>(&self, f: impl FnOnce(&Index) -> R) -> Result<R, Failure> {
        let index = self.index.read().map_err(|_| {
            Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "index lock poisoned",
            )
        })?;
        Ok(f(&index))
    }
}

/// An error, answered as JSON or as a page.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    fn json(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, axum::Json(body)).into_response()
    }
    fn page(self) -> Response {
        (
            self.status,
            Html(html::error_page(self.status.as_u16(), &self.message)),
        )
            .into_response()
    }
}

fn from_node(e: NodeError, what: &str) -> Failure {
    match e {
        NodeError::Refused { status: 404, .. } => Failure::not_found(format!("no {what}")),
        NodeError::Refused {
            status: 400,
            message,
            ..
        } => Failure::bad(message),
        other => Failure::new(
            StatusCode::BAD_GATEWAY,
            "node_unreachable",
            other.to_string(),
        ),
    }
}

async fn node_get(state: &AppState, path: String, what: String) -> Result<Value, Failure> {
    let node = state.node.clone();
    tokio::task::spawn_blocking(move || node.get(&path).map_err(|e| from_node(e, &what)))
        .await
        .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
}

type JsonResult = Result<axum::Json<Value>, Failure>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevenueQuery {
    by: Option<String>,
    source: Option<String>,
}

impl RevenueQuery {
    fn parse(query: Result<Query<Self>, QueryRejection>) -> Result<(Period, Source), Failure> {
        let Query(q) = query.map_err(|e| Failure::bad(e.body_text()))?;
        let by =
            q.by.as_deref()
                .unwrap_or("epoch")
                .parse()
                .map_err(Failure::bad)?;
        let source = q
            .source
            .as_deref()
            .unwrap_or("all")
            .parse()
            .map_err(Failure::bad)?;
        Ok((by, source))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

fn no_query(query: Result<Query<NoQuery>, QueryRejection>) -> Result<(), Failure> {
    query.map(|_| ()).map_err(|e| Failure::bad(e.body_text()))
}

fn parse_address(id: &str) -> Result<Address, Failure> {
    id.parse()
        .map_err(|e| Failure::bad(format!("provider {id:?}: {e}")))
}

async fn api_summary(
    State(s): State<AppState>,
    q: Result<Query<NoQuery>, QueryRejection>,
) -> JsonResult {
    no_query(q)?;
    Ok(axum::Json(s.read(|i| figures::summary(i, s.crn_usd))?))
}

async fn api_revenue(
    State(s): State<AppState>,
    q: Result<Query<RevenueQuery>, QueryRejection>,
) -> JsonResult {
    let (by, source) = RevenueQuery::parse(q)?;
    let rows = s.read(|i| figures::revenue(i, by, source))?;
    Ok(axum::Json(
        json!({ "by": by, "source": source, "periods": rows }),
    ))
}

async fn api_tvl(
    State(s): State<AppState>,
    q: Result<Query<NoQuery>, QueryRejection>,
) -> JsonResult {
    no_query(q)?;
    Ok(axum::Json(s.read(|i| figures::tvl(i, s.crn_usd))?))
}

async fn api_providers(
    State(s): State<AppState>,
    q: Result<Query<NoQuery>, QueryRejection>,
) -> JsonResult {
    no_query(q)?;
    Ok(axum::Json(s.read(figures::providers)?))
}

async fn api_provider(State(s): State<AppState>, Path(id): Path<String>) -> JsonResult {
    let address = parse_address(&id)?;
    let node = node_get(
        &s,
        format!("/v1/providers/{address}"),
        format!("provider {address}"),
    )
    .await?;
    let history = s.read(|i| figures::provider_history(i, &address))?;
    Ok(axum::Json(json!({ "node": node, "indexed": history })))
}

async fn api_capacity(
    State(s): State<AppState>,
    q: Result<Query<NoQuery>, QueryRejection>,
) -> JsonResult {
    no_query(q)?;
    Ok(axum::Json(s.read(figures::capacity)?))
}

async fn api_emission(
    State(s): State<AppState>,
    q: Result<Query<NoQuery>, QueryRejection>,
) -> JsonResult {
    no_query(q)?;
    Ok(axum::Json(s.read(figures::emission)?))
}

async fn api_prices(State(s): State<AppState>) -> JsonResult {
    Ok(axum::Json(s.read(|i| {
        crate::prices::comparison(i, &s.prices, s.crn_usd)
    })?))
}

async fn api_deal(State(s): State<AppState>, Path(id): Path<String>) -> JsonResult {
    let id: DealId = id
        .parse()
        .map_err(|e| Failure::bad(format!("deal {id:?}: {e}")))?;
    Ok(axum::Json(
        node_get(&s, format!("/v1/deals/{id}"), format!("deal {id}")).await?,
    ))
}

async fn api_lease(State(s): State<AppState>, Path(id): Path<String>) -> JsonResult {
    let id: LeaseId = id
        .parse()
        .map_err(|e| Failure::bad(format!("lease {id:?}: {e}")))?;
    Ok(axum::Json(
        node_get(&s, format!("/v1/leases/{id}"), format!("lease {id}")).await?,
    ))
}

async fn openapi() -> axum::Json<Value> {
    axum::Json(crate::openapi::document())
}

type PageResult = Result<Html<String>, Response>;

async fn page_summary(
    State(s): State<AppState>,
    q: Result<Query<NoQuery>, QueryRejection>,
) -> PageResult {
    no_query(q).map_err(Failure::page)?;
    s.read(|i| Html(html::summary(i, s.crn_usd)))
        .map_err(Failure::page)
}

async fn page_revenue(
    State(s): State<AppState>,
    q: Result<Query<RevenueQuery>, QueryRejection>,
) -> PageResult {
    let (by, source) = RevenueQuery::parse(q).map_err(Failure::page)?;
    s.read(|i| Html(html::revenue(i, by, source)))
        .map_err(Failure::page)
}

async fn page_capacity(State(s): State<AppState>) -> PageResult {
    s.read(|i| Html(html::capacity(i))).map_err(Failure::page)
}

async fn page_prices(State(s): State<AppState>) -> PageResult {
    s.read(|i| Html(html::prices(i, &s.prices, s.crn_usd)))
        .map_err(Failure::page)
}

async fn page_providers(State(s): State<AppState>) -> PageResult {
    s.read(|i| Html(html::providers(i))).map_err(Failure::page)
}

async fn page_provider(State(s): State<AppState>, Path(id): Path<String>) -> PageResult {
    let address = parse_address(&id).map_err(Failure::page)?;
    let view = node_get(
        &s,
        format!("/v1/providers/{address}"),
        format!("provider {address}"),
    )
    .await
    .map_err(Failure::page)?;
    s.read(|i| Html(html::provider(i, &address, &view)))
        .map_err(Failure::page)
}

/// `?after=` of the deals and leases pages: the `next` cursor of the page before.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    after: Option<String>,
}

/// The cursor, parsed as the list's id so only an id reaches the node's query string.
fn page_after<K: std::str::FromStr + std::fmt::Display>(
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Option<String>, Failure>
where
    K::Err: std::fmt::Display,
{
    let Query(q) = query.map_err(|e| Failure::bad(e.body_text()))?;
    q.after
        .map(|a| {
            a.parse::<K>()
                .map(|k| k.to_string())
                .map_err(|e| Failure::bad(format!("after {a:?}: {e}")))
        })
        .transpose()
}

async fn page_deals(
    State(s): State<AppState>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> PageResult {
    let after = page_after::<DealId>(q).map_err(Failure::page)?;
    let path = match &after {
        Some(a) => format!("/v1/deals?limit=100&after={a}"),
        None => "/v1/deals?limit=100".to_string(),
    };
    let view = node_get(&s, path, "deals".to_string())
        .await
        .map_err(Failure::page)?;
    Ok(Html(html::deals(&view, after.as_deref())))
}

async fn page_leases(
    State(s): State<AppState>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> PageResult {
    let after = page_after::<LeaseId>(q).map_err(Failure::page)?;
    let path = match &after {
        Some(a) => format!("/v1/leases?limit=100&after={a}"),
        None => "/v1/leases?limit=100".to_string(),
    };
    let view = node_get(&s, path, "leases".to_string())
        .await
        .map_err(Failure::page)?;
    Ok(Html(html::leases(&view, after.as_deref())))
}

async fn page_deal(State(s): State<AppState>, Path(id): Path<String>) -> PageResult {
    let id: DealId = id
        .parse()
        .map_err(|e| Failure::bad(format!("deal {id:?}: {e}")).page())?;
    let view = node_get(&s, format!("/v1/deals/{id}"), format!("deal {id}"))
        .await
        .map_err(Failure::page)?;
    Ok(Html(html::deal(&id.to_string(), &view)))
}

async fn page_lease(State(s): State<AppState>, Path(id): Path<String>) -> PageResult {
    let id: LeaseId = id
        .parse()
        .map_err(|e| Failure::bad(format!("lease {id:?}: {e}")).page())?;
    let view = node_get(&s, format!("/v1/leases/{id}"), format!("lease {id}"))
        .await
        .map_err(Failure::page)?;
    s.read(|i| Html(html::lease(i, &id.to_string(), &view)))
        .map_err(Failure::page)
}

async fn metrics(State(s): State<AppState>) -> Response {
    let status = s.status.read().map(|st| st.clone()).unwrap_or_default();
    let (height, epochs, txs) = s
        .read(|i| (i.height, i.epochs.len(), i.txs))
        .unwrap_or_default();
    let mut m = cairn_api::metrics::MetricsText::new();
    m.gauge(
        "cairn_explorer_indexed_height",
        "Last finalized height in the index.",
        height,
    )
    .gauge(
        "cairn_explorer_node_height",
        "The node's finalized height when last asked.",
        status.node_height,
    )
    .gauge(
        "cairn_explorer_lag_blocks",
        "Blocks the index is behind the node.",
        status.node_height.saturating_sub(height),
    )
    .gauge(
        "cairn_explorer_indexed_epochs",
        "Finished epochs in the index.",
        epochs,
    )
    .gauge(
        "cairn_explorer_indexed_txs",
        "Transactions counted in indexed blocks.",
        txs,
    )
    .gauge(
        "cairn_explorer_log_bytes",
        "Size of the index log.",
        status.log_bytes,
    )
    .gauge(
        "cairn_explorer_follow_error",
        "1 while the last attempt to follow the node failed.",
        u8::from(status.last_error.is_some()),
    );
    cairn_api::metrics::response(m.finish()).into_response()
}

async fn fallback(uri: Uri) -> Response {
    let f = Failure::not_found(format!("no such page: {}", uri.path()));
    if uri.path().starts_with("/api/") {
        f.json()
    } else {
        f.page()
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        self.json()
    }
}

/// The paths the router serves (the OpenAPI test compares them).
pub const API_PATHS: &[&str] = &[
    "/api/v1/summary",
    "/api/v1/revenue",
    "/api/v1/tvl",
    "/api/v1/providers",
    "/api/v1/providers/{id}",
    "/api/v1/capacity",
    "/api/v1/emission",
    "/api/v1/prices",
    "/api/v1/deals/{id}",
    "/api/v1/leases/{id}",
    "/api/v1/openapi.json",
    "/metrics",
];

/// Dashboard pages without an id (the browser test opens each, and one page of each kind
/// with an id: a provider, a deal, a lease).
pub const PAGES: &[&str] = &[
    "/",
    "/revenue?by=epoch",
    "/revenue?by=day",
    "/revenue?by=month",
    "/capacity",
    "/prices",
    "/providers",
    "/deals",
    "/leases",
];

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/summary", get(api_summary))
        .route("/api/v1/revenue", get(api_revenue))
        .route("/api/v1/tvl", get(api_tvl))
        .route("/api/v1/providers", get(api_providers))
        .route("/api/v1/providers/{id}", get(api_provider))
        .route("/api/v1/capacity", get(api_capacity))
        .route("/api/v1/emission", get(api_emission))
        .route("/api/v1/prices", get(api_prices))
        .route("/api/v1/deals/{id}", get(api_deal))
        .route("/api/v1/leases/{id}", get(api_lease))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/", get(page_summary))
        .route("/revenue", get(page_revenue))
        .route("/capacity", get(page_capacity))
        .route("/prices", get(page_prices))
        .route("/providers", get(page_providers))
        .route("/providers/{id}", get(page_provider))
        .route("/deals", get(page_deals))
        .route("/deals/{id}", get(page_deal))
        .route("/leases", get(page_leases))
        .route("/leases/{id}", get(page_lease))
        .fallback(fallback)
        .with_state(state)
}
