//! Forking one worker, and switching it to the identity it runs as.

use std::panic::{AssertUnwindSafe, catch_unwind};

use ferricorn_config::Identity;
use ferricorn_shm::WorkerCell;
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

/// Forks; the child records its pid in `cell`, runs `body` and exits with
/// its code, the parent gets the child's pid. Signals are blocked across the
/// fork so that the child resets the supervisor's handlers before any can
/// run.
///
/// The child writes its own pid (the parent does not): a worker is ready
/// and talking to its peers before the parent's `fork` returns often enough,
/// and they check each other by the pid in the cell.
pub(crate) fn fork_worker(
    identity: Option<Identity>,
    cell: Option<&WorkerCell>,
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
            if let Some(cell) = cell {
                cell.set_pid(nix::unistd::getpid().as_raw());
            }
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use ferricorn_shm::Shared;
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

    use super::*;

    #[test]
    fn the_child_finds_its_own_pid_in_its_cell_before_its_first_step() {
        let shared = Shared::new().expect("memfd");
        let cell = shared.cell(shared.claim(0).expect("a cell")).expect("cell");
        // The parent writes nothing: what the child sees is its own doing.
        let child = fork_worker(None, Some(cell), || {
            i32::from(cell.pid() != nix::unistd::getpid().as_raw())
        })
        .expect("fork");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            match waitpid(child, Some(WaitPidFlag::WNOHANG)).expect("waitpid") {
                WaitStatus::StillAlive if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                WaitStatus::StillAlive => {
                    let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
                    panic!("the child did not exit within 10 s");
                }
                status => break status,
            }
        };
        assert_eq!(
            status,
            WaitStatus::Exited(child, 0),
            "the cell's pid, seen by the child"
        );
        assert_eq!(cell.pid(), child.as_raw(), "and by the parent once it ran");
    }
}
