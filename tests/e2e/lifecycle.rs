//! Flow lifecycle against the real server: drafts do not serve until published, a disabled
//! flow's webhook answers 404 and stores nothing, every step is an audit event, and a plain
//! `PUT` (what clients that predate drafts send) still publishes.

use crate::common::{Server, log_step, webhook_flow};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The names of the steps a run ran.
fn ran(run: &Value) -> Vec<String> {
    crate::common::step_names(run)
}

async fn audit(server: &Server, action: &str, flow_id: &str) -> Vec<Value> {
    let page = server
        .get_json(&format!("/v1/audit-events?action={action}&limit=100"))
        .await;
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["flow"]["id"] == flow_id)
        .cloned()
        .collect()
}

async fn send(
    server: &Server,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = server.admin(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn run_count(server: &Server, flow_id: &str) -> usize {
    server
        .get_json(&format!("/v1/flow-runs?flowId={flow_id}&limit=500"))
        .await["data"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn drafts_publish_disable_enable_and_their_audit_events() {
    let server = Server::start().await;
    let id = server
        .create_flow(webhook_flow("life", json!([log_step("first", "v1")])))
        .await;
    let path = format!("/v1/flows/{id}");

    // A draft is saved but the webhook keeps running the published version.
    let draft = webhook_flow(
        "life",
        json!([log_step("first", "v2"), log_step("second", "v2")]),
    );
    let (status, body) = send(
        &server,
        Method::PUT,
        &format!("{path}?draft=true"),
        Some(draft),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["version"].clone(), body["draftVersion"].clone()),
        (json!(1), json!(2))
    );
    let run = server.run_flow(&id, &json!({"n": 1})).await;
    assert_eq!(run["flowVersion"], 1);
    assert_eq!(ran(&run), ["first"]);
    let versions = server.get_json(&format!("{path}/versions")).await;
    assert_eq!(
        versions["data"],
        json!([
            {"version": 2, "created": versions["data"][0]["created"], "published": false, "draft": true},
            {"version": 1, "created": versions["data"][1]["created"], "published": true, "draft": false},
        ])
    );
    // `?draft=` must be a boolean.
    let (status, body) = send(
        &server,
        Method::PUT,
        &format!("{path}?draft=maybe"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["detail"].as_str().unwrap().contains("draft"), "{body}");

    // Publishing makes the draft the version that runs.
    let (status, body) = send(&server, Method::POST, &format!("{path}/publish"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["version"].clone(), body["draftVersion"].clone()),
        (json!(2), Value::Null)
    );
    let run = server.run_flow(&id, &json!({"n": 2})).await;
    assert_eq!(run["flowVersion"], 2);
    assert_eq!(ran(&run), ["first", "second"]);
    // Nothing left to publish.
    let (status, _) = send(&server, Method::POST, &format!("{path}/publish"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Disabled: the webhook answers as for a missing flow and stores nothing.
    let before = run_count(&server, &id).await;
    let (status, body) = send(&server, Method::POST, &format!("{path}/disable"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["enabled"], false);
    let response = server.post_event(&id, &json!({"n": 3})).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let missing = server.post_event("no-such-flow", &json!({})).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        run_count(&server, &id).await,
        before,
        "a disabled flow stores nothing"
    );
    // The flow itself is still there to read and edit.
    let flow = server.get_json(&path).await;
    assert_eq!(
        (flow["enabled"].clone(), flow["version"].clone()),
        (json!(false), json!(2))
    );
    // Disabling again changes nothing.
    let (status, _) = send(&server, Method::POST, &format!("{path}/disable"), None).await;
    assert_eq!(status, StatusCode::OK);

    // Enabled again: it runs.
    let (status, body) = send(&server, Method::POST, &format!("{path}/enable"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["enabled"], true);
    let run = server.run_flow(&id, &json!({"n": 4})).await;
    assert_eq!(run["status"], "SUCCEEDED");
    let (status, _) = send(&server, Method::POST, "/v1/flows/no-such-flow/enable", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A plain PUT, as clients that know nothing of drafts send, publishes at once.
    let renamed = webhook_flow("life renamed", json!([log_step("second", "v3")]));
    let (status, body) = send(&server, Method::PUT, &path, Some(renamed)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 3);
    let run = server.run_flow(&id, &json!({"n": 5})).await;
    assert_eq!(
        (run["flowVersion"].clone(), ran(&run)),
        (json!(3), vec!["second".to_string()])
    );

    // Each step is an audit event, in Activepieces' names.
    let published: Vec<Value> = audit(&server, "flow.published", &id)
        .await
        .iter()
        .map(|e| e["data"]["flow"]["version"].clone())
        .collect();
    assert_eq!(published, [json!(3), json!(2)]);
    assert_eq!(audit(&server, "flow.deactivated", &id).await.len(), 1);
    assert_eq!(audit(&server, "flow.activated", &id).await.len(), 1);
    let updated = audit(&server, "flow.updated", &id).await;
    assert_eq!(updated.len(), 2);
    assert_eq!(updated[1]["data"]["draft"], true);
    assert_eq!(
        updated[1]["data"]["changes"]["steps"],
        json!({"added": ["second"], "removed": [], "changed": ["first"]})
    );
    assert_eq!(updated[0]["data"]["draft"], false);
    assert_eq!(
        updated[0]["data"]["changes"]["name"],
        json!({"from": "life", "to": "life renamed"})
    );
    assert_eq!(
        updated[0]["data"]["changes"]["steps"],
        json!({"added": [], "removed": ["first"], "changed": ["second"]})
    );
}

#[tokio::test]
async fn a_version_reads_as_yaml() {
    let server = Server::start().await;
    let flow = json!({"name": "yaml", "trigger": {"type": "webhook", "auth": {"type": "bearer",
        "token": "s3cret-token-value"}}, "steps": [log_step("only", "hi")]});
    let id = server.create_flow(flow).await;
    for (path, accept) in [
        (format!("/v1/flows/{id}/versions/1?format=yaml"), "*/*"),
        (format!("/v1/flows/{id}/versions/1"), "application/yaml"),
    ] {
        let response = server
            .admin(Method::GET, &path)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/yaml");
        let text = response.text().await.unwrap();
        assert!(text.contains("name: yaml"), "{text}");
        assert!(
            !text.contains("s3cret-token-value"),
            "credentials stay masked: {text}"
        );
    }
    let (status, body) = send(
        &server,
        Method::GET,
        &format!("/v1/flows/{id}/versions/1?format=xml"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"].as_str().unwrap().contains("format"),
        "{body}"
    );
}

/// The console's flow page: an editor saves a draft, publishes it, disables and enables the
/// flow with its buttons (each through the API, so the same rules and audit events apply).
#[tokio::test]
async fn the_console_saves_drafts_publishes_and_disables() {
    use crate::common::{PASSWORD, create_user};
    let server = Server::start().await;
    create_user(
        &server,
        "editor@example.com",
        json!({"projectId": "default", "role": "editor"}),
    )
    .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .post(server.url("/sign-in"))
        .form(&[
            ("email", "editor@example.com"),
            ("password", PASSWORD),
            ("next", "/flows"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let page = |path: String| {
        let (client, cookie, url) = (client.clone(), cookie.clone(), server.url(&path));
        async move {
            let r = client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.text().await.unwrap()
        }
    };
    let post = |path: String, fields: Vec<(&'static str, String)>| {
        let (client, cookie, url) = (client.clone(), cookie.clone(), server.url(&path));
        async move {
            let r = client
                .post(url)
                .header("cookie", cookie)
                .form(&fields)
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.text().await.unwrap())
        }
    };
    let csrf_of = |html: &str| {
        let at = html.find("name=\"csrf\" value=\"").expect("csrf") + 19;
        html[at..].split('"').next().unwrap().to_string()
    };

    let id = server
        .create_flow(webhook_flow(
            "console life",
            json!([log_step("first", "v1")]),
        ))
        .await;
    let show = page(format!("/flows/{id}")).await;
    assert!(
        show.contains(">ENABLED<") && show.contains("Disable flow"),
        "{show}"
    );
    assert!(!show.contains("Publish draft"));
    let csrf = csrf_of(&show);

    let yaml = "name: console life\ntrigger:\n  type: webhook\nsteps:\n- name: second\n  type: action\n  plugin: log@0.1.0\n  input:\n    message: v2\n";
    let (status, body) = post(
        format!("/flows/{id}/save"),
        vec![
            ("csrf", csrf.clone()),
            ("yaml", yaml.into()),
            ("draft", "1".into()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let show = page(format!("/flows/{id}")).await;
    assert!(show.contains("draft version 2 not published"), "{show}");
    assert!(show.contains("Publish draft"));
    assert!(show.contains("2 (draft)") && show.contains("1 (published)"));
    // The editor holds the draft.
    assert!(show.contains("message: v2"), "{show}");
    assert_eq!(ran(&server.run_flow(&id, &json!({})).await), ["first"]);

    let (status, _) = post(
        format!("/flows/{id}/lifecycle/publish"),
        vec![("csrf", csrf.clone())],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(ran(&server.run_flow(&id, &json!({})).await), ["second"]);

    let (status, _) = post(
        format!("/flows/{id}/lifecycle/disable"),
        vec![("csrf", csrf.clone())],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        server.post_event(&id, &json!({})).await.status(),
        StatusCode::NOT_FOUND
    );
    let show = page(format!("/flows/{id}")).await;
    assert!(
        show.contains(">DISABLED<") && show.contains("Enable flow"),
        "{show}"
    );

    let (status, _) = post(
        format!("/flows/{id}/lifecycle/enable"),
        vec![("csrf", csrf.clone())],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        server.post_event(&id, &json!({})).await.status(),
        StatusCode::ACCEPTED
    );
    let (status, _) = post(
        format!("/flows/{id}/lifecycle/explode"),
        vec![("csrf", csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The flow `id` as `GET /v1/flows` lists it.
async fn listed(server: &Server, id: &str) -> Value {
    let page = server.get_json("/v1/flows?limit=500").await;
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .cloned()
        .unwrap()
}

/// Runs `POST /v1/flows/{id}/test` (with `query`) on a literal payload with `extra` body members.
async fn test_run(server: &Server, id: &str, query: &str, extra: Value) -> (StatusCode, Value) {
    let mut body = json!({"payload": {"n": 1}});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    send(
        server,
        Method::POST,
        &format!("/v1/flows/{id}/test{query}"),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn test_runs_target_the_draft_or_a_version_and_lists_show_the_lifecycle() {
    let server = Server::start().await;
    let id = server
        .create_flow(webhook_flow("tested", json!([log_step("published", "v1")])))
        .await;
    let (status, _) = send(
        &server,
        Method::PUT,
        &format!("/v1/flows/{id}?draft=true"),
        Some(webhook_flow("tested", json!([log_step("drafted", "v2")]))),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // The published version by default; the draft when asked, by name, by ?draft=true or by
    // its number; an older version by number. The run says which version ran.
    for (query, extra, version, step) in [
        ("", json!({}), 1, "published"),
        ("", json!({"version": "published"}), 1, "published"),
        ("", json!({"version": "draft"}), 2, "drafted"),
        ("?draft=true", json!({}), 2, "drafted"),
        ("", json!({"version": 2}), 2, "drafted"),
        ("", json!({"version": 1}), 1, "published"),
    ] {
        let (status, run) = test_run(&server, &id, query, extra.clone()).await;
        assert_eq!(status, StatusCode::OK, "{query} {extra}: {run}");
        assert_eq!(run["flowVersion"], version, "{query} {extra}: {run}");
        assert_eq!(ran(&run), vec![step.to_string()], "{query} {extra}");
        assert_eq!(run["environment"], "TESTING");
    }
    let tested = audit(&server, "flow.tested", &id).await;
    assert_eq!(tested.len(), 6);
    let draft_test = tested
        .iter()
        .find(|e| e["data"]["flowVersion"] == json!({"version": 2, "draft": true}))
        .unwrap_or_else(|| panic!("{tested:?}"));
    assert!(
        draft_test["summary"]
            .as_str()
            .unwrap()
            .starts_with("Flow tested, its draft version 2, was test-run (run "),
        "{draft_test}"
    );
    // Webhooks still run the published version.
    let run = server.run_flow(&id, &json!({})).await;
    assert_eq!(ran(&run), vec!["published".to_string()]);

    // Refusals name the field.
    for (query, extra, want) in [
        ("", json!({"version": 9}), StatusCode::NOT_FOUND),
        ("", json!({"version": "latest"}), StatusCode::BAD_REQUEST),
        ("", json!({"version": true}), StatusCode::BAD_REQUEST),
        (
            "?draft=true",
            json!({"version": "published"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "?draft=true",
            json!({"version": 1}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, problem) = test_run(&server, &id, query, extra.clone()).await;
        assert_eq!(status, want, "{query} {extra}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("version"), "{query} {extra}: {detail}");
    }

    // Lists show enabled, published and draft versions, like a single read.
    let item = listed(&server, &id).await;
    assert_eq!(
        (
            &item["enabled"],
            &item["publishedVersion"],
            &item["draftVersion"]
        ),
        (&json!(true), &json!(1), &json!(2)),
        "{item}"
    );
    let one = server.get_json(&format!("/v1/flows/{id}")).await;
    assert_eq!(one["publishedVersion"], 1, "{one}");
    send(
        &server,
        Method::POST,
        &format!("/v1/flows/{id}/disable"),
        None,
    )
    .await;
    send(
        &server,
        Method::POST,
        &format!("/v1/flows/{id}/publish"),
        None,
    )
    .await;
    let item = listed(&server, &id).await;
    assert_eq!(
        (
            &item["enabled"],
            &item["publishedVersion"],
            &item["draftVersion"]
        ),
        (&json!(false), &json!(2), &Value::Null),
        "{item}"
    );
    // Published now: no draft to test.
    let (status, problem) = test_run(&server, &id, "", json!({"version": "draft"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("no draft"),
        "{problem}"
    );
}
