//! The PostgreSQL backend, for deployments where several `hookflow serve` processes share one
//! database: a connection pool, each job in a transaction of its own.
//!
//! What makes the logic layer's guarantees hold with several writers is in the SQL it writes
//! through the dialect: claims skip locked rows under a lease, multi-row changes lock in id
//! order, audit appends lock the one-row chain head, deliveries lock the destinations they serve.
//! Wake-ups: transactions that queue runs or install plugins `NOTIFY`; [`WorkListener`] hears
//! them.
//!
//! Durability: a call returns only after its transaction committed. With PostgreSQL's default
//! `synchronous_commit = on` that means the commit is flushed to the WAL (and to synchronous
//! standbys, if configured); the store does not lower it.

mod conn;
mod listen;

pub use listen::{Hints, WorkListener};

use super::sql::{Backend, BoxFut, Job, panic_message};
use super::{StoreError, StoreResult};
use conn::PgConn;
use futures::FutureExt;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::time::Duration;

/// Connections per process by default. Batch writers, claims, sweeps and API reads share them;
/// the work listener has one more of its own. Mind PostgreSQL's `max_connections` (100 by
/// default) when running many processes.
pub const DEFAULT_POOL_SIZE: u32 = 16;
/// Group-commit tasks per process: while one batch commits, the next is being written.
const BATCH_WRITERS: usize = 2;

/// PostgreSQL behind [`super::SqlStore`].
pub struct PgBackend {
    pool: PgPool,
    options: PgConnectOptions,
    read_only: bool,
}

impl PgBackend {
    /// Connects to `url` with a pool of `max_connections` (at least 2: one batch writer and one
    /// other caller must be able to proceed at once) and applies migrations (several processes
    /// starting at once is fine: sqlx serializes them with an advisory lock).
    pub async fn open(url: &str, max_connections: u32) -> StoreResult<PgBackend> {
        let backend = PgBackend::connect(url, max_connections, false).await?;
        sqlx::migrate!("migrations/postgres")
            .run(&backend.pool)
            .await?;
        Ok(backend)
    }

    /// Connects without migrating, refusing writes: for offline commands beside live servers.
    pub async fn open_read_only(url: &str) -> StoreResult<PgBackend> {
        PgBackend::connect(url, 2, true).await
    }

    async fn connect(url: &str, max_connections: u32, read_only: bool) -> StoreResult<PgBackend> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        Ok(PgBackend {
            pool,
            options,
            read_only,
        })
    }

    /// Subscribes to the run and plugin channels: [`WorkListener::wait`] resolves when any
    /// process committed a transaction that queued runs or installed a plugin. Notifications are
    /// hints that can be lost on reconnects: keep polling as the fallback.
    pub async fn listen_for_work(&self) -> StoreResult<WorkListener> {
        WorkListener::connect(self.options.clone()).await
    }
}

impl Backend for PgBackend {
    fn write<T: Send + 'static>(&self, job: Job<T>) -> BoxFut<'_, StoreResult<T>> {
        Box::pin(async move {
            if self.read_only {
                return Err(StoreError::ReadOnly);
            }
            let mut tx = self.pool.begin().await?;
            let run = AssertUnwindSafe(async {
                let mut conn = PgConn { conn: &mut tx };
                job(&mut conn).await
            });
            match run.catch_unwind().await {
                Ok(Ok(value)) => {
                    tx.commit().await?;
                    Ok(value)
                }
                // Dropping the transaction rolls it back.
                Ok(Err(error)) => Err(error),
                Err(panic) => Err(StoreError::Write(format!(
                    "the write panicked: {}",
                    panic_message(&*panic)
                ))),
            }
        })
    }

    fn read<T: Send + 'static>(&self, job: Job<T>) -> BoxFut<'_, StoreResult<T>> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await?;
            let run = AssertUnwindSafe(async {
                let mut conn = PgConn { conn: &mut conn };
                job(&mut conn).await
            });
            run.catch_unwind().await.unwrap_or_else(|panic| {
                Err(StoreError::Write(format!(
                    "the read panicked: {}",
                    panic_message(&*panic)
                )))
            })
        })
    }

    fn health(&self) -> BoxFut<'_, StoreResult<()>> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map_err(|e| StoreError::Unavailable(format!("PostgreSQL: {e}")))?;
            Ok(())
        })
    }

    fn batch_writers(&self) -> usize {
        BATCH_WRITERS
    }
}
