//! The error log: one line per event on stderr, Gunicorn-like, each naming
//! the process's pid and role.
//!
//! `2026-11-23T01:34:09.123456Z [1234] [INFO] [worker 0] worker 0 ready`

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use ferricorn_config::LogLevel;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The worker index of this process; `usize::MAX` in the supervisor.
static WORKER: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Installs the global logger. Runs once, in the supervisor, before any fork.
pub(crate) fn init(level: LogLevel) {
    let filter = match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warning => LevelFilter::WARN,
        LogLevel::Error | LogLevel::Critical => LevelFilter::ERROR,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(Format)
        .try_init();
}

/// Marks this process as the worker in slot `index`; called after the fork.
pub(crate) fn set_worker(index: usize) {
    WORKER.store(index, Relaxed);
}

struct Format;

impl<S, N> FormatEvent<S, N> for Format
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        SystemTime.format_time(&mut w)?;
        let level = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            Level::DEBUG | Level::TRACE => "DEBUG",
        };
        write!(w, " [{}] [{level}] ", std::process::id())?;
        match WORKER.load(Relaxed) {
            usize::MAX => w.write_str("[supervisor] ")?,
            index => write!(w, "[worker {index}] ")?,
        }
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}
