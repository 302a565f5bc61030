//! The OpenAPI 3.1 document of the node API, served at `/v1/openapi.json`. Written by hand
//! beside the routes in lib.rs; the API test checks that every routed path is documented.

use crate::views;
use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn get_op(summary: &str, params: &[(&str, &str)], not_found: bool) -> Value {
    let parameters: Vec<Value> = params
        .iter()
        .map(|(name, description)| {
            json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
        })
        .collect();
    let mut responses = json!({
        "200": { "description": "OK", "content": { "application/json": { "schema": { "type": "object" } } } },
        "400": error_response("malformed parameter, named in the message"),
    });
    if not_found {
        responses["404"] = error_response("no such object");
    }
    json!({ "get": { "summary": summary, "parameters": parameters, "responses": responses } })
}

/// A list route: a page of at most `limit` items after the cursor `after`, and `next`, the
/// cursor of the page after it (null at the end); `statuses` and `filters` are what it keeps.
fn list_op(summary: &str, key: &str, statuses: &[&str], filters: &[(&str, &str)]) -> Value {
    let mut parameters = vec![
        json!({ "name": "limit", "in": "query", "required": false, "description": "1 to 1000, default 100", "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } }),
        json!({ "name": "after", "in": "query", "required": false, "description": "the `next` cursor of the previous page (opaque); items after it in this list's order. A list read is whole only once `next` is null", "schema": { "type": "string" } }),
        json!({ "name": "status", "in": "query", "required": false, "description": format!("only items with this status: {}", statuses.join(", ")), "schema": { "type": "string", "enum": statuses } }),
    ];
    for (name, description) in filters {
        parameters.push(json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": "string" } }));
    }
    json!({ "get": {
        "summary": summary,
        "parameters": parameters,
        "responses": {
            "200": { "description": "one page", "content": { "application/json": { "schema": { "type": "object", "required": [key, "next"], "properties": {
                key: { "type": "array", "items": { "type": "object" } },
                "next": { "type": ["string", "null"], "description": "pass as `after` for the next page; null: this was the last" }
            } } } } },
            "400": error_response("malformed query parameter, unknown status, a filter the route does not take, or a cursor not of this list: the message names the parameter")
        }
    }})
}

/// The paths the router serves (kept in one place so the test can compare).
pub const PATHS: &[&str] = &[
    "/v1/status",
    "/v1/txs",
    "/v1/txs/batch",
    "/v1/txs/check",
    "/v1/txs/{hash}",
    "/v1/accounts/{address}",
    "/v1/blocks/{height}",
    "/v1/providers",
    "/v1/providers/{id}",
    "/v1/blobs/{id}",
    "/v1/deals",
    "/v1/deals/{id}",
    "/v1/orders",
    "/v1/orders/{id}",
    "/v1/leases",
    "/v1/leases/{id}",
    "/v1/epochs/{n}",
    "/v1/network",
    "/v1/params",
    "/v1/events",
    "/v1/openapi.json",
    "/metrics",
];

pub fn document() -> Value {
    const OWNER: (&str, &str) = ("owner", "only this owner's items (a cairn1... address)");
    const TENANT: (&str, &str) = ("tenant", "only this tenant's items (a cairn1... address)");
    let deals = list_op(
        "storage deals, newest first",
        "deals",
        views::DEAL_STATUSES,
        &[
            OWNER,
            (
                "provider",
                "only deals this provider holds a shard of (a cairn1... address)",
            ),
        ],
    );
    let providers = list_op(
        "provider registry with declared and proven capacity, in address order",
        "providers",
        views::PROVIDER_STATUSES,
        &[],
    );
    let orders = list_op(
        "compute orders, newest first, with their bids (hardware and proven rate)",
        "orders",
        views::ORDER_STATUSES,
        &[TENANT],
    );
    let leases = list_op(
        "compute leases, newest first, with projected settlement (status filters the stored state)",
        "leases",
        views::LEASE_STATUSES,
        &[
            TENANT,
            (
                "provider",
                "only this provider's leases (a cairn1... address)",
            ),
        ],
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Cairn node API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Finalized state of a Cairn chain, transaction submission and a stream of finalized blocks. Amounts are decimal strings of uCRN (1 CRN = 10^6 uCRN); addresses are Bech32m with the prefix cairn (\"cairn1\" + 58 characters, the last 6 a checksum); hashes are 64 hex."
        },
        "paths": {
            "/v1/status": get_op("chain id, finalized height, state root, validators, mempool size", &[], false),
            "/v1/txs": { "post": {
                "summary": "submit a signed transaction",
                "requestBody": { "required": true, "content": {
                    "application/octet-stream": { "schema": { "type": "string", "format": "binary", "description": "canonical commonware-codec encoding of SignedTransaction" } },
                    "application/json": { "schema": { "$ref": "#/components/schemas/SignedTransaction" } }
                }},
                "responses": {
                    "202": { "description": "admitted to the mempool", "content": { "application/json": { "schema": { "type": "object", "properties": { "hash": { "type": "string" }, "status": { "const": "pending" } } } } } },
                    "400": error_response("malformed, badly signed, wrong chain, wrong nonce, fee too low or unpayable: the code names which"),
                    "409": error_response("already pending"),
                    "413": error_response("larger than the transaction limit"),
                    "415": error_response("unsupported Content-Type"),
                    "503": error_response("mempool full")
                }
            }},
            "/v1/txs/batch": { "post": {
                "summary": "submit up to 4096 signed transactions at once (one batched signature verification); each gets its own result, in order",
                "requestBody": { "required": true, "content": {
                    "application/octet-stream": { "schema": { "type": "string", "format": "binary", "description": "canonical encoding of a list: u32 count, then each SignedTransaction" } },
                    "application/json": { "schema": { "type": "array", "maxItems": 4096, "items": { "$ref": "#/components/schemas/SignedTransaction" } } }
                }},
                "responses": {
                    "200": { "description": "per-transaction results", "content": { "application/json": { "schema": { "type": "object", "properties": {
                        "accepted": { "type": "integer" }, "refused": { "type": "integer" },
                        "results": { "type": "array", "items": { "type": "object", "description": "{hash, status: pending} or {error: {code, message}}" } } } } } } },
                    "400": error_response("malformed body or empty batch"),
                    "413": error_response("more than 4096 transactions or a body above 16 MiB"),
                    "415": error_response("unsupported Content-Type")
                }
            }},
            "/v1/txs/check": { "post": {
                "summary": "would this unsigned transaction go through now? (fee checks, then the body on a copy of the finalized state); ask before signing",
                "requestBody": { "required": true, "content": {
                    "application/json": { "schema": { "type": "object", "required": ["sender", "body"], "properties": {
                        "sender": { "type": "string", "description": "address" },
                        "body": { "description": "a transaction body, as in SignedTransaction" },
                        "fee": { "type": "string", "description": "uCRN; the chain's minimum when left out" } } } }
                }},
                "responses": {
                    "200": { "description": "the verdict", "content": { "application/json": { "schema": { "type": "object", "properties": {
                        "ok": { "type": "boolean" },
                        "stage": { "type": "string", "enum": ["admission", "body"], "description": "admission: it would be refused, nothing paid; body: it would fail and still pay its fee" },
                        "error": { "type": "object", "description": "{reason, ...}, as in receipts" },
                        "message": { "type": "string" } } } } } },
                    "400": error_response("malformed request")
                }
            }},
            "/v1/txs/{hash}": get_op("receipt of a finalized transaction, or its pending status", &[("hash", "transaction hash")], true),
            "/v1/accounts/{address}": get_op("balance, nonce, stake, delegations and unbonding", &[("address", "account address")], false),
            "/v1/blocks/{height}": get_op("finalized block header and transaction hashes", &[("height", "block height")], true),
            "/v1/providers": providers,
            "/v1/providers/{id}": get_op("one provider with reward statements and proof history", &[("id", "provider address")], true),
            "/v1/blobs/{id}": get_op("blob metadata and its deals", &[("id", "blob id")], true),
            "/v1/deals": deals,
            "/v1/deals/{id}": get_op("a storage deal with its current challenges", &[("id", "deal id, e.g. deal-3 or 3")], true),
            "/v1/orders": orders,
            "/v1/orders/{id}": get_op("one compute order with bids", &[("id", "order id")], true),
            "/v1/leases": leases,
            "/v1/leases/{id}": get_op("one lease with projected settlement", &[("id", "lease id")], true),
            "/v1/epochs/{n}": get_op("revenue, emission, rewards, slashes and reward statements of an epoch", &[("n", "epoch number")], true),
            "/v1/network": get_op("network figures: supply breakdown, TVL, next emission, capacity declared / committed / proven, market prices of active deals and leases, shard challenges and faults of the last 64 finished epochs (storage_loss)", &[], false),
            "/v1/params": get_op("the chain's parameters as genesis fixed them (block time, epoch length, fees, bonds, rewards, storage and compute rules); clients read them here", &[], false),
            "/v1/events": { "get": { "summary": "server-sent events: one `block` event per finalized block with its receipts", "responses": { "200": { "description": "text/event-stream", "content": { "text/event-stream": { "schema": { "type": "string" } } } } } } },
            "/metrics": { "get": { "summary": "Prometheus text: height, finalized tip, mempool size, finality latency", "responses": { "200": { "description": "text/plain; version=0.0.4", "content": { "text/plain": { "schema": { "type": "string" } } } } } } },
            "/v1/openapi.json": { "get": { "summary": "this document", "responses": { "200": { "description": "OpenAPI 3.1", "content": { "application/json": { "schema": { "type": "object" } } } } } } }
        },
        "components": { "schemas": {
            "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } } },
            "SignedTransaction": { "type": "object", "required": ["tx", "signature"], "properties": {
                "tx": { "type": "object", "required": ["chain_id", "sender", "nonce", "fee", "body"], "properties": {
                    "chain_id": { "type": "string" }, "sender": { "type": "string" }, "nonce": { "type": "integer" },
                    "fee": { "type": "string", "description": "uCRN" }, "body": { "type": "object", "required": ["type"], "properties": { "type": { "type": "string" } } }
                }},
                "signature": { "type": "string", "description": "128 hex" }
            }}
        }}
    })
}
