//! `/v1/event-types` (the catalog), `/v1/handler-flows` (the generator) and
//! `/v1/flows/{id}/test` (synchronous test runs, of the published version unless asked for the
//! draft or a saved version by number).

use super::guard::{self, Caller, Route};
use super::openapi::Object;
use super::{ApiError, ApiResult, AppState, Params, RequestActor};
use crate::access::{Need, Target};
use crate::catalog::Catalog;
use crate::flow::Flow;
use crate::generate::{self, GenerateError};
use crate::registry::ActiveFlow;
use crate::store::{
    AuditAction, AuditDraft, Environment, FlowRecord, NewEvent, Role, RunDetail, RunOutcome, Scope,
    new_id,
};
use crate::testrun::{self, TestInput};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

pub fn routes() -> Vec<Route> {
    vec![
        guard::get("/event-types", Need::SignedIn, event_types)
            .doc("The event types the catalog knows, with summaries and samples")
            .query::<EventTypeParams>()
            .page::<Object>(),
        guard::post(
            "/handler-flows",
            Need::Project(Role::Editor, Target::QueryProject),
            handler_flow,
        )
        .doc("Generates a handler flow from event types or a template and saves it")
        .body::<HandlerFlowRequest>()
        .returns::<FlowRecord>(StatusCode::CREATED),
        guard::post(
            "/flows/{id}/test",
            Need::Project(Role::Operator, Target::Flow),
            test_flow,
        )
        .doc("Runs the flow now on a sample or given payload, as a test run: the whole run")
        .query::<TestParams>()
        .body::<TestRequest>()
        .returns::<RunDetail>(StatusCode::OK),
    ]
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct EventTypeParams {
    source: Option<String>,
}

async fn event_types(Params(params): Params<EventTypeParams>) -> ApiResult<Json<Value>> {
    let catalog = Catalog::builtin();
    let sources: Vec<_> = match &params.source {
        None => catalog.sources.iter().collect(),
        Some(name) => vec![catalog.source(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "source: unknown source {name:?} (known: {})",
                catalog.source_names().join(", ")
            ))
        })?],
    };
    let data: Vec<Value> = sources
        .iter()
        .flat_map(|s| {
            s.events.iter().map(move |e| {
                json!({
                    "source": s.source,
                    "eventNamePath": s.event_name_path,
                    "name": e.name,
                    "description": e.description,
                    "summaryTemplate": e.summary,
                    "summary": e.summarize(&e.sample),
                    "sample": e.sample,
                })
            })
        })
        .collect();
    Ok(Json(
        json!({ "data": data, "next": null, "previous": null }),
    ))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HandlerFlowRequest {
    #[serde(default)]
    events: Vec<String>,
    template: Option<String>,
    source: Option<String>,
    name: Option<String>,
    /// How the webhook authenticates: `header`, `bearer`, `standardWebhooks` or `none`; by
    /// default what the source sends (see [`generate::AuthChoice::default_for`]).
    auth: Option<generate::AuthChoice>,
}

/// Generates a handler flow and saves it. It is live at once, so its webhook gets a fresh
/// credential (unless `auth: none` is asked for), returned once as `credential` beside the
/// absolute `webhookUrl`; the saved definition shows it masked like every flow answer.
async fn handler_flow(
    State(app): State<AppState>,
    caller: Caller,
    headers: header::HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let request: HandlerFlowRequest = super::json_body(&body)?;
    let source = match &request.template {
        Some(template) => generate::template_source(Catalog::builtin(), template),
        None => Some(request.source.as_deref().unwrap_or("activepieces")),
    }
    .map(str::to_string);
    let choice = request
        .auth
        .unwrap_or_else(|| generate::AuthChoice::default_for(source.as_deref()));
    let generated = match &request.template {
        Some(template) if request.events.is_empty() => {
            generate::from_template(Catalog::builtin(), template).map(|flow| generate::Generated {
                flow,
                unknown: Vec::new(),
            })
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "events: give either \"events\" or \"template\", not both",
            ));
        }
        None => {
            let request = generate::Request {
                source: request.source.unwrap_or_else(|| "activepieces".into()),
                events: request.events,
                name: request.name,
            };
            generate::generate(Catalog::builtin(), &request)
        }
    };
    let generated = generated.map_err(|e| match &e {
        GenerateError::UnknownSource(..) => ApiError::bad_request(format!("source: {e}")),
        GenerateError::NoEvents | GenerateError::BadEventName(_) => {
            ApiError::bad_request(format!("events: {e}"))
        }
        GenerateError::UnknownTemplate(..) => ApiError::bad_request(format!("template: {e}")),
    })?;
    let mut definition = generated.flow;
    let credential = generate::add_credential(&mut definition, choice, source.as_deref());
    let active = app
        .flows
        .create(&caller.actor(), caller.project()?, definition)
        .await?;
    let location = format!("/v1/flows/{}", active.record.id);
    let mut body = super::flows::render(&active);
    let path = format!("/v1/webhooks/{}", active.record.id);
    body["webhookUrl"] = json!(absolute_url(&app, &headers, &path));
    // Shown this once: every later answer masks it.
    body["credential"] = json!(credential);
    // Names the catalog did not know still got a branch (without a sample); say which, with
    // close matches, so a typo does not go unnoticed.
    body["unknownEvents"] = json!(generated.unknown);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

/// `path` on this server as a sender must call it: under `HOOKFLOW_PUBLIC_URL` when it is set
/// (the address the world uses, behind a proxy), else under the `Host` the request was sent
/// to, over http; the bare path when neither is known.
fn absolute_url(app: &AppState, headers: &header::HeaderMap, path: &str) -> String {
    if let Some(base) = &app.public_url {
        return format!("{}{path}", base.trim_end_matches('/'));
    }
    match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) if !host.is_empty() && !host.contains(['/', ' ', '@']) => {
            format!("http://{host}{path}")
        }
        _ => path.to_string(),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TestRequest {
    event: Option<String>,
    payload: Option<Value>,
    #[serde(default)]
    live: bool,
    /// Which version to run: `"published"` (the default), `"draft"` (the pending draft, to try
    /// it before publishing) or a saved version's number. Read by hand, so a wrong type is
    /// refused naming the field.
    #[schemars(with = "Option<TestVersion>")]
    version: Option<Value>,
}

/// `version` of a test run: a name or a saved version's number.
#[derive(Debug, Clone, schemars::JsonSchema)]
#[serde(untagged)]
enum TestVersion {
    Number(i64),
    Name(String),
}

impl TestVersion {
    fn parse(value: Value) -> ApiResult<TestVersion> {
        match &value {
            Value::String(name) => return Ok(TestVersion::Name(name.clone())),
            Value::Number(n) => {
                if let Some(number) = n.as_i64() {
                    return Ok(TestVersion::Number(number));
                }
            }
            _ => {}
        }
        Err(ApiError::bad_request(format!(
            "version: expected \"published\", \"draft\" or a version number, not {value}"
        )))
    }
}

/// `?draft=true` asks for the draft, like `PUT /v1/flows/{id}?draft=true` saves one.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct TestParams {
    draft: Option<bool>,
}

/// The version a test run runs (number, parsed flow, whether it is the pending draft): the
/// published one unless the body's `version` or `?draft=true` asks for another. A version that
/// names a plugin no longer installed (one removed since: history does not keep plugins) is
/// refused with the problem by path, before anything is recorded.
async fn tested_version(
    app: &AppState,
    active: &ActiveFlow,
    asked: Option<TestVersion>,
    draft_param: bool,
) -> ApiResult<(i64, Arc<Flow>, bool)> {
    let id = &active.record.id;
    let asked = match (asked, draft_param) {
        (None, true) => Some(TestVersion::Name("draft".into())),
        (Some(TestVersion::Name(name)), true) if name != "draft" => {
            return Err(ApiError::bad_request(format!(
                "version: {name:?} contradicts ?draft=true"
            )));
        }
        (Some(TestVersion::Number(n)), true) if Some(n) != active.state.draft_version => {
            return Err(ApiError::bad_request(format!(
                "version: {n} is not the draft ?draft=true asks for"
            )));
        }
        (asked, _) => asked,
    };
    let number = match asked {
        None => return Ok((active.record.version, active.flow.clone(), false)),
        Some(TestVersion::Name(name)) if name == "published" => {
            return Ok((active.record.version, active.flow.clone(), false));
        }
        Some(TestVersion::Name(name)) if name == "draft" => {
            active.state.draft_version.ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    format!(
                        "version: flow {id} has no draft (save one with PUT /v1/flows/{id}?draft=true)"
                    ),
                )
            })?
        }
        Some(TestVersion::Name(name)) => {
            return Err(ApiError::bad_request(format!(
                "version: expected \"published\", \"draft\" or a version number, not {name:?}"
            )));
        }
        Some(TestVersion::Number(n)) => n,
    };
    let flow = app.flows.version(id, number).await?.ok_or_else(|| {
        ApiError::not_found(format!("version: flow {id} has no version {number}"))
    })?;
    let problems = crate::registry::plugin_problems(&flow, &app.sandbox);
    if !problems.is_empty() {
        return Err(ApiError::invalid(crate::flow::Problems(problems)));
    }
    Ok((number, flow, Some(number) == active.state.draft_version))
}

async fn test_flow(
    State(app): State<AppState>,
    RequestActor(actor): RequestActor,
    Path(id): Path<String>,
    Params(params): Params<TestParams>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let request: TestRequest = super::json_body(&body)?;
    let input = match (request.event, request.payload) {
        (Some(event), None) => TestInput::Event(event),
        (None, Some(payload)) => TestInput::Payload(payload),
        _ => {
            return Err(ApiError::bad_request(
                "body: give exactly one of \"event\" or \"payload\"",
            ));
        }
    };
    let active = app
        .flows
        .current(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("flow {id} not found")))?;
    let asked = request.version.map(TestVersion::parse).transpose()?;
    let (flow_version, flow, draft) =
        tested_version(&app, &active, asked, params.draft == Some(true)).await?;
    let payload = testrun::resolve_payload(&flow, &input)
        .map_err(|e| ApiError::bad_request(format!("event: {e}")))?;
    let run_id = new_id();
    let scope = Scope {
        platform_id: active.record.platform_id.clone(),
        project_id: active.record.project_id.clone(),
    };
    // Recorded before the run starts, and the run does not start unless it is: a live test run
    // has real side effects, and who caused them must be in the audit log even if the run or
    // the process dies halfway.
    app.store
        .record_audit(vec![AuditDraft::new(
            &scope.platform_id,
            Some(&scope.project_id),
            &actor,
            AuditAction::FlowTested,
            json!({
                "flow": {"id": id, "displayName": active.record.name},
                "flowVersion": {"version": flow_version, "draft": draft},
                "flowRun": {"id": run_id, "environment": Environment::Testing},
                "live": request.live,
            }),
        )])
        .await?;
    let result = testrun::execute(
        &app.executor,
        &scope,
        &run_id,
        &id,
        &flow,
        payload.clone(),
        request.live,
    )
    .await;
    let event = NewEvent {
        event_id: new_id(),
        run_id: run_id.clone(),
        flow_id: id.clone(),
        flow_version,
        scope: Scope {
            platform_id: active.record.platform_id.clone(),
            project_id: active.record.project_id.clone(),
        },
        event_key: None,
        environment: Environment::Testing,
        headers: json!({}),
        body: payload.to_string(),
        lease: None,
    };
    let outcome = RunOutcome {
        run_id: run_id.clone(),
        owner: String::new(),
        status: result.status,
        error: result.error,
        duration_ms: result.duration_ms,
        steps: result.steps,
    };
    app.store.record_finished_run(event, outcome).await?;
    let run = app
        .store
        .get_run(&run_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run_id} not found")))?;
    Ok(Json(json!(run)))
}
