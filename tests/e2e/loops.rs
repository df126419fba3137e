//! Flows feeding each other through event destinations stop after a bounded chain (hardening I).

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Runs of a flow (all statuses).
async fn run_count(server: &Server, flow_id: &str) -> usize {
    let page = server
        .get_json(&format!("/v1/flow-runs?flowId={flow_id}&limit=100"))
        .await;
    page["data"].as_array().unwrap().len()
}

/// Regression (hardening I, "two flows can feed each other forever"): destinations send the
/// `flow.run.finished` events of flow A to flow B and B's to A. The own-flow loop guard does not
/// catch this; the causation depth carried with each delivery does: one event from outside
/// makes 1 + 8 runs (depth 0 to 8), the ninth delivery is not made, and a
/// `destination.loop.stopped` audit event says why.
#[tokio::test]
async fn two_flows_feeding_each_other_stop_at_the_depth_limit() {
    let server = Server::start_with(Options::default()).await;
    let a = server
        .create_flow(webhook_flow("ping", json!([log_step("l", "ping")])))
        .await;
    let b = server
        .create_flow(webhook_flow("pong", json!([log_step("l", "pong")])))
        .await;
    for (name, target) in [("to ping", &a), ("to pong", &b)] {
        let r = server
            .admin(Method::POST, "/v1/event-destinations")
            .json(&json!({
                "name": name,
                "url": format!("{}/v1/webhooks/{target}", server.base),
                "events": ["flow.run.finished"],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    server.trigger(&a, &json!({"id": "serve"})).await;

    let deadline = Instant::now() + Duration::from_secs(90);
    let stopped = loop {
        let events = server
            .get_json("/v1/audit-events?action=destination.loop.stopped")
            .await;
        let events = events["data"].as_array().unwrap().clone();
        if !events.is_empty() {
            break events;
        }
        let runs = run_count(&server, &a).await + run_count(&server, &b).await;
        assert!(runs <= 9, "{runs} runs: the chain did not stop");
        assert!(Instant::now() < deadline, "no loop stop after {runs} runs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    let data = &stopped[0]["data"];
    assert_eq!(data["hops"], 9, "{data}");
    assert_eq!(data["limit"], 8);
    assert!(
        data["reason"].as_str().unwrap().contains("loop guard"),
        "{data}"
    );
    assert!(
        stopped[0]["summary"]
            .as_str()
            .is_none_or(|s| s.contains("stopped a delivery loop")),
        "{stopped:?}"
    );
    // Nothing more happens after the stop.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (runs_a, runs_b) = (run_count(&server, &a).await, run_count(&server, &b).await);
    assert_eq!((runs_a, runs_b), (5, 4), "one from outside, then 8 hops");
    // The depth travels with each delivered event.
    let page = server
        .get_json(&format!("/v1/flow-runs?flowId={b}&limit=100"))
        .await;
    let mut hops: Vec<u64> = Vec::new();
    for run in page["data"].as_array().unwrap() {
        let run: Value = server.get_run(run["id"].as_str().unwrap()).await;
        hops.push(
            run["trigger"]["headers"]["hookflow-hop"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
        );
    }
    hops.sort();
    assert_eq!(hops, [1, 3, 5, 7]);
}

/// Over HTTP the depth goes out as the `hookflow-hop` header and comes back in with the event:
/// a run started by an event at depth 3 (from another server, say) has its events delivered at
/// depth 4; one started at depth 8 has them stopped, with the audit event, and nothing is sent.
#[tokio::test]
async fn the_causation_depth_crosses_http() {
    let server = Server::start_with(Options {
        hostile: false,
        env: vec![("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "1".into())],
    })
    .await;
    let rx = crate::receiver::Receiver::start().await;
    let flow = server
        .create_flow(webhook_flow("relay", json!([log_step("l", "x")])))
        .await;
    let r = server
        .admin(Method::POST, "/v1/event-destinations")
        .json(&json!({"name": "peer", "url": format!("{}/peer", rx.base), "events": ["flow.run.finished"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let post = |id: &'static str, hop: &'static str| {
        server
            .client
            .post(server.url(&format!("/v1/webhooks/{flow}")))
            .header("hookflow-hop", hop)
            .json(&json!({"id": id}))
            .send()
    };
    assert_eq!(
        post("deep", "8").await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        post("near", "3").await.unwrap().status(),
        StatusCode::ACCEPTED
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    let stopped = loop {
        let events = server
            .get_json("/v1/audit-events?action=destination.loop.stopped")
            .await;
        let events = events["data"].as_array().unwrap().clone();
        if !events.is_empty() && !rx.to("/peer").is_empty() {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "no delivery or no stop: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stopped[0]["data"]["hops"], 9);
    let sent = rx.to("/peer");
    assert_eq!(sent.len(), 1, "only the run at depth 3 is delivered");
    assert_eq!(
        sent[0].headers.get("hookflow-hop").map(String::as_str),
        Some("4")
    );
}
