//! A small blocking HTTP client over `wasi:http/outgoing-handler` (WASI 0.2).
//!
//! The host does the networking and TLS; a plugin only builds a [`Request`] and calls
//! [`Request::send`]. The host lets a step reach only the hosts its flow lists in the step's
//! `allowedHosts`; any other request fails with an [`HttpError`] of kind
//! [`HttpErrorKind::Refused`].
//!
//! ```ignore
//! use hookflow_plugin_sdk::{http, json};
//!
//! let resp = http::Request::post("https://api.example.com/v1/things")
//!     .bearer("token")
//!     .json(&json!({"name": "x"}))
//!     .send_ok()?; // like send(), but a non-2xx answer is an error too
//! ```
//!
//! Errors convert into [`StepError`] with `?`: transport failures, timeouts and 5xx/429 answers
//! are retryable, refused hosts, malformed requests and other 4xx answers are not. Messages name
//! only the scheme and host of the URL, never its path or query, because webhook URLs carry
//! credentials in their path.

use crate::{StepError, Value};
use wasi::clocks::monotonic_clock;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, HeaderError, IncomingBody, Method, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasi::io::poll::{Pollable, poll};
use wasi::io::streams::StreamError;

/// Timeout applied when [`Request::timeout_ms`] is `None`: covers connecting, sending and
/// receiving the whole response.
pub const DEFAULT_TIMEOUT_MS: u32 = 30_000;

/// Largest response body the client reads; a larger one fails the request (not retryable).
pub const MAX_RESPONSE_BYTES: usize = 8 << 20;

const USER_AGENT: &str = "hookflow-plugin/0.1";

/// An HTTP request. Build one with [`Request::new`] (or [`Request::get`], [`Request::post`])
/// and the builder methods, or fill in the fields directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method name, e.g. `POST`; case-insensitive for the standard methods.
    pub method: String,
    /// Absolute `http://` or `https://` URL. Spaces and non-ASCII characters in the path are
    /// percent-encoded; user info (`user:pass@`) is refused (use [`Request::basic`]).
    pub url: String,
    /// Header name/value pairs, sent in order; repeated names are sent repeatedly.
    pub headers: Vec<(String, String)>,
    /// Request body; `content-length` is set from it unless a header already says so.
    pub body: Vec<u8>,
    /// Overall timeout in milliseconds; `None` means [`DEFAULT_TIMEOUT_MS`].
    pub timeout_ms: Option<u32>,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Request {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Request::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Request::new("POST", url)
    }

    /// Appends a header (keeps any earlier header of the same name).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets a header, replacing any earlier header of the same name (case-insensitively).
    pub fn set_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
        self
    }

    /// The first header of that name (case-insensitive), if any.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sets the body as raw bytes (does not touch `content-type`).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` as JSON and `content-type` to `application/json`.
    pub fn json(mut self, value: &Value) -> Self {
        self.body = value.to_string().into_bytes();
        self.set_header("content-type", "application/json")
    }

    /// Sets `authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.set_header("authorization", format!("Bearer {token}"))
    }

    /// Sets `authorization: Basic <base64(user:pass)>`.
    pub fn basic(self, username: &str, password: &str) -> Self {
        let encoded = base64(format!("{username}:{password}").as_bytes());
        self.set_header("authorization", format!("Basic {encoded}"))
    }

    /// Sets the overall timeout in milliseconds.
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// Sends the request and waits for the whole response; see [`send`].
    pub fn send(&self) -> Result<Response, HttpError> {
        send(self)
    }

    /// Sends the request like [`Request::send`] and turns a non-2xx answer into an error
    /// ([`Response::check_status`]).
    pub fn send_ok(&self) -> Result<Response, HttpError> {
        send(self)?.check_status(&self.target())
    }

    /// `HTTP METHOD to scheme://host[:port]`, for messages: the URL's path and query are left
    /// out because they may hold credentials (webhook URLs do).
    pub fn target(&self) -> String {
        format!(
            "HTTP {} to {}",
            self.method.trim().to_ascii_uppercase(),
            origin(&self.url)
        )
    }
}

/// A complete HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, e.g. 200.
    pub status: u16,
    /// Header name/value pairs as received (names lowercase, as WASI reports them).
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that name (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// True when `content-type` says JSON (`application/json`, `application/*+json`, ...).
    pub fn is_json(&self) -> bool {
        self.header("content-type").is_some_and(|ct| {
            let mime = ct.split(';').next().unwrap_or("").trim();
            mime.eq_ignore_ascii_case("application/json")
                || mime.to_ascii_lowercase().ends_with("+json")
        })
    }

    /// The body parsed as JSON, whatever `content-type` says; `None` if it is not JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as a step output value: parsed JSON when the response says it is JSON and it
    /// parses, otherwise the text.
    pub fn body_value(&self) -> Value {
        if self.is_json() {
            if let Some(v) = self.json() {
                return v;
            }
        }
        Value::String(self.text())
    }

    /// The headers as a JSON object with lowercase names; repeated headers are joined with
    /// `", "`.
    pub fn headers_object(&self) -> Value {
        let mut map = serde_json::Map::new();
        for (name, value) in &self.headers {
            let name = name.to_ascii_lowercase();
            match map.get_mut(&name) {
                Some(Value::String(existing)) => {
                    existing.push_str(", ");
                    existing.push_str(value);
                }
                _ => {
                    map.insert(name, Value::String(value.clone()));
                }
            }
        }
        Value::Object(map)
    }

    /// Passes 2xx responses through and turns anything else into an [`HttpError`] of kind
    /// [`HttpErrorKind::Status`]; `what` names the call in the message (e.g. `"HTTP POST to
    /// https://hooks.slack.com"`, see [`Request::target`]).
    pub fn check_status(self, what: &str) -> Result<Response, HttpError> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(HttpError::status(what, &self))
        }
    }
}

/// What kind of failure an [`HttpError`] is; decides whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpErrorKind {
    /// The request cannot be sent as given (bad URL, method or header); not retryable.
    InvalidRequest,
    /// The host refused the request (host not in the step's `allowedHosts`, forbidden
    /// destination); not retryable.
    Refused,
    /// The request or the response timed out; retryable.
    Timeout,
    /// DNS, connection, TLS or protocol failure; retryable.
    Transport,
    /// The server answered with an unwanted status; retryable for 5xx and 429.
    Status(u16),
}

/// A failed HTTP request, with the host's or server's explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// What kind of failure this is.
    pub kind: HttpErrorKind,
    /// Readable explanation, naming the method and the URL's scheme and host.
    pub message: String,
}

impl HttpError {
    /// An error of `kind` with `message`.
    pub fn new(kind: HttpErrorKind, message: impl Into<String>) -> Self {
        HttpError {
            kind,
            message: message.into(),
        }
    }

    /// An error for an unwanted status; the message quotes the start of the body.
    pub fn status(what: &str, resp: &Response) -> Self {
        let snippet = body_snippet(resp);
        let message = if snippet.is_empty() {
            format!("{what} answered {}", resp.status)
        } else {
            format!("{what} answered {}: {snippet}", resp.status)
        };
        HttpError::new(HttpErrorKind::Status(resp.status), message)
    }

    /// True when a later attempt may succeed: timeouts, transport failures, 5xx and 429.
    pub fn retryable(&self) -> bool {
        match self.kind {
            HttpErrorKind::InvalidRequest | HttpErrorKind::Refused => false,
            HttpErrorKind::Timeout | HttpErrorKind::Transport => true,
            HttpErrorKind::Status(s) => retryable_status(s),
        }
    }

    /// The status code, for [`HttpErrorKind::Status`] errors.
    pub fn status_code(&self) -> Option<u16> {
        match self.kind {
            HttpErrorKind::Status(s) => Some(s),
            _ => None,
        }
    }
}

impl core::fmt::Display for HttpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for StepError {
    fn from(e: HttpError) -> StepError {
        StepError {
            retryable: e.retryable(),
            message: e.message,
        }
    }
}

/// True for statuses worth retrying: 5xx and 429.
pub fn retryable_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// The start of a response body, on one line, for error messages (at most 300 characters).
pub fn body_snippet(resp: &Response) -> String {
    let text = resp.text();
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    if text.chars().count() > 300 {
        out.push('…');
    }
    out.trim().to_string()
}

/// Checks that `url` is an absolute `http://` or `https://` URL this client can send to.
/// The error message does not repeat the URL.
pub fn check_url(url: &str) -> Result<(), String> {
    parse_url(url).map(|_| ())
}

/// `scheme://host[:port]` of `url` (or `<invalid URL>`), for messages that must not leak the
/// path or query.
pub fn origin(url: &str) -> String {
    match parse_url(url) {
        Ok(u) => format!("{}://{}", u.scheme_name, u.authority),
        Err(_) => "<invalid URL>".to_string(),
    }
}

/// Joins a base URL and a path with exactly one `/` between them.
pub fn join_url(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

struct ParsedUrl {
    scheme: Scheme,
    scheme_name: &'static str,
    authority: String,
    path_with_query: String,
}

fn parse_url(url: &str) -> Result<ParsedUrl, String> {
    let url = url.trim();
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("URL must be absolute (http://… or https://…)")?;
    let (scheme, scheme_name) = if scheme.eq_ignore_ascii_case("https") {
        (Scheme::Https, "https")
    } else if scheme.eq_ignore_ascii_case("http") {
        (Scheme::Http, "http")
    } else {
        return Err(format!(
            "URL scheme `{scheme}` is not supported (use http or https)"
        ));
    };
    let rest = rest.split('#').next().unwrap_or("");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() {
        return Err("URL has no host".to_string());
    }
    if authority.contains('@') {
        return Err("URL must not contain credentials (user:pass@); use basic auth".to_string());
    }
    if authority
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "\\\"<>^`{|}".contains(c))
    {
        return Err("URL host contains invalid characters".to_string());
    }
    let mut path_with_query = String::with_capacity(path.len() + 1);
    if !path.starts_with('/') {
        path_with_query.push('/');
    }
    for b in path.bytes() {
        if b <= b' ' || b >= 0x7f || b"\"<>\\^`{|}".contains(&b) {
            path_with_query.push_str(&format!("%{b:02X}"));
        } else {
            path_with_query.push(b as char);
        }
    }
    Ok(ParsedUrl {
        scheme,
        scheme_name,
        authority: authority.to_string(),
        path_with_query,
    })
}

fn parse_method(method: &str) -> Result<Method, String> {
    let upper = method.trim().to_ascii_uppercase();
    Ok(match upper.as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        "" => return Err("HTTP method is empty".to_string()),
        _ if upper
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            Method::Other(upper)
        }
        _ => return Err(format!("HTTP method `{method}` is not valid")),
    })
}

/// Sends `req` and waits for the whole response (status, headers and body), at most the
/// request's timeout in all.
///
/// Any status is a successful `Ok`; use [`Response::check_status`] to treat non-2xx as an error.
pub fn send(req: &Request) -> Result<Response, HttpError> {
    let target = req.target();
    let invalid =
        |msg: String| HttpError::new(HttpErrorKind::InvalidRequest, format!("{target}: {msg}"));
    let url = parse_url(&req.url).map_err(&invalid)?;
    let method = parse_method(&req.method).map_err(&invalid)?;

    let mut headers: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    if req.header_value("user-agent").is_none() {
        headers.push(("user-agent".into(), USER_AGENT.as_bytes().to_vec()));
    }
    let method_has_body = !matches!(method, Method::Get | Method::Head | Method::Options);
    if req.header_value("content-length").is_none() && (method_has_body || !req.body.is_empty()) {
        headers.push((
            "content-length".into(),
            req.body.len().to_string().into_bytes(),
        ));
    }
    let fields = Fields::from_list(&headers).map_err(|e| invalid(header_problem(&headers, e)))?;

    let request = OutgoingRequest::new(fields);
    request
        .set_method(&method)
        .map_err(|()| invalid(format!("method `{}` refused", req.method)))?;
    request
        .set_scheme(Some(&url.scheme))
        .map_err(|()| invalid("scheme refused".into()))?;
    request
        .set_authority(Some(&url.authority))
        .map_err(|()| invalid("host refused as invalid".into()))?;
    request
        .set_path_with_query(Some(&url.path_with_query))
        .map_err(|()| invalid("path refused as invalid".into()))?;
    let body = request
        .body()
        .map_err(|()| invalid("request body unavailable".into()))?;

    let timeout_ns = u64::from(req.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS).max(1)) * 1_000_000;
    let deadline = monotonic_clock::now().saturating_add(timeout_ns);
    let options = RequestOptions::new();
    // A host may not support some of these; the overall deadline below still applies.
    let _ = options.set_connect_timeout(Some(timeout_ns));
    let _ = options.set_first_byte_timeout(Some(timeout_ns));
    let _ = options.set_between_bytes_timeout(Some(timeout_ns));

    let future = outgoing_handler::handle(request, Some(options))
        .map_err(|code| from_code(&target, code))?;
    if let Err(write_err) = write_body(body, &req.body, deadline, &target) {
        // When the host refuses or fails the request, the body stream breaks too; the response
        // future then holds the real reason, so report that if it arrives soon.
        let ready = future.subscribe();
        let soon = monotonic_clock::now()
            .saturating_add(1_000_000_000)
            .min(deadline);
        if wait(&ready, soon, &target).is_ok() {
            if let Some(Ok(Err(code))) = future.get() {
                return Err(from_code(&target, code));
            }
        }
        return Err(write_err);
    }

    let incoming = {
        let ready = future.subscribe();
        loop {
            match future.get() {
                Some(Ok(Ok(resp))) => break resp,
                Some(Ok(Err(code))) => return Err(from_code(&target, code)),
                Some(Err(())) => {
                    return Err(HttpError::new(
                        HttpErrorKind::Transport,
                        format!("{target}: response already taken"),
                    ));
                }
                None => wait(&ready, deadline, &target)?,
            }
        }
    };
    let status = incoming.status();
    let headers = {
        let fields = incoming.headers();
        fields
            .entries()
            .into_iter()
            .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
            .collect()
    };
    let body_res = incoming.consume().map_err(|()| {
        HttpError::new(
            HttpErrorKind::Transport,
            format!("{target}: response body unavailable"),
        )
    })?;
    let body = read_body(&body_res, deadline, &target)?;
    drop(IncomingBody::finish(body_res));
    drop(incoming);
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn write_body(
    body: OutgoingBody,
    bytes: &[u8],
    deadline: u64,
    target: &str,
) -> Result<(), HttpError> {
    {
        let stream = body.write().map_err(|()| {
            HttpError::new(
                HttpErrorKind::Transport,
                format!("{target}: request body stream unavailable"),
            )
        })?;
        let ready = stream.subscribe();
        let mut rest = bytes;
        while !rest.is_empty() {
            let permit = stream
                .check_write()
                .map_err(|e| stream_error(target, "sending the request body", e))?;
            if permit == 0 {
                wait(&ready, deadline, target)?;
                continue;
            }
            let n = rest
                .len()
                .min(usize::try_from(permit).unwrap_or(usize::MAX));
            stream
                .write(&rest[..n])
                .map_err(|e| stream_error(target, "sending the request body", e))?;
            rest = &rest[n..];
        }
        // Every byte is queued now. The host's HTTP client knows the length, so it may finish
        // the request and close this stream before we flush: that is success, not a failure.
        // A connection that really broke shows up on the response instead.
        match stream.flush() {
            Ok(()) | Err(StreamError::Closed) => {}
            Err(e) => return Err(stream_error(target, "sending the request body", e)),
        }
        loop {
            match stream.check_write() {
                Ok(0) => wait(&ready, deadline, target)?,
                Ok(_) | Err(StreamError::Closed) => break,
                Err(e) => return Err(stream_error(target, "sending the request body", e)),
            }
        }
    }
    OutgoingBody::finish(body, None).map_err(|code| from_code(target, code))
}

fn read_body(body: &IncomingBody, deadline: u64, target: &str) -> Result<Vec<u8>, HttpError> {
    let stream = body.stream().map_err(|()| {
        HttpError::new(
            HttpErrorKind::Transport,
            format!("{target}: response body stream unavailable"),
        )
    })?;
    let ready = stream.subscribe();
    let mut data = Vec::new();
    loop {
        match stream.read(64 * 1024) {
            Ok(chunk) if chunk.is_empty() => wait(&ready, deadline, target)?,
            Ok(chunk) => {
                if data.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(HttpError::new(
                        HttpErrorKind::InvalidRequest,
                        format!(
                            "{target}: response body is larger than {MAX_RESPONSE_BYTES} bytes"
                        ),
                    ));
                }
                data.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => break,
            Err(e) => return Err(stream_error(target, "reading the response body", e)),
        }
    }
    Ok(data)
}

/// Blocks until `ready` fires or the deadline passes.
fn wait(ready: &Pollable, deadline: u64, target: &str) -> Result<(), HttpError> {
    if ready.ready() {
        return Ok(());
    }
    let timer = monotonic_clock::subscribe_instant(deadline);
    if poll(&[ready, &timer]).contains(&0) {
        Ok(())
    } else {
        Err(HttpError::new(
            HttpErrorKind::Timeout,
            format!("{target} timed out"),
        ))
    }
}

fn stream_error(target: &str, doing: &str, e: StreamError) -> HttpError {
    match e {
        StreamError::Closed => HttpError::new(
            HttpErrorKind::Transport,
            format!("{target}: connection closed while {doing}"),
        ),
        StreamError::LastOperationFailed(err) => match wasi::http::types::http_error_code(&err) {
            Some(code) => from_code(target, code),
            None => HttpError::new(
                HttpErrorKind::Transport,
                format!("{target}: failed while {doing}: {}", err.to_debug_string()),
            ),
        },
    }
}

fn header_problem(headers: &[(String, Vec<u8>)], e: HeaderError) -> String {
    // `from_list` does not say which header it rejected; find it by trying one at a time.
    let culprit = headers.iter().find(|(n, v)| {
        let probe = Fields::new();
        probe.append(n, v).is_err()
    });
    let reason = match e {
        HeaderError::InvalidSyntax => "has invalid syntax",
        HeaderError::Forbidden => "is forbidden by the host",
        HeaderError::Immutable => "cannot be set",
    };
    match culprit {
        Some((name, _)) => format!("header `{name}` {reason}"),
        None => format!("a header {reason}"),
    }
}

/// Turns the host's `error-code` into a readable, classified error.
fn from_code(target: &str, code: ErrorCode) -> HttpError {
    use HttpErrorKind::*;
    let (kind, what): (HttpErrorKind, String) = match code {
        ErrorCode::HttpRequestDenied => (
            Refused,
            "refused by the host: the destination must be in the step's allowedHosts (and, \
             outside local development, be a public https address)"
                .into(),
        ),
        ErrorCode::DestinationIpProhibited => (
            Refused,
            "refused: destination IP address is prohibited".into(),
        ),
        ErrorCode::ConfigurationError => (Refused, "refused: host configuration error".into()),
        ErrorCode::InternalError(Some(msg)) => {
            let lower = msg.to_ascii_lowercase();
            let refused = [
                "allow",
                "denied",
                "deny",
                "refus",
                "forbid",
                "not granted",
                "block",
            ]
            .iter()
            .any(|w| lower.contains(w));
            if refused {
                (Refused, format!("refused: {msg}"))
            } else {
                (Transport, format!("failed: {msg}"))
            }
        }
        ErrorCode::InternalError(None) => (Transport, "failed: internal host error".into()),
        ErrorCode::DnsTimeout => (Timeout, "failed: DNS lookup timed out".into()),
        ErrorCode::DnsError(p) => (
            Transport,
            format!(
                "failed: DNS error{}",
                p.rcode.map(|r| format!(" ({r})")).unwrap_or_default()
            ),
        ),
        ErrorCode::DestinationNotFound => (Transport, "failed: host not found".into()),
        ErrorCode::DestinationUnavailable => (Transport, "failed: destination unavailable".into()),
        ErrorCode::DestinationIpUnroutable => {
            (Transport, "failed: destination IP unroutable".into())
        }
        ErrorCode::ConnectionRefused => (Transport, "failed: connection refused".into()),
        ErrorCode::ConnectionTerminated => (Transport, "failed: connection terminated".into()),
        ErrorCode::ConnectionTimeout => (Timeout, "failed: connect timed out".into()),
        ErrorCode::ConnectionReadTimeout => (Timeout, "failed: read timed out".into()),
        ErrorCode::ConnectionWriteTimeout => (Timeout, "failed: write timed out".into()),
        ErrorCode::ConnectionLimitReached => (Transport, "failed: connection limit reached".into()),
        ErrorCode::TlsProtocolError => (Transport, "failed: TLS protocol error".into()),
        ErrorCode::TlsCertificateError => (Transport, "failed: TLS certificate error".into()),
        ErrorCode::TlsAlertReceived(p) => (
            Transport,
            format!(
                "failed: TLS alert{}",
                p.alert_message
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ),
        ),
        ErrorCode::HttpRequestLengthRequired => {
            (InvalidRequest, "failed: content-length required".into())
        }
        ErrorCode::HttpRequestBodySize(_) => (
            InvalidRequest,
            "failed: request body size mismatch or too large".into(),
        ),
        ErrorCode::HttpRequestMethodInvalid => (InvalidRequest, "failed: invalid method".into()),
        ErrorCode::HttpRequestUriInvalid => (InvalidRequest, "failed: invalid URL".into()),
        ErrorCode::HttpRequestUriTooLong => (InvalidRequest, "failed: URL too long".into()),
        ErrorCode::HttpRequestHeaderSectionSize(_) | ErrorCode::HttpRequestHeaderSize(_) => {
            (InvalidRequest, "failed: request headers too large".into())
        }
        ErrorCode::HttpRequestTrailerSectionSize(_) | ErrorCode::HttpRequestTrailerSize(_) => {
            (InvalidRequest, "failed: request trailers too large".into())
        }
        ErrorCode::HttpResponseIncomplete => (Transport, "failed: response incomplete".into()),
        ErrorCode::HttpResponseHeaderSectionSize(_) | ErrorCode::HttpResponseHeaderSize(_) => {
            (Transport, "failed: response headers too large".into())
        }
        ErrorCode::HttpResponseBodySize(_) => (Transport, "failed: response body too large".into()),
        ErrorCode::HttpResponseTrailerSectionSize(_) | ErrorCode::HttpResponseTrailerSize(_) => {
            (Transport, "failed: response trailers too large".into())
        }
        ErrorCode::HttpResponseTransferCoding(c) | ErrorCode::HttpResponseContentCoding(c) => (
            Transport,
            format!(
                "failed: unsupported response coding{}",
                c.map(|c| format!(" ({c})")).unwrap_or_default()
            ),
        ),
        ErrorCode::HttpResponseTimeout => (Timeout, "failed: response timed out".into()),
        ErrorCode::HttpUpgradeFailed => (Transport, "failed: HTTP upgrade failed".into()),
        ErrorCode::HttpProtocolError => (Transport, "failed: HTTP protocol error".into()),
        ErrorCode::LoopDetected => (Transport, "failed: loop detected".into()),
    };
    HttpError::new(kind, format!("{target} {what}"))
}

/// Standard base64 (with padding), for basic auth.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
