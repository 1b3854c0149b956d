//! The checks the settings table names: each takes a setting's key and raw
//! value and returns the checked value, or what is wrong with it.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use nix::unistd::{Gid, Group as NixGroup, Uid, User as NixUser};

use crate::values::{Bind, Group, IpNet, User};

/// How often a worker writes its heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// A timeout under two heartbeats would find every worker hung.
const MIN_TIMEOUT: Duration = Duration::from_secs(2 * HEARTBEAT_INTERVAL.as_secs());

/// A setting that failed its check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub key: &'static str,
    pub message: String,
}

pub(crate) type Check<T> = Result<T, Invalid>;

impl Invalid {
    /// The error, naming the layer `figment` took the value from.
    pub(crate) fn at(self, figment: &figment::Figment) -> crate::Error {
        crate::Error::Invalid {
            key: self.key.to_owned(),
            origin: crate::layers::source_of(figment, self.key),
            message: self.message,
        }
    }
}

pub(crate) fn invalid(key: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        key,
        message: message.into(),
    }
}

/// `None` for zero, which turns the setting off.
pub(crate) fn nonzero<T: Default + PartialEq>(v: T) -> Option<T> {
    Some(v).filter(|v| *v != T::default())
}

pub(crate) fn range(key: &'static str, n: u64, min: u64, max: u64) -> Check<usize> {
    if n < min || n > max {
        return Err(invalid(key, format!("{n} is outside {min}..={max}")));
    }
    Ok(n as usize)
}

pub(crate) fn secs(key: &'static str, s: f64) -> Check<Duration> {
    if !s.is_finite() || !(0.0..=1e9).contains(&s) {
        return Err(invalid(
            key,
            format!("{s} is not a number of seconds from 0 to 1e9"),
        ));
    }
    Ok(Duration::from_secs_f64(s))
}

pub(crate) fn positive(key: &'static str, s: f64) -> Check<Duration> {
    let d = secs(key, s)?;
    if d.is_zero() {
        return Err(invalid(key, "must be more than 0 seconds"));
    }
    Ok(d)
}

/// `timeout`: 0 turns it off; otherwise at least [`MIN_TIMEOUT`].
pub(crate) fn hang_timeout(key: &'static str, s: f64) -> Check<Option<Duration>> {
    let d = secs(key, s)?;
    if d.is_zero() {
        return Ok(None);
    }
    if d < MIN_TIMEOUT {
        return Err(invalid(
            key,
            format!(
                "{s} s is under {} s, and workers beat every {} s (0 turns it off)",
                MIN_TIMEOUT.as_secs(),
                HEARTBEAT_INTERVAL.as_secs()
            ),
        ));
    }
    Ok(Some(d))
}

/// MiB, as bytes; 0 turns it off.
pub(crate) fn mebibytes(key: &'static str, mib: u64) -> Check<Option<u64>> {
    match mib {
        0 => Ok(None),
        mib => mib
            .checked_mul(1 << 20)
            .map(Some)
            .ok_or_else(|| invalid(key, format!("{mib} MiB is too large"))),
    }
}

/// A file; empty for none.
pub(crate) fn file(p: String) -> Option<PathBuf> {
    Some(p).filter(|p| !p.is_empty()).map(PathBuf::from)
}

/// Any value whose type parses it.
pub(crate) fn parsed<T: FromStr<Err = crate::Error>>(key: &'static str, s: String) -> Check<T> {
    s.parse()
        .map_err(|e: crate::Error| invalid(key, e.to_string()))
}

pub(crate) fn nets(key: &'static str, list: Vec<String>) -> Check<Vec<IpNet>> {
    list.into_iter().map(|s| parsed(key, s)).collect()
}

/// An octal mask, `022`, `0o022` or `0022`; empty leaves it unchanged.
pub(crate) fn umask(key: &'static str, m: String) -> Check<Option<u32>> {
    if m.is_empty() {
        return Ok(None);
    }
    let digits = m.trim().trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(n) if n <= 0o777 => Ok(Some(n)),
        _ => Err(invalid(
            key,
            format!("`{m}` is not an octal mask from 0 to 777"),
        )),
    }
}

/// A user name or id, found in the user database; empty for none.
pub(crate) fn user(key: &'static str, name: String) -> Check<Option<User>> {
    if name.is_empty() {
        return Ok(None);
    }
    let found = match name.parse::<u32>() {
        Ok(id) => NixUser::from_uid(Uid::from_raw(id)),
        Err(_) => NixUser::from_name(&name),
    };
    match found {
        Ok(Some(u)) => Ok(Some(User {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            name,
        })),
        Ok(None) => Err(invalid(key, format!("user `{name}` does not exist"))),
        Err(e) => Err(invalid(key, format!("user `{name}`: {e}"))),
    }
}

/// A group name or id; empty for none.
pub(crate) fn group(key: &'static str, name: String) -> Check<Option<Group>> {
    if name.is_empty() {
        return Ok(None);
    }
    if let Ok(id) = name.parse::<u32>() {
        return Ok(Some(Group { name, gid: id }));
    }
    match NixGroup::from_name(&name) {
        Ok(Some(g)) => Ok(Some(Group {
            gid: Gid::as_raw(g.gid),
            name,
        })),
        Ok(None) => Err(invalid(key, format!("group `{name}` does not exist"))),
        Err(e) => Err(invalid(key, format!("group `{name}`: {e}"))),
    }
}

/// `--root-path`: empty, or a path that starts with `/` and does not end
/// with one.
pub(crate) fn root_path(key: &'static str, p: String) -> Check<String> {
    if p.is_empty() || (p.starts_with('/') && !p.ends_with('/')) {
        return Ok(p);
    }
    Err(invalid(
        key,
        format!("`{p}` must start with / and not end with one"),
    ))
}

/// The path of one of ferricorn's own endpoints; empty turns it off.
pub(crate) fn endpoint(key: &'static str, p: String) -> Check<Option<String>> {
    match p.as_str() {
        "" => Ok(None),
        s if s.starts_with('/') && !s.contains(char::is_whitespace) => Ok(Some(p)),
        _ => Err(invalid(
            key,
            format!("`{p}` must start with / and hold no spaces (empty turns it off)"),
        )),
    }
}

pub(crate) fn binds(key: &'static str, addrs: Vec<String>) -> Check<Vec<Bind>> {
    if addrs.is_empty() {
        return Err(invalid(key, "no address given"));
    }
    let mut out = Vec::new();
    for a in &addrs {
        for b in bind(key, a)? {
            if !out.contains(&b) {
                out.push(b);
            }
        }
    }
    Ok(out)
}

/// One address, or none when empty.
pub(crate) fn one_bind(key: &'static str, a: String) -> Check<Option<Bind>> {
    let a = a.trim();
    if a.is_empty() {
        return Ok(None);
    }
    match bind(key, a)?.as_slice() {
        [b] => Ok(Some(b.clone())),
        _ => Err(invalid(
            key,
            format!("`{a}` names more than one address; give one"),
        )),
    }
}

/// Parses one address; a host name may resolve to several.
pub(crate) fn bind(key: &'static str, a: &str) -> Check<Vec<Bind>> {
    let a = a.trim();
    if let Some(fd) = a.strip_prefix("fd://") {
        return match fd.parse::<i32>() {
            Ok(fd) if fd >= 3 => Ok(vec![Bind::Fd(fd)]),
            _ => Err(invalid(
                key,
                format!("`{a}`: fd://N needs a descriptor number of 3 or more"),
            )),
        };
    }
    if let Some(path) = a.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(invalid(key, "`unix:` needs a path"));
        }
        return Ok(vec![Bind::Unix(PathBuf::from(path))]);
    }
    // Gunicorn's `tcp://HOST:PORT`.
    let a = a.strip_prefix("tcp://").unwrap_or(a);
    if let Ok(addr) = a.parse::<SocketAddr>() {
        return Ok(vec![Bind::Tcp(addr)]);
    }
    // A number alone would resolve as an IPv4 address (`9000` is
    // 0.0.35.40): refused, with what was likely meant.
    if !a.is_empty() && a.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid(
            key,
            format!(
                "`{a}` is a port without a host: write `:{a}` or `0.0.0.0:{a}` for every interface, `127.0.0.1:{a}` for this machine only"
            ),
        ));
    }
    // Gunicorn's `:PORT`: every interface.
    if let Some(port) = a.strip_prefix(':')
        && let Ok(port) = port.parse::<u16>()
    {
        return Ok(vec![Bind::Tcp(SocketAddr::from(([0, 0, 0, 0], port)))]);
    }
    let bad = || {
        invalid(
            key,
            format!("`{a}` is not HOST:PORT, :PORT, [V6]:PORT, unix:PATH or fd://N"),
        )
    };
    let (host, port) = match a.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.ends_with(':') => {
            (h, p.parse::<u16>().map_err(|_| bad())?)
        }
        None if !a.is_empty() => (a, 8000),
        _ => return Err(bad()),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![Bind::Tcp(SocketAddr::new(ip, port))]);
    }
    if host.contains(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.')) {
        return Err(bad());
    }
    let resolved: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| invalid(key, format!("`{a}`: cannot resolve {host}: {e}")))?
        .map(Bind::Tcp)
        .collect();
    if resolved.is_empty() {
        return Err(invalid(key, format!("`{a}`: {host} has no address")));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse() {
        let b = |s: &str| bind("bind", s).map_err(|e| e.message);
        assert_eq!(
            b("[::1]:9000"),
            Ok(vec![Bind::Tcp("[::1]:9000".parse().expect("addr"))])
        );
        assert_eq!(
            b("0.0.0.0"),
            Ok(vec![Bind::Tcp("0.0.0.0:8000".parse().expect("addr"))])
        );
        assert_eq!(
            b("unix:/tmp/f.sock"),
            Ok(vec![Bind::Unix("/tmp/f.sock".into())])
        );
        assert!(b("localhost:80").is_ok_and(|v| !v.is_empty()));
        assert!(b("127.0.0.1:http").is_err());
        assert!(b("127.0.0.1:70000").is_err());
        assert!(b("unix:").is_err());
        assert_eq!(b("fd://3"), Ok(vec![Bind::Fd(3)]));
        assert!(b("fd://1").is_err() && b("fd://x").is_err());
        assert_eq!(
            b(":80"),
            Ok(vec![Bind::Tcp("0.0.0.0:80".parse().expect("addr"))])
        );
        assert_eq!(
            b("tcp://127.0.0.1:80"),
            Ok(vec![Bind::Tcp("127.0.0.1:80".parse().expect("addr"))])
        );
        let bare = b("9000").expect_err("a number alone");
        assert!(bare.contains("`:9000`"), "{bare}");
        assert!(b(":http").is_err() && b(":").is_err());
        assert!(b("a b:80").is_err());
    }

    #[test]
    fn a_timeout_under_two_heartbeats_is_refused() {
        for t in [0.0001, 1.0, 1.99] {
            let e = hang_timeout("timeout", t).expect_err("too short");
            assert!(e.message.contains("under 2 s"), "{}", e.message);
        }
        assert_eq!(
            hang_timeout("timeout", 2.0),
            Ok(Some(Duration::from_secs(2)))
        );
        assert_eq!(hang_timeout("timeout", 0.0), Ok(None));
    }

    #[test]
    fn users_and_groups_are_found_once_or_named() {
        assert_eq!(user("user", String::new()), Ok(None));
        let root = user("user", "0".into()).expect("uid 0").expect("user");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(
            user("user", "no-such-user-here".into()).map_err(|e| e.message),
            Err("user `no-such-user-here` does not exist".into())
        );
        assert_eq!(
            group("group", "7".into()).map(|g| g.map(|g| g.gid)),
            Ok(Some(7))
        );
        assert!(group("group", "no-such-group-here".into()).is_err());
    }

    #[test]
    fn masks_are_octal() {
        assert_eq!(umask("umask", "0o027".into()), Ok(Some(0o027)));
        assert_eq!(umask("umask", "022".into()), Ok(Some(0o022)));
        assert_eq!(umask("umask", String::new()), Ok(None));
        assert!(umask("umask", "999".into()).is_err());
    }
}
