//! ferricorn: a pre-fork application server for async Rust services.
//!
//! A supervisor process binds the listening sockets and forks worker
//! processes that share them; each worker runs one single-threaded tokio
//! runtime serving HTTP/1.1, plus a blocking pool for the app's blocking
//! calls. [`run`] is all a `main` needs:
//!
//! ```no_run
//! use ferricorn::{App, Body, Context, Request, Response};
//!
//! struct Hello;
//!
//! impl App for Hello {
//!     async fn call(&self, _req: Request) -> Response {
//!         Response::new(Body::from("Hello, World!"))
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     ferricorn::run(|_ctx: &Context| Hello)
//! }
//! ```
//!
//! - [`App`]: the app contract (lifespan startup and shutdown, HTTP handler);
//!   [`HyperApp`] serves any hyper or tower service.
//! - [`Server`]: settings in code (`Server::new(factory).workers(4).run()`),
//!   under the file, the environment and the command line.
//! - [`Body`]: request and response bodies, streaming both ways.
//! - [`WebSocketUpgrade`], [`WebSocket`], [`Message`]: the WebSocket scope.
//! - [`Context`]: the worker an app instance runs in.
//! - [`Channels`]: the channel layer, groups of WebSockets across workers
//!   ([`WebSocket::join`], [`Channels::send_group`], [`Channels::send_to`],
//!   [`Channels::count`]).
//! - [`Args`]: the command line (`cli`), for a program that adds flags of
//!   its own.
//! - [`http`], [`bytes`]: the crates the API speaks, re-exported.
//! - `sources`: where the settings come from (the program, the command line).
//! - `serve`: the wiring of the supervisor (`ferricorn-supervisor`) and the
//!   worker (`ferricorn-worker`), which never depend on each other.
//! - `healthcheck`: the `ferricorn healthcheck` probe; `running`: the
//!   running server it asks, found in `/proc`.
//! - `logging`: the error log format.
//!
//! The `ferricorn` binary serves a demo app of its own
//! (`src/bin/ferricorn/demo.rs`).

mod app;
mod body;
mod cli;
mod healthcheck;
mod logging;
mod running;
mod serve;
mod server;
mod sources;

use std::process::ExitCode;

pub use app::{App, HyperApp, Request, Response};
pub use body::{Body, BodySender};
pub use cli::Args;
pub use ferricorn_worker::{
    BoxError, Channels, Closed, ConnectionId, Context, Counter, Error, Gauge, Histogram, Message,
    Payload, RequestInfo, SendError, Subscription, WebSocket, WebSocketUpgrade,
};
pub use server::Server;

/// The `http` crate the public API speaks ([`Request`], [`Response`],
/// `StatusCode`, headers), so an app needs no dependency of its own on it.
pub use http;

/// The `bytes` crate of [`Body`]'s chunks and [`Message`]'s payloads.
pub use bytes;

/// Exit code of a runtime failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a configuration error.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code when the app failed its lifespan startup.
pub const EXIT_APP_STARTUP: u8 = 3;

/// Runs the server with every setting from the command line, the
/// environment and the config file (see [`Server`] to set them in code).
/// The `factory` is called in each worker after the fork to build its app.
///
/// Returns the process exit code: 0 clean stop, 1 runtime failure, 2
/// configuration error, 3 the app failed to start.
pub fn run<A: App>(factory: impl Fn(&Context) -> A) -> ExitCode {
    Server::new(factory).run()
}

#[cfg(test)]
mod tests;

/// The README's code blocks, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
