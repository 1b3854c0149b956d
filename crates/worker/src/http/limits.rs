//! Request checks hyper does not make by itself: the request line
//! (`--limit-request-line`, answered 414), each header field
//! (`--limit-request-field-size`, answered 431), and the `Host` rule of RFC
//! 9112 section 3.2: an HTTP/1.1 request without `Host`, any request with
//! more than one, or one whose value is not a valid `host[:port]`, is
//! answered 400. The field
//! count and the head's total size are hyper's own `max_headers` and
//! `max_header_size`; ambiguous framing (bare LFs, `Content-Length` twice or
//! with `Transfer-Encoding`) is refused before hyper parses, by `framing`.

use ferricorn_config::Limits;
use http::{Request, StatusCode, Version};

use super::fields::Fields;

/// `"HTTP/1.1".len()`.
const VERSION_LEN: usize = 8;

/// The status to answer with when `req` (whose header fields are `fields`)
/// breaks a limit, `None` if it is fine.
pub(crate) fn check<B>(req: &Request<B>, fields: &Fields, limits: &Limits) -> Option<StatusCode> {
    if let Some(max) = limits.request_line {
        let uri = req.uri();
        // HTTP/2's URI is built from `:scheme`, `:authority` and `:path`:
        // its request line would carry the path.
        let h2 = req.version() == Version::HTTP_2;
        let target = match (uri.scheme(), uri.path_and_query()) {
            (None, Some(pq)) => pq.as_str().len(),
            (Some(_), Some(pq)) if h2 => pq.as_str().len(),
            _ => uri.to_string().len(),
        };
        if req.method().as_str().len() + 1 + target + 1 + VERSION_LEN > max {
            return Some(StatusCode::URI_TOO_LONG);
        }
    }
    let hosts_ok = match fields.hosts {
        0 => req.version() != Version::HTTP_11,
        1 => fields.host_valid,
        _ => false,
    };
    if !hosts_ok {
        return Some(StatusCode::BAD_REQUEST);
    }
    if limits
        .request_field_size
        .is_some_and(|max| fields.longest > max)
    {
        return Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<B>(req: &Request<B>, limits: &Limits) -> Option<StatusCode> {
        super::check(
            req,
            &Fields::scan(req.headers(), &Default::default()),
            limits,
        )
    }

    fn limits(line: usize, field: usize) -> Limits {
        Limits {
            request_line: Some(line),
            request_fields: 100,
            request_field_size: Some(field),
        }
    }

    #[test]
    fn an_http_11_request_without_host_is_refused() {
        let l = limits(1000, 1000);
        let with_host = Request::get("/")
            .header("host", "t")
            .body(())
            .expect("request");
        assert_eq!(check(&with_host, &l), None);
        let without = Request::get("/").body(()).expect("request");
        assert_eq!(check(&without, &l), Some(StatusCode::BAD_REQUEST));
        let old = Request::get("/")
            .version(Version::HTTP_10)
            .body(())
            .expect("request");
        assert_eq!(check(&old, &l), None, "HTTP/1.0 needs no Host");
    }

    #[test]
    fn two_hosts_or_a_bad_host_are_refused_in_any_version() {
        let l = limits(1000, 1000);
        for version in [Version::HTTP_10, Version::HTTP_11] {
            let two = Request::get("/")
                .version(version)
                .header("host", "a")
                .header("host", "a")
                .body(())
                .expect("request");
            assert_eq!(check(&two, &l), Some(StatusCode::BAD_REQUEST));
            let bad = Request::get("/")
                .version(version)
                .header("host", "a/b")
                .body(())
                .expect("request");
            assert_eq!(check(&bad, &l), Some(StatusCode::BAD_REQUEST));
        }
    }

    #[test]
    fn the_request_line_counts_method_target_and_version() {
        // "GET /abc HTTP/1.1" is 17 bytes.
        let req = Request::get("/abc")
            .header("host", "t")
            .body(())
            .expect("request");
        assert_eq!(check(&req, &limits(17, 100)), None);
        assert_eq!(
            check(&req, &limits(16, 100)),
            Some(StatusCode::URI_TOO_LONG)
        );
    }

    #[test]
    fn a_field_counts_name_colon_space_and_value() {
        // "x-a: 12345" is 10 bytes.
        let req = Request::get("/")
            .header("host", "t")
            .header("x-a", "12345")
            .body(())
            .expect("request");
        assert_eq!(check(&req, &limits(100, 10)), None);
        assert_eq!(
            check(&req, &limits(100, 9)),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
    }
}
