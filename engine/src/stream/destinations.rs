//! Destinations as the API and the worker see them: validated input, sealed secret material,
//! masked views, and the signed HTTP send.

use super::client::{self, check_url};
use super::delivery::{MAX_KEPT_BODY, RetryPolicy, SendOutcome};
use super::{new_signing_secret, signature_header};
use crate::secrets::SecretBox;
use crate::store::{
    Actor, AuditAction, AuditDraft, DestinationRecord, DestinationScope, DynStore, SealedSecret,
    StoreError, new_id, now_text,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use tokio::sync::Notify;

/// Header carrying the destination's fixed verification token (the GitLab pattern).
pub const TOKEN_HEADER: &str = "x-hookflow-event-streaming-token";
/// Header carrying an event's causation depth: how many deliveries of run events lie between
/// it and an event from outside. A delivery of a run's event carries the depth of the event
/// that started the run plus one, in-process (kept with the event like any header) and over
/// HTTP (another server keeps it the same way), so a chain of flows feeding each other, here or
/// across servers, is counted whichever way it goes round.
pub const HOP_HEADER: &str = "hookflow-hop";
/// Deepest causation chain delivered: past it the delivery is not made and a
/// `destination.loop.stopped` audit event says why. Two flows whose destinations feed each
/// other's `flow.run.*` events stop after this many hops instead of running forever.
pub const MAX_HOPS: u32 = 8;
/// Custom headers a destination may set at most.
const MAX_HEADERS: usize = 20;
/// Headers the engine sets itself.
const RESERVED: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    TOKEN_HEADER,
    HOP_HEADER,
];
/// How long a rotated-out signing secret keeps signing.
const ROTATION_OVERLAP_MS: i64 = 24 * 3600 * 1000;

/// Create or patch body. Every field optional for PATCH; `name` and `url` required to create.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationInput {
    pub name: Option<String>,
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub headers: Option<Map<String, Value>>,
    pub content_type: Option<String>,
    /// PLATFORM (every event; the default) or PROJECT (only `projectId`'s events). Set on
    /// creation only; the API checks the caller may manage that scope.
    pub scope: Option<DestinationScope>,
    pub project_id: Option<String>,
}

/// A destination as the API shows it: custom header values masked, secrets absent except
/// right after creation or rotation.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationView {
    pub id: String,
    pub scope: DestinationScope,
    /// The project of a PROJECT destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
    pub content_type: String,
    pub headers: Map<String, Value>,
    pub verification_token_header: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<String>,
    /// Epoch ms until which the circuit breaker holds deliveries back.
    pub paused_until: Option<i64>,
    pub created: String,
    pub updated: String,
}

/// Errors the API turns into 4xx.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Hands events to this server's own flow webhooks in-process (implemented by the API).
pub trait LocalIntake: Send + Sync {
    /// Accepts `body` for `flow_id`; answers an HTTP-like status.
    /// `hop` is the delivery's causation depth, kept with the event as [`HOP_HEADER`].
    fn deliver<'a>(
        &'a self,
        flow_id: &'a str,
        msg_id: &'a str,
        body: &'a [u8],
        hop: u32,
    ) -> futures::future::BoxFuture<'a, Result<u16, String>>;
}

/// This server's own origins and its in-process intake.
struct Local {
    origins: Vec<String>,
    intake: Arc<dyn LocalIntake>,
}

/// The destinations service.
pub struct Destinations {
    store: DynStore,
    sbox: Arc<SecretBox>,
    client: reqwest::Client,
    policy: RetryPolicy,
    allow_local: bool,
    wake: Notify,
    local: std::sync::OnceLock<Local>,
}

impl Destinations {
    pub fn new(
        store: DynStore,
        sbox: Arc<SecretBox>,
        policy: RetryPolicy,
        allow_local: bool,
    ) -> Destinations {
        Destinations {
            store,
            sbox,
            client: client::client(allow_local),
            policy,
            allow_local,
            wake: Notify::new(),
            local: std::sync::OnceLock::new(),
        }
    }

    /// Registers this server's origins (`http://127.0.0.1:8080`, the public URL) and its
    /// in-process intake, so destinations pointing at our own flow webhooks skip the network.
    pub fn set_local(&self, origins: Vec<String>, intake: Arc<dyn LocalIntake>) {
        let _ = self.local.set(Local { origins, intake });
    }

    /// The flow id when `url` is one of this server's own flow webhooks.
    pub fn own_flow(&self, url: &str) -> Option<String> {
        let local = self.local.get()?;
        let parsed = reqwest::Url::parse(url).ok()?;
        let origin = parsed.origin().ascii_serialization();
        if !local
            .origins
            .iter()
            .any(|o| o.trim_end_matches('/') == origin)
        {
            return None;
        }
        let mut segments = parsed.path_segments()?;
        match (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) {
            (Some("v1"), Some("webhooks"), Some(id), None | Some("sync"), None)
                if !id.is_empty() =>
            {
                Some(id.to_string())
            }
            _ => None,
        }
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Wakes the delivery worker (new events or a redelivery).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(super) async fn notified(&self) {
        self.wake.notified().await
    }

    fn seal(&self, id: &str, field: &str, value: &str) -> String {
        let (nonce, sealed) = self.sbox.seal(&format!("destination:{id}:{field}"), value);
        format!("{nonce}.{sealed}")
    }

    fn open(&self, id: &str, field: &str, text: &str) -> Result<String, String> {
        let (nonce, sealed) = text.split_once('.').ok_or("corrupt sealed value")?;
        self.sbox
            .open(&format!("destination:{id}:{field}"), nonce, sealed)
    }

    /// Creates a destination; the view carries the token and signing secret this once.
    pub async fn create(
        &self,
        actor: &Actor,
        scope: &crate::store::Scope,
        input: DestinationInput,
    ) -> Result<DestinationView, DestinationError> {
        let (record, token, secret) = self.unsaved(scope, input).await?;
        self.store.create_destination(actor, &record).await?;
        let mut view = self.view(&record);
        view.verification_token = Some(token);
        view.signing_secret = Some(secret);
        Ok(view)
    }

    /// A validated destination with fresh token and signing secret, not stored (also used for
    /// test sends to a bare URL). Returns the record, the token and the secret.
    pub async fn unsaved(
        &self,
        scope: &crate::store::Scope,
        input: DestinationInput,
    ) -> Result<(DestinationRecord, String, String), DestinationError> {
        let id = new_id();
        let name = input
            .name
            .clone()
            .ok_or_else(|| DestinationError::Invalid("name: required".into()))?;
        let url = input
            .url
            .clone()
            .ok_or_else(|| DestinationError::Invalid("url: required".into()))?;
        let token = format!(
            "hft_{}",
            &new_signing_secret()["whsec_".len()..].replace(['+', '/', '='], "")
        );
        let secret = new_signing_secret();
        let now = now_text();
        let mut record = DestinationRecord {
            id: id.clone(),
            platform_id: scope.platform_id.clone(),
            project_id: scope.project_id.clone(),
            scope: input.scope.unwrap_or(DestinationScope::Platform),
            name,
            url,
            events: Vec::new(),
            enabled: true,
            content_type: "application/json".into(),
            headers: Vec::new(),
            token: self.seal(&id, "token", &token),
            secrets: vec![SealedSecret {
                sealed: self.seal(&id, "secret", &secret),
                expires: None,
            }],
            disabled_reason: None,
            failing_since: None,
            paused_until: None,
            consecutive_failures: 0,
            created: now.clone(),
            updated: now,
        };
        self.apply(&mut record, input).await?;
        Ok((record, token, secret))
    }

    /// Applies a patch; re-enabling clears the breaker and the disabled reason.
    pub async fn update(
        &self,
        actor: &Actor,
        id: &str,
        input: DestinationInput,
    ) -> Result<DestinationView, DestinationError> {
        let mut record = self
            .store
            .get_destination(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("destination {id}")))?;
        if input.scope.is_some() || input.project_id.is_some() {
            return Err(DestinationError::Invalid(
                "scope: a destination's scope cannot be changed; create a new destination".into(),
            ));
        }
        if input.enabled == Some(true) {
            record.disabled_reason = None;
            record.failing_since = None;
            record.paused_until = None;
            record.consecutive_failures = 0;
        }
        self.apply(&mut record, input).await?;
        record.updated = now_text();
        self.store.update_destination(actor, &record).await?;
        Ok(self.view(&record))
    }

    /// Replaces the signing secret; the old one keeps signing for 24 hours.
    pub async fn rotate_secret(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<DestinationView, DestinationError> {
        let mut record = self
            .store
            .get_destination(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("destination {id}")))?;
        let now = chrono::Utc::now().timestamp_millis();
        let secret = new_signing_secret();
        let mut secrets = vec![SealedSecret {
            sealed: self.seal(id, "secret", &secret),
            expires: None,
        }];
        secrets.extend(
            record
                .secrets
                .iter()
                .filter(|s| s.expires.is_none_or(|e| e > now))
                .take(1)
                .map(|s| SealedSecret {
                    sealed: s.sealed.clone(),
                    expires: Some(s.expires.unwrap_or(now + ROTATION_OVERLAP_MS)),
                }),
        );
        record.secrets = secrets;
        record.updated = now_text();
        self.store.update_destination(actor, &record).await?;
        let mut view = self.view(&record);
        view.signing_secret = Some(secret);
        Ok(view)
    }

    async fn apply(
        &self,
        record: &mut DestinationRecord,
        input: DestinationInput,
    ) -> Result<(), DestinationError> {
        let invalid = DestinationError::Invalid;
        if let Some(name) = input.name {
            if name.trim().is_empty() || name.len() > 200 {
                return Err(invalid("name: must be 1 to 200 characters".into()));
            }
            record.name = name;
        }
        if let Some(url) = input.url {
            record.url = url;
        }
        if let Some(events) = input.events {
            if let Some(bad) = events
                .iter()
                .position(|e| e.trim().is_empty() || e.len() > 100)
            {
                return Err(invalid(format!("events[{bad}]: must be an event name")));
            }
            record.events = events;
        }
        if let Some(enabled) = input.enabled {
            record.enabled = enabled;
        }
        if let Some(ct) = input.content_type {
            if ct.parse::<http::HeaderValue>().is_err() || !ct.contains('/') {
                return Err(invalid(format!("contentType: {ct:?} is not a media type")));
            }
            record.content_type = ct;
        }
        if let Some(headers) = input.headers {
            if headers.len() > MAX_HEADERS {
                return Err(invalid(format!(
                    "headers: at most {MAX_HEADERS} custom headers"
                )));
            }
            let mut sealed = Vec::new();
            for (name, value) in headers {
                let lower = name.to_ascii_lowercase();
                if name.parse::<http::HeaderName>().is_err() {
                    return Err(invalid(format!("headers.{name}: not a valid header name")));
                }
                if RESERVED.contains(&lower.as_str()) || lower.starts_with("webhook-") {
                    return Err(invalid(format!(
                        "headers.{name}: reserved; hookflow sets it"
                    )));
                }
                let Some(text) = value
                    .as_str()
                    .filter(|v| v.parse::<http::HeaderValue>().is_ok())
                else {
                    return Err(invalid(format!(
                        "headers.{name}: must be a string usable as a header value"
                    )));
                };
                sealed.push((
                    lower.clone(),
                    self.seal(&record.id, &format!("header:{lower}"), text),
                ));
            }
            record.headers = sealed;
        }
        // Last: resolving the name is the slow check. Our own flow webhooks are delivered
        // in-process, so the network policy does not apply to them.
        if self.own_flow(&record.url).is_none() {
            check_url(&record.url, self.allow_local, true)
                .await
                .map_err(|e| invalid(format!("url: {e}")))?;
        }
        Ok(())
    }

    /// The API view: custom header values masked, no secrets.
    pub fn view(&self, record: &DestinationRecord) -> DestinationView {
        DestinationView {
            id: record.id.clone(),
            scope: record.scope,
            project_id: (record.scope == DestinationScope::Project)
                .then(|| record.project_id.clone()),
            name: record.name.clone(),
            url: record.url.clone(),
            events: record.events.clone(),
            enabled: record.enabled,
            content_type: record.content_type.clone(),
            headers: record
                .headers
                .iter()
                .map(|(k, _)| (k.clone(), Value::String("********".into())))
                .collect(),
            verification_token_header: TOKEN_HEADER,
            verification_token: None,
            signing_secret: None,
            disabled_reason: record.disabled_reason.clone(),
            failing_since: record.failing_since.clone(),
            paused_until: record.paused_until,
            created: record.created.clone(),
            updated: record.updated.clone(),
        }
    }

    /// Sends one signed request. Never fails as a call: every problem is in the outcome.
    pub async fn send(&self, record: &DestinationRecord, msg_id: &str, body: &[u8]) -> SendOutcome {
        let failed = |error: String| SendOutcome {
            error: Some(error),
            ..SendOutcome::default()
        };
        let event: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let local = self
            .own_flow(&record.url)
            .and_then(|flow_id| Some((flow_id, self.local.get()?)));
        if let Some((flow_id, _)) = &local {
            // Loop guard: a flow's own run events never go back into that flow.
            let own_run = event["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("flow.run."))
                && event["data"]["flowRun"]["flowId"].as_str() == Some(flow_id.as_str());
            if own_run {
                return SendOutcome {
                    status: Some(204),
                    body: Some("skipped in-process: the flow's own run event (loop guard)".into()),
                    ..SendOutcome::default()
                };
            }
        }
        // Loop guard across flows (and servers): a chain of run events delivered to flows that
        // make more run events stops at a depth.
        let hop = self.depth(&event).await.saturating_add(1);
        if hop > MAX_HOPS {
            let reason = format!(
                "{} comes from a chain of {} deliveries of run events; at most {MAX_HOPS} are made (loop guard)",
                event["action"].as_str().unwrap_or("an event"),
                hop - 1
            );
            self.loop_stopped(record, &event, hop, &reason).await;
            return SendOutcome {
                status: Some(204),
                body: Some(format!("not delivered: {reason}")),
                ..SendOutcome::default()
            };
        }
        if let Some((flow_id, local)) = local {
            return match local.intake.deliver(&flow_id, msg_id, body, hop).await {
                Ok(status) => SendOutcome {
                    status: Some(status),
                    error: (!(200..300).contains(&status))
                        .then(|| format!("in-process delivery answered {status}")),
                    body: Some("delivered in-process".into()),
                    ..SendOutcome::default()
                },
                Err(error) => failed(format!("in-process delivery failed: {error}")),
            };
        }
        let url = match check_url(&record.url, self.allow_local, false).await {
            Ok(url) => url,
            Err(e) => return failed(format!("url refused: {e}")),
        };
        let now = chrono::Utc::now();
        let live: Vec<String> = record
            .secrets
            .iter()
            .filter(|s| s.expires.is_none_or(|e| e > now.timestamp_millis()))
            .filter_map(|s| self.open(&record.id, "secret", &s.sealed).ok())
            .collect();
        let token = match self.open(&record.id, "token", &record.token) {
            Ok(token) => token,
            Err(e) => return failed(format!("cannot read the verification token: {e}")),
        };
        let timestamp = now.timestamp();
        let mut request = self
            .client
            .post(url)
            .header("content-type", &record.content_type)
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature_header(&live, msg_id, timestamp, body),
            )
            .header(TOKEN_HEADER, token)
            .header(HOP_HEADER, hop.to_string());
        for (name, sealed) in &record.headers {
            match self.open(&record.id, &format!("header:{name}"), sealed) {
                Ok(value) => request = request.header(name, value),
                Err(e) => return failed(format!("cannot read header {name}: {e}")),
            }
        }
        match request.body(body.to_vec()).send().await {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                // Only what is kept is read (one byte more tells it was cut): a receiver
                // answering with gigabytes, or never ending its body, costs nothing more.
                let mut kept = Vec::new();
                while kept.len() <= MAX_KEPT_BODY {
                    match response.chunk().await {
                        Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                        _ => break,
                    }
                }
                SendOutcome::from_response_parts(status, retry_after.as_deref(), &kept)
            }
            Err(e) => SendOutcome {
                timed_out: e.is_timeout(),
                ..failed(describe(&e))
            },
        }
    }
}

impl Destinations {
    /// The causation depth of an audit event: for a run's event, the [`HOP_HEADER`] of the event
    /// that started the run (0 when it came from outside); for a `destination.loop.stopped`
    /// event, the depth it stopped at, so it is never delivered into a new chain; 0 otherwise.
    async fn depth(&self, event: &Value) -> u32 {
        let action = event["action"].as_str().unwrap_or_default();
        if action == AuditAction::DestinationLoopStopped.as_str() {
            return event["data"]["hops"]
                .as_u64()
                .map_or(MAX_HOPS, |h| u32::try_from(h).unwrap_or(u32::MAX));
        }
        let Some(run_id) = event["data"]["flowRun"]["id"]
            .as_str()
            .filter(|_| action.starts_with("flow.run."))
        else {
            return 0;
        };
        match self.store.run_trigger_headers(run_id).await {
            Ok(headers) => headers
                .as_ref()
                .and_then(|h| h.get(HOP_HEADER))
                .and_then(|v| match v {
                    Value::String(text) => text.trim().parse::<u32>().ok(),
                    other => other.as_u64().and_then(|n| u32::try_from(n).ok()),
                })
                .unwrap_or(0),
            Err(error) => {
                tracing::warn!(%error, run_id, "reading a run's causation depth failed; counted as 0");
                0
            }
        }
    }

    /// Records why a delivery was not made: a `destination.loop.stopped` audit event (in the
    /// event's project), itself never delivered into a chain again ([`Destinations::depth`]).
    async fn loop_stopped(
        &self,
        record: &DestinationRecord,
        event: &Value,
        hop: u32,
        reason: &str,
    ) {
        let platform = event["platformId"].as_str().unwrap_or(&record.platform_id);
        let project = event["projectId"]
            .as_str()
            .or(Some(record.project_id.as_str()));
        let data = serde_json::json!({
            "destination": {"id": record.id, "name": record.name, "url": record.url},
            "event": {"id": event["id"], "action": event["action"]},
            "flowRun": {
                "id": event["data"]["flowRun"]["id"],
                "flowId": event["data"]["flowRun"]["flowId"],
            },
            "hops": hop,
            "limit": MAX_HOPS,
            "reason": reason,
        });
        let draft = AuditDraft::new(
            platform,
            project,
            &Actor::system(),
            AuditAction::DestinationLoopStopped,
            data,
        );
        tracing::warn!(destination = %record.id, hops = hop, "delivery loop stopped");
        if let Err(error) = self.store.record_audit(vec![draft]).await {
            tracing::error!(%error, "recording a stopped delivery loop failed");
        }
    }
}

/// A readable chain of causes (reqwest hides the interesting part in `source`).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
