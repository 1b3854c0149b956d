//! [`Config`]: every setting checked into its typed value (as the settings
//! table says), and the rules that join settings: the automatic worker and
//! thread counts, one path per endpoint, and the identity the workers
//! switch to.

use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use nix::unistd::{Gid, Uid};

use crate::Error;
use crate::access_format::AccessLogFormat;
use crate::checks::{
    Check, binds, endpoint, file, group, hang_timeout, invalid, mebibytes, nets, nonzero, one_bind,
    parsed, positive, range, root_path, secs, umask, user,
};
use crate::cpus::Cpus;
use crate::options::{Flag, Int, Kind, List, Secs, Text};
use crate::values::{
    Bind, CertReqs, ChannelLayer, ChannelOverflow, Group, HttpVersion, Identity, IpNet, Limits,
    LogFormat, LogLevel, MAX_REQUEST_LINE, ProxyProtocol, User, WebSocket,
};

/// The most worker processes one server runs (the shared memory's slot count).
pub const MAX_WORKERS: usize = 256;
/// The most blocking threads one worker runs.
pub const MAX_THREADS: usize = 1024;

macro_rules! config {
    ($($key:ident: $kind:ident => $checked:ty = $default:literal {
        help: $help:literal,
        check: $check:expr,
        $($rest:tt)*
    })*) => {
        /// Every setting, checked. Each field is the setting of the same
        /// key (see the settings table for its default); `None` turns a
        /// setting off where the table says 0 or empty does.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            $(
                #[doc = $help]
                pub $key: $checked,
            )*
            /// The CPUs the automatic worker and thread counts were based on.
            pub cpus: Cpus,
            /// The user and group the workers switch to, from `user` and
            /// `group`; `None` when they keep the supervisor's.
            pub identity: Option<Identity>,
        }

        impl Config {
            /// Checks every setting of the merged layers.
            fn check_each(figment: &Figment, cpus: Cpus) -> Result<Self, Error> {
                Ok(Self {
                    $($key: {
                        let key = stringify!($key);
                        let raw = figment
                            .find_value(key)
                            .map_err(|e| crate::figment_error(&e))
                            .and_then(|v| <$kind as Kind>::from_value(&v).map_err(|e| invalid(key, e).at(figment)))?;
                        let check: fn(&'static str, <$kind as Kind>::Raw) -> Check<$checked> = $check;
                        check(key, raw).map_err(|e| e.at(figment))?
                    },)*
                    cpus,
                    identity: None,
                })
            }
        }
    };
}

crate::for_each_setting!(config);

impl Config {
    /// Checks every setting, then the rules that join them.
    pub(crate) fn resolve(figment: &Figment, cpus: Cpus) -> Result<Self, Error> {
        let mut config = Self::check_each(figment, cpus)?;
        if config.workers == 0 {
            config.workers = cpus.count;
        }
        if config.threads == 0 {
            config.threads = (cpus.count + 4).min(32);
        }
        config.check_endpoints().map_err(|e| e.at(figment))?;
        if config.reload && (config.user.is_some() || config.group.is_some()) {
            return Err(invalid(
                "reload",
                "is for development and cannot be used with `user` or `group`",
            )
            .at(figment));
        }
        config.check_tls().map_err(|e| e.at(figment))?;
        config.identity =
            identity(config.user.as_ref(), config.group.as_ref()).map_err(|e| e.at(figment))?;
        Ok(config)
    }

    /// The TLS settings other than `certfile` need it; a client
    /// certificate can be checked only against `ca_certs`; an address is
    /// either TLS or plain.
    fn check_tls(&self) -> Check<()> {
        if self.certfile.is_none() {
            let needs = [
                ("keyfile", self.keyfile.is_some()),
                ("ca_certs", self.ca_certs.is_some()),
                ("cert_reqs", self.cert_reqs != CertReqs::None),
                ("insecure_bind", !self.insecure_bind.is_empty()),
            ];
            if let Some((key, _)) = needs.into_iter().find(|(_, set)| *set) {
                return Err(invalid(key, "needs `certfile` (TLS is off without it)"));
            }
        }
        if self.cert_reqs != CertReqs::None && self.ca_certs.is_none() {
            return Err(invalid(
                "cert_reqs",
                "needs `ca_certs`, the CAs client certificates are checked against",
            ));
        }
        // Port 0 asks for a free port each time: never the same address.
        let fixed = |b: &&Bind| !matches!(b, Bind::Tcp(a) if a.port() == 0);
        if let Some(b) = (self.insecure_bind.iter().filter(fixed)).find(|b| self.bind.contains(b)) {
            return Err(invalid(
                "insecure_bind",
                format!("`{b}` is also a `bind` address; an address is TLS or plain, not both"),
            ));
        }
        Ok(())
    }

    /// Each of ferricorn's own endpoints needs a path of its own.
    fn check_endpoints(&self) -> Check<()> {
        let (health, ready, metrics) = (&self.health_path, &self.ready_path, &self.metrics_path);
        let clash = [
            ("ready_path", ready, ready == health),
            (
                "metrics_path",
                metrics,
                metrics == health || metrics == ready,
            ),
        ];
        match clash.into_iter().find(|(_, p, same)| p.is_some() && *same) {
            Some((key, Some(p), _)) => Err(invalid(
                key,
                format!("`{p}` is already the path of another endpoint"),
            )),
            _ => Ok(()),
        }
    }

    /// The request size limits.
    pub fn limits(&self) -> Limits {
        Limits {
            request_line: self.limit_request_line,
            request_fields: self.limit_request_fields,
            request_field_size: self.limit_request_field_size,
        }
    }

    /// The WebSocket settings.
    pub fn ws(&self) -> WebSocket {
        WebSocket {
            ping_interval: self.ws_ping_interval,
            ping_timeout: self.ws_ping_timeout,
            max_size: self.ws_max_size,
            max_queue: self.ws_max_queue,
        }
    }

    /// JSON log lines.
    pub fn log_json(&self) -> bool {
        self.log_format == LogFormat::Json
    }
}

/// The identity `user` and `group` name; switching to another than the
/// supervisor's needs root.
fn identity(user: Option<&User>, group: Option<&Group>) -> Check<Option<Identity>> {
    if user.is_none() && group.is_none() {
        return Ok(None);
    }
    let uid = user.map_or_else(|| Uid::current().as_raw(), |u| u.uid);
    let gid = match (group, user) {
        (Some(g), _) => g.gid,
        (None, Some(u)) => u.gid,
        (None, None) => Gid::current().as_raw(),
    };
    let changes = uid != Uid::current().as_raw() || gid != Gid::current().as_raw();
    if changes && !Uid::effective().is_root() {
        return Err(invalid(
            if user.is_some() { "user" } else { "group" },
            format!(
                "switching workers to user {uid} and group {gid} needs the supervisor to run as root"
            ),
        ));
    }
    Ok(Some(Identity { uid, gid }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers;
    use crate::options::Options;

    fn cpus() -> Cpus {
        Cpus::from_inputs(2, Some(2), None)
    }

    fn resolve(o: Options) -> Result<Config, Error> {
        Config::resolve(&layers::defaults_under(&o), cpus())
    }

    fn bad(o: Options) -> String {
        match resolve(o) {
            Err(Error::Invalid { key, .. }) => key,
            other => panic!("not invalid: {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let c = resolve(Options::default()).expect("defaults are valid");
        assert_eq!(c.bind, [Bind::Tcp("127.0.0.1:8000".parse().expect("addr"))]);
        assert_eq!((c.workers, c.threads), (2, 6));
        assert_eq!(c.worker_connections, 1000);
        assert_eq!(c.backlog, 2048);
        assert_eq!(c.keep_alive, Some(Duration::from_secs(5)));
        assert_eq!(c.graceful_timeout, Duration::from_secs(30));
        assert_eq!(c.timeout, Some(Duration::from_secs(30)));
        assert_eq!(c.limit_request_line, Some(4094));
        assert_eq!(c.limit_request_fields, 100);
        assert_eq!(c.limit_request_field_size, Some(8190));
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.health_path.as_deref(), Some("/healthz"));
        assert_eq!(c.error_logfile, None);
        assert_eq!(c.access_logformat, AccessLogFormat::default());
        assert_eq!(c.forwarded_allow_ips.len(), 2);
        assert_eq!(c.identity, None);
    }

    #[test]
    fn threads_cap_at_32() {
        let many = Cpus::from_inputs(64, None, None);
        let c = Config::resolve(&layers::defaults_under(&Options::default()), many).expect("valid");
        assert_eq!((c.workers, c.threads), (64, 32));
    }

    #[test]
    fn bad_values_name_their_setting() {
        let o = |f: fn(&mut Options)| {
            let mut o = Options::default();
            f(&mut o);
            o
        };
        assert_eq!(bad(o(|o| o.workers = Some(100_000))), "workers");
        assert_eq!(bad(o(|o| o.keep_alive = Some(-1.0))), "keep_alive");
        assert_eq!(bad(o(|o| o.header_timeout = Some(0.0))), "header_timeout");
        assert_eq!(bad(o(|o| o.log_level = Some("loud".into()))), "log_level");
        assert_eq!(
            bad(o(|o| o.health_path = Some("healthz".into()))),
            "health_path"
        );
        assert_eq!(
            bad(o(|o| o.limit_request_fields = Some(0))),
            "limit_request_fields"
        );
        assert_eq!(bad(o(|o| o.umask = Some("999".into()))), "umask");
        assert_eq!(bad(o(|o| o.timeout = Some(0.5))), "timeout");
        assert_eq!(
            bad(o(|o| o.access_logformat = Some("%(zz)s".into()))),
            "access_logformat"
        );
        assert_eq!(
            bad(o(|o| o.user = Some("no-such-user-here".into()))),
            "user"
        );
        assert_eq!(
            bad(o(|o| o.metrics_bind = Some("nowhere:port".into()))),
            "metrics_bind"
        );
    }

    #[test]
    fn recycling_and_process_options() {
        let o = Options {
            max_requests: Some(200),
            max_requests_jitter: Some(20),
            max_worker_memory: Some(64),
            umask: Some("0o027".into()),
            pid: Some("/run/f.pid".into()),
            ..Default::default()
        };
        let c = resolve(o).expect("valid");
        assert_eq!((c.max_requests, c.max_requests_jitter), (Some(200), 20));
        assert_eq!(c.max_worker_memory, Some(64 << 20));
        assert_eq!(c.umask, Some(0o027));
        assert_eq!(c.pid.as_deref(), Some(std::path::Path::new("/run/f.pid")));
        assert_eq!(c.boot_timeout, Some(Duration::from_secs(30)));
        assert_eq!(c.shutdown_delay, Duration::ZERO);
    }

    #[test]
    fn zero_and_empty_turn_things_off() {
        let o = Options {
            keep_alive: Some(0.0),
            timeout: Some(0.0),
            limit_request_line: Some(0),
            ready_path: Some(String::new()),
            metrics_path: Some(String::new()),
            error_logfile: Some(String::new()),
            ..Default::default()
        };
        let c = resolve(o).expect("valid");
        assert_eq!(c.keep_alive, None);
        assert_eq!(c.timeout, None);
        assert_eq!(c.limit_request_line, None);
        assert_eq!(c.ready_path, None);
        assert_eq!(c.metrics_path, None);
        assert_eq!(c.error_logfile, None);
    }

    #[test]
    fn endpoints_need_paths_of_their_own() {
        let o = Options {
            metrics_path: Some("/healthz".into()),
            ..Default::default()
        };
        assert_eq!(bad(o), "metrics_path");
        let o = Options {
            ready_path: Some("/metrics".into()),
            metrics_path: Some("/metrics".into()),
            ..Default::default()
        };
        assert_eq!(bad(o), "metrics_path");
        let o = Options {
            ready_path: Some("/healthz".into()),
            ..Default::default()
        };
        assert_eq!(bad(o), "ready_path");
        let o = Options {
            metrics_bind: Some("127.0.0.1:9100".into()),
            ..Default::default()
        };
        assert_eq!(
            resolve(o).expect("valid").metrics_bind,
            Some(Bind::Tcp("127.0.0.1:9100".parse().expect("addr")))
        );
    }

    #[test]
    fn the_own_identity_needs_no_root() {
        let me = Uid::current().as_raw().to_string();
        let o = Options {
            user: Some(me),
            ..Default::default()
        };
        let c = resolve(o).expect("valid");
        assert_eq!(
            c.identity,
            Some(Identity {
                uid: Uid::current().as_raw(),
                gid: c.user.as_ref().expect("user").gid,
            })
        );
    }
}
