//! Today's features together, as a demanding user meets them: a flow's sealed webhook
//! credential through drafts, test runs of older versions, diffs, publishing, export and
//! re-import; a generated credential shown once and nowhere after; a removed plugin version
//! an old flow version still names; the contract and `/metrics` after removals and deletions.

use crate::common::*;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

const SEALED: &str = "hookflow-sealed";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const HEADER_TOKEN: &str = "hdr-tok-7c1e9a40b2";

/// `hookflow ARGS --url … --token …`, off the runtime; (exit code, stdout, stderr).
async fn cli(server: &Server, args: &[&str]) -> (Option<i32>, String, String) {
    let mut full: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    full.extend(["--url".into(), server.base.clone()]);
    full.extend(["--token".into(), ADMIN_TOKEN.into()]);
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_hookflow"))
            .args(&full)
            .env("NO_COLOR", "1")
            .env_remove("HOOKFLOW_URL")
            .env_remove("HOOKFLOW_TOKEN")
            .env_remove("HOOKFLOW_ADMIN_TOKEN")
            .env("HOOKFLOW_DATA_DIR", "/nonexistent-hookflow-data")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// A Standard Webhooks signature of `body`: by the `standardwebhooks` PyPI package when it is
/// installed (an independent implementation), else computed here.
fn standard_signature(secret: &str, msg_id: &str, ts: i64, body: &str) -> String {
    let script = "import sys,json\nfrom standardwebhooks.webhooks import Webhook\nfrom datetime import datetime,timezone\nd=json.load(sys.stdin)\nprint(Webhook(d['secret']).sign(d['id'],datetime.fromtimestamp(d['ts'],tz=timezone.utc),d['body']))";
    let python = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    if let Ok(mut child) = python {
        let input = json!({"secret": secret, "id": msg_id, "ts": ts, "body": body});
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            return String::from_utf8(out.stdout).unwrap().trim().to_string();
        }
    }
    let raw = hookflow::trigger::verify::sign(secret, msg_id, ts, body.as_bytes()).unwrap();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// A webhook credential kind under test: its `trigger.auth`, the credential, and how a caller
/// presents it.
#[derive(Clone, Copy)]
enum Kind {
    Standard,
    Header,
}

impl Kind {
    fn auth(self) -> Value {
        match self {
            Kind::Standard => json!({"type": "standardWebhooks", "secret": WHSEC}),
            Kind::Header => {
                json!({"type": "header", "header": "X-Hook-Token", "value": HEADER_TOKEN})
            }
        }
    }

    fn credential(self) -> &'static str {
        match self {
            Kind::Standard => WHSEC,
            Kind::Header => HEADER_TOKEN,
        }
    }

    fn field(self) -> &'static str {
        match self {
            Kind::Standard => "trigger.auth.secret",
            Kind::Header => "trigger.auth.value",
        }
    }

    fn flow(self, name: &str, message: &str) -> Value {
        json!({"name": name, "trigger": {"type": "webhook", "auth": self.auth()},
               "steps": [log_step("say", message)]})
    }

    /// The webhook's answer to a new event presented with the right credential or a wrong one.
    async fn call(self, server: &Server, flow_id: &str, right: bool) -> StatusCode {
        static EVENTS: AtomicU64 = AtomicU64::new(0);
        let n = EVENTS.fetch_add(1, Ordering::Relaxed);
        let body = json!({"id": format!("ev{n}")}).to_string();
        let request = server
            .client
            .post(server.url(&format!("/v1/webhooks/{flow_id}")))
            .header("content-type", "application/json");
        let request = match self {
            Kind::Standard => {
                let ts = chrono::Utc::now().timestamp();
                let msg_id = format!("msg_{n}");
                let secret = if right {
                    WHSEC
                } else {
                    "whsec_d3JvbmctYnV0LWJhc2U2NC1zZWNyZXQ="
                };
                let signature = standard_signature(secret, &msg_id, ts, &body);
                request
                    .header("webhook-id", msg_id)
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", signature)
            }
            Kind::Header => request.header(
                "X-Hook-Token",
                if right { HEADER_TOKEN } else { "hdr-tok-wrong" },
            ),
        };
        request.body(body).send().await.unwrap().status()
    }

    /// The right credential is accepted and a wrong one refused.
    async fn assert_verifies(self, server: &Server, flow_id: &str, when: &str) {
        assert_eq!(
            self.call(server, flow_id, true).await,
            StatusCode::ACCEPTED,
            "{when}: right credential"
        );
        assert_eq!(
            self.call(server, flow_id, false).await,
            StatusCode::UNAUTHORIZED,
            "{when}: wrong credential"
        );
    }
}

/// Neither the credential nor any sealed text is in `text`.
fn assert_clean(what: &str, text: &str, credential: &str) {
    assert!(
        !text.contains(credential),
        "{what} carries the credential: {text}"
    );
    let bare = credential.trim_start_matches("whsec_");
    assert!(
        !text.contains(bare),
        "{what} carries the credential: {text}"
    );
    assert!(
        !text.contains(SEALED),
        "{what} carries a sealed credential: {text}"
    );
}

async fn put(server: &Server, path: &str, body: &Value) -> (StatusCode, Value) {
    let r = server
        .admin(Method::PUT, path)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn text(server: &Server, path: &str) -> (StatusCode, String) {
    let r = server.admin(Method::GET, path).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn credential_journey(kind: Kind) {
    let mut server = Server::start().await;
    let credential = kind.credential();
    let id = server.create_flow(kind.flow("journey", "one")).await;
    kind.assert_verifies(&server, &id, "created").await;

    // Saved back as read (the mask in place of the credential), published: version 2.
    let mut read = server.get_json(&format!("/v1/flows/{id}")).await;
    assert_clean("GET flow", &read.to_string(), credential);
    read["definition"]["steps"][0]["input"]["message"] = json!("two");
    let (status, saved) = put(&server, &format!("/v1/flows/{id}"), &read["definition"]).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    kind.assert_verifies(&server, &id, "published v2").await;

    // A draft saved with the mask twice (the second from the draft as read): version 4.
    read["definition"]["steps"][0]["input"]["message"] = json!("three");
    let (status, saved) = put(
        &server,
        &format!("/v1/flows/{id}?draft=true"),
        &read["definition"],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["draftVersion"], 3, "{saved}");
    let mut draft = server.get_json(&format!("/v1/flows/{id}/versions/3")).await;
    assert_clean("GET draft version", &draft.to_string(), credential);
    draft["definition"]["steps"][0]["input"]["message"] = json!("four");
    let (status, saved) = put(
        &server,
        &format!("/v1/flows/{id}?draft=true"),
        &draft["definition"],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["draftVersion"], 4, "{saved}");
    kind.assert_verifies(&server, &id, "draft pending").await;

    // Test runs of the draft and of an older saved version run what those versions say.
    let said = |run: &Value| step(run, "say")["input"]["message"].clone();
    let (status, run) = test_run(
        &server,
        &id,
        json!({"payload": {"id": "t1"}, "version": "draft"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(
        (run["flowVersion"].clone(), said(&run)),
        (json!(4), json!("four")),
        "{run}"
    );
    let (status, run) =
        test_run(&server, &id, json!({"payload": {"id": "t2"}, "version": 1})).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(
        (run["flowVersion"].clone(), said(&run)),
        (json!(1), json!("one")),
        "{run}"
    );
    assert_clean("test run", &run.to_string(), credential);

    // The CLI draws each trace over the version that ran (read back masked).
    let dir = tempfile::tempdir().unwrap();
    let payload = dir.path().join("payload.json");
    std::fs::write(&payload, r#"{"id": "t4"}"#).unwrap();
    let payload = payload.to_str().unwrap();
    for (which, version) in [
        (&["--draft"][..], "version 4"),
        (&["--flow-version", "1"][..], "version 1"),
    ] {
        let args = [&["flow", "test", &id, "--payload", payload][..], which].concat();
        let (code, out, err) = cli(&server, &args).await;
        assert_eq!(code, Some(0), "flow test {which:?}: {err}");
        assert!(out.contains(version), "{out}");
        assert_clean("flow test", &format!("{out}{err}"), credential);
    }

    // Two versions side by side: only the step changed, the credential shows masked in both.
    for v in ["1", "4"] {
        let (status, body) = text(&server, &format!("/v1/flows/{id}/versions/{v}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_clean("a version", &body, credential);
        assert!(body.contains("********"), "{body}");
    }
    let (code, out, err) = cli(&server, &["flow", "diff", &id, "1", "4"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("four") && out.contains("one"), "{out}");
    assert!(
        !out.contains("auth"),
        "the credential did not change: {out}"
    );
    assert_clean("flow diff", &format!("{out}{err}"), credential);

    // Published: the draft's credential is the one the webhook checks.
    let r = server
        .admin(Method::POST, &format!("/v1/flows/{id}/publish"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    kind.assert_verifies(&server, &id, "published v4").await;

    // Exported as YAML (API and CLI): masked.
    let (status, yaml) = text(&server, &format!("/v1/flows/{id}/versions/4?format=yaml")).await;
    assert_eq!(status, StatusCode::OK, "{yaml}");
    assert_clean("YAML export", &yaml, credential);
    let (code, exported, err) = cli(&server, &["flow", "export", &id]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_clean("flow export", &exported, credential);
    assert!(exported.contains("********"), "{exported}");

    // Re-imported as a new flow, the mask stands for nothing: refused naming the field, alone.
    let renamed = exported.replace("name: journey", "name: journey copy");
    assert_ne!(renamed, exported);
    let r = server
        .admin(Method::POST, "/v1/flows")
        .header("content-type", "application/yaml")
        .body(renamed.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = r.json().await.unwrap();
    let problem_text = problem.to_string();
    assert!(problem_text.contains(kind.field()), "{problem}");
    assert!(problem_text.contains("mask"), "{problem}");
    assert!(
        !problem_text.contains("must start with"),
        "the mask is the problem, not its form: {problem}"
    );
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.yaml");
    std::fs::write(&copy, &renamed).unwrap();
    let (code, _, err) = cli(&server, &["flow", "deploy", copy.to_str().unwrap()]).await;
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(kind.field()) && err.contains("mask"), "{err}");
    let flows = server.get_json("/v1/flows").await;
    assert_eq!(
        flows["data"].as_array().unwrap().len(),
        1,
        "nothing created: {flows}"
    );

    // Deployed back onto its own flow, the mask keeps the credential.
    let same = dir.path().join("same.yaml");
    std::fs::write(&same, exported.replace("four", "five")).unwrap();
    let (code, _, err) = cli(
        &server,
        &["flow", "deploy", same.to_str().unwrap(), "--id", &id],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    let now = server.get_json(&format!("/v1/flows/{id}")).await;
    assert_eq!(now["version"], 5, "{now}");
    kind.assert_verifies(&server, &id, "deployed v5").await;

    server.restart();
    kind.assert_verifies(&server, &id, "after a restart").await;
    let (status, run) =
        test_run(&server, &id, json!({"payload": {"id": "t3"}, "version": 2})).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(said(&run), json!("two"), "{run}");
}

#[tokio::test]
async fn a_standard_webhooks_secret_survives_drafts_test_runs_diffs_publish_and_export() {
    credential_journey(Kind::Standard).await;
}

#[tokio::test]
async fn a_header_token_survives_drafts_test_runs_diffs_publish_and_export() {
    credential_journey(Kind::Header).await;
}

/// Signs in through the console's form; returns the cookie header value.
async fn console_cookie(server: &Server) -> String {
    create_user(
        server,
        "admin@example.com",
        json!({"platformRole": "platform-admin"}),
    )
    .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .post(server.url("/sign-in"))
        .form(&[
            ("email", "admin@example.com"),
            ("password", PASSWORD),
            ("next", "/flows"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn a_generated_credential_is_shown_once_and_in_no_later_answer() {
    let server = Server::start().await;
    let cookie = console_cookie(&server).await;
    for request in [
        json!({"events": ["user.signed.in"]}),
        json!({"events": ["user_created"], "source": "gitlab"}),
    ] {
        let r = server
            .admin(Method::POST, "/v1/handler-flows")
            .json(&request)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let created: Value = r.json().await.unwrap();
        let id = created["id"].as_str().unwrap().to_string();
        let credential = created["credential"]
            .as_object()
            .and_then(|c| {
                c.get("secret")
                    .or_else(|| c.get("value"))
                    .or_else(|| c.get("token"))
            })
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("a credential: {created}"))
            .to_string();
        // Shown like every other answer's flow, lifecycle included.
        assert_eq!(
            (
                &created["enabled"],
                &created["publishedVersion"],
                &created["draftVersion"]
            ),
            (&json!(true), &json!(1), &Value::Null),
            "{created}"
        );
        let mut shown = created.clone();
        shown.as_object_mut().unwrap().remove("credential");
        assert_clean("the creation's definition", &shown.to_string(), &credential);

        for path in [
            format!("/v1/flows/{id}"),
            "/v1/flows".to_string(),
            format!("/v1/flows/{id}/versions"),
            format!("/v1/flows/{id}/versions/1"),
            format!("/v1/flows/{id}/versions/1?format=yaml"),
        ] {
            let (status, body) = text(&server, &path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            assert_clean(&path, &body, &credential);
        }
        let r = server
            .client
            .get(server.url(&format!("/flows/{id}")))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_clean(
            "the console's flow page",
            &r.text().await.unwrap(),
            &credential,
        );
        for args in [
            vec!["flow", "show", &id],
            vec!["flow", "export", &id],
            vec!["flow", "export", &id, "--json"],
        ] {
            let (code, out, err) = cli(&server, &args).await;
            assert_eq!(code, Some(0), "{args:?}: {err}");
            assert_clean(&format!("{args:?}"), &format!("{out}{err}"), &credential);
        }
    }
}

fn greet_flow(name: &str) -> Value {
    json!({"name": name, "trigger": {"type": "webhook", "auth": {"type": "bearer", "token": HEADER_TOKEN}},
           "steps": [{"name": "greet", "type": "action", "plugin": "greet@1.0.0",
                      "input": {"who": "{{trigger.body.who}}"}}]})
}

async fn install_greet(server: &Server) -> Value {
    let greet = std::fs::read(hookflow::builtins::GREET_PLUGIN_PATHS[0]).unwrap();
    let bytes = crate::plugins::with_custom_section(&greet, uuid::Uuid::new_v4().as_bytes());
    let r = server
        .admin(Method::POST, "/v1/plugins")
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

async fn metrics_text(server: &Server) -> String {
    let r = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

/// A plugin version only an old flow version names is removed; a test run of that version is
/// a problem naming the plugin by path; other bytes under the same version install and run it.
/// The contract has today's routes, and `/metrics` forgets the removed plugin and the deleted
/// flow.
#[tokio::test]
async fn a_removed_plugin_an_old_version_names_and_what_the_contract_and_metrics_say() {
    let server = Server::start().await;
    let first = install_greet(&server).await;
    let id = server.create_flow(greet_flow("greeter")).await;
    // A flow that only mentions the plugin, with its Standard Webhooks secret sealed at rest,
    // does not use it (its stored definition is read to decide).
    server
        .create_flow(Kind::Standard.flow("mentions", "greet@1.0.0"))
        .await;
    let r = server
        .client
        .post(server.url(&format!("/v1/webhooks/{id}")))
        .bearer_auth(HEADER_TOKEN)
        .json(&json!({"id": "m1", "who": "Ana"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let (status, run) = test_run(&server, &id, json!({"payload": {"who": "Ana"}})).await;
    assert_eq!(run["status"], "SUCCEEDED", "{status} {run}");
    let scraped = metrics_text(&server).await;
    assert!(scraped.contains("plugin=\"greet\""), "{scraped}");
    assert!(scraped.contains(&format!("flow=\"{id}\"")), "{scraped}");

    // Version 2 (published) and no draft: version 1 alone names greet@1.0.0.
    let mut plain = greet_flow("greeter");
    plain["steps"] = json!([log_step("say", "no greeting")]);
    let (status, body) = put(&server, &format!("/v1/flows/{id}"), &plain).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r = server
        .admin(Method::DELETE, "/v1/plugins/greet/1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "{}",
        r.text().await.unwrap()
    );
    let (status, problem) = test_run(
        &server,
        &id,
        json!({"payload": {"who": "Bo"}, "version": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let problem_text = problem.to_string();
    assert!(
        problem_text.contains("greet@1.0.0") && problem_text.contains("steps[0]"),
        "{problem}"
    );
    let (status, run) = test_run(&server, &id, json!({"payload": {"who": "Bo"}})).await;
    assert_eq!(
        (status, run["status"].clone()),
        (StatusCode::OK, json!("SUCCEEDED")),
        "{run}"
    );
    let scraped = metrics_text(&server).await;
    assert!(
        !scraped.contains("plugin=\"greet\""),
        "a removed plugin's series stay: {scraped}"
    );

    // Other bytes under the removed version install; the old version test-runs again.
    let second = install_greet(&server).await;
    assert_ne!(first["digest"], second["digest"]);
    let (status, run) = test_run(
        &server,
        &id,
        json!({"payload": {"who": "Cy"}, "version": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(
        step(&run, "greet")["output"]["greeting"],
        "hello, Cy",
        "{run}"
    );

    // Deleted: its webhook series go.
    let r = server
        .admin(Method::DELETE, &format!("/v1/flows/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let scraped = metrics_text(&server).await;
    assert!(
        !scraped.contains(&id),
        "a deleted flow's series stay: {scraped}"
    );

    // Today's routes are in the contract.
    let doc: Value = server
        .client
        .get(server.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let find = |suffix: &str| {
        paths
            .iter()
            .find(|(path, _)| path.ends_with(suffix))
            .map(|(_, item)| item.clone())
            .unwrap_or_else(|| panic!("no path ending {suffix}"))
    };
    assert!(find("/plugins/{name}/{version}")["delete"].is_object());
    let test = find("/flows/{id}/test")["post"].clone();
    assert!(test.is_object());
    assert!(test.to_string().contains("\"draft\""), "{test}");
    let body = &test["requestBody"]["content"]["application/json"]["schema"];
    let body = match body["$ref"].as_str() {
        Some(target) => doc.pointer(target.trim_start_matches('#')).unwrap().clone(),
        None => body.clone(),
    };
    assert!(body["properties"]["version"].is_object(), "{body}");
}

/// A draft that changes the credential, read and saved again with the mask (as a draft, or
/// published at once), keeps the draft's credential, not the published one.
#[tokio::test]
async fn a_draft_saved_again_with_the_mask_keeps_the_drafts_credential() {
    let server = Server::start().await;
    let id = server
        .create_flow(Kind::Header.flow("redraft", "one"))
        .await;
    let mut changed = Kind::Header.flow("redraft", "two");
    changed["trigger"]["auth"]["value"] = json!("hdr-tok-of-the-draft");
    let (status, saved) = put(&server, &format!("/v1/flows/{id}?draft=true"), &changed).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let mut draft = server.get_json(&format!("/v1/flows/{id}/versions/2")).await;
    assert_eq!(draft["definition"]["trigger"]["auth"]["value"], "********");
    draft["definition"]["steps"][0]["input"]["message"] = json!("three");
    let (status, saved) = put(
        &server,
        &format!("/v1/flows/{id}?draft=true"),
        &draft["definition"],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    // Until published, the published credential is the one the webhook takes.
    Kind::Header
        .assert_verifies(&server, &id, "draft pending")
        .await;
    let r = server
        .admin(Method::POST, &format!("/v1/flows/{id}/publish"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let call = |token: &'static str| {
        server
            .client
            .post(server.url(&format!("/v1/webhooks/{id}")))
            .header("X-Hook-Token", token)
            .json(&json!({"id": token}))
            .send()
    };
    assert_eq!(
        call("hdr-tok-of-the-draft").await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        call(HEADER_TOKEN).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // A draft that changes the kind of credential, saved again with the mask, keeps it too.
    let mut standard = Kind::Standard.flow("redraft", "four");
    standard["steps"] = draft["definition"]["steps"].clone();
    let (status, saved) = put(&server, &format!("/v1/flows/{id}?draft=true"), &standard).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    // Saved from the draft as read and published at once (the console's editor holds the
    // pending draft): the draft's credential is the one kept.
    let mut draft = server.get_json(&format!("/v1/flows/{id}/versions/4")).await;
    draft["definition"]["steps"][0]["input"]["message"] = json!("five");
    let (status, saved) = put(&server, &format!("/v1/flows/{id}"), &draft["definition"]).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["version"], 5, "{saved}");
    Kind::Standard
        .assert_verifies(&server, &id, "published v5")
        .await;

    // A draft of another kind pending, the published version read and saved with the mask:
    // the draft has no credential of that kind, the published one is kept.
    let (status, saved) = put(
        &server,
        &format!("/v1/flows/{id}?draft=true"),
        &Kind::Header.flow("redraft", "six"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let mut published = server.get_json(&format!("/v1/flows/{id}")).await;
    published["definition"]["steps"][0]["input"]["message"] = json!("seven");
    let (status, saved) = put(
        &server,
        &format!("/v1/flows/{id}?draft=true"),
        &published["definition"],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["draftVersion"], 7, "{saved}");
    let r = server
        .admin(Method::POST, &format!("/v1/flows/{id}/publish"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    Kind::Standard
        .assert_verifies(&server, &id, "published v7")
        .await;
}
