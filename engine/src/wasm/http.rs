//! Outbound HTTP for plugins (`wasi:http/outgoing-handler`), deny by default: a request goes out
//! only when its scheme, host and port match one of the step's `allowedHosts`, only over HTTPS
//! (plain HTTP and private addresses only in development mode), and only after the host's DNS
//! answer has been checked for private addresses. Redirects are never followed (the guest sees
//! the 3xx and any new request is checked again). Times and response sizes are capped.

use crate::flow::hosts::{HostPattern, default_port};
use crate::netguard;
use http_body_util::BodyExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Largest response body a plugin may read.
const MAX_RESPONSE_BYTES: usize = 8 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
const BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(30);

/// The step's network grant and the record of what it refused.
pub struct HttpPolicy {
    allowed: Arc<Vec<HostPattern>>,
    allow_local: bool,
    refusals: Arc<Mutex<Vec<String>>>,
}

impl HttpPolicy {
    pub fn new(allowed: Arc<Vec<HostPattern>>, allow_local: bool) -> HttpPolicy {
        HttpPolicy {
            allowed,
            allow_local,
            refusals: Arc::default(),
        }
    }

    /// Why requests were refused, for the run trace.
    pub fn take_refusals(&self) -> Vec<String> {
        std::mem::take(&mut *self.refusals.lock().expect("refusals poisoned"))
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
        Box::new(async move {
            let refuse = |message: String| {
                tracing::info!(%message, "plugin HTTP request refused");
                refusals
                    .lock()
                    .expect("refusals poisoned")
                    .push(message.clone());
                // The message reaches the guest (wasi:http internal-error), so a plugin can say
                // exactly why: not in allowedHosts, not https, or a private address.
                HttpError::InternalError(Some(message))
            };
            let (host, port) = checked.map_err(refuse)?;
            netguard::resolve_public(&host, port, allow_local)
                .await
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
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
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
