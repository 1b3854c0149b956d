//! The settings table: every setting once, with its key (the TOML key; the
//! flag is the key in kebab case, the environment name `FERRICORN_` and the
//! key in upper case), its kind, the type it is checked into, its default,
//! its short flag and value name, the other servers' environment names
//! that set it (lowest precedence first), its one-line `--help`, its
//! longer description for the README, and its check.
//!
//! Everything else is made from it: the command-line flags and `--help`,
//! the raw [`Options`](crate::Options), the environment names read, the
//! checked [`Config`](crate::Config), `--print-config`, the README's
//! settings table (a test fails when it is stale), and the setters of
//! `ferricorn::Server`. A setting is added here and nowhere else, but in
//! the code that uses it.
//!
//! Each entry reads
//!
//! ```text
//! key: Kind => CheckedType = "default" {
//!     shown: "default as --help and the README show it",   (optional)
//!     flag: (['s'], "VALUE NAME"),                          (short flag optional)
//!     env: [other names, lowest first],
//!     help: "one line for --help",
//!     doc: "what the README says",
//!     check: fn(key, raw) -> Result<CheckedType, Invalid>,
//! }
//! ```
//!
//! Kinds: `List` (a list; comma-separated in the environment, repeatable
//! and comma-separated on the command line), `Int` (a whole number), `Secs`
//! (seconds, whole or fractional), `Text`.

/// Calls `$callback!` with the whole settings table (see the module docs).
#[macro_export]
#[doc(hidden)]
macro_rules! for_each_setting {
    ($callback:ident) => {
        $callback! {
            bind: List => Vec<Bind> = "127.0.0.1:8000" {
                flag: (['b'], "ADDR"),
                env: [$crate::env::PORT, $crate::env::UVICORN_HOST, $crate::env::UVICORN_PORT],
                help: "Address to listen on: HOST:PORT (an IPv6 host in brackets), unix:PATH or fd://N; repeat for several",
                doc: "`HOST:PORT`, `[V6]:PORT`, `unix:PATH` or `fd://N` (an inherited listening socket); a host name binds every address it resolves to; systemd socket activation (`LISTEN_FDS`) replaces it. `PORT` alone binds `0.0.0.0:$PORT`; `UVICORN_HOST` and `UVICORN_PORT` default to 127.0.0.1 and 8000; `FERRICORN_BIND` is comma-separated",
                check: binds,
            }
            workers: Int => usize = "0" {
                flag: (['w'], "N"),
                env: [$crate::env::WEB_CONCURRENCY, $crate::env::UVICORN_WORKERS, $crate::env::GUNICORN_WORKERS],
                help: "Worker processes; 0 means one per CPU this process may use",
                doc: "worker processes (at most 256); 0: one per CPU this process may use (the affinity mask and the cgroup v2/v1 CPU quota count)",
                check: |k, n| range(k, n, 0, MAX_WORKERS as u64),
            }
            threads: Int => usize = "0" {
                flag: ([], "N"),
                env: [],
                help: "Blocking-pool threads per worker; 0 means min(32, CPUs + 4)",
                doc: "blocking-pool threads per worker; 0: min(32, CPUs + 4)",
                check: |k, n| range(k, n, 0, MAX_THREADS as u64),
            }
            worker_connections: Int => usize = "1000" {
                flag: ([], "N"),
                env: [],
                help: "Open connections per worker; at the limit it stops accepting",
                doc: "open connections per worker; at the limit it stops accepting, so the others take the load",
                check: |k, n| range(k, n, 1, 1 << 20),
            }
            backlog: Int => i32 = "2048" {
                flag: ([], "N"),
                env: [],
                help: "Listen queue length of each bound socket",
                doc: "listen queue of each socket",
                check: |k, n| range(k, n, 1, i32::MAX as u64).map(|n| n as i32),
            }
            keep_alive: Secs => Option<Duration> = "5" {
                flag: ([], "SECS"),
                env: [],
                help: "Seconds an idle keep-alive connection stays open; 0 turns keep-alive off",
                doc: "idle keep-alive connections close after this; 0 turns keep-alive off",
                check: |k, s| secs(k, s).map(nonzero),
            }
            header_timeout: Secs => Duration = "10" {
                flag: ([], "SECS"),
                env: [],
                help: "Seconds a client may take to send a request head",
                doc: "a client must send a whole request head within this (and within keep-alive, while keep-alive is on; checked every 0.1 s), and each request body chunk within this of the previous one",
                check: positive,
            }
            graceful_timeout: Secs => Duration = "30" {
                flag: ([], "SECS"),
                env: [],
                help: "Seconds workers get to finish in-flight requests on a graceful stop",
                doc: "time in-flight requests get on SIGTERM",
                check: secs,
            }
            timeout: Secs => Option<Duration> = "30" {
                flag: (['t'], "SECS"),
                env: [],
                help: "Seconds without a heartbeat after which a worker counts as hung, at least 2; 0 turns it off",
                doc: "a serving worker with no heartbeat for this long gets SIGABRT, then SIGKILL, and is replaced; at least 2 (workers beat once a second); 0 turns it off",
                check: hang_timeout,
            }
            boot_timeout: Secs => Option<Duration> = "30" {
                flag: ([], "SECS"),
                env: [],
                help: "Seconds a worker may take to finish its app's startup before it is killed; 0 turns it off",
                doc: "a worker that has not finished its app's startup by then is killed (a boot failure); 0 turns it off",
                check: |k, s| secs(k, s).map(nonzero),
            }
            shutdown_delay: Secs => Duration = "0" {
                flag: ([], "SECS"),
                env: [],
                help: "Seconds between SIGTERM and the drain, while /readyz answers 503 and requests are still served",
                doc: "on SIGTERM, `/readyz` turns 503 at once and the server keeps serving this long before it drains",
                check: secs,
            }
            max_requests: Int => Option<u64> = "0" {
                flag: ([], "N"),
                env: [],
                help: "Requests after which a worker is replaced; 0 turns recycling off",
                doc: "a worker is replaced after N requests; 0 turns it off",
                check: |_, n: u64| Ok(Some(n).filter(|n| *n > 0)),
            }
            max_requests_jitter: Int => u64 = "0" {
                flag: ([], "N"),
                env: [],
                help: "Up to this many more requests, chosen at random per worker, so workers do not recycle together",
                doc: "plus up to N more, at random per worker",
                check: |_, n| Ok(n),
            }
            max_worker_memory: Int => Option<u64> = "0" {
                flag: ([], "MIB"),
                env: [],
                help: "RSS in MiB above which a worker is replaced; 0 turns it off",
                doc: "a worker whose RSS stays above this is replaced; 0 turns it off",
                check: mebibytes,
            }
            pid: Text => Option<PathBuf> = "" {
                shown: "none",
                flag: (['p'], "PATH"),
                env: [],
                help: "File to write the supervisor's pid to once it is ready; removed at exit",
                doc: "pidfile, written when every worker is ready, removed at exit (`PATH.oldbin` during an upgrade)",
                check: |_, p| Ok(file(p)),
            }
            user: Text => Option<User> = "" {
                shown: "unchanged",
                flag: (['u'], "USER"),
                env: [],
                help: "User (name or id) the workers switch to after the fork",
                doc: "workers switch to this user (a name or an id) after the fork; the supervisor must be root; looked up once, when the settings load",
                check: user,
            }
            group: Text => Option<Group> = "" {
                shown: "the user's group",
                flag: (['g'], "GROUP"),
                env: [],
                help: "Group (name or id) the workers switch to after the fork",
                doc: "workers switch to this group (a name or an id) after the fork; the supervisor must be root",
                check: group,
            }
            umask: Text => Option<u32> = "" {
                shown: "unchanged",
                flag: (['m'], "MASK"),
                env: [],
                help: "File mode creation mask of the workers and unix sockets, in octal",
                doc: "octal file mode creation mask, for unix socket files and workers",
                check: umask,
            }
            error_logfile: Text => Option<PathBuf> = "-" {
                flag: ([], "PATH"),
                env: [],
                help: "Error log file, reopened on SIGUSR1; - is stderr",
                doc: "the error log; `-` is stderr; reopened on SIGUSR1",
                check: |_, p: String| Ok(file(p).filter(|p| p.as_os_str() != "-")),
            }
            access_logfile: Text => Option<PathBuf> = "" {
                shown: "off",
                flag: ([], "PATH"),
                env: [],
                help: "Access log file, off unless set; - is stdout; reopened on SIGUSR1",
                doc: "the access log, one line per request; `-` is stdout; reopened on SIGUSR1",
                check: |_, p| Ok(file(p)),
            }
            access_logformat: Text => AccessLogFormat = "" {
                shown: "Gunicorn's",
                flag: ([], "FORMAT"),
                env: [],
                help: "Access log line, in Gunicorn's %(atom)s format",
                doc: "Gunicorn's atoms: `h l u t r m U q H s B b f a T M D L p {name}i {name}o` as `%(atom)s`; `%%` writes `%`",
                check: |k, f: String| if f.is_empty() { Ok(AccessLogFormat::default()) } else { parsed(k, f) },
            }
            log_format: Text => LogFormat = "text" {
                flag: ([], "FORMAT"),
                env: [],
                help: "Log line format, text or json, for the error and access logs",
                doc: "`json`: one JSON object per line in both logs (access: time, client, method, path, query, status, bytes, duration, worker, request_id, user_agent)",
                check: parsed,
            }
            log_level: Text => LogLevel = "info" {
                flag: ([], "LEVEL"),
                env: [$crate::env::UVICORN_LOG_LEVEL, $crate::env::GUNICORN_LOG_LEVEL],
                help: "Log level: debug, info, warning, error or critical",
                doc: "debug, info, warning, error or critical",
                check: parsed,
            }
            forwarded_allow_ips: List => Vec<IpNet> = "127.0.0.1,::1" {
                flag: ([], "LIST"),
                env: [$crate::env::FORWARDED_ALLOW_IPS],
                help: "Peers whose X-Forwarded-* and Forwarded headers are trusted: IPs, CIDRs, or *",
                doc: "peers (IPs, CIDRs, `*`) whose `X-Forwarded-For`/`-Proto`/`-Host` and RFC 7239 `Forwarded` set the client address, scheme and host the app sees (`RequestInfo`, `Host`); from others they are ignored; unix-socket peers are trusted",
                check: nets,
            }
            proxy_protocol: Text => ProxyProtocol = "off" {
                flag: ([], "MODE"),
                env: [],
                help: "PROXY protocol on TCP listeners: off, v1, v2 or auto",
                doc: "`v1`, `v2` or `auto`: TCP connections from `--proxy-allow-from` peers must start with a PROXY header (HAProxy, AWS NLB), whose source address becomes the client; a malformed or missing one closes the connection; a PROXY header from any other peer closes it too, while their plain HTTP (health probes) is served",
                check: parsed,
            }
            proxy_allow_from: List => Vec<IpNet> = "127.0.0.1,::1" {
                flag: ([], "LIST"),
                env: [],
                help: "Peers allowed to send a PROXY header: IPs, CIDRs, or *",
                doc: "peers (IPs, CIDRs, `*`) allowed to send PROXY headers",
                check: nets,
            }
            root_path: Text => String = "" {
                flag: ([], "PATH"),
                env: [],
                help: "The path the app is mounted at behind a proxy, given to the app as in ASGI",
                doc: "the app's mount path behind a proxy, given to it as `RequestInfo::root_path` (ASGI's `root_path`); empty or `/PATH` without a trailing `/`",
                check: root_path,
            }
            limit_concurrency: Int => Option<usize> = "0" {
                flag: ([], "N"),
                env: [],
                help: "Requests in flight per worker beyond which requests get 503 at once; 0 turns the limit off",
                doc: "requests beyond N in flight in a worker get 503 with `Retry-After: 1` at once (counted until the handler returns its response head; `/healthz` and `/readyz` are exempt); 0 turns the limit off",
                check: |k, n| range(k, n, 0, 1 << 30).map(nonzero),
            }
            request_timeout: Secs => Option<Duration> = "0" {
                flag: ([], "SECS"),
                env: [],
                help: "Seconds a handler has to produce a response head before it is cancelled and the client gets 504; 0 turns it off",
                doc: "a handler without a response head by then is cancelled and the client gets 504 (work already on the blocking pool runs to its end); 0 turns it off",
                check: |k, s| secs(k, s).map(nonzero),
            }
            ws_ping_interval: Secs => Option<Duration> = "20" {
                flag: ([], "SECS"),
                env: [],
                help: "Seconds of WebSocket silence after which the server pings; 0 turns pings off",
                doc: "a silent WebSocket client is pinged after this; 0 turns pings off",
                check: |k, s| secs(k, s).map(nonzero),
            }
            ws_ping_timeout: Secs => Duration = "20" {
                flag: ([], "SECS"),
                env: [],
                help: "Seconds a pinged WebSocket client has to answer before it is closed",
                doc: "a pinged client that does not answer in time is closed (1011)",
                check: positive,
            }
            ws_max_size: Int => usize = "16777216" {
                flag: ([], "BYTES"),
                env: [],
                help: "Largest WebSocket message in bytes; a bigger one closes the socket with 1009",
                doc: "a bigger WebSocket message closes the socket with 1009",
                check: |k, n| range(k, n, 1, 1 << 31),
            }
            ws_max_queue: Int => usize = "32" {
                flag: ([], "N"),
                env: [],
                help: "Incoming WebSocket messages buffered per connection before reading pauses",
                doc: "incoming messages buffered per socket; when full, reading pauses (back-pressure)",
                check: |k, n| range(k, n, 1, 1 << 16),
            }
            limit_request_line: Int => Option<usize> = "4094" {
                flag: ([], "N"),
                env: [],
                help: "Longest request line in bytes (method, target, version); 0 means no limit",
                doc: "longest request line (method, target, version) in bytes, else 414; 0 = no limit",
                check: |k, n| range(k, n, 0, MAX_REQUEST_LINE).map(nonzero),
            }
            limit_request_fields: Int => usize = "100" {
                flag: ([], "N"),
                env: [],
                help: "Most header fields in one request",
                doc: "most header fields, else 431",
                check: |k, n| range(k, n, 1, 32_768),
            }
            limit_request_field_size: Int => Option<usize> = "8190" {
                flag: ([], "N"),
                env: [],
                help: "Longest header field in bytes (name, colon and value); 0 means no limit",
                doc: "longest header field (`name: value`) in bytes, else 431; 0 = no limit",
                check: |k, n| range(k, n, 0, 65_536).map(nonzero),
            }
            health_path: Text => Option<String> = "/healthz" {
                flag: ([], "PATH"),
                env: [],
                help: "Path of the liveness endpoint; empty turns it off",
                doc: "liveness endpoint; empty turns it off",
                check: endpoint,
            }
            ready_path: Text => Option<String> = "/readyz" {
                flag: ([], "PATH"),
                env: [],
                help: "Path of the readiness endpoint; empty turns it off",
                doc: "readiness endpoint; empty turns it off",
                check: endpoint,
            }
            metrics_path: Text => Option<String> = "/metrics" {
                flag: ([], "PATH"),
                env: [],
                help: "Path of the Prometheus metrics endpoint; empty turns metrics off",
                doc: "Prometheus endpoint for the whole server; empty turns metrics off (no counting either)",
                check: endpoint,
            }
            metrics_bind: Text => Option<Bind> = "" {
                shown: "none",
                flag: ([], "ADDR"),
                env: [],
                help: "Serve metrics, /healthz and /readyz on this address only (HOST:PORT or unix:PATH), not on the app's",
                doc: "serve `/metrics`, `/healthz` and `/readyz` on this address (`HOST:PORT` or `unix:PATH`) too, and `/metrics` no longer on the app's; everything else there is 404; needs a restart to change",
                check: one_bind,
            }

        }
    };
}
