//! The WebSocket scope against the real binary, with a real client.

use std::net::TcpStream;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

use crate::support::Server;

pub(crate) type Client = WebSocket<TcpStream>;

pub(crate) fn connect(
    server: &Server,
    path: &str,
    protocols: Option<&str>,
) -> Result<(Client, tungstenite::handshake::client::Response), tungstenite::Error> {
    let stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = tungstenite::client::IntoClientRequest::into_client_request(format!(
        "ws://127.0.0.1:{}{path}",
        server.port
    ))?;
    if let Some(p) = protocols {
        req.headers_mut()
            .insert("sec-websocket-protocol", p.parse().expect("header"));
    }
    tungstenite::client(req, stream).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => e,
        tungstenite::HandshakeError::Interrupted(_) => tungstenite::Error::ConnectionClosed,
    })
}

/// Reads until a close frame (skipping pings); its code.
fn close_code(ws: &mut Client) -> Option<CloseCode> {
    for _ in 0..100 {
        match ws.read() {
            Ok(Message::Close(frame)) => return frame.map(|f| f.code),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

#[test]
fn echo_with_a_chosen_subprotocol() {
    let server = Server::start(&["-w", "1"]);
    let (mut ws, res) = connect(&server, "/ws/echo", Some("chat, superchat")).expect("handshake");
    assert_eq!(
        res.headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().ok()),
        Some(Some("chat"))
    );
    ws.send(Message::text("hello")).expect("send");
    assert_eq!(ws.read().expect("read"), Message::text("hello"));
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .expect("send");
    assert_eq!(
        ws.read().expect("read"),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    ws.close(None).expect("close");
    assert!(close_code(&mut ws).is_none_or(|c| c == CloseCode::Normal));
}

#[test]
fn an_upgrade_the_app_rejects_gets_its_status() {
    let server = Server::start(&["-w", "1"]);
    match connect(&server, "/ws/nope", None) {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 404),
        other => panic!("expected a 404, got {:?}", other.map(|(_, r)| r.status())),
    }
    // A bad version is refused before the app sees it.
    let mut c = server.conn();
    c.send(b"GET /ws/echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    let res = c.read_response(false).expect("response");
    assert_eq!(
        (res.status, res.header("sec-websocket-version")),
        (426, Some("13"))
    );
}

#[test]
fn a_silent_client_is_closed_after_the_ping_timeout() {
    let server = Server::start(&[
        "-w",
        "1",
        "--ws-ping-interval",
        "0.3",
        "--ws-ping-timeout",
        "0.3",
    ]);
    let (mut ws, _) = connect(&server, "/ws/echo", None).expect("handshake");
    // Stay silent (unread pings go unanswered) past interval + timeout.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(close_code(&mut ws), Some(CloseCode::Error), "expected 1011");
}

#[test]
fn an_answering_client_is_kept() {
    let server = Server::start(&[
        "-w",
        "1",
        "--ws-ping-interval",
        "0.2",
        "--ws-ping-timeout",
        "0.2",
    ]);
    let (mut ws, _) = connect(&server, "/ws/echo", None).expect("handshake");
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut pings = 0;
    for _ in 0..15 {
        // Reading answers pings.
        if let Ok(Message::Ping(_)) = ws.read() {
            pings += 1;
        }
    }
    assert!(pings >= 2, "pinged {pings} times");
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    ws.send(Message::text("still here")).expect("send");
    let echoed = (0..10).find_map(|_| match ws.read() {
        Ok(Message::Text(t)) => Some(t.to_string()),
        _ => None,
    });
    assert_eq!(echoed.as_deref(), Some("still here"));
}

#[test]
fn a_message_over_ws_max_size_closes_with_1009() {
    let server = Server::start(&["-w", "1", "--ws-max-size", "1024"]);
    let (mut ws, _) = connect(&server, "/ws/echo", None).expect("handshake");
    ws.send(Message::text("x".repeat(1000))).expect("send");
    assert!(matches!(ws.read().expect("echo"), Message::Text(t) if t.len() == 1000));
    ws.send(Message::text("x".repeat(2000))).expect("send");
    assert_eq!(close_code(&mut ws), Some(CloseCode::Size));
}

#[test]
fn term_closes_sockets_with_1001_and_hup_with_1012() {
    let server = Server::start(&["-w", "1"]);
    let (mut ws, _) = connect(&server, "/ws/echo", None).expect("handshake");
    ws.send(Message::text("before")).expect("send");
    assert_eq!(ws.read().expect("read"), Message::text("before"));
    server.signal(Signal::SIGHUP);
    assert_eq!(
        close_code(&mut ws),
        Some(CloseCode::Restart),
        "expected 1012 on reload"
    );
    server.wait_log("reload complete", Duration::from_secs(10));
    server.wait_ready();

    let (mut ws, _) = connect(&server, "/ws/echo", None).expect("handshake after reload");
    server.signal(Signal::SIGTERM);
    assert_eq!(
        close_code(&mut ws),
        Some(CloseCode::Away),
        "expected 1001 on shutdown"
    );
}

#[test]
fn a_socket_the_app_does_not_read_pushes_back_on_its_client() {
    let server = Server::start(&["-w", "1", "--ws-max-queue", "4", "--ws-max-size", "1048576"]);
    let (mut ws, _) = connect(&server, "/ws/sink", None).expect("handshake");
    ws.get_mut()
        .set_write_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let message = vec![7u8; 256 * 1024];
    let mut sent = 0usize;
    let blocked = loop {
        if sent >= 200 << 20 {
            break false;
        }
        match ws.send(Message::binary(message.clone())) {
            Ok(()) => sent += message.len(),
            Err(_) => break true,
        }
    };
    // Without a bound the server would read all 200 MiB into memory.
    assert!(blocked, "sent {} MiB without ever being slowed", sent >> 20);
    assert!(sent < 64 << 20, "the server buffered {} MiB", sent >> 20);
}
