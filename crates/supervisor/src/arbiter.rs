//! The supervisor's loop: keep every slot filled, replace workers before
//! retiring them, turn signals into one [`Command`] each, and stop when told.
//!
//! Every worker has a role. The **current** worker of a slot serves it. A
//! **successor** boots beside it when the slot's worker is to be replaced
//! (reload, max-requests, memory); only once the successor is ready is the
//! current worker told to drain, becoming **retiring**. So capacity never
//! drops below the configured count for a planned replacement.

use std::time::{Duration, Instant};

use ferricorn_config::{Config, MAX_WORKERS};
use ferricorn_shm::{CellState, EXIT_BOOT_FAILED, Shared};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tracing::{error, info, warn};

use crate::signals::Signals;
use crate::upgrade::{Exec, Handoff};
use crate::{Error, Host, Spawn, pidfile, process};

/// A worker that dies sooner than this after its fork counts as a boot crash.
const CRASH_WINDOW: Duration = Duration::from_secs(5);
/// The first backoff delay after a boot crash; it doubles with each one.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// The longest backoff delay.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
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
    Retiring,
    /// A worker of the image an upgrade replaced; it serves until this
    /// image's workers are ready.
    Previous,
}

#[derive(Debug)]
struct Worker {
    pid: Pid,
    index: usize,
    cell: usize,
    role: Role,
    generation: u64,
    spawned: Instant,
    /// When SIGABRT was sent for a missed heartbeat.
    aborted: Option<Instant>,
    /// SIGKILL was sent (hung, or boot timeout).
    killed: bool,
    memory_strikes: u32,
}

/// The supervisor's view of one slot.
#[derive(Debug, Default)]
struct Slot {
    /// Boot crashes in a row.
    crashes: u32,
    /// When to fork the slot's next worker, if it waits for one.
    due: Option<Instant>,
    /// A replacement to retry at `due`.
    pending: Option<Reason>,
}

#[derive(Debug)]
struct Stopping {
    deadline: Instant,
    graceful: bool,
    killed: bool,
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
    ever_ready: bool,
    pidfile: Option<pidfile::Pidfile>,
    delay_until: Option<Instant>,
    stopping: Option<Stopping>,
    failure: Option<Error>,
    /// The listening sockets, for an upgrade's handoff.
    listener_fds: Vec<std::os::fd::RawFd>,
    /// How to re-execute this binary, captured at start.
    exec: Option<Exec>,
    /// This image's workers could not boot; the previous ones serve on.
    upgrade_failed: bool,
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
        Self {
            config,
            previous: None,
            generation: 0,
            shared,
            signals,
            host,
            workers: Vec::new(),
            slots: (0..MAX_WORKERS).map(|_| Slot::default()).collect(),
            desired,
            ever_ready: false,
            pidfile: None,
            delay_until: None,
            stopping: None,
            failure: None,
            listener_fds,
            exec: Exec::current(),
            upgrade_failed: false,
        }
    }

    /// Takes over the workers of the image an upgrade replaced.
    pub(crate) fn adopt(&mut self, workers: &[(i32, usize, usize)]) {
        let now = Instant::now();
        for &(pid, index, cell) in workers {
            if index >= MAX_WORKERS {
                continue;
            }
            self.workers.push(Worker {
                pid: Pid::from_raw(pid),
                index,
                cell,
                role: Role::Previous,
                generation: 0,
                spawned: now - CRASH_WINDOW,
                aborted: None,
                killed: false,
                memory_strikes: 0,
            });
        }
        if !self.workers.is_empty() {
            self.ever_ready = true;
            info!(
                "upgrade: {} workers of the previous binary serve until the new ones are ready",
                self.workers.len()
            );
        }
    }

    /// Runs until the server stops; `Err` when the app failed to boot.
    pub(crate) fn run(mut self) -> Result<(), Error> {
        self.shared.header().set_desired(self.desired as u32);
        let now = Instant::now();
        for slot in &mut self.slots[..self.desired] {
            slot.due = Some(now);
        }
        loop {
            for signal in self.signals.wait(self.next_wake()) {
                self.handle(Command::from_signal(signal));
            }
            self.reap();
            if let Some(stop) = &mut self.stopping {
                if self.workers.is_empty() {
                    return self.failure.take().map_or(Ok(()), Err);
                }
                if !stop.killed && Instant::now() >= stop.deadline {
                    stop.killed = true;
                    warn!("workers still running at the deadline; killing them");
                    self.signal_all(Signal::SIGKILL);
                }
                continue;
            }
            if self.delay_until.is_some_and(|t| Instant::now() >= t) {
                self.stop(true);
                continue;
            }
            self.supervise();
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Reap => {}
            Command::Stop { graceful } => self.request_stop(graceful),
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
    fn supervise(&mut self) {
        self.promote_ready_successors();
        self.finish_upgrade();
        self.check_liveness();
        self.check_recycling();
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
    }

    fn state(&self, w: &Worker) -> CellState {
        self.shared
            .cell(w.cell)
            .map_or(CellState::Empty, |c| c.state())
    }

    fn all_ready(&self) -> bool {
        (0..self.desired).all(|i| {
            self.workers.iter().any(|w| {
                w.index == i && w.role == Role::Current && self.state(w) == CellState::Ready
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

    /// A successor that is ready takes over its slot; the worker it replaces
    /// is told to drain only now.
    fn promote_ready_successors(&mut self) {
        let ready: Vec<usize> = (0..self.workers.len())
            .filter(|&i| {
                matches!(self.workers[i].role, Role::Successor(_))
                    && self.state(&self.workers[i]) == CellState::Ready
            })
            .collect();
        for i in ready {
            self.ever_ready = true;
            let (index, pid) = (self.workers[i].index, self.workers[i].pid);
            let Role::Successor(reason) = self.workers[i].role else {
                continue;
            };
            for old in self
                .workers
                .iter_mut()
                .filter(|w| w.index == index && w.role == Role::Current)
            {
                info!(
                    "worker {index} (pid {}) replaced by pid {pid} ({}); draining it",
                    old.pid,
                    reason.as_str()
                );
                old.role = Role::Retiring;
                let _ = kill(old.pid, Signal::SIGTERM);
            }
            self.workers[i].role = Role::Current;
            self.slots[index].crashes = 0;
            self.shared.count_restart(index);
            if reason == Reason::Reload && !self.reload_in_progress() {
                self.previous = None;
                info!("reload complete");
            }
        }
        if !self.ever_ready
            && self
                .workers
                .iter()
                .any(|w| self.state(w) == CellState::Ready)
        {
            self.ever_ready = true;
        }
    }

    fn has_previous(&self) -> bool {
        self.workers.iter().any(|w| w.role == Role::Previous)
    }

    /// Once every slot has a ready worker of this image, the previous
    /// image's workers drain.
    fn finish_upgrade(&mut self) {
        if self.upgrade_failed || !self.has_previous() || !self.all_ready() {
            return;
        }
        let mut n = 0;
        for w in self.workers.iter_mut().filter(|w| w.role == Role::Previous) {
            w.role = Role::Retiring;
            let _ = kill(w.pid, Signal::SIGTERM);
            n += 1;
        }
        info!("upgrade complete: {n} workers of the previous binary draining");
        if let Some(path) = &self.config.pid {
            let _ = std::fs::remove_file(pidfile::Pidfile::oldbin(path));
        }
    }

    /// This image's workers cannot boot: stop trying while the previous
    /// image's workers serve.
    fn fail_upgrade(&mut self, why: &str) {
        if self.upgrade_failed {
            return;
        }
        self.upgrade_failed = true;
        error!("upgrade failed: {why}; the previous binary's workers keep serving");
        for w in self.workers.iter_mut().filter(|w| w.role == Role::Current) {
            w.role = Role::Retiring;
            let _ = kill(w.pid, Signal::SIGTERM);
        }
    }

    /// SIGUSR2: check the binary now at this path, then exec it in place.
    fn upgrade(&mut self) {
        if self.stopping.is_some() || self.delay_until.is_some() || self.has_previous() {
            warn!("upgrade: not now (stopping, or an upgrade is still in progress)");
            return;
        }
        let Some(exec) = self.exec.clone() else {
            error!("upgrade: the path of this binary is unknown");
            return;
        };
        info!("upgrade: checking {}", exec.path().display());
        if let Err(e) = exec.preflight() {
            error!("upgrade aborted: {e}; the current binary keeps serving");
            return;
        }
        let handoff = Handoff {
            listeners: self.listener_fds.clone(),
            shm: self.shared.fd(),
            workers: self
                .workers
                .iter()
                .filter(|w| w.role != Role::Retiring)
                .map(|w| (w.pid.as_raw(), w.index, w.cell))
                .collect(),
        };
        let moved = self
            .pidfile
            .as_ref()
            .is_some_and(pidfile::Pidfile::move_to_oldbin);
        info!("upgrade: executing {}", exec.path().display());
        let err = exec.exec(&handoff);
        error!("upgrade aborted: {err}; the current binary keeps serving");
        if let Some(p) = self.pidfile.as_ref().filter(|_| moved) {
            p.restore_from_oldbin();
        }
    }

    fn reload_in_progress(&self) -> bool {
        self.workers
            .iter()
            .any(|w| w.role == Role::Successor(Reason::Reload))
    }

    /// Boot timeouts and heartbeats.
    fn check_liveness(&mut self) {
        let now = Instant::now();
        for w in &mut self.workers {
            let Some(cell) = self.shared.cell(w.cell) else {
                continue;
            };
            if w.killed {
                continue;
            }
            if let Some(at) = w.aborted {
                if now >= at + ABORT_GRACE {
                    let _ = kill(w.pid, Signal::SIGKILL);
                    w.killed = true;
                }
                continue;
            }
            match cell.state() {
                CellState::Booting => {
                    if let Some(limit) = self.config.boot_timeout
                        && w.spawned.elapsed() > limit
                    {
                        error!(
                            "worker {} (pid {}) did not finish startup within {limit:?}; killing it",
                            w.index, w.pid
                        );
                        let _ = kill(w.pid, Signal::SIGKILL);
                        w.killed = true;
                    }
                }
                CellState::Ready | CellState::Draining => {
                    let age = Duration::from_millis(cell.heartbeat_age_ms());
                    if self.config.timeout.is_some_and(|t| age > t) {
                        error!(
                            "WORKER TIMEOUT (pid:{}): worker {} sent no heartbeat for {age:?}",
                            w.pid, w.index
                        );
                        let _ = kill(w.pid, Signal::SIGABRT);
                        // A stopped process acts on SIGABRT only once continued.
                        let _ = kill(w.pid, Signal::SIGCONT);
                        w.aborted = Some(now);
                    }
                }
                CellState::Empty => {}
            }
        }
    }

    /// Max-requests (the worker asks) and max-worker-memory (RSS checked here).
    fn check_recycling(&mut self) {
        let mut replace = Vec::new();
        for w in &mut self.workers {
            if w.role != Role::Current {
                continue;
            }
            if self.shared.cell(w.cell).is_some_and(|c| c.take_retire()) {
                replace.push((w.index, Reason::MaxRequests));
                continue;
            }
            if let Some(limit) = self.config.max_worker_memory {
                let rss = process::rss(w.pid).unwrap_or(0);
                w.memory_strikes = if rss > limit { w.memory_strikes + 1 } else { 0 };
                if w.memory_strikes == MEMORY_STRIKES {
                    info!(
                        "worker {} (pid {}) uses {} MiB, over max-worker-memory",
                        w.index,
                        w.pid,
                        rss >> 20
                    );
                    replace.push((w.index, Reason::Memory));
                }
            }
        }
        for (index, reason) in replace {
            self.replace(index, reason);
        }
    }

    /// Forks the workers that slots are due to get.
    fn fill_slots(&mut self) {
        let now = Instant::now();
        for index in 0..self.desired {
            let slot = &self.slots[index];
            if slot.due.is_none_or(|at| at > now) {
                continue;
            }
            let has = |role: fn(&Role) -> bool| {
                self.workers
                    .iter()
                    .any(|w| w.index == index && role(&w.role))
            };
            if let Some(reason) = slot.pending
                && has(|r| *r == Role::Current)
            {
                if !has(|r| matches!(r, Role::Successor(_))) {
                    self.spawn(index, Role::Successor(reason));
                }
                continue;
            }
            if !has(|r| *r == Role::Current) {
                // A successor whose current worker died takes its place.
                if let Some(w) = self
                    .workers
                    .iter_mut()
                    .find(|w| w.index == index && matches!(w.role, Role::Successor(_)))
                {
                    w.role = Role::Current;
                    self.slots[index].due = None;
                    self.slots[index].pending = None;
                } else {
                    self.spawn(index, Role::Current);
                }
            } else {
                self.slots[index].due = None;
            }
        }
    }

    /// Starts a successor for slot `index`; its current worker keeps serving
    /// until the successor is ready.
    pub(crate) fn replace(&mut self, index: usize, reason: Reason) {
        let generation = self.generation;
        // A successor from before a reload boots with stale settings.
        for w in &mut self.workers {
            if w.index == index
                && matches!(w.role, Role::Successor(_))
                && w.generation != generation
            {
                w.role = Role::Retiring;
                let _ = kill(w.pid, Signal::SIGTERM);
            }
        }
        if self
            .workers
            .iter()
            .any(|w| w.index == index && matches!(w.role, Role::Successor(_)))
        {
            return;
        }
        if self
            .workers
            .iter()
            .any(|w| w.index == index && w.role == Role::Current)
        {
            self.spawn(index, Role::Successor(reason));
        } else {
            self.slots[index].due = Some(Instant::now());
        }
    }

    fn spawn(&mut self, index: usize, role: Role) {
        let slot = &mut self.slots[index];
        slot.due = None;
        slot.pending = None;
        let Some(cell) = self.shared.claim(index) else {
            error!("no free worker cell for worker {index}; retrying");
            self.schedule(index, true, None);
            return;
        };
        let identity = match process::Identity::of(&self.config) {
            Ok(identity) => identity,
            Err(e) => {
                error!("cannot fork worker {index}: {e}");
                if let Some(c) = self.shared.cell(cell) {
                    c.clear()
                }
                self.schedule(index, true, None);
                return;
            }
        };
        let spawn = Spawn {
            index,
            cell,
            config: &self.config,
        };
        let host = &mut self.host;
        match process::fork_worker(identity, || host.worker(spawn)) {
            Ok(pid) => {
                info!("booting worker {index} with pid {pid}");
                if let Some(c) = self.shared.cell(cell) {
                    c.set_pid(pid.as_raw());
                }
                self.workers.push(Worker {
                    pid,
                    index,
                    cell,
                    role,
                    generation: self.generation,
                    spawned: Instant::now(),
                    aborted: None,
                    killed: false,
                    memory_strikes: 0,
                });
            }
            Err(e) => {
                if let Some(c) = self.shared.cell(cell) {
                    c.clear();
                }
                error!("cannot fork worker {index}: {e}");
                let pending = if let Role::Successor(r) = role {
                    Some(r)
                } else {
                    None
                };
                self.schedule(index, true, pending);
            }
        }
    }

    /// Sets when the slot gets its next worker: at once, or after a backoff
    /// that doubles with each crash in a row.
    fn schedule(&mut self, index: usize, crashed: bool, pending: Option<Reason>) {
        let slot = &mut self.slots[index];
        slot.crashes = if crashed { slot.crashes + 1 } else { 0 };
        let delay = match slot.crashes {
            0 | 1 => Duration::ZERO,
            n => BACKOFF_BASE
                .saturating_mul(1 << (n - 1).min(20))
                .min(BACKOFF_CAP),
        };
        if !delay.is_zero() {
            warn!(
                "worker {index} died {} times in a row within {:?} of boot; restarting it in {:?}",
                slot.crashes, CRASH_WINDOW, delay
            );
        }
        slot.due = Some(Instant::now() + delay);
        slot.pending = pending;
    }

    fn reload(&mut self) {
        if self.stopping.is_some() || self.delay_until.is_some() {
            return;
        }
        let mut config = match self.host.reload() {
            Ok(c) => c,
            Err(e) => {
                error!("reload: {e}; keeping the current settings and workers");
                return;
            }
        };
        if config.bind != self.config.bind {
            warn!(
                "reload: bind changes need a restart; keeping {:?}",
                self.config
                    .bind
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            );
            config.bind.clone_from(&self.config.bind);
        }
        let old = self.desired;
        let new = config.workers.clamp(1, MAX_WORKERS);
        info!("reload: replacing {} workers with {new} workers", old);
        self.previous = Some(std::mem::replace(&mut self.config, config));
        self.generation += 1;
        self.desired = new;
        for index in 0..old.min(new) {
            self.replace(index, Reason::Reload);
        }
        for index in new..old {
            self.retire_slot(index);
        }
        let now = Instant::now();
        for slot in &mut self.slots[old.min(new)..new] {
            slot.due = Some(now);
        }
    }

    fn scale(&mut self, delta: i8) {
        if self.stopping.is_some() {
            return;
        }
        if delta > 0 && self.desired < MAX_WORKERS {
            self.desired += 1;
            info!("scaling up to {} workers", self.desired);
            self.slots[self.desired - 1].due = Some(Instant::now());
        } else if delta < 0 && self.desired > 1 {
            self.desired -= 1;
            info!("scaling down to {} workers", self.desired);
            self.retire_slot(self.desired);
        }
        self.publish_desired();
    }

    /// Drains every worker of a slot beyond the desired count.
    fn retire_slot(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        slot.due = None;
        slot.pending = None;
        for w in self
            .workers
            .iter_mut()
            .filter(|w| w.index == index && w.role != Role::Retiring)
        {
            info!(
                "worker {index} (pid {}) retiring ({})",
                w.pid,
                Reason::ScaleDown.as_str()
            );
            w.role = Role::Retiring;
            let _ = kill(w.pid, Signal::SIGTERM);
        }
    }

    /// SIGTERM waits out `--shutdown-delay` (readiness already 503) first.
    fn request_stop(&mut self, graceful: bool) {
        let delay = self.config.shutdown_delay;
        if graceful && !delay.is_zero() && self.stopping.is_none() {
            if self.delay_until.is_none() {
                info!("shutdown delay: serving for {delay:?} more with readiness 503");
                self.shared.header().set_draining();
                self.delay_until = Some(Instant::now() + delay);
            }
            return;
        }
        self.stop(graceful);
    }

    fn stop(&mut self, graceful: bool) {
        // A second stop only matters when it escalates graceful to quick.
        if self
            .stopping
            .as_ref()
            .is_some_and(|stop| graceful || !stop.graceful)
        {
            return;
        }
        let (signal, deadline) = if graceful {
            info!(
                "graceful stop: draining for up to {:?}",
                self.config.graceful_timeout
            );
            (
                Signal::SIGTERM,
                self.config.graceful_timeout + SHUTDOWN_GRACE,
            )
        } else {
            info!("quick stop");
            (Signal::SIGQUIT, QUICK_TIMEOUT)
        };
        self.shared.header().set_draining();
        self.signal_all(signal);
        self.stopping = Some(Stopping {
            deadline: Instant::now() + deadline,
            graceful,
            killed: false,
        });
    }

    fn signal_all(&self, signal: Signal) {
        for w in &self.workers {
            let _ = kill(w.pid, signal);
        }
    }

    fn next_wake(&self) -> Duration {
        let now = Instant::now();
        let mut wake = now + TICK;
        if let Some(stop) = &self.stopping {
            return if stop.killed {
                Duration::from_millis(50)
            } else {
                stop.deadline.saturating_duration_since(now).min(TICK)
            };
        }
        if let Some(t) = self.delay_until {
            wake = wake.min(t);
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
        wake.saturating_duration_since(now)
    }

    fn reap(&mut self) {
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => status,
            };
            let Some(pid) = status.pid() else { continue };
            if let Some(i) = self.workers.iter().position(|w| w.pid == pid) {
                let worker = self.workers.swap_remove(i);
                self.reaped(worker, status);
            }
        }
    }

    fn reaped(&mut self, w: Worker, status: WaitStatus) {
        let cell = self.shared.cell(w.cell);
        let booting = cell.is_some_and(|c| c.state() == CellState::Booting);
        let boot_error = cell.and_then(|c| c.error());
        if let Some(c) = cell {
            c.clear();
        }
        let (index, pid) = (w.index, w.pid);
        let expected = self.stopping.is_some() || w.role == Role::Retiring;
        let describe = match status {
            WaitStatus::Exited(_, 0) => "exited".to_owned(),
            WaitStatus::Exited(_, code) => format!("exited with code {code}"),
            WaitStatus::Signaled(_, signal, _) => format!("was killed by {signal}"),
            other => format!("{other:?}"),
        };
        let app_failed = matches!(status, WaitStatus::Exited(_, EXIT_BOOT_FAILED)) && booting;
        if app_failed {
            let message = boot_error.unwrap_or_else(|| "app startup failed".to_owned());
            error!("worker {index} (pid {pid}) failed to boot: {message}");
            match w.role {
                Role::Successor(reason) => self.replacement_failed(index, reason),
                Role::Current if self.has_previous() => {
                    self.fail_upgrade(&format!(
                        "the new binary's worker {index} failed to boot: {message}"
                    ));
                }
                Role::Current if self.previous.is_some() => {
                    // A slot added by a reload whose settings do not boot.
                    self.replacement_failed(index, Reason::Reload);
                }
                Role::Current if self.ever_ready && self.stopping.is_none() => {
                    // The server has been serving: retry with backoff
                    // rather than take every other worker down with it.
                    self.schedule(index, true, None);
                }
                Role::Current => self.fail(Error::BootFailed { index, message }),
                Role::Retiring | Role::Previous => {}
            }
            return;
        }
        if expected {
            if matches!(status, WaitStatus::Exited(_, 0)) {
                info!("worker {index} (pid {pid}) {describe}");
            } else {
                warn!("worker {index} (pid {pid}) {describe}");
            }
            return;
        }
        error!("worker {index} (pid {pid}) {describe}");
        let crashed = w.spawned.elapsed() < CRASH_WINDOW;
        match w.role {
            // A reload's worker that cannot boot means the new settings
            // do not work: keep the old ones rather than retry forever.
            Role::Successor(Reason::Reload) if booting => {
                self.replacement_failed(index, Reason::Reload)
            }
            Role::Successor(reason) => self.schedule(index, crashed, Some(reason)),
            Role::Current if booting && self.has_previous() => {
                self.fail_upgrade(&format!(
                    "the new binary's worker {index} {describe} before finishing startup"
                ));
            }
            Role::Current if booting && !self.ever_ready => self.fail(Error::BootFailed {
                index,
                message: format!(
                    "the worker {describe} before finishing startup, and no worker has booted yet"
                ),
            }),
            Role::Current | Role::Previous => self.schedule(index, crashed, None),
            Role::Retiring => {}
        }
    }

    /// A successor's app failed to start: keep the worker it would have
    /// replaced. A failed reload also restores the previous settings.
    fn replacement_failed(&mut self, index: usize, reason: Reason) {
        if reason == Reason::Reload {
            if let Some(previous) = self.previous.take() {
                error!(
                    "reload failed: the new settings' workers do not boot; keeping the previous settings and workers"
                );
                for w in &mut self.workers {
                    if w.role == Role::Successor(Reason::Reload) {
                        w.role = Role::Retiring;
                        let _ = kill(w.pid, Signal::SIGTERM);
                    }
                }
                let grown = self.desired;
                self.desired = previous.workers.clamp(1, MAX_WORKERS);
                self.config = previous;
                self.generation += 1;
                for slot in self.desired..grown {
                    self.retire_slot(slot);
                }
            }
        } else {
            warn!(
                "worker {index} keeps serving: its replacement ({}) failed to boot",
                reason.as_str()
            );
        }
        self.slots[index].pending = None;
    }

    fn fail(&mut self, error: Error) {
        if self.failure.is_none() && self.stopping.is_none() {
            self.failure = Some(error);
            info!("stopping the other workers");
            self.stop(true);
        }
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
