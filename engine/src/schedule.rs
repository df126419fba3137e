//! Cron triggers. Every tick of a scheduled flow becomes an event like any webhook delivery,
//! keyed `cron:<tick time>` so that the event table's deduplication makes each tick fire exactly
//! once — also when several processes share a database.

use crate::flow::{Trigger, validate::parse_cron};
use crate::queue::Queue;
use crate::registry::FlowRegistry;
use crate::store::{Accepted, DynStore, Environment, NewEvent, Scope, new_id};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the scheduler looks for due ticks.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// Ticks missed while the server was down are not replayed beyond this window.
const CATCH_UP: chrono::Duration = chrono::Duration::seconds(60);

/// Fires due cron ticks until shutdown.
pub async fn run(
    store: DynStore,
    flows: Arc<FlowRegistry>,
    queue: Arc<Queue>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_check: DateTime<Utc> = Utc::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        let now = Utc::now();
        match fire_due(&store, &flows, last_check.max(now - CATCH_UP), now).await {
            Ok(0) => {}
            Ok(_) => queue.wake(),
            Err(error) => tracing::error!(%error, "scheduler failed"),
        }
        last_check = now;
    }
}

/// Queues a run for every tick in `(after, until]` of every scheduled flow. Returns how many
/// runs were newly queued.
pub async fn fire_due(
    store: &DynStore,
    flows: &FlowRegistry,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let mut queued = 0;
    for active in flows.scheduled().await? {
        let Trigger::Schedule { cron } = &active.flow.trigger else {
            continue;
        };
        let schedule = parse_cron(cron).map_err(anyhow::Error::msg)?;
        for tick in schedule.after(&after).take_while(|t| *t <= until) {
            let at = tick.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let body = json!({ "type": "schedule", "scheduledAt": at, "cron": cron });
            let event = NewEvent {
                event_id: new_id(),
                run_id: new_id(),
                flow_id: active.record.id.clone(),
                flow_version: active.record.version,
                scope: Scope {
                    platform_id: active.record.platform_id.clone(),
                    project_id: active.record.project_id.clone(),
                },
                event_key: Some(format!("cron:{at}")),
                environment: Environment::Production,
                headers: json!({}),
                body: body.to_string(),
                lease: None,
            };
            if let Accepted::New { .. } = store.accept_event(event).await? {
                queued += 1;
            }
        }
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Actor;

    /// A disabled scheduled flow does not fire; enabled again, it does (the registry's list of
    /// scheduled flows holds only flows that may serve).
    #[tokio::test]
    async fn a_disabled_schedule_does_not_fire() {
        let (_dir, store, flows) = crate::registry::test_registry().await;
        let actor = Actor::system();
        let scope = Scope {
            platform_id: "default".into(),
            project_id: "default".into(),
        };
        let definition = json!({"name": "tick", "trigger": {"type": "schedule", "cron": "* * * * *"},
                                "steps": []});
        let id = flows
            .create(&actor, &scope, definition)
            .await
            .unwrap()
            .record
            .id
            .clone();
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:30Z")
            .unwrap()
            .with_timezone(&Utc);
        let minutes = |n: i64| start + chrono::Duration::minutes(n);

        flows.set_enabled(&actor, &id, false).await.unwrap();
        assert_eq!(
            fire_due(&store, &flows, start, minutes(3)).await.unwrap(),
            0
        );
        flows.set_enabled(&actor, &id, true).await.unwrap();
        assert_eq!(
            fire_due(&store, &flows, minutes(3), minutes(5))
                .await
                .unwrap(),
            2
        );
    }
}
