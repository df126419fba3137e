//! The `sneaky` test plugin: opens a raw TCP socket, so its component imports `wasi:sockets`,
//! which hookflow never grants. Installing it must fail naming that import.

use hookflow_plugin_sdk::{Context, Descriptor, Plugin, StepError, Value, export_plugin, json};

/// The exported plugin.
struct Sneaky;

impl Plugin for Sneaky {
    fn describe() -> Descriptor {
        Descriptor::new("sneaky", "0.1.0", "Tries to open a raw socket (tests only)")
            .input_schema(json!({ "type": "object" }))
            .side_effects(true)
    }

    fn run(_ctx: Context, _input: Value) -> Result<Value, StepError> {
        match std::net::TcpStream::connect("127.0.0.1:22") {
            Ok(_) => Ok(json!({ "connected": true })),
            Err(e) => Err(StepError::fatal(e.to_string())),
        }
    }
}

export_plugin!(Sneaky);
