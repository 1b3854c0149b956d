//! The demo app the `ferricorn` binary serves.
//!
//! | route                 | answer                                              |
//! |-----------------------|-----------------------------------------------------|
//! | `GET /`               | `Hello, World!` as text/plain                       |
//! | `GET /json`           | `{"message":"Hello, World!"}`                       |
//! | `POST /echo`          | the request body streamed back, same content type   |
//! | `GET /stream?n=N`     | N lines, chunked, each flushed as it is produced    |
//! | `GET /blocking?ms=N`  | sleeps N ms on the blocking pool, names its thread  |
//! | `GET /worker`         | `{"pid":…,"slot":…,"requests":…}` of this worker   |
//! | `GET /whoami`         | the client address, scheme, host, root path and TLS client subject the app sees |
//! | `GET /ws/echo`        | WebSocket: echoes every text and binary message     |
//! | `GET /ws/sink`        | WebSocket: accepts and never reads (back-pressure)  |
//! | `GET /ws/chat/{room}` | WebSocket: a chat room spanning every worker (see `chat`) |
//! | `POST /rooms/{room}`, `GET /rooms/{room}` | send to a room; its member count |
//! | `GET /chat`           | a chat page for people                              |
//!
//! It also shows the app's own metrics, served in `/metrics` summed over
//! the workers: `demo_echo_requests_total` (a counter), `demo_blocking_seconds`
//! (a histogram of `/blocking` sleeps), `demo_workers_started` (a gauge each
//! worker sets to 1 after startup) and `demo_websockets_open` (a gauge).
//!
//! Two environment variables exercise the server's failure handling:
//! `FERRICORN_DEMO_FAIL_STARTUP=MESSAGE` makes lifespan startup fail with
//! MESSAGE (the server exits 3), and `FERRICORN_DEMO_CRASH_AFTER_BOOT=1`
//! makes every worker exit with code 1 right after it booted (the supervisor
//! backs off). `FERRICORN_DEMO_STARTUP_DELAY_MS=N` makes startup take N ms
//! (for `--boot-timeout`). `FERRICORN_DEMO_BLOCKING_ROUTE=1` adds
//! `GET /block-loop?ms=N`, which blocks the worker's event loop for N ms, as a
//! buggy handler would (for `--timeout`); never enable it in production.

use std::time::Duration;

use http::header::{CONTENT_TYPE, EXPECT};
use http::{Method, StatusCode};
use http_body_util::BodyExt;

use crate::reply::{json, method_not_allowed, status, text};
use ferricorn::{
    App, Body, BoxError, Context, Counter, Gauge, Histogram, Message, Request, Response,
    WebSocketUpgrade,
};

/// Counts one open socket in a gauge while it lives.
struct Open(Gauge);

impl Open {
    fn new(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Most lines `/stream` sends.
const MAX_LINES: u64 = 100_000;
/// Longest sleep `/blocking` takes, in ms.
const MAX_SLEEP_MS: u64 = 60_000;

/// The demo app.
#[derive(Debug, Clone)]
pub(crate) struct Demo {
    ctx: Context,
    metrics: Result<Metrics, String>,
}

/// The demo's own metrics.
#[derive(Debug, Clone)]
struct Metrics {
    echoes: Counter,
    blocking: Histogram,
    started: Gauge,
    websockets: Gauge,
}

impl Metrics {
    fn register(ctx: &Context) -> Result<Self, ferricorn::Error> {
        Ok(Self {
            echoes: ctx.counter("demo_echo_requests_total", "POST /echo requests.")?,
            blocking: ctx.histogram(
                "demo_blocking_seconds",
                "Time /blocking slept on the blocking pool.",
                &[0.001, 0.01, 0.1, 1.0, 10.0],
            )?,
            started: ctx.gauge(
                "demo_workers_started",
                "Workers whose demo app finished startup.",
            )?,
            websockets: ctx.gauge("demo_websockets_open", "Open /ws/echo sockets.")?,
        })
    }
}

/// The factory given to `ferricorn::run`.
pub(crate) fn app(ctx: &Context) -> Demo {
    Demo {
        ctx: ctx.clone(),
        metrics: Metrics::register(ctx).map_err(|e| e.to_string()),
    }
}

impl App for Demo {
    async fn startup(&self) -> Result<(), BoxError> {
        let metrics = self.metrics.as_ref().map_err(|e| e.clone())?;
        metrics.started.set(1.0);
        if let Ok(message) = std::env::var("FERRICORN_DEMO_FAIL_STARTUP") {
            return Err(format!("demo startup failed: {message}").into());
        }
        let delay = std::env::var("FERRICORN_DEMO_STARTUP_DELAY_MS").ok();
        if let Some(ms) = delay.and_then(|ms| ms.parse().ok()) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if std::env::var_os("FERRICORN_DEMO_CRASH_AFTER_BOOT").is_some() {
            tokio::task::spawn_local(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                std::process::exit(1);
            });
        }
        Ok(())
    }

    async fn websocket(&self, upgrade: WebSocketUpgrade) -> Response {
        let path = upgrade.request().uri.path().to_owned();
        if let Some(room) = crate::chat::room(&path, "/ws/chat/") {
            let room = room.to_owned();
            return crate::chat::websocket(&self.ctx, upgrade, room);
        }
        match path.as_str() {
            "/ws/echo" => {}
            // Holds the socket without reading: the client's sends stall once
            // --ws-max-queue messages wait, instead of filling memory.
            "/ws/sink" => {
                return upgrade.accept(|socket| async move {
                    let _socket = socket;
                    std::future::pending::<()>().await;
                });
            }
            _ => return upgrade.reject(StatusCode::NOT_FOUND),
        }
        // Echo chooses the first subprotocol the client offers, if any.
        let upgrade = match upgrade.protocols().first().cloned() {
            Some(p) => upgrade.protocol(&p),
            None => upgrade,
        };
        let open = self.metrics.as_ref().ok().map(|m| m.websockets.clone());
        upgrade.accept(|mut socket| async move {
            let _open = open.map(Open::new);
            while let Some(message) = socket.recv().await {
                if matches!(message, Message::Close(_)) || socket.send(message).await.is_err() {
                    break;
                }
            }
        })
    }

    async fn shutdown(&self) {
        tracing::info!("demo app: lifespan shutdown in worker {}", self.ctx.slot());
    }

    async fn call(&self, req: Request) -> Response {
        let get = matches!(*req.method(), Method::GET | Method::HEAD);
        if let Some(room) = crate::chat::room(req.uri().path(), "/rooms/") {
            let room = room.to_owned();
            return match *req.method() {
                Method::POST => crate::chat::publish(&self.ctx, &room, req).await,
                _ if get => crate::chat::count(&self.ctx, &room).await,
                _ => method_not_allowed("GET, HEAD, POST"),
            };
        }
        if let Some(id) = req.uri().path().strip_prefix("/connections/") {
            let id = id.to_owned();
            return match *req.method() {
                Method::POST => crate::chat::direct(&self.ctx, &id, req).await,
                _ => method_not_allowed("POST"),
            };
        }
        match (req.uri().path(), get) {
            ("/", true) => text("Hello, World!"),
            ("/chat", true) => crate::chat::page(),
            ("/json", true) => json(r#"{"message":"Hello, World!"}"#),
            ("/echo", _) if req.method() == Method::POST => {
                if let Ok(m) = &self.metrics {
                    m.echoes.inc();
                }
                echo(req).await
            }
            ("/stream", true) => self.stream(&req),
            ("/blocking", true) => self.blocking(&req).await,
            ("/block-loop", true)
                if std::env::var_os("FERRICORN_DEMO_BLOCKING_ROUTE").is_some() =>
            {
                match number(&req, "ms", 0, MAX_SLEEP_MS) {
                    Ok(ms) => {
                        std::thread::sleep(Duration::from_millis(ms));
                        text("unblocked")
                    }
                    Err(res) => *res,
                }
            }
            ("/whoami", true) => whoami(&req),
            ("/worker", true) => json(format!(
                r#"{{"pid":{},"slot":{},"requests":{}}}"#,
                self.ctx.pid(),
                self.ctx.slot(),
                self.ctx.requests()
            )),
            ("/" | "/json" | "/stream" | "/blocking" | "/worker" | "/whoami" | "/chat", false) => {
                method_not_allowed("GET, HEAD")
            }
            ("/echo", _) => method_not_allowed("POST"),
            _ => status(StatusCode::NOT_FOUND, "Not Found\n"),
        }
    }
}

impl Demo {
    fn stream(&self, req: &Request) -> Response {
        let n = match number(req, "n", 10, MAX_LINES) {
            Ok(n) => n,
            Err(res) => return *res,
        };
        let (tx, body) = Body::channel();
        tokio::task::spawn_local(async move {
            for i in 1..=n {
                if tx.send(format!("line {i}\n")).await.is_err() {
                    break;
                }
            }
        });
        text(body)
    }

    async fn blocking(&self, req: &Request) -> Response {
        let ms = match number(req, "ms", 0, MAX_SLEEP_MS) {
            Ok(ms) => ms,
            Err(res) => return *res,
        };
        if let Ok(m) = &self.metrics {
            m.blocking.observe(ms as f64 / 1000.0);
        }
        let name = self
            .ctx
            .blocking(move || {
                std::thread::sleep(Duration::from_millis(ms));
                std::thread::current()
                    .name()
                    .unwrap_or("unnamed")
                    .to_owned()
            })
            .await;
        match name {
            Ok(name) => text(name),
            Err(e) => status(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
        }
    }
}

/// Streams the request body back. A client that sent `Expect: 100-continue`
/// waits for the 100 before sending its body, and hyper sends the 100 when the
/// body is first read: so read the first chunk before answering. That also
/// answers a chunked body that is malformed from its first chunk with 400.
async fn echo(req: Request) -> Response {
    let (parts, mut body) = req.into_parts();
    let body = if parts.headers.contains_key(EXPECT) || is_chunked(&parts.headers) {
        let first = match body.frame().await {
            Some(Err(e)) => {
                let message = format!("malformed request body: {e}\n");
                return status(StatusCode::BAD_REQUEST, &message);
            }
            first => first,
        };
        let (tx, out) = Body::channel();
        tokio::task::spawn_local(async move {
            let mut next = first;
            while let Some(Ok(frame)) = next {
                if let Ok(data) = frame.into_data()
                    && tx.send(data).await.is_err()
                {
                    return;
                }
                next = body.frame().await;
            }
        });
        out
    } else {
        body
    };
    let mut res = Response::new(body);
    if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
        res.headers_mut().insert(CONTENT_TYPE, ct.clone());
    }
    res
}

/// What the app sees of the client, after trusted proxy headers.
fn whoami(req: &Request) -> Response {
    let info = req.body().info();
    let client = info
        .and_then(ferricorn::RequestInfo::client)
        .map_or_else(|| "unix".to_owned(), |a| a.to_string());
    let scheme = info.map_or("http", ferricorn::RequestInfo::scheme);
    let root = info.map_or("", ferricorn::RequestInfo::root_path);
    let id = info.map_or("", ferricorn::RequestInfo::id);
    let subject = info.and_then(ferricorn::RequestInfo::client_subject);
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    json(format!(
        r#"{{"client":{client:?},"scheme":{scheme:?},"host":{host:?},"root_path":{root:?},"id":{id:?},"client_subject":{}}}"#,
        subject.map_or_else(|| "null".to_owned(), |s| format!("{s:?}"))
    ))
}

fn is_chunked(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::TRANSFER_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"))
}

/// The query parameter `key` as a number up to `max`, or a 400 response.
fn number(req: &Request, key: &str, default: u64, max: u64) -> Result<u64, Box<Response>> {
    let raw = req.uri().query().unwrap_or("").split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    });
    match raw.map(str::parse::<u64>) {
        None => Ok(default),
        Some(Ok(n)) if n <= max => Ok(n),
        _ => Err(Box::new(status(
            StatusCode::BAD_REQUEST,
            &format!("query parameter `{key}` must be a whole number from 0 to {max}\n"),
        ))),
    }
}
