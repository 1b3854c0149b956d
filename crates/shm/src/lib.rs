//! The memory ferricorn's supervisor and its workers share.
//!
//! The supervisor maps one `MAP_SHARED` region before the first fork; every
//! worker inherits the same pages. The region lives in a memfd, memory with
//! no name in any file system: a slow or full `/tmp` (the classic source of
//! false "WORKER TIMEOUT"s) cannot touch it, and a supervisor that re-executes
//! itself for an upgrade maps the same pages again from the inherited fd.
//!
//! - [`Shared`]: a `Copy` handle to the region, valid for the whole process.
//! - [`Header`]: server-wide state (desired worker count, draining flag).
//! - [`WorkerCell`]: one per worker process: its slot, pid, [`CellState`],
//!   heartbeat, counters, and its boot error. There are more cells than slots
//!   because a slot's replacement boots while the worker it replaces still
//!   serves.
//!
//! Words: a **slot** is a worker's place, numbered 0 to workers - 1, which
//! a replacement takes over; a **cell** is the record of one worker
//! process, found by its **cell id**.
//!
//! - [`metrics`]: the counters behind `/metrics`, per cell and per slot, and
//!   the table of the app's own series.
//! - [`procfs`]: a process's resident memory and CPU time, from `/proc`.
//! - [`groups`]: the channel layer's directory, each worker's groups and
//!   member counts.
//!
//! Every field is an atomic, so reading and writing needs no lock and no
//! `unsafe`; zeroed memory is a valid, empty region. Only the supervisor
//! claims and clears cells; a worker writes only its own cell.

pub mod groups;
pub mod metrics;
pub mod procfs;

use std::fmt;
use std::num::NonZeroUsize;
use std::os::fd::{BorrowedFd, IntoRawFd, RawFd};
use std::sync::atomic::{
    AtomicI32, AtomicU8, AtomicU32, AtomicU64, Ordering::AcqRel, Ordering::Acquire,
    Ordering::Relaxed, Ordering::Release, fence,
};

use metrics::{APP_VALUES, AppSeries, AppTable, Counters, Events, RegisterError, Snapshot};

use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap};
use nix::time::{ClockId, clock_gettime};

/// How many worker slots the region holds; the most workers one server can run.
pub const MAX_SLOTS: usize = 256;

/// How many worker processes can exist at once: every slot's worker, its
/// replacement, and workers still draining.
pub const MAX_CELLS: usize = 2 * MAX_SLOTS;

/// Exit code of a worker whose app failed its lifespan startup.
pub const EXIT_BOOT_FAILED: i32 = 3;

/// Bytes kept of a worker's boot error message.
pub const ERROR_LEN: usize = 240;

/// Server-wide state.
#[derive(Debug)]
#[repr(C)]
pub struct Header {
    desired: AtomicU32,
    draining: AtomicU32,
    /// One past the highest cell ever claimed; scans stop there.
    cells_used: AtomicU32,
    /// Odd while the supervisor folds a reaped worker's counters into its
    /// slot's totals (a seqlock).
    fold_seq: AtomicU64,
    /// What the supervisor counts.
    pub events: Events,
    /// This server's id, made when the region is: it names the server's
    /// channel endpoints and outlives an upgrade, which keeps the region.
    instance: AtomicU64,
    /// The channel layer's gateway to its broker: the worker holding the
    /// host's subscription (see [`Gateway`]), 0 for none.
    gateway: AtomicU64,
    /// The broker's state as the gateway last saw it (see [`Broker`]).
    broker: AtomicU32,
    /// Times the gateway got its broker back after losing it.
    broker_reconnects: AtomicU64,
}

/// Which worker is the channel layer's gateway: its cell and pid, packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gateway {
    /// Its cell.
    pub cell: usize,
    /// Its pid.
    pub pid: i32,
}

impl Gateway {
    fn pack(self) -> u64 {
        (u64::from(self.pid as u32) << 32) | (self.cell as u64 + 1)
    }

    fn unpack(word: u64) -> Option<Self> {
        let cell = (word & 0xffff_ffff) as usize;
        (cell != 0).then(|| Self {
            cell: cell - 1,
            pid: (word >> 32) as u32 as i32,
        })
    }
}

/// The channel layer's broker, as its gateway last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Broker {
    /// Not reached yet (or no broker).
    Unknown = 0,
    /// Connected.
    Up = 1,
    /// Lost: the gateway reconnects.
    Down = 2,
}

impl Broker {
    fn from_u32(v: u32) -> Self {
        match v {
            1 => Self::Up,
            2 => Self::Down,
            _ => Self::Unknown,
        }
    }
}

impl Header {
    /// This server's id (see the field).
    pub fn instance(&self) -> u64 {
        self.instance.load(Relaxed)
    }

    /// The channel layer's gateway, if one was elected.
    pub fn gateway(&self) -> Option<Gateway> {
        Gateway::unpack(self.gateway.load(Acquire))
    }

    /// Makes `new` the gateway if `old` still is; whether it did.
    pub fn swap_gateway(&self, old: Option<Gateway>, new: Gateway) -> bool {
        let old = old.map_or(0, Gateway::pack);
        self.gateway
            .compare_exchange(old, new.pack(), AcqRel, Acquire)
            .is_ok()
    }

    /// The broker's state.
    pub fn broker(&self) -> Broker {
        Broker::from_u32(self.broker.load(Relaxed))
    }

    /// Records the broker's state; the one it replaces.
    pub fn set_broker(&self, state: Broker) -> Broker {
        Broker::from_u32(self.broker.swap(state as u32, Relaxed))
    }

    /// Counts a reconnection to the broker.
    pub fn count_broker_reconnect(&self) {
        self.broker_reconnects.fetch_add(1, Relaxed);
    }

    /// Reconnections to the broker.
    pub fn broker_reconnects(&self) -> u64 {
        self.broker_reconnects.load(Relaxed)
    }
}

/// What a cell's worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum CellState {
    /// No worker in the cell.
    Empty = 0,
    /// Forked, running the app's lifespan startup.
    Booting = 1,
    /// Startup done, accepting connections.
    Ready = 2,
    /// Told to stop: no longer accepting, finishing what it has.
    Draining = 3,
}

impl CellState {
    fn from_u32(v: u32) -> Self {
        match v {
            1 => Self::Booting,
            2 => Self::Ready,
            3 => Self::Draining,
            _ => Self::Empty,
        }
    }
}

/// One worker process. Cache-line aligned so that workers updating their
/// own counters do not contend.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct WorkerCell {
    slot: AtomicU32,
    pid: AtomicI32,
    state: AtomicU32,
    retire: AtomicU32,
    heartbeat_ms: AtomicU64,
    requests: AtomicU64,
    connections: AtomicU32,
    websockets: AtomicU32,
    error: Text<ERROR_LEN>,
    /// The worker's counters for `/metrics`.
    pub counters: Counters,
    /// The values of the app's own series, by offset.
    pub app: [AtomicU64; APP_VALUES],
}

#[repr(C)]
struct Region {
    header: Header,
    restarts: [AtomicU64; MAX_SLOTS],
    /// The counters of each slot's exited workers.
    totals: [Counters; MAX_SLOTS],
    app: AppTable,
    cells: [WorkerCell; MAX_CELLS],
    groups: [groups::GroupTable; MAX_CELLS],
}

/// A handle to the shared region. Cheap to copy; valid until the process exits.
#[derive(Clone, Copy)]
pub struct Shared {
    region: &'static Region,
    fd: RawFd,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("desired", &self.header().desired())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Creates a new zeroed region shared with every process forked after
    /// this call.
    pub fn new() -> nix::Result<Self> {
        let fd = memfd_create(c"ferricorn-shared", MFdFlags::MFD_CLOEXEC)?;
        nix::unistd::ftruncate(&fd, size_of::<Region>() as i64)?;
        let shared = Self::map(fd.into_raw_fd())?;
        // Unique enough among the servers of one host: the time and the pid.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let id = nanos ^ (u64::from(std::process::id()) << 40);
        shared.region.header.instance.store(id.max(1), Relaxed);
        Ok(shared)
    }

    /// Maps the region another image of this server created, from the memfd
    /// it handed over (see [`fd`](Self::fd)).
    pub fn adopt(fd: RawFd) -> nix::Result<Self> {
        // SAFETY: fstat only reads; an fd that is not open answers EBADF.
        let stat = nix::sys::stat::fstat(unsafe { BorrowedFd::borrow_raw(fd) })?;
        if stat.st_size as usize != size_of::<Region>() {
            return Err(nix::Error::EINVAL);
        }
        Self::map(fd)
    }

    fn map(fd: RawFd) -> nix::Result<Self> {
        let len = NonZeroUsize::new(size_of::<Region>()).expect("region is not empty");
        // SAFETY: the fd is an open memfd of exactly `len` bytes, owned by
        // this handle for the life of the process. A new mapping with no
        // address hint aliases no existing Rust memory. The memfd starts
        // zero-filled and an all-zero `Region` is valid (every field is an
        // atomic integer or an array of them); a handed-over one holds a
        // `Region` written by the same layout. The mapping is never unmapped,
        // so the `'static` borrow holds, and atomics make shared access sound
        // across the processes that map it.
        let region = unsafe {
            let ptr = mmap(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                BorrowedFd::borrow_raw(fd),
                0,
            )?;
            &*ptr.cast::<Region>().as_ptr()
        };
        Ok(Self { region, fd })
    }

    /// The size of the region in bytes: two binaries can share a region
    /// only if they agree on it.
    pub fn size() -> usize {
        size_of::<Region>()
    }

    /// The memfd holding the region, to hand to a re-executed supervisor.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Server-wide state.
    pub fn header(&self) -> &'static Header {
        &self.region.header
    }

    /// The cell with id `id`; `None` past [`MAX_CELLS`].
    pub fn cell(&self, id: usize) -> Option<&'static WorkerCell> {
        self.region.cells.get(id)
    }

    /// The cells that have ever been used.
    fn used(&self) -> &'static [WorkerCell] {
        let n = (self.region.header.cells_used.load(Relaxed) as usize).min(MAX_CELLS);
        &self.region.cells[..n]
    }

    /// Claims an empty cell for a worker about to be forked into `slot`,
    /// and resets it; returns its id. Called by the supervisor before the fork, so
    /// the child's own updates cannot be overwritten. `None` when all are taken.
    pub fn claim(&self, slot: usize) -> Option<usize> {
        let id = self
            .region
            .cells
            .iter()
            .position(|c| c.state() == CellState::Empty && c.pid() == 0)?;
        let cell = &self.region.cells[id];
        cell.slot.store(slot as u32, Relaxed);
        cell.error.set("");
        cell.requests.store(0, Relaxed);
        cell.connections.store(0, Relaxed);
        cell.websockets.store(0, Relaxed);
        cell.retire.store(0, Relaxed);
        cell.heartbeat_ms.store(now_ms(), Relaxed);
        cell.pid.store(-1, Relaxed);
        cell.state.store(CellState::Booting as u32, Relaxed);
        self.region
            .header
            .cells_used
            .fetch_max(id as u32 + 1, Relaxed);
        Some(id)
    }

    /// Empties cell `id` after its worker was reaped, moving its counters
    /// into its slot's totals (and the app's counters into the server's),
    /// so that no count is lost and none goes backwards.
    pub fn release(&self, id: usize) {
        let Some(cell) = self.cell(id) else { return };
        let seq = &self.region.header.fold_seq;
        seq.fetch_add(1, Relaxed);
        fence(Release);
        if let Some(totals) = self.region.totals.get(cell.slot()) {
            cell.counters.fold_into(totals);
        }
        self.region.app.fold(&cell.app);
        cell.clear();
        if let Some(groups) = self.region.groups.get(id)
            && !groups.is_empty()
            && self.give_back(groups).is_err()
        {
            groups.clear();
        }
        seq.fetch_add(1, Release);
    }

    /// Gives a dead worker's group table back to the kernel: its pages read
    /// as zeros again in every process, and this one (the supervisor, which
    /// would otherwise write 48 KiB of zeros into its own resident memory
    /// for each worker that had groups) never touches them.
    fn give_back(&self, table: &groups::GroupTable) -> nix::Result<()> {
        use nix::fcntl::{FallocateFlags, fallocate};
        let offset = std::ptr::from_ref(table) as usize - std::ptr::from_ref(self.region) as usize;
        // SAFETY: the fd is this handle's memfd, open for the life of the
        // process; borrowing it for one call hands it to no one.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        fallocate(
            fd,
            FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
            offset as i64,
            size_of::<groups::GroupTable>() as i64,
        )
    }

    /// Runs `read` until it ran while no fold was under way, so that a
    /// worker's counts are seen either in its cell or in its slot's totals,
    /// never both or neither (at most a few tries; folds are rare and short).
    pub fn consistent<T>(&self, read: impl Fn(&Self) -> T) -> T {
        let seq = &self.region.header.fold_seq;
        for _ in 0..1000 {
            let before = seq.load(Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let got = read(self);
            fence(Acquire);
            if seq.load(Relaxed) == before {
                return got;
            }
        }
        read(self)
    }

    /// Adds the counters of `slot`'s exited workers into `into`.
    pub fn slot_totals(&self, slot: usize, into: &mut Snapshot) {
        if let Some(t) = self.region.totals.get(slot) {
            t.sum_into(into);
        }
    }

    /// Cell `id`'s groups; `None` past [`MAX_CELLS`].
    pub fn groups(&self, id: usize) -> Option<&'static groups::GroupTable> {
        self.region.groups.get(id)
    }

    /// The cells that have ever been used, with their ids.
    pub fn cells(&self) -> impl Iterator<Item = (usize, &'static WorkerCell)> {
        self.used().iter().enumerate()
    }

    /// Registers an app series, or finds the one already registered under
    /// the same name and labels; returns the offset of its first value.
    pub fn register(&self, series: &AppSeries) -> Result<usize, RegisterError> {
        self.region.app.register(series)
    }

    /// The app series registered so far.
    pub fn app_series(&self) -> Vec<AppSeries> {
        self.region.app.series()
    }

    /// App value `offset` of the workers that exited.
    pub fn app_retired(&self, offset: usize) -> &'static AtomicU64 {
        &self.region.app.retired[offset.min(APP_VALUES - 1)]
    }

    /// Counts a replacement of the worker in `slot`.
    pub fn count_restart(&self, slot: usize) {
        if let Some(r) = self.region.restarts.get(slot) {
            r.fetch_add(1, Relaxed);
        }
    }

    /// How many times the worker in `slot` has been replaced.
    pub fn restarts(&self, slot: usize) -> u64 {
        self.region
            .restarts
            .get(slot)
            .map_or(0, |r| r.load(Relaxed))
    }

    /// The fewest open connections of any ready worker other than the one
    /// in cell `me`; `None` when there is no other.
    pub fn least_connections_besides(&self, me: &WorkerCell) -> Option<u32> {
        self.used()
            .iter()
            .filter(|c| !std::ptr::eq(*c, me) && c.state() == CellState::Ready)
            .map(WorkerCell::connections)
            .min()
    }

    /// Whether the server can take traffic: not draining, and every desired
    /// slot has a worker that finished startup.
    pub fn is_ready(&self) -> Result<(), NotReady> {
        let header = self.header();
        if header.is_draining() {
            return Err(NotReady::Draining);
        }
        let desired = (header.desired() as usize).min(MAX_SLOTS);
        let mut ready = [0u64; MAX_SLOTS / 64];
        for cell in self.used() {
            let slot = cell.slot();
            if cell.state() == CellState::Ready && slot < desired {
                ready[slot / 64] |= 1 << (slot % 64);
            }
        }
        let ready = ready.iter().map(|w| w.count_ones() as usize).sum();
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

impl WorkerCell {
    /// Empties the cell after its worker was reaped.
    pub fn clear(&self) {
        self.state.store(CellState::Empty as u32, Relaxed);
        self.pid.store(0, Relaxed);
    }

    /// The slot of the cell's worker.
    pub fn slot(&self) -> usize {
        self.slot.load(Relaxed) as usize
    }

    /// The pid of the cell's worker: 0 when empty, -1 while being forked.
    pub fn pid(&self) -> i32 {
        self.pid.load(Relaxed)
    }

    /// Records the forked worker's pid: the worker's own first step.
    pub fn set_pid(&self, pid: i32) {
        self.pid.store(pid, Relaxed);
    }

    /// What the cell's worker is doing.
    pub fn state(&self) -> CellState {
        CellState::from_u32(self.state.load(Relaxed))
    }

    /// Records what the cell's worker is doing.
    pub fn set_state(&self, state: CellState) {
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

    /// Requests served by the cell's worker.
    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }

    /// Counts a connection opened (+1) or closed (-1).
    pub fn count_connection(&self, opened: bool) {
        if opened {
            self.connections.fetch_add(1, Relaxed);
        } else {
            self.connections.fetch_sub(1, Relaxed);
        }
    }

    /// Connections the cell's worker has open.
    pub fn connections(&self) -> u32 {
        self.connections.load(Relaxed)
    }

    /// Counts a WebSocket opened (+1, also counted as accepted) or closed (-1).
    pub fn count_websocket(&self, opened: bool) {
        if opened {
            self.websockets.fetch_add(1, Relaxed);
            self.counters.add(metrics::at::WS_ACCEPTED, 1);
        } else {
            self.websockets.fetch_sub(1, Relaxed);
        }
    }

    /// WebSockets the cell's worker has open.
    pub fn websockets(&self) -> u32 {
        self.websockets.load(Relaxed)
    }

    /// Asks the supervisor to replace this worker (max-requests reached).
    pub fn request_retire(&self) {
        self.retire.store(1, Relaxed);
    }

    /// Whether the worker asked to be replaced; clears the request.
    pub fn take_retire(&self) -> bool {
        self.retire.swap(0, Relaxed) != 0
    }

    /// Stores the worker's boot error (truncated to [`ERROR_LEN`] bytes on a
    /// character boundary) for the supervisor to report after reaping it.
    pub fn set_error(&self, message: &str) {
        self.error.set(message);
    }

    /// The boot error stored by the cell's worker, if any.
    pub fn error(&self) -> Option<String> {
        Some(self.error.get()).filter(|e| !e.is_empty())
    }
}

/// A short text in atomics, at most `N` bytes.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Text<const N: usize> {
    len: AtomicU32,
    bytes: [AtomicU8; N],
}

impl<const N: usize> Text<N> {
    /// Stores `s`, cut to `N` bytes on a character boundary.
    pub(crate) fn set(&self, s: &str) {
        let mut end = s.len().min(N);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        for (b, c) in self.bytes.iter().zip(&s.as_bytes()[..end]) {
            b.store(*c, Relaxed);
        }
        self.len.store(end as u32, Relaxed);
    }

    pub(crate) fn get(&self) -> String {
        let len = (self.len.load(Relaxed) as usize).min(N);
        let bytes: Vec<u8> = self.bytes[..len].iter().map(|b| b.load(Relaxed)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Microseconds on the system-wide monotonic clock, comparable across
/// processes.
pub fn now_us() -> u64 {
    match clock_gettime(ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => ts.tv_sec() as u64 * 1_000_000 + ts.tv_nsec() as u64 / 1000,
        Err(_) => 0,
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

    fn ready_in(shared: &Shared, slot: usize) -> &'static WorkerCell {
        let id = shared.claim(slot).expect("free cell");
        let cell = shared.cell(id).expect("cell");
        cell.set_pid(100 + id as i32);
        cell.set_state(CellState::Ready);
        cell
    }

    #[test]
    fn readiness_counts_slots_not_cells() {
        let shared = Shared::new().expect("mmap");
        shared.header().set_desired(2);
        let not_ready = |ready| Err(NotReady::Workers { ready, desired: 2 });
        assert_eq!(shared.is_ready(), not_ready(0));
        let a = ready_in(&shared, 0);
        // A replacement for slot 0 booting, then ready: still one slot.
        let b = ready_in(&shared, 0);
        assert_eq!(shared.is_ready(), not_ready(1));
        let c = ready_in(&shared, 1);
        assert_eq!(shared.is_ready(), Ok(()));
        a.set_state(CellState::Draining);
        assert_eq!(shared.is_ready(), Ok(()));
        b.clear();
        assert_eq!(shared.is_ready(), not_ready(1));
        c.set_state(CellState::Ready);
        shared.header().set_draining();
        assert_eq!(shared.is_ready(), Err(NotReady::Draining));
    }

    #[test]
    fn least_connections_skips_self_and_workers_not_ready() {
        let shared = Shared::new().expect("memfd");
        let a = shared.cell(shared.claim(0).expect("id")).expect("cell");
        assert_eq!(shared.least_connections_besides(a), None);
        let b = ready_in(&shared, 1);
        b.count_connection(true);
        b.count_connection(true);
        let _booting = shared.claim(2).expect("cell");
        assert_eq!(shared.least_connections_besides(a), Some(2));
        b.count_connection(false);
        assert_eq!(shared.least_connections_besides(a), Some(1));
    }

    #[test]
    fn a_released_cell_leaves_its_groups() {
        let shared = Shared::new().expect("memfd");
        let id = shared.claim(0).expect("cell");
        let table = shared.groups(id).expect("table");
        let k = groups::key("room");
        table.join(k);
        table.join(k);
        assert_eq!(table.count(k), 2);
        // The pages go back to the kernel (no fallback to writing zeros).
        shared.give_back(table).expect("punch a hole in the memfd");
        assert_eq!(table.count(k), 0);
        table.join(k);
        shared.release(id);
        assert_eq!(table.count(k), 0);
        assert!(table.is_empty());
        // The table works again for the cell's next worker.
        table.join(k);
        assert_eq!(table.count(k), 1);
    }

    #[test]
    fn cleared_cells_are_claimed_again() {
        let shared = Shared::new().expect("mmap");
        let first = shared.claim(0).expect("cell");
        let second = shared.claim(1).expect("cell");
        assert_ne!(first, second);
        let cell = shared.cell(first).expect("cell");
        cell.count_request();
        cell.request_retire();
        cell.clear();
        assert_eq!(shared.claim(5), Some(first));
        assert_eq!(
            (cell.slot(), cell.requests(), cell.take_retire()),
            (5, 0, false)
        );
    }

    #[test]
    fn a_released_cell_moves_its_counts_to_its_slot() {
        use metrics::{AppKind, at};
        let shared = Shared::new().expect("memfd");
        let series = |kind, labels: &str| AppSeries {
            name: "jobs".into(),
            labels: labels.into(),
            help: "Jobs.".into(),
            kind,
            offset: 0,
            bounds: vec![],
        };
        let jobs = shared
            .register(&series(AppKind::Counter, ""))
            .expect("register");
        let queue = shared
            .register(&series(AppKind::Counter, "q=\"a\""))
            .expect("register");
        assert_ne!(jobs, queue);
        assert_eq!(shared.register(&series(AppKind::Counter, "")), Ok(jobs));
        assert_eq!(
            shared.register(&series(AppKind::Gauge, "")),
            Err(RegisterError::Mismatch)
        );
        let id = shared.claim(1).expect("cell");
        let cell = shared.cell(id).expect("cell");
        cell.counters.add(at::SENT_BYTES, 10);
        cell.app[jobs].fetch_add(4, Relaxed);
        let sum = |s: &Shared| {
            let mut t = [0; at::LEN];
            s.slot_totals(1, &mut t);
            for (_, c) in s.cells().filter(|(_, c)| c.slot() == 1 && c.pid() != 0) {
                c.counters.sum_into(&mut t);
            }
            t[at::SENT_BYTES]
        };
        assert_eq!(shared.consistent(sum), 10);
        shared.release(id);
        assert_eq!(cell.state(), CellState::Empty);
        assert_eq!(shared.consistent(sum), 10, "the count moved, not lost");
        assert_eq!(shared.app_retired(jobs).load(Relaxed), 4);
        assert_eq!(cell.app[jobs].load(Relaxed), 0);
    }

    #[test]
    fn an_adopted_region_is_the_same_memory() {
        let shared = Shared::new().expect("memfd");
        shared.header().set_desired(7);
        let again = Shared::adopt(shared.fd()).expect("adopt");
        assert_eq!(again.header().desired(), 7);
        again.header().set_draining();
        assert!(shared.header().is_draining());
        assert_eq!(
            Shared::adopt(0).err(),
            Some(nix::Error::EINVAL),
            "stdin is no region"
        );
    }

    #[test]
    fn error_is_truncated_on_a_char_boundary() {
        let shared = Shared::new().expect("mmap");
        let cell = shared.cell(0).expect("cell");
        assert_eq!(cell.error(), None);
        cell.set_error(&"é".repeat(ERROR_LEN));
        let got = cell.error().expect("error");
        assert!(got.len() <= ERROR_LEN && got.chars().all(|c| c == 'é'));
    }

    #[test]
    fn memory_is_shared_with_a_forked_child() {
        let shared = Shared::new().expect("mmap");
        let cell = shared.cell(3).expect("cell");
        // SAFETY: the test harness may run other threads, but the child only
        // touches atomics in the shared mapping and then `_exit`s without
        // running destructors or taking locks.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                cell.count_request();
                cell.count_request();
                // SAFETY: `_exit` is async-signal-safe and skips atexit handlers.
                unsafe { nix::libc::_exit(0) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                nix::sys::wait::waitpid(child, None).expect("waitpid");
                assert_eq!(cell.requests(), 2);
            }
        }
    }
}
