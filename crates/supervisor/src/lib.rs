//! ferricorn's supervisor: synchronous, no async runtime, no threads.
//!
//! - [`socket`]: binds the listening sockets ([`bind`]) before any fork.
//! - `signals`: the self-pipe that turns Unix signals into bytes the loop polls.
//! - `process`: forks one worker with signals blocked across the fork, and
//!   switches it to `--user`/`--group` (found when the settings loaded).
//! - `arbiter`: the loop that fills slots, replaces workers before retiring
//!   them, reloads, recycles, kills hung workers, backs off crash loops,
//!   scales and stops.
//! - `pidfile`: the `--pid` file.
//! - `watch`: the files `--reload` watches.
//! - `memory`: drops the code pages only startup used from the supervisor's
//!   RSS once the workers are ready.
//!
//! [`run`] is the entry point: it installs the signal handlers, forks
//! `config.workers` workers, each running [`Host::worker`] and exiting with
//! its return value, and returns when the server has stopped.
//!
//! No thread or runtime may exist in this process before a fork: a child
//! forked from a process with a running runtime can inherit locks nobody
//! will release.

mod arbiter;
mod memory;
mod pidfile;
mod process;
mod signals;
pub mod socket;
pub mod upgrade;
mod watch;

use ferricorn_config::Config;
use ferricorn_shm::Shared;

pub use socket::{Listener, Listeners, adopt_all, bind};
pub use upgrade::Handoff;

/// Why the supervisor stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A worker's app failed its lifespan startup.
    #[error("worker {slot} failed to boot: {message}")]
    BootFailed {
        /// The worker's slot.
        slot: usize,
        /// The app's error.
        message: String,
    },
    /// A system call the supervisor needs failed.
    #[error("{what}: {source}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: nix::Error,
    },
}

impl Error {
    /// The process exit code for this failure: 3 when the app failed to
    /// start, 1 for anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::BootFailed { .. } => 3,
            Self::Bind { .. } | Self::Os { .. } => 1,
        }
    }
}

/// What the supervisor asks of the program around it.
pub trait Host {
    /// Runs in a freshly forked worker; returns the worker's exit code.
    fn worker(&mut self, spawn: Spawn<'_>) -> i32;

    /// Reads the settings again, for SIGHUP. An error is logged and the
    /// server keeps its current settings and workers.
    fn reload(&mut self) -> Result<Config, ferricorn_config::Error>;

    /// Reopens the supervisor's log files, for SIGUSR1 (workers get the
    /// signal forwarded and reopen their own).
    fn reopen_logs(&mut self);
}

/// The worker being forked.
#[derive(Debug, Clone, Copy)]
pub struct Spawn<'a> {
    /// Its slot, from 0 to workers - 1.
    pub slot: usize,
    /// The id of its cell in the shared memory.
    pub cell_id: usize,
    /// The settings it runs with.
    pub config: &'a Config,
}

/// Supervises workers until the server stops. `handoff` holds the workers of
/// the image this one replaced in an upgrade: they serve until this image's
/// workers are ready.
pub fn run(
    config: Config,
    shared: Shared,
    listeners: &Listeners,
    handoff: Option<Handoff>,
    host: impl Host,
) -> Result<(), Error> {
    let signals = signals::Signals::install().map_err(|source| Error::Os {
        what: "installing signal handlers",
        source,
    })?;
    let mut arbiter = arbiter::Arbiter::new(config, shared, signals, listeners.fds(), host);
    if let Some(handoff) = handoff {
        arbiter.adopt(&handoff.workers);
    }
    arbiter.run()
}
