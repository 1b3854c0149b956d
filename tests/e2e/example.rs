//! The examples: `examples/axum.rs`, an axum `Router` served through
//! `HyperApp`; `examples/builder.rs`, settings in code; `examples/flags.rs`,
//! a program's flags beside ferricorn's.

use std::path::PathBuf;
use std::process::Output;

use nix::sys::signal::Signal;

use crate::support::{Server, command_for, temp_dir};

/// `target/<profile>/examples/NAME`, built by `cargo test` beside this test.
fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let bin = profile_dir.join("examples").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run the whole suite with `cargo test`, which builds the examples",
        bin.display()
    );
    bin
}

#[test]
fn an_axum_router_runs_under_ferricorn() {
    let mut server = Server::spawn_bin(&example_bin("axum"), &["-w", "2"], &[]);
    server.wait_ready();
    assert_eq!(server.workers().len(), 2);
    let res = server.get("/");
    assert_eq!((res.status, res.text().as_str()), (200, "Hello from axum"));
    assert!(server.get("/worker").text().starts_with("axum in worker "));
    let who = server.get("/whoami");
    let id = who.header("x-request-id").expect("request id").to_owned();
    assert_eq!(
        who.text(),
        format!("127.0.0.1 http {id}"),
        "RequestInfo in extensions"
    );
    assert_eq!(server.get("/nope").status, 404, "axum's own 404");
    assert_eq!(server.get("/healthz").status, 200, "ferricorn's endpoint");
    server.signal(Signal::SIGTERM);
    assert_eq!(
        server.wait_exit(std::time::Duration::from_secs(10)).code(),
        Some(0)
    );
}

/// The `--print-config` line of `key` from the builder example run with
/// `args`, `env` and, if given, a `ferricorn.toml`.
fn builder_setting(key: &str, args: &[&str], env: &[(&str, &str)], file: Option<&str>) -> String {
    let dir = temp_dir("builder");
    if let Some(toml) = file {
        std::fs::write(dir.join("ferricorn.toml"), toml).expect("write config");
    }
    let out: Output = command_for(&example_bin("builder"), &dir)
        .arg("--print-config")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in:\n{stdout}"));
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn settings_in_code_are_defaults_under_file_env_and_cli() {
    let code = builder_setting("workers", &[], &[], None);
    assert_eq!(code, "workers = 3 # code");
    assert_eq!(
        builder_setting("graceful_timeout", &[], &[], None),
        "graceful_timeout = 7 # code"
    );
    assert_eq!(
        builder_setting("forwarded_allow_ips", &[], &[], None),
        r#"forwarded_allow_ips = ["10.0.0.0/8", "127.0.0.1"] # code"#
    );
    assert_eq!(
        builder_setting("keep_alive", &[], &[], None),
        "keep_alive = 5 # default"
    );
    let file = Some("workers = 4\n");
    assert_eq!(
        builder_setting("workers", &[], &[], file),
        "workers = 4 # file ferricorn.toml"
    );
    let env = [("FERRICORN_WORKERS", "5")];
    assert_eq!(
        builder_setting("workers", &[], &env, file),
        "workers = 5 # env FERRICORN_WORKERS"
    );
    assert_eq!(
        builder_setting("workers", &["-w", "6"], &env, file),
        "workers = 6 # cli"
    );
}

#[test]
fn a_server_configured_in_code_serves() {
    let mut server = Server::spawn_bin(&example_bin("builder"), &[], &[]);
    server.wait_ready();
    assert_eq!(server.workers().len(), 3, "workers(3) from the code");
    let res = server.get("/");
    assert_eq!(res.status, 200);
    assert!(res.text().starts_with("Hello from worker "));
    server.signal(Signal::SIGTERM);
    assert_eq!(
        server.wait_exit(std::time::Duration::from_secs(10)).code(),
        Some(0)
    );
}

/// Runs an example with `args` and returns its stdout and stderr.
fn example_output(name: &str, args: &[&str]) -> Output {
    let dir = temp_dir(name);
    let out = command_for(&example_bin(name), &dir)
        .args(args)
        .output()
        .expect("run example");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn a_program_has_its_own_name_version_and_flags() {
    let version = example_output("flags", &["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        "hello 2.3.4"
    );
    let version = example_output("builder", &["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        "builder 1.2.3"
    );
    let help = example_output("flags", &["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--greeting") && help.contains("--workers"),
        "{help}"
    );
    // Its flag and ferricorn's, in any order.
    let mut server =
        Server::spawn_bin(&example_bin("flags"), &["--greeting", "Hi", "-w", "1"], &[]);
    server.wait_ready();
    assert_eq!(server.get("/").text(), "Hi");
    server.signal(Signal::SIGTERM);
    assert_eq!(
        server.wait_exit(std::time::Duration::from_secs(10)).code(),
        Some(0)
    );
    let bad = example_output("flags", &["--workers", "many"]);
    assert_eq!(bad.status.code(), Some(2));
}
