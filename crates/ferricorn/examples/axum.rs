//! An axum `Router` served by ferricorn: process isolation, graceful stops and
//! health endpoints around an ordinary axum app.
//!
//! Run with
//!
//! ```sh
//! cargo run --example axum -- -w 2 -b 127.0.0.1:8000
//! curl localhost:8000/             # from axum
//! curl localhost:8000/healthz      # from ferricorn
//! ```

use axum::Router;
use axum::routing::get;
use ferricorn::{Context, HyperApp};
use hyper_util::service::TowerToHyperService;

fn main() -> std::process::ExitCode {
    // Called in each worker after the fork: the router is built per worker.
    ferricorn::run(|ctx: &Context| {
        let index = ctx.index();
        let router = Router::new()
            .route("/", get(|| async { "Hello from axum" }))
            .route(
                "/worker",
                get(move || async move { format!("axum in worker {index}") }),
            );
        HyperApp(TowerToHyperService::new(router))
    })
}
