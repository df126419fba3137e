//! Failed sign-in throttling: a sliding window of failures per key (an email, a client
//! address). Kept in the process; with several processes each holds its own window, so an
//! attacker spreading attempts over N processes gets N times the budget (still bounded).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `limit` failures per key within `window`.
pub struct Throttle {
    limit: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// Keys tracked at most; beyond it the oldest windows are dropped (a flood of distinct keys
/// cannot grow memory without bound).
const MAX_KEYS: usize = 100_000;

impl Throttle {
    pub fn new(limit: usize, window: Duration) -> Throttle {
        Throttle {
            limit,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry after)` while `key` has used up its failures.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.failures.lock().expect("throttle poisoned");
        let Some(times) = map.get_mut(key) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() < self.limit {
            return Ok(());
        }
        let oldest = *times.front().expect("limit > 0 failures");
        Err(self
            .window
            .saturating_sub(now.duration_since(oldest))
            .max(Duration::from_secs(1)))
    }

    /// Counts a failure of `key`.
    pub fn fail(&self, key: &str) {
        let now = Instant::now();
        let mut map = self.failures.lock().expect("throttle poisoned");
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            let window = self.window;
            map.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        let times = map.entry(key.to_string()).or_default();
        times.push_back(now);
        while times.len() > self.limit {
            times.pop_front();
        }
    }

    /// Forgets `key`'s failures (a successful sign-in).
    pub fn clear(&self, key: &str) {
        self.failures.lock().expect("throttle poisoned").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_the_limit_until_the_window_passes() {
        let t = Throttle::new(2, Duration::from_millis(200));
        assert!(t.check("a").is_ok());
        t.fail("a");
        t.fail("a");
        let wait = t.check("a").unwrap_err();
        assert!(
            wait >= Duration::from_secs(1),
            "Retry-After is at least a second"
        );
        assert!(t.check("b").is_ok(), "keys are independent");
        t.clear("a");
        assert!(t.check("a").is_ok());
    }
}
