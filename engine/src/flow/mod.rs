//! Flow definitions: the model, its validation, templates, conditions and
//! router decisions. Everything the rest of the engine needs is re-exported
//! here so callers do not depend on the internal file layout.

pub mod calendar;
pub mod changes;
pub mod condition;
pub mod hosts;
pub mod model;
pub mod recipients;
pub mod router;
pub mod script;
pub mod template;
pub mod validate;

pub use condition::{ConditionResult, apply_operator, evaluate_condition, evaluate_groups};
pub use model::{
    ActionStep, Branch, Condition, Flow, Operator, PluginRef, RetryPolicy, RouterMode, RouterStep,
    Span, Step, StepIter, SyncAnswer, ThresholdStep, Trigger, WebhookAuth,
};
pub use recipients::RecipientPattern;
pub use router::{BranchEvaluation, RouterDecision, decide};
pub use template::{PathSegment, Template, check, lookup, parse_path, render, render_str};
pub use validate::{
    Format, MAX_ATTEMPTS, MAX_NAME_CHARS, MAX_ROUTER_DEPTH, MAX_STEPS, MAX_TIMEOUT_MS, Problem,
    Problems, flow_from_value, parse_cron, parse_document, parse_flow, validate_value,
};
