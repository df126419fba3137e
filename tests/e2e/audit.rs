//! The engine's audit log: changes and run lifecycle recorded with actor and IP, filters,
//! cursors under concurrent inserts, summaries, and the hash chain catching an edited row.

use crate::common::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashSet;

async fn audit(server: &Server, query: &str) -> Value {
    let r = server
        .admin(Method::GET, &format!("/v1/audit-events?{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{query}");
    r.json().await.unwrap()
}

fn actions(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn changes_and_runs_are_audited_with_actor_ip_and_summary() {
    let server = Server::start_with(Options {
        hostile: false,
        env: vec![("HOOKFLOW_TRUSTED_PROXIES", "127.0.0.1".into())],
    })
    .await;
    let flow = webhook_flow("audited", json!([log_step("l", "x")]));
    let r = server
        .admin(Method::POST, "/v1/flows")
        .header("x-forwarded-for", "203.0.113.9")
        .json(&flow)
        .send()
        .await
        .unwrap();
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    server
        .admin(Method::PUT, &format!("/v1/flows/{id}"))
        .json(&flow)
        .send()
        .await
        .unwrap();
    server
        .admin(Method::PUT, "/v1/secrets/TOKEN")
        .json(&json!({"value": "very-secret-value"}))
        .send()
        .await
        .unwrap();
    server.run_flow(&id, &json!({})).await;
    server
        .admin(Method::DELETE, &format!("/v1/flows/{id}"))
        .send()
        .await
        .unwrap();

    let page = audit(&server, "limit=50").await;
    assert_eq!(
        actions(&page),
        [
            "flow.deleted",
            "flow.run.finished",
            "flow.run.started",
            "secret.upserted",
            "flow.updated",
            "user.signed.in",
            "flow.created",
            "user.signed.in"
        ]
    );
    // One sign-in per client address: the first through the trusted proxy, then direct.
    assert_eq!(page["data"][7]["ip"], "203.0.113.9");
    assert_eq!(page["data"][5]["ip"], "127.0.0.1");
    assert_eq!(
        page["data"][5]["summary"],
        "Admin signed in with the admin token from 127.0.0.1"
    );
    let created = &page["data"][6];
    assert_eq!(
        created["ip"], "203.0.113.9",
        "X-Forwarded-For from a trusted proxy"
    );
    assert_eq!(created["userId"], "admin");
    assert_eq!(created["platformId"], "default");
    assert_eq!(created["projectId"], "default");
    assert_eq!(created["data"]["flow"]["displayName"], "audited");
    assert_eq!(page["data"][4]["ip"], "127.0.0.1");
    let finished = &page["data"][1];
    assert_eq!(finished["data"]["flowRun"]["status"], "SUCCEEDED");
    assert_eq!(finished["data"]["flowRun"]["flowDisplayName"], "audited");
    assert_eq!(
        finished["userId"],
        Value::Null,
        "run lifecycle is the engine's own doing"
    );
    assert!(
        finished["summary"].as_str().unwrap().contains("audited"),
        "{}",
        finished["summary"]
    );
    assert_eq!(page["data"][3]["summary"], "Secret TOKEN was set");
    assert!(!page.to_string().contains("very-secret-value"));

    // Filters.
    assert_eq!(
        actions(&audit(&server, "action=flow.created&action=flow.deleted").await),
        ["flow.deleted", "flow.created"]
    );
    assert_eq!(
        audit(&server, "userId=admin").await["data"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
    assert_eq!(
        audit(&server, "projectId=other").await["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        audit(&server, "createdAfter=2999-01-01T00:00:00Z").await["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        audit(&server, "createdBefore=2999-01-01T00:00:00Z").await["data"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
    let r = server
        .admin(Method::GET, "/v1/audit-events?createdAfter=yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn cursors_neither_skip_nor_repeat_while_events_arrive() {
    let server = Server::start_with(Options::default()).await;
    let flow = webhook_flow("busy", json!([]));
    let id = server.create_flow(flow).await;
    for _ in 0..30 {
        server.trigger(&id, &json!({})).await;
    }
    // Wait for the 30 runs to finish: 1 + 60 events.
    for _ in 0..300 {
        if audit(&server, "action=flow.run.finished&limit=500").await["data"]
            .as_array()
            .unwrap()
            .len()
            == 30
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let first = audit(&server, "limit=7").await;
    let mut seen: Vec<String> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let mut next = first["next"].as_str().map(str::to_string);
    // New events arrive while we page backwards in time.
    let writer = {
        let client = server.client.clone();
        let url = server.url(&format!("/v1/webhooks/{id}"));
        tokio::spawn(async move {
            for _ in 0..20 {
                client.post(&url).json(&json!({})).send().await.unwrap();
            }
        })
    };
    while let Some(cursor) = next {
        let page = audit(&server, &format!("limit=7&cursor={cursor}")).await;
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string()),
        );
        next = page["next"].as_str().map(str::to_string);
    }
    writer.await.unwrap();
    assert_eq!(
        seen.len(),
        62,
        "every event that existed at the first page, exactly once"
    );
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 62);
}

#[tokio::test]
async fn the_hash_chain_names_the_first_edited_event() {
    let mut server = Server::start_with(Options::default()).await;
    for i in 0..3 {
        server
            .create_flow(webhook_flow(&format!("f{i}"), json!([])))
            .await;
    }
    let db = server.database_url();
    let verify = |db: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hookflow"))
            .args(["audit", "verify", "--database", db])
            .output()
            .unwrap()
    };
    let ok = verify(&db);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("4 events verified"));
    server.kill9();

    // Tamper with the third event behind the server's back, as someone with database access would.
    let select = "SELECT id FROM audit_events WHERE seq = 3";
    let tamper = "UPDATE audit_events SET body = replace(body, '\"f1\"', '\"evil\"') WHERE seq = 3";
    let id: String = if db.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&db).await.unwrap();
        let id = sqlx::query_scalar(select).fetch_one(&pool).await.unwrap();
        sqlx::query(tamper).execute(&pool).await.unwrap();
        pool.close().await;
        id
    } else {
        let path = db.trim_start_matches("sqlite://");
        let conn = rusqlite::Connection::open(path).unwrap();
        let id = conn.query_row(select, [], |row| row.get(0)).unwrap();
        conn.execute(tamper, []).unwrap();
        id
    };
    let broken = verify(&db);
    assert_eq!(broken.status.code(), Some(1));
    let err = String::from_utf8_lossy(&broken.stderr);
    assert!(
        err.contains(&format!("BROKEN at event {id} (seq 3)")) && err.contains("edited"),
        "{err}"
    );
}

#[tokio::test]
async fn export_streams_filtered_events_as_jsonl_and_csv() {
    let server = Server::start_with(Options::default()).await;
    for i in 0..3 {
        server
            .create_flow(webhook_flow(&format!("=f{i}"), json!([])))
            .await;
    }
    server
        .admin(Method::PUT, "/v1/secrets/S")
        .json(&json!({"value": "zzzz-secret"}))
        .send()
        .await
        .unwrap();
    let jsonl = server
        .admin(
            Method::GET,
            "/v1/audit-events/export?format=jsonl&action=flow.created",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(jsonl.headers()["content-type"], "application/x-ndjson");
    let text = jsonl.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines
            .iter()
            .all(|e| e["action"] == "flow.created" && e["summary"].is_string())
    );
    let csv = server
        .admin(Method::GET, "/v1/audit-events/export?format=csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "id,created,action,platformId,projectId,userId,userEmail,ip,summary,data"
    );
    assert_eq!(rows.len(), 6);
    assert!(csv.contains("secret.upserted") && !csv.contains("zzzz-secret"));
    let bad = server
        .admin(Method::GET, "/v1/audit-events/export?format=xml")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args([
            "audit",
            "export",
            "--format",
            "csv",
            "--action",
            "flow.created",
            "--database",
            &server.database_url(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        cli.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let text = String::from_utf8_lossy(&cli.stdout);
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.contains("Flow =f0 was created"), "{text}");
}

#[tokio::test]
async fn retention_archives_then_deletes_and_the_chain_still_verifies() {
    let archive = tempfile::tempdir().unwrap();
    let server = Server::start_with(Options {
        hostile: false,
        env: vec![
            ("HOOKFLOW_AUDIT_RETENTION_DAYS", "0".into()),
            ("HOOKFLOW_AUDIT_RETENTION_INTERVAL_SECS", "1".into()),
            (
                "HOOKFLOW_AUDIT_ARCHIVE_DIR",
                archive.path().display().to_string(),
            ),
        ],
    })
    .await;
    for i in 0..4 {
        server
            .create_flow(webhook_flow(&format!("old{i}"), json!([])))
            .await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !audit(&server, "").await["data"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(std::time::Instant::now() < deadline, "retention never ran");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut archived = Vec::new();
    for entry in std::fs::read_dir(archive.path()).unwrap() {
        let path = entry.unwrap().path();
        assert!(
            path.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("audit-20"),
            "{path:?}"
        );
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap()),
            &mut text,
        )
        .unwrap();
        archived.extend(
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()),
        );
    }
    let names: HashSet<String> = archived
        .iter()
        .filter_map(|e| {
            e["data"]["flow"]["displayName"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        names.len(),
        4,
        "every deleted event was archived first: {archived:?}"
    );
}
