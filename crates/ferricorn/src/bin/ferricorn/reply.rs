//! The demo's plain answers: text, JSON, a status with a line of text.

use ferricorn::{Body, Response};
use http::StatusCode;
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue};

// Made at compile time: `from_static` checks every byte when run.
const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

fn content_type(res: &mut Response, value: HeaderValue) {
    res.headers_mut().insert(CONTENT_TYPE, value);
}

pub(crate) fn text(body: impl Into<Body>) -> Response {
    let mut res = Response::new(body.into());
    content_type(&mut res, TEXT);
    res
}

pub(crate) fn json(body: impl Into<Body>) -> Response {
    let mut res = Response::new(body.into());
    content_type(&mut res, JSON);
    res
}

pub(crate) fn status(code: StatusCode, body: &str) -> Response {
    let mut res = Response::new(Body::from(body.to_owned()));
    *res.status_mut() = code;
    content_type(&mut res, TEXT);
    res
}

pub(crate) fn method_not_allowed(allow: &'static str) -> Response {
    let mut res = status(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    res.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    res
}
