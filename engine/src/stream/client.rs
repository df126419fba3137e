//! The HTTP client for deliveries: HTTPS only, no redirects, and every connection's addresses
//! checked for private ranges at resolution time (so DNS rebinding between save and send does
//! not help) — unless `HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS=1`.

use crate::netguard;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long one delivery may take.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);

struct GuardedResolver {
    allow_local: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_local = self.allow_local;
        Box::pin(async move {
            let addrs = netguard::resolve_public(name.as_str(), 0, allow_local)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { e.into() })?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// A client that enforces the policy on every connection.
pub fn client(allow_local: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(DELIVERY_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .dns_resolver(Arc::new(GuardedResolver { allow_local }))
        .user_agent(concat!("hookflow/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the delivery HTTP client builds")
}

/// Checks a destination URL before saving and before each send: scheme, and IP literals (which
/// never reach the resolver). Names are checked by the resolver when connecting; at save time
/// `resolve` also resolves them now so a bad URL is refused early.
pub async fn check_url(
    url: &str,
    allow_local: bool,
    resolve: bool,
) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_local => {}
        "http" => {
            return Err(format!(
                "must be https (plain http only with {}=1)",
                netguard::DEV_ALLOW_LOCAL_ENV
            ));
        }
        other => return Err(format!("scheme {other} is not supported; use https")),
    }
    let host = parsed
        .host_str()
        .ok_or("has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not contain credentials; use a custom header".into());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        if !allow_local && netguard::is_private(ip) {
            return Err(format!(
                "points at the private address {ip}, which is refused"
            ));
        }
    } else if resolve {
        let port = parsed.port_or_known_default().unwrap_or(443);
        netguard::resolve_public(&host, port, allow_local).await?;
    }
    Ok(parsed)
}
