//! The README's settings table, made from the settings table. A test
//! compares it with the README; `FERRICORN_BLESS=1 cargo test -p
//! ferricorn-config readme` writes it there.

use crate::env;
use crate::options::{SETTINGS, Setting, Tag};

/// Every setting as a Markdown table: flag, environment names (highest
/// precedence first), default, meaning; then the config file's own row.
pub fn settings_table() -> String {
    let mut out = String::from("| flag | environment | default | meaning |\n|---|---|---|---|\n");
    for s in SETTINGS {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            flag(s),
            environment(s),
            default(s),
            s.doc
        ));
    }
    out.push_str(&format!(
        "| `--host HOST` | `{}`, `{}` | `127.0.0.1` | with `--port`, instead of `--bind`: one address between them (see Binding above); not a key of the file |\n",
        env::HOST,
        env::UVICORN_HOST
    ));
    out.push_str(&format!(
        "| `--port PORT` | `{}`, `{}`, `{}` | `8000` | with `--host`, instead of `--bind` |\n",
        env::PORT_OWN,
        env::UVICORN_PORT,
        env::PORT
    ));
    out.push_str(&format!(
        "| `-c, --config PATH` | `{}` | `ferricorn.toml` if present | the TOML file |\n",
        env::CONFIG
    ));
    out
}

fn flag(s: &Setting) -> String {
    let short = s.short.map(|c| format!("-{c}, ")).unwrap_or_default();
    let repeat = if s.kind == Tag::List {
        " (repeatable)"
    } else {
        ""
    };
    let aliases: String = s.aliases.iter().map(|a| format!(", `--{a}`")).collect();
    match s.value_name {
        "" => format!("`{short}{}`{aliases}", s.flag()),
        name => format!("`{short}{} {name}`{aliases}{repeat}", s.flag()),
    }
}

fn environment(s: &Setting) -> String {
    let mut names = vec![format!("`{}`", s.env_name())];
    names.extend(s.env.iter().rev().map(|n| format!("`{n}`")));
    names.join(", ")
}

/// A default that is a value is shown as code; one in words is not.
fn default(s: &Setting) -> String {
    match s.shown {
        "" => "empty".to_owned(),
        words if s.shown_in_words() => words.to_owned(),
        value => format!("`{value}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the table begins and ends in the README.
    const BEGIN: &str = "<!-- settings: made from crates/config/src/table.rs by `FERRICORN_BLESS=1 cargo test -p ferricorn-config readme` -->";
    const END: &str = "<!-- settings end -->";

    /// The README with its settings table replaced by `table`; `None` when
    /// the markers are missing.
    fn with_table(readme: &str, table: &str) -> Option<String> {
        let start = readme.find(BEGIN)? + BEGIN.len();
        let end = readme[start..].find(END)? + start;
        Some(format!("{}\n{}{}", &readme[..start], table, &readme[end..]))
    }

    #[test]
    fn readme_settings_table_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let fresh = with_table(&readme, &settings_table()).expect("the README has the markers");
        if std::env::var_os("FERRICORN_BLESS").is_some() {
            std::fs::write(path, &fresh).expect("write README.md");
            return;
        }
        assert!(
            fresh == readme,
            "the README's settings table is stale: run \
             `FERRICORN_BLESS=1 cargo test -p ferricorn-config readme` and commit README.md"
        );
    }

    #[test]
    fn every_setting_has_a_row() {
        let table = settings_table();
        for s in SETTINGS {
            assert!(table.contains(&s.flag()), "{}", s.key);
            assert!(table.contains(&s.env_name()), "{}", s.key);
        }
        // The heading and its rule; --host, --port and -c.
        assert_eq!(table.lines().count(), 2 + SETTINGS.len() + 3);
    }
}
