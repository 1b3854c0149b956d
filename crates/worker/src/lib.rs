//! What runs in a ferricorn worker process after the fork.
//!
//! - [`run`]: builds the worker's current-thread runtime (a `LocalSet`, so
//!   app futures need not be `Send`) with a blocking pool of `--threads`
//!   threads, runs the app's lifespan startup, accepts on the inherited
//!   listeners, and drains on SIGTERM.
//! - [`Service`]: what the worker needs from an app.
//! - [`Context`]: what an app knows about its worker, and where it
//!   registers its own metrics ([`Counter`], [`Gauge`], [`Histogram`]).
//! - [`RequestInfo`]: what ferricorn knows of a request beyond its head.
//! - `lifecycle`: heartbeat, stop signals, startup and drain.
//! - `accept`: the accept loops, the `--worker-connections` cap and the
//!   balance between workers.
//! - `proxy_protocol`: the PROXY protocol header (v1, v2) on TCP listeners.
//! - `tls`: the certificate files read into rustls, each connection's
//!   handshake, a client certificate's subject; `prefixed`: an IO that
//!   gives back the bytes a look at a connection's start took.
//! - `http`: one connection with hyper's HTTP/1.1 or HTTP/2 and each
//!   request on it:
//!   the limits, the `Host` rule, the smuggling guard, trusted proxy
//!   headers, ferricorn's own endpoints, the app, and what happens when a
//!   response is done.
//! - `ws`: WebSocket upgrades and the tasks that drive each socket;
//!   `queue`: the bounded queues between those tasks.
//! - [`access`]: the access log.
//! - `ids`: request ids.
//! - `counted`: guards that count open connections, WebSockets and
//!   requests in flight while they live.
//! - `deadline`: the time a client has to send each request head, one
//!   sweeping task per worker instead of a timer per request.
//! - `exposition`: the Prometheus text of `/metrics`.
//! - `metrics`: the app's own metrics.
//! - `fuzz` (the `fuzz` feature): the properties `fuzz/` checks.
//!
//! Words: a worker's **slot** is its place (0 to workers - 1), which its
//! replacement takes over; its **cell** is its record in the shared memory.

mod accept;
pub mod access;
mod context;
mod counted;
mod deadline;
mod exposition;
#[cfg(feature = "fuzz")]
#[doc(hidden)]
pub mod fuzz;
mod http;
mod ids;
mod lifecycle;
mod metrics;
mod prefixed;
mod proxy_protocol;
mod queue;
mod tls;
mod ws;

use std::future::Future;

pub use context::{Context, RequestInfo};
pub use lifecycle::{Hooks, Listeners, run};
pub use metrics::{Counter, Gauge, Histogram};
pub use tls::{TlsError, prepare as prepare_tls, server_config as tls_config};
pub use ws::{Closed, Message, WebSocket, WebSocketUpgrade};

/// The channel layer the app reaches through [`Context::channels`] and
/// [`WebSocket::join`].
pub use ferricorn_channels::{
    Channels, ConnectionId, Payload, SendError, Subscription, check_redis,
};

/// An error type apps may return from any call.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors a worker hands to its app.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A function run by [`Context::blocking`] panicked.
    #[error("the blocking task panicked")]
    BlockingPanicked,
    /// A metric could not be registered.
    #[error("metric `{name}`: {why}")]
    Metric {
        /// The metric's name.
        name: String,
        /// What is wrong.
        why: String,
    },
}

/// What the worker needs from an app. One value is built per worker, after
/// the fork; none of its futures need be `Send`.
pub trait Service: 'static {
    /// The response body; ferricorn's own short answers are made `From`
    /// their bytes.
    type Body: http_body::Body<Data = bytes::Bytes, Error: Into<BoxError>>
        + From<bytes::Bytes>
        + Unpin
        + 'static;

    /// Lifespan startup: runs before the worker accepts; an error aborts the boot.
    fn startup(&self) -> impl Future<Output = Result<(), BoxError>>;

    /// Handles one request; `info` is what ferricorn knows of it beyond
    /// its head.
    fn call(
        &self,
        req: ::http::Request<hyper::body::Incoming>,
        info: RequestInfo,
    ) -> impl Future<Output = ::http::Response<Self::Body>>;

    /// Handles a WebSocket upgrade request: accept it or answer it.
    fn websocket(
        &self,
        upgrade: WebSocketUpgrade,
    ) -> impl Future<Output = ::http::Response<Self::Body>>;

    /// Whether upgrade requests go to [`websocket`](Self::websocket) (true)
    /// or, untouched, to [`call`](Self::call) (false: the app, a hyper
    /// service, upgrades by itself).
    fn handles_websockets(&self) -> bool {
        true
    }

    /// Lifespan shutdown: runs after the drain.
    fn shutdown(&self) -> impl Future<Output = ()>;
}

/// The items of a comma-separated header, over all its fields, trimmed,
/// empty ones left out (RFC 9110 section 5.6.1).
pub(crate) fn list_items<'a>(
    headers: &'a ::http::HeaderMap,
    name: &::http::header::HeaderName,
) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A listening socket inherited from the supervisor.
#[derive(Debug)]
pub enum Listener {
    /// A TCP socket.
    Tcp(std::net::TcpListener),
    /// A unix socket.
    Unix(std::os::unix::net::UnixListener),
}
