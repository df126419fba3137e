//! People, sessions, API keys and the route table: sign-in with a cookie and CSRF, throttling,
//! expiry, keys shown once and scoped to their project, revocation seen by another process, and
//! a walk over every declared `/v1` route with every role and a foreign project.

use crate::common::*;
use crate::common::{PASSWORD, create_user};
use hookflow::access::{Need, Target};
use hookflow::store::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

async fn create_project(server: &Server, name: &str) -> String {
    let response = server
        .admin(Method::POST, "/v1/projects")
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

/// A signed-in console session: the cookie pair and the CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

async fn sign_in(server: &Server, email: &str, password: &str) -> reqwest::Response {
    server
        .client
        .post(server.url("/v1/auth/sign-in"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn session(server: &Server, email: &str) -> Session {
    let response = sign_in(server, email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let set = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    Session {
        cookie: set.split(';').next().unwrap().to_string(),
        csrf: body["csrfToken"].as_str().unwrap().to_string(),
    }
}

fn with_session(
    server: &Server,
    method: Method,
    path: &str,
    session: &Session,
) -> reqwest::RequestBuilder {
    server
        .client
        .request(method, server.url(path))
        .header("cookie", &session.cookie)
}

/// The status a request is answered with.
async fn answer(request: reqwest::RequestBuilder) -> StatusCode {
    request.send().await.unwrap().status()
}

fn keyed(server: &Server, method: Method, path: &str, key: &str) -> reqwest::RequestBuilder {
    server
        .client
        .request(method, server.url(path))
        .bearer_auth(key)
}

async fn create_key(server: &Server, path: &str, role: &str) -> (String, String) {
    let response = server
        .admin(Method::POST, path)
        .json(&json!({"name": format!("{role} key"), "role": role}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "create key: {body}");
    (
        body["id"].as_str().unwrap().to_string(),
        body["key"].as_str().unwrap().to_string(),
    )
}

async fn audit(server: &Server, action: &str) -> Vec<Value> {
    let page = server
        .get_json(&format!("/v1/audit-events?action={action}&limit=100"))
        .await;
    page["data"].as_array().cloned().unwrap_or_default()
}

async fn flow_in(server: &Server, project: &str, name: &str) -> String {
    let response = server
        .admin(Method::POST, &format!("/v1/flows?projectId={project}"))
        .json(&webhook_flow(name, json!([log_step("note", "hi")])))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "create flow: {body}");
    assert_eq!(body["projectId"], project);
    body["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_a_strict_cookie_csrf_guards_changes_and_sign_out_ends_it() {
    let server = Server::start_with(Options::default()).await;
    create_user(
        &server,
        "Editor@Example.com",
        json!({"projectId": "default", "role": "editor"}),
    )
    .await;

    // Wrong password and unknown email: the same answer, problem+json, nothing about the account.
    let wrong = sign_in(&server, "editor@example.com", "not the password at all").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.headers()["content-type"], "application/problem+json");
    let wrong: Value = wrong.json().await.unwrap();
    let unknown: Value = sign_in(&server, "nobody@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(wrong["detail"], unknown["detail"]);
    assert_eq!(wrong["status"], unknown["status"]);

    let response = sign_in(&server, "EDITOR@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("hookflow_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(!cookie.contains("Secure"), "plain http: not Secure");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], "editor@example.com");
    let session = Session {
        cookie: cookie.split(';').next().unwrap().to_string(),
        csrf: body["csrfToken"].as_str().unwrap().to_string(),
    };

    let me: Value = with_session(&server, Method::GET, "/v1/auth/me", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["via"], "session");
    assert_eq!(me["projects"][0]["role"], "editor");

    // A state change by cookie needs the CSRF token.
    let flow = webhook_flow("by cookie", json!([]));
    let refused = with_session(&server, Method::POST, "/v1/flows", &session)
        .json(&flow)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        answer(
            with_session(&server, Method::POST, "/v1/flows", &session)
                .header("x-csrf-token", "forged")
                .json(&flow)
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        answer(
            with_session(&server, Method::POST, "/v1/flows", &session)
                .header("x-csrf-token", &session.csrf)
                .json(&flow)
        )
        .await,
        StatusCode::CREATED
    );

    // An editor is not a project admin: secrets' values and the audit log are not theirs.
    assert_eq!(
        answer(
            with_session(&server, Method::PUT, "/v1/secrets/TOKEN", &session)
                .header("x-csrf-token", &session.csrf)
                .json(&json!({"value": "s3cret"}))
        )
        .await,
        StatusCode::FORBIDDEN
    );

    let out = with_session(&server, Method::POST, "/v1/auth/sign-out", &session)
        .header("x-csrf-token", &session.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        answer(with_session(&server, Method::GET, "/v1/auth/me", &session)).await,
        StatusCode::UNAUTHORIZED
    );

    // Every attempt is audited with its outcome, the email tried and the client address; the
    // flow records who made it.
    let attempts = audit(&server, "user.signed.in").await;
    let password_attempts: Vec<&Value> = attempts
        .iter()
        .filter(|e| e["data"]["user"]["method"] == "password")
        .collect();
    assert_eq!(password_attempts.len(), 3, "{attempts:?}");
    assert!(password_attempts.iter().all(|e| e["ip"] == "127.0.0.1"));
    let failed: Vec<_> = password_attempts
        .iter()
        .filter(|e| e["data"]["success"] == false)
        .collect();
    assert_eq!(failed.len(), 2);
    assert!(
        failed
            .iter()
            .any(|e| e["userEmail"] == "nobody@example.com")
    );
    let ok = password_attempts
        .iter()
        .find(|e| e["data"]["success"] == true)
        .unwrap();
    assert_eq!(ok["userEmail"], "editor@example.com");
    assert!(ok["summary"].as_str().unwrap().contains("signed in"));
    let created = audit(&server, "flow.created").await;
    assert_eq!(created[0]["userEmail"], "editor@example.com");
    assert_eq!(audit(&server, "user.signed.out").await.len(), 1);
    let everything = server
        .get_json("/v1/audit-events?limit=500")
        .await
        .to_string();
    assert!(!everything.contains("argon2") && !everything.contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_sign_ins_are_throttled_with_retry_after() {
    let server = Server::start_with(Options::default()).await;
    create_user(&server, "target@example.com", json!({})).await;
    for _ in 0..5 {
        let r = sign_in(&server, "target@example.com", "wrong password guess").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // Even the right password waits now: the throttle does not tell guesses apart.
    let r = sign_in(&server, "target@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=15 * 60).contains(&wait), "Retry-After {wait}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], 429);
    let throttled = audit(&server, "user.signed.in").await;
    assert!(
        throttled
            .iter()
            .any(|e| e["data"]["reason"] == "throttled" && e["data"]["success"] == false)
    );
}

/// The regression for guesses racing past the throttle: the limit is checked and the attempt
/// counted in one step before the password is verified, so of many concurrent wrong guesses
/// only the limit get an answer from the password check; the rest wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_sign_ins_get_no_more_than_the_limit_past_the_throttle() {
    let server = Server::start_with(Options::default()).await;
    create_user(&server, "raced@example.com", json!({})).await;
    let guesses: Vec<_> = (0..12)
        .map(|i| {
            let request = server.client.post(server.url("/v1/auth/sign-in")).json(
                &json!({"email": "raced@example.com", "password": format!("guess number {i}")}),
            );
            tokio::spawn(async move { request.send().await.unwrap() })
        })
        .collect();
    let (mut checked, mut throttled) = (0, 0);
    for guess in guesses {
        let response = guess.await.unwrap();
        match response.status() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let wait: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=15 * 60).contains(&wait), "Retry-After {wait}");
                throttled += 1;
            }
            other => panic!("unexpected answer {other}"),
        }
    }
    assert_eq!(
        (checked, throttled),
        (5, 7),
        "5 guesses per email are checked, however many race"
    );
    // The right password waits too, and a later success is not blocked by the failed race
    // elsewhere: another email from the same address still gets checked.
    let r = sign_in(&server, "raced@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    create_user(&server, "other@example.com", json!({})).await;
    assert_eq!(
        sign_in(&server, "other@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_emails_from_one_address_hit_the_per_address_limit() {
    // The proxy on 127.0.0.1 is trusted, so each test "address" is its X-Forwarded-For.
    let server = Server::start_with(Options {
        env: vec![("HOOKFLOW_TRUSTED_PROXIES", "127.0.0.1".into())],
        ..Options::default()
    })
    .await;
    let from = |ip: &str, email: &str| {
        server
            .client
            .post(server.url("/v1/auth/sign-in"))
            .header("x-forwarded-for", ip)
            .json(&json!({"email": email, "password": "a guess of a password"}))
            .send()
    };
    // 20 failures per address, each email well below its own limit of 5.
    for i in 0..20 {
        let r = from("203.0.113.7", &format!("sprayed-{i}@example.com"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = from("203.0.113.7", "fresh@example.com").await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=15 * 60).contains(&wait), "Retry-After {wait}");
    // Another address is not held back by that one's failures.
    let r = from("203.0.113.8", "fresh@example.com").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let attempts = audit(&server, "user.signed.in").await;
    assert!(
        attempts.iter().any(|e| e["ip"] == "203.0.113.7"
            && e["userEmail"] == "fresh@example.com"
            && e["data"]["reason"] == "throttled"),
        "the throttled attempt is audited with the forwarded address"
    );
}

/// The `Set-Cookie` of a sign-in with `forwarded_proto` as `X-Forwarded-Proto`.
async fn cookie_via_proxy(server: &Server, email: &str, forwarded_proto: Option<&str>) -> String {
    let mut request = server
        .client
        .post(server.url("/v1/auth/sign-in"))
        .header("x-forwarded-for", "198.51.100.20")
        .json(&json!({"email": email, "password": PASSWORD}));
    if let Some(proto) = forwarded_proto {
        request = request.header("x-forwarded-proto", proto);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_is_secure_when_a_trusted_proxy_says_https_and_only_then() {
    let behind_proxy = Server::start_with(Options {
        env: vec![("HOOKFLOW_TRUSTED_PROXIES", "127.0.0.1".into())],
        ..Options::default()
    })
    .await;
    create_user(&behind_proxy, "proxied@example.com", json!({})).await;
    let secure = cookie_via_proxy(&behind_proxy, "proxied@example.com", Some("https")).await;
    assert!(secure.contains("; Secure"), "{secure}");
    assert!(secure.contains("HttpOnly") && secure.contains("SameSite=Strict"));
    let plain = cookie_via_proxy(&behind_proxy, "proxied@example.com", Some("http")).await;
    assert!(!plain.contains("Secure"), "the proxy said http: {plain}");
    let plain = cookie_via_proxy(&behind_proxy, "proxied@example.com", None).await;
    assert!(!plain.contains("Secure"), "{plain}");
    let ips: Vec<Value> = audit(&behind_proxy, "user.signed.in")
        .await
        .iter()
        .filter(|e| e["data"]["user"]["method"] == "password")
        .map(|e| e["ip"].clone())
        .collect();
    assert_eq!(ips, vec![json!("198.51.100.20"); 3], "the forwarded client");

    // Without trusted proxies, anyone could send the headers: they are ignored.
    let direct = Server::start_with(Options::default()).await;
    create_user(&direct, "direct@example.com", json!({})).await;
    let cookie = cookie_via_proxy(&direct, "direct@example.com", Some("https")).await;
    assert!(!cookie.contains("Secure"), "untrusted header: {cookie}");
    let attempts = audit(&direct, "user.signed.in").await;
    assert!(
        attempts
            .iter()
            .filter(|e| e["data"]["user"]["method"] == "password")
            .all(|e| e["ip"] == "127.0.0.1"),
        "{attempts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_at_their_absolute_expiry_however_active() {
    let server = Server::start_with(Options {
        env: vec![("HOOKFLOW_SESSION_MAX_SECS", "2".into())],
        ..Options::default()
    })
    .await;
    create_user(
        &server,
        "busy@example.com",
        json!({"projectId": "default", "role": "viewer"}),
    )
    .await;
    let started = std::time::Instant::now();
    let response = sign_in(&server, "busy@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let set = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(set.contains("Max-Age=2"), "{set}");
    let body: Value = response.json().await.unwrap();
    assert!(body["expiresAt"].is_string(), "{body}");
    let session = Session {
        cookie: set.split(';').next().unwrap().to_string(),
        csrf: body["csrfToken"].as_str().unwrap().to_string(),
    };
    // Used all along (the idle limit is 12 hours)...
    while started.elapsed() < Duration::from_millis(1200) {
        assert_eq!(
            answer(with_session(&server, Method::GET, "/v1/auth/me", &session)).await,
            StatusCode::OK
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ...and still over after its 2 seconds.
    tokio::time::sleep(Duration::from_millis(2600).saturating_sub(started.elapsed())).await;
    assert_eq!(
        answer(with_session(&server, Method::GET, "/v1/auth/me", &session)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        answer(
            with_session(&server, Method::POST, "/v1/flows", &session)
                .header("x-csrf-token", &session.csrf)
                .json(&webhook_flow("late", json!([])))
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_expire() {
    let server = Server::start_with(Options {
        env: vec![("HOOKFLOW_SESSION_IDLE_SECS", "1".into())],
        ..Options::default()
    })
    .await;
    create_user(
        &server,
        "idle@example.com",
        json!({"platformRole": "auditor"}),
    )
    .await;
    let session = session(&server, "idle@example.com").await;
    let me = with_session(&server, Method::GET, "/v1/auth/me", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        answer(with_session(&server, Method::GET, "/v1/auth/me", &session)).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_keys_are_shown_once_see_only_their_project_and_can_be_revoked() {
    let server = Server::start_with(Options::default()).await;
    let team = create_project(&server, "Team").await;
    let mine = flow_in(&server, &team, "team flow").await;
    let foreign = flow_in(&server, "default", "default flow").await;
    let (key_id, key) =
        create_key(&server, &format!("/v1/projects/{team}/api-keys"), "viewer").await;
    assert!(key.starts_with("hfk_"));

    // Listed by prefix only; the key itself never again.
    let keys = server
        .get_json(&format!("/v1/projects/{team}/api-keys"))
        .await;
    assert!(!keys.to_string().contains(&key));
    assert_eq!(keys["data"][0]["prefix"], key[..12]);
    assert!(keys["data"][0]["lastUsedAt"].is_null());

    let flows: Value = keyed(&server, Method::GET, "/v1/flows", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = flows["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [mine.as_str()]);
    assert_eq!(
        answer(keyed(
            &server,
            Method::GET,
            &format!("/v1/flows/{foreign}"),
            &key
        ))
        .await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        answer(keyed(
            &server,
            Method::DELETE,
            &format!("/v1/flows/{mine}"),
            &key
        ))
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        answer(keyed(
            &server,
            Method::GET,
            &format!("/v1/flows/{mine}"),
            &key
        ))
        .await,
        StatusCode::OK
    );
    let keys = server
        .get_json(&format!("/v1/projects/{team}/api-keys"))
        .await;
    assert!(keys["data"][0]["lastUsedAt"].is_string(), "{keys}");

    let revoked = server
        .admin(
            Method::DELETE,
            &format!("/v1/projects/{team}/api-keys/{key_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let after = keyed(&server, Method::GET, "/v1/flows", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(after.headers()["content-type"], "application/problem+json");
    assert_eq!(
        answer(
            server
                .client
                .get(server.url("/v1/flows"))
                .header("authorization", "Basic Zm9vOmJhcg==")
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(audit(&server, "api.key.revoked").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_work_once_and_make_a_member() {
    let server = Server::start_with(Options::default()).await;
    let team = create_project(&server, "Team").await;
    let response = server
        .admin(Method::POST, &format!("/v1/projects/{team}/invitations"))
        .json(&json!({"email": "new@example.com", "role": "operator"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let invitation: Value = response.json().await.unwrap();
    let token = invitation["token"].as_str().unwrap().to_string();
    let accept = |password: &'static str| {
        server
            .client
            .post(server.url("/v1/auth/accept-invitation"))
            .json(&json!({"token": token, "password": password, "name": "New Person"}))
            .send()
    };
    assert_eq!(
        accept("short").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(accept(PASSWORD).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        accept(PASSWORD).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let session = session(&server, "new@example.com").await;
    let me: Value = with_session(&server, Method::GET, "/v1/auth/me", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["projects"], json!([{"id": team, "role": "operator"}]));
    let added = audit(&server, "project.member.added").await;
    assert_eq!(added[0]["data"]["projectRole"]["name"], "operator");
    assert!(
        !server
            .get_json(&format!("/v1/projects/{team}/invitations"))
            .await
            .to_string()
            .contains(&token)
    );
}

/// A credential of the walk: the guard's three kinds (the admin token, an API key, a console
/// session with its CSRF token), or none.
struct Credential {
    name: String,
    auth: Auth,
    /// The role it holds in project A (project keys) or platform-wide.
    role: Option<Role>,
    platform: bool,
}

/// What the declared need says a credential should get for a request whose target lies in
/// `project` (`Some("A")`, `Some("B")`, or `None` for a platform-wide destination).
fn expected(need: Need, who: &Credential, project: Option<&str>) -> Expect {
    if matches!(who.auth, Auth::None) {
        return Expect::Status(401);
    }
    let admin = who.platform && who.role == Some(Role::PlatformAdmin);
    let auditor = who.platform && who.role == Some(Role::Auditor);
    match need {
        Need::Public => Expect::Pass,
        Need::SignedIn => Expect::Pass,
        Need::Platform if admin => Expect::Pass,
        Need::Platform => Expect::Status(403),
        Need::AuditLog if admin || auditor || who.role == Some(Role::Admin) => Expect::Pass,
        Need::AuditLog => Expect::Status(403),
        Need::Project(_, _) if admin => Expect::Pass,
        Need::Project(_, Target::Visible) => Expect::Pass,
        Need::Project(_, _) if auditor => Expect::Status(404),
        Need::Project(needed, _) => match project {
            Some("A") => {
                let held = who.role.unwrap().project_rank();
                if held >= needed.project_rank() {
                    Expect::Pass
                } else {
                    Expect::Status(403)
                }
            }
            _ => Expect::Status(404),
        },
    }
}

enum Auth {
    None,
    /// The admin token or an `hfk_` key.
    Bearer(String),
    /// A person's console session: cookie and CSRF token on every request.
    Session(Session),
}

impl Credential {
    /// `request` carrying this credential.
    fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Session(session) => request
                .header("cookie", &session.cookie)
                .header("x-csrf-token", &session.csrf),
        }
    }
}

#[derive(Debug, PartialEq)]
enum Expect {
    Pass,
    Status(u16),
}

/// The fixtures of one project: a flow, a run and a PROJECT destination.
struct Fixtures {
    project: String,
    flow: String,
    run: String,
    destination: String,
}

async fn destination(server: &Server, query: &str, body: Value) -> String {
    let response = server
        .admin(Method::POST, &format!("/v1/event-destinations{query}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "destination: {body}");
    body["id"].as_str().unwrap().to_string()
}

async fn fixtures(server: &Server, name: &str) -> Fixtures {
    let project = create_project(server, name).await;
    let flow = flow_in(server, &project, &format!("{name} flow")).await;
    let run = server.trigger(&flow, &json!({"n": 1})).await;
    let destination = destination(
        server,
        &format!("?projectId={project}"),
        json!({"name": format!("{name} sink"), "url": "http://127.0.0.1:9/sink"}),
    )
    .await;
    Fixtures {
        project,
        flow,
        run,
        destination,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_role_as_declared() {
    let server = Server::start_with(Options {
        env: vec![("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "1".into())],
        ..Options::default()
    })
    .await;
    let a = fixtures(&server, "A").await;
    let b = fixtures(&server, "B").await;
    let platform_destination = destination(
        &server,
        "",
        json!({"name": "platform sink", "url": "http://127.0.0.1:9/all", "scope": "PLATFORM"}),
    )
    .await;

    let mut credentials = vec![
        Credential {
            name: "anonymous".into(),
            auth: Auth::None,
            role: None,
            platform: false,
        },
        Credential {
            name: "the admin token".into(),
            auth: Auth::Bearer(ADMIN_TOKEN.into()),
            role: Some(Role::PlatformAdmin),
            platform: true,
        },
    ];
    for role in [Role::Viewer, Role::Operator, Role::Editor, Role::Admin] {
        let path = format!("/v1/projects/{}/api-keys", a.project);
        let (_, key) = create_key(&server, &path, role.as_str()).await;
        credentials.push(Credential {
            name: format!("{role} of A"),
            auth: Auth::Bearer(key),
            role: Some(role),
            platform: false,
        });
    }
    for role in [Role::Auditor, Role::PlatformAdmin] {
        let (_, key) = create_key(&server, "/v1/platform/api-keys", role.as_str()).await;
        credentials.push(Credential {
            name: format!("platform {role}"),
            auth: Auth::Bearer(key),
            role: Some(role),
            platform: true,
        });
    }
    // People signed in to the console: a project member and a platform auditor.
    for (email, extra, role, platform) in [
        (
            "editor-of-a@example.com",
            json!({"projectId": a.project, "role": "editor"}),
            Role::Editor,
            false,
        ),
        (
            "auditor@example.com",
            json!({"platformRole": "auditor"}),
            Role::Auditor,
            true,
        ),
    ] {
        create_user(&server, email, extra).await;
        credentials.push(Credential {
            name: format!("{email}'s session"),
            auth: Auth::Session(session(&server, email).await),
            role: Some(role),
            platform,
        });
    }

    let table = hookflow::api::route_table();
    assert!(
        table.len() >= 40,
        "the walk covers every route: {}",
        table.len()
    );
    let mut checked = 0;
    for (method, path, need) in &table {
        if *need == Need::Public {
            continue;
        }
        // The projects to try a route against, with how to fill in its path and query.
        let targets: Vec<(Option<&str>, String)> = match need {
            Need::Project(_, Target::Flow) => vec![
                (Some("A"), path.replace("{id}", &a.flow)),
                (Some("B"), path.replace("{id}", &b.flow)),
            ],
            Need::Project(_, Target::Run) => vec![
                (Some("A"), path.replace("{id}", &a.run)),
                (Some("B"), path.replace("{id}", &b.run)),
            ],
            Need::Project(_, Target::Destination) => vec![
                (Some("A"), path.replace("{id}", &a.destination)),
                (Some("B"), path.replace("{id}", &b.destination)),
                (None, path.replace("{id}", &platform_destination)),
            ],
            Need::Project(_, Target::PathProject) => vec![
                (Some("A"), path.replace("{id}", &a.project)),
                (Some("B"), path.replace("{id}", &b.project)),
            ],
            Need::Project(_, Target::QueryProject | Target::QueryOrPlatform) => vec![
                (Some("A"), format!("{path}?projectId={}", a.project)),
                (Some("B"), format!("{path}?projectId={}", b.project)),
            ],
            _ => vec![(Some("A"), path.clone())],
        };
        for (project, concrete) in targets {
            // Other parameters name records that do not exist: a pass then ends in the
            // handler (400 for the empty body, 404 for the missing record), never in 401/403.
            let concrete = concrete
                .replace("{name}", "NOPE")
                .replace("{user_id}", "nope")
                .replace("{key_id}", "nope")
                .replace("{invitation_id}", "nope")
                .replace("{version}", "1")
                .replace("{id}", "nope");
            assert!(!concrete.contains('{'), "unfilled parameter in {concrete}");
            for who in &credentials {
                let want = expected(*need, who, project);
                // A DELETE that would pass is tried on a copy, so the walk keeps its fixtures.
                let concrete = if want == Expect::Pass && *method == Method::DELETE {
                    match need {
                        Need::Project(_, Target::Flow) => {
                            path.replace("{id}", &flow_in(&server, &a.project, "copy").await)
                        }
                        Need::Project(_, Target::Destination) => path.replace(
                            "{id}",
                            &destination(
                                &server,
                                &format!("?projectId={}", a.project),
                                json!({"name": "copy", "url": "http://127.0.0.1:9/copy"}),
                            )
                            .await,
                        ),
                        _ => concrete.clone(),
                    }
                } else {
                    concrete.clone()
                };
                // Signing out would end the walk's session: that one is tried on a fresh one.
                let fresh;
                let who_now = match &who.auth {
                    Auth::Session(_) if path == "/v1/auth/sign-out" => {
                        let email = who.name.trim_end_matches("'s session");
                        fresh = Credential {
                            name: who.name.clone(),
                            auth: Auth::Session(session(&server, email).await),
                            role: who.role,
                            platform: who.platform,
                        };
                        &fresh
                    }
                    _ => who,
                };
                let request = server.client.request(method.clone(), server.url(&concrete));
                let response = who_now.apply(request).send().await.unwrap();
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                let context = format!(
                    "{method} {concrete} ({path}, {need:?}) as {} → {status} {body}",
                    who.name
                );
                match want {
                    Expect::Status(code) => assert_eq!(status, code, "{context}"),
                    Expect::Pass => {
                        assert!(status != 401 && status != 403, "{context}");
                        let names_a_missing_record = concrete.contains("NOPE")
                            || concrete.contains("nope")
                            || concrete.ends_with("/members") && *method == Method::POST;
                        if *method == Method::GET && !names_a_missing_record {
                            assert_ne!(status, 404, "{context}");
                        }
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 300, "checked {checked} requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_sign_out_are_seen_by_another_process() {
    // Two processes on one PostgreSQL database, whatever HOOKFLOW_TEST_DATABASE says.
    let database = TestDatabase::create();
    let env = || vec![("HOOKFLOW_DATABASE_URL", database.url.clone())];
    let first = Server::start_with(Options {
        env: env(),
        ..Options::default()
    })
    .await;
    let second = Server::start_with(Options {
        env: env(),
        ..Options::default()
    })
    .await;
    let (key_id, key) = create_key(&first, "/v1/projects/default/api-keys", "viewer").await;
    assert_eq!(
        answer(keyed(&second, Method::GET, "/v1/flows", &key)).await,
        StatusCode::OK
    );
    assert_eq!(
        answer(first.admin(
            Method::DELETE,
            &format!("/v1/projects/default/api-keys/{key_id}"),
        ))
        .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        answer(keyed(&second, Method::GET, "/v1/flows", &key)).await,
        StatusCode::UNAUTHORIZED
    );

    create_user(
        &first,
        "ops@example.com",
        json!({"projectId": "default", "role": "operator"}),
    )
    .await;
    let session = session(&first, "ops@example.com").await;
    assert_eq!(
        answer(with_session(&second, Method::GET, "/v1/auth/me", &session)).await,
        StatusCode::OK,
        "the session is shared"
    );
    assert_eq!(
        answer(
            with_session(&first, Method::POST, "/v1/auth/sign-out", &session)
                .header("x-csrf-token", &session.csrf)
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        answer(with_session(&second, Method::GET, "/v1/auth/me", &session)).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_destinations_receive_only_their_projects_events() {
    let receiver = crate::receiver::Receiver::start().await;
    let server = Server::start_with(Options {
        env: vec![("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "1".into())],
        ..Options::default()
    })
    .await;
    let team = create_project(&server, "Team").await;
    let (_, admin_key) =
        create_key(&server, &format!("/v1/projects/{team}/api-keys"), "admin").await;
    // A project admin creates a destination: it is PROJECT-scoped to their project.
    let response = keyed(&server, Method::POST, "/v1/event-destinations", &admin_key)
        .json(&json!({"name": "team", "url": format!("{}/team", receiver.base), "events": ["flow.created"]}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let created: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["scope"], "PROJECT");
    assert_eq!(created["projectId"], team);
    // ...and may not create a platform-wide one.
    assert_eq!(answer(keyed(&server, Method::POST, "/v1/event-destinations", &admin_key)
        .json(&json!({"name": "all", "url": format!("{}/all", receiver.base), "scope": "PLATFORM"}))).await, StatusCode::FORBIDDEN);

    flow_in(&server, "default", "not theirs").await;
    flow_in(&server, &team, "theirs").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while receiver.to("/team").is_empty() {
        assert!(std::time::Instant::now() < deadline, "no delivery in 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give a wrongly routed second event time to arrive before counting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let deliveries = receiver.to("/team");
    assert_eq!(deliveries.len(), 1, "only the team's flow.created");
    let event = deliveries[0].json();
    assert_eq!(event["projectId"], team);
    assert_eq!(event["data"]["flow"]["displayName"], "theirs");
}

/// Runs the CLI against `server` with `stdin`; returns (exit code, stdout, stderr).
fn cli(server: &Server, args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(args)
        .env("HOOKFLOW_URL", &server.base)
        .env("HOOKFLOW_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run hookflow");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_the_first_person_and_keys_without_passwords_on_argv() {
    let server = Server::start_with(Options::default()).await;
    let args = [
        "user",
        "create",
        "--email",
        "first@example.com",
        "--role",
        "platform-admin",
    ];
    let (code, out, err) = cli(&server, &args, &format!("{PASSWORD}\n"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("first@example.com"), "{out}");
    let me: Value = sign_in(&server, "first@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["platformRole"], "platform-admin");

    let (code, _, err) = cli(&server, &args, &format!("{PASSWORD}\n"));
    assert_eq!(code, 2, "a taken email is the user's to fix: {err}");
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = cli(
        &server,
        &[
            "user",
            "create",
            "--email",
            "b@example.com",
            "--role",
            "editor",
        ],
        "x\n",
    );
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    let (code, _, err) = cli(
        &server,
        &["user", "create", "--email", "c@example.com"],
        "short\n",
    );
    assert_eq!(code, 2);
    assert!(err.contains("password"), "{err}");

    let (code, key, err) = cli(
        &server,
        &["api-key", "create", "--name", "siem", "--role", "auditor"],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let key = key.trim();
    assert!(key.starts_with("hfk_"), "{key}");
    assert_eq!(
        answer(keyed(&server, Method::GET, "/v1/audit-events", key)).await,
        StatusCode::OK
    );
    let (code, list, _) = cli(&server, &["api-key", "list"], "");
    assert_eq!(code, 0);
    assert!(list.contains(&key[..12]) && !list.contains(key), "{list}");
}
