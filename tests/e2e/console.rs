//! The web console over plain HTTP: sign-in through the form, pages a role may see, controls it
//! may not use hidden and refused by the API when posted anyway, form errors next to their
//! field with nothing saved. The browser journey (real Chromium) is `console_journey_in_chromium`.

use crate::common::*;
use crate::common::{PASSWORD, create_user};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A client that keeps redirects visible.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in through the console's form; returns the cookie header value.
async fn console_sign_in(server: &Server, email: &str) -> String {
    let r = client()
        .post(server.url("/sign-in"))
        .form(&[("email", email), ("password", PASSWORD), ("next", "/flows")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/flows");
    let set = r.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

async fn page(server: &Server, cookie: &str, path: &str) -> (StatusCode, String) {
    let r = client()
        .get(server.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

/// The CSRF token a page's forms carry.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    html[at..].split('"').next().unwrap().to_string()
}

async fn post_form(
    server: &Server,
    cookie: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let r = client()
        .post(server.url(path))
        .header("cookie", cookie)
        .form(fields)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_pages_lead_to_sign_in_and_wrong_passwords_stay_on_the_form() {
    let server = Server::start_with(Options::default()).await;
    let r = client()
        .get(server.url("/runs?status=FAILED"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"],
        "/sign-in?next=%2Fruns%3Fstatus%3DFAILED"
    );
    let r = client()
        .post(server.url("/sign-in"))
        .form(&[
            ("email", "who@example.com"),
            ("password", "wrong password!"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"password-error\""), "{html}");
    assert!(html.contains("email or password is wrong"));
    assert!(
        html.contains("value=\"who@example.com\""),
        "the email is kept"
    );
    // `next` never leaves this server.
    create_user(&server, "a@example.com", json!({"platformRole": "auditor"})).await;
    let r = client()
        .post(server.url("/sign-in"))
        .form(&[
            ("email", "a@example.com"),
            ("password", PASSWORD),
            ("next", "//evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/flows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_edit_controls_and_is_refused_when_posting_anyway() {
    let server = Server::start_with(Options::default()).await;
    let flow = server
        .create_flow(webhook_flow("watched", json!([log_step("note", "hi")])))
        .await;
    create_user(
        &server,
        "viewer@example.com",
        json!({"projectId": "default", "role": "viewer"}),
    )
    .await;
    let cookie = console_sign_in(&server, "viewer@example.com").await;

    let (status, list) = page(&server, &cookie, "/flows").await;
    assert_eq!(status, StatusCode::OK);
    assert!(list.contains("watched"));
    assert!(list.contains("viewer@example.com"), "who am I");
    assert!(
        !list.contains("Generate handler flow"),
        "no generator for a viewer"
    );
    let (_, show) = page(&server, &cookie, &format!("/flows/{flow}")).await;
    assert!(show.contains("data-testid=\"flow-graph\""));
    for control in ["Save new version", "Delete flow", "Run test"] {
        assert!(!show.contains(control), "a viewer sees {control}");
    }
    let csrf = csrf_of(&show);
    // Posting anyway: the API refuses, and the flow stays.
    let (status, body) = post_form(
        &server,
        &cookie,
        &format!("/flows/{flow}/delete"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("editor"), "says which role it needs: {body}");
    let (status, _) = page(&server, &cookie, &format!("/flows/{flow}")).await;
    assert_eq!(status, StatusCode::OK);
    // A form without the session's CSRF token is refused by the API too.
    let (status, _) = post_form(
        &server,
        &cookie,
        &format!("/flows/{flow}/delete"),
        &[("csrf", "forged")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, streaming) = page(&server, &cookie, "/event-streaming").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!streaming.contains("New destination"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_errors_appear_next_to_their_field_and_nothing_is_saved() {
    let server = Server::start_with(Options::default()).await;
    create_user(
        &server,
        "admin@example.com",
        json!({"platformRole": "platform-admin"}),
    )
    .await;
    let cookie = console_sign_in(&server, "admin@example.com").await;
    let (_, list) = page(&server, &cookie, "/event-streaming").await;
    let csrf = csrf_of(&list);
    let (status, body) = post_form(
        &server,
        &cookie,
        "/event-streaming/new",
        &[
            ("csrf", &csrf),
            ("do", "create"),
            ("name", "siem"),
            ("url", "http://insecure.example.com/hook"),
            ("scope", "PLATFORM"),
            ("content_type", "application/json"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("id=\"url-error\""), "{body}");
    assert!(
        body.contains("value=\"siem\""),
        "the form keeps what was typed"
    );
    let destinations = server.get_json("/v1/event-destinations").await;
    assert_eq!(destinations["data"], json!([]), "nothing half-saved");

    // An invalid flow: the error names its line.
    let (_, flows) = page(&server, &cookie, "/flows").await;
    let yaml = "name: broken\ntrigger:\n  type: webhook\nsteps:\n- name: a\n  type: action\n  plugin: log@0.1.0\n  input:\n    nope: 1\n";
    let (_, body) = post_form(
        &server,
        &cookie,
        "/flows/new",
        &[("csrf", &csrf_of(&flows)), ("yaml", yaml)],
    )
    .await;
    assert!(body.contains("id=\"yaml-error\""), "{body}");
    // The same display as the flow page's editor: the line the error names, marked in a
    // listing of what was typed, and the YAML kept in the form.
    assert!(body.contains("data-testid=\"yaml-errors\""), "{body}");
    let errors = body
        .split("data-testid=\"yaml-errors\"")
        .nth(1)
        .unwrap()
        .split("</ul>")
        .next()
        .unwrap();
    assert!(errors.contains("line 9: "), "{errors}");
    assert!(
        body.contains("<span class=\"err\">   9      nope: 1</span>"),
        "{body}"
    );
    assert!(
        body.contains("    nope: 1\n</textarea>"),
        "the YAML is kept: {body}"
    );
    assert_eq!(server.get_json("/v1/flows").await["data"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_webhook_offers_the_events_of_the_destination() {
    let server = Server::start_with(Options {
        env: vec![("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "1".into())],
        ..Options::default()
    })
    .await;
    create_user(
        &server,
        "admin@example.com",
        json!({"platformRole": "platform-admin"}),
    )
    .await;
    let cookie = console_sign_in(&server, "admin@example.com").await;
    let create = |events: Value| {
        server
            .admin(Method::POST, "/v1/event-destinations")
            .json(&json!({"name": "siem", "url": "http://127.0.0.1:9/sink", "events": events}))
            .send()
    };
    let some: Value = create(json!(["flow.created", "user.signed.in"]))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let every: Value = create(json!([])).await.unwrap().json().await.unwrap();
    let types = server.get_json("/v1/event-types").await["data"]
        .as_array()
        .cloned()
        .unwrap();
    let catalog = types.len();
    let mut names: Vec<&str> = types.iter().map(|e| e["name"].as_str().unwrap()).collect();
    names.sort();
    names.dedup();
    assert!(catalog > 10);
    let options = |html: &str| -> Vec<String> {
        let select = html
            .split("data-testid=\"test-event\"")
            .nth(1)
            .expect("a Test webhook dropdown")
            .split("</select>")
            .next()
            .unwrap()
            .to_string();
        select
            .split("<option")
            .skip(1)
            .map(|o| {
                o.split('>')
                    .nth(1)
                    .unwrap()
                    .split('<')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let (_, page_some) = page(
        &server,
        &cookie,
        &format!("/event-streaming/{}", some["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(options(&page_some), ["flow.created", "user.signed.in"]);
    let (_, page_every) = page(
        &server,
        &cookie,
        &format!("/event-streaming/{}", every["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(options(&page_every).len(), names.len(), "every event");

    // New destination: the whole catalog while nothing is picked; after a round trip with
    // events picked (an invalid URL keeps the form), only those.
    let (_, list) = page(&server, &cookie, "/event-streaming").await;
    assert_eq!(options(&list).len(), catalog);
    let (status, again) = post_form(
        &server,
        &cookie,
        "/event-streaming/new",
        &[
            ("csrf", &csrf_of(&list)),
            ("do", "create"),
            ("name", "picky"),
            ("url", "http://insecure.example.com/hook"),
            ("scope", "PLATFORM"),
            ("content_type", "application/json"),
            ("event", "activepieces|flow.created"),
            ("event", "activepieces|flow.deleted"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(again.contains("id=\"url-error\""), "{again}");
    assert_eq!(
        options(&again),
        ["activepieces · flow.created", "activepieces · flow.deleted"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditors_and_project_admins_verify_the_chain_from_the_audit_page() {
    let server = Server::start_with(Options::default()).await;
    server.create_flow(webhook_flow("audited", json!([]))).await;
    create_user(
        &server,
        "auditor@example.com",
        json!({"platformRole": "auditor"}),
    )
    .await;
    create_user(
        &server,
        "padmin@example.com",
        json!({"projectId": "default", "role": "admin"}),
    )
    .await;
    let cookie = console_sign_in(&server, "auditor@example.com").await;
    let (_, audit) = page(&server, &cookie, "/audit").await;
    assert!(audit.contains("Verify the hash chain"), "{audit}");
    let (status, verified) = page(&server, &cookie, "/audit?verify=1").await;
    assert_eq!(status, StatusCode::OK);
    let chain = verified
        .split("data-testid=\"chain\">")
        .nth(1)
        .expect("the verdict")
        .split("</p>")
        .next()
        .unwrap();
    assert!(chain.starts_with("The hash chain is intact: "), "{chain}");
    assert!(chain.ends_with(" events verified."), "{chain}");

    // A project admin reads the same platform-wide chain's verdict, not its size.
    let cookie = console_sign_in(&server, "padmin@example.com").await;
    let (_, verified) = page(&server, &cookie, "/audit?verify=1").await;
    assert!(
        verified.contains("data-testid=\"chain\">The hash chain is intact.</p>"),
        "{verified}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_journey_in_chromium() {
    crate::browser::available().unwrap_or_else(|why| panic!("{why}"));
    let receiver = crate::receiver::Receiver::start().await;
    let server = Server::start_with(Options {
        env: vec![("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "1".into())],
        ..Options::default()
    })
    .await;
    create_user(
        &server,
        "admin@example.com",
        json!({"platformRole": "platform-admin"}),
    )
    .await;
    create_user(
        &server,
        "viewer@example.com",
        json!({"projectId": "default", "role": "viewer"}),
    )
    .await;
    let base = server.base.clone();
    let env = [
        ("EMAIL", "admin@example.com".to_string()),
        ("PASSWORD", PASSWORD.to_string()),
        ("VIEWER_EMAIL", "viewer@example.com".to_string()),
        ("RECEIVER_URL", format!("{}/hook", receiver.base)),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.clone())).collect();
        crate::browser::run_journey("journey.mjs", &base, &env)
    })
    .await
    .unwrap()
    .unwrap_or_else(|log| panic!("the journey failed:\n{log}"));
    assert!(out.contains("ok: journey passed"), "{out}");

    // The receiver verifies what it got: every request is signed with the secret the console
    // showed, in Standard Webhooks' scheme.
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("signing-secret "))
        .expect("the journey prints the signing secret")
        .trim()
        .to_string();
    let seen = receiver.to("/hook");
    assert!(seen.len() >= 2, "a test send and a delivery: {seen:?}");
    for request in &seen {
        let id = &request.headers["webhook-id"];
        let ts: i64 = request.headers["webhook-timestamp"].parse().unwrap();
        let expected = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            hookflow::trigger::verify::sign(&secret, id, ts, request.body.as_bytes()).unwrap(),
        );
        let signatures = &request.headers["webhook-signature"];
        assert!(
            signatures.split(' ').any(|s| s == format!("v1,{expected}")),
            "{signatures} does not carry v1,{expected}"
        );
    }
    let flow_created: Vec<_> = seen
        .iter()
        .filter(|r| r.json()["action"] == "flow.created")
        .collect();
    assert!(
        !flow_created.is_empty(),
        "the flow.created delivery reached the receiver"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_link_opens_a_page_that_makes_the_account() {
    let server = Server::start_with(Options::default()).await;
    let invitation: Value = server
        .admin(Method::POST, "/v1/projects/default/invitations")
        .json(&json!({"email": "newcomer@example.com", "role": "editor"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let link = invitation["acceptUrl"].as_str().unwrap();
    assert!(link.starts_with("/accept-invitation?token=hfi_"), "{link}");
    let r = client().get(server.url(link)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token = invitation["token"].as_str().unwrap();
    let short = client()
        .post(server.url("/accept-invitation"))
        .form(&[("token", token), ("password", "short")])
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);
    assert!(
        short
            .text()
            .await
            .unwrap()
            .contains("id=\"password-error\"")
    );
    let ok = client()
        .post(server.url("/accept-invitation"))
        .form(&[
            ("token", token),
            ("password", PASSWORD),
            ("name", "New Comer"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let cookie = console_sign_in(&server, "newcomer@example.com").await;
    let (_, flows) = page(&server, &cookie, "/flows").await;
    assert!(
        flows.contains("Generate handler flow"),
        "an editor may generate"
    );
}

/// Regression: the console's generate button made a live flow whose webhook credential nobody
/// ever saw (the API shows it once; the console redirected and lost it). The page after
/// generating shows it, it opens the webhook, and the flow's page never shows it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_generated_in_the_console_shows_its_webhook_credential_once() {
    let server = Server::start_with(Options::default()).await;
    create_user(
        &server,
        "admin@example.com",
        json!({"platformRole": "platform-admin"}),
    )
    .await;
    let cookie = console_sign_in(&server, "admin@example.com").await;
    let (_, flows) = page(&server, &cookie, "/flows").await;
    let (status, body) = post_form(
        &server,
        &cookie,
        "/flows/generate",
        &[
            ("csrf", &csrf_of(&flows)),
            ("event", "gitlab|repository_git_operation"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("data-testid=\"webhook-credential-card\""),
        "{body}"
    );
    let input = |testid: &str| {
        let marker = format!("data-testid=\"{testid}\"");
        let before = body.split(&marker).next().unwrap();
        let at = before.rfind("value=\"").expect("an input's value") + 7;
        before[at..].split('"').next().unwrap().to_string()
    };
    let header = input("webhook-credential-header");
    let credential = input("webhook-credential");
    let url = input("webhook-url");
    assert_eq!(header, "X-Gitlab-Event-Streaming-Token");
    assert!(credential.starts_with("hft_"), "{credential}");
    let flow_id = url.rsplit('/').next().unwrap().to_string();
    assert!(url.ends_with(&format!("/v1/webhooks/{flow_id}")), "{url}");

    // The credential shown is the one the webhook takes.
    let event = json!({"event_name": "repository_git_operation", "id": 1});
    let refused = client()
        .post(server.url(&format!("/v1/webhooks/{flow_id}")))
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let accepted = client()
        .post(server.url(&format!("/v1/webhooks/{flow_id}")))
        .header(header.as_str(), credential.as_str())
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);

    // Shown once: the flow's own page does not show it again.
    let (status, again) = page(&server, &cookie, &format!("/flows/{flow_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!again.contains(&credential));
    assert!(!again.contains("webhook-credential-card"));
}
