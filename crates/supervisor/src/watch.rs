//! `--reload`: the files whose change re-executes the server in place (as
//! SIGUSR2 does), for development. The supervisor polls them from its loop
//! (no thread, no inotify): the executable and each `--reload-path`, a
//! directory standing for every file under it.
//!
//! A change counts once the files have stayed as they are for [`SETTLE`],
//! so a binary still being written by the linker is not run half-made (and
//! if it were, the upgrade's `--check-config` run would refuse it, leaving
//! the running image serving until the next change).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the files must stay unchanged before a change counts.
pub(crate) const SETTLE: Duration = Duration::from_millis(500);
/// The least time between two looks.
const EVERY: Duration = Duration::from_millis(250);
/// The most files one look reads, so a large tree cannot stall the loop.
const MAX_FILES: usize = 10_000;

/// The watched files and what they looked like.
#[derive(Debug)]
pub(crate) struct Watch {
    paths: Vec<PathBuf>,
    /// What the files looked like when last taken as they are.
    seen: u64,
    /// A change seen, and since when the files have looked like that.
    pending: Option<(u64, Instant)>,
    looked: Option<Instant>,
}

impl Watch {
    /// Watches `exe` and `extra`, as they are now.
    pub(crate) fn new(exe: &Path, extra: &[PathBuf]) -> Self {
        let mut paths = vec![exe.to_path_buf()];
        paths.extend(extra.iter().cloned());
        let seen = stamp(&paths);
        Self {
            paths,
            seen,
            pending: None,
            looked: None,
        }
    }

    /// Whether the files changed and have stayed unchanged since for
    /// [`SETTLE`]; they are then taken as they are.
    pub(crate) fn changed(&mut self, now: Instant) -> bool {
        if self.looked.is_some_and(|at| now < at + EVERY) {
            return false;
        }
        self.looked = Some(now);
        let current = stamp(&self.paths);
        match self.pending {
            _ if current == self.seen => {
                self.pending = None;
                false
            }
            Some((pending, since)) if pending == current => {
                if now.duration_since(since) < SETTLE {
                    return false;
                }
                self.seen = current;
                self.pending = None;
                true
            }
            _ => {
                self.pending = Some((current, now));
                false
            }
        }
    }

    /// When the loop should look again: soon while a change settles.
    pub(crate) fn next_look(&self) -> Option<Instant> {
        let (_, since) = self.pending?;
        Some(since + SETTLE)
    }

    /// What is watched besides the executable.
    pub(crate) fn extra(&self) -> &[PathBuf] {
        &self.paths[1..]
    }

    /// What is watched, for the log.
    pub(crate) fn describe(&self) -> String {
        let names: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        names.join(", ")
    }
}

/// One number for what the files look like: each one's path, size,
/// modification time and inode (a replaced file has a new one); a missing
/// file counts as such.
fn stamp(paths: &[PathBuf]) -> u64 {
    let mut hasher = DefaultHasher::new();
    let mut left = MAX_FILES;
    for path in paths {
        visit(path, &mut hasher, &mut left);
    }
    hasher.finish()
}

fn visit(path: &Path, hasher: &mut DefaultHasher, left: &mut usize) {
    if *left == 0 {
        return;
    }
    *left -= 1;
    path.hash(hasher);
    let Ok(meta) = std::fs::metadata(path) else {
        0u8.hash(hasher);
        return;
    };
    if meta.is_dir() {
        let Ok(dir) = std::fs::read_dir(path) else {
            return;
        };
        let mut entries: Vec<PathBuf> = dir.filter_map(|e| Some(e.ok()?.path())).collect();
        entries.sort();
        for entry in entries {
            visit(&entry, hasher, left);
        }
        return;
    }
    (meta.len(), meta.mtime(), meta.mtime_nsec(), meta.ino()).hash(hasher);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_counts_once_it_has_settled() {
        let dir = std::env::temp_dir().join(format!("ferricorn-watch-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).expect("dir");
        let exe = dir.join("exe");
        std::fs::write(&exe, "one").expect("write");
        let mut watch = Watch::new(&exe, std::slice::from_ref(&dir.join("sub")));
        let t0 = Instant::now();
        assert!(!watch.changed(t0), "nothing changed");
        std::fs::write(dir.join("sub").join("page.html"), "new").expect("write");
        let t1 = t0 + EVERY;
        assert!(!watch.changed(t1), "seen, not yet settled");
        assert_eq!(watch.next_look(), Some(t1 + SETTLE));
        assert!(!watch.changed(t1 + EVERY), "still settling");
        assert!(watch.changed(t1 + SETTLE), "settled");
        assert!(!watch.changed(t1 + SETTLE + EVERY), "taken as it is");
        // A file replaced by another (a new inode), as a build does.
        let tmp = dir.join("exe.new");
        std::fs::write(&tmp, "two").expect("write");
        std::fs::rename(&tmp, &exe).expect("rename");
        let t2 = t1 + SETTLE + 2 * EVERY;
        assert!(!watch.changed(t2));
        // Changed again while settling: it starts over.
        std::fs::write(&exe, "three!").expect("write");
        assert!(!watch.changed(t2 + SETTLE));
        assert!(watch.changed(t2 + 2 * SETTLE));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
