//! Webhook intake: size limit, JSON handling, every authentication mode, deduplication, `/sync`.

use crate::common::*;
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn problem(response: reqwest::Response) -> Value {
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    response.json().await.unwrap()
}

async fn run_count(server: &Server, flow_id: &str) -> usize {
    let page: Value = server
        .get_json(&format!("/v1/flow-runs?flowId={flow_id}&limit=500"))
        .await;
    page["data"].as_array().unwrap().len()
}

#[tokio::test]
async fn size_limit_json_errors_and_form_labelled_json() {
    let server = Server::start_with(Options {
        env: vec![("HOOKFLOW_MAX_BODY_BYTES", "1024".into())],
        ..Options::default()
    })
    .await;
    let id = server
        .create_flow(webhook_flow(
            "intake",
            json!([log_step("l", "{{trigger.body.id}}")]),
        ))
        .await;
    let url = server.url(&format!("/v1/webhooks/{id}"));

    let big = json!({"pad": "x".repeat(2000)});
    let response = server.client.post(&url).json(&big).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        problem(response).await["detail"]
            .as_str()
            .unwrap()
            .contains("1024-byte limit")
    );

    let response = server
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"a\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        problem(response).await["detail"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );

    let response = server
        .client
        .post(&url)
        .header("content-type", "text/xml")
        .body("<a/>")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        problem(response).await["detail"]
            .as_str()
            .unwrap()
            .contains("text/xml")
    );

    // GitLab labels its JSON as a form.
    let gitlab = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/gitlab-audit-event.json"
    ))
    .unwrap();
    let gitlab: Value = serde_json::from_str(&gitlab).unwrap();
    let response = server
        .client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(gitlab["body"].to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        run_count(&server, &id).await,
        1,
        "rejected requests stored nothing"
    );

    let response = server.post_event("no-such-flow", &json!({})).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn same_event_id_twice_starts_one_run() {
    let server = Server::start().await;
    let id = server
        .create_flow(webhook_flow("dedup", json!([log_step("l", "x")])))
        .await;
    let event = json!({"id": "evt_6SfwXrtm8nVcjzzNCFFH1L", "type": "user.created"});
    let first = server.post_event(&id, &event).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    let second = server.post_event(&id, &event).await;
    assert_eq!(second.status(), StatusCode::OK);
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["runId"], second["runId"]);
    assert_eq!(second["duplicate"], true);

    // webhook-id header when the body has no id; concurrent duplicates still dedup.
    let mut handles = Vec::new();
    for _ in 0..20 {
        let client = server.client.clone();
        let url = server.url(&format!("/v1/webhooks/{id}"));
        handles.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("webhook-id", "msg_same")
                .json(&json!({"x": 1}))
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            (status, body["runId"].as_str().unwrap().to_string())
        }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut accepted = 0;
    for h in handles {
        let (status, run_id) = h.await.unwrap();
        accepted += usize::from(status == StatusCode::ACCEPTED);
        ids.insert(run_id);
    }
    assert_eq!((accepted, ids.len()), (1, 1));
    // An event without any id is never deduplicated.
    server.trigger(&id, &json!({"x": 1})).await;
    server.trigger(&id, &json!({"x": 1})).await;
    assert_eq!(run_count(&server, &id).await, 4);
}

#[tokio::test]
async fn every_auth_mode_accepts_good_and_refuses_bad_credentials() {
    let server = Server::start().await;
    let body = json!({"hello": "world"});
    let flow_with = |auth: Value| json!({"name": "auth", "trigger": {"type": "webhook", "auth": auth}, "steps": []});

    // Fixed header token (GitLab's X-Gitlab-Event-Streaming-Token).
    let id = server.create_flow(flow_with(json!({"type": "header", "header": "X-Gitlab-Event-Streaming-Token", "value": "glt-secret"}))).await;
    let url = server.url(&format!("/v1/webhooks/{id}"));
    let ok = server
        .client
        .post(&url)
        .header("X-Gitlab-Event-Streaming-Token", "glt-secret")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::ACCEPTED);
    let bad = server
        .client
        .post(&url)
        .header("X-Gitlab-Event-Streaming-Token", "nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let missing = server.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert!(
        problem(missing).await["detail"]
            .as_str()
            .unwrap()
            .contains("missing x-gitlab-event-streaming-token")
    );
    assert_eq!(run_count(&server, &id).await, 1, "nothing stored on 401");
    let run = server
        .get_run(ok.json::<Value>().await.unwrap()["runId"].as_str().unwrap())
        .await;
    assert!(
        run["trigger"]["headers"]
            .get("x-gitlab-event-streaming-token")
            .is_none(),
        "token not stored"
    );

    // Bearer.
    let id = server
        .create_flow(flow_with(json!({"type": "bearer", "token": "b-secret"})))
        .await;
    let url = server.url(&format!("/v1/webhooks/{id}"));
    assert_eq!(
        server
            .client
            .post(&url)
            .bearer_auth("b-secret")
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        server
            .client
            .post(&url)
            .bearer_auth("b-secreT")
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Basic.
    let id = server
        .create_flow(flow_with(
            json!({"type": "basic", "username": "auth0", "password": "pw"}),
        ))
        .await;
    let url = server.url(&format!("/v1/webhooks/{id}"));
    assert_eq!(
        server
            .client
            .post(&url)
            .basic_auth("auth0", Some("pw"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        server
            .client
            .post(&url)
            .basic_auth("auth0", Some("px"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Standard Webhooks with the public test vector's secret, signed now.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let id = server
        .create_flow(flow_with(
            json!({"type": "standardWebhooks", "secret": secret}),
        ))
        .await;
    let url = server.url(&format!("/v1/webhooks/{id}"));
    let payload = r#"{"test": 2432232314}"#;
    let sign = |ts: i64, msg_id: &str| {
        let sig = hookflow::trigger::verify::sign(secret, msg_id, ts, payload.as_bytes()).unwrap();
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(sig)
        )
    };
    let now = chrono::Utc::now().timestamp();
    let send = |ts: i64, signature: String, msg_id: &'static str| {
        server
            .client
            .post(&url)
            .header("content-type", "application/json")
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(payload)
            .send()
    };
    let good = send(now, format!("v1,bm90IGl0 {}", sign(now, "msg_1")), "msg_1")
        .await
        .unwrap();
    assert_eq!(
        good.status(),
        StatusCode::ACCEPTED,
        "second of several signatures matches"
    );
    let stale = send(now - 301, sign(now - 301, "msg_2"), "msg_2")
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    let forged = send(now, sign(now, "msg_other"), "msg_3").await.unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    // The public vector itself verifies (its timestamp is old, so only the signature is checked
    // by the unit tests; here we check the server refuses it as expired, not as forged).
    let vector = send(
        1614265330,
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".into(),
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
    )
    .await
    .unwrap();
    assert!(
        problem(vector).await["detail"]
            .as_str()
            .unwrap()
            .contains("seconds from the server's time")
    );
    assert_eq!(run_count(&server, &id).await, 1);
}

/// Finding: a `webhook-timestamp` near `i64::MIN`/`i64::MAX` overflowed the tolerance check.
#[tokio::test]
async fn standard_webhooks_timestamps_at_the_ends_of_i64_are_refused_not_overflowed() {
    let server = Server::start().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let id = server
        .create_flow(json!({"name": "far", "trigger": {"type": "webhook",
            "auth": {"type": "standardWebhooks", "secret": secret}}, "steps": []}))
        .await;
    let url = server.url(&format!("/v1/webhooks/{id}"));
    let payload = r#"{"far": true}"#;
    let now = chrono::Utc::now().timestamp();
    for ts in [
        i64::MIN,
        i64::MIN + 1,
        i64::MIN + 300,
        now - i64::MAX,
        now - i64::MAX - 1,
        i64::MAX - 300,
        i64::MAX - 1,
        i64::MAX,
    ] {
        let msg_id = format!("msg_{ts}");
        let sig = hookflow::trigger::verify::sign(secret, &msg_id, ts, payload.as_bytes()).unwrap();
        let response = server
            .client
            .post(&url)
            .header("content-type", "application/json")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                format!(
                    "v1,{}",
                    base64::engine::general_purpose::STANDARD.encode(sig)
                ),
            )
            .body(payload)
            .send()
            .await
            .unwrap_or_else(|e| panic!("timestamp {ts}: no answer ({e})"));
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "timestamp {ts}"
        );
        let detail = problem(response).await["detail"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            detail.contains("webhook-timestamp") && detail.contains("from the server's time"),
            "timestamp {ts}: {detail}"
        );
    }
    assert_eq!(run_count(&server, &id).await, 0);
}

#[tokio::test]
async fn sync_endpoint_returns_the_finished_run_or_408() {
    let server = Server::start().await;
    let id = server
        .create_flow(webhook_flow(
            "sync",
            json!([log_step("l", "hi {{trigger.body.who}}")]),
        ))
        .await;
    let response = server
        .client
        .post(server.url(&format!("/v1/webhooks/{id}/sync")))
        .json(&json!({"who": "there"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let run: Value = response.json().await.unwrap();
    assert_eq!(run["status"], "SUCCEEDED");
    // Regression (hardening II): without a `respond` step the caller learns the run's id and
    // status, not what its steps read and wrote.
    assert!(run["id"].is_string(), "{run}");
    assert!(
        run.get("steps").is_none() && run.get("trigger").is_none(),
        "{run}"
    );
    assert!(!run.to_string().contains("hi there"), "{run}");
    let full = server.get_run(run["id"].as_str().unwrap()).await;
    assert_eq!(step(&full, "l")["output"]["message"], "hi there");

    // A flow may opt in to the whole record.
    let mut open = webhook_flow(
        "sync run",
        json!([log_step("l", "hi {{trigger.body.who}}")]),
    );
    open["trigger"]["syncResponse"] = json!("run");
    let open = server.create_flow(open).await;
    let response = server
        .client
        .post(server.url(&format!("/v1/webhooks/{open}/sync")))
        .json(&json!({"who": "there"}))
        .send()
        .await
        .unwrap();
    let run: Value = response.json().await.unwrap();
    assert_eq!(step(&run, "l")["output"]["message"], "hi there");

    let slow = server
        .create_flow(webhook_flow(
            "slow",
            json!([hostile_step("nap", json!({"mode": "sleep", "ms": 2000}))]),
        ))
        .await;
    let response = server
        .client
        .post(server.url(&format!("/v1/webhooks/{slow}/sync?timeoutMs=200")))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    let body = problem(response).await;
    let run_id = body["runId"].as_str().unwrap().to_string();
    assert_eq!(server.wait_run(&run_id).await["status"], "SUCCEEDED");
}

/// A `/sync` run is executed by the process that received it, on a task of its own: a caller
/// who hangs up does not cut it short, and when the process is killed mid-run the run is left
/// to the queue, which runs it again after the restart.
#[tokio::test]
async fn sync_runs_outlive_their_caller_and_their_process() {
    let mut server = Server::start().await;
    let slow = server
        .create_flow(webhook_flow(
            "slow",
            json!([hostile_step("nap", json!({"mode": "sleep", "ms": 600}))]),
        ))
        .await;
    let sync_url = server.url(&format!("/v1/webhooks/{slow}/sync"));
    let hung_up = server
        .client
        .post(&sync_url)
        .json(&json!({"id": "hang-up"}))
        .timeout(std::time::Duration::from_millis(100))
        .send()
        .await;
    assert!(hung_up.is_err_and(|e| e.is_timeout()));
    // The same event again names the run the first request started.
    let again = server.post_event(&slow, &json!({"id": "hang-up"})).await;
    assert_eq!(again.status(), StatusCode::OK);
    let run_id = again.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_string();
    let run = server.wait_run(&run_id).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(run["attempt"], 1);
    assert_eq!(step(&run, "nap")["output"]["slept"], 600);

    let caller = server.client.clone();
    let pending = tokio::spawn(async move {
        let _ = caller
            .post(&sync_url)
            .json(&json!({"id": "killed"}))
            .send()
            .await;
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let run_id = loop {
        let page = server
            .get_json(&format!("/v1/flow-runs?flowId={slow}&status=RUNNING"))
            .await;
        if let Some(run) = page["data"].as_array().unwrap().first() {
            break run["id"].as_str().unwrap().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the /sync run never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    server.kill9();
    let _ = pending.await;
    server.restart();
    let run = server.wait_run(&run_id).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(run["attempt"], 2, "run again after the restart: {run}");
}

/// Regression (hardening I): a `/sync` caller that times out must not evict the other waiters of
/// the same run; a duplicate delivery waiting longer gets the finished run, not a RUNNING one.
#[tokio::test]
async fn a_sync_timeout_leaves_other_waiters_of_the_same_run_waiting() {
    let server = Server::start().await;
    let slow = server
        .create_flow(webhook_flow(
            "slow",
            json!([hostile_step("nap", json!({"mode": "sleep", "ms": 800}))]),
        ))
        .await;
    let url = |ms: u64| server.url(&format!("/v1/webhooks/{slow}/sync?timeoutMs={ms}"));
    let patient = {
        let client = server.client.clone();
        let url = url(10_000);
        tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"id": "same-event"}))
                .send()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let impatient = server
        .client
        .post(url(100))
        .json(&json!({"id": "same-event"}))
        .send()
        .await
        .unwrap();
    assert_eq!(impatient.status(), StatusCode::REQUEST_TIMEOUT);
    let patient = patient.await.unwrap();
    assert_eq!(patient.status(), StatusCode::OK);
    let body: Value = patient.json().await.unwrap();
    assert_eq!(body["status"], "SUCCEEDED", "{body}");
}

/// Regression (hardening I, "/sync runs escape the worker limit"): `/sync` calls take a worker
/// slot when one is free and are queued otherwise, so a flood of them never runs more than
/// `HOOKFLOW_WORKERS` runs at once; the queued ones still run after their callers gave up.
#[tokio::test]
async fn a_sync_flood_runs_within_the_worker_limit() {
    let server = Server::start_with(Options {
        hostile: true,
        env: vec![("HOOKFLOW_WORKERS", "2".into())],
    })
    .await;
    let slow = server
        .create_flow(webhook_flow(
            "slow",
            json!([hostile_step("nap", json!({"mode": "sleep", "ms": 700}))]),
        ))
        .await;
    let calls = (0..6).map(|i| {
        let client = server.client.clone();
        let url = server.url(&format!("/v1/webhooks/{slow}/sync?timeoutMs=100"));
        async move {
            client
                .post(url)
                .json(&json!({"id": format!("flood-{i}")}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let statuses = futures::future::join_all(calls).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::REQUEST_TIMEOUT),
        "{statuses:?}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut most_running = 0;
    loop {
        let runs: Value = server
            .get_json(&format!("/v1/flow-runs?flowId={slow}&limit=100"))
            .await;
        let runs = runs["data"].as_array().unwrap().clone();
        let running = runs.iter().filter(|r| r["status"] == "RUNNING").count();
        most_running = most_running.max(running);
        if runs.len() == 6 && runs.iter().all(|r| r["status"] == "SUCCEEDED") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the flood did not finish: {runs:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        most_running <= 2,
        "{most_running} runs at once with 2 workers"
    );
}

/// Regression: a caller that hangs up right after its event was committed (stored already
/// started for this process) must not leave the run RUNNING forever; the hand-over to the
/// executor happens whatever the caller does.
#[tokio::test]
async fn callers_hanging_up_at_commit_leave_no_run_behind() {
    let server = Server::start().await;
    let id = server
        .create_flow(webhook_flow("hang-ups", json!([log_step("l", "ok")])))
        .await;
    let url = server.url(&format!("/v1/webhooks/{id}"));
    for round in 0..4u64 {
        let calls = (0..600u64).map(|i| {
            let client = server.client.clone();
            let url = url.clone();
            async move {
                // Cut off at random points of the request's life, around the commit.
                let _ = client
                    .post(url)
                    .json(&json!({"n": i, "round": round}))
                    .timeout(std::time::Duration::from_micros(200 + (i % 80) * 250))
                    .send()
                    .await;
            }
        });
        futures::future::join_all(calls).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let runs: Value = server
            .get_json(&format!("/v1/flow-runs?flowId={id}&limit=500"))
            .await;
        let live = runs["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| matches!(r["status"].as_str(), Some("QUEUED" | "RUNNING")))
            .count();
        if live == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{live} runs still live 20 s after their callers hung up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
