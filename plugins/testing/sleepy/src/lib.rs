//! The `sleepy` test plugin: its `describe()` sleeps (in a host call, where the epoch deadline
//! cannot interrupt it) far longer than any deadline. Installing it must fail in bounded time.

use hookflow_plugin_sdk::{Context, Descriptor, Plugin, StepError, Value, export_plugin, json};

/// The exported plugin.
struct Sleepy;

impl Plugin for Sleepy {
    fn describe() -> Descriptor {
        std::thread::sleep(std::time::Duration::from_secs(3600));
        Descriptor::new(
            "sleepy",
            "0.1.0",
            "Never finishes describing itself (tests only)",
        )
        .input_schema(json!({ "type": "object" }))
    }

    fn run(_ctx: Context, _input: Value) -> Result<Value, StepError> {
        Ok(json!({}))
    }
}

export_plugin!(Sleepy);
