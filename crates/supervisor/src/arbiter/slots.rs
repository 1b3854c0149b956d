//! Filling slots and replacing workers: successors boot beside the
//! current worker, which drains only once its successor is ready; reload
//! and scaling are expressed as replacements and retirements.

use std::time::Instant;

use ferricorn_config::MAX_WORKERS;
use ferricorn_shm::CellState;
use ferricorn_shm::metrics::Exit;
use tracing::{error, info, warn};

use super::{Arbiter, CRASH_WINDOW, Event, Reason, Role, Worker, backoff, count_workers};
use crate::{Host, Spawn, process};

impl<H: Host> Arbiter<H> {
    /// A successor that is ready takes over its slot; the worker it replaces
    /// is told to drain only now.
    pub(super) fn promote_ready_successors(&mut self) {
        let ready: Vec<usize> = (0..self.workers.len())
            .filter(|&i| {
                matches!(self.workers[i].role, Role::Successor(_))
                    && self.state(&self.workers[i]) == CellState::Ready
            })
            .collect();
        for i in ready {
            let (slot, pid) = (self.workers[i].slot, self.workers[i].pid);
            let Role::Successor(reason) = self.workers[i].role else {
                continue;
            };
            for old in self
                .workers
                .iter_mut()
                .filter(|w| w.slot == slot && w.role == Role::Current)
            {
                info!(
                    "worker {slot} (pid {}) replaced by pid {pid} ({}); draining it",
                    old.pid,
                    reason.as_str()
                );
                old.retire(reason.exit());
            }
            self.workers[i].role = Role::Current;
            self.slots[slot].crashes = 0;
            self.shared.count_restart(slot);
            if reason == Reason::Reload && !self.reload_in_progress() {
                self.previous = None;
                info!("reload complete");
            }
        }
    }

    pub(super) fn reload_in_progress(&self) -> bool {
        self.workers
            .iter()
            .any(|w| w.role == Role::Successor(Reason::Reload))
    }

    /// Forks the workers that slots are due to get.
    pub(super) fn fill_slots(&mut self) {
        let now = Instant::now();
        for slot in 0..self.desired {
            let state = &self.slots[slot];
            if state.due.is_none_or(|at| at > now) {
                continue;
            }
            let has = |role: fn(&Role) -> bool| {
                self.workers.iter().any(|w| w.slot == slot && role(&w.role))
            };
            if let Some(reason) = state.pending
                && has(|r| *r == Role::Current)
            {
                if has(|r| matches!(r, Role::Successor(_))) {
                    // Another replacement is already under way.
                    self.slots[slot].due = None;
                    self.slots[slot].pending = None;
                } else {
                    self.spawn(slot, Role::Successor(reason));
                }
                continue;
            }
            if !has(|r| *r == Role::Current) {
                // A successor whose current worker died takes its place.
                if let Some(w) = self
                    .workers
                    .iter_mut()
                    .find(|w| w.slot == slot && matches!(w.role, Role::Successor(_)))
                {
                    w.role = Role::Current;
                    self.slots[slot].due = None;
                    self.slots[slot].pending = None;
                } else {
                    self.spawn(slot, Role::Current);
                }
            } else {
                self.slots[slot].due = None;
            }
        }
    }

    /// Starts a successor for slot `slot`; its current worker keeps serving
    /// until the successor is ready.
    pub(super) fn replace(&mut self, slot: usize, reason: Reason) {
        let generation = self.generation;
        // A successor from before a reload boots with stale settings.
        for w in &mut self.workers {
            if w.slot == slot && matches!(w.role, Role::Successor(_)) && w.generation != generation
            {
                w.retire(Exit::Reload);
            }
        }
        if self
            .workers
            .iter()
            .any(|w| w.slot == slot && matches!(w.role, Role::Successor(_)))
        {
            return;
        }
        if self
            .workers
            .iter()
            .any(|w| w.slot == slot && w.role == Role::Current)
        {
            self.spawn(slot, Role::Successor(reason));
        } else {
            self.slots[slot].due = Some(Instant::now());
        }
    }

    pub(super) fn spawn(&mut self, slot: usize, role: Role) {
        let state = &mut self.slots[slot];
        state.due = None;
        state.pending = None;
        let Some(cell_id) = self.shared.claim(slot) else {
            error!("no free worker cell for worker {slot}; retrying");
            self.schedule(slot, true, None);
            return;
        };
        let spawn = Spawn {
            slot,
            cell_id,
            config: &self.config,
        };
        let host = &mut self.host;
        let cell = self.shared.cell(cell_id);
        match process::fork_worker(self.config.identity, cell, || host.worker(spawn)) {
            Ok(pid) => {
                info!("booting worker {slot} with pid {pid}");
                self.workers.push(Worker {
                    pid,
                    slot,
                    cell_id,
                    role,
                    generation: self.generation,
                    spawned: Instant::now(),
                    aborted: None,
                    killed: false,
                    memory_strikes: 0,
                });
            }
            Err(e) => {
                if let Some(c) = self.shared.cell(cell_id) {
                    c.clear();
                }
                error!("cannot fork worker {slot}: {e}");
                let pending = if let Role::Successor(r) = role {
                    Some(r)
                } else {
                    None
                };
                self.schedule(slot, true, pending);
            }
        }
    }

    /// Sets when the slot gets its next worker: at once, or after a backoff
    /// that doubles with each crash in a row.
    pub(super) fn schedule(&mut self, slot: usize, crashed: bool, pending: Option<Reason>) {
        let state = &mut self.slots[slot];
        state.crashes = if crashed { state.crashes + 1 } else { 0 };
        let delay = backoff(state.crashes);
        if !delay.is_zero() {
            warn!(
                "worker {slot} died {} times in a row within {:?} of boot; restarting it in {:?}",
                state.crashes, CRASH_WINDOW, delay
            );
        }
        state.due = Some(Instant::now() + delay);
        state.pending = pending;
    }

    pub(super) fn reload(&mut self) {
        if self.phase.is_ending() {
            return;
        }
        let mut config = match self.host.reload() {
            Ok(c) => c,
            Err(e) => {
                error!("reload: {e}; keeping the current settings and workers");
                return;
            }
        };
        // Reading the settings ran startup code again.
        self.advance(Event::Reloaded);
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
        if config.metrics_bind != self.config.metrics_bind {
            warn!("reload: metrics_bind changes need a restart; keeping the current one");
            config.metrics_bind.clone_from(&self.config.metrics_bind);
        }
        let old = self.desired;
        let new = config.workers.clamp(1, MAX_WORKERS);
        info!(
            "reload: replacing {} with {}",
            count_workers(old),
            count_workers(new)
        );
        self.shared.header().events.count_reload();
        self.previous = Some(std::mem::replace(&mut self.config, config));
        self.watch_as_configured();
        self.generation += 1;
        self.desired = new;
        for slot in 0..old.min(new) {
            self.replace(slot, Reason::Reload);
        }
        for slot in new..old {
            self.retire_slot(slot);
        }
        let now = Instant::now();
        for state in &mut self.slots[old.min(new)..new] {
            state.due = Some(now);
        }
    }

    pub(super) fn scale(&mut self, delta: i8) {
        if self.phase.is_stopping() {
            return;
        }
        if delta > 0 && self.desired < MAX_WORKERS {
            self.desired += 1;
            info!("scaling up to {}", count_workers(self.desired));
            self.slots[self.desired - 1].due = Some(Instant::now());
        } else if delta > 0 {
            warn!("TTIN ignored: already at {MAX_WORKERS} workers, the most one server runs");
        } else if delta < 0 && self.desired > 1 {
            self.desired -= 1;
            info!("scaling down to {}", count_workers(self.desired));
            self.retire_slot(self.desired);
        } else if delta < 0 {
            warn!("TTOU ignored: already at 1 worker, the fewest a server runs (TERM stops it)");
        }
        self.publish_desired();
    }

    /// Drains every worker of a slot beyond the desired count.
    pub(super) fn retire_slot(&mut self, slot: usize) {
        let state = &mut self.slots[slot];
        state.due = None;
        state.pending = None;
        for w in self
            .workers
            .iter_mut()
            .filter(|w| w.slot == slot && !matches!(w.role, Role::Retiring(_)))
        {
            info!(
                "worker {slot} (pid {}) retiring ({})",
                w.pid,
                Reason::ScaleDown.as_str()
            );
            w.retire(Exit::ScaleDown);
        }
    }
}
