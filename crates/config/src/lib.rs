//! ferricorn's settings.
//!
//! - `table`: the settings table, every setting once (key, kind, checked
//!   type, default, flag, environment names, help, README text, check);
//!   everything below is made from it.
//! - [`options`]: [`Options`], the raw settings one layer set, with the
//!   command-line flags; [`SETTINGS`], the table as values.
//! - [`layers`]: stacks the layers (defaults < a program's own < TOML file
//!   < environment < command line).
//! - [`load`]: stacks, checks, and returns a [`Loaded`] that knows where
//!   each value came from; [`Loaded::report`] is `--print-config`.
//! - [`Config`]: the checked settings, durations as [`Duration`](std::time::Duration).
//! - `checks`, `values`: the checks and the typed values they make.
//! - [`access_format`]: `--access-logformat`, parsed.
//! - [`env`](mod@env): every environment variable read.
//! - [`Cpus`]: the CPU count the automatic worker and thread numbers use.
//! - `docs`: the README's settings table.
//! - `toml`: raw values as TOML writes them.
//! - `fuzz` (the `fuzz` feature): the properties `fuzz/` checks.
//!
//! This is the only crate that knows figment.

pub mod access_format;
mod checks;
mod config;
pub mod cpus;
mod docs;
pub mod env;
#[cfg(feature = "fuzz")]
#[doc(hidden)]
pub mod fuzz;
pub mod layers;
pub mod options;
mod table;
mod toml;
mod values;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use access_format::{AccessLogFormat, Atom, DEFAULT_ACCESS_LOG_FORMAT};
pub use checks::HEARTBEAT_INTERVAL;
pub use config::{Config, MAX_THREADS, MAX_WORKERS};
pub use cpus::Cpus;
pub use docs::settings_table;
pub use layers::{Environment, clap_error, first_line, not_utf8};
pub use options::{Options, SETTINGS, Setting};
pub use values::{
    Bind, CertReqs, ChannelLayer, ChannelOverflow, Group, HttpVersion, Identity, IpNet, Limits,
    LogFormat, LogLevel, ProxyProtocol, User, WebSocket,
};

/// Why the settings could not be loaded. Each renders as one line that names
/// the setting or file and the layer the bad value came from.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file could not be read.
    #[error("config file {}: {}", short(&path.display().to_string()), short(message))]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// `GUNICORN_CMD_ARGS` did not parse.
    #[error("env GUNICORN_CMD_ARGS: {}", short(.0))]
    CmdArgs(String),
    /// A value had the wrong type or failed its check.
    #[error(
        "invalid value for `{}` (from {}): {}",
        short(key),
        short(origin),
        short(message)
    )]
    Invalid {
        /// The setting.
        key: String,
        /// Where the value came from: `default`, `code`, `file PATH`, `env
        /// NAME`, `cli`.
        origin: String,
        /// What is wrong with it.
        message: String,
    },
    /// Something else in a layer, such as an unknown key or bad TOML.
    #[error("{}: {}", short(origin), short(message))]
    Layer {
        /// The layer.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A value that does not parse as its type, before it is known which
    /// setting and layer it came from.
    #[error("{}", short(.0))]
    Value(String),
}

/// Text for an error, on one line and short: control characters escaped
/// (`\n`), and a huge value shown by its first 160 characters.
pub fn short(text: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 160;
    let cut = text.char_indices().nth(MAX).map(|(at, _)| at);
    if cut.is_none() && !text.chars().any(char::is_control) {
        return text.into();
    }
    let kept = &text[..cut.unwrap_or(text.len())];
    let mut out = String::with_capacity(kept.len() + 32);
    for c in kept.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if cut.is_some() {
        out.push_str(&format!("… ({} bytes)", text.len()));
    }
    out.into()
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The loaded settings and where each came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The checked settings.
    pub config: Config,
    /// The config file read, if any.
    pub file: Option<PathBuf>,
    /// Every setting in the table's order: its raw value, rendered as TOML,
    /// and where it came from.
    pub values: Vec<Shown>,
    /// Disagreements between environment names, one line each.
    pub warnings: Vec<String>,
}

/// One setting as `--print-config` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// The key.
    pub key: &'static str,
    /// The raw value, as TOML writes it.
    pub value: String,
    /// Where it came from: `default`, `code`, `file PATH`, `env NAME`, `cli`.
    pub source: String,
}

/// Loads the settings. `code` holds a program's own defaults, `cli` what the
/// command line set; `config_file` is `-c/--config`, if given.
pub fn load(code: &Options, cli: &Options, config_file: Option<&Path>) -> Result<Loaded> {
    load_in(&Environment::process(), code, cli, config_file)
}

/// [`load`] with the environment `vars` in place of the process's.
pub fn load_in(
    vars: &Environment,
    code: &Options,
    cli: &Options,
    config_file: Option<&Path>,
) -> Result<Loaded> {
    misspelt_env(vars)?;
    let stack = layers::stack(vars, code, cli, config_file)?;
    let figment = &stack.figment;
    let merged: figment::value::Dict = figment.extract().map_err(|e| figment_error(&e))?;
    // A key no setting has: a typo, or another server's name for one.
    if let Some(key) = merged.keys().find(|k| options::setting(k).is_none()) {
        return Err(Error::Layer {
            origin: layers::source_of(figment, key),
            message: format!("unknown setting `{key}`{}", suggest(key)),
        });
    }
    let values: Vec<Shown> = SETTINGS
        .iter()
        .map(|s| Shown {
            key: s.key,
            value: merged.get(s.key).map(toml::render).unwrap_or_default(),
            source: layers::source_of(figment, s.key),
        })
        .collect();
    let config = Config::resolve(figment, Cpus::detect())?;
    let mut warnings = stack.ignored;
    warnings.extend(disagreements(&stack.env_values, &values));
    Ok(Loaded {
        config,
        file: stack.file,
        values,
        warnings,
    })
}

/// A `FERRICORN_*` variable one or two letters off a name ferricorn reads
/// (`FERRICORN_WORKERZ`) is a mistake: refused, with the name it likely
/// meant. Others (a program's own `FERRICORN_*` names) are left alone.
fn misspelt_env(vars: &Environment) -> Result<()> {
    let mut known: Vec<String> = SETTINGS.iter().map(Setting::env_name).collect();
    known.extend([env::CONFIG, env::HOST, env::PORT_OWN].map(str::to_owned));
    for name in vars.names() {
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(env::PREFIX) || known.iter().any(|k| k == name) {
            continue;
        }
        let near = known
            .iter()
            .map(|k| (edit_distance(name, k), k))
            .min()
            .filter(|(d, _)| *d <= 2);
        if let Some((_, meant)) = near {
            return Err(Error::Layer {
                origin: format!("env {name}"),
                message: format!("not a name ferricorn reads; did you mean `{meant}`?"),
            });
        }
    }
    Ok(())
}

/// What to say after an unknown key: the key it most likely meant.
fn suggest(key: &str) -> String {
    if matches!(key, "host" | "port") {
        return "; the file sets both as `bind = \"HOST:PORT\"`".to_owned();
    }
    let snake = key.trim().replace('-', "_").to_ascii_lowercase();
    let near = SETTINGS
        .iter()
        .map(|s| (edit_distance(&snake, s.key), s.key))
        .min()
        .filter(|(d, k)| *d == 0 || *d <= (k.len() / 3).max(1));
    match near {
        Some((_, k)) => format!("; did you mean `{k}`?"),
        None => {
            " (ferricorn --help lists them; the file's keys are the flags in snake case)".to_owned()
        }
    }
}

/// Levenshtein distance, for the suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

pub(crate) fn figment_error(e: &figment::Error) -> Error {
    let origin = e
        .metadata
        .as_ref()
        .map_or_else(|| "config".to_owned(), layers::describe);
    let message = one_line(&e.kind.to_string());
    match e.path.last() {
        Some(key) => Error::Invalid {
            key: key.clone(),
            origin,
            message,
        },
        None => Error::Layer { origin, message },
    }
}

/// A parser's message as one line: its first line and its reason, without
/// the source snippet the TOML parser draws between them.
fn one_line(message: &str) -> String {
    let mut lines = message
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty());
    let first = first_line(lines.next().unwrap_or(""));
    let snippet = |l: &str| {
        let l = l.trim_start();
        l.starts_with('|')
            || l.split_once(" |")
                .is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()))
    };
    let reason: Vec<&str> = lines.filter(|l| !snippet(l)).map(str::trim).collect();
    if reason.is_empty() {
        first
    } else {
        format!("{first}: {}", reason.join("; "))
    }
}

/// One warning per setting that two environment names set differently.
fn disagreements(values: &[layers::EnvValue], shown: &[Shown]) -> Vec<String> {
    let mut out = Vec::new();
    for s in shown {
        let set: Vec<_> = values.iter().filter(|v| v.key == s.key).collect();
        if set.windows(2).all(|w| w[0].value == w[1].value) {
            continue;
        }
        let list: Vec<_> = set
            .iter()
            .map(|v| {
                let name = v.name.replace("env ", "");
                format!("{name}={}", toml::render(&v.value))
            })
            .collect();
        out.push(format!(
            "`{}` is set differently by {}; using {}",
            s.key,
            list.join(", "),
            s.source
        ));
    }
    out
}

impl Loaded {
    /// Where `key`'s value came from.
    pub fn source(&self, key: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.source.as_str())
    }

    /// The `--print-config` report: a TOML file that `-c` reads back to
    /// the same settings; each line's comment says where its value came
    /// from (and what an automatic count came to), then comments on the
    /// capacity the settings imply and any warnings.
    pub fn report(&self) -> String {
        let c = &self.config;
        let mut out = String::from(
            "# ferricorn: the effective settings, as a TOML file (-c reads it back);\n# each line's comment says where its value came from\n",
        );
        for s in &self.values {
            // The automatic counts are shown with the numbers they came to.
            let auto = match s.key {
                "workers" => Some(format!(
                    "auto: {} for {} CPU{}",
                    c.workers,
                    c.cpus.count,
                    if c.cpus.count == 1 { "" } else { "s" }
                )),
                "threads" => Some(format!(
                    "auto: {} = min(32, {} CPUs + 4)",
                    c.threads, c.cpus.count
                )),
                _ => None,
            };
            let note = match auto {
                Some(auto) if s.value == "0" => format!("{}; {auto}", s.source),
                _ => s.source.clone(),
            };
            let line = format!("{} = {}", s.key, s.value);
            let _ = writeln!(out, "{line:<44} # {note}");
        }
        let _ = writeln!(out, "# CPUs: {}", c.cpus);
        let _ = writeln!(
            out,
            "# capacity: {} workers x {} worker_connections = {} connections",
            c.workers,
            c.worker_connections,
            c.workers * c.worker_connections
        );
        let _ = writeln!(
            out,
            "# capacity: {} workers x {} threads = {} blocking threads",
            c.workers,
            c.threads,
            c.workers * c.threads
        );
        for w in &self.warnings {
            let _ = writeln!(out, "# warning: {w}");
        }
        out
    }
}

#[cfg(test)]
mod tests;
