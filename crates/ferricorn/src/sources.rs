//! Where the settings come from: the program's own defaults and config
//! file ([`Server`](crate::Server)), and the command line, under which
//! `ferricorn_config` stacks the file and the environment. Loaded at start,
//! and again at each SIGHUP.

use std::path::PathBuf;

use ferricorn_config::{Loaded, Options};

/// The layers a program and its command line set.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sources {
    /// The program's own defaults.
    pub code: Options,
    /// The program's config file, used when the command line names none.
    pub file: Option<PathBuf>,
    /// What the command line set.
    pub cli: Options,
    /// `-c/--config`.
    pub cli_file: Option<PathBuf>,
}

impl Sources {
    /// Loads the settings: defaults < the program's < the file < the
    /// environment < the command line.
    pub(crate) fn load(&self) -> ferricorn_config::Result<Loaded> {
        let file = self.cli_file.as_deref().or(self.file.as_deref());
        ferricorn_config::load(&self.code, &self.cli, file)
    }
}
