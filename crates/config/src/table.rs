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
//!     help: "one line for --help",
//!     check: fn(key, raw) -> Result<CheckedType, Invalid>,
//!     section: "the heading --help lists it under",
//!     shown: "the default in words, for --help and the README",  (optional)
//!     flag: (['s'], "VALUE NAME"),                               (short flag optional)
//!     env: [other names, lowest first],
//!     doc: "what the README says",
//! }
//! ```
//!
//! `help` and `check` come first, so that a user of the table that needs
//! only them can take the rest as it comes (`$($rest:tt)*`).
//!
//! Kinds: `List` (a list; comma-separated in the environment, repeatable
//! and comma-separated on the command line), `Int` (a whole number), `Secs`
//! (seconds, whole or fractional), `Text`, `Flag` (on or off; a flag
//! without a value on the command line).

/// Calls `$callback!` with the whole settings table (see the module docs).
#[macro_export]
#[doc(hidden)]
macro_rules! for_each_setting {
    ($callback:ident) => {
        $callback! {
            bind: List => Vec<Bind> = "127.0.0.1:8000" {
                help: "Address to listen on: HOST:PORT (an IPv6 host in brackets), unix:PATH or fd://N; repeat for several",
                check: binds,
                section: "Server socket",
                flag: (['b'], "ADDR"),
                env: [$crate::env::PORT, $crate::env::UVICORN_HOST, $crate::env::UVICORN_PORT],
                doc: "`HOST:PORT`, `:PORT` (every interface), `[V6]:PORT`, `unix:PATH` or `fd://N` (an inherited listening socket); a port alone is refused; a host name binds every address it resolves to; systemd socket activation (`LISTEN_FDS`) replaces it. The host and port names (`--host`, `--port` below, and `PORT`, which alone binds `0.0.0.0:$PORT`) make one address between them; `FERRICORN_BIND` is comma-separated",
            }
            backlog: Int => i32 = "2048" {
                help: "Listen queue length of each bound socket",
                check: |k, n| range(k, n, 1, i32::MAX as u64).map(|n| n as i32),
                section: "Server socket",
                flag: ([], "N"),
                env: [],
                doc: "listen queue of each socket",
            }
            workers: Int => usize = "0" {
                help: "Worker processes; 0 means one per CPU this process may use",
                check: |k, n| range(k, n, 0, MAX_WORKERS as u64),
                section: "Workers",
                flag: (['w'], "N"),
                env: [$crate::env::WEB_CONCURRENCY, $crate::env::UVICORN_WORKERS, $crate::env::GUNICORN_WORKERS],
                doc: "worker processes (at most 256); 0: one per CPU this process may use (the affinity mask and the cgroup v2/v1 CPU quota count)",
            }
            threads: Int => usize = "0" {
                help: "Blocking-pool threads per worker; 0 means min(32, CPUs + 4)",
                check: |k, n| range(k, n, 0, MAX_THREADS as u64),
                section: "Workers",
                flag: ([], "N"),
                env: [],
                doc: "blocking-pool threads per worker; 0: min(32, CPUs + 4)",
            }
            worker_connections: Int => usize = "1000" {
                help: "Open connections per worker; at the limit it stops accepting",
                check: |k, n| range(k, n, 1, 1 << 20),
                section: "Workers",
                flag: ([], "N"),
                env: [],
                doc: "open connections per worker; at the limit it stops accepting, so the others take the load",
            }
            max_requests: Int => Option<u64> = "0" {
                help: "Requests after which a worker is replaced; 0 turns recycling off",
                check: |_, n: u64| Ok(Some(n).filter(|n| *n > 0)),
                section: "Workers",
                flag: ([], "N"),
                env: [],
                doc: "a worker is replaced after N requests; 0 turns it off",
            }
            max_requests_jitter: Int => u64 = "0" {
                help: "Up to this many more requests, chosen at random per worker, so workers do not recycle together",
                check: |_, n| Ok(n),
                section: "Workers",
                flag: ([], "N"),
                env: [],
                doc: "plus up to N more, at random per worker",
            }
            max_worker_memory: Int => Option<u64> = "0" {
                help: "RSS in MiB above which a worker is replaced; 0 turns it off",
                check: mebibytes,
                section: "Workers",
                flag: ([], "MIB"),
                env: [],
                doc: "a worker whose RSS stays above this is replaced; 0 turns it off",
            }
            keep_alive: Secs => Option<Duration> = "5" {
                help: "Seconds an idle keep-alive connection stays open; 0 turns keep-alive off",
                check: |k, s| secs(k, s).map(nonzero),
                section: "Timeouts",
                flag: ([], "SECS"),
                env: [],
                doc: "idle keep-alive connections close after this; 0 turns keep-alive off",
            }
            header_timeout: Secs => Duration = "10" {
                help: "Seconds a client may take to send a request head",
                check: positive,
                section: "Timeouts",
                flag: ([], "SECS"),
                env: [],
                doc: "a client must send a whole request head within this (and within keep-alive, while keep-alive is on; checked every 0.1 s), and each request body chunk within this of the previous one",
            }
            request_timeout: Secs => Option<Duration> = "0" {
                help: "Seconds a handler has to produce a response head before it is cancelled and the client gets 504; 0 turns it off",
                check: |k, s| secs(k, s).map(nonzero),
                section: "Timeouts",
                flag: ([], "SECS"),
                env: [],
                doc: "a handler without a response head by then is cancelled and the client gets 504 (work already on the blocking pool runs to its end); 0 turns it off",
            }
            graceful_timeout: Secs => Duration = "30" {
                help: "Seconds workers get to finish in-flight requests on a graceful stop",
                check: secs,
                section: "Timeouts",
                flag: ([], "SECS"),
                env: [],
                doc: "time in-flight requests get on SIGTERM",
            }
            shutdown_delay: Secs => Duration = "0" {
                help: "Seconds between SIGTERM and the drain, while /readyz answers 503 and requests are still served",
                check: secs,
                section: "Timeouts",
                flag: ([], "SECS"),
                env: [],
                doc: "on SIGTERM, `/readyz` turns 503 at once and the server keeps serving this long before it drains",
            }
            timeout: Secs => Option<Duration> = "30" {
                help: "Seconds without a heartbeat after which a worker counts as hung, at least 2; 0 turns it off",
                check: hang_timeout,
                section: "Timeouts",
                flag: (['t'], "SECS"),
                env: [],
                doc: "a serving worker with no heartbeat for this long gets SIGABRT, then SIGKILL, and is replaced; at least 2 (workers beat once a second); 0 turns it off",
            }
            boot_timeout: Secs => Option<Duration> = "30" {
                help: "Seconds a worker may take to finish its app's startup before it is killed; 0 turns it off",
                check: |k, s| secs(k, s).map(nonzero),
                section: "Timeouts",
                flag: ([], "SECS"),
                env: [],
                doc: "a worker that has not finished its app's startup by then is killed (a boot failure); 0 turns it off",
            }
            pid: Text => Option<PathBuf> = "" {
                help: "File to write the supervisor's pid to once it is ready; removed at exit",
                check: |_, p| Ok(file(p)),
                section: "Process management",
                shown: "none",
                flag: (['p'], "PATH"),
                env: [],
                doc: "pidfile, written when every worker is ready, removed at exit (`PATH.oldbin` during an upgrade)",
            }
            user: Text => Option<User> = "" {
                help: "User (name or id) the workers switch to after the fork",
                check: user,
                section: "Process management",
                shown: "unchanged",
                flag: (['u'], "USER"),
                env: [],
                doc: "workers switch to this user (a name or an id) after the fork; the supervisor must be root; looked up once, when the settings load",
            }
            group: Text => Option<Group> = "" {
                help: "Group (name or id) the workers switch to after the fork",
                check: group,
                section: "Process management",
                shown: "the user's group",
                flag: (['g'], "GROUP"),
                env: [],
                doc: "workers switch to this group (a name or an id) after the fork; the supervisor must be root",
            }
            umask: Text => Option<u32> = "" {
                help: "File mode creation mask of the workers and unix sockets, in octal",
                check: umask,
                section: "Process management",
                shown: "unchanged",
                flag: (['m'], "MASK"),
                env: [],
                doc: "octal file mode creation mask, for unix socket files and workers",
            }
            reload: Flag => bool = "false" {
                help: "Development: re-execute in place, as on SIGUSR2, when the executable or a --reload-path changes",
                check: |_, on| Ok(on),
                section: "Process management",
                flag: ([], ""),
                env: [],
                doc: "development only: the supervisor watches its own executable (and each `--reload-path`) and, when it has changed and stayed unchanged for half a second (a `cargo build` in another terminal), re-executes itself in place as on SIGUSR2, with no failed request; refused with `user` or `group`; a SIGHUP applies a change to it",
            }
            reload_path: List => Vec<PathBuf> = "" {
                help: "Files or directories --reload watches besides the executable; repeat for several",
                check: |_, paths: Vec<String>| Ok(paths.into_iter().map(PathBuf::from).collect()),
                section: "Process management",
                shown: "none",
                flag: ([], "PATH"),
                env: [],
                doc: "what `--reload` watches besides the executable: files, or directories (every file under them)",
            }
            error_logfile: Text => Option<PathBuf> = "-" {
                help: "Error log file, reopened on SIGUSR1; - is stderr",
                check: |_, p: String| Ok(file(p).filter(|p| p.as_os_str() != "-")),
                section: "Logging",
                flag: ([], "PATH"),
                env: [],
                doc: "the error log; `-` is stderr; reopened on SIGUSR1",
            }
            access_logfile: Text => Option<PathBuf> = "" {
                help: "Access log file, off unless set; - is stdout; reopened on SIGUSR1",
                check: |_, p| Ok(file(p)),
                section: "Logging",
                shown: "off",
                flag: ([], "PATH"),
                env: [],
                doc: "the access log, one line per request; `-` is stdout; reopened on SIGUSR1",
            }
            access_logformat: Text => AccessLogFormat = r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""# {
                help: "Access log line, in Gunicorn's %(atom)s format; the default is Gunicorn's",
                check: |k, f: String| if f.is_empty() { Ok(AccessLogFormat::default()) } else { parsed(k, f) },
                section: "Logging",
                flag: ([], "FORMAT"),
                env: [],
                doc: "Gunicorn's atoms: `h l u t r m U q H s B b f a T M D L p {name}i {name}o` as `%(atom)s`; `%%` writes `%`; the default is Gunicorn's; empty is the default",
            }
            log_format: Text => LogFormat = "text" {
                help: "Log line format, text or json, for the error and access logs",
                check: parsed,
                section: "Logging",
                flag: ([], "FORMAT"),
                env: [],
                doc: "`json`: one JSON object per line in both logs (access: time, client, method, path, query, status, bytes, duration, worker, request_id, user_agent)",
            }
            log_level: Text => LogLevel = "info" {
                help: "Log level: debug, info, warning, error or critical",
                check: parsed,
                section: "Logging",
                flag: ([], "LEVEL"),
                env: [$crate::env::UVICORN_LOG_LEVEL, $crate::env::GUNICORN_LOG_LEVEL],
                doc: "debug, info, warning, error or critical",
            }
            forwarded_allow_ips: List => Vec<IpNet> = "127.0.0.1,::1" {
                help: "Peers whose X-Forwarded-* and Forwarded headers are trusted: IPs, CIDRs, or *",
                check: nets,
                section: "Proxies",
                flag: ([], "LIST"),
                env: [$crate::env::FORWARDED_ALLOW_IPS],
                doc: "peers (IPs, CIDRs, `*`) whose `X-Forwarded-For`/`-Proto`/`-Host` and RFC 7239 `Forwarded` set the client address, scheme and host the app sees (`RequestInfo`, `Host`); from others they are ignored; unix-socket peers are trusted",
            }
            proxy_protocol: Text => ProxyProtocol = "off" {
                help: "PROXY protocol on TCP listeners: off, v1, v2 or auto",
                check: parsed,
                section: "Proxies",
                flag: ([], "MODE"),
                env: [],
                doc: "`v1`, `v2` or `auto`: TCP connections from `--proxy-allow-from` peers must start with a PROXY header (HAProxy, AWS NLB), whose source address becomes the client; a malformed or missing one closes the connection; a PROXY header from any other peer closes it too, while their plain HTTP (health probes) is served",
            }
            proxy_allow_from: List => Vec<IpNet> = "127.0.0.1,::1" {
                help: "Peers allowed to send a PROXY header: IPs, CIDRs, or *",
                check: nets,
                section: "Proxies",
                flag: ([], "LIST"),
                env: [],
                doc: "peers (IPs, CIDRs, `*`) allowed to send PROXY headers",
            }
            root_path: Text => String = "" {
                help: "The path the app is mounted at behind a proxy, given to the app as in ASGI",
                check: root_path,
                section: "Proxies",
                flag: ([], "PATH"),
                env: [],
                doc: "the app's mount path behind a proxy, given to it as `RequestInfo::root_path` (ASGI's `root_path`); empty or `/PATH` without a trailing `/`",
            }
            limit_concurrency: Int => Option<usize> = "0" {
                help: "Requests in flight per worker beyond which requests get 503 at once; 0 turns the limit off",
                check: |k, n| range(k, n, 0, 1 << 30).map(nonzero),
                section: "Request limits",
                flag: ([], "N"),
                env: [],
                doc: "requests beyond N in flight in a worker get 503 with `Retry-After: 1` at once (counted until the handler returns its response head; `/healthz` and `/readyz` are exempt); 0 turns the limit off",
            }
            limit_request_line: Int => Option<usize> = "4094" {
                help: "Longest request line in bytes (method, target, version); 0 means no limit",
                check: |k, n| range(k, n, 0, MAX_REQUEST_LINE).map(nonzero),
                section: "Request limits",
                flag: ([], "N"),
                env: [],
                doc: "longest request line (method, target, version) in bytes, else 414; 0 = no limit",
            }
            limit_request_fields: Int => usize = "100" {
                help: "Most header fields in one request",
                check: |k, n| range(k, n, 1, 32_768),
                section: "Request limits",
                flag: ([], "N"),
                env: [],
                doc: "most header fields, else 431",
            }
            limit_request_field_size: Int => Option<usize> = "8190" {
                help: "Longest header field in bytes (name, colon and value); 0 means no limit",
                check: |k, n| range(k, n, 0, 65_536).map(nonzero),
                section: "Request limits",
                flag: ([], "N"),
                env: [],
                doc: "longest header field (`name: value`) in bytes, else 431; 0 = no limit",
            }
            ws_ping_interval: Secs => Option<Duration> = "20" {
                help: "Seconds of WebSocket silence after which the server pings; 0 turns pings off",
                check: |k, s| secs(k, s).map(nonzero),
                section: "WebSocket",
                flag: ([], "SECS"),
                env: [],
                doc: "a silent WebSocket client is pinged after this; 0 turns pings off",
            }
            ws_ping_timeout: Secs => Duration = "20" {
                help: "Seconds a pinged WebSocket client has to answer before it is closed",
                check: positive,
                section: "WebSocket",
                flag: ([], "SECS"),
                env: [],
                doc: "a pinged client that does not answer in time is closed (1011)",
            }
            ws_max_size: Int => usize = "16777216" {
                help: "Largest WebSocket message in bytes; a bigger one closes the socket with 1009",
                check: |k, n| range(k, n, 1, 1 << 31),
                section: "WebSocket",
                flag: ([], "BYTES"),
                env: [],
                doc: "a bigger WebSocket message closes the socket with 1009",
            }
            ws_max_queue: Int => usize = "32" {
                help: "Incoming WebSocket messages buffered per connection before reading pauses",
                check: |k, n| range(k, n, 1, 1 << 16),
                section: "WebSocket",
                flag: ([], "N"),
                env: [],
                doc: "incoming messages buffered per socket; when full, reading pauses (back-pressure)",
            }
            channel_layer: Text => ChannelLayer = "memory" {
                help: "Where WebSocket groups span: memory (this server's workers, no broker) or redis://HOST:PORT/DB (every server naming that Redis)",
                check: parsed,
                section: "Channel layer",
                flag: ([], "LAYER"),
                env: [],
                doc: "`memory`: groups, direct sends and counts span every worker of this server, through its shared memory and streams between its workers, with no broker; `redis://[[user]:password@]host[:port][/db]` or `redis+unix:///path[?db=N&pass=P]`: they span every server that names the same Redis, each host subscribing only to the groups it has members of (see docs/channels.md)",
            }
            channel_capacity: Int => usize = "100" {
                help: "Messages queued for one WebSocket member of a group before --channel-overflow applies",
                check: |k, n| range(k, n, 1, 1 << 20),
                section: "Channel layer",
                flag: ([], "N"),
                env: [$crate::env::CHANNEL_LAYER_CAPACITY],
                doc: "group and direct messages queued for one socket; a full queue is handled by `--channel-overflow`, so a slow member never holds up the others or grows the worker's memory",
            }
            channel_overflow: Text => ChannelOverflow = "close" {
                help: "What a member's full queue does: close (the socket, with 1013) or drop-oldest",
                check: parsed,
                section: "Channel layer",
                flag: ([], "POLICY"),
                env: [],
                doc: "`close`: the member's socket is closed with 1013 (try again later), so its client reconnects and resyncs; `drop-oldest`: its oldest queued message is dropped",
            }
            channel_max_message: Int => usize = "1048576" {
                help: "Largest group or direct message in bytes; a larger one is refused, never truncated",
                check: |k, n| range(k, n, 1, 64 << 20),
                section: "Channel layer",
                flag: ([], "BYTES"),
                env: [],
                doc: "a larger message is refused with an error the app sees",
            }
            certfile: Text => Option<PathBuf> = "" {
                help: "TLS certificate chain in PEM, the server's own first; with it the --bind addresses serve HTTPS",
                check: |_, p| Ok(file(p)),
                section: "TLS and HTTP/2",
                shown: "none",
                flag: ([], "PATH", ["ssl-certfile"]),
                env: [$crate::env::UVICORN_SSL_CERTFILE],
                doc: "PEM certificate chain, the server's certificate first; with it every `--bind` address serves HTTPS (TLS 1.2 and 1.3 with rustls) and `--insecure-bind` ones plain HTTP; read by each worker after the fork, and again by the new workers on SIGHUP (certificate rotation); Uvicorn's `--ssl-certfile`",
            }
            keyfile: Text => Option<PathBuf> = "" {
                help: "TLS private key in PEM (PKCS#8, PKCS#1 RSA or SEC1 EC); default: the key in --certfile",
                check: |_, p| Ok(file(p)),
                section: "TLS and HTTP/2",
                shown: "in certfile",
                flag: ([], "PATH", ["ssl-keyfile"]),
                env: [$crate::env::UVICORN_SSL_KEYFILE],
                doc: "PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC) matching the certificate; unset, the key is read from `--certfile`; Uvicorn's `--ssl-keyfile`",
            }
            ca_certs: Text => Option<PathBuf> = "" {
                help: "PEM CA certificates that client certificates are checked against (mutual TLS)",
                check: |_, p| Ok(file(p)),
                section: "TLS and HTTP/2",
                shown: "none",
                flag: ([], "PATH", ["ssl-ca-certs"]),
                env: [$crate::env::UVICORN_SSL_CA_CERTS],
                doc: "PEM CA certificates for client certificates; with `--cert-reqs optional` or `required` the app sees a verified client's subject in `RequestInfo::client_subject`; Uvicorn's `--ssl-ca-certs`",
            }
            cert_reqs: Text => CertReqs = "none" {
                help: "Client certificates: none, optional or required (also 0, 1, 2, as Python's ssl module numbers them)",
                check: parsed,
                section: "TLS and HTTP/2",
                flag: ([], "WHEN", ["ssl-cert-reqs"]),
                env: [$crate::env::UVICORN_SSL_CERT_REQS],
                doc: "`none`: no client certificate is asked for; `optional`: one is asked for and, if sent, must chain to `--ca-certs`; `required`: a client without one is refused in the handshake; `0`, `1`, `2` as Gunicorn and Uvicorn take them",
            }
            insecure_bind: List => Vec<Bind> = "" {
                help: "Address served as plain HTTP while --certfile makes the --bind ones HTTPS; repeat for several",
                check: |k, a: Vec<String>| if a.is_empty() { Ok(Vec::new()) } else { binds(k, a) },
                section: "TLS and HTTP/2",
                shown: "none",
                flag: ([], "ADDR"),
                env: [],
                doc: "addresses (as `--bind`) that stay plain HTTP while `--certfile` turns TLS on for the `--bind` ones (Hypercorn's name), for example HTTPS on `:8443` and plain HTTP on a private address",
            }
            http: Text => HttpVersion = "auto" {
                help: "HTTP versions served: auto (HTTP/1.1 and HTTP/2), 1 or 2",
                check: parsed,
                section: "TLS and HTTP/2",
                flag: ([], "VERSION"),
                env: [],
                doc: "`auto`: HTTP/2 where the client asks for it (ALPN `h2` over TLS; the HTTP/2 preface on plain listeners, h2c by prior knowledge), HTTP/1.1 otherwise; `1`: HTTP/1.1 only; `2`: HTTP/2 only (ALPN offers only `h2`; HTTP/1.1 health probes then need `--metrics-bind`, which serves both)",
            }
            h2_max_concurrent_streams: Int => u32 = "100" {
                help: "Streams one HTTP/2 connection may have open at once",
                check: |k, n| range(k, n, 1, 1 << 16).map(|n| n as u32),
                section: "TLS and HTTP/2",
                flag: ([], "N"),
                env: [],
                doc: "streams one HTTP/2 connection may have open at once (Hypercorn's name and default); each stream counts as a request in flight for `--limit-concurrency`",
            }
            health_path: Text => Option<String> = "/healthz" {
                help: "Path of the liveness endpoint; empty turns it off",
                check: endpoint,
                section: "Health and metrics",
                flag: ([], "PATH"),
                env: [],
                doc: "liveness endpoint; empty turns it off",
            }
            ready_path: Text => Option<String> = "/readyz" {
                help: "Path of the readiness endpoint; empty turns it off",
                check: endpoint,
                section: "Health and metrics",
                flag: ([], "PATH"),
                env: [],
                doc: "readiness endpoint; empty turns it off",
            }
            metrics_path: Text => Option<String> = "/metrics" {
                help: "Path of the Prometheus metrics endpoint; empty turns metrics off",
                check: endpoint,
                section: "Health and metrics",
                flag: ([], "PATH"),
                env: [],
                doc: "Prometheus endpoint for the whole server; empty turns metrics off (no counting either)",
            }
            metrics_allow_from: List => Vec<IpNet> = "127.0.0.1,::1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7" {
                help: "Clients that may read /metrics on the app's addresses: IPs, CIDRs, or *; others get 404",
                check: nets,
                section: "Health and metrics",
                shown: "loopback and the private ranges",
                flag: ([], "LIST"),
                env: [],
                doc: "clients (IPs, CIDRs, `*`) that may read `/metrics` on the app's addresses; the client is the one the app sees (after a PROXY header and trusted `X-Forwarded-For`), so a public client behind your load balancer is refused; others get 404, as if there were no such path; the default is loopback and the private ranges (`10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, `fc00::/7`), where Prometheus scrapes from in compose and Kubernetes; unix-socket clients may; `--metrics-bind` serves it to anyone who reaches that address; `/healthz` and `/readyz` answer everyone",
            }
            metrics_bind: Text => Option<Bind> = "" {
                help: "Serve metrics, /healthz and /readyz on this address only (HOST:PORT or unix:PATH), not on the app's",
                check: one_bind,
                section: "Health and metrics",
                shown: "none",
                flag: ([], "ADDR"),
                env: [],
                doc: "serve `/metrics`, `/healthz` and `/readyz` on this address (`HOST:PORT` or `unix:PATH`) too, and `/metrics` no longer on the app's; everything else there is 404; needs a restart to change",
            }
        }
    };
}
