//! The command line, the exit codes, and the wiring of supervisor and worker.
//!
//! Exit codes: 0 clean stop, 1 runtime failure (such as an address in use),
//! 2 configuration error, 3 the app failed to start. `ferricorn healthcheck`
//! exits 0 when the server is ready, 1 when it is not or does not answer.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ferricorn_config::{Config, Loaded, Options};
use ferricorn_shm::Shared;
use ferricorn_supervisor::{Handoff, Host, Identity, Listener, Listeners, Spawn};
use ferricorn_worker::Context;
use tracing::{error, info, warn};

use crate::app::{App, Served};
use crate::healthcheck::Target;
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
    #[command(subcommand)]
    command: Option<Command>,

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

#[derive(Debug, Subcommand)]
enum Command {
    /// Ask a running server's readiness endpoint; exit 0 when ready, 1 when not or when it does not answer
    Healthcheck {
        /// What to ask: http://HOST[:PORT][/PATH] or unix:SOCKET[:/PATH] [default: the readiness endpoint of the server these settings describe]
        #[arg(long, value_name = "URL")]
        url: Option<String>,

        /// Seconds to wait for the answer
        #[arg(long, value_name = "SECS", default_value_t = 5.0)]
        timeout: f64,
    },
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
    if let Some(Command::Healthcheck { url, timeout }) = &cli.command {
        return healthcheck(&cli, url.as_deref(), *timeout);
    }
    let loaded = ferricorn_config::load(&cli.options, cli.config.as_deref()).map_err(|e| {
        eprintln!("ferricorn: error: {e}");
        EXIT_CONFIG
    })?;
    if cli.print_config {
        print!("{}", loaded.report());
        return Ok(());
    }
    if let Some(format) = &loaded.config.access_logformat
        && let Err(e) = format.parse::<ferricorn_config::AccessLogFormat>()
    {
        eprintln!("ferricorn: error: invalid value for `access_logformat`: {e}");
        return Err(EXIT_CONFIG);
    }
    if let Err(e) = Identity::of(&loaded.config) {
        eprintln!("ferricorn: error: invalid value for `user`/`group`: {e}");
        return Err(EXIT_CONFIG);
    }
    if cli.check_config {
        // Asked by a running server before it upgrades to this binary.
        if let Some(theirs) = std::env::var_os(ferricorn_supervisor::upgrade::SHM_SIZE_ENV) {
            let ours = Shared::size().to_string();
            if theirs != *ours {
                eprintln!(
                    "ferricorn: error: this binary lays out the shared memory differently ({ours} bytes, the running server {} bytes); it cannot take over by USR2: restart instead",
                    theirs.to_string_lossy()
                );
                return Err(EXIT_CONFIG);
            }
        }
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

/// `ferricorn healthcheck`: 0 ready, 1 not ready or no answer, 2 bad usage.
fn healthcheck(cli: &Cli, url: Option<&str>, timeout: f64) -> Result<(), u8> {
    let config_error = |e: String| {
        eprintln!("ferricorn healthcheck: error: {e}");
        EXIT_CONFIG
    };
    if !(timeout.is_finite() && timeout > 0.0 && timeout <= 3600.0) {
        return Err(config_error(format!(
            "invalid value for `--timeout`: {timeout} is not a number of seconds from 0 to 3600"
        )));
    }
    let target = match url {
        Some(url) => Target::parse(url, "/readyz"),
        None => ferricorn_config::load(&cli.options, cli.config.as_deref())
            .map_err(|e| e.to_string())
            .and_then(|loaded| Target::of(&loaded.config)),
    }
    .map_err(config_error)?;
    match crate::healthcheck::probe(&target, Duration::from_secs_f64(timeout)) {
        Ok((200, body)) => {
            println!("ready: 200 {body}");
            Ok(())
        }
        Ok((status, body)) => {
            println!("not ready: {status} {body}");
            Err(EXIT_FAILURE)
        }
        Err(e) => {
            println!("not ready: {e}");
            Err(EXIT_FAILURE)
        }
    }
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
    // The metrics address, if any, is bound last.
    let mut binds = config.bind.clone();
    binds.extend(config.metrics_bind.clone());
    let listeners = match &handoff {
        Some(h) => ferricorn_supervisor::adopt_all(&h.listeners, &binds),
        None => ferricorn_supervisor::bind(&binds, config.backlog),
    }
    .map_err(|e| {
        error!("{e}");
        EXIT_FAILURE
    })?;
    let admin = (config.metrics_bind.is_some() && listeners.iter().count() == binds.len())
        .then_some(binds.len() - 1);
    if config.metrics_bind.is_some() && admin.is_none() {
        warn!("metrics_bind is ignored: the sockets were passed in (systemd or fd://)");
    }
    for (i, l) in listeners.iter().enumerate() {
        if Some(i) == admin {
            info!("metrics and health at {}", l.url());
        } else {
            info!("listening at {}", l.url());
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
    let host = Runner {
        cli,
        listeners: &listeners,
        admin,
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
    /// Which listener is the metrics address.
    admin: Option<usize>,
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
