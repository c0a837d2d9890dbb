//! `GET /api/v1/openapi.json`: the service as implemented, pages and metrics included. A
//! test checks that every documented path and method answers, and that every route of
//! the router is documented.

use axum::Json;
use serde_json::{json, Value};

pub async fn get() -> Json<Value> {
    Json(document())
}

fn error_response(description: &str) -> Value {
    json!({"description": description,
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn query(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description,
           "schema": {"type": "string"}})
}

fn path(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
           "schema": {"type": "string"}})
}

fn page_params() -> [Value; 2] {
    [
        query("limit", "page size, 1 to 1000 (default 100)"),
        query(
            "cursor",
            "next_cursor of the previous page (same other parameters)",
        ),
    ]
}

/// A read operation (JSON): the read token, 400 and 401 answers.
fn read(summary: &str, parameters: Vec<Value>, ok: &str) -> Value {
    json!({"get": {
    "summary": summary,
    "security": [{"readToken": []}],
    "parameters": parameters,
    "responses": {
        "200": {"description": ok, "content": {"application/json": {}}},
        "400": error_response("a bad parameter; `field` names it"),
        "401": error_response("read token required (agent tokens never read)"),
        "404": error_response("not found"),
        "503": error_response("database unavailable; retry after Retry-After")
    }}})
}

/// A server-rendered page.
fn page(summary: &str, parameters: Vec<Value>) -> Value {
    json!({"get": {
    "summary": summary,
    "tags": ["pages"],
    "security": [{"readToken": []}],
    "parameters": parameters,
    "responses": {
        "200": {"description": "HTML", "content": {"text/html": {}}},
        "400": error_response("a bad parameter"),
        "401": error_response("read token required")
    }}})
}

fn certificate_params() -> Vec<Value> {
    let mut params = vec![
        query(
            "hostname",
            "SAN or subject CN; a.example.com also finds *.example.com",
        ),
        query(
            "serial",
            "any spelling: colons, spaces, case, leading zeros, 0x, or decimal",
        ),
        query(
            "fingerprint",
            "SHA-256 (64 hex) or SHA-1 (40 hex), colons allowed",
        ),
        query("issuer", "issuer DN (RFC 4514), case-insensitive"),
        query(
            "expiring_within",
            "30d, 12h or 90m: leaves in use expiring within it (expired included), soonest first",
        ),
    ];
    params.extend(page_params());
    params
}

fn endpoint_params() -> Vec<Value> {
    let mut params = vec![
        query("address", "IP address"),
        query("port", "1-65535"),
        query("app", "app tag"),
        query("env", "env tag"),
        query("owner", "owner tag"),
        query("mtls", "required, optional or none"),
        query(
            "finding",
            "a finding of the current observation, e.g. weak_key",
        ),
    ];
    params.extend(page_params());
    params
}

fn notification_params() -> Vec<Value> {
    let mut params = vec![
        query("failed", "true: only pending ones whose delivery failed"),
        query("owner", "owner email"),
    ];
    params.extend(page_params());
    params
}

/// `POST /api/v1/endpoints/{id}/probe`.
fn probe_api() -> Value {
    json!({"post": {
    "summary": "Probe now: the endpoint is due at once, ahead of the schedule; a prober takes it within seconds. Rate-limited per endpoint (server.probe_now_window)",
    "security": [{"operatorToken": []}],
    "parameters": [path("id", "endpoint id")],
    "responses": {
        "202": {"description": "{endpoint, requested_at, expected_by}", "content": {"application/json": {}}},
        "400": error_response("id is not a positive number"),
        "401": error_response("no token, or an unknown or revoked one"),
        "403": error_response("the read token or an agent token: asking for probes needs an operator token"),
        "404": error_response("no such endpoint, or it is retired"),
        "409": error_response("the endpoint is probed by its host's own agent (agent.probe_local), never by a prober"),
        "413": error_response("body over 1 KiB"),
        "429": error_response("asked for within the window; retry after Retry-After seconds"),
        "503": error_response("database unavailable; retry after Retry-After")
    }}})
}

/// The endpoint page's button.
fn probe_button() -> Value {
    json!({"post": {
    "summary": "The endpoint page's Probe now button: a form with the operator token (`token`); answers a page",
    "tags": ["pages"],
    "parameters": [path("id", "endpoint id")],
    "requestBody": {"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}}}}},
    "responses": {
        "202": {"description": "HTML: requested, and when to expect the result", "content": {"text/html": {}}},
        "400": {"description": "HTML: a bad id or form"},
        "401": {"description": "HTML: not an operator token"},
        "403": {"description": "HTML: the read token or an agent token"},
        "404": {"description": "HTML: no such endpoint"},
        "409": {"description": "HTML: the endpoint is probed by its host's own agent"},
        "413": {"description": "HTML: form over 1 KiB"},
        "429": {"description": "HTML: asked for within the window; Retry-After"}
    }}})
}

/// The signed links of the digests.
fn probe_link() -> Value {
    json!({
    "get": {
        "summary": "A signed \"renewed? check again\" link from a digest: shows the endpoint and a button; never probes",
        "tags": ["pages"],
        "parameters": [query("endpoint", "endpoint id"), query("expires", "Unix seconds"), query("signature", "HMAC-SHA256, 64 hex digits")],
        "responses": {
            "200": {"description": "HTML: what the link asks, and a button", "content": {"text/html": {}}},
            "400": {"description": "HTML: malformed link"},
            "403": {"description": "HTML: the signature does not match (changed, or not from this server)"},
            "404": {"description": "HTML: signed links are not configured (server.link_secret), or no such endpoint"},
            "410": {"description": "HTML: the link has expired"}
        }},
    "post": {
        "summary": "The link's button: the same three fields as a form; asks for the probe",
        "tags": ["pages"],
        "requestBody": {"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}},
        "responses": {
            "202": {"description": "HTML: requested", "content": {"text/html": {}}},
            "400": {"description": "HTML: malformed link"},
            "403": {"description": "HTML: the signature does not match"},
            "404": {"description": "HTML: links not configured, or no such endpoint"},
            "410": {"description": "HTML: the link has expired"},
            "413": {"description": "HTML: form over 1 KiB"},
            "429": {"description": "HTML: asked for within the window; Retry-After"}
        }}})
}

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let text =
        |description: &str| json!({"description": description, "content": {"text/plain": {}}});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "certfleet",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Lists are paginated: pass `next_cursor` back as `cursor` with the same other parameters; it is null on the last page. Errors are JSON {\"error\", \"field\"}."
        },
        "components": {
            "securitySchemes": {
                "agentToken": {"type": "http", "scheme": "bearer", "description": "token from `certfleet token create`; ingest only"},
                "readToken": {"type": "http", "scheme": "bearer", "description": "server.read_token, when configured"},
                "operatorToken": {"type": "http", "scheme": "bearer", "description": "token from `certfleet token create --operator NAME`; asks for probes"}
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
                    "202": {"description": "stored; counts of sockets, endpoints, skipped, conflicts, and of the agent's own probe results recorded (`probes`) and refused (`probes_refused`: not one of the report's own sockets, or another host's endpoint)"},
                    "400": error_response("malformed report; `field` names the bad field"),
                    "401": error_response("missing or unknown agent token"),
                    "413": error_response("body too large"),
                    "415": error_response("unsupported Content-Encoding"),
                    "503": error_response("too many ingest requests in flight (server.ingest_concurrency) or database unavailable; retry after Retry-After")
                }}},
            "/api/v1/agents/enroll": {"post": {
                "summary": "A host exchanges server.agent_enroll_secret (bearer) for its own credential, bound to its machine id, once",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["hostname"], "properties": {"machine_id": {"type": "string"}, "hostname": {"type": "string"}}}}}},
                "responses": {
                    "201": {"description": "{token, agent, host}: the token is shown once"},
                    "400": error_response("malformed body; `field` names the bad field"),
                    "401": error_response("missing or wrong enroll secret"),
                    "404": error_response("server.agent_enroll_secret is not set"),
                    "409": error_response("the host already holds an enrolled credential"),
                    "413": error_response("body too large")
                }
            }},
            "/api/v1/osquery/enroll": {"post": {
                "summary": "osquery TLS enroll (--enroll_tls_endpoint): a node key for osquery.enroll_secret",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {
                    "200": {"description": "{node_key, node_invalid: false}, or {node_invalid: true} for a wrong secret"},
                    "400": error_response("malformed request"),
                    "404": error_response("osquery.enroll_secret is not set"),
                    "413": error_response("body too large"),
                    "415": error_response("unsupported Content-Encoding"),
                    "503": error_response("too many ingest requests in flight or database unavailable; retry after Retry-After")
                }}},
            "/api/v1/osquery/log": {"post": {
                "summary": "osquery TLS logger (--logger_tls_endpoint): listening_ports results stored as the host's report",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {
                    "200": {"description": "{} when stored, or {node_invalid: true} for an unknown node key"},
                    "400": error_response("malformed results; `field` names the bad part"),
                    "404": error_response("osquery.enroll_secret is not set"),
                    "413": error_response("body too large"),
                    "415": error_response("unsupported Content-Encoding"),
                    "503": error_response("too many ingest requests in flight or database unavailable; retry after Retry-After")
                }}},
            "/api/v1/certificates": read(
                "Certificates by hostname, serial, fingerprint or issuer (newest expiry first), or in use and expiring within a window (soonest first, with endpoint counts). Give exactly one.",
                certificate_params(), "{items, next_cursor}"),
            "/api/v1/certificates/{sha256}": read(
                "One certificate: fields, PEM, chain, where it is served, owners, notifications with delivery state, history",
                vec![path("sha256", "SHA-256 (or SHA-1) fingerprint")], "the certificate"),
            "/api/v1/endpoints": read(
                "Active endpoints with their current certificate and mTLS policy",
                endpoint_params(), "{items, next_cursor}"),
            "/api/v1/sockets": read(
                "Active listening sockets (address, port), each once as the counts count it, with the names it is probed under nested in it (`names`, at most 20; `names_total`); filters apply to the socket's own endpoint",
                endpoint_params(), "{items, next_cursor}"),
            "/api/v1/endpoints/{id}": read(
                "One endpoint and its observations over time",
                vec![path("id", "endpoint id")], "the endpoint"),
            "/api/v1/endpoints/{id}/probe": probe_api(),
            "/api/v1/mtls/summary": read(
                "mTLS adoption (required, optional, none) by app or env, and the daily trend; from the cached overview",
                vec![query("by", "app (default) or env")], "{by, groups, trend}"),
            "/api/v1/overview": read(
                "Where the fleet stands: counts, days left, mTLS, findings, probe outcomes, queue (and per zone: `zones`); cached (15 s, or ten times its compute time)",
                vec![], "the overview"),
            "/api/v1/probers": read(
                "The probers that announced themselves (name, zones, version, started_at, last_seen, live, probes_per_second), live ones first, and the probe queue of every zone (endpoints, due, leased, live_probers, stranded); read now",
                vec![], "{probers, zones}"),
            "/api/v1/notifications": read(
                "Expiry notifications and their delivery state, newest first",
                notification_params(), "{items, next_cursor}"),
            "/api/v1/openapi.json": {"get": {"summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}}}},
            "/": page("Dashboard", vec![]),
            "/search": page("Search: hostname, serial, fingerprint, address or issuer", vec![query("q", "what to look for")]),
            "/certificates": page("Certificate list (same parameters as the API)", certificate_params()),
            "/certificates/{sha256}": page("Certificate page; `{sha256}.pem` downloads the PEM", vec![path("sha256", "SHA-256 (or SHA-1) fingerprint")]),
            "/endpoints": page("Endpoint list (same parameters as the API)", endpoint_params()),
            "/endpoints/{id}": page("Endpoint page", vec![path("id", "endpoint id")]),
            "/endpoints/{id}/probe": probe_button(),
            "/probe-link": probe_link(),
            "/owners/{owner}": page("Owner page: endpoints and notifications", vec![path("owner", "owner email"), query("cursor", "next page of endpoints")]),
            "/mtls": page("mTLS adoption of every app or env, a page at a time", vec![query("by", "app or env"), query("cursor", "last key of the previous page")]),
            "/probers": page("Probers and the probe queue of each zone", vec![]),
            "/notifications/failed": page("Notifications whose delivery failed", vec![query("cursor", "next page")]),
            "/metrics": {"get": {"summary": "Prometheus metrics (OpenMetrics text format 1.0.0)",
                "security": [{"readToken": []}],
                "responses": {"200": text("metrics"), "401": error_response("read token required")}}},
            "/healthz": {"get": {"summary": "The process answers", "responses": {"200": text("ok")}}},
            "/readyz": {"get": {"summary": "The database answers and every role runs; a line per role, and with a read replica a `replica:` line (up, behind, or down: reads from the primary, still ready)",
                "responses": {"200": text("ready"), "503": error_response("database unavailable or a role not running")}}}
        }
    })
}
