//! Forking one worker, the identity it runs as, and its memory use.

use std::panic::{AssertUnwindSafe, catch_unwind};

use ferricorn_config::Config;
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, Gid, Group, Pid, Uid, User, fork, getppid};

use crate::signals;

/// Exit code of a worker whose body panicked.
const EXIT_PANIC: i32 = 70;
/// Exit code of a worker that could not switch to its user or group.
const EXIT_IDENTITY: i32 = 71;

/// The user and group workers switch to after the fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    uid: Uid,
    gid: Gid,
}

impl Identity {
    /// Resolves `--user` and `--group` (names or numeric ids); `None` when
    /// workers keep the supervisor's identity.
    pub fn of(config: &Config) -> Result<Option<Self>, String> {
        if config.user.is_none() && config.group.is_none() {
            return Ok(None);
        }
        let user = match &config.user {
            Some(name) => Some(lookup_user(name)?),
            None => None,
        };
        let uid = user.as_ref().map_or_else(Uid::current, |u| u.uid);
        let gid = match &config.group {
            Some(name) => lookup_group(name)?,
            None => user.as_ref().map_or_else(Gid::current, |u| u.gid),
        };
        if !Uid::effective().is_root() && (uid != Uid::current() || gid != Gid::current()) {
            return Err(format!(
                "switching workers to user {uid} and group {gid} needs the supervisor to run as root"
            ));
        }
        Ok(Some(Self { uid, gid }))
    }

    /// Drops to this identity: supplementary groups, group, then user.
    fn apply(self) -> nix::Result<()> {
        if Uid::effective().is_root() {
            nix::unistd::setgroups(&[self.gid])?;
        }
        nix::unistd::setgid(self.gid)?;
        nix::unistd::setuid(self.uid)
    }
}

fn lookup_user(name: &str) -> Result<User, String> {
    let found = match name.parse::<u32>() {
        Ok(id) => User::from_uid(Uid::from_raw(id)),
        Err(_) => User::from_name(name),
    };
    found
        .map_err(|e| format!("user `{name}`: {e}"))?
        .ok_or_else(|| format!("user `{name}` does not exist"))
}

fn lookup_group(name: &str) -> Result<Gid, String> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(Gid::from_raw(id));
    }
    Group::from_name(name)
        .map_err(|e| format!("group `{name}`: {e}"))?
        .map(|g| g.gid)
        .ok_or_else(|| format!("group `{name}` does not exist"))
}

/// Forks; the child runs `body` and exits with its code, the parent gets the
/// child's pid. Signals are blocked across the fork so that the child resets
/// the supervisor's handlers before any can run.
pub(crate) fn fork_worker(
    identity: Option<Identity>,
    body: impl FnOnce() -> i32,
) -> nix::Result<Pid> {
    let parent = nix::unistd::getpid();
    let mask = signals::block_all()?;
    // SAFETY: the supervisor is single-threaded and holds no runtime, so the
    // child inherits no lock held by another thread. The child resets signal
    // state, runs the worker body and exits without returning into the
    // supervisor's code.
    let forked = unsafe { fork() };
    match forked {
        Ok(ForkResult::Child) => {
            signals::reset_in_child();
            // The worker dies with the supervisor, even on SIGKILL.
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
            signals::restore(&mask);
            if getppid() != parent {
                std::process::exit(0);
            }
            if let Some(identity) = identity
                && let Err(e) = identity.apply()
            {
                tracing::error!(
                    "cannot switch to user {} group {}: {e}",
                    identity.uid,
                    identity.gid
                );
                std::process::exit(EXIT_IDENTITY);
            }
            let code = catch_unwind(AssertUnwindSafe(body)).unwrap_or(EXIT_PANIC);
            std::process::exit(code)
        }
        Ok(ForkResult::Parent { child }) => {
            signals::restore(&mask);
            Ok(child)
        }
        Err(e) => {
            signals::restore(&mask);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_users_are_named() {
        let mut config = ferricorn_config::load(&Default::default(), None)
            .expect("defaults")
            .config;
        assert_eq!(Identity::of(&config), Ok(None));
        config.user = Some("no-such-user-here".into());
        assert_eq!(
            Identity::of(&config),
            Err("user `no-such-user-here` does not exist".into())
        );
    }
}
