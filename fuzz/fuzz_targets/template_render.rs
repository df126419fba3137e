//! `{{ … }}` templates (step inputs, conditions, `groupBy`) rendered against arbitrary JSON.
//! Input: the template on the first line, the context (JSON) after it.
#![no_main]

use hookflow::flow::{Template, check, lookup, parse_path, render_str};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (template, context) = text.split_once('\n').unwrap_or((text, ""));
    let ctx: Value = serde_json::from_str(context)
        .unwrap_or_else(|_| json!({"trigger": {"body": {"a": [1, {"b": "x"}], "s": "t"}}}));
    let parsed = Template::parse(template);
    assert_eq!(
        parsed.is_ok(),
        check(template).is_ok(),
        "parse and check agree"
    );
    if let Ok(t) = parsed {
        let _ = t.is_literal();
        let _ = t.render(&ctx);
    }
    let _ = render_str(template, &ctx);
    if let Ok(path) = parse_path(template) {
        let _ = lookup(&ctx, &path);
    }
});
