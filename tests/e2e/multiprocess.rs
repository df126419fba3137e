//! Several `hookflow serve` processes on one PostgreSQL database share the work: 20,000 events
//! spread over three processes' webhooks, one process killed with SIGKILL midway. Every
//! acknowledged event must end with exactly one completed run, no run may complete twice, and
//! every run's `flow.run.finished` audit event must reach the event destination.
//!
//! Runs on PostgreSQL whatever `HOOKFLOW_TEST_DATABASE` says: multi-process needs it.

use crate::common::*;
use crate::receiver::Receiver;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, Row};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

const EVENTS: usize = 20_000;
const IN_FLIGHT: usize = 48;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_the_work_and_survive_a_sigkill() {
    let database = TestDatabase::create();
    let receiver = Receiver::start().await;
    let start = || {
        database.start_server(&[
            ("HOOKFLOW_LEASE_SECS", "2"),
            ("HOOKFLOW_WORKERS", "32"),
            ("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "1"),
        ])
    };
    let a = start().await;
    let b = start().await;
    let mut c = start().await;

    let flow_id = a
        .create_flow(webhook_flow(
            "shared",
            json!([log_step("note", "event {{trigger.body.id}}")]),
        ))
        .await;
    let r = a
        .admin(Method::POST, "/v1/event-destinations")
        .json(
            &json!({"name": "receiver", "url": format!("{}/audit", receiver.base),
                      "events": ["flow.run.finished"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // Fire: event i goes to process i % 3 (to a or b once c is dead). Only 2xx answers count as
    // acknowledged; requests to the killed process fail and are not.
    let bases = [a.base.clone(), b.base.clone(), c.base.clone()];
    let client = reqwest::Client::new();
    let mut acknowledged: HashSet<String> = HashSet::new();
    let mut c_alive = true;
    let mut next = 0usize;
    let started = Instant::now();
    while next < EVENTS {
        let chunk_end = (next + 2_000).min(EVENTS);
        if c_alive && next >= EVENTS / 2 {
            c.kill9();
            c_alive = false;
        }
        let sends = (next..chunk_end).map(|i| {
            let base = if c_alive {
                &bases[i % 3]
            } else {
                &bases[i % 2]
            };
            let url = format!("{base}/v1/webhooks/{flow_id}");
            let id = format!("evt-{i}");
            let request = client
                .post(url)
                .json(&json!({"id": id, "action": "flow.run.finished", "n": i}));
            async move {
                match request.send().await {
                    Ok(r) if r.status().is_success() => Some(id),
                    _ => None,
                }
            }
        });
        let results: Vec<Option<String>> = futures::stream::iter(sends)
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        acknowledged.extend(results.into_iter().flatten());
        next = chunk_end;
    }
    eprintln!(
        "fired {EVENTS} events in {:.1} s, {} acknowledged",
        started.elapsed().as_secs_f64(),
        acknowledged.len()
    );
    assert!(
        acknowledged.len() >= EVENTS * 9 / 10,
        "most events are acknowledged"
    );

    // Wait (bounded) until no run is QUEUED or RUNNING: c's leased runs come back after 2 s.
    let mut db = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let open: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM runs WHERE status IN ('QUEUED', 'RUNNING')")
                .fetch_one(&mut db)
                .await
                .unwrap();
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} runs still open after 240 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Every acknowledged event: exactly one run, SUCCEEDED.
    let rows = sqlx::query(
        "SELECT e.event_key, r.id, r.status FROM events e JOIN runs r ON r.id = e.run_id WHERE e.flow_id = $1",
    )
    .bind(&flow_id)
    .fetch_all(&mut db)
    .await
    .unwrap();
    let mut runs_by_event: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for row in &rows {
        runs_by_event
            .entry(
                row.get::<Option<String>, _>("event_key")
                    .unwrap_or_default(),
            )
            .or_default()
            .push((row.get("id"), row.get("status")));
    }
    for id in &acknowledged {
        let runs = runs_by_event
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged event {id} has no run"));
        assert_eq!(runs.len(), 1, "event {id} has runs {runs:?}");
        assert_eq!(runs[0].1, "SUCCEEDED", "event {id}: {runs:?}");
    }
    let per_run: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs WHERE flow_id = $1")
        .bind(&flow_id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(per_run as usize, rows.len(), "one event per run");

    // No run completed twice: one flow.run.finished audit event per run.
    let finished: Vec<String> =
        sqlx::query_scalar("SELECT body FROM audit_events WHERE action = 'flow.run.finished'")
            .fetch_all(&mut db)
            .await
            .unwrap();
    let mut finishes: HashMap<String, usize> = HashMap::new();
    let mut audit_ids = HashSet::new();
    for body in &finished {
        let event: Value = serde_json::from_str(body).unwrap();
        *finishes
            .entry(event["data"]["flowRun"]["id"].as_str().unwrap().to_string())
            .or_default() += 1;
        audit_ids.insert(event["id"].as_str().unwrap().to_string());
    }
    assert_eq!(finishes.len(), rows.len(), "every run finished once");
    let twice: Vec<_> = finishes.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "runs finished more than once: {twice:?}");

    // Every finished-run audit event reaches the destination (at least once).
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let delivered: HashSet<String> = receiver
            .to("/audit")
            .iter()
            .map(|s| s.json()["id"].as_str().unwrap_or_default().to_string())
            .collect();
        let missing = audit_ids.difference(&delivered).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} audit events not delivered after 240 s",
            audit_ids.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = db.close().await;
    drop((a, b, c));
}

#[tokio::test]
async fn a_plugin_installed_through_one_process_serves_in_the_others() {
    let database = TestDatabase::create();
    let a = database.start_server(&[]).await;
    let b = database.start_server(&[]).await;
    let wasm = std::fs::read(hookflow::builtins::GREET_PLUGIN_PATHS[0]).unwrap();
    let r = a
        .admin(Method::POST, "/v1/plugins")
        .header("content-type", "application/wasm")
        .body(wasm)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // B picks it up without a restart, announced by `NOTIFY hookflow_plugins`: the bound is
    // below B's 10 s fallback check, so only the notification can make it in time.
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let plugins: Value = b.get_json("/v1/plugins").await;
        if plugins.to_string().contains("\"greet\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "greet@1.0.0 did not reach process B before its fallback check"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let flow = b
        .create_flow(webhook_flow(
            "greets",
            json!([{"name": "greet", "type": "action", "plugin": "greet@1.0.0",
                    "input": {"who": "{{trigger.body.who}}"}}]),
        ))
        .await;
    let run = b.run_flow(&flow, &json!({"who": "Ana"})).await;
    assert_eq!(step(&run, "greet")["output"]["greeting"], "hello, Ana");

    // A third process started later loads it at start.
    let c = database.start_server(&[]).await;
    let plugins: Value = c.get_json("/v1/plugins").await;
    assert!(plugins.to_string().contains("\"greet\""), "{plugins}");
    drop((a, b, c));
}
