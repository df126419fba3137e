//! The delivery worker: claims the head of each destination's outbox, sends it, and decides
//! what happens next (delivered, retried later, failed, destination paused or disabled).

use super::{Destinations, client};
use crate::store::{DeliveryNext, DeliveryResult, DueDelivery};
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Default schedule, like Svix's: seconds between attempts.
pub const DEFAULT_SCHEDULE: &[f64] = &[5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0];
/// Failures in a row after which a destination is paused (circuit breaker).
const BREAKER_THRESHOLD: i64 = 5;
/// A destination failing this long is disabled.
const DISABLE_AFTER: chrono::Duration = chrono::Duration::days(5);
/// Largest response body kept with an attempt.
pub(super) const MAX_KEPT_BODY: usize = 4096;

/// When to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Seconds to wait before attempt 2, 3, ...; its length is the number of retries.
    pub schedule: Vec<f64>,
}

impl RetryPolicy {
    /// Parses `HOOKFLOW_DELIVERY_RETRY_SCHEDULE` (comma-separated seconds).
    pub fn parse(text: &str) -> Result<RetryPolicy, String> {
        let schedule = text
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| *v >= 0.0 && v.is_finite())
            })
            .collect::<Option<Vec<f64>>>()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                format!(
                    "HOOKFLOW_DELIVERY_RETRY_SCHEDULE must be comma-separated seconds, got {text:?}"
                )
            })?;
        Ok(RetryPolicy { schedule })
    }

    /// How much shorter than the default this schedule is: floors (60 s after a 429) and the
    /// breaker's pause shrink with it, so test schedules stay fast.
    fn scale(&self) -> f64 {
        (self.schedule[0] / DEFAULT_SCHEDULE[0]).min(1.0)
    }

    /// Delay before the attempt after `attempt` failed, or `None` when retries are used up.
    pub fn delay(
        &self,
        attempt: usize,
        throttled: bool,
        retry_after: Option<f64>,
    ) -> Option<Duration> {
        let base = *self.schedule.get(attempt.checked_sub(1)?)?;
        let mut seconds = base * rand::rng().random_range(0.8..=1.2);
        if throttled {
            seconds = seconds.max(60.0 * self.scale());
        }
        if let Some(after) = retry_after {
            seconds = seconds.max(after);
        }
        // A receiver's `Retry-After` may be anything (`inf`, `1e20`): clamped, so the delay is
        // always a valid Duration whose milliseconds fit the schedule's i64.
        Some(Duration::from_secs_f64(seconds.clamp(0.0, MAX_DELAY_SECS)))
    }

    /// How long the breaker pauses a destination.
    fn pause(&self) -> Duration {
        Duration::from_secs_f64(60.0 * self.scale())
    }
}

/// The longest a delivery waits before its next attempt, whatever a receiver asks for.
const MAX_DELAY_SECS: f64 = 24.0 * 3600.0;

/// Destinations whose batches may be in flight at once.
const MAX_DESTINATIONS_IN_FLIGHT: usize = 32;
/// Consecutive events claimed for one destination at a time, sent one after the other on one
/// connection.
const EVENTS_PER_DESTINATION: u32 = 64;
/// How long a claim holds its entries: no other claim (in this process or another) hands them
/// out meanwhile, so a destination's events are in flight once, in order.
const LEASE: Duration = Duration::from_secs(60);
/// The longest one send may take: the client's own timeout covers the request and response,
/// this also bounds the URL check and in-process deliveries.
const SEND_LIMIT: Duration = Duration::from_secs(client::DELIVERY_TIMEOUT.as_secs() + 5);
/// Time left for recording a batch's results before its lease ends.
const RECORD_MARGIN: Duration = Duration::from_secs(10);
/// How long the worker waits, once a batch has ended, for others to end too before recording
/// them together.
const LINGER: Duration = Duration::from_millis(20);
/// How often the worker looks for due entries when nothing wakes it.
const POLL: Duration = Duration::from_millis(200);

/// Whether a batch that started `elapsed` ago may send one more entry: only if that send, and
/// recording it, end before the batch's lease does. The rest go back unattempted, so a slow
/// receiver never makes a lease expire under an entry still in flight.
fn within_lease(elapsed: Duration) -> bool {
    elapsed + SEND_LIMIT + RECORD_MARGIN <= LEASE
}

/// What a finished batch hands back: attempt results, and entries released unattempted.
type Finished = (Vec<DeliveryResult>, Vec<String>);

/// Runs until shutdown. Each destination's batch (consecutive due entries from the head of its
/// queue) is sent by its own task, in order; its results are recorded as soon as it finishes,
/// and the worker keeps claiming for other destinations meanwhile (a destination whose head is
/// leased is not claimed again), so a slow receiver delays only its own events. At shutdown,
/// batches stop before their next entry; sends still running after `grace` are cut off and
/// their entries released.
pub async fn run(
    destinations: Arc<Destinations>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let (cut, cut_rx) = watch::channel(false);
    let mut in_flight: JoinSet<Finished> = JoinSet::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let room = MAX_DESTINATIONS_IN_FLIGHT.saturating_sub(in_flight.len());
        if room > 0 {
            match destinations
                .store()
                .claim_delivery_batches(
                    room as u32,
                    EVENTS_PER_DESTINATION,
                    LEASE.as_millis() as i64,
                )
                .await
            {
                Ok(due) => {
                    for batch in by_destination(due) {
                        in_flight.spawn(deliver_in_order(
                            destinations.clone(),
                            batch,
                            shutdown.clone(),
                            cut_rx.clone(),
                        ));
                    }
                }
                Err(error) => tracing::error!(%error, "claiming deliveries failed"),
            }
        }
        tokio::select! {
            Some(first) = in_flight.join_next(), if !in_flight.is_empty() => {
                record(&destinations, first, &mut in_flight).await;
            }
            _ = destinations.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            changed = shutdown.changed() => if changed.is_err() { break },
        }
    }
    // Shutdown: nothing new is claimed and batches stop before their next entry.
    let deadline = tokio::time::Instant::now() + grace;
    let mut cutting = false;
    while !in_flight.is_empty() {
        tokio::select! {
            Some(first) = in_flight.join_next() => record(&destinations, first, &mut in_flight).await,
            _ = tokio::time::sleep_until(deadline), if !cutting => {
                tracing::warn!(
                    batches = in_flight.len(),
                    "grace period over; deliveries still in flight are released"
                );
                cutting = true;
                let _ = cut.send(true);
            }
        }
    }
}

/// Records `first` and every other batch that ends within [`LINGER`] of it in one transaction
/// (batches to fast receivers end close together: one commit for all of them, not one each). A
/// batch that panicked brings the worker down with the same panic (after recording the others),
/// so its supervisor reports and restarts it; the panicked batch's entries go out again when
/// their lease expires.
async fn record(
    destinations: &Destinations,
    first: Result<Finished, tokio::task::JoinError>,
    in_flight: &mut JoinSet<Finished>,
) {
    let mut finished = vec![first];
    let until = tokio::time::Instant::now() + LINGER;
    while !in_flight.is_empty() {
        tokio::select! {
            Some(more) = in_flight.join_next() => finished.push(more),
            _ = tokio::time::sleep_until(until) => break,
        }
    }
    let mut results = Vec::new();
    let mut released = Vec::new();
    let mut panicked = None;
    for outcome in finished {
        match outcome {
            Ok((done, skipped)) => {
                results.extend(done);
                released.extend(skipped);
            }
            Err(error) if error.is_panic() => panicked = Some(error.into_panic()),
            Err(_) => {}
        }
    }
    if let Err(error) = destinations
        .store()
        .finish_deliveries(&results, &released)
        .await
    {
        tracing::error!(%error, "recording deliveries failed; they will be retried when their leases expire");
    }
    if let Some(panic) = panicked {
        std::panic::resume_unwind(panic);
    }
}

/// Splits claimed entries into per-destination batches, keeping their order.
fn by_destination(due: Vec<DueDelivery>) -> Vec<Vec<DueDelivery>> {
    let mut batches: Vec<Vec<DueDelivery>> = Vec::new();
    for entry in due {
        match batches
            .iter_mut()
            .find(|b| b[0].destination.id == entry.destination.id)
        {
            Some(batch) => batch.push(entry),
            None => batches.push(vec![entry]),
        }
    }
    batches
}

/// Sends one destination's batch in order and stops at the first failure, so a later event
/// never overtakes an earlier one. It also stops before an entry when shutdown has begun or the
/// entry could not be sent and recorded within the batch's lease, and drops a send in progress
/// when `cut` is set; entries not attempted are returned for release.
async fn deliver_in_order(
    destinations: Arc<Destinations>,
    batch: Vec<DueDelivery>,
    shutdown: watch::Receiver<bool>,
    mut cut: watch::Receiver<bool>,
) -> Finished {
    let started = Instant::now();
    let mut results = Vec::with_capacity(batch.len());
    let mut released = Vec::new();
    let mut entries = batch.into_iter();
    for mut due in entries.by_ref() {
        if *shutdown.borrow() || !within_lease(started.elapsed()) {
            released.push(due.outbox_id);
            break;
        }
        // Health as of the previous result in this batch (a success resets it).
        if let Some(last) = results.last() {
            let last: &DeliveryResult = last;
            due.destination.consecutive_failures = last.consecutive_failures;
            due.destination.failing_since = last.failing_since.clone();
        }
        let outbox_id = due.outbox_id.clone();
        let result = tokio::select! {
            result = deliver(&destinations, due) => result,
            _ = cut.wait_for(|cut| *cut) => {
                released.push(outbox_id);
                break;
            }
        };
        crate::metrics::recorded().delivery_attempted(&result.destination_id, &result.next);
        let delivered = result.next == DeliveryNext::Delivered;
        if !delivered {
            log_failure(&result);
        }
        results.push(result);
        if !delivered {
            break;
        }
    }
    released.extend(entries.map(|e| e.outbox_id));
    (results, released)
}

/// One line per failed delivery attempt for the on-call engineer (which destination, which
/// event, what the receiver said, what happens next), and an error when it pauses or disables
/// the destination. Never the payload or a header value.
fn log_failure(result: &DeliveryResult) {
    let status = result.status_code.map(i64::from).unwrap_or(0);
    let error = result.error.as_deref().unwrap_or("");
    tracing::warn!(
        destination_id = %result.destination_id,
        outbox_id = %result.outbox_id,
        attempt = result.attempt,
        status,
        error,
        next = ?result.next,
        "delivery attempt failed"
    );
    if let Some(reason) = &result.disable {
        tracing::error!(destination_id = %result.destination_id, reason = %reason, "destination disabled");
    } else if let Some(until) = result.paused_until {
        tracing::error!(
            destination_id = %result.destination_id,
            consecutive_failures = result.consecutive_failures,
            paused_until_ms = until,
            "destination paused"
        );
    }
}

async fn deliver(destinations: &Destinations, due: DueDelivery) -> DeliveryResult {
    let attempt = due.attempts + 1;
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        SEND_LIMIT,
        destinations.send(&due.destination, &due.outbox_id, due.payload.as_bytes()),
    )
    .await
    .unwrap_or_else(|_| SendOutcome {
        error: Some(format!("no answer within {} s", SEND_LIMIT.as_secs())),
        timed_out: true,
        ..SendOutcome::default()
    });
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let policy = destinations.policy();
    let dest = &due.destination;
    let mut result = DeliveryResult {
        outbox_id: due.outbox_id.clone(),
        destination_id: dest.id.clone(),
        attempt,
        status_code: outcome.status,
        duration_ms,
        error: outcome.error.clone(),
        response_body: outcome.body.clone(),
        next: DeliveryNext::Delivered,
        consecutive_failures: 0,
        failing_since: None,
        paused_until: None,
        disable: None,
    };
    if outcome.status.is_some_and(|s| (200..300).contains(&s)) {
        return result;
    }
    let now = chrono::Utc::now();
    result.consecutive_failures = dest.consecutive_failures + 1;
    result.failing_since = Some(
        dest.failing_since
            .clone()
            .unwrap_or_else(crate::store::now_text),
    );
    if outcome.status == Some(410) {
        result.next = DeliveryNext::Failed;
        result.disable = Some("the receiver answered 410 Gone".into());
        return result;
    }
    let throttled = outcome.status == Some(429) || outcome.timed_out;
    result.next = match policy.delay(attempt as usize, throttled, outcome.retry_after) {
        Some(delay) => DeliveryNext::Retry {
            at_ms: now.timestamp_millis() + delay.as_millis() as i64,
        },
        None => DeliveryNext::Failed,
    };
    if result.consecutive_failures >= BREAKER_THRESHOLD {
        result.paused_until = Some(now.timestamp_millis() + policy.pause().as_millis() as i64);
    }
    let failing_for = result
        .failing_since
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| now - t.with_timezone(&chrono::Utc));
    if failing_for.is_some_and(|d| d >= DISABLE_AFTER) {
        result.disable = Some("deliveries have failed for 5 days".into());
    }
    result
}

/// A receiver's `Retry-After` header in seconds: a finite, non-negative number (fractions
/// allowed); anything else (an HTTP date, `inf`, `-1`, `NaN`) is ignored. [`RetryPolicy::delay`]
/// clamps what it gets to [`MAX_DELAY_SECS`].
pub fn parse_retry_after(value: &str) -> Option<f64> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

/// What one HTTP attempt produced.
#[derive(Debug, Clone, Default)]
pub struct SendOutcome {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub body: Option<String>,
    pub retry_after: Option<f64>,
    pub timed_out: bool,
}

impl SendOutcome {
    pub(super) fn from_response_parts(
        status: u16,
        retry_after: Option<&str>,
        body: &[u8],
    ) -> SendOutcome {
        let mut text = String::from_utf8_lossy(&body[..body.len().min(MAX_KEPT_BODY)]).into_owned();
        if body.len() > MAX_KEPT_BODY {
            text.push('…');
        }
        SendOutcome {
            status: Some(status),
            error: (!(200..300).contains(&status)).then(|| format!("receiver answered {status}")),
            body: Some(text),
            retry_after: retry_after.and_then(parse_retry_after),
            timed_out: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_jitter_floors_and_retry_after() {
        let policy = RetryPolicy::parse("5,300").unwrap();
        let d = policy.delay(1, false, None).unwrap().as_secs_f64();
        assert!((4.0..=6.0).contains(&d), "{d}");
        assert!(policy.delay(1, true, None).unwrap().as_secs_f64() >= 60.0);
        assert!(policy.delay(1, false, Some(120.0)).unwrap().as_secs_f64() >= 120.0);
        assert!(policy.delay(3, false, None).is_none(), "retries used up");
        let fast = RetryPolicy::parse("0.05,0.05").unwrap();
        assert!(
            fast.delay(1, true, None).unwrap().as_secs_f64() <= 1.0,
            "floors scale with the schedule"
        );
        assert!(RetryPolicy::parse("5,x").is_err());
    }

    /// A batch's entries are in flight under one lease: it sends another entry only while that
    /// send (at most `SEND_LIMIT`) and recording it still end before the lease does, so a slow
    /// receiver never lets the lease expire under an entry in flight (which would hand the
    /// destination's head out again, twice and out of order).
    #[test]
    fn a_batch_never_outlives_its_lease() {
        assert!(within_lease(Duration::ZERO));
        assert!(SEND_LIMIT >= client::DELIVERY_TIMEOUT);
        let last_start = LEASE - SEND_LIMIT - RECORD_MARGIN;
        assert!(within_lease(last_start));
        assert!(!within_lease(last_start + Duration::from_millis(1)));
        assert!(
            last_start >= Duration::from_secs(20),
            "a useful batch still fits"
        );
    }

    #[test]
    fn retry_after_infinite_or_huge_is_clamped_not_a_panic() {
        let policy = RetryPolicy::parse("5,300").unwrap();
        for after in [f64::INFINITY, 1e20, 1.8e16, f64::MAX] {
            let d = policy.delay(1, false, Some(after)).unwrap();
            assert_eq!(d.as_secs_f64(), MAX_DELAY_SECS, "{after}");
        }
        let outcome = SendOutcome::from_response_parts(429, Some("inf"), b"");
        assert_eq!(outcome.retry_after, None);
        let outcome = SendOutcome::from_response_parts(429, Some(" 30 "), b"");
        assert_eq!(outcome.retry_after, Some(30.0));
        assert!(RetryPolicy::parse("").is_err());
    }
}
