//! One walk over a request's header fields, for every check that needs one:
//! the `Host` and field-size limits, the WebSocket upgrade, the proxy
//! headers and the request id. Each lookup by name would hash the name and
//! probe the map; a request has a handful of fields, and comparing each
//! name once costs less than four lookups.

use http::HeaderMap;
use http::header::{HOST, HeaderValue, UPGRADE};

use crate::{access, proxy};

/// What the walk found.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    /// A `Host` field is present.
    pub host: bool,
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
        let mut f = Self::default();
        for (name, value) in headers {
            f.longest = f.longest.max(name.as_str().len() + 2 + value.len());
            if *name == HOST {
                f.host = true;
            } else if *name == UPGRADE {
                f.upgrade = true;
            } else if proxy::is_proxy_header(name) {
                f.proxied = true;
            } else if *name == access::REQUEST_ID && f.request_id.is_none() {
                f.request_id = Some(value.clone());
            }
        }
        f
    }
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
        assert!(f.host && !f.upgrade && !f.proxied);
        assert_eq!(f.request_id, None);
        assert_eq!(f.longest, "host: a.test".len());
    }

    #[test]
    fn each_name_is_recognised() {
        let f = Fields::scan(&headers(&[("upgrade", "websocket")]));
        assert!(f.upgrade && !f.host && !f.proxied);
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
}
