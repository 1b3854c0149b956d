//! Binding the listening sockets, before any worker exists.
//!
//! Every TCP socket gets `SO_REUSEADDR` and `SO_REUSEPORT` (so a new
//! generation of the server can bind beside this one), the configured
//! backlog, and `O_NONBLOCK`. Because `SO_REUSEPORT` would also let this
//! server silently share a port with another running one, each TCP address is
//! first probed with a plain socket: a port already in use is an error.
//!
//! Sockets can also come already open: `fd://N` adopts descriptor N, and
//! systemd socket activation (`LISTEN_PID` naming this process and
//! `LISTEN_FDS`) hands descriptors 3 and up, which then replace `bind`.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use ferricorn_config::Bind;
use nix::sys::socket::{getsockopt, sockopt};
use socket2::{Domain, SockAddr, Socket, Type};
use tracing::info;

use crate::Error;

/// One bound, listening socket.
#[derive(Debug)]
pub enum Listener {
    /// A TCP socket.
    Tcp(TcpListener),
    /// A unix socket, and the file it lives at if this server created it
    /// (and so removes it at exit).
    Unix(UnixListener, Option<PathBuf>),
}

impl Listener {
    /// `http://HOST:PORT` or `unix:PATH`, with the port the kernel chose.
    pub fn url(&self) -> String {
        match self {
            Self::Tcp(l) => match l.local_addr() {
                Ok(addr) => format!("http://{addr}"),
                Err(_) => "http://?".to_owned(),
            },
            Self::Unix(l, path) => match (path, l.local_addr()) {
                (Some(path), _) => format!("unix:{}", path.display()),
                (None, Ok(addr)) => match addr.as_pathname() {
                    Some(path) => format!("unix:{}", path.display()),
                    None => "unix:(unnamed)".to_owned(),
                },
                (None, Err(_)) => "unix:?".to_owned(),
            },
        }
    }
}

/// The bound sockets. Dropping them in the process that bound them removes
/// the unix socket files; a forked worker's copy leaves them alone.
#[derive(Debug)]
pub struct Listeners {
    list: Vec<Listener>,
    owner: u32,
}

impl Listeners {
    /// The sockets, in the order they were given.
    pub fn iter(&self) -> impl Iterator<Item = &Listener> {
        self.list.iter()
    }

    /// Their file descriptors, for an upgrade's handoff.
    pub fn fds(&self) -> Vec<RawFd> {
        use std::os::fd::AsRawFd;
        self.list
            .iter()
            .map(|l| match l {
                Listener::Tcp(l) => l.as_raw_fd(),
                Listener::Unix(l, _) => l.as_raw_fd(),
            })
            .collect()
    }
}

/// Takes over the sockets an upgrade handed over. A unix socket whose path
/// is one of `binds` is again removed at exit.
pub fn adopt_all(fds: &[RawFd], binds: &[Bind]) -> Result<Listeners, Error> {
    let mut listeners = Listeners {
        list: Vec::new(),
        owner: std::process::id(),
    };
    for fd in fds {
        let adopted = adopt(*fd).map_err(|source| Error::Bind {
            addr: format!("inherited fd {fd}"),
            source,
        })?;
        listeners.list.push(match adopted {
            Listener::Unix(l, None) => {
                let path = l
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(Path::to_path_buf));
                let ours = path.filter(|p| binds.contains(&Bind::Unix(p.clone())));
                Listener::Unix(l, ours)
            }
            other => other,
        });
    }
    Ok(listeners)
}

impl Drop for Listeners {
    fn drop(&mut self) {
        if std::process::id() != self.owner {
            return;
        }
        for l in &self.list {
            if let Listener::Unix(_, Some(path)) = l {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Binds every address, or takes the sockets systemd passed; the first
/// failure names its address.
pub fn bind(addrs: &[Bind], backlog: i32) -> Result<Listeners, Error> {
    let mut listeners = Listeners {
        list: Vec::new(),
        owner: std::process::id(),
    };
    if let Some(fds) = systemd_fds() {
        info!(
            "using {} sockets passed by systemd instead of bind",
            fds.len()
        );
        for fd in fds {
            let adopted = adopt(fd).map_err(|source| Error::Bind {
                addr: format!("systemd socket fd {fd}"),
                source,
            })?;
            listeners.list.push(adopted);
        }
        return Ok(listeners);
    }
    for addr in addrs {
        let bound = match addr {
            Bind::Tcp(a) => bind_tcp(*a, backlog).map(Listener::Tcp),
            Bind::Unix(p) => bind_unix(p, backlog).map(|l| Listener::Unix(l, Some(p.clone()))),
            Bind::Fd(fd) => adopt(*fd),
        };
        listeners.list.push(bound.map_err(|source| Error::Bind {
            addr: addr.to_string(),
            source,
        })?);
    }
    Ok(listeners)
}

/// The descriptors of systemd socket activation, if they are for this
/// process. The variables are removed so workers do not read them again.
fn systemd_fds() -> Option<Vec<RawFd>> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.trim().parse().ok()?;
    let count: RawFd = std::env::var("LISTEN_FDS").ok()?.trim().parse().ok()?;
    if pid != std::process::id() || count <= 0 {
        return None;
    }
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // SAFETY: the supervisor is single-threaded, so no other thread can
        // read the environment while it changes.
        unsafe { std::env::remove_var(name) };
    }
    Some((3..3 + count).collect())
}

/// Takes over an open, listening socket.
fn adopt(fd: RawFd) -> io::Result<Listener> {
    // SAFETY: fcntl(F_GETFD) only reads the descriptor's flags; any integer
    // is a valid argument, and a closed descriptor answers EBADF.
    if unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFD) } < 0 {
        return Err(io::Error::other(format!("descriptor {fd} is not open")));
    }
    // SAFETY: the descriptor is open and was handed to this process to own
    // (by fd://N or by systemd); nothing else in the process uses it.
    let socket = unsafe { Socket::from_raw_fd(fd) };
    if !getsockopt(&socket, sockopt::AcceptConn).map_err(io::Error::from)? {
        return Err(io::Error::other(format!(
            "descriptor {fd} is not a listening socket"
        )));
    }
    socket.set_nonblocking(true)?;
    Ok(match socket.local_addr()?.as_socket() {
        Some(_) => Listener::Tcp(socket.into()),
        None => Listener::Unix(socket.into(), None),
    })
}

fn bind_tcp(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let domain = Domain::for_address(addr);
    // The probe fails with EADDRINUSE if anything listens there already,
    // SO_REUSEPORT or not; it also fixes the port when 0 was asked for.
    let probe = Socket::new(domain, Type::STREAM, None)?;
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into())?;
    let addr = probe
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an IP socket"))?;
    drop(probe);
    let socket = Socket::new(domain, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn bind_unix(path: &Path, backlog: i32) -> io::Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another server is listening on this socket file",
            ));
        }
        // A stale file from a server that did not stop cleanly.
        std::fs::remove_file(path)?;
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_in_use_is_refused_even_with_reuseport() {
        let first = bind(&[Bind::Tcp("127.0.0.1:0".parse().expect("addr"))], 16).expect("bind");
        let Some(Listener::Tcp(l)) = first.iter().next() else {
            panic!("tcp listener")
        };
        let taken = l.local_addr().expect("addr");
        let err = bind(&[Bind::Tcp(taken)], 16).expect_err("in use");
        assert!(
            err.to_string()
                .starts_with(&format!("cannot listen on {taken}: ")),
            "{err}"
        );
    }

    #[test]
    fn fd_binds_adopt_listening_sockets_only() {
        use std::os::fd::IntoRawFd;
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let fd = l.into_raw_fd();
        let adopted = bind(&[Bind::Fd(fd)], 16).expect("adopt");
        assert_eq!(
            adopted.iter().next().map(Listener::url),
            Some(format!("http://{addr}"))
        );
        let not_listening = std::net::UdpSocket::bind("127.0.0.1:0")
            .expect("udp")
            .into_raw_fd();
        let err = bind(&[Bind::Fd(not_listening)], 16).expect_err("udp");
        assert!(err.to_string().contains("not a listening socket"), "{err}");
        let err = bind(&[Bind::Fd(999)], 16).expect_err("closed");
        assert!(err.to_string().contains("not open"), "{err}");
    }

    #[test]
    fn unix_socket_files_are_removed_on_drop_and_stale_ones_replaced() {
        let path = std::env::temp_dir().join(format!("ferricorn-test-{}.sock", std::process::id()));
        std::fs::write(&path, b"stale").expect("write");
        let l = bind(&[Bind::Unix(path.clone())], 16).expect("bind");
        assert!(path.exists());
        assert!(
            bind(&[Bind::Unix(path.clone())], 16).is_err(),
            "live socket is in use"
        );
        drop(l);
        assert!(!path.exists());
    }
}
