//! ferricorn's channel layer: WebSocket groups, direct sends and presence
//! across the workers of one host with no broker, and across hosts through
//! Redis.
//!
//! - [`Channels`]: one worker's layer. Its sockets join and leave groups
//!   through their [`Member`]; anything in the worker sends to a group or
//!   to one connection and reads a group's member count.
//! - [`ConnectionId`]: a socket's id, unique across the host's servers and
//!   their restarts; it names the server instance, the worker's cell and
//!   pid, and the socket.
//! - `mailbox`: each member's bounded queue and its overflow policy.
//! - `peers`: the streams between workers (abstract Unix sockets, only this
//!   server's workers may connect).
//! - `frame`: what those streams carry.
//! - `fuzz` (the `fuzz` feature): the properties `fuzz/` checks.
//! - `broker`: across hosts, through Redis: each worker publishes, one
//!   worker per host (the gateway) subscribes to the host's groups and
//!   writes its counts.
//!
//! Routing is by interest: the shared memory lists, for each worker, the
//! groups it has members of and how many (`ferricorn_shm::groups`), so a
//! message goes only to the workers with members of its group, and a
//! group's count is a sum over the workers' tables. Delivery is at most
//! once, in order per publisher and group.

mod broker;
mod frame;
#[cfg(feature = "fuzz")]
#[doc(hidden)]
pub mod fuzz;
mod mailbox;
mod peers;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;
use std::str::FromStr;

use bytes::Bytes;
use ferricorn_shm::groups::{GroupTable, key};
use ferricorn_shm::{CellState, Shared};

pub use mailbox::{Envelope, Mailbox, Next, Overflow};

use ferricorn_shm::WorkerCell;
use ferricorn_shm::metrics::{Dropped, at};
use frame::{Frame, To};
use mailbox::Pushed;
use peers::Peers;

/// A message for a group or a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Text.
    Text(String),
    /// Bytes.
    Binary(Bytes),
}

impl Payload {
    /// Its size in bytes.
    pub fn len(&self) -> usize {
        match self {
            Self::Text(t) => t.len(),
            Self::Binary(b) => b.len(),
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The channel layer's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The Redis that joins this server to others, if any.
    pub redis: Option<Redis>,
    /// Messages queued per member before the overflow policy applies.
    pub capacity: usize,
    /// What a full member queue does.
    pub overflow: Overflow,
    /// The largest message in bytes; larger ones are refused.
    pub max_message: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            capacity: 100,
            overflow: Overflow::Close,
            max_message: 1 << 20,
            redis: None,
        }
    }
}

/// A Redis to span hosts through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redis {
    /// Its URL: `redis://…` or `redis+unix://…`.
    pub url: String,
    /// The URL as logs show it, its password masked.
    pub shown: String,
}

/// Whether `url` is a Redis URL the layer can use; why not.
pub fn check_redis(url: &str) -> Result<(), String> {
    use redis::IntoConnectionInfo;
    url.into_connection_info()
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Over `--channel-max-message`: refused whole, never truncated.
    #[error("a message of {size} bytes is over the channel layer's limit of {max}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The connection is gone, or the id names none.
    #[error("no connection {0}")]
    NoConnection(String),
    /// A group name over 65,535 bytes.
    #[error("a group name of {0} bytes is too long")]
    GroupName(usize),
}

/// A socket's id: the server instance, the worker's cell and pid, and the
/// socket's number in that worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId {
    instance: u64,
    cell: u32,
    pid: i32,
    seq: u64,
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:016x}.{}.{}.{}",
            self.instance, self.cell, self.pid, self.seq
        )
    }
}

impl FromStr for ConnectionId {
    type Err = SendError;

    fn from_str(s: &str) -> Result<Self, SendError> {
        let bad = || SendError::NoConnection(s.chars().take(80).collect());
        let mut parts = s.split('.');
        let mut next = || parts.next().ok_or_else(bad);
        let id = Self {
            instance: u64::from_str_radix(next()?, 16).map_err(|_| bad())?,
            cell: next()?.parse().map_err(|_| bad())?,
            pid: next()?.parse().map_err(|_| bad())?,
            seq: next()?.parse().map_err(|_| bad())?,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(id)
    }
}

/// One worker's channel layer. Cheap to clone; for the worker's thread.
#[derive(Debug, Clone)]
pub struct Channels(Rc<Inner>);

#[derive(Debug)]
struct Inner {
    shared: Shared,
    me: usize,
    pid: i32,
    table: &'static GroupTable,
    /// The worker's cell, whose counters the layer counts into.
    cell: &'static WorkerCell,
    settings: Settings,
    /// Each group's members here, by their sequence number.
    groups: RefCell<HashMap<String, HashMap<u64, Rc<Mailbox>>>>,
    /// Every member here, by its sequence number.
    members: RefCell<HashMap<u64, Rc<Mailbox>>>,
    next_seq: Cell<u64>,
    peers: Peers,
    /// Across hosts, with `--channel-layer redis://…`.
    broker: Option<broker::Broker>,
}

impl Channels {
    /// The layer of the worker in cell `me`; it takes the other workers'
    /// messages once it [listens](Self::listen). `None` past the last cell.
    pub fn new(shared: Shared, me: usize, settings: Settings) -> Option<Self> {
        let table = shared.groups(me)?;
        let cell = shared.cell(me)?;
        let broker = settings.redis.as_ref().and_then(|r| {
            broker::Broker::new(&r.url, r.shown.clone())
                .inspect_err(|e| tracing::error!("channel layer: {}: {e}", r.shown))
                .ok()
        });
        Some(Self(Rc::new(Inner {
            shared,
            me,
            pid: std::process::id() as i32,
            table,
            cell,
            settings,
            groups: RefCell::new(HashMap::new()),
            members: RefCell::new(HashMap::new()),
            next_seq: Cell::new(1),
            peers: Peers::new(shared),
            broker,
        })))
    }

    /// Listens for the other workers' messages. Call once, within the
    /// worker's `LocalSet`, before its sockets join groups.
    pub fn listen(&self) -> std::io::Result<()> {
        let weak = Rc::downgrade(&self.0);
        let max_frame = self.0.settings.max_message + 64 * 1024;
        self.0.peers.listen(self.0.me, max_frame, move |frame| {
            if let Some(inner) = weak.upgrade() {
                Self(inner).deliver(frame);
            }
        })?;
        self.start_broker();
        Ok(())
    }

    fn instance(&self) -> u64 {
        self.0.shared.header().instance()
    }

    /// Sends a group's frame (`encoded` makes it, once) to every other
    /// worker of this host with members of the group with `key`; whether
    /// there was one.
    fn to_workers(&self, key: u64, mut encoded: impl FnMut() -> Bytes) -> bool {
        let mut reached = false;
        for (cell, c) in self.0.shared.cells() {
            let wants = || self.0.shared.groups(cell).is_some_and(|t| t.wants(key));
            if cell == self.0.me || c.state() == CellState::Empty || !wants() {
                continue;
            }
            reached = true;
            self.forward(cell, &encoded());
        }
        reached
    }

    /// Whether the worker in `cell` is the live process `pid`.
    fn is_live(&self, cell: usize, pid: i32) -> bool {
        self.0
            .shared
            .cell(cell)
            .is_some_and(|c| c.pid() == pid && c.state() != CellState::Empty)
    }

    /// Sends an encoded frame to the worker in `cell`, counting a drop.
    fn forward(&self, cell: usize, frame: &Bytes) {
        if !self.0.peers.send(cell, frame) {
            self.0.cell.counters.count_dropped(Dropped::Peer);
        }
    }

    /// A new member (one per socket), with its own id and mailbox.
    pub fn member(&self) -> Member {
        let seq = self.0.next_seq.get();
        self.0.next_seq.set(seq + 1);
        let mailbox = Mailbox::new(self.0.settings.capacity, self.0.settings.overflow);
        self.0.members.borrow_mut().insert(seq, mailbox.clone());
        Member {
            layer: self.clone(),
            seq,
            mailbox,
            groups: RefCell::new(Vec::new()),
        }
    }

    fn id_of(&self, seq: u64) -> ConnectionId {
        ConnectionId {
            instance: self.instance(),
            cell: self.0.me as u32,
            pid: self.0.pid,
            seq,
        }
    }

    fn check(&self, payload: &Payload) -> Result<(), SendError> {
        let max = self.0.settings.max_message;
        if payload.len() > max {
            self.0.cell.counters.count_dropped(Dropped::TooLarge);
            return Err(SendError::TooLarge {
                size: payload.len(),
                max,
            });
        }
        Ok(())
    }

    /// Sends `payload` to every member of `group` on every worker of this
    /// host: written here to this worker's members, and once to each other
    /// worker that has members of it; with a broker, once to Redis for the
    /// other hosts.
    pub fn send_group(&self, group: &str, payload: Payload) -> Result<(), SendError> {
        self.check(&payload)?;
        if group.len() > usize::from(u16::MAX) {
            return Err(SendError::GroupName(group.len()));
        }
        let counters = &self.0.cell.counters;
        counters.add(at::CHANNEL_PUBLISHED, 1);
        let published = ferricorn_shm::now_us();
        let k = key(group);
        let mut frame = None;
        let mut encoded = || {
            frame
                .get_or_insert_with(|| {
                    Frame {
                        to: To::Group(group.to_owned()),
                        published,
                        payload: payload.clone(),
                    }
                    .encode()
                })
                .clone()
        };
        let mut reached = self.to_workers(k, &mut encoded);
        // Other hosts first: the connection's task is woken before this
        // worker's members' writers, so the copy for Redis does not wait
        // behind the local fan-out.
        let here = self
            .0
            .groups
            .borrow()
            .get(group)
            .is_some_and(|m| !m.is_empty());
        reached |= here;
        match self.0.broker.is_some().then(&mut encoded) {
            // Whether another host had members is known once Redis answers.
            Some(frame) => self.publish_group(k, &frame, reached),
            None if !reached => counters.count_dropped(Dropped::NoMembers),
            None => {}
        }
        if here {
            self.deliver_group(group, Rc::new(Envelope { payload, published }));
        }
        Ok(())
    }

    /// Sends `payload` to the connection `to`, on whichever worker (and,
    /// with a broker, whichever host) holds it.
    pub fn send_to(&self, to: &ConnectionId, payload: Payload) -> Result<(), SendError> {
        self.check(&payload)?;
        let gone = || SendError::NoConnection(to.to_string());
        let counters = &self.0.cell.counters;
        let published = ferricorn_shm::now_us();
        if to.instance != self.instance() {
            let frame = Frame {
                to: To::Direct(to.seq),
                published,
                payload,
            }
            .encode();
            if !self.publish_direct(to.instance, to.cell, to.pid, &frame) {
                return Err(gone());
            }
            counters.add(at::CHANNEL_PUBLISHED, 1);
            return Ok(());
        }
        let cell = to.cell as usize;
        if cell == self.0.me && to.pid == self.0.pid {
            let member = self.0.members.borrow().get(&to.seq).cloned();
            let mailbox = member.ok_or_else(gone)?;
            counters.add(at::CHANNEL_PUBLISHED, 1);
            self.push(&mailbox, &Rc::new(Envelope { payload, published }));
            return Ok(());
        }
        if !self.is_live(cell, to.pid) {
            return Err(gone());
        }
        counters.add(at::CHANNEL_PUBLISHED, 1);
        let frame = Frame {
            to: To::Direct(to.seq),
            published,
            payload,
        }
        .encode();
        self.forward(cell, &frame);
        Ok(())
    }

    /// The largest message it takes, in bytes (`--channel-max-message`).
    pub fn max_message(&self) -> usize {
        self.0.settings.max_message
    }

    /// The members `group` has over the whole deployment: this host's, and
    /// with a broker every other live host's (as their gateways last wrote
    /// them, within milliseconds of a join). While Redis cannot answer, this
    /// host's alone.
    pub async fn count(&self, group: &str) -> u64 {
        let here = self.host_count(group);
        match self.remote_count(key(group)).await {
            Some(there) => here + there,
            None => here,
        }
    }

    /// The members `group` has on this host, read from the shared memory
    /// without waiting.
    pub fn host_count(&self, group: &str) -> u64 {
        let k = key(group);
        self.0
            .shared
            .cells()
            .filter(|(_, c)| c.state() != CellState::Empty)
            .filter_map(|(id, _)| self.0.shared.groups(id))
            .map(|t| u64::from(t.count(k)))
            .sum()
    }

    fn deliver(&self, frame: Frame) {
        let envelope = Rc::new(Envelope {
            payload: frame.payload,
            published: frame.published,
        });
        match frame.to {
            To::Group(group) => {
                self.deliver_group(&group, envelope);
            }
            To::Direct(seq) => {
                let member = self.0.members.borrow().get(&seq).cloned();
                if let Some(m) = member {
                    self.push(&m, &envelope);
                }
            }
        }
    }

    /// Queues `envelope` for every member of `group` here; how many.
    fn deliver_group(&self, group: &str, envelope: Rc<Envelope>) -> usize {
        let groups = self.0.groups.borrow();
        let Some(members) = groups.get(group) else {
            return 0;
        };
        for mailbox in members.values() {
            self.push(mailbox, &envelope);
        }
        members.len()
    }

    /// Queues `envelope` for one member, counting what became of it.
    fn push(&self, mailbox: &Mailbox, envelope: &Rc<Envelope>) {
        let counters = &self.0.cell.counters;
        match mailbox.push(envelope.clone()) {
            Pushed::Queued => counters.add(at::CHANNEL_DELIVERED, 1),
            Pushed::DroppedOldest => {
                counters.add(at::CHANNEL_DELIVERED, 1);
                counters.count_dropped(Dropped::Overflow);
            }
            Pushed::Closing => counters.count_dropped(Dropped::Overflow),
        }
    }

    fn join(&self, group: &str, seq: u64, mailbox: &Rc<Mailbox>) -> bool {
        let mut groups = self.0.groups.borrow_mut();
        let members = groups.entry(group.to_owned()).or_default();
        if members.insert(seq, mailbox.clone()).is_some() {
            return false;
        }
        self.0.table.join(key(group));
        true
    }

    fn leave(&self, group: &str, seq: u64) -> bool {
        let mut groups = self.0.groups.borrow_mut();
        let Some(members) = groups.get_mut(group) else {
            return false;
        };
        if members.remove(&seq).is_none() {
            return false;
        }
        if members.is_empty() {
            groups.remove(group);
        }
        self.0.table.leave(key(group));
        true
    }
}

/// A group's messages for the app to take one by one (the app path), where
/// a joined socket has the server write them itself (the fast path). It is
/// a member of the group while it lives, so the group's count includes it;
/// its queue has the same capacity and overflow policy as a socket's.
#[derive(Debug)]
pub struct Subscription {
    member: Member,
}

impl Subscription {
    /// The next message; `None` once its queue overflowed under
    /// `--channel-overflow close`.
    pub async fn recv(&mut self) -> Option<Payload> {
        match self.member.mailbox.next().await {
            Next::Message(envelope) => {
                Some(Rc::try_unwrap(envelope).map_or_else(|e| e.payload.clone(), |e| e.payload))
            }
            Next::Overflowed => None,
        }
    }

    /// Its id, as a member of the group.
    pub fn id(&self) -> ConnectionId {
        self.member.id()
    }
}

impl Channels {
    /// Subscribes to `group`'s messages: see [`Subscription`].
    pub fn subscribe(&self, group: &str) -> Subscription {
        let member = self.member();
        member.join(group);
        Subscription { member }
    }
}

/// One socket's place in the layer: its id, its mailbox, its groups. It
/// leaves every group when dropped (its socket closed).
#[derive(Debug)]
pub struct Member {
    layer: Channels,
    seq: u64,
    mailbox: Rc<Mailbox>,
    groups: RefCell<Vec<String>>,
}

impl Member {
    /// Its id.
    pub fn id(&self) -> ConnectionId {
        self.layer.id_of(self.seq)
    }

    /// Joins `group`: its messages now reach this member's mailbox, and the
    /// group counts it. Joining twice is joining once.
    pub fn join(&self, group: &str) {
        if self.layer.join(group, self.seq, &self.mailbox) {
            self.groups.borrow_mut().push(group.to_owned());
        }
    }

    /// Leaves `group`.
    pub fn leave(&self, group: &str) {
        if self.layer.leave(group, self.seq) {
            self.groups.borrow_mut().retain(|g| g != group);
        }
    }

    /// Its mailbox, which the socket's writer drains.
    pub fn mailbox(&self) -> &Rc<Mailbox> {
        &self.mailbox
    }

    /// The layer it belongs to.
    pub fn layer(&self) -> &Channels {
        &self.layer
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        for group in self.groups.take() {
            self.layer.leave(&group, self.seq);
        }
        self.layer.0.members.borrow_mut().remove(&self.seq);
    }
}

#[cfg(test)]
mod tests;
