//! TLS and HTTP/2: certificates made here with openssl, real clients
//! (curl, openssl s_client), the real binary.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::{Server, command, temp_dir, wait_until};

/// Installs Debian's curl and openssl where they are missing and this is
/// root with apt (as on CI); otherwise the first use fails naming them.
fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let missing: Vec<&str> = ["curl", "openssl"]
            .into_iter()
            .filter(|t| Command::new(t).arg("--version").output().is_err())
            .collect();
        if !missing.is_empty() && nix::unistd::geteuid().is_root() {
            let _ = Command::new("apt-get")
                .args(["install", "-y", "-q"])
                .args(&missing)
                .status();
        }
    });
}

fn run(program: &str, args: &[&str], dir: &Path) -> Output {
    install();
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} (install it): {e}"))
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = run("openssl", args, dir);
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A root CA, an intermediate, and leaves signed by the intermediate, in
/// one directory.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = temp_dir(&format!("tls-{name}"));
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=Test Root",
            ],
        );
        std::fs::write(
            dir.join("int.ext"),
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
        )
        .expect("ext");
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "int.key",
                "-out",
                "int.csr",
                "-subj",
                "/CN=Test Intermediate",
            ],
        );
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "int.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "int.pem",
                "-days",
                "2",
                "-extfile",
                "int.ext",
            ],
        );
        Self { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// A leaf named `name` with a key of `kind` (`rsa`: PKCS#8, `rsa1`:
    /// PKCS#1, `ec`: SEC1), for a server (127.0.0.1 and localhost) or a
    /// client; writes `name.pem` (the leaf, then the intermediate) and
    /// `name.key`.
    fn leaf(&self, name: &str, kind: &str, subject: &str, client: bool) {
        let d = &self.dir;
        match kind {
            "ec" => openssl(
                d,
                &[
                    "ecparam",
                    "-name",
                    "prime256v1",
                    "-genkey",
                    "-noout",
                    "-out",
                    &format!("{name}.key"),
                ],
            ),
            "rsa1" => {
                openssl(
                    d,
                    &[
                        "genrsa",
                        "-traditional",
                        "-out",
                        &format!("{name}.key"),
                        "2048",
                    ],
                );
            }
            _ => openssl(
                d,
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-out",
                    &format!("{name}.key"),
                ],
            ),
        }
        let ext = if client {
            "extendedKeyUsage=clientAuth\n"
        } else {
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
        };
        std::fs::write(d.join(format!("{name}.ext")), ext).expect("ext");
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                subject,
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "int.pem",
                "-CAkey",
                "int.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.leaf"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
        let chain = [
            std::fs::read_to_string(d.join(format!("{name}.leaf"))).expect("leaf"),
            std::fs::read_to_string(d.join("int.pem")).expect("int"),
        ]
        .concat();
        std::fs::write(d.join(format!("{name}.pem")), chain).expect("chain");
    }
}

impl Pki {
    /// A server with the leaf `name` on a TLS `--bind` and a plain
    /// `--insecure-bind` (its `port`, which the harness waits on), with
    /// `args`; and its TLS port.
    fn serve(&self, name: &str, args: &[&str]) -> (Server, u16) {
        let (cert, key) = (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        );
        let tls = [
            "--certfile",
            &cert,
            "--keyfile",
            &key,
            "--insecure-bind",
            "127.0.0.1:0",
        ];
        let server = Server::start(&[&tls[..], args].concat());
        let port = tls_port(&server);
        (server, port)
    }
}

/// The sum of a metric's series in a `/metrics` text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The TLS port a server logged.
fn tls_port(server: &Server) -> u16 {
    let needle = "listening at https://127.0.0.1:";
    let line = server.wait_log(needle, Duration::from_secs(10));
    let after = &line[line.find(needle).expect("needle") + needle.len()..];
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("port")
}

/// curl's answer: the body, then the status and the HTTP version; `None`
/// when curl failed (a refused handshake).
fn curl(pki: &Pki, args: &[&str]) -> Option<(String, String)> {
    let out = run(
        "curl",
        &[
            &[
                "-sS",
                "--max-time",
                "10",
                "--cacert",
                &pki.path("ca.pem"),
                "-w",
                "\n%{http_code} %{http_version}",
            ],
            args,
        ]
        .concat(),
        &pki.dir,
    );
    if !out.status.success() {
        eprintln!("curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').expect("status line");
    Some((body.to_owned(), tail.to_owned()))
}

#[test]
fn https_by_alpn_h2c_by_prior_knowledge_and_plain_beside() {
    let pki = Pki::new("serve");
    pki.leaf("server", "rsa", "/CN=localhost", false);
    let server = Server::start(&[
        "-w",
        "1",
        "--certfile",
        &pki.path("server.pem"),
        "--ssl-keyfile",
        &pki.path("server.key"),
        "--insecure-bind",
        "127.0.0.1:0",
        "--metrics-bind",
        "127.0.0.1:0",
    ]);
    let tls = tls_port(&server);
    // `/metrics` on its own plain address beside HTTPS.
    let needle = "metrics and health at http://127.0.0.1:";
    let line = server.wait_log(needle, Duration::from_secs(10));
    let metrics_port: String = line[line.find(needle).expect("needle") + needle.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let https = format!("https://localhost:{tls}/whoami");
    // HTTP/2 by ALPN, through the intermediate in the chain.
    let (body, tail) = curl(&pki, &[&https]).expect("https");
    assert_eq!(tail, "200 2", "{body}");
    assert!(body.contains(r#""scheme":"https""#), "{body}");
    assert!(body.contains(r#""client_subject":null"#), "{body}");
    // HTTP/2's `:authority` is the app's `Host`.
    assert!(
        body.contains(&format!(r#""host":"localhost:{tls}""#)),
        "{body}"
    );
    let (_, tail) = curl(&pki, &["--http1.1", &https]).expect("https/1.1");
    assert_eq!(tail, "200 1.1");
    // Streams one after another on one connection (curl reuses it for a
    // list of URLs), counted by the metrics.
    let list: Vec<String> = (0..3).map(|i| format!("{https}?{i}")).collect();
    let list: Vec<&str> = list.iter().map(String::as_str).collect();
    let (body, tail) = curl(&pki, &list).expect("three streams");
    assert_eq!(tail, "200 2");
    assert_eq!(body.matches(r#""scheme":"https""#).count(), 3, "{body}");
    let (metrics, tail) =
        curl(&pki, &[&format!("http://127.0.0.1:{metrics_port}/metrics")]).expect("metrics");
    assert_eq!(tail, "200 1.1");
    let value = |name: &str| metric(&metrics, name);
    assert_eq!(value("ferricorn_tls_handshakes_total"), 3, "{metrics}");
    assert_eq!(value("ferricorn_http2_connections_total"), 2, "{metrics}");
    assert_eq!(value("ferricorn_http2_requests_total"), 4, "{metrics}");
    // TLS 1.2 is served; 1.1 is not.
    let (_, tail) = curl(&pki, &["--tlsv1.2", "--tls-max", "1.2", &https]).expect("tls 1.2");
    assert_eq!(tail, "200 2");
    assert!(curl(&pki, &["--tlsv1.1", "--tls-max", "1.1", &https]).is_none());
    // The plain listener: HTTP/1.1, and HTTP/2 by prior knowledge (h2c).
    let plain = format!("http://127.0.0.1:{}/whoami", server.port);
    let (body, tail) = curl(&pki, &[&plain]).expect("plain");
    assert_eq!(tail, "200 1.1");
    assert!(body.contains(r#""scheme":"http""#), "{body}");
    let (_, tail) = curl(&pki, &["--http2-prior-knowledge", &plain]).expect("h2c");
    assert_eq!(tail, "200 2");
    // `ferricorn healthcheck` (plain HTTP) asks the plain address, and
    // says so when the settings give none.
    let cert = pki.path("server.pem");
    let healthcheck = |args: &[&str]| {
        let out = command(&pki.dir)
            .args(["--certfile", &cert, "-b", &format!("127.0.0.1:{tls}")])
            .args(args)
            .arg("healthcheck")
            .output()
            .expect("healthcheck");
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), text)
    };
    let insecure = format!("127.0.0.1:{}", server.port);
    assert_eq!(healthcheck(&["--insecure-bind", &insecure]).0, Some(0));
    let (code, text) = healthcheck(&[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("serve HTTPS only"), "{text}");
    // Plain HTTP to the TLS port: a plain 400 that says why, and a close.
    let mut s = TcpStream::connect(("127.0.0.1", tls)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("closed, not hung");
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(answer.ends_with("use https:// to reach it\n"), "{answer}");
}

#[test]
fn client_certificates_required_or_optional_and_their_subject() {
    let pki = Pki::new("mtls");
    pki.leaf("server", "ec", "/CN=localhost", false);
    // Written O first: RFC 4514 text names the last first.
    pki.leaf("alice", "rsa1", "/O=Example, Inc./CN=alice", true);
    let url = |port: u16| format!("https://localhost:{port}/whoami");
    let alice = [
        "--cert".to_owned(),
        pki.path("alice.pem"),
        "--key".to_owned(),
        pki.path("alice.key"),
    ];
    let alice: Vec<&str> = alice.iter().map(String::as_str).collect();
    for reqs in ["required", "optional"] {
        let (_server, port) = pki.serve(
            "server",
            &[
                "-w",
                "1",
                "--ca-certs",
                &pki.path("ca.pem"),
                "--cert-reqs",
                reqs,
            ],
        );
        let (body, tail) = curl(&pki, &[&alice[..], &[&url(port)]].concat()).expect("alice");
        assert_eq!(tail, "200 2");
        assert!(
            body.contains(r#""client_subject":"CN=alice,O=Example\\, Inc.""#),
            "{reqs}: {body}"
        );
        let without = curl(&pki, &[&url(port)]);
        match reqs {
            "required" => assert!(without.is_none(), "no certificate, no handshake"),
            _ => {
                let (body, _) = without.expect("optional");
                assert!(body.contains(r#""client_subject":null"#), "{body}");
            }
        }
        // A certificate from another CA is refused either way.
        let other = Pki::new(&format!("other-{reqs}"));
        other.leaf("mallory", "ec", "/CN=mallory", true);
        let mallory = curl(
            &pki,
            &[
                "--cert",
                &other.path("mallory.pem"),
                "--key",
                &other.path("mallory.key"),
                &url(port),
            ],
        );
        assert!(mallory.is_none(), "{reqs}: an unknown CA's client");
    }
}

/// The subject of the certificate served at `port`.
fn served_subject(pki: &Pki, port: u16) -> String {
    let out = run(
        "curl",
        &[
            "-sv",
            "--max-time",
            "10",
            "--cacert",
            &pki.path("ca.pem"),
            &format!("https://localhost:{port}/"),
        ],
        &pki.dir,
    );
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("subject:"))
        .unwrap_or_default();
    line.trim().to_owned()
}

#[test]
fn bad_pairs_exit_2_at_boot_and_keep_the_old_pair_at_hup() {
    let pki = Pki::new("rotate");
    pki.leaf("one", "rsa", "/CN=one.localhost", false);
    pki.leaf("two", "ec", "/CN=two.localhost", false);
    let dir = temp_dir("tls-boot");
    // At boot: one line naming the setting and the file, exit 2.
    let boot = |args: &[&str]| {
        let out = command(&dir)
            .args(["-b", "127.0.0.1:0"])
            .args(args)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), err)
    };
    let (code, err) = boot(&[
        "--certfile",
        &pki.path("one.pem"),
        "--keyfile",
        &pki.path("two.key"),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "ferricorn: error: invalid value for `keyfile` (from cli): `{}`: the key does not match",
            pki.path("two.key")
        )),
        "{err}"
    );
    let (code, err) = boot(&[
        "--certfile",
        &pki.path("missing.pem"),
        "--keyfile",
        &pki.path("one.key"),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "invalid value for `certfile` (from cli): `{}`: cannot be read",
            pki.path("missing.pem")
        )),
        "{err}"
    );
    let (code, err) = boot(&["--certfile", &pki.path("one.key")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("holds no certificate in PEM"), "{err}");

    // Rotation: the files change, HUP, the new workers serve the new pair.
    let (cert, key) = (pki.path("live.pem"), pki.path("live.key"));
    let put = |name: &str| {
        std::fs::copy(pki.dir.join(format!("{name}.pem")), &cert).expect("cert");
        std::fs::copy(pki.dir.join(format!("{name}.key")), &key).expect("key");
    };
    put("one");
    let server = Server::start(&[
        "-w",
        "2",
        "--certfile",
        &cert,
        "--keyfile",
        &key,
        "--insecure-bind",
        "127.0.0.1:0",
    ]);
    let port = tls_port(&server);
    assert!(served_subject(&pki, port).contains("CN=one.localhost"));
    let before = server.workers();
    put("two");
    // New HTTPS connections, one after another, through the reload.
    let running = Arc::new(AtomicBool::new(true));
    let load = {
        let (running, ca) = (running.clone(), pki.path("ca.pem"));
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0, 0);
            let deadline = Instant::now() + Duration::from_secs(30);
            while running.load(Ordering::Relaxed) && Instant::now() < deadline {
                let out = Command::new("curl")
                    .args(["-sf", "--max-time", "5", "--cacert", &ca])
                    .arg(format!("https://localhost:{port}/"))
                    .output();
                match out {
                    Ok(o) if o.status.success() => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        })
    };
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_replaced(&before, 2, Duration::from_secs(20)),
        "a reload"
    );
    running.store(false, Ordering::Relaxed);
    let (ok, failed) = load.join().expect("load");
    assert_eq!(failed, 0, "{ok} served through the reload, {failed} failed");
    assert!(ok > 0);
    assert!(wait_until(Duration::from_secs(10), || served_subject(
        &pki, port
    )
    .contains("CN=two.localhost")));
    // A mismatched pair at HUP: one line, the workers and their pair stay.
    std::fs::copy(pki.dir.join("one.key"), &key).expect("key");
    let serving = server.workers();
    server.signal(Signal::SIGHUP);
    let line = server.wait_log("keeping the current settings", Duration::from_secs(10));
    assert!(
        line.contains("reload: `keyfile`") && line.contains("does not match"),
        "{line}"
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        assert_eq!(server.workers(), serving, "no worker replaced");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served_subject(&pki, port).contains("CN=two.localhost"));
}

#[test]
fn a_silent_or_slow_handshake_is_closed_by_the_header_timeout() {
    let pki = Pki::new("slow");
    pki.leaf("server", "ec", "/CN=localhost", false);
    let (_server, port) = pki.serve("server", &["-w", "1", "--header-timeout", "1"]);
    // Silent, then half a TLS record: each closed within the timeout.
    for sent in [&b""[..], &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01][..]] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(sent).expect("send");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let started = Instant::now();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "{sent:?}: closed after {took:?}"
        );
        assert!(
            took >= Duration::from_millis(800),
            "{sent:?}: closed early, {took:?}"
        );
    }
    // Bytes that are neither TLS nor HTTP: closed at once.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(&[0x00, 0x01, 0x02]).expect("send");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).expect("closed"), 0);
}

#[test]
fn h2_streams_in_flight_finish_through_a_graceful_stop() {
    let pki = Pki::new("drain");
    pki.leaf("server", "ec", "/CN=localhost", false);
    let (mut server, port) = pki.serve("server", &["-w", "1"]);
    // Requests counted (`/readyz` polls too): each poll below counts
    // itself, and the slow request once it is in flight.
    let counted = || {
        metric(
            &server.get("/metrics").text(),
            "ferricorn_worker_process_requests_total",
        )
    };
    let base = counted();
    let url = format!("https://localhost:{port}/blocking?ms=1500");
    let ca = pki.path("ca.pem");
    let slow = std::thread::spawn(move || {
        Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "--cacert",
                &ca,
                "-w",
                "\n%{http_code} %{http_version}",
                &url,
            ])
            .output()
            .expect("curl")
    });
    let mut polls = 0;
    let in_flight = wait_until(Duration::from_secs(5), || {
        polls += 1;
        counted() > base + polls
    });
    assert!(in_flight, "the slow request never started");
    server.signal(Signal::SIGTERM);
    let out = slow.join().expect("curl thread");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("\n200 2"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn what_holds_per_request_on_http1_holds_per_h2_stream() {
    let pki = Pki::new("parity");
    let server = Server::start(&[
        "-w",
        "1",
        "--access-logfile",
        "access.log",
        "--request-timeout",
        "1",
        "--limit-request-field-size",
        "1000",
    ]);
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", server.port);
    let h2c = |args: &[&str]| {
        curl(
            &pki,
            &[&["--http2-prior-knowledge", "-D", "-"], args].concat(),
        )
        .expect("h2c")
    };
    // The request id, and trusted proxy headers.
    let (text, tail) = h2c(&[
        "-H",
        "X-Request-Id: req-h2",
        "-H",
        "X-Forwarded-Proto: https",
        &url("/whoami"),
    ]);
    assert_eq!(tail, "200 2", "{text}");
    assert!(text.contains("x-request-id: req-h2\r\n"), "{text}");
    assert!(text.contains(r#""scheme":"https""#), "{text}");
    assert!(text.contains(r#""id":"req-h2""#), "{text}");
    // A field over the limit: 431; a handler past the request timeout: 504.
    let big = format!("X-Big: {}", "a".repeat(1200));
    assert_eq!(h2c(&["-H", &big, &url("/")]).1, "431 2");
    assert_eq!(h2c(&[&url("/blocking?ms=3000")]).1, "504 2");
    assert_eq!(h2c(&[&url("/?c")]).1, "200 2");
    // The access log names the protocol; the metrics count by protocol.
    let log = server.dir.join("access.log");
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(&log)
            .is_ok_and(|l| l.contains("\"GET /whoami HTTP/2.0\" 200")
                && l.contains("\"GET /?c HTTP/2.0\" 200"))),
        "{:?}",
        std::fs::read_to_string(&log)
    );
    let metrics = server.get("/metrics").text();
    let value = |name: &str| metric(&metrics, name);
    assert_eq!(value("ferricorn_http2_requests_total"), 4, "{metrics}");
    assert_eq!(value("ferricorn_http2_connections_total"), 4, "{metrics}");
    assert!(value("ferricorn_http1_requests_total") >= 1, "{metrics}");
}

#[test]
fn a_session_resumes_on_any_worker() {
    let pki = Pki::new("resume");
    pki.leaf("server", "ec", "/CN=localhost", false);
    let (_server, port) = pki.serve("server", &["-w", "2"]);
    let connect = format!("127.0.0.1:{port}");
    for version in ["-tls1_2", "-tls1_3"] {
        // A request with `Connection: close`: the server's close ends
        // s_client after the session's tickets came.
        let s_client = |session: &str| {
            let mut child = Command::new("openssl")
                .args([
                    "s_client", "-connect", &connect, version, session, "sess.pem", "-ign_eof",
                ])
                .current_dir(&pki.dir)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("openssl s_client");
            let mut stdin = child.stdin.take().expect("stdin");
            stdin
                .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .expect("request");
            drop(stdin);
            let out = child.wait_with_output().expect("s_client");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.lines()
                .find(|l| l.starts_with("New,") || l.starts_with("Reused,"))
                .unwrap_or_default()
                .to_owned()
        };
        assert!(s_client("-sess_out").starts_with("New,"));
        // Ten connections: the kernel spreads them over both workers (all
        // on the first with a chance of 1 in 1,024); each resumes.
        for i in 0..10 {
            let line = s_client("-sess_in");
            assert!(
                line.starts_with("Reused,"),
                "{version} connection {i}: {line}"
            );
        }
    }
}

#[test]
fn http_1_or_2_serves_that_version_only() {
    let pki = Pki::new("versions");
    pki.leaf("server", "ec", "/CN=localhost", false);
    // Ready once h2c (which `--http 2` serves) or HTTP/1.1 answers.
    let start = |version: &str| {
        let server = Server::spawn(
            &[
                "-w",
                "1",
                "--http",
                version,
                "--certfile",
                &pki.path("server.pem"),
                "--keyfile",
                &pki.path("server.key"),
                "--insecure-bind",
                "127.0.0.1:0",
            ],
            &[],
        );
        let readyz = format!("http://127.0.0.1:{}/readyz", server.port);
        let flag = if version == "2" {
            "--http2-prior-knowledge"
        } else {
            "--http1.1"
        };
        let ready = wait_until(Duration::from_secs(10), || {
            curl(&pki, &[flag, &readyz]).is_some_and(|(_, tail)| tail.starts_with("200"))
        });
        assert!(ready, "--http {version}: not ready");
        let tls = tls_port(&server);
        (server, tls)
    };
    let (one, tls) = start("1");
    let https = format!("https://localhost:{tls}/");
    let plain = format!("http://127.0.0.1:{}/", one.port);
    assert_eq!(curl(&pki, &[&https]).expect("ALPN http/1.1").1, "200 1.1");
    assert!(curl(&pki, &["--http2-prior-knowledge", &plain]).is_none());
    drop(one);
    let (two, tls) = start("2");
    let https = format!("https://localhost:{tls}/");
    let plain = format!("http://127.0.0.1:{}/", two.port);
    assert_eq!(curl(&pki, &[&https]).expect("ALPN h2").1, "200 2");
    assert!(
        curl(&pki, &["--http1.1", &https]).is_none(),
        "no ALPN match"
    );
    assert_eq!(
        curl(&pki, &["--http2-prior-knowledge", &plain])
            .expect("h2c")
            .1,
        "200 2"
    );
}

/// A Python with the h2 package: target/tls-venv, made once with pip.
fn python_with_h2() -> PathBuf {
    static ONCE: Once = Once::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = root.join("target/tls-venv");
    let python = venv.join("bin/python");
    ONCE.call_once(|| {
        let has = |python: &Path| {
            Command::new(python)
                .args(["-c", "import h2"])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if has(&python) {
            return;
        }
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            made,
            "python3 -m venv {} (install python3-venv)",
            venv.display()
        );
        let pip = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "h2"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(pip, "pip install h2 into {}", venv.display());
    });
    python
}

#[test]
fn pythons_ssl_module_and_h2_package_as_clients() {
    let pki = Pki::new("python");
    pki.leaf("server", "rsa", "/CN=localhost", false);
    pki.leaf("python", "ec", "/O=Example/CN=python", true);
    let (server, tls) = pki.serve(
        "server",
        &[
            "-w",
            "1",
            "--ca-certs",
            &pki.path("ca.pem"),
            "--cert-reqs",
            "optional",
            "--keep-alive",
            "1",
        ],
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/tls/clients.py");
    let out = Command::new(python_with_h2())
        .arg(script)
        .args([tls.to_string(), server.port.to_string()])
        .args([
            pki.path("ca.pem"),
            pki.path("python.pem"),
            pki.path("python.key"),
        ])
        .output()
        .expect("python");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("ok: ").count(), 6, "{text}");
}
