//! Serving one connection with hyper's HTTP/1.1 or HTTP/2, and each request
//! (or stream) on it.
//!
//! - this file: [`Server`], what every connection of a worker shares, the
//!   choice of protocol (ALPN, or the HTTP/2 preface on a plain listener),
//!   and the bookkeeping of each request around its answer (the max-requests
//!   count, trusted proxy headers, the request id, the `Server` and
//!   `Connection: close` headers);
//! - `respond`: the answer, in steps: the request limits, ferricorn's own
//!   endpoints, a WebSocket upgrade, then the app;
//! - `done`: what happens when a response is done (the next head's
//!   deadline, the metrics, the access log line);
//! - `fields`: one walk over a request's header fields for the checks;
//! - `limits`: the request-line, header-field and `Host` rules;
//! - `framing`: a guard over the raw bytes against request smuggling;
//! - `proxy`: trusted `X-Forwarded-*` and `Forwarded` headers.

mod done;
mod fields;
pub(crate) mod framing;
mod limits;
pub(crate) mod proxy;
mod respond;

use std::cell::Cell;
use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use ferricorn_config::{Config, HttpVersion, IpNet, Limits, ProxyProtocol};
use ferricorn_shm::metrics::{Counters, at, method_index};
use http::header::{CONNECTION, HeaderValue, SERVER};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tracing::debug;

use self::done::{Done, Observe, Tracked};
use self::fields::{Fields, KnownHost};
use self::framing::Guarded;
use crate::access::{Record, Sink};
use crate::counted::OpenConnection;
use crate::deadline::{Deadline, Deadlines};
use crate::ids::{Ids, REQUEST_ID};
use crate::prefixed::Prefixed;
use crate::{Context, RequestInfo, Service, ws};

const SERVER_NAME: HeaderValue = HeaderValue::from_static("ferricorn");

/// What the request path reads of the settings, taken from the [`Config`]
/// once per worker.
#[derive(Debug)]
pub(crate) struct Settings {
    pub limits: Limits,
    pub health_path: Option<String>,
    pub ready_path: Option<String>,
    pub metrics_path: Option<String>,
    /// `--metrics-bind` is set: `/metrics` answers only there.
    pub metrics_apart: bool,
    /// Who may read `/metrics` on the app's addresses.
    pub metrics_allow: Vec<IpNet>,
    pub limit_concurrency: Option<usize>,
    pub request_timeout: Option<Duration>,
    pub forwarded_allow: Vec<IpNet>,
    /// `--root-path`, leaked once for the worker's life: each request's
    /// info points at it.
    pub root_path: &'static str,
    /// How long a request body may go without a new chunk.
    pub body_timeout: Duration,
    /// Idle keep-alive connections stay open (else a stopping worker
    /// closes them at once).
    pub keep_alive: bool,
    /// The PROXY protocol on TCP connections, the peers that may send it,
    /// and the time they have to.
    pub proxy_protocol: (ProxyProtocol, Vec<IpNet>, Duration),
    /// The request count at which the worker asks to be replaced.
    pub retire_at: Option<u64>,
    /// The protocol `--http` sets for every connection (`Some(true)`:
    /// HTTP/2), or `None`: each connection's choice.
    pub h2: Option<bool>,
}

impl Settings {
    pub(crate) fn of(config: &Config, retire_at: Option<u64>) -> Self {
        Self {
            limits: config.limits(),
            health_path: config.health_path.clone(),
            ready_path: config.ready_path.clone(),
            metrics_path: config.metrics_path.clone(),
            metrics_apart: config.metrics_bind.is_some(),
            metrics_allow: config.metrics_allow_from.clone(),
            limit_concurrency: config.limit_concurrency,
            request_timeout: config.request_timeout,
            forwarded_allow: config.forwarded_allow_ips.clone(),
            root_path: Box::leak(config.root_path.clone().into_boxed_str()),
            body_timeout: config.header_timeout,
            keep_alive: config.keep_alive.is_some(),
            proxy_protocol: (
                config.proxy_protocol,
                config.proxy_allow_from.clone(),
                config.header_timeout,
            ),
            retire_at,
            h2: match config.http {
                HttpVersion::Auto => None,
                HttpVersion::One => Some(false),
                HttpVersion::Two => Some(true),
            },
        }
    }
}

/// hyper's HTTP/1.1 settings from the config. (The head deadline is
/// ferricorn's own: see `deadline`.)
///
/// Half-closed connections are allowed: a client may end its sending side
/// after its request and still get the response. It also keeps hyper from
/// reading the socket for an EOF while a handler runs, a read that costs a
/// new 8 KiB read buffer per request (the old one is still held by the
/// request's head). As under Uvicorn, a handler whose client has gone runs
/// to its end (or to `--request-timeout`) before the connection closes.
pub(crate) fn http1(config: &Config) -> http1::Builder {
    let mut b = http1::Builder::new();
    let limits = config.limits();
    let max_head = limits.max_head();
    b.half_close(true)
        .keep_alive(config.keep_alive.is_some())
        .max_headers(limits.request_fields)
        .max_header_size(max_head)
        .max_buf_size(max_head.max(8192));
    b
}

/// How often an idle HTTP/2 connection is pinged, and how long the client
/// has to answer before the connection is closed.
const H2_PING: (Duration, Duration) = (Duration::from_secs(20), Duration::from_secs(20));

/// HTTP/2's flow-control windows: per stream and per connection.
const H2_WINDOWS: (u32, u32) = (1 << 20, 2 << 20);

/// Runs HTTP/2's per-stream tasks on the worker's `LocalSet`: the app's
/// futures need not be `Send`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalExec;

impl<F: Future + 'static> hyper::rt::Executor<F> for LocalExec {
    fn execute(&self, fut: F) {
        tokio::task::spawn_local(fut);
    }
}

/// hyper's HTTP/2 settings from the config: the stream limit, the header
/// list size (the HTTP/1.1 head limit), the windows, and pings that close
/// a connection whose client stopped answering. hyper's own defences stay
/// on: at most 20 streams reset by the client before the server accepted
/// them (Rapid Reset, CVE-2023-44487), at most 1024 streams the server had
/// to reset for errors, and a header block (CONTINUATION frames included)
/// bounded by the header list size.
fn http2(config: &Config) -> http2::Builder<LocalExec> {
    let mut b = http2::Builder::new(LocalExec);
    let limits = config.limits();
    b.timer(TokioTimer::new())
        .max_concurrent_streams(config.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_head()).unwrap_or(u32::MAX))
        .initial_stream_window_size(H2_WINDOWS.0)
        .initial_connection_window_size(H2_WINDOWS.1)
        .keep_alive_interval(H2_PING.0)
        .keep_alive_timeout(H2_PING.1)
        .enable_connect_protocol();
    b
}

/// How a connection came in, as far as HTTP cares.
#[derive(Debug, Default)]
pub(crate) struct Accepted {
    /// The client (after a PROXY header).
    pub peer: Option<SocketAddr>,
    /// On the `--metrics-bind` address.
    pub admin: bool,
    /// Over TLS: its requests' scheme is `https`.
    pub secure: bool,
    /// A verified client certificate's subject (mutual TLS).
    pub subject: Option<Arc<str>>,
    /// The protocol, when the connection chose it (ALPN, or `--http`);
    /// `None`: the first bytes tell (the HTTP/2 preface, or HTTP/1.1).
    pub h2: Option<bool>,
}

/// What a client speaking HTTP/2 by prior knowledge sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads until the bytes are the HTTP/2 preface or cannot be, within the
/// connection's head deadline (the worker's one sweep, not a timer of its
/// own); the bytes read go back in front of the connection.
async fn sniff<IO: AsyncRead + Unpin>(
    mut io: IO,
    deadline: &Deadline,
) -> std::io::Result<(Prefixed<IO>, bool)> {
    let mut seen = vec![0u8; 4096];
    let mut len = 0;
    loop {
        let n = poll_fn(|cx| {
            let mut buf = ReadBuf::new(&mut seen[len..]);
            match std::pin::Pin::new(&mut io).poll_read(cx, &mut buf) {
                Poll::Ready(r) => Poll::Ready(r.map(|()| buf.filled().len())),
                Poll::Pending if deadline.poll_expired(cx) => Poll::Ready(Err(
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "nothing sent in time"),
                )),
                Poll::Pending => Poll::Pending,
            }
        })
        .await?;
        len += n;
        let m = len.min(H2_PREFACE.len());
        let h2 = seen[..m] == H2_PREFACE[..m];
        if n == 0 || !h2 || m == H2_PREFACE.len() {
            seen.truncate(len);
            return Ok((Prefixed::new(io, seen), h2 && m == H2_PREFACE.len()));
        }
    }
}

/// What every connection of one worker shares: the app, the settings, and
/// the worker's own state.
pub(crate) struct Server<S> {
    app: S,
    settings: Settings,
    http: http1::Builder,
    h2: http2::Builder<LocalExec>,
    /// The worker: its slot, its cell in the shared memory, and the region.
    ctx: Context,
    /// The worker's counters, when metrics are on.
    counters: Option<&'static Counters>,
    /// What the worker's WebSockets share.
    hub: Rc<ws::Hub>,
    /// Requests whose handler has not yet returned its response head.
    in_flight: Cell<usize>,
    /// Every connection's head deadline.
    deadlines: Rc<Deadlines>,
    ids: Ids,
    known_host: KnownHost,
    /// The access log, if on.
    access: Option<&'static Sink>,
}

impl<S: Service> Server<S> {
    pub(crate) fn new(
        app: S,
        (config, settings): (&Config, Settings),
        ctx: Context,
        hub: Rc<ws::Hub>,
        access: Option<&'static Sink>,
    ) -> Self {
        let counters = config.metrics_path.as_ref().map(|_| &ctx.cell.counters);
        Self {
            app,
            settings,
            http: http1(config),
            h2: http2(config),
            counters,
            ctx,
            hub,
            in_flight: Cell::new(0),
            deadlines: Rc::new(Deadlines::new(crate::deadline::head_wait(config))),
            ids: Ids::new(),
            known_host: KnownHost::default(),
            access,
        }
    }

    pub(crate) fn app(&self) -> &S {
        &self.app
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(crate) fn ctx(&self) -> &Context {
        &self.ctx
    }

    /// The worker's counters, when metrics are on.
    pub(crate) fn counters(&self) -> Option<&'static Counters> {
        self.counters
    }

    pub(crate) fn deadlines(&self) -> &Rc<Deadlines> {
        &self.deadlines
    }

    /// Serves one connection until it closes. Once the worker stops
    /// (`Deadlines::stop_all`), an HTTP/1.1 connection's next response (or
    /// the one in flight) carries `Connection: close`, and an idle one
    /// closes when its keep-alive time runs out: a client never has a
    /// request cut off by the drain, even one it sent just as the worker
    /// began to stop. An HTTP/2 connection gets a GOAWAY at once; its
    /// streams in flight finish.
    pub(crate) async fn serve<IO>(
        self: Rc<Self>,
        io: IO,
        accepted: Accepted,
        _open: (OwnedSemaphorePermit, Option<OpenConnection>),
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = accepted.peer;
        let deadline = self.deadlines.open();
        let (io, h2) = match accepted.h2 {
            Some(h2) => (Prefixed::new(io, Vec::new()), h2),
            None => match sniff(io, &deadline).await {
                Ok(sniffed) => sniffed,
                Err(e) => return debug!("connection from {peer:?}: {e}"),
            },
        };
        let io = TokioIo::new(Guarded::new(io, self.counters, deadline.clone(), h2));
        let state = Rc::new(Connection {
            peer,
            admin: accepted.admin,
            secure: accepted.secure,
            subject: accepted.subject,
            closing: Cell::new(false),
            deadline,
        });
        let (server, this) = (self.clone(), state.clone());
        let svc = service_fn(move |req| server.clone().handle(req, this.clone()));
        let result = if h2 {
            if let Some(c) = self.counters {
                c.add(at::HTTP2_CONNECTIONS, 1);
            }
            let conn = self.h2.serve_connection(io, svc);
            drive(conn, &state, true, |c| c.graceful_shutdown()).await
        } else {
            let conn = self.http.serve_connection(io, svc).with_upgrades();
            let keep_alive = self.settings.keep_alive;
            drive(conn, &state, !keep_alive, |c| c.graceful_shutdown()).await
        };
        if let Err(e) = result {
            debug!("connection from {peer:?}: {e}");
        }
    }

    /// One request: the bookkeeping around [`respond`](Self::respond).
    async fn handle(
        self: Rc<Self>,
        mut req: Request<Incoming>,
        conn: Rc<Connection>,
    ) -> Result<Response<Tracked<S::Body>>, Infallible> {
        conn.deadline.stop();
        self.count_request();
        let h2 = req.version() == http::Version::HTTP_2;
        if h2 {
            authority_as_host(&mut req);
        }
        if let Some(c) = self.counters {
            c.add(
                if h2 {
                    at::HTTP2_REQUESTS
                } else {
                    at::HTTP1_REQUESTS
                },
                1,
            );
        }
        let mut fields = Fields::scan(req.headers(), &self.known_host);
        let (client, scheme) = self.forwarded(&mut req, &mut fields, conn.peer);
        let id = self.ids.id(fields.request_id.take());
        let mut done = self.track(&req, client, &id, conn.deadline.clone());
        let info = RequestInfo {
            client,
            scheme,
            secure: conn.secure,
            client_subject: conn.subject.clone(),
            root_path: self.settings.root_path,
            body_timeout: self.settings.body_timeout,
            id: id.clone(),
        };
        let mut res = self
            .respond(req, info, &fields, (conn.admin, &conn.deadline))
            .await;
        let headers = res.headers_mut();
        headers.entry(SERVER).or_insert(SERVER_NAME);
        headers.insert(&REQUEST_ID, id);
        if conn.closing.get() && !h2 {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        done.respond(&res);
        Ok(res.map(|body| done.body(body)))
    }

    /// Counts the request in the worker's cell; at `--max-requests` the
    /// worker asks to be replaced.
    fn count_request(&self) {
        let cell = self.ctx.cell;
        if Some(cell.count_request()) == self.settings.retire_at {
            cell.request_retire();
        }
    }

    /// Who is asking, after trusted proxy headers (a forwarded host
    /// replaces the request's `Host`): the client and the scheme.
    fn forwarded(
        &self,
        req: &mut Request<Incoming>,
        fields: &mut Fields,
        peer: Option<SocketAddr>,
    ) -> (Option<SocketAddr>, Option<Box<str>>) {
        if !fields.proxied {
            return (peer, None);
        }
        let forwarded = proxy::read(req.headers(), peer, &self.settings.forwarded_allow);
        if let Some(host) = &forwarded.host {
            proxy::set_host(req.headers_mut(), host);
            // The Host rule holds for the forwarded host too.
            fields.hosts = fields.hosts.max(1);
            fields.host_valid &= fields::is_host(host.as_bytes());
        }
        let client = forwarded.client.or(peer);
        (client, forwarded.proto.map(String::into_boxed_str))
    }

    /// The bookkeeping for when the response is done: the metrics and the
    /// access log, if on, with one clock reading for both.
    fn track(
        &self,
        req: &Request<Incoming>,
        client: Option<SocketAddr>,
        id: &HeaderValue,
        deadline: Arc<Deadline>,
    ) -> Done {
        let started = (self.access.is_some() || self.counters.is_some()).then(Instant::now);
        let log = self.access.zip(started).map(|(sink, started)| {
            let slot = self.ctx.slot;
            let record = Record::new(req, client, id.clone(), &sink.format, slot, started);
            (Box::new(record), sink)
        });
        let observe = self
            .counters
            .zip(started)
            .map(|(counters, started)| Observe {
                counters,
                method: method_index(req.method().as_str()),
                status: 0,
                started,
            });
        Done::new(deadline, observe, log)
    }
}

/// An HTTP/2 request names its host in `:authority` (the URI), where the
/// app and the `Host` rule look for a `Host` field: one is added from it.
fn authority_as_host<B>(req: &mut Request<B>) {
    if req.headers().contains_key(http::header::HOST) {
        return;
    }
    let host = req
        .uri()
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    if let Some(host) = host {
        req.headers_mut().insert(http::header::HOST, host);
    }
}

/// Drives one connection until it closes; once the worker stops, marks it
/// closing and, if `shut`, calls `shutdown` on it (a graceful shutdown:
/// HTTP/1.1 closes once idle, HTTP/2 sends GOAWAY).
async fn drive<C, E>(
    conn: C,
    state: &Connection,
    shut: bool,
    shutdown: impl Fn(std::pin::Pin<&mut C>),
) -> Result<(), E>
where
    C: Future<Output = Result<(), E>>,
{
    let mut conn = pin!(conn);
    poll_fn(|cx| {
        if !state.closing.get() && state.deadline.poll_stopping(cx) {
            state.closing.set(true);
            if shut {
                shutdown(conn.as_mut());
            }
        }
        conn.as_mut().poll(cx)
    })
    .await
}

/// One connection, as each of its requests sees it.
struct Connection {
    peer: Option<SocketAddr>,
    /// On the `--metrics-bind` address: only ferricorn's own endpoints.
    admin: bool,
    /// Over TLS.
    secure: bool,
    /// A verified client certificate's subject.
    subject: Option<Arc<str>>,
    /// The worker is stopping: answer with `Connection: close`.
    closing: Cell<bool>,
    deadline: Arc<Deadline>,
}
