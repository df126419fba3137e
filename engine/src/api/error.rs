//! The API's one error type, rendered as RFC 9457 `application/problem+json`.

use crate::flow::Problems;
use crate::registry::SaveError;
use crate::store::StoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error answer: status, a short title, a human detail and optional structured extras.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    /// Problems by path (invalid flows), rendered as `errors`.
    pub problems: Option<Box<Problems>>,
    /// Extra members merged into the body (e.g. `runId` on a sync timeout).
    pub extra: Option<Box<Value>>,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            detail: detail.into(),
            problems: None,
            extra: None,
            retry_after: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, detail)
    }

    pub fn invalid(problems: Problems) -> ApiError {
        let detail = match problems.0.as_slice() {
            [one] => format!("the flow is invalid: {one}"),
            many => format!("the flow is invalid ({} problems)", many.len()),
        };
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail,
            problems: Some(Box::new(problems)),
            extra: None,
            retry_after: None,
        }
    }

    pub fn with_extra(mut self, extra: Value) -> ApiError {
        self.extra = Some(Box::new(extra));
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::Conflict(detail) => ApiError::new(StatusCode::CONFLICT, detail),
            StoreError::Unavailable(reason) => {
                tracing::error!(%reason, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database is unavailable; see /healthz and the server log",
                )
            }
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal storage error; see the server log",
                )
            }
        }
    }
}

impl From<SaveError> for ApiError {
    fn from(error: SaveError) -> ApiError {
        match error {
            SaveError::Invalid(problems) => ApiError::invalid(problems),
            SaveError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(problems) = &self.problems {
            body["errors"] = json!(problems.0);
        }
        if let (Some(extra), Value::Object(map)) = (self.extra, &mut body)
            && let Value::Object(extra) = *extra
        {
            map.extend(extra);
        }
        let retry_after = self.retry_after;
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
