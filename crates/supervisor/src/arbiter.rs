//! The supervisor's loop: keep every slot filled, turn signals into one
//! [`Command`] each, and stop when told.

use std::time::{Duration, Instant};

use ferricorn_config::{Config, MAX_WORKERS};
use ferricorn_shm::{EXIT_BOOT_FAILED, Shared, SlotState};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tracing::{error, info, warn};

use crate::signals::Signals;
use crate::{Error, process};

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
/// The loop wakes at least this often.
const TICK: Duration = Duration::from_secs(1);

/// What a signal asks of the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    /// Collect exited workers (SIGCHLD).
    Reap,
    /// Stop the server: gracefully (SIGTERM) or quickly (SIGINT, SIGQUIT).
    Stop { graceful: bool },
    /// One worker more (SIGTTIN) or fewer (SIGTTOU).
    Scale(i8),
    /// A signal whose action is not built yet.
    Unsupported(Signal),
}

impl Command {
    fn from_signal(signal: Signal) -> Self {
        match signal {
            Signal::SIGCHLD => Self::Reap,
            Signal::SIGTERM => Self::Stop { graceful: true },
            Signal::SIGINT | Signal::SIGQUIT => Self::Stop { graceful: false },
            Signal::SIGTTIN => Self::Scale(1),
            Signal::SIGTTOU => Self::Scale(-1),
            other => Self::Unsupported(other),
        }
    }
}

/// The supervisor's view of one slot.
#[derive(Debug, Default)]
struct Slot {
    pid: Option<Pid>,
    spawned: Option<Instant>,
    /// Boot crashes in a row.
    crashes: u32,
    /// Told to drain and exit (scaled down); its exit is expected.
    retiring: bool,
    /// When to fork the next worker, if the slot waits to be filled.
    respawn_at: Option<Instant>,
}

#[derive(Debug)]
struct Stopping {
    deadline: Instant,
    graceful: bool,
    killed: bool,
}

/// The running supervisor.
pub(crate) struct Arbiter<'a, F> {
    config: &'a Config,
    shared: Shared,
    signals: Signals,
    body: F,
    slots: Vec<Slot>,
    desired: usize,
    stopping: Option<Stopping>,
    failure: Option<Error>,
}

impl<'a, F: FnMut(usize) -> i32> Arbiter<'a, F> {
    pub(crate) fn new(config: &'a Config, shared: Shared, signals: Signals, body: F) -> Self {
        let desired = config.workers.clamp(1, MAX_WORKERS);
        Self {
            config,
            shared,
            signals,
            body,
            slots: (0..desired).map(|_| Slot::default()).collect(),
            desired,
            stopping: None,
            failure: None,
        }
    }

    /// Runs until the server stops; `Err` when a worker failed to boot.
    pub(crate) fn run(mut self) -> Result<(), Error> {
        self.shared.header().set_desired(self.desired as u32);
        for index in 0..self.desired {
            self.spawn(index);
        }
        loop {
            for signal in self.signals.wait(self.next_wake()) {
                self.handle(Command::from_signal(signal));
            }
            self.reap();
            if let Some(stop) = &mut self.stopping {
                if self.slots.iter().all(|s| s.pid.is_none()) {
                    return self.failure.take().map_or(Ok(()), Err);
                }
                if !stop.killed && Instant::now() >= stop.deadline {
                    stop.killed = true;
                    warn!("workers still running at the deadline; killing them");
                    self.signal_all(Signal::SIGKILL);
                }
                continue;
            }
            self.kill_hung();
            self.respawn_due();
        }
    }

    /// Kills serving workers whose event loop has not written a heartbeat
    /// for `--timeout`: a blocked loop and a stopped process look the same.
    /// The reaper then replaces them.
    fn kill_hung(&mut self) {
        let Some(timeout) = self.config.timeout else {
            return;
        };
        for (index, slot) in self.slots.iter().enumerate() {
            let (Some(pid), Some(shm)) = (slot.pid, self.shared.slot(index)) else {
                continue;
            };
            let serving = matches!(shm.state(), SlotState::Ready | SlotState::Draining);
            let age = Duration::from_millis(shm.heartbeat_age_ms());
            if serving && age > timeout {
                error!(
                    "WORKER TIMEOUT (pid:{pid}): worker {index} sent no heartbeat for {age:?}; killing it"
                );
                let _ = kill(pid, Signal::SIGKILL);
                // Not again before the reaper has seen it.
                shm.beat();
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Reap => {}
            Command::Stop { graceful } => self.stop(graceful),
            Command::Scale(delta) => self.scale(delta),
            Command::Unsupported(signal) => warn!("{signal} is not handled yet; ignoring it"),
        }
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

    fn scale(&mut self, delta: i8) {
        if self.stopping.is_some() {
            return;
        }
        if delta > 0 && self.desired < MAX_WORKERS {
            self.desired += 1;
            if self.slots.len() < self.desired {
                self.slots.push(Slot::default());
            }
            info!("scaling up to {} workers", self.desired);
            self.shared.header().set_desired(self.desired as u32);
            // A slot whose retiring worker still drains is refilled when it exits.
            if self.slots[self.desired - 1].pid.is_none() {
                self.spawn(self.desired - 1);
            }
        } else if delta < 0 && self.desired > 1 {
            self.desired -= 1;
            info!("scaling down to {} workers", self.desired);
            self.shared.header().set_desired(self.desired as u32);
            let slot = &mut self.slots[self.desired];
            slot.respawn_at = None;
            if let Some(pid) = slot.pid {
                slot.retiring = true;
                let _ = kill(pid, Signal::SIGTERM);
            }
        }
    }

    fn signal_all(&self, signal: Signal) {
        for pid in self.slots.iter().filter_map(|s| s.pid) {
            let _ = kill(pid, signal);
        }
    }

    fn next_wake(&self) -> Duration {
        let now = Instant::now();
        let mut wake = now + TICK;
        if let Some(stop) = &self.stopping {
            wake = wake.min(if stop.killed {
                now + Duration::from_millis(50)
            } else {
                stop.deadline
            });
        }
        for at in self.slots.iter().filter_map(|s| s.respawn_at) {
            wake = wake.min(at);
        }
        wake.saturating_duration_since(now)
    }

    fn spawn(&mut self, index: usize) {
        let shm = self.shared.slot(index);
        if let Some(s) = shm {
            s.prepare();
        }
        let body = &mut self.body;
        match process::fork_worker(|| body(index)) {
            Ok(pid) => {
                info!("booting worker {index} with pid {pid}");
                if let Some(s) = shm {
                    s.set_pid(pid.as_raw());
                }
                let slot = &mut self.slots[index];
                slot.pid = Some(pid);
                slot.spawned = Some(Instant::now());
                slot.respawn_at = None;
            }
            Err(e) => {
                if let Some(s) = shm {
                    s.clear();
                }
                error!("cannot fork worker {index}: {e}");
                self.schedule_respawn(index, true);
            }
        }
    }

    fn respawn_due(&mut self) {
        let now = Instant::now();
        for index in 0..self.desired {
            let slot = &self.slots[index];
            if slot.pid.is_none() && slot.respawn_at.is_some_and(|at| at <= now) {
                self.spawn(index);
            }
        }
    }

    /// Sets when the slot is filled again: at once, or after a backoff that
    /// doubles with each crash in a row.
    fn schedule_respawn(&mut self, index: usize, crashed: bool) {
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
        slot.respawn_at = Some(Instant::now() + delay);
    }

    fn reap(&mut self) {
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => status,
            };
            let Some(pid) = status.pid() else { continue };
            let Some(index) = self.slots.iter().position(|s| s.pid == Some(pid)) else {
                continue;
            };
            self.reaped(index, pid, status);
        }
    }

    fn reaped(&mut self, index: usize, pid: Pid, status: WaitStatus) {
        let shm = self.shared.slot(index);
        let booting = shm.is_some_and(|s| s.state() == SlotState::Booting);
        let boot_error = shm.and_then(|s| s.error());
        if let Some(s) = shm {
            s.clear();
        }
        let slot = &mut self.slots[index];
        slot.pid = None;
        let retired = std::mem::take(&mut slot.retiring);
        let lived = slot.spawned.map_or(Duration::ZERO, |t| t.elapsed());
        let expected = self.stopping.is_some() || retired;
        match status {
            WaitStatus::Exited(_, 0) if expected => info!("worker {index} (pid {pid}) exited"),
            WaitStatus::Exited(_, EXIT_BOOT_FAILED) if booting => {
                let message = boot_error.unwrap_or_else(|| "app startup failed".to_owned());
                error!("worker {index} (pid {pid}) failed to boot: {message}");
                if self.failure.is_none() && self.stopping.is_none() {
                    self.failure = Some(Error::BootFailed { index, message });
                    info!("stopping the other workers");
                    self.stop(true);
                }
                return;
            }
            WaitStatus::Exited(_, code) => {
                error!("worker {index} (pid {pid}) exited with code {code}")
            }
            WaitStatus::Signaled(_, signal, _) if expected && signal == Signal::SIGKILL => {
                warn!("worker {index} (pid {pid}) was killed at the deadline")
            }
            WaitStatus::Signaled(_, signal, _) => {
                error!("worker {index} (pid {pid}) was killed by {signal}")
            }
            other => warn!("worker {index} (pid {pid}): {other:?}"),
        }
        if self.stopping.is_none() && index < self.desired {
            self.schedule_respawn(index, !retired && lived < CRASH_WINDOW);
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
        assert_eq!(Command::from_signal(Signal::SIGTTIN), Command::Scale(1));
        assert_eq!(Command::from_signal(Signal::SIGTTOU), Command::Scale(-1));
    }
}
