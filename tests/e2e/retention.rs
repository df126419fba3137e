//! Run retention (`HOOKFLOW_RUN_RETENTION_DAYS`, `HOOKFLOW_RUN_RETENTION_FLOW_DAYS`) and the
//! settings `serve` refuses before it creates anything.

use crate::common::{Options, Server, log_step, webhook_flow};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

async fn run_status(server: &Server, run_id: &str) -> StatusCode {
    server
        .admin(Method::GET, &format!("/v1/flow-runs/{run_id}"))
        .send()
        .await
        .unwrap()
        .status()
}

/// Two flows' runs made by a first server, and a second server on the same database that
/// enforces a retention of about a second on every flow but `kept` (its own: ten years).
pub struct Expiring {
    /// Stopped; holds the data directory and database (dropping it removes them).
    _first: Server,
    pub second: Server,
    pub expiring: String,
    pub kept_runs: Vec<serde_json::Value>,
    pub expiring_runs: Vec<serde_json::Value>,
}

/// [`Expiring`] with `extra` settings for the second server; returns once every run of
/// `expiring` is gone (bounded: 60 s).
pub async fn expire_runs(extra: Vec<(&'static str, String)>) -> Expiring {
    let mut first = Server::start().await;
    let kept = first
        .create_flow(webhook_flow("kept", json!([log_step("a", "kept")])))
        .await;
    let expiring = first
        .create_flow(webhook_flow("expiring", json!([log_step("a", "expiring")])))
        .await;
    let mut kept_runs = Vec::new();
    let mut expiring_runs = Vec::new();
    for i in 0..3 {
        kept_runs.push(first.run_flow(&kept, &json!({"id": format!("k{i}")})).await);
        expiring_runs.push(
            first
                .run_flow(&expiring, &json!({"id": format!("e{i}")}))
                .await,
        );
    }
    assert!(first.terminate().success());
    let data_dir = first.database_url().strip_prefix("sqlite://").map(|p| {
        std::path::Path::new(p)
            .parent()
            .unwrap()
            .display()
            .to_string()
    });
    let mut env = vec![
        ("HOOKFLOW_DATABASE_URL", first.database_url()),
        // 0.00001 days is under a second.
        ("HOOKFLOW_RUN_RETENTION_DAYS", "0.00001".to_string()),
        ("HOOKFLOW_RUN_RETENTION_FLOW_DAYS", format!("{kept}=3650")),
        ("HOOKFLOW_RUN_RETENTION_INTERVAL_SECS", "1".to_string()),
    ];
    if let Some(dir) = data_dir {
        env.push(("HOOKFLOW_DATA_DIR", dir));
    }
    env.extend(extra);
    let second = Server::start_with(Options {
        env,
        ..Options::default()
    })
    .await;

    let deadline = Instant::now() + Duration::from_secs(60);
    for run in &expiring_runs {
        let id = run["id"].as_str().unwrap();
        loop {
            if run_status(&second, id).await == StatusCode::NOT_FOUND {
                break;
            }
            assert!(Instant::now() < deadline, "run {id} not deleted after 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Expiring {
        _first: first,
        second,
        expiring,
        kept_runs,
        expiring_runs,
    }
}

#[tokio::test]
async fn finished_runs_past_retention_are_deleted_and_a_flow_with_its_own_retention_keeps_its_runs()
{
    // Not destructured: the stopped first server holds the database.
    let expired = expire_runs(Vec::new()).await;
    let (second, expiring, kept_runs) = (&expired.second, &expired.expiring, &expired.kept_runs);
    for run in kept_runs {
        let id = run["id"].as_str().unwrap();
        assert_eq!(run_status(second, id).await, StatusCode::OK, "{id}");
    }
    // The deleted runs' events went with them: a redelivery is a new run, which intake takes
    // while retention keeps running.
    let again = second.run_flow(expiring, &json!({"id": "e0"})).await;
    assert_eq!(again["status"], "SUCCEEDED", "{again}");
    let metrics = second
        .admin(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let deleted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hookflow_runs_deleted_total "))
        .expect("runs deleted counter")
        .trim()
        .parse()
        .unwrap();
    assert!(deleted >= 3, "{deleted}");
}

/// `hookflow serve` with `env`, in a fresh data directory: exit status, stderr and whether the
/// data directory holds anything afterwards.
fn serve_with(env: &[(&str, &str)]) -> (Option<i32>, String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .arg("serve")
        .env("HOOKFLOW_LISTEN", "127.0.0.1:0")
        .env("HOOKFLOW_DATA_DIR", &data)
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A setting that is wrongly accepted leaves a server running: stop it instead of hanging.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.code(), err, data.exists())
}

#[test]
fn bad_settings_stop_serve_with_one_line_before_anything_is_created() {
    for (name, value, named) in [
        ("HOOKFLOW_AUDIT_RETENTION_DAYS", "0", "audit-retention-days"),
        (
            "HOOKFLOW_DELIVERY_RETRY_SCHEDULE",
            "5,soon",
            "delivery-retry-schedule",
        ),
        ("HOOKFLOW_RUN_RETENTION_DAYS", "0", "run-retention-days"),
        ("HOOKFLOW_RUN_RETENTION_DAYS", "4000", "run-retention-days"),
        (
            "HOOKFLOW_RUN_RETENTION_FLOW_DAYS",
            "f1=-1",
            "run-retention-flow-days",
        ),
        ("HOOKFLOW_SMTP_URL", "not a url", "smtp-url"),
        ("HOOKFLOW_PUBLIC_URL", "hooks.example.com", "public-url"),
        // An archive directory that is a file.
        ("HOOKFLOW_RUN_ARCHIVE_DIR", "/dev/null", "run-archive-dir"),
    ] {
        let (code, err, created) = serve_with(&[(name, value)]);
        assert_eq!(code, Some(2), "{name}={value}: {err}");
        assert!(err.contains(named), "{name}={value}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}={value}: {err}");
        assert!(!created, "{name}={value} created the data directory");
    }
    // Values clap itself refuses also exit 2 and create nothing.
    for (name, value) in [
        ("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "maybe"),
        ("HOOKFLOW_RUN_RETENTION_FLOW_DAYS", "no-days"),
    ] {
        let (code, err, created) = serve_with(&[(name, value)]);
        assert_eq!(code, Some(2), "{name}={value}: {err}");
        assert!(!created, "{name}={value} created the data directory");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for documented in [
        "HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS",
        "HOOKFLOW_RUN_RETENTION_DAYS",
        "HOOKFLOW_RUN_RETENTION_FLOW_DAYS",
        "HOOKFLOW_RUN_ARCHIVE_DIR",
    ] {
        assert!(
            help.contains(documented),
            "{documented} missing from --help"
        );
    }
}

#[tokio::test]
async fn every_test_run_and_replay_is_audited_with_who_started_it() {
    let server = Server::start().await;
    let flow = server
        .create_flow(webhook_flow("tested", json!([log_step("a", "hi")])))
        .await;
    let mut runs = Vec::new();
    for live in [false, true] {
        let (status, run) =
            crate::common::test_run(&server, &flow, json!({"payload": {"n": 1}, "live": live}))
                .await;
        assert_eq!(status, StatusCode::OK, "{run}");
        assert_eq!(run["environment"], "TESTING", "{run}");
        runs.push((run["id"].as_str().unwrap().to_string(), live));
    }
    let replay = server
        .admin(Method::POST, &format!("/v1/flows/{flow}/replay"))
        .json(&json!({"events": [{"n": 1}, {"n": 2}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::OK);

    let tested = server.get_json("/v1/audit-events?action=flow.tested").await;
    let tested = tested["data"].as_array().unwrap();
    assert_eq!(tested.len(), 2, "{tested:?}");
    for (run_id, live) in &runs {
        let event = tested
            .iter()
            .find(|e| e["data"]["flowRun"]["id"] == run_id.as_str())
            .unwrap_or_else(|| panic!("no flow.tested for {run_id}: {tested:?}"));
        assert_eq!(event["userId"], "admin", "{event}");
        assert_eq!(event["data"]["live"], *live, "{event}");
        assert_eq!(event["data"]["flow"]["id"], flow.as_str(), "{event}");
    }
    let replayed = server
        .get_json("/v1/audit-events?action=flow.replayed")
        .await;
    let replayed = replayed["data"].as_array().unwrap();
    assert_eq!(replayed.len(), 1, "{replayed:?}");
    assert_eq!(replayed[0]["userId"], "admin");
    assert_eq!(replayed[0]["data"]["events"], 2);
    assert_eq!(replayed[0]["data"]["flow"]["id"], flow.as_str());
}

/// Test runs are kept apart: the run list shows live runs unless asked for `TESTING` or `ALL`.
#[tokio::test]
async fn the_run_list_keeps_test_runs_apart() {
    let server = Server::start().await;
    let flow_id = server
        .create_flow(webhook_flow("apart", json!([log_step("note", "hi")])))
        .await;
    let live = server.run_flow(&flow_id, &json!({"id": "live-1"})).await;
    let (status, test) =
        crate::common::test_run(&server, &flow_id, json!({"payload": {"id": "t"}})).await;
    assert_eq!(status, StatusCode::OK);
    let ids = |page: serde_json::Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let base = format!("/v1/flow-runs?flowId={flow_id}");
    assert_eq!(
        ids(server.get_json(&base).await),
        [live["id"].as_str().unwrap()]
    );
    assert_eq!(
        ids(server
            .get_json(&format!("{base}&environment=TESTING"))
            .await),
        [test["id"].as_str().unwrap()]
    );
    assert_eq!(
        ids(server.get_json(&format!("{base}&environment=all")).await).len(),
        2
    );
    let r = server
        .admin(Method::GET, "/v1/flow-runs?environment=STAGING")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let problem: serde_json::Value = r.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("environment")
    );
}
