//! Reaping exited workers and deciding what their exit means: expected,
//! a crash to back off from, a failed replacement, or a failed boot.

use ferricorn_config::MAX_WORKERS;
use ferricorn_shm::metrics::Exit;
use ferricorn_shm::{CellState, EXIT_BOOT_FAILED};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use tracing::{error, info, warn};

use super::{Arbiter, CRASH_WINDOW, Event, Phase, Reason, Role, Worker};
use crate::{Error, Host};

impl<H: Host> Arbiter<H> {
    pub(super) fn reap(&mut self) {
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

    pub(super) fn reaped(&mut self, w: Worker, status: WaitStatus) {
        let cell = self.shared.cell(w.cell_id);
        let booting = cell.is_some_and(|c| c.state() == CellState::Booting);
        let boot_error = cell.and_then(|c| c.error());
        self.shared.release(w.cell_id);
        let (slot, pid) = (w.slot, w.pid);
        let stopping = self.phase.is_stopping();
        let starting = matches!(self.phase, Phase::Starting);
        let expected = stopping || matches!(w.role, Role::Retiring(_));
        let describe = match status {
            WaitStatus::Exited(_, 0) => "exited".to_owned(),
            WaitStatus::Exited(_, code) => format!("exited with code {code}"),
            WaitStatus::Signaled(_, signal, _) => format!("was killed by {signal}"),
            other => format!("{other:?}"),
        };
        let app_failed = matches!(status, WaitStatus::Exited(_, EXIT_BOOT_FAILED)) && booting;
        self.shared.header().events.count_exit(match w.role {
            _ if app_failed => Exit::BootFailure,
            _ if w.killed || w.aborted.is_some() => Exit::Timeout,
            Role::Retiring(why) => why,
            _ if stopping => Exit::Shutdown,
            _ => Exit::Crash,
        });
        if app_failed {
            let message = boot_error.unwrap_or_else(|| "app startup failed".to_owned());
            error!("worker {slot} (pid {pid}) failed to boot: {message}");
            match w.role {
                Role::Successor(reason) => self.replacement_failed(slot, reason),
                Role::Current if self.is_upgrading() => {
                    self.fail_upgrade(&format!(
                        "the new binary's worker {slot} failed to boot: {message}"
                    ));
                }
                Role::Current if self.previous.is_some() => {
                    // A slot added by a reload whose settings do not boot.
                    self.replacement_failed(slot, Reason::Reload);
                }
                Role::Current if !starting && !stopping => {
                    // The server has been serving: retry with backoff
                    // rather than take every other worker down with it.
                    self.schedule(slot, true, None);
                }
                Role::Current => self.fail(Error::BootFailed { slot, message }),
                Role::Retiring(_) | Role::Previous => {}
            }
            return;
        }
        if expected {
            if matches!(status, WaitStatus::Exited(_, 0)) {
                info!("worker {slot} (pid {pid}) {describe}");
            } else if stopped_while_booting(status, booting, w.killed) {
                info!("worker {slot} (pid {pid}) stopped before finishing startup");
            } else {
                warn!("worker {slot} (pid {pid}) {describe}");
            }
            return;
        }
        error!("worker {slot} (pid {pid}) {describe}");
        let crashed = w.spawned.elapsed() < CRASH_WINDOW;
        match w.role {
            // A reload's worker that cannot boot means the new settings
            // do not work: keep the old ones rather than retry forever.
            Role::Successor(Reason::Reload) if booting => {
                self.replacement_failed(slot, Reason::Reload)
            }
            Role::Successor(reason) => self.schedule(slot, crashed, Some(reason)),
            Role::Current if booting && self.is_upgrading() => {
                self.fail_upgrade(&format!(
                    "the new binary's worker {slot} {describe} before finishing startup"
                ));
            }
            Role::Current if booting && starting => self.fail(Error::BootFailed {
                slot,
                message: format!(
                    "the worker {describe} before finishing startup, and no worker has booted yet"
                ),
            }),
            Role::Current | Role::Previous => {
                self.shared.count_restart(slot);
                self.schedule(slot, crashed, None);
            }
            Role::Retiring(_) => {}
        }
    }

    /// A successor's app failed to start: keep the worker it would have
    /// replaced. A failed reload also restores the previous settings.
    pub(super) fn replacement_failed(&mut self, slot: usize, reason: Reason) {
        if reason == Reason::Reload {
            if let Some(previous) = self.previous.take() {
                error!(
                    "reload failed: the new settings' workers do not boot; keeping the previous settings and workers"
                );
                for w in &mut self.workers {
                    if w.role == Role::Successor(Reason::Reload) {
                        w.retire(Exit::Reload);
                    }
                }
                let grown = self.desired;
                self.desired = previous.workers.clamp(1, MAX_WORKERS);
                self.config = previous;
                self.watch_as_configured();
                self.generation += 1;
                for slot in self.desired..grown {
                    self.retire_slot(slot);
                }
            }
        } else {
            warn!(
                "worker {slot} keeps serving: its replacement ({}) failed to boot",
                reason.as_str()
            );
        }
        self.slots[slot].pending = None;
    }

    pub(super) fn fail(&mut self, error: Error) {
        if self.failure.is_none() && !self.phase.is_stopping() {
            self.failure = Some(error);
            info!("stopping the other workers");
            self.advance(Event::Stop { graceful: true });
        }
    }
}

/// A worker told to stop (SIGTERM to drain, SIGQUIT to quit) before it had
/// installed its own handlers dies of the signal itself: the stop it was
/// asked for, not a fault. A SIGKILL, or any other signal, still warns.
fn stopped_while_booting(status: WaitStatus, booting: bool, killed: bool) -> bool {
    booting
        && !killed
        && matches!(
            status,
            WaitStatus::Signaled(_, Signal::SIGTERM | Signal::SIGQUIT, _)
        )
}

#[cfg(test)]
mod tests {
    use nix::unistd::Pid;

    use super::*;

    #[test]
    fn a_stop_that_lands_during_boot_is_not_a_fault() {
        let pid = Pid::from_raw(7);
        let term = WaitStatus::Signaled(pid, Signal::SIGTERM, false);
        let quit = WaitStatus::Signaled(pid, Signal::SIGQUIT, false);
        assert!(stopped_while_booting(term, true, false));
        assert!(stopped_while_booting(quit, true, false));
        // Once booted, the worker handles TERM itself and exits 0.
        assert!(!stopped_while_booting(term, false, false));
        // Killed for a boot timeout, or another signal: still a warning.
        assert!(!stopped_while_booting(term, true, true));
        let kill = WaitStatus::Signaled(pid, Signal::SIGKILL, false);
        let segv = WaitStatus::Signaled(pid, Signal::SIGSEGV, true);
        assert!(!stopped_while_booting(kill, true, false));
        assert!(!stopped_while_booting(segv, true, false));
    }
}
