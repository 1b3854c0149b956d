//! The command line, the exit codes, and the wiring of supervisor and worker.
//!
//! Exit codes: 0 clean stop, 1 runtime failure (such as an address in use),
//! 2 configuration error, 3 the app failed to start.

use std::path::PathBuf;

use clap::Parser;
use ferricorn_config::{Config, Loaded, Options};
use ferricorn_shm::Shared;
use ferricorn_supervisor::{Handoff, Host, Identity, Listener, Listeners, Spawn};
use ferricorn_worker::Context;
use tracing::{error, info, warn};

use crate::app::{App, Served};
use crate::logging;

/// Exit code of a runtime failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a configuration error.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code when the app failed its lifespan startup.
pub const EXIT_APP_STARTUP: u8 = 3;

/// ferricorn: a pre-fork application server for async Rust services.
///
/// Every option can also be set as FERRICORN_<NAME> in the environment and
/// as a key in the TOML config file (snake case); the command line wins.
#[derive(Debug, Parser)]
#[command(name = "ferricorn", version)]
pub(crate) struct Cli {
    #[command(flatten)]
    options: Options,

    /// TOML config file [default: ferricorn.toml if present; env FERRICORN_CONFIG]
    #[arg(short, long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Print every effective setting with its source, then exit
    #[arg(long)]
    print_config: bool,

    /// Validate the settings, then exit 0, or 2 with the error
    #[arg(long, conflicts_with = "print_config")]
    check_config: bool,
}

/// Parses the command line, loads the settings and runs the server.
/// `Err` holds the exit code; the failure is already reported.
pub(crate) fn main<A: App>(factory: impl Fn(&Context) -> A) -> Result<(), u8> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return Ok(());
        }
        Err(e) => {
            eprintln!(
                "ferricorn: error: {}",
                ferricorn_config::first_line(&e.to_string())
            );
            return Err(EXIT_CONFIG);
        }
    };
    let loaded = ferricorn_config::load(&cli.options, cli.config.as_deref()).map_err(|e| {
        eprintln!("ferricorn: error: {e}");
        EXIT_CONFIG
    })?;
    if cli.print_config {
        print!("{}", loaded.report());
        return Ok(());
    }
    if let Some(format) = &loaded.config.access_logformat
        && let Err(e) = ferricorn_worker::access::Format::parse(format, false)
    {
        eprintln!("ferricorn: error: invalid value for `access_logformat`: {e}");
        return Err(EXIT_CONFIG);
    }
    if let Err(e) = Identity::of(&loaded.config) {
        eprintln!("ferricorn: error: invalid value for `user`/`group`: {e}");
        return Err(EXIT_CONFIG);
    }
    if cli.check_config {
        println!("ferricorn: configuration is valid");
        return Ok(());
    }
    if let Err(e) = logging::open_file(loaded.config.error_logfile.as_deref()) {
        let path = loaded
            .config
            .error_logfile
            .as_deref()
            .unwrap_or(std::path::Path::new("-"));
        eprintln!(
            "ferricorn: error: cannot open error_logfile {}: {e}",
            path.display()
        );
        return Err(EXIT_FAILURE);
    }
    if let Some(path) = &loaded.config.access_logfile
        && let Err(e) = logging::open_access(path)
    {
        eprintln!(
            "ferricorn: error: cannot open access_logfile {}: {e}",
            path.display()
        );
        return Err(EXIT_FAILURE);
    }
    logging::init(loaded.config.log_level, loaded.config.log_json);
    serve(&cli, loaded, factory)
}

fn serve<A: App>(cli: &Cli, loaded: Loaded, factory: impl Fn(&Context) -> A) -> Result<(), u8> {
    let config = &loaded.config;
    if let Some(mask) = config.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    for w in &loaded.warnings {
        warn!("{w}");
    }
    info!(
        "ferricorn {} starting with {} workers (CPUs: {}), {} blocking threads each",
        env!("CARGO_PKG_VERSION"),
        config.workers,
        config.cpus,
        config.threads
    );
    // After a SIGUSR2 upgrade, this image takes over the sockets, the shared
    // memory and the workers of the one it replaced.
    let handoff = Handoff::take();
    let listeners = match &handoff {
        Some(h) => ferricorn_supervisor::adopt_all(&h.listeners, &config.bind),
        None => ferricorn_supervisor::bind(&config.bind, config.backlog),
    }
    .map_err(|e| {
        error!("{e}");
        EXIT_FAILURE
    })?;
    for l in listeners.iter() {
        info!("listening at {}", l.url());
    }
    let shared = match &handoff {
        Some(h) => Shared::adopt(h.shm),
        None => Shared::new(),
    }
    .map_err(|e| {
        error!("cannot map shared memory: {e}");
        EXIT_FAILURE
    })?;
    let host = Runner {
        cli,
        listeners: &listeners,
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
    cli: &'a Cli,
    listeners: &'a Listeners,
    shared: Shared,
    factory: F,
}

impl<A: App, F: Fn(&Context) -> A> Host for Runner<'_, F> {
    fn worker(&mut self, spawn: Spawn<'_>) -> i32 {
        logging::set_worker(spawn.index);
        let inherited = self
            .listeners
            .iter()
            .map(inherit)
            .collect::<Result<Vec<_>, _>>();
        match inherited {
            Ok(inherited) => ferricorn_worker::run(
                spawn.config,
                self.shared,
                (spawn.index, spawn.cell),
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
            Err(e) => {
                error!("cannot use an inherited listener: {e}");
                i32::from(EXIT_FAILURE)
            }
        }
    }

    /// The config file and the environment again; the original command line
    /// still wins.
    fn reload(&mut self) -> Result<Config, String> {
        let loaded = ferricorn_config::load(&self.cli.options, self.cli.config.as_deref())
            .map_err(|e| e.to_string())?;
        Identity::of(&loaded.config)?;
        for w in &loaded.warnings {
            warn!("{w}");
        }
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
