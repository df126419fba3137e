//! The API's one error type, rendered as RFC 9457 `application/problem+json`.

use crate::flow::{Problem as FlowProblem, Problems};
use crate::registry::SaveError;
use crate::store::StoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// The body of every error answer (RFC 9457), as the OpenAPI document describes it.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Problem {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status's reason phrase.
    pub title: &'static str,
    pub status: u16,
    /// What went wrong, naming the field or parameter at fault.
    pub detail: String,
    /// An invalid flow's problems, by path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FlowProblem>>,
    /// Members some answers add (`runId` on a `/sync` timeout).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Marks a response the API passes on as written: a flow's `respond` step chose its status and
/// body, so [`problem_for_rejections`] leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct Verbatim;

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
        let extra = match self.extra.map(|extra| *extra) {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let body = Problem {
            kind: "about:blank",
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: self.detail,
            errors: self.problems.map(|problems| problems.0),
            extra,
        };
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

/// Most of a rejection's text kept as the problem's detail.
const MAX_REJECTION_TEXT: usize = 4 << 10;

/// Answers axum's own rejections as problem+json like every other error: a path segment that
/// is not UTF-8, a body past the route's limit (413), a method the route does not serve (405,
/// an empty body from the method router). Handlers' errors already are problems, and a flow's
/// `respond` answer ([`Verbatim`]) is passed on as written.
pub async fn problem_for_rejections(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error())
        || is_problem
        || response.extensions().get::<Verbatim>().is_some()
    {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_REJECTION_TEXT)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .unwrap_or_default();
    let detail = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let mut error = ApiError::new(status, detail);
    error.retry_after = parts
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let mut answer = error.into_response();
    // `Allow` on a 405 and the like stay; the body and its type are the problem's.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().entry(name).or_insert(value.clone());
        }
    }
    answer
}
