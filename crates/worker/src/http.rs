//! Serving one connection with hyper's HTTP/1.1: the limits, ferricorn's own
//! health endpoints, the app, and a graceful close on shutdown.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use ferricorn_config::Config;
use ferricorn_shm::metrics::{Counters, at, method_index};
use ferricorn_shm::{Cell as ShmCell, Shared};
use http::header::{CONNECTION, CONTENT_TYPE, HeaderValue, SERVER};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, error, warn};

use crate::access::{self, Logged, Observe};
use crate::deadline::{Deadline, Deadlines};
use crate::fields::Fields;
use crate::framing::Guarded;
use crate::proxy;
use crate::ws::{self, WebSocketUpgrade};
use crate::{RequestInfo, Service, limits};

const SERVER_NAME: HeaderValue = HeaderValue::from_static("ferricorn");
const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// What every connection of one worker shares.
pub(crate) struct Server<S> {
    pub app: S,
    pub http: http1::Builder,
    pub config: Config,
    pub shared: Shared,
    /// This worker's cell id.
    pub cell: usize,
    pub slot: Option<&'static ShmCell>,
    /// The request count at which the worker asks to be replaced.
    pub retire_at: Option<u64>,
    /// What the worker's WebSockets share.
    pub hub: Rc<ws::Hub>,
    /// Requests whose handler has not yet returned its response head.
    pub in_flight: Cell<usize>,
    /// The access log, if on.
    pub access: Option<&'static access::Sink>,
    /// This worker's slot index.
    pub index: usize,
    /// This worker's counters, when metrics are on.
    pub counters: Option<&'static Counters>,
    /// `--root-path`, shared by every request.
    pub root_path: &'static str,
    /// Every connection's head deadline.
    pub deadlines: Rc<Deadlines>,
    /// Makes the request ids.
    pub ids: access::Ids,
}

impl<S: Service> Server<S> {
    /// hyper's HTTP/1.1 settings from the config. (The head deadline is
    /// ferricorn's own: see `deadline`.)
    ///
    /// Half-closed connections are allowed: a client may end its sending
    /// side after its request and still get the response. It also keeps
    /// hyper from reading the socket for an EOF while a handler runs, a
    /// read that costs a new 8 KiB read buffer per request (the old one is
    /// still held by the request's head). As under Uvicorn, a handler whose
    /// client has gone runs to its end (or to `--request-timeout`) before
    /// the connection closes.
    pub(crate) fn http(config: &Config) -> http1::Builder {
        let mut b = http1::Builder::new();
        let max_head = config.limits.max_head();
        b.half_close(true)
            .keep_alive(config.keep_alive.is_some())
            .max_headers(config.limits.request_fields)
            .max_header_size(max_head)
            .max_buf_size(max_head.max(8192));
        b
    }

    /// Serves one connection until it closes. Once the worker stops
    /// (`Deadlines::stop_all`), its next
    /// response (or the one in flight) carries `Connection: close`, and an
    /// idle connection closes when its keep-alive time runs out: a client
    /// never has a request cut off by the drain, even one it sent just as
    /// the worker began to stop.
    pub(crate) async fn serve<IO>(
        self: Rc<Self>,
        io: IO,
        peer: Option<SocketAddr>,
        _open: (OwnedSemaphorePermit, Option<OpenConnection>),
        admin: bool,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let deadline = self.deadlines.open();
        let io = Guarded::new(io, self.counters, deadline.clone());
        let state = Rc::new(Connection {
            peer,
            admin,
            closing: Cell::new(false),
            deadline,
        });
        let (server, this) = (self.clone(), state.clone());
        let svc = service_fn(move |req| server.clone().handle(req, this.clone()));
        let conn = self
            .http
            .serve_connection(TokioIo::new(io), svc)
            .with_upgrades();
        let mut conn = pin!(conn);
        let result = poll_fn(|cx| {
            if !state.closing.get() && state.deadline.poll_stopping(cx) {
                state.closing.set(true);
                if self.config.keep_alive.is_none() {
                    conn.as_mut().graceful_shutdown();
                }
            }
            conn.as_mut().poll(cx)
        })
        .await;
        if let Err(e) = result {
            debug!("connection from {peer:?}: {e}");
        }
    }

    async fn handle(
        self: Rc<Self>,
        mut req: Request<Incoming>,
        conn: Rc<Connection>,
    ) -> Result<Response<Logged<S::Body>>, Infallible> {
        let head = conn.deadline.stop();
        let peer = conn.peer;
        if let Some(slot) = self.slot
            && Some(slot.count_request()) == self.retire_at
        {
            slot.request_retire();
        }
        let mut fields = Fields::scan(req.headers());
        // Who is asking, after trusted proxy headers, and the request's id.
        let forwarded = if fields.proxied {
            proxy::read(req.headers(), peer, &self.config.forwarded_allow)
        } else {
            proxy::Forwarded::default()
        };
        if let Some(host) = &forwarded.host {
            proxy::set_host(req.headers_mut(), host);
            // The Host rule holds for the forwarded host too.
            fields.hosts = fields.hosts.max(1);
            fields.host_valid &= crate::fields::is_host(host.as_bytes());
        }
        let client = forwarded.client.or(peer);
        let id = self.ids.id(fields.request_id.take());
        // One clock reading for the access log and the metrics, if either is on.
        let started = (self.access.is_some() || self.counters.is_some()).then(Instant::now);
        let record = self.access.zip(started).map(|(sink, started)| {
            let (format, index) = (&sink.format, self.index);
            let record = access::Record::new(&req, client, id.clone(), format, index, started);
            (Box::new(record), sink)
        });
        let mut observe = self
            .counters
            .zip(started)
            .map(|(counters, started)| Observe {
                counters,
                method: method_index(req.method().as_str()),
                status: 0,
                started,
            });
        let info = RequestInfo {
            client,
            scheme: forwarded.proto.map(String::into_boxed_str),
            root_path: self.root_path,
            body_timeout: self.config.header_timeout,
            id: id.clone(),
        };
        let mut res = self.respond(req, info, &fields, conn.admin).await;
        let headers = res.headers_mut();
        headers.entry(SERVER).or_insert(SERVER_NAME);
        headers.insert(&access::REQUEST_ID, id);
        if conn.closing.get() {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        let record = record.map(|(mut r, sink)| {
            r.respond(res.status(), res.headers(), &sink.format);
            (r, sink)
        });
        if let Some(o) = &mut observe {
            o.status = res.status().as_u16();
        }
        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            conn.deadline.upgrade();
        }
        let deadline = Some((conn.deadline.clone(), head));
        Ok(res.map(|body| Logged::new(body, record, observe, deadline)))
    }

    /// The limits, ferricorn's own endpoints, then the app. On the metrics
    /// address (`admin`) only ferricorn's own endpoints answer.
    async fn respond(
        &self,
        req: Request<Incoming>,
        info: RequestInfo,
        fields: &Fields,
        admin: bool,
    ) -> Response<S::Body> {
        if let Some(status) = limits::check(&req, fields, &self.config.limits) {
            let mut res = text(status, status.canonical_reason().unwrap_or("Bad Request"));
            res.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return res;
        }
        let path = req.uri().path();
        if self.config.health_path.as_deref() == Some(path) {
            return text(StatusCode::OK, "ok");
        }
        if self.config.ready_path.as_deref() == Some(path) {
            return match self.shared.is_ready() {
                Ok(()) => text(StatusCode::OK, "ready"),
                Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, &why.to_string()),
            };
        }
        if self.config.metrics_path.as_deref() == Some(path)
            && (admin || self.config.metrics_bind.is_none())
        {
            let mut res = text(StatusCode::OK, &crate::exposition::render(self.shared));
            res.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            return res;
        }
        if admin {
            return text(StatusCode::NOT_FOUND, "Not Found\n");
        }
        if fields.upgrade && self.app.handles_websockets() {
            match ws::check(&req) {
                ws::Check::NotUpgrade => {}
                ws::Check::Refuse(status, why) => {
                    let mut res = text(status, why);
                    if status == StatusCode::UPGRADE_REQUIRED {
                        res.headers_mut().insert(
                            http::header::SEC_WEBSOCKET_VERSION,
                            HeaderValue::from_static("13"),
                        );
                    }
                    return res;
                }
                ws::Check::Upgrade(key) => {
                    let upgrade = WebSocketUpgrade::new(req, key, info, self.hub.clone());
                    // Boxed: once per WebSocket, where inline it would
                    // grow every request's future by its size.
                    let accept = Box::pin(self.app.websocket(upgrade));
                    return match catch_panic(accept).await {
                        Ok(res) => res,
                        Err(()) => {
                            error!(
                                "the app panicked while handling a WebSocket upgrade; answered 500"
                            );
                            text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
                        }
                    };
                }
            }
        }
        if self
            .config
            .limit_concurrency
            .is_some_and(|limit| self.in_flight.get() >= limit)
        {
            let mut res = text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n");
            res.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            return res;
        }
        let _in_flight = InFlight::new(&self.in_flight);
        // Made where it is pinned, once: the layers around it hold a
        // reference, not a copy of what can be a large future.
        let mut call = pin!(self.app.call(req, info));
        let call = catch_panic(call.as_mut());
        let outcome = match self.config.request_timeout {
            Some(limit) => tokio::time::timeout(limit, call).await.ok(),
            None => Some(call.await),
        };
        match outcome {
            Some(Ok(res)) => res,
            Some(Err(())) => {
                error!("the app panicked while handling a request; answered 500");
                text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
            None => {
                warn!("a handler ran past request-timeout; cancelled it and answered 504");
                text(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout\n")
            }
        }
    }
}

/// One connection, as each of its requests sees it.
struct Connection {
    peer: Option<SocketAddr>,
    /// On the `--metrics-bind` address: only ferricorn's own endpoints.
    admin: bool,
    /// The worker is stopping: answer with `Connection: close`.
    closing: Cell<bool>,
    deadline: Arc<Deadline>,
}

/// Counts a request in flight while it lives.
struct InFlight<'a>(&'a Cell<usize>);

impl<'a> InFlight<'a> {
    fn new(count: &'a Cell<usize>) -> Self {
        count.set(count.get() + 1);
        Self(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Counts a connection open in the worker's cell while it lives; made at
/// accept time, so a burst of accepts is counted before any is served.
pub(crate) struct OpenConnection(&'static ShmCell);

impl OpenConnection {
    pub(crate) fn new(cell: &'static ShmCell) -> Self {
        cell.count_connection(true);
        Self(cell)
    }

    /// A connection just accepted: also counted as accepted.
    pub(crate) fn accepted(cell: &'static ShmCell) -> Self {
        cell.counters.add(at::ACCEPTED, 1);
        Self::new(cell)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.count_connection(false);
    }
}

/// A short plain-text response.
fn text<B: From<Bytes>>(status: StatusCode, body: &str) -> Response<B> {
    let mut res = Response::new(B::from(Bytes::copy_from_slice(body.as_bytes())));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, TEXT_PLAIN);
    headers.insert(SERVER, SERVER_NAME);
    res
}

/// Runs `fut`, turning a panic while it is polled into `Err`.
async fn catch_panic<F: Future>(fut: F) -> Result<F::Output, ()> {
    let mut fut = pin!(fut);
    poll_fn(
        move |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::catch_panic;

    #[test]
    fn a_panicking_handler_becomes_an_error_not_a_dead_worker() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let caught = rt.block_on(catch_panic(async {
            tokio::task::yield_now().await;
            panic!("handler bug")
        }));
        assert!(caught.is_err());
        assert_eq!(rt.block_on(catch_panic(async { 7 })), Ok(7));
    }
}
