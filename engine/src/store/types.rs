//! Records the store reads and writes. These are the engine's durable vocabulary: the API renders
//! them, the executor produces them, and every backend stores them the same way.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// The tenant a record belongs to. Every flow, run and event is scoped from the start so that
/// projects and per-project API keys can arrive later without a data migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    pub platform_id: String,
    pub project_id: String,
}

/// A stored flow at one version.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlowRecord {
    pub id: String,
    pub platform_id: String,
    pub project_id: String,
    pub name: String,
    pub version: i64,
    pub definition: Value,
    pub created: String,
    pub updated: String,
}

/// Where a flow is in its lifecycle, beside its published version ([`FlowRecord`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowState {
    /// False after a disable: the webhook answers 404 and stores nothing, the schedule is idle.
    pub enabled: bool,
    /// A saved version not yet published (`None`: the published version is the newest).
    pub draft_version: Option<i64>,
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and serialised spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?} (expected one of {})",
                        stringify!($name),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

string_enum!(
    /// Lifecycle of a run. QUEUED and RUNNING are live; the rest are terminal.
    RunStatus {
        Queued => "QUEUED",
        Running => "RUNNING",
        Succeeded => "SUCCEEDED",
        Failed => "FAILED",
        Timeout => "TIMEOUT",
        Canceled => "CANCELED",
    }
);

impl RunStatus {
    /// Terminal runs never change again unless retried.
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

string_enum!(
    /// Outcome of one step.
    StepStatus {
        Succeeded => "SUCCEEDED",
        Failed => "FAILED",
        Timeout => "TIMEOUT",
        Skipped => "SKIPPED",
    }
);

string_enum!(
    /// Live events run in PRODUCTION; test runs in TESTING (never deduplicated, side effects
    /// skipped unless asked for).
    Environment {
        Production => "PRODUCTION",
        Testing => "TESTING",
    }
);

string_enum!(
    /// What kind of step a step result belongs to.
    StepKind {
        Router => "router",
        Action => "action",
        Threshold => "threshold",
    }
);

string_enum!(
    /// What an audit event records: the engine's own actions, in Activepieces' spelling. One
    /// enum, so a typo is a compile error and every backend writes the same names.
    AuditAction {
        FlowCreated => "flow.created",
        FlowUpdated => "flow.updated",
        FlowDeleted => "flow.deleted",
        FlowPublished => "flow.published",
        FlowActivated => "flow.activated",
        FlowDeactivated => "flow.deactivated",
        FlowRunStarted => "flow.run.started",
        FlowRunFinished => "flow.run.finished",
        FlowRunRetried => "flow.run.retried",
        FlowTested => "flow.tested",
        FlowReplayed => "flow.replayed",
        SecretUpserted => "secret.upserted",
        SecretDeleted => "secret.deleted",
        DestinationCreated => "destination.created",
        DestinationUpdated => "destination.updated",
        DestinationDeleted => "destination.deleted",
        DestinationDisabled => "destination.disabled",
        DestinationLoopStopped => "destination.loop.stopped",
        PluginInstalled => "plugin.installed",
        PluginRemoved => "plugin.removed",
        UserSignedIn => "user.signed.in",
        UserSignedOut => "user.signed.out",
        UserSignedUp => "user.signed.up",
        UserUpdated => "user.updated",
        UserPasswordReset => "user.password.reset",
        ProjectCreated => "project.created",
        ProjectMemberAdded => "project.member.added",
        ProjectMemberUpdated => "project.member.updated",
        ProjectMemberRemoved => "project.member.removed",
        ProjectInvitationCreated => "project.invitation.created",
        ProjectInvitationRevoked => "project.invitation.revoked",
        ApiKeyCreated => "api.key.created",
        ApiKeyRevoked => "api.key.revoked",
    }
);

string_enum!(
    /// What a person or an API key may do, in Activepieces' names. Platform roles reach every
    /// project (`platform-admin`: everything; `auditor`: the audit log only); project roles
    /// are granted per project and ordered `viewer` < `operator` < `editor` < `admin`.
    Role {
        PlatformAdmin => "platform-admin",
        Auditor => "auditor",
        Admin => "admin",
        Editor => "editor",
        Operator => "operator",
        Viewer => "viewer",
    }
);

impl Role {
    /// True for the roles that are held platform-wide rather than per project.
    pub fn is_platform(self) -> bool {
        matches!(self, Role::PlatformAdmin | Role::Auditor)
    }

    /// Rank of a project role (higher includes lower); `None` for platform roles.
    pub fn project_rank(self) -> Option<u8> {
        match self {
            Role::Viewer => Some(1),
            Role::Operator => Some(2),
            Role::Editor => Some(3),
            Role::Admin => Some(4),
            Role::PlatformAdmin | Role::Auditor => None,
        }
    }

    /// The permissions a role grants, in Activepieces' spelling, recorded in membership audit
    /// events so detections such as "a role granting `WRITE_PROJECT_MEMBER`" run on this log.
    pub fn permissions(self) -> &'static [&'static str] {
        const VIEWER: &[&str] = &["READ_FLOW", "READ_RUN", "READ_PROJECT_MEMBER"];
        const OPERATOR: &[&str] = &["READ_FLOW", "READ_RUN", "READ_PROJECT_MEMBER", "WRITE_RUN"];
        const EDITOR: &[&str] = &[
            "READ_FLOW",
            "READ_RUN",
            "READ_PROJECT_MEMBER",
            "WRITE_RUN",
            "WRITE_FLOW",
            "READ_APP_CONNECTION",
        ];
        const ADMIN: &[&str] = &[
            "READ_FLOW",
            "READ_RUN",
            "READ_PROJECT_MEMBER",
            "WRITE_RUN",
            "WRITE_FLOW",
            "READ_APP_CONNECTION",
            "WRITE_APP_CONNECTION",
            "WRITE_PROJECT_MEMBER",
            "READ_AUDIT_LOG",
        ];
        match self {
            Role::Viewer => VIEWER,
            Role::Operator => OPERATOR,
            Role::Editor => EDITOR,
            Role::Admin | Role::PlatformAdmin => ADMIN,
            Role::Auditor => &["READ_AUDIT_LOG"],
        }
    }
}

string_enum!(
    /// Which audit events a destination receives: every event of the platform, or only the
    /// events of its own project (as Activepieces scopes them).
    DestinationScope {
        Platform => "PLATFORM",
        Project => "PROJECT",
    }
);

/// An event accepted on a webhook, with the run it queues. Written in one transaction.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: String,
    pub run_id: String,
    pub flow_id: String,
    pub flow_version: i64,
    pub scope: Scope,
    /// The sender's id for deduplication; `None` never deduplicates (test runs).
    pub event_key: Option<String>,
    pub environment: Environment,
    /// Request headers as a JSON object (lower-case names).
    pub headers: Value,
    /// The raw JSON body as received.
    pub body: String,
    /// Set when the receiving process executes the run itself right away (`/sync`): the run is
    /// stored RUNNING under this lease, with its `flow.run.started` audit event, instead of
    /// QUEUED. Should the process die, the lease expires and the queue runs it again.
    pub lease: Option<Lease>,
}

/// A lease on a run: who executes it, and for how long without renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub lease_ms: i64,
}

/// What intake answers: a new run, or the run the same event already started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    New { run_id: String },
    Duplicate { run_id: String },
}

/// The record of one executed step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    pub name: String,
    pub seq: i64,
    pub kind: StepKind,
    pub status: StepStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub attempts: i64,
    pub duration_ms: f64,
    /// Router branch evaluations, plugin logs, skip reasons.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

/// A run claimed by a worker, with everything needed to execute it.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    pub id: String,
    pub scope: Scope,
    pub flow_id: String,
    pub flow_version: i64,
    pub environment: Environment,
    pub attempt: i64,
    pub event_headers: Value,
    pub event_body: String,
    /// Step results of an earlier attempt (manual retry): succeeded steps are not run again.
    pub prior_steps: Vec<StepRecord>,
}

/// The end of a run, as the executor reports it.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run_id: String,
    /// The lease owner; a finish from a process that lost its lease is ignored.
    pub owner: String,
    pub status: RunStatus,
    pub error: Option<String>,
    pub duration_ms: f64,
    pub steps: Vec<StepRecord>,
}

/// A run without its steps, for lists.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub id: String,
    pub platform_id: String,
    pub project_id: String,
    pub flow_id: String,
    pub flow_version: i64,
    pub event_id: String,
    pub environment: Environment,
    pub status: RunStatus,
    pub attempt: i64,
    pub created: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub duration_ms: Option<f64>,
    pub error: Option<String>,
}

/// A run with its trigger event and every step.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunDetail {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub trigger: Value,
    pub steps: Vec<StepRecord>,
}

/// Filters for listing runs, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub flow_id: Option<String>,
    /// Only runs of these projects; `None` is every project.
    pub projects: Option<Vec<String>>,
    /// RFC 3339 (stored form), inclusive.
    pub created_after: Option<String>,
    /// RFC 3339 (stored form), exclusive.
    pub created_before: Option<String>,
    pub status: Option<RunStatus>,
    /// Only live runs (PRODUCTION) or only test runs (TESTING); `None` is both.
    pub environment: Option<Environment>,
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

/// Position in a newest-first list of UUIDv7-keyed rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// Rows older than this id.
    After(String),
    /// Rows newer than this id.
    Before(String),
}

impl Cursor {
    /// The key the cursor points at.
    pub fn key(&self) -> &str {
        match self {
            Cursor::After(key) | Cursor::Before(key) => key,
        }
    }

    /// Opaque text form handed to clients.
    pub fn encode(&self) -> String {
        use base64::Engine as _;
        let raw = match self {
            Cursor::After(id) => format!("a:{id}"),
            Cursor::Before(id) => format!("b:{id}"),
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// Parses a cursor produced by [`Cursor::encode`].
    pub fn decode(text: &str) -> Option<Cursor> {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (kind, id) = raw.split_once(':')?;
        if id.is_empty() || id.len() > 64 {
            return None;
        }
        match kind {
            "a" => Some(Cursor::After(id.to_string())),
            "b" => Some(Cursor::Before(id.to_string())),
            _ => None,
        }
    }
}

/// Who made a change, as recorded in its audit event. `None` fields are unknown or not
/// applicable (the engine itself acting: run lifecycle, scheduler).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub ip: Option<String>,
}

impl Actor {
    /// The engine itself.
    pub fn system() -> Actor {
        Actor::default()
    }
}

/// Filters for the audit log, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub limit: u32,
    pub cursor: Option<Cursor>,
    pub actions: Vec<String>,
    pub project_ids: Vec<String>,
    pub user_id: Option<String>,
    /// RFC 3339, inclusive.
    pub created_after: Option<String>,
    /// RFC 3339, exclusive.
    pub created_before: Option<String>,
}

/// One stored audit event with its chain links (for verification).
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub seq: i64,
    pub id: String,
    pub body: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A secret as the API shows it: never its value.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretInfo {
    pub name: String,
    pub created: String,
    pub updated: String,
}

/// One page of a list, in the shape every list endpoint answers.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
// Component names may not hold `<>`: `FlowRecordPage`.
#[schemars(rename = "{T}Page")]
pub struct Page<T> {
    pub data: Vec<T>,
    /// The cursor of the next page; `null` on the last.
    #[schemars(required, extend("type" = ["string", "null"]))]
    pub next: Option<String>,
    /// The cursor of the previous page; `null` on the first.
    #[schemars(required, extend("type" = ["string", "null"]))]
    pub previous: Option<String>,
}

/// An installed plugin component as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPlugin {
    pub name: String,
    pub version: String,
    /// Hex SHA-256 of `component`.
    pub digest: String,
    pub component: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor::After("0190-abc".into());
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not base64!"), None);
        assert_eq!(Cursor::decode("eDp5"), None); // "x:y"
    }

    #[test]
    fn statuses_parse_and_print() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), *s);
        }
        assert!("DONE".parse::<RunStatus>().unwrap_err().contains("QUEUED"));
        assert!(RunStatus::Timeout.is_terminal());
        assert!(!RunStatus::Running.is_terminal());
    }
}

/// A signing secret of a destination, sealed; `expires` (epoch ms) is set on a rotated-out
/// secret, which keeps signing until then.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SealedSecret {
    pub sealed: String,
    pub expires: Option<i64>,
}

/// An event destination as stored (secret material sealed).
#[derive(Debug, Clone)]
pub struct DestinationRecord {
    pub id: String,
    pub platform_id: String,
    pub project_id: String,
    /// PLATFORM receives every event; PROJECT only those of `project_id`.
    pub scope: DestinationScope,
    pub name: String,
    pub url: String,
    /// Actions delivered; empty means all.
    pub events: Vec<String>,
    pub enabled: bool,
    pub content_type: String,
    /// Custom header name → sealed value.
    pub headers: Vec<(String, String)>,
    pub token: String,
    pub secrets: Vec<SealedSecret>,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<String>,
    pub paused_until: Option<i64>,
    pub consecutive_failures: i64,
    pub created: String,
    pub updated: String,
}

/// An outbox entry due for delivery, with its destination.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// Also the `webhook-id`: the same on every retry.
    pub outbox_id: String,
    pub destination: DestinationRecord,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// A destination's delivery queue and breaker as `/metrics` samples them
/// ([`crate::store::Store::delivery_backlog`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationBacklog {
    pub id: String,
    /// PENDING outbox entries, counted up to the limit the query was given.
    pub pending: i64,
    /// When the oldest PENDING entry was created (ms since the epoch).
    pub oldest_pending_ms: Option<i64>,
    pub enabled: bool,
    /// Paused by the circuit breaker until then (ms since the epoch).
    pub paused_until: Option<i64>,
}

/// What happens to an outbox entry after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryNext {
    Delivered,
    Retry { at_ms: i64 },
    Failed,
}

/// The outcome of one delivery attempt and the destination's health after it.
#[derive(Debug, Clone)]
pub struct DeliveryResult {
    pub outbox_id: String,
    pub destination_id: String,
    pub attempt: i64,
    pub status_code: Option<u16>,
    pub duration_ms: f64,
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub next: DeliveryNext,
    pub consecutive_failures: i64,
    pub failing_since: Option<String>,
    pub paused_until: Option<i64>,
    /// Disable the destination with this reason (410 Gone, failing for 5 days).
    pub disable: Option<String>,
}

/// Which FAILED deliveries of a destination to send again: one event, or those created in a
/// time range (RFC 3339; both bounds optional), or all.
#[derive(Debug, Clone, Default)]
pub struct Redelivery {
    pub event_id: Option<String>,
    pub created_after: Option<String>,
    pub created_before: Option<String>,
}

/// A recorded delivery attempt, as the API shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    pub id: String,
    pub event_id: String,
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub duration_ms: f64,
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub created: String,
}

/// A person as the store and the API show them: never the password hash.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    pub id: String,
    pub platform_id: String,
    pub email: String,
    pub name: String,
    pub platform_role: Option<Role>,
    pub disabled: bool,
    pub created: String,
    pub updated: String,
}

/// A person about to be created; `email` is lower-cased by the store.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub platform_role: Option<Role>,
}

/// Changes to a person; `None` leaves a field alone (`platform_role: Some(None)` removes it).
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub platform_role: Option<Option<Role>>,
    pub disabled: Option<bool>,
}

/// A project.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRecord {
    pub id: String,
    pub platform_id: String,
    pub name: String,
    pub created: String,
}

/// A person's role in a project.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberRecord {
    pub project_id: String,
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created: String,
}

/// A signed-in session; `id` is the SHA-256 of the cookie, never the cookie itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: String,
    pub csrf: String,
    pub ip: Option<String>,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    /// Absolute expiry, epoch ms.
    pub expires_ms: i64,
}

/// An API key as stored: its hash is never read back out of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub platform_id: String,
    /// `None`: a platform-wide key.
    pub project_id: Option<String>,
    pub name: String,
    pub role: Role,
    /// The first characters of the key, for recognising it in a list.
    pub prefix: String,
    pub expires_ms: Option<i64>,
    pub last_used_ms: Option<i64>,
    pub revoked: Option<String>,
    pub created: String,
    pub created_by: Option<String>,
}

/// A key about to be stored: `hash` is the SHA-256 of the key shown once to its creator.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub project_id: Option<String>,
    pub name: String,
    pub role: Role,
    pub prefix: String,
    pub hash: String,
    pub expires_ms: Option<i64>,
}

/// An invitation to a project; the one-time token is stored only as its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRecord {
    pub id: String,
    pub project_id: String,
    pub email: String,
    pub role: Role,
    pub expires_ms: i64,
    pub accepted: Option<String>,
    pub created: String,
    pub created_by: Option<String>,
}

/// Who owns a flow, run or destination: the one project it belongs to, or (a PLATFORM
/// destination) the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Platform,
    Project(String),
}

/// The kinds of record whose owner the access check looks up by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owned {
    Flow,
    Run,
    Destination,
}
