//! WebSocket: the upgrade an app accepts or rejects, the socket it gets, and
//! the tasks that drive each socket.
//!
//! An accepted socket is driven by two tasks: a writer that sends what the
//! app (and the server: pings, closes) queue, and a reader that hands
//! messages to the app through a queue of `--ws-max-queue` messages. When the
//! queue is full, the reader stops reading, so a slow app slows its client
//! (TCP back-pressure) instead of growing a buffer. The reader also pings a
//! silent client every `--ws-ping-interval` and closes one that does not
//! answer within `--ws-ping-timeout`, closes with 1009 on a message over
//! `--ws-max-size`, and, when the worker stops, closes with 1001 (the server
//! is shutting down) or 1012 (only this worker is being replaced). Each
//! socket holds one of the worker's connection permits until it is closed,
//! so `--worker-connections` and the drain count it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferricorn_channels::{Channels, ConnectionId, Mailbox, Member, Next, Payload};
use ferricorn_shm::metrics::at;
use ferricorn_shm::{Shared, WorkerCell};
use futures_util::{SinkExt, StreamExt};
use http::header::{
    CONNECTION, HeaderMap, HeaderName, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::{Semaphore, watch};
use tokio::task::spawn_local;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Error as WsError, Message as WsMessage};
use tracing::debug;

use crate::RequestInfo;
use crate::counted::{OpenConnection, OpenWebSocket};
use crate::deadline::{Deadline, Hold};
use crate::queue;

/// What tungstenite reads at most per `read(2)`, and the read buffer every
/// socket keeps. It zeroes that much of its buffer before every read,
/// including the last one that finds nothing (its default of 128 KiB made
/// two 128 KiB memsets per echoed message). 4 KiB rather than 16: a chat
/// server holds thousands of idle members, and 12 KiB less each halves
/// their memory (benches/fanout.sh); a large message takes more reads.
const READ_BUFFER: usize = 4 * 1024;

/// How long the server waits for the client's close frame after its own.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A message received from or sent to a WebSocket client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Bytes),
    /// The client closed the socket (code and reason, if it gave them); or,
    /// sent, close the socket with this code and reason.
    Close(Option<(u16, String)>),
}

/// What was sent could not be taken: the WebSocket, or the response body
/// being streamed, is closed (the client is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("closed: the client is gone")]
pub struct Closed;

/// What every WebSocket of a worker shares.
#[derive(Debug)]
pub(crate) struct Hub {
    pub permits: Arc<Semaphore>,
    pub cell: &'static WorkerCell,
    pub shared: Shared,
    pub stop: watch::Receiver<bool>,
    pub settings: ferricorn_config::WebSocket,
    pub channels: Channels,
}

/// What a request says about upgrading to a WebSocket.
#[derive(Debug)]
pub(crate) enum Check {
    /// An ordinary request.
    NotUpgrade,
    /// A valid upgrade request with its key; `None`: an HTTP/2 extended
    /// CONNECT (RFC 8441), which has none.
    Upgrade(Option<HeaderValue>),
    /// An upgrade request that cannot be served: answer this.
    Refuse(StatusCode, &'static str),
}

/// Whether `req` asks for a WebSocket (RFC 6455 section 4.2.1, or over
/// HTTP/2, RFC 8441 section 4: `CONNECT` with `:protocol` `websocket`).
pub(crate) fn check<B>(req: &Request<B>) -> Check {
    let headers = req.headers();
    if req.version() == Version::HTTP_2 {
        let websocket = req.method() == Method::CONNECT
            && req
                .extensions()
                .get::<hyper::ext::Protocol>()
                .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
        if !websocket {
            return Check::NotUpgrade;
        }
        if headers.get(SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13") {
            return Check::Refuse(
                StatusCode::UPGRADE_REQUIRED,
                "only WebSocket version 13 is supported\n",
            );
        }
        return Check::Upgrade(None);
    }
    let has_token = |name: HeaderName, token: &str| {
        crate::list_items(headers, &name).any(|t| t.eq_ignore_ascii_case(token))
    };
    if !has_token(UPGRADE, "websocket") {
        return Check::NotUpgrade;
    }
    if req.method() != Method::GET
        || req.version() != Version::HTTP_11
        || !has_token(CONNECTION, "upgrade")
    {
        return Check::Refuse(
            StatusCode::BAD_REQUEST,
            "a WebSocket upgrade needs GET, HTTP/1.1 and Connection: Upgrade\n",
        );
    }
    if headers.get(SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13") {
        return Check::Refuse(
            StatusCode::UPGRADE_REQUIRED,
            "only WebSocket version 13 is supported\n",
        );
    }
    match headers.get(SEC_WEBSOCKET_KEY) {
        Some(key) if key.len() == 24 => Check::Upgrade(Some(key.clone())),
        _ => Check::Refuse(
            StatusCode::BAD_REQUEST,
            "missing or malformed Sec-WebSocket-Key\n",
        ),
    }
}

/// A request to open a WebSocket. The app either [`accept`](Self::accept)s
/// it, optionally choosing a subprotocol and adding headers, or answers it
/// with any ordinary response, such as [`reject`](Self::reject).
#[derive(Debug)]
pub struct WebSocketUpgrade {
    parts: http::request::Parts,
    /// `None` over HTTP/2.
    key: Option<HeaderValue>,
    /// Over HTTP/2, the connection's head deadline: held (no idle wait)
    /// while the socket lives on one of its streams.
    hold: Option<Arc<Deadline>>,
    on_upgrade: OnUpgrade,
    info: RequestInfo,
    protocol: Option<String>,
    headers: HeaderMap,
    hub: Rc<Hub>,
}

impl WebSocketUpgrade {
    pub(crate) fn new(
        mut req: Request<hyper::body::Incoming>,
        (key, hold): (Option<HeaderValue>, Option<Arc<Deadline>>),
        info: RequestInfo,
        hub: Rc<Hub>,
    ) -> Self {
        let on_upgrade = hyper::upgrade::on(&mut req);
        let (parts, _body) = req.into_parts();
        Self {
            parts,
            key,
            hold,
            on_upgrade,
            info,
            protocol: None,
            headers: HeaderMap::new(),
            hub,
        }
    }

    /// The upgrade request: method, URI (path and query), headers.
    pub fn request(&self) -> &http::request::Parts {
        &self.parts
    }

    /// The client's address, as [`RequestInfo::client`].
    pub fn client(&self) -> Option<SocketAddr> {
        self.info.client
    }

    /// What ferricorn knows of the upgrade request beyond its head.
    pub fn info(&self) -> &RequestInfo {
        &self.info
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn protocols(&self) -> Vec<String> {
        crate::list_items(&self.parts.headers, &SEC_WEBSOCKET_PROTOCOL)
            .map(str::to_owned)
            .collect()
    }

    /// Chooses one of the offered subprotocols; one not offered is ignored.
    pub fn protocol(mut self, protocol: &str) -> Self {
        if self.protocols().iter().any(|p| p == protocol) {
            self.protocol = Some(protocol.to_owned());
        }
        self
    }

    /// Adds a header to the 101 response.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Answers with an empty response of `status` instead of upgrading.
    pub fn reject<B: Default>(self, status: StatusCode) -> Response<B> {
        let mut res = Response::new(B::default());
        *res.status_mut() = status;
        res
    }

    /// Accepts: returns the 101 response (over HTTP/2, a 200 that opens
    /// the stream), and once it is sent, runs `handler` with the socket.
    pub fn accept<B, F, Fut>(self, handler: F) -> Response<B>
    where
        B: Default,
        F: FnOnce(WebSocket) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let mut res = Response::new(B::default());
        let headers = res.headers_mut();
        if let Some(key) = &self.key {
            let accept_key = tungstenite::handshake::derive_accept_key(key.as_bytes());
            headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
            if let Ok(v) = HeaderValue::from_str(&accept_key) {
                headers.insert(SEC_WEBSOCKET_ACCEPT, v);
            }
            *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        }
        let headers = res.headers_mut();
        if let Some(v) = self
            .protocol
            .as_deref()
            .and_then(|p| HeaderValue::from_str(p).ok())
        {
            headers.insert(SEC_WEBSOCKET_PROTOCOL, v);
        }
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        let (hub, on_upgrade, protocol) = (self.hub, self.on_upgrade, self.protocol);
        let hold = self.hold.map(Hold::new);
        spawn_local(async move {
            let _hold = hold;
            // Hold a connection slot for the socket's whole life.
            let Ok(_permit) = hub.permits.clone().acquire_owned().await else {
                return;
            };
            let _open = OpenConnection::new(hub.cell);
            let upgraded = match on_upgrade.await {
                Ok(u) => u,
                Err(e) => return debug!("WebSocket upgrade failed: {e}"),
            };
            let _counted = OpenWebSocket::new(hub.cell);
            let config = WebSocketConfig::default()
                .read_buffer_size(READ_BUFFER)
                .max_message_size(Some(hub.settings.max_size))
                .max_frame_size(Some(hub.settings.max_size));
            let stream = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config),
            )
            .await;
            drive(stream, handler, protocol, &hub).await;
        });
        res
    }
}

/// An open WebSocket, as the app sees it.
#[derive(Debug)]
pub struct WebSocket {
    incoming: queue::Receiver<Message>,
    outgoing: queue::Sender<Out>,
    protocol: Option<String>,
    member: Member,
}

impl WebSocket {
    /// The next message; `None` once the socket is closed. After a
    /// [`Message::Close`], nothing more arrives.
    pub async fn recv(&mut self) -> Option<Message> {
        self.incoming.recv().await
    }

    /// Sends a message; [`Message::Close`] closes the socket.
    pub async fn send(&self, message: Message) -> Result<(), Closed> {
        let out = match message {
            Message::Text(t) => Out::Frame(WsMessage::text(t)),
            Message::Binary(b) => Out::Frame(WsMessage::Binary(b)),
            Message::Close(None) => Out::Close(CloseCode::Normal, String::new()),
            Message::Close(Some((code, reason))) => Out::Close(CloseCode::from(code), reason),
        };
        self.outgoing.send(out).await.map_err(|_| Closed)
    }

    /// The subprotocol chosen when the socket was accepted.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The socket's id in the channel layer: what [`Channels::send_to`]
    /// takes, from any worker.
    pub fn id(&self) -> ConnectionId {
        self.member.id()
    }

    /// Joins `group`: every message sent to it, from any worker, is written
    /// to this socket by the server itself, in order, through the socket's
    /// queue of `--channel-capacity` messages. The socket leaves its groups
    /// when it closes.
    pub fn join(&self, group: &str) {
        self.member.join(group);
    }

    /// Leaves `group`.
    pub fn leave(&self, group: &str) {
        self.member.leave(group);
    }

    /// The app path: `group`'s messages come to the app, one by one, to
    /// forward as it decides (with [`send`](Self::send)), instead of being
    /// written by the server. The subscription counts as the group's member
    /// while it lives.
    pub fn subscribe(&self, group: &str) -> ferricorn_channels::Subscription {
        self.member.layer().subscribe(group)
    }

    /// The channel layer, to send to groups and count them.
    pub fn channels(&self) -> &Channels {
        self.member.layer()
    }
}

/// What the writer task sends.
#[derive(Debug)]
enum Out {
    Frame(WsMessage),
    Close(CloseCode, String),
}

type Stream = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Runs one socket: the app's handler, the writer, and the reader (here).
async fn drive<F, Fut>(stream: Stream, handler: F, protocol: Option<String>, hub: &Hub)
where
    F: FnOnce(WebSocket) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let queue = hub.settings.max_queue;
    let (sink, mut source) = stream.split();
    let (to_app, incoming) = queue::channel(queue);
    let (out, outgoing) = queue::channel(queue);
    let member = hub.channels.member();
    let mailbox = member.mailbox().clone();
    let socket = WebSocket {
        incoming,
        outgoing: out.clone(),
        protocol,
        member,
    };
    let app = spawn_local(handler(socket));
    let writer = spawn_local(write(sink, outgoing, mailbox, hub.cell));
    let sent_close = read(&mut source, &out, &to_app, hub).await;
    drop((out, to_app));
    if sent_close {
        // Let the writer send the close frame it was given.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, &mut { writer }).await;
    } else {
        // The client is gone or the close handshake is done: stop writing.
        writer.abort();
    }
    drop(app);
}

/// Writes what the app and the server queue, and the channel layer's
/// messages for this socket (its mailbox); a mailbox that overflowed under
/// `--channel-overflow close` closes the socket with 1013 (try again later).
async fn write(
    mut sink: futures_util::stream::SplitSink<Stream, WsMessage>,
    mut outgoing: queue::Receiver<Out>,
    mailbox: std::rc::Rc<Mailbox>,
    cell: &'static WorkerCell,
) {
    loop {
        // When the channel message being written was published.
        let mut published = None;
        // What the app queued first: a frame it sent before its socket
        // joined a group goes out before the group's messages.
        let out = tokio::select! {
            biased;
            out = outgoing.recv() => match out {
                Some(out) => out,
                None => break,
            },
            next = mailbox.next() => match next {
                Next::Message(envelope) => {
                    let frame = match &envelope.payload {
                        Payload::Text(t) => WsMessage::text(t.as_str()),
                        Payload::Binary(b) => WsMessage::Binary(b.clone()),
                    };
                    published = Some(envelope.published);
                    Out::Frame(frame)
                }
                Next::Overflowed => Out::Close(CloseCode::Again, "too slow: messages dropped".to_owned()),
            },
        };
        let (frame, last) = match out {
            Out::Frame(f) => {
                if matches!(f, WsMessage::Text(_) | WsMessage::Binary(_)) {
                    cell.counters.add(at::WS_SENT, 1);
                }
                (f, false)
            }
            Out::Close(code, reason) => {
                let frame = CloseFrame {
                    code,
                    reason: reason.into(),
                };
                (WsMessage::Close(Some(frame)), true)
            }
        };
        if sink.send(frame).await.is_err() || last {
            break;
        }
        if let Some(at) = published {
            let took = ferricorn_shm::now_us().saturating_sub(at);
            cell.counters.observe_fanout(Duration::from_micros(took));
        }
    }
    let _ = sink.flush().await;
}

/// Reads until the client is gone or the close handshake is done, handing
/// messages to the app and pinging, timing out and closing as needed.
/// Returns whether it queued a close frame the writer may still be sending.
async fn read(
    source: &mut futures_util::stream::SplitStream<Stream>,
    out: &queue::Sender<Out>,
    to_app: &queue::Sender<Message>,
    hub: &Hub,
) -> bool {
    let mut stop = hub.stop.clone();
    let settings = hub.settings;
    let mut last_seen = Instant::now();
    let mut pinged = false;
    // When the server sent its close frame or got the client's.
    let mut closing: Option<Instant> = None;
    // Made once, not per message: each of these registers a waker or a
    // timer when made. The timer is lazy: a message only moves the ping
    // deadline later, so the timer keeps its old time, and when it fires
    // early it is set again to the deadline as it stands then.
    let mut stopped = pin!(stop.wait_for(|s| *s));
    let mut app_closed = pin!(to_app.closed());
    let mut timer = pin!(tokio::time::sleep_until(far_future()));
    loop {
        let ping_at = settings.ping_interval.map(|i| {
            let base = last_seen + i;
            if pinged {
                base + settings.ping_timeout
            } else {
                base
            }
        });
        let deadline = closing.map(|t| t + CLOSE_TIMEOUT).or(ping_at);
        if let Some(d) = deadline
            && timer.deadline() > d
        {
            timer.as_mut().reset(d);
        }
        let app_gone = to_app.is_closed();
        let mut close_with = None;
        tokio::select! {
            _ = &mut stopped, if closing.is_none() => {
                close_with = Some(if hub.shared.header().is_draining() {
                    (CloseCode::Away, "going away")
                } else {
                    (CloseCode::Restart, "service restart")
                });
            }
            () = &mut app_closed, if closing.is_none() && !app_gone => {
                // The app let go of the socket.
                close_with = Some((CloseCode::Normal, ""));
            }
            () = &mut timer, if deadline.is_some() => {
                if let Some(d) = deadline
                    && Instant::now() < d
                {
                    // Early: the deadline moved since the timer was set.
                    timer.as_mut().reset(d);
                    continue;
                }
                if closing.is_some() {
                    return false;
                }
                if pinged {
                    close_with = Some((CloseCode::Error, "keepalive ping timeout"));
                } else {
                    pinged = true;
                    let _ = out.send(Out::Frame(WsMessage::Ping(Bytes::new()))).await;
                }
            }
            frame = read_one(source, to_app, app_gone) => {
                let Some((frame, permit)) = frame else { return false };
                last_seen = Instant::now();
                pinged = false;
                if let Ok(WsMessage::Text(_) | WsMessage::Binary(_)) = &frame {
                    hub.cell.counters.add(at::WS_RECEIVED, 1);
                }
                match frame {
                    Ok(WsMessage::Text(t)) => deliver(permit, Message::Text(t.to_string())),
                    Ok(WsMessage::Binary(b)) => deliver(permit, Message::Binary(b)),
                    Ok(WsMessage::Close(frame)) => {
                        let frame = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                        deliver(permit, Message::Close(frame));
                        // tungstenite answers the close on the next read.
                        closing.get_or_insert_with(Instant::now);
                    }
                    Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_)) => {}
                    Err(e) => {
                        // After a read error the stream is done: close with
                        // the matching code and stop reading.
                        let code = match e {
                            WsError::Capacity(_) => (CloseCode::Size, "message too big"),
                            WsError::Utf8(_) => (CloseCode::Invalid, "invalid UTF-8"),
                            WsError::Protocol(_) => (CloseCode::Protocol, "protocol error"),
                            e => {
                                debug!("WebSocket closed: {e}");
                                return false;
                            }
                        };
                        if closing.is_some() {
                            return false;
                        }
                        let _ = out.send(Out::Close(code.0, code.1.to_owned())).await;
                        return true;
                    }
                }
            }
        }
        if let Some((code, reason)) = close_with
            && closing.is_none()
        {
            closing = Some(Instant::now());
            let _ = out.send(Out::Close(code, reason.to_owned())).await;
        }
    }
}

/// Waits for room in the app's queue (unless the app is gone), then reads
/// one frame. `None` when the stream has ended.
async fn read_one<'a>(
    source: &mut futures_util::stream::SplitStream<Stream>,
    to_app: &'a queue::Sender<Message>,
    app_gone: bool,
) -> Option<(
    Result<WsMessage, WsError>,
    Option<queue::Permit<'a, Message>>,
)> {
    let permit = if app_gone {
        None
    } else {
        to_app.reserve().await.ok()
    };
    let frame = source.next().await?;
    Some((frame, permit))
}

fn deliver(permit: Option<queue::Permit<'_, Message>>, message: Message) {
    if let Some(p) = permit {
        p.send(message);
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::get("/ws");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn upgrade_requests_are_checked() {
        let good = [
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        assert!(matches!(check(&req(&good)), Check::Upgrade(_)));
        assert!(matches!(check(&req(&[])), Check::NotUpgrade));
        let mut old = good;
        old[2].1 = "8";
        assert!(matches!(
            check(&req(&old)),
            Check::Refuse(StatusCode::UPGRADE_REQUIRED, _)
        ));
        let mut nokey = good;
        nokey[3].1 = "short";
        assert!(matches!(
            check(&req(&nokey)),
            Check::Refuse(StatusCode::BAD_REQUEST, _)
        ));
    }
}
