//! `ferricorn healthcheck`: asks a running server's readiness endpoint and
//! exits 0 (ready) or 1 (not ready, or no answer), for container images
//! that have no curl. Without `--url` it asks the server running this
//! executable (found in `/proc`, see `running`), else the address the same
//! settings would serve on: `--metrics-bind` if set, else the first
//! `--bind`; with `--ready-path`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use ferricorn_config::{Bind, Config};

/// Where to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Tcp {
        host: String,
        port: u16,
        path: String,
    },
    Unix {
        socket: PathBuf,
        path: String,
    },
}

impl Target {
    /// `http://HOST[:PORT][/PATH]` or `unix:SOCKET[:/PATH]`.
    pub(crate) fn parse(url: &str, default_path: &str) -> Result<Self, String> {
        if let Some(rest) = url.strip_prefix("unix:") {
            let (socket, path) = match rest.split_once(":/") {
                Some((s, p)) => (s, format!("/{p}")),
                None => (rest, default_path.to_owned()),
            };
            if socket.is_empty() {
                return Err(format!("`{url}`: unix: needs a socket path"));
            }
            return Ok(Self::Unix {
                socket: socket.into(),
                path,
            });
        }
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(format!(
                "`{url}` is not http://HOST[:PORT][/PATH] or unix:SOCKET[:/PATH]"
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_owned()),
            None => (rest, default_path.to_owned()),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && !p.contains(']') => (
                h,
                p.parse()
                    .map_err(|_| format!("`{url}`: `{p}` is not a port"))?,
            ),
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("`{url}` names no host"));
        }
        Ok(Self::Tcp {
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// The readiness endpoint of the server these settings describe: the
    /// one running this executable (see `running`) if one does, else the
    /// address the settings give (`metrics_bind` if set, else the first
    /// `bind`). With TLS on the `bind` addresses, a plain one: the
    /// `metrics_bind` or an `insecure_bind`.
    pub(crate) fn of(config: &Config) -> Result<Self, String> {
        let path = config
            .ready_path
            .clone()
            .ok_or("ready_path is off; give --url")?;
        let running = crate::running::servers(config.pid.as_deref());
        let tls = config.certfile.is_some();
        let app = if tls {
            &config.insecure_bind
        } else {
            &config.bind
        };
        let plain: Vec<&Bind> = config.metrics_bind.iter().chain(app).collect();
        if tls && plain.is_empty() {
            return Err("the server's addresses serve HTTPS only and healthcheck asks plain HTTP: set --metrics-bind or --insecure-bind, or give --url".to_owned());
        }
        let configured = plain.first().copied();
        let server = match running.as_slice() {
            [] => None,
            [one] => Some(one),
            several => Some(
                several
                    .iter()
                    .find(|r| configured.is_some_and(|b| r.listens.contains(b)))
                    .ok_or_else(|| {
                        let pids: Vec<String> = several.iter().map(|r| r.pid.to_string()).collect();
                        format!(
                            "{} servers of this executable run (pids {}); give --url, or --pid with the pidfile",
                            several.len(),
                            pids.join(", ")
                        )
                    })?,
            ),
        };
        let bind = match server {
            // Its metrics address if it has the one the settings name, else
            // the first it bound.
            Some(r) => match plain.iter().find(|b| r.listens.contains(b)) {
                Some(b) => Some(*b),
                None if tls => configured,
                None => r.listens.first(),
            },
            None => configured,
        };
        Self::at(bind.ok_or("no address to ask; give --url")?, path)
    }

    /// `path` on the server listening at `bind`.
    fn at(bind: &Bind, path: String) -> Result<Self, String> {
        Ok(match bind {
            Bind::Tcp(addr) => {
                // A server listening on every address answers on loopback.
                let ip = match addr.ip() {
                    ip if ip.is_unspecified() && ip.is_ipv4() => Ipv4Addr::LOCALHOST.into(),
                    ip if ip.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
                    ip => ip,
                };
                let host = match ip {
                    std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                    v4 => v4.to_string(),
                };
                Self::Tcp {
                    host,
                    port: addr.port(),
                    path,
                }
            }
            Bind::Unix(socket) => Self::Unix {
                socket: socket.clone(),
                path,
            },
            Bind::Fd(_) => return Err("the server listens on an inherited fd; give --url".into()),
        })
    }
}

/// Asks `target` and returns the status code and the first line of the body.
pub(crate) fn probe(target: &Target, timeout: Duration) -> std::io::Result<(u16, String)> {
    match target {
        Target::Tcp { host, port, path } => {
            let host_only = host.trim_start_matches('[').trim_end_matches(']');
            let addrs: Vec<SocketAddr> = (host_only, *port).to_socket_addrs()?.collect();
            let mut last = std::io::Error::other(format!("{host} has no address"));
            for addr in addrs {
                match TcpStream::connect_timeout(&addr, timeout) {
                    Ok(s) => return exchange(s, &format!("{host}:{port}"), path, timeout),
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
        Target::Unix { socket, path } => {
            let s = UnixStream::connect(socket)?;
            exchange(s, "localhost", path, timeout)
        }
    }
}

/// Streams that take read and write timeouts.
trait Timed: Read + Write {
    fn timeouts(&self, t: Duration) -> std::io::Result<()>;
}

impl Timed for TcpStream {
    fn timeouts(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

impl Timed for UnixStream {
    fn timeouts(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

fn exchange(
    mut s: impl Timed,
    host: &str,
    path: &str,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    s.timeouts(timeout)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ferricorn-healthcheck\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = Vec::new();
    // The answer is short; stop at 64 KiB whatever the server sends.
    s.take(64 * 1024).read_to_end(&mut reply)?;
    let text = String::from_utf8_lossy(&reply);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = |u| Target::parse(u, "/readyz");
        assert_eq!(
            t("http://127.0.0.1:8000"),
            Ok(Target::Tcp {
                host: "127.0.0.1".into(),
                port: 8000,
                path: "/readyz".into()
            })
        );
        assert_eq!(
            t("http://[::1]:9/up"),
            Ok(Target::Tcp {
                host: "[::1]".into(),
                port: 9,
                path: "/up".into()
            })
        );
        assert_eq!(
            t("http://example.com/x"),
            Ok(Target::Tcp {
                host: "example.com".into(),
                port: 80,
                path: "/x".into()
            })
        );
        assert_eq!(
            t("unix:/run/f.sock:/ready"),
            Ok(Target::Unix {
                socket: "/run/f.sock".into(),
                path: "/ready".into()
            })
        );
        assert!(t("https://x").is_err());
        assert!(t("http://:80").is_err());
        assert!(t("http://h:port").is_err());
    }
}
