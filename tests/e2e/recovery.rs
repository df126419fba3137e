//! Crash safety: `kill -9` mid-burst loses no acknowledged event, and after a restart every one
//! of them has exactly one completed run. SIGTERM drains cleanly.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

#[tokio::test]
async fn kill_9_mid_burst_then_restart_runs_every_acknowledged_event_once() {
    let mut server = Server::start().await;
    // Each run takes a moment, so many are queued or running when the process dies.
    let id = server
        .create_flow(webhook_flow(
            "burst",
            json!([
                hostile_step("nap", json!({"mode": "sleep", "ms": 20})),
                log_step("done", "n={{trigger.body.n}}")
            ]),
        ))
        .await;
    let acknowledged = Arc::new(Mutex::new(Vec::<(u64, String)>::new()));
    let url = server.url(&format!("/v1/webhooks/{id}"));
    let mut senders = Vec::new();
    for worker in 0..8u64 {
        let client = server.client.clone();
        let url = url.clone();
        let acknowledged = acknowledged.clone();
        senders.push(tokio::spawn(async move {
            for i in 0..200u64 {
                let n = worker * 1000 + i;
                match client
                    .post(&url)
                    .json(&json!({"id": format!("evt-{n}"), "n": n}))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == StatusCode::ACCEPTED => {
                        let body: Value = r.json().await.unwrap();
                        acknowledged
                            .lock()
                            .unwrap()
                            .push((n, body["runId"].as_str().unwrap().to_string()));
                    }
                    _ => return, // the server died under us
                }
            }
        }));
    }
    // Let the burst get going, then kill the server without warning.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while acknowledged.lock().unwrap().len() < 300 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    server.kill9();
    for s in senders {
        let _ = s.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 300,
        "burst too small: {}",
        acknowledged.len()
    );

    server.restart();
    let mut seen = HashSet::new();
    for (n, run_id) in &acknowledged {
        let run = server.wait_run(run_id).await;
        assert_eq!(run["status"], "SUCCEEDED", "event {n}: {run}");
        assert_eq!(step(&run, "done")["output"]["message"], format!("n={n}"));
        assert!(seen.insert(run_id.clone()), "one run per event");
    }
    // Exactly one run per acknowledged event id, none extra: redelivering gives the same run.
    for (n, run_id) in acknowledged.iter().take(20) {
        let r = server
            .post_event(&id, &json!({"id": format!("evt-{n}"), "n": n}))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<Value>().await.unwrap()["runId"], run_id.as_str());
    }
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hookflow_runs{status=\"QUEUED\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hookflow_runs{status=\"RUNNING\"} 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn sigterm_drains_in_flight_runs() {
    let mut server = Server::start().await;
    let id = server
        .create_flow(webhook_flow(
            "drain",
            json!([hostile_step("nap", json!({"mode": "sleep", "ms": 300}))]),
        ))
        .await;
    let run_id = server.trigger(&id, &json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let status = server.terminate();
    assert!(status.success(), "clean exit: {status:?}");
    server.restart();
    let run = server.get_run(&run_id).await;
    assert_eq!(run["status"], "SUCCEEDED", "finished before exit: {run}");
    assert_eq!(run["attempt"], 1);
}

/// Regression: the SQLite lock file was named after the URL text, so
/// `sqlite:///path/hookflow.db?mode=rwc` took another lock than `sqlite://path/hookflow.db` and a
/// second server started on the same file and re-ran the first one's in-flight runs. The lock is
/// the store's now, taken on the canonical file.
#[tokio::test]
async fn a_second_server_on_the_same_sqlite_file_is_refused_however_the_url_spells_it() {
    if on_postgres() {
        return; // several processes per database is what PostgreSQL is for
    }
    let server = Server::start().await;
    let url = server.database_url();
    let path = std::path::PathBuf::from(url.trim_start_matches("sqlite://"));
    let spelled = format!(
        "sqlite://{}/./{}?mode=rwc",
        path.parent().unwrap().display(),
        path.file_name().unwrap().to_string_lossy()
    );
    let other = tempfile::tempdir().unwrap();
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &spelled])
        .env("HOOKFLOW_DATA_DIR", other.path())
        .env("HOOKFLOW_ADMIN_TOKEN", ADMIN_TOKEN)
        .env(
            "HOOKFLOW_CACHE_DIR",
            concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache"),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start a second server");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second server on the same SQLite file kept running");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("another hookflow process"), "{stderr}");
    // The first server is unaffected.
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

/// Regression (hardening I): a run whose process dies every time it runs it (a plugin or input
/// that kills the server) was re-run at every start, forever. After three attempts it is FAILED
/// as abandoned, with its `flow.run.finished` event, and never run again.
#[tokio::test]
async fn a_run_that_kills_its_process_every_time_is_abandoned_after_three_attempts() {
    let mut server = Server::start().await;
    let mut nap = hostile_step("nap", json!({"mode": "sleep", "ms": 120_000}));
    nap["timeoutMs"] = json!(300_000);
    let id = server
        .create_flow(webhook_flow("deadly", json!([nap])))
        .await;
    let run_id = server.trigger(&id, &json!({"n": 1})).await;
    for round in 1..=3 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            // Running again, by the process started after the last death (on PostgreSQL the
            // dead process's lease has to expire first).
            let run = server.get_run(&run_id).await;
            if run["status"] == "RUNNING" && run["attempt"] == round {
                break;
            }
            assert!(
                matches!(run["status"].as_str(), Some("QUEUED" | "RUNNING")),
                "round {round}: {run}"
            );
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: never ran"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        server.restart(); // kill -9, then start again
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let run = loop {
        let run = server.get_run(&run_id).await;
        if run["status"] == "FAILED" {
            break run;
        }
        assert!(std::time::Instant::now() < deadline, "not abandoned: {run}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("abandoned after 3 attempts"),
        "{run}"
    );
    server.restart();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        server.get_run(&run_id).await["status"],
        "FAILED",
        "never re-run"
    );
    let finished = server
        .get_json("/v1/audit-events?action=flow.run.finished")
        .await;
    assert!(
        finished["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["data"]["flowRun"]["id"] == run_id.as_str()
                && e["data"]["flowRun"]["status"] == "FAILED"),
        "{finished}"
    );
}

/// The data directory and the SQLite database are created owner-only: they hold every event,
/// trigger credentials, the secret key and the admin token (hardening II; was 0755 / 0644).
#[tokio::test]
async fn the_data_directory_and_database_are_created_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("fresh").join("data");
    let server = Server::start_with(Options {
        env: vec![("HOOKFLOW_DATA_DIR", data.display().to_string())],
        ..Options::default()
    })
    .await;
    assert_eq!(server.get_json("/v1/flows").await["data"], json!([]));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "data directory");
    if !on_postgres() {
        for file in ["hookflow.db", "hookflow.db-wal"] {
            let path = data.join(file);
            if path.exists() {
                assert_eq!(mode(&path), 0o600, "{file}");
            }
        }
        assert!(data.join("hookflow.db").exists());
    }
    assert_eq!(mode(&data.join("secret.key")), 0o600);
}
