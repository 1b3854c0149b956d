//! What an app knows about the worker it runs in.

use std::net::SocketAddr;
use std::time::Duration;

use ferricorn_channels::Channels;
use ferricorn_shm::{Shared, WorkerCell};

/// The worker an app instance runs in: its slot, the worker count, its pid,
/// and its blocking pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Context {
    pub(crate) slot: usize,
    /// The worker's cell in the shared memory.
    pub(crate) cell: &'static WorkerCell,
    pub(crate) pid: u32,
    pub(crate) shared: Shared,
    pub(crate) channels: Channels,
}

impl Context {
    /// The worker's slot, from 0 to `workers() - 1`. A replacement worker
    /// takes the slot of the one it replaces.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// The number of worker slots the server keeps filled.
    pub fn workers(&self) -> usize {
        self.shared.header().desired() as usize
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The channel layer: send to a group of WebSockets or to one, on any
    /// worker, and count a group's members (see [`WebSocket::join`](crate::WebSocket::join)).
    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    /// How many times this worker's slot has had its worker replaced.
    pub fn restarts(&self) -> u64 {
        self.shared.restarts(self.slot)
    }

    /// Requests this worker has served so far.
    pub fn requests(&self) -> u64 {
        self.cell.requests()
    }

    /// Runs `f` on the worker's blocking pool (`--threads` threads), so the
    /// event loop keeps serving while it runs.
    pub async fn blocking<F, R>(&self, f: F) -> Result<R, crate::Error>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| crate::Error::BlockingPanicked)
    }
}

/// What ferricorn knows of a request beyond its head: the client and
/// scheme after trusted proxy headers, the root path, the request id.
/// ferricorn hands it to the app with each request, without allocating:
/// apps find it on the request's body (`req.body().info()`), services
/// served through `HyperApp` also in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub(crate) client: Option<SocketAddr>,
    /// The scheme a trusted proxy forwarded; `None`: the connection's.
    pub(crate) scheme: Option<Box<str>>,
    /// The connection is TLS: its scheme is `https`.
    pub(crate) secure: bool,
    /// A verified client certificate's subject.
    pub(crate) client_subject: Option<std::sync::Arc<str>>,
    pub(crate) root_path: &'static str,
    pub(crate) body_timeout: Duration,
    pub(crate) id: http::HeaderValue,
}

impl RequestInfo {
    /// The client's address: the connection's peer, or the one a trusted
    /// proxy forwarded. `None` on a unix socket without proxy headers.
    pub fn client(&self) -> Option<SocketAddr> {
        self.client
    }

    /// The scheme the client used: `https` on a TLS listener, `http` on a
    /// plain one, or what a trusted proxy says it used.
    pub fn scheme(&self) -> &str {
        match &self.scheme {
            Some(s) => s,
            None if self.secure => "https",
            None => "http",
        }
    }

    /// With mutual TLS (`--cert-reqs optional` or `required`), the subject
    /// of the client's verified certificate as RFC 4514 text
    /// (`CN=alice,O=Example`), as ASGI's TLS extension gives it; `None`
    /// without one.
    pub fn client_subject(&self) -> Option<&str> {
        self.client_subject.as_deref()
    }

    /// The path the app is mounted at (`--root-path`), as ASGI's
    /// `root_path`; empty by default.
    pub fn root_path(&self) -> &str {
        self.root_path
    }

    /// The longest the request body may go without a new chunk
    /// (`--header-timeout`): a client that sends its body slowly is cut off
    /// after it.
    pub fn body_timeout(&self) -> Duration {
        self.body_timeout
    }

    /// The request's id: the client's `X-Request-Id` if it is a sane token,
    /// else a new one. The response carries it back.
    pub fn id(&self) -> &str {
        self.id.to_str().unwrap_or("")
    }
}
