//! The access log (Gunicorn format and JSON), request ids, JSON error lines,
//! and USR1 reopening the access log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::{Server, temp_dir, wait_until};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A server started with `args` that writes its access log to a fresh
/// file in the temporary directory `name`; and that file's path.
fn logging_access(name: &str, args: &[&str]) -> (Server, PathBuf) {
    let log = temp_dir(name).join("access.log");
    let mut all = args.to_vec();
    all.extend(["--access-logfile", log.to_str().expect("utf-8")]);
    (Server::start(&all), log)
}

#[test]
fn the_access_log_writes_gunicorn_lines_and_request_ids() {
    let (server, log) = logging_access("access-text", &["-w", "1"]);
    let mut c = server.conn();
    c.send(
        b"GET /json?a=1 HTTP/1.1\r\nHost: t\r\nUser-Agent: probe/1\r\nReferer: http://r/\r\n\r\n",
    );
    let res = c.read_response(false).expect("json");
    let id = res
        .header("x-request-id")
        .expect("a generated request id")
        .to_owned();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    c.send(b"GET /stream?n=3 HTTP/1.1\r\nHost: t\r\nX-Request-Id: from-the-client\r\n\r\n");
    let res = c.read_response(false).expect("stream");
    assert_eq!(res.header("x-request-id"), Some("from-the-client"));
    assert!(
        wait_until(Duration::from_secs(5), || read(&log).contains("/stream")),
        "{}",
        read(&log)
    );
    let text = read(&log);
    // The harness's readiness probes are logged too; keep this test's lines.
    let lines: Vec<&str> = text.lines().filter(|l| !l.contains("/readyz")).collect();
    assert!(lines[0].starts_with("127.0.0.1 - - ["), "{}", lines[0]);
    assert!(
        lines[0].ends_with(r#" +0000] "GET /json?a=1 HTTP/1.1" 200 27 "http://r/" "probe/1""#),
        "{}",
        lines[0]
    );
    // A streamed body's bytes are counted as they are sent: "line 1\n" x 3.
    assert!(
        lines[1].contains(r#""GET /stream?n=3 HTTP/1.1" 200 21 "-" "-""#),
        "{}",
        lines[1]
    );
}

/// A handler whose client leaves runs to its end (as under Uvicorn; the
/// worker does not watch the socket while a handler runs), so its request
/// is logged like any other.
#[test]
fn a_request_whose_client_left_still_runs_and_is_logged() {
    let (server, log) = logging_access("access-gone", &["-w", "1"]);
    let mut c = server.conn();
    c.send(b"GET /blocking?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n");
    drop(c);
    assert!(
        wait_until(Duration::from_secs(5), || read(&log)
            .contains(r#""GET /blocking?ms=300 HTTP/1.1" 200"#)),
        "{}",
        read(&log)
    );
}

#[test]
fn json_logs_and_custom_formats() {
    let (server, log) = logging_access("access-json", &["-w", "1", "--log-format", "json"]);
    let mut c = server.conn();
    c.send(
        b"POST /echo?x=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nX-Request-Id: r-1\r\n\r\nabcd",
    );
    assert_eq!(c.read_response(false).expect("echo").text(), "abcd");
    assert!(wait_until(Duration::from_secs(5), || read(&log).contains("/echo")));
    let text = read(&log);
    let line = text
        .lines()
        .find(|l| l.contains("/echo"))
        .expect("the echo line");
    for field in [
        r#""client":"127.0.0.1""#,
        r#""method":"POST""#,
        r#""path":"/echo""#,
        r#""query":"x=1""#,
        r#""status":200"#,
        r#""bytes":4"#,
        r#""worker":0"#,
        r#""request_id":"r-1""#,
        r#""duration":"#,
        r#""time":"20"#,
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    let errors = server.log();
    assert!(
        errors.contains(r#""level":"info","pid":"#)
            && errors.contains(r#""message":"worker 0 ready"}"#),
        "{errors}"
    );
    assert!(
        errors
            .lines()
            .all(|l| l.starts_with(r#"{"time":""#) && l.ends_with('}')),
        "{errors}"
    );

    let (server, log) = logging_access(
        "access-custom",
        &[
            "-w",
            "1",
            "--access-logformat",
            "%(m)s %(U)s q=%(q)s %(s)s %({x-in}i)s %({content-type}o)s pid=%(p)s",
        ],
    );
    let mut c = server.conn();
    c.send(b"GET /json?y=2 HTTP/1.1\r\nHost: t\r\nX-In: hi\r\n\r\n");
    c.read_response(false).expect("json");
    assert!(wait_until(Duration::from_secs(5), || read(&log).contains("/json")));
    let worker = server.workers()[0];
    let text = read(&log);
    let line = text
        .lines()
        .find(|l| l.contains("/json"))
        .expect("the json line");
    assert_eq!(
        line,
        format!("GET /json q=y=2 200 hi application/json pid={worker}")
    );
}

#[test]
fn usr1_reopens_the_access_log() {
    let (server, log) = logging_access("access-usr1", &["-w", "2"]);
    let rotated = log.with_file_name("access.log.1");
    assert_eq!(server.get("/").status, 200);
    assert!(wait_until(Duration::from_secs(5), || !read(&log).is_empty()));
    std::fs::rename(&log, &rotated).expect("rotate");
    server.signal(Signal::SIGUSR1);
    // Both workers reopen (each logs it); then every request goes to the new file.
    assert!(wait_until(Duration::from_secs(5), || server
        .log()
        .matches("] reopened log files")
        .count()
        >= 2));
    let before = read(&rotated);
    for _ in 0..10 {
        assert_eq!(server.get("/").status, 200);
    }
    let count = || read(&log).lines().filter(|l| l.contains("GET / ")).count();
    assert!(
        wait_until(Duration::from_secs(5), || count() == 10),
        "{}",
        read(&log)
    );
    assert_eq!(read(&rotated), before, "nothing more in the rotated file");
}

#[test]
fn lines_written_in_batches_are_all_there_after_a_stop() {
    // Lines are gathered and written once per turn of a worker's event
    // loop; a stop, graceful (TERM) or quick (INT, connections dropped),
    // still writes every one.
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let (mut server, log) = logging_access("access-batch", &["-w", "2"]);
        let mut conns: Vec<_> = (0..4).map(|_| server.conn()).collect();
        for i in 0..50 {
            for (n, c) in conns.iter_mut().enumerate() {
                assert_eq!(c.get(&format!("/json?n={n}&i={i}")).status, 200);
            }
        }
        server.signal(signal);
        assert!(server.wait_exit(Duration::from_secs(10)).success());
        let text = read(&log);
        let ours = text.lines().filter(|l| l.contains("GET /json?n=")).count();
        assert_eq!(ours, 200, "{signal}: {ours} of 200 lines");
        assert!(
            text.lines().all(|l| l.ends_with(r#" "-" "-""#)),
            "{signal}: a torn line"
        );
    }
}

#[test]
fn a_bad_access_log_format_is_a_configuration_error() {
    let out = crate::support::command(&temp_dir("bad-format"))
        .args(["--access-logformat", "%(h)s %(nope)s"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value for `access_logformat` (from cli): unknown atom `%(nope)s`"),
        "{stderr}"
    );
}
