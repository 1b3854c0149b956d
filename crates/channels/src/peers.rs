//! The streams between the workers of one host. Each worker listens on a
//! Unix socket in the abstract namespace (no file, gone with the process),
//! named after the server's instance id and the worker's cell; a worker
//! with a message for another connects once and keeps the stream, writing
//! length-prefixed frames (`frame`). A connecting process must be one of
//! this server's workers (its pid, from `SO_PEERCRED`, in a cell), so no
//! other process on the host can inject messages.
//!
//! A publisher never waits on a peer: each stream has a bounded queue of
//! bytes, and what does not fit is dropped and counted as such; a peer that
//! died takes its stream, and what was queued for it, with it.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use ferricorn_shm::{CellState, Shared};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;
use tokio::task::spawn_local;
use tracing::{debug, warn};

use crate::frame::{Frame, HEADER};

/// Bytes queued for one peer at most; more is dropped.
pub(crate) const PEER_QUEUE_BYTES: usize = 16 << 20;

/// The abstract socket name of `cell`'s worker in server `instance`.
fn name(instance: u64, cell: usize) -> String {
    format!("ferricorn/{instance:016x}/{cell}")
}

/// One worker's streams to the others.
#[derive(Debug)]
pub(crate) struct Peers {
    shared: Shared,
    instance: u64,
    links: RefCell<HashMap<usize, Rc<Link>>>,
}

/// The stream to one peer and what waits to be written on it.
#[derive(Debug)]
struct Link {
    pid: i32,
    queue: RefCell<VecDeque<Bytes>>,
    queued: Cell<usize>,
    notify: Notify,
    dead: Cell<bool>,
}

impl Peers {
    pub(crate) fn new(shared: Shared) -> Self {
        Self {
            shared,
            instance: shared.header().instance(),
            links: RefCell::new(HashMap::new()),
        }
    }

    /// Listens as cell `me`, handing every frame a peer sends to `deliver`.
    /// Frames over `max_frame` bytes close the stream they came on.
    pub(crate) fn listen(
        &self,
        me: usize,
        max_frame: usize,
        deliver: impl Fn(Frame) + 'static,
    ) -> io::Result<()> {
        let addr = SocketAddr::from_abstract_name(name(self.instance, me))?;
        let listener = std::os::unix::net::UnixListener::bind_addr(&addr)?;
        listener.set_nonblocking(true)?;
        let listener = UnixListener::from_std(listener)?;
        let deliver = Rc::new(deliver);
        let shared = self.shared;
        spawn_local(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((s, _)) => s,
                    Err(e) => {
                        warn!("channel layer: accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if !from_a_worker(&shared, &stream) {
                    debug!("channel layer: refused a stream from a process that is no worker");
                    continue;
                }
                let deliver = deliver.clone();
                spawn_local(async move {
                    if let Err(e) = read_frames(stream, max_frame, &*deliver).await {
                        debug!("channel layer: a peer's stream ended: {e}");
                    }
                });
            }
        });
        Ok(())
    }

    /// Queues `frame` for `cell`'s worker; `false` when it cannot take it
    /// (no live worker there, or its queue is full).
    pub(crate) fn send(&self, cell: usize, frame: &Bytes) -> bool {
        let Some(c) = self.shared.cell(cell) else {
            return false;
        };
        let pid = c.pid();
        if pid <= 0 || !matches!(c.state(), CellState::Ready | CellState::Draining) {
            return false;
        }
        let link = {
            let mut links = self.links.borrow_mut();
            match links.get(&cell) {
                Some(l) if l.pid == pid && !l.dead.get() => l.clone(),
                _ => {
                    let link = Rc::new(Link {
                        pid,
                        queue: RefCell::new(VecDeque::new()),
                        queued: Cell::new(0),
                        notify: Notify::new(),
                        dead: Cell::new(false),
                    });
                    links.insert(cell, link.clone());
                    spawn_local(write_frames(link.clone(), self.instance, cell));
                    link
                }
            }
        };
        if link.queued.get() + frame.len() > PEER_QUEUE_BYTES {
            return false;
        }
        link.queued.set(link.queued.get() + frame.len());
        link.queue.borrow_mut().push_back(frame.clone());
        link.notify.notify_one();
        true
    }
}

/// Whether the process at the other end is one of this server's workers.
fn from_a_worker(shared: &Shared, stream: &UnixStream) -> bool {
    let Ok(cred) = getsockopt(stream, PeerCredentials) else {
        return false;
    };
    shared.cells().any(|(_, c)| c.pid() == cred.pid())
}

pub(crate) async fn read_frames(
    mut stream: impl tokio::io::AsyncRead + Unpin,
    max_frame: usize,
    deliver: &dyn Fn(Frame),
) -> io::Result<()> {
    loop {
        let len = match stream.read_u32().await {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        if len + 4 > max_frame + HEADER {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "frame too long"));
        }
        let mut body = BytesMut::zeroed(len);
        stream.read_exact(&mut body).await?;
        match Frame::decode(body.freeze()) {
            Ok(frame) => deliver(frame),
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }
}

/// Connects to `cell`'s worker without ever blocking: a peer whose listen
/// queue is full (a hung worker) refuses at once (`EAGAIN`), and the
/// message waits for the next try rather than the event loop for the peer.
fn connect(instance: u64, cell: usize) -> io::Result<UnixStream> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new_abstract(name(instance, cell).as_bytes())?;
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr)?;
    UnixStream::from_std(std::os::unix::net::UnixStream::from(fd))
}

async fn write_frames(link: Rc<Link>, instance: u64, cell: usize) {
    let mut stream = match connect(instance, cell) {
        Ok(s) => s,
        Err(e) => {
            debug!("channel layer: cannot reach a peer: {e}");
            return end(&link);
        }
    };
    loop {
        let next = link.queue.borrow_mut().pop_front();
        match next {
            Some(frame) => {
                link.queued
                    .set(link.queued.get().saturating_sub(frame.len()));
                if let Err(e) = stream.write_all(&frame).await {
                    debug!("channel layer: a peer's stream broke: {e}");
                    return end(&link);
                }
            }
            None => link.notify.notified().await,
        }
    }
}

/// A link that cannot write: what it held is dropped, and the next message
/// for its peer makes a new one.
fn end(link: &Link) {
    link.dead.set(true);
    link.queue.borrow_mut().clear();
    link.queued.set(0);
}
