//! The HTTP front door: an accept loop over hyper's HTTP/1 connections, with the limits
//! `axum::serve` does not have against clients that hold connections open.
//!
//! - **Connection cap**: a semaphore of `max_connections` permits, taken *before* `accept`. At
//!   the cap the server stops accepting, so new connections wait in the kernel's listen backlog
//!   (enlarged to the cap; the kernel drops handshakes past it) until one ends, rather than being accepted and closed
//!   at once: a burst of legitimate clients is served late instead of failed, and the timeouts
//!   below bound how long any connection can hold a permit without sending a request.
//! - **Header timeout**: a request's head must be complete within `header_timeout` of its first
//!   byte, or the connection is closed (slowloris). Hyper has a header timeout of its own, but
//!   its timer also runs while a kept-alive connection waits for the next request, which would
//!   make the idle timeout the header timeout; so both are measured here ([`Activity`]).
//! - **Idle timeout**: a connection with no request in progress that reads and writes nothing
//!   for `idle_timeout` is closed: one that never sends a byte, one kept alive between requests,
//!   and one whose client stops reading its response.
//! - **Body timeout**: a request's whole body must arrive within `body_timeout` of its head;
//!   after that the body reads fail and the request is answered 408 (`Connection: close`),
//!   whatever the handler made of the failed read.
//! - **Shutdown**: accepting stops at once, idle connections are closed, requests in flight get
//!   `shutdown` to finish; connections still open then are dropped, so the server's HTTP side
//!   ends within its deadline whatever clients do.

use axum::Router;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// The HTTP connection limits (`HOOKFLOW_HEADER_TIMEOUT_SECS` and its siblings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// From a request head's first byte to its end.
    pub header_timeout: Duration,
    /// From the end of a request's head to the end of its body.
    pub body_timeout: Duration,
    /// Nothing read or written while no request is in progress.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// What requests in flight get after the shutdown signal.
    pub shutdown: Duration,
}

/// How long the accept loop pauses after an error that is not one client's (out of file
/// descriptors, say), so it does not spin; as `axum::serve` does.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);
/// How long shutdown waits for connection tasks to let go of their sockets after telling them
/// to drop them (they do so at their next poll).
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// What the connections are told by the accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Finish what is in flight, take no new request.
    Draining,
    /// Drop the connection now.
    Closing,
}

/// Serves `router` on `listener` until `shutdown` completes, then shuts the HTTP side down
/// within `limits.shutdown` (see the module documentation).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    // The listener comes bound with the standard library's backlog (128). Connections past the
    // cap wait there, so make room for as many as are served (the kernel caps it at
    // `net.core.somaxconn`); past it the kernel drops their handshakes and clients retry.
    let backlog = i32::try_from(limits.max_connections).unwrap_or(i32::MAX);
    if let Err(error) = socket2::SockRef::from(&listener).listen(backlog) {
        tracing::warn!(%error, "could not enlarge the listen backlog");
    }
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (phase, phase_rx) = watch::channel(Phase::Serving);
    let mut builder = http1::Builder::new();
    // Hyper's own header timer would also run between kept-alive requests; `Activity` keeps
    // both the header and the idle timeout.
    builder.keep_alive(true).header_read_timeout(None);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, remote) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    tracing::error!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (router, builder, phase) = (router.clone(), builder.clone(), phase_rx.clone());
        tokio::spawn(async move {
            serve_connection(stream, remote, router, builder, limits, phase).await;
            drop(permit);
        });
    }
    // New connections are refused from here on; those in the backlog are reset.
    drop(listener);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = phase.send(Phase::Draining);
    if tokio::time::timeout(limits.shutdown, permits.acquire_many(all))
        .await
        .is_err()
    {
        let open = limits.max_connections - permits.available_permits();
        tracing::warn!(
            open,
            deadline_secs = limits.shutdown.as_secs(),
            "connections still open at the HTTP shutdown deadline are dropped"
        );
        let _ = phase.send(Phase::Closing);
        let _ = tokio::time::timeout(CLOSE_WAIT, permits.acquire_many(all)).await;
    }
}

/// Errors of one client's connection attempt, after which accepting goes on at once.
fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Serves one connection until it ends, times out or shutdown drops it.
async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    builder: http1::Builder,
    limits: HttpLimits,
    mut phase: watch::Receiver<Phase>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        io: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request| {
            handle(
                request,
                router.clone(),
                remote,
                activity.clone(),
                limits.body_timeout,
            )
        })
    };
    let mut guarded = Guarded {
        conn: Box::pin(builder.serve_connection(io, service)),
        sleep: Box::pin(tokio::time::sleep(limits.idle_timeout)),
        activity,
        limits,
        seen_head: 0,
    };
    loop {
        tokio::select! {
            ended = &mut guarded => {
                match ended {
                    Ended::Closed(Ok(())) => {}
                    Ended::Closed(Err(error)) => {
                        tracing::debug!(%remote, %error, "connection ended with an error");
                    }
                    Ended::TimedOut(what) => {
                        tracing::debug!(%remote, what, "connection closed: timed out");
                    }
                }
                return;
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = *phase.borrow_and_update();
                match now {
                    Phase::Serving => {}
                    Phase::Draining => guarded.conn.as_mut().graceful_shutdown(),
                    Phase::Closing => return,
                }
            }
        }
    }
}

/// One request: the router with the client's address and a body that fails past the body
/// deadline, answered 408 when it did.
async fn handle(
    request: http::Request<Incoming>,
    router: Router,
    remote: SocketAddr,
    activity: Arc<Activity>,
    body_timeout: Duration,
) -> Result<axum::response::Response, Infallible> {
    let _busy = Busy::start(activity);
    let expired = Arc::new(AtomicBool::new(false));
    let mut request = request.map(|body| {
        axum::body::Body::new(DeadlineBody {
            inner: body,
            deadline: Instant::now() + body_timeout,
            sleep: None,
            expired: expired.clone(),
            limit: body_timeout,
        })
    });
    request.extensions_mut().insert(ConnectInfo(remote));
    let response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if expired.load(Ordering::Relaxed) {
        return Ok(body_timeout_response(body_timeout));
    }
    Ok(response)
}

/// 408 as problem+json, closing the connection (the rest of the body is never read).
fn body_timeout_response(limit: Duration) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response = crate::api::ApiError::new(
        http::StatusCode::REQUEST_TIMEOUT,
        format!(
            "the request body did not arrive within {} s",
            limit.as_secs()
        ),
    )
    .into_response();
    response.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    response
}

/// When a connection last did something, and whether a request head or a request is under
/// way. Times are milliseconds since the connection began.
struct Activity {
    began: Instant,
    /// Last byte read or written.
    last: AtomicU64,
    /// First byte of a request head not yet complete, plus one; 0 when none is under way.
    head_started: AtomicU64,
    /// Requests handed to the router and not answered yet.
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            began: Instant::now(),
            last: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.began.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Bytes arrived: outside a request they are (part of) the next request's head.
    fn read(&self) {
        let now = self.now();
        self.last.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == 0
        {
            self.head_started.store(now + 1, Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.last.store(self.now(), Ordering::Relaxed);
    }

    /// When the connection times out, and which limit that is (`None` while a request is in
    /// flight: its body has its own deadline, the handler's time is not the client's; the time
    /// returned then is only when to look again).
    fn deadline(&self, limits: &HttpLimits) -> (Instant, Option<&'static str>) {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return (Instant::now() + limits.idle_timeout, None);
        }
        let ms = Duration::from_millis;
        match self.head_started.load(Ordering::Relaxed) {
            0 => {
                let last = self.last.load(Ordering::Relaxed);
                (self.began + ms(last) + limits.idle_timeout, Some("idle"))
            }
            started => (
                self.began + ms(started - 1) + limits.header_timeout,
                Some("request headers"),
            ),
        }
    }
}

/// Counts a request in flight while it lives.
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: Arc<Activity>) -> Busy {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.head_started.store(0, Ordering::Relaxed);
        activity.wrote();
        Busy(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.wrote();
    }
}

/// The socket, noting every byte read and written in the connection's [`Activity`].
struct Watched {
    io: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// How a connection ended.
enum Ended {
    Closed(hyper::Result<()>),
    /// Closed by the watchdog; which limit.
    TimedOut(&'static str),
}

/// A connection and its watchdog: polls the connection, then the deadline [`Activity`] gives.
/// The timer is only moved when a request head starts or ends, or when it fires (a later
/// deadline then means the connection was busy meanwhile), not at every byte.
struct Guarded<C> {
    conn: Pin<Box<C>>,
    sleep: Pin<Box<Sleep>>,
    activity: Arc<Activity>,
    limits: HttpLimits,
    /// `head_started` when the timer was last set.
    seen_head: u64,
}

impl<C: Future<Output = hyper::Result<()>>> Future for Guarded<C> {
    type Output = Ended;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended> {
        let this = &mut *self;
        if let Poll::Ready(result) = this.conn.as_mut().poll(cx) {
            return Poll::Ready(Ended::Closed(result));
        }
        let head = this.activity.head_started.load(Ordering::Relaxed);
        if head != this.seen_head {
            this.seen_head = head;
            let (deadline, _) = this.activity.deadline(&this.limits);
            this.sleep.as_mut().reset(deadline);
        }
        while this.sleep.as_mut().poll(cx).is_ready() {
            let (deadline, limit) = this.activity.deadline(&this.limits);
            if let Some(limit) = limit
                && deadline <= Instant::now()
            {
                return Poll::Ready(Ended::TimedOut(limit));
            }
            this.sleep.as_mut().reset(deadline);
        }
        Poll::Pending
    }
}

/// A request body that fails once its deadline has passed, and says so in `expired`.
struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    /// Created the first time the body is waited for (most bodies arrive with their head).
    sleep: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
    limit: Duration,
}

/// The error a body read past its deadline ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs())]
struct BodyTimeout(Duration);

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = &mut *self;
        if this.expired.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(BodyTimeout(this.limit).into())));
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(BodyTimeout(this.limit).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HttpLimits = HttpLimits {
        header_timeout: Duration::from_millis(200),
        body_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(400),
        max_connections: 4,
        shutdown: Duration::from_secs(1),
    };

    #[tokio::test]
    async fn a_connection_is_idle_until_a_head_starts_then_the_header_limit_applies() {
        let activity = Arc::new(Activity::new());
        let began = activity.began;
        assert_eq!(
            activity.deadline(&LIMITS),
            (began + LIMITS.idle_timeout, Some("idle"))
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        activity.read();
        let (deadline, limit) = activity.deadline(&LIMITS);
        assert_eq!(limit, Some("request headers"));
        assert!(deadline >= began + Duration::from_millis(50) + LIMITS.header_timeout);
        assert!(deadline <= Instant::now() + LIMITS.header_timeout);
        tokio::time::sleep(Duration::from_millis(50)).await;
        activity.read();
        assert_eq!(
            activity.deadline(&LIMITS),
            (deadline, Some("request headers")),
            "more bytes of the same head do not move the deadline (slowloris)"
        );
    }

    #[tokio::test]
    async fn a_request_in_flight_has_no_connection_deadline_and_idles_after_it() {
        let activity = Arc::new(Activity::new());
        activity.read();
        let busy = Busy::start(activity.clone());
        assert_eq!(activity.head_started.load(Ordering::Relaxed), 0);
        activity.read(); // its body
        assert_eq!(activity.deadline(&LIMITS).1, None);
        assert_eq!(activity.head_started.load(Ordering::Relaxed), 0);
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(busy);
        let (deadline, limit) = activity.deadline(&LIMITS);
        assert_eq!(limit, Some("idle"));
        assert!(deadline >= activity.began + Duration::from_millis(20) + LIMITS.idle_timeout);
    }

    #[tokio::test]
    async fn the_watchdog_closes_a_silent_connection_at_the_idle_timeout() {
        let activity = Arc::new(Activity::new());
        let guarded = Guarded {
            conn: Box::pin(std::future::pending::<hyper::Result<()>>()),
            sleep: Box::pin(tokio::time::sleep(LIMITS.idle_timeout)),
            activity: activity.clone(),
            limits: LIMITS,
            seen_head: 0,
        };
        let started = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            activity.wrote(); // an answer written: idle counts from here
        });
        match guarded.await {
            Ended::TimedOut(limit) => assert_eq!(limit, "idle"),
            Ended::Closed(_) => panic!("the connection never ends by itself"),
        }
        assert!(started.elapsed() >= Duration::from_millis(600));
    }

    #[tokio::test]
    async fn the_watchdog_cuts_a_head_at_the_header_timeout_before_the_idle_one() {
        let activity = Arc::new(Activity::new());
        let guarded = Guarded {
            conn: Box::pin(std::future::pending::<hyper::Result<()>>()),
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
            activity: activity.clone(),
            limits: LIMITS,
            seen_head: 0,
        };
        activity.read();
        let limit = match tokio::time::timeout(Duration::from_secs(60), guarded).await {
            Ok(Ended::TimedOut(limit)) => limit,
            Ok(Ended::Closed(_)) => panic!("the connection never ends by itself"),
            Err(_) => panic!("the header deadline was not applied"),
        };
        assert_eq!(limit, "request headers");
    }
}
