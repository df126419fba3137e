//! Hostile plugins cannot hurt the server: loops time out, unbounded allocation fails naming the
//! memory limit, traps fail with the trap message, and other runs carry on meanwhile.

use crate::common::*;
use serde_json::{Value, json};

fn with_timeout(mut step: Value, ms: u64) -> Value {
    step["timeoutMs"] = json!(ms);
    step
}

#[tokio::test]
async fn infinite_loop_times_out_within_deadline_plus_one_second() {
    let server = Server::start().await;
    let id = server
        .create_flow(webhook_flow(
            "loop",
            json!([with_timeout(
                hostile_step("spin", json!({"mode": "loop"})),
                500
            )]),
        ))
        .await;
    let healthy = server
        .create_flow(webhook_flow("healthy", json!([log_step("l", "ok")])))
        .await;

    let empty = json!({});
    let looping: Vec<String> =
        futures::future::join_all((0..3).map(|_| server.trigger(&id, &empty))).await;
    // While three loops burn CPU, an unrelated run still completes.
    let other = server.run_flow(&healthy, &json!({})).await;
    assert_eq!(other["status"], "SUCCEEDED");
    for run_id in looping {
        let run = server.wait_run(&run_id).await;
        assert_eq!(run["status"], "TIMEOUT", "{run}");
        let s = step(&run, "spin");
        assert_eq!(s["status"], "TIMEOUT");
        assert!(
            s["durationMs"].as_f64().unwrap() < 1500.0,
            "stopped within deadline + 1 s: {s}"
        );
        assert!(s["error"].as_str().unwrap().contains("timed out"));
    }
}

#[tokio::test]
async fn sleeping_in_a_host_call_also_times_out() {
    let server = Server::start().await;
    let id = server
        .create_flow(webhook_flow(
            "sleep",
            json!([with_timeout(
                hostile_step("nap", json!({"mode": "sleep", "ms": 60000})),
                300
            )]),
        ))
        .await;
    let run = server.run_flow(&id, &json!({})).await;
    assert_eq!(run["status"], "TIMEOUT");
    assert!(step(&run, "nap")["durationMs"].as_f64().unwrap() < 1300.0);
}

#[tokio::test]
async fn unbounded_allocation_fails_naming_the_memory_limit() {
    let server = Server::start_with(Options {
        hostile: true,
        env: vec![("HOOKFLOW_STEP_MEMORY_MB", "32".into())],
    })
    .await;
    let id = server
        .create_flow(webhook_flow(
            "alloc",
            json!([
                hostile_step("hog", json!({"mode": "alloc"})),
                log_step("never", "x")
            ]),
        ))
        .await;
    let run = server.run_flow(&id, &json!({})).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = step(&run, "hog")["error"].as_str().unwrap().to_string();
    assert!(error.contains("memory limit of 32 MiB"), "{error}");
    assert_eq!(step_names(&run), ["hog"]);
    // The server is fine afterwards and the next run gets a fresh instance.
    let echo = server
        .create_flow(webhook_flow(
            "echo",
            json!([hostile_step("e", json!({"mode": "echo"}))]),
        ))
        .await;
    assert_eq!(
        server.run_flow(&echo, &json!({})).await["status"],
        "SUCCEEDED"
    );
}

#[tokio::test]
async fn traps_and_panics_fail_with_the_message() {
    let server = Server::start().await;
    let id = server
        .create_flow(webhook_flow(
            "trap",
            json!([hostile_step("t", json!({"mode": "trap"}))]),
        ))
        .await;
    let run = server.run_flow(&id, &json!({})).await;
    assert_eq!(run["status"], "FAILED");
    let error = step(&run, "t")["error"].as_str().unwrap().to_string();
    assert!(error.contains("unreachable"), "{error}");

    let id = server
        .create_flow(webhook_flow(
            "panic",
            json!([hostile_step("p", json!({"mode": "panic"}))]),
        ))
        .await;
    let run = server.run_flow(&id, &json!({})).await;
    let s = step(&run, "p");
    assert_eq!(s["status"], "FAILED");
    let logs = s["detail"]["logs"].to_string();
    assert!(
        logs.contains("hostile plugin panicked on purpose"),
        "panic message captured from stderr: {s}"
    );
}

#[tokio::test]
async fn output_and_stdout_are_capped() {
    let server = Server::start().await;
    let id = server
        .create_flow(webhook_flow(
            "big",
            json!([hostile_step(
                "b",
                json!({"mode": "big-output", "bytes": 2_000_000})
            )]),
        ))
        .await;
    let run = server.run_flow(&id, &json!({})).await;
    assert!(
        step(&run, "b")["error"]
            .as_str()
            .unwrap()
            .contains("over the 1048576-byte limit"),
        "{run}"
    );

    // Printing without end: the guest is stopped (its writes fail or it runs out of time) and
    // what it printed is kept only up to the capture limit.
    let id = server
        .create_flow(webhook_flow(
            "flood",
            json!([with_timeout(
                hostile_step("f", json!({"mode": "stdout-flood"})),
                500
            )]),
        ))
        .await;
    let run = server.run_flow(&id, &json!({})).await;
    let s = step(&run, "f");
    assert!(s["status"] == "FAILED" || s["status"] == "TIMEOUT", "{s}");
    let kept: usize = s["detail"]["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap().len())
        .sum();
    assert!(kept <= 64 * 1024, "captured output is capped: {kept} bytes");
}

/// Regression (hardening I, "host memory outside the plugin's limit"): a plugin that creates
/// `wasi:http` header maps in a loop used to take the server past a gigabyte in one step; the
/// host now caps the objects a step may hold and the bytes of each header map.
#[tokio::test]
async fn host_objects_a_plugin_hoards_are_capped() {
    let server = Server::start().await;
    let id = server
        .create_flow(webhook_flow(
            "fields",
            json!([with_timeout(
                hostile_step("hoard", json!({"mode": "fields"})),
                5000
            )]),
        ))
        .await;
    let big = server
        .create_flow(webhook_flow(
            "big fields",
            json!([hostile_step(
                "hoard",
                json!({"mode": "fields", "bytes": 100_000})
            )]),
        ))
        .await;
    let healthy = server
        .create_flow(webhook_flow("healthy", json!([log_step("l", "ok")])))
        .await;
    for _ in 0..3 {
        let run = server.run_flow(&id, &json!({})).await;
        assert_eq!(run["status"], "FAILED", "{run}");
        let error = step(&run, "hoard")["error"].as_str().unwrap().to_string();
        assert!(error.contains("resource table has no free keys"), "{error}");
    }
    let run = server.run_flow(&big, &json!({})).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = step(&run, "hoard")["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("size of fields exceeds limit"),
        "one oversized map is refused: {error}"
    );
    let rss = server.resident_bytes();
    assert!(
        rss < 600 << 20,
        "the server holds {} MiB after the hoarding steps",
        rss >> 20
    );
    let other = server.run_flow(&healthy, &json!({})).await;
    assert_eq!(other["status"], "SUCCEEDED");
}
