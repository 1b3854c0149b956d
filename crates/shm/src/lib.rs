//! The memory ferricorn's supervisor and its workers share.
//!
//! The supervisor maps one anonymous `MAP_SHARED` region before the first
//! fork; every worker inherits the same pages. Nothing here is a file, so a
//! slow or full `/tmp` (the classic source of false "WORKER TIMEOUT"s) cannot
//! touch it.
//!
//! - [`Shared`]: a `Copy` handle to the region, valid for the whole process.
//! - [`Header`]: server-wide state (desired worker count, draining flag).
//! - [`Slot`]: one per worker slot: pid, [`SlotState`], heartbeat, counters,
//!   and the last boot error of the worker in that slot.
//!
//! Every field is an atomic, so reading and writing needs no lock and no
//! `unsafe`; zeroed memory is a valid, empty region.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous};
use nix::time::{ClockId, clock_gettime};

/// How many worker slots the region holds; the most workers one server can run.
pub const MAX_SLOTS: usize = 256;

/// Exit code of a worker whose app failed its lifespan startup; the
/// supervisor then stops the server instead of respawning.
pub const EXIT_BOOT_FAILED: i32 = 3;

/// Bytes kept of a worker's boot error message.
pub const ERROR_LEN: usize = 240;

/// Server-wide state.
#[derive(Debug)]
#[repr(C)]
pub struct Header {
    desired: AtomicU32,
    draining: AtomicU32,
}

/// What a slot's worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum SlotState {
    /// No worker in the slot.
    Empty = 0,
    /// Forked, running the app's lifespan startup.
    Booting = 1,
    /// Startup done, accepting connections.
    Ready = 2,
    /// Told to stop: no longer accepting, finishing what it has.
    Draining = 3,
}

impl SlotState {
    fn from_u32(v: u32) -> Self {
        match v {
            1 => Self::Booting,
            2 => Self::Ready,
            3 => Self::Draining,
            _ => Self::Empty,
        }
    }
}

/// One worker slot. Cache-line aligned so that workers updating their own
/// counters do not contend.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct Slot {
    pid: AtomicI32,
    state: AtomicU32,
    heartbeat_ms: AtomicU64,
    requests: AtomicU64,
    restarts: AtomicU64,
    error_len: AtomicU32,
    error: [AtomicU8; ERROR_LEN],
}

#[repr(C)]
struct Region {
    header: Header,
    slots: [Slot; MAX_SLOTS],
}

/// A handle to the shared region. Cheap to copy; valid until the process exits.
#[derive(Clone, Copy)]
pub struct Shared {
    region: &'static Region,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("desired", &self.header().desired())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Maps a new zeroed region shared with every process forked after this call.
    pub fn new() -> nix::Result<Self> {
        let len = NonZeroUsize::new(size_of::<Region>()).expect("region is not empty");
        // SAFETY: a fresh anonymous mapping with no address hint aliases no
        // existing memory. The kernel zero-fills it, and an all-zero `Region`
        // is valid (every field is an atomic integer or an array of them).
        // The mapping is never unmapped, so the `'static` borrow holds for the
        // life of the process, and atomics make shared access sound across the
        // processes that inherit it.
        let region = unsafe {
            let ptr = mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )?;
            &*ptr.cast::<Region>().as_ptr()
        };
        Ok(Self { region })
    }

    /// Server-wide state.
    pub fn header(&self) -> &'static Header {
        &self.region.header
    }

    /// The slot at `index`; `None` past [`MAX_SLOTS`].
    pub fn slot(&self, index: usize) -> Option<&'static Slot> {
        self.region.slots.get(index)
    }

    /// Whether the server can take traffic: not draining, and every desired
    /// slot holds a worker that finished startup.
    pub fn is_ready(&self) -> Result<(), NotReady> {
        let header = self.header();
        if header.is_draining() {
            return Err(NotReady::Draining);
        }
        let desired = header.desired() as usize;
        let ready = self.region.slots[..desired.min(MAX_SLOTS)]
            .iter()
            .filter(|s| s.state() == SlotState::Ready)
            .count();
        if ready < desired {
            return Err(NotReady::Workers { ready, desired });
        }
        Ok(())
    }
}

/// Why [`Shared::is_ready`] said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// The server is shutting down.
    Draining,
    /// Some slots have no ready worker.
    Workers {
        /// Slots with a ready worker.
        ready: usize,
        /// Slots the server should have.
        desired: usize,
    },
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Draining => f.write_str("draining"),
            Self::Workers { ready, desired } => write!(f, "{ready} of {desired} workers ready"),
        }
    }
}

impl Header {
    /// The number of worker slots the supervisor keeps filled.
    pub fn desired(&self) -> u32 {
        self.desired.load(Relaxed)
    }

    /// Sets the number of worker slots the supervisor keeps filled.
    pub fn set_desired(&self, n: u32) {
        self.desired.store(n, Relaxed);
    }

    /// Whether the server is shutting down.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Relaxed) != 0
    }

    /// Marks the server as shutting down; readiness turns false.
    pub fn set_draining(&self) {
        self.draining.store(1, Relaxed);
    }
}

impl Slot {
    /// Resets the slot for a worker about to be forked. Called before the
    /// fork, so the child's own updates (ready) cannot be overwritten.
    pub fn prepare(&self) {
        self.error_len.store(0, Relaxed);
        self.requests.store(0, Relaxed);
        self.heartbeat_ms.store(now_ms(), Relaxed);
        self.pid.store(0, Relaxed);
        self.state.store(SlotState::Booting as u32, Relaxed);
    }

    /// Records the forked worker's pid.
    pub fn set_pid(&self, pid: i32) {
        self.pid.store(pid, Relaxed);
    }

    /// Empties the slot after its worker was reaped, counting a restart.
    pub fn clear(&self) {
        self.state.store(SlotState::Empty as u32, Relaxed);
        self.pid.store(0, Relaxed);
        self.restarts.fetch_add(1, Relaxed);
    }

    /// The pid of the slot's worker, 0 when empty.
    pub fn pid(&self) -> i32 {
        self.pid.load(Relaxed)
    }

    /// What the slot's worker is doing.
    pub fn state(&self) -> SlotState {
        SlotState::from_u32(self.state.load(Relaxed))
    }

    /// Records what the slot's worker is doing.
    pub fn set_state(&self, state: SlotState) {
        self.state.store(state as u32, Relaxed);
    }

    /// Records that the worker's event loop is alive now.
    pub fn beat(&self) {
        self.heartbeat_ms.store(now_ms(), Relaxed);
    }

    /// Milliseconds since the worker's last heartbeat.
    pub fn heartbeat_age_ms(&self) -> u64 {
        now_ms().saturating_sub(self.heartbeat_ms.load(Relaxed))
    }

    /// Counts one request served; returns the new total for this worker.
    pub fn count_request(&self) -> u64 {
        self.requests.fetch_add(1, Relaxed) + 1
    }

    /// Requests served by the slot's current worker.
    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }

    /// How many times a worker in this slot has been replaced.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Relaxed)
    }

    /// Stores the worker's boot error (truncated to [`ERROR_LEN`] bytes on a
    /// character boundary) for the supervisor to report after reaping it.
    pub fn set_error(&self, message: &str) {
        let mut end = message.len().min(ERROR_LEN);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        for (cell, byte) in self.error.iter().zip(&message.as_bytes()[..end]) {
            cell.store(*byte, Relaxed);
        }
        self.error_len.store(end as u32, Relaxed);
    }

    /// The boot error stored by the slot's last worker, if any.
    pub fn error(&self) -> Option<String> {
        let len = (self.error_len.load(Relaxed) as usize).min(ERROR_LEN);
        if len == 0 {
            return None;
        }
        let bytes: Vec<u8> = self.error[..len].iter().map(|b| b.load(Relaxed)).collect();
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Milliseconds on the system-wide monotonic clock, comparable across processes.
pub fn now_ms() -> u64 {
    match clock_gettime(ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => ts.tv_sec() as u64 * 1000 + ts.tv_nsec() as u64 / 1_000_000,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_slots_and_draining() {
        let shared = Shared::new().expect("mmap");
        shared.header().set_desired(2);
        assert_eq!(
            shared.is_ready(),
            Err(NotReady::Workers {
                ready: 0,
                desired: 2
            })
        );
        for i in 0..2 {
            let slot = shared.slot(i).expect("slot");
            slot.prepare();
            slot.set_pid(100 + i as i32);
            slot.set_state(SlotState::Ready);
        }
        assert_eq!(shared.is_ready(), Ok(()));
        shared.slot(1).expect("slot").clear();
        assert_eq!(shared.slot(1).expect("slot").restarts(), 1);
        assert!(shared.is_ready().is_err());
        shared.slot(1).expect("slot").set_state(SlotState::Ready);
        shared.header().set_draining();
        assert_eq!(shared.is_ready(), Err(NotReady::Draining));
    }

    #[test]
    fn error_is_truncated_on_a_char_boundary() {
        let shared = Shared::new().expect("mmap");
        let slot = shared.slot(0).expect("slot");
        assert_eq!(slot.error(), None);
        let long = "é".repeat(ERROR_LEN);
        slot.set_error(&long);
        let got = slot.error().expect("error");
        assert!(got.len() <= ERROR_LEN && got.chars().all(|c| c == 'é'));
    }

    #[test]
    fn memory_is_shared_with_a_forked_child() {
        let shared = Shared::new().expect("mmap");
        let slot = shared.slot(3).expect("slot");
        // SAFETY: the test harness may run other threads, but the child only
        // touches atomics in the shared mapping and then `_exit`s without
        // running destructors or taking locks.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                slot.count_request();
                slot.count_request();
                // SAFETY: `_exit` is async-signal-safe and skips atexit handlers.
                unsafe { nix::libc::_exit(0) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                nix::sys::wait::waitpid(child, None).expect("waitpid");
                assert_eq!(slot.requests(), 2);
            }
        }
    }
}
