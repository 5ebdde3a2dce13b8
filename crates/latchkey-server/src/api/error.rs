//! The one error type of the HTTP API: turns latchkey's errors into the contract's envelope
//! `{"error": "...", "code": "..."}` with a fitting status. A 5xx body never shows internals; the cause goes to
//! the log.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use latchkey_core::Error;
use serde::Serialize;
use utoipa::ToSchema;

/// The contract's error envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A sentence a person can act on.
    #[schema(example = "you have no connection with the handle 'crm'")]
    pub error: String,
    /// A machine word.
    #[schema(example = "not_found")]
    pub code: String,
    /// The field at fault, for invalid input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error on its way to becoming an HTTP response.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self(error)
    }
}

impl ApiError {
    /// The envelope and status for this error.
    #[must_use]
    pub fn parts(&self) -> (StatusCode, ErrorBody) {
        let status = StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let field = match &self.0 {
            Error::Invalid { field, .. } => field.clone(),
            _ => None,
        };
        // 502 says what the provider did and 503 what to wait for; other 5xx bodies show no internals.
        let said = [StatusCode::BAD_GATEWAY, StatusCode::SERVICE_UNAVAILABLE];
        let error = if status.is_server_error() && !said.contains(&status) {
            "latchkey failed on its side; the server log has the details".to_owned()
        } else {
            self.0.to_string()
        };
        (status, ErrorBody { error, code: self.0.code().to_owned(), field })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.parts();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %self.0, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), error = %self.0, "request refused");
        }
        let mut response = (status, Json(body)).into_response();
        if let Error::RateLimited { retry_after_secs, .. } = &self.0 {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, (*retry_after_secs).into());
        }
        response
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;
