//! Runs the journey scripts of `tests/browser` (Node, playwright-core, Debian's headless
//! Chromium) against a test server: a console test starts a `Server`, creates what the journey
//! needs over the API, then calls `run_journey("smoke.mjs", &server.base, &[...])`.
//!
//! `run_journey` blocks its thread until the script ends (at most `JOURNEY_TIMEOUT`); the
//! server is another process, so a `#[tokio::test]` may call it directly.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The journey scripts, their `package.json` and (after `npm ci`) their `node_modules`.
const BROWSER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/browser/");

/// Screenshots go to `SCREENSHOTS/<script stem>/<name>.png`.
const SCREENSHOTS: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/screenshots/");

/// A script still running after this long is killed (the scripts give up on their own after
/// 100 s, each browser action after 10 s).
const JOURNEY_TIMEOUT: Duration = Duration::from_secs(120);

const INSTALL_HINT: &str = "`bash .ci/run` installs it, or run \
     `apt-get install -y chromium chromium-driver && npm ci --prefix tests/browser`";

/// The Chromium binary the scripts launch: `CHROMIUM`, else Debian's.
fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Whether journeys can run here: `node` runs, playwright-core is installed in
/// `tests/browser/node_modules` and the Chromium binary exists. `Err` says what is missing and
/// how to install it.
#[allow(dead_code)] // used by console tests
pub fn available() -> Result<(), String> {
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Err(format!(
                "browser tests need Node.js: `node --version` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Err(e) => return Err(format!("browser tests need Node.js (`node`: {e})")),
    }
    let playwright = Path::new(BROWSER_DIR).join("node_modules/playwright-core");
    if !playwright.is_dir() {
        return Err(format!(
            "browser tests need playwright-core in {}; {INSTALL_HINT}",
            playwright.display()
        ));
    }
    let chromium = chromium();
    if !Path::new(&chromium).exists() {
        return Err(format!(
            "browser tests need Chromium at {chromium} (or set CHROMIUM); {INSTALL_HINT}"
        ));
    }
    Ok(())
}

/// Runs `node tests/browser/<script>` with `HOOKFLOW_BASE=base`, `SCREENSHOT_DIR` under the
/// target directory and `env`. `Ok(stdout)` when it exits 0; otherwise `Err` with its stdout,
/// its stderr and how it ended (killed after `JOURNEY_TIMEOUT` when it runs that long).
#[allow(dead_code)] // used by console tests
pub fn run_journey(script: &str, base: &str, env: &[(&str, String)]) -> Result<String, String> {
    let path = Path::new(BROWSER_DIR).join(script);
    let stem = Path::new(script)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(script);
    let screenshots = format!("{SCREENSHOTS}{stem}");
    let mut child = Command::new("node")
        .arg(&path)
        .current_dir(BROWSER_DIR)
        .env("HOOKFLOW_BASE", base)
        .env("SCREENSHOT_DIR", &screenshots)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run node {}: {e}", path.display()))?;
    // Both pipes are drained while the script runs, so a chatty script cannot block on a full one.
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));

    let deadline = Instant::now() + JOURNEY_TIMEOUT;
    let ended = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                // SIGKILL: Chromium exits by itself when its pipe to node closes.
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "killed after {} s without finishing",
                    JOURNEY_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("waiting for it failed: {e}"));
            }
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match ended {
        Ok(status) if status.success() => Ok(stdout),
        Ok(status) => Err(format!(
            "journey {script} failed ({status}; screenshots in {screenshots}):\n{stdout}{stderr}"
        )),
        Err(why) => Err(format!(
            "journey {script} {why} (screenshots in {screenshots}):\n{stdout}{stderr}"
        )),
    }
}

/// Reads a pipe to its end on a thread of its own.
fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
