//! Protocol-level limits: concurrency, request timeout.

use std::time::{Duration, Instant};

use crate::support::{Server, wait_until};

#[test]
fn over_limit_concurrency_requests_get_503_with_retry_after_at_once() {
    let server = Server::start(&["-w", "1", "--limit-concurrency", "1"]);
    let mut slow = server.conn();
    slow.send(b"GET /blocking?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut refused = None;
    let saw_503 = wait_until(Duration::from_secs(5), || {
        let sent = Instant::now();
        let res = server.get("/blocking?ms=0");
        let fast = sent.elapsed() < Duration::from_millis(500);
        if res.status == 503 {
            refused = Some((res.header("retry-after").map(str::to_owned), fast));
        }
        res.status == 503
    });
    assert!(saw_503, "no 503 while a request was in flight");
    assert_eq!(
        refused,
        Some((Some("1".to_owned()), true)),
        "503 with Retry-After, at once"
    );
    assert_eq!(
        server.get("/healthz").status,
        200,
        "ferricorn's own endpoints are exempt"
    );
    assert_eq!(slow.read_response(false).expect("slow").status, 200);
    assert_eq!(
        server.get("/blocking?ms=0").status,
        200,
        "under the limit again"
    );
}

#[test]
fn a_handler_past_request_timeout_is_cancelled_with_504() {
    let server = Server::start(&["-w", "1", "--request-timeout", "0.5"]);
    let sent = Instant::now();
    let res = server.get("/blocking?ms=3000");
    let took = sent.elapsed();
    assert_eq!(res.status, 504);
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert_eq!(server.get("/").status, 200);
    server.wait_log("ran past request-timeout", Duration::from_secs(1));
}

/// Sends `raw` on a fresh connection and reads until the server closes it
/// (at most 3 s): the status codes of every response, and whether it closed.
fn probe(server: &Server, raw: &[u8]) -> (Vec<u16>, bool) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    s.write_all(raw).expect("write");
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    let text = String::from_utf8_lossy(&data);
    let statuses = text
        .split("\r\n")
        .filter(|l| l.starts_with("HTTP/1."))
        .filter_map(|l| l.split(' ').nth(1)?.parse().ok())
        .collect();
    (statuses, closed)
}

#[test]
fn malformed_and_ambiguous_requests_are_refused_and_never_smuggled() {
    let server = Server::start(&["-w", "1"]);
    let smuggled = "GET /json HTTP/1.1\r\nHost: t\r\n\r\n";
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "Content-Length and Transfer-Encoding",
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            "Transfer-Encoding and Content-Length",
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            "bare LF",
            format!("GET / HTTP/1.1\nHost: t\n\n{smuggled}"),
            400,
        ),
        (
            "bare LF in one header",
            format!("GET / HTTP/1.1\r\nHost: t\nX: y\r\n\r\n{smuggled}"),
            400,
        ),
        (
            "bare LF in a pipelined head",
            "GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /json HTTP/1.1\nHost: t\r\n\r\n".to_owned(),
            0,
        ),
        (
            "duplicate Content-Length, same",
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc{smuggled}"
            ),
            400,
        ),
        (
            "duplicate Content-Length, different",
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd{smuggled}"
            ),
            400,
        ),
        (
            "bad chunk size",
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            "chunk size overflow",
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nabc\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            "unknown Transfer-Encoding",
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            400,
        ),
        (
            "obs-fold",
            format!("GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n{smuggled}"),
            400,
        ),
        (
            "space in a header name",
            format!("GET / HTTP/1.1\r\nHost: t\r\nX A: b\r\n\r\n{smuggled}"),
            400,
        ),
        (
            "space before the colon",
            format!("GET / HTTP/1.1\r\nHost: t\r\nX-A : b\r\n\r\n{smuggled}"),
            400,
        ),
        (
            "NUL in a header value",
            format!("GET / HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n{smuggled}"),
            400,
        ),
        (
            "no Host in HTTP/1.1",
            format!("GET / HTTP/1.1\r\n\r\n{smuggled}"),
            400,
        ),
        (
            "two Host fields",
            format!("GET / HTTP/1.1\r\nHost: t\r\nHost: t\r\n\r\n{smuggled}"),
            400,
        ),
        (
            "two Host fields in HTTP/1.0",
            format!("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n{smuggled}"),
            400,
        ),
        (
            "Host with a path",
            format!("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n{smuggled}"),
            400,
        ),
        (
            "Host with a bad port",
            format!("GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n{smuggled}"),
            400,
        ),
        (
            "Host with user info",
            format!("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n{smuggled}"),
            400,
        ),
        (
            "request line too long",
            format!(
                "GET /{} HTTP/1.1\r\nHost: t\r\n\r\n{smuggled}",
                "a".repeat(5000)
            ),
            414,
        ),
        (
            "header field too long",
            format!(
                "GET / HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n{smuggled}",
                "b".repeat(9000)
            ),
            431,
        ),
    ];
    for (name, raw, want) in cases {
        let (statuses, closed) = probe(&server, raw.as_bytes());
        if want == 0 {
            // The clean first request is answered; the bad second one never
            // is (hyper answers 400, or just closes while still writing).
            assert!(
                statuses == [200] || statuses == [200, 400],
                "{name}: answered {statuses:?}"
            );
        } else {
            assert_eq!(statuses, [want], "{name}: answered {statuses:?}");
        }
        assert!(closed, "{name}: connection left open");
    }
    // Valid hosts are served.
    for host in ["example.com:8080", "[::1]:8000", "127.0.0.1", ""] {
        let mut c = server.conn();
        c.send(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        let res = c.read_response(false).expect("response");
        assert_eq!(res.status, 200, "Host: {host:?}");
    }
    // The server is unharmed.
    assert_eq!(server.get("/").status, 200);
}

#[test]
fn slow_clients_are_dropped_and_do_not_starve_others() {
    use std::io::Write;
    let server = Server::start(&["-w", "1", "--header-timeout", "1", "--keep-alive", "1"]);
    // 300 clients that send their request heads a byte at a time.
    let mut slow: Vec<std::net::TcpStream> = (0..300)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
            s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n")
                .expect("write");
            s
        })
        .collect();
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    let mut served = 0;
    while started.elapsed() < Duration::from_millis(2500) {
        for s in &mut slow {
            let _ = s.write_all(b"X");
        }
        for _ in 0..5 {
            let sent = Instant::now();
            assert_eq!(server.get("/").status, 200);
            worst = worst.max(sent.elapsed());
            served += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served >= 50, "only {served} normal requests");
    assert!(
        worst < Duration::from_millis(500),
        "a normal request took {worst:?}"
    );
    // Every slow client has been dropped by now (the head bound is 1 s).
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut buf = [0u8; 256];
        let closed = match std::io::Read::read(s, &mut buf) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        };
        assert!(closed, "a slow client was kept");
    }

    // A body that stops arriving is cut off too.
    let mut c = server.conn();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nab");
    assert!(c.closed_within(Duration::from_secs(4)), "slow body kept");
}

#[test]
fn forwarded_headers_are_trusted_only_from_allowed_peers() {
    let trusting = Server::start(&["-w", "1", "--root-path", "/api"]);
    let mut c = trusting.conn();
    c.send(b"GET /whoami HTTP/1.1\r\nHost: internal\r\nX-Forwarded-For: 203.0.113.9, 127.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: example.com\r\nX-Request-Id: req-7\r\n\r\n");
    let seen = c.read_response(false).expect("whoami").text();
    assert_eq!(
        seen,
        r#"{"client":"203.0.113.9:0","scheme":"https","host":"example.com","root_path":"/api","id":"req-7","client_subject":null}"#
    );
    c.send(b"GET /whoami HTTP/1.1\r\nHost: internal\r\nForwarded: for=\"[2001:db8::7]:4711\";proto=https\r\n\r\n");
    let seen = c.read_response(false).expect("whoami").text();
    assert!(
        seen.starts_with(r#"{"client":"[2001:db8::7]:4711","scheme":"https""#),
        "{seen}"
    );
    // A forwarded host is held to the Host rule, and answered 400 when it
    // breaks it; an untrusted peer's is ignored, not refused.
    let mut c = trusting.conn();
    c.send(b"GET /whoami HTTP/1.1\r\nHost: internal\r\nX-Forwarded-Host: a b\r\n\r\n");
    assert_eq!(c.read_response(false).expect("answer").status, 400);

    let wary = Server::start(&["-w", "1", "--forwarded-allow-ips", "10.0.0.1"]);
    let mut c = wary.conn();
    c.send(b"GET /whoami HTTP/1.1\r\nHost: internal\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: example.com\r\n\r\n");
    let seen = c.read_response(false).expect("whoami").text();
    assert!(
        seen.starts_with(r#"{"client":"127.0.0.1:"#)
            && seen.contains(r#""scheme":"http","host":"internal""#),
        "{seen}"
    );
    c.send(b"GET /whoami HTTP/1.1\r\nHost: internal\r\nX-Forwarded-Host: a b\r\n\r\n");
    assert_eq!(c.read_response(false).expect("answer").status, 200);
}

/// A server in PROXY protocol mode; waits on its log, since plain HTTP
/// readiness probes are refused in that mode.
fn proxy_server(args: &[&str]) -> Server {
    let server = Server::spawn(args, &[]);
    server.wait_log("worker 0 ready", Duration::from_secs(10));
    server
}

fn whoami_through(server: &Server, preamble: &[u8]) -> Option<String> {
    let mut c = server.conn();
    let mut raw = preamble.to_vec();
    raw.extend_from_slice(b"GET /whoami HTTP/1.1\r\nHost: t\r\n\r\n");
    c.send(&raw);
    c.read_response(false).map(|r| r.text())
}

#[test]
fn proxy_protocol_v1_and_v2_headers_set_the_client() {
    let server = proxy_server(&["-w", "1", "--proxy-protocol", "auto"]);
    let seen =
        whoami_through(&server, b"PROXY TCP4 203.0.113.9 10.0.0.1 56324 443\r\n").expect("v1");
    assert!(
        seen.starts_with(r#"{"client":"203.0.113.9:56324""#),
        "{seen}"
    );
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x24".to_vec();
    v2.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
    v2.extend_from_slice(&[0; 16]);
    v2.extend_from_slice(&4711u16.to_be_bytes());
    v2.extend_from_slice(&443u16.to_be_bytes());
    let seen = whoami_through(&server, &v2).expect("v2");
    assert!(
        seen.starts_with(r#"{"client":"[2001:db8::7]:4711""#),
        "{seen}"
    );
    let seen = whoami_through(&server, b"PROXY UNKNOWN\r\n").expect("unknown");
    assert!(seen.starts_with(r#"{"client":"127.0.0.1:"#), "{seen}");
}

#[test]
fn malformed_missing_or_untrusted_proxy_headers_close_the_connection() {
    let server = proxy_server(&["-w", "1", "--proxy-protocol", "v1", "--header-timeout", "1"]);
    for preamble in [
        &b"PROXY TCP4 not-an-ip 10.0.0.1 1 2\r\n"[..],
        &b""[..],
        &b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02"[..],
    ] {
        assert_eq!(
            whoami_through(&server, preamble),
            None,
            "answered after {preamble:?}"
        );
    }
    let wary = proxy_server(&[
        "-w",
        "1",
        "--proxy-protocol",
        "v1",
        "--proxy-allow-from",
        "10.0.0.1",
    ]);
    assert_eq!(
        whoami_through(&wary, b"PROXY TCP4 203.0.113.9 10.0.0.1 1 2\r\n"),
        None,
        "untrusted header served"
    );
    // Plain HTTP from a peer that is not a proxy (a health probe) is served as is.
    let seen = whoami_through(&wary, b"").expect("plain request from a non-proxy peer");
    assert!(seen.starts_with(r#"{"client":"127.0.0.1:"#), "{seen}");
}
