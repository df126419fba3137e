//! Delivery throughput: N audit events queued for D destinations (all on a local HTTP receiver
//! on loopback), then the real delivery worker drains the outbox: Standard Webhooks signing,
//! verification token and custom header, HTTP/1.1 keep-alive, attempt records and outbox moves
//! in SQLite with `synchronous=FULL`. Reports signed deliveries per second and the receiver's
//! count (which must equal N × D).
//!
//! `cargo run --release -p hookflow --example bench_delivery [-- N [D]]`

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hookflow::secrets::SecretBox;
use hookflow::store::{Actor, AuditAction, AuditDraft, Scope};
use hookflow::stream::{DestinationInput, Destinations, RetryPolicy, run_worker};
use serde_json::{Map, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(50_000);
    let d: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1);

    // The receiver: counts requests that carry the signature headers, answers 204.
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let app = Router::new().route(
        "/hook/{n}",
        post(move |headers: HeaderMap, _body: axum::body::Bytes| {
            let counter = counter.clone();
            async move {
                if headers.contains_key("webhook-signature") && headers.contains_key("webhook-id") {
                    counter.fetch_add(1, Ordering::Relaxed);
                    StatusCode::NO_CONTENT
                } else {
                    StatusCode::BAD_REQUEST
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store: hookflow::store::DynStore = hookflow::store::open(
        &hookflow::store::DatabaseUrl::parse(&url).map_err(anyhow::Error::msg)?,
        &hookflow::store::OpenOptions {
            sqlite_synchronous_full: true,
            ..Default::default()
        },
    )
    .await?
    .store;
    let sbox = Arc::new(SecretBox::load(None, dir.path())?);
    let destinations = Arc::new(Destinations::new(
        store.clone(),
        sbox,
        RetryPolicy::parse("1,5").map_err(anyhow::Error::msg)?,
        true,
    ));
    let scope: Scope = store.default_scope().await?;
    let actor = Actor {
        user_id: Some("bench".into()),
        user_email: None,
        ip: None,
    };
    for i in 0..d {
        let mut headers = Map::new();
        headers.insert("x-tenant".into(), json!("bench"));
        destinations
            .create(
                &actor,
                &scope,
                DestinationInput {
                    name: Some(format!("receiver {i}")),
                    url: Some(format!("http://127.0.0.1:{port}/hook/{i}")),
                    events: Some(Vec::new()),
                    enabled: Some(true),
                    headers: Some(headers),
                    ..DestinationInput::default()
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    // `create` writes one audit event per destination, each fanned out to the destinations that
    // existed then (itself included): count them into the expected total.
    let setup_deliveries: usize = (1..=d).sum();

    let filled = Instant::now();
    for start in (0..n).step_by(5_000) {
        let drafts = (start..(start + 5_000).min(n))
            .map(|i| {
                let data = json!({"flowRun": {"id": format!("run_{i}"), "flowId": "flow_1", "status": "SUCCEEDED"}});
                AuditDraft::new("default", Some(&scope.project_id), &actor, AuditAction::FlowRunFinished, data)
            })
            .collect();
        store.record_audit(drafts).await?;
    }
    let expected = (n * d + setup_deliveries) as u64;
    eprintln!(
        "queued {n} events × {d} destination(s) in {:.1} s",
        filled.elapsed().as_secs_f64()
    );

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let worker = tokio::spawn(run_worker(
        destinations.clone(),
        stopped,
        Duration::from_secs(30),
    ));
    let deadline = Instant::now() + Duration::from_secs(600);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let _ = worker.await;
    let got = received.load(Ordering::Relaxed);
    println!(
        "delivered {got} of {expected} signed events to {d} destination(s) in {elapsed:.2} s: {:.0} deliveries/s",
        got as f64 / elapsed
    );
    anyhow::ensure!(got == expected, "receiver got {got}, expected {expected}");
    Ok(())
}
