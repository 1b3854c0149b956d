//! `/metrics`, `--metrics-bind`, and `ferricorn healthcheck` against the
//! real binary.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{BIN, Conn, Server, command, temp_dir, wait_until};
use crate::websocket::connect;

/// One sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// A scrape, parsed and checked against the text format's rules.
pub(crate) struct Scrape {
    samples: Vec<Sample>,
}

impl Scrape {
    pub(crate) fn from_port(port: u16) -> Self {
        let res = Conn::open(port).get("/metrics");
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(
            res.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let text = res.text();
        promtool(&text);
        match parse(&text) {
            Ok(samples) => Self { samples },
            Err(e) => panic!("invalid exposition: {e}\n{text}"),
        }
    }

    /// The sum of the samples of `name` whose labels include `with`.
    pub(crate) fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && with
                        .iter()
                        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// The one sample of `name` whose labels are exactly `labels`.
    pub(crate) fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| *v)
    }
}

/// Checks the text with `promtool check metrics` where it is installed;
/// CI installs it and sets `FERRICORN_REQUIRE_PROMTOOL`, so there it must run.
fn promtool(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var_os("FERRICORN_REQUIRE_PROMTOOL").is_none(),
                "promtool is required here but cannot run: {e}"
            );
            eprintln!("promtool not installed; checked with the test's own parser only");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Parses the Prometheus text format (0.0.4) strictly enough to catch what
/// a scraper would refuse: every sample belongs to a family announced by
/// `# HELP` and `# TYPE` before it, families are not split, series are not
/// repeated, and labels and values are well formed.
fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut kinds: HashMap<String, String> = HashMap::new();
    let mut helped = HashSet::new();
    let mut current = String::new();
    let mut finished = HashSet::new();
    let mut seen = HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            if !helped.insert(name.to_owned()) {
                return Err(format!("second HELP for {name}"));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or("TYPE without a type")?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(format!("unknown type {kind}"));
            }
            if !helped.contains(name) || kinds.insert(name.into(), kind.into()).is_some() {
                return Err(format!("TYPE for {name} without HELP first, or twice"));
            }
            if !current.is_empty() {
                finished.insert(std::mem::take(&mut current));
            }
            current = name.to_owned();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(format!("unexpected line {line:?}"));
        }
        let (series, value) = line.rsplit_once(' ').ok_or("sample without a value")?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| format!("bad value in {line:?}"))?,
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, labels(l.strip_suffix('}').ok_or("unclosed labels")?)?),
            None => (series, Vec::new()),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| kinds.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        if family != current || finished.contains(family) {
            return Err(format!("{name} outside its family's block"));
        }
        if kinds[family] == "counter" && !name.ends_with("_total") {
            return Err(format!("counter {name} does not end in _total"));
        }
        if !seen.insert(series.to_owned()) {
            return Err(format!("series {series} twice"));
        }
        samples.push((name.to_owned(), labels, value));
    }
    Ok(samples)
}

fn labels(mut s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let (key, rest) = s.split_once("=\"").ok_or(format!("bad labels {s:?}"))?;
        let valid = key
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if key.is_empty() || !valid {
            return Err(format!("bad label name {key:?}"));
        }
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    _ => return Err("bad escape".into()),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        out.push((key.to_owned(), value));
        s = rest[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&rest[end + 1..]);
    }
    Ok(out)
}

fn post_echo(conn: &mut Conn, body: &str) {
    let req = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.send(req.as_bytes());
    let res = conn.read_response(false).expect("echo response");
    assert_eq!((res.status, res.text()), (200, body.to_owned()));
}

#[test]
fn metrics_count_the_whole_server_by_method_status_and_worker() {
    let server = Server::start(&["-w", "2"]);
    let before = Scrape::from_port(server.port);
    let get_2xx = [("method", "GET"), ("status", "2xx")];
    let mut conn = server.conn();
    for _ in 0..20 {
        assert_eq!(conn.get("/").status, 200);
    }
    for _ in 0..3 {
        post_echo(&mut conn, "hello");
    }
    assert_eq!(conn.get("/nowhere").status, 404);
    assert_eq!(conn.get("/blocking?ms=20").status, 200);
    let (mut ws, _) = connect(&server, "/ws/echo", None).expect("handshake");
    for i in 0..4 {
        ws.send(Message::text(format!("m{i}"))).expect("send");
        assert_eq!(ws.read().expect("echo"), Message::text(format!("m{i}")));
    }
    let after = Scrape::from_port(server.port);
    let delta = |name: &str, with: &[(&str, &str)]| after.sum(name, with) - before.sum(name, with);

    // Summed: 20 GETs, /blocking, the WebSocket's upgrade (101 is 1xx) and
    // the first scrape itself.
    assert_eq!(delta("ferricorn_http_requests_total", &get_2xx), 22.0);
    let post = [("method", "POST"), ("status", "2xx")];
    assert_eq!(delta("ferricorn_http_requests_total", &post), 3.0);
    let not_found = [("method", "GET"), ("status", "4xx")];
    assert_eq!(delta("ferricorn_http_requests_total", &not_found), 1.0);
    // Per worker, the same counts split by slot.
    assert_eq!(
        after.sum("ferricorn_worker_http_requests_total", &get_2xx),
        after.sum("ferricorn_http_requests_total", &get_2xx)
    );
    let workers: HashSet<String> = after
        .samples
        .iter()
        .filter(|(n, _, _)| n == "ferricorn_worker_connections_accepted_total")
        .flat_map(|(_, l, _)| {
            l.iter()
                .filter(|(k, _)| k == "worker")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(workers, HashSet::from(["0".into(), "1".into()]));
    // The duration histogram saw /blocking's 20 ms.
    let count = after.sum("ferricorn_http_request_duration_seconds_count", &[]);
    let fast = after.sum(
        "ferricorn_http_request_duration_seconds_bucket",
        &[("le", "0.01")],
    );
    assert!(
        count >= 27.0 && fast < count,
        "count {count}, under 10 ms {fast}"
    );
    assert!(after.sum("ferricorn_http_request_duration_seconds_sum", &[]) >= 0.02);
    assert!(delta("ferricorn_received_bytes_total", &[]) > 20.0 * 16.0);
    assert!(delta("ferricorn_sent_bytes_total", &[]) > 20.0 * 13.0);
    // The WebSocket: open, four messages each way.
    assert_eq!(after.sum("ferricorn_websocket_connections_open", &[]), 1.0);
    assert_eq!(
        delta("ferricorn_websocket_messages_received_total", &[]),
        4.0
    );
    assert_eq!(delta("ferricorn_websocket_messages_sent_total", &[]), 4.0);
    assert!(after.sum("ferricorn_connections_open", &[]) >= 2.0);
    // Processes and supervisor.
    assert_eq!(after.get("ferricorn_workers_desired", &[]), Some(2.0));
    assert_eq!(after.get("ferricorn_workers_alive", &[]), Some(2.0));
    let rss = after.sum("ferricorn_worker_resident_memory_bytes", &[]);
    assert!(rss > 2.0 * 1024.0 * 1024.0, "two workers' RSS: {rss}");
    assert!(
        after
            .get("ferricorn_supervisor_resident_memory_bytes", &[])
            .is_some()
    );
    let pids: Vec<f64> = after
        .samples
        .iter()
        .filter(|(n, _, _)| n == "ferricorn_worker_heartbeat_age_seconds")
        .map(|(_, _, v)| *v)
        .collect();
    assert!(
        pids.len() == 2 && pids.iter().all(|age| *age < 5.0),
        "{pids:?}"
    );
    // The demo app's own metrics, summed over both workers.
    assert_eq!(after.get("demo_workers_started", &[]), Some(2.0));
    assert_eq!(delta("demo_echo_requests_total", &[]), 3.0);
    assert_eq!(after.get("demo_websockets_open", &[]), Some(1.0));
    assert_eq!(after.get("demo_blocking_seconds_count", &[]), Some(1.0));
    assert_eq!(
        after.get("demo_blocking_seconds_bucket", &[("le", "0.01")]),
        Some(0.0)
    );
    assert_eq!(
        after.get("demo_blocking_seconds_bucket", &[("le", "0.1")]),
        Some(1.0)
    );
    drop(ws);
    let closed = wait_until(Duration::from_secs(5), || {
        Scrape::from_port(server.port).get("demo_websockets_open", &[]) == Some(0.0)
    });
    assert!(closed, "the app's gauge went back down");
}

#[test]
fn counts_survive_a_crash_and_exits_are_counted_by_reason() {
    let mut server = Server::start(&["-w", "2"]);
    let mut conn = server.conn();
    for _ in 0..30 {
        assert_eq!(conn.get("/").status, 200);
    }
    for _ in 0..2 {
        post_echo(&mut conn, "x");
    }
    drop(conn);
    let before = Scrape::from_port(server.port);
    let served = before.sum("ferricorn_http_requests_total", &[]);
    let echoes = before.sum("demo_echo_requests_total", &[]);
    // Kill one worker outright: its counts must not vanish with it.
    let victim = server.workers()[0];
    kill(Pid::from_raw(victim), Signal::SIGKILL).expect("kill");
    let replaced = wait_until(Duration::from_secs(10), || {
        let w = server.workers();
        w.len() == 2 && !w.contains(&victim)
    });
    assert!(replaced, "the worker was not replaced");
    server.wait_ready();
    let after = Scrape::from_port(server.port);
    assert!(after.sum("ferricorn_http_requests_total", &[]) > served);
    assert_eq!(after.sum("demo_echo_requests_total", &[]), echoes);
    assert_eq!(
        after.get("ferricorn_worker_exits_total", &[("reason", "crash")]),
        Some(1.0)
    );
    assert_eq!(after.sum("ferricorn_worker_restarts_total", &[]), 1.0);
    // A reload replaces both workers; the counters carry on.
    server.signal(Signal::SIGHUP);
    server.wait_log("reload complete", Duration::from_secs(15));
    let reloaded = wait_until(Duration::from_secs(10), || {
        Scrape::from_port(server.port).get("ferricorn_worker_exits_total", &[("reason", "reload")])
            == Some(2.0)
    });
    assert!(reloaded, "two workers should have exited for the reload");
    let last = Scrape::from_port(server.port);
    assert_eq!(last.get("ferricorn_reloads_total", &[]), Some(1.0));
    assert_eq!(last.sum("ferricorn_worker_restarts_total", &[]), 3.0);
    assert_eq!(last.sum("demo_echo_requests_total", &[]), echoes);
    assert!(last.sum("ferricorn_http_requests_total", &[]) > served);
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn recycling_and_scaling_down_are_counted_as_such() {
    let server = Server::start(&["-w", "2", "--max-requests", "10"]);
    let mut conn = server.conn();
    for _ in 0..30 {
        assert_eq!(conn.get("/").status, 200);
    }
    drop(conn);
    let recycled = wait_until(Duration::from_secs(10), || {
        let s = Scrape::from_port(server.port);
        s.get(
            "ferricorn_worker_exits_total",
            &[("reason", "max_requests")],
        )
        .is_some_and(|n| n >= 1.0)
    });
    assert!(recycled, "no worker exit counted for max-requests");
    server.signal(Signal::SIGTTOU);
    let scaled = wait_until(Duration::from_secs(10), || {
        let s = Scrape::from_port(server.port);
        s.get("ferricorn_worker_exits_total", &[("reason", "scale_down")]) == Some(1.0)
            && s.get("ferricorn_workers_desired", &[]) == Some(1.0)
    });
    assert!(scaled, "the TTOU retirement was not counted");
    let last = Scrape::from_port(server.port);
    assert_eq!(
        last.get("ferricorn_worker_exits_total", &[("reason", "crash")]),
        Some(0.0)
    );
}

#[test]
fn metrics_bind_keeps_metrics_off_the_app_port() {
    let server = Server::start(&["-w", "1", "--metrics-bind", "127.0.0.1:0"]);
    let needle = "metrics and health at http://127.0.0.1:";
    let line = server.wait_log(needle, Duration::from_secs(5));
    let admin: u16 = line[line.find(needle).expect("needle") + needle.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .expect("port");
    // The app's port: /metrics is the app's (the demo has none), health stays.
    assert_eq!(server.get("/metrics").status, 404);
    assert_eq!(server.get("/readyz").status, 200);
    // The metrics port: metrics and health, nothing of the app.
    let scrape = Scrape::from_port(admin);
    assert_eq!(scrape.get("ferricorn_workers_desired", &[]), Some(1.0));
    let mut c = Conn::open(admin);
    assert_eq!(c.get("/readyz").status, 200);
    assert_eq!(c.get("/healthz").status, 200);
    assert_eq!(c.get("/").status, 404);

    let off = Server::start(&["-w", "1", "--metrics-path", ""]);
    assert_eq!(off.get("/metrics").status, 404);
}

#[test]
fn readyz_is_503_while_a_slot_has_no_ready_worker() {
    // A replacement worker takes 1.5 s to finish its startup.
    let server = Server::start_with(&["-w", "2"], &[("FERRICORN_DEMO_STARTUP_DELAY_MS", "1500")]);
    // Ask on a connection held by one worker; kill the other.
    let mut conn = server.conn();
    let text = conn.get("/worker").text();
    let pid: i32 = text["{\"pid\":".len()..]
        .split(',')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {text}"));
    let victim = server
        .workers()
        .into_iter()
        .find(|&w| w != pid)
        .expect("another worker");
    kill(Pid::from_raw(victim), Signal::SIGKILL).expect("kill");
    let not_ready = wait_until(Duration::from_secs(1), || {
        let res = conn.get("/readyz");
        res.status == 503 && res.text() == "1 of 2 workers ready"
    });
    assert!(not_ready, "/readyz stayed ready with a slot booting");
    // Ready again once the replacement has started.
    server.wait_ready();
}

fn healthcheck(args: &[&str]) -> (Option<i32>, String) {
    healthcheck_with(&[], args, &[])
}

/// `ferricorn BEFORE... healthcheck ARGS...` with `env`.
fn healthcheck_with(before: &[&str], args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = temp_dir("healthcheck");
    let out = command(&dir)
        .args(before)
        .arg("healthcheck")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run healthcheck");
    let _ = std::fs::remove_dir_all(&dir);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn healthcheck_exits_0_when_ready_and_1_when_not() {
    assert!(std::path::Path::new(BIN).exists());
    let mut server = Server::start(&["-w", "1", "--shutdown-delay", "3"]);
    let url = format!("http://127.0.0.1:{}", server.port);
    let (code, out) = healthcheck(&["--url", &url]);
    assert_eq!(code, Some(0), "{out}");
    // Without --url: the address the same settings serve on, from the
    // command line or the environment (as in a container's HEALTHCHECK).
    let bind = format!("127.0.0.1:{}", server.port);
    let (code, out) = healthcheck_with(&["-b", &bind], &[], &[]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = healthcheck_with(&[], &[], &[("FERRICORN_BIND", &bind)]);
    assert_eq!(code, Some(0), "{out}");
    // Draining (during the shutdown delay): 503, so exit 1, with the reason.
    server.signal(Signal::SIGTERM);
    let mut last = String::new();
    let draining = wait_until(Duration::from_secs(2), || {
        let (code, out) = healthcheck(&["--url", &url]);
        last = out;
        code == Some(1)
    });
    assert!(draining, "still ready while draining: {last}");
    assert!(last.contains("503") && last.contains("draining"), "{last}");
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(0));
    // Nothing listening: exit 1.
    let (code, out) = healthcheck(&["--url", &url, "--timeout", "1"]);
    assert_eq!(code, Some(1), "{out}");
    // A URL it cannot use: exit 2, naming it.
    let (code, out) = healthcheck(&["--url", "https://example.com"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("https://example.com"), "{out}");
}

#[test]
fn healthcheck_finds_the_address_the_running_server_serves() {
    // The server binds port 0, so no setting names its real port; the
    // healthcheck's own environment even names another address.
    let dir = temp_dir("healthcheck-running");
    let pidfile = dir.join("ferricorn.pid");
    let pidfile = pidfile.to_str().expect("utf-8 path");
    let mut server = Server::start(&["-w", "1", "--pid", pidfile]);
    assert!(wait_until(Duration::from_secs(5), || {
        std::path::Path::new(pidfile).exists()
    }));
    let elsewhere = [("FERRICORN_BIND", "127.0.0.1:1")];
    // Options after the subcommand, as before it.
    let (code, out) = healthcheck_with(&[], &["--pid", pidfile], &elsewhere);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("ready: 200"), "{out}");
    let (code, out) = healthcheck_with(&["--pid", pidfile], &[], &elsewhere);
    assert_eq!(code, Some(0), "{out}");
    // --url still wins.
    let (code, out) = healthcheck_with(
        &[],
        &[
            "--pid",
            pidfile,
            "--url",
            "http://127.0.0.1:1",
            "--timeout",
            "1",
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{out}");
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn metrics_on_the_apps_address_answer_only_allowed_clients() {
    // The default: loopback and the private ranges. A public client a
    // trusted proxy forwards (here loopback, trusted by default) is not.
    let server = Server::start(&["-w", "1"]);
    let mut c = server.conn();
    assert_eq!(c.get("/metrics").status, 200, "loopback");
    c.send(b"GET /metrics HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n");
    let res = c.read_response(false).expect("answer");
    assert_eq!(res.status, 404, "a public client through the proxy");
    c.send(b"GET /metrics HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 10.1.2.3\r\n\r\n");
    assert_eq!(
        c.read_response(false).expect("answer").status,
        200,
        "a private one"
    );
    drop(server);
    // Narrowed: loopback is refused, health stays open.
    let server = Server::start(&["-w", "1", "--metrics-allow-from", "10.0.0.0/8"]);
    let mut c = server.conn();
    assert_eq!(c.get("/metrics").status, 404);
    assert_eq!(c.get("/healthz").status, 200);
    assert_eq!(c.get("/readyz").status, 200);
}
