use super::*;
use crate::store::DbErrorKind;
use crate::store::sql::{Col, Param, Row, Ty, job, params};
use sha2::{Digest, Sha384};
use std::path::Path;

fn open(path: &Path) -> SqliteBackend {
    SqliteBackend::open(path, SqliteOptions::default()).expect("open")
}

const CREATE_T: &str = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)";

async fn exec(backend: &SqliteBackend, sql: &'static str, params: Vec<Param>) -> StoreResult<u64> {
    backend
        .write(job(move |c| {
            Box::pin(async move { c.execute(sql, params).await })
        }))
        .await
}

async fn names(backend: &SqliteBackend) -> Vec<String> {
    backend
        .read(job(|c| {
            Box::pin(async move {
                let rows = c.query("SELECT name FROM t ORDER BY id", params![]).await?;
                rows.iter().map(|r| r.text("name")).collect()
            })
        }))
        .await
        .expect("read names")
}

#[tokio::test]
async fn open_creates_the_schema_and_locks_every_spelling_of_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("data");
    let db = real.join("hookflow.db");
    let backend = open(&db);
    assert_eq!(backend.path(), db.canonicalize().unwrap());
    let version = backend
        .read(job(|c| {
            Box::pin(async move {
                let row = c
                    .query_opt("SELECT MAX(version) AS v FROM _sqlx_migrations", params![])
                    .await?;
                row.expect("a row").int("v")
            })
        }))
        .await
        .unwrap();
    assert_eq!(version, migrate::latest_version());
    assert!(version >= 7);
    // The schema is there: the flows table can be read.
    backend
        .read(job(|c| {
            Box::pin(async move { c.query("SELECT * FROM flows", params![]).await.map(drop) })
        }))
        .await
        .unwrap();

    std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
    std::fs::create_dir(dir.path().join("other")).unwrap();
    let spellings = [
        dir.path().join("link/hookflow.db"),
        dir.path().join("other/../data/hookflow.db"),
        dir.path().join("data//hookflow.db"),
        dir.path().join("data/./hookflow.db"),
    ];
    for spelling in &spellings {
        match SqliteBackend::open(spelling, SqliteOptions::default()) {
            Err(StoreError::Unavailable(message)) => {
                assert!(
                    message.contains("another hookflow process is using the database"),
                    "{message}"
                );
                assert!(message.contains("hookflow.db.lock is held"), "{message}");
            }
            Err(other) => panic!("{}: unexpected error {other}", spelling.display()),
            Ok(_) => panic!("{} was opened twice", spelling.display()),
        }
    }
    drop(backend);
    // Released with the backend; a database from an earlier run opens without migrating again.
    let again = open(&spellings[0]);
    assert_eq!(names_of_migrations(&again).await, version);
}

async fn names_of_migrations(backend: &SqliteBackend) -> i64 {
    backend
        .read(job(|c| {
            Box::pin(async move {
                let rows = c
                    .query("SELECT version FROM _sqlx_migrations", params![])
                    .await?;
                Ok(rows.len() as i64)
            })
        }))
        .await
        .unwrap()
}

#[tokio::test]
async fn writes_commit_roll_back_and_survive_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let backend = open(&dir.path().join("x.db"));
    exec(&backend, CREATE_T, params![]).await.unwrap();
    let n = exec(&backend, "INSERT INTO t (name) VALUES (?)", params!["a"])
        .await
        .unwrap();
    assert_eq!(n, 1);

    // A failing job: its first insert is rolled back with it.
    let failed = backend
        .write(job(|c| {
            Box::pin(async move {
                c.execute("INSERT INTO t (name) VALUES (?)", params!["b"])
                    .await?;
                c.execute("INSERT INTO t (name) VALUES (?)", params!["a"])
                    .await
            })
        }))
        .await;
    let error = failed.expect_err("duplicate name");
    assert!(error.is_data_error(), "{error:?}");
    assert!(error.to_string().contains("UNIQUE"), "{error}");
    assert_eq!(names(&backend).await, ["a"]);

    // A job that fails without a database error is rolled back too.
    let refused: StoreResult<()> = backend
        .write(job(|c| {
            Box::pin(async move {
                c.execute("INSERT INTO t (name) VALUES (?)", params!["c"])
                    .await?;
                Err(StoreError::Conflict("no".into()))
            })
        }))
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))));
    assert_eq!(names(&backend).await, ["a"]);

    // A panicking job is rolled back and answered; the writer goes on.
    let panicked: StoreResult<()> = backend
        .write(job(|c| {
            Box::pin(async move {
                c.execute("INSERT INTO t (name) VALUES (?)", params!["d"])
                    .await?;
                panic!("boom");
            })
        }))
        .await;
    match panicked {
        Err(StoreError::Write(message)) => assert_eq!(message, "the write panicked: boom"),
        other => panic!("unexpected {other:?}"),
    }
    exec(&backend, "INSERT INTO t (name) VALUES (?)", params!["e"])
        .await
        .unwrap();
    assert_eq!(names(&backend).await, ["a", "e"]);
    backend.health().await.unwrap();

    // A panicking read is answered too.
    let read: StoreResult<()> = backend
        .read(job(|_| Box::pin(async move { panic!("read boom") })))
        .await;
    assert!(
        matches!(&read, Err(StoreError::Database { message, .. }) if message == "the read panicked: read boom"),
        "{read:?}"
    );
    assert_eq!(names(&backend).await, ["a", "e"]);

    // Readers cannot write.
    let sneaky = backend
        .read(job(|c| {
            Box::pin(async move {
                c.execute("INSERT INTO t (name) VALUES ('x')", params![])
                    .await
            })
        }))
        .await;
    assert!(sneaky.is_err());

    // RETURNING goes through query.
    let rows = backend
        .write(job(|c| {
            Box::pin(async move {
                c.query(
                    "UPDATE t SET name = name || '!' WHERE name = ? RETURNING id, name",
                    params!["e"],
                )
                .await
            })
        }))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].text("name").unwrap(), "e!");
}

#[tokio::test]
async fn bulk_runs_once_per_row_and_returns_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let backend = open(&dir.path().join("x.db"));
    exec(
        &backend,
        "CREATE TABLE k (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, n INTEGER, \
         x REAL, flag BOOLEAN, data BLOB)",
        params![],
    )
    .await
    .unwrap();
    let columns = [
        Col("name", Ty::Text),
        Col("n", Ty::Int),
        Col("x", Ty::Real),
        Col("flag", Ty::Bool),
        Col("data", Ty::Blob),
    ];
    let rows: Vec<Vec<Param>> = vec![
        params!["a", 1i64, 0.5, true, vec![1u8, 2]],
        vec![
            Param::Text(Some("b".into())),
            Param::Int(None),
            Param::Real(None),
            Param::Bool(Some(false)),
            Param::Blob(None),
        ],
        params!["c", 3i64, 2.0, false, Vec::<u8>::new()],
    ];
    let returned = backend
        .write(job(move |c| {
            Box::pin(async move {
                c.bulk(
                    "INSERT INTO k (name, n, x, flag, data) \
                     SELECT v.name, v.n, v.x, v.flag, v.data FROM {rows} WHERE true \
                     ON CONFLICT (name) DO NOTHING RETURNING id, name, n, x, flag, data",
                    &columns,
                    rows,
                )
                .await
            })
        }))
        .await
        .unwrap();
    let got: Vec<(i64, String)> = returned
        .iter()
        .map(|r: &Row| (r.int("id").unwrap(), r.text("name").unwrap()))
        .collect();
    assert_eq!(got, [(1, "a".into()), (2, "b".into()), (3, "c".into())]);
    assert_eq!(returned[0].int("n").unwrap(), 1);
    assert_eq!(returned[0].real("x").unwrap(), 0.5);
    assert!(returned[0].bool("flag").unwrap());
    assert_eq!(returned[0].blob("data").unwrap(), [1, 2]);
    assert_eq!(returned[1].opt_int("n").unwrap(), None);
    assert_eq!(returned[1].opt_real("x").unwrap(), None);
    assert!(!returned[1].bool("flag").unwrap());
    assert_eq!(returned[2].blob("data").unwrap(), Vec::<u8>::new());

    // Conflicting rows return nothing; no rows at all never touch the database.
    let again = backend
        .write(job(move |c| {
            Box::pin(async move {
                let mut out = c
                    .bulk(
                        "INSERT INTO k (name) SELECT v.name FROM {rows} WHERE true \
                         ON CONFLICT (name) DO NOTHING RETURNING id",
                        &[Col("name", Ty::Text)],
                        vec![params!["a"], params!["d"]],
                    )
                    .await?;
                let none = c
                    .bulk("not even SQL {rows}", &[Col("name", Ty::Text)], Vec::new())
                    .await?;
                out.extend(none);
                Ok(out)
            })
        }))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].int("id").unwrap(), 4);
}

#[tokio::test]
async fn text_that_is_not_utf8_is_corrupt_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let backend = open(&dir.path().join("x.db"));
    let result = backend
        .read(job(|c| {
            Box::pin(async move { c.query("SELECT CAST(x'ff' AS TEXT) AS t", params![]).await })
        }))
        .await;
    assert!(
        matches!(&result, Err(StoreError::Corrupt(m)) if m.contains("column t")),
        "{result:?}"
    );
}

#[tokio::test]
async fn read_only_sees_committed_data_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    assert!(matches!(
        SqliteBackend::open_read_only(&path),
        Err(StoreError::NotFound(m)) if m.starts_with("database ")
    ));
    let backend = open(&path);
    exec(&backend, CREATE_T, params![]).await.unwrap();
    exec(&backend, "INSERT INTO t (name) VALUES ('a')", params![])
        .await
        .unwrap();

    // Next to a running server (no lock taken).
    let offline = SqliteBackend::open_read_only(&path).expect("read-only open");
    assert_eq!(names(&offline).await, ["a"]);
    exec(&backend, "INSERT INTO t (name) VALUES ('b')", params![])
        .await
        .unwrap();
    assert_eq!(names(&offline).await, ["a", "b"]);
    let refused = exec(&offline, "INSERT INTO t (name) VALUES ('c')", params![]).await;
    assert!(matches!(refused, Err(StoreError::ReadOnly)), "{refused:?}");
    offline.health().await.unwrap();
    drop(offline);

    // And with no server running (its WAL checkpointed and removed).
    drop(backend);
    let offline = SqliteBackend::open_read_only(&path).expect("read-only open");
    assert_eq!(names(&offline).await, ["a", "b"]);
}

#[tokio::test]
async fn read_only_refuses_an_old_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE t (x)").unwrap();
    drop(conn);
    match SqliteBackend::open_read_only(&path) {
        Err(StoreError::Unavailable(message)) => {
            let latest = migrate::latest_version();
            assert!(
                message.contains(&format!(
                    "has schema version 0; this hookflow needs {latest}: start `hookflow serve`"
                )),
                "{message}"
            );
        }
        other => panic!("unexpected {:?}", other.err()),
    }
}

#[tokio::test]
async fn a_dead_writer_is_reported_by_health_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let backend = open(&dir.path().join("x.db"));
    backend.health().await.unwrap();
    backend.stop_writer_for_test("the disk caught fire");
    match backend.health().await {
        Err(StoreError::Unavailable(reason)) => assert_eq!(reason, "the disk caught fire"),
        other => panic!("unexpected {other:?}"),
    }
    match exec(&backend, "SELECT 1", params![]).await {
        Err(StoreError::Unavailable(reason)) => assert_eq!(reason, "the disk caught fire"),
        other => panic!("unexpected {other:?}"),
    }
    // Reads still work.
    let one = backend
        .read(job(|c| {
            Box::pin(async move { c.query("SELECT 1 AS one", params![]).await })
        }))
        .await
        .unwrap();
    assert_eq!(one[0].int("one").unwrap(), 1);
}

#[test]
fn a_unique_violation_is_a_data_error() {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE TABLE t (x TEXT UNIQUE); INSERT INTO t VALUES ('a');")
        .unwrap();
    let error = conn.execute("INSERT INTO t VALUES ('a')", []).unwrap_err();
    let error = StoreError::from(error);
    assert!(error.is_data_error(), "{error:?}");
    assert!(
        matches!(&error, StoreError::Database { kind: DbErrorKind::Data, message } if message.contains("UNIQUE constraint failed: t.x")),
        "{error:?}"
    );
    let syntax = StoreError::from(conn.execute("NOT SQL", []).unwrap_err());
    assert!(matches!(
        syntax,
        StoreError::Database {
            kind: DbErrorKind::Other,
            ..
        }
    ));
}

#[test]
fn checksums_are_sqlx_checksums() {
    for migration in migrations_for_test() {
        assert_eq!(
            &*migration.checksum,
            Sha384::digest(migration.sql.as_bytes()).as_slice(),
            "migration {}",
            migration.version
        );
    }
}

fn migrations_for_test() -> Vec<&'static sqlx::migrate::Migration> {
    migrate::MIGRATOR.migrations.iter().collect()
}

#[tokio::test]
async fn a_changed_migration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    drop(open(&path));
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 2",
        [],
    )
    .unwrap();
    drop(conn);
    match SqliteBackend::open(&path, SqliteOptions::default()) {
        Err(StoreError::Migrate(message)) => {
            assert_eq!(message, "migration 2 changed since it was applied")
        }
        other => panic!("unexpected {:?}", other.err()),
    }
    // A failed open released its lock.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("DELETE FROM _sqlx_migrations WHERE version = 2", [])
        .unwrap();
    conn.execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'future', TRUE, x'00', 0)",
        [],
    )
    .unwrap();
    drop(conn);
    assert!(matches!(
        SqliteBackend::open(&path, SqliteOptions::default()),
        Err(StoreError::Migrate(m)) if m.contains("migration 9999")
    ));
}

/// A job that ends the transaction itself (as a broken connection would have) and reports
/// success: the writer must not trust its connection afterwards.
async fn commit_behind_the_writers_back(backend: &SqliteBackend) -> StoreResult<u64> {
    exec(backend, "COMMIT", params![]).await
}

#[tokio::test]
async fn a_broken_writer_connection_is_reopened_or_reported() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backend = open(&data.join("x.db"));
    exec(&backend, CREATE_T, params![]).await.unwrap();

    let error = commit_behind_the_writers_back(&backend)
        .await
        .expect_err("a transaction that vanished is not a success");
    assert!(
        error
            .to_string()
            .contains("rolled back before it could commit"),
        "{error}"
    );
    // Reopened: writes go on.
    exec(&backend, "INSERT INTO t (name) VALUES ('a')", params![])
        .await
        .unwrap();
    backend.health().await.unwrap();

    // Now the database cannot be opened again where it was.
    std::fs::rename(&data, dir.path().join("moved")).unwrap();
    commit_behind_the_writers_back(&backend).await.unwrap_err();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while backend.health.dead().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    match backend.health().await {
        Err(StoreError::Unavailable(reason)) => {
            assert!(
                reason.starts_with("the SQLite writer stopped: "),
                "{reason}"
            );
            assert!(reason.contains("could not be reopened"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        exec(&backend, "INSERT INTO t (name) VALUES ('b')", params![]).await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let backend = std::sync::Arc::new(
        SqliteBackend::open(
            &dir.path().join("x.db"),
            SqliteOptions {
                synchronous_full: false,
                readers: 2,
            },
        )
        .unwrap(),
    );
    exec(&backend, CREATE_T, params![]).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200i64 {
        let backend = backend.clone();
        tasks.push(tokio::spawn(async move {
            backend
                .write(job(move |c| {
                    Box::pin(async move {
                        c.execute("INSERT INTO t (name) VALUES (?)", params![format!("n{i}")])
                            .await
                    })
                }))
                .await
                .unwrap();
            backend
                .read(job(|c| {
                    Box::pin(async move { c.query("SELECT COUNT(*) AS n FROM t", params![]).await })
                }))
                .await
                .unwrap()[0]
                .int("n")
                .unwrap()
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap() >= 1);
    }
    assert_eq!(names(&backend).await.len(), 200);
}
