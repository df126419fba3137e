//! Outbound-connection policy shared by plugin HTTP and event destinations: which addresses are
//! private (refused unless `HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS=1`), checked after DNS
//! resolution so a public-looking name that points inside the network is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The environment switch that lets development setups reach loopback, private ranges and
/// plain `http://`.
pub const DEV_ALLOW_LOCAL_ENV: &str = "HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS";

/// Whether the development switch is on.
pub fn dev_allow_local() -> bool {
    std::env::var(DEV_ALLOW_LOCAL_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// True for addresses a server must not be tricked into calling: loopback, private, link-local,
/// carrier-grade NAT, unspecified, broadcast, multicast, documentation and IPv6 unique-local.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || v6 == Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0) // NAT64 well-known prefix base
        }
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // 100.64.0.0/10
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18.0.0/15
        || a >= 240
}

/// Resolves `host:port` and refuses it when any address is private (unless `allow_private`).
/// Returns the addresses so the caller can connect to exactly what was checked.
pub async fn resolve_public(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| format!("cannot resolve {bare}: {e}"))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("{bare} resolves to no address"));
    }
    if !allow_private && let Some(bad) = addrs.iter().find(|a| is_private(a.ip())) {
        return Err(format!(
            "{bare} resolves to the private address {}, which is refused (set {DEV_ALLOW_LOCAL_ENV}=1 for local development)",
            bad.ip()
        ));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn names_are_checked_after_resolution() {
        let err = resolve_public("localhost", 80, false).await.unwrap_err();
        assert!(err.contains("private address"), "{err}");
        assert!(resolve_public("localhost", 80, true).await.is_ok());
        assert!(resolve_public("127.0.0.1", 80, false).await.is_err());
    }
}
