//! The raw settings: one struct that is at once the command-line flags, the
//! TOML file's keys and the environment's `FERRICORN_*` names.
//!
//! Every field is optional here; a missing value takes its default when the
//! layers are resolved into a [`Config`](crate::Config).

use clap::Args;
use serde::{Deserialize, Deserializer, Serialize};

/// Every layered setting. The doc comment of each field is its `--help` text
/// and ends with its default.
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Address to listen on: HOST:PORT, [V6]:PORT or unix:PATH; repeat for several [default: 127.0.0.1:8000]
    // `[V6]` is help text for `--help`, not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(short, long, value_name = "ADDR")]
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    pub bind: Option<Vec<String>>,

    /// Worker processes; 0 means one per CPU this process may use [default: 0]
    #[arg(short, long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<u64>,

    /// Blocking-pool threads per worker; 0 means min(32, CPUs + 4) [default: 0]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<u64>,

    /// Open connections per worker; at the limit it stops accepting [default: 1000]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_connections: Option<u64>,

    /// Listen queue length of each bound socket [default: 2048]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u64>,

    /// Seconds an idle keep-alive connection stays open; 0 turns keep-alive off [default: 5]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<f64>,

    /// Seconds a client may take to send a request head [default: 10]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_timeout: Option<f64>,

    /// Seconds workers get to finish in-flight requests on a graceful stop [default: 30]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graceful_timeout: Option<f64>,

    /// Seconds without a heartbeat after which a worker counts as hung, at least 2; 0 turns it off [default: 30]
    #[arg(short, long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,

    /// Seconds a worker may take to finish its app's startup before it is killed; 0 turns it off [default: 30]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_timeout: Option<f64>,

    /// Seconds between SIGTERM and the drain, while /readyz answers 503 and requests are still served [default: 0]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_delay: Option<f64>,

    /// Requests after which a worker is replaced; 0 turns recycling off [default: 0]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u64>,

    /// Up to this many more requests, chosen at random per worker, so workers do not recycle together [default: 0]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests_jitter: Option<u64>,

    /// RSS in MiB above which a worker is replaced; 0 turns it off [default: 0]
    #[arg(long, value_name = "MIB")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_worker_memory: Option<u64>,

    /// File to write the supervisor's pid to once it is ready; removed at exit [default: none]
    #[arg(short, long, value_name = "PATH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,

    /// User (name or id) the workers switch to after the fork [default: unchanged]
    #[arg(short, long, value_name = "USER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,

    /// Group (name or id) the workers switch to after the fork [default: the user's group]
    #[arg(short, long, value_name = "GROUP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,

    /// File mode creation mask of the workers and unix sockets, in octal [default: unchanged]
    #[arg(short = 'm', long, value_name = "MASK")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub umask: Option<String>,

    /// Longest request line in bytes (method, target, version); 0 means no limit [default: 4094]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_request_line: Option<u64>,

    /// Most header fields in one request [default: 100]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_request_fields: Option<u64>,

    /// Longest header field in bytes (name, colon and value); 0 means no limit [default: 8190]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_request_field_size: Option<u64>,

    /// Peers whose X-Forwarded-* and Forwarded headers are trusted: IPs, CIDRs, or * [default: 127.0.0.1,::1]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    pub forwarded_allow_ips: Option<Vec<String>>,

    /// PROXY protocol on TCP listeners: off, v1, v2 or auto [default: off]
    #[arg(long, value_name = "MODE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<String>,

    /// Peers allowed to send a PROXY header: IPs, CIDRs, or * [default: 127.0.0.1,::1]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Option::is_none"
    )]
    pub proxy_allow_from: Option<Vec<String>>,

    /// The path the app is mounted at behind a proxy, given to the app as in ASGI [default: ""]
    #[arg(long, value_name = "PATH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_path: Option<String>,

    /// Requests in flight per worker beyond which requests get 503 at once; 0 turns the limit off [default: 0]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_concurrency: Option<u64>,

    /// Seconds a handler has to produce a response head before it is cancelled and the client gets 504; 0 turns it off [default: 0]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<f64>,

    /// Seconds of WebSocket silence after which the server pings; 0 turns pings off [default: 20]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_ping_interval: Option<f64>,

    /// Seconds a pinged WebSocket client has to answer before it is closed [default: 20]
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_ping_timeout: Option<f64>,

    /// Largest WebSocket message in bytes; a bigger one closes the socket with 1009 [default: 16777216]
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_max_size: Option<u64>,

    /// Incoming WebSocket messages buffered per connection before reading pauses [default: 32]
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_max_queue: Option<u64>,

    /// Error log file, reopened on SIGUSR1; - is stderr [default: -]
    #[arg(long, value_name = "PATH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_logfile: Option<String>,

    /// Access log file, off unless set; - is stdout; reopened on SIGUSR1 [default: off]
    #[arg(long, value_name = "PATH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_logfile: Option<String>,

    /// Access log line, in Gunicorn's %(atom)s format [default: Gunicorn's]
    #[arg(long, value_name = "FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_logformat: Option<String>,

    /// Log line format, text or json, for the error and access logs [default: text]
    #[arg(long, value_name = "FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,

    /// Log level: debug, info, warning, error or critical [default: info]
    #[arg(long, value_name = "LEVEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,

    /// Path of the liveness endpoint; empty turns it off [default: /healthz]
    #[arg(long, value_name = "PATH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_path: Option<String>,

    /// Path of the readiness endpoint; empty turns it off [default: /readyz]
    #[arg(long, value_name = "PATH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_path: Option<String>,

    /// Path of the Prometheus metrics endpoint; empty turns metrics off [default: /metrics]
    #[arg(long, value_name = "PATH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_path: Option<String>,

    /// Serve metrics, /healthz and /readyz on this address only (HOST:PORT or unix:PATH), not on the app's [default: none]
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_bind: Option<String>,
}

/// How an environment variable's text becomes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A list, comma-separated in the environment.
    List,
    /// A whole number.
    Int,
    /// Seconds, whole or fractional.
    Secs,
    /// Text.
    Text,
}

/// Every setting key with its kind, in the order `--print-config` shows them.
pub(crate) const KEYS: &[(&str, Kind)] = &[
    ("bind", Kind::List),
    ("workers", Kind::Int),
    ("threads", Kind::Int),
    ("worker_connections", Kind::Int),
    ("backlog", Kind::Int),
    ("keep_alive", Kind::Secs),
    ("header_timeout", Kind::Secs),
    ("graceful_timeout", Kind::Secs),
    ("timeout", Kind::Secs),
    ("boot_timeout", Kind::Secs),
    ("shutdown_delay", Kind::Secs),
    ("max_requests", Kind::Int),
    ("max_requests_jitter", Kind::Int),
    ("max_worker_memory", Kind::Int),
    ("pid", Kind::Text),
    ("user", Kind::Text),
    ("group", Kind::Text),
    ("umask", Kind::Text),
    ("limit_request_line", Kind::Int),
    ("limit_request_fields", Kind::Int),
    ("limit_request_field_size", Kind::Int),
    ("forwarded_allow_ips", Kind::List),
    ("proxy_protocol", Kind::Text),
    ("proxy_allow_from", Kind::List),
    ("root_path", Kind::Text),
    ("limit_concurrency", Kind::Int),
    ("request_timeout", Kind::Secs),
    ("ws_ping_interval", Kind::Secs),
    ("ws_ping_timeout", Kind::Secs),
    ("ws_max_size", Kind::Int),
    ("ws_max_queue", Kind::Int),
    ("error_logfile", Kind::Text),
    ("access_logfile", Kind::Text),
    ("access_logformat", Kind::Text),
    ("log_format", Kind::Text),
    ("log_level", Kind::Text),
    ("health_path", Kind::Text),
    ("ready_path", Kind::Text),
    ("metrics_path", Kind::Text),
    ("metrics_bind", Kind::Text),
];

/// Accepts `bind = "ADDR"` as well as `bind = ["ADDR", ...]`.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Some(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::Format;

    #[test]
    fn every_key_is_a_field() {
        for (key, kind) in KEYS {
            let value = match kind {
                Kind::List => "[\"x\"]",
                Kind::Int => "1",
                Kind::Secs => "1.5",
                Kind::Text => "\"x\"",
            };
            let toml = format!("{key} = {value}");
            let parsed: Result<Options, _> =
                figment::Figment::from(figment::providers::Toml::string(&toml)).extract();
            assert!(parsed.is_ok(), "{key}: {parsed:?}");
        }
    }

    #[test]
    fn every_field_is_a_key() {
        // A fully set Options serializes every field; each must be in KEYS.
        let full = Options {
            bind: Some(vec![]),
            workers: Some(0),
            threads: Some(0),
            worker_connections: Some(0),
            backlog: Some(0),
            keep_alive: Some(0.0),
            header_timeout: Some(0.0),
            graceful_timeout: Some(0.0),
            timeout: Some(0.0),
            boot_timeout: Some(0.0),
            shutdown_delay: Some(0.0),
            max_requests: Some(0),
            max_requests_jitter: Some(0),
            max_worker_memory: Some(0),
            pid: Some(String::new()),
            user: Some(String::new()),
            group: Some(String::new()),
            umask: Some(String::new()),
            limit_request_line: Some(0),
            limit_request_fields: Some(0),
            limit_request_field_size: Some(0),
            forwarded_allow_ips: Some(vec![]),
            proxy_protocol: Some(String::new()),
            proxy_allow_from: Some(vec![]),
            root_path: Some(String::new()),
            limit_concurrency: Some(0),
            request_timeout: Some(0.0),
            ws_ping_interval: Some(0.0),
            ws_ping_timeout: Some(0.0),
            ws_max_size: Some(0),
            ws_max_queue: Some(0),
            error_logfile: Some(String::new()),
            access_logfile: Some(String::new()),
            access_logformat: Some(String::new()),
            log_format: Some(String::new()),
            log_level: Some(String::new()),
            health_path: Some(String::new()),
            ready_path: Some(String::new()),
            metrics_path: Some(String::new()),
            metrics_bind: Some(String::new()),
        };
        let dict = figment::value::Value::serialize(&full).expect("serialize");
        let dict = dict.into_dict().expect("dict");
        assert_eq!(dict.len(), KEYS.len());
        for key in dict.keys() {
            assert!(KEYS.iter().any(|(k, _)| k == key), "{key} missing in KEYS");
        }
    }
}
