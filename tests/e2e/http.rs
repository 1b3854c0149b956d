//! HTTP/1.1 in the worker: the demo routes, keep-alive, pipelining, chunked
//! bodies, 100-continue, HEAD, limits, timeouts, the connection cap.

use std::time::{Duration, Instant};

use crate::support::Server;

#[test]
fn demo_routes_and_standard_headers() {
    let server = Server::start(&["-w", "1"]);
    let mut c = server.conn();
    let res = c.get("/");
    assert_eq!((res.status, res.text().as_str()), (200, "Hello, World!"));
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(res.header("server"), Some("ferricorn"));
    assert!(res.header("date").is_some_and(|d| d.ends_with(" GMT")));

    let res = c.get("/json");
    assert_eq!(res.text(), r#"{"message":"Hello, World!"}"#);
    assert_eq!(res.header("content-type"), Some("application/json"));

    let res = c.get("/stream?n=5");
    assert_eq!(res.header("transfer-encoding"), Some("chunked"));
    assert_eq!(res.text(), "line 1\nline 2\nline 3\nline 4\nline 5\n");

    let res = c.get("/blocking?ms=20");
    assert_eq!(
        (res.status, res.text().as_str()),
        (200, "ferricorn-blocking")
    );

    let res = c.get("/worker");
    let pid = server.workers()[0];
    assert!(
        res.text()
            .starts_with(&format!(r#"{{"pid":{pid},"slot":0,"requests":"#)),
        "{}",
        res.text()
    );

    assert_eq!(c.get("/healthz").status, 200);
    assert_eq!(c.get("/readyz").text(), "ready");
    assert_eq!(c.get("/nope").status, 404);
    assert_eq!(c.get("/stream?n=lots").status, 400);
    let res = c.get("/echo");
    assert_eq!((res.status, res.header("allow")), (405, Some("POST")));

    c.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    let res = c.read_response(true).expect("HEAD response");
    assert_eq!(
        (res.status, res.header("content-length")),
        (200, Some("13"))
    );
    assert!(res.body.is_empty());
    // Still in sync after HEAD: the next response is the right one.
    assert_eq!(c.get("/").text(), "Hello, World!");
}

#[test]
fn echo_streams_chunked_and_fixed_bodies_with_their_content_type() {
    let server = Server::start(&["-w", "1"]);
    let mut c = server.conn();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/x-demo\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    let res = c.read_response(false).expect("echo");
    assert_eq!((res.status, res.text().as_str()), (200, "hello world"));
    assert_eq!(res.header("content-type"), Some("text/x-demo"));
    assert_eq!(res.header("transfer-encoding"), Some("chunked"));

    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    let res = c.read_response(false).expect("echo");
    assert_eq!(
        (res.text().as_str(), res.header("content-length")),
        ("abc", Some("3"))
    );
}

#[test]
fn expect_100_continue() {
    let server = Server::start(&["-w", "1"]);
    let mut c = server.conn();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.read_response(false).expect("100 Continue");
    assert_eq!(interim.status, 100);
    c.send(b"ping");
    let res = c.read_response(false).expect("echo");
    assert_eq!((res.status, res.text().as_str()), (200, "ping"));
}

#[test]
fn keep_alive_and_pipelining() {
    let server = Server::start(&["-w", "1"]);
    let mut c = server.conn();
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /json HTTP/1.1\r\nHost: t\r\n\r\nGET /stream?n=2 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read_response(false).expect("1").text(), "Hello, World!");
    assert_eq!(
        c.read_response(false).expect("2").text(),
        r#"{"message":"Hello, World!"}"#
    );
    assert_eq!(
        c.read_response(false).expect("3").text(),
        "line 1\nline 2\n"
    );
    for _ in 0..20 {
        assert_eq!(c.get("/").status, 200);
    }
}

#[test]
fn a_client_that_shuts_down_its_sending_side_still_gets_its_responses() {
    let server = Server::start(&["-w", "1"]);
    let mut c = server.conn();
    // The end of the client's stream arrives while the first handler runs.
    c.send(
        b"GET /blocking?ms=300 HTTP/1.1\r\nHost: t\r\n\r\nGET /json HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    c.stream
        .shutdown(std::net::Shutdown::Write)
        .expect("shut down the sending side");
    assert_eq!(c.read_response(false).expect("first response").status, 200);
    assert_eq!(
        c.read_response(false).expect("second response").text(),
        r#"{"message":"Hello, World!"}"#
    );
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "left open after EOF"
    );
}

#[test]
fn request_limits_answer_414_431_400_and_close() {
    let server = Server::start(&["-w", "1", "--limit-request-fields", "20"]);
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (
            format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(5000)).into_bytes(),
            414,
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
                "b".repeat(9000)
            )
            .into_bytes(),
            431,
        ),
        (
            {
                let mut r = String::from("GET / HTTP/1.1\r\nHost: t\r\n");
                for i in 0..25 {
                    r.push_str(&format!("X-{i}: v\r\n"));
                }
                r.push_str("\r\n");
                r.into_bytes()
            },
            431,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n".to_vec(),
            400,
        ),
        (b"NOT HTTP AT ALL\r\n\r\n".to_vec(), 400),
    ];
    for (raw, status) in cases {
        let mut c = server.conn();
        c.send(&raw);
        let res = c
            .read_response(false)
            .unwrap_or_else(|| panic!("a {status} response"));
        assert_eq!(res.status, status);
        assert!(
            c.closed_within(Duration::from_secs(3)),
            "connection left open after {status}"
        );
    }
    // Just under the limits is fine.
    let path = format!("/{}", "a".repeat(4094 - "GET / HTTP/1.1".len()));
    assert_eq!(server.get(&path).status, 404);
}

#[test]
fn idle_keep_alive_connections_close_after_keep_alive() {
    let server = Server::start(&["-w", "1", "--keep-alive", "1"]);
    let mut c = server.conn();
    assert_eq!(c.get("/").status, 200);
    let idle = Instant::now();
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "idle connection kept open"
    );
    let waited = idle.elapsed();
    assert!(
        waited >= Duration::from_millis(800),
        "closed too early: {waited:?}"
    );
}

#[test]
fn a_client_that_never_finishes_its_headers_is_dropped() {
    let server = Server::start(&["-w", "1", "--header-timeout", "1", "--keep-alive", "0"]);
    let mut c = server.conn();
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ");
    assert!(c.closed_within(Duration::from_secs(5)), "slow client kept");
    // Others are still served.
    assert_eq!(server.get("/").status, 200);
}

#[test]
fn keep_alive_zero_closes_after_each_response() {
    let server = Server::start(&["-w", "1", "--keep-alive", "0"]);
    let mut c = server.conn();
    let res = c.get("/");
    assert_eq!(res.header("connection"), Some("close"));
    assert!(c.closed_within(Duration::from_secs(3)));
}

#[test]
fn at_worker_connections_the_worker_stops_accepting_until_one_closes() {
    let server = Server::start(&["-w", "1", "--worker-connections", "1", "--keep-alive", "30"]);
    let mut first = server.conn();
    assert_eq!(first.get("/").status, 200);
    let mut second = server.conn();
    second.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    second
        .stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    let early = std::io::Read::read(&mut second.stream, &mut byte);
    assert!(
        early.is_err(),
        "second connection served while the first was open"
    );
    drop(first);
    second
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let res = second
        .read_response(false)
        .expect("served once the first closed");
    assert_eq!(res.status, 200);
}

#[test]
fn unix_socket_bind_serves_and_is_removed_at_stop() {
    use std::io::{Read, Write};
    let dir = crate::support::temp_dir("unix");
    let path = dir.join("f.sock");
    let bind = format!("unix:{}", path.display());
    let mut server = Server::start(&["-w", "1", "-b", &bind]);
    let mut s = std::os::unix::net::UnixStream::connect(&path).expect("connect unix socket");
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    assert!(
        out.starts_with("HTTP/1.1 200 OK") && out.ends_with("Hello, World!"),
        "{out}"
    );
    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
    assert!(!path.exists(), "socket file left behind");
}

#[test]
fn health_paths_move_and_turn_off() {
    let server = Server::spawn(
        &["-w", "1", "--health-path=", "--ready-path", "/ready"],
        &[],
    );
    let ready = crate::support::wait_until(Duration::from_secs(20), || {
        crate::support::Conn::try_open(server.port)
            .and_then(|mut c| c.try_get("/ready"))
            .is_some_and(|r| r.status == 200)
    });
    assert!(ready, "moved readiness endpoint never answered 200");
    assert_eq!(
        server.get("/healthz").status,
        404,
        "turned off: the app answers"
    );
    assert_eq!(server.get("/readyz").status, 404, "moved: the app answers");
    let res = server.get("/ready");
    assert_eq!((res.status, res.text().as_str()), (200, "ready"));
}
