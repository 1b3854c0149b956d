//! One walk over a request's header fields, for every check that needs one:
//! the `Host` rule and the field-size limit, the WebSocket upgrade, the proxy
//! headers and the request id. Each lookup by name would hash the name and
//! probe the map; a request has a handful of fields, and comparing each
//! name once costs less than four lookups.

use http::HeaderMap;
use http::header::{HOST, HeaderValue, UPGRADE};

use super::proxy;
use crate::ids::REQUEST_ID;

/// What the walk found.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    /// How many `Host` fields there are (RFC 9112 section 3.2 allows one).
    pub hosts: u8,
    /// Every `Host` field's value is a valid `host[:port]`.
    pub host_valid: bool,
    /// An `Upgrade` field is present: the request may be a WebSocket upgrade.
    pub upgrade: bool,
    /// `Forwarded` or an `X-Forwarded-For`, `-Proto` or `-Host` is present.
    pub proxied: bool,
    /// The first `X-Request-Id`.
    pub request_id: Option<HeaderValue>,
    /// The longest field as sent: name, `": "` and value.
    pub longest: usize,
}

impl Fields {
    pub(crate) fn scan(headers: &HeaderMap) -> Self {
        let mut f = Self {
            host_valid: true,
            ..Self::default()
        };
        for (name, value) in headers {
            f.longest = f.longest.max(name.as_str().len() + 2 + value.len());
            if *name == HOST {
                f.hosts = f.hosts.saturating_add(1);
                f.host_valid &= is_host(value.as_bytes());
            } else if *name == UPGRADE {
                f.upgrade = true;
            } else if proxy::is_proxy_header(name) {
                f.proxied = true;
            } else if *name == REQUEST_ID && f.request_id.is_none() {
                f.request_id = Some(value.clone());
            }
        }
        f
    }
}

/// Whether `v` is `uri-host [ ":" port ]` (RFC 3986 section 3.2.2): a
/// bracketed IPv6 address, or a name or IPv4 address of unreserved
/// characters, sub-delims and %-escapes; the port, if any, digits.
/// (Empty is a valid, empty reg-name.)
pub(crate) fn is_host(v: &[u8]) -> bool {
    let (host, port) = if let Some(rest) = v.strip_prefix(b"[") {
        let Some(end) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let ip = std::str::from_utf8(&rest[..end]).ok();
        if ip.is_none_or(|ip| ip.parse::<std::net::Ipv6Addr>().is_err()) {
            return false;
        }
        match &rest[end + 1..] {
            [] => return true,
            [b':', port @ ..] => (&[][..], port),
            _ => return false,
        }
    } else {
        match v.iter().position(|&b| b == b':') {
            Some(colon) => (&v[..colon], &v[colon + 1..]),
            None => (v, &[][..]),
        }
    };
    port.iter().all(u8::is_ascii_digit) && is_reg_name(host)
}

/// `*( unreserved / pct-encoded / sub-delims )`.
fn is_reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        let b = name[i];
        if b == b'%' {
            let hex = |j: usize| name.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
            continue;
        }
        let ok = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(fields: &[(&'static str, &'static str)]) -> HeaderMap {
        fields
            .iter()
            .map(|(n, v)| {
                (
                    http::HeaderName::from_static(n),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn a_plain_request_has_only_host() {
        let f = Fields::scan(&headers(&[("host", "a.test"), ("accept", "*/*")]));
        assert!(f.hosts == 1 && f.host_valid && !f.upgrade && !f.proxied);
        assert_eq!(f.request_id, None);
        assert_eq!(f.longest, "host: a.test".len());
    }

    #[test]
    fn each_name_is_recognised() {
        let f = Fields::scan(&headers(&[("upgrade", "websocket")]));
        assert!(f.upgrade && f.hosts == 0 && !f.proxied);
        for name in [
            "forwarded",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
        ] {
            assert!(Fields::scan(&headers(&[(name, "x")])).proxied, "{name}");
        }
        assert!(!Fields::scan(&headers(&[("x-forwarded-port", "1")])).proxied);
        let mut h = headers(&[("x-request-id", "first")]);
        h.append("x-request-id", HeaderValue::from_static("second"));
        assert_eq!(
            Fields::scan(&h).request_id.as_ref().map(|v| v.as_bytes()),
            Some(&b"first"[..])
        );
    }

    #[test]
    fn the_longest_field_counts_every_value() {
        let mut h = headers(&[("x-a", "1")]);
        h.append("x-a", HeaderValue::from_static("123456"));
        assert_eq!(Fields::scan(&h).longest, "x-a: 123456".len());
    }

    #[test]
    fn hosts_are_counted_and_checked() {
        let mut h = headers(&[("host", "a.test")]);
        h.append("host", HeaderValue::from_static("b.test"));
        let f = Fields::scan(&h);
        assert_eq!((f.hosts, f.host_valid), (2, true));
        let f = Fields::scan(&headers(&[("host", "a b")]));
        assert_eq!((f.hosts, f.host_valid), (1, false));
    }

    #[test]
    fn host_values_follow_rfc_3986() {
        for good in [
            "example.com",
            "example.com:8080",
            "EXAMPLE.com.:80",
            "127.0.0.1",
            "127.0.0.1:",
            "[::1]",
            "[::1]:8000",
            "[2001:db8::7]:4711",
            "xn--bcher-kva.example",
            "a_b~c!$&'()*+,;=",
            "%41b",
            "",
        ] {
            assert!(is_host(good.as_bytes()), "{good:?} refused");
        }
        for bad in [
            "a b",
            "a/b",
            "a@b",
            "a:b",
            "a:80:80",
            "a:-1",
            "a:8o",
            "[::1",
            "[::1]x",
            "[::1]:x",
            "[zz]",
            "[127.0.0.1]",
            "%4",
            "%zz",
            "a?b",
            "a#b",
            "\"a\"",
            "é",
        ] {
            assert!(!is_host(bad.as_bytes()), "{bad:?} accepted");
        }
    }
}
