//! Starting the real binary and talking raw HTTP/1.1 to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ferricorn");

/// Environment names that would change the server's settings.
const SETTINGS_ENV: &[&str] = &[
    "WEB_CONCURRENCY",
    "GUNICORN_WORKERS",
    "UVICORN_WORKERS",
    "UVICORN_HOST",
    "UVICORN_PORT",
    "PORT",
    "GUNICORN_LOG_LEVEL",
    "UVICORN_LOG_LEVEL",
    "GUNICORN_CMD_ARGS",
    "FORWARDED_ALLOW_IPS",
    "FERRICORN_CONFIG",
];

/// A command for the binary in an empty directory with none of the settings'
/// environment names inherited.
pub fn command(dir: &Path) -> Command {
    command_for(Path::new(BIN), dir)
}

/// As [`command`], for another binary built from this workspace.
pub fn command_for(bin: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("FERRICORN_") || SETTINGS_ENV.contains(&name.as_str()) {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferricorn-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A running server; killed with its workers when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    lines: Receiver<String>,
}

impl Server {
    /// Starts the binary on a free loopback port and waits until it is ready.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with(args, &[])
    }

    /// As [`start`](Self::start), with extra environment variables.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        let server = Self::spawn(args, env);
        server.wait_ready();
        server
    }

    /// Starts the binary and waits only until it listens.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn_bin(Path::new(BIN), args, env)
    }

    /// Starts the binary with `toml` as its `ferricorn.toml` and waits until ready.
    pub fn start_with_file(toml: &str, args: &[&str]) -> Self {
        let dir = temp_dir(&format!("{:?}", std::thread::current().id()).replace(['(', ')'], ""));
        std::fs::write(dir.join("ferricorn.toml"), toml).expect("write ferricorn.toml");
        let server = Self::spawn_in(dir, Path::new(BIN), args, &[]);
        server.wait_ready();
        server
    }

    /// As [`start_with_file`](Self::start_with_file), with environment variables.
    pub fn start_with_file_env(toml: &str, env: &[(&str, &str)]) -> Self {
        let dir = temp_dir(&format!("{:?}", std::thread::current().id()).replace(['(', ')'], ""));
        std::fs::write(dir.join("ferricorn.toml"), toml).expect("write ferricorn.toml");
        let server = Self::spawn_in(dir, Path::new(BIN), &[], env);
        server.wait_ready();
        server
    }

    /// Starts `bin` and waits only until it listens.
    pub fn spawn_bin(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = temp_dir(&format!("{:?}", std::thread::current().id()).replace(['(', ')'], ""));
        Self::spawn_in(dir, bin, args, env)
    }

    fn spawn_in(dir: PathBuf, bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = command_for(bin, &dir);
        cmd.args(["-b", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied());
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start ferricorn");
        let (log, lines) = collect(child.stderr.take().expect("stderr"));
        let mut server = Self {
            child,
            port: 0,
            dir,
            log,
            lines,
        };
        let needle = "listening at http://127.0.0.1:";
        let line = server.wait_log(needle, Duration::from_secs(20));
        let after = &line[line.find(needle).expect("needle") + needle.len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        server.port = digits.parse().expect("port in the listening line");
        server
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&self) {
        let ok = wait_until(Duration::from_secs(20), || {
            Conn::try_open(self.port)
                .is_some_and(|mut c| c.try_get("/readyz").is_some_and(|r| r.status == 200))
        });
        assert!(ok, "server not ready in time; log:\n{}", self.log());
    }

    /// Waits for a log line containing `needle` and returns it.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        if let Some(line) = self
            .log
            .lock()
            .expect("log")
            .iter()
            .find(|l| l.contains(needle))
        {
            return line.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!(
                        "no log line with {needle:?} within {limit:?}; log:\n{}",
                        self.log()
                    )
                }
            }
        }
    }

    /// Every log line so far.
    pub fn log(&self) -> String {
        // Give the reader thread the lines already written.
        while let Ok(_line) = self.lines.try_recv() {}
        self.log.lock().expect("log").join("\n")
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid()), signal).expect("signal the supervisor");
    }

    /// Waits for the supervisor to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit within {limit:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The worker processes: the supervisor's children.
    pub fn workers(&self) -> Vec<i32> {
        children(self.pid())
    }

    /// Waits until the server has `n` workers, none of them in `before`
    /// (so every old one has exited); whether it did within `limit`.
    pub fn wait_replaced(&self, before: &[i32], n: usize, limit: Duration) -> bool {
        wait_until(limit, || {
            let now = self.workers();
            now.len() == n && now.iter().all(|p| !before.contains(p))
        })
    }

    pub fn conn(&self) -> Conn {
        Conn::open(self.port)
    }

    /// One request on a fresh connection.
    pub fn get(&self, path: &str) -> Response {
        self.conn().get(path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let workers = self.workers();
        let _ = self.child.kill();
        let _ = self.child.wait();
        for w in workers {
            let _ = kill(Pid::from_raw(w), Signal::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Collects stderr lines into a shared list and a channel; echoes them to the
/// test's own stderr so a failing test shows them.
fn collect(stderr: impl Read + Send + 'static) -> (Arc<Mutex<Vec<String>>>, Receiver<String>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("  | {line}");
            sink.lock().expect("log").push(line.clone());
            let _ = tx.send(line);
        }
    });
    (log, rx)
}

/// The live children of `pid`.
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // Fields after the command's closing parenthesis: state, ppid, ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let (state, ppid) = (f.next(), f.next().and_then(|p| p.parse::<i32>().ok()));
        if ppid == Some(pid) && state != Some("Z") {
            out.push(child);
        }
    }
    out.sort_unstable();
    out
}

/// Whether process `pid` is gone (or a zombie).
pub fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
    }
}

/// Polls `f` every 20 ms until it is true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A parsed response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One client connection, with a 10 s read timeout.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn open(port: u16) -> Self {
        Self::try_open(port).expect("connect to the server")
    }

    pub fn try_open(port: u16) -> Option<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        Some(Self {
            stream,
            buf: Vec::new(),
        })
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).expect("write request");
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.try_get(path)
            .unwrap_or_else(|| panic!("no response to GET {path}"))
    }

    pub fn try_get(&mut self, path: &str) -> Option<Response> {
        self.stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .ok()?;
        self.read_response(false)
    }

    /// Reads one response; `head` when it answers a HEAD request.
    pub fn read_response(&mut self, head: bool) -> Option<Response> {
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            self.fill()?;
        };
        let text = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let mut lines = text.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut res = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if head || status < 200 || status == 204 || status == 304 {
            return Some(res);
        }
        if res
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    self.fill()?;
                };
                let size = usize::from_str_radix(
                    String::from_utf8_lossy(&self.buf[..line_end]).trim(),
                    16,
                )
                .ok()?;
                self.buf.drain(..line_end + 2);
                while self.buf.len() < size + 2 {
                    self.fill()?;
                }
                res.body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                if size == 0 {
                    return Some(res);
                }
            }
        }
        let len = match res.header("content-length") {
            Some(n) => n.parse().ok()?,
            None => {
                while self.fill().is_some() {}
                self.buf.len()
            }
        };
        while self.buf.len() < len {
            self.fill()?;
        }
        res.body = self.buf.drain(..len).collect();
        Some(res)
    }

    /// Whether the server closes the connection within `limit`.
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        self.stream.set_read_timeout(Some(limit)).expect("timeout");
        let mut b = [0u8; 1024];
        loop {
            match self.stream.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    fn fill(&mut self) -> Option<()> {
        let mut b = [0u8; 8192];
        match self.stream.read(&mut b) {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                self.buf.extend_from_slice(&b[..n]);
                Some(())
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What a [`Load`] saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: u64,
    pub failed: u64,
    /// The first few failures, described.
    pub errors: Vec<String>,
}

impl Tally {
    fn fail(&mut self, what: String) {
        self.failed += 1;
        if self.errors.len() < 10 {
            self.errors.push(what);
        }
    }

    fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.errors.extend(
            other
                .errors
                .into_iter()
                .take(10 - self.errors.len().min(10)),
        );
    }
}

/// A bounded background load: threads on keep-alive connections and threads
/// opening a fresh connection per request, alternating `/` and
/// `/blocking?ms=20`, counting every failed request, refused or reset
/// connection. Each thread stops at `stop()`, after 60 s, or after 100,000
/// requests, whichever comes first.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Tally>>,
    counted: Arc<std::sync::atomic::AtomicU64>,
}

impl Load {
    pub fn start(port: u16, keep_alive: usize, fresh: usize) -> Self {
        use std::sync::atomic::AtomicBool;
        let stop = Arc::new(AtomicBool::new(false));
        let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut threads = Vec::new();
        for n in 0..keep_alive + fresh {
            let (stop, counted) = (stop.clone(), counted.clone());
            let reuse = n < keep_alive;
            threads.push(std::thread::spawn(move || {
                load_thread(port, reuse, n, &stop, &counted)
            }));
        }
        Self {
            stop,
            threads,
            counted,
        }
    }

    /// Requests that succeeded so far.
    pub fn ok_so_far(&self) -> u64 {
        self.counted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until `n` requests have succeeded (at most `limit`).
    pub fn wait_for_ok(&self, n: u64, limit: Duration) -> bool {
        wait_until(limit, || self.ok_so_far() >= n)
    }

    /// Waits (15 s at most) until `server` has `n` workers, none of them
    /// in `before`, then for 300 more requests to succeed, and stops: whether
    /// every worker was replaced, and the tally.
    pub fn stop_once_replaced(self, server: &Server, before: &[i32], n: usize) -> (bool, Tally) {
        let replaced = server.wait_replaced(before, n, Duration::from_secs(15));
        let seen = self.ok_so_far();
        assert!(self.wait_for_ok(seen + 300, Duration::from_secs(10)));
        (replaced, self.stop())
    }

    pub fn stop(self) -> Tally {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut total = Tally::default();
        for t in self.threads {
            total.add(t.join().expect("load thread"));
        }
        total
    }
}

fn load_thread(
    port: u16,
    reuse: bool,
    seed: usize,
    stop: &std::sync::atomic::AtomicBool,
    counted: &std::sync::atomic::AtomicU64,
) -> Tally {
    let mut tally = Tally::default();
    let started = Instant::now();
    let mut conn: Option<Conn> = None;
    for i in seed..seed + 100_000 {
        if stop.load(std::sync::atomic::Ordering::Relaxed)
            || started.elapsed() > Duration::from_secs(60)
        {
            break;
        }
        let path = if i % 4 == 0 { "/blocking?ms=20" } else { "/" };
        let reused = conn.is_some();
        let mut c = match conn.take() {
            Some(c) => c,
            None => match TcpStream::connect(("127.0.0.1", port)) {
                Ok(stream) => {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    Conn {
                        stream,
                        buf: Vec::new(),
                    }
                }
                Err(e) => {
                    tally.fail(format!("connect: {e}"));
                    continue;
                }
            },
        };
        let close = if reuse { "" } else { "Connection: close\r\n" };
        let sent = c
            .stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: load\r\n{close}\r\n").as_bytes());
        match sent.ok().and_then(|()| c.read_response(false)) {
            Some(res) if res.status == 200 => {
                tally.ok += 1;
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if reuse && res.header("connection") != Some("close") {
                    conn = Some(c);
                }
            }
            Some(res) => tally.fail(format!("GET {path}: status {}", res.status)),
            None => tally.fail(format!(
                "GET {path}: no response (reused connection: {reused})"
            )),
        }
    }
    tally
}
