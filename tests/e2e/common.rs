//! The harness every end-to-end test uses: start the real `hookflow` binary on 127.0.0.1:0 with
//! a fresh SQLite data directory, talk to it over HTTP, kill and restart it.

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Path of the test-only plugin that loops, allocates without bound and traps on request.
pub fn hostile_plugin() -> PathBuf {
    PathBuf::from(hookflow::builtins::HOSTILE_PLUGIN_PATH)
}

/// A running server process and its data directory.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub client: Client,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    capture_logs: bool,
    /// The PostgreSQL database of this server, when the suite runs on PostgreSQL (dropped with
    /// the server).
    _database: Option<TestDatabase>,
}

/// True when the suite runs against PostgreSQL (`HOOKFLOW_TEST_DATABASE=postgres`) instead of
/// the SQLite default.
pub fn on_postgres() -> bool {
    std::env::var("HOOKFLOW_TEST_DATABASE").is_ok_and(|v| v == "postgres")
}

/// A PostgreSQL database created for one test server and dropped with it.
pub struct TestDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDatabase {
    pub fn create() -> TestDatabase {
        let admin_url = std::env::var("HOOKFLOW_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("hookflow_e2e_{}", uuid::Uuid::new_v4().simple());
        admin_statement(&admin_url, format!("CREATE DATABASE \"{name}\""));
        let base = admin_url
            .rsplit_once('/')
            .expect("database URL with a path")
            .0;
        TestDatabase {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        admin_statement(
            &self.admin_url,
            format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
    }
}

/// Runs one statement on the admin database, on a thread of its own (callers may be inside a
/// runtime).
fn admin_statement(admin_url: &str, statement: String) {
    use sqlx::{Connection, Executor};
    let admin_url = admin_url.to_string();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .expect("connect to PostgreSQL (HOOKFLOW_TEST_POSTGRES_URL)");
                admin.execute(statement.as_str()).await.expect(&statement);
                let _ = admin.close().await;
            })
    })
    .join()
    .expect("admin statement thread");
}

/// The secret key every process sharing one database must be given.
const SHARED_SECRET_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

impl TestDatabase {
    /// A server process on this database, one of several sharing it (same secret key), with
    /// `extra` environment on top.
    pub async fn start_server(&self, extra: &[(&'static str, &str)]) -> Server {
        let mut env = vec![
            ("HOOKFLOW_DATABASE_URL", self.url.clone()),
            ("HOOKFLOW_SECRET_KEY", SHARED_SECRET_KEY.to_string()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        Server::start_with(Options {
            env,
            ..Options::default()
        })
        .await
    }
}

/// Options for [`Server::start_with`].
#[derive(Default)]
pub struct Options {
    /// Install the test plugins (`hostile`, `effect`).
    pub hostile: bool,
    /// Extra environment variables.
    pub env: Vec<(&'static str, String)>,
}

impl Server {
    /// A server with the built-in plugins and the hostile test plugin.
    pub async fn start() -> Server {
        Server::start_with(Options {
            hostile: true,
            ..Options::default()
        })
        .await
    }

    pub async fn start_with(options: Options) -> Server {
        Server::start_inner(options, false).await
    }

    /// Like [`Server::start_with`], with the server's log (stderr) written to a file that
    /// [`Server::logs`] reads instead of the test's own stderr.
    pub async fn start_with_logs(options: Options) -> Server {
        Server::start_inner(options, true).await
    }

    async fn start_inner(options: Options, capture_logs: bool) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        if options.hostile {
            std::fs::copy(hostile_plugin(), plugins.join("hostile.wasm"))
                .expect("copy hostile plugin");
            std::fs::copy(
                hookflow::builtins::EFFECT_PLUGIN_PATH,
                plugins.join("effect.wasm"),
            )
            .expect("copy effect plugin");
        }
        let mut env: Vec<(String, String)> = options
            .env
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let database = on_postgres().then(TestDatabase::create);
        if let Some(database) = &database {
            env.insert(0, ("HOOKFLOW_DATABASE_URL".into(), database.url.clone()));
            // A killed server's runs come back when their lease expires (no other process can
            // be ruled out on a shared database): keep that short in tests (a test may override).
            env.insert(0, ("HOOKFLOW_LEASE_SECS".into(), "2".into()));
        }
        let mut server = Server {
            child: None,
            base: String::new(),
            client: Client::new(),
            dir,
            env,
            capture_logs,
            _database: database,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hookflow"));
        command
            .arg("serve")
            .env("HOOKFLOW_LISTEN", "127.0.0.1:0")
            .env("HOOKFLOW_DATA_DIR", self.dir.path())
            // One compiled-plugin cache for every test server: compiling is the slow part of a start.
            .env(
                "HOOKFLOW_CACHE_DIR",
                concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache"),
            )
            .env("HOOKFLOW_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("HOOKFLOW_LOG", "warn")
            .env("HOOKFLOW_SHUTDOWN_GRACE_SECS", "5")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(if self.capture_logs {
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("server.log"))
                    .expect("open server log");
                Stdio::from(log)
            } else {
                Stdio::inherit()
            });
        let mut child = command.spawn().expect("start hookflow");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listening line");
        let base = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(
            base.starts_with("http://127.0.0.1:"),
            "unexpected first line from server: {line:?}"
        );
        self.base = base;
        self.child = Some(child);
    }

    /// What the server logged so far (started with [`Server::start_with_logs`]).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// Resident memory of the server process, in bytes (Linux `/proc`).
    pub fn resident_bytes(&self) -> u64 {
        let pid = self.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }

    /// `kill -9`: no chance to flush or drain anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again on the same data directory (new port).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// The server's database URL: the PostgreSQL test database, or the SQLite file in its data
    /// directory. CLI commands get it as `--database`.
    pub fn database_url(&self) -> String {
        match &self._database {
            Some(database) => database.url.clone(),
            None => format!("sqlite://{}", self.dir.path().join("hookflow.db").display()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Authenticated admin request.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// An authenticated GET answered with JSON (any status).
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.admin(reqwest::Method::GET, path).send().await.unwrap();
        response.json().await.unwrap()
    }

    /// Creates a flow, asserting success; returns its id.
    pub async fn create_flow(&self, flow: Value) -> String {
        let response = self
            .admin(reqwest::Method::POST, "/v1/flows")
            .json(&flow)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "create flow failed: {body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// Posts an event to a flow's webhook.
    pub async fn post_event(&self, flow_id: &str, body: &Value) -> Response {
        self.client
            .post(self.url(&format!("/v1/webhooks/{flow_id}")))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Posts an event and returns the run id from the 202.
    pub async fn trigger(&self, flow_id: &str, body: &Value) -> String {
        let response = self.post_event(flow_id, body).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.unwrap();
        body["runId"].as_str().unwrap().to_string()
    }

    pub async fn get_run(&self, run_id: &str) -> Value {
        let response = self
            .admin(reqwest::Method::GET, &format!("/v1/flow-runs/{run_id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// Polls until the run is terminal (bounded: 60 s).
    pub async fn wait_run(&self, run_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let run = self.get_run(run_id).await;
            let status = run["status"].as_str().unwrap_or_default();
            if !matches!(status, "QUEUED" | "RUNNING") {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {run_id} still {status} after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Triggers and waits: the finished run.
    pub async fn run_flow(&self, flow_id: &str, body: &Value) -> Value {
        let run_id = self.trigger(flow_id, body).await;
        self.wait_run(&run_id).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The step named `name` in a run.
pub fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {run}"))
}

/// Names of the steps that ran, in order.
pub fn step_names(run: &Value) -> Vec<String> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// A `log` action step.
pub fn log_step(name: &str, message: &str) -> Value {
    json!({"name": name, "type": "action", "plugin": "log@0.1.0", "input": {"message": message}})
}

/// A `hostile` action step in the given mode.
pub fn hostile_step(name: &str, input: Value) -> Value {
    json!({"name": name, "type": "action", "plugin": "hostile@0.1.0", "input": input})
}

/// The password of the people the access and console tests create.
pub const PASSWORD: &str = "correct horse battery staple";

/// Creates a person through the API (as the admin token) with [`PASSWORD`] and `extra` fields
/// (`platformRole`, `projectId` + `role`, ...); returns their id. Checks that nothing about the
/// password comes back.
pub async fn create_user(server: &Server, email: &str, extra: Value) -> String {
    let mut body = json!({"email": email, "password": PASSWORD});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    let response = server
        .admin(reqwest::Method::POST, "/v1/users")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let user: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "create user: {user}");
    assert!(user.get("passwordHash").is_none() && !user.to_string().contains("argon2"));
    user["id"].as_str().unwrap().to_string()
}

/// Test-runs a stored flow (`POST /v1/flows/{id}/test` with `body`): the status and the trace.
pub async fn test_run(server: &Server, flow_id: &str, body: Value) -> (StatusCode, Value) {
    let r = server
        .admin(reqwest::Method::POST, &format!("/v1/flows/{flow_id}/test"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

/// Generates and stores the flow of a handler template (`POST /v1/handler-flows`), asserting
/// success; returns its id. Its webhook is open (`auth: none`), so tests can post to it as
/// [`Server::trigger`] does (generated flows get a credential by default: `defaults.rs`).
pub async fn flow_from_template(server: &Server, template: &str) -> String {
    let r = server
        .admin(reqwest::Method::POST, "/v1/handler-flows")
        .json(&json!({ "template": template, "auth": "none" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "template {template}");
    let flow: Value = r.json().await.unwrap();
    flow["id"].as_str().unwrap().to_string()
}

/// A webhook flow with no authentication.
pub fn webhook_flow(name: &str, steps: Value) -> Value {
    json!({"name": name, "trigger": {"type": "webhook"}, "steps": steps})
}

/// Runs `statement` on a server's database (`Server::database_url`) behind its back, as someone
/// with access to the database would.
pub async fn database_execute(db: &str, statement: &str) {
    if db.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(db).await.unwrap();
        sqlx::query(statement).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let conn = rusqlite::Connection::open(db.trim_start_matches("sqlite://")).unwrap();
        conn.execute(statement, []).unwrap();
    }
}

/// Every value of the first (text) column `select` returns, read from a server's database
/// behind its back.
pub async fn database_texts(db: &str, select: &str) -> Vec<String> {
    if db.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(db).await.unwrap();
        let rows: Vec<(String,)> = sqlx::query_as(select).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows.into_iter().map(|(text,)| text).collect()
    } else {
        let conn = rusqlite::Connection::open(db.trim_start_matches("sqlite://")).unwrap();
        let mut statement = conn.prepare(select).unwrap();
        statement
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
}
