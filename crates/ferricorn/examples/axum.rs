//! An axum `Router` served by ferricorn: process isolation, graceful stops and
//! health endpoints around an ordinary axum app.
//!
//! Run with
//!
//! ```sh
//! cargo run --example axum -- -w 2 -b 127.0.0.1:8000
//! curl localhost:8000/             # from axum
//! curl localhost:8000/whoami       # what ferricorn knows of the request
//! curl localhost:8000/healthz      # from ferricorn
//! ```

use axum::routing::get;
use axum::{Extension, Router};
use ferricorn::{Context, HyperApp, RequestInfo};
use hyper_util::service::TowerToHyperService;

fn main() -> std::process::ExitCode {
    // Called in each worker after the fork: the router is built per worker.
    ferricorn::run(|ctx: &Context| {
        let slot = ctx.slot();
        let router = Router::new()
            .route("/", get(|| async { "Hello from axum" }))
            .route(
                "/worker",
                get(move || async move { format!("axum in worker {slot}") }),
            )
            // ferricorn puts each request's info in its extensions.
            .route(
                "/whoami",
                get(|Extension(info): Extension<RequestInfo>| async move {
                    let client = info.client().map_or("unix".into(), |a| a.ip().to_string());
                    format!("{client} {} {}", info.scheme(), info.id())
                }),
            );
        HyperApp(TowerToHyperService::new(router))
    })
}
