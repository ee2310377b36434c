//! Every failure as a JSON body `{"error": {"kind", "message", "retryable"}}` with a 4xx
//! status for what the client can fix, never a bare 500 for bad input.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sop::{Error, ErrorKind, TransactionError, UsageError};

/// An HTTP error: a status and what to tell the client.
#[derive(Debug)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// A short machine-readable kind (`bad_request`, `not_found`, `conflict`, ...).
    pub kind: &'static str,
    /// What went wrong and what to do.
    pub message: String,
    /// Whether sending the same request again can succeed.
    pub retryable: bool,
}

impl ApiError {
    /// An error of `status` and `kind`.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            retryable: false,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        let retryable = e.is_retryable();
        let (status, kind) = match &e {
            Error::Usage(UsageError::StoreNotFound { .. }) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Usage(UsageError::StoreExists { .. }) => (StatusCode::CONFLICT, "exists"),
            Error::Usage(UsageError::ValueTooLarge { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
            }
            Error::Usage(UsageError::InUse { .. }) => (StatusCode::LOCKED, "in_use"),
            // Not 408 (that says the request was slow to arrive): the transaction ran out of
            // time; a smaller or faster one can succeed.
            Error::Transaction(TransactionError::Timeout { .. }) => {
                (StatusCode::CONFLICT, "timeout")
            }
            _ if retryable => (StatusCode::CONFLICT, "conflict"),
            _ => match e.kind() {
                ErrorKind::Usage => (StatusCode::BAD_REQUEST, "bad_request"),
                ErrorKind::Transaction => (StatusCode::CONFLICT, "transaction"),
                ErrorKind::Coordination => (StatusCode::SERVICE_UNAVAILABLE, "coordination"),
                ErrorKind::Corruption => (StatusCode::INTERNAL_SERVER_ERROR, "corruption"),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "storage"),
            },
        };
        ApiError {
            status,
            kind,
            message,
            retryable,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"kind": self.kind, "message": self.message, "retryable": self.retryable}});
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
