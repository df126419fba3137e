//! Schedule triggers' cron expressions as flows write them (5, 6 or 7 fields), then the next
//! ticks the scheduler would fire, from a time taken from the input.
#![no_main]

use chrono::{DateTime, Utc};
use hookflow::flow::parse_cron;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (seconds, rest) = data.split_at(4);
    let Ok(expr) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(schedule) = parse_cron(expr) else {
        return;
    };
    let start = i64::from(u32::from_le_bytes(seconds.try_into().unwrap())) * 4;
    let after: DateTime<Utc> = DateTime::from_timestamp(start, 0).unwrap_or_default();
    let mut previous = after;
    for tick in schedule.after(&after).take(5) {
        assert!(tick > previous, "ticks move forward");
        previous = tick;
    }
});
