//! Where the supervisor is in its life, and the one function that moves it
//! from one phase to the next.
//!
//! ```text
//!  Starting ──Ready──▶ Serving{settled: false} ──Settled──▶ Serving{settled: true}
//!                        ▲        ▲                               │
//!  Upgrading ─UpgradeDone┘        └──────────── Reloaded ─────────┘
//!   │ UpgradeFailed: Upgrading{failed: true}
//!  any ──Term──▶ Delaying (with --shutdown-delay) ──Stop──▶ Stopping
//!  any ──Stop──▶ Stopping (graceful, or quick: a quick stop also ends a graceful one)
//! ```

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tracing::{debug, info};

use super::{Arbiter, QUICK_TIMEOUT, SHUTDOWN_GRACE};
use crate::Host;

/// The supervisor's phase.
#[derive(Debug)]
pub(super) enum Phase {
    /// No worker has finished startup yet: one that fails to boot stops
    /// the server, rather than being retried.
    Starting,
    /// Some worker has finished startup. `settled` once every slot was
    /// ready and the code only startup ran left the supervisor's RSS (see
    /// `memory`); a reload runs startup code again.
    Serving { settled: bool },
    /// This image took over the workers of the one an upgrade replaced;
    /// they serve until this image's workers are ready. `failed` when
    /// those could not boot: the previous workers serve on.
    Upgrading { failed: bool },
    /// SIGTERM with `--shutdown-delay`: readiness answers 503 while the
    /// workers serve on until `until`.
    Delaying { until: Instant },
    /// Every worker was told to stop.
    Stopping(Stopping),
}

/// A stop under way.
#[derive(Debug)]
pub(super) struct Stopping {
    /// When the workers still running get SIGKILL.
    pub deadline: Instant,
    pub graceful: bool,
    /// SIGKILL was sent.
    pub killed: bool,
}

/// What moves the supervisor from one phase to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    /// A worker finished startup.
    Ready,
    /// Every slot is ready and the startup code can leave the RSS.
    Settled,
    /// A reload read the settings again.
    Reloaded,
    /// Every slot has a ready worker of this image: the previous image's
    /// workers drain.
    UpgradeDone,
    /// This image's workers cannot boot.
    UpgradeFailed,
    /// SIGTERM: stop gracefully, after the shutdown delay if one is set.
    Term,
    /// Stop now, gracefully (the delay is over, or the app failed to
    /// start) or quickly (SIGINT, SIGQUIT).
    Stop { graceful: bool },
}

impl Phase {
    /// The phase `event` leads to from this one, `None` if it means
    /// nothing here. `delay` is `--shutdown-delay`; `stop` makes a stop that
    /// starts now.
    fn next(&self, event: Event, delay: Duration, stop: impl Fn(bool) -> Stopping) -> Option<Self> {
        use {Event as E, Phase as P};
        Some(match (self, event) {
            (P::Starting, E::Ready) => P::Serving { settled: false },
            (P::Serving { settled: false }, E::Settled) => P::Serving { settled: true },
            (P::Serving { .. }, E::Reloaded) => P::Serving { settled: false },
            (P::Upgrading { failed: false }, E::UpgradeDone) => P::Serving { settled: false },
            (P::Upgrading { failed: false }, E::UpgradeFailed) => P::Upgrading { failed: true },
            (P::Delaying { .. } | P::Stopping(_), E::Term) => return None,
            (_, E::Term) if !delay.is_zero() => P::Delaying {
                until: Instant::now() + delay,
            },
            // A second stop only matters when it turns a graceful one quick.
            (P::Stopping(s), E::Stop { graceful }) if graceful || !s.graceful => return None,
            (_, E::Term) => P::Stopping(stop(true)),
            (_, E::Stop { graceful }) => P::Stopping(stop(graceful)),
            _ => return None,
        })
    }

    /// Delaying or stopping: the server is on its way out.
    pub(super) fn is_ending(&self) -> bool {
        matches!(self, Self::Delaying { .. } | Self::Stopping(_))
    }

    pub(super) fn is_stopping(&self) -> bool {
        matches!(self, Self::Stopping(_))
    }
}

impl<H: Host> Arbiter<H> {
    /// Moves to the phase `event` leads to from the current one, doing what
    /// entering it takes; an event that means nothing in the current phase
    /// changes nothing.
    pub(super) fn advance(&mut self, event: Event) {
        let delay = self.config.shutdown_delay;
        let Some(next) = self
            .phase
            .next(event, delay, |graceful| self.stopping(graceful))
        else {
            return;
        };
        use Phase as P;
        match &next {
            P::Serving { settled: true } => {
                let advised = crate::memory::drop_unused_code();
                debug!("dropped the supervisor's startup code pages ({advised} bytes of mappings)");
            }
            P::Upgrading { failed: true } => {}
            P::Delaying { .. } => {
                info!("shutdown delay: serving for {delay:?} more with readiness 503");
                self.shared.header().set_draining();
            }
            P::Stopping(stop) => {
                if stop.graceful {
                    let drain = self.config.graceful_timeout;
                    info!("graceful stop: draining for up to {drain:?}");
                } else {
                    info!("quick stop");
                }
                self.shared.header().set_draining();
                self.signal_all(if stop.graceful {
                    Signal::SIGTERM
                } else {
                    Signal::SIGQUIT
                });
            }
            P::Starting | P::Serving { .. } | P::Upgrading { .. } => {}
        }
        self.phase = next;
    }

    /// A stop starting now: graceful (the workers drain for up to
    /// graceful-timeout, then run lifespan shutdown) or quick.
    fn stopping(&self, graceful: bool) -> Stopping {
        let wait: Duration = if graceful {
            self.config.graceful_timeout + SHUTDOWN_GRACE
        } else {
            QUICK_TIMEOUT
        };
        Stopping {
            deadline: Instant::now() + wait,
            graceful,
            killed: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stop(graceful: bool) -> Stopping {
        Stopping {
            deadline: Instant::now(),
            graceful,
            killed: false,
        }
    }

    /// The phase after `events` from `from`, as its name.
    fn after(from: Phase, events: &[Event], delay: u64) -> String {
        let delay = Duration::from_secs(delay);
        let mut phase = from;
        for &e in events {
            if let Some(next) = phase.next(e, delay, stop) {
                phase = next;
            }
        }
        match phase {
            Phase::Stopping(s) if s.graceful => "stopping gracefully".into(),
            Phase::Stopping(_) => "stopping quickly".into(),
            Phase::Delaying { .. } => "delaying".into(),
            other => format!("{other:?}"),
        }
    }

    use Event as E;

    #[test]
    fn a_server_starts_serves_and_settles() {
        assert_eq!(after(Phase::Starting, &[E::Settled], 0), "Starting");
        assert_eq!(
            after(Phase::Starting, &[E::Ready], 0),
            "Serving { settled: false }"
        );
        let settled = [E::Ready, E::Settled];
        assert_eq!(
            after(Phase::Starting, &settled, 0),
            "Serving { settled: true }"
        );
        let reloaded = [E::Ready, E::Settled, E::Reloaded];
        assert_eq!(
            after(Phase::Starting, &reloaded, 0),
            "Serving { settled: false }"
        );
        assert_eq!(after(Phase::Starting, &[E::Reloaded], 0), "Starting");
    }

    #[test]
    fn an_upgrade_ends_serving_or_failed_for_good() {
        let up = || Phase::Upgrading { failed: false };
        assert_eq!(
            after(up(), &[E::UpgradeDone], 0),
            "Serving { settled: false }"
        );
        let failed = [E::UpgradeFailed, E::UpgradeDone, E::UpgradeFailed];
        assert_eq!(after(up(), &failed, 0), "Upgrading { failed: true }");
        assert_eq!(
            after(up(), &[E::Ready, E::Reloaded], 0),
            "Upgrading { failed: false }"
        );
    }

    #[test]
    fn term_waits_out_the_delay_and_a_quick_stop_ends_a_graceful_one() {
        let serving = || Phase::Serving { settled: true };
        assert_eq!(after(serving(), &[E::Term], 0), "stopping gracefully");
        assert_eq!(after(serving(), &[E::Term], 5), "delaying");
        assert_eq!(after(serving(), &[E::Term, E::Term], 5), "delaying");
        let over = [E::Term, E::Stop { graceful: true }];
        assert_eq!(after(serving(), &over, 5), "stopping gracefully");
        let quick = [E::Term, E::Stop { graceful: false }];
        assert_eq!(after(serving(), &quick, 0), "stopping quickly");
        let back = [
            E::Stop { graceful: false },
            E::Stop { graceful: true },
            E::Term,
        ];
        assert_eq!(after(serving(), &back, 5), "stopping quickly");
        // A stop ends every other phase too, and nothing leaves it but a
        // quicker stop.
        let up = Phase::Upgrading { failed: false };
        assert_eq!(
            after(
                up,
                &[E::Stop { graceful: true }, E::Ready, E::UpgradeDone],
                0
            ),
            "stopping gracefully"
        );
        assert_eq!(after(Phase::Starting, &[E::Term, E::Ready], 3), "delaying");
    }

    #[test]
    fn only_delaying_and_stopping_are_ending() {
        let stopping = Phase::Stopping(stop(true));
        assert!(stopping.is_ending() && stopping.is_stopping());
        let delaying = Phase::Delaying {
            until: Instant::now(),
        };
        assert!(delaying.is_ending() && !delaying.is_stopping());
        for p in [
            Phase::Starting,
            Phase::Serving { settled: true },
            Phase::Upgrading { failed: false },
        ] {
            assert!(!p.is_ending(), "{p:?}");
        }
    }
}
