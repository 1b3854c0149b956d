//! The process model: worker count, replacement, graceful and quick stops,
//! boot failures, crash-loop backoff, exit codes.

use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::{Conn, Server, command, is_gone, temp_dir, wait_until};

fn kill_pid(pid: i32, signal: Signal) {
    kill(Pid::from_raw(pid), signal).expect("kill");
}

#[test]
fn forks_the_configured_number_of_workers() {
    let server = Server::start(&["-w", "3"]);
    assert_eq!(server.workers().len(), 3);
    for i in 0..3 {
        server.wait_log(
            &format!("booting worker {i} with pid "),
            Duration::from_secs(1),
        );
    }
}

#[test]
fn a_killed_worker_is_replaced_while_others_keep_serving() {
    let server = Server::start(&["-w", "2", "--keep-alive", "60"]);
    let mut conn = server.conn();
    let serving = pid_of(&conn.get("/worker").text());
    let before = server.workers();
    let victim = *before
        .iter()
        .find(|p| **p != serving)
        .expect("another worker");
    kill_pid(victim, Signal::SIGKILL);
    // The other worker's connection is unaffected, before and after the replacement.
    for _ in 0..20 {
        assert_eq!(pid_of(&conn.get("/worker").text()), serving);
    }
    server.wait_log(
        &format!("(pid {victim}) was killed by SIGKILL"),
        Duration::from_secs(5),
    );
    let replaced = wait_until(Duration::from_secs(10), || {
        let now = server.workers();
        now.len() == 2 && !now.contains(&victim) && now.contains(&serving)
    });
    assert!(replaced, "worker not replaced: {:?}", server.workers());
    server.wait_ready();
    for _ in 0..10 {
        assert_eq!(server.get("/").status, 200);
    }
}

#[test]
fn a_stopped_worker_is_killed_at_timeout_and_replaced() {
    let server = Server::start(&["-w", "2", "--timeout", "2", "--keep-alive", "60"]);
    let mut conn = server.conn();
    let serving = pid_of(&conn.get("/worker").text());
    let victim = *server
        .workers()
        .iter()
        .find(|p| **p != serving)
        .expect("another worker");
    kill_pid(victim, Signal::SIGSTOP);
    let stopped = Instant::now();
    server.wait_log(
        &format!("WORKER TIMEOUT (pid:{victim})"),
        Duration::from_secs(6),
    );
    let replaced = wait_until(Duration::from_secs(6), || {
        let now = server.workers();
        now.len() == 2 && !now.contains(&victim)
    });
    assert!(replaced, "hung worker not replaced: {:?}", server.workers());
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "took {:?}",
        stopped.elapsed()
    );
    assert_eq!(
        pid_of(&conn.get("/worker").text()),
        serving,
        "the other worker kept serving"
    );
    server.wait_ready();
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_0_without_orphans() {
    let mut server = Server::start(&["-w", "1"]);
    let workers = server.workers();
    let mut slow = send_in_flight(
        &server,
        b"GET /blocking?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let sent = Instant::now();
    server.signal(Signal::SIGTERM);
    let res = slow
        .read_response(false)
        .expect("the in-flight request completes");
    assert_eq!(
        (res.status, res.text().as_str()),
        (200, "ferricorn-blocking")
    );
    assert!(sent.elapsed() < Duration::from_secs(5));
    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log());
    assert!(workers.iter().all(|w| is_gone(*w)), "orphaned workers");
    let log = server.log();
    assert!(
        log.contains("graceful stop") && log.contains("worker 0 stopped"),
        "{log}"
    );
}

#[test]
fn sigquit_stops_at_once_even_with_a_request_in_flight() {
    let mut server = Server::start(&["-w", "1"]);
    let workers = server.workers();
    let _slow = send_in_flight(
        &server,
        b"GET /blocking?ms=20000 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let sent = Instant::now();
    server.signal(Signal::SIGQUIT);
    assert_eq!(server.wait_exit(Duration::from_secs(5)).code(), Some(0));
    assert!(
        sent.elapsed() < Duration::from_secs(4),
        "quick stop took {:?}",
        sent.elapsed()
    );
    assert!(workers.iter().all(|w| is_gone(*w)), "orphaned workers");
}

#[test]
fn workers_die_with_a_killed_supervisor() {
    let mut server = Server::start(&["-w", "2"]);
    let workers = server.workers();
    server.signal(Signal::SIGKILL);
    server.wait_exit(Duration::from_secs(5));
    let gone = wait_until(Duration::from_secs(10), || {
        workers.iter().all(|w| is_gone(*w))
    });
    assert!(gone, "workers outlived the supervisor");
}

#[test]
fn an_app_that_fails_startup_exits_3_without_respawning() {
    let mut server = Server::spawn(
        &["-w", "2"],
        &[("FERRICORN_DEMO_FAIL_STARTUP", "database unreachable")],
    );
    let status = server.wait_exit(Duration::from_secs(10));
    let log = server.log();
    assert_eq!(status.code(), Some(3), "{log}");
    assert!(
        log.contains("failed to boot: demo startup failed: database unreachable"),
        "{log}"
    );
    assert_eq!(log.matches("booting worker").count(), 2, "respawned: {log}");
}

#[test]
fn a_worker_that_keeps_crashing_after_boot_is_restarted_with_backoff() {
    let mut server = Server::spawn(&["-w", "1"], &[("FERRICORN_DEMO_CRASH_AFTER_BOOT", "1")]);
    server.wait_log("restarting it in", Duration::from_secs(15));
    let boots = server.log().matches("booting worker 0").count();
    assert!(boots < 10, "hot respawn loop: {boots} boots");
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_port_in_use_exits_1_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = command(&temp_dir("port-in-use"))
        .args(["-b", &addr])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}: Address already in use")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn ttin_and_ttou_scale_the_workers() {
    let server = Server::start(&["-w", "1"]);
    let count = |n: usize| wait_until(Duration::from_secs(10), || server.workers().len() == n);
    assert!(
        server.log().contains("starting with 1 worker ("),
        "{}",
        server.log()
    );
    server.signal(Signal::SIGTTOU);
    server.wait_log(
        "TTOU ignored: already at 1 worker, the fewest",
        Duration::from_secs(5),
    );
    assert_eq!(server.workers().len(), 1);
    server.signal(Signal::SIGTTIN);
    assert!(count(2), "TTIN: {:?}", server.workers());
    server.wait_ready();
    server.signal(Signal::SIGTTOU);
    assert!(count(1), "TTOU: {:?}", server.workers());
    server.wait_ready();
    server.wait_log("worker 1 (pid ", Duration::from_secs(5));
    assert!(
        !server.log().contains("exited with code"),
        "a retired worker is no failure"
    );

    // Down and straight up again while the retired worker still drains a
    // slow request: the slot is refilled once that worker has exited.
    server.signal(Signal::SIGTTIN);
    assert!(count(2), "TTIN: {:?}", server.workers());
    server.wait_ready();
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut c = server.conn();
        c.send(b"GET /blocking?ms=400 HTTP/1.1\r\nHost: t\r\n\r\n");
        slow.push(c);
    }
    std::thread::sleep(Duration::from_millis(100));
    server.signal(Signal::SIGTTOU);
    server.signal(Signal::SIGTTIN);
    for mut c in slow {
        assert_eq!(c.read_response(false).expect("slow response").status, 200);
    }
    assert!(count(2), "refilled: {:?}", server.workers());
    server.wait_ready();
    assert_eq!(
        server.log().matches("booting worker 1 ").count(),
        3,
        "{}",
        server.log()
    );
}

/// The pid in a `/worker` answer.
fn pid_of(json: &str) -> i32 {
    json.split("\"pid\":")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {json}"))
}

/// The requests counted by the one worker's `/worker` answer.
fn requests_of(json: &str) -> u64 {
    json.split("\"requests\":")
        .nth(1)
        .and_then(|r| r.trim_end_matches('}').parse().ok())
        .unwrap_or_else(|| panic!("no requests in {json}"))
}

/// With one worker, sends `raw` (a slow request) on a new connection and
/// waits until the worker is handling it: the worker's request count, read
/// on other connections, then includes it.
fn send_in_flight(server: &Server, raw: &[u8]) -> Conn {
    let before = requests_of(&server.get("/worker").text());
    let mut slow = server.conn();
    slow.send(raw);
    let mut probes = 0u64;
    let ok = wait_until(Duration::from_secs(5), || {
        probes += 1;
        let n = requests_of(&server.get("/worker").text());
        thread::yield_now();
        // `before` counted the first probe; each later probe adds one.
        n > before + probes
    });
    assert!(ok, "the slow request never reached the worker");
    slow
}
