//! The raw settings, as the settings table describes them: [`Options`],
//! what one layer (the command line, a program's code) set, every field
//! optional; [`SETTINGS`], what the table says of each; and the command
//! line's flags, made from it.

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches, value_parser};
use figment::Figment;
use figment::value::Value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::env;

/// What a setting holds before it is checked, and how it is read.
pub trait Kind {
    /// The raw value: `Vec<String>`, `u64`, `f64` or `String`.
    type Raw: Clone + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// Which kind this is.
    const TAG: Tag;

    /// The value `key` has in the merged layers.
    fn extract(figment: &Figment, key: &str) -> Result<Self::Raw, Box<figment::Error>> {
        figment.extract_inner(key).map_err(Box::new)
    }

    /// The value the command line gave for `id`, if any.
    fn from_matches(m: &ArgMatches, id: &str) -> Option<Self::Raw> {
        m.get_one::<Self::Raw>(id).cloned()
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

impl Kind for List {
    type Raw = Vec<String>;
    const TAG: Tag = Tag::List;

    fn extract(figment: &Figment, key: &str) -> Result<Vec<String>, Box<figment::Error>> {
        /// `bind = "ADDR"` as well as `bind = ["ADDR", ...]`.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match figment.extract_inner(key).map_err(Box::new)? {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        })
    }

    fn from_matches(m: &ArgMatches, id: &str) -> Option<Vec<String>> {
        m.get_many::<String>(id).map(|v| v.cloned().collect())
    }
}

impl Kind for Int {
    type Raw = u64;
    const TAG: Tag = Tag::Int;
}

impl Kind for Secs {
    type Raw = f64;
    const TAG: Tag = Tag::Secs;
}

impl Kind for Text {
    type Raw = String;
    const TAG: Tag = Tag::Text;
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
    /// Other servers' environment names, lowest precedence first.
    pub env: &'static [&'static str],
    /// The `--help` line.
    pub help: &'static str,
    /// What the README says.
    pub doc: &'static str,
}

impl Setting {
    /// `bind-address` for `bind_address`: the flag without its dashes.
    fn long(&self) -> String {
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

    /// The command-line argument.
    fn arg(&self) -> Arg {
        let arg = Arg::new(self.key)
            .long(self.long())
            .value_name(self.value_name)
            .help(format!("{} [default: {}]", self.help, self.shown));
        let arg = match self.short {
            Some(c) => arg.short(c),
            None => arg,
        };
        match self.kind {
            Tag::List => arg.action(ArgAction::Append).value_delimiter(','),
            Tag::Int => arg.value_parser(value_parser!(u64)),
            Tag::Secs => arg.value_parser(value_parser!(f64)),
            Tag::Text => arg,
        }
    }
}

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
        $(shown: $shown:literal,)?
        flag: ([$($short:literal)?], $value_name:literal),
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
                env: &[$($env),*],
                help: $help,
                doc: $doc,
            },
        )*];

        impl FromArgMatches for Options {
            fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
                Ok(Self {
                    $($key: <$kind as Kind>::from_matches(m, stringify!($key)),)*
                })
            }

            fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
                $(
                    if let Some(v) = <$kind as Kind>::from_matches(m, stringify!($key)) {
                        self.$key = Some(v);
                    }
                )*
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

impl Args for Options {
    fn augment_args(cmd: Command) -> Command {
        cmd.args(SETTINGS.iter().map(Setting::arg))
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
            };
            assert!(ok, "{}: {:?}", s.key, s.default);
        }
    }

    #[test]
    fn keys_are_unique_and_snake_case() {
        for (i, s) in SETTINGS.iter().enumerate() {
            assert!(
                s.key.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
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
            args.push(match s.kind {
                Tag::Int => "1".to_owned(),
                Tag::Secs => "1.5".to_owned(),
                Tag::List | Tag::Text => "x".to_owned(),
            });
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
