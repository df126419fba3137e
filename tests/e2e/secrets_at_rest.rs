//! Secrets that stay secret: a flow's literal webhook credential is stored encrypted (in the
//! flow and in every version, also for rows written before, sealed at start) while its webhook
//! still verifies callers; a secret a step writes to the flow's cache does not reach a step
//! without it; a redelivered audit event carries its `seq` and `chainHash` like a streamed one.

use crate::common::*;
use crate::receiver::Receiver;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TOKEN: &str = "tok-at-rest-9f3b2c7d41";

/// Every stored definition of `flow_id`: the flow's row and each version's.
async fn stored_definitions(db: &str, flow_id: &str) -> Vec<String> {
    let mut all = database_texts(
        db,
        &format!("SELECT definition FROM flows WHERE id = '{flow_id}'"),
    )
    .await;
    all.extend(
        database_texts(
            db,
            &format!("SELECT definition FROM flow_versions WHERE flow_id = '{flow_id}'"),
        )
        .await,
    );
    all
}

fn bearer_flow(name: &str, token: &str) -> Value {
    json!({"name": name, "trigger": {"type": "webhook", "auth": {"type": "bearer", "token": token}},
           "steps": []})
}

/// The webhook's answer to a caller presenting `token`, with a new event each time (a repeated
/// one would be answered as a duplicate).
async fn post_with(server: &Server, flow_id: &str, token: &str) -> StatusCode {
    static EVENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = EVENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    server
        .client
        .post(server.url(&format!("/v1/webhooks/{flow_id}")))
        .bearer_auth(token)
        .json(&json!({ "id": format!("e{n}") }))
        .send()
        .await
        .unwrap()
        .status()
}

async fn assert_verifies(server: &Server, flow_id: &str, right: &str) {
    assert_eq!(
        post_with(server, flow_id, right).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        post_with(server, flow_id, "tok-wrong").await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn literal_trigger_credentials_are_encrypted_at_rest_and_still_verify() {
    let mut server = Server::start().await;
    let db = server.database_url();
    let id = server.create_flow(bearer_flow("literal", TOKEN)).await;
    // A client saves back what it read (the mask): the credential stays, sealed.
    let mut read = server.get_json(&format!("/v1/flows/{id}")).await;
    assert_eq!(read["definition"]["trigger"]["auth"]["token"], "********");
    read["definition"]["name"] = json!("literal, renamed");
    let r = server
        .admin(Method::PUT, &format!("/v1/flows/{id}"))
        .json(&read["definition"])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A flow naming a project secret keeps the reference as written.
    let r = server
        .admin(Method::PUT, "/v1/secrets/HOOK")
        .json(&json!({"value": "tok-from-a-secret"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let reference = server
        .create_flow(bearer_flow("reference", "{{secrets.HOOK}}"))
        .await;

    let rows = stored_definitions(&db, &id).await;
    assert_eq!(rows.len(), 3, "the flow and its two versions");
    for row in &rows {
        assert!(!row.contains(TOKEN), "stored in clear: {row}");
        assert!(row.contains("hookflow-sealed:v1:"), "{row}");
    }
    for row in stored_definitions(&db, &reference).await {
        assert!(row.contains("{{secrets.HOOK}}"), "{row}");
    }

    assert_verifies(&server, &id, TOKEN).await;
    assert_verifies(&server, &reference, "tok-from-a-secret").await;
    server.restart();
    assert_verifies(&server, &id, TOKEN).await;
    assert_verifies(&server, &reference, "tok-from-a-secret").await;
    let read = server.get_json(&format!("/v1/flows/{id}")).await;
    assert_eq!(read["definition"]["trigger"]["auth"]["token"], "********");
    // `flow export` of a stored version shows the mask: neither the credential nor its sealed
    // form leaves the server.
    let (base, flow) = (server.base.clone(), id.clone());
    let export = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hookflow"))
            .args(["flow", "export", &flow, "--version", "1", "--json"])
            .args(["--url", &base, "--token", ADMIN_TOKEN])
            .env_remove("HOOKFLOW_URL")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(export.status.success(), "{export:?}");
    let exported: Value = serde_json::from_slice(&export.stdout).unwrap();
    assert_eq!(
        exported["trigger"]["auth"]["token"], "********",
        "{exported}"
    );

    // A sealed credential copied into another flow does not open there: that flow refuses it.
    let sealed = database_texts(
        &db,
        &format!("SELECT definition FROM flows WHERE id = '{id}'"),
    )
    .await;
    let sealed: Value = serde_json::from_str(&sealed[0]).unwrap();
    let r = server
        .admin(Method::PUT, &format!("/v1/flows/{reference}"))
        .json(&sealed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem.to_string().contains("trigger.auth.token"),
        "{problem}"
    );
}

/// A database written before credentials were encrypted holds them in clear: the next start
/// seals them (in the flow and its versions) and the webhook goes on verifying.
#[tokio::test]
async fn credentials_stored_in_clear_before_are_sealed_at_start() {
    let mut server = Server::start().await;
    let db = server.database_url();
    let id = server.create_flow(bearer_flow("old", "placeholder")).await;
    let clear = bearer_flow("old", TOKEN).to_string();
    database_execute(
        &db,
        &format!("UPDATE flows SET definition = '{clear}' WHERE id = '{id}'"),
    )
    .await;
    database_execute(
        &db,
        &format!("UPDATE flow_versions SET definition = '{clear}' WHERE flow_id = '{id}'"),
    )
    .await;
    assert!(
        stored_definitions(&db, &id)
            .await
            .iter()
            .all(|row| row.contains(TOKEN))
    );
    server.restart();
    for row in stored_definitions(&db, &id).await {
        assert!(!row.contains(TOKEN), "still in clear after a start: {row}");
    }
    assert_verifies(&server, &id, TOKEN).await;
    // Idempotent: another start changes nothing.
    let before = stored_definitions(&db, &id).await;
    server.restart();
    assert_eq!(stored_definitions(&db, &id).await, before);
    assert_verifies(&server, &id, TOKEN).await;
}

fn js_step(name: &str, secrets: &[&str], code: &str) -> Value {
    json!({"name": name, "type": "action", "plugin": "javascript@1.0.0", "secrets": secrets,
           "input": {"code": code}})
}

/// A step granted a secret that writes it (or its upper-case form) to the cache, under a key
/// made of it too, hands a later step without the grant only the redaction.
#[tokio::test]
async fn a_secret_written_to_the_cache_reaches_no_step_without_it() {
    let server = Server::start().await;
    let secret = "tok-cached-5e1a7c";
    let r = server
        .admin(Method::PUT, "/v1/secrets/TOK")
        .json(&json!({"value": secret}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let writer = "exports.handler = async (event, api) => {\n\
        const t = event.secrets.TOK;\n\
        api.cache.set('copy', 'Bearer ' + t);\n\
        api.cache.set('upper', t.toUpperCase());\n\
        api.cache.set('key-' + t, 'found');\n\
        return {mine: api.cache.get('key-' + t).value};\n\
    };";
    let reader = "exports.handler = async (event, api) => ({\n\
        copy: api.cache.get('copy').value,\n\
        upper: api.cache.get('upper').value,\n\
        byKey: api.cache.get('key-**REDACTED**') ? 'redacted key' : 'absent',\n\
    });";
    let id = server
        .create_flow(webhook_flow(
            "cache",
            json!([
                js_step("writer", &["TOK"], writer),
                js_step("reader", &[], reader)
            ]),
        ))
        .await;
    let run = server.run_flow(&id, &json!({"id": "e1"})).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    // The holder finds what it stored under the secret.
    assert_eq!(step(&run, "writer")["output"]["mine"], "found");
    let seen = &step(&run, "reader")["output"];
    assert_eq!(
        seen,
        &json!({"copy": "Bearer **REDACTED**", "upper": "**REDACTED**", "byKey": "redacted key"}),
        "{run}"
    );
    let cached = database_texts(
        &server.database_url(),
        "SELECT key || value FROM flow_cache",
    )
    .await;
    assert!(!cached.is_empty());
    for row in cached {
        assert!(!row.to_lowercase().contains(secret), "{row}");
    }
}

/// `(seq, hash)` of the audit event `id`.
async fn chain_position(db: &str, id: &str) -> (i64, String) {
    let row = database_texts(
        db,
        &format!("SELECT CAST(seq AS TEXT) || ' ' || hash FROM audit_events WHERE id = '{id}'"),
    )
    .await;
    let (seq, hash) = row[0].split_once(' ').unwrap();
    (seq.parse().unwrap(), hash.to_string())
}

/// Events redelivered (by time range, and by id) carry `seq` and `chainHash`, as streamed ones.
#[tokio::test]
async fn redelivered_audit_events_carry_their_seq_and_chain_hash() {
    let server = Server::start_with(Options {
        hostile: false,
        env: vec![("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "1".into())],
    })
    .await;
    let db = server.database_url();
    let rx = Receiver::start().await;
    // Created before the destination: no outbox entry until a redelivery makes one.
    server.create_flow(webhook_flow("before", json!([]))).await;
    let r = server
        .admin(Method::POST, "/v1/event-destinations")
        .json(&json!({"name": "siem", "url": format!("{}/audit", rx.base),
                      "events": ["flow.created"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let destination: Value = r.json().await.unwrap();
    let redeliver = |body: Value| {
        let path = format!(
            "/v1/event-destinations/{}/redeliver",
            destination["id"].as_str().unwrap()
        );
        let request = server.admin(Method::POST, &path).json(&body);
        async move {
            let r = request.send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.json::<Value>().await.unwrap()
        }
    };
    let queued = redeliver(json!({"createdAfter": "2000-01-01T00:00:00Z"})).await;
    assert_eq!(queued["queued"], 1, "{queued}");
    let received = |n: usize| {
        let rx = &rx;
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let seen = rx.to("/audit");
                if seen.len() >= n {
                    return seen[n - 1].json();
                }
                assert!(Instant::now() < deadline, "redelivery {n} never arrived");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let first = received(1).await;
    let event_id = first["id"].as_str().unwrap().to_string();
    let (seq, hash) = chain_position(&db, &event_id).await;
    assert_eq!(first["seq"], seq, "{first}");
    assert_eq!(first["chainHash"], hash.as_str(), "{first}");
    // By the audit event's id, again: the same entry, the same fields.
    let queued = redeliver(json!({"eventId": event_id})).await;
    assert_eq!(queued["queued"], 1, "{queued}");
    let again = received(2).await;
    assert_eq!(again, first);
}
