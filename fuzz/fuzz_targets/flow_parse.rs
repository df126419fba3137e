//! Flow documents from outside (API bodies, console forms, `hookflow flow validate`): JSON and
//! YAML through parsing and validation. The first byte picks the syntax. A flow that validates
//! must survive its own round trips: to a value and back, and to YAML and back.
#![no_main]

use hookflow::flow::{Format, flow_from_value, parse_flow};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = match selector % 3 {
        0 => Format::Json,
        1 => Format::Yaml,
        _ => Format::Auto,
    };
    let Ok(flow) = parse_flow(text, format) else {
        return;
    };
    let value = flow.to_value();
    let again = flow_from_value(value.clone()).expect("a valid flow's value validates");
    assert_eq!(again, flow, "value round trip");
    let yaml = hookflow::yaml::to_string(&value).expect("a valid flow writes as YAML");
    let back = parse_flow(&yaml, Format::Yaml).expect("written YAML parses");
    assert_eq!(back, flow, "YAML round trip of {yaml}");
});
