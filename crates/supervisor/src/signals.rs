//! Unix signals, turned into bytes on a pipe (the self-pipe trick) so the
//! supervisor's loop can wait for signals and timers with one `poll`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering::Relaxed};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction};
use nix::unistd::{pipe2, read};

/// The signals the supervisor acts on.
pub const HANDLED: [Signal; 9] = [
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// The write end of the pipe, for the handler; -1 when none is installed.
static PIPE: AtomicI32 = AtomicI32::new(-1);
/// The read end, so a forked child can close both.
static PIPE_READ: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signal: nix::libc::c_int) {
    let saved = Errno::last_raw();
    let fd = PIPE.load(Relaxed);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe; `byte` outlives the call. The
        // pipe is non-blocking, so a full pipe drops the byte instead of
        // blocking the handler (the loop also reaps on its timer).
        unsafe { nix::libc::write(fd, (&raw const byte).cast(), 1) };
    }
    Errno::set_raw(saved);
}

/// The installed handlers and the pipe they write to.
#[derive(Debug)]
pub struct Signals {
    read: OwnedFd,
    _write: OwnedFd,
}

impl Signals {
    /// Installs the handlers for [`HANDLED`].
    pub fn install() -> nix::Result<Self> {
        let (read, write) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        PIPE.store(write.as_raw_fd(), Relaxed);
        PIPE_READ.store(read.as_raw_fd(), Relaxed);
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for signal in HANDLED {
            // SAFETY: the handler only loads an atomic and calls write(2),
            // both async-signal-safe.
            unsafe { sigaction(signal, &action) }?;
        }
        // An image started by an upgrade inherits every signal blocked; what
        // arrived meanwhile is delivered now, to the handlers.
        restore(&SigSet::empty());
        Ok(Self {
            read,
            _write: write,
        })
    }

    /// Waits up to `timeout` for signals; returns those that arrived, in order.
    pub fn wait(&self, timeout: Duration) -> Vec<Signal> {
        let ms = timeout.as_millis().clamp(0, 60_000) as u16;
        let mut fds = [PollFd::new(self.read.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) if n > 0 => {}
            _ => return Vec::new(),
        }
        let mut buf = [0u8; 64];
        let mut out = Vec::new();
        while let Ok(n) = read(&self.read, &mut buf) {
            if n == 0 {
                break;
            }
            out.extend(
                buf[..n]
                    .iter()
                    .filter_map(|b| Signal::try_from(*b as i32).ok()),
            );
        }
        out
    }
}

/// Blocks every signal, returning the previous mask; used around `fork` so
/// that no handler runs in the child before it resets them.
pub(crate) fn block_all() -> nix::Result<SigSet> {
    let mut old = SigSet::empty();
    nix::sys::signal::pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    )?;
    Ok(old)
}

/// Restores a mask saved by [`block_all`].
pub(crate) fn restore(mask: &SigSet) {
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(mask), None);
}

/// In a freshly forked child: default dispositions for the stop signals,
/// ignored ones for the rest (a booting worker must not die of a forwarded
/// SIGUSR1 or stop on SIGTTIN before it installs its own handlers), and the
/// pipe closed.
pub(crate) fn reset_in_child() {
    for fd in [PIPE.swap(-1, Relaxed), PIPE_READ.swap(-1, Relaxed)] {
        if fd >= 0 {
            // The child's copies of the supervisor's pipe: nothing in the
            // child uses them, and the parent's `OwnedFd`s are never dropped
            // here (the child exits without unwinding into them).
            let _ = nix::unistd::close(fd);
        }
    }
    for signal in HANDLED {
        let handler = match signal {
            Signal::SIGCHLD | Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT => {
                SigHandler::SigDfl
            }
            _ => SigHandler::SigIgn,
        };
        let action = SigAction::new(handler, SaFlags::empty(), SigSet::empty());
        // SAFETY: the default and ignore dispositions install no handler.
        let _ = unsafe { sigaction(signal, &action) };
    }
}
