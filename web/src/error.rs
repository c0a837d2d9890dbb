//! The API's one error type: every failure is a JSON `{"error": "...", "field": "..."}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A failed request, with the status it answers.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; `field` names the bad part when known.
    #[error("{message}")]
    BadRequest {
        message: String,
        field: Option<String>,
    },
    /// No or a wrong bearer token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// A valid credential asking for what it may not do (a host-bound token reporting
    /// another host); `field` names the part of the request that was refused.
    #[error("{message}")]
    Forbidden {
        message: String,
        field: Option<String>,
    },
    #[error("not found")]
    NotFound,
    /// What was asked for existed once and is no more (an expired signed link).
    #[error("{0}")]
    Gone(String),
    /// The request conflicts with what is stored (a host enrolling twice).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than allowed (before or after decompression).
    #[error("request body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error("unsupported content encoding {0:?} (use gzip or none)")]
    UnsupportedEncoding(String),
    /// This endpoint was asked to be probed within the rate-limit window: the client may
    /// ask again after `retry_after` seconds.
    #[error("a probe of this endpoint was requested less than {window} seconds ago; retry after {retry_after} seconds")]
    Limited { retry_after: u64, window: u64 },
    /// Too many ingest requests are in flight (`server.ingest_concurrency`): the client
    /// should retry later.
    #[error("too many ingest requests in flight, retry later")]
    Busy,
    /// The database cannot be reached: the client should retry later.
    #[error("database unavailable, retry later")]
    Unavailable,
    /// A bug or an unexpected store failure; the detail is logged, not returned.
    #[error("internal error")]
    Internal(String),
}

/// Seconds a client is asked to wait when ingest is at its concurrency limit.
const BUSY_RETRY_AFTER: &str = "5";

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, field: Option<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            field,
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Limited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Busy | ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<certfleet_store::Error> for ApiError {
    fn from(error: certfleet_store::Error) -> Self {
        match error {
            certfleet_store::Error::NotFound { .. } => ApiError::NotFound,
            certfleet_store::Error::Unavailable(source) => {
                tracing::warn!(error = %source, "database unavailable");
                ApiError::Unavailable
            }
            certfleet_store::Error::Invalid { field, message } => ApiError::BadRequest {
                message: format!("{field}: {message}"),
                field: Some(field),
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let field = match &self {
            ApiError::BadRequest { field, .. } | ApiError::Forbidden { field, .. } => {
                field.as_deref()
            }
            _ => None,
        };
        let body = ErrorBody {
            error: self.to_string(),
            field,
        };
        let mut response = (status, axum::Json(body)).into_response();
        self.add_headers(response.headers_mut());
        response
    }
}

impl ApiError {
    /// The headers that go with the status: `Retry-After`, `WWW-Authenticate`.
    pub(crate) fn add_headers(&self, headers: &mut axum::http::HeaderMap) {
        match self {
            ApiError::Limited { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            ApiError::Busy => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(BUSY_RETRY_AFTER),
                );
            }
            ApiError::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            }
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
    }
}
