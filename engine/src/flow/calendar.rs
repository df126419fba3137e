//! The calendar operators hookflow adds to Activepieces' 22: `TIME_OF_DAY_IS_BETWEEN`,
//! `TIME_OF_DAY_IS_NOT_BETWEEN`, `DAY_OF_WEEK_IS` and `DAY_OF_WEEK_IS_NOT`, for rules such as
//! "activity outside business hours or at weekends". The left operand is a date (read like the
//! `DATE_*` operators read it); it is turned into wall-clock time in the condition's
//! `timeZone` (an IANA name such as `Europe/Berlin`, UTC when absent) with the compiled-in
//! time zone database, so daylight saving changes move business hours with the clocks.
//!
//! Right operands:
//! * time of day: `HH:MM-HH:MM` (seconds optional), start included, end excluded; a range whose
//!   end is before its start wraps past midnight (`22:00-06:00`);
//! * days of week: names or three-letter abbreviations, any case, separated by commas, with
//!   `Mon-Fri` style ranges (`Sat,Sun`, `monday-friday`), or a list of such names.
//!
//! Like the `DATE_*` operators, a left operand that is not a date makes both the operator and
//! its negation false, so a missing timestamp never looks like "outside business hours".

use chrono::{Datelike, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde_json::Value;

/// A time zone by its IANA name.
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("unknown time zone {name:?} (use an IANA name such as Europe/Berlin)"))
}

/// Seconds since midnight of `HH:MM` or `HH:MM:SS`.
fn clock(text: &str) -> Option<u32> {
    let mut parts = text.trim().split(':');
    let h: u32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let s: u32 = parts.next().map_or(Some(0), |s| s.parse().ok())?;
    if parts.next().is_some() || h > 24 || m > 59 || s > 59 || (h == 24 && (m, s) != (0, 0)) {
        return None;
    }
    Some(h * 3600 + m * 60 + s)
}

/// A time-of-day range as seconds since midnight, `[start, end)`.
pub fn parse_time_range(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("invalid time range {text:?} (write e.g. 08:00-18:00)");
    let (start, end) = text
        .split_once('-')
        .or_else(|| text.split_once('–'))
        .ok_or_else(bad)?;
    let (start, end) = (clock(start).ok_or_else(bad)?, clock(end).ok_or_else(bad)?);
    if start == end {
        return Err(format!("time range {text:?} is empty"));
    }
    Ok((start, end))
}

fn weekday(name: &str) -> Option<Weekday> {
    let name = name.trim().to_ascii_lowercase();
    const DAYS: [(&str, Weekday); 7] = [
        ("monday", Weekday::Mon),
        ("tuesday", Weekday::Tue),
        ("wednesday", Weekday::Wed),
        ("thursday", Weekday::Thu),
        ("friday", Weekday::Fri),
        ("saturday", Weekday::Sat),
        ("sunday", Weekday::Sun),
    ];
    DAYS.iter()
        .find(|(full, _)| name.len() >= 3 && full.starts_with(&name))
        .map(|(_, day)| *day)
}

/// A set of weekdays as a bit mask (bit 0 = Monday).
pub fn parse_days(value: &Value) -> Result<u8, String> {
    let items: Vec<String> = match value {
        Value::String(text) => text.split(',').map(str::to_owned).collect(),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| "days must be names".to_owned())
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "days must be text such as \"Sat,Sun\", found {other}"
            ));
        }
    };
    let mut mask = 0u8;
    for item in items.iter().filter(|i| !i.trim().is_empty()) {
        let bad = || {
            format!(
                "unknown day {:?} (use Mon..Sun, full names, or ranges such as Mon-Fri)",
                item.trim()
            )
        };
        match item.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (weekday(from).ok_or_else(bad)?, weekday(to).ok_or_else(bad)?);
                let mut day = from;
                loop {
                    mask |= 1 << day.num_days_from_monday();
                    if day == to {
                        break;
                    }
                    day = day.succ();
                }
            }
            None => mask |= 1 << weekday(item).ok_or_else(bad)?.num_days_from_monday(),
        }
    }
    if mask == 0 {
        return Err("no day given".into());
    }
    Ok(mask)
}

/// Whether epoch milliseconds `at` fall in the time-of-day range `right` in `zone`; `None`
/// when `right` is not a range.
pub fn time_of_day_between(at: i64, right: &Value, zone: Tz) -> Option<bool> {
    let (start, end) = parse_time_range(right.as_str()?).ok()?;
    let local = zone.from_utc_datetime(&Utc.timestamp_millis_opt(at).single()?.naive_utc());
    let now = local.num_seconds_from_midnight();
    Some(if start < end {
        start <= now && now < end
    } else {
        now >= start || now < end
    })
}

/// Whether epoch milliseconds `at` fall on one of the days `right` names, in `zone`.
pub fn day_of_week_is(at: i64, right: &Value, zone: Tz) -> Option<bool> {
    let mask = parse_days(right).ok()?;
    let local = zone.from_utc_datetime(&Utc.timestamp_millis_opt(at).single()?.naive_utc());
    Some(mask & (1 << local.weekday().num_days_from_monday()) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(rfc3339: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn business_hours_follow_daylight_saving() {
        let berlin = parse_zone("Europe/Berlin").unwrap();
        let hours = json!("08:00-18:00");
        // 07:30 UTC is 08:30 in Berlin in winter (UTC+1) but 09:30 in summer (UTC+2);
        // 06:30 UTC is 07:30 before the change and 08:30 after it.
        assert_eq!(
            time_of_day_between(ms("2026-03-28T06:30:00Z"), &hours, berlin),
            Some(false)
        );
        assert_eq!(
            time_of_day_between(ms("2026-03-30T06:30:00Z"), &hours, berlin),
            Some(true)
        );
        // 16:30 UTC: 17:30 in winter (inside), 18:30 in summer (outside).
        assert_eq!(
            time_of_day_between(ms("2026-03-27T16:30:00Z"), &hours, berlin),
            Some(true)
        );
        assert_eq!(
            time_of_day_between(ms("2026-03-30T16:30:00Z"), &hours, berlin),
            Some(false)
        );
        let utc = parse_zone("UTC").unwrap();
        assert_eq!(
            time_of_day_between(ms("2026-03-30T16:30:00Z"), &hours, utc),
            Some(true)
        );
    }

    #[test]
    fn ranges_wrap_past_midnight_and_end_is_excluded() {
        let utc = Tz::UTC;
        let night = json!("22:00-06:00");
        assert_eq!(
            time_of_day_between(ms("2026-01-01T23:00:00Z"), &night, utc),
            Some(true)
        );
        assert_eq!(
            time_of_day_between(ms("2026-01-01T05:59:59Z"), &night, utc),
            Some(true)
        );
        assert_eq!(
            time_of_day_between(ms("2026-01-01T06:00:00Z"), &night, utc),
            Some(false)
        );
        assert_eq!(
            time_of_day_between(ms("2026-01-01T12:00:00Z"), &night, utc),
            Some(false)
        );
        assert_eq!(time_of_day_between(0, &json!("nonsense"), utc), None);
        for bad in ["8-18", "08:00", "08:00-08:00", "25:00-26:00", "08:60-09:00"] {
            assert!(parse_time_range(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_time_range("00:00-24:00"), Ok((0, 86_400)));
    }

    #[test]
    fn weekdays_in_the_zone_of_the_condition() {
        let weekend = json!("Sat,Sun");
        // Friday 23:30 UTC is already Saturday in Berlin.
        let at = ms("2026-03-06T23:30:00Z");
        assert_eq!(day_of_week_is(at, &weekend, Tz::UTC), Some(false));
        assert_eq!(
            day_of_week_is(at, &weekend, parse_zone("Europe/Berlin").unwrap()),
            Some(true)
        );
        assert_eq!(parse_days(&json!("Mon-Fri")), Ok(0b0011111));
        assert_eq!(parse_days(&json!("friday - monday")), Ok(0b1110001));
        assert_eq!(parse_days(&json!(["saturday", "SUN"])), Ok(0b1100000));
        assert!(parse_days(&json!("Funday")).is_err());
        assert!(parse_days(&json!("")).is_err());
        assert!(parse_days(&json!(5)).is_err());
        assert!(parse_zone("Mars/Olympus").is_err());
    }
}
