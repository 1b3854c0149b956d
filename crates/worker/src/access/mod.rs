//! The access log: one line per request, in Gunicorn's
//! `--access-logformat` (parsed with the settings, see
//! [`ferricorn_config::AccessLogFormat`]) or, with `--log-format json`, as a
//! JSON object; written when the response is done (see `http::done`).
//!
//! - `record`: what is kept of a request until then, and its line;
//! - `time`: the time of day as the lines write it, formatted once a second;
//! - `sink`: lines gathered and written a turn of the event loop at a time.

mod record;
mod sink;
mod time;

pub(crate) use record::Record;
pub use record::push_json;
pub(crate) use sink::Sink;
