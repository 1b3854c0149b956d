//! What `/proc` says of a worker or the supervisor: its resident memory and
//! CPU time. The supervisor reads it for `--max-worker-memory`, a worker
//! for `/metrics`.

/// A process's resident memory and CPU time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// User and system CPU time in seconds.
    pub cpu_seconds: f64,
}

/// The resident set size of `pid` in bytes.
pub fn rss(pid: i32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * sysconf(nix::unistd::SysconfVar::PAGE_SIZE, 4096))
}

/// The resident memory and CPU time of `pid`.
pub fn usage(pid: i32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: state is the
    // first, utime the 12th and stime the 13th.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = sysconf(nix::unistd::SysconfVar::CLK_TCK, 100);
    Some(Usage {
        rss_bytes: rss(pid)?,
        cpu_seconds: (utime + stime) as f64 / ticks as f64,
    })
}

fn sysconf(var: nix::unistd::SysconfVar, default: u64) -> u64 {
    match nix::unistd::sysconf(var) {
        Ok(Some(v)) if v > 0 => v as u64,
        _ => default,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_is_read() {
        let me = std::process::id() as i32;
        let usage = super::usage(me).expect("/proc");
        assert!(usage.rss_bytes > 1 << 20, "{usage:?}");
        assert!(usage.cpu_seconds >= 0.0);
        assert_eq!(super::usage(-1), None);
    }
}
