//! Outbound-connection policy shared by plugin HTTP and event destinations: which addresses are
//! private (refused unless `HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS=1`), checked after DNS
//! resolution so a public-looking name that points inside the network is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The environment switch that lets development setups reach loopback, private ranges and
/// plain `http://`.
pub const DEV_ALLOW_LOCAL_ENV: &str = "HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS";

/// The development switch for the whole process: 0 not decided yet, 1 off, 2 on. `hookflow
/// serve` sets it from its validated `ServeConfig` ([`set_dev_allow_local`]) before it builds
/// anything that connects out; processes that never set it (local CLI commands) read the
/// environment once, at the first use. One value per process, so deliveries and plugin HTTP
/// cannot disagree.
static DEV_ALLOW_LOCAL: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Whether the development switch is on.
pub fn dev_allow_local() -> bool {
    use std::sync::atomic::Ordering;
    match DEV_ALLOW_LOCAL.load(Ordering::Acquire) {
        0 => {
            let from_env = encode(env_allows_local(std::env::var(DEV_ALLOW_LOCAL_ENV).ok()));
            // A concurrent `set_dev_allow_local` wins over the environment.
            match DEV_ALLOW_LOCAL.compare_exchange(0, from_env, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => from_env == 2,
                Err(set) => set == 2,
            }
        }
        state => state == 2,
    }
}

/// Installs the server's setting (`--dev-allow-local-destinations`); called once at start,
/// before the executor and the delivery client are built.
pub fn set_dev_allow_local(allow: bool) {
    DEV_ALLOW_LOCAL.store(encode(allow), std::sync::atomic::Ordering::Release);
}

fn encode(allow: bool) -> u8 {
    if allow { 2 } else { 1 }
}

/// The environment's spelling of "on" for CLI processes, which have no `ServeConfig`: the same
/// words `hookflow serve` accepts as true.
fn env_allows_local(value: Option<String>) -> bool {
    value.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "y" | "on" | "t"
        )
    })
}

/// True for addresses a server must not be tricked into calling: everything in IANA's IPv4 and
/// IPv6 special-purpose registries that is not globally reachable (loopback, private, link-local,
/// carrier-grade NAT, protocol assignments, documentation, benchmarking, multicast, reserved,
/// unique-local, site-local, discard, Teredo, ORCHID, SRv6), and every IPv6 form that carries an
/// IPv4 address (mapped, translated, IPv4-compatible, NAT64, 6to4) when that IPv4 address is one
/// of them.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => is_private_v6(v6),
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network" 0.0.0.0/8
        || (a == 100 && (64..128).contains(&b)) // shared address space 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0.0/24
        || (a == 192 && b == 31 && c == 196) // AS112-v4 192.31.196.0/24
        || (a == 192 && b == 52 && c == 193) // AMT 192.52.193.0/24
        || (a == 192 && b == 88 && c == 99) // deprecated 6to4 relay anycast 192.88.99.0/24
        || (a == 192 && b == 175 && c == 48) // direct delegation AS112 192.175.48.0/24
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18.0.0/15
        || a >= 240 // reserved 240.0.0.0/4 and broadcast
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_private_v4(v4);
    }
    let s = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || s[0..4] == [0, 0, 0, 0] // the rest of ::/64 (IPv4-compatible ::a.b.c.d, deprecated)
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        || s[0..4] == [0x100, 0, 0, 0] // discard-only 100::/64
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64 64:ff9b:1::/48
        || (s[0] == 0x2001 && s[1] < 0x200) // IETF protocol assignments 2001::/23 (Teredo, benchmarking, ORCHID, ...)
        || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation 2001:db8::/32
        || (s[0] & 0xfff0) == 0x3ff0 // documentation 3fff::/20
        || s[0] == 0x5f00 // SRv6 SIDs 5f00::/16
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped `::ffff:a.b.c.d`, IPv4-translated
/// `::ffff:0:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d` and 6to4
/// `2002:aabb:ccdd::/48`. Connecting to one of those reaches that IPv4 address (through the
/// kernel, a NAT64 gateway or a 6to4 relay), so it is judged as that address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail()),
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some(tail()),
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Some(tail()),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail()),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// Cloud metadata services and the link-local ranges they live in (169.254.169.254,
/// `fd00:ec2::254`, `fe80::/10`): refused even in development mode, where private addresses are
/// otherwise allowed, because a flow that reaches them can read the host's cloud credentials.
pub fn is_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            embedded_v4(v6).is_some_and(|v4| v4.is_link_local())
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
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
    if let Some(bad) = addrs.iter().find(|a| is_metadata(a.ip())) {
        return Err(format!(
            "{bare} resolves to the link-local address {}, which is always refused (cloud metadata lives there)",
            bad.ip()
        ));
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
    fn environment_words_for_cli_processes() {
        for on in ["1", "true", "TRUE", "yes", "on"] {
            assert!(env_allows_local(Some(on.into())), "{on}");
        }
        for off in ["0", "false", "no", "off", ""] {
            assert!(!env_allows_local(Some(off.into())), "{off}");
        }
        assert!(!env_allows_local(None));
    }

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

    /// Regression (hardening II): every IPv6 form of a private IPv4 address, and the rest of
    /// the special-purpose registries, are refused; their public counterparts are not.
    #[test]
    fn ipv6_forms_of_private_ipv4_and_special_purpose_ranges_are_private() {
        for ip in [
            "64:ff9b::a00:1",    // NAT64 of 10.0.0.1
            "64:ff9b::7f00:1",   // NAT64 of 127.0.0.1
            "64:ff9b:1::1",      // local-use NAT64
            "2002:a00:1::1",     // 6to4 of 10.0.0.1
            "2002:a9fe:a9fe::1", // 6to4 of 169.254.169.254
            "::a00:1",           // IPv4-compatible 10.0.0.1
            "::7f00:1",          // IPv4-compatible 127.0.0.1
            "::ffff:0:a00:1",    // IPv4-translated 10.0.0.1
            "::ffff:10.0.0.1",   // IPv4-mapped
            "fec0::1",           // site-local
            "100::1",            // discard-only
            "2001::1",           // Teredo
            "2001:db8::1",       // documentation
            "3fff::1",           // documentation
            "2001:2::1",         // benchmarking
            "5f00::1",           // SRv6
            "192.0.0.8",         // IETF protocol assignments
            "192.0.0.170",
            "192.88.99.1",
            "192.31.196.1",
            "192.52.193.1",
            "192.175.48.1",
            "198.51.100.7",
            "203.0.113.7",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "64:ff9b::5db8:d822", // NAT64 of 93.184.216.34
            "2002:5db8:d822::1",  // 6to4 of 93.184.216.34
            "2a00:1450:4001::1",
            "192.0.1.1",
        ] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    /// Regression (hardening II): the development switch never opens cloud metadata.
    #[tokio::test]
    async fn metadata_addresses_are_refused_even_in_development() {
        for host in [
            "169.254.169.254",
            "[fd00:ec2::254]",
            "[fe80::1]",
            "[::ffff:169.254.169.254]",
        ] {
            let err = resolve_public(host, 80, true).await.unwrap_err();
            assert!(err.contains("always refused"), "{host}: {err}");
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
