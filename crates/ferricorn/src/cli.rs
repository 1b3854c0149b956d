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

use clap::Subcommand;
use ferricorn_config::Options;
use ferricorn_shm::Shared;
use ferricorn_worker::Context;

use crate::app::App;
use crate::healthcheck::Target;
use crate::logging;
use crate::sources::Sources;
use crate::{EXIT_CONFIG, EXIT_FAILURE};

/// The command line ferricorn reads: every setting's flag, `-c/--config`,
/// `--print-config`, `--check-config` and the `healthcheck` subcommand.
///
/// [`Server`](crate::Server) reads it from the process's arguments itself.
/// A program with flags of its own flattens it into its own clap parser
/// and hands it over with [`Server::cli`](crate::Server::cli):
///
/// ```no_run
/// use clap::Parser;
/// use ferricorn::{App, Body, Context, Request, Response};
///
/// /// Says hello.
/// #[derive(Parser)]
/// #[command(name = "hello", version)]
/// struct Cli {
///     /// What to say
///     #[arg(long, default_value = "Hello")]
///     greeting: String,
///     #[command(flatten)]
///     server: ferricorn::Args,
/// }
///
/// struct Hello(String);
///
/// impl App for Hello {
///     async fn call(&self, _req: Request) -> Response {
///         Response::new(Body::from(self.0.clone()))
///     }
/// }
///
/// fn main() -> std::process::ExitCode {
///     let cli = Cli::parse();
///     let greeting = cli.greeting;
///     ferricorn::Server::new(move |_: &Context| Hello(greeting.clone()))
///         .cli(cli.server)
///         .run()
/// }
/// ```
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    options: Options,

    /// TOML config file [default: ferricorn.toml if present; env FERRICORN_CONFIG]
    #[arg(short, long, value_name = "PATH", global = true, help_heading = SETTINGS_HEADING)]
    config: Option<PathBuf>,

    /// Print the effective settings as a TOML file, each with where it came from, then exit
    #[arg(long, help_heading = SETTINGS_HEADING)]
    print_config: bool,

    /// Validate the settings, then exit 0, or 2 with the error
    #[arg(long, conflicts_with = "print_config", help_heading = SETTINGS_HEADING)]
    check_config: bool,
}

const SETTINGS_HEADING: &str = "Settings";

#[derive(Debug, Clone, Subcommand)]
enum Command {
    /// Ask the running server's readiness endpoint; exit 0 when ready, 1 when not or when it does not answer
    Healthcheck {
        /// What to ask: http://HOST[:PORT][/PATH] or unix:SOCKET[:/PATH] [default: the running server of this executable, else the address the settings give]
        #[arg(long, value_name = "URL")]
        url: Option<String>,

        /// Seconds to wait for the answer
        #[arg(long, value_name = "SECS", default_value_t = 5.0)]
        timeout: f64,
    },
}

/// The name and version `--help` and `--version` show.
#[derive(Debug, Clone, Default)]
pub(crate) struct Program {
    pub name: Option<String>,
    pub version: Option<String>,
    pub about: Option<String>,
}

impl Program {
    /// The command line: the program's name, version and description,
    /// ferricorn's flags, and what `--help` ends with.
    fn command(&self, argv0: Option<&OsString>) -> clap::Command {
        use clap::Args as _;
        // Unnamed, a program is named after its executable.
        let name = self.name.clone().unwrap_or_else(|| {
            argv0
                .map(std::path::Path::new)
                .and_then(|p| p.file_name())
                .map_or_else(
                    || "ferricorn".to_owned(),
                    |n| n.to_string_lossy().into_owned(),
                )
        });
        // A program that gives no version of its own says what serves it.
        let version = self.version.clone().unwrap_or_else(|| {
            let ours = env!("CARGO_PKG_VERSION");
            if name == "ferricorn" {
                ours.to_owned()
            } else {
                format!("(ferricorn {ours})")
            }
        });
        let about = self.about.clone().unwrap_or_else(|| {
            if name == "ferricorn" {
                "ferricorn: a pre-fork application server for async Rust services (serving its demo app)".to_owned()
            } else {
                format!("{name}, served by ferricorn, a pre-fork application server")
            }
        });
        Args::augment_args(clap::Command::new(name))
            .version(version)
            .about(about)
            .long_about(None)
            .after_help(after_help())
    }
}

/// What `--help` ends with: the signals, the exit codes and the other
/// servers' environment names read.
fn after_help() -> String {
    let mut names: Vec<&str> = ferricorn_config::SETTINGS
        .iter()
        .flat_map(|s| s.env.iter().copied())
        .collect();
    names.push(ferricorn_config::env::GUNICORN_CMD_ARGS);
    format!(
        "Every option is also FERRICORN_<NAME> in the environment (FERRICORN_HOST, FERRICORN_PORT, FERRICORN_CONFIG too) \
         and a snake_case key in the TOML file; the command line wins over the environment, the environment over the file.

Signals (to the supervisor):
  TERM        graceful stop: finish in-flight requests, then exit 0
  INT, QUIT   quick stop
  HUP         reload: re-read the settings and replace every worker, no request lost
  TTIN, TTOU  one worker more, one fewer
  USR1        reopen the log files
  USR2        upgrade: re-execute the binary in place, no request lost

Exit codes: 0 clean stop, 1 runtime failure (such as an address in use), 2 configuration error, 3 the app failed to start.

Other servers' environment names read: {}.
In GUNICORN_CMD_ARGS, Gunicorn's own flags (-k, --preload, --worker-tmp-dir, --statsd-host...) are ignored with a warning each.",
        names.join(", ")
    )
}

/// Reports a value a check after loading refused as a bad setting is
/// reported, naming the setting and its layer; the exit code.
fn refused(loaded: &ferricorn_config::Loaded, key: &str, message: String) -> u8 {
    let origin = loaded
        .values
        .iter()
        .find(|v| v.key == key)
        .map_or_else(|| "default".to_owned(), |v| v.source.clone());
    let e = ferricorn_config::Error::Invalid {
        key: key.to_owned(),
        origin,
        message,
    };
    eprintln!("ferricorn: error: {e}");
    EXIT_CONFIG
}

/// Reads the command line: `Ok(None)` when it asked for `--help` or
/// `--version` (already printed), `Err` the exit code of a bad one
/// (reported).
pub(crate) fn parse(program: &Program, args: Vec<OsString>) -> Result<Option<Args>, u8> {
    use clap::FromArgMatches as _;
    let name = program
        .name
        .clone()
        .unwrap_or_else(|| "ferricorn".to_owned());
    if let Some(e) = ferricorn_config::not_utf8(&args) {
        eprintln!("{name}: error: {e}");
        return Err(EXIT_CONFIG);
    }
    let matches = program
        .command(args.first())
        .try_get_matches_from(args)
        .and_then(|m| Args::from_arg_matches(&m));
    match matches {
        Ok(args) => Ok(Some(args)),
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Ok(None)
        }
        Err(e) => {
            eprintln!("{name}: error: {}", ferricorn_config::clap_error(&e));
            Err(EXIT_CONFIG)
        }
    }
}

/// Loads the settings under `args` and runs the server. `Err` holds the
/// exit code; the failure is already reported.
pub(crate) fn main<A: App>(
    args: Args,
    sources: Sources,
    factory: impl Fn(&Context) -> A,
) -> Result<(), u8> {
    let cli = args;
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
    if let ferricorn_config::ChannelLayer::Redis(url) = &loaded.config.channel_layer
        && let Err(e) = ferricorn_worker::check_redis(url)
    {
        let shown = loaded.config.channel_layer.shown();
        return Err(refused(&loaded, "channel_layer", format!("`{shown}`: {e}")));
    }
    // The certificate files, read as the workers will (each reads them
    // again after the fork).
    if let Err(e) = ferricorn_worker::tls_config(&loaded.config) {
        return Err(refused(&loaded, e.key(), e.why()));
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
