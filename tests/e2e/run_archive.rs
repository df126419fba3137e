//! The run archive (`HOOKFLOW_RUN_ARCHIVE_DIR`): every run retention deletes is first written,
//! with its event and step results, to owner-only gzip JSON Lines files.

use crate::retention::{Expiring, expire_runs};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Read;

/// Every JSON line of every `runs-*.jsonl.gz` file in `dir`.
fn archived_lines(dir: &std::path::Path) -> Vec<Value> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("runs-") && name.ends_with(".jsonl.gz"),
            "{name}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        for line in text.lines() {
            let run: Value = serde_json::from_str(line).unwrap();
            // A run lands in the file of the day it was created.
            let day = run["run"]["created"].as_str().unwrap()[..10].to_string();
            assert_eq!(name, format!("runs-{day}.jsonl.gz"), "{run}");
            lines.push(run);
        }
    }
    lines
}

#[tokio::test]
async fn the_runs_retention_deletes_are_archived_first_and_read_back_as_json() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("run-archive");
    // Not destructured: the stopped first server holds the database.
    let expired = expire_runs(vec![(
        "HOOKFLOW_RUN_ARCHIVE_DIR",
        dir.display().to_string(),
    )])
    .await;
    let Expiring {
        second,
        expiring,
        kept_runs,
        expiring_runs,
        ..
    } = &expired;
    let lines = archived_lines(&dir);
    let archived: BTreeSet<&str> = lines
        .iter()
        .map(|l| l["run"]["id"].as_str().unwrap())
        .collect();
    let deleted: BTreeSet<&str> = expiring_runs
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    // Exactly the deleted runs, each once: the kept flow's runs are neither deleted nor archived.
    assert_eq!(archived, deleted);
    assert_eq!(lines.len(), deleted.len(), "{lines:?}");
    for run in kept_runs {
        assert_eq!(
            second.get_run(run["id"].as_str().unwrap()).await["id"],
            run["id"]
        );
    }
    for line in &lines {
        let id = line["run"]["id"].as_str().unwrap();
        let before = expiring_runs.iter().find(|r| r["id"] == id).unwrap();
        // The run record as the API showed it before the delete, its event and its steps.
        for field in [
            "flowId", "status", "eventId", "created", "finished", "attempt",
        ] {
            assert_eq!(line["run"][field], before[field], "{field}: {line}");
        }
        assert_eq!(line["run"]["flowId"], expiring.as_str());
        assert_eq!(line["event"]["id"], before["eventId"], "{line}");
        assert_eq!(line["event"]["runId"], id, "{line}");
        assert_eq!(line["event"]["body"], before["trigger"]["body"], "{line}");
        assert_eq!(
            line["event"]["eventKey"], before["trigger"]["body"]["id"],
            "{line}"
        );
        assert_eq!(line["steps"], before["steps"], "{line}");
        assert_eq!(line["steps"][0]["name"], "a", "{line}");
    }
}
