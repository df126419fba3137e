//! Retention archives: what retention deletes (audit events, runs) is first appended to
//! owner-only gzip JSON Lines files, one per day, and synced, so a delete never commits before
//! the archive of what it deletes is on disk.
//!
//! Each append is one complete gzip member (`{prefix}-{day}.jsonl.gz`): a file is a series of
//! members, which `gzip -dc`/`zcat` and any multi-member reader decompress as one stream. An
//! append cut short by a crash leaves at most a truncated last member; the retention that made
//! it did not delete, so it archives that data again in a new member.
//!
//! Compression and `fsync` block: callers run [`append_by_day`] on a blocking thread
//! (`tokio::task::spawn_blocking`), never on the async runtime.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why an archive could not be written; the retention that asked deletes nothing.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("archive directory {0}")]
    Dir(String),
    /// The blocking task writing the archive panicked or was cancelled.
    #[error("archive task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Appends `lines` (`(day, JSON text)`, the day as `YYYY-MM-DD`) to `dir/{prefix}-{day}.jsonl.gz`,
/// one gzip member per file, each line followed by `\n`, in the order given; syncs every file it
/// wrote, and `dir` when a file was created in it. Creates `dir` (owner-only) if missing.
pub fn append_by_day(
    dir: &Path,
    prefix: &str,
    lines: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ArchiveError> {
    crate::files::create_private_dir(dir).map_err(|e| ArchiveError::Dir(format!("{e:#}")))?;
    let mut by_day: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (day, line) in lines {
        by_day.entry(day).or_default().push(line);
    }
    let mut created = false;
    for (day, lines) in by_day {
        let path = dir.join(format!("{prefix}-{day}.jsonl.gz"));
        let io = |source| ArchiveError::Io {
            path: path.clone(),
            source,
        };
        created |= !path.exists();
        let file = crate::files::open_private_append(&path)
            .map_err(|e| io(std::io::Error::other(format!("{e:#}"))))?;
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        for line in lines {
            gz.write_all(line.as_bytes()).map_err(io)?;
            gz.write_all(b"\n").map_err(io)?;
        }
        gz.finish().map_err(io)?.sync_all().map_err(io)?;
    }
    if created {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Makes the creation of a file in `dir` durable (its directory entry).
fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| ArchiveError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn read(path: &Path) -> String {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[test]
    fn appends_one_member_per_call_to_one_owner_only_file_per_day() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("archive");
        append_by_day(
            &dir,
            "runs",
            [
                ("2026-12-01".to_string(), r#"{"n":1}"#.to_string()),
                ("2026-12-02".to_string(), r#"{"n":2}"#.to_string()),
                ("2026-12-01".to_string(), r#"{"n":3}"#.to_string()),
            ],
        )
        .unwrap();
        append_by_day(
            &dir,
            "runs",
            [("2026-12-01".to_string(), r#"{"n":4}"#.to_string())],
        )
        .unwrap();
        let first = dir.join("runs-2026-12-01.jsonl.gz");
        assert_eq!(read(&first), "{\"n\":1}\n{\"n\":3}\n{\"n\":4}\n");
        assert_eq!(read(&dir.join("runs-2026-12-02.jsonl.gz")), "{\"n\":2}\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&first), 0o600);
            assert_eq!(mode(&dir), 0o700);
        }
    }

    #[test]
    fn a_directory_that_is_a_file_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("taken");
        std::fs::write(&file, "x").unwrap();
        let err = append_by_day(&file, "runs", [("d".to_string(), "{}".to_string())]);
        assert!(err.is_err(), "{err:?}");
    }
}
