//! The layers, lowest first: the settings table's defaults < a program's
//! own defaults (`ferricorn::Server`'s setters) < the TOML file < the
//! environment < the command line.
//!
//! Within the environment, the names other servers use (the settings
//! table's `env` lists, lowest first) come below `GUNICORN_CMD_ARGS`,
//! which comes below ferricorn's own `FERRICORN_*` names. Each variable is
//! its own figment provider named after it, so `--print-config` can say
//! exactly which variable won.

use std::path::{Path, PathBuf};

use clap::Parser;
use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use crate::env;
use crate::options::{Options, SETTINGS, Setting};
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
        name: "cli".to_owned(),
        dict: to_dict(options),
    })
}

/// Stacks every layer. `code` holds what the program set, `cli` only what
/// the command line set.
pub(crate) fn stack(code: &Options, cli: &Options, config_file: Option<&Path>) -> Result<Layers> {
    let mut figment = defaults(code);
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
    for setting in SETTINGS {
        for (name, value) in other_servers(setting) {
            figment = push(figment, setting.key, name, value);
        }
    }
    if let Some(text) = var(env::GUNICORN_CMD_ARGS) {
        let options = parse_cmd_args(&text)?;
        let dict = to_dict(&options);
        for s in SETTINGS {
            if let Some(value) = dict.get(s.key) {
                let name = format!("env {}", env::GUNICORN_CMD_ARGS);
                figment = push(figment, s.key, name, value.clone());
            }
        }
    }
    for s in SETTINGS {
        let name = s.env_name();
        if let Some(text) = var(&name) {
            figment = push(figment, s.key, format!("env {name}"), s.kind.parse(&text));
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

/// What the other servers' names in `setting`'s `env` list set, lowest
/// first, each with its layer's name. `bind`'s are not its value itself:
/// `PORT` is a port on every interface, and Uvicorn's host and port make
/// one address between them.
fn other_servers(setting: &Setting) -> Vec<(String, Value)> {
    if setting.key == "bind" {
        return [port_bind(), uvicorn_bind()]
            .into_iter()
            .flatten()
            .map(|(name, addr)| (name, Value::from(vec![addr])))
            .collect();
    }
    setting
        .env
        .iter()
        .filter_map(|name| Some((format!("env {name}"), setting.kind.parse(&var(name)?))))
        .collect()
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
fn config_path(named: Option<&Path>) -> Result<Option<PathBuf>> {
    let named = named
        .map(Path::to_path_buf)
        .or_else(|| var(env::CONFIG).map(PathBuf::from));
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

/// `PORT` alone means every IPv4 interface on that port.
fn port_bind() -> Option<(String, String)> {
    let port = var(env::PORT)?;
    Some((
        format!("env {}", env::PORT),
        format!("0.0.0.0:{}", port.trim()),
    ))
}

/// `UVICORN_HOST` and `UVICORN_PORT`, each defaulting as Uvicorn does.
fn uvicorn_bind() -> Option<(String, String)> {
    let (host, port) = (var(env::UVICORN_HOST), var(env::UVICORN_PORT));
    let name = match (&host, &port) {
        (None, None) => return None,
        (Some(_), None) => format!("env {}", env::UVICORN_HOST),
        (None, Some(_)) => format!("env {}", env::UVICORN_PORT),
        (Some(_), Some(_)) => format!("env {}+{}", env::UVICORN_HOST, env::UVICORN_PORT),
    };
    let host = host.unwrap_or_else(|| "127.0.0.1".to_owned());
    let host = host.trim();
    let port = port.unwrap_or_else(|| "8000".to_owned());
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Some((name, format!("{host}:{}", port.trim())))
}

#[derive(Parser)]
#[command(
    name = "GUNICORN_CMD_ARGS",
    no_binary_name = true,
    disable_help_flag = true
)]
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
