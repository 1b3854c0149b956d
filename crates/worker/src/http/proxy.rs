//! Requests through a reverse proxy: `X-Forwarded-For`, `X-Forwarded-Proto`,
//! `X-Forwarded-Host` and RFC 7239 `Forwarded`, trusted only from peers in
//! `--forwarded-allow-ips` (and from unix sockets, which only a local proxy
//! can reach). From any other peer they are ignored.
//!
//! The client is the rightmost address in the chain that is not itself a
//! trusted proxy (every proxy appends the address it saw), so a client cannot
//! pose as another by sending its own `X-Forwarded-For`.

use std::net::{IpAddr, SocketAddr};

use ferricorn_config::IpNet;
use http::HeaderMap;
use http::header::{FORWARDED, HOST, HeaderName, HeaderValue};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Whether `name` is one of the proxy headers read here.
pub(crate) fn is_proxy_header(name: &HeaderName) -> bool {
    *name == FORWARDED
        || *name == X_FORWARDED_FOR
        || *name == X_FORWARDED_PROTO
        || *name == X_FORWARDED_HOST
}

/// What the proxy headers say about the client.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Forwarded {
    pub client: Option<SocketAddr>,
    pub proto: Option<String>,
    pub host: Option<String>,
}

/// Reads the proxy headers if `peer` is trusted. (Most requests carry
/// none: `Fields::proxied` says whether to call this at all.)
pub(crate) fn read(headers: &HeaderMap, peer: Option<SocketAddr>, trusted: &[IpNet]) -> Forwarded {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if peer.is_some_and(|p| !is_trusted(p.ip())) {
        return Forwarded::default();
    }
    let values = |name: &HeaderName| -> Vec<String> {
        crate::list_items(headers, name)
            .map(str::to_owned)
            .collect()
    };
    let forwarded = values(&FORWARDED);
    if !forwarded.is_empty() {
        let elements: Vec<Vec<(String, String)>> = forwarded.iter().map(|e| pairs(e)).collect();
        let get = |el: &[(String, String)], key: &str| {
            el.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        };
        let chosen = pick(
            &elements,
            |el| get(el, "for").and_then(|f| node(&f)),
            &is_trusted,
        );
        return chosen.map_or_else(Forwarded::default, |(el, client)| Forwarded {
            client,
            proto: get(el, "proto").map(|p| p.to_ascii_lowercase()),
            host: get(el, "host"),
        });
    }
    let chain: Vec<String> = values(&X_FORWARDED_FOR);
    let client = pick(&chain, |f| node(f), &is_trusted).and_then(|(_, c)| c);
    Forwarded {
        client,
        proto: values(&X_FORWARDED_PROTO)
            .pop()
            .map(|p| p.to_ascii_lowercase()),
        host: values(&X_FORWARDED_HOST).pop(),
    }
}

/// The rightmost item whose address is not a trusted proxy, else the
/// leftmost; with the address.
fn pick<'a, T>(
    items: &'a [T],
    addr: impl Fn(&T) -> Option<SocketAddr>,
    is_trusted: &impl Fn(IpAddr) -> bool,
) -> Option<(&'a T, Option<SocketAddr>)> {
    let found = items
        .iter()
        .rev()
        .find(|item| addr(item).is_none_or(|a| !is_trusted(a.ip())))
        .or(items.first())?;
    Some((found, addr(found)))
}

/// `key=value` pairs of one `Forwarded` element, keys lower-cased, quotes removed.
fn pairs(element: &str) -> Vec<(String, String)> {
    element
        .split(';')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_owned(),
            )
        })
        .collect()
}

/// An address in `for=` or `X-Forwarded-For`: `1.2.3.4`, `1.2.3.4:5`, `[::1]`,
/// `[::1]:5`, `::1`. Obfuscated identifiers and `unknown` give `None`.
fn node(s: &str) -> Option<SocketAddr> {
    let s = s.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Some(addr);
    }
    let ip = s.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0))
}

/// Applies a forwarded host to the request's `Host` header.
pub(crate) fn set_host(headers: &mut HeaderMap, host: &str) {
    if let Ok(v) = HeaderValue::from_str(host) {
        headers.insert(HOST, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    fn loopback() -> Vec<IpNet> {
        vec![
            "127.0.0.1".parse().expect("net"),
            "10.0.0.0/8".parse().expect("net"),
        ]
    }

    const LOCAL: Option<SocketAddr> = Some(SocketAddr::new(
        IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        4000,
    ));

    #[test]
    fn x_forwarded_headers_from_a_trusted_peer() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9, 198.51.100.2, 10.0.0.5"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "example.com"),
        ]);
        let f = read(&h, LOCAL, &loopback());
        assert_eq!(
            f.client,
            Some("198.51.100.2:0".parse().expect("addr")),
            "rightmost untrusted"
        );
        assert_eq!(
            (f.proto.as_deref(), f.host.as_deref()),
            (Some("https"), Some("example.com"))
        );
    }

    #[test]
    fn an_untrusted_peer_is_not_believed() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ]);
        let peer = Some("198.51.100.7:5000".parse().expect("addr"));
        assert_eq!(read(&h, peer, &loopback()), Forwarded::default());
    }

    #[test]
    fn rfc_7239_forwarded() {
        let h = headers(&[(
            "forwarded",
            r#"for="[2001:db8::1]:4711";proto=HTTPS;host=a.example, for=10.0.0.3"#,
        )]);
        let f = read(&h, LOCAL, &loopback());
        assert_eq!(f.client, Some("[2001:db8::1]:4711".parse().expect("addr")));
        assert_eq!(
            (f.proto.as_deref(), f.host.as_deref()),
            (Some("https"), Some("a.example"))
        );
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(read(&unknown, LOCAL, &loopback()).client, None);
    }
}
