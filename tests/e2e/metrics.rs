//! `GET /metrics` after real traffic, read with a real exposition-format parser
//! (`prometheus-parse`): intake by flow and answer code (unknown flows under one label value),
//! run and step duration histograms, runs by status, sandbox traps, delivery attempts to a
//! failing receiver, the outbox backlog and breaker state per destination; OpenMetrics when the
//! scraper asks for it; a deleted flow's and destination's series gone.

use crate::common::*;
use crate::receiver::Receiver;
use prometheus_parse::{Sample, Scrape, Value as Metric};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// One scrape in the Prometheus text format, parsed; checks the content type on the way.
async fn scrape(server: &Server) -> Vec<Sample> {
    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("a valid exposition")
        .samples
}

/// The samples of `metric` whose labels include every pair of `labels`.
fn matching<'a>(samples: &'a [Sample], metric: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

/// The value of the one counter, gauge or untyped sample of `metric` with `labels`.
fn value(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found = matching(samples, metric, labels);
    assert!(found.len() <= 1, "{metric} {labels:?} matches {found:?}");
    found.first().map(|s| match s.value {
        Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => v,
        ref other => panic!("{metric} is not a single value: {other:?}"),
    })
}

/// Scrapes until `done` holds (bounded: 30 s), returning that scrape.
async fn scrape_until(
    server: &Server,
    what: &str,
    done: impl Fn(&[Sample]) -> bool,
) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let samples = scrape(server).await;
        if done(&samples) {
            return samples;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {samples:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The cumulative buckets of a histogram series: present, ending at +Inf, never decreasing,
/// and the +Inf bucket equal to its `_count`.
fn check_histogram(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
    let found = matching(samples, metric, labels);
    assert_eq!(found.len(), 1, "{metric} {labels:?}: {found:?}");
    let Metric::Histogram(buckets) = &found[0].value else {
        panic!("{metric} is not a histogram: {:?}", found[0]);
    };
    let buckets: Vec<(f64, f64)> = buckets.iter().map(|b| (b.less_than, b.count)).collect();
    assert!(buckets.len() > 2, "{metric} has buckets: {buckets:?}");
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "{buckets:?}"
    );
    let (last_bound, total) = *buckets.last().unwrap();
    assert!(last_bound.is_infinite(), "{buckets:?}");
    assert_eq!(
        value(samples, &format!("{metric}_count"), labels),
        Some(total),
        "{metric}_count"
    );
    buckets
}

#[tokio::test]
async fn the_scrape_answers_the_on_call_questions() {
    let server = Server::start_with(Options {
        hostile: true,
        env: vec![
            ("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "1".into()),
            // The first attempt fails and the next waits a minute: the entry stays pending.
            ("HOOKFLOW_DELIVERY_RETRY_SCHEDULE", "60".into()),
        ],
    })
    .await;
    let rx = Receiver::start().await;
    rx.answer("/down", 503, "text/plain", "down for maintenance");
    let r = server
        .admin(Method::POST, "/v1/event-destinations")
        .json(&json!({"name": "siem", "url": format!("{}/down", rx.base), "events": ["flow.run.finished"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let destination = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A flow with a header credential: one accepted call, one refused (401).
    let guarded = server
        .create_flow(json!({
            "name": "guarded",
            "trigger": {"type": "webhook", "auth": {"type": "header", "header": "X-Token", "value": "t0ken"}},
            "steps": [log_step("note", "hello")],
        }))
        .await;
    let url = server.url(&format!("/v1/webhooks/{guarded}"));
    let ok = server
        .client
        .post(&url)
        .header("X-Token", "t0ken")
        .json(&json!({"n": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::ACCEPTED);
    let run_id = ok.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(server.wait_run(&run_id).await["status"], "SUCCEEDED");
    let refused = server
        .client
        .post(&url)
        .header("X-Token", "wrong")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    // A flow whose plugin traps: a failed run.
    let trapping = server
        .create_flow(webhook_flow(
            "trapping",
            json!([hostile_step("t", json!({"mode": "trap"}))]),
        ))
        .await;
    assert_eq!(
        server.run_flow(&trapping, &json!({})).await["status"],
        "FAILED"
    );

    // Calls to flows that do not exist: one label value for all of them.
    let made_up = ["0193c5a2-0000-7000-8000-000000000001", "not-even-a-uuid"];
    for id in made_up {
        assert_eq!(
            server.post_event(id, &json!({})).await.status(),
            StatusCode::NOT_FOUND
        );
    }

    let samples = scrape_until(&server, "both runs and a failed delivery attempt", |s| {
        value(s, "hookflow_runs_finished_total", &[("status", "FAILED")]) == Some(1.0)
            && value(
                s,
                "hookflow_runs_finished_total",
                &[("status", "SUCCEEDED")],
            ) == Some(1.0)
            && value(
                s,
                "hookflow_delivery_attempts_total",
                &[("destination", &destination), ("outcome", "retrying")],
            )
            .is_some_and(|n| n >= 1.0)
    })
    .await;

    // Intake by flow and code.
    let requests = "hookflow_webhook_requests_total";
    assert_eq!(
        value(&samples, requests, &[("flow", &guarded), ("code", "202")]),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, requests, &[("flow", &guarded), ("code", "401")]),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, requests, &[("flow", &trapping), ("code", "202")]),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, requests, &[("flow", "unknown"), ("code", "404")]),
        Some(2.0)
    );
    for id in made_up {
        assert!(
            matching(&samples, requests, &[("flow", id)]).is_empty(),
            "{id} is no label"
        );
    }
    assert_eq!(
        value(
            &samples,
            "hookflow_events_total",
            &[("outcome", "accepted")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &samples,
            "hookflow_events_total",
            &[("outcome", "rejected_auth")]
        ),
        Some(1.0)
    );

    // Run and step durations, sandbox traps.
    let failed = check_histogram(
        &samples,
        "hookflow_run_duration_seconds",
        &[("status", "FAILED")],
    );
    assert_eq!(failed.last().unwrap().1, 1.0);
    check_histogram(
        &samples,
        "hookflow_run_duration_seconds",
        &[("status", "SUCCEEDED")],
    );
    let log = check_histogram(
        &samples,
        "hookflow_step_duration_seconds",
        &[("plugin", "log")],
    );
    assert_eq!(log.last().unwrap().1, 1.0, "one call of the log plugin");
    check_histogram(
        &samples,
        "hookflow_step_duration_seconds",
        &[("plugin", "hostile")],
    );
    assert!(
        matching(&samples, "hookflow_step_duration_seconds", &[])
            .iter()
            .all(|s| !s.labels.get("plugin").unwrap().contains('@')),
        "plugins by name, not name@version"
    );
    assert_eq!(
        value(
            &samples,
            "hookflow_sandbox_failures_total",
            &[("kind", "trap")]
        ),
        Some(1.0)
    );

    // Deliveries: the attempt, the backlog it left, the breaker still closed.
    let dest = [("destination", destination.as_str())];
    assert_eq!(
        value(
            &samples,
            "hookflow_delivery_attempts_total",
            &[dest[0], ("outcome", "delivered")]
        ),
        None,
        "nothing was delivered"
    );
    let pending = value(&samples, "hookflow_outbox_pending", &dest).unwrap();
    assert!(
        pending >= 1.0,
        "the failed entry waits for its retry: {pending}"
    );
    let age = value(
        &samples,
        "hookflow_outbox_oldest_pending_age_seconds",
        &dest,
    )
    .unwrap();
    assert!((0.0..3600.0).contains(&age), "{age}");
    let state = |s: &str| {
        value(
            &samples,
            "hookflow_destination_state",
            &[dest[0], ("state", s)],
        )
    };
    assert_eq!(
        (state("delivering"), state("paused"), state("disabled")),
        (Some(1.0), Some(0.0), Some(0.0))
    );

    // The live-run gauges and the supervised tasks are still there.
    assert_eq!(
        value(&samples, "hookflow_runs", &[("status", "QUEUED")]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &samples,
            "hookflow_background_task_up",
            &[("task", "delivery_worker")]
        ),
        Some(1.0)
    );

    // OpenMetrics for a scraper that asks for it (Prometheus does).
    let response = server
        .client
        .get(server.url("/metrics"))
        .header(
            header::ACCEPT,
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        text.contains("# TYPE hookflow_webhook_requests counter"),
        "{text}"
    );

    // Deleting a flow and a destination drops their series.
    for path in [
        format!("/v1/flows/{guarded}"),
        format!("/v1/event-destinations/{destination}"),
    ] {
        let r = server.admin(Method::DELETE, &path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{path}");
    }
    let samples = scrape(&server).await;
    assert!(matching(&samples, requests, &[("flow", &guarded)]).is_empty());
    for metric in [
        "hookflow_delivery_attempts_total",
        "hookflow_outbox_pending",
        "hookflow_destination_state",
    ] {
        assert!(matching(&samples, metric, &dest).is_empty(), "{metric}");
    }
    assert_eq!(
        value(&samples, requests, &[("flow", &trapping), ("code", "202")]),
        Some(1.0)
    );
}
