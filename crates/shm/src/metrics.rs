//! The counters behind `/metrics`, kept in the shared region.
//!
//! Each worker counts into its own cell's [`Counters`] with relaxed atomic
//! adds: no lock, no syscall, no allocation per request. When the supervisor
//! reaps a worker it folds the cell's counters into its slot's totals
//! ([`Shared::release`](crate::Shared::release)), so a slot's series never go
//! backwards when its worker is replaced; a seqlock (`fold_seq`) lets readers
//! see each fold whole.
//!
//! Apps register their own counters, gauges and histograms ([`AppKind`]) in a
//! shared table; each worker writes the values in its own cell, and a reader
//! sums them across workers.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::Text;
use std::time::Duration;

/// Request methods counted apart; anything else counts as `other`.
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "other",
];

/// Status classes, `1xx` to `5xx`.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Upper bounds, in seconds, of the request duration histogram's buckets
/// (then `+Inf`).
pub const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Why the channel layer dropped a message, as counted in
/// `ferricorn_channel_messages_dropped_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Dropped {
    /// A member's queue was full.
    Overflow = 0,
    /// Over `--channel-max-message`.
    TooLarge = 1,
    /// Its group had no member anywhere.
    NoMembers = 2,
    /// Another worker could not take it (its queue full, or it is gone).
    Peer = 3,
    /// It was for other hosts and Redis could not take it: down, or this
    /// worker's queue for it full.
    BrokerDown = 4,
}

/// The `reason` label of each [`Dropped`], in its order.
pub const DROP_REASONS: [&str; 5] = ["overflow", "too_large", "no_members", "peer", "broker_down"];

/// Upper bounds, in seconds, of the channel layer's fan-out histogram (from
/// publish to the write to a member's socket), then `+Inf`.
pub const FANOUT_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Where each counter lives in [`Counters`].
pub mod at {
    use super::{BUCKETS, CLASSES, DROP_REASONS, FANOUT_BUCKETS, METHODS};

    /// Requests by method and status class: `REQUESTS + method * 5 + class`.
    pub const REQUESTS: usize = 0;
    /// Request durations, one count per bucket (not cumulative), then `+Inf`.
    pub const DURATION: usize = REQUESTS + METHODS.len() * CLASSES.len();
    /// The sum of request durations, in microseconds.
    pub const DURATION_SUM_US: usize = DURATION + BUCKETS.len() + 1;
    /// Bytes read from clients' sockets.
    pub const RECEIVED_BYTES: usize = DURATION_SUM_US + 1;
    /// Bytes written to clients' sockets.
    pub const SENT_BYTES: usize = RECEIVED_BYTES + 1;
    /// Connections accepted.
    pub const ACCEPTED: usize = SENT_BYTES + 1;
    /// WebSockets accepted.
    pub const WS_ACCEPTED: usize = ACCEPTED + 1;
    /// WebSocket messages received.
    pub const WS_RECEIVED: usize = WS_ACCEPTED + 1;
    /// WebSocket messages sent.
    pub const WS_SENT: usize = WS_RECEIVED + 1;
    /// Channel layer messages sent to a group or a connection.
    pub const CHANNEL_PUBLISHED: usize = WS_SENT + 1;
    /// Channel layer messages queued for a member's socket.
    pub const CHANNEL_DELIVERED: usize = CHANNEL_PUBLISHED + 1;
    /// Channel layer messages dropped, by reason (see [`DROP_REASONS`]).
    pub const CHANNEL_DROPPED: usize = CHANNEL_DELIVERED + 1;
    /// Fan-out times, one count per bucket, then `+Inf`.
    pub const CHANNEL_FANOUT: usize = CHANNEL_DROPPED + DROP_REASONS.len();
    /// The sum of fan-out times, in microseconds.
    pub const CHANNEL_FANOUT_SUM_US: usize = CHANNEL_FANOUT + FANOUT_BUCKETS.len() + 1;
    /// Requests over HTTP/1.x.
    pub const HTTP1_REQUESTS: usize = CHANNEL_FANOUT_SUM_US + 1;
    /// Requests (streams) over HTTP/2.
    pub const HTTP2_REQUESTS: usize = HTTP1_REQUESTS + 1;
    /// Connections served with HTTP/2.
    pub const HTTP2_CONNECTIONS: usize = HTTP2_REQUESTS + 1;
    /// TLS handshakes completed.
    pub const TLS_HANDSHAKES: usize = HTTP2_CONNECTIONS + 1;
    /// Connections to a TLS port closed before their handshake completed.
    pub const TLS_FAILED: usize = TLS_HANDSHAKES + 1;
    /// How many counters there are.
    pub const LEN: usize = TLS_FAILED + 1;
}

/// A plain copy of [`Counters`], summed over any number of them.
pub type Snapshot = [u64; at::LEN];

/// One worker's (or one slot's) monotonic counters.
#[derive(Debug)]
#[repr(C)]
pub struct Counters([AtomicU64; at::LEN]);

impl Counters {
    /// Adds `n` to the counter at `i` (see [`at`]).
    #[inline]
    pub fn add(&self, i: usize, n: u64) {
        if let Some(c) = self.0.get(i) {
            c.fetch_add(n, Relaxed);
        }
    }

    /// Counts one finished request: its method (index in [`METHODS`]), its
    /// status, and how long it took.
    #[inline]
    pub fn observe(&self, method: usize, status: u16, took: Duration) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.add(at::REQUESTS + method.min(METHODS.len() - 1) * 5 + class, 1);
        let secs = took.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.add(at::DURATION + bucket, 1);
        self.add(at::DURATION_SUM_US, took.as_micros() as u64);
    }

    /// Counts one channel message's fan-out time, from publish to write.
    pub fn observe_fanout(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let bucket = FANOUT_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(FANOUT_BUCKETS.len());
        self.add(at::CHANNEL_FANOUT + bucket, 1);
        self.add(at::CHANNEL_FANOUT_SUM_US, took.as_micros() as u64);
    }

    /// Counts a message the channel layer dropped.
    pub fn count_dropped(&self, reason: Dropped) {
        self.add(at::CHANNEL_DROPPED + reason as usize, 1);
    }

    /// Adds every counter into `into`.
    pub fn sum_into(&self, into: &mut Snapshot) {
        for (to, c) in into.iter_mut().zip(&self.0) {
            *to += c.load(Relaxed);
        }
    }

    /// Moves every counter into `totals`, leaving zeros.
    pub(crate) fn fold_into(&self, totals: &Self) {
        for (c, t) in self.0.iter().zip(&totals.0) {
            let v = c.swap(0, Relaxed);
            if v != 0 {
                t.fetch_add(v, Relaxed);
            }
        }
    }
}

/// The index in [`METHODS`] of a method name.
#[inline]
pub fn method_index(method: &str) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len() - 1)
}

/// Why a worker exited, as counted in `ferricorn_worker_exits_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Exit {
    /// It died unasked.
    Crash,
    /// It was killed for a missed heartbeat or boot timeout.
    Timeout,
    /// It was replaced after max-requests.
    MaxRequests,
    /// It was replaced for using more than max-worker-memory.
    Memory,
    /// It was replaced by a reload.
    Reload,
    /// It was retired by TTOU.
    ScaleDown,
    /// It was replaced by an upgraded binary's worker.
    Upgrade,
    /// The server stopped.
    Shutdown,
    /// Its app failed its lifespan startup.
    BootFailure,
}

impl Exit {
    /// Every reason, in label order.
    pub const ALL: [Self; 9] = [
        Self::Crash,
        Self::Timeout,
        Self::MaxRequests,
        Self::Memory,
        Self::Reload,
        Self::ScaleDown,
        Self::Upgrade,
        Self::Shutdown,
        Self::BootFailure,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Crash => "crash",
            Self::Timeout => "timeout",
            Self::MaxRequests => "max_requests",
            Self::Memory => "memory",
            Self::Reload => "reload",
            Self::ScaleDown => "scale_down",
            Self::Upgrade => "upgrade",
            Self::Shutdown => "shutdown",
            Self::BootFailure => "boot_failure",
        }
    }
}

/// What the supervisor counts.
#[derive(Debug)]
#[repr(C)]
pub struct Events {
    exits: [AtomicU64; Exit::ALL.len()],
    reloads: AtomicU64,
}

impl Events {
    /// Counts a worker exit.
    pub fn count_exit(&self, why: Exit) {
        self.exits[why as usize].fetch_add(1, Relaxed);
    }

    /// Worker exits for `why`.
    pub fn exits(&self, why: Exit) -> u64 {
        self.exits[why as usize].load(Relaxed)
    }

    /// Counts a reload (SIGHUP) that was carried out.
    pub fn count_reload(&self) {
        self.reloads.fetch_add(1, Relaxed);
    }

    /// Reloads carried out.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Relaxed)
    }
}

/// The most series apps can register.
pub const APP_SERIES: usize = 128;
/// Values (counters, gauges, histogram buckets) each worker holds for apps.
pub const APP_VALUES: usize = 1024;
/// Bytes of a series' name.
pub const APP_NAME_LEN: usize = 96;
/// Bytes of a series' labels, as rendered (`a="x",b="y"`).
pub const APP_LABELS_LEN: usize = 160;
/// Bytes of a series' help text.
pub const APP_HELP_LEN: usize = 160;
/// The most buckets of an app histogram, besides `+Inf`.
pub const APP_BUCKETS: usize = 16;

/// What an app series is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum AppKind {
    /// A monotonic count: one value.
    Counter = 1,
    /// A value that goes up and down (an `f64`'s bits); summed across the
    /// live workers.
    Gauge = 2,
    /// Observations in buckets: one count per bucket, `+Inf`, the sum (an
    /// `f64`'s bits).
    Histogram = 3,
}

impl AppKind {
    fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Counter),
            2 => Some(Self::Gauge),
            3 => Some(Self::Histogram),
            _ => None,
        }
    }

    /// Values a series of this kind takes, given its buckets.
    pub fn values(self, buckets: usize) -> usize {
        match self {
            Self::Counter | Self::Gauge => 1,
            Self::Histogram => buckets + 2,
        }
    }

    /// Whether value `i` of such a series holds an `f64`'s bits (a gauge,
    /// a histogram's sum) rather than a count.
    pub fn is_f64(self, i: usize, buckets: usize) -> bool {
        match self {
            Self::Counter => false,
            Self::Gauge => true,
            Self::Histogram => i == buckets + 1,
        }
    }
}

/// One registered app series.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct AppEntry {
    /// 0 free, 1 published.
    state: AtomicU32,
    kind: AtomicU32,
    offset: AtomicU32,
    buckets: AtomicU32,
    name: Text<APP_NAME_LEN>,
    labels: Text<APP_LABELS_LEN>,
    help: Text<APP_HELP_LEN>,
    bounds: [AtomicU64; APP_BUCKETS],
}

/// The app series table and the counts of workers that exited.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct AppTable {
    /// The registration lock: 0, or the pid of the holder.
    lock: AtomicU32,
    /// The first value not yet given to a series.
    next_value: AtomicU32,
    used: AtomicU32,
    entries: [AppEntry; APP_SERIES],
    /// Counter and histogram values of workers that exited.
    pub(crate) retired: [AtomicU64; APP_VALUES],
}

/// A registered app series, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSeries {
    /// The metric name.
    pub name: String,
    /// The labels, rendered (`a="x",b="y"`), or empty.
    pub labels: String,
    /// The help text.
    pub help: String,
    /// What it is.
    pub kind: AppKind,
    /// Its first value in each worker's app values.
    pub offset: usize,
    /// A histogram's bucket bounds.
    pub bounds: Vec<f64>,
}

/// Why a series could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    /// A name, labels or help text is longer than the table holds.
    TooLong,
    /// The name is registered with another kind, help text or buckets.
    Mismatch,
    /// The table or the values are full.
    Full,
}

impl AppTable {
    /// Finds the series, or adds it; returns its first value's offset.
    pub(crate) fn register(&self, new: &AppSeries) -> Result<usize, RegisterError> {
        if new.name.len() > APP_NAME_LEN
            || new.labels.len() > APP_LABELS_LEN
            || new.help.len() > APP_HELP_LEN
            || new.bounds.len() > APP_BUCKETS
        {
            return Err(RegisterError::TooLong);
        }
        let _lock = self.lock();
        let mut found = None;
        for s in self.series() {
            if s.name != new.name {
                continue;
            }
            if s.kind != new.kind || s.help != new.help || s.bounds != new.bounds {
                return Err(RegisterError::Mismatch);
            }
            if s.labels == new.labels {
                found = Some(s.offset);
            }
        }
        if let Some(offset) = found {
            return Ok(offset);
        }
        let used = self.used.load(Relaxed) as usize;
        let values = new.kind.values(new.bounds.len());
        let offset = self.next_value.load(Relaxed) as usize;
        if used >= APP_SERIES || offset + values > APP_VALUES {
            return Err(RegisterError::Full);
        }
        let entry = &self.entries[used];
        entry.kind.store(new.kind as u32, Relaxed);
        entry.offset.store(offset as u32, Relaxed);
        entry.buckets.store(new.bounds.len() as u32, Relaxed);
        entry.name.set(&new.name);
        entry.labels.set(&new.labels);
        entry.help.set(&new.help);
        for (b, v) in entry.bounds.iter().zip(&new.bounds) {
            b.store(v.to_bits(), Relaxed);
        }
        entry.state.store(1, std::sync::atomic::Ordering::Release);
        self.next_value.store((offset + values) as u32, Relaxed);
        self.used
            .store(used as u32 + 1, std::sync::atomic::Ordering::Release);
        Ok(offset)
    }

    /// Every published series, in registration order.
    pub(crate) fn series(&self) -> Vec<AppSeries> {
        self.published()
            .filter_map(|s| {
                let buckets = (s.buckets.load(Relaxed) as usize).min(APP_BUCKETS);
                Some(AppSeries {
                    name: s.name.get(),
                    labels: s.labels.get(),
                    help: s.help.get(),
                    kind: AppKind::from_u32(s.kind.load(Relaxed))?,
                    offset: s.offset.load(Relaxed) as usize,
                    bounds: s.bounds[..buckets]
                        .iter()
                        .map(|b| f64::from_bits(b.load(Relaxed)))
                        .collect(),
                })
            })
            .collect()
    }

    fn published(&self) -> impl Iterator<Item = &AppEntry> {
        let used = (self.used.load(std::sync::atomic::Ordering::Acquire) as usize).min(APP_SERIES);
        self.entries[..used]
            .iter()
            .filter(|s| s.state.load(std::sync::atomic::Ordering::Acquire) == 1)
    }

    /// Moves a worker's counter and histogram values into `retired`; a
    /// gauge's value leaves with its worker. Reads only each series' layout.
    pub(crate) fn fold(&self, values: &[AtomicU64; APP_VALUES]) {
        for s in self.published() {
            let Some(kind) = AppKind::from_u32(s.kind.load(Relaxed)) else {
                continue;
            };
            let (offset, buckets) = (
                s.offset.load(Relaxed) as usize,
                s.buckets.load(Relaxed) as usize,
            );
            let n = kind.values(buckets);
            if offset + n > APP_VALUES {
                continue; // Never registered so; a corrupt entry must not panic the supervisor.
            }
            let both = values[offset..offset + n]
                .iter()
                .zip(&self.retired[offset..offset + n]);
            for (i, (value, retired)) in both.enumerate() {
                let v = value.swap(0, Relaxed);
                if kind == AppKind::Gauge {
                    continue;
                }
                if kind.is_f64(i, buckets) {
                    add_f64(retired, f64::from_bits(v));
                } else {
                    retired.fetch_add(v, Relaxed);
                }
            }
        }
    }

    /// Takes the registration lock. Registration is rare (app startup), so
    /// a spin will do; a holder that died with it is taken over after a
    /// second.
    fn lock(&self) -> Lock<'_> {
        let me = std::process::id();
        let since = crate::now_ms();
        loop {
            match self
                .lock
                .compare_exchange(0, me, std::sync::atomic::Ordering::Acquire, Relaxed)
            {
                Ok(_) => break,
                Err(holder) if crate::now_ms() - since > 1000 => {
                    if self
                        .lock
                        .compare_exchange(holder, me, std::sync::atomic::Ordering::Acquire, Relaxed)
                        .is_ok()
                    {
                        break;
                    }
                }
                Err(_) => std::thread::yield_now(),
            }
        }
        Lock(&self.lock)
    }
}

struct Lock<'a>(&'a AtomicU32);

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        self.0.store(0, std::sync::atomic::Ordering::Release);
    }
}

/// Adds to an `f64` kept as bits in an atomic.
pub fn add_f64(cell: &AtomicU64, v: f64) {
    let _ = cell.fetch_update(Relaxed, Relaxed, |bits| {
        Some((f64::from_bits(bits) + v).to_bits())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_lands_in_its_method_class_and_bucket() {
        let c: Counters = Counters(std::array::from_fn(|_| AtomicU64::new(0)));
        c.observe(method_index("POST"), 201, Duration::from_millis(3));
        c.observe(method_index("BREW"), 599, Duration::from_secs(60));
        let mut s = [0; at::LEN];
        c.sum_into(&mut s);
        assert_eq!(s[at::REQUESTS + 2 * 5 + 1], 1, "POST 2xx");
        assert_eq!(s[at::REQUESTS + 9 * 5 + 4], 1, "other 5xx");
        assert_eq!(s[at::DURATION + 2], 1, "3 ms is in the 5 ms bucket");
        assert_eq!(s[at::DURATION + BUCKETS.len()], 1, "60 s is only in +Inf");
        assert_eq!(s[at::DURATION_SUM_US], 60_003_000);
    }
}
