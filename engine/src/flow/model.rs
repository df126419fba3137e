//! Typed model of a flow definition.
//!
//! These types are what the rest of the engine works with once a definition
//! has been accepted by [`super::validate`]. They (de)serialize with
//! camelCase field names so a stored flow round-trips through JSON or YAML
//! unchanged; the validator, not serde, is responsible for friendly errors.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Used by `skip_serializing_if` so default `false` flags stay out of the
/// serialized form (keeps exported flows short).
fn is_false(b: &bool) -> bool {
    !*b
}

/// Lets optional fields be written as `null` (e.g. an empty `input:` in
/// YAML) and still get their default instead of a deserialization error.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A complete workflow: what starts it and which steps run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Flow {
    /// Human readable name shown in the UI and logs (1..=200 chars).
    pub name: String,
    /// Optional free text so operators can explain what the flow is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What starts a run of this flow.
    pub trigger: Trigger,
    /// Example payloads (event type -> payload) used by the editor and test
    /// runs; kept verbatim, never interpreted by the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_data: Option<Map<String, Value>>,
    /// Top-level steps, run in order.
    pub steps: Vec<Step>,
}

/// What starts a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Trigger {
    /// An HTTP request to the flow's webhook URL, optionally authenticated.
    Webhook {
        /// How incoming requests must authenticate; `none` by default.
        #[serde(default, deserialize_with = "null_as_default")]
        auth: WebhookAuth,
        /// What a `/sync` caller gets when no step set a response: the run's id and status
        /// (`summary`, the default), or the whole run record (`run`: every step's input, output
        /// and logs, for callers the flow trusts with them).
        #[serde(
            default,
            rename = "syncResponse",
            skip_serializing_if = "SyncAnswer::is_default"
        )]
        sync_response: SyncAnswer,
    },
    /// A cron schedule (5-field standard, or 6/7-field with seconds).
    Schedule {
        /// The cron expression as written by the user; use
        /// [`super::validate::parse_cron`] to get a schedule.
        cron: String,
    },
}

/// What a `/sync` webhook caller receives when no `respond` step set a response.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum SyncAnswer {
    /// `{id, flowId, status, error?, durationMs}`: nothing a step read or wrote.
    #[default]
    Summary,
    /// The whole run record, as `GET /v1/flow-runs/{id}` shows it.
    Run,
}

impl SyncAnswer {
    fn is_default(&self) -> bool {
        *self == SyncAnswer::Summary
    }
}

/// Authentication required from webhook callers, so audit endpoints are not
/// open to anyone who learns the URL.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum WebhookAuth {
    /// No authentication (the URL itself is the secret).
    #[default]
    None,
    /// A fixed header must carry a fixed token (e.g. GitLab's
    /// `X-Gitlab-Event-Streaming-Token`).
    Header {
        /// Header name to read.
        header: String,
        /// Expected header value.
        value: String,
    },
    /// HTTP Basic authentication.
    Basic {
        /// Expected user name.
        username: String,
        /// Expected password.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// Expected bearer token.
        token: String,
    },
    /// Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`), as sent by e.g. Activepieces.
    StandardWebhooks {
        /// Signing secret, `whsec_` followed by base64.
        secret: String,
    },
}

/// What a credential reads as in API answers: the same mask destination header values get.
/// A save that sends it back keeps the stored credential (see [`restore_masked_credentials`]).
pub const CREDENTIAL_MASK: &str = "********";

/// What a trigger credential sealed at rest starts with; `<nonce>:<ciphertext>` (base64)
/// follow. Sealing is `secrets`' business; validation only needs to recognise the form.
pub const SEALED_CREDENTIAL: &str = "hookflow-sealed:v1:";

/// The fields of `trigger.auth` that hold a credential, by auth type. Usernames and header
/// names are not secret; these are what the API masks and what may name a project secret.
pub const CREDENTIAL_FIELDS: &[(&str, &str)] = &[
    ("header", "value"),
    ("basic", "password"),
    ("bearer", "token"),
    ("standardWebhooks", "secret"),
];

/// The project secret a credential names when it is exactly `{{secrets.NAME}}` (spaces just
/// inside the braces allowed); `None` for a literal credential or any other template.
pub fn secret_reference(value: &str) -> Option<&str> {
    let inner = value.strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let name = inner.strip_prefix("secrets.")?;
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    valid.then_some(name)
}

/// The credential field of a raw `trigger.auth` object, when its type has one.
fn credential_field(auth: &Map<String, Value>) -> Option<&'static str> {
    let kind = auth.get("type")?.as_str()?;
    CREDENTIAL_FIELDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, field)| *field)
}

/// Replaces a literal webhook credential in a raw flow definition with [`CREDENTIAL_MASK`], so
/// an API answer never carries it. A `{{secrets.NAME}}` reference stays as written: it names
/// a secret, it is not one.
pub fn mask_credentials(definition: &mut Value) {
    if let Some((_, value)) = literal_credential_mut(definition) {
        *value = CREDENTIAL_MASK.to_string();
    }
}

/// The literal credential of a raw flow definition's `trigger.auth` and the field holding it
/// (`token`, `value`, …): what the API masks and what is sealed at rest. `None` when the auth
/// type has no credential or the credential is a `{{secrets.NAME}}` reference.
pub fn literal_credential_mut(definition: &mut Value) -> Option<(&'static str, &mut String)> {
    let auth = definition
        .pointer_mut("/trigger/auth")
        .and_then(Value::as_object_mut)?;
    let field = credential_field(auth)?;
    match auth.get_mut(field) {
        Some(Value::String(value)) if secret_reference(value).is_none() => Some((field, value)),
        _ => None,
    }
}

/// Puts the stored credential back where a new definition sends [`CREDENTIAL_MASK`] for the
/// same auth type, so a client that saves what it read keeps the credential. A mask with no
/// stored credential of that type to stand for stays, and validation refuses it; so it may be
/// asked of several stored definitions in turn, the first holding one wins.
pub fn restore_masked_credentials(definition: &mut Value, stored: &Value) {
    let Some(old) = stored.pointer("/trigger/auth").and_then(Value::as_object) else {
        return;
    };
    let Some(auth) = definition
        .pointer_mut("/trigger/auth")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let Some(field) = credential_field(auth) else {
        return;
    };
    if auth.get(field).and_then(Value::as_str) != Some(CREDENTIAL_MASK)
        || old.get("type") != auth.get("type")
    {
        return;
    }
    if let Some(Value::String(value)) = old.get(field) {
        auth.insert(field.to_string(), Value::String(value.clone()));
    }
}

impl WebhookAuth {
    /// The credential, when this mode has one.
    fn credential_mut(&mut self) -> Option<&mut String> {
        match self {
            WebhookAuth::None => None,
            WebhookAuth::Header { value, .. } => Some(value),
            WebhookAuth::Basic { password, .. } => Some(password),
            WebhookAuth::Bearer { token } => Some(token),
            WebhookAuth::StandardWebhooks { secret } => Some(secret),
        }
    }

    /// The credential, when this mode has one.
    pub fn credential(&self) -> Option<&str> {
        match self {
            WebhookAuth::None => None,
            WebhookAuth::Header { value, .. } => Some(value),
            WebhookAuth::Basic { password, .. } => Some(password),
            WebhookAuth::Bearer { token } => Some(token),
            WebhookAuth::StandardWebhooks { secret } => Some(secret),
        }
    }

    /// The project secret the credential names (`{{secrets.NAME}}`), if it names one.
    pub fn secret_name(&self) -> Option<&str> {
        self.credential().and_then(secret_reference)
    }

    /// This auth with its `{{secrets.NAME}}` credential replaced by `value`.
    pub fn with_credential(&self, value: &str) -> WebhookAuth {
        let mut resolved = self.clone();
        if let Some(credential) = resolved.credential_mut() {
            *credential = value.to_string();
        }
        resolved
    }
}

/// One step of a flow: a branching router, a plugin action, or a windowed count.
// Built once per flow save and shared behind `Arc`; boxing actions would only add indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Step {
    /// Chooses which nested branch(es) run.
    Router(RouterStep),
    /// Calls a plugin.
    Action(ActionStep),
    /// Counts events per key over a sliding window; runs `crossed` when the count reaches
    /// the threshold.
    Threshold(ThresholdStep),
}

impl Step {
    /// The step's unique name, whatever its kind; templates refer to step
    /// outputs through it (`steps.<name>.output`).
    pub fn name(&self) -> &str {
        match self {
            Step::Router(r) => &r.name,
            Step::Action(a) => &a.name,
            Step::Threshold(t) => &t.name,
        }
    }

    /// The action, if this step is one (saves a `match` at call sites).
    pub fn as_action(&self) -> Option<&ActionStep> {
        match self {
            Step::Action(a) => Some(a),
            _ => None,
        }
    }

    /// The router, if this step is one (saves a `match` at call sites).
    pub fn as_router(&self) -> Option<&RouterStep> {
        match self {
            Step::Router(r) => Some(r),
            _ => None,
        }
    }
}

/// A windowed count (Sigma's `event_count` / `value_count` correlation, Tines' and Panther's
/// thresholds): events are grouped by a key and counted over a sliding window in event time;
/// the event that brings a key's count to `threshold` runs the `crossed` steps, and the key
/// then stays quiet for `suppressFor`. See [`crate::detect`] for the exact semantics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdStep {
    /// Unique step name.
    pub name: String,
    /// Template naming the group an event counts for, e.g.
    /// `{{trigger.body.userEmail}}|{{trigger.body.ip}}`.
    pub group_by: String,
    /// Length of the sliding window.
    pub window: Span,
    /// Count at which the step fires (1..=1000).
    pub threshold: u32,
    /// Template whose distinct values are counted instead of events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_distinct: Option<String>,
    /// Quiet period after an alert; the window when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppress_for: Option<Span>,
    /// Template for the event's own time; when omitted the body's `created`, `time`,
    /// `created_at`, `timestamp`, `date` or `data.date` is used, else the arrival time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    /// Template for the event's identity, so a redelivery never counts twice; when omitted
    /// the body's `id` or `log_id`, the `webhook-id` header, else the run id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Steps run by the event that crosses the threshold.
    #[serde(default, deserialize_with = "null_as_default")]
    pub crossed: Vec<Step>,
}

impl ThresholdStep {
    /// The quiet period after an alert, in milliseconds.
    pub fn suppress_ms(&self) -> i64 {
        self.suppress_for.unwrap_or(self.window).millis() as i64
    }
}

/// A duration written as text (`90s`, `10m`, `1h30m`, `7d`, `250ms`), kept in milliseconds
/// and written back in its shortest form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(u64);

impl Span {
    /// A span of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Span {
        Span(ms)
    }

    /// The span in milliseconds.
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// Parses `<number><unit>` parts (units `ms`, `s`, `m`, `h`, `d`), e.g. `1h30m`.
    pub fn parse(text: &str) -> Result<Span, String> {
        let bad = || format!("invalid duration {text:?} (write e.g. 30s, 10m, 1h30m or 7d)");
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total: u64 = 0;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            if digits == 0 {
                return Err(bad());
            }
            let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            total = number
                .checked_mul(unit)
                .and_then(|ms| total.checked_add(ms))
                .ok_or_else(bad)?;
        }
        Ok(Span(total))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        if rest == 0 {
            return f.write_str("0s");
        }
        for (unit, ms) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
            ("ms", 1),
        ] {
            if rest >= ms {
                write!(f, "{}{unit}", rest / ms)?;
                rest %= ms;
            }
        }
        Ok(())
    }
}

impl schemars::JsonSchema for Span {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Span".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration: numbers with units ms, s, m, h, d (`90s`, `1h30m`, `7d`).",
            "pattern": "^([0-9]+(ms|s|m|h|d))+$"
        })
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A router: evaluates branch conditions and runs the selected branches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouterStep {
    /// Unique step name.
    pub name: String,
    /// Whether only the first or every matching branch runs; defaults to
    /// `firstMatch` when omitted.
    #[serde(default, deserialize_with = "null_as_default")]
    pub mode: RouterMode,
    /// Candidate branches, in evaluation order (at least one).
    pub branches: Vec<Branch>,
}

/// How many matching branches of a router run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum RouterMode {
    /// Only the first matching branch (like `if / else if`).
    #[default]
    FirstMatch,
    /// Every matching branch, in order.
    AllMatch,
}

/// One branch of a router.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Branch {
    /// Free text label shown in traces.
    pub name: String,
    /// A fallback branch has no conditions and runs only when no other
    /// branch matched (at most one per router).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub fallback: bool,
    /// Condition groups: the conditions of a group are AND'ed, the groups
    /// are OR'ed. Empty for the fallback branch.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub when: Vec<Vec<Condition>>,
    /// Steps run when the branch is selected.
    #[serde(default, deserialize_with = "null_as_default")]
    pub steps: Vec<Step>,
}

/// A single comparison, evaluated with Activepieces' semantics (see
/// [`super::condition`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// First operand; any JSON value, strings may hold templates.
    pub left: Value,
    /// The comparison.
    pub operator: Operator,
    /// Second operand; present exactly for binary operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right: Option<Value>,
    /// Text comparisons lowercase both sides unless this is set (only used
    /// by `TEXT_*`, `LIST_CONTAINS` and `LIST_DOES_NOT_CONTAIN`).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub case_sensitive: bool,
    /// IANA time zone (`Europe/Berlin`) the calendar operators read the date in; UTC when
    /// absent. Only allowed with those operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// The 22 Activepieces branch operators, with the same wire names so
/// conditions can be copied between the two systems, and hookflow's four calendar operators
/// (see [`super::calendar`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operator {
    /// Left text contains right text.
    TextContains,
    /// Left text does not contain right text.
    TextDoesNotContain,
    /// Texts are equal.
    TextExactlyMatches,
    /// Texts differ.
    TextDoesNotExactlyMatch,
    /// Left text starts with right text.
    TextStartsWith,
    /// Left text does not start with right text.
    TextDoesNotStartWith,
    /// Left text ends with right text.
    TextEndsWith,
    /// Left text does not end with right text.
    TextDoesNotEndWith,
    /// Left list has an item equal (as text) to right.
    ListContains,
    /// Left list has no item equal (as text) to right.
    ListDoesNotContain,
    /// Left is a list with no items.
    ListIsEmpty,
    /// Left is a list with items.
    ListIsNotEmpty,
    /// Left number is greater than right number.
    NumberIsGreaterThan,
    /// Left number is less than right number.
    NumberIsLessThan,
    /// Numbers are equal.
    NumberIsEqualTo,
    /// Left is truthy.
    BooleanIsTrue,
    /// Left is falsy.
    BooleanIsFalse,
    /// Left date is after right date.
    DateIsAfter,
    /// Left date is before right date.
    DateIsBefore,
    /// Dates are the same instant.
    DateIsEqual,
    /// Left is neither null nor the empty string.
    Exists,
    /// Left is null or the empty string.
    DoesNotExist,
    /// Left date's wall-clock time in `timeZone` is in the right range (`08:00-18:00`).
    TimeOfDayIsBetween,
    /// Left date's wall-clock time in `timeZone` is outside the right range.
    TimeOfDayIsNotBetween,
    /// Left date falls, in `timeZone`, on one of the right days (`Sat,Sun`, `Mon-Fri`).
    DayOfWeekIs,
    /// Left date falls, in `timeZone`, on none of the right days.
    DayOfWeekIsNot,
}

impl Operator {
    /// Every operator, so validation can list and look them up.
    pub const ALL: [Operator; 26] = [
        Operator::TextContains,
        Operator::TextDoesNotContain,
        Operator::TextExactlyMatches,
        Operator::TextDoesNotExactlyMatch,
        Operator::TextStartsWith,
        Operator::TextDoesNotStartWith,
        Operator::TextEndsWith,
        Operator::TextDoesNotEndWith,
        Operator::ListContains,
        Operator::ListDoesNotContain,
        Operator::ListIsEmpty,
        Operator::ListIsNotEmpty,
        Operator::NumberIsGreaterThan,
        Operator::NumberIsLessThan,
        Operator::NumberIsEqualTo,
        Operator::BooleanIsTrue,
        Operator::BooleanIsFalse,
        Operator::DateIsAfter,
        Operator::DateIsBefore,
        Operator::DateIsEqual,
        Operator::Exists,
        Operator::DoesNotExist,
        Operator::TimeOfDayIsBetween,
        Operator::TimeOfDayIsNotBetween,
        Operator::DayOfWeekIs,
        Operator::DayOfWeekIsNot,
    ];

    /// The wire name (`TEXT_CONTAINS`...), used in messages and traces.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::TextContains => "TEXT_CONTAINS",
            Operator::TextDoesNotContain => "TEXT_DOES_NOT_CONTAIN",
            Operator::TextExactlyMatches => "TEXT_EXACTLY_MATCHES",
            Operator::TextDoesNotExactlyMatch => "TEXT_DOES_NOT_EXACTLY_MATCH",
            Operator::TextStartsWith => "TEXT_STARTS_WITH",
            Operator::TextDoesNotStartWith => "TEXT_DOES_NOT_START_WITH",
            Operator::TextEndsWith => "TEXT_ENDS_WITH",
            Operator::TextDoesNotEndWith => "TEXT_DOES_NOT_END_WITH",
            Operator::ListContains => "LIST_CONTAINS",
            Operator::ListDoesNotContain => "LIST_DOES_NOT_CONTAIN",
            Operator::ListIsEmpty => "LIST_IS_EMPTY",
            Operator::ListIsNotEmpty => "LIST_IS_NOT_EMPTY",
            Operator::NumberIsGreaterThan => "NUMBER_IS_GREATER_THAN",
            Operator::NumberIsLessThan => "NUMBER_IS_LESS_THAN",
            Operator::NumberIsEqualTo => "NUMBER_IS_EQUAL_TO",
            Operator::BooleanIsTrue => "BOOLEAN_IS_TRUE",
            Operator::BooleanIsFalse => "BOOLEAN_IS_FALSE",
            Operator::DateIsAfter => "DATE_IS_AFTER",
            Operator::DateIsBefore => "DATE_IS_BEFORE",
            Operator::DateIsEqual => "DATE_IS_EQUAL",
            Operator::Exists => "EXISTS",
            Operator::DoesNotExist => "DOES_NOT_EXIST",
            Operator::TimeOfDayIsBetween => "TIME_OF_DAY_IS_BETWEEN",
            Operator::TimeOfDayIsNotBetween => "TIME_OF_DAY_IS_NOT_BETWEEN",
            Operator::DayOfWeekIs => "DAY_OF_WEEK_IS",
            Operator::DayOfWeekIsNot => "DAY_OF_WEEK_IS_NOT",
        }
    }

    /// The calendar operators, which read the date in the condition's `timeZone`.
    pub fn is_calendar(self) -> bool {
        matches!(
            self,
            Operator::TimeOfDayIsBetween
                | Operator::TimeOfDayIsNotBetween
                | Operator::DayOfWeekIs
                | Operator::DayOfWeekIsNot
        )
    }

    /// Unary operators only look at `left`; `right` must be absent.
    pub fn is_unary(self) -> bool {
        matches!(
            self,
            Operator::ListIsEmpty
                | Operator::ListIsNotEmpty
                | Operator::Exists
                | Operator::DoesNotExist
                | Operator::BooleanIsTrue
                | Operator::BooleanIsFalse
        )
    }

    /// Whether `caseSensitive` changes the result of this operator.
    pub fn uses_case_sensitivity(self) -> bool {
        matches!(
            self,
            Operator::TextContains
                | Operator::TextDoesNotContain
                | Operator::TextExactlyMatches
                | Operator::TextDoesNotExactlyMatch
                | Operator::TextStartsWith
                | Operator::TextDoesNotStartWith
                | Operator::TextEndsWith
                | Operator::TextDoesNotEndWith
                | Operator::ListContains
                | Operator::ListDoesNotContain
        )
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Operator {
    type Err = String;

    /// Parses a wire name exactly (case-sensitive, like serde does).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operator::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| format!("unknown operator {s:?}"))
    }
}

/// A step that runs a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionStep {
    /// Unique step name.
    pub name: String,
    /// Which plugin (and version) to call.
    pub plugin: PluginRef,
    /// Plugin input; strings may contain templates. Defaults to `{}`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub input: Map<String, Value>,
    /// Retry behaviour on failure; defaults to a single attempt.
    #[serde(default, deserialize_with = "null_as_default")]
    pub retry: RetryPolicy,
    /// When set, a failure of this step does not fail the run.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub continue_on_failure: bool,
    /// Per-attempt time limit in milliseconds (1..=300000); engine default
    /// when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Hosts this step may reach over HTTP (`https://hooks.slack.com`,
    /// `https://*.example.com:8443`). None means no network at all.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub allowed_hosts: Vec<String>,
    /// Addresses this step may e-mail (`ops@example.com`, `*@example.com`,
    /// `*@*.example.com`). None means no e-mail at all.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub allowed_recipients: Vec<String>,
    /// Secret names granted to this step (`{{secrets.NAME}}` in its input, or the host call).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub secrets: Vec<String>,
}

/// A plugin reference `name@version`, pinned so a flow keeps working when a
/// newer plugin version is installed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct PluginRef {
    /// Plugin name, `^[a-z0-9][a-z0-9-]*$`.
    pub name: String,
    /// Version, `x.y.z` with optional `-pre` / `+build` suffixes.
    pub version: String,
}

impl PluginRef {
    /// Parses and checks `name@version`; the error explains which part is
    /// wrong so validation can report it.
    pub fn parse(s: &str) -> Result<PluginRef, String> {
        let Some((name, version)) = s.split_once('@') else {
            return Err(format!("expected \"name@version\", got {s:?}"));
        };
        if !valid_plugin_name(name) {
            return Err(format!(
                "invalid plugin name {name:?} (expected lowercase letters, digits and '-', not starting with '-')"
            ));
        }
        if !valid_version(version) {
            return Err(format!(
                "invalid plugin version {version:?} (expected x.y.z)"
            ));
        }
        Ok(PluginRef {
            name: name.to_owned(),
            version: version.to_owned(),
        })
    }
}

/// `^[a-z0-9][a-z0-9-]*$`
fn valid_plugin_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_lowercase() || b.is_ascii_digit() => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `x.y.z` (decimal numbers) optionally followed by `-pre` and/or `+build`
/// made of `[0-9A-Za-z.-]`.
fn valid_version(version: &str) -> bool {
    let (core, build) = match version.split_once('+') {
        Some((c, b)) => (c, Some(b)),
        None => (version, None),
    };
    let (core, pre) = match core.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (core, None),
    };
    let ident_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    let nums: Vec<&str> = core.split('.').collect();
    nums.len() == 3
        && nums
            .iter()
            .all(|n| !n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit()))
        && pre.is_none_or(ident_ok)
        && build.is_none_or(ident_ok)
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

impl FromStr for PluginRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PluginRef::parse(s)
    }
}

impl TryFrom<String> for PluginRef {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        PluginRef::parse(&s)
    }
}

impl From<PluginRef> for String {
    fn from(p: PluginRef) -> String {
        p.to_string()
    }
}

/// Default for [`RetryPolicy::max_attempts`]: no retry.
fn default_max_attempts() -> u32 {
    1
}

/// Default for [`RetryPolicy::initial_backoff_ms`].
fn default_initial_backoff_ms() -> u64 {
    500
}

/// Default for [`RetryPolicy::max_backoff_ms`].
fn default_max_backoff_ms() -> u64 {
    30_000
}

/// How often and how patiently a failed action is retried (exponential
/// backoff, so flaky endpoints are not hammered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Total attempts including the first (1..=10).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Delay after the first failed attempt.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Upper bound of the delay.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
        }
    }
}

impl RetryPolicy {
    /// Delay to wait after failed attempt number `attempt` (1-based; 0 is
    /// treated as 1): `initial * 2^(attempt-1)`, capped at `max`. Saturating,
    /// so huge attempt numbers cannot overflow.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(63);
        let factor = 1u64.checked_shl(exp).unwrap_or(u64::MAX);
        // Flows saved before the cap existed are held to it too.
        let ms = self
            .initial_backoff_ms
            .saturating_mul(factor)
            .min(self.max_backoff_ms)
            .min(super::validate::MAX_BACKOFF_MS);
        Duration::from_millis(ms)
    }
}

/// Depth-first, pre-order iterator over every step of a flow (nested ones
/// included), in the order they appear in the definition.
#[derive(Debug, Clone)]
pub struct StepIter<'a> {
    stack: Vec<std::slice::Iter<'a, Step>>,
}

impl<'a> Iterator for StepIter<'a> {
    type Item = &'a Step;

    fn next(&mut self) -> Option<&'a Step> {
        loop {
            let top = self.stack.last_mut()?;
            match top.next() {
                None => {
                    self.stack.pop();
                }
                Some(step) => {
                    match step {
                        Step::Router(r) => {
                            for b in r.branches.iter().rev() {
                                self.stack.push(b.steps.iter());
                            }
                        }
                        Step::Threshold(t) => self.stack.push(t.crossed.iter()),
                        Step::Action(_) => {}
                    }
                    return Some(step);
                }
            }
        }
    }
}

impl Flow {
    /// Serializes to a JSON value (camelCase); parsing it back with
    /// [`super::validate::flow_from_value`] yields an equal flow.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a Flow always serializes: all map keys are strings")
    }

    /// Every step, nested ones included, depth-first in definition order.
    pub fn all_steps(&self) -> StepIter<'_> {
        StepIter {
            stack: vec![self.steps.iter()],
        }
    }

    /// Every action step, nested ones included, e.g. to check that all
    /// referenced plugins are installed.
    pub fn action_steps(&self) -> impl Iterator<Item = &ActionStep> {
        self.all_steps().filter_map(Step::as_action)
    }

    /// Every action step with the path of the step in the definition
    /// (`steps[0].branches[1].steps[0]`), so callers can report problems
    /// such as `steps[0].branches[1].steps[0].plugin: not installed`.
    pub fn action_steps_with_paths(&self) -> Vec<(String, &ActionStep)> {
        fn walk<'a>(steps: &'a [Step], list: &str, out: &mut Vec<(String, &'a ActionStep)>) {
            for (i, step) in steps.iter().enumerate() {
                let path = format!("{list}[{i}]");
                match step {
                    Step::Action(a) => out.push((path, a)),
                    Step::Router(r) => {
                        for (j, b) in r.branches.iter().enumerate() {
                            walk(&b.steps, &format!("{path}.branches[{j}].steps"), out);
                        }
                    }
                    Step::Threshold(t) => walk(&t.crossed, &format!("{path}.crossed"), out),
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.steps, "steps", &mut out);
        out
    }

    /// Finds a step (nested ones included) by its unique name.
    pub fn find_step(&self, name: &str) -> Option<&Step> {
        self.all_steps().find(|s| s.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Flow {
        serde_json::from_value(json!({
            "name": "f",
            "trigger": {"type": "webhook"},
            "steps": [
                {"name": "route", "type": "router", "mode": "allMatch", "branches": [
                    {"name": "a", "when": [[{"left": "{{x}}", "operator": "EXISTS"}]], "steps": [
                        {"name": "inner", "type": "action", "plugin": "log@0.1.0"}
                    ]},
                    {"name": "b", "fallback": true, "steps": [
                        {"name": "r2", "type": "router", "branches": [
                            {"name": "c", "when": [[{"left": 1, "operator": "NUMBER_IS_EQUAL_TO", "right": 1, "caseSensitive": true}]], "steps": [
                                {"name": "deep", "type": "action", "plugin": "slack@1.2.3-beta.1"}
                            ]}
                        ]}
                    ]}
                ]},
                {"name": "notify", "type": "action", "plugin": "log@0.1.0", "input": {"m": "hi"},
                 "retry": {"maxAttempts": 3}, "continueOnFailure": true, "timeoutMs": 1000}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn defaults_apply() {
        let f = sample();
        assert_eq!(
            f.trigger,
            Trigger::Webhook {
                auth: WebhookAuth::None,
                sync_response: SyncAnswer::Summary,
            }
        );
        let Step::Action(n) = &f.steps[1] else {
            panic!()
        };
        assert_eq!(n.retry.max_attempts, 3);
        assert_eq!(n.retry.initial_backoff_ms, 500);
        assert_eq!(n.retry.max_backoff_ms, 30_000);
        let Step::Router(r2) = f.find_step("r2").unwrap() else {
            panic!()
        };
        assert_eq!(r2.mode, RouterMode::FirstMatch);
        let inner = f.find_step("inner").unwrap().as_action().unwrap();
        assert_eq!(inner.retry, RetryPolicy::default());
        assert!(inner.input.is_empty());
    }

    #[test]
    fn round_trip() {
        let f = sample();
        let v = f.to_value();
        let back: Flow = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, f);
        // Defaults that equal false/None are omitted.
        assert!(v["steps"][0]["branches"][0].get("fallback").is_none());
        assert_eq!(v["trigger"]["auth"], json!({"type": "none"}));
        assert_eq!(v["steps"][1]["plugin"], json!("log@0.1.0"));
    }

    #[test]
    fn iteration_and_lookup() {
        let f = sample();
        let names: Vec<&str> = f.all_steps().map(Step::name).collect();
        assert_eq!(names, ["route", "inner", "r2", "deep", "notify"]);
        let actions: Vec<&str> = f.action_steps().map(|a| a.name.as_str()).collect();
        assert_eq!(actions, ["inner", "deep", "notify"]);
        let paths: Vec<(String, &str)> = f
            .action_steps_with_paths()
            .into_iter()
            .map(|(p, a)| (p, a.name.as_str()))
            .collect();
        assert_eq!(
            paths,
            [
                ("steps[0].branches[0].steps[0]".to_owned(), "inner"),
                (
                    "steps[0].branches[1].steps[0].branches[0].steps[0]".to_owned(),
                    "deep"
                ),
                ("steps[1]".to_owned(), "notify"),
            ]
        );
        assert!(f.find_step("missing").is_none());
        assert!(f.find_step("route").unwrap().as_router().is_some());
    }

    #[test]
    fn spans_parse_and_print_shortest() {
        for (text, ms, shown) in [
            ("1h", 3_600_000, "1h"),
            ("90s", 90_000, "1m30s"),
            ("1h30m", 5_400_000, "1h30m"),
            ("7d", 604_800_000, "7d"),
            ("250ms", 250, "250ms"),
            ("0s", 0, "0s"),
        ] {
            let span = Span::parse(text).unwrap();
            assert_eq!(span.millis(), ms, "{text}");
            assert_eq!(span.to_string(), shown);
            assert_eq!(Span::parse(shown).unwrap(), span);
        }
        for bad in [
            "",
            "h",
            "10",
            "10 m",
            "1w",
            "-1s",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn threshold_steps_nest_and_round_trip() {
        let flow: Flow = serde_json::from_value(json!({
            "name": "f", "trigger": {"type": "webhook"},
            "steps": [{"name": "count", "type": "threshold", "groupBy": "{{trigger.body.ip}}",
                       "window": "10m", "threshold": 11,
                       "crossed": [{"name": "alert", "type": "action", "plugin": "log@0.1.0"}]}]
        }))
        .unwrap();
        let names: Vec<&str> = flow.all_steps().map(Step::name).collect();
        assert_eq!(names, ["count", "alert"]);
        let paths: Vec<String> = flow
            .action_steps_with_paths()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(paths, ["steps[0].crossed[0]"]);
        let Step::Threshold(t) = &flow.steps[0] else {
            panic!()
        };
        assert_eq!(t.suppress_ms(), 600_000);
        let back: Flow = serde_json::from_value(flow.to_value()).unwrap();
        assert_eq!(back, flow);
        assert_eq!(flow.to_value()["steps"][0]["window"], json!("10m"));
    }

    #[test]
    fn plugin_ref() {
        let p = PluginRef::parse("log@0.1.0").unwrap();
        assert_eq!(p.name, "log");
        assert_eq!(p.version, "0.1.0");
        assert_eq!(p.to_string(), "log@0.1.0");
        assert!(PluginRef::parse("http-request@10.20.30+build.5").is_ok());
        for bad in [
            "log",
            "Log@0.1.0",
            "-x@1.0.0",
            "log@1.0",
            "log@1.0.0.0",
            "log@v1.0.0",
            "@1.0.0",
            "log@1.0.0-",
            "a b@1.0.0",
        ] {
            assert!(PluginRef::parse(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_value::<PluginRef>(json!("nope")).is_err());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let r = RetryPolicy {
            max_attempts: 5,
            initial_backoff_ms: 200,
            max_backoff_ms: 1000,
        };
        assert_eq!(r.backoff(0), Duration::from_millis(200));
        assert_eq!(r.backoff(1), Duration::from_millis(200));
        assert_eq!(r.backoff(2), Duration::from_millis(400));
        assert_eq!(r.backoff(3), Duration::from_millis(800));
        assert_eq!(r.backoff(4), Duration::from_millis(1000));
        assert_eq!(r.backoff(u32::MAX), Duration::from_millis(1000));
    }

    #[test]
    fn operators() {
        assert_eq!(Operator::ALL.len(), 26);
        assert_eq!(Operator::ALL.iter().filter(|o| o.is_calendar()).count(), 4);
        for op in Operator::ALL {
            let v = serde_json::to_value(op).unwrap();
            assert_eq!(v, json!(op.as_str()));
            assert_eq!(op.as_str().parse::<Operator>().unwrap(), op);
        }
        assert_eq!(Operator::ALL.iter().filter(|o| o.is_unary()).count(), 6);
        assert!("TEXT_EQ".parse::<Operator>().is_err());
    }

    #[test]
    fn credentials_name_secrets_and_are_masked_and_restored() {
        assert_eq!(secret_reference("{{secrets.HOOK}}"), Some("HOOK"));
        assert_eq!(secret_reference("{{ secrets.a-b.c }}"), Some("a-b.c"));
        for not in [
            "secrets.HOOK",
            "{{secrets.}}",
            "x{{secrets.A}}",
            "{{trigger.a}}",
            "{{secrets.A B}}",
        ] {
            assert_eq!(secret_reference(not), None, "{not}");
        }
        let bearer = WebhookAuth::Bearer {
            token: "{{secrets.T}}".into(),
        };
        assert_eq!(bearer.secret_name(), Some("T"));
        assert_eq!(
            bearer.with_credential("v"),
            WebhookAuth::Bearer { token: "v".into() }
        );
        assert_eq!(WebhookAuth::None.secret_name(), None);

        let stored = json!({"trigger": {"type": "webhook", "auth": {"type": "header", "header": "X-T", "value": "lit"}}});
        let mut shown = stored.clone();
        mask_credentials(&mut shown);
        assert_eq!(shown["trigger"]["auth"]["value"], CREDENTIAL_MASK);
        assert_eq!(
            shown["trigger"]["auth"]["header"], "X-T",
            "a header name is no secret"
        );
        let mut back = shown.clone();
        restore_masked_credentials(&mut back, &stored);
        assert_eq!(back, stored);
        // Another auth type: the mask stands for nothing and stays (validation refuses it).
        let mut other = json!({"trigger": {"type": "webhook", "auth": {"type": "bearer", "token": CREDENTIAL_MASK}}});
        restore_masked_credentials(&mut other, &stored);
        assert_eq!(other["trigger"]["auth"]["token"], CREDENTIAL_MASK);
        // References are shown as written.
        let mut reference = json!({"trigger": {"type": "webhook", "auth": {"type": "basic", "username": "u", "password": "{{secrets.P}}"}}});
        mask_credentials(&mut reference);
        assert_eq!(reference["trigger"]["auth"]["password"], "{{secrets.P}}");
    }
}
