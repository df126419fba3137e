//! The commands that talk to a running server (`flow deploy|list|show|export|delete|versions|
//! diff`, `run`, `secret`, `destination`, `plugin`, `audit --url`): one module per resource over
//! the one client here, which turns every answer into the CLI's exit codes:
//!
//! - a 2xx is the command's output (a table, or the JSON with `--json`);
//! - a 4xx is the user's to fix: one line with the problem's `detail`, exit 2 (401 and 403 say
//!   to check the token);
//! - a 5xx, an answer that is not JSON or a server that cannot be reached: one line naming the
//!   URL, exit 1.

pub mod audit;
pub mod destinations;
pub mod flows;
pub mod plugins;
pub mod runs;
pub mod secrets;

use super::progress::Progress;
use super::{Failure, usage};
use anyhow::anyhow;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// How long one call may take (installing a large component included).
const TIMEOUT: Duration = Duration::from_secs(120);

/// Where the token comes from when `--token` is not given, in this order.
pub const TOKEN_ENVS: [&str; 2] = ["HOOKFLOW_TOKEN", "HOOKFLOW_ADMIN_TOKEN"];

/// The token to send: `given` (`--token`), else `HOOKFLOW_TOKEN`, else `HOOKFLOW_ADMIN_TOKEN`,
/// else the admin token `serve` wrote into its data directory (`HOOKFLOW_DATA_DIR`, default
/// `./hookflow-data`), so the CLI works as is next to a server started in the same directory.
pub fn resolve_token(given: Option<&str>) -> Result<String, Failure> {
    if let Some(token) = given.filter(|t| !t.is_empty()) {
        return Ok(token.to_string());
    }
    for name in TOKEN_ENVS {
        if let Some(token) = std::env::var(name).ok().filter(|t| !t.trim().is_empty()) {
            return Ok(token.trim().to_string());
        }
    }
    let dir = std::env::var_os("HOOKFLOW_DATA_DIR").unwrap_or_else(|| "hookflow-data".into());
    let file = PathBuf::from(dir).join("admin-token");
    match std::fs::read_to_string(&file) {
        Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_string()),
        _ => Err(usage(format!(
            "no token: pass --token, set HOOKFLOW_TOKEN, or run next to the server's data directory (no {})",
            file.display()
        ))),
    }
}

/// A server and the credential to call it with.
pub struct Remote {
    base: String,
    token: String,
    client: reqwest::Client,
}

/// A request body.
pub enum Body<'a> {
    None,
    Json(&'a Value),
    /// Bytes of this content type, sent in chunks that move the progress as they go out.
    Upload(&'a str, Vec<u8>, Progress),
}

/// Size of the chunks an upload is handed to the connection in (one progress step each).
const UPLOAD_CHUNK: usize = 64 << 10;

/// `bytes` as a streamed body that reports each chunk taken by the connection to `progress`.
fn upload_body(bytes: Vec<u8>, mut progress: Progress) -> reqwest::Body {
    let bytes = bytes::Bytes::from(bytes);
    let total = bytes.len();
    let chunks = (0..total).step_by(UPLOAD_CHUNK).map(move |start| {
        let end = (start + UPLOAD_CHUNK).min(total);
        progress.show(end as u64, String::new);
        if end == total {
            progress.finish(end as u64, || "; the server compiles it now".into());
        }
        Ok::<_, std::io::Error>(bytes.slice(start..end))
    });
    reqwest::Body::wrap_stream(futures::stream::iter(chunks))
}

impl Remote {
    /// Checks the URL (`http://` or `https://`) and finds the token; nothing is sent yet.
    pub fn new(url: &str, token: Option<&str>) -> Result<Remote, Failure> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(usage(format!(
                "--url must start with http:// or https:// (got {url:?})"
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| Failure::Internal(anyhow!("building the HTTP client: {e}")))?;
        Ok(Remote {
            base: url.trim_end_matches('/').to_string(),
            token: resolve_token(token)?,
            client,
        })
    }

    /// The server's base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request and returns the answer's status and body, whatever the status; only a
    /// server that cannot be reached (or answers garbage) is an error here.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Body<'_>,
    ) -> Result<(u16, Vec<u8>), Failure> {
        let url = format!("{}{path}", self.base);
        let mut request = self.client.request(method, &url).bearer_auth(&self.token);
        request = match body {
            Body::None => request,
            Body::Json(value) => request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(value.to_string()),
            Body::Upload(content_type, bytes, progress) => request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .header(reqwest::header::CONTENT_LENGTH, bytes.len())
                .body(upload_body(bytes, progress)),
        };
        let response = request
            .send()
            .await
            .map_err(|e| unreachable_server(&self.base, &e))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unreachable_server(&self.base, &e))?;
        Ok((status, bytes.to_vec()))
    }

    /// Sends a request that must succeed (2xx); returns the JSON body (`null` when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Body<'_>,
    ) -> Result<Value, Failure> {
        let (status, bytes) = self.send(method, path, body).await?;
        let json = parse_json(&bytes);
        if (200..300).contains(&status) {
            return match json {
                Some(value) => Ok(value),
                None if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Value::Null),
                None => Err(Failure::Internal(anyhow!(
                    "the answer of {}{path} is not JSON (is {} a hookflow server?)",
                    self.base,
                    self.base
                ))),
            };
        }
        Err(refusal(status, json.as_ref()))
    }

    /// A GET whose answer is read by the caller as it arrives (exports); refusals as [`call`].
    ///
    /// [`call`]: Remote::call
    pub async fn stream(&self, path: &str) -> Result<reqwest::Response, Failure> {
        let url = format!("{}{path}", self.base);
        let response = self
            .client
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| unreachable_server(&self.base, &e))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let bytes = response.bytes().await.unwrap_or_default();
        Err(refusal(status, parse_json(&bytes).as_ref()))
    }

    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.call(reqwest::Method::GET, path, Body::None).await
    }

    /// Every item of a paginated list (`{data, next}`), following `next` to the end.
    pub async fn get_all(&self, path: &str) -> Result<Vec<Value>, Failure> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        // Bounded: a server that kept answering `next` would otherwise loop for ever.
        for _ in 0..10_000 {
            let page_path = match &cursor {
                None => format!("{path}{separator}limit=500"),
                Some(c) => format!("{path}{separator}limit=500&cursor={}", encode(c)),
            };
            let page = self.get(&page_path).await?;
            if let Some(data) = page["data"].as_array() {
                items.extend(data.iter().cloned());
            }
            match page["next"].as_str() {
                Some(next) if !next.is_empty() => cursor = Some(next.to_string()),
                _ => return Ok(items),
            }
        }
        Ok(items)
    }
}

fn parse_json(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice(bytes).ok()
}

/// A refused request as the CLI reports it: 4xx exit 2 with the problem's detail (and the
/// problems by path of an invalid flow), 401/403 pointing at the token; anything else exit 1.
fn refusal(status: u16, body: Option<&Value>) -> Failure {
    let detail = body
        .and_then(|b| b["detail"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| "(no detail)".into());
    let mut line = detail;
    if let Some(errors) = body.and_then(|b| b["errors"].as_array()) {
        let listed: Vec<String> = errors
            .iter()
            .filter_map(|e| {
                let message = e["message"].as_str()?;
                Some(match e["path"].as_str() {
                    Some(path) if !path.is_empty() => format!("{path}: {message}"),
                    _ => message.to_string(),
                })
            })
            .filter(|text| !line.contains(text.as_str()))
            .collect();
        if !listed.is_empty() {
            line = format!("{line} ({})", listed.join("; "));
        }
    }
    let line = one_line(&line);
    match status {
        401 | 403 => usage(format!(
            "{line} (HTTP {status}; check the token: --token, HOOKFLOW_TOKEN or HOOKFLOW_ADMIN_TOKEN)"
        )),
        400..=499 => usage(format!("{line} (HTTP {status})")),
        _ => Failure::Internal(anyhow!("server error (HTTP {status}): {line}")),
    }
}

/// One line naming the server that could not be reached and the innermost reason.
fn unreachable_server(base: &str, error: &reqwest::Error) -> Failure {
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        reason = inner.to_string();
        source = inner.source();
    }
    let what = if error.is_timeout() {
        "timed out calling"
    } else if error.is_connect() {
        "cannot connect to"
    } else {
        "failed calling"
    };
    Failure::Internal(anyhow!("{what} {base}: {}", one_line(&reason)))
}

/// `text` on one line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Percent-encodes a path segment or query value (everything but unreserved characters).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Prints `value` as pretty JSON (for `--json`).
pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// A string field, or `-` when absent or null.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Which server to talk to: `--url` (`HOOKFLOW_URL`; `--server` also works) and `--token`.
#[derive(Debug, Clone, clap::Args)]
pub struct Connect {
    /// Server URL (http:// or https://).
    #[arg(
        long = "url",
        visible_alias = "server",
        env = "HOOKFLOW_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// API key or admin token. Default: HOOKFLOW_TOKEN, HOOKFLOW_ADMIN_TOKEN, else the admin
    /// token the server wrote into its data directory (HOOKFLOW_DATA_DIR, ./hookflow-data).
    #[arg(long, hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON for scripts instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Connect {
    pub fn remote(&self) -> Result<Remote, Failure> {
        Remote::new(&self.url, self.token.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(failure: Failure) -> (u8, String) {
        match failure {
            Failure::Usage(super::super::UsageError(m)) => (2, m),
            Failure::Internal(e) => (1, e.to_string()),
        }
    }

    #[test]
    fn refusals_are_one_line_with_the_detail_and_the_right_exit_code() {
        let body = serde_json::json!({"status": 404, "detail": "flow x\nnot found"});
        assert_eq!(
            message(refusal(404, Some(&body))),
            (2, "flow x not found (HTTP 404)".into())
        );
        let (code, line) = message(refusal(401, Some(&serde_json::json!({"detail": "bad"}))));
        assert_eq!(code, 2);
        assert!(line.contains("check the token"), "{line}");
        let (code, line) = message(refusal(500, None));
        assert_eq!(code, 1);
        assert!(line.contains("HTTP 500"), "{line}");
    }

    #[test]
    fn problems_by_path_are_listed_once() {
        let body = serde_json::json!({"detail": "2 problems", "errors": [
            {"path": "steps[0].plugin", "message": "unknown plugin"},
            {"path": "", "message": "name: required"}]});
        let (_, line) = message(refusal(422, Some(&body)));
        assert_eq!(
            line,
            "2 problems (steps[0].plugin: unknown plugin; name: required) (HTTP 422)"
        );
    }

    #[test]
    fn encoding_keeps_unreserved_characters_only() {
        assert_eq!(encode("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9");
        assert_eq!(encode("SLACK_URL-1.x~"), "SLACK_URL-1.x~");
    }

    #[test]
    fn urls_must_be_http_or_https() {
        let Err(failure) = Remote::new("ftp://x", Some("t")) else {
            panic!("ftp accepted");
        };
        assert!(message(failure).1.contains("http:// or https://"));
        assert_eq!(
            Remote::new("https://hooks.example.com/", Some("t"))
                .ok()
                .unwrap()
                .base(),
            "https://hooks.example.com"
        );
    }
}
