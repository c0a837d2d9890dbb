//! certfleet-web: the HTTP surface. [`router`] lists every route; handlers live one file per
//! resource under `handlers/`.

mod auth;
mod error;
mod extract;
mod handlers;
mod state;
mod views;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use tower_http::timeout::TimeoutLayer;

pub use error::ApiError;
pub use handlers::openapi::document as openapi_document;
pub use state::{AppState, IngestLimits};

/// Every route of the service.
pub fn router(state: AppState) -> Router {
    let reads = Router::new()
        .route("/certificates", get(handlers::certificates::index))
        .route("/certificates/{sha256}", get(handlers::certificates::show))
        .route("/endpoints", get(handlers::endpoints::index))
        .route("/mtls/summary", get(handlers::mtls::summary))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_read_token,
        ));
    let api = Router::new()
        .route(
            "/reports",
            post(handlers::reports::post).layer(DefaultBodyLimit::max(state.ingest.max_body)),
        )
        .route("/openapi.json", get(handlers::openapi::get))
        .merge(reads);
    let pages = Router::new()
        .route("/", get(views::dashboard::get))
        .route("/search", get(views::search::get))
        .route("/certificates", get(views::certificates::index))
        .route("/certificates/{sha256}", get(views::certificates::show))
        .route("/endpoints", get(views::endpoints::index))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_read_token,
        ));
    Router::new()
        .nest("/api/v1", api)
        .merge(pages)
        .route("/healthz", get(handlers::health::healthz))
        .route("/readyz", get(handlers::health::readyz))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(60),
        ))
        .with_state(state)
}
