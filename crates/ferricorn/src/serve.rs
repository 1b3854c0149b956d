//! The wiring of supervisor and worker, the only place they meet: the
//! supervisor binds and forks, and each forked child runs the worker with
//! the app.

use ferricorn_config::{Config, Loaded};
use ferricorn_shm::Shared;
use ferricorn_supervisor::{Handoff, Host, Listener, Listeners, Spawn};
use ferricorn_worker::Context;
use tracing::{error, info, warn};

use crate::EXIT_FAILURE;
use crate::app::{App, Served};
use crate::logging;
use crate::sources::Sources;

/// Binds (or adopts an upgrade's sockets), maps the shared memory, and
/// runs the supervisor until the server stops.
pub(crate) fn serve<A: App>(
    sources: &Sources,
    loaded: Loaded,
    factory: impl Fn(&Context) -> A,
) -> Result<(), u8> {
    let config = &loaded.config;
    if let Some(mask) = config.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    for w in &loaded.warnings {
        warn!("{w}");
    }
    info!(
        "ferricorn {} starting with {} worker{} (CPUs: {}), {} blocking threads each",
        env!("CARGO_PKG_VERSION"),
        config.workers,
        if config.workers == 1 { "" } else { "s" },
        config.cpus,
        config.threads
    );
    // After a SIGUSR2 upgrade, this image takes over the sockets, the shared
    // memory and the workers of the one it replaced.
    let handoff = Handoff::take();
    // The plain addresses beside TLS ones follow the app's; the metrics
    // address, if any, is bound last.
    let mut binds = config.bind.clone();
    binds.extend(config.insecure_bind.iter().cloned());
    binds.extend(config.metrics_bind.clone());
    let listeners = match &handoff {
        Some(h) => ferricorn_supervisor::adopt_all(&h.listeners, &binds),
        None => ferricorn_supervisor::bind(&binds, config.backlog),
    }
    .map_err(|e| {
        error!("{e}");
        EXIT_FAILURE
    })?;
    let as_bound = listeners.iter().count() == binds.len();
    let admin = (config.metrics_bind.is_some() && as_bound).then_some(binds.len() - 1);
    if config.metrics_bind.is_some() && admin.is_none() {
        warn!("metrics_bind is ignored: the sockets were passed in (systemd or fd://)");
    }
    let tls = config.certfile.is_some();
    // Passed-in sockets are all the app's, TLS with a certificate.
    let insecure = match as_bound {
        true => config.bind.len()..config.bind.len() + config.insecure_bind.len(),
        false => 0..0,
    };
    for (i, l) in listeners.iter().enumerate() {
        let url = l.url();
        if Some(i) == admin {
            info!("metrics and health at {url}");
        } else if tls && !insecure.contains(&i) {
            info!(
                "listening at {} (TLS)",
                url.replacen("http://", "https://", 1)
            );
        } else {
            info!("listening at {url}");
        }
    }
    let shared = match &handoff {
        Some(h) => Shared::adopt(h.shm),
        None => Shared::new(),
    }
    .map_err(|e| {
        error!("cannot map shared memory: {e}");
        EXIT_FAILURE
    })?;
    // The TLS session ticket secret every worker inherits (a reload may
    // turn TLS on).
    ferricorn_worker::prepare_tls();
    let host = Runner {
        sources,
        listeners: &listeners,
        admin,
        insecure,
        shared,
        factory,
    };
    match ferricorn_supervisor::run(config.clone(), shared, &listeners, handoff, host) {
        Ok(()) => {
            info!("stopped");
            Ok(())
        }
        Err(e) => {
            error!("{e}");
            Err(e.exit_code())
        }
    }
}

/// What the supervisor calls back: the worker's body, and reloads.
struct Runner<'a, F> {
    sources: &'a Sources,
    listeners: &'a Listeners,
    /// Which listener is the metrics address.
    admin: Option<usize>,
    /// Which listeners stay plain beside TLS ones (`insecure_bind`).
    insecure: std::ops::Range<usize>,
    shared: Shared,
    factory: F,
}

impl<A: App, F: Fn(&Context) -> A> Host for Runner<'_, F> {
    fn worker(&mut self, spawn: Spawn<'_>) -> i32 {
        logging::set_worker(spawn.slot);
        let mut inherited = ferricorn_worker::Listeners::default();
        let mut failed = None;
        for (i, l) in self.listeners.iter().enumerate() {
            match inherit(l) {
                Ok(l) if Some(i) == self.admin => inherited.admin = Some(l),
                Ok(l) if self.insecure.contains(&i) => inherited.insecure.push(l),
                Ok(l) => inherited.app.push(l),
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            None => ferricorn_worker::run(
                spawn.config,
                self.shared,
                (spawn.slot, spawn.cell_id),
                inherited,
                ferricorn_worker::Hooks {
                    reopen_logs: logging::reopen,
                    access_log: spawn
                        .config
                        .access_logfile
                        .as_ref()
                        .map(|_| logging::access as fn(&str)),
                },
                |ctx| Served((self.factory)(ctx)),
            ),
            Some(e) => {
                error!("cannot use an inherited listener: {e}");
                i32::from(EXIT_FAILURE)
            }
        }
    }

    /// The config file and the environment again; the original command line
    /// still wins.
    /// A certificate pair that does not load is refused here, so the
    /// workers serving keep theirs.
    fn reload(&mut self) -> Result<Config, ferricorn_config::Error> {
        let loaded = self.sources.load()?;
        for w in &loaded.warnings {
            warn!("{w}");
        }
        ferricorn_worker::tls_config(&loaded.config)
            .map_err(|e| ferricorn_config::Error::Value(e.to_string()))?;
        Ok(loaded.config)
    }

    fn reopen_logs(&mut self) {
        logging::reopen();
    }
}

/// The worker's own handle on a listener the supervisor bound.
fn inherit(l: &Listener) -> std::io::Result<ferricorn_worker::Listener> {
    Ok(match l {
        Listener::Tcp(l) => ferricorn_worker::Listener::Tcp(l.try_clone()?),
        Listener::Unix(l, _) => ferricorn_worker::Listener::Unix(l.try_clone()?),
    })
}
