//! The one error shape every endpoint answers with:
//! `{"error": {"code": "...", "message": "...", "details": {...}}}`.
//! Internal causes are logged, never sent: a client sees a code and a plain message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Value::Null,
            retry_after: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A query parameter that is unknown or malformed.
    pub fn bad_parameter(parameter: &str, message: impl Into<String>) -> Self {
        Self::bad_request("invalid_parameter", message)
            .with_details(json!({ "parameter": parameter }))
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after: u32) -> Self {
        let mut error = Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message);
        error.retry_after = Some(retry_after);
        error
    }

    /// 429 with a `Retry-After` of `wait`, rounded up to whole seconds.
    pub fn too_many_requests(message: impl Into<String>, wait: std::time::Duration) -> Self {
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        error.retry_after = Some(u32::try_from(seconds.max(1)).unwrap_or(u32::MAX));
        error
    }

    /// Logs `cause` and answers 500 without revealing it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

/// Every error answer, as it is sent and as the OpenAPI document describes it.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_parameter`, `unauthorized`, `not_found`, ...
    pub code: &'static str,
    pub message: String,
    /// For example `{"parameter": "from"}` for a bad query parameter.
    #[serde(skip_serializing_if = "Value::is_null")]
    #[schema(value_type = Option<Object>)]
    pub details: Value,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<eye_store::StoreError> for ApiError {
    fn from(error: eye_store::StoreError) -> Self {
        use eye_store::StoreError;
        match error {
            StoreError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", error.to_string())
            }
            StoreError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            StoreError::InvalidState(_) => {
                ApiError::new(StatusCode::CONFLICT, "invalid_state", error.to_string())
            }
            // Valid, but too broad to answer in time: the client must narrow it.
            StoreError::OverBudget => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "query_over_budget",
                "the query did not finish within the query budget (EYE_QUERY_BUDGET_MS) and was stopped: \
                 narrow it with `session_id`, with `category` and `name`, or with a shorter `from`-`to` range; \
                 a `data.` filter is fast once its field is declared indexed (PUT /event-types/{category}/{name}/indexed)",
            ),
            other => ApiError::internal(other),
        }
    }
}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}

/// The answer for a handler that panicked (`edges` catches the panic): a logged `500`
/// with the usual JSON body, instead of a dropped connection. Handlers do not panic on
/// input; this is the net under a bug, not a way of handling errors.
pub fn panicked(panic: Box<dyn std::any::Any + Send>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    ApiError::internal(format!("handler panicked: {message}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_over_budget_is_a_422_that_says_how_to_narrow_it() {
        let error = ApiError::from(eye_store::StoreError::OverBudget);
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.code, "query_over_budget");
        assert!(error.message.contains("category"), "{}", error.message);
    }
}
