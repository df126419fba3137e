//! `GET /v1/openapi.json`: the API's OpenAPI 3.1 contract, built from the route table
//! ([`super::routes`]), so it lists exactly the routes the router serves, with what each
//! declares beside its handler ([`guard::Doc`]): summary, path and query parameters, request
//! body, success answers. The JSON Schemas come from the types the handlers (de)serialize
//! (`schemars`, following their serde attributes). Every operation may also answer a
//! [`Problem`]; guarded ones name the bearer token (admin token or `hfk_` API key) and the
//! console session as their security, public ones (sign-in, webhooks) none.
//!
//! The document is public, as Svix's and most APIs' are: it describes the routes, which the
//! route table in the source already does, and holds nothing of any deployment.

use super::error::Problem;
use super::guard::{self, Route, SchemaFn};
use crate::access::{Need, Target};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};
use std::sync::LazyLock;

/// A JSON object an answer composes beside a record (e.g. `{"runId", "status"}`): documented
/// as an object whose members the summary names.
pub type Object = Map<String, Value>;

/// Flow definitions are sent as JSON, or YAML as the CLI and console write them.
pub const FLOW_MEDIA: &[&str] = &["application/json", "application/yaml"];

pub fn routes() -> Vec<Route> {
    vec![
        guard::get("/openapi.json", Need::Public, serve)
            .doc("This document: the API's OpenAPI 3.1 contract")
            .returns::<Object>(StatusCode::OK),
    ]
}

async fn serve() -> Response {
    // Built on first use from the same table the router was built from; it never changes
    // while the process runs.
    static DOCUMENT: LazyLock<String> = LazyLock::new(|| document(&super::routes()).to_string());
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}

/// The OpenAPI 3.1 document of `routes` (paths below `/v1`).
pub fn document(routes: &[Route]) -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    let problem = Value::from(generator.subschema_for::<Problem>());
    let mut paths = Map::new();
    for route in routes {
        let operation = operation(route, &mut generator, &problem);
        let item = paths
            .entry(format!("/v1{}", route.path))
            .or_insert_with(|| json!({}));
        item[route.method.as_str().to_ascii_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "hookflow",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Self-hosted, WebAssembly-extensible workflow engine for audit events. \
                Errors are application/problem+json (RFC 9457) naming the field at fault; lists \
                answer {\"data\": [...], \"next\": cursor|null, \"previous\": cursor|null}.",
        },
        "paths": paths,
        "components": {
            "schemas": generator.take_definitions(true),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The admin token (HOOKFLOW_ADMIN_TOKEN) or an API key (hfk_...)",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": guard::SESSION_COOKIE,
                    "description": "A console session from POST /v1/auth/sign-in; changes also \
                        send its CSRF token in X-CSRF-Token",
                },
            },
        },
    })
}

fn operation(route: &Route, generator: &mut SchemaGenerator, problem: &Value) -> Value {
    let doc = &route.doc;
    let mut op = Map::new();
    op.insert("operationId".into(), operation_id(route).into());
    op.insert("summary".into(), doc.summary.into());
    if let Some(tag) = route.path.split('/').find(|s| !s.is_empty()) {
        op.insert("tags".into(), json!([tag]));
    }
    let parameters = parameters(route, generator);
    if !parameters.is_empty() {
        op.insert("parameters".into(), parameters.into());
    }
    if let Some(body) = &doc.body {
        let schema = Value::from((body.schema)(generator));
        let content: Map<String, Value> = body
            .media
            .iter()
            .map(|media| (media.to_string(), json!({ "schema": schema })))
            .collect();
        op.insert(
            "requestBody".into(),
            json!({"required": true, "content": content}),
        );
    }
    op.insert(
        "responses".into(),
        responses(route, generator, problem).into(),
    );
    let security = if route.need == Need::Public {
        json!([])
    } else {
        json!([{"bearer": []}, {"session": []}])
    };
    op.insert("security".into(), security);
    op.into()
}

/// `post_flows_id_publish` for `POST /flows/{id}/publish`: unique, as method and path are.
fn operation_id(route: &Route) -> String {
    let path: String = route
        .path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut id = route.method.as_str().to_ascii_lowercase();
    for part in path.split('_').filter(|p| !p.is_empty()) {
        id.push('_');
        id.push_str(part);
    }
    id
}

/// Path parameters from the path's `{name}`s, query parameters from the declared query type's
/// fields, and `projectId` where the guard reads it from the query.
fn parameters(route: &Route, generator: &mut SchemaGenerator) -> Vec<Value> {
    let mut out: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    if let Some(query) = route.doc.query {
        let schema = resolve(query, generator);
        let required: Vec<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if let Some(properties) = schema["properties"].as_object() {
            for (name, property) in properties {
                let mut parameter = json!({
                    "name": name,
                    "in": "query",
                    "required": required.contains(&name.as_str()),
                    "schema": not_null(property.clone()),
                });
                if let Some(description) = property.get("description") {
                    parameter["description"] = description.clone();
                }
                out.push(parameter);
            }
        }
    }
    let guard_reads_project = matches!(
        route.need,
        Need::Project(_, Target::QueryProject | Target::QueryOrPlatform)
    );
    if guard_reads_project && !out.iter().any(|p| p["name"] == "projectId") {
        out.push(json!({
            "name": "projectId",
            "in": "query",
            "required": false,
            "description": "The project; the caller's own when absent",
            "schema": {"type": "string"},
        }));
    }
    out
}

/// The object schema behind a query type (its definition when the generator gave a `$ref`).
fn resolve(schema: SchemaFn, generator: &mut SchemaGenerator) -> Value {
    let schema = Value::from(schema(generator));
    match schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        Some(name) => generator.definitions()[name].clone(),
        None => schema,
    }
}

/// An optional query parameter is absent, never `null`: drops `null` from its schema's types.
fn not_null(mut schema: Value) -> Value {
    if let Some(types) = schema.get_mut("type").and_then(Value::as_array_mut) {
        types.retain(|t| t != "null");
        if let [one] = types.as_slice() {
            schema["type"] = one.clone();
        }
    }
    let Value::Object(map) = &mut schema else {
        return schema;
    };
    for key in ["anyOf", "oneOf"] {
        let Some(Value::Array(options)) = map.get_mut(key) else {
            continue;
        };
        options.retain(|o| o.get("type") != Some(&json!("null")));
        if options.len() == 1
            && let Some(Value::Object(one)) = options.pop()
        {
            map.remove(key);
            map.extend(one);
        }
    }
    schema
}

fn responses(
    route: &Route,
    generator: &mut SchemaGenerator,
    problem: &Value,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (status, content) in &route.doc.success {
        let entry = out.entry(status.as_str()).or_insert_with(
            || json!({"description": status.canonical_reason().unwrap_or("Success")}),
        );
        if let Some((media, schema)) = content {
            entry["content"][*media] = json!({ "schema": Value::from(schema(generator)) });
        }
    }
    let problem_content = json!({"application/problem+json": {"schema": problem}});
    let mut errors = vec![StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND];
    // Guarded routes check a credential; public ones that take a body check what they are sent
    // (a webhook's credential, a password, an invitation token).
    if route.need != Need::Public || route.doc.body.is_some() {
        errors.push(StatusCode::UNAUTHORIZED);
    }
    if route.need != Need::Public {
        errors.push(StatusCode::FORBIDDEN);
    }
    // A change may meet stored state it conflicts with (no draft to publish, a run that is not
    // failed, a name taken, a plugin in use).
    if route.method != axum::http::Method::GET {
        errors.push(StatusCode::CONFLICT);
    }
    if route.doc.body.is_some() {
        errors.extend([
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNPROCESSABLE_ENTITY,
        ]);
    }
    for status in errors {
        out.insert(
            status.as_str().into(),
            json!({
                "description": status.canonical_reason().unwrap_or("Error"),
                "content": problem_content,
            }),
        );
    }
    let mut default = json!({"description": "Any other error", "content": problem_content});
    if route.doc.verbatim {
        default["description"] = "What the flow's respond step set, or an error".into();
        default["content"]["*/*"] = json!({});
    }
    out.insert("default".into(), default);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built() -> Value {
        document(&super::super::routes())
    }

    /// Every `$ref` in `value`, with where it was found.
    fn refs<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if key == "$ref"
                        && let Some(target) = child.as_str()
                    {
                        out.push((at.clone(), target));
                    }
                    refs(child, format!("{at}/{key}"), out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    refs(child, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_route_is_documented_with_its_method_and_a_success() {
        let doc = built();
        assert_eq!(doc["openapi"], "3.1.0");
        let table = super::super::route_table();
        assert!(table.len() > 50, "{} routes", table.len());
        for (method, path, _) in &table {
            let op = &doc["paths"][path][method.as_str().to_ascii_lowercase()];
            assert!(op.is_object(), "{method} {path} is not in the document");
            assert!(
                !op["summary"].as_str().unwrap().is_empty(),
                "{method} {path}"
            );
            let success = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| k.starts_with('2'))
                .count();
            assert!(success > 0, "{method} {path} declares no success answer");
        }
        let operations: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(
            operations,
            table.len(),
            "the document has routes the table has not"
        );
    }

    #[test]
    fn every_ref_resolves_and_component_names_are_valid() {
        let doc = built();
        let mut found = Vec::new();
        refs(&doc, String::new(), &mut found);
        assert!(found.len() > 20);
        for (at, target) in found {
            let pointer = target
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{at}: {target} is not local"));
            assert!(
                doc.pointer(pointer).is_some(),
                "{at}: {target} does not resolve"
            );
        }
        for name in doc["components"]["schemas"].as_object().unwrap().keys() {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
                "component name {name:?} is not allowed by OpenAPI"
            );
        }
    }

    #[test]
    fn parameters_bodies_pagination_and_security_are_described() {
        let doc = built();
        let list = &doc["paths"]["/v1/flow-runs"]["get"];
        let names: Vec<&str> = list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for name in [
            "flowId",
            "status",
            "createdAfter",
            "limit",
            "cursor",
            "projectId",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        assert_eq!(list["security"], json!([{"bearer": []}, {"session": []}]));
        // The page shape: data, next and previous cursors (or null).
        let page = &list["responses"]["200"]["content"]["application/json"]["schema"]["$ref"];
        let page = doc
            .pointer(page.as_str().unwrap().trim_start_matches('#'))
            .unwrap();
        assert_eq!(page["required"], json!(["data", "next", "previous"]));
        assert_eq!(
            page["properties"]["next"]["type"],
            json!(["string", "null"])
        );
        // A flow body is the flow model, as JSON or YAML, not `{}`.
        let create = &doc["paths"]["/v1/flows"]["post"];
        for media in FLOW_MEDIA {
            assert_eq!(
                create["requestBody"]["content"][media]["schema"]["$ref"],
                "#/components/schemas/Flow"
            );
        }
        assert_eq!(
            doc["components"]["schemas"]["Flow"]["required"],
            json!(["name", "trigger", "steps"])
        );
        // Path parameters, and problems on every operation.
        let version = &doc["paths"]["/v1/flows/{id}/versions/{version}"]["get"];
        assert_eq!(version["parameters"][0]["name"], "id");
        assert_eq!(version["parameters"][1]["in"], "path");
        assert_eq!(
            version["responses"]["404"]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem"
        );
        // Public routes need no credentials.
        assert_eq!(
            doc["paths"]["/v1/auth/sign-in"]["post"]["security"],
            json!([])
        );
        assert_eq!(
            doc["paths"]["/v1/webhooks/{flow_id}"]["post"]["security"],
            json!([])
        );
    }

    #[test]
    fn optional_query_parameters_are_never_null() {
        assert_eq!(
            not_null(json!({"type": ["string", "null"]})),
            json!({"type": "string"})
        );
        assert_eq!(
            not_null(json!({"anyOf": [{"$ref": "#/x"}, {"type": "null"}], "description": "d"})),
            json!({"description": "d", "$ref": "#/x"})
        );
    }
}
