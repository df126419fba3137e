//! Audit query latency on a large log: fills a fresh SQLite store with N audit events (default
//! 1,000,000; realistic mix of actions and projects, hash-chained as the server writes them),
//! then times filtered first pages and deep cursor pages.
//!
//! `cargo run --release -p hookflow --example bench_audit [-- N]`

use hookflow::store::{Actor, AuditAction, AuditDraft, AuditFilter, Cursor};
use serde_json::json;
use std::time::Instant;

const ACTIONS: &[AuditAction] = &[
    AuditAction::FlowRunStarted,
    AuditAction::FlowRunFinished,
    AuditAction::FlowUpdated,
    AuditAction::UserSignedIn,
    AuditAction::SecretUpserted,
    AuditAction::FlowCreated,
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let store = hookflow::store::open(
        &hookflow::store::DatabaseUrl::parse(&url).map_err(anyhow::Error::msg)?,
        &hookflow::store::OpenOptions {
            sqlite_synchronous_full: false,
            ..Default::default()
        },
    )
    .await?
    .store;
    let started = Instant::now();
    let actor = Actor {
        user_id: Some("admin".into()),
        user_email: None,
        ip: Some("203.0.113.9".into()),
    };
    let batch = 5_000;
    for start in (0..n).step_by(batch) {
        let drafts = (start..(start + batch).min(n))
            .map(|i| {
                // Run lifecycle dominates real logs: 80 % of events.
                let action = if i % 10 < 8 { ACTIONS[i % 2] } else { ACTIONS[2 + i % 4] };
                let project = format!("proj_{}", i % 20);
                let data = json!({"flowRun": {"id": format!("run_{i}"), "flowId": format!("flow_{}", i % 500), "status": "SUCCEEDED"}});
                AuditDraft::new("default", Some(&project), &actor, action, data)
            })
            .collect();
        store.record_audit(drafts).await?;
        if start % 200_000 == 0 {
            eprintln!(
                "  {start} events written ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "wrote {n} audit events in {:.1} s ({:.0}/s)",
        started.elapsed().as_secs_f64(),
        n as f64 / started.elapsed().as_secs_f64()
    );

    let report = |name: &str, mut samples: Vec<f64>| {
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let p = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "{name}: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} queries)",
            p(0.5),
            p(0.99),
            p(1.0),
            samples.len()
        );
    };
    for (name, filter) in [
        (
            "newest page, no filter",
            AuditFilter {
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "action=flow.updated",
            AuditFilter {
                limit: 50,
                actions: vec!["flow.updated".into()],
                ..Default::default()
            },
        ),
        (
            "action=user.signed.in & projectId=proj_9",
            AuditFilter {
                limit: 50,
                actions: vec!["user.signed.in".into()],
                project_ids: vec!["proj_9".into()],
                ..Default::default()
            },
        ),
        (
            "userId=admin & createdBefore=2999",
            AuditFilter {
                limit: 50,
                user_id: Some("admin".into()),
                created_before: Some("2999-01-01T00:00:00.000Z".into()),
                ..Default::default()
            },
        ),
    ] {
        let mut samples = Vec::new();
        for _ in 0..300 {
            let t = Instant::now();
            let page = store.list_audit(&filter).await?;
            samples.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(!page.data.is_empty());
        }
        report(name, samples);
    }
    // Deep pages: cursors at random depths.
    let mut samples = Vec::new();
    for i in 0..300u64 {
        let seq = 1 + (i * 7_919_u64) % n as u64;
        let filter = AuditFilter {
            limit: 50,
            actions: vec!["flow.run.finished".into()],
            cursor: Some(Cursor::After(seq.to_string())),
            ..Default::default()
        };
        let t = Instant::now();
        store.list_audit(&filter).await?;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    report(
        "action=flow.run.finished, cursor at a random depth",
        samples,
    );
    Ok(())
}
