//! Event destinations: signed deliveries (checked by an independent HMAC), verification token,
//! custom headers, filters, retries with a stable webhook-id, Retry-After, 410, the breaker,
//! redelivery, crash safety, the test send, and SSRF refusals without dev mode.

use crate::common::*;
use crate::receiver::{Receiver, Seen};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn dev_server() -> Server {
    Server::start_with(Options {
        hostile: false,
        env: vec![
            ("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "1".into()),
            ("HOOKFLOW_DELIVERY_RETRY_SCHEDULE", "0.2,0.2,0.2".into()),
        ],
    })
    .await
}

async fn create_destination(server: &Server, body: Value) -> (StatusCode, Value) {
    let r = server
        .admin(Method::POST, "/v1/event-destinations")
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

/// Waits (bounded) until `check` holds for the receiver's requests to `path`.
async fn wait_for(rx: &Receiver, path: &str, check: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
    // Beyond the 60 s delivery lease: on PostgreSQL a process killed mid-delivery leaves its
    // claim to expire (on SQLite a restart frees it at once).
    let deadline = Instant::now() + Duration::from_secs(75);
    loop {
        let seen = rx.to(path);
        if check(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for deliveries to {path}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Standard Webhooks verification written out independently of the engine's code.
fn independent_verify(secret: &str, seen: &Seen) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let signed = format!(
        "{}.{}.{}",
        seen.headers["webhook-id"], seen.headers["webhook-timestamp"], seen.body
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(signed.as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    seen.headers["webhook-signature"]
        .split(' ')
        .any(|s| s == expected)
}

/// Also verify with the `standardwebhooks` package from PyPI when it is installed.
fn python_verify(secret: &str, seen: &Seen) -> Option<bool> {
    let script = "import sys,json\nfrom standardwebhooks.webhooks import Webhook\nd=json.load(sys.stdin)\nWebhook(d['secret']).verify(d['body'], d['headers'])\nprint('ok')";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let input = json!({"secret": secret, "body": seen.body, "headers": seen.headers});
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.to_string().as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("ModuleNotFoundError") {
        eprintln!("skipping the standardwebhooks check: the PyPI package is not installed");
        return None;
    }
    Some(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok"))
}

#[tokio::test]
async fn deliveries_are_signed_filtered_and_carry_token_and_headers() {
    let server = dev_server().await;
    let rx = Receiver::start().await;
    let (status, dest) = create_destination(
        &server,
        json!({"name": "siem", "url": format!("{}/audit", rx.base), "events": ["flow.created", "flow.run.finished"], "headers": {"X-Team": "platform"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{dest}");
    let secret = dest["signingSecret"].as_str().unwrap().to_string();
    let token = dest["verificationToken"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));

    let id = server
        .create_flow(webhook_flow("streamed", json!([])))
        .await;
    server
        .admin(Method::PUT, "/v1/secrets/X")
        .json(&json!({"value": "vvvv"}))
        .send()
        .await
        .unwrap();
    server.run_flow(&id, &json!({})).await;
    let seen = wait_for(&rx, "/audit", |s| s.len() >= 2).await;
    let actions: Vec<Value> = seen.iter().map(|s| s.json()["action"].clone()).collect();
    assert_eq!(
        actions,
        [json!("flow.created"), json!("flow.run.finished")],
        "filter and order"
    );
    for s in &seen {
        assert!(independent_verify(&secret, s), "signature: {s:?}");
        if let Some(ok) = python_verify(&secret, s) {
            assert!(ok, "standardwebhooks rejected {s:?}");
        }
        assert_eq!(s.headers["x-hookflow-event-streaming-token"], token);
        assert_eq!(s.headers["x-team"], "platform");
        assert_eq!(s.headers["content-type"], "application/json");
        assert_eq!(s.headers["webhook-id"].len(), 36);
    }
    assert_eq!(seen[0].json()["data"]["flow"]["displayName"], "streamed");

    let view: Value = server
        .get_json(&format!(
            "/v1/event-destinations/{}",
            dest["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(view["headers"]["x-team"], "********");
    assert!(view.get("signingSecret").is_none() && view.get("verificationToken").is_none());
    let deliveries: Value = server
        .get_json(&format!(
            "/v1/event-destinations/{}/deliveries",
            dest["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(deliveries["data"][0]["statusCode"], 200);
}

#[tokio::test]
async fn retries_keep_the_webhook_id_and_honour_retry_after_then_410_disables() {
    let server = dev_server().await;
    let rx = Receiver::start().await;
    rx.answer_with_headers("/flaky", 503, "text/plain", "busy", &[("retry-after", "1")]);
    let (_, dest) = create_destination(
        &server,
        json!({"name": "flaky", "url": format!("{}/flaky", rx.base), "events": ["flow.created"]}),
    )
    .await;
    server.create_flow(webhook_flow("one", json!([]))).await;
    let first = wait_for(&rx, "/flaky", |s| !s.is_empty()).await;
    let started = Instant::now();
    rx.answer("/flaky", 200, "text/plain", "ok");
    let both = wait_for(&rx, "/flaky", |s| s.len() >= 2).await;
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(
        both[0].headers["webhook-id"],
        first[0].headers["webhook-id"]
    );
    assert_eq!(
        both[1].headers["webhook-id"], first[0].headers["webhook-id"],
        "same id on retry"
    );
    let id = dest["id"].as_str().unwrap();
    // The attempt is recorded just after the receiver answers: wait (bounded) for the record.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (deliveries, codes) = loop {
        let deliveries: Value = server
            .get_json(&format!("/v1/event-destinations/{id}/deliveries"))
            .await;
        let codes: Vec<i64> = deliveries["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["statusCode"].as_i64().unwrap())
            .collect();
        if codes.len() >= 2 || Instant::now() > deadline {
            break (deliveries, codes);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(codes, [200, 503]);
    assert_eq!(deliveries["data"][1]["responseBody"], "busy");

    rx.answer("/flaky", 410, "text/plain", "gone");
    server.create_flow(webhook_flow("two", json!([]))).await;
    wait_for(&rx, "/flaky", |s| s.len() >= 3).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let view: Value = server
            .get_json(&format!("/v1/event-destinations/{id}"))
            .await;
        if view["enabled"] == false {
            assert!(view["disabledReason"].as_str().unwrap().contains("410"));
            break;
        }
        assert!(Instant::now() < deadline, "410 did not disable: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let audit: Value = server
        .get_json("/v1/audit-events?action=destination.disabled")
        .await;
    assert_eq!(
        audit["data"].as_array().unwrap().len(),
        1,
        "an audit event says so"
    );
}

#[tokio::test]
async fn failed_events_can_be_redelivered_and_the_breaker_pauses_a_dead_endpoint() {
    let server = dev_server().await;
    let rx = Receiver::start().await;
    rx.answer("/down", 500, "text/plain", "nope");
    let (_, dest) = create_destination(
        &server,
        json!({"name": "down", "url": format!("{}/down", rx.base), "events": ["flow.created"]}),
    )
    .await;
    let id = dest["id"].as_str().unwrap().to_string();
    server.create_flow(webhook_flow("a", json!([]))).await;
    // 1 attempt + 3 retries, then FAILED.
    wait_for(&rx, "/down", |s| s.len() >= 4).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(rx.to("/down").len(), 4, "no more than the schedule allows");
    rx.answer("/down", 200, "text/plain", "ok");
    // A time range that holds nothing queues nothing; a bad bound is refused by name.
    let redeliver = |body: Value| {
        let server = &server;
        let id = id.clone();
        async move {
            let r = server
                .admin(
                    Method::POST,
                    &format!("/v1/event-destinations/{id}/redeliver"),
                )
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let (_, none) = redeliver(json!({"createdBefore": "2000-01-01T00:00:00Z"})).await;
    assert_eq!(none["queued"], 0);
    let (status, bad) = redeliver(json!({"createdAfter": "yesterday"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        bad["detail"].as_str().unwrap().starts_with("createdAfter:"),
        "{bad}"
    );
    let (_, ranged) = redeliver(
        json!({"createdAfter": "2000-01-01T00:00:00Z", "createdBefore": "2999-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(ranged["queued"], 1);
    let r: Value = server
        .admin(
            Method::POST,
            &format!("/v1/event-destinations/{id}/redeliver"),
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        r["queued"] == 0 || r["queued"] == 1,
        "already queued by the range: {r}"
    );
    let seen = wait_for(&rx, "/down", |s| s.len() >= 5).await;
    assert_eq!(seen[4].headers["webhook-id"], seen[0].headers["webhook-id"]);

    // Five failures in a row open the breaker.
    rx.answer("/down", 500, "text/plain", "nope");
    for i in 0..2 {
        server
            .create_flow(webhook_flow(&format!("b{i}"), json!([])))
            .await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let view: Value = server
            .get_json(&format!("/v1/event-destinations/{id}"))
            .await;
        if view["pausedUntil"].is_i64() {
            assert!(view["failingSince"].is_string());
            break;
        }
        assert!(Instant::now() < deadline, "breaker never opened: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn nothing_is_lost_when_the_server_dies_before_delivering() {
    let mut server = dev_server().await;
    let rx = Receiver::start().await;
    rx.answer("/slow", 503, "text/plain", "later");
    let (_, dest) = create_destination(
        &server,
        json!({"name": "slow", "url": format!("{}/slow", rx.base), "events": ["flow.created"]}),
    )
    .await;
    for i in 0..5 {
        server
            .create_flow(webhook_flow(&format!("f{i}"), json!([])))
            .await;
    }
    server.kill9();
    rx.answer("/slow", 200, "text/plain", "ok");
    server.restart();
    let seen = wait_for(&rx, "/slow", |s| {
        let ok: std::collections::HashSet<&String> =
            s.iter().map(|x| &x.headers["webhook-id"]).collect();
        ok.len() >= 5
            && s.iter()
                .filter(|x| x.headers.contains_key("webhook-id"))
                .count()
                >= 5
    })
    .await;
    let names: std::collections::HashSet<String> = seen
        .iter()
        .map(|s| {
            s.json()["data"]["flow"]["displayName"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        names.len(),
        5,
        "every event reached the receiver: {names:?}"
    );
    let _ = dest;
}

#[tokio::test]
async fn test_send_and_redirects_are_not_followed() {
    let server = dev_server().await;
    let rx = Receiver::start().await;
    let r = server
        .admin(Method::POST, "/v1/event-destinations/test")
        .json(&json!({"url": format!("{}/t", rx.base), "event": "flow.run.finished"}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], 200, "{body}");
    assert_eq!(rx.one("/t").json()["action"], "flow.run.finished");

    rx.answer_with_headers(
        "/moved",
        302,
        "text/plain",
        "",
        &[("location", &format!("{}/target", rx.base))],
    );
    let r = server
        .admin(Method::POST, "/v1/event-destinations/test")
        .json(&json!({"url": format!("{}/moved", rx.base), "event": "user.signed.in"}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], 302);
    assert!(rx.to("/target").is_empty(), "redirect not followed");
}

#[tokio::test]
async fn private_and_plain_http_destinations_are_refused_without_dev_mode() {
    let server = Server::start_with(Options::default()).await;
    let rx = Receiver::start().await;
    let port = rx.base.rsplit(':').next().unwrap();
    for url in [
        format!("http://127.0.0.1:{port}/x"),
        format!("https://127.0.0.1:{port}/x"),
        format!("https://localhost:{port}/x"),
        "https://10.1.2.3/x".to_string(),
        "https://169.254.169.254/latest/meta-data".to_string(),
        "https://[::1]/x".to_string(),
    ] {
        let (status, body) = create_destination(&server, json!({"name": "bad", "url": url})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert!(
            body["detail"].as_str().unwrap().starts_with("url:"),
            "{body}"
        );
    }
    let r = server
        .admin(Method::POST, "/v1/event-destinations/test")
        .json(&json!({"url": format!("https://localhost:{port}/x"), "event": "user.signed.in"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(rx.seen().is_empty());
    let (status, body) = create_destination(
        &server,
        json!({"name": "h", "url": "https://example.com/x", "headers": {"Webhook-Id": "x"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("headers.Webhook-Id: reserved"),
        "{body}"
    );
}

#[tokio::test]
async fn own_flow_webhooks_are_delivered_in_process_without_looping() {
    // Dev mode off: a loopback URL is allowed only because it is this server's own webhook.
    let server = Server::start_with(Options::default()).await;
    let watcher = server
        .create_flow(webhook_flow(
            "watch runs",
            json!([log_step(
                "note",
                "run of {{trigger.body.data.flowRun.flowDisplayName}} finished"
            )]),
        ))
        .await;
    let (status, body) = create_destination(
        &server,
        json!({"name": "self", "url": format!("{}/v1/webhooks/{watcher}", server.base), "events": ["flow.run.finished"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let busy = server
        .create_flow(webhook_flow("busy flow", json!([])))
        .await;
    server.run_flow(&busy, &json!({})).await;

    let list = |flow: String| {
        let server = &server;
        async move {
            let page: Value = server
                .get_json(&format!("/v1/flow-runs?flowId={flow}&status=SUCCEEDED"))
                .await;
            page["data"].as_array().unwrap().clone()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let runs = loop {
        let runs = list(watcher.clone()).await;
        if !runs.is_empty() {
            break runs;
        }
        assert!(Instant::now() < deadline, "the watcher flow never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let run = server.get_run(runs[0]["id"].as_str().unwrap()).await;
    assert_eq!(
        step(&run, "note")["output"]["message"],
        "run of busy flow finished"
    );
    assert_eq!(
        run["trigger"]["headers"]["x-hookflow-dispatch"],
        "in-process"
    );
    // The watcher's own finished run is not fed back into it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(list(watcher.clone()).await.len(), 1, "loop guard");
    let deliveries: Value = server
        .get_json(&format!(
            "/v1/event-destinations/{}/deliveries",
            body["id"].as_str().unwrap()
        ))
        .await;
    let texts = deliveries["data"].to_string();
    assert!(
        texts.contains("loop guard") && texts.contains("delivered in-process"),
        "{texts}"
    );
}

/// Regression (hardening I): response bodies were read whole; a receiver answering with an
/// endless (here: 64 KiB every 10 ms, never ending) body held the attempt until the timeout and
/// the server's memory grew with it. Only what is kept is read now: the attempt succeeds at once.
#[tokio::test]
async fn an_endless_response_body_is_not_read_past_what_is_kept() {
    use futures::StreamExt;
    let server = dev_server().await;
    let app = axum::Router::new().fallback(|| async {
        let chunks = futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Some((
                Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; 64 << 10])),
                (),
            ))
        })
        .boxed();
        axum::body::Body::from_stream(chunks)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endless = format!("http://{}/endless", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (status, dest) = create_destination(
        &server,
        json!({"name": "endless", "url": endless, "events": ["flow.created"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{dest}");
    let started = Instant::now();
    server.create_flow(webhook_flow("f", json!([]))).await;
    let id = dest["id"].as_str().unwrap();
    let attempt = loop {
        let log = server
            .get_json(&format!("/v1/event-destinations/{id}/deliveries"))
            .await;
        if let Some(first) = log["data"].get(0) {
            break first.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no attempt recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(attempt["statusCode"], 200, "{attempt}");
    assert!(attempt["error"].is_null(), "{attempt}");
    // Read whole, the body never ended: the read failed at the delivery timeout and nothing
    // was kept. Read up to what is kept, the first 4 KiB are there, marked as cut.
    let kept = attempt["responseBody"].as_str().unwrap();
    assert!(
        kept.starts_with("xxxx") && kept.ends_with('…') && kept.len() <= 4096 + 4,
        "{} bytes kept",
        kept.len()
    );
}

/// Regression (hardening I, "one slow destination delays all the others"): a worker pass sent
/// every destination's batch and waited for all of them (`join_all`) before the next pass, so a
/// receiver taking 5 s per request held every other destination's events for 5 s.
#[tokio::test]
async fn one_slow_destination_does_not_delay_the_others() {
    let server = dev_server().await;
    let rx = Receiver::start().await;
    rx.delay("/slow", Duration::from_secs(5));
    for (name, path) in [("slow", "/slow"), ("fast", "/fast")] {
        let (status, body) = create_destination(
            &server,
            json!({"name": name, "url": format!("{}{path}", rx.base), "events": ["flow.created"]}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    server.create_flow(webhook_flow("f0", json!([]))).await;
    wait_for(&rx, "/slow", |s| !s.is_empty()).await;
    // While the slow receiver holds its first delivery, the fast one gets every later event.
    for i in 1..4 {
        server
            .create_flow(webhook_flow(&format!("f{i}"), json!([])))
            .await;
    }
    wait_for(&rx, "/fast", |s| s.len() >= 4).await;
    assert_eq!(
        rx.answered("/slow"),
        0,
        "the fast destination's events waited for the slow destination's first answer"
    );
    assert_eq!(rx.to("/slow").len(), 1, "one in flight per destination");
    // The slow destination still gets each event once, in order.
    rx.delay("/slow", Duration::ZERO);
    wait_for(&rx, "/slow", |s| s.len() >= 4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let names = |path: &str| -> Vec<String> {
        rx.to(path)
            .iter()
            .map(|s| {
                s.json()["data"]["flow"]["displayName"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(names("/slow"), ["f0", "f1", "f2", "f3"]);
    assert_eq!(names("/fast"), ["f0", "f1", "f2", "f3"]);
}

/// With batches in flight on their own, shutdown still ends within its grace period (5 s in
/// tests) whatever a receiver does: a send still running then is cut off, its entry released,
/// and it goes out after the restart with the same webhook-id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cuts_a_delivery_still_in_flight_after_the_grace_period() {
    let mut server = dev_server().await;
    let rx = Receiver::start().await;
    rx.delay("/stuck", Duration::from_secs(600));
    let (status, body) = create_destination(
        &server,
        json!({"name": "stuck", "url": format!("{}/stuck", rx.base), "events": ["flow.created"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    server.create_flow(webhook_flow("f", json!([]))).await;
    wait_for(&rx, "/stuck", |s| !s.is_empty()).await;
    let asked = Instant::now();
    let status = server.terminate();
    assert!(status.success(), "clean exit: {status:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        asked.elapsed()
    );
    rx.delay("/stuck", Duration::ZERO);
    server.restart();
    let seen = wait_for(&rx, "/stuck", |s| s.len() >= 2).await;
    assert_eq!(seen[1].headers["webhook-id"], seen[0].headers["webhook-id"]);
}

/// Regression (hardening I, "a background task that panics is invisible"): the delivery worker
/// (like every background task) was spawned with nothing watching it; a panic stopped
/// streaming for good while `/healthz` stayed green. Here its first three starts panic (a hook
/// of debug builds only): `/healthz` names it, `/metrics` counts the restarts, and after the
/// backoff (1 s, 2 s, 4 s) it runs and delivers.
#[tokio::test]
async fn a_delivery_worker_that_panics_is_visible_and_restarted() {
    let server = Server::start_with(Options {
        hostile: false,
        env: vec![
            ("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "1".into()),
            ("HOOKFLOW_DELIVERY_RETRY_SCHEDULE", "0.2,0.2,0.2".into()),
            ("HOOKFLOW_TEST_PANIC_TASK", "delivery_worker:3".into()),
        ],
    })
    .await;
    let health = || async {
        let r = reqwest::get(server.url("/healthz")).await.unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    // It panics as it starts: down, and named, until it runs again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, body) = health().await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break body;
        }
        assert!(Instant::now() < deadline, "never unhealthy: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("background task \"delivery_worker\""),
        "{body}"
    );
    let rx = Receiver::start().await;
    let (status, dest) = create_destination(
        &server,
        json!({"name": "after", "url": format!("{}/after", rx.base), "events": ["flow.created"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{dest}");
    server.create_flow(webhook_flow("f", json!([]))).await;
    wait_for(&rx, "/after", |s| !s.is_empty()).await;
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hookflow_background_task_restarts_total{task=\"delivery_worker\"} 3")
            && metrics.contains("hookflow_background_task_up{task=\"delivery_worker\"} 1")
            && metrics
                .contains("hookflow_background_task_restarts_total{task=\"queue_dispatcher\"} 0"),
        "{metrics}"
    );
    // Running again, but three panics within ten minutes are a crash loop: still reported.
    let (status, body) = health().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("\"delivery_worker\" failed 3 times"),
        "{body}"
    );
}
