//! The pidfile: written once every slot's worker is ready, removed at exit.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A written pidfile; dropping it in the process that wrote it removes it.
#[derive(Debug)]
pub(crate) struct Pidfile {
    path: PathBuf,
    owner: u32,
}

impl Pidfile {
    /// Writes this process's pid to `path` atomically (a temporary file
    /// renamed over it), so readers never see a partial file.
    pub(crate) fn write(path: &Path) -> std::io::Result<Self> {
        let owner = std::process::id();
        let tmp = path.with_extension(format!("tmp.{owner}"));
        let mut file = std::fs::File::create(&tmp)?;
        writeln!(file, "{owner}")?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(Self {
            path: path.to_path_buf(),
            owner,
        })
    }
}

impl Pidfile {
    /// `PATH.oldbin`: where the pidfile of a generation being upgraded away
    /// from is kept, so both generations are visible.
    pub(crate) fn oldbin(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(".oldbin");
        PathBuf::from(name)
    }

    /// Moves the file to `PATH.oldbin` before an upgrade; `false` if it could not.
    pub(crate) fn move_to_oldbin(&self) -> bool {
        std::fs::rename(&self.path, Self::oldbin(&self.path)).is_ok()
    }

    /// Moves it back after a failed upgrade.
    pub(crate) fn restore_from_oldbin(&self) {
        let _ = std::fs::rename(Self::oldbin(&self.path), &self.path);
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        if std::process::id() != self.owner {
            return;
        }
        // Only remove the file if it still names this process.
        let ours =
            std::fs::read_to_string(&self.path).is_ok_and(|s| s.trim() == self.owner.to_string());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
