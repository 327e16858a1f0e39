//! JSON error responses: every failure answers `{"error": "<a sentence>"}`
//! with a status that says whose fault it is.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered as `{"error": message}` with `status`.
///
/// ```
/// use axum::http::StatusCode;
/// use worker_web::errors::ApiError;
///
/// let err = ApiError::not_found("Run 'x' is unknown");
/// assert_eq!(err.status, StatusCode::NOT_FOUND);
/// assert_eq!(err.message, "Run 'x' is unknown");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A sentence a person can act on, naming the worker, run or field.
    pub message: String,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request can't be read (malformed JSON).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such worker, run or route.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 403: the dashboard is read-only.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 409: the run is not in a state that allows this (retrying a run
    /// that succeeded or is still going).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 413: the body is larger than the configured limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// 415: the body is not JSON.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
    }

    /// 422: well-formed JSON the worker can't accept.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for ApiError {}

/// worker-core's errors, by kind: unknown worker or run → 404, a payload
/// turned away → 422, a worker's queue full → 429, a duplicate key
/// rejected → 409, shutting down → 503,
/// anything else → 500. The message
/// is the error's own sentence, such as `Worker 'x' not registered`.
impl From<worker_core::Error> for ApiError {
    fn from(error: worker_core::Error) -> Self {
        let status = if error.is_not_registered() || error.is_run_not_found() {
            StatusCode::NOT_FOUND
        } else if error.is_validation() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else if error.is_overloaded() {
            StatusCode::TOO_MANY_REQUESTS
        } else if error.is_duplicate() {
            StatusCode::CONFLICT
        } else if error.is_shutdown() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        ApiError::new(status, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            log::error!(target: "worker_web", "{self}");
        }
        (self.status, Json(json!({"error": self.message}))).into_response()
    }
}
