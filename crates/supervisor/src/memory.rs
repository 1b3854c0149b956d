//! The supervisor's own memory once the server is up.
//!
//! Parsing the command line, the environment and the TOML file, and setting
//! up logging, runs code the supervisor never runs again while it watches
//! its workers. The kernel maps that code into the process as it runs (64
//! KiB around each page first touched), so after boot the supervisor's RSS
//! counts some 3 MiB of code pages it no longer uses. [`drop_unused_code`]
//! unmaps the pages of every executable file mapping from the supervisor
//! alone; those its loop runs come back on first use. The pages stay in the
//! page cache, where the workers map the ones they use: nothing is read
//! from disk again, and memory the kernel may reclaim is now counted as
//! such.

use std::ffi::c_void;
use std::ptr::NonNull;

use nix::sys::mman::{MmapAdvise, madvise};
use tracing::debug;

/// One executable mapping of a file, from `/proc/self/maps`.
#[derive(Debug, PartialEq, Eq)]
struct Code {
    start: usize,
    len: usize,
}

/// Drops the pages of the process's executable file mappings (the binary's
/// and the shared libraries' code) from its page tables. Returns the number
/// of bytes of mappings advised.
pub(crate) fn drop_unused_code() -> usize {
    let maps = match std::fs::read_to_string("/proc/self/maps") {
        Ok(m) => m,
        Err(e) => {
            debug!("cannot read /proc/self/maps: {e}");
            return 0;
        }
    };
    let mut advised = 0;
    for code in maps.lines().filter_map(code_mapping) {
        let Some(start) = NonNull::new(code.start as *mut c_void) else {
            continue;
        };
        // SAFETY: the range is one whole mapping of this process, backed by
        // a file, readable and executable but not writable, and private:
        // its pages were never written (code has no relocations), so they
        // hold exactly the file's bytes. MADV_DONTNEED only removes them
        // from this process's page tables; the next access faults the same
        // bytes back in from the page cache. No Rust object lives in it.
        match unsafe { madvise(start, code.len, MmapAdvise::MADV_DONTNEED) } {
            Ok(()) => advised += code.len,
            Err(e) => debug!("madvise on code at {:#x}: {e}", code.start),
        }
    }
    advised
}

/// A line of `/proc/self/maps` that is a private, read-only, executable
/// mapping of a file (not `[vdso]` or another special one).
fn code_mapping(line: &str) -> Option<Code> {
    let mut fields = line.split_ascii_whitespace();
    let (range, perms) = (fields.next()?, fields.next()?);
    let path = fields.nth(3)?;
    if perms != "r-xp" || !path.starts_with('/') {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    Some(Code {
        start,
        len: end.checked_sub(start).filter(|&n| n > 0)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_private_read_only_code_of_files_is_chosen() {
        let maps = "\
55d0c0a00000-55d0c0a5e000 r--p 00000000 fd:01 123 /usr/bin/ferricorn
55d0c0a5e000-55d0c0d3f000 r-xp 0005e000 fd:01 123 /usr/bin/ferricorn
55d0c0d3f000-55d0c0de8000 r--p 0033f000 fd:01 123 /usr/bin/ferricorn
55d0c0df0000-55d0c0df3000 rw-p 003ef000 fd:01 123 /usr/bin/ferricorn
7f0000000000-7f0000001000 rwxp 00000000 00:00 0
7f1000000000-7f1000002000 r-xp 00000000 00:00 0 [vdso]
7f2000000000-7f2000010000 r-xs 00000000 00:05 9 /memfd:code (deleted)
7f3000000000-7f3000170000 r-xp 00028000 fd:01 77 /usr/lib/x86_64-linux-gnu/libc.so.6
";
        let chosen: Vec<Code> = maps.lines().filter_map(code_mapping).collect();
        assert_eq!(
            chosen,
            [
                Code {
                    start: 0x55d0c0a5e000,
                    len: 0x2e1000
                },
                Code {
                    start: 0x7f3000000000,
                    len: 0x170000
                },
            ]
        );
    }

    #[test]
    fn the_process_runs_on_after_its_code_is_dropped() {
        let advised = drop_unused_code();
        assert!(advised > 0, "this test binary has code mappings");
        // Code, data and the heap all still work.
        let v: Vec<String> = (0..100).map(|i| format!("{i}")).collect();
        assert_eq!(v.concat().len(), 190);
    }
}
