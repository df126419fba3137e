//! Console page latency on a big store: seeds a fresh SQLite database with RUNS test runs
//! (default 100,000, each with its `flow.run.finished` audit event) and AUDIT more audit events
//! (default 1,000,000), then starts the real server binary on it, signs in through the console
//! and times every page (server-side render, fetched over loopback), next to `/healthz` in the
//! same run as the floor.
//!
//! `cargo run --release -p hookflow --example bench_console -- [BIN] [RUNS] [AUDIT]`
//! (BIN default `target/release/hookflow`).

use hookflow::store::{
    Actor, AuditAction, AuditDraft, Environment, NewEvent, RunOutcome, RunStatus, Scope, new_id,
};
use serde_json::json;
use std::io::BufRead;
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery staple";
const TOKEN: &str = "bench-admin-token-0123456789";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let bin = args
        .next()
        .unwrap_or_else(|| "target/release/hookflow".into());
    let runs: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let audit: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("hookflow.db");
    let flow_id = seed(&db, runs, audit).await?;

    let mut server = std::process::Command::new(&bin)
        .arg("serve")
        .env("HOOKFLOW_LISTEN", "127.0.0.1:0")
        .env("HOOKFLOW_DATA_DIR", dir.path())
        .env("HOOKFLOW_ADMIN_TOKEN", TOKEN)
        .env("HOOKFLOW_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().expect("stdout")).read_line(&mut line)?;
    let base = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    let result = measure(&base, &flow_id).await;
    let _ = server.kill();
    let _ = server.wait();
    result
}

/// Fills the database; returns the flow the runs belong to.
async fn seed(db: &std::path::Path, runs: usize, audit: usize) -> anyhow::Result<String> {
    let url = format!("sqlite://{}", db.display());
    let store = hookflow::store::open(
        &hookflow::store::DatabaseUrl::parse(&url).map_err(anyhow::Error::msg)?,
        &hookflow::store::OpenOptions {
            sqlite_synchronous_full: false,
            ..Default::default()
        },
    )
    .await?
    .store;
    let scope = Scope {
        platform_id: "default".into(),
        project_id: "default".into(),
    };
    let actor = Actor::system();
    let definition = json!({"name": "bench", "trigger": {"type": "webhook"}, "steps": [
        {"name": "note", "type": "action", "plugin": "log@0.1.0", "input": {"message": "hi"}}]});
    let flow = store
        .create_flow(&actor, &scope, "bench", &definition)
        .await?;
    let started = Instant::now();
    let mut pending = Vec::new();
    for i in 0..runs {
        let store = store.clone();
        let scope = scope.clone();
        let flow_id = flow.id.clone();
        pending.push(tokio::spawn(async move {
            let run_id = new_id();
            let event = NewEvent {
                event_id: new_id(),
                run_id: run_id.clone(),
                flow_id,
                flow_version: 1,
                scope,
                event_key: None,
                environment: Environment::Production,
                headers: json!({}),
                body: json!({"action": "flow.run.finished", "n": i}).to_string(),
                lease: None,
            };
            let outcome = RunOutcome {
                run_id,
                owner: String::new(),
                status: if i % 10 == 0 {
                    RunStatus::Failed
                } else {
                    RunStatus::Succeeded
                },
                error: None,
                duration_ms: 1.0,
                steps: Vec::new(),
            };
            store.record_finished_run(event, outcome).await
        }));
        if pending.len() == 256 {
            for p in pending.drain(..) {
                p.await??;
            }
        }
    }
    for p in pending {
        p.await??;
    }
    eprintln!(
        "seeded {runs} runs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    for start in (0..audit).step_by(5_000) {
        let drafts = (start..(start + 5_000).min(audit))
            .map(|i| {
                let action = [
                    AuditAction::FlowRunStarted,
                    AuditAction::FlowRunFinished,
                    AuditAction::FlowUpdated,
                    AuditAction::UserSignedIn,
                ][i % 4];
                let data = json!({"flowRun": {"id": format!("run_{i}"), "status": "SUCCEEDED"}});
                AuditDraft::new("default", Some("default"), &actor, action, data)
            })
            .collect();
        store.record_audit(drafts).await?;
    }
    eprintln!(
        "seeded {audit} audit events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(store);
    // The writer thread and the lock file go with the last handle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(flow.id)
}

async fn measure(base: &str, flow_id: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    client
        .post(format!("{base}/v1/users"))
        .bearer_auth(TOKEN)
        .json(&json!({"email": "bench@example.com", "password": PASSWORD, "platformRole": "platform-admin"}))
        .send()
        .await?
        .error_for_status()?;
    let signed = client
        .post(format!("{base}/sign-in"))
        .form(&[("email", "bench@example.com"), ("password", PASSWORD)])
        .send()
        .await?;
    let cookie = signed.headers()["set-cookie"]
        .to_str()?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    let runs: serde_json::Value = client
        .get(format!("{base}/v1/flow-runs?limit=1"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let run_id = runs["data"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pages = [
        "/healthz".to_string(),
        "/flows".into(),
        format!("/flows/{flow_id}"),
        "/runs".into(),
        format!("/runs?status=FAILED&flowId={flow_id}"),
        format!("/runs/{run_id}"),
        "/event-streaming".into(),
        "/audit".into(),
        "/audit?action=flow.updated".into(),
        "/plugins".into(),
        "/secrets".into(),
        "/projects".into(),
    ];
    println!("| page | p50 ms | p95 ms | max ms | p50 / `/healthz` p50 |");
    println!("| --- | --- | --- | --- | --- |");
    let mut floor = None;
    for page in &pages {
        let mut times = Vec::new();
        for i in 0..33 {
            let started = Instant::now();
            let response = client
                .get(format!("{base}{page}"))
                .header("cookie", &cookie)
                .send()
                .await?;
            let status = response.status();
            let _ = response.bytes().await?;
            anyhow::ensure!(status.is_success(), "{page} answered {status}");
            if i >= 3 {
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        times.sort_by(f64::total_cmp);
        let p50 = times[times.len() / 2];
        let p95 = times[times.len() * 95 / 100];
        let max = times[times.len() - 1];
        let floor_p50 = *floor.get_or_insert(p50);
        println!(
            "| `{page}` | {p50:.2} | {p95:.2} | {max:.2} | {:.1}× |",
            p50 / floor_p50
        );
    }
    Ok(())
}
