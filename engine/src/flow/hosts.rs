//! `allowedHosts` patterns: which URLs a step may call. A pattern is `scheme://host[:port]`
//! where the host may start with `*.` to allow every subdomain (not the bare domain). The port
//! defaults to the scheme's (443 for https, 80 for http).

use std::fmt;

/// One parsed `allowedHosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    pub scheme: String,
    /// Lower-case host; for wildcards, the part after `*.`.
    pub host: String,
    pub wildcard: bool,
    pub port: u16,
}

impl HostPattern {
    /// Parses `https://hooks.slack.com` or `https://*.example.com:8443`.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let bad = |why: &str| {
            format!(
                "invalid host pattern {text:?}: {why} (expected e.g. https://hooks.slack.com or https://*.example.com:8443)"
            )
        };
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("missing scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return Err(bad("scheme must be https or http"));
        }
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('?') || rest.contains('@') {
            return Err(bad("only scheme, host and port are allowed"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (
                h,
                p.parse::<u16>().map_err(|_| bad("port is not a number"))?,
            ),
            _ => (rest, default_port(&scheme)),
        };
        let (wildcard, host) = match host.strip_prefix("*.") {
            Some(h) => (true, h),
            None => (false, host),
        };
        if host.is_empty() || host.contains('*') {
            return Err(bad("wildcards only as a leading \"*.\""));
        }
        Ok(HostPattern {
            scheme,
            host: host.to_ascii_lowercase(),
            wildcard,
            port,
        })
    }

    /// Whether a request to `scheme://host:port` is allowed by this pattern.
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host_ok = if self.wildcard {
            host.len() > self.host.len() + 1
                && host.ends_with(&self.host)
                && host[..host.len() - self.host.len()].ends_with('.')
        } else {
            host == self.host.trim_start_matches('[').trim_end_matches(']')
        };
        host_ok && scheme.eq_ignore_ascii_case(&self.scheme) && port == self.port
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let star = if self.wildcard { "*." } else { "" };
        write!(f, "{}://{star}{}:{}", self.scheme, self.host, self.port)
    }
}

/// 443 for https, 80 otherwise.
pub fn default_port(scheme: &str) -> u16 {
    if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcard_hosts() {
        let slack = HostPattern::parse("https://hooks.slack.com").unwrap();
        assert!(slack.matches("https", "hooks.slack.com", 443));
        assert!(slack.matches("https", "HOOKS.slack.com", 443));
        assert!(!slack.matches("http", "hooks.slack.com", 443));
        assert!(!slack.matches("https", "hooks.slack.com", 8443));
        assert!(!slack.matches("https", "evilhooks.slack.com", 443));
        let wild = HostPattern::parse("https://*.example.com:8443").unwrap();
        assert!(wild.matches("https", "a.b.example.com", 8443));
        assert!(!wild.matches("https", "example.com", 8443));
        assert!(!wild.matches("https", "badexample.com", 8443));
        let local = HostPattern::parse("http://127.0.0.1:9000/").unwrap();
        assert!(local.matches("http", "127.0.0.1", 9000));
    }

    #[test]
    fn refuses_malformed_patterns() {
        for bad in [
            "hooks.slack.com",
            "ftp://x",
            "https://a/b",
            "https://a*.b",
            "https://x:port",
            "https://u@x",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
