//! The API contract: `GET /v1/openapi.json` is public, covers every route of the table with its
//! method, and every `$ref` in it resolves; errors the framework raises before a handler runs
//! are problem+json as the document says (found by the API fuzzer, `tools/api-fuzz/run.sh`).

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("$ref", Value::String(target)) => out.push(target),
                    _ => refs(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|child| refs(child, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_contract_is_public_and_covers_every_route() {
    let server = Server::start().await;
    let r = server
        .client
        .get(server.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");

    let table = hookflow::api::route_table();
    for (method, path, _) in &table {
        let operation = &doc["paths"][path][method.as_str().to_ascii_lowercase()];
        assert!(operation.is_object(), "{method} {path} missing");
        assert!(
            operation["responses"]["default"]["content"]["application/problem+json"].is_object(),
            "{method} {path} does not name its problems"
        );
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, table.len());

    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for target in found {
        let pointer = target.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
    }
}

/// axum's own rejections (a path segment that is not UTF-8, a body over the limit) used to
/// answer `text/plain`, which the document (and every client) expects as problem+json.
#[tokio::test]
async fn framework_rejections_are_problems() {
    let server = Server::start().await;
    let r = server
        .admin(Method::GET, "/v1/users/%FF")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["status"], 400);
    assert!(!problem["detail"].as_str().unwrap().is_empty(), "{problem}");

    let r = server
        .admin(Method::POST, "/v1/users")
        .header("content-type", "application/json")
        .body(vec![b' '; 3 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}
