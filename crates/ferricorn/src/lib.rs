//! ferricorn: a pre-fork application server for async Rust services.
//!
//! A supervisor process binds the listening sockets and forks worker
//! processes that share them; each worker runs one single-threaded tokio
//! runtime serving HTTP/1.1, plus a blocking pool for the app's blocking
//! calls. [`run`] is all a `main` needs:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     ferricorn::run(ferricorn::demo::app)
//! }
//! ```
//!
//! - [`App`]: the app contract (lifespan startup and shutdown, HTTP handler);
//!   [`HyperApp`] serves any hyper or tower service.
//! - [`Body`]: request and response bodies, streaming both ways.
//! - [`WebSocketUpgrade`], [`WebSocket`], [`Message`]: the WebSocket scope.
//! - [`Context`]: the worker an app instance runs in.
//! - [`demo`]: the app the `ferricorn` binary serves.
//! - `cli`: command line, settings, exit codes, and the wiring of the
//!   supervisor (`ferricorn-supervisor`) and the worker (`ferricorn-worker`),
//!   which never depend on each other.
//! - `healthcheck`: the `ferricorn healthcheck` probe.
//! - `logging`: the error log format.

mod app;
mod body;
mod cli;
pub mod demo;
mod healthcheck;
mod logging;

use std::process::ExitCode;

pub use app::{App, HyperApp, Request, Response};
pub use body::{Body, BodySender};
pub use cli::{EXIT_APP_STARTUP, EXIT_CONFIG, EXIT_FAILURE};
pub use ferricorn_worker::{
    BoxError, Closed, Context, Counter, Error, Gauge, Histogram, Message, RequestInfo, WebSocket,
    WebSocketUpgrade,
};

/// Runs the server: reads the command line, the environment and the config
/// file, binds, forks the workers, and supervises them until stopped. The
/// `factory` is called in each worker after the fork to build its app.
///
/// Returns the process exit code: 0 clean stop, 1 runtime failure, 2
/// configuration error, 3 the app failed to start.
pub fn run<A: App>(factory: impl Fn(&Context) -> A) -> ExitCode {
    match cli::main(factory) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => ExitCode::from(code),
    }
}

#[cfg(test)]
mod tests;

/// The README's code blocks, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
