//! Accepting connections: one loop per listener, all sharing one cap on open
//! connections (`--worker-connections`). At the cap a worker stops accepting,
//! so the kernel hands new connections to the other workers.
//!
//! All workers accept from one shared socket, and whichever process the
//! kernel wakes first takes the connection: left alone, one worker can end
//! up with most of them. So a worker that holds clearly more connections than
//! the least loaded ready worker waits a little before it accepts, letting a
//! less loaded worker that is waiting in accept take the connection. The
//! wait is bounded, so a hung or busy peer costs at most [`MAX_DEFER`].

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ferricorn_config::ProxyProtocol;
use ferricorn_shm::metrics::at;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::spawn_local;
use tracing::{debug, error};

use crate::counted::OpenConnection;
use crate::http::{Accepted, Server, Settings};
use crate::proxy_protocol::Refused;
use crate::tls::Tls;
use crate::{Listener, Service};

/// One step of the wait of a worker ahead of its peers.
const DEFER_STEP: Duration = Duration::from_millis(1);
/// The longest a worker ahead of its peers waits before it accepts anyway.
const MAX_DEFER: Duration = Duration::from_millis(10);

/// Whether a worker with `mine` open connections should let a peer whose
/// least is `least` accept first: it is ahead by more than one connection
/// and an eighth.
pub(crate) fn is_ahead(mine: u32, least: u32) -> bool {
    mine > least + 1 + least / 8
}

/// A listening socket this worker accepts on.
pub(crate) trait Accept {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    async fn accept(&self) -> io::Result<(Self::Io, Option<SocketAddr>)>;

    /// What must happen on a new connection before HTTP, in its own task:
    /// the PROXY header, if configured. Returns the client's address, or
    /// `Err` to close the connection.
    async fn preamble(
        _io: &mut Self::Io,
        peer: Option<SocketAddr>,
        _settings: &Settings,
    ) -> Result<Option<SocketAddr>, Refused> {
        Ok(peer)
    }
}

impl Accept for TcpListener {
    type Io = TcpStream;
    async fn accept(&self) -> io::Result<(TcpStream, Option<SocketAddr>)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, Some(peer)))
    }

    async fn preamble(
        io: &mut TcpStream,
        peer: Option<SocketAddr>,
        settings: &Settings,
    ) -> Result<Option<SocketAddr>, Refused> {
        let (mode, allow, timeout) = &settings.proxy_protocol;
        let Some(peer) = peer else {
            return Ok(peer);
        };
        if *mode == ProxyProtocol::Off {
            return Ok(Some(peer));
        }
        crate::proxy_protocol::accept(io, peer, *mode, allow, *timeout)
            .await
            .map(Some)
    }
}

impl Accept for UnixListener {
    type Io = UnixStream;
    async fn accept(&self) -> io::Result<(UnixStream, Option<SocketAddr>)> {
        let (stream, _) = UnixListener::accept(self).await?;
        Ok((stream, None))
    }
}

/// How one listener's connections are served.
#[derive(Debug, Clone)]
pub(crate) struct Serving {
    /// The metrics address: connections are not counted, balanced, nor
    /// asked for a PROXY header.
    pub admin: bool,
    /// TLS, after the PROXY header if any.
    pub tls: Option<Tls>,
}

/// Starts the accept loop of one inherited listener.
pub(crate) fn start<S: Service>(
    listener: Listener,
    server: &Rc<Server<S>>,
    permits: &Arc<Semaphore>,
    stop: &watch::Receiver<bool>,
    serving: Serving,
) -> io::Result<()> {
    match listener {
        Listener::Tcp(l) => spawn(TcpListener::from_std(l)?, server, permits, stop, serving),
        Listener::Unix(l) => spawn(UnixListener::from_std(l)?, server, permits, stop, serving),
    }
    Ok(())
}

fn spawn<L: Accept + 'static, S: Service>(
    listener: L,
    server: &Rc<Server<S>>,
    permits: &Arc<Semaphore>,
    stop: &watch::Receiver<bool>,
    serving: Serving,
) {
    let Serving { admin, tls } = serving;
    let server = server.clone();
    let (shared, me) = (server.ctx().shared, server.ctx().cell);
    let balance = move || {
        !admin
            && shared
                .least_connections_besides(me)
                .is_some_and(|least| is_ahead(me.connections(), least))
    };
    spawn_local(accept_loop(
        listener,
        permits.clone(),
        stop.clone(),
        balance,
        move |mut io, peer, permit| {
            let open = (permit, (!admin).then(|| OpenConnection::accepted(me)));
            let (server, tls) = (server.clone(), tls.clone());
            spawn_local(async move {
                // A PROXY header comes from the app's load balancer, not
                // from whatever scrapes the metrics address.
                let preamble = match admin {
                    true => Ok(peer),
                    false => L::preamble(&mut io, peer, server.settings()).await,
                };
                let client = match preamble {
                    Ok(client) => client,
                    Err(e) => return debug!("connection from {peer:?} refused: {e}"),
                };
                // `--http` is the app's: the metrics address speaks both,
                // for probes that know only HTTP/1.1.
                let forced = server.settings().h2.filter(|_| !admin);
                let accepted = Accepted {
                    peer: client,
                    admin,
                    h2: forced,
                    ..Accepted::default()
                };
                let Some(tls) = tls else {
                    return server.serve(io, accepted, open).await;
                };
                let counters = server.counters();
                match tls.accept(io).await {
                    Ok(s) => {
                        if let Some(c) = counters {
                            c.add(at::TLS_HANDSHAKES, 1);
                        }
                        let accepted = Accepted {
                            secure: true,
                            subject: s.subject,
                            h2: Some(forced.unwrap_or(s.h2)),
                            ..accepted
                        };
                        server.serve(s.stream, accepted, open).await;
                    }
                    Err(e) => {
                        if let Some(c) = counters {
                            c.add(at::TLS_FAILED, 1);
                        }
                        debug!("TLS connection from {peer:?} closed: {e}");
                    }
                }
            });
        },
    ));
}

/// Errors that concern one connection only: the next accept may succeed.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Accepts until `stop` turns true, handing each connection and its permit
/// to `serve`.
async fn accept_loop<L, F>(
    listener: L,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    balance: impl Fn() -> bool,
    mut serve: F,
) where
    L: Accept,
    F: FnMut(L::Io, Option<SocketAddr>, tokio::sync::OwnedSemaphorePermit),
{
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        let mut waited = Duration::ZERO;
        while waited < MAX_DEFER && balance() {
            tokio::time::sleep(DEFER_STEP).await;
            waited += DEFER_STEP;
        }
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((io, peer)) => serve(io, peer, permit),
            Err(e) if is_connection_error(&e) => debug!("accept: {e}"),
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS, ENOMEM: wait for resources to free up.
                error!("accept failed: {e}; pausing 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_ahead;

    #[test]
    fn ahead_means_clearly_more_than_the_least_loaded() {
        assert!(!is_ahead(0, 0));
        assert!(!is_ahead(1, 0));
        assert!(is_ahead(2, 0));
        assert!(!is_ahead(9, 8));
        assert!(!is_ahead(10, 8));
        assert!(is_ahead(11, 8));
        assert!(!is_ahead(90, 80));
        assert!(is_ahead(92, 80));
    }
}
