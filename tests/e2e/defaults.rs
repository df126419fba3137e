//! Safer defaults: trigger credentials from secrets and masked in every answer, unset or
//! ungranted secrets, immutable plugin versions, checked destination event filters, and
//! redelivery of any audit event by id or time range. (The generator's webhook credential is
//! tested in `catalog.rs`.)

use crate::common::*;
use crate::receiver::Receiver;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub(crate) async fn send(
    server: &Server,
    method: Method,
    path: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let r = server.admin(method, path).json(body).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn put_secret(server: &Server, name: &str, value: &str) {
    let (status, _) = send(
        server,
        Method::PUT,
        &format!("/v1/secrets/{name}"),
        &json!({ "value": value }),
    )
    .await;
    assert!(status.is_success(), "put secret {name}: {status}");
}

/// Posts `body` to an absolute webhook URL with extra headers; the status.
pub(crate) async fn call(
    server: &Server,
    url: &str,
    headers: &[(&str, String)],
    body: &str,
) -> StatusCode {
    let mut request = server
        .client
        .post(url)
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
}

/// The paths of a 422's problems.
fn problem_paths(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["path"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn trigger_credentials_come_from_secrets_and_are_never_shown() {
    let server = Server::start().await;
    put_secret(&server, "HOOK_TOKEN", "hook-s3cret-value").await;
    let flow = json!({
        "name": "from a secret",
        "trigger": {"type": "webhook", "auth": {"type": "bearer", "token": "{{secrets.HOOK_TOKEN}}"}},
        "steps": [log_step("note", "got {{trigger.body.n}}")],
    });
    let (status, created) = send(&server, Method::POST, "/v1/flows", &flow).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let shown = server.get_json(&format!("/v1/flows/{id}")).await;
    assert_eq!(
        shown["definition"]["trigger"]["auth"]["token"],
        "{{secrets.HOOK_TOKEN}}"
    );
    let listed = server.get_json("/v1/flows").await;
    for answer in [&created, &shown, &listed] {
        assert!(!answer.to_string().contains("s3cret"), "{answer}");
    }
    let url = server.url(&format!("/v1/webhooks/{id}"));
    let bearer = |token: &str| [("authorization", format!("Bearer {token}"))];
    assert_eq!(
        call(&server, &url, &bearer("{{secrets.HOOK_TOKEN}}"), "{}").await,
        StatusCode::UNAUTHORIZED,
        "the template is not the token"
    );
    assert_eq!(
        call(&server, &url, &bearer("wrong"), "{}").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&server, &url, &bearer("hook-s3cret-value"), r#"{"n": 1}"#).await,
        StatusCode::ACCEPTED
    );

    // A secret that is not set: the sender is asked to retry, nothing is stored.
    let flow = json!({
        "name": "unset",
        "trigger": {"type": "webhook", "auth": {"type": "header", "header": "X-Token", "value": "{{ secrets.NOT_SET }}"}},
        "steps": [],
    });
    let unset = server.create_flow(flow).await;
    let url = server.url(&format!("/v1/webhooks/{unset}"));
    let header = [("x-token", "anything".to_string())];
    assert_eq!(
        call(&server, &url, &header, "{}").await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // Any other template in a credential is refused at save time, by path.
    let flow = json!({
        "name": "templated",
        "trigger": {"type": "webhook", "auth": {"type": "bearer", "token": "{{trigger.body.token}}"}},
        "steps": [],
    });
    let (status, body) = send(&server, Method::POST, "/v1/flows", &flow).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(problem_paths(&body), ["trigger.auth.token"], "{body}");
}

#[tokio::test]
async fn literal_credentials_are_masked_and_survive_a_put_of_the_mask() {
    let server = Server::start().await;
    let flow = json!({
        "name": "literal",
        "trigger": {"type": "webhook", "auth": {"type": "header", "header": "X-Hook-Token", "value": "literal-t0ken-value"}},
        "steps": [log_step("note", "hi")],
    });
    let (status, created) = send(&server, Method::POST, "/v1/flows", &flow).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let shown = server.get_json(&format!("/v1/flows/{id}")).await;
    assert_eq!(shown["definition"]["trigger"]["auth"]["value"], "********");
    let answers = [
        created,
        shown.clone(),
        server.get_json("/v1/flows").await,
        server.get_json(&format!("/v1/flows/{id}/versions/1")).await,
    ];
    for answer in &answers {
        assert!(!answer.to_string().contains("t0ken"), "{answer}");
    }

    // Saving what was read keeps the credential.
    let mut definition = shown["definition"].clone();
    definition["description"] = json!("edited");
    let (status, replaced) = send(
        &server,
        Method::PUT,
        &format!("/v1/flows/{id}"),
        &definition,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["version"], 2);
    let url = server.url(&format!("/v1/webhooks/{id}"));
    let good = [("x-hook-token", "literal-t0ken-value".to_string())];
    let masked = [("x-hook-token", "********".to_string())];
    assert_eq!(
        call(&server, &url, &masked, "{}").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(call(&server, &url, &good, "{}").await, StatusCode::ACCEPTED);

    // The mask with nothing behind it (a new flow, another auth type) is refused by path.
    let (status, body) = send(&server, Method::POST, "/v1/flows", &definition).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(problem_paths(&body), ["trigger.auth.value"], "{body}");
    definition["trigger"]["auth"] = json!({"type": "bearer", "token": "********"});
    let (status, body) = send(
        &server,
        Method::PUT,
        &format!("/v1/flows/{id}"),
        &definition,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(problem_paths(&body), ["trigger.auth.token"], "{body}");
}

#[tokio::test]
async fn unset_secrets_fail_the_step_and_ungranted_ones_are_refused() {
    let server = Server::start().await;
    let flow = webhook_flow(
        "unset",
        json!([{
            "name": "call", "type": "action", "plugin": "log@0.1.0",
            "input": {"message": "token {{secrets.MISSING_TOKEN}}"},
            "secrets": ["MISSING_TOKEN"],
        }, log_step("after", "not reached")]),
    );
    let id = server.create_flow(flow).await;
    let run = server.run_flow(&id, &json!({})).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let call = step(&run, "call");
    assert_eq!(call["status"], "FAILED");
    assert_eq!(call["error"], "secret MISSING_TOKEN is not set", "{run}");
    assert_eq!(step_names(&run), ["call"]);
    // Once set, the same flow runs.
    put_secret(&server, "MISSING_TOKEN", "now-set").await;
    let run = server.run_flow(&id, &json!({"id": "second"})).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");

    let flow = webhook_flow(
        "ungranted",
        json!([{
            "name": "route", "type": "router", "branches": [{
                "name": "all", "fallback": true, "steps": [{
                    "name": "leak", "type": "action", "plugin": "log@0.1.0",
                    "input": {"message": ["x", "{{secrets.MISSING_TOKEN}}"]},
                    "secrets": ["OTHER"],
                }],
            }],
        }]),
    );
    let (status, body) = send(&server, Method::POST, "/v1/flows", &flow).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        problem_paths(&body),
        ["steps[0].branches[0].steps[0].input.message[1]"],
        "{body}"
    );
    assert!(
        body.to_string().contains("MISSING_TOKEN"),
        "names the secret: {body}"
    );
}

#[tokio::test]
async fn installed_plugin_versions_are_immutable() {
    let server = Server::start_with(Options {
        hostile: false,
        ..Options::default()
    })
    .await;
    let wasm = std::fs::read(hookflow::builtins::EFFECT_PLUGIN_PATH).unwrap();
    let install = |bytes: Vec<u8>| {
        let server = &server;
        async move {
            let r = server
                .admin(Method::POST, "/v1/plugins")
                .body(bytes)
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, info) = install(wasm.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{info}");
    let (name, version) = (
        info["name"].as_str().unwrap().to_string(),
        info["version"].as_str().unwrap().to_string(),
    );
    let (status, again) = install(wasm.clone()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "same bytes: nothing changes: {again}"
    );
    assert_eq!(again["digest"], info["digest"]);
    // The same component with a custom section appended: other bytes, same name@version.
    let mut other = wasm.clone();
    other.extend_from_slice(&[0x00, 0x06, 0x05, b'n', b'o', b't', b'e', b'x']);
    let (status, refused) = install(other).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("{name}@{version}")),
        "{refused}"
    );
    let shown = server
        .get_json(&format!("/v1/plugins/{name}/{version}"))
        .await;
    assert_eq!(shown["digest"], info["digest"], "{shown}");
    let audit = server
        .get_json("/v1/audit-events?action=plugin.installed")
        .await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 1, "{audit}");
    let r = server
        .admin(Method::GET, &format!("/v1/plugins/{name}/9.9.9"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

async fn dev_server() -> Server {
    Server::start_with(Options {
        hostile: false,
        env: vec![
            ("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "1".into()),
            ("HOOKFLOW_DELIVERY_RETRY_SCHEDULE", "0.2,0.2,0.2".into()),
        ],
    })
    .await
}

#[tokio::test]
async fn destination_event_filters_name_only_known_events() {
    let server = dev_server().await;
    let rx = Receiver::start().await;
    let (status, body) = send(
        &server,
        Method::POST,
        "/v1/event-destinations",
        &json!({"name": "siem", "url": format!("{}/in", rx.base),
                "events": ["flow.created", "flow.craeted", "plugin.installed"]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(problem_paths(&body), ["events[1]"], "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("flow.created"),
        "suggests the close match: {body}"
    );
    let (status, created) = send(
        &server,
        Method::POST,
        "/v1/event-destinations",
        &json!({"name": "siem", "url": format!("{}/in", rx.base),
                "events": ["flow.created", "plugin.installed", "user.signed.in"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, body) = send(
        &server,
        Method::PATCH,
        &format!("/v1/event-destinations/{id}"),
        &json!({"events": ["nope.never"]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(problem_paths(&body), ["events[0]"], "{body}");
}

#[tokio::test]
async fn any_audit_event_can_be_redelivered_by_id_or_time_range() {
    let server = dev_server().await;
    let rx = Receiver::start().await;
    // Created before the destination exists: never delivered.
    let early = server.create_flow(webhook_flow("early", json!([]))).await;
    let audit = server
        .get_json("/v1/audit-events?action=flow.created")
        .await;
    let event = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e.to_string().contains(&early))
        .unwrap_or_else(|| panic!("flow.created of {early} in {audit}"))
        .clone();
    let event_id = event["id"].as_str().unwrap().to_string();
    let (_, dest) = send(
        &server,
        Method::POST,
        "/v1/event-destinations",
        &json!({"name": "siem", "url": format!("{}/siem", rx.base), "events": ["flow.created"]}),
    )
    .await;
    let dest = dest["id"].as_str().unwrap().to_string();
    let redeliver = |body: Value| {
        let server = &server;
        let path = format!("/v1/event-destinations/{dest}/redeliver");
        async move { send(server, Method::POST, &path, &body).await }
    };
    // By its audit event id.
    let (status, answer) = redeliver(json!({ "eventId": event_id })).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["queued"], 1);
    let seen = wait_for(&rx, "/siem", 1).await;
    assert_eq!(seen[0].json()["id"], event_id, "{:?}", seen[0]);
    let first_id = seen[0].headers["webhook-id"].clone();

    // By time range: the same event again (delivered now, reusing its webhook-id) and one made
    // after the destination existed; an event outside the filter is not sent.
    let later = server.create_flow(webhook_flow("later", json!([]))).await;
    wait_for(&rx, "/siem", 2).await;
    let (status, answer) = redeliver(json!({
        "createdAfter": "2000-01-01T00:00:00Z",
        "createdBefore": "2999-01-01T00:00:00Z",
    }))
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["queued"], 2, "{answer}");
    let seen = wait_for(&rx, "/siem", 4).await;
    let ids: Vec<String> = seen[2..]
        .iter()
        .map(|s| s.json()["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&event_id), "{ids:?}");
    assert!(
        seen[2..].iter().any(|s| s.body.contains(&later)),
        "{seen:?}"
    );
    assert!(
        seen[2..]
            .iter()
            .any(|s| s.headers["webhook-id"] == first_id),
        "a redelivered event keeps its webhook-id"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.to("/siem").len(), 4, "nothing else was queued");
}

/// Waits (bounded) until the receiver has at least `count` requests to `path`.
async fn wait_for(rx: &Receiver, path: &str, count: usize) -> Vec<crate::receiver::Seen> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = rx.to(path);
        if seen.len() >= count {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {count} deliveries to {path}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
