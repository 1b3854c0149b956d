//! Request limits hyper does not enforce by itself: the request line
//! (`--limit-request-line`, answered 414) and each header field
//! (`--limit-request-field-size`, answered 431). The field count and the
//! head's total size are hyper's own `max_headers` and `max_header_size`.

use ferricorn_config::Limits;
use http::{Request, StatusCode};

/// `"HTTP/1.1".len()`.
const VERSION_LEN: usize = 8;

/// The status to answer with when `req` breaks a limit, `None` if it is fine.
pub(crate) fn check<B>(req: &Request<B>, limits: &Limits) -> Option<StatusCode> {
    if let Some(max) = limits.request_line {
        let uri = req.uri();
        let target = match (uri.scheme(), uri.path_and_query()) {
            (None, Some(pq)) => pq.as_str().len(),
            _ => uri.to_string().len(),
        };
        if req.method().as_str().len() + 1 + target + 1 + VERSION_LEN > max {
            return Some(StatusCode::URI_TOO_LONG);
        }
    }
    if let Some(max) = limits.request_field_size {
        let too_long = req
            .headers()
            .iter()
            .any(|(name, value)| name.as_str().len() + 2 + value.len() > max);
        if too_long {
            return Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(line: usize, field: usize) -> Limits {
        Limits {
            request_line: Some(line),
            request_fields: 100,
            request_field_size: Some(field),
        }
    }

    #[test]
    fn the_request_line_counts_method_target_and_version() {
        // "GET /abc HTTP/1.1" is 17 bytes.
        let req = Request::get("/abc").body(()).expect("request");
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
