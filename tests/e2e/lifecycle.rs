//! Process management under load: reload, scale, recycle, shutdown delay,
//! killed and hung workers, boot timeout, pidfile, inherited sockets, user.
//! Each load test counts every failed request, refused or reset connection.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::{Conn, Load, Server, Tally, wait_until};

fn assert_no_failures(tally: &Tally, what: &str) {
    assert_eq!(
        tally.failed,
        0,
        "{what}: {} failed of {}: {:?}",
        tally.failed,
        tally.ok + tally.failed,
        tally.errors
    );
    assert!(tally.ok > 0, "{what}: no request succeeded");
}

#[test]
fn hup_reload_with_a_new_worker_count_loses_no_request() {
    let server = Server::start_with_file("workers = 2\n", &[]);
    let supervisor = server.pid();
    let before = server.workers();
    assert_eq!(before.len(), 2);
    let load = Load::start(server.port, 4, 2);
    assert!(load.wait_for_ok(300, Duration::from_secs(10)));
    std::fs::write(server.dir.join("ferricorn.toml"), "workers = 3\n").expect("rewrite config");
    server.signal(Signal::SIGHUP);
    server.wait_log("reload complete", Duration::from_secs(15));
    let (replaced, tally) = load.stop_once_replaced(&server, &before, 3);
    assert!(
        replaced,
        "workers after reload: {:?} (before {before:?})",
        server.workers()
    );
    assert_no_failures(&tally, "HUP reload");
    assert_eq!(server.pid(), supervisor);
    server.wait_ready();
}

#[test]
fn an_invalid_config_on_hup_is_ignored() {
    let server = Server::start_with_file("workers = 1\n", &[]);
    let before = server.workers();
    std::fs::write(server.dir.join("ferricorn.toml"), "workers = \"many\"\n").expect("rewrite");
    server.signal(Signal::SIGHUP);
    server.wait_log(
        "reload: invalid value for `workers`",
        Duration::from_secs(5),
    );
    assert_eq!(server.workers(), before);
    assert_eq!(server.get("/").status, 200);
}

#[test]
fn a_reload_whose_app_fails_to_start_keeps_the_old_workers() {
    // Startup takes 300 ms; the new file's boot timeout is 100 ms.
    let server = Server::start_with_file_env(
        "workers = 1\n",
        &[("FERRICORN_DEMO_STARTUP_DELAY_MS", "300")],
    );
    let before = server.workers();
    let load = Load::start(server.port, 2, 1);
    assert!(load.wait_for_ok(100, Duration::from_secs(10)));
    std::fs::write(
        server.dir.join("ferricorn.toml"),
        "workers = 1\nboot_timeout = 0.1\n",
    )
    .expect("rewrite");
    server.signal(Signal::SIGHUP);
    server.wait_log(
        "did not finish startup within 100ms",
        Duration::from_secs(10),
    );
    server.wait_log("reload failed", Duration::from_secs(10));
    let seen = load.ok_so_far();
    assert!(load.wait_for_ok(seen + 100, Duration::from_secs(10)));
    let tally = load.stop();
    assert_no_failures(&tally, "failed reload");
    assert!(
        server.workers().iter().any(|p| before.contains(p)),
        "old worker gone: {:?}",
        server.workers()
    );
}

#[test]
fn ttin_and_ttou_under_load_lose_no_request() {
    let server = Server::start(&["-w", "2"]);
    let load = Load::start(server.port, 4, 2);
    assert!(load.wait_for_ok(200, Duration::from_secs(10)));
    server.signal(Signal::SIGTTIN);
    assert!(wait_until(Duration::from_secs(10), || server
        .workers()
        .len()
        == 3));
    server.wait_ready();
    let seen = load.ok_so_far();
    assert!(load.wait_for_ok(seen + 200, Duration::from_secs(10)));
    server.signal(Signal::SIGTTOU);
    assert!(wait_until(Duration::from_secs(10), || server
        .workers()
        .len()
        == 2));
    let seen = load.ok_so_far();
    assert!(load.wait_for_ok(seen + 200, Duration::from_secs(10)));
    assert_no_failures(&load.stop(), "TTIN/TTOU");
}

#[test]
fn max_requests_recycles_workers_without_losing_requests() {
    let server = Server::start(&[
        "-w",
        "2",
        "--max-requests",
        "200",
        "--max-requests-jitter",
        "20",
    ]);
    let load = Load::start(server.port, 4, 2);
    assert!(
        load.wait_for_ok(5000, Duration::from_secs(50)),
        "load too slow"
    );
    let tally = load.stop();
    assert_no_failures(&tally, "max-requests");
    let recycled = server.log().matches("(max-requests); draining it").count();
    assert!(recycled >= 3, "only {recycled} recycled:\n{}", server.log());
    server.wait_ready();
}

#[test]
fn term_with_shutdown_delay_turns_readiness_off_and_keeps_serving() {
    let mut server = Server::start(&["-w", "2", "--shutdown-delay", "2"]);
    let load = Load::start(server.port, 3, 1);
    assert!(load.wait_for_ok(100, Duration::from_secs(10)));
    let sent = Instant::now();
    server.signal(Signal::SIGTERM);
    let not_ready = wait_until(Duration::from_secs(1), || {
        Conn::try_open(server.port)
            .and_then(|mut c| c.try_get("/readyz"))
            .is_some_and(|r| r.status == 503)
    });
    let took = sent.elapsed();
    assert!(
        not_ready && took < Duration::from_millis(100),
        "readiness turned 503 after {took:?}"
    );
    // Requests keep succeeding through the delay.
    let seen = load.ok_so_far();
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(sent.elapsed()));
    let tally = load.stop();
    assert_no_failures(&tally, "shutdown delay");
    assert!(tally.ok > seen, "nothing served during the delay");
    assert!(
        server.child.try_wait().expect("try_wait").is_none(),
        "exited during the delay"
    );
    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert!(
        sent.elapsed() >= Duration::from_secs(2),
        "stopped before the delay ended"
    );
}

#[test]
fn kill_9_under_load_fails_only_what_was_in_flight() {
    let server = Server::start(&["-w", "2"]);
    let load = Load::start(server.port, 0, 4);
    assert!(load.wait_for_ok(200, Duration::from_secs(10)));
    let victim = server.workers()[0];
    kill(Pid::from_raw(victim), Signal::SIGKILL).expect("kill");
    assert!(wait_until(Duration::from_secs(10), || {
        let now = server.workers();
        now.len() == 2 && !now.contains(&victim)
    }));
    let tally = load.stop();
    // At most the requests in flight on the victim: one per load thread.
    assert!(
        tally.failed <= 4,
        "{} failed: {:?}",
        tally.failed,
        tally.errors
    );
    // New connections keep succeeding.
    let after = Load::start(server.port, 0, 4);
    assert!(after.wait_for_ok(200, Duration::from_secs(10)));
    assert_no_failures(&after.stop(), "after the kill");
}

#[test]
fn a_hung_worker_gets_sigabrt_then_is_replaced_while_others_serve() {
    let server = Server::start(&["-w", "2", "--timeout", "2"]);
    let victim = server.workers()[0];
    kill(Pid::from_raw(victim), Signal::SIGSTOP).expect("stop");
    let stopped = Instant::now();
    let load = Load::start(server.port, 0, 2);
    server.wait_log(
        &format!("WORKER TIMEOUT (pid:{victim})"),
        Duration::from_secs(6),
    );
    assert!(wait_until(Duration::from_secs(6), || !server
        .workers()
        .contains(&victim)));
    assert!(wait_until(Duration::from_secs(6), || server
        .workers()
        .len()
        == 2));
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(4), "replaced after {took:?}");
    server.wait_ready();
    let seen = load.ok_so_far();
    assert!(load.wait_for_ok(seen + 100, Duration::from_secs(10)));
    let tally = load.stop();
    // Fresh connections land on whichever worker accepts; the stopped one
    // accepts none, so none fail.
    assert_no_failures(&tally, "hung worker");
}

#[test]
fn a_worker_that_never_finishes_startup_is_killed_at_boot_timeout() {
    let mut server = Server::spawn(
        &["-w", "1", "--boot-timeout", "0.5"],
        &[("FERRICORN_DEMO_STARTUP_DELAY_MS", "60000")],
    );
    let status = server.wait_exit(Duration::from_secs(10));
    let log = server.log();
    assert_eq!(status.code(), Some(3), "{log}");
    assert!(log.contains("did not finish startup within 500ms"), "{log}");
    assert!(log.contains("no worker has booted yet"), "{log}");
}

#[test]
fn the_pidfile_appears_when_ready_and_goes_at_exit() {
    let dir = crate::support::temp_dir("pidfile");
    let path = dir.join("ferricorn.pid");
    let mut server = Server::start(&["-w", "1", "-p", path.to_str().expect("utf-8")]);
    assert!(wait_until(Duration::from_secs(5), || path.exists()));
    let written = std::fs::read_to_string(&path).expect("pidfile");
    assert_eq!(written.trim(), server.pid().to_string());
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert!(!path.exists(), "pidfile left behind");
}

/// A listening socket the child inherits (no close-on-exec), and its fd.
fn inheritable_listener() -> (std::net::TcpListener, i32, u16) {
    use std::os::fd::AsRawFd;
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let fd = l.as_raw_fd();
    nix::fcntl::fcntl(
        &l,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .expect("clear cloexec");
    (l, fd, port)
}

#[test]
fn fd_binds_and_systemd_sockets_are_served() {
    let (listener, fd, port) = inheritable_listener();
    let dir = crate::support::temp_dir("fd-bind");
    let mut child = crate::support::command(&dir)
        .args(["-w", "1", "-b", &format!("fd://{fd}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    assert!(wait_until(Duration::from_secs(10), || Conn::try_open(port)
        .and_then(|mut c| c.try_get("/"))
        .is_some_and(|r| r.status == 200)));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("term");
    assert!(child.wait().expect("wait").success());

    // systemd: the socket as fd 3, LISTEN_PID naming the server's own pid.
    let script =
        format!("export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" -w 1 -b 127.0.0.1:1 3<&{fd}");
    let child = std::process::Command::new("sh")
        .args(["-c", &script, crate::support::BIN])
        .current_dir(&dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn via sh");
    assert!(wait_until(Duration::from_secs(10), || Conn::try_open(port)
        .and_then(|mut c| c.try_get("/worker"))
        .is_some_and(|r| r.status == 200)));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("term");
    let out = child.wait_with_output().expect("wait");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("using 1 sockets passed by systemd instead of bind"),
        "{log}"
    );
    drop(listener);
}

#[test]
fn workers_switch_user_when_asked() {
    if !nix::unistd::Uid::effective().is_root() {
        // Without root, asking for another user is a configuration error.
        let out = crate::support::command(&crate::support::temp_dir("user"))
            .args(["--check-config", "--user", "root"])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2));
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("lookup")
        .expect("user nobody");
    let server = Server::start(&["-w", "1", "--user", "nobody"]);
    let worker = server.workers()[0];
    let status = std::fs::read_to_string(format!("/proc/{worker}/status")).expect("status");
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line");
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|u| u == nobody.uid.to_string()),
        "{uid_line}"
    );
    let supervisor =
        std::fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("status");
    assert!(
        supervisor.lines().any(|l| l.starts_with("Uid:\t0\t")),
        "supervisor keeps root"
    );
    assert_eq!(server.get("/").status, 200);
}

#[test]
fn max_worker_memory_replaces_workers_without_losing_requests() {
    // 1 MiB is below any worker's RSS, so each is replaced after two checks.
    let server = Server::start(&["-w", "1", "--max-worker-memory", "1"]);
    let first = server.workers()[0];
    let load = Load::start(server.port, 2, 1);
    server.wait_log("over max-worker-memory", Duration::from_secs(10));
    server.wait_log("(max-worker-memory); draining it", Duration::from_secs(10));
    assert!(wait_until(Duration::from_secs(10), || !server
        .workers()
        .contains(&first)));
    let seen = load.ok_so_far();
    assert!(load.wait_for_ok(seen + 100, Duration::from_secs(10)));
    assert_no_failures(&load.stop(), "max-worker-memory");
}

#[test]
fn max_worker_memory_below_a_fresh_worker_backs_off_instead_of_forking_without_end() {
    // Every fresh worker is over 1 MiB: the second replacement in a row
    // waits 200 ms, the third 400 ms, each next one twice as long.
    let server = Server::start(&["-w", "1", "--max-worker-memory", "1"]);
    server.wait_log("3 workers in a row", Duration::from_secs(10));
    let log = server.log();
    let before: Vec<&str> = log
        .lines()
        .take_while(|l| !l.contains("3 workers in a row"))
        .collect();
    let warning = log
        .lines()
        .find(|l| l.contains("3 workers in a row"))
        .expect("the warning");
    assert!(
        warning.contains("max-worker-memory (1 MiB)") && warning.ends_with("next one in 400ms"),
        "{warning}"
    );
    assert!(
        before.iter().any(|l| l.ends_with("next one in 200ms")),
        "{log}"
    );
    // The first worker and two replacements; without the backoff, hundreds.
    let booted = before
        .iter()
        .filter(|l| l.contains("booting worker"))
        .count();
    assert_eq!(booted, 3, "{log}");
    assert_eq!(server.get("/").status, 200);
}

#[test]
fn usr1_reopens_the_error_log_in_the_supervisor_and_every_worker() {
    let dir = crate::support::temp_dir("usr1");
    let log = dir.join("error.log");
    let rotated = dir.join("error.log.1");
    let mut child = crate::support::command(&dir)
        .args([
            "-w",
            "2",
            "-b",
            "127.0.0.1:0",
            "--error-logfile",
            log.to_str().expect("utf-8"),
        ])
        .spawn()
        .expect("spawn");
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || read(&log)
            .matches(" ready")
            .count()
            == 2),
        "{}",
        read(&log)
    );
    std::fs::rename(&log, &rotated).expect("rotate");
    let supervisor = Pid::from_raw(child.id() as i32);
    kill(supervisor, Signal::SIGUSR1).expect("usr1");
    let reopened = wait_until(Duration::from_secs(10), || {
        let text = read(&log);
        text.contains("[supervisor] reopened log files") && text.matches("[worker ").count() >= 2
    });
    assert!(
        reopened,
        "new file:\n{}\nold file:\n{}",
        read(&log),
        read(&rotated)
    );
    let old_len = read(&rotated).len();
    kill(supervisor, Signal::SIGTERM).expect("term");
    assert!(child.wait().expect("wait").success());
    assert!(
        read(&log).contains("stopped"),
        "shutdown lines go to the new file"
    );
    assert_eq!(
        read(&rotated).len(),
        old_len,
        "nothing more written to the rotated file"
    );
    assert!(!read(&rotated).is_empty());
}

#[test]
fn a_burst_of_connections_spreads_across_workers() {
    let server = Server::start(&["-w", "2", "--keep-alive", "30"]);
    let mut conns: Vec<Conn> = (0..40).map(|_| server.conn()).collect();
    let mut per_worker = std::collections::HashMap::new();
    for c in &mut conns {
        let body = c.get("/worker").text();
        let slot = body
            .split("\"slot\":")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .expect("slot")
            .to_owned();
        *per_worker.entry(slot).or_insert(0) += 1;
    }
    let counts: Vec<i32> = per_worker.values().copied().collect();
    assert_eq!(
        counts.len(),
        2,
        "one worker took every connection: {per_worker:?}"
    );
    assert!(counts.iter().all(|n| *n >= 12), "uneven: {per_worker:?}");
}

#[test]
fn a_blocked_event_loop_is_caught_by_the_heartbeat() {
    let server = Server::start_with(
        &["-w", "2", "--timeout", "2"],
        &[("FERRICORN_DEMO_BLOCKING_ROUTE", "1")],
    );
    let mut blocker = server.conn();
    blocker.send(b"GET /block-loop?ms=30000 HTTP/1.1\r\nHost: t\r\n\r\n");
    let line = server.wait_log("WORKER TIMEOUT (pid:", Duration::from_secs(8));
    let pid: i32 = line
        .split("(pid:")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .expect("pid in the timeout line");
    assert!(wait_until(Duration::from_secs(6), || {
        let now = server.workers();
        now.len() == 2 && !now.contains(&pid)
    }));
    server.wait_ready();
    assert_eq!(server.get("/").status, 200);
    // Counted as a timeout, not a crash.
    let metrics = server.get("/metrics").text();
    assert!(
        metrics.contains("ferricorn_worker_exits_total{reason=\"timeout\"} 1\n")
            && metrics.contains("ferricorn_worker_exits_total{reason=\"crash\"} 0\n"),
        "{metrics}"
    );
}

#[test]
fn umask_applies_to_unix_socket_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = crate::support::temp_dir("umask");
    let path = dir.join("f.sock");
    let bind = format!("unix:{}", path.display());
    let _server = Server::start(&["-w", "1", "-b", &bind, "--umask", "077"]);
    let mode = std::fs::metadata(&path)
        .expect("socket file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "mode {mode:o}");
}

#[test]
fn on_hup_the_original_command_line_still_wins() {
    let server = Server::start_with_file("workers = 2\nkeep_alive = 9\n", &["-w", "1"]);
    assert_eq!(server.workers().len(), 1);
    let before = server.workers();
    std::fs::write(
        server.dir.join("ferricorn.toml"),
        "workers = 3\nkeep_alive = 8\n",
    )
    .expect("rewrite");
    server.signal(Signal::SIGHUP);
    server.wait_log("reload complete", Duration::from_secs(10));
    assert!(
        wait_until(Duration::from_secs(10), || {
            let now = server.workers();
            now.len() == 1 && now != before
        }),
        "{:?}",
        server.workers()
    );
    server.wait_log(
        "reload: replacing 1 worker with 1 worker",
        Duration::from_secs(1),
    );
}
