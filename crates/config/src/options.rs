//! The raw settings, as the settings table describes them: [`Options`],
//! what one layer (the command line, a program's code) set, every field
//! optional; [`SETTINGS`], what the table says of each; and the command
//! line's flags, made from it.

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use figment::value::Value;
use serde::Serialize;

use crate::env;

/// What a setting holds before it is checked, and how it is read. A value
/// of the wrong type is worded the same whichever layer it came from.
pub trait Kind {
    /// The raw value: `Vec<String>`, `u64`, `f64`, `String` or `bool`.
    type Raw: Clone + Serialize + Send + Sync + 'static;
    /// Which kind this is.
    const TAG: Tag;

    /// The raw value from a layer's value: a TOML file's, an environment
    /// variable's (read by its kind first) or a program's. `Err` says what is
    /// wrong, in the same words for every layer.
    fn from_value(value: &Value) -> Result<Self::Raw, String>;

    /// The raw value from the command line's text.
    fn from_text(text: &str) -> Result<Self::Raw, String> {
        Self::from_value(&Value::from(text))
    }

    /// The value the command line gave for `id`, if any.
    fn from_matches(m: &ArgMatches, id: &str) -> Option<Result<Self::Raw, String>> {
        m.get_one::<String>(id).map(|t| Self::from_text(t))
    }
}

/// The kinds of setting, as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// A list: comma-separated in the environment, repeatable and
    /// comma-separated on the command line; one item or an array in TOML.
    List,
    /// A whole number.
    Int,
    /// Seconds, whole or fractional.
    Secs,
    /// Text.
    Text,
    /// On or off: a flag without a value on the command line; `true` or
    /// `false` in TOML; `1`, `true`, `yes`, `on` or `0`, `false`, `no`,
    /// `off` in the environment.
    Flag,
}

/// A list setting.
#[derive(Debug)]
pub enum List {}
/// A whole-number setting.
#[derive(Debug)]
pub enum Int {}
/// A setting in seconds.
#[derive(Debug)]
pub enum Secs {}
/// A text setting.
#[derive(Debug)]
pub enum Text {}
/// An on-or-off setting.
#[derive(Debug)]
pub enum Flag {}

/// A value as the error messages quote it: text as given, others as TOML
/// writes them.
fn quoted(value: &Value) -> String {
    match value {
        Value::String(_, s) => format!("`{s}`"),
        other => format!("`{}`", crate::toml::render(other)),
    }
}

/// A single value as text: TOML's `group = 1000` is the group `1000`.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(_, s) => Some(s.clone()),
        Value::Char(_, c) => Some(c.to_string()),
        Value::Num(..) | Value::Bool(..) => Some(crate::toml::render(value)),
        Value::Array(..) | Value::Dict(..) | Value::Empty(..) => None,
    }
}

impl Kind for List {
    type Raw = Vec<String>;
    const TAG: Tag = Tag::List;

    /// `bind = "ADDR"` as well as `bind = ["ADDR", ...]`.
    fn from_value(value: &Value) -> Result<Vec<String>, String> {
        let expected = || format!("expected text or a list of text, found {}", quoted(value));
        match value {
            Value::Array(_, items) => items
                .iter()
                .map(|v| scalar_text(v).ok_or_else(expected))
                .collect(),
            v => scalar_text(v).map(|s| vec![s]).ok_or_else(expected),
        }
    }

    fn from_text(text: &str) -> Result<Vec<String>, String> {
        Ok(vec![text.to_owned()])
    }

    fn from_matches(m: &ArgMatches, id: &str) -> Option<Result<Vec<String>, String>> {
        m.get_many::<String>(id).map(|v| Ok(v.cloned().collect()))
    }
}

impl Kind for Int {
    type Raw = u64;
    const TAG: Tag = Tag::Int;

    fn from_value(value: &Value) -> Result<u64, String> {
        let negative = || {
            format!(
                "expected a whole number (0 or more), found {}",
                quoted(value)
            )
        };
        let other = || format!("expected a whole number, found {}", quoted(value));
        match value {
            Value::Num(_, n) => match (n.to_u128(), n.to_i128()) {
                (Some(u), _) => u64::try_from(u).map_err(|_| other()),
                (None, Some(i)) if i >= 0 => u64::try_from(i).map_err(|_| other()),
                (None, Some(_)) => Err(negative()),
                _ => Err(other()),
            },
            Value::String(_, s) => {
                let s = s.trim();
                match (s.parse::<u64>(), s.parse::<i64>()) {
                    (Ok(n), _) => Ok(n),
                    (_, Ok(_)) => Err(negative()),
                    _ => Err(other()),
                }
            }
            _ => Err(other()),
        }
    }
}

impl Kind for Secs {
    type Raw = f64;
    const TAG: Tag = Tag::Secs;

    fn from_value(value: &Value) -> Result<f64, String> {
        let other = || format!("expected a number of seconds, found {}", quoted(value));
        match value {
            Value::Num(_, n) => n
                .to_f64()
                .or_else(|| n.to_i128().map(|i| i as f64))
                .ok_or_else(other),
            Value::String(_, s) => s.trim().parse::<f64>().map_err(|_| other()),
            _ => Err(other()),
        }
    }
}

impl Kind for Text {
    type Raw = String;
    const TAG: Tag = Tag::Text;

    fn from_value(value: &Value) -> Result<String, String> {
        scalar_text(value).ok_or_else(|| format!("expected text, found {}", quoted(value)))
    }
}

impl Kind for Flag {
    type Raw = bool;
    const TAG: Tag = Tag::Flag;

    fn from_value(value: &Value) -> Result<bool, String> {
        let other = || format!("expected true or false, found {}", quoted(value));
        match value {
            Value::Bool(_, b) => Ok(*b),
            Value::String(_, s) => flag_word(s).ok_or_else(other),
            Value::Num(_, n) => match n.to_u128() {
                Some(0) => Ok(false),
                Some(1) => Ok(true),
                _ => Err(other()),
            },
            _ => Err(other()),
        }
    }

    fn from_matches(m: &ArgMatches, id: &str) -> Option<Result<bool, String>> {
        (m.value_source(id) == Some(clap::parser::ValueSource::CommandLine)).then_some(Ok(true))
    }
}

/// `1`, `true`, `yes`, `on` or `0`, `false`, `no`, `off`, in any case.
fn flag_word(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

impl Tag {
    /// A value of this kind from an environment variable's text; text that
    /// does not parse is kept as text, so that the check names the
    /// variable.
    pub(crate) fn parse(self, text: &str) -> Value {
        let text = text.trim();
        match self {
            Self::List => Value::from(
                text.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            ),
            Self::Int => text
                .parse::<u64>()
                .map_or_else(|_| Value::from(text), Value::from),
            Self::Secs => text
                .parse::<f64>()
                .map_or_else(|_| Value::from(text), Value::from),
            Self::Text => Value::from(text),
            Self::Flag => flag_word(text).map_or_else(|| Value::from(text), Value::from),
        }
    }
}

/// What the settings table says of one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The TOML key.
    pub key: &'static str,
    /// Its kind.
    pub kind: Tag,
    /// The default, as a raw value's text.
    pub default: &'static str,
    /// The default as `--help` and the README show it.
    pub shown: &'static str,
    /// The short flag, if any.
    pub short: Option<char>,
    /// The flag's value name.
    pub value_name: &'static str,
    /// Other long flags for it (Uvicorn's names), without their dashes.
    pub aliases: &'static [&'static str],
    /// Other servers' environment names, lowest precedence first.
    pub env: &'static [&'static str],
    /// The `--help` line.
    pub help: &'static str,
    /// The heading `--help` lists it under.
    pub section: &'static str,
    /// What the README says.
    pub doc: &'static str,
}

impl Setting {
    /// `bind-address` for `bind_address`: the flag without its dashes.
    pub(crate) fn long(&self) -> String {
        self.key.replace('_', "-")
    }

    /// `--bind`.
    pub fn flag(&self) -> String {
        format!("--{}", self.long())
    }

    /// Whether the default is shown in words (`none`, `unchanged`) rather
    /// than as a value.
    pub fn shown_in_words(&self) -> bool {
        self.shown != self.default
    }

    /// `FERRICORN_BIND`.
    pub fn env_name(&self) -> String {
        format!("{}{}", env::PREFIX, self.key.to_ascii_uppercase())
    }

    /// The default as a raw value.
    pub(crate) fn default_value(&self) -> Value {
        self.kind.parse(self.default)
    }

    /// The command-line argument. Values are taken as text and read by
    /// the kind (see [`Kind::from_text`]), so that a wrong one is worded as
    /// in the other layers; numbers may be negative, so that `-w -1` is a
    /// wrong value rather than an unknown flag. Global, so that it may
    /// follow a subcommand (`ferricorn healthcheck -b ADDR`); all but
    /// `--timeout`, which `ferricorn healthcheck` has a meaning of its own
    /// for (how long to wait for the answer).
    fn arg(&self) -> Arg {
        let default = match self.kind {
            Tag::Flag => String::new(),
            _ => format!(" [default: {}]", self.shown),
        };
        let arg = Arg::new(self.key)
            .long(self.long())
            .visible_aliases(self.aliases)
            .help(format!("{}{default}", self.help))
            .help_heading(self.section)
            .global(self.key != "timeout");
        let arg = match self.short {
            Some(c) => arg.short(c),
            None => arg,
        };
        match self.kind {
            Tag::List => arg
                .value_name(self.value_name)
                .action(ArgAction::Append)
                .value_delimiter(','),
            Tag::Int | Tag::Secs => arg.value_name(self.value_name).allow_negative_numbers(true),
            Tag::Text => arg.value_name(self.value_name),
            Tag::Flag => arg.action(ArgAction::SetTrue),
        }
    }
}

/// The error the command line gives for a value of the wrong type: worded
/// as the other layers word it.
fn cli_error(key: &str, message: String) -> clap::Error {
    let e = crate::Error::Invalid {
        key: key.to_owned(),
        origin: CLI.to_owned(),
        message,
    };
    clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{e}\n"))
}

/// The name of the command line's layer, as `--print-config` shows it.
pub(crate) const CLI: &str = "cli";

/// The `shown` text of an entry: the one given, else the default.
macro_rules! shown {
    ($shown:literal, $default:literal) => {
        $shown
    };
    (, $default:literal) => {
        $default
    };
}

macro_rules! options {
    ($($key:ident: $kind:ident => $checked:ty = $default:literal {
        help: $help:literal,
        check: $check:expr,
        section: $section:literal,
        $(shown: $shown:literal,)?
        flag: ([$($short:literal)?], $value_name:literal $(, [$($alias:literal),*])?),
        env: [$($env:expr),* $(,)?],
        doc: $doc:literal,
    })*) => {
        /// Every setting as one layer set it (the command line, a
        /// program's code): each field optional. Its flags are the
        /// settings table's.
        #[derive(Debug, Clone, Default, PartialEq, Serialize)]
        pub struct Options {
            $(
                #[doc = $help]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $key: Option<<$kind as Kind>::Raw>,
            )*
            /// `--host`: the host of the address to bind, with `--port`
            /// (Uvicorn's flags; see [`Address`](crate::layers)).
            #[serde(skip)]
            pub host: Option<String>,
            /// `--port`: the port of the address to bind, with `--host`.
            #[serde(skip)]
            pub port: Option<String>,
        }

        /// What the settings table says of every setting, in its order.
        pub const SETTINGS: &[Setting] = &[$(
            Setting {
                key: stringify!($key),
                kind: <$kind as Kind>::TAG,
                default: $default,
                shown: shown!($($shown)?, $default),
                short: first_char(&[$($short)?]),
                value_name: $value_name,
                aliases: &[$($($alias),*)?],
                env: &[$($env),*],
                help: $help,
                section: $section,
                doc: $doc,
            },
        )*];

        impl FromArgMatches for Options {
            fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
                let mut options = Self::default();
                options.update_from_arg_matches(m)?;
                Ok(options)
            }

            fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
                $(
                    if let Some(v) = <$kind as Kind>::from_matches(m, stringify!($key)) {
                        self.$key = Some(v.map_err(|e| cli_error(stringify!($key), e))?);
                    }
                )*
                if let Some(host) = m.get_one::<String>(HOST) {
                    self.host = Some(host.clone());
                }
                if let Some(port) = m.get_one::<String>(PORT) {
                    self.port = Some(port.clone());
                }
                Ok(())
            }
        }
    };
}

crate::for_each_setting!(options);

const fn first_char(c: &[char]) -> Option<char> {
    match c {
        [c, ..] => Some(*c),
        [] => None,
    }
}

/// The ids of `--host` and `--port`.
const HOST: &str = "host";
const PORT: &str = "port";

impl Args for Options {
    fn augment_args(cmd: Command) -> Command {
        let section = setting("bind").map_or("", |s| s.section);
        let part = |id: &'static str, name: &'static str, help: &'static str| {
            Arg::new(id)
                .long(id)
                .value_name(name)
                .help(help)
                .help_heading(section)
                .global(true)
                .conflicts_with("bind")
        };
        cmd.args(SETTINGS.iter().map(Setting::arg)).args([
            part(
                HOST,
                "HOST",
                "Host to bind, with --port, as Uvicorn's --host; instead of --bind [default: 127.0.0.1]",
            ),
            part(
                PORT,
                "PORT",
                "Port to bind, with --host, as Uvicorn's --port; instead of --bind [default: 8000]",
            ),
        ])
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

/// The setting with this key.
pub fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_a_value_of_its_kind() {
        for s in SETTINGS {
            let parsed = s.default_value();
            let ok = match s.kind {
                Tag::List => parsed.as_array().is_some(),
                Tag::Int | Tag::Secs => parsed.to_num().is_some(),
                Tag::Text => parsed.as_str().is_some(),
                Tag::Flag => parsed.to_bool().is_some(),
            };
            assert!(ok, "{}: {:?}", s.key, s.default);
        }
    }

    #[test]
    fn keys_are_unique_and_snake_case() {
        for (i, s) in SETTINGS.iter().enumerate() {
            assert!(
                s.key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                s.key
            );
            assert!(
                SETTINGS[..i].iter().all(|t| t.key != s.key),
                "{} twice",
                s.key
            );
        }
    }

    #[test]
    fn a_fully_set_layer_serializes_every_key() {
        let cmd = Options::augment_args(Command::new("t").no_binary_name(true));
        let mut args = Vec::new();
        for s in SETTINGS {
            args.push(s.flag());
            match s.kind {
                Tag::Int => args.push("1".to_owned()),
                Tag::Secs => args.push("1.5".to_owned()),
                Tag::List | Tag::Text => args.push("x".to_owned()),
                Tag::Flag => {}
            }
        }
        let m = cmd.try_get_matches_from(args).expect("every flag parses");
        let options = Options::from_arg_matches(&m).expect("options");
        let dict = Value::serialize(&options)
            .expect("serialize")
            .into_dict()
            .expect("dict");
        assert_eq!(dict.len(), SETTINGS.len());
        assert_eq!(
            options.keep_alive,
            Some(1.5),
            "a Secs flag is read as seconds"
        );
    }
}

#[cfg(test)]
mod kinds {
    use super::*;

    #[test]
    fn wrong_types_are_worded_by_kind() {
        assert_eq!(
            Int::from_text("-1"),
            Err("expected a whole number (0 or more), found `-1`".to_owned())
        );
        assert_eq!(
            Int::from_value(&Value::from(-1i64)),
            Int::from_text("-1"),
            "a TOML number and the command line's text are worded the same"
        );
        assert_eq!(
            Int::from_text("four"),
            Err("expected a whole number, found `four`".to_owned())
        );
        assert_eq!(Int::from_value(&Value::from(2.5f64)).ok(), None);
        assert_eq!(Int::from_text(" 4 "), Ok(4));
        assert_eq!(Secs::from_text("1.5"), Ok(1.5));
        assert_eq!(
            Secs::from_text("soon"),
            Err("expected a number of seconds, found `soon`".to_owned())
        );
        assert_eq!(
            Text::from_value(&Value::from(1000u64)),
            Ok("1000".to_owned())
        );
        assert_eq!(
            List::from_value(&Value::from(vec!["a".to_owned(), "b".to_owned()])),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(
            List::from_value(&Value::from("a")),
            Ok(vec!["a".to_owned()])
        );
        assert_eq!(Flag::from_value(&Tag::Flag.parse("Yes")), Ok(true));
        assert_eq!(Flag::from_value(&Tag::Flag.parse("off")), Ok(false));
        assert_eq!(
            Flag::from_value(&Tag::Flag.parse("maybe")),
            Err("expected true or false, found `maybe`".to_owned())
        );
    }

    #[test]
    fn command_line_values_are_checked_in_the_same_words() {
        let cmd = Options::augment_args(Command::new("t").no_binary_name(true));
        let m = cmd
            .try_get_matches_from(["-w", "-1"])
            .expect("a negative number is a value");
        let err = Options::from_arg_matches(&m).expect_err("negative workers");
        assert_eq!(
            crate::first_line(&err.to_string()),
            "invalid value for `workers` (from cli): expected a whole number (0 or more), found `-1`"
        );
    }

    #[test]
    fn host_and_port_are_taken_and_conflict_with_bind() {
        let cmd = || Options::augment_args(Command::new("t").no_binary_name(true));
        let m = cmd()
            .try_get_matches_from(["--host", "0.0.0.0", "--port", "9000"])
            .expect("host and port");
        let options = Options::from_arg_matches(&m).expect("options");
        assert_eq!(options.host.as_deref(), Some("0.0.0.0"));
        assert_eq!(options.port.as_deref(), Some("9000"));
        assert!(
            cmd()
                .try_get_matches_from(["--port", "9000", "-b", "127.0.0.1:1"])
                .is_err()
        );
    }
}
