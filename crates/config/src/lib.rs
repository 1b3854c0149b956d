//! ferricorn's settings.
//!
//! - [`Options`]: the raw settings, at once command-line flags, TOML keys and
//!   `FERRICORN_*` environment names; every field optional.
//! - [`load`]: stacks the layers (defaults < TOML file < environment <
//!   command line, see [`layers`]), validates, and returns a [`Loaded`] that
//!   knows where each value came from.
//! - [`Config`]: the validated settings, durations as [`Duration`](std::time::Duration).
//! - [`Cpus`]: the CPU count the automatic worker and thread numbers use.
//!
//! This is the only crate that knows figment.

pub mod access_format;
pub mod cpus;
pub mod layers;
mod options;
mod settings;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use access_format::{AccessLogFormat, Atom, DEFAULT_ACCESS_LOG_FORMAT};
pub use cpus::Cpus;
pub use layers::first_line;
pub use options::Options;
pub use settings::{
    Bind, Config, HEARTBEAT_INTERVAL, IpNet, Limits, LogLevel, MAX_WORKERS, ProxyProtocol,
    WebSocket,
};

/// Why the settings could not be loaded. Each renders as one line that names
/// the setting or file and the layer the bad value came from.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file could not be read.
    #[error("config file {}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// `GUNICORN_CMD_ARGS` did not parse.
    #[error("env GUNICORN_CMD_ARGS: {0}")]
    CmdArgs(String),
    /// A value had the wrong type or failed validation.
    #[error("invalid value for `{key}` (from {origin}): {message}")]
    Invalid {
        /// The setting.
        key: String,
        /// Where the value came from: `default`, `file PATH`, `env NAME`, `cli`.
        origin: String,
        /// What is wrong with it.
        message: String,
    },
    /// Something else in a layer, such as an unknown key or bad TOML.
    #[error("{origin}: {message}")]
    Layer {
        /// The layer.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The loaded settings and where each came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated settings.
    pub config: Config,
    /// The merged raw values.
    pub options: Options,
    /// The config file read, if any.
    pub file: Option<PathBuf>,
    /// `(key, source)` for every setting, in display order.
    pub sources: Vec<(&'static str, String)>,
    /// Disagreements between environment names, one line each.
    pub warnings: Vec<String>,
}

/// Loads the settings. `cli` holds what the command line set; `config_file`
/// is `-c/--config`, if given.
pub fn load(cli: &Options, config_file: Option<&Path>) -> Result<Loaded> {
    let stack = layers::stack(cli, config_file)?;
    let options: Options = stack.figment.extract().map_err(|e| figment_error(&e))?;
    let sources: Vec<_> = options::KEYS
        .iter()
        .map(|(key, _)| (*key, layers::source_of(&stack.figment, key)))
        .collect();
    let config = Config::resolve(&options, Cpus::detect()).map_err(|e| Error::Invalid {
        key: e.key.to_owned(),
        origin: source(&sources, e.key),
        message: e.message,
    })?;
    let warnings = disagreements(&stack.env_values, &sources);
    Ok(Loaded {
        config,
        options,
        file: stack.file,
        sources,
        warnings,
    })
}

fn source(sources: &[(&'static str, String)], key: &str) -> String {
    sources
        .iter()
        .find(|(k, _)| *k == key)
        .map_or_else(|| "default".to_owned(), |(_, s)| s.clone())
}

fn figment_error(e: &figment::Error) -> Error {
    let origin = e
        .metadata
        .as_ref()
        .map_or_else(|| "config".to_owned(), layers::describe);
    if let figment::error::Kind::UnknownField(field, _) = &e.kind {
        return Error::Layer {
            origin,
            message: format!("unknown setting `{field}` (ferricorn --help lists them)"),
        };
    }
    let message = first_line(&e.kind.to_string());
    match e.path.last() {
        Some(key) => Error::Invalid {
            key: key.clone(),
            origin,
            message,
        },
        None => Error::Layer { origin, message },
    }
}

/// One warning per setting that two environment names set differently.
fn disagreements(values: &[layers::EnvValue], sources: &[(&'static str, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (key, _) in options::KEYS {
        let set: Vec<_> = values.iter().filter(|v| v.key == *key).collect();
        if set.windows(2).all(|w| w[0].value == w[1].value) {
            continue;
        }
        let list: Vec<_> = set
            .iter()
            .map(|v| {
                let name = v.name.trim_start_matches("env ");
                format!("{name}={}", layers::render(&v.value))
            })
            .collect();
        out.push(format!(
            "`{key}` is set differently by {}; using {}",
            list.join(", "),
            source(sources, key)
        ));
    }
    out
}

impl Loaded {
    /// The `--print-config` report: every setting as a TOML line with its
    /// source, then the capacity the settings imply and any warnings.
    pub fn report(&self) -> String {
        let c = &self.config;
        let secs = |d: Option<std::time::Duration>| d.map_or(0.0, |d| d.as_secs_f64()).to_string();
        let quoted = |s: &Option<String>| format!("{:?}", s.as_deref().unwrap_or(""));
        let auto = |raw: Option<u64>, what: String| match raw {
            None | Some(0) => format!(" (auto: {what})"),
            _ => String::new(),
        };
        let binds: Vec<_> = c
            .bind
            .iter()
            .map(|b| format!("{:?}", b.to_string()))
            .collect();
        let limit = |n: Option<usize>| n.unwrap_or(0).to_string();
        let peers = |list: Option<&[String]>| {
            let shown: Vec<String> = match list {
                Some(l) => l.iter().map(|s| format!("{s:?}")).collect(),
                None => settings::LOOPBACK
                    .iter()
                    .map(|s| format!("{s:?}"))
                    .collect(),
            };
            format!("[{}]", shown.join(", "))
        };
        let values = [
            format!("[{}]", binds.join(", ")),
            format!(
                "{}{}",
                c.workers,
                auto(self.options.workers, format!("{} CPUs", c.cpus.count))
            ),
            format!(
                "{}{}",
                c.threads,
                auto(
                    self.options.threads,
                    format!("min(32, {} CPUs + 4)", c.cpus.count)
                )
            ),
            c.worker_connections.to_string(),
            c.backlog.to_string(),
            secs(c.keep_alive),
            secs(Some(c.header_timeout)),
            secs(Some(c.graceful_timeout)),
            secs(c.timeout),
            secs(c.boot_timeout),
            secs(Some(c.shutdown_delay)),
            c.max_requests.unwrap_or(0).to_string(),
            c.max_requests_jitter.to_string(),
            (c.max_worker_memory.unwrap_or(0) >> 20).to_string(),
            format!(
                "{:?}",
                c.pid
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string())
            ),
            quoted(&c.user),
            quoted(&c.group),
            c.umask
                .map_or_else(|| "\"\"".to_owned(), |m| format!("\"{m:03o}\"")),
            limit(c.limits.request_line),
            c.limits.request_fields.to_string(),
            limit(c.limits.request_field_size),
            peers(self.options.forwarded_allow_ips.as_deref()),
            format!(
                "{:?}",
                format!("{:?}", c.proxy_protocol).to_ascii_lowercase()
            ),
            peers(self.options.proxy_allow_from.as_deref()),
            format!("{:?}", c.root_path),
            c.limit_concurrency.unwrap_or(0).to_string(),
            secs(c.request_timeout),
            secs(c.ws.ping_interval),
            secs(Some(c.ws.ping_timeout)),
            c.ws.max_size.to_string(),
            c.ws.max_queue.to_string(),
            format!(
                "{:?}",
                c.error_logfile
                    .as_ref()
                    .map_or("-".to_owned(), |p| p.display().to_string())
            ),
            format!(
                "{:?}",
                c.access_logfile
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string())
            ),
            format!("{:?}", c.access_logformat.as_deref().unwrap_or("")),
            format!("{:?}", if c.log_json { "json" } else { "text" }),
            format!("{:?}", c.log_level.to_string()),
            quoted(&c.health_path),
            quoted(&c.ready_path),
            quoted(&c.metrics_path),
            format!(
                "{:?}",
                c.metrics_bind
                    .as_ref()
                    .map_or(String::new(), ToString::to_string)
            ),
        ];
        let mut out =
            String::from("# ferricorn: effective settings, each with where it came from\n");
        for ((key, source), value) in self.sources.iter().zip(values) {
            let line = format!("{key} = {value}");
            let _ = writeln!(out, "{line:<44} # {source}");
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
