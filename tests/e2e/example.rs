//! `examples/axum.rs`: an axum `Router` served through `HyperApp`.

use std::path::PathBuf;

use nix::sys::signal::Signal;

use crate::support::Server;

/// `target/<profile>/examples/axum`, built by `cargo test` beside this test.
fn example_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let bin = profile_dir.join("examples").join("axum");
    assert!(
        bin.exists(),
        "{} is missing: run the whole suite with `cargo test`, which builds the examples",
        bin.display()
    );
    bin
}

#[test]
fn an_axum_router_runs_under_ferricorn() {
    let mut server = Server::spawn_bin(&example_bin(), &["-w", "2"], &[]);
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
