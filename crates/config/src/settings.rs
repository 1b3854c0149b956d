//! The resolved, validated settings the server runs with.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::cpus::Cpus;
use crate::options::Options;

/// The default trusted peers of proxy headers and PROXY protocol: loopback.
pub(crate) const LOOPBACK: [&str; 2] = ["127.0.0.1", "::1"];

/// The most worker processes one server runs (the shared memory's slot count).
pub const MAX_WORKERS: usize = 256;
/// The most blocking threads one worker runs.
pub const MAX_THREADS: usize = 1024;
/// hyper refuses request targets longer than this; a longer line limit is moot.
const MAX_REQUEST_LINE: u64 = 65_534 + 32;

/// Every setting, resolved and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Addresses to listen on. Default `127.0.0.1:8000`.
    pub bind: Vec<Bind>,
    /// Worker processes. Default: one per CPU (see [`Cpus`]).
    pub workers: usize,
    /// Blocking-pool threads per worker. Default min(32, CPUs + 4).
    pub threads: usize,
    /// The CPUs the automatic worker and thread counts were based on.
    pub cpus: Cpus,
    /// Open connections per worker. Default 1000.
    pub worker_connections: usize,
    /// Listen queue length. Default 2048.
    pub backlog: i32,
    /// Idle keep-alive time; `None` turns keep-alive off. Default 5 s.
    pub keep_alive: Option<Duration>,
    /// Time a client may take to send a request head. Default 10 s.
    pub header_timeout: Duration,
    /// Time workers get to finish in-flight requests on a graceful stop. Default 30 s.
    pub graceful_timeout: Duration,
    /// Heartbeat age after which a worker is hung; `None` turns it off. Default 30 s.
    pub timeout: Option<Duration>,
    /// Time a worker gets to finish its app's startup; `None` turns it off. Default 30 s.
    pub boot_timeout: Option<Duration>,
    /// Time between SIGTERM and the drain, while readiness is 503. Default 0.
    pub shutdown_delay: Duration,
    /// Requests after which a worker is replaced; `None` turns it off. Default off.
    pub max_requests: Option<u64>,
    /// Up to this many more requests per worker, at random. Default 0.
    pub max_requests_jitter: u64,
    /// RSS in bytes above which a worker is replaced; `None` turns it off. Default off.
    pub max_worker_memory: Option<u64>,
    /// The pidfile. Default none.
    pub pid: Option<PathBuf>,
    /// The user workers switch to. Default unchanged.
    pub user: Option<String>,
    /// The group workers switch to. Default the user's.
    pub group: Option<String>,
    /// The file mode creation mask. Default unchanged.
    pub umask: Option<u32>,
    /// Request size limits.
    pub limits: Limits,
    /// Peers whose forwarding headers are trusted. Default loopback.
    pub forwarded_allow: Vec<IpNet>,
    /// PROXY protocol on TCP listeners. Default off.
    pub proxy_protocol: ProxyProtocol,
    /// Peers allowed to send a PROXY header. Default loopback.
    pub proxy_allow_from: Vec<IpNet>,
    /// The app's mount path behind a proxy. Default empty.
    pub root_path: String,
    /// Requests in flight per worker beyond which requests get 503; `None`
    /// turns the limit off. Default off.
    pub limit_concurrency: Option<usize>,
    /// Time a handler has to produce a response head, else 504; `None`
    /// turns it off. Default off.
    pub request_timeout: Option<Duration>,
    /// WebSocket settings.
    pub ws: WebSocket,
    /// The error log file; `None` is stderr. Default stderr.
    pub error_logfile: Option<PathBuf>,
    /// The access log: `None` off, `Some("-")` stdout, else a file. Default off.
    pub access_logfile: Option<PathBuf>,
    /// The access log format (Gunicorn atoms); `None` is Gunicorn's default.
    pub access_logformat: Option<String>,
    /// JSON log lines instead of text. Default text.
    pub log_json: bool,
    /// Log level. Default info.
    pub log_level: LogLevel,
    /// Liveness endpoint path; `None` turns it off. Default `/healthz`.
    pub health_path: Option<String>,
    /// Readiness endpoint path; `None` turns it off. Default `/readyz`.
    pub ready_path: Option<String>,
    /// Metrics endpoint path; `None` turns metrics off. Default `/metrics`.
    pub metrics_path: Option<String>,
    /// A separate address for the metrics and health endpoints, which the
    /// app's addresses then no longer serve. Default none.
    pub metrics_bind: Option<Bind>,
}

/// PROXY protocol versions accepted on TCP listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocol {
    /// No PROXY header is read.
    Off,
    /// The text header.
    V1,
    /// The binary header.
    V2,
    /// Either.
    Auto,
}

/// An IP network: an address and a prefix length; `*` is every address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpNet {
    /// Every address.
    Any,
    /// Addresses sharing the first `prefix` bits with `addr`.
    Net {
        /// The network's address.
        addr: IpAddr,
        /// The prefix length in bits.
        prefix: u8,
    },
}

impl IpNet {
    /// Whether `ip` is in this network. IPv4 addresses mapped into IPv6
    /// (`::ffff:a.b.c.d`) count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let Self::Net { addr, prefix } = *self else {
            return true;
        };
        let bits = |a: IpAddr| -> (u128, u8) {
            match a.to_canonical() {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        let ((net, width), (got, got_width)) = (bits(addr), bits(ip));
        if width != got_width {
            return false;
        }
        let shift = u32::from(width - prefix.min(width));
        let (net, got) = if shift >= 128 {
            (0, 0)
        } else {
            (net >> shift, got >> shift)
        };
        net == got
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "*" {
            return Ok(Self::Any);
        }
        let bad = || format!("`{s}` is not an IP address, a CIDR or *");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.to_canonical().is_ipv4() {
            32
        } else {
            128
        };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Self::Net { addr, prefix })
    }
}

/// WebSocket settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebSocket {
    /// Silence after which the server pings; `None` turns pings off. Default 20 s.
    pub ping_interval: Option<Duration>,
    /// Time a pinged client has to answer. Default 20 s.
    pub ping_timeout: Duration,
    /// Largest message in bytes. Default 16 MiB.
    pub max_size: usize,
    /// Incoming messages buffered per connection. Default 32.
    pub max_queue: usize,
}

/// Request size limits; `None` means no limit beyond hyper's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line in bytes. Default 4094.
    pub request_line: Option<usize>,
    /// Most header fields. Default 100.
    pub request_fields: usize,
    /// Longest header field in bytes. Default 8190.
    pub request_field_size: Option<usize>,
}

impl Limits {
    /// The longest request head these limits allow, in bytes.
    pub fn max_head(&self) -> usize {
        let line = self.request_line.unwrap_or(MAX_REQUEST_LINE as usize);
        let field = self.request_field_size.unwrap_or(65_536);
        line + 2 + self.request_fields * (field + 2) + 2
    }
}

/// An address to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix socket file.
    Unix(PathBuf),
    /// A listening socket already open as this file descriptor (`fd://N`).
    Fd(i32),
}

impl fmt::Display for Bind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Fd(fd) => write!(f, "fd://{fd}"),
        }
    }
}

/// Log levels, named as Gunicorn names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong.
    Warning,
    /// Something failed.
    Error,
    /// Only failures; logged as errors.
    Critical,
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "debug" | "trace" => Ok(Self::Debug),
            "info" => Ok(Self::Info),
            "warning" | "warn" => Ok(Self::Warning),
            "error" => Ok(Self::Error),
            "critical" => Ok(Self::Critical),
            _ => Err(format!(
                "`{s}` is not one of debug, info, warning, error, critical"
            )),
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Critical => "critical",
        })
    }
}

/// A setting that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub key: &'static str,
    pub message: String,
}

type Check<T> = Result<T, Invalid>;

fn invalid(key: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        key,
        message: message.into(),
    }
}

impl Config {
    /// Applies defaults and validates.
    pub(crate) fn resolve(o: &Options, cpus: Cpus) -> Check<Self> {
        let config = Self::fields(o, cpus)?;
        // Each of ferricorn's own endpoints needs a path of its own.
        let (health, ready, metrics) = (
            &config.health_path,
            &config.ready_path,
            &config.metrics_path,
        );
        let clash = [
            ("ready_path", ready, ready == health),
            (
                "metrics_path",
                metrics,
                metrics == health || metrics == ready,
            ),
        ];
        if let Some((key, Some(p), _)) = clash.into_iter().find(|(_, p, same)| p.is_some() && *same)
        {
            return Err(invalid(
                key,
                format!("`{p}` is already the path of another endpoint"),
            ));
        }
        Ok(config)
    }

    fn fields(o: &Options, cpus: Cpus) -> Check<Self> {
        let workers = range("workers", o.workers.unwrap_or(0), 0, MAX_WORKERS as u64)?;
        let threads = range("threads", o.threads.unwrap_or(0), 0, MAX_THREADS as u64)?;
        Ok(Self {
            bind: binds(o.bind.as_deref().unwrap_or(&["127.0.0.1:8000".to_owned()]))?,
            workers: if workers == 0 { cpus.count } else { workers },
            threads: if threads == 0 {
                (cpus.count + 4).min(32)
            } else {
                threads
            },
            cpus,
            worker_connections: range(
                "worker_connections",
                o.worker_connections.unwrap_or(1000),
                1,
                1 << 20,
            )?,
            backlog: range("backlog", o.backlog.unwrap_or(2048), 1, i32::MAX as u64)? as i32,
            keep_alive: Some(secs("keep_alive", o.keep_alive.unwrap_or(5.0))?)
                .filter(|d| !d.is_zero()),
            header_timeout: positive("header_timeout", o.header_timeout.unwrap_or(10.0))?,
            graceful_timeout: secs("graceful_timeout", o.graceful_timeout.unwrap_or(30.0))?,
            timeout: hang_timeout(o.timeout.unwrap_or(30.0))?,
            boot_timeout: Some(secs("boot_timeout", o.boot_timeout.unwrap_or(30.0))?)
                .filter(|d| !d.is_zero()),
            shutdown_delay: secs("shutdown_delay", o.shutdown_delay.unwrap_or(0.0))?,
            max_requests: o.max_requests.filter(|n| *n > 0),
            max_requests_jitter: o.max_requests_jitter.unwrap_or(0),
            max_worker_memory: match o.max_worker_memory.unwrap_or(0) {
                0 => None,
                mib => Some(mib.checked_mul(1 << 20).ok_or_else(|| {
                    invalid("max_worker_memory", format!("{mib} MiB is too large"))
                })?),
            },
            pid: o
                .pid
                .as_deref()
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            user: o.user.clone().filter(|u| !u.is_empty()),
            group: o.group.clone().filter(|g| !g.is_empty()),
            umask: o
                .umask
                .as_deref()
                .filter(|m| !m.is_empty())
                .map(umask)
                .transpose()?,
            limits: Limits {
                request_line: Some(range(
                    "limit_request_line",
                    o.limit_request_line.unwrap_or(4094),
                    0,
                    MAX_REQUEST_LINE,
                )?)
                .filter(|n| *n > 0),
                request_fields: range(
                    "limit_request_fields",
                    o.limit_request_fields.unwrap_or(100),
                    1,
                    32_768,
                )?,
                request_field_size: Some(range(
                    "limit_request_field_size",
                    o.limit_request_field_size.unwrap_or(8190),
                    0,
                    65_536,
                )?)
                .filter(|n| *n > 0),
            },
            forwarded_allow: o
                .forwarded_allow_ips
                .as_deref()
                .map_or_else(
                    || LOOPBACK.iter().map(|s| s.to_string()).collect(),
                    <[String]>::to_vec,
                )
                .iter()
                .map(|s| s.parse().map_err(|m| invalid("forwarded_allow_ips", m)))
                .collect::<Check<_>>()?,
            proxy_protocol: match o.proxy_protocol.as_deref().unwrap_or("off") {
                "off" => ProxyProtocol::Off,
                "v1" => ProxyProtocol::V1,
                "v2" => ProxyProtocol::V2,
                "auto" => ProxyProtocol::Auto,
                other => {
                    return Err(invalid(
                        "proxy_protocol",
                        format!("`{other}` is not off, v1, v2 or auto"),
                    ));
                }
            },
            proxy_allow_from: o
                .proxy_allow_from
                .as_deref()
                .map_or_else(
                    || LOOPBACK.iter().map(|s| s.to_string()).collect(),
                    <[String]>::to_vec,
                )
                .iter()
                .map(|s| s.parse().map_err(|m| invalid("proxy_allow_from", m)))
                .collect::<Check<_>>()?,
            root_path: match o.root_path.as_deref().unwrap_or("") {
                "" => String::new(),
                p if p.starts_with('/') && !p.ends_with('/') => p.to_owned(),
                p => {
                    return Err(invalid(
                        "root_path",
                        format!("`{p}` must start with / and not end with one"),
                    ));
                }
            },
            limit_concurrency: Some(range(
                "limit_concurrency",
                o.limit_concurrency.unwrap_or(0),
                0,
                1 << 30,
            )?)
            .filter(|n| *n > 0),
            request_timeout: Some(secs("request_timeout", o.request_timeout.unwrap_or(0.0))?)
                .filter(|d| !d.is_zero()),
            ws: WebSocket {
                ping_interval: Some(secs(
                    "ws_ping_interval",
                    o.ws_ping_interval.unwrap_or(20.0),
                )?)
                .filter(|d| !d.is_zero()),
                ping_timeout: positive("ws_ping_timeout", o.ws_ping_timeout.unwrap_or(20.0))?,
                max_size: range("ws_max_size", o.ws_max_size.unwrap_or(16 << 20), 1, 1 << 31)?,
                max_queue: range("ws_max_queue", o.ws_max_queue.unwrap_or(32), 1, 1 << 16)?,
            },
            error_logfile: o
                .error_logfile
                .as_deref()
                .filter(|p| !p.is_empty() && *p != "-")
                .map(PathBuf::from),
            access_logfile: o
                .access_logfile
                .as_deref()
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            access_logformat: o.access_logformat.clone().filter(|f| !f.is_empty()),
            log_json: match o.log_format.as_deref().unwrap_or("text") {
                "text" => false,
                "json" => true,
                other => {
                    return Err(invalid(
                        "log_format",
                        format!("`{other}` is not text or json"),
                    ));
                }
            },
            log_level: o
                .log_level
                .as_deref()
                .unwrap_or("info")
                .parse()
                .map_err(|m| invalid("log_level", m))?,
            health_path: path(
                "health_path",
                o.health_path.as_deref().unwrap_or("/healthz"),
            )?,
            ready_path: path("ready_path", o.ready_path.as_deref().unwrap_or("/readyz"))?,
            metrics_path: path(
                "metrics_path",
                o.metrics_path.as_deref().unwrap_or("/metrics"),
            )?,
            metrics_bind: match o.metrics_bind.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(a) => match bind("metrics_bind", a)?.as_slice() {
                    [b] => Some(b.clone()),
                    _ => {
                        return Err(invalid(
                            "metrics_bind",
                            format!("`{a}` names more than one address; give one"),
                        ));
                    }
                },
            },
        })
    }
}

/// An octal mask: `022`, `0o022` or `0022`.
fn umask(m: &str) -> Check<u32> {
    let digits = m.trim().trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(n) if n <= 0o777 => Ok(n),
        _ => Err(invalid(
            "umask",
            format!("`{m}` is not an octal mask from 0 to 777"),
        )),
    }
}

fn range(key: &'static str, n: u64, min: u64, max: u64) -> Check<usize> {
    if n < min || n > max {
        return Err(invalid(key, format!("{n} is outside {min}..={max}")));
    }
    Ok(n as usize)
}

fn secs(key: &'static str, s: f64) -> Check<Duration> {
    if !s.is_finite() || !(0.0..=1e9).contains(&s) {
        return Err(invalid(
            key,
            format!("{s} is not a number of seconds from 0 to 1e9"),
        ));
    }
    Ok(Duration::from_secs_f64(s))
}

/// How often a worker writes its heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// A timeout under two heartbeats would find every worker hung.
const MIN_TIMEOUT: Duration = Duration::from_secs(2 * HEARTBEAT_INTERVAL.as_secs());

/// `timeout`: 0 turns it off; otherwise at least [`MIN_TIMEOUT`].
fn hang_timeout(s: f64) -> Check<Option<Duration>> {
    let d = secs("timeout", s)?;
    if d.is_zero() {
        return Ok(None);
    }
    if d < MIN_TIMEOUT {
        return Err(invalid(
            "timeout",
            format!(
                "{s} s is under {} s, and workers beat every {} s (0 turns it off)",
                MIN_TIMEOUT.as_secs(),
                HEARTBEAT_INTERVAL.as_secs()
            ),
        ));
    }
    Ok(Some(d))
}

fn positive(key: &'static str, s: f64) -> Check<Duration> {
    let d = secs(key, s)?;
    if d.is_zero() {
        return Err(invalid(key, "must be more than 0 seconds"));
    }
    Ok(d)
}

fn path(key: &'static str, p: &str) -> Check<Option<String>> {
    match p {
        "" => Ok(None),
        p if p.starts_with('/') && !p.contains(char::is_whitespace) => Ok(Some(p.to_owned())),
        p => Err(invalid(
            key,
            format!("`{p}` must start with / and hold no spaces (empty turns it off)"),
        )),
    }
}

fn binds(addrs: &[String]) -> Check<Vec<Bind>> {
    if addrs.is_empty() {
        return Err(invalid("bind", "no address given"));
    }
    let mut out = Vec::new();
    for a in addrs {
        for b in bind("bind", a)? {
            if !out.contains(&b) {
                out.push(b);
            }
        }
    }
    Ok(out)
}

/// Parses one address; a host name may resolve to several.
fn bind(key: &'static str, a: &str) -> Check<Vec<Bind>> {
    let a = a.trim();
    if let Some(fd) = a.strip_prefix("fd://") {
        return match fd.parse::<i32>() {
            Ok(fd) if fd >= 3 => Ok(vec![Bind::Fd(fd)]),
            _ => Err(invalid(
                key,
                format!("`{a}`: fd://N needs a descriptor number of 3 or more"),
            )),
        };
    }
    if let Some(path) = a.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(invalid(key, "`unix:` needs a path"));
        }
        return Ok(vec![Bind::Unix(PathBuf::from(path))]);
    }
    if let Ok(addr) = a.parse::<SocketAddr>() {
        return Ok(vec![Bind::Tcp(addr)]);
    }
    let bad = || {
        invalid(
            key,
            format!("`{a}` is not HOST:PORT, [V6]:PORT or unix:PATH"),
        )
    };
    let (host, port) = match a.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.ends_with(':') => {
            (h, p.parse::<u16>().map_err(|_| bad())?)
        }
        None if !a.is_empty() => (a, 8000),
        _ => return Err(bad()),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![Bind::Tcp(SocketAddr::new(ip, port))]);
    }
    if host.contains(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.')) {
        return Err(bad());
    }
    let resolved: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| invalid(key, format!("`{a}`: cannot resolve {host}: {e}")))?
        .map(Bind::Tcp)
        .collect();
    if resolved.is_empty() {
        return Err(invalid(key, format!("`{a}`: {host} has no address")));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpus() -> Cpus {
        Cpus::from_inputs(2, Some(2), None)
    }

    #[test]
    fn defaults() {
        let c = Config::resolve(&Options::default(), cpus()).expect("defaults are valid");
        assert_eq!(c.bind, [Bind::Tcp("127.0.0.1:8000".parse().expect("addr"))]);
        assert_eq!((c.workers, c.threads), (2, 6));
        assert_eq!(c.worker_connections, 1000);
        assert_eq!(c.backlog, 2048);
        assert_eq!(c.keep_alive, Some(Duration::from_secs(5)));
        assert_eq!(c.graceful_timeout, Duration::from_secs(30));
        assert_eq!(c.timeout, Some(Duration::from_secs(30)));
        assert_eq!(c.limits.request_line, Some(4094));
        assert_eq!(c.limits.request_fields, 100);
        assert_eq!(c.limits.request_field_size, Some(8190));
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.health_path.as_deref(), Some("/healthz"));
    }

    #[test]
    fn threads_cap_at_32() {
        let c =
            Config::resolve(&Options::default(), Cpus::from_inputs(64, None, None)).expect("valid");
        assert_eq!((c.workers, c.threads), (64, 32));
    }

    #[test]
    fn binds_parse() {
        let b = |s: &str| bind("bind", s).map_err(|e| e.message);
        assert_eq!(
            b("[::1]:9000"),
            Ok(vec![Bind::Tcp("[::1]:9000".parse().expect("addr"))])
        );
        assert_eq!(
            b("0.0.0.0"),
            Ok(vec![Bind::Tcp("0.0.0.0:8000".parse().expect("addr"))])
        );
        assert_eq!(
            b("unix:/tmp/f.sock"),
            Ok(vec![Bind::Unix("/tmp/f.sock".into())])
        );
        assert!(b("localhost:80").is_ok_and(|v| !v.is_empty()));
        assert!(b("127.0.0.1:http").is_err());
        assert!(b("127.0.0.1:70000").is_err());
        assert!(b("unix:").is_err());
        assert_eq!(b("fd://3"), Ok(vec![Bind::Fd(3)]));
        assert!(b("fd://1").is_err() && b("fd://x").is_err());
        assert!(b(":80").is_err());
        assert!(b("a b:80").is_err());
    }

    #[test]
    fn bad_values_name_their_setting() {
        let bad = |o: Options| Config::resolve(&o, cpus()).expect_err("invalid").key;
        assert_eq!(
            bad(Options {
                workers: Some(100_000),
                ..Default::default()
            }),
            "workers"
        );
        assert_eq!(
            bad(Options {
                keep_alive: Some(-1.0),
                ..Default::default()
            }),
            "keep_alive"
        );
        assert_eq!(
            bad(Options {
                header_timeout: Some(0.0),
                ..Default::default()
            }),
            "header_timeout"
        );
        assert_eq!(
            bad(Options {
                log_level: Some("loud".into()),
                ..Default::default()
            }),
            "log_level"
        );
        assert_eq!(
            bad(Options {
                health_path: Some("healthz".into()),
                ..Default::default()
            }),
            "health_path"
        );
        assert_eq!(
            bad(Options {
                limit_request_fields: Some(0),
                ..Default::default()
            }),
            "limit_request_fields"
        );
    }

    #[test]
    fn ip_networks_match() {
        let net = |s: &str| s.parse::<IpNet>().expect("net");
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(net("10.0.0.0/8").contains(ip("10.1.2.3")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(net("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(!net("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(net("::1").contains(ip("::1")));
        assert!(net("2001:db8::/32").contains(ip("2001:db8::5")));
        assert!(!net("2001:db8::/32").contains(ip("10.0.0.1")));
        assert!(net("*").contains(ip("8.8.8.8")));
        assert!(net("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("example.com".parse::<IpNet>().is_err());
    }

    #[test]
    fn recycling_and_process_options() {
        let o = Options {
            max_requests: Some(200),
            max_requests_jitter: Some(20),
            max_worker_memory: Some(64),
            umask: Some("0o027".into()),
            pid: Some("/run/f.pid".into()),
            ..Default::default()
        };
        let c = Config::resolve(&o, cpus()).expect("valid");
        assert_eq!((c.max_requests, c.max_requests_jitter), (Some(200), 20));
        assert_eq!(c.max_worker_memory, Some(64 << 20));
        assert_eq!(c.umask, Some(0o027));
        assert_eq!(c.pid.as_deref(), Some(std::path::Path::new("/run/f.pid")));
        assert_eq!(c.boot_timeout, Some(Duration::from_secs(30)));
        assert_eq!(c.shutdown_delay, Duration::ZERO);
        let bad = Options {
            umask: Some("999".into()),
            ..Default::default()
        };
        assert_eq!(Config::resolve(&bad, cpus()).expect_err("bad").key, "umask");
    }

    #[test]
    fn a_timeout_under_the_heartbeat_interval_is_refused() {
        let with = |t: f64| Options {
            timeout: Some(t),
            ..Default::default()
        };
        for t in [0.0001, 1.0, 1.99] {
            let e = Config::resolve(&with(t), cpus()).expect_err("too short");
            assert_eq!(e.key, "timeout");
            assert!(e.message.contains("under 2 s"), "{}", e.message);
        }
        let c = Config::resolve(&with(2.0), cpus()).expect("valid");
        assert_eq!(c.timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn zero_turns_things_off() {
        let o = Options {
            keep_alive: Some(0.0),
            timeout: Some(0.0),
            limit_request_line: Some(0),
            ready_path: Some(String::new()),
            ..Default::default()
        };
        let c = Config::resolve(&o, cpus()).expect("valid");
        assert_eq!(c.keep_alive, None);
        assert_eq!(c.timeout, None);
        assert_eq!(c.limits.request_line, None);
        assert_eq!(c.ready_path, None);
    }

    #[test]
    fn metrics_settings() {
        let c = Config::resolve(&Options::default(), cpus()).expect("valid");
        assert_eq!(
            (c.metrics_path.as_deref(), c.metrics_bind),
            (Some("/metrics"), None)
        );
        let o = Options {
            metrics_path: Some(String::new()),
            metrics_bind: Some("127.0.0.1:9100".into()),
            ..Default::default()
        };
        let c = Config::resolve(&o, cpus()).expect("valid");
        assert_eq!(c.metrics_path, None);
        assert_eq!(
            c.metrics_bind,
            Some(Bind::Tcp("127.0.0.1:9100".parse().expect("addr")))
        );
        let bad = Options {
            metrics_bind: Some("nowhere:port".into()),
            ..Default::default()
        };
        let e = Config::resolve(&bad, cpus()).expect_err("bad");
        assert_eq!(e.key, "metrics_bind");
        let same = Options {
            metrics_path: Some("/healthz".into()),
            ..Default::default()
        };
        let e = Config::resolve(&same, cpus()).expect_err("clash");
        assert_eq!(e.key, "metrics_path");
        let same = Options {
            ready_path: Some("/metrics".into()),
            metrics_path: Some("/metrics".into()),
            ..Default::default()
        };
        assert_eq!(
            Config::resolve(&same, cpus()).expect_err("clash").key,
            "metrics_path"
        );
        let same = Options {
            ready_path: Some("/healthz".into()),
            ..Default::default()
        };
        assert_eq!(
            Config::resolve(&same, cpus()).expect_err("clash").key,
            "ready_path"
        );
    }
}
