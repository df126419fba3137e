//! Native unit tests: the runtime against a fake host that records what the script did.

use crate::host::Host;
use crate::runtime::{MAX_LOG_LINE_BYTES, MAX_LOG_LINES};
use crate::{JavaScript, run_with_host};
use hookflow_plugin_sdk::http::{Request, Response};
use hookflow_plugin_sdk::{CacheEntry, CacheError, Context, Level, Plugin, StepError, Value, json};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Counts heap use so `measure_per_run_cost` can report a step's peak (tests only).
struct CountingAlloc;

static CURRENT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use std::sync::atomic::Ordering::Relaxed;
        let now = CURRENT.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(now, Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        CURRENT.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const EVENT: &str = r#"{"specversion":"1.0","id":"evt-1","type":"com.auth0.user.created","source":"urn:auth0:example","time":"2025-01-01T00:00:00Z","data":{"object":{"user_id":"auth0|1","email":"a@example.com"}}}"#;

/// Records everything; answers fetches with `responses` (in order), else 200 `{"ok":true}`.
struct Fake {
    granted: Vec<(String, String)>,
    logs: RefCell<Vec<(Level, String)>>,
    requests: RefCell<Vec<Request>>,
    responses: RefCell<Vec<Result<Response, String>>>,
    cache: RefCell<BTreeMap<String, CacheEntry>>,
    cache_failure: RefCell<Option<CacheError>>,
    secret_reads: RefCell<Vec<String>>,
}

impl Fake {
    fn new() -> Rc<Fake> {
        Rc::new(Fake {
            granted: vec![
                ("URL".into(), "https://hooks.example.com/in".into()),
                ("API_KEY".into(), "k-123".into()),
            ],
            logs: RefCell::default(),
            requests: RefCell::default(),
            responses: RefCell::default(),
            cache: RefCell::default(),
            cache_failure: RefCell::default(),
            secret_reads: RefCell::default(),
        })
    }

    fn respond(&self, response: Result<Response, String>) {
        self.responses.borrow_mut().push(response);
    }

    fn lines(&self) -> Vec<(Level, String)> {
        self.logs.borrow().clone()
    }
}

impl Host for Fake {
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
    fn secret_names(&self) -> Vec<String> {
        self.granted.iter().map(|(n, _)| n.clone()).collect()
    }
    fn secret(&self, name: &str) -> Option<String> {
        self.secret_reads.borrow_mut().push(name.to_string());
        self.granted
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
    fn cache_get(&self, key: &str) -> Result<Option<CacheEntry>, CacheError> {
        if let Some(e) = self.cache_failure.borrow().clone() {
            return Err(e);
        }
        Ok(self.cache.borrow().get(key).cloned())
    }
    fn cache_set(
        &self,
        key: &str,
        value: &str,
        ttl_ms: Option<u64>,
        expires_at: Option<i64>,
    ) -> Result<CacheEntry, CacheError> {
        if let Some(e) = self.cache_failure.borrow().clone() {
            return Err(e);
        }
        let now = 1_700_000_000_000i64;
        let expires_at = expires_at.unwrap_or(now + ttl_ms.unwrap_or(86_400_000) as i64);
        let entry = CacheEntry {
            value: value.to_string(),
            expires_at,
        };
        self.cache
            .borrow_mut()
            .insert(key.to_string(), entry.clone());
        Ok(entry)
    }
    fn cache_delete(&self, key: &str) -> Result<bool, CacheError> {
        if let Some(e) = self.cache_failure.borrow().clone() {
            return Err(e);
        }
        Ok(self.cache.borrow_mut().remove(key).is_some())
    }
    fn cloud_event(&self) -> String {
        EVENT.to_string()
    }
    fn fetch(&self, request: &Request) -> Result<Response, String> {
        self.requests.borrow_mut().push(request.clone());
        let mut responses = self.responses.borrow_mut();
        if responses.is_empty() {
            Ok(Response {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: br#"{"ok":true}"#.to_vec(),
            })
        } else {
            responses.remove(0)
        }
    }
}

fn ctx(test_run: bool) -> Context {
    Context {
        run_id: "run-1".into(),
        flow_id: "flow-1".into(),
        step_name: "js".into(),
        attempt: 2,
        test_run,
    }
}

fn run_code(fake: &Rc<Fake>, code: &str) -> Result<Value, StepError> {
    run_with_host(fake.clone(), &ctx(false), json!({ "code": code }))
}

fn ok(code: &str) -> Value {
    let fake = Fake::new();
    match run_code(&fake, code) {
        Ok(v) => v,
        Err(e) => panic!("step failed: {e:?}\nlogs: {:?}", fake.lines()),
    }
}

fn err(code: &str) -> StepError {
    let fake = Fake::new();
    match run_code(&fake, code) {
        Ok(v) => panic!("step succeeded with {v}"),
        Err(e) => e,
    }
}

#[test]
fn descriptor() {
    let d = JavaScript::describe();
    assert_eq!(
        (d.name.as_str(), d.version.as_str()),
        ("javascript", "1.0.0")
    );
    assert!(!d.side_effects);
    assert_eq!(d.input_schema["required"], json!(["code"]));
    assert_eq!(
        d.input_schema["properties"]["code"]["maxLength"],
        json!(102_400)
    );
    assert_eq!(d.input_schema["additionalProperties"], json!(true));
}

#[test]
fn auth0_action_pasted_unchanged() {
    let fake = Fake::new();
    let code = r#"
exports.onExecuteEventStream = async (event, api) => {
  await fetch(event.secrets.URL, {
    method: 'POST',
    headers: { 'X-API-Key': event.secrets.API_KEY },
    body: JSON.stringify(event.message),
  });
};
"#;
    let out = run_code(&fake, code).unwrap();
    assert_eq!(out, Value::Null);
    let requests = fake.requests.borrow();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.url, "https://hooks.example.com/in");
    assert_eq!(r.header_value("x-api-key"), Some("k-123"));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body, serde_json::from_str::<Value>(EVENT).unwrap());
}

#[test]
fn handler_form_and_event_fields() {
    let fake = Fake::new();
    let code = r#"
exports.handler = function (event, api) {
  return {
    type: event.message.type,
    email: event.message.data.object.email,
    n: event.configuration.n + 1,
    hasCode: 'code' in event.configuration,
    run: event.run,
    secrets: Object.keys(event.secrets).sort(),
    cache: typeof api.cache.get,
  };
};
"#;
    let out = run_with_host(fake.clone(), &ctx(false), json!({ "code": code, "n": 41 })).unwrap();
    assert_eq!(
        out,
        json!({
            "type": "com.auth0.user.created",
            "email": "a@example.com",
            "n": 42,
            "hasCode": false,
            "run": {"id": "run-1", "flowId": "flow-1", "stepName": "js", "attempt": 2, "testRun": false},
            "secrets": ["API_KEY", "URL"],
            "cache": "function",
        })
    );
}

#[test]
fn module_exports_reassigned_and_undefined_result() {
    assert_eq!(
        ok("module.exports = { handler: async () => 'hi' };"),
        json!("hi")
    );
    assert_eq!(ok("exports.handler = () => {};"), Value::Null);
    assert_eq!(
        ok("exports.onExecuteEventStream = () => 1; exports.handler = () => 2;"),
        json!(1)
    );
}

#[test]
fn async_await_chain() {
    let code = r#"
const wait = (ms, v) => new Promise((resolve) => setTimeout(() => resolve(v), ms));
async function double(x) { await null; return x * 2; }
exports.handler = async (event) => {
  const a = await double(1);
  const b = await Promise.resolve(a).then((v) => v + 1).then(double);
  const [c, d] = await Promise.all([double(b), wait(5, 'timer')]);
  const settled = await Promise.allSettled([Promise.reject(new Error('x')), 1]);
  queueMicrotask(() => {});
  return { a, b, c, d, settled: settled.map((s) => s.status) };
};
"#;
    assert_eq!(
        ok(code),
        json!({"a": 2, "b": 6, "c": 12, "d": "timer", "settled": ["rejected", "fulfilled"]})
    );
}

#[test]
fn throw_is_retryable_with_message_and_location() {
    let e = err("exports.handler = () => {\n  throw new Error('boom');\n};");
    assert!(e.retryable);
    assert!(e.message.starts_with("boom"), "{}", e.message);
    assert!(e.message.contains("step.js:2:"), "{}", e.message);

    let e = err("exports.handler = () => { null.x; };");
    assert!(e.retryable);
    assert!(e.message.starts_with("TypeError: "), "{}", e.message);

    let e = err("exports.handler = () => { throw 'plain'; };");
    assert_eq!(e, StepError::retryable("plain"));
}

#[test]
fn rejected_promise_is_retryable() {
    let e = err("exports.handler = async () => { await null; throw new Error('later'); };");
    assert!(e.retryable);
    assert!(e.message.starts_with("later"), "{}", e.message);

    let e = err("exports.handler = () => Promise.reject({ message: 'shaped' });");
    assert_eq!(e, StepError::retryable("shaped"));

    let e = err("exports.handler = () => Promise.reject(42);");
    assert_eq!(e, StepError::retryable("42"));
}

#[test]
fn syntax_error_has_line_and_column() {
    let e = err("exports.handler = () => {\n  let x = ;\n};");
    assert!(!e.retryable);
    assert!(
        e.message.starts_with("SyntaxError at line 2, column "),
        "{}",
        e.message
    );

    let e = err("exports.handler = () => {\n  return 1;\n");
    assert!(!e.retryable);
    assert!(
        e.message.starts_with("SyntaxError at line 3, column 1: "),
        "{}",
        e.message
    );

    // Boa gives no position for these; the message still has one: where the literal starts.
    for (code, position) in [
        (
            "exports.handler = () => {\n  const s = 'open;\n};",
            "line 2, column 13",
        ),
        (
            "const re = /a\\/b'/, x = 4 / 2;\nconst s = \"open;",
            "line 2, column 11",
        ),
        (
            "exports.handler = () => `a ${1 + 2} b;",
            "line 1, column 25",
        ),
        (
            "exports.handler = () => 1;\n  /* never closed\n",
            "line 2, column 3",
        ),
    ] {
        let e = err(code);
        assert!(
            e.message
                .starts_with(&format!("SyntaxError at {position}: unterminated")),
            "{code}: {}",
            e.message
        );
    }
}

#[test]
fn missing_export_is_fatal() {
    let e = err("const handler = () => 1;");
    assert_eq!(
        e,
        StepError::fatal(
            "the code must set exports.onExecuteEventStream or exports.handler to a function"
        )
    );
    let e = err("exports.handler = 'not a function';");
    assert!(!e.retryable);
}

#[test]
fn require_is_refused() {
    let e = err("exports.handler = () => require('axios');");
    assert!(e.retryable);
    assert!(
        e.message.starts_with(
            "require('axios') is not supported: hookflow JavaScript steps cannot load modules"
        ),
        "{}",
        e.message
    );
    // At load time it is the code itself that is broken: no retry.
    let e = err("const crypto = require('crypto');\nexports.handler = () => 1;");
    assert!(!e.retryable);
    assert!(
        e.message.contains("require('crypto') is not supported"),
        "{}",
        e.message
    );
}

#[test]
fn top_level_throw_is_fatal() {
    let e = err("throw new Error('at load');");
    assert!(!e.retryable);
    assert!(
        e.message
            .starts_with("the code threw while loading: at load"),
        "{}",
        e.message
    );
}

#[test]
fn api_cache_round_trip() {
    let fake = Fake::new();
    let code = r#"
exports.handler = async (event, api) => {
  const miss = api.cache.get('token');
  const set = api.cache.set('token', 'abc', { ttl: 60000 });
  const hit = api.cache.get('token');
  const at = api.cache.set('other', 'x', { expires_at: 1800000000000 });
  const del = api.cache.delete('token');
  const gone = api.cache.get('token');
  const bad = api.cache.set('token', 42);
  const badTtl = api.cache.set('token', 'v', { ttl: 'soon' });
  return { miss: miss === undefined, set, hit, at, del, gone: gone === undefined, bad, badTtl };
};
"#;
    let out = run_code(&fake, code).unwrap();
    assert_eq!(out["miss"], json!(true));
    assert_eq!(
        out["set"],
        json!({"type": "success", "record": {"value": "abc", "expires_at": 1_700_000_060_000i64}})
    );
    assert_eq!(
        out["hit"],
        json!({"value": "abc", "expires_at": 1_700_000_060_000i64})
    );
    assert_eq!(
        out["at"]["record"]["expires_at"],
        json!(1_800_000_000_000i64)
    );
    assert_eq!(out["del"], json!({"type": "success"}));
    assert_eq!(out["gone"], json!(true));
    assert_eq!(out["bad"]["type"], json!("error"));
    assert_eq!(out["bad"]["code"], json!("INVALID_ARGUMENT"));
    assert_eq!(out["badTtl"]["code"], json!("INVALID_ARGUMENT"));
    assert!(fake.cache.borrow().contains_key("other"));
}

#[test]
fn api_cache_host_errors_keep_their_code() {
    let fake = Fake::new();
    *fake.cache_failure.borrow_mut() = Some(CacheError {
        code: "QUOTA_EXCEEDED".into(),
        message: "the flow holds too many cache entries".into(),
    });
    let code = r#"
exports.handler = (event, api) => ({
  set: api.cache.set('k', 'v'),
  del: api.cache.delete('k'),
  get: api.cache.get('k') === undefined,
});
"#;
    let out = run_code(&fake, code).unwrap();
    assert_eq!(
        out["set"],
        json!({"type": "error", "code": "QUOTA_EXCEEDED", "message": "the flow holds too many cache entries"})
    );
    assert_eq!(out["del"]["code"], json!("QUOTA_EXCEEDED"));
    assert_eq!(out["get"], json!(true));
    assert!(
        fake.lines()
            .iter()
            .any(|(l, m)| *l == Level::Warn && m.contains("api.cache.get failed")),
        "{:?}",
        fake.lines()
    );
}

#[test]
fn secrets_are_exactly_the_granted_ones() {
    let fake = Fake::new();
    let out = run_code(
        &fake,
        "exports.handler = (e) => [e.secrets.API_KEY, e.secrets.OTHER === undefined, 'OTHER' in e.secrets];",
    )
    .unwrap();
    assert_eq!(out, json!(["k-123", true, false]));
    // Only granted names are ever read.
    assert_eq!(*fake.secret_reads.borrow(), vec!["URL", "API_KEY"]);
}

#[test]
fn console_levels_and_formatting() {
    let fake = Fake::new();
    let code = r#"
exports.handler = () => {
  console.log('plain', 1, { a: [1, 'x'] }, null, undefined);
  console.info('%s has %d items', 'cart', 3);
  console.debug('dbg');
  console.warn('careful');
  console.error(new TypeError('bad'));
  const cyclic = {}; cyclic.self = cyclic;
  console.log(cyclic);
};
"#;
    run_code(&fake, code).unwrap();
    let lines = fake.lines();
    assert_eq!(
        lines[0],
        (
            Level::Info,
            r#"plain 1 {"a":[1,"x"]} null undefined"#.to_string()
        )
    );
    assert_eq!(lines[1], (Level::Info, "cart has 3 items".to_string()));
    assert_eq!(lines[2], (Level::Debug, "dbg".to_string()));
    assert_eq!(lines[3], (Level::Warn, "careful".to_string()));
    assert_eq!(lines[4].0, Level::Error);
    assert!(lines[4].1.starts_with("TypeError: bad"), "{}", lines[4].1);
    assert!(
        lines[5].1.starts_with("[object that is not JSON"),
        "{}",
        lines[5].1
    );
}

#[test]
fn console_is_capped() {
    let fake = Fake::new();
    let code = r#"
exports.handler = () => {
  console.log('x'.repeat(10000));
  for (let i = 0; i < 150; i++) console.log('line ' + i);
};
"#;
    run_code(&fake, code).unwrap();
    let lines = fake.lines();
    assert_eq!(lines.len(), MAX_LOG_LINES + 1);
    assert!(
        lines[0].1.len() <= MAX_LOG_LINE_BYTES,
        "{}",
        lines[0].1.len()
    );
    assert!(lines[0].1.contains("[cut, 10000 bytes in all]"));
    assert_eq!(lines[99].1, "line 98");
    assert_eq!(lines[100].0, Level::Warn);
    assert!(
        lines[100].1.starts_with("51 more console line(s) dropped"),
        "{}",
        lines[100].1
    );
}

#[test]
fn fetch_is_stubbed_in_test_runs() {
    let fake = Fake::new();
    let code = r#"
exports.handler = async (event) => {
  const res = await fetch('https://hooks.example.com/in?x=1', { method: 'POST', body: '{}' });
  return { status: res.status, ok: res.ok, skipped: res.headers.get('x-hookflow-skipped'), body: await res.text() };
};
"#;
    let out = run_with_host(fake.clone(), &ctx(true), json!({ "code": code })).unwrap();
    assert_eq!(
        out,
        json!({"status": 200, "ok": true, "skipped": "test run", "body": ""})
    );
    assert!(fake.requests.borrow().is_empty());
    assert_eq!(
        fake.lines(),
        vec![(
            Level::Warn,
            "fetch skipped in test run: POST https://hooks.example.com/in?x=1".to_string()
        )]
    );
}

#[test]
fn fetch_response_api() {
    let fake = Fake::new();
    fake.respond(Ok(Response {
        status: 404,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-request-id".into(), "r-1".into()),
        ],
        body: br#"{"error":"not found"}"#.to_vec(),
    }));
    let code = r#"
exports.handler = async () => {
  const res = await fetch(new Request('https://api.example.com/users/1', { headers: new Headers({ Accept: 'application/json' }) }));
  const form = await fetch('https://api.example.com/token', {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'a b' }),
  });
  return { status: res.status, ok: res.ok, id: res.headers.get('X-Request-Id'), json: await res.json(), form: await form.json() };
};
"#;
    let out = run_code(&fake, code).unwrap();
    assert_eq!(
        out,
        json!({"status": 404, "ok": false, "id": "r-1", "json": {"error": "not found"}, "form": {"ok": true}})
    );
    let requests = fake.requests.borrow();
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].header_value("accept"), Some("application/json"));
    assert_eq!(requests[1].method, "POST");
    assert_eq!(
        String::from_utf8_lossy(&requests[1].body),
        "grant_type=client_credentials&scope=a+b"
    );
    assert_eq!(
        requests[1].header_value("content-type"),
        Some("application/x-www-form-urlencoded;charset=UTF-8")
    );
}

#[test]
fn refused_fetch_rejects_naming_the_host() {
    let fake = Fake::new();
    fake.respond(Err("HTTP GET to https://evil.example refused by the host: the destination must be in the step's allowedHosts".into()));
    fake.respond(Err("connection reset".into()));
    let code = r#"
exports.handler = async () => {
  let caught;
  try { await fetch('https://evil.example/x'); } catch (e) { caught = e.message; }
  await fetch('https://other.example/y');
};
"#;
    let e = run_code(&fake, code).unwrap_err();
    assert!(e.retryable);
    assert!(
        e.message
            .contains("fetch to https://other.example failed: connection reset"),
        "{}",
        e.message
    );
    let code = r#"
exports.handler = async () => {
  try { await fetch('https://evil.example/x'); } catch (e) { return e.message; }
};
"#;
    let fake = Fake::new();
    fake.respond(Err(
        "HTTP GET to https://evil.example refused by the host: not allowed".into(),
    ));
    assert_eq!(
        run_code(&fake, code).unwrap(),
        json!("fetch failed: HTTP GET to https://evil.example refused by the host: not allowed")
    );
}

#[test]
fn web_globals() {
    let code = r#"
exports.handler = () => {
  const enc = new TextEncoder().encode('héllo');
  const url = new URL('https://example.com:8443/a/b?x=1&y=two#frag');
  url.searchParams.append('z', 'a b');
  const sp = new URLSearchParams('a=1&b=2&a=3');
  return {
    btoa: btoa('hello'),
    atob: atob('aGVsbG8='),
    enc: Array.from(enc),
    dec: new TextDecoder().decode(enc),
    host: url.hostname, port: url.port, path: url.pathname, x: url.searchParams.get('x'),
    href: url.href,
    all: sp.getAll('a'), str: sp.toString(), size: sp.size,
    clone: structuredClone({ a: [1] }),
    json: JSON.parse('{"k":[1,2]}'),
  };
};
"#;
    assert_eq!(
        ok(code),
        json!({
            "btoa": "aGVsbG8=",
            "atob": "hello",
            "enc": [104, 195, 169, 108, 108, 111],
            "dec": "héllo",
            "host": "example.com", "port": "8443", "path": "/a/b", "x": "1",
            "href": "https://example.com:8443/a/b?x=1&y=two&z=a+b#frag",
            "all": ["1", "3"], "str": "a=1&b=2&a=3", "size": 3,
            "clone": {"a": [1]},
            "json": {"k": [1, 2]},
        })
    );
}

#[test]
fn random_uuid_and_values() {
    let out = ok(r#"
exports.handler = () => {
  const a = crypto.randomUUID(), b = crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return { a, differ: a !== b, nonzero: bytes.some((x) => x !== 0), len: bytes.length };
};
"#);
    let a = out["a"].as_str().unwrap();
    let re = |s: &str| {
        let parts: Vec<&str> = s.split('-').collect();
        parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
            && s.chars()
                .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            && parts[2].starts_with('4')
            && matches!(parts[3].chars().next(), Some('8' | '9' | 'a' | 'b'))
    };
    assert!(re(a), "{a}");
    assert_eq!(out["differ"], json!(true));
    assert_eq!(out["nonzero"], json!(true));
    assert_eq!(out["len"], json!(32));
}

#[test]
fn more_console_and_crypto_edges() {
    let fake = Fake::new();
    let code = r#"
exports.handler = async () => {
  console.assert(1 + 1 === 2, 'fine');
  console.assert(false, 'expected %s', 'this');
  console.log('%j|%i|%f|%%|%c.', { a: 1 }, 42.9, '1.5', 'color: red');
  console.log('100%');
  let floatRefused = false;
  try { crypto.getRandomValues(new Float64Array(2)); } catch (e) { floatRefused = e instanceof TypeError; }
  let tooMany = false;
  try { crypto.getRandomValues(new Uint8Array(65537)); } catch (e) { tooMany = true; }
  const words = crypto.getRandomValues(new Uint32Array(4));
  const res = await fetch('https://hooks.example.com/x', { method: 'GET', body: null });
  return { floatRefused, tooMany, words: words.length, status: res.status };
};
"#;
    let out = run_code(&fake, code).unwrap();
    assert_eq!(
        out,
        json!({"floatRefused": true, "tooMany": true, "words": 4, "status": 200})
    );
    let lines: Vec<String> = fake.lines().into_iter().map(|(_, l)| l).collect();
    assert_eq!(
        lines,
        vec![
            "Assertion failed: expected this".to_string(),
            r#"{"a":1}|42|1.5|%|."#.to_string(),
            "100%".to_string(),
        ]
    );
    assert_eq!(fake.requests.borrow()[0].body, b"");
}

#[test]
fn dates() {
    let out = ok(r#"
exports.handler = () => {
  const d = new Date(Date.UTC(2024, 1, 29, 12, 30, 0));
  const now = Date.now();
  return {
    iso: d.toISOString(),
    parsed: Date.parse('2024-02-29T12:30:00.000Z'),
    plusDay: new Date(d.getTime() + 86400000).toISOString().slice(0, 10),
    recent: now > 1.7e12,
    json: { at: d },
  };
};
"#);
    assert_eq!(out["iso"], json!("2024-02-29T12:30:00.000Z"));
    assert_eq!(out["parsed"], json!(1_709_209_800_000i64));
    assert_eq!(out["plusDay"], json!("2024-03-01"));
    assert_eq!(out["recent"], json!(true));
    assert_eq!(out["json"]["at"], json!("2024-02-29T12:30:00.000Z"));
}

#[test]
fn result_that_is_not_json_fails_clearly() {
    let e = err("exports.handler = () => ({ n: 10n });");
    assert!(!e.retryable);
    assert!(
        e.message
            .starts_with("the handler's result cannot be turned into JSON: "),
        "{}",
        e.message
    );
    let e = err("exports.handler = () => { const a = {}; a.a = a; return a; };");
    assert!(
        e.message
            .starts_with("the handler's result cannot be turned into JSON: ")
    );
}

#[test]
fn promise_that_never_settles_is_reported() {
    let e = err("exports.handler = () => new Promise(() => {});");
    assert!(!e.retryable);
    assert!(e.message.contains("never settled"), "{}", e.message);
}

#[test]
fn unawaited_work_finishes_but_timers_are_dropped() {
    let fake = Fake::new();
    let code = r#"
exports.handler = () => {
  fetch('https://hooks.example.com/fire-and-forget', { method: 'POST', body: 'x' });
  setTimeout(() => { throw new Error('never runs'); }, 60000);
  return 'done';
};
"#;
    assert_eq!(run_code(&fake, code).unwrap(), json!("done"));
    assert_eq!(fake.requests.borrow().len(), 1);
}

#[test]
fn exception_in_timer_fails_the_step() {
    let e = err(r#"
exports.handler = () => new Promise((resolve) => {
  setTimeout(() => { throw new Error('tick'); }, 1);
});
"#);
    assert!(e.retryable);
    assert!(e.message.starts_with("tick"), "{}", e.message);
}

#[test]
fn input_checks() {
    let fake = Fake::new();
    let e = run_with_host(fake.clone(), &ctx(false), json!({})).unwrap_err();
    assert!(!e.retryable);
    let e = run_with_host(fake.clone(), &ctx(false), json!({ "code": 1 })).unwrap_err();
    assert!(!e.retryable);
    let big = format!("exports.handler = () => 1;//{}", "x".repeat(102_400));
    let e = run_with_host(fake, &ctx(false), json!({ "code": big })).unwrap_err();
    assert!(e.message.contains("at most 102400"), "{}", e.message);
}

/// Not a test: prints what a run costs natively (fastest of 40 runs each, so other load on the
/// machine matters less). Run with `cargo test --release -p javascript-plugin --target
/// x86_64-unknown-linux-gnu -- --ignored --nocapture --test-threads 1 measure`.
#[test]
#[ignore]
fn measure_per_run_cost() {
    use boa_engine::{Context as Boa, Script, Source};
    use std::time::{Duration, Instant};
    let handler = r#"
exports.onExecuteEventStream = async (event, api) => {
  const user = event.message.data.object;
  const lines = [];
  for (const [k, v] of Object.entries(user)) {
    lines.push(`${k}=${v}`);
  }
  const cached = api.cache.get('seen:' + user.user_id);
  if (!cached) {
    api.cache.set('seen:' + user.user_id, '1', { ttl: 60000 });
  }
  const payload = {
    id: event.message.id,
    type: event.message.type,
    summary: lines.join(', '),
    at: new Date().toISOString(),
  };
  const res = await fetch(event.secrets.URL, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': event.secrets.API_KEY },
    body: JSON.stringify(payload),
  });
  return { status: res.status, body: await res.json(), first: !cached };
};
"#;
    fn fastest(mut f: impl FnMut()) -> Duration {
        (0..40)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .min()
            .unwrap()
    }
    let bare = fastest(|| drop(Boa::default()));
    let registered = fastest(|| {
        let mut c = Boa::default();
        boa_runtime::register(
            (boa_runtime::extensions::FetchExtension(
                boa_runtime::fetch::ErrorFetcher,
            ),),
            None,
            &mut c,
        )
        .unwrap();
    });
    let mut c = Boa::default();
    let parse_handler = fastest(|| {
        Script::parse(Source::from_bytes(handler), None, &mut c).unwrap();
    });
    let trivial = fastest(|| {
        run_code(&Fake::new(), "exports.handler = () => 1;").unwrap();
    });
    let full = fastest(|| {
        run_code(&Fake::new(), handler).unwrap();
    });
    let peak = |code: &str| {
        use std::sync::atomic::Ordering::Relaxed;
        let before = CURRENT.load(Relaxed);
        PEAK.store(before, Relaxed);
        run_code(&Fake::new(), code).unwrap();
        (PEAK.load(Relaxed) - before) / 1024
    };
    let peak_handler = peak(handler);
    let peak_big = peak(
        "exports.handler = () => { const a = []; for (let i = 0; i < 100000; i++) a.push({ i, s: 'x' + i }); return a.length; };",
    );
    println!(
        "native, per run: bare Boa context {bare:?}; + boa_runtime globals {registered:?}; \
         whole step with a trivial handler (context and all globals) {trivial:?}; \
         whole step with the 20-line async handler (fetch, cache) {full:?}; \
         parsing that handler alone {parse_handler:?}; peak heap of that step {peak_handler} KiB \
         (64-bit pointers); of a step building 100k small objects {peak_big} KiB"
    );
}
