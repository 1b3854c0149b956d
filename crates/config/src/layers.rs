//! The layers, lowest first: defaults < TOML file < environment < command line.
//!
//! Within the environment, the names other servers use come below
//! `GUNICORN_CMD_ARGS`, which comes below ferricorn's own `FERRICORN_*` names:
//!
//! | setting   | names, lowest first                                          |
//! |-----------|--------------------------------------------------------------|
//! | bind      | `PORT`, `UVICORN_HOST` + `UVICORN_PORT`                      |
//! | workers   | `WEB_CONCURRENCY`, `UVICORN_WORKERS`, `GUNICORN_WORKERS`     |
//! | log_level | `UVICORN_LOG_LEVEL`, `GUNICORN_LOG_LEVEL`                    |
//! | forwarded_allow_ips | `FORWARDED_ALLOW_IPS`                              |
//! | any       | `GUNICORN_CMD_ARGS`, then `FERRICORN_<NAME>`                 |
//!
//! Each variable is its own figment provider named after it, so
//! `--print-config` can say exactly which variable won.

use std::path::{Path, PathBuf};

use clap::Parser;
use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use crate::options::{KEYS, Kind, Options};
use crate::{Error, Result};

/// The file read when no `-c/--config` or `FERRICORN_CONFIG` names one.
pub const DEFAULT_FILE: &str = "ferricorn.toml";
/// Environment variable naming the config file.
pub const ENV_CONFIG: &str = "FERRICORN_CONFIG";
/// Prefix of ferricorn's own environment names.
pub const ENV_PREFIX: &str = "FERRICORN_";
/// Gunicorn's extra command-line arguments.
pub const ENV_CMD_ARGS: &str = "GUNICORN_CMD_ARGS";

/// Environment names of other servers, per setting, lowest precedence first.
const ALIASES: &[(&str, &[&str])] = &[
    (
        "workers",
        &["WEB_CONCURRENCY", "UVICORN_WORKERS", "GUNICORN_WORKERS"],
    ),
    ("log_level", &["UVICORN_LOG_LEVEL", "GUNICORN_LOG_LEVEL"]),
    ("forwarded_allow_ips", &["FORWARDED_ALLOW_IPS"]),
];

/// One named provider: a file, an environment variable, or the command line.
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

/// The merged layers, before validation.
pub(crate) struct Layers {
    pub figment: Figment,
    pub file: Option<PathBuf>,
    pub env_values: Vec<EnvValue>,
}

/// Stacks every layer. `cli` holds only what the command line set.
pub(crate) fn stack(cli: &Options, config_file: Option<&Path>) -> Result<Layers> {
    let mut figment = Figment::new();
    let file = config_path(config_file)?;
    if let Some(path) = &file {
        figment = figment.merge(Toml::file_exact(path));
    }
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
    if let Some((name, addr)) = port_bind() {
        figment = push(figment, "bind", name, Value::from(vec![addr]));
    }
    if let Some((name, addr)) = uvicorn_bind() {
        figment = push(figment, "bind", name, Value::from(vec![addr]));
    }
    for (key, names) in ALIASES {
        let kind = kind_of(key);
        for name in *names {
            if let Some(text) = var(name) {
                figment = push(figment, key, format!("env {name}"), env_value(kind, &text));
            }
        }
    }
    if let Some(text) = var(ENV_CMD_ARGS) {
        let options = parse_cmd_args(&text)?;
        let dict = to_dict(&options);
        for (key, _) in KEYS {
            if let Some(value) = dict.get(*key) {
                figment = push(figment, key, format!("env {ENV_CMD_ARGS}"), value.clone());
            }
        }
    }
    for (key, kind) in KEYS {
        let name = format!("{ENV_PREFIX}{}", key.to_ascii_uppercase());
        if let Some(text) = var(&name) {
            figment = push(figment, key, format!("env {name}"), env_value(*kind, &text));
        }
    }
    figment = figment.merge(Layer {
        name: "cli".to_owned(),
        dict: to_dict(cli),
    });
    Ok(Layers {
        figment,
        file,
        env_values,
    })
}

/// Where a key's value came from: `default`, `file PATH`, `env NAME` or `cli`.
pub(crate) fn source_of(figment: &Figment, key: &str) -> String {
    figment
        .find_metadata(key)
        .map_or_else(|| "default".to_owned(), describe)
}

/// Names a provider: `file PATH` for the TOML file, else the layer's name.
pub(crate) fn describe(metadata: &Metadata) -> String {
    match &metadata.source {
        Some(figment::Source::File(path)) => format!("file {}", path.display()),
        _ => metadata.name.to_string(),
    }
}

/// The config file to read: the one named, or `ferricorn.toml` if present.
fn config_path(named: Option<&Path>) -> Result<Option<PathBuf>> {
    let named = named
        .map(Path::to_path_buf)
        .or_else(|| var(ENV_CONFIG).map(PathBuf::from));
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

/// A set, non-empty environment variable.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn kind_of(key: &str) -> Kind {
    KEYS.iter()
        .find(|(k, _)| *k == key)
        .map_or(Kind::Text, |(_, kind)| *kind)
}

/// Turns an environment variable's text into a value of the key's kind; text
/// that does not parse is kept as text, so extraction names the variable.
fn env_value(kind: Kind, text: &str) -> Value {
    let text = text.trim();
    match kind {
        Kind::List => Value::from(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        ),
        Kind::Int => text
            .parse::<u64>()
            .map_or_else(|_| Value::from(text), Value::from),
        Kind::Secs => text
            .parse::<f64>()
            .map_or_else(|_| Value::from(text), Value::from),
        Kind::Text => Value::from(text),
    }
}

/// `PORT` alone means every IPv4 interface on that port.
fn port_bind() -> Option<(String, String)> {
    var("PORT").map(|port| ("env PORT".to_owned(), format!("0.0.0.0:{}", port.trim())))
}

/// `UVICORN_HOST` and `UVICORN_PORT`, each defaulting as Uvicorn does.
fn uvicorn_bind() -> Option<(String, String)> {
    let (host, port) = (var("UVICORN_HOST"), var("UVICORN_PORT"));
    let name = match (&host, &port) {
        (None, None) => return None,
        (Some(_), None) => "env UVICORN_HOST",
        (None, Some(_)) => "env UVICORN_PORT",
        (Some(_), Some(_)) => "env UVICORN_HOST+UVICORN_PORT",
    };
    let host = host.unwrap_or_else(|| "127.0.0.1".to_owned());
    let host = host.trim();
    let port = port.unwrap_or_else(|| "8000".to_owned());
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Some((name.to_owned(), format!("{host}:{}", port.trim())))
}

#[derive(Parser)]
#[command(name = ENV_CMD_ARGS, no_binary_name = true, disable_help_flag = true)]
struct CmdArgs {
    #[command(flatten)]
    options: Options,
}

/// Parses `GUNICORN_CMD_ARGS` with the same flags as the command line.
fn parse_cmd_args(text: &str) -> Result<Options> {
    let words = split_words(text).map_err(Error::CmdArgs)?;
    CmdArgs::try_parse_from(words)
        .map(|a| a.options)
        .map_err(|e| Error::CmdArgs(first_line(&e.to_string())))
}

/// The first non-empty line of a multi-line message, without clap's `error: `.
pub fn first_line(message: &str) -> String {
    let line = message.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    line.trim_start_matches("error: ").to_owned()
}

/// Splits a command line as a POSIX shell would for quotes and backslashes.
fn split_words(text: &str) -> std::result::Result<Vec<String>, String> {
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

/// Renders a value as TOML would write it.
pub(crate) fn render(value: &Value) -> String {
    match value {
        Value::String(_, s) => format!("{s:?}"),
        Value::Char(_, c) => format!("{:?}", c.to_string()),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => match (n.to_u128(), n.to_i128(), n.to_f64()) {
            (Some(u), ..) => u.to_string(),
            (_, Some(i), _) => i.to_string(),
            (.., Some(f)) => f.to_string(),
            _ => format!("{n:?}"),
        },
        Value::Array(_, items) => {
            let items: Vec<_> = items.iter().map(render).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Dict(..) | Value::Empty(..) => String::new(),
    }
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
        assert_eq!(env_value(Kind::Int, " 4 "), Value::from(4u64));
        assert_eq!(env_value(Kind::Int, "four"), Value::from("four"));
        assert_eq!(env_value(Kind::Secs, "2.5"), Value::from(2.5f64));
        assert_eq!(
            env_value(Kind::List, "a:1, b:2,"),
            Value::from(vec!["a:1".to_owned(), "b:2".to_owned()])
        );
    }
}
