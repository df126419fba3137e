//! How SQLite's errors become [`StoreError`]s: the kind decides whether a group commit isolates
//! the requests of a failed batch (a request's own data) or runs it again (a busy database).

use crate::store::{DbErrorKind, StoreError};
use rusqlite::ErrorCode;

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> StoreError {
        let kind = match &error {
            rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
                ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch | ErrorCode::TooBig => {
                    DbErrorKind::Data
                }
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => DbErrorKind::Transient,
                _ => DbErrorKind::Other,
            },
            _ => DbErrorKind::Other,
        };
        StoreError::database(kind, error.to_string())
    }
}

/// True when `error` only means another connection held a lock for longer than the busy
/// timeout: the connection itself is fine, so nothing needs reopening.
pub(super) fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}
