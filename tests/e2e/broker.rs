//! The channel layer across hosts: two servers sharing one real Redis
//! (Debian's `redis-server`, started here on a free loopback port), and
//! Redis killed and restarted under them.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio_tungstenite::tungstenite::Message;

use crate::channels::{Member, count, field, join, members_on_both_workers, next_of, post};
use crate::metrics::Scrape;
use crate::support::{Server, children, is_gone, wait_until};

/// A `redis-server` of the test's own: no persistence, loopback only.
pub struct Redis {
    child: Child,
    pub port: u16,
    password: Option<String>,
}

impl Redis {
    /// Starts one on a free port and waits until it answers.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts one on a free port with extra arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Self::spawn(port, extra)
    }

    /// Starts one on `port` (again, after [`kill`](Self::kill)).
    pub fn start_on(port: u16) -> Self {
        Self::spawn(port, &[])
    }

    fn spawn(port: u16, extra: &[&str]) -> Self {
        install();
        let password = extra
            .iter()
            .position(|a| *a == "--requirepass")
            .and_then(|i| extra.get(i + 1))
            .map(|p| (*p).to_owned());
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(extra)
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (Debian's redis-server package; .ci/run installs it)");
        let redis = Self {
            child,
            port,
            password,
        };
        assert!(
            wait_until(Duration::from_secs(10), || redis
                .try_cmd(&["PING"])
                .is_some()),
            "redis-server on port {port} never answered PING"
        );
        redis
    }

    /// The URL servers name it by.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills it at once (SIGKILL): no goodbye to its clients.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The first line of one command's reply (RESP), if it answers.
    fn try_cmd(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut out = String::new();
        if let Some(p) = &self.password {
            out.push_str(&format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{p}\r\n", p.len()));
        }
        out.push_str(&format!("*{}\r\n", args.len()));
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(out.as_bytes()).ok()?;
        let mut reader = BufReader::new(s);
        let mut reply = String::new();
        if self.password.is_some() {
            reader.read_line(&mut reply).ok()?;
            reply.clear();
        }
        reader.read_line(&mut reply).ok()?;
        (!reply.is_empty() && !reply.starts_with('-')).then_some(reply)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Installs Debian's redis-server where it is missing and this is root
/// with apt (as on CI); otherwise starting it fails with what to install.
fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let have = Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok();
        if !have && nix::unistd::geteuid().is_root() {
            let _ = Command::new("apt-get")
                .args(["install", "-y", "-q", "redis-server"])
                .status();
        }
    });
}

/// A group's key, as the layer computes it (64-bit FNV-1a, never 0).
fn key(group: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in group.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.max(1)
}

/// How many subscribers a group's channel has in Redis (sharded, Redis 7).
fn subscribers(redis: &Redis, group: &str) -> u64 {
    let channel = format!("ferricorn:0:g:{:016x}", key(group));
    let mut s = TcpStream::connect(("127.0.0.1", redis.port)).expect("redis");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let ask = format!(
        "*3\r\n$6\r\nPUBSUB\r\n$11\r\nSHARDNUMSUB\r\n${}\r\n{channel}\r\n",
        channel.len()
    );
    s.write_all(ask.as_bytes()).expect("write");
    // *2, $len, channel, :n
    let mut lines = BufReader::new(s).lines();
    let reply: Vec<String> = (0..4).map_while(|_| lines.next()?.ok()).collect();
    reply
        .get(3)
        .and_then(|n| n.strip_prefix(':')?.parse().ok())
        .unwrap_or_else(|| panic!("SHARDNUMSUB: {reply:?}"))
}

fn server(redis: &Redis, workers: &str) -> Server {
    Server::start(&["-w", workers, "--channel-layer", &redis.url()])
}

fn text_of(m: &mut Member, kind: &str) -> String {
    let got = next_of(&mut m.ws, kind).unwrap_or_else(|| panic!("no {kind} for {}", m.id));
    field(&got, "text").unwrap_or_else(|| panic!("{got}"))
}

fn broker_connected(server: &Server) -> Option<f64> {
    Scrape::from_port(server.port).get("ferricorn_channel_broker_connected", &[])
}

#[test]
fn two_servers_share_rooms_directs_and_counts_through_redis() {
    let redis = Redis::start();
    let a = server(&redis, "2");
    let mut b = server(&redis, "1");
    let mut here = members_on_both_workers(&a, "lobby");
    let mut there = vec![join(&b, "lobby")];
    let total = (here.len() + there.len()) as u64;
    // Counted over both servers, from either; a server is counted only once
    // it receives the room.
    assert!(
        wait_until(Duration::from_secs(5), || count(&a, "lobby") == total
            && count(&b, "lobby") == total),
        "counts {} and {}, expected {total}",
        count(&a, "lobby"),
        count(&b, "lobby")
    );
    // One subscription per server, though `a` has members on two workers.
    assert_eq!(subscribers(&redis, "lobby"), 2);

    // A member on `a` speaks: every member on both servers hears it once.
    let from = here[0].id.clone();
    here[0].ws.send(Message::text("over redis")).expect("send");
    for m in here.iter_mut().chain(there.iter_mut()) {
        let got = next_of(&mut m.ws, "message").expect("the message");
        assert_eq!(field(&got, "text").as_deref(), Some("over redis"), "{got}");
        assert_eq!(field(&got, "from").as_deref(), Some(from.as_str()));
    }
    // From HTTP on `b`.
    assert_eq!(post(&b, "/rooms/lobby", "from b"), 202);
    for m in here.iter_mut().chain(there.iter_mut()) {
        assert_eq!(text_of(m, "message"), "from b");
    }
    // Rooms stay apart across servers: `b`'s member hears nothing of
    // `elsewhere`, so the next message it gets is the marker.
    let mut other = join(&a, "elsewhere");
    // `a` receives a room from other hosts once its gateway subscribed,
    // milliseconds after the join; it is counted there from then on.
    assert!(wait_until(Duration::from_secs(5), || count(
        &b,
        "elsewhere"
    ) == 1));
    assert_eq!(post(&b, "/rooms/elsewhere", "not for lobby"), 202);
    assert_eq!(text_of(&mut other, "message"), "not for lobby");
    assert_eq!(post(&a, "/rooms/lobby", "marker"), 202);
    assert_eq!(text_of(&mut there[0], "message"), "marker");

    // Direct sends to a socket on the other server, both ways.
    let path = format!("/connections/{}", here[1].id);
    assert_eq!(post(&b, &path, "to a"), 202);
    assert_eq!(text_of(&mut here[1], "direct"), "to a");
    let path = format!("/connections/{}", there[0].id);
    assert_eq!(post(&a, &path, "to b"), 202);
    assert_eq!(text_of(&mut there[0], "direct"), "to b");

    let scrape = Scrape::from_port(a.port);
    assert_eq!(
        scrape.get("ferricorn_channel_broker_connected", &[]),
        Some(1.0)
    );
    assert_eq!(
        scrape.get(
            "ferricorn_channel_messages_dropped_total",
            &[("reason", "broker_down")]
        ),
        Some(0.0)
    );

    // A reload replaces `a`'s workers, and with them its gateway: a new
    // member there still hears `b`.
    let old = a.workers();
    a.signal(Signal::SIGHUP);
    assert!(a.wait_replaced(&old, 2, Duration::from_secs(20)));
    drop(here);
    let mut late = join(&a, "lobby");
    assert!(
        wait_until(Duration::from_secs(5), || count(&b, "lobby") == 2),
        "count on b after a's reload: {}",
        count(&b, "lobby")
    );
    assert_eq!(post(&b, "/rooms/lobby", "after reload"), 202);
    assert_eq!(text_of(&mut late, "message"), "after reload");

    // Both of `a`'s workers killed at once (kill -9), its gateway with
    // them: the replacements elect another and subscribe again.
    let old = a.workers();
    for pid in &old {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), Signal::SIGKILL);
    }
    assert!(a.wait_replaced(&old, 2, Duration::from_secs(20)));
    // The killed workers' member leaves the other server's count too, once
    // the new gateway takes back what the old one wrote.
    assert!(
        wait_until(Duration::from_secs(5), || count(&b, "lobby") == 1),
        "count on b after a's workers were killed: {}",
        count(&b, "lobby")
    );
    drop(late);
    let mut later = join(&a, "lobby");
    assert!(
        wait_until(Duration::from_secs(5), || subscribers(&redis, "lobby") == 2
            && count(&b, "lobby") == 2),
        "after the kill: {} subscribers, count {} on b",
        subscribers(&redis, "lobby"),
        count(&b, "lobby")
    );
    assert_eq!(post(&b, "/rooms/lobby", "after kill"), 202);
    assert_eq!(text_of(&mut later, "message"), "after kill");

    // A server that dies (kill -9, workers and all) stops being counted
    // within the heartbeat key's 5 s.
    let b_pids: Vec<i32> = std::iter::once(b.pid()).chain(children(b.pid())).collect();
    for pid in &b_pids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), Signal::SIGKILL);
    }
    let _ = b.child.wait();
    assert!(wait_until(Duration::from_secs(5), || b_pids
        .iter()
        .all(|p| is_gone(*p))));
    assert!(
        wait_until(Duration::from_secs(8), || count(&a, "lobby") == 1),
        "count on a after b died: {}",
        count(&a, "lobby")
    );
    drop((there, other, later));
}

#[test]
fn a_password_and_a_unix_socket_reach_the_same_redis() {
    let dir = crate::support::temp_dir("redis-unix");
    let socket = dir.join("redis.sock");
    let redis = Redis::start_with(&[
        "--unixsocket",
        socket.to_str().expect("utf-8 path"),
        "--requirepass",
        "s3cret",
    ]);
    let tcp = format!("redis://:s3cret@127.0.0.1:{}/3", redis.port);
    let unix = format!("redis+unix://{}?db=3&pass=s3cret", socket.display());
    let a = Server::start(&["-w", "1", "--channel-layer", &tcp]);
    let b = Server::start(&["-w", "1", "--channel-layer", &unix]);
    let mut here = join(&a, "secure");
    let mut there = join(&b, "secure");
    // Counted on both: each server is counted by the other only once its
    // gateway subscribed to the room, so a post from either reaches both.
    assert!(
        wait_until(Duration::from_secs(5), || count(&a, "secure") == 2
            && count(&b, "secure") == 2),
        "counts {} and {}",
        count(&a, "secure"),
        count(&b, "secure")
    );
    assert_eq!(post(&b, "/rooms/secure", "via unix"), 202);
    assert_eq!(text_of(&mut here, "message"), "via unix");
    assert_eq!(text_of(&mut there, "message"), "via unix");
    assert_eq!(post(&a, "/rooms/secure", "via tcp"), 202);
    assert_eq!(text_of(&mut there, "message"), "via tcp");
    // The password never reaches the log.
    for s in [&a, &b] {
        let log = s.log();
        assert!(log.contains(":****@") || log.contains("pass=****"), "{log}");
        assert!(!log.contains("s3cret"), "{log}");
    }
    // A wrong password: said once, and the server serves on, by itself.
    let wrong = format!("redis://:wrong@127.0.0.1:{}/3", redis.port);
    let c = Server::start(&["-w", "1", "--channel-layer", &wrong]);
    c.wait_log("is unavailable", Duration::from_secs(10));
    assert_eq!(c.get("/readyz").status, 200);
    assert_eq!(broker_connected(&c), Some(0.0));
    let mut alone = join(&c, "secure");
    assert_eq!(post(&c, "/rooms/secure", "local only"), 202);
    assert_eq!(text_of(&mut alone, "message"), "local only");
    assert_eq!(count(&c, "secure"), 1);
}

#[test]
fn redis_down_is_a_degraded_mode_and_its_return_needs_no_restart() {
    let mut redis = Redis::start();
    let a = server(&redis, "2");
    let b = server(&redis, "1");
    let pids = (a.workers(), b.workers());
    let mut here = members_on_both_workers(&a, "ops");
    let mut there = join(&b, "ops");
    let total = here.len() as u64 + 1;
    assert!(wait_until(Duration::from_secs(5), || count(&a, "ops") == total));
    assert!(wait_until(Duration::from_secs(5), || broker_connected(&a) == Some(1.0)));

    redis.kill();
    // Local delivery goes on, across `a`'s workers.
    let speaker = here.iter().position(|m| m.worker == 0).expect("on 0");
    here[speaker]
        .ws
        .send(Message::text("still here"))
        .expect("send");
    for m in &mut here {
        assert_eq!(text_of(m, "message"), "still here");
    }
    assert!(
        wait_until(Duration::from_secs(10), || broker_connected(&a)
            == Some(0.0)),
        "the gauge never showed Redis down"
    );
    // Messages for other hosts are counted, not queued without end.
    for i in 0..5 {
        assert_eq!(post(&a, "/rooms/ops", &format!("lost {i}")), 202);
    }
    assert!(wait_until(Duration::from_secs(5), || {
        Scrape::from_port(a.port)
            .get(
                "ferricorn_channel_messages_dropped_total",
                &[("reason", "broker_down")],
            )
            .is_some_and(|n| n >= 1.0)
    }));
    // Still ready: the host serves its own clients.
    assert_eq!(a.get("/readyz").status, 200);
    // Said once, not once per message.
    let log = a.log();
    assert_eq!(log.matches("is unavailable").count(), 1, "{log}");

    // Redis comes back on the same port, empty: each server resubscribes
    // and writes its counts again, with no restart.
    let redis = Redis::start_on(redis.port);
    assert!(
        wait_until(Duration::from_secs(15), || broker_connected(&a)
            == Some(1.0)
            && broker_connected(&b) == Some(1.0)),
        "not reconnected: {:?} {:?}",
        broker_connected(&a),
        broker_connected(&b)
    );
    a.wait_log("answers again", Duration::from_secs(5));
    assert!(
        Scrape::from_port(a.port)
            .get("ferricorn_channel_broker_reconnects_total", &[])
            .is_some_and(|n| n >= 1.0)
    );
    assert!(
        wait_until(Duration::from_secs(10), || count(&b, "ops") == total),
        "count on b after Redis came back: {}",
        count(&b, "ops")
    );
    assert_eq!(subscribers(&redis, "ops"), 2);
    // The drain of what was lost: `b`'s member sees the next message, not
    // the ones published while Redis was down.
    assert_eq!(post(&a, "/rooms/ops", "back"), 202);
    assert_eq!(text_of(&mut there, "message"), "back");
    assert_eq!((a.workers(), b.workers()), pids, "no worker was restarted");
}
