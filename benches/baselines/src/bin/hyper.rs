//! Baseline: a plain hyper 1.x server on tokio's multi-thread runtime with
//! the demo's `/` and `/json`. `hyper ADDR THREADS`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

async fn handle(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (body, ct): (&'static str, _) = match req.uri().path() {
        "/" => ("Hello, World!", "text/plain"),
        "/json" => (r#"{"message":"Hello, World!"}"#, "application/json"),
        _ => {
            let mut res = Response::new(Full::new(Bytes::new()));
            *res.status_mut() = StatusCode::NOT_FOUND;
            return Ok(res);
        }
    };
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    Ok(res)
}

fn main() -> std::io::Result<()> {
    ferricorn_baselines::serve("127.0.0.1:8002", |stream| async move {
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service_fn(handle))
            .await;
    })
}
