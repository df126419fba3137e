//! The CLI's calls to a hookflow server (`flow test ID`, `plugin install`, people and keys):
//! `http://` or `https://` (rustls with the platform's web PKI roots), over the same reqwest
//! client the server uses for deliveries, so the binary carries one HTTP stack.

use anyhow::{Context, bail};
use serde_json::Value;
use std::time::Duration;

/// How long one CLI call may take (installing a large component included).
const TIMEOUT: Duration = Duration::from_secs(120);

/// Sends a JSON request and returns the status code and JSON body.
pub async fn request(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let payload = body.map(Value::to_string).unwrap_or_default();
    send(
        base,
        method,
        path,
        token,
        "application/json",
        payload.as_bytes(),
    )
    .await
}

/// Sends raw bytes (a plugin component) and returns the status code and JSON body.
pub async fn send(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    content_type: &str,
    payload: &[u8],
) -> anyhow::Result<(u16, Value)> {
    let url = url(base, path)?;
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .with_context(|| format!("{method:?} is not an HTTP method"))?;
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .context("building the HTTP client")?;
    let response = client
        .request(method, &url)
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(payload.to_vec())
        .send()
        .await
        .with_context(|| format!("calling {url}"))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .with_context(|| format!("reading the answer of {url}"))?;
    let json = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).with_context(|| format!("the answer of {url} is not JSON"))?
    };
    Ok((status, json))
}

/// `base` (an `http://` or `https://` server URL, with or without a trailing slash) joined with
/// `path`.
fn url(base: &str, path: &str) -> anyhow::Result<String> {
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        bail!("server URL must start with http:// or https:// (got {base:?})");
    }
    Ok(format!("{}{path}", base.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_urls_join_and_are_checked() {
        assert_eq!(
            super::url("https://hooks.example.com/", "/v1/flows").unwrap(),
            "https://hooks.example.com/v1/flows"
        );
        assert_eq!(
            super::url("http://127.0.0.1:8080", "/v1/flows").unwrap(),
            "http://127.0.0.1:8080/v1/flows"
        );
        let err = super::url("ftp://x", "/v1").unwrap_err().to_string();
        assert!(err.contains("http:// or https://"), "{err}");
    }
}
