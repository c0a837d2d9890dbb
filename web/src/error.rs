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
    /// The request conflicts with what is stored (a host enrolling twice).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than allowed (before or after decompression).
    #[error("request body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error("unsupported content encoding {0:?} (use gzip or none)")]
    UnsupportedEncoding(String),
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

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
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
        match self {
            ApiError::Busy => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(BUSY_RETRY_AFTER),
                );
            }
            ApiError::Unavailable => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            }
            ApiError::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
