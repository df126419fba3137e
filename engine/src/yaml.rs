//! YAML in and out, in one place, so every reader of flow YAML (the API, the console, the CLI,
//! templates) parses it the same way and under the same limits.
//!
//! Flow YAML is untrusted input. `serde_yaml` 0.9 is deprecated, and its libyaml-derived
//! scanner (shared by its forks `serde_yaml_ng` and `serde_norway`) takes quadratic time on
//! nested flow collections: 100,000 `{a: ` (400 KB) took 31 s there. `serde-saphyr` is a
//! maintained pure-Rust YAML 1.2 parser, fuzzed upstream, with budgets on depth, nodes and alias
//! expansion that refuse the same inputs in under a millisecond (see
//! `flow::validate`'s `yaml_alias_bombs_and_deep_nesting_are_refused`).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a YAML document was refused; its message ends with the line and column.
pub type Error = serde_saphyr::Error;

/// Nesting allowed in a document: as deep as `serde_json` accepts, so a flow is refused for the
/// same depth whichever syntax it is written in (a flow with 16 nested routers needs 70).
const MAX_DEPTH: usize = 128;

/// Stack of the thread documents are read and written on. serde-saphyr recurses once per
/// nesting level with large frames: at [`MAX_DEPTH`] it needs about 2 MiB optimised and twice
/// that in a debug build, more than a tokio worker (2 MiB) has left, so neither the caller's
/// thread nor the depth limit decides whether a deep document overflows the stack. Only the
/// pages touched are committed.
const STACK_BYTES: usize = 16 << 20;

/// Runs `f` on a scoped thread with [`STACK_BYTES`] of stack (on the caller's thread if no
/// thread can be started, where only shallow documents fit).
fn on_parser_stack<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let slot = std::sync::Mutex::new(Some(f));
    let take = || slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("yaml".into())
            .stack_size(STACK_BYTES)
            .spawn_scoped(scope, || take().map(|f| f()));
        match spawned.map(|handle| handle.join()) {
            Ok(Ok(Some(result))) => result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Ok(Ok(None)) | Err(_) => (take().expect("not run on the thread"))(),
        }
    })
}

/// The parse settings: YAML 1.2 core schema scalars (`yes`, `on` and `0755` stay strings, as
/// they did with `serde_yaml`), messages on one line ("… at line 2, column 6"; the API and the
/// console show them as they are), and the default budgets apart from depth (alias expansion
/// and node count, which stop "billion laughs").
fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.with_snippet = false;
    options.strict_booleans = true;
    options.leading_zero_numbers_as_strings = true;
    options
}

/// Parses one YAML document. Merge keys (`<<`) are applied, tags are dropped, duplicate keys
/// and values JSON cannot hold (NaN, infinity, complex keys) are errors.
pub fn from_str<T: DeserializeOwned + Send>(text: &str) -> Result<T, Error> {
    on_parser_stack(|| serde_saphyr::from_str_with_options(text, options()))
}

/// [`from_str`] over bytes (a request body): UTF-8 is required.
pub fn from_slice<T: DeserializeOwned + Send>(bytes: &[u8]) -> Result<T, Error> {
    on_parser_stack(|| serde_saphyr::from_slice_with_options(bytes, options()))
}

/// Writes a value as YAML that [`from_str`] reads back to the same value.
pub fn to_string<T: Serialize + Sync>(value: &T) -> Result<String, serde_saphyr::SerializeError> {
    on_parser_stack(|| serde_saphyr::to_string(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn yaml_1_2_scalars_merges_and_one_line_errors() {
        let v: Value = from_str(
            "a: yes\nb: 0755\nc: 0o17\nd: ~\ne: 1.5\nbase: &b {x: 1, y: 2}\nm: {<<: *b, y: 3}\n",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"a": "yes", "b": "0755", "c": 15, "d": null, "e": 1.5,
                   "base": {"x": 1, "y": 2}, "m": {"x": 1, "y": 3}})
        );
        let e = from_str::<Value>("name: [unclosed\nsteps: 1").unwrap_err();
        let message = e.to_string();
        assert!(!message.contains('\n'), "{message}");
        assert!(message.contains("line 2"), "{message}");
        assert!(from_str::<Value>("a: 1\na: 2\n").is_err());
        assert!(from_str::<Value>("x: .nan\n").is_err());
    }

    #[test]
    fn written_yaml_reads_back() {
        let v = json!({"name": "n", "on": "yes", "t": "true", "z": "012", "s": "a: b\n#c",
                       "l": [1, 2.5, null, {}], "o": {"k": []}});
        assert_eq!(from_str::<Value>(&to_string(&v).unwrap()).unwrap(), v);
    }

    #[test]
    fn nesting_up_to_the_limit_parses() {
        let deep = format!(
            "{}1{}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(from_str::<Value>(&deep).is_ok());
        let deeper = format!(
            "{}1{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        assert!(from_str::<Value>(&deeper).is_err());
    }
}
