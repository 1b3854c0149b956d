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
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};
use tracing::{debug, error};

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
        _config: &ferricorn_config::Config,
    ) -> Result<Option<SocketAddr>, crate::proxy_protocol::Refused> {
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
        config: &ferricorn_config::Config,
    ) -> Result<Option<SocketAddr>, crate::proxy_protocol::Refused> {
        let (Some(peer), mode) = (peer, config.proxy_protocol) else {
            return Ok(peer);
        };
        if mode == ferricorn_config::ProxyProtocol::Off {
            return Ok(Some(peer));
        }
        let (allow, timeout) = (&config.proxy_allow_from, config.header_timeout);
        crate::proxy_protocol::accept(io, peer, mode, allow, timeout)
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
pub(crate) async fn accept_loop<L, F>(
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
