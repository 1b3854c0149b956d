//! The running server this executable serves, found in `/proc`: the
//! addresses its supervisor listens on, so that `ferricorn healthcheck`
//! asks the server that actually runs (started with `-b 0.0.0.0:9000` in a
//! container whose environment says otherwise) rather than the address the
//! settings alone would give.
//!
//! The supervisor is the process running this executable whose parent does
//! not (its workers' parent does); with a pidfile, the pid in it. Its
//! listening sockets are its descriptors that `/proc/net/tcp`, `tcp6` and
//! `unix` list as listening, in descriptor order (the first bound first).
//! Reading another process's descriptors needs its user (or root), as a
//! container's healthcheck has.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use ferricorn_config::Bind;

/// A supervisor of this executable and what it listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Running {
    pub pid: i32,
    pub listens: Vec<Bind>,
}

/// The supervisors running this executable that listen on something; with
/// `pidfile` (a readable one), only the server whose pid it holds.
pub(crate) fn servers(pidfile: Option<&Path>) -> Vec<Running> {
    let sockets = listening_sockets();
    let pids = match pidfile.and_then(|p| std::fs::read_to_string(p).ok()) {
        Some(text) => text.trim().parse().into_iter().collect(),
        None => supervisors(),
    };
    pids.into_iter()
        .map(|pid| Running {
            pid,
            listens: listens(pid, &sockets),
        })
        .filter(|r| !r.listens.is_empty())
        .collect()
}

/// The executable's path, without the ` (deleted)` the kernel adds once
/// the file has been replaced (as a rebuild does).
fn exe(pid: &str) -> Option<PathBuf> {
    let link = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let text = link.to_string_lossy();
    Some(PathBuf::from(
        text.strip_suffix(" (deleted)").unwrap_or(&text).to_owned(),
    ))
}

/// The processes running this executable whose parent does not.
fn supervisors() -> Vec<i32> {
    let Some(me) = exe("self") else {
        return Vec::new();
    };
    let own = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    // pid -> parent pid, for every other process running this executable.
    let same: HashMap<i32, i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != own && exe(&pid.to_string()).as_ref() == Some(&me))
        .filter_map(|pid| Some((pid, parent(pid)?)))
        .collect();
    let mut pids: Vec<i32> = same
        .iter()
        .filter(|(_, ppid)| !same.contains_key(ppid))
        .map(|(pid, _)| *pid)
        .collect();
    pids.sort_unstable();
    pids
}

/// The parent pid, from `/proc/PID/stat` (the field after the command's
/// closing parenthesis and the state).
fn parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// What `pid` listens on, in descriptor order.
fn listens(pid: i32, sockets: &HashMap<u64, Bind>) -> Vec<Bind> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut fds: Vec<(u32, u64)> = dir
        .filter_map(|e| {
            let e = e.ok()?;
            let fd = e.file_name().to_str()?.parse().ok()?;
            let link = std::fs::read_link(e.path()).ok()?;
            let inode = link
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()?;
            Some((fd, inode))
        })
        .collect();
    fds.sort_unstable();
    let mut out: Vec<Bind> = Vec::new();
    for (_, inode) in fds {
        if let Some(b) = sockets.get(&inode)
            && !out.contains(b)
        {
            out.push(b.clone());
        }
    }
    out
}

/// Every listening socket in this network namespace, by inode.
fn listening_sockets() -> HashMap<u64, Bind> {
    let mut out = HashMap::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        if let Ok(text) = std::fs::read_to_string(file) {
            out.extend(tcp_listeners(&text, v6));
        }
    }
    if let Ok(text) = std::fs::read_to_string("/proc/net/unix") {
        out.extend(unix_listeners(&text));
    }
    out
}

/// `sl local_address rem_address st ... inode`: the sockets in state 0A
/// (listening).
fn tcp_listeners(text: &str, v6: bool) -> impl Iterator<Item = (u64, Bind)> + '_ {
    text.lines().skip(1).filter_map(move |line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(3) != Some(&"0A") {
            return None;
        }
        let (addr, port) = f.get(1)?.split_once(':')?;
        let port = u16::from_str_radix(port, 16).ok()?;
        let ip = if v6 { ipv6(addr)? } else { ipv4(addr)? };
        let inode = f.get(9)?.parse().ok()?;
        Some((inode, Bind::Tcp(SocketAddr::new(ip, port))))
    })
}

/// The kernel prints each 32-bit word of an address in host order.
fn ipv4(hex: &str) -> Option<IpAddr> {
    let word = u32::from_str_radix(hex, 16).ok()?;
    Some(Ipv4Addr::from(word.to_ne_bytes()).into())
}

fn ipv6(hex: &str) -> Option<IpAddr> {
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(4).enumerate() {
        let word = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    Some(Ipv6Addr::from(bytes).into())
}

/// `Num RefCount Protocol Flags Type St Inode Path`: the sockets with the
/// accepting flag (`__SO_ACCEPTCON`, 0x10000) and a path.
fn unix_listeners(text: &str) -> impl Iterator<Item = (u64, Bind)> + '_ {
    text.lines().skip(1).filter_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
        if flags & 0x10000 == 0 {
            return None;
        }
        let path = f.get(7)?;
        if path.starts_with('@') {
            return None;
        }
        Some((f.get(6)?.parse().ok()?, Bind::Unix(PathBuf::from(path))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_lines_parse() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 4243 1 0000000000000000 100 0 0 10 0\n";
        let got: Vec<_> = tcp_listeners(tcp, false).collect();
        if cfg!(target_endian = "little") {
            assert_eq!(
                got,
                [(4242, Bind::Tcp("127.0.0.1:8080".parse().expect("addr")))]
            );
        }
        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000000000000000000001000000:2328 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 77 1 0000000000000000 100 0 0 10 0\n";
        let got: Vec<_> = tcp_listeners(tcp6, true).collect();
        if cfg!(target_endian = "little") {
            assert_eq!(got, [(77, Bind::Tcp("[::1]:9000".parse().expect("addr")))]);
        }
        let unix = "Num       RefCount Protocol Flags    Type St Inode Path\n0000000000000000: 00000002 00000000 00010000 0001 01 991 /run/f.sock\n0000000000000000: 00000002 00000000 00000000 0001 03 992 /run/g.sock\n";
        let got: Vec<_> = unix_listeners(unix).collect();
        assert_eq!(got, [(991, Bind::Unix("/run/f.sock".into()))]);
    }

    #[test]
    fn this_process_is_found_listening() {
        // The test binary's own listener stands in for a supervisor's.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let found = listens(std::process::id() as i32, &listening_sockets());
        assert!(found.contains(&Bind::Tcp(addr)), "{found:?}");
    }
}
