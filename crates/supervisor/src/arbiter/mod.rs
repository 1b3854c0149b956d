//! The supervisor's loop: keep every slot filled, replace workers before
//! retiring them, turn signals into one [`Command`] each, and stop when told.
//!
//! Every worker has a role. The **current** worker of a slot serves it. A
//! **successor** boots beside it when the slot's worker is to be replaced
//! (reload, max-requests, memory); only once the successor is ready is the
//! current worker told to drain, becoming **retiring**. So capacity never
//! drops below the configured count for a planned replacement. A
//! **previous** worker belongs to the image an upgrade replaced.
//!
//! - this file: the table, the loop, the commands.
//! - `phase`: starting, serving, upgrading, delaying, stopping, and the one
//!   function that moves between them.
//! - `slots`: filling slots, successors, reload, scaling, backoff.
//! - `checks`: boot timeout, heartbeat, max-requests, max-worker-memory.
//! - `reap`: what an exit means, and what follows from it.
//! - `upgrade`: SIGUSR2, and finishing or failing an upgrade.

mod checks;
mod phase;
mod reap;
mod slots;
mod upgrade;

use std::time::{Duration, Instant};

use ferricorn_config::{Config, MAX_WORKERS};
use ferricorn_shm::metrics::Exit;
use ferricorn_shm::{CellState, Shared};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tracing::{error, info, warn};

use self::phase::{Event, Phase};

/// `1 worker`, `2 workers`.
pub(crate) fn count_workers(n: usize) -> String {
    match n {
        1 => "1 worker".to_owned(),
        n => format!("{n} workers"),
    }
}
use crate::signals::Signals;
use crate::upgrade::Exec;
use crate::watch::Watch;
use crate::{Error, Host, pidfile};

/// A worker that dies sooner than this after its fork counts as a boot crash.
const CRASH_WINDOW: Duration = Duration::from_secs(5);
/// The first backoff delay after a boot crash; it doubles with each one.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// The longest backoff delay.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// The wait before a slot's next worker after `n` failures in a row: none
/// after the first, then `BACKOFF_BASE` × 2^(n-1), at most `BACKOFF_CAP`.
fn backoff(n: u32) -> Duration {
    match n {
        0 | 1 => Duration::ZERO,
        n => BACKOFF_BASE
            .saturating_mul(1 << (n - 1).min(20))
            .min(BACKOFF_CAP),
    }
}
/// How long workers get to exit on a quick stop before SIGKILL.
const QUICK_TIMEOUT: Duration = Duration::from_secs(2);
/// Time after graceful-timeout for the workers' lifespan shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// Time between SIGABRT and SIGKILL for a hung worker.
const ABORT_GRACE: Duration = Duration::from_secs(1);
/// The loop wakes at least this often.
const TICK: Duration = Duration::from_secs(1);
/// How often the loop looks while workers boot.
const BOOT_TICK: Duration = Duration::from_millis(20);
/// Memory checks in a row above the limit before a worker is replaced.
const MEMORY_STRIKES: u32 = 2;

/// What a signal asks of the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    /// Collect exited workers (SIGCHLD).
    Reap,
    /// Stop the server: gracefully (SIGTERM) or quickly (SIGINT, SIGQUIT).
    Stop { graceful: bool },
    /// Re-read the settings and replace every worker (SIGHUP).
    Reload,
    /// One worker more (SIGTTIN) or fewer (SIGTTOU).
    Scale(i8),
    /// Re-execute the binary, keeping the pid and the sockets (SIGUSR2).
    Upgrade,
    /// Reopen log files here and in every worker (SIGUSR1).
    ReopenLogs,
    /// A signal whose action is not built yet.
    Unsupported(Signal),
}

impl Command {
    fn from_signal(signal: Signal) -> Self {
        match signal {
            Signal::SIGCHLD => Self::Reap,
            Signal::SIGTERM => Self::Stop { graceful: true },
            Signal::SIGINT | Signal::SIGQUIT => Self::Stop { graceful: false },
            Signal::SIGHUP => Self::Reload,
            Signal::SIGTTIN => Self::Scale(1),
            Signal::SIGTTOU => Self::Scale(-1),
            Signal::SIGUSR2 => Self::Upgrade,
            Signal::SIGUSR1 => Self::ReopenLogs,
            other => Self::Unsupported(other),
        }
    }
}

/// Why a worker is replaced or retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    Reload,
    MaxRequests,
    Memory,
    ScaleDown,
}

impl Reason {
    /// How a worker retired for this reason is counted in the metrics.
    fn exit(self) -> Exit {
        match self {
            Self::Reload => Exit::Reload,
            Self::MaxRequests => Exit::MaxRequests,
            Self::Memory => Exit::Memory,
            Self::ScaleDown => Exit::ScaleDown,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Reload => "reload",
            Self::MaxRequests => "max-requests",
            Self::Memory => "max-worker-memory",
            Self::ScaleDown => "scale-down",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Current,
    Successor(Reason),
    /// Told to drain and exit, and why.
    Retiring(Exit),
    /// A worker of the image an upgrade replaced; it serves until this
    /// image's workers are ready.
    Previous,
}

#[derive(Debug)]
struct Worker {
    pid: Pid,
    slot: usize,
    cell_id: usize,
    role: Role,
    generation: u64,
    spawned: Instant,
    /// When SIGABRT was sent for a missed heartbeat.
    aborted: Option<Instant>,
    /// SIGKILL was sent (hung, or boot timeout).
    killed: bool,
    memory_strikes: u32,
}

impl Worker {
    /// Tells the worker to drain and exit; `why` is how its exit counts.
    fn retire(&mut self, why: Exit) {
        self.role = Role::Retiring(why);
        let _ = kill(self.pid, Signal::SIGTERM);
    }
}

/// The supervisor's view of one slot.
#[derive(Debug, Default)]
struct Slot {
    /// Boot crashes in a row.
    crashes: u32,
    /// Workers in a row replaced for max-worker-memory within
    /// `CRASH_WINDOW` of their fork: a fresh worker needs more than the
    /// limit, and replacing it at once would fork without end.
    memory_churn: u32,
    /// When to fork the slot's next worker, if it waits for one.
    due: Option<Instant>,
    /// A replacement to retry at `due`.
    pending: Option<Reason>,
}

/// The running supervisor.
pub(crate) struct Arbiter<H> {
    config: Config,
    /// The settings before the last reload, restored if the reload's
    /// workers fail to boot.
    previous: Option<Config>,
    generation: u64,
    shared: Shared,
    signals: Signals,
    host: H,
    workers: Vec<Worker>,
    slots: Vec<Slot>,
    desired: usize,
    phase: Phase,
    pidfile: Option<pidfile::Pidfile>,
    failure: Option<Error>,
    /// The listening sockets, for an upgrade's handoff.
    listener_fds: Vec<std::os::fd::RawFd>,
    /// How to re-execute this binary, captured at start.
    exec: Option<Exec>,
    /// `--reload`: the files whose change re-executes it.
    watch: Option<Watch>,
}

impl<H: Host> Arbiter<H> {
    pub(crate) fn new(
        config: Config,
        shared: Shared,
        signals: Signals,
        listener_fds: Vec<std::os::fd::RawFd>,
        host: H,
    ) -> Self {
        let desired = config.workers.clamp(1, MAX_WORKERS);
        let exec = Exec::current();
        let mut arbiter = Self {
            config,
            previous: None,
            generation: 0,
            shared,
            signals,
            host,
            workers: Vec::new(),
            slots: (0..MAX_WORKERS).map(|_| Slot::default()).collect(),
            desired,
            phase: Phase::Starting,
            pidfile: None,
            failure: None,
            listener_fds,
            exec,
            watch: None,
        };
        arbiter.watch_as_configured();
        arbiter
    }

    /// Watches what `--reload` and `--reload-path` now say (at start, and
    /// when a SIGHUP changes them).
    fn watch_as_configured(&mut self) {
        let paths = &self.config.reload_path;
        let current = self
            .watch
            .as_ref()
            .is_some_and(|w| w.extra() == paths.as_slice());
        match (&self.exec, self.config.reload) {
            (Some(exec), true) if !current => {
                let watch = Watch::new(exec.path(), paths);
                info!("reload: watching {} (development only)", watch.describe());
                self.watch = Some(watch);
            }
            (_, false) if self.watch.is_some() => {
                info!("reload: no longer watching");
                self.watch = None;
            }
            _ => {}
        }
    }

    /// Takes over the workers of the image an upgrade replaced.
    pub(crate) fn adopt(&mut self, workers: &[(i32, usize, usize)]) {
        let now = Instant::now();
        for &(pid, slot, cell_id) in workers {
            if slot >= MAX_WORKERS {
                continue;
            }
            self.workers.push(Worker {
                pid: Pid::from_raw(pid),
                slot,
                cell_id,
                role: Role::Previous,
                generation: 0,
                spawned: now - CRASH_WINDOW,
                aborted: None,
                killed: false,
                memory_strikes: 0,
            });
        }
        if !self.workers.is_empty() {
            self.phase = Phase::Upgrading { failed: false };
            info!(
                "upgrade: {} of the previous binary {} until the new ones are ready",
                count_workers(self.workers.len()),
                if self.workers.len() == 1 {
                    "serves"
                } else {
                    "serve"
                }
            );
        }
    }

    /// Runs until the server stops; `Err` when the app failed to boot.
    pub(crate) fn run(mut self) -> Result<(), Error> {
        self.shared.header().set_desired(self.desired as u32);
        let now = Instant::now();
        for state in &mut self.slots[..self.desired] {
            state.due = Some(now);
        }
        loop {
            for signal in self.signals.wait(self.next_wake()) {
                self.handle(Command::from_signal(signal));
            }
            self.reap();
            match &mut self.phase {
                Phase::Stopping(_) if self.workers.is_empty() => {
                    return self.failure.take().map_or(Ok(()), Err);
                }
                Phase::Stopping(stop) => {
                    if !stop.killed && Instant::now() >= stop.deadline {
                        stop.killed = true;
                        warn!("workers still running at the deadline; killing them");
                        self.signal_all(Signal::SIGKILL);
                    }
                }
                Phase::Delaying { until } if Instant::now() >= *until => {
                    self.advance(Event::Stop { graceful: true });
                }
                _ => self.supervise(),
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Reap => {}
            Command::Stop { graceful: true } => self.advance(Event::Term),
            Command::Stop { graceful: false } => self.advance(Event::Stop { graceful: false }),
            Command::Reload => self.reload(),
            Command::Scale(delta) => self.scale(delta),
            Command::Upgrade => self.upgrade(),
            Command::ReopenLogs => {
                self.host.reopen_logs();
                info!("reopened log files; telling the workers");
                self.signal_all(Signal::SIGUSR1);
            }
            Command::Unsupported(signal) => warn!("{signal} is not handled yet; ignoring it"),
        }
    }

    /// One pass over the workers: promotions, timeouts, recycling, refills.
    /// `--reload`: once the executable or a watched path has changed and
    /// settled, re-execute in place as SIGUSR2 does. Only while serving
    /// with no upgrade under way; a change meanwhile is seen after.
    fn check_watch(&mut self) {
        if !matches!(self.phase, Phase::Serving { .. }) || self.is_upgrading() {
            return;
        }
        if self
            .watch
            .as_mut()
            .is_some_and(|w| w.changed(Instant::now()))
        {
            info!("reload: a watched file changed; re-executing in place");
            self.upgrade();
        }
    }

    fn supervise(&mut self) {
        if matches!(self.phase, Phase::Starting)
            && self
                .workers
                .iter()
                .any(|w| self.state(w) == CellState::Ready)
        {
            self.advance(Event::Ready);
        }
        self.promote_ready_successors();
        self.finish_upgrade();
        self.check_liveness();
        self.check_recycling();
        self.check_watch();
        self.fill_slots();
        self.publish_desired();
        if self.pidfile.is_none()
            && self.all_ready()
            && let Some(path) = &self.config.pid
        {
            match pidfile::Pidfile::write(path) {
                Ok(p) => self.pidfile = Some(p),
                Err(e) => error!("cannot write pidfile {}: {e}", path.display()),
            }
        }
        if matches!(self.phase, Phase::Serving { settled: false }) && self.all_ready() {
            self.advance(Event::Settled);
        }
    }

    fn state(&self, w: &Worker) -> CellState {
        self.shared
            .cell(w.cell_id)
            .map_or(CellState::Empty, |c| c.state())
    }

    fn all_ready(&self) -> bool {
        (0..self.desired).all(|i| {
            self.workers.iter().any(|w| {
                w.slot == i && w.role == Role::Current && self.state(w) == CellState::Ready
            })
        })
    }

    /// Lets readiness count a grown slot only once its worker is ready, so
    /// scaling up never turns `/readyz` to 503; shrinking counts at once.
    fn publish_desired(&self) {
        let header = self.shared.header();
        let published = header.desired() as usize;
        if self.desired < published || (self.desired > published && self.all_ready()) {
            header.set_desired(self.desired as u32);
        }
    }

    fn signal_all(&self, signal: Signal) {
        for w in &self.workers {
            let _ = kill(w.pid, signal);
        }
    }

    fn next_wake(&self) -> Duration {
        let now = Instant::now();
        let mut wake = now + TICK;
        match &self.phase {
            Phase::Stopping(stop) if stop.killed => return Duration::from_millis(50),
            Phase::Stopping(stop) => {
                return stop.deadline.saturating_duration_since(now).min(TICK);
            }
            Phase::Delaying { until } => wake = wake.min(*until),
            _ => {}
        }
        let booting = self
            .workers
            .iter()
            .any(|w| self.state(w) == CellState::Booting);
        if booting || self.pidfile.is_none() && self.config.pid.is_some() {
            wake = wake.min(now + BOOT_TICK);
        }
        for at in self.slots.iter().filter_map(|s| s.due) {
            wake = wake.min(at);
        }
        if let Some(at) = self.watch.as_ref().and_then(Watch::next_look) {
            wake = wake.min(at);
        }
        wake.saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_map_to_commands() {
        assert_eq!(
            Command::from_signal(Signal::SIGTERM),
            Command::Stop { graceful: true }
        );
        assert_eq!(
            Command::from_signal(Signal::SIGINT),
            Command::Stop { graceful: false }
        );
        assert_eq!(
            Command::from_signal(Signal::SIGQUIT),
            Command::Stop { graceful: false }
        );
        assert_eq!(Command::from_signal(Signal::SIGCHLD), Command::Reap);
        assert_eq!(Command::from_signal(Signal::SIGHUP), Command::Reload);
        assert_eq!(Command::from_signal(Signal::SIGTTIN), Command::Scale(1));
        assert_eq!(Command::from_signal(Signal::SIGTTOU), Command::Scale(-1));
        assert_eq!(Command::from_signal(Signal::SIGUSR2), Command::Upgrade);
        assert_eq!(Command::from_signal(Signal::SIGUSR1), Command::ReopenLogs);
    }
}
