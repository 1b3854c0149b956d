//! Across hosts: Redis (`--channel-layer redis://…`).
//!
//! - Every worker **publishes** over a connection of its own: a group's
//!   message goes to the group's channel, a direct send to the target host's
//!   channel, each as a [`Wire`] naming the publishing server. A worker
//!   never waits on Redis: messages queue (at most [`OUTBOX_BYTES`]) for the
//!   connection's task, and while Redis is down they are dropped and counted
//!   (`broker_down`).
//! - One worker per host, the **gateway** (elected through the shared
//!   memory), holds the host's subscription: it subscribes to the channels
//!   of the groups the host's workers have members of (read from their
//!   tables, so a message leaves Redis once per host with members), and
//!   forwards what arrives to those workers over the same streams as a
//!   local publish. It writes the host's count of each group into Redis and
//!   renews the host's heartbeat key, so counts cover every live host.
//! - Redis down is a degraded mode: local delivery goes on, the gateway logs
//!   the loss once and retries with backoff, then resubscribes and writes
//!   its counts again.
//!
//! The names, with `<db>` the URL's database (pub/sub channels span every
//! database of a server, so the number is in the channel names too):
//!
//! ```text
//! ferricorn:<db>:g:<key>           channel: a group's messages (key: 16 hex digits)
//! ferricorn:<db>:h:<instance>      channel: direct sends to one server's sockets
//! ferricorn:<db>:p:<key>           hash: each server's member count of a group
//! ferricorn:<db>:alive:<instance>  string: a live server's heartbeat, PX 5000
//! ferricorn:<db>:groups:<instance> set: the groups a server wrote counts for, PX 1 h
//! ```

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferricorn_shm::metrics::Dropped;
use ferricorn_shm::{Broker as State, CellState, Gateway};
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, IntoConnectionInfo, ProtocolVersion, PushKind, RedisError,
    Value, cmd, pipe,
};
use tokio::sync::Notify;
use tracing::{debug, error, info, warn};

use crate::Channels;
use crate::frame::{Frame, To, Wire};

/// The most bytes a worker queues for Redis; past it messages are dropped.
pub(crate) const OUTBOX_BYTES: usize = 16 << 20;

/// How often the gateway renews its host's heartbeat key.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long a host's heartbeat key lives: a host that stops renewing it
/// stops being counted this long after its last renewal.
pub(crate) const HOST_TTL: Duration = Duration::from_secs(5);

/// How long the set of groups a host wrote counts for outlives its last
/// heartbeat.
const GROUPS_TTL: Duration = Duration::from_secs(3600);

/// How often the gateway looks at the host's tables (reading a counter per
/// worker when nothing changed).
const LOOK_EVERY: Duration = Duration::from_millis(10);

/// How often each worker checks that the host has a gateway.
const ELECT_EVERY: Duration = Duration::from_millis(200);

/// An idle publishing connection is checked this often.
const IDLE_PING: Duration = Duration::from_secs(1);

/// Connecting and each reply give up after this long.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Reconnection backoff: from the first to the last, doubling.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// Channels per subscribe pipeline.
const SUBSCRIBE_BATCH: usize = 512;

/// Messages per publish pipeline.
const PUBLISH_BATCH: usize = 256;

/// A group's count over the other live servers; it forgets the counts of
/// servers whose heartbeat key is gone.
const COUNT_SCRIPT: &str = r"
local n = 0
local t = redis.call('HGETALL', KEYS[1])
for i = 1, #t, 2 do
  if t[i] ~= ARGV[1] then
    if redis.call('EXISTS', ARGV[2] .. t[i]) == 1 then
      n = n + tonumber(t[i + 1])
    else
      redis.call('HDEL', KEYS[1], t[i])
    end
  end
end
return n
";

/// The names in Redis (see the module's documentation).
#[derive(Debug)]
struct Names {
    prefix: String,
}

impl Names {
    fn group(&self, key: u64) -> String {
        format!("{}g:{key:016x}", self.prefix)
    }

    fn host(&self, instance: u64) -> String {
        format!("{}h:{instance:016x}", self.prefix)
    }

    fn presence(&self, key: u64) -> String {
        format!("{}p:{key:016x}", self.prefix)
    }

    fn alive_prefix(&self) -> String {
        format!("{}alive:", self.prefix)
    }

    fn alive(&self, instance: u64) -> String {
        format!("{}alive:{instance:016x}", self.prefix)
    }

    fn groups_of(&self, instance: u64) -> String {
        format!("{}groups:{instance:016x}", self.prefix)
    }
}

/// A message waiting for Redis.
#[derive(Debug)]
struct Outgoing {
    channel: String,
    wire: Bytes,
    /// Whether it reached a member on this host already: if no other host
    /// takes it either, it had no members anywhere.
    reached: bool,
}

/// One worker's side of the broker.
pub(crate) struct Broker {
    client: Client,
    /// The URL as logs show it (password masked).
    shown: String,
    names: Names,
    /// Whether the publishing connection was lost: messages are dropped and
    /// counted until it is back (before the first try, they queue).
    down: Cell<bool>,
    /// The publishing connection while it is up, for counts.
    conn: RefCell<Option<MultiplexedConnection>>,
    outbox: RefCell<VecDeque<Outgoing>>,
    queued: Cell<usize>,
    wake: Notify,
    /// Whether the server has sharded pub/sub (Redis 7).
    sharded: Cell<bool>,
    /// Whether this worker runs the gateway.
    gateway: Cell<bool>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("url", &self.shown)
            .field("down", &self.down.get())
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// The broker at `url`, not connected yet; `shown` is the URL for logs.
    pub(crate) fn new(url: &str, shown: String) -> Result<Self, RedisError> {
        let mut info = url.into_connection_info()?;
        info.redis.protocol = ProtocolVersion::RESP3;
        let prefix = format!("ferricorn:{}:", info.redis.db);
        Ok(Self {
            client: Client::open(info)?,
            shown,
            names: Names { prefix },
            down: Cell::new(false),
            conn: RefCell::new(None),
            outbox: RefCell::new(VecDeque::new()),
            queued: Cell::new(0),
            wake: Notify::new(),
            sharded: Cell::new(false),
            gateway: Cell::new(false),
        })
    }

    /// A pub/sub command: its sharded form where the server has one.
    fn verb(&self, plain: &'static str, sharded: &'static str) -> &'static str {
        if self.sharded.get() { sharded } else { plain }
    }

    /// Queues `wire` for `channel`; false when it was dropped (Redis down,
    /// or the queue full).
    fn queue(&self, out: Outgoing) -> bool {
        let len = out.wire.len();
        if self.down.get() || self.queued.get() + len > OUTBOX_BYTES {
            return false;
        }
        self.queued.set(self.queued.get() + len);
        self.outbox.borrow_mut().push_back(out);
        self.wake.notify_one();
        true
    }

    async fn connect(
        &self,
        config: AsyncConnectionConfig,
    ) -> Result<MultiplexedConnection, RedisError> {
        // Without TCP_NODELAY a publish waits behind the last one's ACK
        // (Nagle's algorithm), adding up to 40 ms at low rates.
        let config = config
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT)
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let server: String = cmd("INFO").arg("server").query_async(&mut conn).await?;
        let major = server
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .and_then(|v| v.split('.').next()?.trim().parse::<u32>().ok())
            .unwrap_or(0);
        self.sharded.set(major >= 7);
        Ok(conn)
    }
}

impl Channels {
    fn broker(&self) -> &Broker {
        self.0.broker.as_ref().expect("called with a broker only")
    }

    /// Starts this worker's publishing task and its part in electing the
    /// gateway. Within the worker's `LocalSet`.
    pub(crate) fn start_broker(&self) {
        if self.0.broker.is_none() {
            return;
        }
        let layer = self.clone();
        tokio::task::spawn_local(async move { layer.publisher().await });
        let layer = self.clone();
        tokio::task::spawn_local(async move { layer.elect().await });
    }

    /// Sends `frame` to the other hosts' members of the group with `key`;
    /// `reached` says whether it reached members here.
    pub(crate) fn publish_group(&self, key: u64, frame: &Bytes, reached: bool) {
        let Some(broker) = &self.0.broker else { return };
        let out = Outgoing {
            channel: broker.names.group(key),
            wire: Wire::encode(self.instance(), 0, 0, frame),
            reached,
        };
        if !broker.queue(out) {
            self.0.cell.counters.count_dropped(Dropped::BrokerDown);
        }
    }

    /// Sends `frame` to the socket in `cell` and `pid` of server `instance`.
    /// False without a broker.
    pub(crate) fn publish_direct(&self, instance: u64, cell: u32, pid: i32, frame: &Bytes) -> bool {
        let Some(broker) = &self.0.broker else {
            return false;
        };
        let out = Outgoing {
            channel: broker.names.host(instance),
            wire: Wire::encode(self.instance(), cell, pid, frame),
            reached: false,
        };
        if !broker.queue(out) {
            self.0.cell.counters.count_dropped(Dropped::BrokerDown);
        }
        true
    }

    /// The members `key`'s group has on the other live hosts; `None` while
    /// Redis cannot answer.
    pub(crate) async fn remote_count(&self, key: u64) -> Option<u64> {
        let broker = self.0.broker.as_ref()?;
        let mut conn = broker.conn.borrow().clone()?;
        let mut eval = cmd("EVAL");
        eval.arg(COUNT_SCRIPT)
            .arg(1)
            .arg(broker.names.presence(key))
            .arg(format!("{:016x}", self.instance()))
            .arg(broker.names.alive_prefix());
        let ask = eval.query_async::<u64>(&mut conn);
        match tokio::time::timeout(TIMEOUT, ask).await {
            Ok(Ok(n)) => Some(n),
            Ok(Err(e)) => {
                debug!("channel layer: a count from Redis failed: {e}");
                None
            }
            Err(_) => None,
        }
    }

    /// Publishes what the worker queued, over its own connection, for as
    /// long as the worker lives; reconnects with backoff.
    async fn publisher(&self) {
        let broker = self.broker();
        let mut backoff = BACKOFF.0;
        loop {
            match broker.connect(AsyncConnectionConfig::new()).await {
                Ok(mut conn) => {
                    *broker.conn.borrow_mut() = Some(conn.clone());
                    broker.down.set(false);
                    backoff = BACKOFF.0;
                    let e = self.publish_queued(&mut conn).await;
                    debug!("channel layer: publishing to Redis failed: {e}");
                }
                Err(e) => debug!("channel layer: cannot connect to Redis to publish: {e}"),
            }
            broker.conn.borrow_mut().take();
            broker.down.set(true);
            let lost = broker.outbox.borrow_mut().drain(..).count();
            broker.queued.set(0);
            self.count_broker_down(lost);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF.1);
        }
    }

    /// Sends the queue in pipelines until the connection fails.
    async fn publish_queued(&self, conn: &mut MultiplexedConnection) -> RedisError {
        let broker = self.broker();
        loop {
            while broker.outbox.borrow().is_empty() {
                let woken = tokio::time::timeout(IDLE_PING, broker.wake.notified()).await;
                if woken.is_err()
                    && let Err(e) = cmd("PING").exec_async(conn).await
                {
                    // Found out while idle: counts go back to this host's
                    // alone until it is back.
                    return e;
                }
            }
            let batch: Vec<Outgoing> = {
                let mut outbox = broker.outbox.borrow_mut();
                let n = outbox.len().min(PUBLISH_BATCH);
                outbox.drain(..n).collect()
            };
            let bytes: usize = batch.iter().map(|o| o.wire.len()).sum();
            broker.queued.set(broker.queued.get().saturating_sub(bytes));
            let mut p = pipe();
            for out in &batch {
                p.cmd(broker.verb("PUBLISH", "SPUBLISH"))
                    .arg(&out.channel)
                    .arg(&out.wire[..]);
            }
            // Each reply: how many subscribers (hosts) took it.
            match p.query_async::<Vec<u64>>(conn).await {
                Ok(taken) => {
                    for (out, n) in batch.iter().zip(taken) {
                        if n == 0 && !out.reached {
                            self.0.cell.counters.count_dropped(Dropped::NoMembers);
                        }
                    }
                }
                Err(e) => {
                    self.count_broker_down(batch.len());
                    return e;
                }
            }
        }
    }

    fn count_broker_down(&self, n: usize) {
        for _ in 0..n {
            self.0.cell.counters.count_dropped(Dropped::BrokerDown);
        }
    }

    fn me(&self) -> Gateway {
        Gateway {
            cell: self.0.me,
            pid: self.0.pid,
        }
    }

    /// Whether `g` can serve as the gateway: its worker lives and is ready
    /// (not gone, not draining).
    fn serving(&self, g: Gateway) -> bool {
        self.0
            .shared
            .cell(g.cell)
            .is_some_and(|c| c.pid() == g.pid && c.state() == CellState::Ready)
    }

    /// Whether this worker is (still) the host's gateway: elected, and ready.
    fn is_gateway(&self) -> bool {
        self.0.shared.header().gateway() == Some(self.me()) && self.serving(self.me())
    }

    /// Keeps the host supplied with a gateway: when the elected one's worker
    /// is gone or draining, the first ready worker to see it takes over.
    async fn elect(&self) {
        let broker = self.broker();
        let header = self.0.shared.header();
        let mut tick = tokio::time::interval(ELECT_EVERY);
        loop {
            tick.tick().await;
            if broker.gateway.get() || self.0.cell.state() != CellState::Ready {
                continue;
            }
            // A word naming this worker while it runs no gateway (it was
            // elected before it could serve) is its own to take up.
            let current = header.gateway();
            if current != Some(self.me())
                && (current.is_some_and(|g| self.serving(g))
                    || !header.swap_gateway(current, self.me()))
            {
                continue;
            }
            broker.gateway.set(true);
            let layer = self.clone();
            tokio::task::spawn_local(async move {
                layer.run_gateway().await;
                layer.broker().gateway.set(false);
            });
        }
    }

    /// The gateway: connects, serves, and reconnects with backoff until
    /// this worker is no longer the gateway.
    async fn run_gateway(&self) {
        let broker = self.broker();
        let header = self.0.shared.header();
        debug!("channel layer: this worker is the host's gateway to Redis");
        let mut backoff = BACKOFF.0;
        while self.is_gateway() {
            let started = Instant::now();
            let e = match self.serve_gateway().await {
                Ok(()) => break,
                Err(e) => e,
            };
            if header.set_broker(State::Down) != State::Down {
                error!(
                    "channel layer: Redis at {} is unavailable ({e}); messages stay on this host, those for other hosts are dropped and counted, until it answers again",
                    broker.shown
                );
            }
            if started.elapsed() > BACKOFF.1 * 4 {
                backoff = BACKOFF.0;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF.1);
        }
        debug!("channel layer: this worker is no longer the host's gateway");
    }

    /// One connection's worth of gateway: `Ok` once this worker is no
    /// longer the gateway, the error when the connection fails.
    async fn serve_gateway(&self) -> Result<(), RedisError> {
        let broker = self.broker();
        let header = self.0.shared.header();
        let (tx, mut pushed) = tokio::sync::mpsc::unbounded_channel();
        let mut conn = broker
            .connect(AsyncConnectionConfig::new().set_push_sender(tx))
            .await?;
        cmd(broker.verb("SUBSCRIBE", "SSUBSCRIBE"))
            .arg(broker.names.host(self.instance()))
            .exec_async(&mut conn)
            .await?;
        // What this server had counted before (another gateway, or this one
        // before Redis went away): each is written again or taken back.
        let before: Vec<String> = cmd("SMEMBERS")
            .arg(broker.names.groups_of(self.instance()))
            .query_async(&mut conn)
            .await?;
        let mut state = GatewayState {
            written: before
                .iter()
                .filter_map(|k| u64::from_str_radix(k, 16).ok())
                .map(|k| (k, u32::MAX))
                .collect(),
            ..GatewayState::default()
        };
        self.sync(&mut conn, &mut state, true).await?;
        match header.set_broker(State::Up) {
            State::Down => {
                header.count_broker_reconnect();
                info!(
                    "channel layer: Redis at {} answers again; {} groups resubscribed",
                    broker.shown,
                    state.subscribed.len()
                );
            }
            State::Unknown => info!("channel layer: connected to Redis at {}", broker.shown),
            State::Up => {}
        }
        let mut tick = tokio::time::interval(LOOK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beat = Instant::now();
        loop {
            tokio::select! {
                push = pushed.recv() => {
                    let Some(push) = push else {
                        return Err(RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
                    };
                    match push.kind {
                        PushKind::Message | PushKind::SMessage => {
                            if let Some(Value::BulkString(data)) = push.data.into_iter().nth(1) {
                                self.received(Bytes::from(data));
                            }
                        }
                        PushKind::Disconnection => {
                            return Err(RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
                        }
                        _ => {}
                    }
                }
                _ = tick.tick() => {
                    if !self.is_gateway() {
                        return Ok(());
                    }
                    let due = beat.elapsed() >= HEARTBEAT;
                    if due {
                        beat = Instant::now();
                    }
                    if due || state.seen != self.fingerprint() {
                        self.sync(&mut conn, &mut state, due).await?;
                    }
                }
            }
        }
    }

    /// Each worker's pid, state and table changes: equal twice, the host's
    /// groups did not change in between.
    fn fingerprint(&self) -> Vec<(i32, u32, u64)> {
        self.0
            .shared
            .cells()
            .map(|(id, c)| {
                let changes = self.0.shared.groups(id).map_or(0, |t| t.changes());
                (c.pid(), c.state() as u32, changes)
            })
            .collect()
    }

    /// The groups this host's workers have members of, with their counts.
    fn host_groups(&self, state: &mut GatewayState) -> HashMap<u64, u32> {
        let mut groups = HashMap::new();
        for (id, cell) in self.0.shared.cells() {
            if cell.state() == CellState::Empty {
                continue;
            }
            let Some(table) = self.0.shared.groups(id) else {
                continue;
            };
            if table.overflowed() && !state.warned_overflow {
                state.warned_overflow = true;
                warn!(
                    "channel layer: worker {} has members of more than 4096 groups; messages from other hosts reach only the groups in its table",
                    cell.slot()
                );
            }
            for (key, n) in table.groups() {
                *groups.entry(key).or_insert(0) += n;
            }
        }
        groups
    }

    /// Brings Redis in line with the host's groups: subscribes to new ones,
    /// then writes the counts that changed (so a host is counted only once
    /// it receives the group), then unsubscribes from the groups left; with
    /// `beat`, renews the heartbeat.
    async fn sync(
        &self,
        conn: &mut MultiplexedConnection,
        state: &mut GatewayState,
        beat: bool,
    ) -> Result<(), RedisError> {
        let broker = self.broker();
        let names = &broker.names;
        let me = format!("{:016x}", self.instance());
        state.seen = self.fingerprint();
        let wanted = self.host_groups(state);
        let new: Vec<u64> = wanted
            .keys()
            .filter(|k| !state.subscribed.contains(k))
            .copied()
            .collect();
        self.each_group(conn, broker.verb("SUBSCRIBE", "SSUBSCRIBE"), &new)
            .await?;
        state.subscribed.extend(&new);
        let mut p = pipe();
        let mut writes = 0;
        for (key, n) in &wanted {
            if state.written.get(key) != Some(n) {
                p.cmd("HSET")
                    .arg(names.presence(*key))
                    .arg(&me)
                    .arg(*n)
                    .ignore();
                p.cmd("SADD")
                    .arg(names.groups_of(self.instance()))
                    .arg(format!("{key:016x}"))
                    .ignore();
                writes += 1;
            }
        }
        let gone: Vec<u64> = state
            .written
            .keys()
            .filter(|k| !wanted.contains_key(k))
            .copied()
            .collect();
        for key in &gone {
            p.cmd("HDEL").arg(names.presence(*key)).arg(&me).ignore();
            p.cmd("SREM")
                .arg(names.groups_of(self.instance()))
                .arg(format!("{key:016x}"))
                .ignore();
            writes += 1;
        }
        if beat {
            p.cmd("SET")
                .arg(names.alive(self.instance()))
                .arg(std::process::id())
                .arg("PX")
                .arg(HOST_TTL.as_millis() as u64)
                .ignore();
            // Kept an hour past the last beat: a new gateway (or this one,
            // back from an outage) reads it to take back stale counts.
            p.cmd("PEXPIRE")
                .arg(names.groups_of(self.instance()))
                .arg(GROUPS_TTL.as_millis() as u64)
                .ignore();
            writes += 1;
        }
        if writes > 0 {
            p.exec_async(conn).await?;
        }
        state.written = wanted.clone();
        let left: Vec<u64> = state
            .subscribed
            .iter()
            .filter(|k| !wanted.contains_key(k))
            .copied()
            .collect();
        self.each_group(conn, broker.verb("UNSUBSCRIBE", "SUNSUBSCRIBE"), &left)
            .await?;
        for key in &left {
            state.subscribed.remove(key);
        }
        Ok(())
    }

    /// Sends `command` (a subscribe or unsubscribe) for each group's channel,
    /// one channel per command (one reply each), in pipelines.
    async fn each_group(
        &self,
        conn: &mut MultiplexedConnection,
        command: &str,
        keys: &[u64],
    ) -> Result<(), RedisError> {
        let names = &self.broker().names;
        for chunk in keys.chunks(SUBSCRIBE_BATCH) {
            let mut p = pipe();
            for key in chunk {
                p.cmd(command).arg(names.group(*key)).ignore();
            }
            p.exec_async(conn).await?;
        }
        Ok(())
    }

    /// A message from Redis, for this host's workers: forwarded to each
    /// worker with members of its group, or to the one holding its target.
    fn received(&self, bytes: Bytes) {
        if !self.is_gateway() {
            return;
        }
        let Ok(wire) = Wire::decode(bytes) else {
            debug!("channel layer: a malformed message from Redis was dropped");
            return;
        };
        if wire.origin == self.instance() && wire.pid == 0 {
            // This host's own group message: its workers have it already.
            return;
        }
        let Ok(mut frame) = Frame::decode(wire.body) else {
            debug!("channel layer: a malformed message from Redis was dropped");
            return;
        };
        // The publisher's clock is another host's: fan-out time counts from here.
        frame.published = ferricorn_shm::now_us();
        match &frame.to {
            To::Group(group) => {
                let key = ferricorn_shm::groups::key(group);
                let mut encoded = None;
                self.to_workers(key, || {
                    encoded.get_or_insert_with(|| frame.encode()).clone()
                });
                self.deliver(frame);
            }
            To::Direct(_) => {
                let cell = wire.cell as usize;
                if cell == self.0.me && wire.pid == self.0.pid {
                    self.deliver(frame);
                } else if self.is_live(cell, wire.pid) {
                    self.forward(cell, &frame.encode());
                }
            }
        }
    }
}

/// What the gateway knows of Redis on one connection.
#[derive(Debug, Default)]
struct GatewayState {
    /// The group channels subscribed to.
    subscribed: HashSet<u64>,
    /// The counts written for this host (`u32::MAX`: an old one to check).
    written: HashMap<u64, u32>,
    /// The tables' fingerprint at the last sync.
    seen: Vec<(i32, u32, u64)>,
    warned_overflow: bool,
}
