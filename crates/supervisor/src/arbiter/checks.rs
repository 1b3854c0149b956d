//! Liveness (boot timeout, heartbeat) and recycling (max-requests,
//! max-worker-memory) checks, run on every pass of the loop.

use std::time::{Duration, Instant};

use ferricorn_shm::CellState;
use nix::sys::signal::{Signal, kill};
use tracing::{error, info, warn};

use super::{ABORT_GRACE, Arbiter, CRASH_WINDOW, MEMORY_STRIKES, Reason, Role, backoff};
use crate::Host;

impl<H: Host> Arbiter<H> {
    /// Boot timeouts and heartbeats.
    pub(super) fn check_liveness(&mut self) {
        let now = Instant::now();
        for w in &mut self.workers {
            let Some(cell) = self.shared.cell(w.cell_id) else {
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
                            w.slot, w.pid
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
                            w.pid, w.slot
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
    pub(super) fn check_recycling(&mut self) {
        let mut replace = Vec::new();
        for w in &mut self.workers {
            if w.role != Role::Current {
                continue;
            }
            if self.shared.cell(w.cell_id).is_some_and(|c| c.take_retire()) {
                replace.push((w.slot, Reason::MaxRequests));
                continue;
            }
            if let Some(limit) = self.config.max_worker_memory {
                let rss = ferricorn_shm::procfs::rss(w.pid.as_raw()).unwrap_or(0);
                let young = w.spawned.elapsed() < CRASH_WINDOW;
                let state = &mut self.slots[w.slot];
                if rss > limit {
                    w.memory_strikes += 1;
                } else {
                    w.memory_strikes = 0;
                    if !young {
                        state.memory_churn = 0;
                    }
                }
                if w.memory_strikes == MEMORY_STRIKES {
                    info!(
                        "worker {} (pid {}) uses {} MiB, over max-worker-memory",
                        w.slot,
                        w.pid,
                        rss >> 20
                    );
                    state.memory_churn = if young { state.memory_churn + 1 } else { 0 };
                    replace.push((w.slot, Reason::Memory));
                }
            }
        }
        for (slot, reason) in replace {
            let churn = self.slots[slot].memory_churn;
            let delay = if reason == Reason::Memory {
                backoff(churn)
            } else {
                Duration::ZERO
            };
            if !delay.is_zero() {
                let limit = self.config.max_worker_memory.unwrap_or(0) >> 20;
                warn!(
                    "worker {slot} went over max-worker-memory ({limit} MiB) within \
                     {CRASH_WINDOW:?} of its boot, {churn} workers in a row: a fresh worker \
                     may need more than the limit; replacing it, next one in {delay:?}"
                );
                let state = &mut self.slots[slot];
                state.due = Some(Instant::now() + delay);
                state.pending = Some(reason);
            } else {
                self.replace(slot, reason);
            }
        }
    }
}
