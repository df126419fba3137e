//! Outbound HTTP for plugins (`wasi:http/outgoing-handler`), deny by default: a request goes out
//! only when its scheme, host and port match one of the step's `allowedHosts`, only over HTTPS
//! (plain HTTP and private addresses only in development mode), and only after the host's DNS
//! answer has been checked for private addresses. The connection then goes to exactly one of the
//! checked addresses ([`send_to_checked`]): the name is never resolved a second time, so a DNS
//! answer that changes between the check and the connection (DNS rebinding) cannot steer the
//! request to a private address. TLS still verifies the certificate for the original name (and
//! sends it as SNI), and the `Host` header keeps it. Redirects are never followed (the guest sees
//! the 3xx and any new request is checked again). Times and response sizes are capped.

use crate::flow::hosts::{HostPattern, default_port};
use crate::netguard;
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Refusals a step's trace lists one by one; past them they are only counted, so a plugin
/// calling in a loop cannot grow the host's memory with messages.
const MAX_REFUSALS_KEPT: usize = 20;
/// Largest response body a plugin may read.
const MAX_RESPONSE_BYTES: usize = 8 << 20;
/// Largest write into an outgoing body, which buffers one such chunk until it is sent: no more
/// than the host-memory account charges per entry (wasmtime's default is 1 MiB, which a plugin
/// could leave buffered in thousands of bodies it never sends).
const BODY_CHUNK_BYTES: usize = super::budget::ENTRY_BYTES;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
const BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(30);

/// Resolves `host:port` and checks every address against the private-address policy (the last
/// argument allows private ones): the addresses a request may connect to. `None` in
/// [`HttpPolicy`] is [`netguard::resolve_public`]; tests put a stand-in DNS answer here.
type Resolver = Arc<
    dyn Fn(String, u16, bool) -> BoxFuture<'static, Result<Vec<SocketAddr>, String>> + Send + Sync,
>;

/// The TLS client settings of plugin requests: the Mozilla roots of `webpki-roots` (as
/// wasmtime-wasi-http's default sender), ring as the provider, built once per process.
fn default_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            tls_config(roots)
        })
        .clone()
}

fn tls_config(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// The step's network grant and the record of what it refused.
pub struct HttpPolicy {
    allowed: Arc<Vec<HostPattern>>,
    allow_local: bool,
    refusals: Arc<Mutex<Refusals>>,
    resolve: Option<Resolver>,
    tls: Arc<rustls::ClientConfig>,
}

impl HttpPolicy {
    pub fn new(allowed: Arc<Vec<HostPattern>>, allow_local: bool) -> HttpPolicy {
        HttpPolicy {
            allowed,
            allow_local,
            refusals: Arc::default(),
            resolve: None,
            tls: default_tls(),
        }
    }

    /// Why requests were refused, for the run trace: the first [`MAX_REFUSALS_KEPT`], then how
    /// many more there were.
    pub fn take_refusals(&self) -> Vec<String> {
        let taken = std::mem::take(&mut *self.refusals.lock().expect("refusals poisoned"));
        let mut kept = taken.kept;
        if taken.more > 0 {
            kept.push(format!("{} more requests refused", taken.more));
        }
        kept
    }

    /// Refuses a request of a step that has no `allowedHosts` (`target` is its
    /// `scheme://host:port`), without resolving, connecting or spawning anything: what the
    /// outgoing handler linked for such steps ([`add_refusing_handler`]) answers.
    pub fn refuse_without_hosts(&self, target: &str) -> String {
        let message = format!("HTTP request to {target} refused: this step has no allowedHosts");
        record(&self.refusals, &message);
        message
    }

    fn check(&self, uri: &http::Uri) -> Result<(String, u16), String> {
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri
            .host()
            .ok_or_else(|| format!("HTTP request to {uri} refused: no host"))?
            .to_string();
        let port = uri.port_u16().unwrap_or_else(|| default_port(&scheme));
        let target = format!("{scheme}://{host}:{port}");
        if self.allowed.is_empty() {
            // Not reached by plugins (their steps without allowedHosts are linked to
            // `add_refusing_handler`); kept so the policy stands on its own.
            return Err(format!(
                "HTTP request to {target} refused: this step has no allowedHosts"
            ));
        }
        if !self.allowed.iter().any(|p| p.matches(&scheme, &host, port)) {
            return Err(format!(
                "HTTP request to {target} refused: not in the step's allowedHosts"
            ));
        }
        if scheme != "https" && !self.allow_local {
            return Err(format!(
                "HTTP request to {target} refused: only https is allowed (set {}=1 for local development)",
                netguard::DEV_ALLOW_LOCAL_ENV
            ));
        }
        Ok((host, port))
    }
}

type Sent = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendResult = Result<(http::Response<WasiBody>, Sent), HttpError>;

impl WasiHttpHooks for HttpPolicy {
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        BODY_CHUNK_BYTES
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Sent,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        let checked = self.check(request.uri());
        let refusals = self.refusals.clone();
        let allow_local = self.allow_local;
        let resolve = self.resolve.clone();
        let tls = self.tls.clone();
        Box::new(async move {
            let refuse = |message: String| {
                tracing::info!(%message, "plugin HTTP request refused");
                record(&refusals, &message);
                // The message reaches the guest (wasi:http internal-error), so a plugin can say
                // exactly why: not in allowedHosts, not https, or a private address.
                HttpError::InternalError(Some(message))
            };
            let (host, port) = checked.map_err(refuse)?;
            let addresses = match resolve {
                None => netguard::resolve_public(&host, port, allow_local).await,
                Some(resolve) => resolve(host.clone(), port, allow_local).await,
            }
            .map_err(|e| refuse(format!("HTTP request to {host}:{port} refused: {e}")))?;
            let capped =
                |given: Option<Duration>, cap: Duration| Some(given.map_or(cap, |g| g.min(cap)));
            let options = RequestOptions {
                connect_timeout: capped(options.and_then(|o| o.connect_timeout), CONNECT_TIMEOUT),
                first_byte_timeout: capped(
                    options.and_then(|o| o.first_byte_timeout),
                    FIRST_BYTE_TIMEOUT,
                ),
                between_bytes_timeout: capped(
                    options.and_then(|o| o.between_bytes_timeout),
                    BETWEEN_BYTES_TIMEOUT,
                ),
            };
            let (response, io) = send_to_checked(request, &host, &addresses, tls, options).await?;
            let response = response.map(|body| {
                http_body_util::Limited::new(body, MAX_RESPONSE_BYTES)
                    .map_err(|e| match e.downcast::<HttpError>() {
                        Ok(inner) => *inner,
                        Err(_) => HttpError::HttpResponseBodySize(Some(MAX_RESPONSE_BYTES as u64)),
                    })
                    .boxed_unsync()
            });
            Ok((response, Box::new(io) as Sent))
        })
    }
}

/// What a step's policy refused: the first messages and a count of the rest.
#[derive(Default)]
struct Refusals {
    kept: Vec<String>,
    more: usize,
}

fn record(refusals: &Mutex<Refusals>, message: &str) {
    let mut refusals = refusals.lock().expect("refusals poisoned");
    if refusals.kept.len() < MAX_REFUSALS_KEPT {
        refusals.kept.push(message.to_string());
    } else {
        refusals.more += 1;
    }
}

/// The `wasi:http/outgoing-handler` version the refusing handler is defined at; the linker
/// serves imports of every semver-compatible 0.2.x with it, as it does the real one.
const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler@0.2.12";

/// Defines `wasi:http/outgoing-handler.handle` as a refusal, for the linker of steps without
/// `allowedHosts`: they are not linked to the real outgoing handler at all. The refusal takes
/// the request (and its options) out of the step's resource table, records one message and
/// answers the guest `internal-error` with it, so a plugin (a script's `fetch`) sees an
/// ordinary error naming the refused host; nothing is resolved, connected, spawned or kept
/// per call. (A trapping stub would link too, but a trap cannot be caught by the plugin and
/// cannot name the host, which the refused steps' traces do.)
pub fn add_refusing_handler(
    linker: &mut wasmtime::component::Linker<super::host::HostState>,
) -> wasmtime::Result<()> {
    use wasmtime::component::Val;
    linker
        .instance(OUTGOING_HANDLER)?
        .func_new("handle", |mut store, _ty, params, results| {
            let request = match params.first() {
                Some(Val::Resource(request)) => request.try_into_resource(&mut store)?,
                _ => wasmtime::bail!("outgoing-handler.handle called without a request"),
            };
            let options = match params.get(1) {
                Some(Val::Option(Some(options))) => match &**options {
                    Val::Resource(options) => Some(options.try_into_resource(&mut store)?),
                    _ => None,
                },
                _ => None,
            };
            let message = store.data_mut().refuse_request(request, options)?;
            let error = Val::Variant(
                "internal-error".into(),
                Some(Box::new(Val::Option(Some(Box::new(Val::String(message)))))),
            );
            results[0] = Val::Result(Err(Some(Box::new(error))));
            Ok(())
        })
}

/// `scheme://host:port` of a request a guest built, as refusals name it.
pub fn request_target(
    scheme: Option<&wasmtime_wasi_http::p2::bindings::http::types::Scheme>,
    authority: Option<&str>,
) -> String {
    use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
    let scheme = match scheme {
        Some(Scheme::Http) => "http",
        Some(Scheme::Https) | None => "https",
        Some(Scheme::Other(other)) => other.as_str(),
    }
    .to_ascii_lowercase();
    match authority.and_then(|a| a.parse::<http::uri::Authority>().ok()) {
        Some(authority) => {
            let port = authority
                .port_u16()
                .unwrap_or_else(|| default_port(&scheme));
            format!("{scheme}://{}:{port}", authority.host())
        }
        None => format!("{scheme}://{}", authority.unwrap_or("(no host)")),
    }
}

/// A connection a request can go over: TCP, or TLS over TCP.
trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

/// The TLS name of `host` as it appears in a URI (`[::1]` for IPv6 literals).
fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, HttpError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip.into());
    }
    Ok(rustls::pki_types::ServerName::try_from(bare.to_string())?)
}

/// Sends `request` over a connection to one of `addresses` (those [`netguard`] checked, tried in
/// order within the connect timeout), never resolving the request's host again. For `https`,
/// TLS verifies the certificate for `host` with `tls` and sends `host` as SNI; the request keeps
/// its `Host` header. Otherwise as `wasmtime_wasi_http::default_send_request`: HTTP/1.1, the
/// same timeouts, the returned future finishes the connection's I/O.
async fn send_to_checked(
    mut request: http::Request<WasiBody>,
    host: &str,
    addresses: &[SocketAddr],
    tls: Arc<rustls::ClientConfig>,
    options: RequestOptions,
) -> Result<
    (
        http::Response<TimedBody>,
        impl Future<Output = Result<(), HttpError>> + Send + 'static,
    ),
    HttpError,
> {
    let use_tls = request.uri().scheme() == Some(&http::uri::Scheme::HTTPS);
    let connect_timeout = options.connect_timeout.unwrap_or(CONNECT_TIMEOUT);
    let first_byte_timeout = options.first_byte_timeout.unwrap_or(FIRST_BYTE_TIMEOUT);
    let between_bytes_timeout = options
        .between_bytes_timeout
        .unwrap_or(BETWEEN_BYTES_TIMEOUT)
        // Tokio panics on an interval of zero.
        .max(Duration::from_nanos(1));
    let connect = async {
        let mut last = None;
        for address in addresses {
            match TcpStream::connect(address).await {
                Ok(stream) => return Ok(stream),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no checked address to connect to")))
    };
    let tcp = tokio::time::timeout(connect_timeout, connect)
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(HttpError::Connect)?;
    let stream: Box<dyn Stream> = if use_tls {
        let name = server_name(host)?;
        let tls = tokio_rustls::TlsConnector::from(tls).connect(name, tcp);
        Box::new(
            tokio::time::timeout(connect_timeout, tls)
                .await
                .map_err(|_| HttpError::ConnectionTimeout)?
                .map_err(HttpError::Tls)?,
        )
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;
    // The request line carries only the path: scheme and authority go to proxies alone.
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(request.uri().path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let send = async move {
        let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
            .await
            .map_err(|_| HttpError::ConnectionReadTimeout)??;
        let mut timeout = tokio::time::interval(between_bytes_timeout);
        timeout.reset();
        Ok::<_, HttpError>(response.map(|incoming| TimedBody { incoming, timeout }))
    };
    let mut send = pin!(send);
    let mut conn = Some(conn);
    // Wait for the response while driving the connection's I/O.
    let response = std::future::poll_fn(|cx| match send.as_mut().poll(cx) {
        Poll::Ready(result) => Poll::Ready(result),
        Poll::Pending => {
            let Some(running) = conn.as_mut() else {
                return Poll::Pending;
            };
            let finished = ready!(Pin::new(running).poll(cx));
            conn = None;
            match finished {
                Ok(()) => send.as_mut().poll(cx),
                Err(error) => Poll::Ready(Err(HttpError::from(error))),
            }
        }
    })
    .await?;
    Ok((response, async move {
        let Some(conn) = conn else {
            return Ok(());
        };
        conn.await.map_err(|error| {
            if error.is_timeout() {
                HttpError::HttpResponseTimeout
            } else {
                error.into()
            }
        })
    }))
}

/// A response body that fails when no data arrives for the between-bytes timeout.
struct TimedBody {
    incoming: Incoming,
    timeout: tokio::time::Interval,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(if error.is_timeout() {
                HttpError::HttpResponseTimeout
            } else {
                error.into()
            }))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    // A test CA and a leaf certificate for `rebind.invalid` signed by it (ECDSA P-256, valid
    // until 2126), made with openssl; `.invalid` never resolves, so only a checked address
    // can reach the server.
    const CA: &[u8] = include_bytes!("testdata/ca.der");
    const LEAF: &[u8] = include_bytes!("testdata/leaf.der");
    const LEAF_KEY: &[u8] = include_bytes!("testdata/leaf.key.der");

    /// A policy for `allowed` whose DNS answer for every name is `answer`.
    fn policy(allowed: &str, answer: Vec<SocketAddr>) -> HttpPolicy {
        let mut policy =
            HttpPolicy::new(Arc::new(vec![HostPattern::parse(allowed).unwrap()]), true);
        policy.resolve = Some(Arc::new(move |_, _, _| {
            let answer = answer.clone();
            Box::pin(async move { Ok(answer) })
        }));
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(CA.to_vec())).unwrap();
        policy.tls = tls_config(roots);
        policy
    }

    /// Reads one request head from `stream`, answers `200 {body}` and returns the head.
    async fn answer_once<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, body: &str) -> String {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed before the request head");
            head.extend_from_slice(&buf[..n]);
        }
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).await.unwrap();
        stream.shutdown().await.ok();
        String::from_utf8(head).unwrap().to_ascii_lowercase()
    }

    /// Sends a GET to `uri` through the policy's hook, as wasmtime-wasi-http would.
    async fn get(policy: &mut HttpPolicy, uri: &str) -> Result<String, HttpError> {
        let uri: http::Uri = uri.parse().unwrap();
        let request = http::Request::builder()
            .uri(uri.clone())
            .header(http::header::HOST, uri.authority().unwrap().as_str())
            .body(
                http_body_util::Empty::<Bytes>::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .unwrap();
        let sent = policy.send_request(request, None, Box::new(async { Ok(()) }));
        let (response, io) = Box::into_pin(sent).await?;
        tokio::spawn(Box::into_pin(io));
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8(body.to_vec()).unwrap())
    }

    /// Finding: the hook checked one DNS answer, then the default sender resolved the name again
    /// and connected wherever that second answer pointed (DNS rebinding). Here the checked answer
    /// for `localhost` is 127.0.0.2 while the system resolver says 127.0.0.1, where a second
    /// server waits on the same port: the request must reach the checked one.
    #[tokio::test]
    async fn plugin_http_connects_to_the_checked_address_not_a_second_dns_answer() {
        let (checked, rebound, port) = loop {
            let checked = TcpListener::bind("127.0.0.2:0").await.unwrap();
            let port = checked.local_addr().unwrap().port();
            if let Ok(rebound) = TcpListener::bind(("127.0.0.1", port)).await {
                break (checked, rebound, port);
            }
        };
        let rebound = tokio::spawn(async move {
            let (stream, _) = rebound.accept().await.unwrap();
            answer_once(stream, "rebound").await
        });
        let server = tokio::spawn(async move {
            let (stream, _) = checked.accept().await.unwrap();
            answer_once(stream, "checked").await
        });
        // A closed port first: every checked address is tried in order, none other.
        let closed = TcpListener::bind("127.0.0.2:0").await.unwrap();
        let closed_address = closed.local_addr().unwrap();
        drop(closed);
        let answer = vec![closed_address, SocketAddr::from(([127, 0, 0, 2], port))];
        let mut policy = policy(&format!("http://localhost:{port}"), answer);
        let body = get(&mut policy, &format!("http://localhost:{port}/hook"))
            .await
            .unwrap();
        assert_eq!(body, "checked");
        let head = server.await.unwrap();
        assert!(head.starts_with("get /hook http/1.1\r\n"), "{head}");
        assert!(
            head.contains(&format!("\r\nhost: localhost:{port}\r\n")),
            "the Host header keeps the name: {head}"
        );
        assert!(!rebound.is_finished(), "the second DNS answer was used");
        rebound.abort();
        assert!(policy.take_refusals().is_empty());
    }

    /// Over https the connection goes to the checked address too, while TLS sends the original
    /// name as SNI and verifies the certificate for it (not for the address).
    #[tokio::test]
    async fn plugin_https_connects_to_the_checked_address_and_verifies_the_name() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let port = address.port();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(LEAF.to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(LEAF_KEY.to_vec())),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            // The good request, then the one whose name the certificate does not cover.
            for _ in 0..2 {
                let (stream, _) = listener.accept().await.unwrap();
                match acceptor.accept(stream).await {
                    Ok(tls) => {
                        let sni = tls.get_ref().1.server_name().map(str::to_string);
                        seen.push((sni, answer_once(tls, "checked").await));
                    }
                    Err(_) => seen.push((None, "handshake failed".into())),
                }
            }
            seen
        });

        let mut good = policy(&format!("https://rebind.invalid:{port}"), vec![address]);
        let body = get(&mut good, &format!("https://rebind.invalid:{port}/x?y=1"))
            .await
            .unwrap();
        assert_eq!(body, "checked");

        let mut wrong = policy(&format!("https://other.invalid:{port}"), vec![address]);
        let refused = get(&mut wrong, &format!("https://other.invalid:{port}/"))
            .await
            .unwrap_err();
        assert!(matches!(refused, HttpError::Tls(_)), "{refused:?}");

        let seen = server.await.unwrap();
        assert_eq!(seen[0].0.as_deref(), Some("rebind.invalid"), "SNI");
        assert!(
            seen[0].1.starts_with("get /x?y=1 http/1.1\r\n"),
            "{}",
            seen[0].1
        );
        assert!(
            seen[0]
                .1
                .contains(&format!("\r\nhost: rebind.invalid:{port}\r\n")),
            "{}",
            seen[0].1
        );
        assert_eq!(seen[1].1, "handshake failed");
    }

    #[test]
    fn refusals_past_the_first_twenty_are_only_counted() {
        let policy = HttpPolicy::new(Arc::default(), false);
        for i in 0..1000 {
            let message = policy.refuse_without_hosts(&format!("https://h{i}.example:443"));
            assert_eq!(
                message,
                format!(
                    "HTTP request to https://h{i}.example:443 refused: this step has no allowedHosts"
                )
            );
        }
        let refusals = policy.take_refusals();
        assert_eq!(refusals.len(), MAX_REFUSALS_KEPT + 1);
        assert!(refusals[0].contains("h0.example"));
        assert!(refusals[MAX_REFUSALS_KEPT - 1].contains("h19.example"));
        assert_eq!(refusals[MAX_REFUSALS_KEPT], "980 more requests refused");
        assert!(policy.take_refusals().is_empty(), "taken once");
    }

    #[test]
    fn refused_requests_are_named_by_scheme_host_and_port() {
        use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
        let target = |scheme, authority| request_target(scheme, authority);
        assert_eq!(target(None, Some("a.example")), "https://a.example:443");
        assert_eq!(
            target(Some(&Scheme::Http), Some("a.example")),
            "http://a.example:80"
        );
        assert_eq!(
            target(Some(&Scheme::Https), Some("user@a.example:8443")),
            "https://a.example:8443"
        );
        assert_eq!(target(Some(&Scheme::Http), None), "http://(no host)");
    }

    #[test]
    fn tls_names_of_hosts_and_addresses() {
        assert_eq!(
            server_name("example.com").unwrap(),
            rustls::pki_types::ServerName::try_from("example.com").unwrap()
        );
        assert_eq!(
            server_name("[2001:db8::1]").unwrap(),
            rustls::pki_types::ServerName::from("2001:db8::1".parse::<IpAddr>().unwrap())
        );
        assert!(server_name("bad name").is_err());
    }
}
