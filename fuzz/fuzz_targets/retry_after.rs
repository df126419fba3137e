//! Delivery retries: a receiver's `Retry-After` and the operator's retry schedule
//! (`HOOKFLOW_DELIVERY_RETRY_SCHEDULE`) combined into the next delay. Input lines: the
//! schedule, the header value; the first byte is the attempt and whether it was a 429.
#![no_main]

use hookflow::stream::{RetryPolicy, parse_retry_after};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (schedule, header) = text.split_once('\n').unwrap_or(("5,300", text));
    let after = parse_retry_after(header);
    if let Some(seconds) = after {
        assert!(seconds.is_finite() && seconds >= 0.0);
    }
    let Ok(policy) = RetryPolicy::parse(schedule) else {
        return;
    };
    let attempt = usize::from(selector & 0x7f);
    let throttled = selector & 0x80 != 0;
    if let Some(delay) = policy.delay(attempt, throttled, after) {
        assert!(delay.as_secs() <= 24 * 3600, "{delay:?}");
    }
});
