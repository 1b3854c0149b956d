//! The channel layer through the demo's chat: rooms that span the workers
//! of one server, direct sends, presence counts, and a killed worker's
//! members leaving the counts.

use std::net::TcpStream;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::metrics::Scrape;
use crate::support::{Conn, Server, wait_until};
use crate::websocket::connect;

type Client = tungstenite::WebSocket<TcpStream>;

/// A chat member: its socket, id and worker slot.
pub(crate) struct Member {
    pub ws: Client,
    pub id: String,
    pub worker: u64,
}

/// The value of `"key":` in a flat JSON object, as text (strings unquoted).
pub(crate) fn field(json: &str, key: &str) -> Option<String> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[at..];
    if let Some(s) = rest.strip_prefix('"') {
        return Some(s[..s.find('"')?].to_owned());
    }
    Some(rest[..rest.find([',', '}'])?].to_owned())
}

/// The next text frame, within the socket's read timeout.
fn next_text(ws: &mut Client) -> Option<String> {
    for _ in 0..100 {
        match ws.read() {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            _ => return None,
        }
    }
    None
}

/// The next frame of `kind`, skipping others (presence while waiting for a
/// message, say).
pub(crate) fn next_of(ws: &mut Client, kind: &str) -> Option<String> {
    for _ in 0..50 {
        let t = next_text(ws)?;
        if field(&t, "type").as_deref() == Some(kind) {
            return Some(t);
        }
    }
    None
}

pub(crate) fn join(server: &Server, room: &str) -> Member {
    let (mut ws, _) = connect(server, &format!("/ws/chat/{room}"), None).expect("upgrade");
    let welcome = next_text(&mut ws).expect("welcome");
    assert_eq!(
        field(&welcome, "type").as_deref(),
        Some("welcome"),
        "{welcome}"
    );
    let name = room.split('?').next().unwrap_or(room);
    assert_eq!(field(&welcome, "room").as_deref(), Some(name));
    Member {
        id: field(&welcome, "id").expect("id"),
        worker: field(&welcome, "worker")
            .and_then(|w| w.parse().ok())
            .expect("worker"),
        ws,
    }
}

/// Joins `room` until members sit on both workers (at most 20 tries).
pub(crate) fn members_on_both_workers(server: &Server, room: &str) -> Vec<Member> {
    let mut members = Vec::new();
    for _ in 0..20 {
        members.push(join(server, room));
        let on = |w| members.iter().any(|m: &Member| m.worker == w);
        if on(0) && on(1) {
            return members;
        }
    }
    panic!("20 members, all on one worker");
}

pub(crate) fn count(server: &Server, room: &str) -> u64 {
    let text = server.get(&format!("/rooms/{room}")).text();
    field(&text, "count")
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{text}"))
}

pub(crate) fn post(server: &Server, path: &str, body: &str) -> u16 {
    post_on(&mut Conn::open(server.port), path, body)
}

/// A POST on a kept-alive connection; its status.
fn post_on(conn: &mut Conn, path: &str, body: &str) -> u16 {
    conn.send(
        format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    conn.read_response(false).expect("response").status
}

#[test]
fn a_room_spans_the_workers() {
    let mut server = Server::start(&["-w", "2"]);
    let mut members = members_on_both_workers(&server, "lobby");
    let n = members.len() as u64;
    assert!(wait_until(Duration::from_secs(5), || count(
        &server, "lobby"
    ) == n));
    let mut other = join(&server, "elsewhere");

    // A member on worker 0 speaks: everyone in the room hears it, itself too.
    let speaker = members.iter().position(|m| m.worker == 0).expect("on 0");
    let from = members[speaker].id.clone();
    members[speaker]
        .ws
        .send(Message::text("hello"))
        .expect("send");
    for m in &mut members {
        let got = next_of(&mut m.ws, "message").expect("the message");
        assert_eq!(field(&got, "text").as_deref(), Some("hello"), "{got}");
        assert_eq!(field(&got, "from").as_deref(), Some(from.as_str()));
        assert_eq!(field(&got, "room").as_deref(), Some("lobby"));
    }
    // From HTTP, on whichever worker takes the request.
    assert_eq!(post(&server, "/rooms/lobby", "from http"), 202);
    for m in &mut members {
        let got = next_of(&mut m.ws, "message").expect("the message");
        assert_eq!(field(&got, "from").as_deref(), Some("http"), "{got}");
    }
    // Another room heard none of it: the first message it gets is its own.
    assert_eq!(post(&server, "/rooms/elsewhere", "marker"), 202);
    let got = next_of(&mut other.ws, "message").expect("its own message");
    assert_eq!(field(&got, "text").as_deref(), Some("marker"), "{got}");

    // Direct: to one socket on the other worker than the one serving the
    // request (a kept-alive connection stays with its worker).
    let mut conn = Conn::open(server.port);
    let here = field(&conn.get("/worker").text(), "slot")
        .and_then(|s| s.parse::<u64>().ok())
        .expect("slot");
    let target = members
        .iter()
        .position(|m| m.worker != here)
        .expect("elsewhere");
    let path = format!("/connections/{}", members[target].id);
    assert_eq!(post_on(&mut conn, &path, "just you"), 202);
    let got = next_of(&mut members[target].ws, "direct").expect("direct");
    assert_eq!(field(&got, "text").as_deref(), Some("just you"));
    assert_eq!(post(&server, "/connections/0.0.0.0", "nobody"), 404);

    // /metrics: what was published and delivered, and each worker's members.
    let scrape = Scrape::from_port(server.port);
    let published = scrape.sum("ferricorn_channel_messages_published_total", &[]);
    assert!(published >= 3.0, "published {published}");
    let delivered = scrape.sum("ferricorn_channel_messages_delivered_total", &[]);
    assert!(delivered >= 2.0 * n as f64, "delivered {delivered}");
    assert!(scrape.sum("ferricorn_channel_fanout_seconds_count", &[]) >= 2.0 * n as f64);
    assert_eq!(
        scrape.sum("ferricorn_worker_channel_members", &[]),
        (n + 1) as f64,
        "lobby and elsewhere"
    );
    assert_eq!(
        scrape.get(
            "ferricorn_channel_messages_dropped_total",
            &[("reason", "no_members")]
        ),
        Some(0.0)
    );

    // Presence: a member leaving is counted, and the others are told.
    let left = members.pop().expect("a member");
    drop(left);
    assert!(wait_until(Duration::from_secs(5), || count(
        &server, "lobby"
    ) == n - 1));
    let got = next_of(&mut members[0].ws, "presence").expect("presence");
    assert!(field(&got, "count").is_some(), "{got}");

    // Killing a worker takes its members out of the counts at once.
    let on_one = members.iter().filter(|m| m.worker == 1).count() as u64;
    let victim = worker_pid(&server, 1);
    kill(Pid::from_raw(victim), Signal::SIGKILL).expect("kill");
    let expected = n - 1 - on_one;
    assert!(
        wait_until(Duration::from_secs(10), || count(&server, "lobby")
            == expected),
        "count {} after the kill, expected {expected}",
        count(&server, "lobby")
    );
    drop((members, other));
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

/// The pid of the worker in `slot`, asked of the workers themselves.
fn worker_pid(server: &Server, slot: u64) -> i32 {
    for _ in 0..50 {
        let text = Conn::open(server.port).get("/worker").text();
        if field(&text, "slot").and_then(|s| s.parse::<u64>().ok()) == Some(slot) {
            return field(&text, "pid")
                .and_then(|p| p.parse().ok())
                .expect("pid");
        }
    }
    panic!("no answer from slot {slot} in 50 requests");
}

/// The resident memory of `pid`, in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Messages of 4 KiB flood a room with a member that never reads: under
/// `policy`, what does that member get, and does a fast member get all?
/// Returns (messages the slow member got, its close code if closed).
fn flood(policy: &str) -> (usize, Option<u16>, f64) {
    const MESSAGES: usize = 3000;
    let server = Server::start(&[
        "-w",
        "1",
        "--channel-capacity",
        "50",
        "--channel-overflow",
        policy,
    ]);
    let worker = server.workers()[0];
    let mut slow = join(&server, "flood");
    let fast = join(&server, "flood");
    let before = rss_kib(worker);
    // The fast member reads as it comes, in a thread of its own.
    let reader = std::thread::spawn(move || {
        let mut ws = fast.ws;
        let mut got = 0;
        while got < MESSAGES {
            match next_of(&mut ws, "message") {
                Some(_) => got += 1,
                None => break,
            }
        }
        got
    });
    let text = "x".repeat(4096);
    let mut conn = Conn::open(server.port);
    for _ in 0..MESSAGES {
        assert_eq!(post_on(&mut conn, "/rooms/flood", &text), 202);
    }
    assert_eq!(
        reader.join().expect("reader"),
        MESSAGES,
        "the fast member lost messages"
    );
    let grown = rss_kib(worker).saturating_sub(before);
    assert!(
        grown < 16 * 1024,
        "the worker grew by {grown} KiB for a slow member"
    );
    let overflowed = Scrape::from_port(server.port)
        .get(
            "ferricorn_channel_messages_dropped_total",
            &[("reason", "overflow")],
        )
        .unwrap_or(0.0);
    // Now read what the slow member was sent.
    slow.ws
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let (mut got, mut code) = (0, None);
    for _ in 0..(MESSAGES + 100) {
        match slow.ws.read() {
            Ok(Message::Text(t)) if t.contains("\"type\":\"message\"") => got += 1,
            Ok(Message::Close(frame)) => {
                code = frame.map(|f| u16::from(f.code));
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    (got, code, overflowed)
}

#[test]
fn a_slow_member_is_closed_and_the_others_get_everything() {
    let (got, code, overflowed) = flood("close");
    assert_eq!(
        code,
        Some(1013),
        "closed with try-again-later, after {got} messages"
    );
    assert!(got < 3000, "{got}");
    assert!(overflowed >= 1.0, "counted: {overflowed}");
}

#[test]
fn a_slow_member_loses_its_oldest_messages_under_drop_oldest() {
    let (got, code, overflowed) = flood("drop-oldest");
    assert_eq!(code, None, "not closed");
    assert!(got < 3000 && got > 0, "{got}");
    assert!(
        overflowed >= (3000 - got) as f64 - 1.0,
        "counted {overflowed}, lost {}",
        3000 - got
    );
}

#[test]
fn a_message_over_the_limit_is_refused_whole() {
    let server = Server::start(&["-w", "1", "--channel-max-message", "1000"]);
    let mut member = join(&server, "small");
    assert_eq!(post(&server, "/rooms/small", &"y".repeat(1001)), 413);
    member
        .ws
        .send(Message::text("z".repeat(1200)))
        .expect("send");
    let got = next_of(&mut member.ws, "error").expect("an error frame");
    assert!(
        got.contains("over the channel layer's limit of 1000"),
        "{got}"
    );
    // Nothing of either reached the room.
    assert_eq!(post(&server, "/rooms/small", "fits"), 202);
    let got = next_of(&mut member.ws, "message").expect("message");
    assert_eq!(field(&got, "text").as_deref(), Some("fits"));
    let scrape = Scrape::from_port(server.port);
    assert_eq!(
        scrape.get(
            "ferricorn_channel_messages_dropped_total",
            &[("reason", "too_large")]
        ),
        Some(1.0),
        "the WebSocket one; the HTTP one was never read whole"
    );
}

#[test]
fn the_app_path_lets_the_socket_task_choose_what_to_forward() {
    let server = Server::start(&["-w", "2"]);
    // Members on both workers, on the app path (`?echo=0`: all but their own).
    let mut app: Vec<Member> = Vec::new();
    for _ in 0..20 {
        app.push(join(&server, "quiet?echo=0"));
        if app.iter().any(|m| m.worker == 0) && app.iter().any(|m| m.worker == 1) {
            break;
        }
    }
    let mut fast = join(&server, "quiet");
    let n = app.len() as u64 + 1;
    assert!(wait_until(Duration::from_secs(5), || count(
        &server, "quiet"
    ) == n));
    app[0]
        .ws
        .send(Message::text("from the app path"))
        .expect("send");
    let got = next_of(&mut fast.ws, "message").expect("the fast member hears it");
    assert_eq!(field(&got, "text").as_deref(), Some("from the app path"));
    for m in &mut app[1..] {
        let got = next_of(&mut m.ws, "message").expect("the others hear it");
        assert_eq!(field(&got, "text").as_deref(), Some("from the app path"));
    }
    // Its own message was not forwarded to the sender: the first it gets is
    // the next one.
    assert_eq!(post(&server, "/rooms/quiet", "next"), 202);
    let got = next_of(&mut app[0].ws, "message").expect("the next message");
    assert_eq!(field(&got, "text").as_deref(), Some("next"), "{got}");
}

#[test]
fn the_chat_page_is_served() {
    let server = Server::start(&["-w", "1"]);
    let res = server.get("/chat");
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    let page = res.text();
    assert!(
        page.contains("/ws/chat/") && page.contains("presence"),
        "{page}"
    );
}

#[test]
fn replaced_workers_take_part_once_ready() {
    let server = Server::start(&["-w", "2"]);
    let old = server.workers();
    server.signal(Signal::SIGHUP);
    server.wait_log("reload complete", Duration::from_secs(15));
    server.wait_ready();
    // Until the old workers are gone: one that has not yet seen its drain
    // order may still accept a socket, and then close it as it drains.
    assert!(server.wait_replaced(&old, 2, Duration::from_secs(15)));
    // The new workers' members hear each other, and the counts are theirs
    // alone: the old workers' members left with them.
    let mut members = members_on_both_workers(&server, "after-reload");
    let n = members.len() as u64;
    assert!(wait_until(Duration::from_secs(5), || count(
        &server,
        "after-reload"
    ) == n));
    assert_eq!(post(&server, "/rooms/after-reload", "still here"), 202);
    for m in &mut members {
        let got = next_of(&mut m.ws, "message").expect("the message");
        assert_eq!(field(&got, "text").as_deref(), Some("still here"));
    }
}

#[test]
fn a_hung_worker_never_blocks_a_publisher() {
    const MESSAGES: usize = 2000;
    let server = Server::start(&["-w", "2", "--channel-capacity", "5000"]);
    let mut members = members_on_both_workers(&server, "patient");
    // Publish on a connection to one worker while the other is stopped:
    // 8 MB for it, far more than its socket buffers hold.
    let mut conn = Conn::open(server.port);
    let here = field(&conn.get("/worker").text(), "slot")
        .and_then(|s| s.parse::<u64>().ok())
        .expect("slot");
    let stopped = worker_pid(&server, 1 - here);
    kill(Pid::from_raw(stopped), Signal::SIGSTOP).expect("stop");
    let text = "p".repeat(4096);
    let started = std::time::Instant::now();
    for _ in 0..MESSAGES {
        assert_eq!(post_on(&mut conn, "/rooms/patient", &text), 202);
    }
    let took = started.elapsed();
    kill(Pid::from_raw(stopped), Signal::SIGCONT).expect("continue");
    assert!(
        took < Duration::from_secs(20),
        "publishing took {took:?} with a peer stopped"
    );
    // Once it runs again, its members get what was queued for them, in order.
    let theirs = members
        .iter_mut()
        .find(|m| m.worker != here)
        .expect("a member on the stopped worker");
    for _ in 0..MESSAGES {
        let got = next_of(&mut theirs.ws, "message").expect("a queued message");
        assert_eq!(field(&got, "from").as_deref(), Some("http"));
    }
}
