//! The SIGUSR2 upgrade from the supervisor's side: handing over and
//! exec-ing, and in the new image, finishing or failing the upgrade.

use tracing::{error, info, warn};

use super::{Arbiter, Event, Phase, Role};
use crate::upgrade::Handoff;
use crate::{Host, pidfile};
use ferricorn_shm::metrics::Exit;

impl<H: Host> Arbiter<H> {
    /// An upgrade is under way (or failed): workers of the previous image
    /// serve.
    pub(super) fn is_upgrading(&self) -> bool {
        matches!(self.phase, Phase::Upgrading { .. })
    }

    /// Once every slot has a ready worker of this image, the previous
    /// image's workers drain.
    pub(super) fn finish_upgrade(&mut self) {
        if !matches!(self.phase, Phase::Upgrading { failed: false }) || !self.all_ready() {
            return;
        }
        let mut n = 0;
        for w in self.workers.iter_mut().filter(|w| w.role == Role::Previous) {
            w.retire(Exit::Upgrade);
            // Its slot has a worker of this image now: a restart of the slot,
            // as when a successor takes over.
            if w.slot < self.desired {
                self.shared.count_restart(w.slot);
            }
            n += 1;
        }
        info!(
            "upgrade complete: {} of the previous binary draining",
            super::count_workers(n)
        );
        self.advance(Event::UpgradeDone);
        if let Some(path) = &self.config.pid {
            let _ = std::fs::remove_file(pidfile::Pidfile::oldbin(path));
        }
    }

    /// This image's workers cannot boot: stop trying while the previous
    /// image's workers serve.
    pub(super) fn fail_upgrade(&mut self, why: &str) {
        if !matches!(self.phase, Phase::Upgrading { failed: false }) {
            return;
        }
        error!("upgrade failed: {why}; the previous binary's workers keep serving");
        for w in self.workers.iter_mut().filter(|w| w.role == Role::Current) {
            w.retire(Exit::Upgrade);
        }
        self.advance(Event::UpgradeFailed);
    }

    /// SIGUSR2: check the binary now at this path, then exec it in place.
    pub(super) fn upgrade(&mut self) {
        if self.phase.is_ending() || self.is_upgrading() {
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
                .filter(|w| !matches!(w.role, Role::Retiring(_)))
                .map(|w| (w.pid.as_raw(), w.slot, w.cell_id))
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
}
