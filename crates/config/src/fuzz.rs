//! The properties the fuzz targets in `fuzz/` check for the settings (see
//! `ferricorn_worker`'s `fuzz` module for the scheme).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use clap::Parser;

use crate::layers::{self, CmdArgsParser, Environment};
use crate::{AccessLogFormat, Error, Options, SETTINGS, env, load_in};

/// Every name the settings are read from, for the fuzz input to pick.
fn env_names() -> Vec<String> {
    let mut names: Vec<String> = SETTINGS.iter().map(|s| s.env_name()).collect();
    names.extend(
        SETTINGS
            .iter()
            .flat_map(|s| s.env.iter().map(|n| (*n).to_owned())),
    );
    names.extend(
        [
            env::CONFIG,
            env::HOST,
            env::PORT_OWN,
            env::GUNICORN_CMD_ARGS,
            "FERRICORN_WORKERZ",
        ]
        .map(str::to_owned),
    );
    names
}

/// Settings from a TOML file, the environment and the command line at
/// once (the input's NUL-separated parts: the file's bytes; environment
/// lines, each a byte that picks the name and then the value's bytes; the
/// command line's words, split at 0x01). They load, or fail with one line
/// that names the layer.
pub fn settings(data: &[u8]) {
    let mut parts = data.splitn(3, |&b| b == 0);
    let (file, vars, cli) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let names = env_names();
    let mut environment = Environment::default();
    for line in vars.split(|&b| b == b'\n') {
        if let Some((&n, value)) = line.split_first() {
            let name = &names[usize::from(n) % names.len()];
            environment.set(name.as_str(), OsString::from_vec(value.to_vec()));
        }
    }
    let path = std::env::temp_dir().join(format!("ferricorn-fuzz-{}.toml", std::process::id()));
    let file = if file.is_empty() {
        None
    } else {
        std::fs::write(&path, file).expect("write the file");
        Some(path.as_path())
    };
    let words: Vec<OsString> = cli
        .split(|&b| b == 1)
        .filter(|w| !w.is_empty())
        .map(|w| OsString::from_vec(w.to_vec()))
        .collect();
    let mut line = vec![OsString::from("ferricorn")];
    line.extend(words.iter().cloned());
    if let Some(e) = layers::not_utf8(&line) {
        one_line(&e.to_string());
        return;
    }
    let cli = match CmdArgsParser::try_parse_from(words) {
        Ok(a) => a.options,
        Err(e) => {
            one_line(&layers::clap_error(&e));
            return;
        }
    };
    match load_in(&environment, &Options::default(), &cli, file) {
        Ok(loaded) => assert!(loaded.config.workers <= crate::MAX_WORKERS),
        Err(e) => {
            one_line(&e.to_string());
            if let Error::Invalid { origin, .. } | Error::Layer { origin, .. } = &e {
                assert!(
                    ["default", "code", "cli", "file ", "env ", "config"]
                        .iter()
                        .any(|o| origin.starts_with(o)),
                    "no layer in {e}"
                );
            }
        }
    }
}

fn one_line(message: &str) {
    assert!(
        !message.trim().is_empty() && !message.trim_end().contains('\n'),
        "not one line: {message:?}"
    );
}

/// `GUNICORN_CMD_ARGS` split like a shell: words quoted back and joined
/// split to the same words, and parsing them never panics.
pub fn cmd_args(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(words) = layers::split_words(text) {
        let quoted: Vec<String> = words
            .iter()
            .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
            .collect();
        assert_eq!(
            layers::split_words(&quoted.join(" ")).as_ref(),
            Ok(&words),
            "{text:?}"
        );
    }
    if let Err(e) = layers::parse_cmd_args(text) {
        one_line(&e.to_string());
    }
}

/// `--access-logformat`: a format that parses shows as its text, and that
/// text parses to the same atoms.
pub fn access_log_format(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<AccessLogFormat>() {
        Ok(format) => {
            assert_eq!(format.to_string(), text);
            let again: AccessLogFormat = text.parse().expect("parses again");
            assert_eq!(again.atoms(), format.atoms());
        }
        Err(e) => one_line(&e.to_string()),
    }
}
