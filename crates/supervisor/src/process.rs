//! Forking one worker, and switching it to the identity it runs as.

use std::panic::{AssertUnwindSafe, catch_unwind};

use ferricorn_config::Identity;
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, Gid, Pid, Uid, fork, getppid};

use crate::signals;

/// Exit code of a worker whose body panicked.
const EXIT_PANIC: i32 = 70;
/// Exit code of a worker that could not switch to its user or group.
const EXIT_IDENTITY: i32 = 71;

/// Drops to `identity`: supplementary groups, group, then user.
fn switch_to(identity: Identity) -> nix::Result<()> {
    let (uid, gid) = (Uid::from_raw(identity.uid), Gid::from_raw(identity.gid));
    if Uid::effective().is_root() {
        nix::unistd::setgroups(&[gid])?;
    }
    nix::unistd::setgid(gid)?;
    nix::unistd::setuid(uid)
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
                && let Err(e) = switch_to(identity)
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
