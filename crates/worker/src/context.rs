//! What an app knows about the worker it runs in.

use std::net::SocketAddr;

use ferricorn_shm::Shared;

/// The worker an app instance runs in: its slot index, the worker count, its
/// pid, and its blocking pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Context {
    pub(crate) index: usize,
    pub(crate) cell: usize,
    pub(crate) pid: u32,
    pub(crate) shared: Shared,
}

impl Context {
    /// The worker's slot, from 0 to `workers() - 1`. A replacement worker
    /// takes the slot of the one it replaces.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The number of worker slots the server keeps filled.
    pub fn workers(&self) -> usize {
        self.shared.header().desired() as usize
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How many times this worker's slot has had its worker replaced.
    pub fn restarts(&self) -> u64 {
        self.shared.restarts(self.index)
    }

    /// Requests this worker has served so far.
    pub fn requests(&self) -> u64 {
        self.shared.cell(self.cell).map_or(0, |c| c.requests())
    }

    /// Runs `f` on the worker's blocking pool (`--threads` threads), so the
    /// event loop keeps serving while it runs.
    pub async fn blocking<F, R>(&self, f: F) -> Result<R, crate::Error>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| crate::Error::BlockingPanicked)
    }
}

/// The peer of a request's connection, in the request's extensions; `None`
/// for unix sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<SocketAddr>);

/// The longest a request body may go without a new chunk, in the request's
/// extensions (`--header-timeout`): a client that sends its body slowly is
/// cut off after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeout(pub std::time::Duration);
