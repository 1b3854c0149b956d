//! Zero-downtime binary upgrade (SIGUSR2) by re-executing in place.
//!
//! The supervisor keeps its pid, so it works as PID 1 in a container, where
//! a second master could not outlive the first. Before it execs, it runs the
//! new binary with `--check-config` (and [`SHM_SIZE_ENV`]): a binary that
//! does not run, rejects the settings or lays the shared memory out
//! differently aborts the upgrade and the old one keeps serving. Then it
//! clears close-on-exec on the listening sockets and the shared memory, and
//! describes them and its workers in `FERRICORN_UPGRADE`. The new image
//! adopts all three; its workers boot beside the old ones, which drain only
//! once every slot has a ready new worker.

use std::ffi::{CString, OsString};
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, FdFlag, fcntl};

/// The environment variable that carries the handoff.
pub const ENV: &str = "FERRICORN_UPGRADE";
/// The size of the running server's shared memory, given to the new
/// binary's `--check-config`: a binary whose layout differs cannot adopt it.
pub const SHM_SIZE_ENV: &str = "FERRICORN_UPGRADE_SHM_SIZE";
/// How long the new binary's `--check-config` may take.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(10);

/// What one image of the supervisor hands the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    /// The listening sockets, in bind order.
    pub listeners: Vec<RawFd>,
    /// The shared memory's memfd.
    pub shm: RawFd,
    /// The running workers: pid, slot, cell id.
    pub workers: Vec<(i32, usize, usize)>,
}

impl Handoff {
    fn encode(&self) -> String {
        let list = |v: Vec<String>| v.join(",");
        format!(
            "listeners={};shm={};workers={}",
            list(self.listeners.iter().map(ToString::to_string).collect()),
            self.shm,
            list(
                self.workers
                    .iter()
                    .map(|(p, i, c)| format!("{p}:{i}:{c}"))
                    .collect()
            )
        )
    }

    fn decode(text: &str) -> Option<Self> {
        let mut handoff = Self {
            listeners: Vec::new(),
            shm: -1,
            workers: Vec::new(),
        };
        for part in text.split(';') {
            let (key, value) = part.split_once('=')?;
            let items = value.split(',').filter(|v| !v.is_empty());
            match key {
                "listeners" => {
                    handoff.listeners = items.map(|v| v.parse().ok()).collect::<Option<_>>()?
                }
                "shm" => handoff.shm = value.parse().ok()?,
                "workers" => {
                    for w in items {
                        let mut f = w.split(':').map(str::parse::<i64>);
                        let (p, i, c) = (f.next()?.ok()?, f.next()?.ok()?, f.next()?.ok()?);
                        handoff.workers.push((p as i32, i as usize, c as usize));
                    }
                }
                _ => return None,
            }
        }
        (handoff.shm >= 0).then_some(handoff)
    }

    /// The handoff from the image this one replaced, if any. The variable is
    /// removed so that workers and later upgrades do not see it.
    pub fn take() -> Option<Self> {
        let text = std::env::var(ENV).ok()?;
        // SAFETY: called while the supervisor is single-threaded, before any
        // fork, so no other thread reads the environment meanwhile.
        unsafe { std::env::remove_var(ENV) };
        Self::decode(&text)
    }
}

/// The binary and arguments to re-execute, as this process started.
#[derive(Debug, Clone)]
pub(crate) struct Exec {
    path: PathBuf,
    args: Vec<OsString>,
}

impl Exec {
    /// Captured at start, before the file can be replaced on disk.
    pub(crate) fn current() -> Option<Self> {
        let path = std::env::current_exe().ok()?;
        Some(Self {
            path,
            args: std::env::args_os().collect(),
        })
    }

    /// Runs the binary now at the path with `--check-config`.
    pub(crate) fn preflight(&self) -> Result<(), String> {
        let mut child = Command::new(&self.path)
            .args(self.args.iter().skip(1))
            .arg("--check-config")
            .env(SHM_SIZE_ENV, ferricorn_shm::Shared::size().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.path.display()))?;
        let deadline = Instant::now() + PREFLIGHT_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    let out = child
                        .wait_with_output()
                        .map(|o| o.stderr)
                        .unwrap_or_default();
                    let message = String::from_utf8_lossy(&out);
                    let line = message.lines().next().unwrap_or("").trim();
                    return Err(format!(
                        "{} --check-config {status}: {line}",
                        self.path.display()
                    ));
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) | Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{} --check-config did not finish in time",
                        self.path.display()
                    ));
                }
            }
        }
    }

    /// Replaces this process's image, handing over `handoff`. Returns only
    /// if the exec failed, with everything put back as it was.
    pub(crate) fn exec(&self, handoff: &Handoff) -> String {
        let fds: Vec<RawFd> = handoff
            .listeners
            .iter()
            .copied()
            .chain([handoff.shm])
            .collect();
        let cloexec = |on: bool| {
            for fd in &fds {
                let flag = if on {
                    FdFlag::FD_CLOEXEC
                } else {
                    FdFlag::empty()
                };
                // SAFETY: the fds are the supervisor's own open sockets and memfd.
                let _ = fcntl(
                    unsafe { BorrowedFd::borrow_raw(*fd) },
                    FcntlArg::F_SETFD(flag),
                );
            }
        };
        let (path, args) = match self.cstrings() {
            Some(p) => p,
            None => return "the binary path or an argument holds a NUL byte".to_owned(),
        };
        cloexec(false);
        // SAFETY: the supervisor is single-threaded: no other thread reads
        // the environment while it changes.
        unsafe { std::env::set_var(ENV, handoff.encode()) };
        // Signals stay blocked across the exec; the new image unblocks them
        // once its handlers are installed, so none is lost or fatal between.
        let mask = crate::signals::block_all();
        let err = nix::unistd::execv(&path, &args).err();
        if let Ok(mask) = mask {
            crate::signals::restore(&mask);
        }
        // SAFETY: as above, single-threaded.
        unsafe { std::env::remove_var(ENV) };
        cloexec(true);
        format!(
            "cannot exec {}: {}",
            self.path.display(),
            err.map_or_else(String::new, |e| e.to_string())
        )
    }

    fn cstrings(&self) -> Option<(CString, Vec<CString>)> {
        let path = CString::new(self.path.as_os_str().to_owned().into_vec()).ok()?;
        let args = self
            .args
            .iter()
            .map(|a| CString::new(a.clone().into_vec()).ok())
            .collect::<Option<Vec<_>>>()?;
        Some((path, args))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handoffs_round_trip() {
        let h = Handoff {
            listeners: vec![3, 4],
            shm: 5,
            workers: vec![(100, 0, 0), (101, 1, 3)],
        };
        assert_eq!(h.encode(), "listeners=3,4;shm=5;workers=100:0:0,101:1:3");
        assert_eq!(Handoff::decode(&h.encode()), Some(h));
        assert_eq!(Handoff::decode("listeners=;shm=;workers="), None);
        assert_eq!(Handoff::decode("nonsense"), None);
    }
}
