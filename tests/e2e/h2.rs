//! HTTP/2's known attacks, sent as raw frames over h2c: Rapid Reset
//! (CVE-2023-44487) and a CONTINUATION flood. Neither may take the worker
//! down or starve its other connections.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Conn, Server};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// `GET /` in HPACK, from the static table and literals never indexed.
fn get_block() -> Vec<u8> {
    let mut b = vec![0x82, 0x86, 0x84, 0x01, 9];
    b.extend_from_slice(b"127.0.0.1");
    b
}

/// An h2c connection past its preface and SETTINGS.
fn open(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut start = PREFACE.to_vec();
    start.extend(frame(SETTINGS, 0, 0, &[]));
    s.write_all(&start).expect("preface");
    s
}

/// The GOAWAY error code among the frames `s` has received until it closed
/// or went quiet for a second, if one came.
fn goaway(s: &mut TcpStream) -> Option<u32> {
    s.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let mut all = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
    let mut at = 0;
    let mut code = None;
    while at + 9 <= all.len() {
        let len = ((all[at] as usize) << 16) | ((all[at + 1] as usize) << 8) | all[at + 2] as usize;
        if all[at + 3] == GOAWAY && at + 9 + 8 <= all.len() {
            let p = &all[at + 9..];
            code = Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
        }
        at += 9 + len;
    }
    code
}

/// Plain HTTP/1.1 requests, one a new connection every 20 ms while
/// `running` and at least three: the slowest answer, and how many failed.
fn probe(port: u16, running: Arc<AtomicBool>) -> thread::JoinHandle<(Duration, u32, u32)> {
    thread::spawn(move || {
        let (mut slowest, mut ok, mut failed) = (Duration::ZERO, 0, 0);
        let deadline = Instant::now() + Duration::from_secs(60);
        while (running.load(Ordering::Relaxed) || ok + failed < 3) && Instant::now() < deadline {
            let started = Instant::now();
            match Conn::try_open(port).and_then(|mut c| c.try_get("/")) {
                Some(r) if r.status == 200 => ok += 1,
                _ => failed += 1,
            }
            slowest = slowest.max(started.elapsed());
            thread::sleep(Duration::from_millis(20));
        }
        (slowest, ok, failed)
    })
}

/// RSS of `pid` in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn rapid_reset_neither_takes_the_worker_down_nor_starves_the_others() {
    let server = Server::start(&["-w", "1"]);
    let workers = server.workers();
    let running = Arc::new(AtomicBool::new(true));
    let probing = probe(server.port, running.clone());
    let mut attacker = open(server.port);
    let block = get_block();
    let mut sent = 0u32;
    let started = Instant::now();
    // Up to 20,000 streams opened and cancelled at once, 100 per write.
    'attack: for batch in 0..200u32 {
        let mut bytes = Vec::new();
        for i in 0..100u32 {
            let stream = 1 + 2 * (batch * 100 + i);
            bytes.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, &block));
            bytes.extend(frame(RST_STREAM, 0, stream, &8u32.to_be_bytes()));
        }
        if attacker.write_all(&bytes).is_err() {
            break 'attack;
        }
        sent += 100;
    }
    let took = started.elapsed();
    let code = goaway(&mut attacker);
    running.store(false, Ordering::Relaxed);
    let (slowest, ok, failed) = probing.join().expect("probe");
    eprintln!(
        "rapid reset: {sent} streams reset in {took:?}; GOAWAY {code:?}; probes {ok} ok, {failed} failed, slowest {slowest:?}"
    );
    // hyper's h2 counts streams reset before they were served: past 20, a
    // GOAWAY with ENHANCE_YOUR_CALM (11) closes the attacker's connection.
    assert_eq!(code, Some(11), "the attacker is told to calm down");
    assert_eq!(server.workers(), workers, "the worker lives on");
    assert_eq!(failed, 0, "other clients were refused");
    assert!(ok >= 1, "no probe ran");
    assert!(
        slowest < Duration::from_secs(2),
        "others starved: {slowest:?}"
    );
    assert_eq!(server.get("/").status, 200);
}

#[test]
fn a_continuation_flood_is_cut_off_with_bounded_memory() {
    let server = Server::start(&["-w", "1"]);
    let workers = server.workers();
    let rss_before = rss_kib(workers[0]);
    let running = Arc::new(AtomicBool::new(true));
    let probing = probe(server.port, running.clone());
    let mut attacker = open(server.port);
    // A HEADERS frame without END_HEADERS, then CONTINUATION frames of
    // literal fields (`x-a: bbb…`) that never end the block.
    let mut field = vec![0x00, 0x03];
    field.extend_from_slice(b"x-a");
    field.push(100);
    field.extend(std::iter::repeat_n(b'b', 100));
    let chunk: Vec<u8> = field.repeat(150);
    let mut first = get_block();
    first.extend_from_slice(&chunk);
    let mut sent = 0usize;
    if attacker
        .write_all(&frame(HEADERS, END_STREAM, 1, &first))
        .is_ok()
    {
        let cont = frame(CONTINUATION, 0, 1, &chunk);
        // At most 64 MiB; the server must stop reading long before.
        while sent < 64 << 20 {
            if attacker.write_all(&cont).is_err() {
                break;
            }
            sent += cont.len();
        }
    }
    let code = goaway(&mut attacker);
    running.store(false, Ordering::Relaxed);
    let (slowest, ok, failed) = probing.join().expect("probe");
    let grown = rss_kib(workers[0]).saturating_sub(rss_before);
    eprintln!(
        "continuation flood: {} KiB sent; GOAWAY {code:?}; worker RSS +{grown} KiB; probes {ok} ok, {failed} failed, slowest {slowest:?}",
        sent >> 10
    );
    assert!(sent < 16 << 20, "the server kept reading: {sent} bytes");
    assert!(code.is_some(), "no GOAWAY");
    assert!(grown < 32 << 10, "the worker grew {grown} KiB");
    assert_eq!(server.workers(), workers, "the worker lives on");
    assert_eq!(failed, 0, "other clients were refused");
    assert!(
        slowest < Duration::from_secs(2),
        "others starved: {slowest:?}"
    );
}

#[test]
fn an_idle_h2_connection_closes_after_the_keep_alive_time() {
    let server = Server::start(&["-w", "1", "--keep-alive", "1"]);
    let mut idle = open(server.port);
    idle.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    // The server's SETTINGS and its ACK, then nothing until the close.
    while let Ok(n) = idle.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(800), "closed early: {took:?}");
    assert!(took < Duration::from_secs(3), "kept open: {took:?}");
}

/// Every frame in `bytes`: (type, flags, stream, payload).
fn frames(bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len =
            ((bytes[at] as usize) << 16) | ((bytes[at + 1] as usize) << 8) | bytes[at + 2] as usize;
        if at + 9 + len > bytes.len() {
            break;
        }
        let stream =
            u32::from_be_bytes([bytes[at + 5], bytes[at + 6], bytes[at + 7], bytes[at + 8]])
                & 0x7fff_ffff;
        out.push((
            bytes[at + 3],
            bytes[at + 4],
            stream,
            bytes[at + 9..at + 9 + len].to_vec(),
        ));
        at += 9 + len;
    }
    out
}

#[test]
fn streams_past_the_concurrent_limit_are_refused_and_the_rest_served() {
    let server = Server::start(&["-w", "1", "--h2-max-concurrent-streams", "2"]);
    let mut s = open(server.port);
    // The server's SETTINGS first: the limit applies once the client has it.
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 65536];
    while !frames(&seen)
        .iter()
        .any(|f| f.0 == SETTINGS && f.1 & 1 == 0)
    {
        let n = s.read(&mut buf).expect("settings");
        assert!(n > 0, "closed");
        seen.extend_from_slice(&buf[..n]);
    }
    s.write_all(&frame(SETTINGS, 1, 0, &[])).expect("ack");
    // Three slow requests at once on streams 1, 3 and 5.
    let path = b"/blocking?ms=500";
    let mut block = vec![0x82, 0x86, 0x04, path.len() as u8];
    block.extend_from_slice(path);
    block.extend_from_slice(&[0x01, 9]);
    block.extend_from_slice(b"127.0.0.1");
    let mut three = Vec::new();
    for stream in [1, 3, 5] {
        three.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, &block));
    }
    s.write_all(&three).expect("requests");
    let deadline = Instant::now() + Duration::from_secs(10);
    let done = |seen: &[u8]| {
        let f = frames(seen);
        let ended = |id| {
            f.iter()
                .any(|x| x.2 == id && (x.0 == RST_STREAM || x.1 & END_STREAM != 0))
        };
        ended(1) && ended(3) && ended(5)
    };
    while !done(&seen) && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let f = frames(&seen);
    let reset = |id| {
        f.iter()
            .find(|x| x.0 == RST_STREAM && x.2 == id)
            .map(|x| u32::from_be_bytes([x.3[0], x.3[1], x.3[2], x.3[3]]))
    };
    let answered = |id| f.iter().any(|x| x.0 == HEADERS && x.2 == id);
    // REFUSED_STREAM (7): the client may retry it.
    assert_eq!(reset(5), Some(7), "{f:?}");
    assert!(answered(1) && answered(3), "the first two served: {f:?}");
}
