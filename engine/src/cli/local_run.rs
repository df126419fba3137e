//! What `flow run` adds to a local run besides the flow and the body: request headers
//! (`--header K:V`), secrets (`--secret NAME=VALUE`, `--secrets-file FILE`) and `-` for stdin.
//!
//! Secrets reach steps exactly as on a server: through the executor's [`Secrets`] service, over
//! a throw-away SQLite store in a private temporary directory, sealed with a key generated for
//! the run. So grants, rendering and trace redaction are the server's own code, not a second
//! implementation for the CLI; the directory is removed when the run ends.

use super::{Failure, usage};
use crate::secrets::{SecretBox, Secrets};
use crate::store::{Actor, Scope};
use serde_json::{Map, Value, json};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The extra inputs of a local run.
pub struct LocalRun {
    pub headers: Vec<String>,
    pub secrets: Vec<String>,
    pub secrets_file: Option<PathBuf>,
}

/// Reads `path`, or all of stdin when it is `-`.
pub fn read_source(path: &Path) -> Result<String, String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }
}

/// `NAME:VALUE` pairs as the trigger's `headers` object: names lower-cased, as the webhook
/// intake records them.
pub fn headers(pairs: &[String]) -> Result<Value, Failure> {
    let mut map = Map::new();
    for pair in pairs {
        let (name, value) = pair
            .split_once(':')
            .ok_or_else(|| usage(format!("--header {pair:?}: expected NAME:VALUE")))?;
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(usage(format!("--header {pair:?}: not a header name")));
        }
        map.insert(name, json!(value.trim()));
    }
    Ok(Value::Object(map))
}

/// `NAME=VALUE` from `--secret` and the lines of `--secrets-file`, later ones winning.
pub fn secret_pairs(run: &LocalRun) -> Result<Vec<(String, String)>, Failure> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut add = |text: &str, origin: &str| -> Result<(), Failure> {
        let (name, value) = text
            .split_once('=')
            .ok_or_else(|| usage(format!("{origin}: expected NAME=VALUE")))?;
        let name = name.trim();
        crate::flow::validate::check_secret_name(name)
            .map_err(|e| usage(format!("{origin}: {e}")))?;
        pairs.retain(|(n, _)| n != name);
        pairs.push((name.to_string(), value.to_string()));
        Ok(())
    };
    if let Some(file) = &run.secrets_file {
        let text = read_source(file).map_err(|e| usage(format!("--secrets-file: {e}")))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            add(line, &format!("{} line {}", file.display(), i + 1))?;
        }
    }
    for pair in &run.secrets {
        // The value is not named in the message: it is a secret.
        let name = pair.split_once('=').map_or("", |(n, _)| n);
        add(pair, &format!("--secret {name}"))?;
    }
    Ok(pairs)
}

/// A secrets service holding `pairs` for `scope`, and the directory to remove afterwards.
pub struct TemporarySecrets {
    pub secrets: Arc<Secrets>,
    pub scope: Scope,
    dir: PathBuf,
}

impl Drop for TemporarySecrets {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn temporary_secrets(pairs: &[(String, String)]) -> Result<TemporarySecrets, Failure> {
    let dir = std::env::temp_dir().join(format!("hookflow-run-{}", crate::store::new_id()));
    crate::files::create_private_dir(&dir)?;
    let opened = async {
        let store = scratch_store(&dir).await?;
        let sbox = SecretBox::load(None, &dir)?;
        Ok::<_, Failure>(Secrets::new(store, Arc::new(sbox)))
    }
    .await;
    let secrets = match opened {
        Ok(secrets) => secrets,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    // From here on dropping `holder` removes the directory.
    let holder = TemporarySecrets {
        secrets: Arc::new(secrets),
        scope: Scope {
            platform_id: "default".into(),
            project_id: "default".into(),
        },
        dir,
    };
    for (name, value) in pairs {
        holder
            .secrets
            .put(&Actor::system(), &holder.scope, name, value)
            .await
            .map_err(|e| Failure::Internal(anyhow::anyhow!("keeping secret {name}: {e}")))?;
    }
    Ok(holder)
}

async fn scratch_store(dir: &Path) -> Result<crate::store::DynStore, Failure> {
    let url = crate::store::DatabaseUrl::Sqlite(dir.join("run.db"));
    let options = crate::store::OpenOptions {
        sqlite_synchronous_full: false,
        ..Default::default()
    };
    crate::store::open(&url, &options)
        .await
        .map(|opened| opened.store)
        .map_err(|e| Failure::Internal(anyhow::anyhow!("opening a scratch store for secrets: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_lower_cased_and_checked() {
        let h = headers(&["X-Gitlab-Event: Push Hook".into(), "a:b:c".into()])
            .ok()
            .unwrap();
        assert_eq!(h, json!({"x-gitlab-event": "Push Hook", "a": "b:c"}));
        assert!(headers(&["no colon".into()]).is_err());
        assert!(headers(&[": v".into()]).is_err());
    }

    #[test]
    fn secrets_from_flags_and_a_file_later_ones_win() {
        let dir = std::env::temp_dir().join(format!("hookflow-test-{}", crate::store::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secrets.env");
        std::fs::write(&file, "# comment\n\nTOKEN=from-file\nOTHER=a=b\n").unwrap();
        let run = LocalRun {
            headers: vec![],
            secrets: vec!["TOKEN=from-flag".into()],
            secrets_file: Some(file),
        };
        let pairs = secret_pairs(&run).ok().unwrap();
        assert_eq!(
            pairs,
            [
                ("OTHER".to_string(), "a=b".to_string()),
                ("TOKEN".to_string(), "from-flag".to_string())
            ]
        );
        let bad = LocalRun {
            headers: vec![],
            secrets: vec!["NOVALUE".into()],
            secrets_file: None,
        };
        assert!(secret_pairs(&bad).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
