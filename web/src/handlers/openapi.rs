//! `GET /api/v1/openapi.json`: the API as implemented. A test checks that every documented
//! route answers and every route is documented.

use axum::Json;
use serde_json::{json, Value};

pub async fn get() -> Json<Value> {
    Json(document())
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn query(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}})
}

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {"title": "certfleet", "version": env!("CARGO_PKG_VERSION")},
        "components": {
            "securitySchemes": {
                "agentToken": {"type": "http", "scheme": "bearer", "description": "token from `certfleet token create`"},
                "readToken": {"type": "http", "scheme": "bearer", "description": "server.read_token, when configured"}
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "string"}, "field": {"type": "string"}}}
            }
        },
        "paths": {
            "/api/v1/reports": {"post": {
                "summary": "Agent report ingest (gzip accepted)",
                "security": [{"agentToken": []}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {
                    "202": {"description": "stored; counts of sockets, endpoints, skipped"},
                    "400": error_response("malformed report; `field` names the bad field"),
                    "401": error_response("missing or unknown agent token"),
                    "413": error_response("body too large"),
                    "503": error_response("database unavailable; retry after Retry-After")
                }}},
            "/api/v1/certificates": {"get": {
                "summary": "Certificates by hostname (SAN or CN, wildcards), serial (any spelling) or expiry window",
                "security": [{"readToken": []}],
                "parameters": [
                    query("hostname", "a.example.com matches *.example.com"),
                    query("serial", "colons, spaces, case, leading zeros and 0x are ignored"),
                    query("expiring_within", "30d, 12h, 90m"),
                    query("limit", "1 to 1000, default 100"),
                    query("cursor", "next_cursor of the previous page")
                ],
                "responses": {"200": {"description": "{items, next_cursor}"}, "400": error_response("bad parameter"), "401": error_response("read token required")}}},
            "/api/v1/certificates/{sha256}": {"get": {
                "summary": "One certificate: fields, PEM, chain, where it is served",
                "security": [{"readToken": []}],
                "parameters": [{"name": "sha256", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the certificate"}, "400": error_response("not a SHA-256"), "404": error_response("unknown certificate")}}},
            "/api/v1/endpoints": {"get": {
                "summary": "Endpoints with their current certificate and mTLS policy",
                "security": [{"readToken": []}],
                "parameters": [query("address", "IP address"), query("port", "1-65535"), query("app", "app tag"),
                               query("env", "env tag"), query("limit", "1 to 1000"), query("cursor", "next_cursor")],
                "responses": {"200": {"description": "{items, next_cursor}"}, "400": error_response("bad parameter")}}},
            "/api/v1/mtls/summary": {"get": {
                "summary": "mTLS adoption (required, optional, none) by app or env, and the daily trend",
                "security": [{"readToken": []}],
                "parameters": [query("by", "app (default) or env")],
                "responses": {"200": {"description": "{by, groups, trend}"}, "400": error_response("bad parameter")}}},
            "/api/v1/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/healthz": {"get": {"summary": "The process answers", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "The database answers", "responses": {"200": {"description": "ready"}, "503": error_response("database unavailable")}}}
        }
    })
}
