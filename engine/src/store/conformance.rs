//! The backend-agnostic store suite: every scenario is written once against [`DynStore`] and runs
//! on SQLite (on a temporary file) and on PostgreSQL (in a fresh database per test that is
//! dropped afterwards).
//!
//! PostgreSQL tests connect to `HOOKFLOW_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/postgres`, and need the right to create databases.
//!
//! Scenarios that are about several processes sharing a database use [`Harness::peer`]: on
//! PostgreSQL that is a second, independent store (its own pool and batch writers) on
//! the same database, as another server process would have; on SQLite, where one process owns
//! the database, it is the same store.

use super::*;
use crate::audit::verify;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// No scenario may take longer than this; a hang fails the test instead of blocking the run.
const SCENARIO_LIMIT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// One backend under test, with whatever keeps its database alive.
pub struct Harness {
    store: DynStore,
    postgres: Option<pg::TempDatabase>,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open_sqlite(&dir.path().join("hookflow.db"))
            .await
            .expect("open sqlite store");
        Harness {
            store,
            postgres: None,
            _dir: Some(dir),
        }
    }

    async fn postgres() -> Harness {
        let database = pg::TempDatabase::create().await;
        let store = open_postgres(&database.url).await;
        Harness {
            store,
            postgres: Some(database),
            _dir: None,
        }
    }

    /// A second handle on the same database, as another server process would have.
    async fn peer(&self) -> DynStore {
        if let Some(database) = &self.postgres {
            return open_postgres(&database.url).await;
        }
        self.store.clone()
    }
}

/// Opens SQLite as a server does (lock, migrations, recovery), without fsync per commit.
async fn open_sqlite(path: &std::path::Path) -> StoreResult<DynStore> {
    let options = OpenOptions {
        sqlite_synchronous_full: false,
        ..OpenOptions::default()
    };
    Ok(open(&DatabaseUrl::Sqlite(path.to_path_buf()), &options)
        .await?
        .store)
}

async fn open_postgres(url: &str) -> DynStore {
    open(
        &DatabaseUrl::Postgres(url.to_string()),
        &OpenOptions::default(),
    )
    .await
    .expect("open postgres store")
    .store
}

mod pg {
    use sqlx::{Connection, Executor, PgConnection};

    /// A database created for one test and dropped (connections and all) when the test ends,
    /// also when it fails.
    pub struct TempDatabase {
        admin_url: String,
        pub name: String,
        pub url: String,
    }

    pub fn admin_url() -> String {
        std::env::var("HOOKFLOW_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    impl TempDatabase {
        pub async fn create() -> TempDatabase {
            let admin_url = admin_url();
            let name = format!("hookflow_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = PgConnection::connect(&admin_url)
                .await
                .expect("connect to PostgreSQL (set HOOKFLOW_TEST_POSTGRES_URL)");
            admin
                .execute(format!("CREATE DATABASE \"{name}\"").as_str())
                .await
                .expect("create test database");
            let _ = admin.close().await;
            let base = admin_url
                .rsplit_once('/')
                .map(|(base, _)| base.to_string())
                .expect("database url with a path");
            TempDatabase {
                url: format!("{base}/{name}"),
                admin_url,
                name,
            }
        }
    }

    impl Drop for TempDatabase {
        fn drop(&mut self) {
            let admin_url = self.admin_url.clone();
            let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
            // Drop runs inside the test's runtime: do the async cleanup on a thread of its own.
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime.block_on(async {
                    let mut admin = PgConnection::connect(&admin_url)
                        .await
                        .map_err(|e| e.to_string())?;
                    admin
                        .execute(statement.as_str())
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok::<_, String>(())
                })
            })
            .join();
            if let Ok(Err(error)) = dropped {
                eprintln!("could not drop test database {}: {error}", self.name);
            }
        }
    }
}

/// Declares each scenario once per backend: `on_sqlite::<name>` and `on_postgres::<name>`.
macro_rules! conformance {
    ($($name:ident),+ $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let harness = super::Harness::sqlite().await;
                    tokio::time::timeout(super::SCENARIO_LIMIT, super::$name(harness))
                        .await
                        .expect("scenario timed out");
                }
            )+
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let harness = super::Harness::postgres().await;
                    tokio::time::timeout(super::SCENARIO_LIMIT, super::$name(harness))
                        .await
                        .expect("scenario timed out");
                }
            )+
        }
    };
}

conformance!(
    flows_crud_and_cursors,
    flow_drafts_publish_and_enable,
    accept_event_dedups,
    concurrent_duplicates_make_one_run,
    a_batch_commits_whole_or_not_at_all,
    concurrent_claims_never_share_a_run,
    leases_renew_release_and_expire,
    accept_with_a_lease_starts_the_run_for_its_receiver,
    finish_applies_once_and_only_for_the_owner,
    retry_keeps_steps_and_requeues,
    a_deferred_run_waits_its_turn_and_keeps_its_steps,
    claims_share_slots_fairly_across_flows,
    record_finished_run_and_list_runs,
    secrets_round_trip,
    audit_chain_filters_and_retention,
    concurrent_audit_appends_keep_one_chain,
    destinations_crud_and_outbox,
    run_retention_deletes_finished_runs_in_batches,
    concurrent_delivery_claims_share_nothing,
    delivery_batches_keep_order,
    flow_memory_first_sighting,
    flow_cache_lifetimes_limits_and_peers,
    stored_plugins_round_trip_with_their_audit_event,
    a_stored_plugin_is_removed_only_when_no_flow_uses_it,
    audit_chain_goes_on_after_retention_empties_the_table,
    audit_events_from_before_the_keyed_chain_keep_verifying,
    a_bad_request_fails_alone_in_its_batch,
    a_panicking_write_fails_alone,
    people_memberships_and_sessions,
    api_keys_invitations_and_owners,
    window_updates_are_atomic_across_processes,
);

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn scope() -> Scope {
    Scope {
        platform_id: "default".into(),
        project_id: "default".into(),
    }
}

fn actor() -> Actor {
    Actor {
        user_id: Some("user-1".into()),
        user_email: Some("ops@example.com".into()),
        ip: Some("192.0.2.7".into()),
    }
}

async fn flow(store: &DynStore, name: &str) -> FlowRecord {
    store
        .create_flow(
            &actor(),
            &scope(),
            name,
            &json!({"trigger": {"type": "webhook"}, "steps": []}),
        )
        .await
        .expect("create flow")
}

fn event(flow_id: &str, key: Option<&str>) -> NewEvent {
    NewEvent {
        event_id: new_id(),
        run_id: new_id(),
        flow_id: flow_id.to_string(),
        flow_version: 1,
        scope: scope(),
        event_key: key.map(str::to_string),
        environment: Environment::Production,
        headers: json!({"content-type": "application/json"}),
        body: json!({"id": key, "data": {"n": 1}}).to_string(),
        lease: None,
    }
}

async fn accept_new(store: &DynStore, flow_id: &str, key: Option<&str>) -> String {
    match store
        .accept_event(event(flow_id, key))
        .await
        .expect("accept")
    {
        Accepted::New { run_id } => run_id,
        other => panic!("expected a new run, got {other:?}"),
    }
}

fn step(name: &str, seq: i64, status: StepStatus) -> StepRecord {
    StepRecord {
        name: name.to_string(),
        seq,
        kind: StepKind::Action,
        status,
        input: Some(json!({"in": name})),
        output: (status == StepStatus::Succeeded).then(|| json!({"out": seq})),
        error: (status == StepStatus::Failed).then(|| "boom".to_string()),
        attempts: 1,
        duration_ms: 1.5,
        detail: None,
    }
}

fn outcome(run_id: &str, owner: &str, status: RunStatus, steps: Vec<StepRecord>) -> RunOutcome {
    RunOutcome {
        run_id: run_id.to_string(),
        owner: owner.to_string(),
        status,
        error: (status == RunStatus::Failed).then(|| "step b failed".to_string()),
        duration_ms: 12.4,
        steps,
    }
}

/// Audit envelopes with one of `actions`, newest first (all pages).
async fn audit_events(store: &DynStore, actions: &[&str]) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor = None;
    for _ in 0..100 {
        let page = store
            .list_audit(&AuditFilter {
                limit: 100,
                cursor: cursor.take(),
                actions: actions.iter().map(|a| a.to_string()).collect(),
                ..AuditFilter::default()
            })
            .await
            .expect("list audit");
        all.extend(page.data);
        match page.next {
            Some(next) => cursor = Cursor::decode(&next),
            None => return all,
        }
    }
    panic!("audit log did not end within 100 pages");
}

async fn assert_chain_verifies(store: &DynStore) -> u64 {
    let report = verify(store, audit::key(), None).await.expect("read chain");
    assert!(report.intact, "audit chain broken: {:?}", report.problems);
    report.events
}

/// Deletes the oldest stored events through `last_seq` as retention does: with a signed
/// checkpoint of the range.
async fn retire_through(store: &DynStore, last_seq: i64) -> u64 {
    let rows = store.audit_chain_rows(0, 1000).await.expect("chain");
    let range: Vec<_> = rows.iter().filter(|r| r.seq <= last_seq).collect();
    let mut checkpoint = audit::Checkpoint {
        first_seq: range[0].seq,
        last_seq,
        count: range.len() as i64,
        prev_hash: range[0].prev_hash.clone(),
        last_hash: range[range.len() - 1].hash.clone(),
        archive_digest: None,
        created: now_text(),
        mac: String::new(),
    };
    checkpoint.mac = checkpoint.expected_mac(audit::key());
    store.retire_audit(&checkpoint).await.expect("retire")
}

fn destination(id: &str, events: &[&str]) -> DestinationRecord {
    let now = now_text();
    DestinationRecord {
        id: id.to_string(),
        platform_id: "default".into(),
        project_id: "default".into(),
        scope: DestinationScope::Platform,
        name: format!("dest {id}"),
        url: "https://example.com/hook".into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        enabled: true,
        content_type: "application/json".into(),
        headers: vec![("x-team".into(), "sealed:abc".into())],
        token: "sealed:token".into(),
        secrets: vec![SealedSecret {
            sealed: "sealed:secret".into(),
            expires: None,
        }],
        disabled_reason: None,
        failing_since: None,
        paused_until: None,
        consecutive_failures: 0,
        created: now.clone(),
        updated: now,
    }
}

fn delivery(due: &DueDelivery, next: DeliveryNext, disable: Option<&str>) -> DeliveryResult {
    DeliveryResult {
        outbox_id: due.outbox_id.clone(),
        destination_id: due.destination.id.clone(),
        attempt: due.attempts + 1,
        status_code: Some(if next == DeliveryNext::Delivered {
            200
        } else {
            503
        }),
        duration_ms: 3.0,
        error: (next != DeliveryNext::Delivered).then(|| "unavailable".to_string()),
        response_body: Some("ok".into()),
        next,
        consecutive_failures: 0,
        failing_since: None,
        paused_until: None,
        disable: disable.map(str::to_string),
    }
}

fn payload_action(due: &DueDelivery) -> String {
    let body: Value = serde_json::from_str(&due.payload).expect("payload is JSON");
    body["action"].as_str().unwrap_or_default().to_string()
}

// ---------------------------------------------------------------------------------------------
// Flows
// ---------------------------------------------------------------------------------------------

/// A draft is stored but does not replace the published version until it is published; a
/// plain update still publishes (and supersedes a draft); disable/enable flip the state once,
/// each with its audit event; `flow.updated` carries what changed.
async fn flow_drafts_publish_and_enable(h: Harness) {
    let store = &h.store;
    let step = |name: &str, url: &str| json!({"name": name, "plugin": "http@1.0.0", "input": {"url": url}});
    let f = flow(store, "life").await;
    let (state_rec, state) = store
        .get_flow_with_state(&f.id)
        .await
        .expect("state")
        .expect("exists");
    assert_eq!(state_rec.version, 1);
    assert_eq!(
        state,
        FlowState {
            enabled: true,
            draft_version: None
        }
    );

    let v2 =
        json!({"name": "life", "trigger": {"type": "webhook"}, "steps": [step("a", "http://1")]});
    let (published, draft) = store
        .save_flow_draft(&actor(), &f.id, &v2)
        .await
        .expect("save draft");
    assert_eq!((published.version, draft), (1, 2));
    let live = store.get_flow(&f.id).await.expect("get").expect("exists");
    assert_eq!(
        live.version, 1,
        "a draft does not replace the published version"
    );
    assert_eq!(live.definition["steps"], json!([]));
    let stored = store
        .get_flow_version(&f.id, 2)
        .await
        .expect("v2")
        .expect("the draft is a stored version");
    assert_eq!(stored.definition, v2);

    // A second draft takes the next number and replaces the first as the pending one.
    let v3 = json!({"name": "life", "trigger": {"type": "webhook"},
                    "steps": [step("a", "http://2"), step("b", "http://1")]});
    let (_, draft) = store
        .save_flow_draft(&actor(), &f.id, &v3)
        .await
        .expect("second draft");
    assert_eq!(draft, 3);
    let record = store.publish_flow(&actor(), &f.id).await.expect("publish");
    assert_eq!((record.version, &record.definition), (3, &v3));
    let (live, state) = store
        .get_flow_with_state(&f.id)
        .await
        .expect("state")
        .expect("exists");
    assert_eq!((live.version, state.draft_version), (3, None));
    assert!(matches!(
        store.publish_flow(&actor(), &f.id).await,
        Err(StoreError::Conflict(_))
    ));

    // A plain update publishes, superseding a pending draft, and numbers after it.
    store
        .save_flow_draft(&actor(), &f.id, &v2)
        .await
        .expect("draft 4");
    let v5 = json!({"name": "renamed", "trigger": {"type": "webhook"}, "steps": [step("b", "http://1")]});
    let updated = store
        .update_flow(&actor(), &f.id, "renamed", &v5)
        .await
        .expect("update");
    assert_eq!(updated.version, 5);
    let (_, state) = store
        .get_flow_with_state(&f.id)
        .await
        .expect("state")
        .expect("exists");
    assert_eq!(state.draft_version, None);

    let disabled = store
        .set_flow_enabled(&actor(), &f.id, false)
        .await
        .expect("disable")
        .expect("exists");
    assert!(!disabled.1.enabled);
    // Disabling twice changes nothing and writes no second event.
    store
        .set_flow_enabled(&actor(), &f.id, false)
        .await
        .expect("disable again");
    store
        .set_flow_enabled(&actor(), &f.id, true)
        .await
        .expect("enable")
        .expect("exists");
    assert!(
        store
            .set_flow_enabled(&actor(), "no-such-flow", true)
            .await
            .expect("enable unknown")
            .is_none()
    );

    let published = audit_events(store, &["flow.published"]).await;
    let versions: Vec<&Value> = published
        .iter()
        .map(|e| &e["data"]["flow"]["version"])
        .collect();
    assert_eq!(versions, [&json!(5), &json!(3)]);
    assert_eq!(audit_events(store, &["flow.deactivated"]).await.len(), 1);
    assert_eq!(audit_events(store, &["flow.activated"]).await.len(), 1);
    let updates = audit_events(store, &["flow.updated"]).await;
    assert_eq!(updates.len(), 4);
    // Newest first: the update to v5 (from draft 4), then draft 4, draft 3, draft 2.
    assert_eq!(updates[0]["data"]["draft"], false);
    assert_eq!(
        updates[0]["data"]["changes"]["name"],
        json!({"from": "life", "to": "renamed"})
    );
    assert_eq!(
        updates[0]["data"]["changes"]["steps"]["removed"],
        json!(["a"])
    );
    assert_eq!(
        updates[0]["data"]["changes"]["steps"]["added"],
        json!(["b"])
    );
    assert_eq!(updates[2]["data"]["draft"], true);
    assert_eq!(
        updates[2]["data"]["changes"]["steps"],
        json!({"added": ["b"], "removed": [], "changed": ["a"]})
    );
    assert_chain_verifies(store).await;
}

async fn flows_crud_and_cursors(h: Harness) {
    let store = &h.store;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(flow(store, &format!("flow {i}")).await.id);
    }
    let mut newest_first = ids.clone();
    newest_first.sort();
    newest_first.reverse();

    let page1 = store.list_flows(2, None, None).await.expect("page 1");
    let names = |p: &Page<FlowRecord>| p.data.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
    assert_eq!(names(&page1), newest_first[..2]);
    assert!(page1.previous.is_none());
    let page2 = store
        .list_flows(
            2,
            Cursor::decode(page1.next.as_deref().expect("page 1 has next")),
            None,
        )
        .await
        .expect("page 2");
    assert_eq!(names(&page2), newest_first[2..4]);
    assert!(page2.previous.is_some());
    let page3 = store
        .list_flows(
            2,
            Cursor::decode(page2.next.as_deref().expect("page 2 has next")),
            None,
        )
        .await
        .expect("page 3");
    assert_eq!(names(&page3), newest_first[4..]);
    assert!(page3.next.is_none());
    let back = store
        .list_flows(
            2,
            Cursor::decode(page2.previous.as_deref().expect("previous")),
            None,
        )
        .await
        .expect("back to page 1");
    assert_eq!(names(&back), newest_first[..2]);
    assert!(
        back.previous.is_none(),
        "nothing is newer than the first page"
    );
    assert!(back.next.is_some());

    let first = &ids[0];
    let updated = store
        .update_flow(&actor(), first, "renamed", &json!({"v": 2}))
        .await
        .expect("update");
    assert_eq!((updated.version, updated.name.as_str()), (2, "renamed"));
    assert_eq!(updated.definition, json!({"v": 2}));
    let current = store.get_flow(first).await.expect("get").expect("exists");
    assert_eq!((current.version, current.definition), (2, json!({"v": 2})));
    let v1 = store
        .get_flow_version(first, 1)
        .await
        .expect("v1")
        .expect("v1 exists");
    assert_eq!(v1.definition["trigger"]["type"], "webhook");
    assert!(
        store
            .get_flow_version(first, 3)
            .await
            .expect("v3")
            .is_none()
    );
    assert!(matches!(
        store
            .update_flow(&actor(), "no-such-flow", "x", &json!({}))
            .await,
        Err(StoreError::NotFound(_))
    ));

    let gone = &ids[1];
    assert!(store.delete_flow(&actor(), gone).await.expect("delete"));
    assert!(
        !store
            .delete_flow(&actor(), gone)
            .await
            .expect("delete again")
    );
    assert!(store.get_flow(gone).await.expect("get deleted").is_none());
    assert!(
        store
            .get_flow_version(gone, 1)
            .await
            .expect("old version")
            .is_some()
    );
    assert!(matches!(
        store.update_flow(&actor(), gone, "x", &json!({})).await,
        Err(StoreError::NotFound(_))
    ));
    let all = store.list_flows(10, None, None).await.expect("list");
    assert_eq!(all.data.len(), 4);
    assert!(all.data.iter().all(|f| &f.id != gone));

    let created = audit_events(store, &["flow.created"]).await;
    assert_eq!(created.len(), 5);
    let updated = audit_events(store, &["flow.updated"]).await;
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["data"]["flow"]["version"], 2);
    assert_eq!(updated[0]["userId"], "user-1");
    let deleted = audit_events(store, &["flow.deleted"]).await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["data"]["flow"]["id"], gone.as_str());
    // The envelope has the same fields, in the same order, on every backend.
    let keys: Vec<&str> = deleted[0]
        .as_object()
        .expect("envelope object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "created",
            "updated",
            "platformId",
            "projectId",
            "userId",
            "userEmail",
            "ip",
            "action",
            "data"
        ]
    );
    assert_chain_verifies(store).await;
}

// ---------------------------------------------------------------------------------------------
// Intake
// ---------------------------------------------------------------------------------------------

async fn accept_event_dedups(h: Harness) {
    let store = &h.store;
    let a = flow(store, "a").await.id;
    let b = flow(store, "b").await.id;
    let first = event(&a, Some("evt-1"));
    let first_run = first.run_id.clone();
    assert_eq!(
        store.accept_event(first.clone()).await.expect("accept"),
        Accepted::New {
            run_id: first_run.clone()
        }
    );
    let again = event(&a, Some("evt-1"));
    let again_run = again.run_id.clone();
    assert_eq!(
        store.accept_event(again).await.expect("accept duplicate"),
        Accepted::Duplicate {
            run_id: first_run.clone()
        }
    );
    assert!(store.get_run(&again_run).await.expect("get").is_none());
    // No key never deduplicates; the same key on another flow is another event.
    accept_new(store, &a, None).await;
    accept_new(store, &a, None).await;
    accept_new(store, &b, Some("evt-1")).await;

    let run = store.get_run(&first_run).await.expect("get").expect("run");
    assert_eq!(run.summary.status, RunStatus::Queued);
    assert_eq!(run.summary.attempt, 0);
    assert_eq!(run.summary.event_id, first.event_id);
    assert_eq!(run.summary.flow_id, a);
    assert!(run.summary.created.ends_with('Z') && run.summary.created.len() == 24);
    assert_eq!(run.trigger["body"]["id"], "evt-1");
    assert_eq!(run.trigger["headers"]["content-type"], "application/json");
    assert!(run.steps.is_empty());

    let runs = store
        .list_runs(&RunFilter {
            flow_id: Some(a.clone()),
            limit: 10,
            ..RunFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(runs.data.len(), 3);
    assert_eq!(store.queue_depth().await.expect("depth"), (4, 0));
}

async fn concurrent_duplicates_make_one_run(h: Harness) {
    let store = h.store.clone();
    let peer = h.peer().await;
    let flow_id = flow(&store, "dup").await.id;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let target = if i % 2 == 0 {
            store.clone()
        } else {
            peer.clone()
        };
        let e = event(&flow_id, Some("same-event"));
        tasks.push(tokio::spawn(async move { target.accept_event(e).await }));
    }
    let mut new_runs = Vec::new();
    let mut duplicates = Vec::new();
    for task in tasks {
        match task.await.expect("task").expect("accept") {
            Accepted::New { run_id } => new_runs.push(run_id),
            Accepted::Duplicate { run_id } => duplicates.push(run_id),
        }
    }
    assert_eq!(new_runs.len(), 1, "exactly one delivery creates the run");
    assert_eq!(duplicates.len(), 39);
    assert!(duplicates.iter().all(|r| *r == new_runs[0]));

    // Distinct events accepted concurrently are all kept.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let target = if i % 2 == 0 {
            store.clone()
        } else {
            peer.clone()
        };
        let e = event(&flow_id, Some(&format!("distinct-{i}")));
        tasks.push(tokio::spawn(async move { target.accept_event(e).await }));
    }
    for task in tasks {
        assert!(matches!(
            task.await.expect("task").expect("accept"),
            Accepted::New { .. }
        ));
    }
    let runs = store
        .list_runs(&RunFilter {
            flow_id: Some(flow_id),
            limit: 100,
            ..RunFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(runs.data.len(), 41);
}

/// A webhook batch (`accept_events`): each event deduplicated on its own key (against stored
/// events and earlier elements of the same batch), all its runs in one transaction, and a batch
/// that fails on one element stores none of them.
async fn a_batch_commits_whole_or_not_at_all(h: Harness) {
    let store = h.store.clone();
    let flow_id = flow(&store, "batch").await.id;
    let stored_run = accept_new(&store, &flow_id, Some("evt-1")).await;

    let batch = vec![
        event(&flow_id, Some("evt-2")),
        event(&flow_id, Some("evt-1")),
        event(&flow_id, None),
        event(&flow_id, Some("evt-2")),
    ];
    let (first_run, keyless_run) = (batch[0].run_id.clone(), batch[2].run_id.clone());
    let skipped = [batch[1].run_id.clone(), batch[3].run_id.clone()];
    let answers = store.accept_events(batch).await.expect("accept batch");
    assert_eq!(
        answers,
        [
            Accepted::New {
                run_id: first_run.clone()
            },
            Accepted::Duplicate {
                run_id: stored_run.clone()
            },
            Accepted::New {
                run_id: keyless_run.clone()
            },
            Accepted::Duplicate {
                run_id: first_run.clone()
            },
        ]
    );
    for run_id in &skipped {
        assert!(store.get_run(run_id).await.expect("get").is_none());
    }
    let run = store.get_run(&first_run).await.expect("get").expect("run");
    assert_eq!(run.summary.status, RunStatus::Queued);
    assert_eq!(run.trigger["body"]["id"], "evt-2");
    assert_eq!(store.queue_depth().await.expect("depth"), (3, 0));

    // Redelivered: every keyed element is a duplicate of its first run; nothing new is stored.
    let again = store
        .accept_events(vec![
            event(&flow_id, Some("evt-2")),
            event(&flow_id, Some("evt-1")),
        ])
        .await
        .expect("redeliver");
    assert_eq!(
        again,
        [
            Accepted::Duplicate {
                run_id: first_run.clone()
            },
            Accepted::Duplicate {
                run_id: stored_run.clone()
            },
        ]
    );
    assert_eq!(store.queue_depth().await.expect("depth"), (3, 0));

    // All or nothing: an element the database refuses (its event id is taken) fails the batch,
    // and the good elements before and after it are not stored either.
    let stored_event = store
        .get_run(&stored_run)
        .await
        .expect("get")
        .expect("run")
        .summary
        .event_id;
    let mut bad = event(&flow_id, Some("evt-4"));
    bad.event_id = stored_event;
    let good = [
        event(&flow_id, Some("evt-3")),
        event(&flow_id, Some("evt-5")),
    ];
    let error = store
        .accept_events(vec![good[0].clone(), bad, good[1].clone()])
        .await
        .expect_err("a bad element fails the batch");
    assert!(error.is_data_error(), "{error:?}");
    for e in &good {
        assert!(store.get_run(&e.run_id).await.expect("get").is_none());
    }
    assert_eq!(store.queue_depth().await.expect("depth"), (3, 0));
    // Their keys were not taken: the same events sent again are new.
    let retried = store
        .accept_events(good.to_vec())
        .await
        .expect("retry the good ones");
    assert!(retried.iter().all(|a| matches!(a, Accepted::New { .. })));
    assert_eq!(store.queue_depth().await.expect("depth"), (5, 0));

    // Overlapping batches from two processes at once: one run per key, the rest duplicates of it.
    let peer = h.peer().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let target = if i % 2 == 0 {
            store.clone()
        } else {
            peer.clone()
        };
        let mut keys: Vec<String> = (0..20).map(|k| format!("shared-{k}")).collect();
        if i % 3 == 0 {
            keys.reverse();
        }
        let events = keys.iter().map(|k| event(&flow_id, Some(k))).collect();
        tasks.push(tokio::spawn(
            async move { target.accept_events(events).await },
        ));
    }
    let mut runs_by_key: HashMap<String, HashSet<String>> = HashMap::new();
    let mut new_runs = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        let answers = task.await.expect("task").expect("accept batch");
        let mut keys: Vec<String> = (0..20).map(|k| format!("shared-{k}")).collect();
        if i % 3 == 0 {
            keys.reverse();
        }
        for (key, answer) in keys.into_iter().zip(answers) {
            let (Accepted::New { run_id } | Accepted::Duplicate { run_id }) = &answer;
            new_runs += usize::from(matches!(answer, Accepted::New { .. }));
            runs_by_key.entry(key).or_default().insert(run_id.clone());
        }
    }
    assert_eq!(new_runs, 20, "one new run per key");
    assert!(runs_by_key.values().all(|runs| runs.len() == 1));
    assert_eq!(store.queue_depth().await.expect("depth"), (25, 0));
    assert_chain_verifies(&store).await;
}

// ---------------------------------------------------------------------------------------------
// Queue
// ---------------------------------------------------------------------------------------------

async fn concurrent_claims_never_share_a_run(h: Harness) {
    let store = h.store.clone();
    let peer = h.peer().await;
    let flow_id = flow(&store, "claims").await.id;
    let mut queued = HashSet::new();
    for i in 0..60 {
        queued.insert(accept_new(&store, &flow_id, Some(&format!("e{i}"))).await);
    }
    let claimer = |target: DynStore, owner: &'static str| {
        tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..200 {
                let batch = target.claim_runs(owner, 4, 60_000).await.expect("claim");
                if batch.is_empty() {
                    break;
                }
                mine.extend(batch);
            }
            mine
        })
    };
    let (a, b) = tokio::join!(claimer(store.clone(), "owner-a"), claimer(peer, "owner-b"));
    let (a, b) = (a.expect("task a"), b.expect("task b"));
    let mut seen = HashSet::new();
    for run in a.iter().chain(&b) {
        assert!(seen.insert(run.id.clone()), "run {} claimed twice", run.id);
        assert_eq!(run.attempt, 1);
        assert_eq!(run.flow_id, flow_id);
        assert!(run.prior_steps.is_empty());
        let body: Value = serde_json::from_str(&run.event_body).expect("body");
        assert!(body["id"].as_str().is_some_and(|k| k.starts_with('e')));
        assert_eq!(run.event_headers["content-type"], "application/json");
    }
    assert_eq!(seen, queued, "every queued run is claimed once");
    assert_eq!(store.queue_depth().await.expect("depth"), (0, 60));
    let started = audit_events(&store, &["flow.run.started"]).await;
    assert_eq!(started.len(), 60);
    assert_eq!(started[0]["data"]["flowRun"]["status"], "RUNNING");
    assert_eq!(started[0]["data"]["flowRun"]["flowDisplayName"], "claims");
    assert_chain_verifies(&store).await;
}

async fn leases_renew_release_and_expire(h: Harness) {
    let store = h.store.clone();
    let peer = h.peer().await;
    let flow_id = flow(&store, "leases").await.id;
    for i in 0..3 {
        accept_new(&store, &flow_id, Some(&format!("l{i}"))).await;
    }
    let claimed = store.claim_runs("a", 2, 60_000).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    let ids: Vec<String> = claimed.iter().map(|r| r.id.clone()).collect();
    assert_eq!(
        store.renew_leases("a", &ids, 60_000).await.expect("renew"),
        2
    );
    assert_eq!(
        store
            .renew_leases("a", &ids[..1], 60_000)
            .await
            .expect("renew one"),
        1,
        "only the runs named (those executing) are renewed"
    );
    assert_eq!(
        store
            .renew_leases("b", &ids, 60_000)
            .await
            .expect("renew other"),
        0
    );
    assert_eq!(store.requeue_expired().await.expect("nothing expired"), 0);
    assert_eq!(store.release_leases("a").await.expect("release"), 2);
    assert_eq!(store.queue_depth().await.expect("depth"), (3, 0));

    // A lease that is already over: every sweeper together re-queues each run once.
    let expired = store.claim_runs("a", 10, -1_000).await.expect("claim");
    assert_eq!(expired.len(), 3);
    let (x, y) = tokio::join!(store.requeue_expired(), peer.requeue_expired());
    assert_eq!(x.expect("sweep") + y.expect("sweep"), 3);
    assert_eq!(store.queue_depth().await.expect("depth"), (3, 0));
    let lost = &expired[0];
    let finished = store
        .finish_run(outcome(&lost.id, "a", RunStatus::Succeeded, vec![]))
        .await
        .expect("finish");
    assert!(!finished, "a finish after the lease was lost is ignored");

    let reclaimed = store.claim_runs("b", 10, 60_000).await.expect("reclaim");
    assert_eq!(reclaimed.len(), 3);
    assert!(reclaimed.iter().all(|r| r.attempt >= 2));
    assert_eq!(store.release_leases("b").await.expect("release all"), 3);
    assert_eq!(store.queue_depth().await.expect("depth"), (3, 0));
    let run = store.get_run(&lost.id).await.expect("get").expect("run");
    assert_eq!(run.summary.status, RunStatus::Queued);
    assert!(
        run.summary.started.is_some(),
        "the first start time is kept"
    );
}

/// `/sync` intake: the receiving process takes the run at once. It is never queued, so no other
/// claimer gets it; it finishes only for its owner; a duplicate is not started again; and if
/// the owner dies, the lease expires and the queue runs it like any other.
async fn accept_with_a_lease_starts_the_run_for_its_receiver(h: Harness) {
    let store = h.store.clone();
    let peer = h.peer().await;
    let flow_id = flow(&store, "inline").await.id;
    let leased = |key: &str, lease_ms: i64| NewEvent {
        lease: Some(Lease {
            owner: "receiver".into(),
            lease_ms,
        }),
        ..event(&flow_id, Some(key))
    };
    let first = leased("s1", 60_000);
    let run_id = first.run_id.clone();
    let queued = accept_new(&store, &flow_id, Some("q1")).await;
    assert_eq!(
        store.accept_event(first).await.expect("accept"),
        Accepted::New {
            run_id: run_id.clone()
        }
    );
    let run = store.get_run(&run_id).await.expect("get").expect("run");
    assert_eq!(run.summary.status, RunStatus::Running);
    assert_eq!(run.summary.attempt, 1);
    assert!(run.summary.started.is_some());
    assert_eq!(store.queue_depth().await.expect("depth"), (1, 1));
    let claimed = peer.claim_runs("other", 10, 60_000).await.expect("claim");
    assert_eq!(
        claimed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec![queued.as_str()],
        "a run taken at intake is not handed to another claimer"
    );
    let again = store
        .accept_event(leased("s1", 60_000))
        .await
        .expect("accept duplicate");
    assert_eq!(
        again,
        Accepted::Duplicate {
            run_id: run_id.clone()
        }
    );
    let started = audit_events(&store, &["flow.run.started"]).await;
    let mine: Vec<&Value> = started
        .iter()
        .filter(|e| e["data"]["flowRun"]["id"] == run_id.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "started once, not again for the duplicate");
    assert_eq!(mine[0]["data"]["flowRun"]["flowDisplayName"], "inline");
    assert_eq!(mine[0]["data"]["flowRun"]["attempt"], 1);
    assert!(
        !store
            .finish_run(outcome(&run_id, "other", RunStatus::Succeeded, vec![]))
            .await
            .expect("finish by another")
    );
    assert!(
        store
            .finish_run(outcome(&run_id, "receiver", RunStatus::Succeeded, vec![]))
            .await
            .expect("finish by receiver")
    );

    // The receiver died: its expired lease sends the run back to the queue.
    let orphan = leased("s2", -1_000);
    let orphan_id = orphan.run_id.clone();
    store.accept_event(orphan).await.expect("accept");
    assert_eq!(peer.requeue_expired().await.expect("sweep"), 1);
    let rescued = peer.claim_runs("other", 10, 60_000).await.expect("claim");
    assert_eq!(rescued.len(), 1);
    assert_eq!(rescued[0].id, orphan_id);
    assert_eq!(rescued[0].attempt, 2);
    assert_chain_verifies(&store).await;
}

async fn finish_applies_once_and_only_for_the_owner(h: Harness) {
    let store = h.store.clone();
    let peer = h.peer().await;
    let flow_id = flow(&store, "finish").await.id;
    let run_id = accept_new(&store, &flow_id, Some("f1")).await;
    let claimed = store.claim_runs("owner", 1, 60_000).await.expect("claim");
    assert_eq!(claimed.len(), 1);

    let intruder = outcome(&run_id, "someone-else", RunStatus::Failed, vec![]);
    assert!(
        !store
            .finish_run(intruder)
            .await
            .expect("finish by non-owner")
    );
    let run = store.get_run(&run_id).await.expect("get").expect("run");
    assert_eq!(run.summary.status, RunStatus::Running);

    let steps = vec![
        step("a", 0, StepStatus::Succeeded),
        step("b", 1, StepStatus::Succeeded),
    ];
    let done = outcome(&run_id, "owner", RunStatus::Succeeded, steps.clone());
    let (x, y) = tokio::join!(
        store.finish_run(done.clone()),
        peer.finish_run(done.clone())
    );
    let applied = [x.expect("finish"), y.expect("finish")];
    assert_eq!(
        applied.iter().filter(|a| **a).count(),
        1,
        "exactly one finish applies"
    );
    assert!(!store.finish_run(done).await.expect("finish again"));

    let run = store.get_run(&run_id).await.expect("get").expect("run");
    assert_eq!(run.summary.status, RunStatus::Succeeded);
    assert!(run.summary.finished.is_some());
    assert_eq!(run.summary.duration_ms, Some(12.4));
    assert_eq!(run.steps, steps);
    let finished = audit_events(&store, &["flow.run.finished"]).await;
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0]["data"]["flowRun"]["status"], "SUCCEEDED");
    assert_eq!(finished[0]["data"]["flowRun"]["duration"], 12);

    // Many finishes at once (one group commit or several) all apply.
    for i in 0..30 {
        accept_new(&store, &flow_id, Some(&format!("many-{i}"))).await;
    }
    let claimed = store.claim_runs("owner", 30, 60_000).await.expect("claim");
    assert_eq!(claimed.len(), 30);
    let mut tasks = Vec::new();
    for (i, run) in claimed.into_iter().enumerate() {
        let target = if i % 2 == 0 {
            store.clone()
        } else {
            peer.clone()
        };
        let o = outcome(
            &run.id,
            "owner",
            RunStatus::Succeeded,
            vec![step("a", 0, StepStatus::Succeeded)],
        );
        tasks.push(tokio::spawn(async move { target.finish_run(o).await }));
    }
    for task in tasks {
        assert!(task.await.expect("task").expect("finish"));
    }
    assert_eq!(store.queue_depth().await.expect("depth"), (0, 0));
    assert_eq!(audit_events(&store, &["flow.run.finished"]).await.len(), 31);
    assert_chain_verifies(&store).await;
}

async fn retry_keeps_steps_and_requeues(h: Harness) {
    let store = &h.store;
    let flow_id = flow(store, "retry").await.id;
    let run_id = accept_new(store, &flow_id, Some("r1")).await;
    assert!(matches!(
        store.retry_run(&actor(), &run_id).await,
        Err(StoreError::Conflict(_))
    ));
    store.claim_runs("w", 1, 60_000).await.expect("claim");
    let steps = vec![
        step("a", 0, StepStatus::Succeeded),
        step("b", 1, StepStatus::Failed),
    ];
    assert!(
        store
            .finish_run(outcome(&run_id, "w", RunStatus::Failed, steps.clone()))
            .await
            .expect("finish")
    );

    let summary = store.retry_run(&actor(), &run_id).await.expect("retry");
    assert_eq!(summary.status, RunStatus::Queued);
    assert_eq!(summary.attempt, 1);
    assert!(summary.finished.is_none() && summary.error.is_none());
    assert!(matches!(
        store.retry_run(&actor(), &run_id).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.retry_run(&actor(), "no-such-run").await,
        Err(StoreError::NotFound(_))
    ));
    let retried = audit_events(store, &["flow.run.retried"]).await;
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0]["data"]["flowRun"]["attempt"], 2);
    assert_eq!(retried[0]["userEmail"], "ops@example.com");

    let claimed = store
        .claim_runs("w2", 5, 60_000)
        .await
        .expect("claim again");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempt, 2);
    assert_eq!(claimed[0].prior_steps, steps);
    let fixed = vec![step("b", 1, StepStatus::Succeeded)];
    assert!(
        store
            .finish_run(outcome(&run_id, "w2", RunStatus::Succeeded, fixed))
            .await
            .expect("finish")
    );
    let run = store.get_run(&run_id).await.expect("get").expect("run");
    assert_eq!(run.summary.status, RunStatus::Succeeded);
    assert_eq!(run.steps.len(), 2);
    assert_eq!(run.steps[0], steps[0], "the succeeded step is kept");
    assert_eq!(
        run.steps[1].status,
        StepStatus::Succeeded,
        "the re-run step is replaced"
    );
}

/// A run whose step waits for a retry goes back to the queue with a not-before time: no claimer
/// (here or in another process) takes it before then; after, it is claimed as the same execution
/// (same attempt, no second `flow.run.started`) with its steps, and finishes once.
async fn a_deferred_run_waits_its_turn_and_keeps_its_steps(h: Harness) {
    let store = &h.store;
    let peer = h.peer().await;
    let flow_id = flow(store, "deferred").await.id;
    let run_id = accept_new(store, &flow_id, Some("d1")).await;
    let claimed = store.claim_runs("w", 1, 60_000).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    let mut failed = step("b", 1, StepStatus::Failed);
    failed.attempts = 2;
    failed.detail = Some(json!({"deferredRetry": {"at": 1, "firstAttempt": 1}}));
    let steps = vec![step("a", 0, StepStatus::Succeeded), failed];
    let waiting = outcome(&run_id, "w", RunStatus::Queued, steps.clone());
    assert!(
        !store
            .defer_run(
                RunOutcome {
                    owner: "not-the-owner".into(),
                    ..waiting.clone()
                },
                epoch_ms()
            )
            .await
            .expect("defer by another")
    );
    let later = epoch_ms() + 60_000;
    assert!(
        store
            .defer_run(waiting.clone(), later)
            .await
            .expect("defer")
    );
    let run = store.get_run(&run_id).await.expect("get").expect("run");
    assert_eq!(run.summary.status, RunStatus::Queued);
    assert_eq!(run.steps, steps, "the steps so far are stored");
    assert_eq!(store.queue_depth().await.expect("depth"), (1, 0));
    assert!(
        store
            .claim_runs("w", 5, 60_000)
            .await
            .expect("early")
            .is_empty()
    );
    assert!(
        peer.claim_runs("p", 5, 60_000)
            .await
            .expect("early elsewhere")
            .is_empty(),
        "not claimable before its time"
    );
    // Other runs go ahead meanwhile.
    let other = accept_new(store, &flow_id, Some("d2")).await;
    let ahead = store.claim_runs("w", 5, 60_000).await.expect("other");
    assert_eq!(
        ahead.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [other.as_str()]
    );
    assert!(
        store
            .claim_runs("w", 1, 60_000)
            .await
            .expect("claim")
            .is_empty(),
        "still not due"
    );
    // Its time comes (the test does not wait a minute: the row is moved to the past).
    force_due(store, &run_id).await;
    let resumed = peer.claim_runs("p", 5, 60_000).await.expect("claim due");
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].id, run_id);
    assert_eq!(resumed[0].attempt, 1, "the same execution goes on");
    assert_eq!(resumed[0].prior_steps, steps, "with its steps");
    let started = audit_events(store, &["flow.run.started"]).await;
    assert_eq!(
        started
            .iter()
            .filter(|e| e["data"]["flowRun"]["id"] == run_id.as_str())
            .count(),
        1,
        "one flow.run.started for the whole execution"
    );
    let mut fixed = steps.clone();
    fixed[1] = step("b", 1, StepStatus::Succeeded);
    assert!(
        peer.finish_run(outcome(&run_id, "p", RunStatus::Succeeded, fixed))
            .await
            .expect("finish")
    );
    let run = store.get_run(&run_id).await.expect("get").expect("run");
    assert_eq!(run.summary.status, RunStatus::Succeeded);
    assert_eq!(run.summary.attempt, 1);
    // The headers of the event that started it (where destinations read its causation depth).
    let headers = store
        .run_trigger_headers(&run_id)
        .await
        .expect("headers")
        .expect("known run");
    assert_eq!(headers["content-type"], "application/json");
    assert!(
        store
            .run_trigger_headers("no-such-run")
            .await
            .expect("headers")
            .is_none()
    );
}

/// Makes a deferred run due now, as if its backoff had been waited out.
async fn force_due(store: &DynStore, run_id: &str) {
    let id = run_id.to_string();
    store
        .write(crate::store::sql::job(move |c| {
            Box::pin(async move {
                c.execute(
                    "UPDATE runs SET not_before = ? WHERE id = ?",
                    crate::store::sql::params![epoch_ms() - 1, &id],
                )
                .await
            })
        }))
        .await
        .expect("make due");
}

/// A flood on one flow does not starve another: claims take runs by their rank within their
/// flow (after its running runs), so the one queued run of B comes with the oldest of A's
/// hundred, and later runs of B before A's; two claimers at once (another process on
/// PostgreSQL) still never share a run.
async fn claims_share_slots_fairly_across_flows(h: Harness) {
    let store = &h.store;
    let peer = h.peer().await;
    let a = flow(store, "flood").await.id;
    let b = flow(store, "quiet").await.id;
    let mut events: Vec<NewEvent> = (0..100)
        .map(|i| event(&a, Some(&format!("a{i}"))))
        .collect();
    events.push(event(&b, Some("b0")));
    let oldest_a = events[0].run_id.clone();
    let only_b = events[100].run_id.clone();
    store.accept_events(events).await.expect("queue");
    let claimed = store.claim_runs("w", 2, 60_000).await.expect("claim");
    let mut ids: Vec<&str> = claimed.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    let mut want = [oldest_a.as_str(), only_b.as_str()];
    want.sort();
    assert_eq!(ids, want, "one of each flow, A's oldest first");
    // With only A left it is oldest first, and concurrent claimers take disjoint runs.
    let (x, y) = tokio::join!(
        store.claim_runs("w", 30, 60_000),
        peer.claim_runs("p", 30, 60_000)
    );
    let (x, y) = (x.expect("claim"), y.expect("claim"));
    let mut seen: HashSet<String> = HashSet::new();
    for run in x.iter().chain(&y) {
        assert_eq!(run.flow_id, a);
        assert!(seen.insert(run.id.clone()), "run {} claimed twice", run.id);
    }
    assert_eq!(seen.len(), 60, "both claims fill their slots");
    assert_eq!(store.queue_depth().await.expect("depth").0, 99 - 60);
    // Runs already executing count: A holds 61 slots and B one, so B's next run goes first
    // although A's queued runs are older.
    let next_b = accept_new(store, &b, Some("b1")).await;
    let claimed = store.claim_runs("w", 1, 60_000).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, next_b);
}

async fn record_finished_run_and_list_runs(h: Harness) {
    let store = &h.store;
    let flow_id = flow(store, "tests").await.id;
    let mut ids = Vec::new();
    for status in [
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Succeeded,
    ] {
        let mut e = event(&flow_id, None);
        e.environment = Environment::Testing;
        let o = outcome(
            &e.run_id,
            "",
            status,
            vec![step("only", 0, StepStatus::Succeeded)],
        );
        ids.push(e.run_id.clone());
        store.record_finished_run(e, o).await.expect("record");
    }
    let run = store.get_run(&ids[1]).await.expect("get").expect("run");
    assert_eq!(run.summary.status, RunStatus::Failed);
    assert_eq!(run.summary.environment, Environment::Testing);
    assert_eq!(run.summary.attempt, 1);
    assert!(run.summary.started.is_some() && run.summary.finished.is_some());
    assert_eq!(run.summary.error.as_deref(), Some("step b failed"));
    assert_eq!(run.steps.len(), 1);
    assert_eq!(store.queue_depth().await.expect("depth"), (0, 0));

    let failed = store
        .list_runs(&RunFilter {
            status: Some(RunStatus::Failed),
            limit: 10,
            ..RunFilter::default()
        })
        .await
        .expect("failed");
    assert_eq!(
        failed.data.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![ids[1].clone()]
    );

    let mut newest_first = ids.clone();
    newest_first.sort();
    newest_first.reverse();
    let filter = |cursor| RunFilter {
        flow_id: Some(flow_id.clone()),
        limit: 2,
        cursor,
        ..RunFilter::default()
    };
    let page1 = store.list_runs(&filter(None)).await.expect("page 1");
    assert_eq!(
        page1.data.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        newest_first[..2]
    );
    let page2 = store
        .list_runs(&filter(page1.next.as_deref().and_then(Cursor::decode)))
        .await
        .expect("page 2");
    assert_eq!(
        page2.data.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        newest_first[2..]
    );
    assert!(page2.next.is_none() && page2.previous.is_some());
    let other = store
        .list_runs(&RunFilter {
            flow_id: Some("other".into()),
            limit: 10,
            ..RunFilter::default()
        })
        .await
        .expect("other flow");
    assert!(other.data.is_empty() && other.next.is_none());
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

async fn secrets_round_trip(h: Harness) {
    let store = &h.store;
    let s = scope();
    assert!(
        store
            .put_secret(&actor(), &s, "slack", "n1", "c1")
            .await
            .expect("put")
    );
    assert!(
        !store
            .put_secret(&actor(), &s, "slack", "n2", "c2")
            .await
            .expect("replace")
    );
    assert!(
        store
            .put_secret(&actor(), &s, "api", "n3", "c3")
            .await
            .expect("put")
    );
    let names: Vec<String> = store
        .list_secrets(&s)
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["api", "slack"]);
    let got = store
        .get_secrets(&s, &["slack".to_string(), "missing".to_string()])
        .await
        .expect("get");
    assert_eq!(
        got,
        vec![("slack".to_string(), "n2".to_string(), "c2".to_string())]
    );
    assert!(
        store
            .get_secrets(&s, &[])
            .await
            .expect("get none")
            .is_empty()
    );
    let other = Scope {
        platform_id: "default".into(),
        project_id: "other".into(),
    };
    assert!(
        store
            .list_secrets(&other)
            .await
            .expect("other scope")
            .is_empty()
    );
    assert!(
        store
            .delete_secret(&actor(), &s, "slack")
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_secret(&actor(), &s, "slack")
            .await
            .expect("delete again")
    );
    assert_eq!(store.list_secrets(&s).await.expect("list").len(), 1);
    assert_eq!(audit_events(store, &["secret.upserted"]).await.len(), 3);
    let deleted = audit_events(store, &["secret.deleted"]).await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["data"]["secret"]["name"], "slack");
}

// ---------------------------------------------------------------------------------------------
// Audit log
// ---------------------------------------------------------------------------------------------

fn draft(action: &str, project: Option<&str>, user: Option<&str>) -> AuditDraft {
    let who = Actor {
        user_id: user.map(str::to_string),
        ..Actor::default()
    };
    let action: AuditAction = action.parse().expect("a known action");
    AuditDraft::new("default", project, &who, action, json!({"note": action}))
}

async fn audit_chain_filters_and_retention(h: Harness) {
    let store = &h.store;
    store
        .record_audit(vec![
            draft("plugin.installed", Some("p1"), Some("alice")),
            draft("flow.deleted", Some("p2"), Some("bob")),
            draft("plugin.installed", None, None),
        ])
        .await
        .expect("record");
    let filtered = |f: AuditFilter| async move { store.list_audit(&f).await.expect("list").data };
    let base = AuditFilter {
        limit: 50,
        ..AuditFilter::default()
    };
    let all = filtered(base.clone()).await;
    assert_eq!(all.len(), 3);
    assert_eq!(all[0]["action"], "plugin.installed", "newest first");
    assert_eq!(all[0]["projectId"], Value::Null);
    assert_eq!(
        filtered(AuditFilter {
            actions: vec!["plugin.installed".into()],
            ..base.clone()
        })
        .await
        .len(),
        2
    );
    let by_project = filtered(AuditFilter {
        project_ids: vec!["p2".into(), "p9".into()],
        ..base.clone()
    })
    .await;
    assert_eq!(by_project.len(), 1);
    assert_eq!(by_project[0]["userId"], "bob");
    assert_eq!(
        filtered(AuditFilter {
            user_id: Some("alice".into()),
            ..base.clone()
        })
        .await
        .len(),
        1
    );
    let created = all[0]["created"].as_str().expect("created").to_string();
    assert_eq!(
        filtered(AuditFilter {
            created_after: Some(created.clone()),
            ..base.clone()
        })
        .await
        .len(),
        3
    );
    assert!(
        filtered(AuditFilter {
            created_before: Some(created.clone()),
            ..base.clone()
        })
        .await
        .is_empty()
    );
    assert!(
        filtered(AuditFilter {
            created_after: Some("2999-01-01T00:00:00.000Z".into()),
            ..base.clone()
        })
        .await
        .is_empty()
    );

    // Cursor walk, one event per page, forwards then back.
    let mut cursor = None;
    let mut walked = Vec::new();
    let mut last_page = None;
    for _ in 0..10 {
        let page = store
            .list_audit(&AuditFilter {
                limit: 1,
                cursor: cursor.take(),
                ..AuditFilter::default()
            })
            .await
            .expect("page");
        walked.extend(page.data.iter().map(|e| e["id"].clone()));
        cursor = page.next.as_deref().and_then(Cursor::decode);
        last_page = Some(page);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(
        walked,
        all.iter().map(|e| e["id"].clone()).collect::<Vec<_>>()
    );
    let last_page = last_page.expect("pages");
    let back = store
        .list_audit(&AuditFilter {
            limit: 1,
            cursor: last_page.previous.as_deref().and_then(Cursor::decode),
            ..AuditFilter::default()
        })
        .await
        .expect("back");
    assert_eq!(back.data[0]["id"], all[1]["id"]);
    assert!(matches!(
        store
            .list_audit(&AuditFilter {
                limit: 1,
                cursor: Some(Cursor::After("x".into())),
                ..AuditFilter::default()
            })
            .await,
        Err(StoreError::Conflict(_))
    ));

    // Chain and retention.
    for _ in 0..7 {
        store
            .record_audit(vec![draft("flow.updated", None, None)])
            .await
            .expect("record");
    }
    assert_eq!(assert_chain_verifies(store).await, 10);
    let chain = store.audit_chain(0, 100).await.expect("chain");
    assert_eq!(chain.len(), 10);
    assert!(
        chain
            .windows(2)
            .all(|w| w[1].prev_hash == w[0].hash && w[1].seq > w[0].seq)
    );
    assert_eq!(chain[0].prev_hash, audit::GENESIS);
    let oldest = store
        .expired_audit("2999-01-01T00:00:00.000Z", 4)
        .await
        .expect("expired");
    assert_eq!(
        oldest.iter().map(|o| o.0).collect::<Vec<_>>(),
        chain[..4].iter().map(|c| c.seq).collect::<Vec<_>>()
    );
    assert!(
        store
            .expired_audit("2000-01-01T00:00:00.000Z", 4)
            .await
            .expect("none")
            .is_empty()
    );
    let body: Value = serde_json::from_str(&oldest[0].2).expect("body");
    assert_eq!(body["id"], chain[0].id.as_str());
    assert_eq!(oldest[0].1, body["created"].as_str().expect("created"));
    assert_eq!(retire_through(store, oldest[3].0).await, 4);
    let report = verify(store, audit::key(), None).await.expect("verify");
    assert!(report.intact, "{:?}", report.problems);
    assert_eq!(report.events, 6);
    assert_eq!(
        report
            .retention
            .iter()
            .map(|r| (r.first_seq, r.last_seq, r.count))
            .collect::<Vec<_>>(),
        [(chain[0].seq, chain[3].seq, 4)]
    );
    store
        .record_audit(vec![draft("flow.updated", None, None)])
        .await
        .expect("record");
    assert_eq!(assert_chain_verifies(store).await, 7);

    // A checkpoint that does not describe the stored range deletes nothing.
    let rows = store.audit_chain_rows(0, 100).await.expect("rows");
    let mut wrong = audit::Checkpoint {
        first_seq: rows[0].seq,
        last_seq: rows[1].seq,
        count: 3,
        prev_hash: rows[0].prev_hash.clone(),
        last_hash: rows[1].hash.clone(),
        archive_digest: None,
        created: now_text(),
        mac: String::new(),
    };
    wrong.mac = wrong.expected_mac(audit::key());
    assert!(matches!(
        store.retire_audit(&wrong).await,
        Err(StoreError::Conflict(_))
    ));
    wrong.count = 2;
    wrong.last_hash = rows[0].hash.clone();
    assert!(matches!(
        store.retire_audit(&wrong).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(assert_chain_verifies(store).await, 7);

    // A bare delete (not retention) is named as the range it removed.
    store
        .delete_audit_through(rows[1].seq)
        .await
        .expect("delete");
    let report = verify(store, audit::key(), None).await.expect("verify");
    assert!(!report.intact);
    assert_eq!(
        report.problems[0].message,
        format!("rows {}..{} missing", rows[0].seq, rows[1].seq)
    );

    // The head names the last event and is signed.
    let head = store.audit_head().await.expect("head");
    let last = store.audit_chain_rows(head.seq - 1, 1).await.expect("last");
    assert_eq!(last[0].hash, head.hash);
    assert!(head.mac.is_some(), "the head is signed");

    // Every streamed copy carries its seq and chain hash, the envelope otherwise unchanged.
    store
        .create_destination(&actor(), &destination("chain", &["flow.deleted"]))
        .await
        .expect("destination");
    store
        .record_audit(vec![draft("flow.deleted", None, None)])
        .await
        .expect("record");
    let due = store
        .claim_delivery_batches(10, 10, 60_000)
        .await
        .expect("claim");
    let head = store.audit_head().await.expect("head");
    let stored = store.audit_chain_rows(head.seq - 1, 1).await.expect("row");
    assert_eq!(due.len(), 1);
    let mut payload: Value = serde_json::from_str(&due[0].payload).expect("payload");
    assert_eq!(payload["seq"], head.seq);
    assert_eq!(payload["chainHash"], head.hash.as_str());
    let envelope = payload.as_object_mut().expect("object");
    envelope.remove("seq");
    envelope.remove("chainHash");
    assert_eq!(
        payload,
        serde_json::from_str::<Value>(&stored[0].body).expect("body")
    );
}

async fn concurrent_audit_appends_keep_one_chain(h: Harness) {
    let store = h.store.clone();
    let peer = h.peer().await;
    let mut tasks = Vec::new();
    for i in 0..30 {
        let target = if i % 2 == 0 {
            store.clone()
        } else {
            peer.clone()
        };
        tasks.push(tokio::spawn(async move {
            target
                .record_audit(vec![
                    draft("flow.created", None, None),
                    draft("flow.deleted", None, None),
                ])
                .await
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("record");
    }
    assert_eq!(assert_chain_verifies(&store).await, 60);
    let chain = store.audit_chain(0, 100).await.expect("chain");
    // Each call's events are adjacent: appends are never interleaved.
    for pair in chain.chunks(2) {
        let actions: Vec<String> = pair
            .iter()
            .map(|r| serde_json::from_str::<Value>(&r.body).expect("body")["action"].to_string())
            .collect();
        assert_eq!(actions, ["\"flow.created\"", "\"flow.deleted\""]);
    }
}

// ---------------------------------------------------------------------------------------------
// Destinations and the outbox
// ---------------------------------------------------------------------------------------------

async fn destinations_crud_and_outbox(h: Harness) {
    let store = &h.store;
    let d = destination("dest-1", &["flow.created", "flow.updated"]);
    store
        .create_destination(&actor(), &d)
        .await
        .expect("create");
    let got = store
        .get_destination("dest-1")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.events, d.events);
    assert_eq!(got.headers, d.headers);
    assert_eq!(got.secrets, d.secrets);
    assert!(got.enabled);
    let mut renamed = d.clone();
    renamed.name = "renamed".into();
    store
        .update_destination(&actor(), &renamed)
        .await
        .expect("update");
    assert_eq!(
        store.list_destinations(None).await.expect("list")[0].name,
        "renamed"
    );
    assert!(matches!(
        store
            .update_destination(&actor(), &destination("nope", &[]))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store
            .claim_delivery_batches(10, 1, 60_000)
            .await
            .expect("claim")
            .is_empty()
    );

    let f = flow(store, "outbox").await;
    store
        .update_flow(&actor(), &f.id, "outbox", &json!({"v": 2}))
        .await
        .expect("update");
    // Only the head of the destination's queue is handed out, and only once while leased.
    let first = store
        .claim_delivery_batches(10, 1, 60_000)
        .await
        .expect("claim");
    assert_eq!(first.len(), 1);
    assert_eq!(payload_action(&first[0]), "flow.created");
    assert_eq!(first[0].attempts, 0);
    assert_eq!(first[0].destination.name, "renamed");
    assert!(
        store
            .claim_delivery_batches(10, 1, 60_000)
            .await
            .expect("claim")
            .is_empty()
    );

    let past = chrono::Utc::now().timestamp_millis() - 1;
    let retry = delivery(&first[0], DeliveryNext::Retry { at_ms: past }, None);
    store
        .finish_deliveries(std::slice::from_ref(&retry), &[])
        .await
        .expect("finish");
    let again = store
        .claim_delivery_batches(10, 1, 60_000)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].outbox_id, first[0].outbox_id,
        "the same entry, in order"
    );
    assert_eq!(again[0].attempts, 1);
    store
        .finish_deliveries(
            std::slice::from_ref(&delivery(&again[0], DeliveryNext::Failed, None)),
            &[],
        )
        .await
        .expect("fail");
    let next = store
        .claim_delivery_batches(10, 1, 60_000)
        .await
        .expect("claim");
    assert_eq!(next.len(), 1);
    assert_eq!(payload_action(&next[0]), "flow.updated");
    store
        .finish_deliveries(
            std::slice::from_ref(&delivery(&next[0], DeliveryNext::Delivered, None)),
            &[],
        )
        .await
        .expect("deliver");
    assert!(
        store
            .claim_delivery_batches(10, 1, 60_000)
            .await
            .expect("claim")
            .is_empty()
    );

    let selection = Redelivery {
        event_id: Some(first[0].outbox_id.clone()),
        ..Redelivery::default()
    };
    assert_eq!(
        store
            .redeliver("dest-1", &selection)
            .await
            .expect("redeliver"),
        1
    );
    assert_eq!(
        store
            .redeliver("dest-1", &selection)
            .await
            .expect("nothing failed"),
        0
    );
    let redelivered = store
        .claim_delivery_batches(10, 1, 60_000)
        .await
        .expect("claim");
    assert_eq!(redelivered.len(), 1);
    assert_eq!(redelivered[0].outbox_id, first[0].outbox_id);
    assert_eq!(redelivered[0].attempts, 0);
    store
        .finish_deliveries(
            std::slice::from_ref(&delivery(&redelivered[0], DeliveryNext::Delivered, None)),
            &[],
        )
        .await
        .expect("deliver");

    let attempts = store
        .list_deliveries("dest-1", 10)
        .await
        .expect("deliveries");
    assert_eq!(attempts.len(), 4);
    assert!(
        attempts.windows(2).all(|w| w[0].id > w[1].id),
        "newest first"
    );
    assert_eq!(attempts[0].status_code, Some(200));
    assert_eq!(attempts[3].status_code, Some(503));
    assert_eq!(attempts[3].event_id, first[0].outbox_id);
    assert_eq!(
        store
            .list_deliveries("dest-1", 2)
            .await
            .expect("limited")
            .len(),
        2
    );

    // A destination disabled by the delivery worker stops receiving, with an audit event.
    flow(store, "another").await;
    let due = store
        .claim_delivery_batches(10, 1, 60_000)
        .await
        .expect("claim");
    assert_eq!(due.len(), 1);
    store
        .finish_deliveries(
            std::slice::from_ref(&delivery(
                &due[0],
                DeliveryNext::Retry { at_ms: past },
                Some("410 Gone"),
            )),
            &[],
        )
        .await
        .expect("disable");
    let disabled = store
        .get_destination("dest-1")
        .await
        .expect("get")
        .expect("exists");
    assert!(!disabled.enabled);
    assert_eq!(disabled.disabled_reason.as_deref(), Some("410 Gone"));
    let events = audit_events(store, &["destination.disabled"]).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["reason"], "410 Gone");
    assert_eq!(events[0]["userId"], Value::Null);
    assert!(
        store
            .claim_delivery_batches(10, 1, 60_000)
            .await
            .expect("claim")
            .is_empty()
    );

    assert!(
        store
            .delete_destination(&actor(), "dest-1")
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_destination(&actor(), "dest-1")
            .await
            .expect("delete again")
    );
    assert!(
        store
            .get_destination("dest-1")
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        store
            .list_destinations(None)
            .await
            .expect("list")
            .is_empty()
    );
    let audit: BTreeMap<String, usize> =
        audit_events(store, &[])
            .await
            .iter()
            .fold(BTreeMap::new(), |mut m, e| {
                *m.entry(e["action"].as_str().unwrap_or_default().to_string())
                    .or_default() += 1;
                m
            });
    assert_eq!(audit.get("destination.created"), Some(&1));
    assert_eq!(audit.get("destination.updated"), Some(&1));
    assert_eq!(audit.get("destination.deleted"), Some(&1));
    assert_chain_verifies(store).await;
}

async fn concurrent_delivery_claims_share_nothing(h: Harness) {
    let store = h.store.clone();
    let peer = h.peer().await;
    for i in 0..6 {
        store
            .create_destination(
                &actor(),
                &destination(&format!("d{i}"), &["flow.run.retried"]),
            )
            .await
            .expect("create");
    }
    for n in 0..3 {
        store
            .record_audit(vec![AuditDraft::new(
                "default",
                None,
                &Actor::system(),
                AuditAction::FlowRunRetried,
                json!({"n": n}),
            )])
            .await
            .expect("record");
    }
    // Deliver everything with two claimers working at once, checking per-destination order.
    let mut delivered: HashMap<String, Vec<i64>> = HashMap::new();
    let mut seen = HashSet::new();
    for _ in 0..20 {
        let (a, b) = tokio::join!(
            store.claim_delivery_batches(10, 1, 60_000),
            peer.claim_delivery_batches(10, 1, 60_000)
        );
        let due: Vec<DueDelivery> = a
            .expect("claim a")
            .into_iter()
            .chain(b.expect("claim b"))
            .collect();
        if due.is_empty() {
            break;
        }
        let mut destinations = HashSet::new();
        for d in &due {
            assert!(
                seen.insert(d.outbox_id.clone()),
                "entry {} handed out twice",
                d.outbox_id
            );
            assert!(
                destinations.insert(d.destination.id.clone()),
                "two entries of one destination in flight"
            );
            let body: Value = serde_json::from_str(&d.payload).expect("payload");
            delivered
                .entry(d.destination.id.clone())
                .or_default()
                .push(body["data"]["n"].as_i64().expect("n"));
        }
        for d in &due {
            store
                .finish_deliveries(
                    std::slice::from_ref(&delivery(d, DeliveryNext::Delivered, None)),
                    &[],
                )
                .await
                .expect("finish");
        }
    }
    assert_eq!(delivered.len(), 6);
    for (destination, order) in &delivered {
        assert_eq!(
            order,
            &vec![0, 1, 2],
            "destination {destination} got its events in order"
        );
    }
}

async fn delivery_batches_keep_order(h: Harness) {
    let store = h.store.clone();
    let peer = h.peer().await;
    for id in ["b0", "b1"] {
        store
            .create_destination(&actor(), &destination(id, &["secret.deleted"]))
            .await
            .expect("create");
    }
    for n in 0..5 {
        store
            .record_audit(vec![AuditDraft::new(
                "default",
                None,
                &Actor::system(),
                AuditAction::SecretDeleted,
                json!({"n": n}),
            )])
            .await
            .expect("record");
    }
    let n_of = |d: &DueDelivery| {
        serde_json::from_str::<Value>(&d.payload).expect("payload")["data"]["n"]
            .as_i64()
            .expect("n")
    };
    let (a, b) = tokio::join!(
        store.claim_delivery_batches(10, 3, 60_000),
        peer.claim_delivery_batches(10, 3, 60_000)
    );
    let due: Vec<DueDelivery> = a
        .expect("claim a")
        .into_iter()
        .chain(b.expect("claim b"))
        .collect();
    assert_eq!(due.len(), 6, "three from the head of each destination");
    let mut per: BTreeMap<String, Vec<&DueDelivery>> = BTreeMap::new();
    for d in &due {
        per.entry(d.destination.id.clone()).or_default().push(d);
    }
    for batch in per.values() {
        assert_eq!(batch.iter().map(|d| n_of(d)).collect::<Vec<_>>(), [0, 1, 2]);
    }
    // While the head is held, nothing behind it goes out.
    assert!(
        store
            .claim_delivery_batches(10, 3, 60_000)
            .await
            .expect("claim")
            .is_empty()
    );

    // b0: first delivered, second to retry now, third released untried.
    let b0 = &per["b0"];
    let past = chrono::Utc::now().timestamp_millis() - 1;
    let results = vec![
        delivery(b0[0], DeliveryNext::Delivered, None),
        delivery(b0[1], DeliveryNext::Retry { at_ms: past }, None),
    ];
    store
        .finish_deliveries(&results, &[b0[2].outbox_id.clone()])
        .await
        .expect("finish");
    let next = peer
        .claim_delivery_batches(10, 3, 60_000)
        .await
        .expect("claim");
    assert_eq!(next.iter().map(n_of).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(next.iter().all(|d| d.destination.id == "b0"));
    assert_eq!(next[0].outbox_id, b0[1].outbox_id);
    assert_eq!((next[0].attempts, next[1].attempts), (1, 0));
    let attempts = store.list_deliveries("b0", 10).await.expect("deliveries");
    assert_eq!(attempts.len(), 2);

    // b1: all delivered in one batch, then the rest of its queue.
    let b1: Vec<DeliveryResult> = per["b1"]
        .iter()
        .map(|d| delivery(d, DeliveryNext::Delivered, None))
        .collect();
    store.finish_deliveries(&b1, &[]).await.expect("finish b1");
    let rest = store
        .claim_delivery_batches(10, 10, 60_000)
        .await
        .expect("claim");
    assert_eq!(rest.iter().map(n_of).collect::<Vec<_>>(), [3, 4]);
    assert!(rest.iter().all(|d| d.destination.id == "b1"));
}

async fn flow_memory_first_sighting(h: Harness) {
    let store = h.store.clone();
    let peer = h.peer().await;
    assert!(
        store
            .remember_key("f1", "10.0.0.1", false)
            .await
            .expect("peek"),
        "unknown key"
    );
    assert!(
        store
            .remember_key("f1", "10.0.0.1", false)
            .await
            .expect("peek"),
        "peeking records nothing"
    );
    assert!(
        store
            .remember_key("f1", "10.0.0.1", true)
            .await
            .expect("record")
    );
    assert!(
        !store
            .remember_key("f1", "10.0.0.1", true)
            .await
            .expect("record again")
    );
    assert!(
        !store
            .remember_key("f1", "10.0.0.1", false)
            .await
            .expect("peek known")
    );
    assert!(
        store
            .remember_key("f2", "10.0.0.1", true)
            .await
            .expect("other flow")
    );

    let mut tasks = Vec::new();
    for i in 0..20 {
        let target = if i % 2 == 0 {
            store.clone()
        } else {
            peer.clone()
        };
        tasks.push(tokio::spawn(async move {
            target.remember_key("f1", "new-key", true).await
        }));
    }
    let mut first = 0;
    for task in tasks {
        first += usize::from(task.await.expect("task").expect("remember"));
    }
    assert_eq!(first, 1, "exactly one caller sees the key first");
}

/// The flow cache: values live until their expiry, are seen by another process on the same
/// database, the flow's live entries are capped (expired ones never count), and deleting a flow
/// drops its cache.
async fn flow_cache_lifetimes_limits_and_peers(h: Harness) {
    let store = h.store.clone();
    let peer = h.peer().await;
    let now = epoch_ms();
    let entry = |value: &str, expires_at: i64| CacheEntry {
        value: value.into(),
        expires_at,
    };
    assert_eq!(store.cache_get("f1", "token").await.expect("get"), None);
    store
        .cache_set("f1", "token", &entry("abc", now + 60_000), 3)
        .await
        .expect("set")
        .expect("stored");
    assert_eq!(
        peer.cache_get("f1", "token").await.expect("peer get"),
        Some(entry("abc", now + 60_000)),
        "another process sees the value"
    );
    assert_eq!(
        store.cache_get("f2", "token").await.expect("get"),
        None,
        "per flow"
    );
    // Overwriting the same key is not a new entry; an expired entry is invisible and frees
    // its place.
    store
        .cache_set("f1", "token", &entry("def", now + 60_000), 3)
        .await
        .expect("set")
        .expect("overwritten");
    store
        .cache_set("f1", "old", &entry("x", now - 1), 3)
        .await
        .expect("set")
        .expect("stored expired");
    assert_eq!(store.cache_get("f1", "old").await.expect("get"), None);
    for key in ["a", "b"] {
        store
            .cache_set("f1", key, &entry(key, now + 60_000), 3)
            .await
            .expect("set")
            .expect("room left");
    }
    assert_eq!(
        store
            .cache_set("f1", "c", &entry("c", now + 60_000), 3)
            .await
            .expect("set"),
        Err(CacheRefusal::Full(3)),
        "three live entries fill a cache of three"
    );
    assert!(peer.cache_delete("f1", "a").await.expect("delete"));
    assert!(!store.cache_delete("f1", "a").await.expect("delete again"));
    assert!(!store.cache_delete("f1", "old").await.expect("expired"));
    store
        .cache_set("f1", "c", &entry("c", now + 60_000), 3)
        .await
        .expect("set")
        .expect("room again after a delete");

    let f = flow(&store, "cached").await;
    store
        .cache_set(&f.id, "k", &entry("v", now + 60_000), 3)
        .await
        .expect("set")
        .expect("stored");
    store
        .delete_flow(&actor(), &f.id)
        .await
        .expect("delete flow");
    assert_eq!(store.cache_get(&f.id, "k").await.expect("get"), None);
}

/// Runs `sql` on the store's writer, as someone with database access would (or as the schema
/// looked before migration 0014).
async fn raw_sql(store: &DynStore, sql: String) {
    store
        .write(super::sql::job(move |c| {
            Box::pin(async move { c.execute(&sql, vec![]).await })
        }))
        .await
        .expect("raw sql");
}

/// A database upgraded with events hashed under the SHA-256 rule: until something is appended
/// its head is unsigned (named); the first append anchors them with a signed checkpoint, after
/// which they verify, rewriting them (re-hashed) breaks the first keyed event's link, and
/// removing the anchor makes every one of them fail the keyed rule.
async fn audit_events_from_before_the_keyed_chain_keep_verifying(h: Harness) {
    let store = &h.store;
    let mut previous = audit::GENESIS.to_string();
    let mut legacy = Vec::new();
    for seq in 1..=3i64 {
        let id = format!("legacy-{seq}");
        let created = format!("2025-01-0{seq}T00:00:00.000Z");
        let body = json!({"id": id, "created": created, "updated": created,
            "platformId": "default", "projectId": null, "userId": null, "userEmail": null,
            "ip": null, "action": "flow.created", "data": {"n": seq}})
        .to_string();
        let hash = audit::chain_hash(&previous, &body);
        legacy.push((seq, body.clone(), previous.clone()));
        raw_sql(
            store,
            format!(
                "INSERT INTO audit_events (seq, id, created, platform_id, project_id, user_id, action, body, prev_hash, hash) \
                 VALUES ({seq}, '{id}', '{created}', 'default', NULL, NULL, 'flow.created', '{body}', '{previous}', '{hash}')"
            ),
        )
        .await;
        previous = hash;
    }
    raw_sql(
        store,
        format!(
            "UPDATE audit_chain_head SET seq = 3, hash = '{previous}', keyed_from = 4, mac = NULL"
        ),
    )
    .await;
    let report = verify(store, audit::key(), None).await.expect("verify");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].kind, "unanchored");

    store
        .record_audit(vec![draft("flow.updated", None, None)])
        .await
        .expect("record");
    let report = verify(store, audit::key(), None).await.expect("verify");
    assert!(report.intact, "{:?}", report.problems);
    assert_eq!((report.events, report.keyed_from), (4, 4));
    // Another append does not move the anchor.
    store
        .record_audit(vec![draft("flow.updated", None, None)])
        .await
        .expect("record");
    assert_eq!(assert_chain_verifies(store).await, 5);

    // Rewrite the second legacy event and re-hash the third the SHA-256 way.
    let edited = legacy[1].1.replace("\"n\":2", "\"n\":20");
    assert_ne!(edited, legacy[1].1);
    let second = audit::chain_hash(&legacy[1].2, &edited);
    let third = audit::chain_hash(&second, &legacy[2].1);
    raw_sql(
        store,
        format!("UPDATE audit_events SET body = '{edited}', hash = '{second}' WHERE seq = 2"),
    )
    .await;
    raw_sql(
        store,
        format!("UPDATE audit_events SET prev_hash = '{second}', hash = '{third}' WHERE seq = 3"),
    )
    .await;
    let report = verify(store, audit::key(), None).await.expect("verify");
    let messages: Vec<&str> = report.problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].starts_with("row 4: its link to seq 3 does not match"),
        "{messages:?}"
    );

    // Without the anchor nothing is trusted under the SHA-256 rule.
    raw_sql(
        store,
        "DELETE FROM audit_checkpoints WHERE first_seq = 0".into(),
    )
    .await;
    let report = verify(store, audit::key(), None).await.expect("verify");
    assert!(
        report.problems.iter().any(|p| p
            .message
            .starts_with("row 1: its content does not match its keyed hash")),
        "{:?}",
        report.problems
    );
}

/// Retention may delete every event: the next one still links to the last deleted hash and
/// takes the next `seq` (it used to restart at seq 1 and the genesis hash on SQLite, cutting the
/// chain off from the archive and putting new outbox entries ahead of an old backlog).
async fn audit_chain_goes_on_after_retention_empties_the_table(h: Harness) {
    let store = &h.store;
    for _ in 0..3 {
        store
            .record_audit(vec![draft("flow.updated", None, None)])
            .await
            .expect("record");
    }
    let before = store.audit_chain(0, 10).await.expect("chain");
    let last = before.last().expect("three events").clone();
    assert_eq!(retire_through(store, last.seq).await, 3);
    // The same range again (another process's retention, on PostgreSQL): nothing to do.
    let mut again = audit::Checkpoint {
        first_seq: before[0].seq,
        last_seq: last.seq,
        count: 3,
        prev_hash: before[0].prev_hash.clone(),
        last_hash: last.hash.clone(),
        archive_digest: None,
        created: now_text(),
        mac: String::new(),
    };
    again.mac = again.expected_mac(audit::key());
    let peer = h.peer().await;
    assert_eq!(peer.retire_audit(&again).await.expect("again"), 0);
    assert!(store.audit_chain(0, 10).await.expect("chain").is_empty());
    store
        .record_audit(vec![draft("flow.created", None, None)])
        .await
        .expect("record after");
    let after = store.audit_chain(0, 10).await.expect("chain");
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].seq, last.seq + 1, "seq goes on");
    assert_eq!(after[0].prev_hash, last.hash, "the chain goes on");
    assert_eq!(assert_chain_verifies(store).await, 1);
}

/// One request the database refuses (an event id that is already stored, under another key:
/// a primary-key violation the dedup does not cover) fails alone with its own error; the
/// requests group-committed with it are written. The same policy on both backends.
async fn a_bad_request_fails_alone_in_its_batch(h: Harness) {
    let store = h.store.clone();
    let flow_id = flow(&store, "isolation").await.id;
    let taken = event(&flow_id, Some("first"));
    let taken_id = taken.event_id.clone();
    store.accept_event(taken).await.expect("first event");
    let mut tasks = Vec::new();
    for i in 0..30 {
        let mut e = event(&flow_id, Some(&format!("k{i}")));
        if i == 7 {
            e.event_id = taken_id.clone();
        }
        let target = store.clone();
        tasks.push(tokio::spawn(async move { target.accept_event(e).await }));
    }
    let mut failed = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            Ok(Accepted::New { .. }) => {}
            Ok(other) => panic!("unexpected {other:?}"),
            Err(error) => failed.push(error),
        }
    }
    assert_eq!(failed.len(), 1, "only the bad request fails: {failed:?}");
    assert!(failed[0].is_data_error(), "its own error: {:?}", failed[0]);
    assert_eq!(store.queue_depth().await.expect("depth"), (30, 0));
}

/// A write that panics fails with an error and rolls back; the backend goes on serving.
async fn a_panicking_write_fails_alone(h: Harness) {
    let store = h.store.clone();
    let flow_id = flow(&store, "panics").await.id;
    let panicking = store.panic_in_write_for_test().await;
    assert!(
        matches!(&panicking, Err(StoreError::Write(m)) if m.contains("panicked")),
        "{panicking:?}"
    );
    accept_new(&store, &flow_id, Some("after the panic")).await;
    store.health().await.expect("still healthy");
    assert_eq!(store.queue_depth().await.expect("depth"), (1, 0));
}

// ---------------------------------------------------------------------------------------------
// SQLite only
// ---------------------------------------------------------------------------------------------

mod sqlite_only {
    use super::*;

    /// The lock belongs to the store and is taken on the canonical file: another spelling of the
    /// same path (here with `./` and `..`) is refused while the first store is open, and a store
    /// reopened after the first is gone re-queues what it left RUNNING.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_process_per_file_and_recovery_on_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("hookflow.db");
        let store = open_sqlite(&path).await.expect("open");
        let flow_id = flow(&store, "lock").await.id;
        for i in 0..2 {
            accept_new(&store, &flow_id, Some(&format!("r{i}"))).await;
        }
        assert_eq!(
            store
                .claim_runs("gone", 5, 60_000)
                .await
                .expect("claim")
                .len(),
            2
        );
        std::fs::create_dir(dir.path().join("sub")).expect("sub dir");
        let other_spelling = dir
            .path()
            .join("sub")
            .join("..")
            .join(".")
            .join("hookflow.db");
        let refused = open_sqlite(&other_spelling).await;
        assert!(
            matches!(&refused, Err(StoreError::Unavailable(m)) if m.contains("another hookflow process")),
            "a second store on the same file is refused"
        );
        drop(store);
        let mut reopened = None;
        for _ in 0..100 {
            match open(
                &DatabaseUrl::Sqlite(other_spelling.clone()),
                &OpenOptions::default(),
            )
            .await
            {
                Ok(opened) => {
                    reopened = Some(opened);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let reopened = reopened.expect("reopened once the first store is gone");
        assert_eq!(reopened.recovered, 2);
        assert_eq!(reopened.store.queue_depth().await.expect("depth"), (2, 0));
    }

    /// A dead writer makes the store unhealthy with the reason, and writes fail with it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_dead_writer_is_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open_sqlite(&dir.path().join("hookflow.db"))
            .await
            .expect("open");
        store.health().await.expect("healthy at first");
        store.stop_writer_for_test("the disk went away").await;
        let health = store.health().await;
        assert!(
            matches!(&health, Err(StoreError::Unavailable(m)) if m.contains("the disk went away")),
            "{health:?}"
        );
        let write = store.create_flow(&actor(), &scope(), "x", &json!({})).await;
        assert!(
            matches!(write, Err(StoreError::Unavailable(_))),
            "{write:?}"
        );
    }

    /// Offline commands open the file read-only, beside a running server, without migrating.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn read_only_beside_a_live_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("hookflow.db");
        let store = open_sqlite(&path).await.expect("open");
        flow(&store, "seen offline").await;
        let offline = open_read_only(&DatabaseUrl::Sqlite(path))
            .await
            .expect("read-only");
        assert_eq!(assert_chain_verifies(&offline).await, 1);
        let write = offline
            .create_flow(&actor(), &scope(), "x", &json!({}))
            .await;
        assert!(matches!(write, Err(StoreError::ReadOnly)), "{write:?}");
        let missing = open_read_only(&DatabaseUrl::Sqlite(dir.path().join("nope.db"))).await;
        assert!(matches!(missing, Err(StoreError::NotFound(_))));
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL only
// ---------------------------------------------------------------------------------------------

mod postgres_only {
    use super::*;

    /// Committing a queued run, or installing a plugin, wakes a listener (of another store
    /// handle, as another process) with the matching hint.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn listener_wakes_when_runs_are_queued_or_plugins_installed() {
        let database = pg::TempDatabase::create().await;
        let store: DynStore = open_postgres(&database.url).await;
        let mut listener = open(
            &DatabaseUrl::Postgres(database.url.clone()),
            &OpenOptions::default(),
        )
        .await
        .expect("open other")
        .listener
        .expect("a listener");
        // Nothing queued yet: waiting times out (and the listener stays usable afterwards).
        let idle = tokio::time::timeout(Duration::from_millis(200), listener.wait()).await;
        assert!(idle.is_err(), "no notification without queued runs");
        let flow_id = flow(&store, "listen").await.id;
        accept_new(&store, &flow_id, Some("wake")).await;
        let woke = tokio::time::timeout(Duration::from_secs(10), listener.wait())
            .await
            .expect("woken within 10 s")
            .expect("listener works");
        assert_eq!(
            (woke.runs, woke.plugins),
            (true, false),
            "a queued run is not a plugin install"
        );
        let plugin = StoredPlugin {
            name: "greet".into(),
            version: "1.0.0".into(),
            digest: "digest-listen".into(),
            component: b"\0asm".to_vec(),
        };
        let draft = AuditDraft::new(
            "default",
            None,
            &actor(),
            AuditAction::PluginInstalled,
            json!({"name": "greet"}),
        );
        store.save_plugin(&plugin, draft).await.expect("save");
        let woke = tokio::time::timeout(Duration::from_secs(10), listener.wait())
            .await
            .expect("woken within 10 s")
            .expect("listener works");
        assert_eq!((woke.runs, woke.plugins), (false, true));
    }

    /// A lost connection (the server terminated it) costs at most the requests in flight: the
    /// pool reconnects and the store is healthy and writing again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_lost_connection_recovers() {
        use sqlx::{Connection, Executor};
        let database = pg::TempDatabase::create().await;
        let store: DynStore = open_postgres(&database.url).await;
        let flow_id = flow(&store, "reconnect").await.id;
        let mut admin = sqlx::PgConnection::connect(&pg::admin_url())
            .await
            .expect("admin");
        admin
            .execute(
                format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
                    database.name
                )
                .as_str(),
            )
            .await
            .expect("terminate");
        let mut accepted = false;
        for i in 0..20 {
            if store
                .accept_event(event(&flow_id, Some(&format!("after{i}"))))
                .await
                .is_ok()
            {
                accepted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(accepted, "writes work again after reconnecting");
        store.health().await.expect("healthy again");
    }
}

async fn stored_plugins_round_trip_with_their_audit_event(h: Harness) {
    let store = h.store.clone();
    let peer = h.peer().await;
    let plugin = |version: &str, bytes: &[u8]| StoredPlugin {
        name: "greet".into(),
        version: version.into(),
        digest: format!("digest-{version}-{}", bytes.len()),
        component: bytes.to_vec(),
    };
    let draft = |version: &str| {
        AuditDraft::new(
            "default",
            Some("default"),
            &actor(),
            AuditAction::PluginInstalled,
            json!({"plugin": {"name": "greet", "version": version}}),
        )
    };
    assert!(store.plugin_digests().await.expect("digests").is_empty());
    store
        .save_plugin(&plugin("1.0.0", b"\0asm-one"), draft("1.0.0"))
        .await
        .expect("save v1");
    store
        .save_plugin(&plugin("2.0.0", b"\0asm-two!"), draft("2.0.0"))
        .await
        .expect("save v2");
    // Installed versions are immutable: other bytes under a stored version are refused, the
    // same bytes again change nothing and record no second event.
    let refused = store
        .save_plugin(&plugin("1.0.0", b"\0asm-one-fixed"), draft("1.0.0"))
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict(m)) if m.contains("greet@1.0.0")),
        "{refused:?}"
    );
    store
        .save_plugin(&plugin("1.0.0", b"\0asm-one"), draft("1.0.0"))
        .await
        .expect("the same bytes again");
    let digests = peer.plugin_digests().await.expect("digests from a peer");
    assert_eq!(
        digests,
        vec![
            ("greet".into(), "1.0.0".into(), "digest-1.0.0-8".into()),
            ("greet".into(), "2.0.0".into(), "digest-2.0.0-9".into()),
        ]
    );
    let v1 = peer
        .get_plugin("greet", "1.0.0")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(v1.component, b"\0asm-one");
    assert!(
        peer.get_plugin("greet", "3.0.0")
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(audit_events(&store, &["plugin.installed"]).await.len(), 2);
}

async fn a_stored_plugin_is_removed_only_when_no_flow_uses_it(h: Harness) {
    let store = h.store.clone();
    let peer = h.peer().await;
    let draft = |action: AuditAction, version: &str| {
        AuditDraft::new(
            "default",
            Some("default"),
            &actor(),
            action,
            json!({"plugin": {"name": "greet", "version": version}}),
        )
    };
    for version in ["1.0.0", "2.0.0"] {
        let plugin = StoredPlugin {
            name: "greet".into(),
            version: version.into(),
            digest: format!("digest-{version}"),
            component: b"\0asm".to_vec(),
        };
        store
            .save_plugin(&plugin, draft(AuditAction::PluginInstalled, version))
            .await
            .expect("save");
    }
    let using = |plugin: &str| {
        json!({"name": "greets", "trigger": {"type": "webhook"}, "steps": [
            {"name": "greet", "type": "action", "plugin": plugin, "input": {}}]})
    };
    let remove = |digest: &'static str| {
        let store = store.clone();
        async move {
            store
                .remove_plugin(
                    "greet",
                    "1.0.0",
                    digest,
                    draft(AuditAction::PluginRemoved, "1.0.0"),
                )
                .await
                .expect("remove")
        }
    };
    let user = |flow_id: &str, version: i64, draft: bool| PluginUser {
        flow_id: flow_id.into(),
        flow_name: "greets".into(),
        version,
        draft,
    };
    let a = store
        .create_flow(&actor(), &scope(), "greets", &using("greet@1.0.0"))
        .await
        .expect("create");
    // Only the label as a plugin counts: the same text as an input value does not.
    let mentions = json!({"name": "mentions", "trigger": {"type": "webhook"}, "steps": [
        {"name": "say", "type": "action", "plugin": "log@0.1.0", "input": {"message": "greet@1.0.0"}}]});
    store
        .create_flow(&actor(), &scope(), "mentions", &mentions)
        .await
        .expect("create");
    assert_eq!(
        remove("digest-1.0.0").await,
        PluginRemoval::InUse(vec![user(&a.id, 1, false)])
    );
    store
        .update_flow(&actor(), &a.id, "greets", &using("greet@2.0.0"))
        .await
        .expect("publish v2");
    store
        .save_flow_draft(&actor(), &a.id, &using("greet@1.0.0"))
        .await
        .expect("draft v3");
    assert_eq!(
        remove("digest-1.0.0").await,
        PluginRemoval::InUse(vec![user(&a.id, 3, true)])
    );
    // Published again without it: versions 1 and 3 stay in the history, which does not count.
    store
        .update_flow(&actor(), &a.id, "greets", &using("greet@2.0.0"))
        .await
        .expect("publish v4");
    assert_eq!(remove("digest-other").await, PluginRemoval::NotFound);
    assert_eq!(remove("digest-1.0.0").await, PluginRemoval::Removed);
    assert_eq!(remove("digest-1.0.0").await, PluginRemoval::NotFound);
    let left: Vec<String> = peer
        .plugin_digests()
        .await
        .expect("digests")
        .into_iter()
        .map(|(_, version, _)| version)
        .collect();
    assert_eq!(left, vec!["2.0.0".to_string()]);
    assert_eq!(audit_events(&store, &["plugin.removed"]).await.len(), 1);
    // A deleted flow does not hold a version either.
    let remove_v2 = || {
        store.remove_plugin(
            "greet",
            "2.0.0",
            "digest-2.0.0",
            draft(AuditAction::PluginRemoved, "2.0.0"),
        )
    };
    assert!(matches!(
        remove_v2().await.expect("remove"),
        PluginRemoval::InUse(_)
    ));
    store.delete_flow(&actor(), &a.id).await.expect("delete");
    assert_eq!(remove_v2().await.expect("remove"), PluginRemoval::Removed);
}

// ---------------------------------------------------------------------------------------------
// People and credentials
// ---------------------------------------------------------------------------------------------

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: email.into(),
        name: "Ada".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        platform_role: None,
    }
}

async fn people_memberships_and_sessions(h: Harness) {
    let store = h.store.clone();
    let peer = h.peer().await;
    let ada = store
        .create_user(&actor(), &new_user("Ada@Example.com"), "admin")
        .await
        .expect("create");
    assert_eq!(ada.email, "ada@example.com", "emails are lower-cased");
    let taken = store
        .create_user(&actor(), &new_user("ADA@example.com"), "admin")
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    let (found, hash) = peer
        .user_for_sign_in(" ada@EXAMPLE.com ")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.id, ada.id);
    assert!(hash.starts_with("$argon2id$"));

    let team = store
        .create_project(&actor(), "Team")
        .await
        .expect("project");
    assert!(
        store
            .put_member(&actor(), &team.id, &ada.id, Role::Viewer)
            .await
            .expect("add")
    );
    assert!(
        !store
            .put_member(&actor(), &team.id, &ada.id, Role::Admin)
            .await
            .expect("change")
    );
    let refused = store
        .put_member(&actor(), &team.id, &ada.id, Role::Auditor)
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))));
    assert_eq!(
        peer.memberships(&ada.id).await.expect("memberships"),
        vec![(team.id.clone(), Role::Admin)]
    );
    let members = peer.list_members(&team.id).await.expect("members");
    assert_eq!(members[0].email, "ada@example.com");
    let visible = peer
        .list_projects(Some(vec![team.id.clone()]))
        .await
        .expect("projects");
    assert_eq!(visible.len(), 1);
    assert_eq!(peer.list_projects(None).await.expect("all").len(), 2);

    let now = epoch_ms();
    let session = SessionRecord {
        id: "digest-of-cookie".into(),
        user_id: ada.id.clone(),
        csrf: "csrf".into(),
        ip: Some("192.0.2.7".into()),
        created_ms: now,
        last_seen_ms: now,
        expires_ms: now + 60_000,
    };
    store.create_session(&session).await.expect("session");
    let (seen, user) = peer
        .session("digest-of-cookie")
        .await
        .expect("read")
        .expect("shared with other processes");
    assert_eq!(
        (seen.csrf.as_str(), user.id.as_str()),
        ("csrf", ada.id.as_str())
    );
    // Disabling a person ends their sessions at once, for every process.
    let change = UserChange {
        disabled: Some(true),
        ..UserChange::default()
    };
    let disabled = store
        .update_user(&actor(), &ada.id, &change)
        .await
        .expect("disable");
    assert!(disabled.disabled);
    assert!(
        peer.session("digest-of-cookie")
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .remove_member(&actor(), &team.id, &ada.id)
            .await
            .expect("remove")
    );
    assert!(
        !store
            .remove_member(&actor(), &team.id, &ada.id)
            .await
            .expect("again")
    );
    let events = audit_events(
        &store,
        &[
            "user.signed.up",
            "project.created",
            "project.member.added",
            "project.member.updated",
            "project.member.removed",
            "user.updated",
        ],
    )
    .await;
    assert_eq!(events.len(), 6, "{events:?}");
    assert!(!serde_json::to_string(&events).unwrap().contains("argon2"));
    let granted = events
        .iter()
        .find(|e| e["action"] == "project.member.updated")
        .expect("role change");
    assert!(
        granted["data"]["projectRole"]["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("WRITE_PROJECT_MEMBER"))
    );
    assert_chain_verifies(&store).await;
}

async fn api_keys_invitations_and_owners(h: Harness) {
    let store = h.store.clone();
    let peer = h.peer().await;
    let team = store
        .create_project(&actor(), "Team")
        .await
        .expect("project");
    let key = store
        .create_api_key(
            &actor(),
            &NewApiKey {
                project_id: Some(team.id.clone()),
                name: "ci".into(),
                role: Role::Editor,
                prefix: "hfk_abcdefgh".into(),
                hash: "digest-of-key".into(),
                expires_ms: None,
            },
        )
        .await
        .expect("key");
    let found = peer
        .api_key_by_hash("digest-of-key")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(
        (found.id.as_str(), found.role),
        (key.id.as_str(), Role::Editor)
    );
    peer.touch_api_key(&key.id, 42).await.expect("touch");
    assert_eq!(
        store.list_api_keys(Some(&team.id)).await.expect("list")[0].last_used_ms,
        Some(42)
    );
    assert!(
        store
            .list_api_keys(None)
            .await
            .expect("platform keys")
            .is_empty()
    );
    // Revoked only in its own project.
    assert!(
        !store
            .revoke_api_key(&actor(), None, &key.id)
            .await
            .expect("wrong scope")
    );
    assert!(
        store
            .revoke_api_key(&actor(), Some(&team.id), &key.id)
            .await
            .expect("revoke")
    );
    let revoked = peer
        .api_key_by_hash("digest-of-key")
        .await
        .expect("lookup")
        .expect("kept");
    assert!(revoked.revoked.is_some());

    let invitation = InvitationRecord {
        id: new_id(),
        project_id: team.id.clone(),
        email: "new@example.com".into(),
        role: Role::Operator,
        expires_ms: epoch_ms() + 60_000,
        accepted: None,
        created: now_text(),
        created_by: None,
    };
    store
        .create_invitation(&actor(), &invitation, "digest-of-invite")
        .await
        .expect("invite");
    assert!(
        peer.open_invitation("digest-of-invite")
            .await
            .expect("open")
            .is_some()
    );
    let invitee = access::Invitee::New {
        password_hash: "$argon2id$x".into(),
        name: "New".into(),
    };
    let (person, _) = store
        .accept_invitation("digest-of-invite", None, invitee.clone())
        .await
        .expect("accept");
    assert_eq!(
        store.memberships(&person.id).await.expect("memberships"),
        vec![(team.id.clone(), Role::Operator)]
    );
    let again = peer
        .accept_invitation("digest-of-invite", None, invitee)
        .await;
    assert!(matches!(again, Err(StoreError::NotFound(_))), "once only");

    let f = flow(&store, "owned").await;
    assert_eq!(
        peer.owner(Owned::Flow, &f.id).await.expect("owner"),
        Some(Owner::Project("default".into()))
    );
    assert_eq!(
        peer.owner(Owned::Run, "missing").await.expect("owner"),
        None
    );
    let mut d = destination("platform-wide", &[]);
    store
        .create_destination(&actor(), &d)
        .await
        .expect("platform destination");
    d.id = "team-only".into();
    d.scope = DestinationScope::Project;
    d.project_id = team.id.clone();
    store
        .create_destination(&actor(), &d)
        .await
        .expect("project destination");
    assert_eq!(
        peer.owner(Owned::Destination, "platform-wide")
            .await
            .expect("owner"),
        Some(Owner::Platform)
    );
    let only = peer
        .list_destinations(Some(vec![team.id.clone()]))
        .await
        .expect("project's destinations");
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].id, "team-only");
    assert_chain_verifies(&store).await;
}

/// `threshold` step state: concurrent read-modify-writes of one key from three processes lose
/// nothing and see the crossing exactly once; the key cap refuses new keys only while the
/// others are live.
async fn window_updates_are_atomic_across_processes(h: Harness) {
    let now = epoch_ms();
    let stores = [h.store.clone(), h.peer().await, h.peer().await];
    let mut tasks = Vec::new();
    for store in &stores {
        for _ in 0..20 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .window_update(("f", "count", "k"), now, 10, move |text| {
                        let n: u64 = text.map_or(0, |t| t.parse().expect("count")) + 1;
                        WindowWrite {
                            state: n.to_string(),
                            expires_at: now + 60_000,
                            outcome: n == 30,
                        }
                    })
                    .await
                    .expect("update")
                    .expect("not refused")
            }));
        }
    }
    let mut crossings = 0;
    for task in tasks {
        crossings += usize::from(task.await.expect("task"));
    }
    assert_eq!(crossings, 1, "the 30th event is seen exactly once");
    let last = move |n: &str| WindowWrite {
        state: n.to_owned(),
        expires_at: now + 60_000,
        outcome: (),
    };
    let total = stores[1]
        .window_update(("f", "count", "k"), now, 10, move |text| {
            let seen = text.expect("state");
            WindowWrite {
                state: seen.clone(),
                expires_at: now + 60_000,
                outcome: seen,
            }
        })
        .await
        .expect("read")
        .expect("known key");
    assert_eq!(total, "60", "no update was lost");

    // Two live keys at most: a third is refused, a known one still counts.
    stores[0]
        .window_update(("f", "count", "k2"), now, 2, move |_| last("1"))
        .await
        .expect("k2")
        .expect("second key");
    assert_eq!(
        stores[2]
            .window_update(("f", "count", "k3"), now, 2, move |_| last("1"))
            .await
            .expect("k3"),
        Err(WindowRefusal::KeyLimit(2))
    );
    stores[2]
        .window_update(("f", "count", "k"), now, 2, move |_| last("61"))
        .await
        .expect("k")
        .expect("known key");
    // Once the others expire, a new key fits again and starts from nothing.
    let later = now + 120_000;
    let fresh = stores[0]
        .window_update(("f", "count", "k3"), later, 2, move |text| WindowWrite {
            state: "1".into(),
            expires_at: later + 60_000,
            outcome: text,
        })
        .await
        .expect("k3 later")
        .expect("fits");
    assert_eq!(fresh, None);
    // Another step of the same flow keeps its own keys.
    stores[1]
        .window_update(("f", "other", "k"), later, 1, move |text| WindowWrite {
            state: "x".into(),
            expires_at: later + 1,
            outcome: text,
        })
        .await
        .expect("other step")
        .expect("own cap");
    assert!(stores[0].delete_expired_windows(100).await.expect("sweep") <= 3);
}

/// Run retention deletes only terminal runs finished before the cut-off, a bounded batch at a
/// time, keeps QUEUED and RUNNING runs whatever their age, keeps a flow with its own retention
/// out of the default's batches, and deletes a batch's run only while it is still in the state
/// it was read (and archived) in.
async fn run_retention_deletes_finished_runs_in_batches(h: Harness) {
    let store = &h.store;
    let own = flow(store, "own-retention").await.id;
    let kept_by_own = accept_new(store, &own, Some("own-1")).await;
    let claimed = store.claim_runs("w", 1, 60_000).await.expect("claim own");
    assert_eq!(claimed[0].id, kept_by_own);
    assert!(
        store
            .finish_run(outcome(&kept_by_own, "w", RunStatus::Succeeded, vec![]))
            .await
            .expect("finish own")
    );
    let other = flow(store, "default-retention").await.id;
    let mut runs = Vec::new();
    for i in 0..6 {
        runs.push(accept_new(store, &other, Some(&format!("d-{i}"))).await);
    }
    let claimed = store.claim_runs("w", 4, 60_000).await.expect("claim");
    assert_eq!(claimed.len(), 4);
    let (finished, running) = (&claimed[..3], &claimed[3..]);
    for run in finished {
        let steps = vec![step("a", 0, StepStatus::Succeeded)];
        assert!(
            store
                .finish_run(outcome(&run.id, "w", RunStatus::Failed, steps))
                .await
                .expect("finish")
        );
    }
    let future = "9999-12-31T00:00:00.000Z";
    let default = RetentionScope::AllExcept(vec![own.clone()]);
    let ids = |runs: &[RunSummary]| runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();

    // A cut-off before everything takes nothing.
    let none = store
        .expired_runs(
            &default,
            RunStatus::Failed,
            "2000-01-01T00:00:00.000Z",
            None,
            10,
        )
        .await
        .expect("nothing expired");
    assert!(none.is_empty());

    // A run retried after its batch was read (and archived) is not deleted with the batch.
    let batch = store
        .expired_runs(&default, RunStatus::Failed, future, None, 10)
        .await
        .expect("batch");
    assert_eq!(ids(&batch).len(), 3);
    let retried = &finished[0].id;
    store.retry_run(&actor(), retried).await.expect("retry");
    let first_two = ids(&batch[..2]);
    assert!(first_two.contains(retried));
    assert_eq!(
        store
            .delete_expired_runs(&first_two, RunStatus::Failed, future)
            .await
            .expect("delete"),
        1
    );
    let again = store
        .get_run(retried)
        .await
        .expect("get")
        .expect("retried kept");
    assert_eq!(again.summary.status, RunStatus::Queued);
    assert_eq!(again.steps.len(), 1, "its step results stay with it");

    // Batches of one: each takes one finished run and moves the cursor on.
    let mut after = None;
    let mut deleted = 0;
    for _ in 0..10 {
        let batch = store
            .expired_runs(&default, RunStatus::Failed, future, after.as_deref(), 1)
            .await
            .expect("batch");
        let Some(last) = batch.last() else {
            break;
        };
        assert_eq!(batch.len(), 1);
        after = Some(last.id.clone());
        deleted += store
            .delete_expired_runs(&ids(&batch), RunStatus::Failed, future)
            .await
            .expect("delete");
    }
    assert_eq!(deleted, 1, "the one left of the first batch");
    for run in finished.iter().filter(|r| &r.id != retried) {
        assert!(store.get_run(&run.id).await.expect("get").is_none());
    }
    // Live runs stay, whatever the cut-off: live statuses are refused outright.
    for live in [RunStatus::Queued, RunStatus::Running] {
        assert!(matches!(
            store.expired_runs(&default, live, future, None, 10).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store
                .delete_expired_runs(&[running[0].id.clone()], live, future)
                .await,
            Err(StoreError::Conflict(_))
        ));
    }
    let live = store
        .get_run(&running[0].id)
        .await
        .expect("get")
        .expect("running kept");
    assert_eq!(live.summary.status, RunStatus::Running);
    let queued: Vec<_> = runs
        .iter()
        .filter(|id| !claimed.iter().any(|c| &c.id == *id))
        .collect();
    assert_eq!(queued.len(), 2);
    for id in queued {
        let run = store.get_run(id).await.expect("get").expect("queued kept");
        assert_eq!(run.summary.status, RunStatus::Queued);
    }
    // The flow with its own retention was left to its own scope, where its run is archived
    // with its event before it is deleted.
    assert!(store.get_run(&kept_by_own).await.expect("get").is_some());
    let own_batch = store
        .expired_runs(
            &RetentionScope::Flow(own.clone()),
            RunStatus::Succeeded,
            future,
            None,
            10,
        )
        .await
        .expect("own batch");
    let own_ids = ids(&own_batch);
    assert_eq!(own_ids.as_slice(), std::slice::from_ref(&kept_by_own));
    let records = store.archive_records(own_batch).await.expect("records");
    assert_eq!(records.len(), 1);
    let event = records[0].event.as_ref().expect("its event");
    assert_eq!(event.run_id, kept_by_own);
    assert_eq!(event.event_key.as_deref(), Some("own-1"));
    assert_eq!(records[0].run.status, RunStatus::Succeeded);
    assert_eq!(
        store
            .delete_expired_runs(&own_ids, RunStatus::Succeeded, future)
            .await
            .expect("own delete"),
        1
    );
    assert!(store.get_run(&kept_by_own).await.expect("get").is_none());
    // A deleted run's event went with it: the same event key is accepted as new again.
    let again = accept_new(store, &own, Some("own-1")).await;
    assert_ne!(again, kept_by_own);
}
