//! The channel layer's directory: for each worker process (cell), the
//! groups it has members of and how many, so that any worker can tell which
//! workers to send a group's message to (interest-based routing) and how
//! many members a group has on this host, without asking them.
//!
//! Each cell's [`GroupTable`] is written by its own worker only and read by
//! all: an open-addressing table of group keys ([`key`], a hash of the
//! name) and member counts. Adding a group's first member stores its count
//! before its key, so a reader that finds the key sees the member; a group
//! whose last member leaves keeps its key with a count of 0 until the table
//! is compacted, which the owner does under a sequence lock that readers
//! retry around. A worker with more groups than the table holds sets
//! `overflow`: it then receives every group's messages, and its members of
//! the groups past the table are not counted. When a worker exits, the
//! supervisor empties its table with the rest of its cell (giving its pages
//! back to the kernel), so its memberships vanish at once, whatever killed
//! it.

use std::sync::atomic::{
    AtomicU32, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release, fence,
};

/// How many groups one worker's table holds.
pub const GROUP_ENTRIES: usize = 4096;

/// The table compacts when this many entries hold a key (live or not).
const COMPACT_AT: usize = GROUP_ENTRIES * 3 / 4;

/// A group's key: the 64-bit FNV-1a hash of its name, never 0 (0 marks an
/// empty entry). The same in every process and every build, so workers of
/// two binaries (during an upgrade) agree on it.
pub fn key(group: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in group.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.max(1)
}

/// One worker's groups and member counts. Page-aligned, so that the
/// supervisor can give a dead worker's table back to the kernel whole
/// (see `Shared::release`) instead of writing zeros over it.
#[derive(Debug)]
#[repr(C, align(4096))]
pub struct GroupTable {
    /// Odd while the owner compacts the table.
    seq: AtomicU64,
    /// Set once the worker had more groups than the table holds.
    overflow: AtomicU32,
    /// Entries holding a key, live or not (the owner's count).
    used: AtomicU32,
    /// Bumped by the owner after each join and leave, so that a reader can
    /// tell that the table changed without reading it.
    changes: AtomicU64,
    keys: [AtomicU64; GROUP_ENTRIES],
    counts: [AtomicU32; GROUP_ENTRIES],
}

impl GroupTable {
    fn slot_of(&self, key: u64) -> Option<usize> {
        let start = (key as usize) % GROUP_ENTRIES;
        for i in 0..GROUP_ENTRIES {
            let at = (start + i) % GROUP_ENTRIES;
            match self.keys[at].load(Acquire) {
                k if k == key => return Some(at),
                0 => return None,
                _ => {}
            }
        }
        None
    }

    /// The members this worker has of the group with `key` (reads retry
    /// around a compaction).
    pub fn count(&self, key: u64) -> u32 {
        for _ in 0..1000 {
            let before = self.seq.load(Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let n = self
                .slot_of(key)
                .map_or(0, |at| self.counts[at].load(Relaxed));
            fence(Acquire);
            if self.seq.load(Relaxed) == before {
                return n;
            }
        }
        0
    }

    /// Whether a message for the group with `key` should reach this worker:
    /// it has members, or its table overflowed.
    pub fn wants(&self, key: u64) -> bool {
        self.overflow.load(Relaxed) != 0 || self.count(key) > 0
    }

    /// Whether the table ever overflowed.
    pub fn overflowed(&self) -> bool {
        self.overflow.load(Relaxed) != 0
    }

    /// How many joins and leaves the table has seen: a reader that finds
    /// the same number twice knows nothing changed in between.
    pub fn changes(&self) -> u64 {
        self.changes.load(Acquire)
    }

    /// One member more of the group with `key`. The owning worker only.
    pub fn join(&self, key: u64) {
        self.add(key);
        self.changes.fetch_add(1, Release);
    }

    fn add(&self, key: u64) {
        if let Some(at) = self.slot_of(key) {
            self.counts[at].fetch_add(1, Relaxed);
            return;
        }
        if self.used.load(Relaxed) as usize >= COMPACT_AT {
            self.compact();
        }
        if self.used.load(Relaxed) as usize >= COMPACT_AT {
            self.overflow.store(1, Relaxed);
            return;
        }
        let start = (key as usize) % GROUP_ENTRIES;
        for i in 0..GROUP_ENTRIES {
            let at = (start + i) % GROUP_ENTRIES;
            if self.keys[at].load(Relaxed) == 0 {
                self.counts[at].store(1, Relaxed);
                self.keys[at].store(key, Release);
                self.used.fetch_add(1, Relaxed);
                return;
            }
        }
    }

    /// One member fewer of the group with `key`. The owning worker only.
    pub fn leave(&self, key: u64) {
        if let Some(at) = self.slot_of(key) {
            let _ = self.counts[at].fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
        }
        self.changes.fetch_add(1, Release);
    }

    /// Drops the keys of groups without members, under the sequence lock.
    fn compact(&self) {
        let live: Vec<(u64, u32)> = (0..GROUP_ENTRIES)
            .filter_map(|at| {
                let k = self.keys[at].load(Relaxed);
                let n = self.counts[at].load(Relaxed);
                (k != 0 && n > 0).then_some((k, n))
            })
            .collect();
        self.seq.fetch_add(1, Relaxed);
        fence(Release);
        for at in 0..GROUP_ENTRIES {
            self.keys[at].store(0, Relaxed);
            self.counts[at].store(0, Relaxed);
        }
        for (k, n) in &live {
            let start = (*k as usize) % GROUP_ENTRIES;
            for i in 0..GROUP_ENTRIES {
                let at = (start + i) % GROUP_ENTRIES;
                if self.keys[at].load(Relaxed) == 0 {
                    self.counts[at].store(*n, Relaxed);
                    self.keys[at].store(*k, Relaxed);
                    break;
                }
            }
        }
        self.used.store(live.len() as u32, Relaxed);
        self.seq.fetch_add(1, Release);
    }

    /// Whether the table holds nothing: no key, no overflow.
    pub(crate) fn is_empty(&self) -> bool {
        self.used.load(Relaxed) == 0 && self.overflow.load(Relaxed) == 0
    }

    /// Empties the table when its worker is gone (where its pages cannot be
    /// given back). The supervisor only.
    pub(crate) fn clear(&self) {
        self.seq.fetch_add(1, Relaxed);
        fence(Release);
        for at in 0..GROUP_ENTRIES {
            self.keys[at].store(0, Relaxed);
            self.counts[at].store(0, Relaxed);
        }
        self.used.store(0, Relaxed);
        self.overflow.store(0, Relaxed);
        self.seq.fetch_add(1, Release);
    }

    /// The groups (keys) with members and their counts.
    pub fn groups(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        (0..GROUP_ENTRIES).filter_map(|at| {
            let k = self.keys[at].load(Acquire);
            let n = self.counts[at].load(Relaxed);
            (k != 0 && n > 0).then_some((k, n))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> &'static GroupTable {
        crate::Shared::new()
            .expect("memfd")
            .groups(0)
            .expect("a table")
    }

    #[test]
    fn joins_and_leaves_count_members() {
        let t = table();
        let (a, b) = (key("room-a"), key("room-b"));
        assert_ne!(a, b);
        assert!(!t.wants(a));
        t.join(a);
        t.join(a);
        t.join(b);
        assert_eq!((t.count(a), t.count(b)), (2, 1));
        t.leave(a);
        t.leave(b);
        t.leave(b);
        assert_eq!((t.count(a), t.count(b)), (1, 0));
        assert!(t.wants(a) && !t.wants(b));
        assert_eq!(t.groups().collect::<Vec<_>>(), [(a, 1)]);
        t.clear();
        assert_eq!(t.count(a), 0);
    }

    #[test]
    fn a_full_table_compacts_then_overflows() {
        let t = table();
        // Groups that come and go never fill it.
        for i in 0..(3 * GROUP_ENTRIES) {
            let k = key(&format!("g{i}"));
            t.join(k);
            t.leave(k);
        }
        assert!(!t.overflowed());
        let kept = key("kept");
        t.join(kept);
        for i in 0..GROUP_ENTRIES {
            t.join(key(&format!("live{i}")));
        }
        assert!(t.overflowed(), "more live groups than entries");
        assert_eq!(t.count(kept), 1, "compaction keeps live groups");
        assert!(t.wants(key("any group at all")));
    }

    #[test]
    fn keys_are_stable() {
        assert_eq!(key(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(key("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
