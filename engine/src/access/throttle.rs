//! Failed sign-in throttling: a sliding window of attempts per key (an email, a client
//! address). Kept in the process; with several processes each holds its own window, so an
//! attacker spreading attempts over N processes gets N times the budget (still bounded).
//!
//! An attempt is counted *before* its password is verified, in the same step as the check
//! ([`Throttle::reserve`], [`SignInThrottle::attempt`]): concurrent guesses cannot all pass a
//! check that none of them has been counted in yet. A sign-in that succeeds (or ends without a
//! verdict) takes its attempt back.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

type Windows = HashMap<String, VecDeque<Instant>>;

/// At most `limit` counted attempts per key within `window`.
pub struct Throttle {
    limit: usize,
    window: Duration,
    attempts: Mutex<Windows>,
}

/// Keys tracked at most; beyond it the oldest windows are dropped (a flood of distinct keys
/// cannot grow memory without bound).
const MAX_KEYS: usize = 100_000;

impl Throttle {
    pub fn new(limit: usize, window: Duration) -> Throttle {
        Throttle {
            limit,
            window,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    fn windows(&self) -> MutexGuard<'_, Windows> {
        self.attempts.lock().expect("throttle poisoned")
    }

    /// `Some(retry after)` while `key` has used up its attempts (expired ones are dropped).
    fn used_up(&self, map: &mut Windows, key: &str, now: Instant) -> Option<Duration> {
        let times = map.get_mut(key)?;
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() < self.limit {
            return None;
        }
        let oldest = *times.front()?;
        Some(
            self.window
                .saturating_sub(now.duration_since(oldest))
                .max(Duration::from_secs(1)),
        )
    }

    /// Counts an attempt of `key` at `now`.
    fn count(&self, map: &mut Windows, key: &str, now: Instant) {
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

    /// Takes back the attempt of `key` counted at `at`.
    fn uncount(map: &mut Windows, key: &str, at: Instant) {
        if let Some(times) = map.get_mut(key) {
            if let Some(i) = times.iter().position(|t| *t == at) {
                times.remove(i);
            }
            if times.is_empty() {
                map.remove(key);
            }
        }
    }

    /// Counts an attempt of `key` if it has attempts left, in one step with the check:
    /// `Ok(when)` to hand to [`Throttle::release`] should the attempt not fail, or
    /// `Err(retry after)` (nothing counted).
    pub fn reserve(&self, key: &str) -> Result<Instant, Duration> {
        let now = Instant::now();
        let mut map = self.windows();
        if let Some(wait) = self.used_up(&mut map, key, now) {
            return Err(wait);
        }
        self.count(&mut map, key, now);
        Ok(now)
    }

    /// Takes back an attempt [`Throttle::reserve`] counted, which did not fail.
    pub fn release(&self, key: &str, at: Instant) {
        Self::uncount(&mut self.windows(), key, at);
    }

    /// Forgets `key`'s attempts (a successful sign-in).
    pub fn clear(&self, key: &str) {
        self.windows().remove(key);
    }
}

/// Sign-in throttling: 5 failures per email and 20 per client address within 15 minutes.
pub struct SignInThrottle {
    pub by_email: Throttle,
    pub by_ip: Throttle,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        let window = Duration::from_secs(15 * 60);
        SignInThrottle {
            by_email: Throttle::new(5, window),
            by_ip: Throttle::new(20, window),
        }
    }
}

impl SignInThrottle {
    /// Counts a sign-in attempt for `email` from `ip` against both limits, in one step with
    /// their check (both windows locked, email first): `Err(retry after)` when either is used
    /// up, and then nothing is counted. The attempt stays counted only if it is settled as
    /// [`Attempt::failed`].
    pub fn attempt(&self, email: &str, ip: &str) -> Result<Attempt<'_>, Duration> {
        let now = Instant::now();
        let mut emails = self.by_email.windows();
        let mut ips = self.by_ip.windows();
        if let Some(wait) = self.by_email.used_up(&mut emails, email, now) {
            return Err(wait);
        }
        if let Some(wait) = self.by_ip.used_up(&mut ips, ip, now) {
            return Err(wait);
        }
        self.by_email.count(&mut emails, email, now);
        self.by_ip.count(&mut ips, ip, now);
        Ok(Attempt {
            throttle: self,
            email: email.to_string(),
            ip: ip.to_string(),
            at: now,
            settled: false,
        })
    }
}

/// A counted sign-in attempt. Dropped unsettled (an error before the verdict, a request
/// abandoned mid-way), it is taken back.
#[must_use = "settle the attempt: failed() keeps it counted, succeeded() takes it back"]
pub struct Attempt<'a> {
    throttle: &'a SignInThrottle,
    email: String,
    ip: String,
    at: Instant,
    settled: bool,
}

impl Attempt<'_> {
    /// The sign-in failed: the attempt stays counted against the email and the address.
    pub fn failed(mut self) {
        self.settled = true;
    }

    /// The sign-in succeeded: the email's failures are forgotten and the address's attempt is
    /// taken back (its other failures stay).
    pub fn succeeded(mut self) {
        self.settled = true;
        self.throttle.by_email.clear(&self.email);
        self.throttle.by_ip.release(&self.ip, self.at);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.throttle.by_email.release(&self.email, self.at);
            self.throttle.by_ip.release(&self.ip, self.at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    #[test]
    fn refuses_after_the_limit_until_the_window_passes() {
        let t = Throttle::new(2, Duration::from_millis(200));
        t.reserve("a").unwrap();
        let released = t.reserve("a").unwrap();
        let wait = t.reserve("a").unwrap_err();
        assert!(
            wait >= Duration::from_secs(1),
            "Retry-After is at least a second"
        );
        assert!(t.reserve("b").is_ok(), "keys are independent");
        t.release("a", released);
        let again = t.reserve("a").expect("a released attempt is given back");
        assert!(t.reserve("a").is_err());
        t.clear("a");
        assert!(t.reserve("a").is_ok());
        t.release("a", again); // an attempt cleared already: nothing to take back
        std::thread::sleep(Duration::from_millis(250));
        assert!(t.reserve("a").is_ok() && t.reserve("a").is_ok());
    }

    /// The regression: the check and the count are one step, so of many attempts racing for
    /// the same key exactly the limit get through.
    #[test]
    fn concurrent_attempts_get_at_most_the_limit() {
        let throttle = Arc::new(SignInThrottle::default());
        let start = Arc::new(Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (throttle, start) = (throttle.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    match throttle.attempt("victim@example.com", "10.0.0.1") {
                        Ok(attempt) => {
                            // The slow password check happens while the attempt is counted.
                            std::thread::sleep(Duration::from_millis(20));
                            attempt.failed();
                            true
                        }
                        Err(wait) => {
                            assert!(wait >= Duration::from_secs(1));
                            false
                        }
                    }
                })
            })
            .collect();
        let passed = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|p| *p)
            .count();
        assert_eq!(passed, 5, "5 per email, however many race");
    }

    #[test]
    fn success_and_abandoned_attempts_are_taken_back() {
        let throttle = SignInThrottle::default();
        for _ in 0..4 {
            throttle.attempt("a@example.com", "ip").unwrap().failed();
        }
        throttle.attempt("a@example.com", "ip").unwrap().succeeded();
        // Success forgets the email's failures; the address keeps its 4 failures only.
        for _ in 0..5 {
            drop(throttle.attempt("a@example.com", "ip").unwrap());
        }
        for i in 0..16 {
            throttle
                .attempt(&format!("{i}@example.com"), "ip")
                .unwrap()
                .failed();
        }
        assert!(
            throttle.attempt("other@example.com", "ip").is_err(),
            "20 failures from one address"
        );
        assert!(throttle.attempt("other@example.com", "ip2").is_ok());
        // A refusal by the address counts nothing against the email.
        for _ in 0..5 {
            throttle
                .attempt("fresh@example.com", "ip3")
                .unwrap()
                .failed();
        }
        assert!(throttle.attempt("fresh@example.com", "ip3").is_err());
        assert!(throttle.attempt("fresh2@example.com", "ip").is_err());
        assert!(throttle.attempt("fresh2@example.com", "ip4").is_ok());
    }
}
