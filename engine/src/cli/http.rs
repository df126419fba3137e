//! A deliberately small HTTP/1.1 client for the CLI's calls to a hookflow server (`flow test ID`):
//! plain `http://` only, one request per connection. It keeps the binary free of a second HTTP
//! stack; for HTTPS, put the CLI next to the server or use the API directly.

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
    let Some(authority) = base.strip_prefix("http://") else {
        bail!("server URL must start with http:// (got {base:?})");
    };
    let authority = authority.trim_end_matches('/');
    let mut stream = TcpStream::connect(authority)
        .await
        .with_context(|| format!("connecting to {authority}"))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(payload).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed HTTP status line")?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    let json = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).context("response is not JSON")?
    };
    Ok((status, json))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn dechunks() {
        assert_eq!(
            super::dechunk("4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"),
            "Wikipedia"
        );
    }
}
