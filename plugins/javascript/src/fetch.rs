//! `fetch` for scripts: Boa's `fetch`, `Request`, `Response` and `Headers` over the host.
//!
//! `boa_runtime` implements the Fetch API classes and leaves the transfer to a [`Fetcher`]. This
//! one hands the request to [`Host::fetch`], which in the component is the SDK's blocking client
//! over `wasi:http`: the host enforces the step's `allowedHosts`, the private-address guard,
//! timeouts and size caps, so nothing is re-checked here. In test runs nothing is sent; the
//! script gets a stub response so that a test run of an Action that posts somewhere shows what
//! it would do without doing it.

use crate::runtime::Shared;
use boa_engine::{
    Context, Finalize, JsData, JsError, JsNativeError, JsObject, JsResult, JsString, Trace,
};
use boa_runtime::fetch::Fetcher;
use boa_runtime::fetch::request::JsRequest;
use boa_runtime::fetch::response::JsResponse;
use hookflow_plugin_sdk::Level;
use hookflow_plugin_sdk::http::{Request, Response, origin};
use std::cell::RefCell;
use std::rc::Rc;

/// Header on the stub response a test run gets instead of a real one.
pub const SKIPPED_HEADER: &str = "x-hookflow-skipped";

/// The [`Fetcher`] registered with Boa's `fetch`.
#[derive(Trace, Finalize, JsData)]
pub struct HostFetcher {
    #[unsafe_ignore_trace]
    shared: Rc<Shared>,
}

impl std::fmt::Debug for HostFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostFetcher").finish_non_exhaustive()
    }
}

impl HostFetcher {
    pub fn new(shared: Rc<Shared>) -> Self {
        HostFetcher { shared }
    }

    /// Sends `request` (or, in a test run, pretends to) and returns the whole response.
    fn exchange(&self, request: Request) -> Result<Response, String> {
        if self.shared.test_run {
            self.shared.log(
                Level::Warn,
                &format!(
                    "fetch skipped in test run: {} {}",
                    request.method, request.url
                ),
            );
            return Ok(Response {
                status: 200,
                headers: vec![(SKIPPED_HEADER.to_string(), "test run".to_string())],
                body: Vec::new(),
            });
        }
        self.shared.host.fetch(&request)
    }
}

/// Converts Boa's request into the SDK's.
fn to_sdk_request(request: JsRequest) -> Request {
    let request = request.into_inner();
    let (parts, body) = request.into_parts();
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    Request {
        method: parts.method.as_str().to_string(),
        url: parts.uri.to_string(),
        headers,
        body,
        timeout_ms: None,
    }
}

/// Converts the SDK's response into Boa's; headers that `http` cannot represent are dropped.
fn to_js_response(url: &str, response: Response) -> JsResult<JsResponse> {
    let mut builder = http::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            builder = builder.header(name, value);
        }
    }
    let response = builder.body(response.body).map_err(|e| {
        JsNativeError::typ().with_message(format!("fetch to {} failed: {e}", origin(url)))
    })?;
    Ok(JsResponse::basic(JsString::from(url), response))
}

/// The message of a failed fetch. It always names the destination's scheme and host (never the
/// path or query, which may carry credentials), so a refused host is easy to spot in the trace.
pub fn failure_message(url: &str, error: &str) -> String {
    let origin = origin(url);
    if error.contains(&origin) {
        format!("fetch failed: {error}")
    } else {
        format!("fetch to {origin} failed: {error}")
    }
}

impl Fetcher for HostFetcher {
    async fn fetch(
        self: Rc<Self>,
        request: JsRequest,
        _signal: Option<JsObject>,
        _context: &RefCell<&mut Context>,
    ) -> JsResult<JsResponse> {
        let request = to_sdk_request(request);
        let url = request.url.clone();
        match self.exchange(request) {
            Ok(response) => to_js_response(&url, response),
            Err(error) => Err(JsError::from(
                JsNativeError::typ().with_message(failure_message(&url, &error)),
            )),
        }
    }
}
