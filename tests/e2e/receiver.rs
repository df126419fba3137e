//! A local HTTP stand-in for the services plugins talk to (Slack, Teams, Splunk, Datadog, Loki,
//! any webhook). It records every request and answers per path with a canned response.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One request the receiver saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Seen {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("request body is not JSON ({e}): {}", self.body))
    }
}

/// Status, content type, body and extra headers of a canned response.
type Answer = (u16, String, String, Vec<(String, String)>);

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    answers: Mutex<HashMap<String, Answer>>,
    /// How long requests to a path wait before they are answered.
    delays: Mutex<HashMap<String, std::time::Duration>>,
    /// Requests answered so far, per path (a request is seen when it arrives).
    answered: Mutex<HashMap<String, usize>>,
}

/// A running receiver on 127.0.0.1:0.
pub struct Receiver {
    pub base: String,
    shared: Arc<Shared>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(record).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { base, shared }
    }

    /// Answer requests to `path` with `status`, `content_type` and `body`.
    pub fn answer(&self, path: &str, status: u16, content_type: &str, body: &str) {
        self.answer_with_headers(path, status, content_type, body, &[]);
    }

    /// Like [`Receiver::answer`], with extra response headers (`Retry-After`, `Location`).
    pub fn answer_with_headers(
        &self,
        path: &str,
        status: u16,
        content_type: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.shared.answers.lock().unwrap().insert(
            path.to_string(),
            (status, content_type.to_string(), body.to_string(), headers),
        );
    }

    /// Answer requests to `path` only after `delay` (they are recorded when they arrive).
    pub fn delay(&self, path: &str, delay: std::time::Duration) {
        self.shared
            .delays
            .lock()
            .unwrap()
            .insert(path.to_string(), delay);
    }

    /// How many requests to `path` have been answered.
    pub fn answered(&self, path: &str) -> usize {
        self.shared
            .answered
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Requests to `path` so far.
    pub fn to(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The only request to `path`.
    pub fn one(&self, path: &str) -> Seen {
        let matching: Vec<Seen> = self.seen().into_iter().filter(|s| s.path == path).collect();
        assert_eq!(matching.len(), 1, "requests to {path}: {matching:?}");
        matching.into_iter().next().unwrap()
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let headers = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    shared.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: path.clone(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let delay = shared.delays.lock().unwrap().get(&path).copied();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    *shared
        .answered
        .lock()
        .unwrap()
        .entry(path.clone())
        .or_default() += 1;
    let answer = shared.answers.lock().unwrap().get(&path).cloned();
    match answer {
        Some((status, content_type, body, headers)) => {
            let mut response = (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", content_type)],
                body,
            )
                .into_response();
            for (k, v) in headers {
                response.headers_mut().insert(
                    axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            response
        }
        None => (
            StatusCode::OK,
            [("content-type", "application/json".to_string())],
            "{\"ok\":true}".to_string(),
        )
            .into_response(),
    }
}
