//! The engine's audit log: changes and run lifecycle recorded with actor and IP, filters,
//! cursors under concurrent inserts, summaries, and the keyed hash chain naming each kind of
//! tampering (edited body or column, rewritten and re-hashed bodies, a deleted range, a cut tail
//! against a head kept elsewhere, a back-dated event under retention), honest retention
//! verifying clean, and the data directory's file modes.

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
            // A plain PUT saves and publishes: both are events.
            "flow.published",
            "flow.updated",
            "user.signed.in",
            "flow.created",
            "user.signed.in"
        ]
    );
    // One sign-in per client address: the first through the trusted proxy, then direct.
    assert_eq!(page["data"][8]["ip"], "203.0.113.9");
    assert_eq!(page["data"][6]["ip"], "127.0.0.1");
    assert_eq!(
        page["data"][6]["summary"],
        "Admin signed in with the admin token from 127.0.0.1"
    );
    let created = &page["data"][7];
    assert_eq!(
        created["ip"], "203.0.113.9",
        "X-Forwarded-For from a trusted proxy"
    );
    assert_eq!(created["userId"], "admin");
    assert_eq!(created["platformId"], "default");
    assert_eq!(created["projectId"], "default");
    assert_eq!(created["data"]["flow"]["displayName"], "audited");
    assert_eq!(page["data"][5]["ip"], "127.0.0.1");
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
        7
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
        9
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

/// The secret key material every server and CLI call in these tests shares (32 bytes of 0x2a).
const SECRET_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

fn keyed(mut env: Vec<(&'static str, String)>) -> Options {
    env.push(("HOOKFLOW_SECRET_KEY", SECRET_KEY.into()));
    Options {
        hostile: false,
        env,
    }
}

/// `hookflow <args> --database <db>` on the data directory's key: (exit code, stdout, stderr).
fn hookflow(db: &str, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(args)
        .args(["--database", db])
        .env("HOOKFLOW_SECRET_KEY", SECRET_KEY)
        .env_remove("HOOKFLOW_URL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs statements on the server's database behind its back, as someone with database access
/// would.
async fn tamper(db: &str, statements: &[String]) {
    if db.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(db).await.unwrap();
        for statement in statements {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        pool.close().await;
    } else {
        let conn = rusqlite::Connection::open(db.trim_start_matches("sqlite://")).unwrap();
        for statement in statements {
            conn.execute(statement, []).unwrap();
        }
    }
}

/// `(seq, body, hash)` of every stored event, in chain order.
async fn stored(db: &str) -> Vec<(i64, String, String)> {
    let select = "SELECT seq, body, hash FROM audit_events ORDER BY seq";
    if db.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(db).await.unwrap();
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as(select).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    } else {
        let conn = rusqlite::Connection::open(db.trim_start_matches("sqlite://")).unwrap();
        let mut statement = conn.prepare(select).unwrap();
        statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
}

/// `GET /v1/audit-events/verify` with `query`: the problems' messages.
async fn api_problems(server: &Server, query: &str) -> Vec<String> {
    let verdict = server
        .get_json(&format!("/v1/audit-events/verify{query}"))
        .await;
    verdict["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("{verdict}"))
        .iter()
        .map(|p| p["message"].as_str().unwrap().to_string())
        .collect()
}

/// A server with a few flows created (one audit event each), and its database URL.
async fn chain_with_flows(n: usize, env: Vec<(&'static str, String)>) -> (Server, String) {
    let server = Server::start_with(keyed(env)).await;
    for i in 0..n {
        server
            .create_flow(webhook_flow(&format!("f{i}"), json!([])))
            .await;
    }
    let db = server.database_url();
    let (code, out, err) = hookflow(&db, &["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("audit chain intact"), "{out}");
    (server, db)
}

/// Both the CLI and the API name every expected finding, and the CLI exits 1.
async fn assert_named(server: &Server, db: &str, head: Option<&str>, expected: &[String]) {
    let mut args = vec!["audit", "verify"];
    if let Some(head) = head {
        args.extend(["--head", head]);
    }
    let (code, out, err) = hookflow(db, &args);
    assert_eq!(code, 1, "{out}{err}");
    let query = head.map(|h| format!("?head={h}")).unwrap_or_default();
    let api = api_problems(server, &query).await;
    for finding in expected {
        assert!(
            err.contains(finding.as_str()),
            "CLI: {finding:?} not in {err}"
        );
        assert!(
            api.iter().any(|p| p.contains(finding.as_str())),
            "API: {finding:?} not in {api:?}"
        );
    }
}

#[tokio::test]
async fn the_hash_chain_names_the_first_edited_event() {
    let (server, db) = chain_with_flows(3, vec![]).await;
    let (_, out, _) = hookflow(&db, &["audit", "verify"]);
    assert!(out.contains("4 events verified"), "{out}");
    tamper(
        &db,
        &[
            "UPDATE audit_events SET body = replace(body, '\"f1\"', '\"evil\"') WHERE seq = 3"
                .into(),
        ],
    )
    .await;
    assert_named(
        &server,
        &db,
        None,
        &["row 3: its content does not match its keyed hash".into()],
    )
    .await;
    // The API's first finding names the stored event (the console shows it).
    let verdict = server.get_json("/v1/audit-events/verify").await;
    let third = stored(&db).await[2].1.clone();
    let third: Value = serde_json::from_str(&third).unwrap();
    assert_eq!(verdict["brokenAt"]["seq"], 3, "{verdict}");
    assert_eq!(verdict["brokenAt"]["id"], third["id"], "{verdict}");
}

#[tokio::test]
async fn edited_filter_columns_are_named() {
    let (server, db) = chain_with_flows(3, vec![]).await;
    tamper(
        &db,
        &[
            "UPDATE audit_events SET action = 'flow.deleted' WHERE seq = 2".into(),
            "UPDATE audit_events SET project_id = 'elsewhere' WHERE seq = 3".into(),
            "UPDATE audit_events SET user_id = 'someone-else' WHERE seq = 4".into(),
        ],
    )
    .await;
    assert_named(
        &server,
        &db,
        None,
        &[
            "row 2: column action changed".into(),
            "row 3: column project_id changed".into(),
            "row 4: column user_id changed".into(),
        ],
    )
    .await;
}

/// Rewriting a body and recomputing every later hash the unkeyed way (even claiming the whole
/// chain predates the keyed rule) is still caught: the key is not in the database.
#[tokio::test]
async fn rewritten_and_rehashed_bodies_are_named() {
    let (server, db) = chain_with_flows(4, vec![]).await;
    let rows = stored(&db).await;
    let mut statements = Vec::new();
    let mut previous = rows[0].2.clone();
    for (seq, body, _) in &rows[1..] {
        let body = if *seq == 2 {
            body.replace("\"f0\"", "\"evil\"")
        } else {
            body.clone()
        };
        assert!(*seq != 2 || body.contains("evil"), "{body}");
        let hash = hookflow::store::audit::chain_hash(&previous, &body);
        statements.push(format!(
            "UPDATE audit_events SET body = '{}', prev_hash = '{previous}', hash = '{hash}' WHERE seq = {seq}",
            body.replace('\'', "''")
        ));
        previous = hash;
    }
    let last = rows.last().unwrap().0;
    statements.push(format!(
        "UPDATE audit_chain_head SET hash = '{previous}', mac = NULL, keyed_from = {}",
        last + 1
    ));
    statements.push("DELETE FROM audit_checkpoints".into());
    tamper(&db, &statements).await;
    assert_named(
        &server,
        &db,
        None,
        &["row 2: its content does not match its keyed hash".into()],
    )
    .await;
}

#[tokio::test]
async fn a_deleted_middle_range_is_named() {
    let (server, db) = chain_with_flows(4, vec![]).await;
    tamper(
        &db,
        &["DELETE FROM audit_events WHERE seq IN (2, 3)".into()],
    )
    .await;
    assert_named(&server, &db, None, &["rows 2..3 missing".into()]).await;
}

/// The head row as stored: (seq, hash, keyed_from, mac).
async fn head_row(db: &str) -> (i64, String, i64, String) {
    let select = "SELECT seq, hash, keyed_from, mac FROM audit_chain_head";
    if db.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(db).await.unwrap();
        let row = sqlx::query_as(select).fetch_one(&pool).await.unwrap();
        pool.close().await;
        row
    } else {
        let conn = rusqlite::Connection::open(db.trim_start_matches("sqlite://")).unwrap();
        conn.query_row(select, [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap()
    }
}

/// Deleting the newest events is caught by the head row; putting back an older head row (from a
/// copy of the database) is caught by a signed head kept elsewhere.
#[tokio::test]
async fn a_cut_tail_is_named_and_a_kept_head_proves_it() {
    let (server, db) = chain_with_flows(2, vec![]).await;
    let (kept, kept_hash, keyed_from, kept_mac) = head_row(&db).await;
    for i in 0..2 {
        server
            .create_flow(webhook_flow(&format!("later{i}"), json!([])))
            .await;
    }
    let (code, head, err) = hookflow(&db, &["audit", "head"]);
    assert_eq!(code, 0, "{err}");
    let head = head.trim().to_string();
    let (code, json_head, _) = hookflow(&db, &["audit", "head", "--json"]);
    assert_eq!(code, 0);
    let json_head: Value = serde_json::from_str(&json_head).unwrap();
    assert_eq!(json_head["text"], head.as_str());
    let newest = json_head["seq"].as_i64().unwrap();
    assert!(newest >= kept + 2, "{json_head}");
    let (code, out, err) = hookflow(&db, &["audit", "verify", "--head", &head]);
    assert_eq!(code, 0, "{out}{err}");

    // A forged signature on a kept head is refused; a malformed one is a usage error.
    let last = if head.ends_with('0') { "1" } else { "0" };
    let forged = format!("{}{last}", &head[..head.len() - 1]);
    let (code, _, err) = hookflow(&db, &["audit", "verify", "--head", &forged]);
    assert_eq!(code, 1);
    assert!(err.contains("signature does not match"), "{err}");
    let (code, _, err) = hookflow(&db, &["audit", "verify", "--head", "12:nothex"]);
    assert_eq!(code, 2, "{err}");
    let r = server
        .admin(Method::GET, "/v1/audit-events/verify?head=12:nothex")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().starts_with("head:"),
        "{problem}"
    );

    // Cut the tail: the head row still names the newest event.
    tamper(
        &db,
        &[format!("DELETE FROM audit_events WHERE seq > {kept}")],
    )
    .await;
    assert_named(
        &server,
        &db,
        None,
        &[format!("cut tail after seq {kept}: the head says {newest}")],
    )
    .await;

    // Put the old head row back: the database alone is now consistent again, as it was at seq
    // `kept`; only the head kept elsewhere tells.
    tamper(
        &db,
        &[format!(
            "UPDATE audit_chain_head SET seq = {kept}, hash = '{kept_hash}', keyed_from = {keyed_from}, mac = '{kept_mac}'"
        )],
    )
    .await;
    let (code, out, err) = hookflow(&db, &["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_named(
        &server,
        &db,
        Some(&head),
        &[format!(
            "cut tail after seq {kept}: the given head {newest} is no longer in the chain"
        )],
    )
    .await;
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
    let server = Server::start_with(keyed(vec![
        // 0.00001 days is under a second (0 is refused as a setting).
        ("HOOKFLOW_AUDIT_RETENTION_DAYS", "0.00001".into()),
        ("HOOKFLOW_AUDIT_RETENTION_INTERVAL_SECS", "1".into()),
        (
            "HOOKFLOW_AUDIT_ARCHIVE_DIR",
            archive.path().display().to_string(),
        ),
    ]))
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

    // Honest retention verifies clean, each deleted range accounted for by its checkpoint, and
    // archived exactly what it deleted.
    let db = server.database_url();
    let (code, out, err) = hookflow(&db, &["audit", "verify", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["intact"], true, "{report}");
    let ranges = report["retention"].as_array().unwrap();
    let covered: i64 = ranges.iter().map(|r| r["count"].as_i64().unwrap()).sum();
    let stored_events = report["events"].as_i64().unwrap();
    assert_eq!(covered + stored_events, report["headSeq"].as_i64().unwrap());
    assert!(
        covered as usize <= archived.len() && covered >= 5,
        "{report}"
    );
    assert!(
        ranges.iter().all(|r| r["archiveDigest"].is_string()),
        "{report}"
    );
    let (code, out, _) = hookflow(&db, &["audit", "verify"]);
    assert_eq!(code, 0);
    assert!(out.contains("retention checkpoint covers 1.."), "{out}");
    let api = server.get_json("/v1/audit-events/verify").await;
    assert_eq!(api["intact"], true, "{api}");
    #[cfg(unix)]
    for entry in std::fs::read_dir(archive.path()).unwrap() {
        use std::os::unix::fs::PermissionsExt;
        let mode = entry.unwrap().metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "archives are owner-only");
    }
}

/// An event whose `created` was moved into the past does not make retention delete the events
/// around it (it used to delete every seq up to the back-dated one): retention deletes only
/// expired events, stops at one that does not verify, and verify names the edited column.
#[tokio::test]
async fn retention_with_a_back_dated_event_deletes_only_what_expired() {
    let server = Server::start_with_logs(keyed(vec![
        ("HOOKFLOW_AUDIT_RETENTION_DAYS", "30".into()),
        ("HOOKFLOW_AUDIT_RETENTION_INTERVAL_SECS", "1".into()),
    ]))
    .await;
    for i in 0..5 {
        server
            .create_flow(webhook_flow(&format!("f{i}"), json!([])))
            .await;
    }
    let db = server.database_url();
    let before = stored(&db).await;
    let last = before.last().unwrap().0;
    // The newest event back-dated (the reported attack) and the oldest one too, so retention
    // has an expired-looking event to reach at once.
    tamper(
        &db,
        &[
            format!(
                "UPDATE audit_events SET created = '2001-01-01T00:00:00.000Z' WHERE seq = {last}"
            ),
            "UPDATE audit_events SET created = '2001-01-01T00:00:00.000Z' WHERE seq = 1".into(),
        ],
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !server.logs().contains("audit retention failed") {
        assert!(std::time::Instant::now() < deadline, "retention never ran");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let logs = server.logs();
    assert!(logs.contains("row 1: column created changed"), "{logs}");
    assert_eq!(stored(&db).await.len(), before.len(), "nothing was deleted");
    assert_named(
        &server,
        &db,
        None,
        &[
            "row 1: column created changed".into(),
            format!("row {last}: column created changed"),
        ],
    )
    .await;
}

/// The data directory and the SQLite database (with its WAL and lock files' directory) are
/// created owner-only: they hold trigger credentials, every event and the secret key.
#[tokio::test]
#[cfg(unix)]
async fn the_data_directory_and_database_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    if on_postgres() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("fresh/data");
    let elsewhere = root.path().join("db/dir/hookflow.db");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for (database, dir, file) in [
        (None, data.clone(), data.join("hookflow.db")),
        (
            Some(format!("sqlite://{}", elsewhere.display())),
            elsewhere.parent().unwrap().to_path_buf(),
            elsewhere.clone(),
        ),
    ] {
        let mut env = vec![("HOOKFLOW_DATA_DIR", data.display().to_string())];
        if let Some(url) = &database {
            env.push(("HOOKFLOW_DATABASE_URL", url.clone()));
        }
        let server = Server::start_with(keyed(env)).await;
        server.create_flow(webhook_flow("modes", json!([]))).await;
        assert_eq!(mode(&data), 0o700, "data directory");
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        assert_eq!(mode(&file), 0o600, "{}", file.display());
        let wal = file.with_extension("db-wal");
        if wal.exists() {
            assert_eq!(mode(&wal), 0o600, "{}", wal.display());
        }
        drop(server);
    }

    // A database an older version left readable by others is made owner-only at start.
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = Server::start_with(keyed(vec![
        ("HOOKFLOW_DATA_DIR", data.display().to_string()),
        (
            "HOOKFLOW_DATABASE_URL",
            format!("sqlite://{}", elsewhere.display()),
        ),
    ]))
    .await;
    // The writer has opened the file once a write went through.
    server.create_flow(webhook_flow("again", json!([]))).await;
    assert_eq!(mode(&elsewhere), 0o600);
    drop(server);
}

/// Every destination receives each event's `seq` and `chainHash` beside the Activepieces
/// envelope: it holds a copy of the head as of each event, and the signed head agrees with it.
#[tokio::test]
async fn streamed_events_carry_their_seq_and_chain_hash() {
    let server = Server::start_with(keyed(vec![(
        "HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS",
        "1".into(),
    )]))
    .await;
    let rx = crate::receiver::Receiver::start().await;
    let r = server
        .admin(Method::POST, "/v1/event-destinations")
        .json(&json!({"name": "siem", "url": format!("{}/audit", rx.base), "events": ["flow.created"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    server
        .create_flow(webhook_flow("streamed", json!([])))
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while rx.to("/audit").is_empty() {
        assert!(std::time::Instant::now() < deadline, "nothing delivered");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut event = rx.to("/audit")[0].json();
    let db = server.database_url();
    let rows = stored(&db).await;
    let (seq, body, hash) = rows.last().unwrap().clone();
    assert_eq!(event["seq"], seq, "{event}");
    assert_eq!(event["chainHash"], hash.as_str());
    let (_, head, _) = hookflow(&db, &["audit", "head", "--json"]);
    let head: Value = serde_json::from_str(&head).unwrap();
    assert_eq!(head["hash"], event["chainHash"]);
    let envelope = event.as_object_mut().unwrap();
    envelope.remove("seq");
    envelope.remove("chainHash");
    assert_eq!(event, serde_json::from_str::<Value>(&body).unwrap());
}
