//! The demo's chat: rooms that span every worker, through the channel
//! layer. Its wire format is fixed, for clients and tests:
//!
//! - `GET /ws/chat/{room}` upgrades; the first frame is
//!   `{"type":"welcome","id":ID,"worker":SLOT,"room":ROOM}`.
//! - Each text frame a client sends reaches every member of the room,
//!   sender included, as `{"type":"message","room":ROOM,"from":ID,"text":TEXT}`.
//! - On every join and leave each member gets
//!   `{"type":"presence","room":ROOM,"count":N}`.
//! - `POST /rooms/{room}` with a text body sends it from `"http"` and
//!   answers 202; `GET /rooms/{room}` answers `{"room":ROOM,"count":N}`.
//! - `GET /ws/chat/{room}?echo=0` takes the app path: the socket's task
//!   receives the room's messages itself and forwards all but its own.
//! - `GET /chat` serves a page for people (`chat.html`, in the binary).
//! - `POST /connections/{id}` with a text body sends it to that one socket,
//!   on whichever worker holds it, as `{"type":"direct","from":"http","text":TEXT}`;
//!   202, or 404 when no such socket is open.

use http::StatusCode;

use ferricorn::{Context, Message, Payload, Request, Response, SendError, WebSocketUpgrade};

use crate::reply::{json, status};

/// The longest room name.
const MAX_ROOM: usize = 100;

/// The room a path names after `prefix`, if it is a valid name: 1 to 100
/// letters, digits, `-`, `_` or `.`.
pub(crate) fn room<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let room = path.strip_prefix(prefix)?;
    let valid = !room.is_empty()
        && room.len() <= MAX_ROOM
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    valid.then_some(room)
}

/// A JSON string, quoted and escaped.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn message(room: &str, from: &str, text: &str) -> Payload {
    Payload::Text(format!(
        r#"{{"type":"message","room":{},"from":{},"text":{}}}"#,
        quoted(room),
        quoted(from),
        quoted(text)
    ))
}

/// A socket's first frame: its id, its worker and its room.
fn welcome(id: &str, ctx: &Context, room: &str) -> Message {
    Message::Text(format!(
        r#"{{"type":"welcome","id":{},"worker":{},"room":{}}}"#,
        quoted(id),
        ctx.slot(),
        quoted(room)
    ))
}

/// Tells the room how many members it has now, over the deployment.
async fn presence(ctx: &Context, room: &str) {
    let count = ctx.channels().count(room).await;
    let payload = Payload::Text(format!(
        r#"{{"type":"presence","room":{},"count":{count}}}"#,
        quoted(room)
    ));
    if let Err(e) = ctx.channels().send_group(room, payload) {
        tracing::warn!("chat: presence in {room}: {e}");
    }
}

/// `GET /ws/chat/{room}`.
pub(crate) fn websocket(ctx: &Context, upgrade: WebSocketUpgrade, room: String) -> Response {
    let ctx = ctx.clone();
    let echo = !upgrade
        .request()
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "echo=0"));
    if !echo {
        return app_path(ctx, upgrade, room);
    }
    upgrade.accept(move |mut socket| async move {
        let id = socket.id().to_string();
        if socket.send(welcome(&id, &ctx, &room)).await.is_err() {
            return;
        }
        socket.join(&room);
        presence(&ctx, &room).await;
        while let Some(m) = socket.recv().await {
            match m {
                Message::Text(text) => {
                    if let Err(e) = ctx.channels().send_group(&room, message(&room, &id, &text)) {
                        let error =
                            format!(r#"{{"type":"error","error":{}}}"#, quoted(&e.to_string()));
                        if socket.send(Message::Text(error)).await.is_err() {
                            break;
                        }
                    }
                }
                Message::Binary(_) => {}
                Message::Close(_) => break,
            }
        }
        socket.leave(&room);
        presence(&ctx, &room).await;
    })
}

/// The app path: the socket's task takes the room's messages from a
/// subscription and forwards every one not from itself.
fn app_path(ctx: Context, upgrade: WebSocketUpgrade, room: String) -> Response {
    upgrade.accept(move |mut socket| async move {
        let mut room_messages = socket.subscribe(&room);
        let id = room_messages.id().to_string();
        if socket.send(welcome(&id, &ctx, &room)).await.is_err() {
            return;
        }
        presence(&ctx, &room).await;
        let own = format!(r#""from":{}"#, quoted(&id));
        loop {
            tokio::select! {
                m = socket.recv() => match m {
                    Some(Message::Text(text)) => {
                        let _ = ctx.channels().send_group(&room, message(&room, &id, &text));
                    }
                    Some(Message::Binary(_)) => {}
                    Some(Message::Close(_)) | None => break,
                },
                m = room_messages.recv() => match m {
                    Some(Payload::Text(t)) if !t.contains(&own) => {
                        if socket.send(Message::Text(t)).await.is_err() {
                            break;
                        }
                    }
                    Some(_) => {}
                    None => break,
                },
            }
        }
        drop(room_messages);
        presence(&ctx, &room).await;
    })
}

/// A request's body as text, read only up to what the channel layer takes
/// (413 past it, 400 when it is not UTF-8).
async fn body_text(ctx: &Context, req: Request) -> Result<String, Box<Response>> {
    let max = ctx.channels().max_message();
    let body = req
        .into_body()
        .collect(max)
        .await
        .map_err(|e| Box::new(status(StatusCode::PAYLOAD_TOO_LARGE, &format!("{e}\n"))))?;
    String::from_utf8(body.to_vec()).map_err(|_| {
        Box::new(status(
            StatusCode::BAD_REQUEST,
            "the body is not UTF-8 text\n",
        ))
    })
}

/// `POST /rooms/{room}`: the body, as text, to every member.
pub(crate) async fn publish(ctx: &Context, room: &str, req: Request) -> Response {
    let text = match body_text(ctx, req).await {
        Ok(t) => t,
        Err(res) => return *res,
    };
    match ctx
        .channels()
        .send_group(room, message(room, "http", &text))
    {
        Ok(()) => status(StatusCode::ACCEPTED, "sent\n"),
        Err(e @ SendError::TooLarge { .. }) => {
            status(StatusCode::PAYLOAD_TOO_LARGE, &format!("{e}\n"))
        }
        Err(e) => status(StatusCode::BAD_REQUEST, &format!("{e}\n")),
    }
}

/// `POST /connections/{id}`: the body, as text, to that one socket.
pub(crate) async fn direct(ctx: &Context, id: &str, req: Request) -> Response {
    let Ok(to) = id.parse::<ferricorn::ConnectionId>() else {
        return status(StatusCode::NOT_FOUND, "no such connection\n");
    };
    let text = match body_text(ctx, req).await {
        Ok(t) => t,
        Err(res) => return *res,
    };
    let payload = Payload::Text(format!(
        r#"{{"type":"direct","from":"http","text":{}}}"#,
        quoted(&text)
    ));
    match ctx.channels().send_to(&to, payload) {
        Ok(()) => status(StatusCode::ACCEPTED, "sent\n"),
        Err(SendError::NoConnection(_)) => status(StatusCode::NOT_FOUND, "no such connection\n"),
        Err(e) => status(StatusCode::PAYLOAD_TOO_LARGE, &format!("{e}\n")),
    }
}

/// `GET /chat`: the page, embedded in the binary.
pub(crate) fn page() -> Response {
    let mut res = Response::new(ferricorn::Body::from(include_str!("chat.html")));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res
}

/// `GET /rooms/{room}`.
pub(crate) async fn count(ctx: &Context, room: &str) -> Response {
    json(format!(
        r#"{{"room":{},"count":{}}}"#,
        quoted(room),
        ctx.channels().count(room).await
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_and_quoting() {
        assert_eq!(room("/ws/chat/lobby-1", "/ws/chat/"), Some("lobby-1"));
        assert_eq!(room("/ws/chat/", "/ws/chat/"), None);
        assert_eq!(room("/ws/chat/a/b", "/ws/chat/"), None);
        assert_eq!(quoted("a\"b\\\n\u{1}"), r#""a\"b\\\n\u0001""#);
    }
}
