//! certfleet-web: the HTTP surface. [`table`] lists every route once; JSON handlers live
//! one file per resource under `handlers/`, HTML pages under `views/`.

mod auth;
mod body;
mod error;
mod extract;
#[doc(hidden)]
pub mod fuzzing;
mod handlers;
mod metrics;
mod osquery;
mod overview;
pub mod responses;
mod roles;
mod state;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use tokio::sync::Semaphore;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use handlers::openapi::document as openapi_document;
pub use roles::RoleHealth;
pub use state::{AppState, IngestLimits, ProbeNow, WebOptions};

use state::Web;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, the OpenAPI document).
    Open,
    /// Agents, with their own token (`certfleet token create`).
    Ingest,
    /// Readers: the read token when `server.read_token` is set, anyone otherwise. Agent
    /// tokens never read.
    Read,
    /// Operators asking for probes: an operator token (`certfleet token create
    /// --operator`) as the bearer or in the page's form, or a signed link from a digest;
    /// the handler checks it. The body is at most a kilobyte.
    Operate,
}

struct Route {
    method: &'static str,
    path: &'static str,
    access: Access,
    handler: MethodRouter<Web>,
}

fn route(
    method: &'static str,
    path: &'static str,
    access: Access,
    handler: MethodRouter<Web>,
) -> Route {
    Route {
        method,
        path,
        access,
        handler,
    }
}

/// Every route of the service: the router is built from this list, and the OpenAPI
/// document is checked against it.
fn table() -> Vec<Route> {
    use handlers as api;
    use Access::*;
    vec![
        route("POST", "/api/v1/reports", Ingest, post(api::reports::post)),
        route(
            "POST",
            "/api/v1/agents/enroll",
            Ingest,
            post(api::enroll::post),
        ),
        route(
            "POST",
            "/api/v1/osquery/enroll",
            Ingest,
            post(api::osquery::enroll),
        ),
        route(
            "POST",
            "/api/v1/osquery/log",
            Ingest,
            post(api::osquery::log),
        ),
        route("GET", "/api/v1/openapi.json", Open, get(api::openapi::get)),
        route(
            "GET",
            "/api/v1/certificates",
            Read,
            get(api::certificates::index),
        ),
        route(
            "GET",
            "/api/v1/certificates/{sha256}",
            Read,
            get(api::certificates::show),
        ),
        route("GET", "/api/v1/endpoints", Read, get(api::endpoints::index)),
        route("GET", "/api/v1/sockets", Read, get(api::endpoints::sockets)),
        route(
            "GET",
            "/api/v1/endpoints/{id}",
            Read,
            get(api::endpoints::show),
        ),
        route(
            "POST",
            "/api/v1/endpoints/{id}/probe",
            Operate,
            post(api::probe::post),
        ),
        route("GET", "/api/v1/mtls/summary", Read, get(api::mtls::summary)),
        route("GET", "/api/v1/overview", Read, get(api::mtls::overview)),
        route(
            "GET",
            "/api/v1/notifications",
            Read,
            get(api::notifications::index),
        ),
        route("GET", "/api/v1/probers", Read, get(api::probers::index)),
        route("GET", "/", Read, get(views::dashboard::get)),
        route("GET", "/search", Read, get(views::search::get)),
        route(
            "GET",
            "/certificates",
            Read,
            get(views::certificates::index),
        ),
        route(
            "GET",
            "/certificates/{sha256}",
            Read,
            get(views::certificate::show),
        ),
        route("GET", "/endpoints", Read, get(views::endpoints::index)),
        route("GET", "/endpoints/{id}", Read, get(views::endpoint::show)),
        route(
            "POST",
            "/endpoints/{id}/probe",
            Operate,
            post(views::probe::button),
        ),
        route("GET", "/probe-link", Operate, get(views::probe::confirm)),
        route("POST", "/probe-link", Operate, post(views::probe::check)),
        route("GET", "/owners/{owner}", Read, get(views::owners::show)),
        route("GET", "/mtls", Read, get(views::mtls::index)),
        route("GET", "/probers", Read, get(views::probers::index)),
        route(
            "GET",
            "/notifications/failed",
            Read,
            get(views::notifications::failed),
        ),
        route("GET", "/metrics", Read, get(metrics::get)),
        route("GET", "/healthz", Open, get(api::health::healthz)),
        route("GET", "/readyz", Open, get(api::health::readyz)),
    ]
}

/// Holds one of the ingest slots while the request is handled (its body is read and
/// parsed inside); with none free, answers `503` with `Retry-After` at once, without
/// reading the body or waiting.
async fn ingest_slot(
    State(slots): State<Arc<Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_slot) = slots.try_acquire() else {
        tracing::debug!(path = %request.uri().path(), "ingest busy: 503");
        return ApiError::Busy.into_response();
    };
    next.run(request).await
}

/// Every route as (method, path template, access), in [`table`] order.
pub fn routes() -> Vec<(&'static str, &'static str, Access)> {
    table()
        .into_iter()
        .map(|route| (route.method, route.path, route.access))
        .collect()
}

/// Every route of the service, with the default [`WebOptions`].
pub fn router(state: AppState) -> Router {
    router_with(state, WebOptions::default())
}

/// Every route of the service. Reads (JSON, pages, metrics) need the read token when one
/// is configured; ingest needs an agent token; probe requests an operator token or a
/// signed link; health and the OpenAPI document are open.
/// At most `ingest.max_in_flight` ingest requests are handled at once.
pub fn router_with(state: AppState, options: WebOptions) -> Router {
    let web = Web::new(state, options);
    let ingest_slots = Arc::new(Semaphore::new(web.app.ingest.max_in_flight.max(1)));
    let mut open = Router::new();
    let mut reads = Router::new();
    for route in table() {
        match route.access {
            Access::Open => open = open.route(route.path, route.handler),
            Access::Ingest => {
                let limit = DefaultBodyLimit::max(web.app.ingest.max_body);
                let slots = middleware::from_fn_with_state(ingest_slots.clone(), ingest_slot);
                open = open.route(route.path, route.handler.layer(limit).layer(slots));
            }
            Access::Read => reads = reads.route(route.path, route.handler),
            Access::Operate => {
                let limit = DefaultBodyLimit::max(views::probe::MAX_FORM);
                open = open.route(route.path, route.handler.layer(limit));
            }
        }
    }
    let reads = reads.route_layer(middleware::from_fn_with_state(
        web.clone(),
        auth::require_read_token,
    ));
    open.merge(reads)
        .layer(middleware::from_fn_with_state(web.clone(), metrics::track))
        // A span per request (method, path), so that what a request logs says which it was.
        .layer(TraceLayer::new_for_http())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(60),
        ))
        .with_state(web)
}
