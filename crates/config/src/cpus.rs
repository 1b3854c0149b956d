//! How many CPUs this process may use: the online CPUs, narrowed by the
//! affinity mask and by a cgroup (v2 or v1) CPU quota, so that a container
//! limited to 2 CPUs counts 2 on a 64-core host.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// The CPU count and the inputs it came from, for the boot log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cpus {
    /// CPUs the process may use: min(affinity or online, ceil(quota)), at least 1.
    pub count: usize,
    /// CPUs the system has online.
    pub online: usize,
    /// CPUs in the affinity mask, if it could be read.
    pub affinity: Option<usize>,
    /// The cgroup CPU quota in CPUs, if one is set.
    pub quota: Option<f64>,
}

impl Cpus {
    /// Reads the current process's limits.
    pub fn detect() -> Self {
        let online = fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|s| count_cpu_list(&s))
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1);
        let affinity = fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| affinity_from_status(&s));
        let quota = fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|s| cgroup_quota(&s, Path::new("/sys/fs/cgroup")));
        Self::from_inputs(online, affinity, quota)
    }

    /// Combines the inputs into a count.
    pub fn from_inputs(online: usize, affinity: Option<usize>, quota: Option<f64>) -> Self {
        let mut count = affinity.unwrap_or(online).min(online.max(1));
        if let Some(q) = quota {
            count = count.min(q.ceil() as usize);
        }
        Self {
            count: count.max(1),
            online,
            affinity,
            quota,
        }
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (online {}", self.count, self.online)?;
        match self.affinity {
            Some(n) => write!(f, ", affinity mask {n}")?,
            None => write!(f, ", affinity mask unknown")?,
        }
        match self.quota {
            Some(q) => write!(f, ", cgroup quota {q:.2})"),
            None => write!(f, ", no cgroup quota)"),
        }
    }
}

/// Counts a kernel CPU list such as `0-3,8,10-11`.
fn count_cpu_list(list: &str) -> Option<usize> {
    let mut n = 0;
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => b.trim().parse::<usize>().ok()? + 1 - a.trim().parse::<usize>().ok()?,
            None => part.trim().parse::<usize>().map(|_| 1).ok()?,
        };
    }
    (n > 0).then_some(n)
}

/// The `Cpus_allowed_list` line of `/proc/self/status`.
fn affinity_from_status(status: &str) -> Option<usize> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .and_then(count_cpu_list)
}

/// The smallest CPU quota on the process's cgroup path, v2 or v1.
fn cgroup_quota(proc_cgroup: &str, root: &Path) -> Option<f64> {
    let mut best: Option<f64> = None;
    let mut take = |q: Option<f64>| {
        if let Some(q) = q {
            best = Some(best.map_or(q, |b: f64| b.min(q)));
        }
    };
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if id == "0" && controllers.is_empty() {
            for dir in ancestors(root, path) {
                take(
                    fs::read_to_string(dir.join("cpu.max"))
                        .ok()
                        .and_then(|s| v2_quota(&s)),
                );
            }
        } else if controllers.split(',').any(|c| c == "cpu") {
            for mount in ["cpu,cpuacct", "cpu", "cpuacct,cpu"] {
                for dir in ancestors(&root.join(mount), path) {
                    let read = |f: &str| fs::read_to_string(dir.join(f)).ok();
                    if let (Some(q), Some(p)) =
                        (read("cpu.cfs_quota_us"), read("cpu.cfs_period_us"))
                    {
                        take(v1_quota(&q, &p));
                    }
                }
            }
        }
    }
    best
}

/// `root/path` and each of its parents up to `root`.
fn ancestors(root: &Path, path: &str) -> Vec<PathBuf> {
    let mut dirs = vec![root.to_path_buf()];
    let mut dir = root.to_path_buf();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        dir.push(part);
        dirs.push(dir.clone());
    }
    dirs
}

/// `cpu.max` holds `QUOTA PERIOD` or `max PERIOD`.
fn v2_quota(cpu_max: &str) -> Option<f64> {
    let mut it = cpu_max.split_whitespace();
    let quota = it.next()?.parse::<f64>().ok()?;
    let period = it.next()?.parse::<f64>().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// `cpu.cfs_quota_us` is -1 when unlimited.
fn v1_quota(quota: &str, period: &str) -> Option<f64> {
    let quota = quota.trim().parse::<f64>().ok()?;
    let period = period.trim().parse::<f64>().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_count() {
        assert_eq!(count_cpu_list("0-3,8,10-11\n"), Some(7));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("x"), None);
        let status = "Name:\tx\nCpus_allowed:\tff\nCpus_allowed_list:\t0-1\n";
        assert_eq!(affinity_from_status(status), Some(2));
    }

    #[test]
    fn quotas_parse() {
        assert_eq!(v2_quota("max 100000\n"), None);
        assert_eq!(v2_quota("150000 100000\n"), Some(1.5));
        assert_eq!(v1_quota("-1", "100000"), None);
        assert_eq!(v1_quota("200000\n", "100000\n"), Some(2.0));
    }

    #[test]
    fn quota_and_affinity_narrow_the_count() {
        assert_eq!(Cpus::from_inputs(64, None, Some(2.0)).count, 2);
        assert_eq!(Cpus::from_inputs(64, None, Some(1.5)).count, 2);
        assert_eq!(Cpus::from_inputs(64, Some(4), Some(8.0)).count, 4);
        assert_eq!(Cpus::from_inputs(8, None, Some(0.1)).count, 1);
        assert_eq!(Cpus::from_inputs(8, None, None).count, 8);
    }

    #[test]
    fn cgroup_v2_files_are_walked() {
        let root = std::env::temp_dir().join(format!("ferricorn-cg-{}", std::process::id()));
        let leaf = root.join("a/b");
        fs::create_dir_all(&leaf).expect("mkdir");
        fs::write(root.join("cpu.max"), "max 100000").expect("write");
        fs::write(root.join("a/cpu.max"), "300000 100000").expect("write");
        fs::write(leaf.join("cpu.max"), "200000 100000").expect("write");
        assert_eq!(cgroup_quota("0::/a/b\n", &root), Some(2.0));
        assert_eq!(cgroup_quota("0::/\n", &root), None);
        fs::remove_dir_all(&root).expect("cleanup");
    }
}
