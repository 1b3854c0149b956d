//! Where access log lines go: gathered as responses finish and written in
//! whole lines, a turn of the event loop at a time.

use std::cell::RefCell;

use ferricorn_config::AccessLogFormat;
use tokio::sync::Notify;

use super::record::Record;
use super::time::Clock;

/// Where access log lines go, and in what format.
///
/// Lines are gathered as responses finish and written together by a task
/// of their own (`flushing`), which runs once the worker's other
/// ready tasks have: one `write(2)` for all the lines of a turn of the
/// event loop instead of one per line. Each write holds whole lines and at
/// most `PIPE_BUF` bytes (unless one line is longer), so that on a pipe
/// (`--access-logfile -` under Docker) the lines of several workers never
/// interleave within a line. A worker flushes what it holds before it exits;
/// a worker killed outright loses at most the lines of its last turn.
#[derive(Debug)]
pub(crate) struct Sink {
    /// The format.
    pub format: AccessLogFormat,
    /// JSON lines instead (`--log-format json`).
    json: bool,
    /// Writes whole lines, in one `write(2)`.
    write: fn(&str),
    /// Lines not yet written.
    pending: RefCell<String>,
    /// The time of day, formatted once a second.
    clock: RefCell<Clock>,
    /// Wakes the flushing task when the first line of a batch arrives.
    ready: Notify,
}

/// The most one write holds (Linux's `PIPE_BUF`): writes up to this size
/// to a pipe are atomic.
const PIPE_BUF: usize = 4096;
/// Lines held at most before they are written there and then.
const PENDING_MAX: usize = 64 * 1024;

impl Sink {
    pub(crate) fn new(format: AccessLogFormat, json: bool, write: fn(&str)) -> Self {
        Self {
            format,
            json,
            write,
            pending: RefCell::new(String::new()),
            clock: RefCell::new(Clock::default()),
            ready: Notify::new(),
        }
    }

    /// Adds `record`'s line, with the `bytes` its response body held.
    pub(crate) fn log(&self, record: &Record, bytes: u64) {
        let format = (&self.format, self.json);
        self.add(|out, clock| record.write(out, format, clock, bytes));
    }

    /// Adds a line to the next batch: `line` writes it (newline included)
    /// with the sink's clock. A large batch is written there and then;
    /// the first line of a batch wakes the flushing task.
    fn add(&self, line: impl FnOnce(&mut String, &mut Clock)) {
        let mut pending = self.pending.borrow_mut();
        let first = pending.is_empty();
        line(&mut pending, &mut self.clock.borrow_mut());
        if pending.len() >= PENDING_MAX {
            drop(pending);
            self.flush();
        } else if first {
            self.ready.notify_one();
        }
    }

    /// Writes every pending line now.
    pub(crate) fn flush(&self) {
        let mut pending = self.pending.borrow_mut();
        for chunk in chunks(&pending, PIPE_BUF) {
            (self.write)(chunk);
        }
        pending.clear();
    }

    /// Writes each batch of lines once the tasks that made it have run.
    pub(crate) async fn flushing(&self) {
        loop {
            self.ready.notified().await;
            self.flush();
        }
    }
}

/// `lines` in pieces of whole lines, each at most `max` bytes unless a
/// single line is longer.
fn chunks(lines: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = lines;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let bytes = rest.as_bytes();
        let end = if bytes.len() <= max {
            bytes.len()
        } else {
            // After the last newline that fits, else after the first one.
            let newline = |b: &u8| *b == b'\n';
            bytes[..max]
                .iter()
                .rposition(newline)
                .or_else(|| bytes.iter().position(newline))
                .map_or(bytes.len(), |i| i + 1)
        };
        // `end` follows a newline or is the end: a char boundary.
        let (chunk, after) = rest.split_at(end);
        rest = after;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_written_in_whole_lines_of_at_most_pipe_buf() {
        let line = |i: usize| format!("line {i} {}\n", "x".repeat(90));
        let lines: String = (0..200).map(line).collect();
        let parts: Vec<&str> = chunks(&lines, PIPE_BUF).collect();
        assert!(parts.len() > 1);
        assert_eq!(parts.concat(), lines);
        for c in &parts {
            assert!(c.len() <= PIPE_BUF && c.ends_with('\n'), "{}", c.len());
        }
        // A line longer than the limit goes alone, whole; then the rest.
        let long = format!("{}\nshort\n", "é".repeat(PIPE_BUF));
        let pieces: Vec<&str> = chunks(&long, PIPE_BUF).collect();
        assert_eq!(pieces, [&long[..long.len() - 6], "short\n"]);
        assert_eq!(chunks("", PIPE_BUF).count(), 0);
    }

    fn push(sink: &Sink, line: &str) {
        sink.add(|out, _| out.push_str(line));
    }

    thread_local! {
        static WRITTEN: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    fn collect(lines: &str) {
        WRITTEN.with_borrow_mut(|w| w.push(lines.to_owned()));
    }

    #[test]
    fn a_turn_of_lines_is_one_write_after_the_tasks_that_made_them() {
        let format = AccessLogFormat::default();
        let sink: &'static Sink = Box::leak(Box::new(Sink::new(format, false, collect)));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            tokio::task::spawn_local(sink.flushing());
            let tasks: Vec<_> = (0..3)
                .map(|i| tokio::task::spawn_local(async move { push(sink, &format!("{i}\n")) }))
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
            tokio::task::yield_now().await;
            // Woken by the first line, the flushing task ran after the
            // other two tasks had added theirs.
            assert_eq!(WRITTEN.with_borrow(Clone::clone), ["0\n1\n2\n"]);
            push(sink, "3\n");
            assert_eq!(WRITTEN.with_borrow(Vec::len), 1, "not written by the push");
            tokio::task::yield_now().await;
            assert_eq!(WRITTEN.with_borrow(|w| w[1].clone()), "3\n");
            // What is still pending when the worker ends is written by `flush`.
            push(sink, "4\n");
            sink.flush();
            assert_eq!(WRITTEN.with_borrow(|w| w[2].clone()), "4\n");
            sink.flush();
            assert_eq!(
                WRITTEN.with_borrow(Vec::len),
                3,
                "nothing pending, nothing written"
            );
        });
    }
}
