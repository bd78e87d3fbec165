//! Which servers the swarm may load: `ws://` URLs on this machine.
//!
//! A load generator pointed at the wrong host is an attack, so the swarm
//! refuses any host that is not a loopback address (127.0.0.0/8,
//! `localhost`, `::1`) unless the operator says `--allow-remote`. The check
//! looks at the URL here; the binary also resolves names and checks every
//! address they resolve to before the first connection.

use std::net::IpAddr;

use tokio_tungstenite::tungstenite::http::Uri;

/// A URL the swarm connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    /// The host as written, without IPv6 brackets.
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    NoUrl,
    Invalid(String, String),
    Scheme(String),
    Remote(String),
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetError::NoUrl => write!(f, "no --url given"),
            TargetError::Invalid(url, why) => write!(f, "invalid URL {url:?}: {why}"),
            TargetError::Scheme(url) => write!(f, "{url:?}: only ws:// URLs are supported"),
            TargetError::Remote(url) => write!(
                f,
                "{url:?} is not a loopback address (127.0.0.0/8, localhost, ::1); pass --allow-remote to load another host"
            ),
        }
    }
}

impl std::error::Error for TargetError {}

/// Whether `host` (no brackets) names this machine.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(is_loopback_ip)
}

/// Whether an address is a loopback address (IPv4-mapped IPv6 included).
pub fn is_loopback_ip(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The targets of `--url` values: each may hold several comma-separated
/// URLs. Remote hosts are refused unless `allow_remote`.
pub fn parse_targets(values: &[String], allow_remote: bool) -> Result<Vec<Target>, TargetError> {
    let mut targets = Vec::new();
    for url in values.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
        let uri: Uri = url.parse().map_err(|e| TargetError::Invalid(url.into(), format!("{e}")))?;
        if uri.scheme_str() != Some("ws") {
            return Err(TargetError::Scheme(url.into()));
        }
        let host = uri.host().ok_or_else(|| TargetError::Invalid(url.into(), "no host".into()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        if !allow_remote && !is_loopback_host(&host) {
            return Err(TargetError::Remote(url.into()));
        }
        targets.push(Target { url: url.to_string(), host, port: uri.port_u16().unwrap_or(80) });
    }
    if targets.is_empty() { Err(TargetError::NoUrl) } else { Ok(targets) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str], allow_remote: bool) -> Result<Vec<Target>, TargetError> {
        parse_targets(&values.iter().map(|s| s.to_string()).collect::<Vec<_>>(), allow_remote)
    }

    #[test]
    fn loopback_urls_comma_separated_or_repeated() {
        let t = parse(&["ws://127.0.0.1:18080/connect, ws://localhost:18081/connect", "ws://[::1]:9/connect"], false)
            .unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!((t[0].host.as_str(), t[0].port), ("127.0.0.1", 18080));
        assert_eq!((t[1].host.as_str(), t[1].port), ("localhost", 18081));
        assert_eq!((t[2].host.as_str(), t[2].port), ("::1", 9));
        assert_eq!(t[0].url, "ws://127.0.0.1:18080/connect");
        assert!(parse(&["ws://127.8.9.10/connect"], false).is_ok());
        assert!(parse(&["ws://[::ffff:127.0.0.1]:80/connect"], false).is_ok());
    }

    #[test]
    fn remote_hosts_need_allow_remote() {
        for url in ["ws://10.0.0.1/connect", "ws://example.com/connect", "ws://[2001:db8::1]/", "ws://0.0.0.0:80/"] {
            assert!(matches!(parse(&[url], false), Err(TargetError::Remote(_))), "{url}");
            assert!(parse(&[url], true).is_ok(), "{url}");
        }
        // one remote URL among loopback ones refuses the whole list
        assert!(parse(&["ws://127.0.0.1/connect,ws://192.168.1.2/connect"], false).is_err());
    }

    #[test]
    fn bad_urls() {
        assert_eq!(parse(&[], false), Err(TargetError::NoUrl));
        assert_eq!(parse(&[" , "], false), Err(TargetError::NoUrl));
        assert!(matches!(parse(&["http://127.0.0.1/connect"], false), Err(TargetError::Scheme(_))));
        assert!(matches!(parse(&["wss://127.0.0.1/connect"], false), Err(TargetError::Scheme(_))));
        assert!(matches!(parse(&["not a url"], false), Err(TargetError::Invalid(..) | TargetError::Scheme(_))));
    }
}
