//! Router conditions over arbitrary JSON. Input: a JSON array `[groups, context]`, where
//! `groups` is an OR of AND-groups of conditions as flows write them; and every operator is
//! also applied to `[left, right]` taken from the same array.
#![no_main]

use hookflow::flow::{Condition, Operator, apply_operator, evaluate_groups};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const OPERATORS: &[&str] = &[
    "TEXT_CONTAINS",
    "TEXT_DOES_NOT_CONTAIN",
    "TEXT_EXACTLY_MATCHES",
    "TEXT_DOES_NOT_EXACTLY_MATCH",
    "TEXT_STARTS_WITH",
    "TEXT_DOES_NOT_START_WITH",
    "TEXT_ENDS_WITH",
    "TEXT_DOES_NOT_END_WITH",
    "LIST_CONTAINS",
    "LIST_DOES_NOT_CONTAIN",
    "LIST_IS_EMPTY",
    "LIST_IS_NOT_EMPTY",
    "NUMBER_IS_GREATER_THAN",
    "NUMBER_IS_LESS_THAN",
    "NUMBER_IS_EQUAL_TO",
    "BOOLEAN_IS_TRUE",
    "BOOLEAN_IS_FALSE",
    "DATE_IS_AFTER",
    "DATE_IS_BEFORE",
    "DATE_IS_EQUAL",
    "EXISTS",
    "DOES_NOT_EXIST",
    "TIME_OF_DAY_IS_BETWEEN",
    "TIME_OF_DAY_IS_NOT_BETWEEN",
    "DAY_OF_WEEK_IS",
    "DAY_OF_WEEK_IS_NOT",
];

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let null = Value::Null;
    let first = items.first().unwrap_or(&null);
    let second = items.get(1).unwrap_or(&null);
    if let Ok(groups) = serde_json::from_value::<Vec<Vec<Condition>>>(first.clone()) {
        let _ = evaluate_groups(&groups, second);
    }
    // Operators this build does not know (older engines) are skipped.
    for name in OPERATORS {
        if let Ok(op) = serde_json::from_value::<Operator>(Value::from(*name)) {
            let _ = apply_operator(op, first, second, false);
            let _ = apply_operator(op, first, second, true);
        }
    }
});
