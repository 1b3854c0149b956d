//! The error log: one line per event, Gunicorn-like, each naming the
//! process's pid and role, on stderr or in `--error-logfile`.
//!
//! `2026-11-23T01:34:09.123456Z [1234] [INFO] [worker 0] worker 0 ready`
//!
//! The file is opened in append mode and each line is written with one
//! `write`, so the supervisor's and the workers' lines never interleave
//! within a line. On SIGUSR1 every process reopens it (for logrotate).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use ferricorn_config::LogLevel;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The slot of this worker process; `usize::MAX` in the supervisor.
static WORKER: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The open log file and its path; `None` writes to stderr.
static FILE: Mutex<Option<(PathBuf, File)>> = Mutex::new(None);
/// The open access log file and its path; `None` writes to stdout.
static ACCESS: Mutex<Option<(PathBuf, File)>> = Mutex::new(None);
/// Whether error log lines are JSON objects.
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Opens the error log file, if one is set; before [`init`].
pub(crate) fn open_file(path: Option<&Path>) -> io::Result<()> {
    let file = path
        .map(|p| open(p).map(|f| (p.to_path_buf(), f)))
        .transpose()?;
    *FILE.lock().unwrap_or_else(|e| e.into_inner()) = file;
    Ok(())
}

/// Opens the access log file; `-` means stdout.
pub(crate) fn open_access(path: &Path) -> io::Result<()> {
    let file = if path == Path::new("-") {
        None
    } else {
        Some((path.to_path_buf(), open(path)?))
    };
    *ACCESS.lock().unwrap_or_else(|e| e.into_inner()) = file;
    Ok(())
}

/// Writes whole access log lines (each ends with a newline) in one `write`.
pub(crate) fn access(line: &str) {
    let mut guard = ACCESS.lock().unwrap_or_else(|e| e.into_inner());
    let _ = match guard.as_mut() {
        Some((_, file)) => file.write_all(line.as_bytes()),
        None => io::stdout().write_all(line.as_bytes()),
    };
}

/// Reopens the log files at their paths (after logrotate moved them).
pub(crate) fn reopen() {
    for lock in [&FILE, &ACCESS] {
        let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((path, file)) = guard.as_mut() {
            match open(path) {
                Ok(new) => *file = new,
                Err(e) => {
                    let message = format!("ferricorn: cannot reopen {}: {e}\n", path.display());
                    let _ = io::stderr().write_all(message.as_bytes());
                }
            }
        }
    }
}

/// Where each log line goes.
struct Output;

impl<'a> MakeWriter<'a> for Output {
    type Writer = Output;

    fn make_writer(&'a self) -> Output {
        Output
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut guard = FILE.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some((_, file)) => file.write_all(buf),
            None => io::stderr().write_all(buf),
        }
        .map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Installs the global logger. Runs once, in the supervisor, before any fork.
pub(crate) fn init(level: LogLevel, json: bool) {
    JSON.store(json, Relaxed);
    let filter = match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warning => LevelFilter::WARN,
        LogLevel::Error | LogLevel::Critical => LevelFilter::ERROR,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(filter)
        .with_writer(Output)
        .with_ansi(false)
        .event_format(Format)
        .try_init();
}

/// Marks this process as the worker in `slot`; called after the fork.
pub(crate) fn set_worker(slot: usize) {
    WORKER.store(slot, Relaxed);
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
        if JSON.load(Relaxed) {
            return format_json(ctx, w, event);
        }
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
            slot => write!(w, "[worker {slot}] ")?,
        }
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// One JSON object per line: time, level, pid, worker (null in the
/// supervisor), message.
fn format_json<S, N>(
    ctx: &FmtContext<'_, S, N>,
    mut w: Writer<'_>,
    event: &Event<'_>,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let mut time = String::new();
    SystemTime.format_time(&mut Writer::new(&mut time))?;
    let mut message = String::new();
    ctx.field_format()
        .format_fields(Writer::new(&mut message), event)?;
    let level = event.metadata().level().as_str().to_ascii_lowercase();
    let worker = match WORKER.load(Relaxed) {
        usize::MAX => "null".to_owned(),
        slot => slot.to_string(),
    };
    writeln!(
        w,
        "{{\"time\":{},\"level\":{},\"pid\":{},\"worker\":{},\"message\":{}}}",
        json_string(time.trim()),
        json_string(&level),
        std::process::id(),
        worker,
        json_string(&message)
    )
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    ferricorn_worker::access::push_json(&mut out, s);
    out
}
