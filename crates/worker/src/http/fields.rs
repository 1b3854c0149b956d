//! One walk over a request's header fields, for every check that needs one:
//! the `Host` rule and the field-size limit, the WebSocket upgrade, the proxy
//! headers and the request id. Each lookup by name would hash the name and
//! probe the map; a request has a handful of fields, and comparing each
//! name once costs less than four lookups.

use std::cell::RefCell;

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
    pub(crate) fn scan(headers: &HeaderMap, known: &KnownHost) -> Self {
        let mut f = Self {
            host_valid: true,
            ..Self::default()
        };
        for (name, value) in headers {
            f.longest = f.longest.max(name.as_str().len() + 2 + value.len());
            if *name == HOST {
                f.hosts = f.hosts.saturating_add(1);
                f.host_valid &= known.is_valid(value.as_bytes());
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

/// The last `Host` value a worker found valid. Most requests repeat it (a
/// client, or the proxy in front, names one host), and one comparison
/// costs a third of a walk over the bytes.
#[derive(Debug, Default)]
pub(crate) struct KnownHost(RefCell<Vec<u8>>);

/// Longer hosts are checked every time.
const KNOWN_HOST_MAX: usize = 255;

impl KnownHost {
    /// Whether `v` is a valid `Host` value (see [`is_host`]).
    pub(crate) fn is_valid(&self, v: &[u8]) -> bool {
        if self.0.borrow().as_slice() == v {
            return true;
        }
        let valid = is_host(v);
        if valid && v.len() <= KNOWN_HOST_MAX {
            let mut known = self.0.borrow_mut();
            known.clear();
            known.extend_from_slice(v);
        }
        valid
    }
}

/// Whether `v` is `uri-host [ ":" port ]` (RFC 3986 section 3.2.2): a
/// bracketed IPv6 address, or a name or IPv4 address of unreserved
/// characters, sub-delims and %-escapes; the port, if any, digits.
/// (Empty is a valid, empty reg-name.) One pass over the bytes, a table
/// lookup each: it runs on every request.
pub(crate) fn is_host(v: &[u8]) -> bool {
    if v.first() == Some(&b'[') {
        return is_ip_literal(v);
    }
    let mut i = 0;
    while let Some(&b) = v.get(i) {
        match HOST_BYTES[usize::from(b)] {
            REG_NAME => i += 1,
            COLON => return v[i + 1..].iter().all(u8::is_ascii_digit),
            PERCENT if is_hex_pair(v.get(i + 1..i + 3)) => i += 3,
            _ => return false,
        }
    }
    true
}

/// `[IPv6]` then, optionally, `:port`.
fn is_ip_literal(v: &[u8]) -> bool {
    let Some(end) = v.iter().position(|&b| b == b']') else {
        return false;
    };
    let ip = std::str::from_utf8(&v[1..end]).ok();
    if ip.is_none_or(|ip| ip.parse::<std::net::Ipv6Addr>().is_err()) {
        return false;
    }
    match &v[end + 1..] {
        [] => true,
        [b':', port @ ..] => port.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

fn is_hex_pair(pair: Option<&[u8]>) -> bool {
    pair.is_some_and(|p| p.iter().all(u8::is_ascii_hexdigit))
}

const OTHER: u8 = 0;
const REG_NAME: u8 = 1;
const COLON: u8 = 2;
const PERCENT: u8 = 3;

/// What each byte is in a host: `unreserved / sub-delims` (RFC 3986), the
/// port's colon, the start of a %-escape, or anything else.
const HOST_BYTES: [u8; 256] = {
    let mut table = [OTHER; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() {
            table[b] = REG_NAME;
        }
        b += 1;
    }
    let marks = b"-._~!$&'()*+,;=";
    let mut i = 0;
    while i < marks.len() {
        table[marks[i] as usize] = REG_NAME;
        i += 1;
    }
    table[b':' as usize] = COLON;
    table[b'%' as usize] = PERCENT;
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(headers: &HeaderMap) -> Fields {
        Fields::scan(headers, &KnownHost::default())
    }

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
        let f = scan(&headers(&[("host", "a.test"), ("accept", "*/*")]));
        assert!(f.hosts == 1 && f.host_valid && !f.upgrade && !f.proxied);
        assert_eq!(f.request_id, None);
        assert_eq!(f.longest, "host: a.test".len());
    }

    #[test]
    fn each_name_is_recognised() {
        let f = scan(&headers(&[("upgrade", "websocket")]));
        assert!(f.upgrade && f.hosts == 0 && !f.proxied);
        for name in [
            "forwarded",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
        ] {
            assert!(scan(&headers(&[(name, "x")])).proxied, "{name}");
        }
        assert!(!scan(&headers(&[("x-forwarded-port", "1")])).proxied);
        let mut h = headers(&[("x-request-id", "first")]);
        h.append("x-request-id", HeaderValue::from_static("second"));
        assert_eq!(
            scan(&h).request_id.as_ref().map(|v| v.as_bytes()),
            Some(&b"first"[..])
        );
    }

    #[test]
    fn the_longest_field_counts_every_value() {
        let mut h = headers(&[("x-a", "1")]);
        h.append("x-a", HeaderValue::from_static("123456"));
        assert_eq!(scan(&h).longest, "x-a: 123456".len());
    }

    #[test]
    fn hosts_are_counted_and_checked() {
        let mut h = headers(&[("host", "a.test")]);
        h.append("host", HeaderValue::from_static("b.test"));
        let f = scan(&h);
        assert_eq!((f.hosts, f.host_valid), (2, true));
        let f = scan(&headers(&[("host", "a b")]));
        assert_eq!((f.hosts, f.host_valid), (1, false));
    }

    #[test]
    fn a_known_host_is_valid_and_a_bad_one_never_becomes_known() {
        let known = KnownHost::default();
        assert!(known.is_valid(b"a.test:80"));
        assert!(known.is_valid(b"a.test:80"));
        assert!(!known.is_valid(b"a b"));
        assert!(!known.is_valid(b"a b"));
        assert!(known.is_valid(b"a.test:80"));
        assert!(known.is_valid(b""));
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
