//! The command line and the exit codes: parses the arguments, loads the
//! settings, and runs the server (`serve`), the `healthcheck`
//! subcommand, `--print-config` or `--check-config`.
//!
//! Exit codes: 0 clean stop, 1 runtime failure (such as an address in use),
//! 2 configuration error, 3 the app failed to start. `ferricorn healthcheck`
//! exits 0 when the server is ready, 1 when it is not or does not answer.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ferricorn_config::Options;
use ferricorn_shm::Shared;
use ferricorn_worker::Context;

use crate::app::App;
use crate::healthcheck::Target;
use crate::logging;
use crate::sources::Sources;
use crate::{EXIT_CONFIG, EXIT_FAILURE};

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

/// Parses `args`, loads the settings and runs the server. `Err` holds the
/// exit code; the failure is already reported.
pub(crate) fn main<A: App>(
    args: Vec<OsString>,
    sources: Sources,
    factory: impl Fn(&Context) -> A,
) -> Result<(), u8> {
    let cli = match Cli::try_parse_from(args) {
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
    let sources = Sources {
        cli: cli.options,
        cli_file: cli.config,
        ..sources
    };
    if let Some(Command::Healthcheck { url, timeout }) = &cli.command {
        return healthcheck(&sources, url.as_deref(), *timeout);
    }
    let loaded = sources.load().map_err(|e| {
        eprintln!("ferricorn: error: {e}");
        EXIT_CONFIG
    })?;
    if cli.print_config {
        print!("{}", loaded.report());
        return Ok(());
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
    logging::init(loaded.config.log_level, loaded.config.log_json());
    crate::serve::serve(&sources, loaded, factory)
}

/// `ferricorn healthcheck`: 0 ready, 1 not ready or no answer, 2 bad usage.
fn healthcheck(sources: &Sources, url: Option<&str>, timeout: f64) -> Result<(), u8> {
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
        None => sources
            .load()
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
