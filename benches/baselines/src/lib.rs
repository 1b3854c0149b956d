//! What the baseline servers share: their arguments (`ADDR THREADS`), for
//! the tokio ones a multi-thread runtime with a plain accept loop, and for
//! the hyper ones the routes.

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpStream;

/// The demo's `/` and `/json`, as a hyper service function.
pub async fn hyper_routes(
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
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

/// The address and the worker/thread count from the command line.
pub fn args(default_addr: &str) -> (String, usize) {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| default_addr.into());
    let threads = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    (addr, threads)
}

/// Accepts on ADDR with THREADS runtime threads, each connection in a task
/// of its own running `handle`.
pub fn serve<F, Fut>(default_addr: &str, handle: F) -> std::io::Result<()>
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (addr, threads) = args(default_addr);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                tokio::spawn(handle(stream));
            }
        })
}
