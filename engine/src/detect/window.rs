//! The sliding-window count behind `threshold` steps, as a pure state machine: one
//! [`KeyState`] per group key, one [`observe`] per event. No I/O and no clock: the caller
//! passes the event's own time and the arrival time, so the same code serves live runs (state
//! in the store, arrival = wall clock) and replays (state in a scratch map, arrival = the
//! event's time).
//!
//! Why event time and a search over windows: Auth0 and GitLab deliver late, twice and out of
//! order, so "the last hour before arrival" would both miss bursts that arrive spread out and
//! count stale events. Every window of length `window` that contains the new event is a
//! candidate; the event crosses the line when the fullest of them holds `threshold` events
//! (or distinct values). The fullest window always starts at one of the events, so only those
//! starts are tried, in one pass with two pointers.

use crate::flow::validate::MAX_THRESHOLD;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Longest a key's state keeps events, counted in windows behind the latest time seen: one
/// window of lateness accepted, plus the window an accepted late event may fall into.
const KEPT_WINDOWS: i64 = 3;

/// Most events a key keeps at the highest threshold.
pub const MAX_EVENTS_PER_KEY: usize = 4 * MAX_THRESHOLD as usize;

/// Most events a key keeps: four times the threshold (at least 8). Beyond it the oldest are
/// dropped: an event in time order still sees the threshold's worth of events before it, so
/// no crossing is missed, while one attacker's flood on one key keeps its state (read and
/// rewritten on every event) small. A count reported during such a flood stops growing there.
fn kept_events(spec: &WindowSpec) -> usize {
    (spec.threshold as usize * 4).clamp(8, MAX_EVENTS_PER_KEY)
}

/// Most contributing event ids an alert lists.
pub const MAX_EVENT_IDS: usize = 100;

/// Longest distinct value kept per event, in bytes (longer ones are cut on a char boundary:
/// two values equal in their first 200 bytes count as one).
const MAX_DISTINCT_BYTES: usize = 200;

/// What a step counts, from its definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    /// Window length in milliseconds.
    pub window_ms: i64,
    /// Count (or distinct count) at which the step fires.
    pub threshold: u32,
    /// After an alert, events within this distance (ms, either side) of the alerting event do
    /// not alert again.
    pub suppress_ms: i64,
    /// Count distinct values of the step's `countDistinct` instead of events.
    pub distinct: bool,
}

/// One event as the step sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Identity: a second observation with the same id is a redelivery and never counts.
    pub event_id: String,
    /// The event's own time, ms since the epoch.
    pub at_ms: i64,
    /// The value counted when the step counts distinct values.
    pub distinct: Option<String>,
    /// When the event reached the engine (ms); decides lateness.
    pub now_ms: i64,
}

/// An event kept in a key's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    id: String,
    at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<String>,
}

/// Everything remembered for one group key: the recent events and the last alert. Stored as
/// JSON (short field names: it is written on every event).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    /// Events in time order.
    #[serde(rename = "e", default)]
    events: Vec<Seen>,
    /// Event time of the last alert.
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    fired_at: Option<i64>,
    /// Crossings kept quiet since the last alert.
    #[serde(rename = "s", default)]
    suppressed: u64,
    /// Latest event or arrival time seen, ms.
    #[serde(rename = "w", default)]
    watermark: i64,
}

/// What one observation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The count reached the threshold and the key was not quiet: take the `crossed` branch.
    pub crossed: bool,
    /// The count reached the threshold within the quiet period after an alert.
    pub suppressed: bool,
    /// The event id was already counted (a redelivery or a retried run).
    pub duplicate: bool,
    /// The event was older than one window before its arrival: not counted.
    pub late: bool,
    /// Events (or distinct values) in the fullest window holding this event.
    pub count: u64,
    /// That window: `[start, end)`, ms.
    pub window_start: i64,
    pub window_end: i64,
    /// Ids of the events in that window, oldest first, at most [`MAX_EVENT_IDS`].
    pub event_ids: Vec<String>,
    /// Crossings suppressed since the previous alert; set on an alert, else 0.
    pub suppressed_before: u64,
}

impl KeyState {
    /// Until when (ms, arrival clock) the state matters: after it, no event can be counted
    /// with the ones kept nor be quiet because of the last alert. The store deletes it then.
    pub fn expires_at(&self, spec: &WindowSpec) -> i64 {
        let events_end = self.watermark + KEPT_WINDOWS * spec.window_ms;
        let quiet_end = self.fired_at.map_or(i64::MIN, |f| f + spec.suppress_ms);
        events_end.max(quiet_end)
    }

    /// How many events the state holds.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when no event is kept.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Counts `obs` into `state` and says whether it crossed the line.
pub fn observe(state: &mut KeyState, spec: &WindowSpec, obs: Observation) -> Verdict {
    let window = spec.window_ms.max(1);
    let mut verdict = Verdict {
        crossed: false,
        suppressed: false,
        duplicate: false,
        late: false,
        count: 0,
        window_start: obs.at_ms,
        window_end: obs.at_ms.saturating_add(window),
        event_ids: Vec::new(),
        suppressed_before: 0,
    };
    if state.events.iter().any(|e| e.id == obs.event_id) {
        verdict.duplicate = true;
        fullest_window(
            &state.events,
            obs.at_ms,
            window,
            spec.distinct,
            &mut verdict,
        );
        return verdict;
    }
    let now = obs.now_ms.max(state.watermark);
    if obs.at_ms < now.saturating_sub(2 * window) {
        verdict.late = true;
        return verdict;
    }
    let distinct = obs.distinct.map(|mut v| {
        if v.len() > MAX_DISTINCT_BYTES {
            let mut end = MAX_DISTINCT_BYTES;
            while !v.is_char_boundary(end) {
                end -= 1;
            }
            v.truncate(end);
        }
        v
    });
    let position = state.events.partition_point(|e| e.at <= obs.at_ms);
    state.events.insert(
        position,
        Seen {
            id: obs.event_id,
            at: obs.at_ms,
            v: distinct,
        },
    );
    state.watermark = now.max(obs.at_ms);
    let horizon = state.watermark.saturating_sub(KEPT_WINDOWS * window);
    let stale = state.events.partition_point(|e| e.at < horizon);
    let over = state.events.len().saturating_sub(kept_events(spec));
    state.events.drain(..stale.max(over));

    fullest_window(
        &state.events,
        obs.at_ms,
        window,
        spec.distinct,
        &mut verdict,
    );
    if verdict.count < u64::from(spec.threshold) {
        return verdict;
    }
    let quiet = state
        .fired_at
        .is_some_and(|fired| (obs.at_ms - fired).abs() < spec.suppress_ms);
    if quiet {
        verdict.suppressed = true;
        state.suppressed += 1;
    } else {
        verdict.crossed = true;
        verdict.suppressed_before = std::mem::take(&mut state.suppressed);
        state.fired_at = Some(obs.at_ms);
    }
    verdict
}

/// Fills `verdict` with the fullest window of length `window` that contains time `at`:
/// windows starting at each kept event in `(at - window, at]`.
fn fullest_window(events: &[Seen], at: i64, window: i64, distinct: bool, verdict: &mut Verdict) {
    let first = events.partition_point(|e| e.at <= at - window);
    let last = events.partition_point(|e| e.at <= at);
    let mut best: Option<(u64, usize, usize)> = None;
    let mut end = first;
    let mut values: HashMap<&str, u32> = HashMap::new();
    for start in first..last {
        // Grow to every event before `events[start].at + window`.
        let limit = events[start].at.saturating_add(window);
        while end < events.len() && events[end].at < limit {
            if distinct && let Some(v) = &events[end].v {
                *values.entry(v.as_str()).or_default() += 1;
            }
            end += 1;
        }
        let count = if distinct {
            values.len() as u64
        } else {
            (end - start) as u64
        };
        if best.is_none_or(|(n, _, _)| count > n) {
            best = Some((count, start, end));
        }
        // Shrink: the next window no longer starts at `events[start]`.
        if distinct
            && let Some(v) = &events[start].v
            && let Some(n) = values.get_mut(v.as_str())
        {
            *n -= 1;
            if *n == 0 {
                values.remove(v.as_str());
            }
        }
    }
    if let Some((count, start, end)) = best {
        verdict.count = count;
        verdict.window_start = events[start].at;
        verdict.window_end = events[start].at.saturating_add(window);
        verdict.event_ids = events[start..end]
            .iter()
            .take(MAX_EVENT_IDS)
            .map(|e| e.id.clone())
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn spec(threshold: u32) -> WindowSpec {
        WindowSpec {
            window_ms: 60 * MIN,
            threshold,
            suppress_ms: 60 * MIN,
            distinct: false,
        }
    }

    fn at(state: &mut KeyState, spec: &WindowSpec, id: &str, minute: i64) -> Verdict {
        observe(
            state,
            spec,
            Observation {
                event_id: id.into(),
                at_ms: minute * MIN,
                distinct: None,
                now_ms: minute * MIN,
            },
        )
    }

    #[test]
    fn fires_once_on_the_event_that_reaches_the_threshold() {
        let spec = spec(5);
        let mut state = KeyState::default();
        for i in 0..4 {
            let v = at(&mut state, &spec, &format!("e{i}"), i * 10);
            assert!(!v.crossed, "event {i}");
            assert_eq!(v.count, i as u64 + 1);
        }
        let fifth = at(&mut state, &spec, "e4", 45);
        assert!(fifth.crossed);
        assert_eq!(fifth.count, 5);
        assert_eq!(fifth.event_ids, ["e0", "e1", "e2", "e3", "e4"]);
        assert_eq!(fifth.window_start, 0);
        assert_eq!(fifth.window_end, 60 * MIN);
        // The sixth within the hour is the same attack: quiet, and counted as suppressed.
        let sixth = at(&mut state, &spec, "e5", 50);
        assert!(!sixth.crossed && sixth.suppressed);
        // Well after the quiet period a new burst alerts again and reports the suppressed one.
        for i in 0..4 {
            assert!(!at(&mut state, &spec, &format!("n{i}"), 200 + i).crossed);
        }
        let again = at(&mut state, &spec, "n4", 205);
        assert!(again.crossed);
        assert_eq!(again.suppressed_before, 1);
        assert_eq!(again.count, 5);
    }

    #[test]
    fn one_event_short_never_fires() {
        let spec = spec(5);
        let mut state = KeyState::default();
        // Four in one hour, then a fifth just outside the window of the first.
        for (i, minute) in [0, 10, 20, 30].into_iter().enumerate() {
            assert!(!at(&mut state, &spec, &format!("e{i}"), minute).crossed);
        }
        let v = at(&mut state, &spec, "e4", 60);
        assert!(!v.crossed);
        assert_eq!(v.count, 4);
    }

    #[test]
    fn redelivered_events_count_once() {
        let spec = spec(3);
        let mut state = KeyState::default();
        assert!(!at(&mut state, &spec, "a", 0).crossed);
        let again = at(&mut state, &spec, "a", 0);
        assert!(again.duplicate && !again.crossed);
        assert!(!at(&mut state, &spec, "b", 1).crossed);
        assert!(at(&mut state, &spec, "c", 2).crossed);
        assert_eq!(state.len(), 3);
    }

    #[test]
    fn out_of_order_events_count_where_they_belong() {
        let spec = spec(3);
        let mut state = KeyState::default();
        // Arrives at minute 100, happened at 30 and 35; then one from minute 40 arrives.
        let arrive = |id: &str, minute: i64| Observation {
            event_id: id.into(),
            at_ms: minute * MIN,
            distinct: None,
            now_ms: 100 * MIN,
        };
        assert!(!observe(&mut state, &spec, arrive("x", 35)).crossed);
        assert!(!observe(&mut state, &spec, arrive("y", 30)).crossed);
        let v = observe(&mut state, &spec, arrive("z", 40));
        assert!(v.crossed);
        assert_eq!(v.event_ids, ["y", "x", "z"]);
        // An event from two hours before its arrival is reported late, not counted.
        let late = observe(&mut state, &spec, arrive("old", -30));
        assert!(late.late && !late.crossed);
        assert_eq!(state.len(), 3);
    }

    #[test]
    fn a_late_event_filling_an_earlier_gap_alerts_once() {
        let spec = spec(3);
        let mut state = KeyState::default();
        assert!(!at(&mut state, &spec, "a", 0).crossed);
        assert!(!at(&mut state, &spec, "c", 50).crossed);
        // The missing middle arrives after the others.
        assert!(at(&mut state, &spec, "b", 20).crossed);
        // Another one of the same burst, arriving out of order before the alerting event: quiet.
        let v = at(&mut state, &spec, "d", 10);
        assert!(v.suppressed && !v.crossed);
    }

    #[test]
    fn distinct_values_count_once_each() {
        let spec = WindowSpec {
            distinct: true,
            ..spec(3)
        };
        let mut state = KeyState::default();
        let mut see = |id: &str, minute: i64, value: &str| {
            observe(
                &mut state,
                &spec,
                Observation {
                    event_id: id.into(),
                    at_ms: minute * MIN,
                    distinct: Some(value.into()),
                    now_ms: minute * MIN,
                },
            )
        };
        assert_eq!(see("1", 0, "10.0.0.1").count, 1);
        assert_eq!(see("2", 1, "10.0.0.1").count, 1);
        assert_eq!(see("3", 2, "10.0.0.2").count, 2);
        assert!(!see("4", 3, "10.0.0.2").crossed);
        let v = see("5", 4, "10.0.0.3");
        assert!(v.crossed);
        assert_eq!(v.count, 3);
        assert_eq!(v.event_ids.len(), 5);
    }

    #[test]
    fn state_stays_bounded() {
        let spec = WindowSpec {
            window_ms: 1000,
            threshold: MAX_THRESHOLD,
            suppress_ms: 1000,
            distinct: false,
        };
        let mut state = KeyState::default();
        for i in 0..(MAX_EVENTS_PER_KEY as i64 + 500) {
            observe(
                &mut state,
                &spec,
                Observation {
                    event_id: i.to_string(),
                    at_ms: 0,
                    distinct: None,
                    now_ms: 0,
                },
            );
        }
        assert_eq!(state.len(), MAX_EVENTS_PER_KEY);
        // Time moving on drops what can no longer count.
        at(&mut state, &spec, "later", 10);
        assert_eq!(state.len(), 1);
        assert_eq!(state.expires_at(&spec), 10 * MIN + 3000);
    }

    #[test]
    fn a_flood_on_one_key_keeps_four_thresholds_of_events_and_still_alerts_again() {
        let spec = WindowSpec {
            suppress_ms: 10 * MIN,
            ..spec(5)
        };
        let mut state = KeyState::default();
        let mut alerts = 0;
        for i in 0..10_000i64 {
            let v = observe(
                &mut state,
                &spec,
                Observation {
                    event_id: format!("e{i}"),
                    at_ms: i * 100,
                    distinct: None,
                    now_ms: i * 100,
                },
            );
            alerts += usize::from(v.crossed);
        }
        assert_eq!(state.len(), 20);
        // 1,000 s of events with a 10-minute quiet period: alerts at 0.4 s, 600.4 s.
        assert_eq!(alerts, 2);
    }

    #[test]
    fn state_round_trips_as_json() {
        let spec = spec(2);
        let mut state = KeyState::default();
        at(&mut state, &spec, "a", 0);
        at(&mut state, &spec, "b", 1);
        let text = serde_json::to_string(&state).unwrap();
        let back: KeyState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, state);
    }
}
