//! Every environment variable ferricorn reads, one documented constant each.
//!
//! Besides these, each setting has its own `FERRICORN_<NAME>` ([`PREFIX`]
//! and the setting's key in upper case). Within the environment, the names
//! other servers use rank below [`GUNICORN_CMD_ARGS`], which ranks below the
//! `FERRICORN_*` names; among the others, a later name in a setting's list
//! (see the settings table) wins over an earlier one.

/// Prefix of ferricorn's own name for each setting: `FERRICORN_WORKERS`.
pub const PREFIX: &str = "FERRICORN_";
/// The TOML file to read (as `-c/--config`).
pub const CONFIG: &str = "FERRICORN_CONFIG";
/// Gunicorn's extra command-line arguments, read with the same flags as the
/// command line.
pub const GUNICORN_CMD_ARGS: &str = "GUNICORN_CMD_ARGS";
/// The port to serve on every IPv4 interface (Heroku, Cloud Run, Render):
/// `bind` = `0.0.0.0:$PORT`.
pub const PORT: &str = "PORT";
/// Uvicorn's host; with [`UVICORN_PORT`], `bind` = `HOST:PORT` (each
/// defaulting as Uvicorn does, to 127.0.0.1 and 8000).
pub const UVICORN_HOST: &str = "UVICORN_HOST";
/// The host of the address to bind, as `--host`; with the port names it
/// makes one address (see the README's settings table).
pub const HOST: &str = "FERRICORN_HOST";
/// The port of the address to bind, as `--port`.
pub const PORT_OWN: &str = "FERRICORN_PORT";
/// Uvicorn's port; see [`UVICORN_HOST`].
pub const UVICORN_PORT: &str = "UVICORN_PORT";
/// The worker count many platforms set (Heroku, the uvicorn-gunicorn images).
pub const WEB_CONCURRENCY: &str = "WEB_CONCURRENCY";
/// Uvicorn's worker count.
pub const UVICORN_WORKERS: &str = "UVICORN_WORKERS";
/// Gunicorn's worker count.
pub const GUNICORN_WORKERS: &str = "GUNICORN_WORKERS";
/// channels_redis' per-channel capacity, as Django Channels deployments
/// set it.
pub const CHANNEL_LAYER_CAPACITY: &str = "CHANNEL_LAYER_CAPACITY";
/// Uvicorn's log level.
pub const UVICORN_LOG_LEVEL: &str = "UVICORN_LOG_LEVEL";
/// Gunicorn's log level.
pub const GUNICORN_LOG_LEVEL: &str = "GUNICORN_LOG_LEVEL";
/// The peers trusted to send proxy headers, as Gunicorn and Uvicorn read it.
pub const FORWARDED_ALLOW_IPS: &str = "FORWARDED_ALLOW_IPS";
/// Uvicorn's TLS certificate chain.
pub const UVICORN_SSL_CERTFILE: &str = "UVICORN_SSL_CERTFILE";
/// Uvicorn's TLS private key.
pub const UVICORN_SSL_KEYFILE: &str = "UVICORN_SSL_KEYFILE";
/// Uvicorn's CA certificates for client certificates.
pub const UVICORN_SSL_CA_CERTS: &str = "UVICORN_SSL_CA_CERTS";
/// Uvicorn's client certificate requirement.
pub const UVICORN_SSL_CERT_REQS: &str = "UVICORN_SSL_CERT_REQS";
