//! The head deadline of every connection: a client gets `--header-timeout`
//! (or the keep-alive time, if shorter) from the moment the server waits
//! for a request head (the connection is new, or the last response is
//! done) to the moment the head is in; otherwise the connection closes.
//! This is what hyper's `header_read_timeout` does, without a timer per
//! request: a connection notes when its wait began (a store), and one task
//! per worker sweeps the connections every [`TICK`], waking those whose
//! time is up so that their next read fails. With no connection open, the
//! sweep sleeps until one opens.
//!
//! The same registry tells every connection when the worker stops (see
//! [`Deadlines::stop_all`]): a flag each connection reads as it is polled,
//! where a channel would cost a lock per poll.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::task::Context;
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How often the deadlines are checked: their precision.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// The time a client has for each request head, from the moment the
/// server waits for it. The wait between keep-alive requests counts, so the
/// shorter of the two bounds applies.
pub(crate) fn head_wait(config: &ferricorn_config::Config) -> Duration {
    match config.keep_alive {
        Some(k) => k.min(config.header_timeout),
        None => config.header_timeout,
    }
}

/// No wait under way.
const NOT_WAITING: u64 = u64::MAX;

/// One connection's deadline state, shared by its IO and its requests.
#[derive(Debug)]
pub(crate) struct Deadline {
    /// When the wait for a head began (ms on the worker's coarse clock), or
    /// [`NOT_WAITING`].
    since: AtomicU64,
    expired: AtomicBool,
    /// Requests whose head is in and whose response is not done: HTTP/1.1
    /// has one at a time, HTTP/2 one per open stream. The wait for a head
    /// begins when it falls to 0.
    in_flight: AtomicU64,
    /// The connection became a WebSocket (or another upgrade): no more heads.
    upgraded: AtomicBool,
    waker: AtomicWaker,
    common: Arc<Common>,
}

/// What the deadlines of one worker share.
#[derive(Debug, Default)]
struct Common {
    /// The coarse clock, in ms since the sweep began.
    clock: AtomicU64,
    /// The worker is stopping.
    stopping: AtomicBool,
}

impl Deadline {
    /// A request's response is done (or its request was dropped): once no
    /// other is in flight, the wait for the next head begins now.
    pub(crate) fn done(&self) {
        let left = self.in_flight.fetch_sub(1, Relaxed).saturating_sub(1);
        if left == 0 && !self.upgraded.load(Relaxed) {
            self.since.store(self.common.clock.load(Relaxed), Relaxed);
        }
    }

    /// A head is in: no wait under way until its response is
    /// [`done`](Self::done).
    pub(crate) fn stop(&self) {
        self.since.store(NOT_WAITING, Relaxed);
        self.expired.store(false, Relaxed);
        self.in_flight.fetch_add(1, Relaxed);
    }

    /// The connection is upgraded: it never waits for a head again.
    pub(crate) fn upgrade(&self) {
        self.upgraded.store(true, Relaxed);
        self.since.store(NOT_WAITING, Relaxed);
    }

    /// Whether the time for a head is up; if not and a wait is under way,
    /// the task reading is woken when it is.
    pub(crate) fn poll_expired(&self, cx: &mut Context<'_>) -> bool {
        if self.since.load(Relaxed) == NOT_WAITING {
            return false;
        }
        if self.expired.load(Relaxed) {
            return true;
        }
        self.waker.register(cx.waker());
        false
    }

    /// Whether the worker is stopping; if not, the task polling is woken
    /// when it does.
    pub(crate) fn poll_stopping(&self, cx: &mut Context<'_>) -> bool {
        if self.common.stopping.load(Relaxed) {
            return true;
        }
        self.waker.register(cx.waker());
        false
    }
}

/// A request in flight for as long as it lives: an HTTP/2 stream carrying
/// a WebSocket keeps its connection from waiting for a head (and from
/// closing idle).
#[derive(Debug)]
pub(crate) struct Hold(Arc<Deadline>);

impl Hold {
    pub(crate) fn new(deadline: Arc<Deadline>) -> Self {
        deadline.stop();
        Self(deadline)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.0.done();
    }
}

/// Every connection of one worker, and the coarse clock they read.
#[derive(Debug)]
pub(crate) struct Deadlines {
    limit_ms: u64,
    common: Arc<Common>,
    conns: RefCell<Vec<Weak<Deadline>>>,
    /// What the clock counts from.
    start: Instant,
    /// No connection is open: the sweep sleeps until one opens, so an idle
    /// worker is not woken ten times a second.
    idle: Cell<bool>,
    resume: Notify,
}

impl Deadlines {
    pub(crate) fn new(limit: Duration) -> Self {
        Self {
            limit_ms: limit.as_millis().try_into().unwrap_or(u64::MAX),
            common: Arc::default(),
            conns: RefCell::new(Vec::new()),
            start: Instant::now(),
            idle: Cell::new(false),
            resume: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start
            .elapsed()
            .as_millis()
            .try_into()
            .unwrap_or(u64::MAX)
    }

    /// A new connection, already waiting for its first head.
    pub(crate) fn open(&self) -> Arc<Deadline> {
        if self.idle.replace(false) {
            // The clock stood still while the sweep slept.
            self.common.clock.store(self.now_ms(), Relaxed);
            self.resume.notify_one();
        }
        let d = Arc::new(Deadline {
            since: AtomicU64::new(self.common.clock.load(Relaxed)),
            expired: AtomicBool::new(false),
            in_flight: AtomicU64::new(0),
            upgraded: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            common: self.common.clone(),
        });
        self.conns.borrow_mut().push(Arc::downgrade(&d));
        d
    }

    /// The worker is stopping: wakes every connection, whose
    /// [`poll_stopping`](Deadline::poll_stopping) now says so, as it does
    /// for connections opened later.
    pub(crate) fn stop_all(&self) {
        self.common.stopping.store(true, Relaxed);
        for d in self.conns.borrow().iter().filter_map(Weak::upgrade) {
            d.waker.wake();
        }
    }

    /// Advances the clock every [`TICK`] and expires the waits that ran
    /// out; sleeps while no connection is open.
    pub(crate) async fn sweep(&self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = self.now_ms();
            self.common.clock.store(now, Relaxed);
            self.conns.borrow_mut().retain(|w| {
                let Some(d) = w.upgrade() else { return false };
                let since = d.since.load(Relaxed);
                if since != NOT_WAITING
                    && now.saturating_sub(since) >= self.limit_ms
                    && !d.expired.swap(true, Relaxed)
                {
                    d.waker.wake();
                }
                true
            });
            if self.conns.borrow().is_empty() {
                self.idle.set(true);
                self.resume.notified().await;
                tick.reset();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::task::Poll;

    /// Runs `test` on a local task set with tokio's clock paused.
    fn on_paused_clock(test: impl std::future::Future<Output = ()>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        tokio::task::LocalSet::new().block_on(&rt, test);
    }

    #[test]
    fn a_wait_expires_and_wakes_a_head_does_not() {
        on_paused_clock(async {
            let all = std::rc::Rc::new(Deadlines::new(Duration::from_millis(300)));
            let (waiting, served, upgraded) = (all.open(), all.open(), all.open());
            served.stop();
            upgraded.stop();
            upgraded.upgrade();
            upgraded.done();
            let sweeper = all.clone();
            tokio::task::spawn_local(async move { sweeper.sweep().await });
            // Waits until the time is up: woken by the sweep, not polled in a loop.
            let woke = poll_fn(|cx| match waiting.poll_expired(cx) {
                true => Poll::Ready(Instant::now()),
                false => Poll::Pending,
            })
            .await;
            assert!(woke.elapsed() < TICK, "woken at once");
            let mut cx = Context::from_waker(std::task::Waker::noop());
            assert!(!served.poll_expired(&mut cx));
            assert!(!upgraded.poll_expired(&mut cx));
            // Two requests in flight (HTTP/2 streams): the end of one
            // starts nothing.
            served.stop();
            served.done();
            tokio::time::sleep(Duration::from_millis(450)).await;
            assert!(!served.poll_expired(&mut cx));
            // A wait that begins when the last is done has its own full time.
            served.done();
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(!served.poll_expired(&mut cx));
            tokio::time::sleep(Duration::from_millis(250)).await;
            assert!(served.poll_expired(&mut cx));
        });
    }

    #[test]
    fn the_sweep_sleeps_while_no_connection_is_open() {
        on_paused_clock(async {
            let all = std::rc::Rc::new(Deadlines::new(Duration::from_millis(300)));
            let sweeper = all.clone();
            tokio::task::spawn_local(async move { sweeper.sweep().await });
            tokio::time::sleep(TICK).await;
            assert!(all.idle.get(), "asleep with no connection");
            let clock = all.common.clock.load(Relaxed);
            tokio::time::sleep(Duration::from_secs(10)).await;
            assert_eq!(all.common.clock.load(Relaxed), clock, "not woken");
            // A connection opened after the sleep has its full time.
            let waiting = all.open();
            assert!(!all.idle.get());
            let mut cx = Context::from_waker(std::task::Waker::noop());
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(!waiting.poll_expired(&mut cx));
            tokio::time::sleep(Duration::from_millis(250)).await;
            assert!(waiting.poll_expired(&mut cx));
            // Once it closes, the sweep sleeps again.
            drop(waiting);
            tokio::time::sleep(TICK * 2).await;
            assert!(all.idle.get());
        });
    }
}
