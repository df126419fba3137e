//! Hardening I, "no connection timeouts": clients that hold connections open (slow headers,
//! slow bodies, more connections than the cap, a half-sent request at shutdown) cannot keep the
//! server from answering or from stopping. Each test is named after the finding it reproduces;
//! timeouts are set small through the environment.

use crate::common::*;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on waiting for something the server must do after a timeout of a second or two:
/// generous, so a loaded machine does not fail the test; it only fails when the thing never
/// happens.
const BOUND: Duration = Duration::from_secs(20);

fn limits(pairs: &[(&'static str, &str)]) -> Options {
    Options {
        env: pairs.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        ..Options::default()
    }
}

async fn connect(server: &Server) -> TcpStream {
    let address = server.base.trim_start_matches("http://").to_string();
    TcpStream::connect(address).await.expect("connect")
}

/// Reads until the server closes the connection (or resets it); returns what it sent.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// Sends `bytes` one at a time, `every` apart, until done or the server closes the connection.
fn drip(mut writer: tokio::net::tcp::OwnedWriteHalf, bytes: Vec<u8>, every: Duration) {
    tokio::spawn(async move {
        for byte in bytes {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
        // Keep the connection half-sent rather than closing it.
        std::future::pending::<()>().await;
    });
}

/// `/healthz`'s status, with the body when it is not 200 (the test then fails saying why).
async fn healthz(server: &Server) -> reqwest::StatusCode {
    let response = server
        .client
        .get(server.url("/healthz"))
        .timeout(BOUND)
        .send()
        .await
        .unwrap_or_else(|e| panic!("/healthz did not answer: {e:?}"));
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        let body = response.text().await.unwrap_or_default();
        eprintln!("/healthz answered {status}: {body}");
    }
    status
}

#[tokio::test]
async fn slowloris_headers_byte_by_byte_are_cut_after_the_header_timeout_while_healthz_answers() {
    let server = Server::start_with(limits(&[
        ("HOOKFLOW_HEADER_TIMEOUT_SECS", "1"),
        ("HOOKFLOW_IDLE_TIMEOUT_SECS", "600"),
    ]))
    .await;
    // A crowd of clients, each sending a never-ending header one byte every 100 ms: each one
    // alone would stay open for ten minutes (the idle timeout is not what cuts them).
    let mut readers = Vec::new();
    for _ in 0..20 {
        let (reader, writer) = connect(&server).await.into_split();
        let mut head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_vec();
        head.extend(std::iter::repeat_n(b'a', 6000));
        drip(writer, head, Duration::from_millis(100));
        readers.push(reader);
    }
    assert_eq!(healthz(&server).await, reqwest::StatusCode::OK);
    for mut reader in readers {
        let mut buf = [0u8; 256];
        let closed = tokio::time::timeout(BOUND, reader.read(&mut buf))
            .await
            .expect("the server closes a connection whose headers never end");
        assert!(
            matches!(closed, Ok(0) | Err(_)),
            "closed without an answer, got {closed:?}"
        );
    }
    assert_eq!(healthz(&server).await, reqwest::StatusCode::OK);
}

#[tokio::test]
async fn slow_body_is_cut_with_408_after_the_body_timeout() {
    let server = Server::start_with(limits(&[
        ("HOOKFLOW_BODY_TIMEOUT_SECS", "1"),
        ("HOOKFLOW_HEADER_TIMEOUT_SECS", "600"),
        ("HOOKFLOW_IDLE_TIMEOUT_SECS", "600"),
    ]))
    .await;
    let flow = server
        .create_flow(webhook_flow("slow body", json!([log_step("l", "x")])))
        .await;
    let (mut reader, mut writer) = connect(&server).await.into_split();
    let head = format!(
        "POST /v1/webhooks/{flow} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 100000\r\n\r\n{{"
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    // The rest of the body, one byte every 100 ms: 10,000 s in all.
    drip(writer, vec![b' '; 99_999], Duration::from_millis(100));
    let answer = tokio::time::timeout(BOUND, async {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = reader.read(&mut buf).await {
            received.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&received).into_owned()
    })
    .await
    .expect("the server answers and closes a request whose body never ends");
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "answered 408 Request Timeout: {answer:?}"
    );
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(
        answer.contains("did not arrive within 1 s"),
        "says which limit: {answer}"
    );
    // Nothing was accepted from the cut request.
    let runs = server
        .get_json(&format!("/v1/flow-runs?flowId={flow}"))
        .await;
    assert_eq!(
        runs["data"].as_array().expect("a page of runs").len(),
        0,
        "{runs}"
    );
}

#[tokio::test]
async fn connections_over_the_cap_wait_and_healthz_answers_once_others_close() {
    let server = Server::start_with(limits(&[
        ("HOOKFLOW_MAX_CONNECTIONS", "2"),
        ("HOOKFLOW_IDLE_TIMEOUT_SECS", "600"),
        ("HOOKFLOW_HEADER_TIMEOUT_SECS", "600"),
    ]))
    .await;
    // Two clients hold the two connections the server serves, saying nothing.
    let first = connect(&server).await;
    let second = connect(&server).await;
    // The third connects (the kernel's backlog takes it) and asks for /healthz: no answer
    // while the others hold the cap.
    let mut third = connect(&server).await;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "over the cap the request waits: {:?}",
        early.map(|r| r.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned()))
    );
    drop(first);
    drop(second);
    let answer = tokio::time::timeout(BOUND, read_to_close(&mut third))
        .await
        .expect("answered once the others closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert_eq!(healthz(&server).await, reqwest::StatusCode::OK);
}

#[tokio::test]
async fn sigterm_with_stuck_half_sent_clients_exits_within_the_shutdown_deadline() {
    let mut server = Server::start_with(limits(&[
        ("HOOKFLOW_HTTP_SHUTDOWN_SECS", "1"),
        ("HOOKFLOW_HEADER_TIMEOUT_SECS", "600"),
        ("HOOKFLOW_BODY_TIMEOUT_SECS", "600"),
        ("HOOKFLOW_IDLE_TIMEOUT_SECS", "600"),
    ]))
    .await;
    let flow = server
        .create_flow(webhook_flow("stuck", json!([log_step("l", "x")])))
        .await;
    // One client stops halfway through its headers, another halfway through its body (a
    // request in flight, which a graceful shutdown waits for).
    let mut half_head = connect(&server).await;
    half_head
        .write_all(b"POST /v1/webhooks/x HTTP/1.1\r\nHost: x\r\nContent-")
        .await
        .unwrap();
    let mut half_body = connect(&server).await;
    let head = format!(
        "POST /v1/webhooks/{flow} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{{\"a\":"
    );
    half_body.write_all(head.as_bytes()).await.unwrap();
    // And one kept-alive connection with nothing to do.
    let mut idle = connect(&server).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(BOUND, idle.read(&mut buf))
        .await
        .expect("/healthz answers")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // `terminate` fails the test if the process has not exited 30 s after SIGTERM (the clients
    // above would hold it forever without the shutdown deadline).
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "clean exit: {status:?}");
    for stream in [&mut half_head, &mut half_body, &mut idle] {
        let closed = tokio::time::timeout(BOUND, stream.read(&mut buf))
            .await
            .expect("the connection is closed");
        assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    }
}

#[tokio::test]
async fn bad_connection_limits_exit_2_with_one_line() {
    for (name, value) in [
        ("HOOKFLOW_HEADER_TIMEOUT_SECS", "0"),
        ("HOOKFLOW_BODY_TIMEOUT_SECS", "7200"),
        ("HOOKFLOW_IDLE_TIMEOUT_SECS", "0"),
        ("HOOKFLOW_MAX_CONNECTIONS", "0"),
        ("HOOKFLOW_HTTP_SHUTDOWN_SECS", "99999"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_hookflow"))
            .arg("serve")
            .env("HOOKFLOW_LISTEN", "127.0.0.1:0")
            .env("HOOKFLOW_DATA_DIR", dir.path())
            .env("HOOKFLOW_ADMIN_TOKEN", ADMIN_TOKEN)
            .env(name, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}={value}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains(name), "names the setting: {stderr}");
    }
}

/// Hardening I, "do not link `wasi:http` for a step without `allowedHosts`": such a step's
/// plugin is linked to an outgoing handler that only refuses. In development mode (loopback
/// allowed) a script looping over `fetch` to a live receiver reaches nothing, every call fails
/// with an error naming the host that the script can catch, the trace lists the first refusals
/// and counts the rest, and the server's memory stays where it was.
#[tokio::test]
async fn plugin_without_allowed_hosts_cannot_make_http_requests_and_host_memory_stays_bounded() {
    let server =
        Server::start_with(limits(&[("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "1")])).await;
    let receiver = crate::receiver::Receiver::start().await;
    let code = format!(
        "exports.handler = async () => {{
           let refused = 0, last = '';
           for (let i = 0; i < 3000; i++) {{
             try {{ await fetch('{}/x', {{method: 'POST', body: 'x'.repeat(1000)}}); }}
             catch (e) {{ refused++; last = String(e); }}
           }}
           return {{refused, last}};
         }};",
        receiver.base
    );
    let step = json!({"name": "calls", "type": "action", "plugin": "javascript@1.0.0",
                      "input": {"code": code}, "timeoutMs": 60000});
    let flow = server
        .create_flow(webhook_flow("no hosts", json!([step])))
        .await;
    let before = server.resident_bytes();
    for _ in 0..3 {
        let run = server.run_flow(&flow, &json!({})).await;
        assert_eq!(run["status"], "SUCCEEDED", "{run}");
        let calls = crate::common::step(&run, "calls");
        assert_eq!(calls["output"]["refused"], 3000, "{calls}");
        let last = calls["output"]["last"].as_str().unwrap();
        assert!(
            last.contains("127.0.0.1") && last.contains("no allowedHosts"),
            "the script sees why: {last}"
        );
        let refused = calls["detail"]["refusedRequests"].as_array().unwrap();
        assert_eq!(refused.len(), 21, "the first 20 and a count: {refused:?}");
        assert!(refused[0].as_str().unwrap().contains("no allowedHosts"));
        assert_eq!(refused[20], "2980 more requests refused");
    }
    assert!(receiver.seen().is_empty(), "nothing reached the receiver");
    let after = server.resident_bytes();
    assert!(
        after < before + (100 << 20),
        "resident memory grew from {} MiB to {} MiB",
        before >> 20,
        after >> 20
    );
}
