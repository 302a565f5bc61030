//! The OpenAPI 3.1 document of the explorer's JSON API, served at `/api/v1/openapi.json`.

use serde_json::{Value, json};

fn op(summary: &str, params: Value) -> Value {
    json!({ "get": { "summary": summary, "parameters": params, "responses": {
        "200": { "description": "OK", "content": { "application/json": { "schema": { "type": "object" } } } },
        "400": { "description": "malformed parameter, named in the message", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        "404": { "description": "no such object", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
    }}})
}

fn id(description: &str) -> Value {
    json!([{ "name": "id", "in": "path", "required": true, "description": description, "schema": { "type": "string" } }])
}

pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Cairn explorer API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Network figures indexed from finalized blocks (design §8). Amounts are decimal strings of uCRN. Revenue = fees paid by tenants (storage + compute); TVL = bonded + delegated + unbonding stake + escrows + endowments; active providers = a passing proof in the last finished epoch."
        },
        "paths": {
            "/api/v1/summary": op("height, providers (registered, active, proven, the split of the last epoch that reconciles active with proven, growth), TVL in CRN and USD, supply, emission, last-epoch revenue", json!([])),
            "/api/v1/revenue": op("on-chain revenue by period and source with emission and the revenue/emission ratio", json!([
                { "name": "by", "in": "query", "required": false, "description": "epoch (default), day or month (UTC, from block timestamps)", "schema": { "enum": ["epoch", "day", "month"] } },
                { "name": "source", "in": "query", "required": false, "description": "all (storage + compute, default), storage, compute or tx_fees", "schema": { "enum": ["all", "storage", "compute", "tx_fees"] } }
            ])),
            "/api/v1/tvl": op("TVL now by part, and at each epoch end indexed live", json!([])),
            "/api/v1/providers": op("providers with indexed proof and reward totals", json!([])),
            "/api/v1/providers/{id}": op("one provider: the node's record and its indexed reward statements", id("provider address")),
            "/api/v1/capacity": op("declared, committed and proven capacity and utilization", json!([])),
            "/api/v1/emission": op("emission per epoch, cumulative, next epoch and the cap", json!([])),
            "/api/v1/prices": op("Cairn market prices per GiB-month and GPU-hour against dated cloud list prices", json!([])),
            "/api/v1/deals/{id}": op("a storage deal (from the node)", id("deal id")),
            "/api/v1/leases/{id}": op("a compute lease (from the node)", id("lease id")),
            "/api/v1/openapi.json": { "get": { "summary": "this document", "responses": { "200": { "description": "OpenAPI 3.1" } } } },
            "/metrics": { "get": { "summary": "Prometheus text: indexed height, lag, log size", "responses": { "200": { "description": "text/plain; version=0.0.4" } } } }
        },
        "components": { "schemas": {
            "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } } }
        }}
    })
}
