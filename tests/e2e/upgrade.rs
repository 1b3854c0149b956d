//! SIGUSR2: the binary re-executes in place (same pid, same sockets), its
//! new workers boot beside the old ones, and the old ones drain only then.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::metrics::Scrape;
use crate::support::{BIN, Load, Server, wait_until};

/// A copy of the binary in its own directory, so a test can replace it.
fn binary_copy(name: &str) -> PathBuf {
    let dir = crate::support::temp_dir(name);
    let path = dir.join("ferricorn");
    std::fs::copy(BIN, &path).expect("copy the binary");
    path
}

/// A rebuild: a new file in the binary's place, as cargo leaves it.
fn rebuild(bin: &Path) {
    let tmp = bin.with_extension("new");
    std::fs::copy(BIN, &tmp).expect("copy");
    std::fs::rename(&tmp, bin).expect("swap binary");
}

/// Replaces `path` with a shell script, as a deploy replaces a binary.
fn replace_with_script(path: &Path, script: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, script).expect("write script");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::rename(&tmp, path).expect("swap binary");
}

#[test]
fn usr2_upgrades_in_place_without_losing_a_request() {
    let pidfile = crate::support::temp_dir("upgrade-pid").join("f.pid");
    let server = Server::start(&["-w", "2", "-p", pidfile.to_str().expect("utf-8")]);
    let oldbin = pidfile.with_extension("pid.oldbin");
    assert!(wait_until(Duration::from_secs(5), || pidfile.exists()));
    let (supervisor, before) = (server.pid(), server.workers());
    let load = Load::start(server.port, 4, 2);
    assert!(load.wait_for_ok(300, Duration::from_secs(10)));
    let served = Scrape::from_port(server.port).sum("ferricorn_http_requests_total", &[]);
    server.signal(Signal::SIGUSR2);
    server.wait_log("upgrade: executing", Duration::from_secs(15));
    server.wait_log("upgrade complete", Duration::from_secs(15));
    let (replaced, tally) = load.stop_once_replaced(&server, &before, 2);
    assert!(
        replaced,
        "workers after the upgrade: {:?} (before {before:?})",
        server.workers()
    );
    assert_eq!(tally.failed, 0, "{:?}", tally.errors);
    assert_eq!(server.pid(), supervisor, "the supervisor keeps its pid");
    server.wait_ready();
    // The pidfile went to PATH.oldbin for the upgrade and is back when done.
    assert!(wait_until(Duration::from_secs(5), || pidfile.exists()
        && !oldbin.exists()));
    let log = server.log();
    assert_eq!(
        log.matches("starting with 2 workers").count(),
        2,
        "two images: {log}"
    );
    // The metrics carry on across the exec: both slots restarted once, both
    // old workers counted as exits for the upgrade, no count gone back.
    let counted = wait_until(Duration::from_secs(10), || {
        Scrape::from_port(server.port).get("ferricorn_worker_exits_total", &[("reason", "upgrade")])
            == Some(2.0)
    });
    let after = Scrape::from_port(server.port);
    assert!(
        counted,
        "exits for the upgrade: {:?}",
        after.get("ferricorn_worker_exits_total", &[("reason", "upgrade")])
    );
    assert_eq!(after.sum("ferricorn_worker_restarts_total", &[]), 2.0);
    assert!(after.sum("ferricorn_http_requests_total", &[]) > served);
}

#[test]
fn a_binary_that_does_not_run_aborts_the_upgrade() {
    let bin = binary_copy("upgrade-broken");
    let mut server = Server::spawn_bin(&bin, &["-w", "1"], &[]);
    server.wait_ready();
    let before = server.workers();
    replace_with_script(&bin, "#!/bin/sh\necho 'broken build' >&2\nexit 1\n");
    server.signal(Signal::SIGUSR2);
    server.wait_log("upgrade aborted", Duration::from_secs(15));
    assert!(server.log().contains("broken build"), "{}", server.log());
    assert_eq!(server.workers(), before);
    assert_eq!(server.get("/").status, 200);
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_binary_whose_app_fails_to_start_leaves_the_old_workers_serving() {
    let bin = binary_copy("upgrade-failing-app");
    let server = Server::spawn_bin(&bin, &["-w", "2"], &[]);
    server.wait_ready();
    let before = server.workers();
    let load = Load::start(server.port, 2, 1);
    assert!(load.wait_for_ok(100, Duration::from_secs(10)));
    // The new "binary" passes --check-config but its app cannot start.
    replace_with_script(
        &bin,
        &format!("#!/bin/sh\nFERRICORN_DEMO_FAIL_STARTUP='new build' exec {BIN} \"$@\"\n"),
    );
    server.signal(Signal::SIGUSR2);
    server.wait_log("upgrade failed", Duration::from_secs(15));
    // The old workers answer /metrics, which counts the new ones' failure.
    let counted = wait_until(Duration::from_secs(5), || {
        let metrics = server.get("/metrics").text();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("ferricorn_worker_boot_failures_total "))
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= 1)
    });
    assert!(counted, "the failed boot was not counted");
    let seen = load.ok_so_far();
    assert!(load.wait_for_ok(seen + 200, Duration::from_secs(10)));
    let tally = load.stop();
    assert_eq!(tally.failed, 0, "{:?}", tally.errors);
    assert!(
        wait_until(Duration::from_secs(5), || server.workers() == before),
        "{:?}",
        server.workers()
    );
    server.wait_ready();
}

#[test]
fn reload_re_executes_when_the_binary_is_rebuilt() {
    let bin = binary_copy("reload-rebuilt");
    let server = Server::spawn_bin(&bin, &["-w", "2", "--reload"], &[]);
    server.wait_ready();
    server.wait_log("reload: watching", Duration::from_secs(5));
    let (supervisor, before) = (server.pid(), server.workers());
    let load = Load::start(server.port, 4, 2);
    assert!(load.wait_for_ok(200, Duration::from_secs(10)));
    rebuild(&bin);
    server.wait_log(
        "reload: a watched file changed; re-executing in place",
        Duration::from_secs(10),
    );
    server.wait_log("upgrade complete", Duration::from_secs(15));
    let (replaced, tally) = load.stop_once_replaced(&server, &before, 2);
    assert!(
        replaced,
        "workers: {:?} (before {before:?})",
        server.workers()
    );
    assert_eq!(tally.failed, 0, "{:?}", tally.errors);
    assert_eq!(server.pid(), supervisor, "the supervisor keeps its pid");
    assert_eq!(server.log().matches("reload: watching").count(), 2);
}

#[test]
fn reload_is_refused_with_a_user() {
    let out = crate::support::command(&crate::support::temp_dir("reload-user"))
        .args(["--reload", "--user", "root", "--check-config"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value for `reload` (from cli): is for development and cannot be used with `user` or `group`"),
        "{stderr}"
    );
}

#[test]
fn reload_follows_the_settings_a_sighup_reads() {
    let bin = binary_copy("reload-on-hup");
    let file = bin.with_file_name("ferricorn.toml");
    std::fs::write(&file, "workers = 1\n").expect("write");
    let server = Server::spawn_bin(&bin, &["-c", file.to_str().expect("utf-8")], &[]);
    server.wait_ready();
    assert!(!server.log().contains("reload: watching"));
    std::fs::write(&file, "workers = 1\nreload = true\n").expect("write");
    server.signal(Signal::SIGHUP);
    server.wait_log("reload: watching", Duration::from_secs(10));
    server.wait_log("reload complete", Duration::from_secs(15));
    rebuild(&bin);
    server.wait_log(
        "reload: a watched file changed; re-executing in place",
        Duration::from_secs(10),
    );
    server.wait_log("upgrade complete", Duration::from_secs(15));
}
