//! Baseline: a plain hyper 1.x server on tokio's multi-thread runtime with
//! the demo's `/` and `/json`. `hyper ADDR THREADS`.

use ferricorn_baselines::hyper_routes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

fn main() -> std::io::Result<()> {
    ferricorn_baselines::serve("127.0.0.1:8002", |stream| async move {
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service_fn(hyper_routes))
            .await;
    })
}
