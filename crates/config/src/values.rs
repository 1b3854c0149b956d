//! The typed values settings are checked into: addresses, networks, log
//! level and format, the PROXY protocol mode, the user and group workers
//! run as, and the groups of settings that travel together.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::Error;

/// hyper refuses request targets longer than this; a longer line limit is moot.
pub(crate) const MAX_REQUEST_LINE: u64 = 65_534 + 32;

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
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        if s == "*" {
            return Ok(Self::Any);
        }
        let bad = || Error::Value(format!("`{s}` is not an IP address, a CIDR or *"));
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

/// Where the channel layer spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelLayer {
    /// Every worker of this server, through its shared memory.
    Memory,
    /// Every server naming the same Redis: `redis://[[user]:password@]host[:port][/db]`
    /// or `redis+unix:///path[?db=N&user=U&pass=P]`, checked here.
    Redis(String),
}

impl ChannelLayer {
    /// The layer as the logs show it: a Redis URL's password masked.
    pub fn shown(&self) -> String {
        match self {
            Self::Memory => "memory".to_owned(),
            Self::Redis(url) => mask_password(url),
        }
    }
}

/// `url` with the password in its authority (or its `pass=` query) masked.
fn mask_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:****@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some(("pass" | "password", _)) => {
                        format!("{}=****", &kv[..kv.find('=').unwrap_or(0)])
                    }
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

impl FromStr for ChannelLayer {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("memory") {
            return Ok(Self::Memory);
        }
        let bad = |why: &str| Err(Error::Value(format!("`{}`: {why}", mask_password(s))));
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(Error::Value(format!(
                "`{s}` is not `memory`, `redis://host[:port][/db]` or `redis+unix:///path`"
            )));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "redis" => {
                let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
                let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                let (host, port) = match host.strip_prefix('[') {
                    Some(v6) => match v6.split_once(']') {
                        Some((h, p)) => (h, p.strip_prefix(':')),
                        None => return bad("an IPv6 host needs its closing `]`"),
                    },
                    None => match host.rsplit_once(':') {
                        Some((h, p)) => (h, Some(p)),
                        None => (host, None),
                    },
                };
                if host.is_empty() {
                    return bad("no host");
                }
                if let Some(port) = port
                    && port.parse::<u16>().map_or(true, |p| p == 0)
                {
                    return bad("the port is not a number from 1 to 65535");
                }
                let db = path.split('?').next().unwrap_or("").trim_start_matches('/');
                if !db.is_empty() && db.parse::<u16>().is_err() {
                    return bad("the database is not a number");
                }
                Ok(Self::Redis(s.to_owned()))
            }
            "redis+unix" | "unix" => {
                let path = rest.split('?').next().unwrap_or("");
                if !path.starts_with('/') {
                    return bad("a Unix socket needs an absolute path (`redis+unix:///path`)");
                }
                Ok(Self::Redis(s.to_owned()))
            }
            "rediss" => bad(
                "TLS to Redis is not supported yet; use `redis://` (on a private network) or `redis+unix://`",
            ),
            _ => bad("the scheme is not `redis` or `redis+unix`"),
        }
    }
}

/// What a channel layer member's full queue does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelOverflow {
    /// Close the member's socket.
    Close,
    /// Drop its oldest queued message.
    DropOldest,
}

impl FromStr for ChannelOverflow {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "close" => Ok(Self::Close),
            "drop-oldest" | "drop_oldest" => Ok(Self::DropOldest),
            _ => Err(Error::Value(format!(
                "`{s}` is not one of close, drop-oldest"
            ))),
        }
    }
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

impl FromStr for ProxyProtocol {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "off" => Ok(Self::Off),
            "v1" => Ok(Self::V1),
            "v2" => Ok(Self::V2),
            "auto" => Ok(Self::Auto),
            other => Err(Error::Value(format!(
                "`{other}` is not off, v1, v2 or auto"
            ))),
        }
    }
}

/// Whether TLS clients must show a certificate (`cert_reqs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertReqs {
    /// None is asked for.
    #[default]
    None,
    /// One is asked for; a client without one is served, one with a
    /// certificate that does not chain to `ca_certs` is refused.
    Optional,
    /// A client without a valid one is refused in the handshake.
    Required,
}

impl FromStr for CertReqs {
    type Err = Error;

    /// The words, or Python's `ssl.CERT_*` numbers, as Gunicorn and Uvicorn
    /// take them.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "0" | "cert_none" => Ok(Self::None),
            "optional" | "1" | "cert_optional" => Ok(Self::Optional),
            "required" | "2" | "cert_required" => Ok(Self::Required),
            _ => Err(Error::Value(format!(
                "`{s}` is not none, optional or required (or 0, 1, 2)"
            ))),
        }
    }
}

/// The HTTP versions served (`http`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpVersion {
    /// HTTP/1.1 and HTTP/2, as each client asks.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    One,
    /// HTTP/2 only.
    Two,
}

impl FromStr for HttpVersion {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            "1" | "1.1" | "http1" | "h11" => Ok(Self::One),
            "2" | "http2" | "h2" => Ok(Self::Two),
            other => Err(Error::Value(format!("`{other}` is not auto, 1 or 2"))),
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
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "debug" | "trace" => Ok(Self::Debug),
            "info" => Ok(Self::Info),
            "warning" | "warn" => Ok(Self::Warning),
            "error" => Ok(Self::Error),
            "critical" => Ok(Self::Critical),
            _ => Err(Error::Value(format!(
                "`{s}` is not one of debug, info, warning, error, critical"
            ))),
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

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Text, one event per line.
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(Error::Value(format!("`{other}` is not text or json"))),
        }
    }
}

/// A user workers may switch to, found in the user database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// As given: a name or a numeric id.
    pub name: String,
    /// The user id.
    pub uid: u32,
    /// The user's own group.
    pub gid: u32,
}

/// A group workers may switch to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// As given: a name or a numeric id.
    pub name: String,
    /// The group id.
    pub gid: u32,
}

/// The user and group the workers switch to after the fork, found once
/// when the settings load (not at every fork).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The user id.
    pub uid: u32,
    /// The group id.
    pub gid: u32,
}

/// Request size limits; `None` means no limit beyond hyper's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line in bytes.
    pub request_line: Option<usize>,
    /// Most header fields.
    pub request_fields: usize,
    /// Longest header field in bytes.
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

/// WebSocket settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebSocket {
    /// Silence after which the server pings; `None` turns pings off.
    pub ping_interval: Option<Duration>,
    /// Time a pinged client has to answer.
    pub ping_timeout: Duration,
    /// Largest message in bytes.
    pub max_size: usize,
    /// Incoming messages buffered per connection.
    pub max_queue: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_layers_parse_and_hide_passwords() {
        let ok = [
            "redis://127.0.0.1",
            "redis://cache:6379/2",
            "redis://:secret@cache:6379",
            "redis://user:secret@[::1]:6380/0",
            "redis+unix:///run/redis.sock?db=1&pass=secret",
        ];
        for url in ok {
            assert_eq!(
                url.parse::<ChannelLayer>().ok(),
                Some(ChannelLayer::Redis(url.to_owned())),
                "{url}"
            );
        }
        assert_eq!(
            "Memory".parse::<ChannelLayer>().ok(),
            Some(ChannelLayer::Memory)
        );
        let bad = [
            ("redis://", "no host"),
            ("redis://cache:99999", "the port"),
            ("redis://cache/x", "the database"),
            ("redis://[::1", "closing"),
            ("redis+unix://run/redis.sock", "absolute path"),
            ("rediss://cache", "TLS"),
            ("http://cache", "scheme"),
            ("mem", "is not `memory`"),
        ];
        for (url, why) in bad {
            let e = url.parse::<ChannelLayer>().expect_err(url).to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
        let shown = |u: &str| ChannelLayer::Redis(u.to_owned()).shown();
        assert_eq!(
            shown("redis://:secret@cache:6379/1"),
            "redis://:****@cache:6379/1"
        );
        assert_eq!(shown("redis://me:secret@cache"), "redis://me:****@cache");
        assert_eq!(shown("redis://cache"), "redis://cache");
        assert_eq!(
            shown("redis+unix:///r.sock?db=1&pass=secret"),
            "redis+unix:///r.sock?db=1&pass=****"
        );
        let e = "redis://:secret@cache:0"
            .parse::<ChannelLayer>()
            .expect_err("port 0")
            .to_string();
        assert!(!e.contains("secret"), "{e}");
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
}
