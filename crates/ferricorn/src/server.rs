//! [`Server`]: ferricorn configured in code.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ferricorn_config::Options;

use crate::cli::Program;
use crate::{App, Args, Context};

/// A server for an [`App`], configured in code, then run.
///
/// Every setting has a setter, named as its key in the settings table
/// (`ferricorn --help` lists them). What the code sets is the program's own
/// default: the TOML file, the environment and the command line still
/// override it, in that order, as they override ferricorn's own defaults;
/// `--print-config` names such a value's source `code`.
///
/// ```no_run
/// use std::time::Duration;
/// use ferricorn::{App, Body, Context, Request, Response};
///
/// struct Hello;
///
/// impl App for Hello {
///     async fn call(&self, _req: Request) -> Response {
///         Response::new(Body::from("Hello, World!"))
///     }
/// }
///
/// fn main() -> std::process::ExitCode {
///     ferricorn::Server::new(|_ctx: &Context| Hello)
///         .workers(4)
///         .bind("0.0.0.0:8000")
///         .graceful_timeout(Duration::from_secs(10))
///         .run()
/// }
/// ```
#[derive(Debug)]
pub struct Server<F> {
    factory: F,
    defaults: Options,
    config_file: Option<PathBuf>,
    args: Option<Vec<OsString>>,
    program: Program,
    cli: Option<Args>,
}

impl<F> Server<F> {
    /// A server whose workers each build their app with `factory`, after
    /// the fork.
    pub fn new<A: App>(factory: F) -> Self
    where
        F: Fn(&Context) -> A,
    {
        Self {
            factory,
            defaults: Options::default(),
            config_file: None,
            args: None,
            program: Program::default(),
            cli: None,
        }
    }

    /// The program's name, as `--help`, `--version` and the command
    /// line's errors show it [default: the executable's file name].
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.program.name = Some(name.into());
        self
    }

    /// The program's version, as `--version` shows it (for example
    /// `env!("CARGO_PKG_VERSION")`) [default: ferricorn's, named as such].
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.program.version = Some(version.into());
        self
    }

    /// The program's one-line description, at the top of `--help`.
    pub fn about(mut self, about: impl Into<String>) -> Self {
        self.program.about = Some(about.into());
        self
    }

    /// Takes the command line a program has already parsed, with flags of
    /// its own beside ferricorn's (see [`Args`]), instead of reading the
    /// process's arguments.
    pub fn cli(mut self, args: Args) -> Self {
        self.cli = Some(args);
        self
    }

    /// The TOML file to read when neither `-c/--config` nor
    /// `FERRICORN_CONFIG` names one (instead of `ferricorn.toml`).
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    /// Reads these arguments instead of the process's own; the first is the
    /// program's path.
    pub fn args<I, T>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        self.args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Reads the command line, the environment and the config file, binds,
    /// forks the workers, and supervises them until stopped.
    ///
    /// Returns the process exit code: 0 clean stop, 1 runtime failure, 2
    /// configuration error, 3 the app failed to start.
    pub fn run<A: App>(self) -> ExitCode
    where
        F: Fn(&Context) -> A,
    {
        let args = match self.cli {
            Some(args) => args,
            None => {
                let argv = self.args.unwrap_or_else(|| std::env::args_os().collect());
                match crate::cli::parse(&self.program, argv) {
                    Ok(Some(args)) => args,
                    Ok(None) => return ExitCode::SUCCESS,
                    Err(code) => return ExitCode::from(code),
                }
            }
        };
        let sources = crate::sources::Sources {
            code: self.defaults,
            file: self.config_file,
            ..Default::default()
        };
        match crate::cli::main(args, sources, self.factory) {
            Ok(()) => ExitCode::SUCCESS,
            Err(code) => ExitCode::from(code),
        }
    }
}

/// One setter per setting of the settings table.
macro_rules! setters {
    ($($key:ident: $kind:ident => $checked:ty = $default:literal {
        help: $help:literal,
        $($rest:tt)*
    })*) => {
        impl<F> Server<F> {
            $(setter!($kind, $key, $help);)*
        }
    };
}

macro_rules! setter {
    (List, $key:ident, $help:literal) => {
        #[doc = concat!($help, ".\n\nEach call adds one item, as a repeated flag does.")]
        pub fn $key(mut self, item: impl Into<String>) -> Self {
            self.defaults
                .$key
                .get_or_insert_with(Vec::new)
                .push(item.into());
            self
        }
    };
    (Int, $key:ident, $help:literal) => {
        #[doc = concat!($help, ".")]
        pub fn $key(mut self, n: u64) -> Self {
            self.defaults.$key = Some(n);
            self
        }
    };
    (Secs, $key:ident, $help:literal) => {
        #[doc = concat!($help, ".\n\nA `Duration` here, seconds on the command line.")]
        pub fn $key(mut self, d: Duration) -> Self {
            self.defaults.$key = Some(d.as_secs_f64());
            self
        }
    };
    (Flag, $key:ident, $help:literal) => {
        #[doc = concat!($help, ".")]
        pub fn $key(mut self, on: bool) -> Self {
            self.defaults.$key = Some(on);
            self
        }
    };
    (Text, $key:ident, $help:literal) => {
        #[doc = concat!($help, ".")]
        pub fn $key(mut self, text: impl Into<String>) -> Self {
            self.defaults.$key = Some(text.into());
            self
        }
    };
}

ferricorn_config::for_each_setting!(setters);
