//! The layers, lowest first: the settings table's defaults < a program's
//! own defaults (`ferricorn::Server`'s setters) < the TOML file < the
//! environment < the command line.
//!
//! Within the environment, the names other servers use (the settings
//! table's `env` lists, lowest first) come below `GUNICORN_CMD_ARGS`,
//! which comes below ferricorn's own `FERRICORN_*` names. Each variable is
//! its own figment provider named after it, so `--print-config` can say
//! exactly which variable won.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::Parser;
use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use crate::env;
use crate::options::{CLI, Options, SETTINGS};
use crate::{Error, Result};

/// The file read when no `-c/--config` or `FERRICORN_CONFIG` names one.
pub const DEFAULT_FILE: &str = "ferricorn.toml";

/// The name of the defaults' layer, as `--print-config` shows it.
pub(crate) const DEFAULT: &str = "default";
/// The name of a program's own defaults, as `--print-config` shows it.
pub(crate) const CODE: &str = "code";

/// One named provider: the defaults, an environment variable, the command
/// line.
struct Layer {
    name: String,
    dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// A value some environment name set, kept to warn when names disagree.
pub(crate) struct EnvValue {
    pub key: &'static str,
    pub name: String,
    pub value: Value,
}

/// The merged layers, before the checks.
pub(crate) struct Layers {
    pub figment: Figment,
    pub file: Option<PathBuf>,
    pub env_values: Vec<EnvValue>,
    /// Warnings for the Gunicorn-only flags `GUNICORN_CMD_ARGS` held.
    pub ignored: Vec<String>,
}

/// The settings table's defaults, with `code` (a program's own) over them.
fn defaults(code: &Options) -> Figment {
    let dict = SETTINGS
        .iter()
        .map(|s| (s.key.to_owned(), s.default_value()))
        .collect();
    Figment::new()
        .merge(Layer {
            name: DEFAULT.to_owned(),
            dict,
        })
        .merge(Layer {
            name: CODE.to_owned(),
            dict: to_dict(code),
        })
}

/// The defaults with `options` over them, and nothing else: the checks
/// without a file or an environment.
#[cfg(test)]
pub(crate) fn defaults_under(options: &Options) -> Figment {
    defaults(&Options::default()).merge(Layer {
        name: CLI.to_owned(),
        dict: to_dict(options),
    })
}

/// Stacks every layer. `code` holds what the program set, `cli` only what
/// the command line set.
pub(crate) fn stack(
    vars: &Environment,
    code: &Options,
    cli: &Options,
    config_file: Option<&Path>,
) -> Result<Layers> {
    let mut figment = defaults(code);
    let file = config_path(vars, config_file)?;
    if let Some(path) = &file {
        check_utf8(path)?;
        figment = figment.merge(Toml::file_exact(path));
    }
    let var = |key: &str, name: &str| vars.text(key, name);
    let cmd_args = vars
        .get(env::GUNICORN_CMD_ARGS)
        .map(|v| {
            v.into_string()
                .map_err(|_| Error::CmdArgs("not UTF-8".to_owned()))
        })
        .transpose()?
        .filter(|v| !v.trim().is_empty());
    let (cmd_args, ignored) = match cmd_args {
        Some(text) => {
            let (options, ignored) = parse_cmd_args(&text)?;
            (Some(options), ignored)
        }
        None => (None, Vec::new()),
    };
    let address = Address::of(vars, cmd_args.as_ref(), cli)?;
    let mut env_values = Vec::new();
    let mut push = |figment: Figment, key: &'static str, name: String, value: Value| {
        env_values.push(EnvValue {
            key,
            name: name.clone(),
            value: value.clone(),
        });
        let mut dict = Dict::new();
        dict.insert(key.to_owned(), value);
        figment.merge(Layer { name, dict })
    };
    let address_at = |rank: Rank| address.as_ref().filter(|a| a.rank == rank);
    for setting in SETTINGS {
        if setting.key == "bind" {
            if let Some(a) = address_at(Rank::Others) {
                figment = push(figment, "bind", a.name.clone(), a.value());
            }
            continue;
        }
        for name in setting.env {
            if let Some(text) = var(setting.key, name)? {
                let value = setting.kind.parse(&text);
                figment = push(figment, setting.key, format!("env {name}"), value);
            }
        }
    }
    if let Some(options) = &cmd_args {
        let dict = to_dict(options);
        for s in SETTINGS {
            if let Some(value) = dict.get(s.key) {
                let name = format!("env {}", env::GUNICORN_CMD_ARGS);
                figment = push(figment, s.key, name, value.clone());
            }
        }
    }
    for rank in [Rank::GunicornCmdArgs, Rank::Ferricorn] {
        if let Some(a) = address_at(rank) {
            figment = push(figment, "bind", a.name.clone(), a.value());
        }
    }
    for s in SETTINGS {
        let name = s.env_name();
        if let Some(text) = var(s.key, &name)? {
            figment = push(figment, s.key, format!("env {name}"), s.kind.parse(&text));
        }
    }
    let mut cli_dict = to_dict(cli);
    if let Some(a) = address_at(Rank::Cli) {
        cli_dict.insert("bind".to_owned(), a.value());
    }
    figment = figment.merge(Layer {
        name: CLI.to_owned(),
        dict: cli_dict,
    });
    Ok(Layers {
        figment,
        file,
        env_values,
        ignored,
    })
}

/// Where a name that sets part of the address ranks among the layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    /// `PORT`, `UVICORN_HOST`, `UVICORN_PORT`.
    Others,
    /// `--host` and `--port` in `GUNICORN_CMD_ARGS`.
    GunicornCmdArgs,
    /// `FERRICORN_HOST`, `FERRICORN_PORT`.
    Ferricorn,
    /// `--host`, `--port`.
    Cli,
}

/// One name that set the host or the port.
#[derive(Debug)]
struct Part {
    rank: Rank,
    name: String,
    is_host: bool,
    value: String,
}

/// The address the host and port names make between them (Uvicorn's
/// `--host`/`--port` and their environment names, and `PORT`): the host
/// from the highest host name set, else `0.0.0.0` when the port came from
/// `PORT` (the platforms that set it want every interface) or `127.0.0.1`;
/// the port from the highest port name set, else 8000. It stands where
/// the highest of the names it was made from ranks, so a host alone (such
/// as the Docker image's `UVICORN_HOST`) takes the port of a higher name,
/// and a `bind` of a higher layer still wins.
#[derive(Debug)]
struct Address {
    host: String,
    port: String,
    name: String,
    rank: Rank,
}

impl Address {
    fn of(vars: &Environment, cmd_args: Option<&Options>, cli: &Options) -> Result<Option<Self>> {
        let mut parts = Vec::new();
        let mut part = |rank, name: String, is_host, value: Option<&String>| {
            if let Some(value) = value {
                parts.push(Part {
                    rank,
                    name,
                    is_host,
                    value: value.trim().to_owned(),
                });
            }
        };
        let env = |name: &str| Ok::<_, Error>((format!("env {name}"), vars.text("bind", name)?));
        for (name, is_host) in [
            (env::PORT, false),
            (env::UVICORN_HOST, true),
            (env::UVICORN_PORT, false),
        ] {
            let (name, value) = env(name)?;
            part(Rank::Others, name, is_host, value.as_ref());
        }
        if let Some(o) = cmd_args {
            let name = |flag| format!("env {} {flag}", env::GUNICORN_CMD_ARGS);
            part(Rank::GunicornCmdArgs, name("--host"), true, o.host.as_ref());
            part(
                Rank::GunicornCmdArgs,
                name("--port"),
                false,
                o.port.as_ref(),
            );
        }
        for (name, is_host) in [(env::HOST, true), (env::PORT_OWN, false)] {
            let (name, value) = env(name)?;
            part(Rank::Ferricorn, name, is_host, value.as_ref());
        }
        part(Rank::Cli, "cli --host".to_owned(), true, cli.host.as_ref());
        part(Rank::Cli, "cli --port".to_owned(), false, cli.port.as_ref());

        let host = parts.iter().rev().find(|p| p.is_host);
        let port = parts.iter().rev().find(|p| !p.is_host);
        let Some(rank) = host.into_iter().chain(port).map(|p| p.rank).max() else {
            return Ok(None);
        };
        let from_port = port.is_some_and(|p| p.name == format!("env {}", env::PORT));
        let default_host = if from_port { "0.0.0.0" } else { "127.0.0.1" };
        let names: Vec<&str> = host
            .into_iter()
            .chain(port)
            .map(|p| p.name.as_str())
            .collect();
        Ok(Some(Self {
            host: host.map_or(default_host, |h| &h.value).to_owned(),
            port: port.map_or("8000", |p| &p.value).to_owned(),
            name: names.join(" + "),
            rank,
        }))
    }

    /// `HOST:PORT`, an IPv6 host in brackets, as the `bind` list's one item.
    fn value(&self) -> Value {
        let host = &self.host;
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        Value::from(vec![format!("{host}:{}", self.port)])
    }
}

/// Where a key's value came from: `default`, `code`, `file PATH`, `env NAME`
/// or `cli`.
pub(crate) fn source_of(figment: &Figment, key: &str) -> String {
    figment
        .find_metadata(key)
        .map_or_else(|| DEFAULT.to_owned(), describe)
}

/// Names a provider: `file PATH` for the TOML file, else the layer's name.
pub(crate) fn describe(metadata: &Metadata) -> String {
    match &metadata.source {
        Some(figment::Source::File(path)) => format!("file {}", path.display()),
        _ => metadata.name.to_string(),
    }
}

/// The config file to read: the one named, or `ferricorn.toml` if present.
fn config_path(vars: &Environment, named: Option<&Path>) -> Result<Option<PathBuf>> {
    let named = named.map(Path::to_path_buf).or_else(|| {
        vars.get(env::CONFIG)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    match named {
        Some(path) if path.is_file() => Ok(Some(path)),
        Some(path) => Err(Error::File {
            message: if path.exists() {
                "not a file".to_owned()
            } else {
                "no such file".to_owned()
            },
            path,
        }),
        None => Ok(Some(PathBuf::from(DEFAULT_FILE)).filter(|p| p.is_file())),
    }
}

/// The environment the settings are read from: the process's, or one a
/// test or fuzz target makes.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: Vec<(OsString, OsString)>,
}

impl Environment {
    /// This process's environment.
    pub fn process() -> Self {
        Self {
            vars: std::env::vars_os().collect(),
        }
    }

    /// Sets `name` to `value`.
    pub fn set(&mut self, name: impl Into<OsString>, value: impl Into<OsString>) {
        let name = name.into();
        self.vars.retain(|(n, _)| *n != name);
        self.vars.push((name, value.into()));
    }

    /// The names set.
    pub(crate) fn names(&self) -> impl Iterator<Item = &OsStr> {
        self.vars.iter().map(|(n, _)| n.as_os_str())
    }

    fn get(&self, name: &str) -> Option<OsString> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    /// A set, non-empty variable that sets `key`; one that is not UTF-8 is
    /// refused.
    fn text(&self, key: &str, name: &str) -> Result<Option<String>> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let text = value.into_string().map_err(|v| Error::Invalid {
            key: key.to_owned(),
            origin: format!("env {name}"),
            message: format!("not UTF-8: `{}`", v.to_string_lossy()),
        })?;
        Ok(Some(text).filter(|v| !v.trim().is_empty()))
    }
}

/// A config file that is not UTF-8 is refused with the line, and the key
/// on it, where its first bad byte is.
fn check_utf8(path: &Path) -> Result<()> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(()); // The TOML reader says why.
    };
    let Err(e) = std::str::from_utf8(&bytes) else {
        return Ok(());
    };
    let at = e.valid_up_to();
    let line_start = bytes[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    let head = String::from_utf8_lossy(&bytes[line_start..at]);
    let message = match head.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() => {
            format!("line {line}: the value of `{}` is not UTF-8", key.trim())
        }
        _ => format!("line {line} is not UTF-8"),
    };
    Err(Error::Layer {
        origin: format!("file {}", path.display()),
        message,
    })
}

#[derive(Parser)]
#[command(
    name = "GUNICORN_CMD_ARGS",
    no_binary_name = true,
    disable_help_flag = true
)]
pub(crate) struct CmdArgsParser {
    #[command(flatten)]
    pub(crate) options: Options,
}

/// Parses `GUNICORN_CMD_ARGS` with the same flags as the command line,
/// after setting aside Gunicorn's own flags (see [`GUNICORN_ONLY`]); one
/// warning for each of those it held.
pub(crate) fn parse_cmd_args(text: &str) -> Result<(Options, Vec<String>)> {
    let words = split_words(text).map_err(Error::CmdArgs)?;
    let (words, warnings) = set_aside_gunicorns(words)?;
    let options = CmdArgsParser::try_parse_from(words)
        .map(|a| a.options)
        .map_err(|e| Error::CmdArgs(clap_error(&e)))?;
    Ok((options, warnings))
}

/// What ferricorn does with one of Gunicorn's own flags.
enum Gunicorns {
    /// Nothing: it is set aside with a warning that says why.
    Ignored(&'static str),
    /// It is read as this flag of ferricorn's.
    Means(&'static str),
}

/// Gunicorn's flags a `GUNICORN_CMD_ARGS` copied from a Gunicorn
/// deployment may hold, which ferricorn's own flags do not cover: the
/// flags, whether they take a value, and what becomes of them.
const GUNICORN_ONLY: &[(&[&str], bool, Gunicorns)] = {
    use Gunicorns::{Ignored, Means};
    &[
        (
            &["-k", "--worker-class"],
            true,
            Ignored("ferricorn's workers are its own async workers"),
        ),
        (
            &["--preload", "--preload-app"],
            false,
            Ignored("each worker builds its app after the fork"),
        ),
        (
            &["--worker-tmp-dir"],
            true,
            Ignored("heartbeats live in shared memory"),
        ),
        (
            &["--statsd-host", "--statsd-prefix", "--dogstatsd-tags"],
            true,
            Ignored("metrics are served at /metrics"),
        ),
        (
            &["-c", "--config"],
            true,
            Ignored(
                "a Gunicorn config file is Python; ferricorn reads TOML (-c, FERRICORN_CONFIG)",
            ),
        ),
        (
            &[
                "--chdir",
                "--pythonpath",
                "--paste",
                "--paste-global",
                "-e",
                "--env",
            ],
            true,
            Ignored("it concerns Python apps"),
        ),
        (
            &["-n", "--name"],
            true,
            Ignored("process names are ferricorn's own"),
        ),
        (
            &[
                "--log-config",
                "--log-config-json",
                "--log-config-dict",
                "--logger-class",
            ],
            true,
            Ignored("logging is set by --log-level and --log-format"),
        ),
        (
            &[
                "--log-syslog-to",
                "--log-syslog-prefix",
                "--log-syslog-facility",
            ],
            true,
            Ignored("ferricorn does not log to syslog"),
        ),
        (
            &["--log-syslog", "--disable-redirect-access-to-syslog"],
            false,
            Ignored("ferricorn does not log to syslog"),
        ),
        (
            &["--capture-output", "-R", "--enable-stdio-inheritance"],
            false,
            Ignored("the workers' output goes where the supervisor's goes"),
        ),
        (
            &["--reuse-port"],
            false,
            Ignored("the workers always share sockets with SO_REUSEPORT"),
        ),
        (
            &[
                "--no-sendfile",
                "--initgroups",
                "--spew",
                "--check-config",
                "--print-config",
                "-D",
                "--daemon",
            ],
            false,
            Ignored(
                "ferricorn has no such setting; --check-config and --print-config are command-line flags",
            ),
        ),
        (
            &[
                "--strip-header-spaces",
                "--permit-unconventional-http-method",
                "--permit-unconventional-http-version",
                "--casefold-http-method",
            ],
            false,
            Ignored("requests are parsed strictly"),
        ),
        (
            &["--forwarder-headers", "--header-map", "--reload-engine"],
            true,
            Ignored("ferricorn has no such setting"),
        ),
        (
            &["--limit-request-field_size"],
            true,
            Means("--limit-request-field-size"),
        ),
        (&["--log-file"], true, Means("--error-logfile")),
        (&["--reload-extra-file"], true, Means("--reload-path")),
        (
            &["--ssl-version"],
            true,
            Ignored("TLS 1.2 and 1.3 are served, nothing older"),
        ),
        (
            &["--ciphers"],
            true,
            Ignored("rustls offers only strong AEAD suites, with forward secrecy"),
        ),
        (
            &["--do-handshake-on-connect", "--suppress-ragged-eofs"],
            false,
            Ignored("the handshake is always done on connect, under --header-timeout"),
        ),
    ]
};

/// Takes Gunicorn's own flags (and their values) out of `words`: one
/// warning for each set aside, `--log-file` read as `--error-logfile`,
/// Gunicorn's bare `--proxy-protocol` as `--proxy-protocol auto`; its TLS
/// flags are ferricorn's own, its OpenSSL knobs set aside.
fn set_aside_gunicorns(words: Vec<String>) -> Result<(Vec<String>, Vec<String>)> {
    let mut kept = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut words = words.into_iter().peekable();
    while let Some(word) = words.next() {
        if word == "--proxy-protocol"
            && words
                .peek()
                .is_none_or(|w| w.parse::<crate::ProxyProtocol>().is_err())
        {
            kept.push("--proxy-protocol=auto".to_owned());
            continue;
        }
        // `--flag=value`, `--flag value`, `-kVALUE`, `-k VALUE`.
        let found = GUNICORN_ONLY.iter().find_map(|(flags, takes, what)| {
            flags.iter().find_map(|&flag| {
                let inline = match word.strip_prefix(flag)? {
                    "" => None,
                    rest if *takes && rest.starts_with('=') => Some(rest[1..].to_owned()),
                    rest if *takes && !flag.starts_with("--") => Some(rest.to_owned()),
                    _ => return None,
                };
                Some((flag, *takes, what, inline))
            })
        });
        let Some((flag, takes, what, inline)) = found else {
            kept.push(word);
            continue;
        };
        let value = match (takes, inline) {
            (false, _) => None,
            (true, Some(v)) => Some(v),
            (true, None) => words.next(),
        };
        let given = match &value {
            Some(v) => format!("`{flag} {v}`"),
            None => format!("`{flag}`"),
        };
        match what {
            Gunicorns::Means(ours) => {
                kept.push((*ours).to_owned());
                kept.extend(value.clone());
                warnings.push(format!(
                    "env {}: {given} is read as `{ours}`",
                    env::GUNICORN_CMD_ARGS
                ));
            }
            Gunicorns::Ignored(why) => {
                let line = format!(
                    "env {}: {given} has no effect in ferricorn ({why})",
                    env::GUNICORN_CMD_ARGS
                );
                let seen = format!("env {}: `{flag}", env::GUNICORN_CMD_ARGS);
                if !warnings.iter().any(|w| w.starts_with(&seen)) {
                    warnings.push(line);
                }
            }
        }
    }
    Ok((kept, warnings))
}

/// The error for a command line with a word that is not UTF-8, naming the
/// setting it was for (clap's own message names none).
pub fn not_utf8(args: &[OsString]) -> Option<Error> {
    let at = args.iter().skip(1).position(|a| a.to_str().is_none())? + 1;
    let word = args[at].to_string_lossy();
    let flag = if word.starts_with('-') {
        word.split('=').next().unwrap_or_default().to_owned()
    } else {
        args[at - 1].to_string_lossy().into_owned()
    };
    let long = flag.trim_start_matches('-');
    let key = SETTINGS
        .iter()
        .find(|s| {
            s.long() == long
                || s.aliases.contains(&long)
                || (flag.len() == 2 && s.short.is_some_and(|c| flag.ends_with(c)))
        })
        .map_or_else(|| flag.clone(), |s| s.key.to_owned());
    Some(Error::Invalid {
        key,
        origin: CLI.to_owned(),
        message: format!("not UTF-8: `{word}`"),
    })
}

/// A command-line error as one line: clap's first line, with the flag it
/// suggests instead of an unknown one (`did you mean `--workers`?`).
pub fn clap_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let line = short_quotes(&first_line(&e.to_string()));
    let suggested = [ContextKind::SuggestedArg, ContextKind::SuggestedSubcommand]
        .into_iter()
        .find_map(|kind| match e.get(kind)? {
            ContextValue::String(s) => Some(s.clone()),
            ContextValue::Strings(v) => v.first().cloned(),
            _ => None,
        });
    match suggested {
        Some(s) => format!("{line}; did you mean `{s}`?"),
        None => line,
    }
}

/// `line` with each value clap quotes (`'...'`) cut to its start, so that
/// a huge value leaves the flag named after it in sight.
fn short_quotes(line: &str) -> String {
    let mut out = String::with_capacity(line.len().min(400));
    for (i, part) in line.split('\'').enumerate() {
        if i > 0 {
            out.push('\'');
        }
        out.push_str(&if i % 2 == 1 {
            crate::short(part)
        } else {
            part.into()
        });
    }
    out
}

/// The first non-empty line of a multi-line message, without clap's `error: `.
pub fn first_line(message: &str) -> String {
    let line = message.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    line.trim_start_matches("error: ").to_owned()
}

/// Splits a command line as a POSIX shell would for quotes and backslashes.
pub(crate) fn split_words(text: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unclosed single quote".to_owned()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => w.extend(chars.next()),
                        Some(c) => w.push(c),
                        None => return Err("unclosed double quote".to_owned()),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

fn to_dict(options: &Options) -> Dict {
    Value::serialize(options)
        .ok()
        .and_then(Value::into_dict)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell() {
        let got = split_words(r#"--bind=0.0.0.0:80 -w 3 --log-level 'de bug' "a\"b" c\ d"#);
        assert_eq!(
            got.expect("split"),
            [
                "--bind=0.0.0.0:80",
                "-w",
                "3",
                "--log-level",
                "de bug",
                "a\"b",
                "c d"
            ]
        );
        assert!(split_words("'open").is_err());
    }

    #[test]
    fn env_values_take_their_kind() {
        use crate::options::Tag;
        assert_eq!(Tag::Int.parse(" 4 "), Value::from(4u64));
        assert_eq!(Tag::Int.parse("four"), Value::from("four"));
        assert_eq!(Tag::Secs.parse("2.5"), Value::from(2.5f64));
        assert_eq!(
            Tag::List.parse("a:1, b:2,"),
            Value::from(vec!["a:1".to_owned(), "b:2".to_owned()])
        );
    }
}
