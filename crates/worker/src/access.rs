//! The access log: one line per request, written when hyper is done with the
//! response body, so the bytes and the duration are those of the whole
//! response, streamed or not.
//!
//! `--access-logformat` takes Gunicorn's atoms, parsed once at startup:
//! `h` client, `l` `-`, `u` user (`-`), `t` time `[23/Nov/2026:02:52:09 +0000]`,
//! `r` request line, `m` method, `U` path, `q` query, `H` protocol, `s`
//! status, `B` bytes, `b` bytes or `-`, `f` referer, `a` user agent, `T`
//! seconds, `M` milliseconds, `D` microseconds, `L` decimal seconds, `p` pid,
//! `{name}i` a request header, `{name}o` a response header, each written as
//! `%(atom)s`. With `--log-format json` each line is a JSON object instead.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use ferricorn_shm::metrics::Counters;
use http::header::{HeaderName, HeaderValue, REFERER, USER_AGENT};
use http::{HeaderMap, Method, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;

use crate::deadline::Deadline;

/// Gunicorn's default access log format.
pub const DEFAULT_FORMAT: &str = r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

/// The request id header, kept from the client or generated.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// One piece of a parsed format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    Text(String),
    Client,
    Dash,
    Time,
    RequestLine,
    Method,
    Path,
    Query,
    Protocol,
    Status,
    Bytes,
    BytesOrDash,
    Referer,
    UserAgent,
    Seconds,
    Millis,
    Micros,
    DecimalSeconds,
    Pid,
    RequestHeader(HeaderName),
    ResponseHeader(HeaderName),
}

/// How lines are written.
#[derive(Debug, Clone)]
pub struct Format {
    atoms: Vec<Atom>,
    json: bool,
    /// The request headers the atoms name, kept until the line is written.
    request_headers: Vec<HeaderName>,
    /// The response headers the atoms name.
    response_headers: Vec<HeaderName>,
}

impl Format {
    /// Parses a Gunicorn format; unknown atoms are an error naming them.
    pub fn parse(format: &str, json: bool) -> Result<Self, String> {
        let mut atoms = Vec::new();
        let mut text = String::new();
        let mut rest = format;
        while let Some(at) = rest.find('%') {
            text.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(inner) = after.strip_prefix('(') {
                let end = inner
                    .find(")s")
                    .ok_or_else(|| format!("unclosed atom in `{format}`"))?;
                let name = &inner[..end];
                if !text.is_empty() {
                    atoms.push(Atom::Text(std::mem::take(&mut text)));
                }
                atoms.push(atom(name).ok_or_else(|| format!("unknown atom `%({name})s`"))?);
                rest = &inner[end + 2..];
            } else {
                // `%%` is one `%`, as Python's `%` formatting (Gunicorn's)
                // writes it; a lone `%` is kept as it is.
                text.push('%');
                rest = after.strip_prefix('%').unwrap_or(after);
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            atoms.push(Atom::Text(text));
        }
        let named = |pick: fn(&Atom) -> Option<&HeaderName>| {
            atoms.iter().filter_map(pick).cloned().collect::<Vec<_>>()
        };
        let request_headers = named(|a| match a {
            Atom::RequestHeader(n) => Some(n),
            _ => None,
        });
        let response_headers = named(|a| match a {
            Atom::ResponseHeader(n) => Some(n),
            _ => None,
        });
        Ok(Self {
            atoms,
            json,
            request_headers,
            response_headers,
        })
    }
}

fn atom(name: &str) -> Option<Atom> {
    let header = |n: &str| HeaderName::from_bytes(n.as_bytes()).ok();
    if let Some(n) = name.strip_prefix('{').and_then(|n| n.strip_suffix("}i")) {
        return header(n).map(Atom::RequestHeader);
    }
    if let Some(n) = name.strip_prefix('{').and_then(|n| n.strip_suffix("}o")) {
        return header(n).map(Atom::ResponseHeader);
    }
    Some(match name {
        "h" => Atom::Client,
        "l" | "u" => Atom::Dash,
        "t" => Atom::Time,
        "r" => Atom::RequestLine,
        "m" => Atom::Method,
        "U" => Atom::Path,
        "q" => Atom::Query,
        "H" => Atom::Protocol,
        "s" => Atom::Status,
        "B" => Atom::Bytes,
        "b" => Atom::BytesOrDash,
        "f" => Atom::Referer,
        "a" => Atom::UserAgent,
        "T" => Atom::Seconds,
        "M" => Atom::Millis,
        "D" => Atom::Micros,
        "L" => Atom::DecimalSeconds,
        "p" => Atom::Pid,
        _ => return None,
    })
}

/// What is kept of a request until its response is done.
#[derive(Debug)]
pub(crate) struct Record {
    started: Instant,
    method: Method,
    /// Shares the request's bytes: no copy of the target.
    uri: Uri,
    version: Version,
    client: Option<SocketAddr>,
    request_id: HeaderValue,
    user_agent: Option<HeaderValue>,
    referer: Option<HeaderValue>,
    headers: Vec<(HeaderName, Option<HeaderValue>)>,
    status: StatusCode,
    response_headers: Vec<(HeaderName, Option<HeaderValue>)>,
    worker: usize,
}

impl Record {
    /// Captures what the format needs from the request.
    pub(crate) fn new<B>(
        req: &http::Request<B>,
        client: Option<SocketAddr>,
        request_id: HeaderValue,
        format: &Format,
        worker: usize,
        started: Instant,
    ) -> Self {
        let h = req.headers();
        Self {
            started,
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            client,
            request_id,
            user_agent: h.get(USER_AGENT).cloned(),
            referer: h.get(REFERER).cloned(),
            headers: format
                .request_headers
                .iter()
                .map(|n| (n.clone(), h.get(n).cloned()))
                .collect(),
            status: StatusCode::OK,
            response_headers: Vec::new(),
            worker,
        }
    }

    /// Notes the response head: its status and the headers `format` writes.
    pub(crate) fn respond(&mut self, status: StatusCode, headers: &HeaderMap, format: &Format) {
        self.status = status;
        self.response_headers = format
            .response_headers
            .iter()
            .map(|n| (n.clone(), headers.get(n).cloned()))
            .collect();
    }

    /// The request target as the request line had it.
    fn target(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    /// Writes the line, newline included, to `out`.
    fn write(&self, out: &mut String, format: &Format, clock: &mut Clock, bytes: u64) {
        let elapsed = self.started.elapsed();
        let now = SystemTime::now();
        if format.json {
            return self.json(out, clock, now, bytes, elapsed);
        }
        fn text(v: Option<&HeaderValue>) -> &str {
            v.and_then(|v| v.to_str().ok()).unwrap_or("-")
        }
        fn find<'a>(
            list: &'a [(HeaderName, Option<HeaderValue>)],
            n: &HeaderName,
        ) -> Option<&'a HeaderValue> {
            list.iter()
                .find(|(k, _)| k == n)
                .and_then(|(_, v)| v.as_ref())
        }
        for atom in &format.atoms {
            match atom {
                Atom::Text(t) => out.push_str(t),
                Atom::Client => match self.client {
                    Some(c) => push_ip(out, c.ip()),
                    None => out.push('-'),
                },
                Atom::Dash => out.push('-'),
                Atom::Time => {
                    out.push('[');
                    out.push_str(clock.at(now).clf);
                    out.push(']');
                }
                Atom::RequestLine => {
                    out.push_str(self.method.as_str());
                    out.push(' ');
                    out.push_str(self.target());
                    out.push(' ');
                    out.push_str(protocol(self.version));
                }
                Atom::Method => out.push_str(self.method.as_str()),
                Atom::Path => out.push_str(self.uri.path()),
                Atom::Query => out.push_str(self.uri.query().unwrap_or("")),
                Atom::Protocol => out.push_str(protocol(self.version)),
                Atom::Status => push_int(out, u64::from(self.status.as_u16())),
                Atom::BytesOrDash if bytes == 0 => out.push('-'),
                Atom::Bytes | Atom::BytesOrDash => push_int(out, bytes),
                Atom::Referer => out.push_str(text(self.referer.as_ref())),
                Atom::UserAgent => out.push_str(text(self.user_agent.as_ref())),
                Atom::Seconds => push_int(out, elapsed.as_secs()),
                Atom::Millis => push_int(out, elapsed.as_millis() as u64),
                Atom::Micros => push_int(out, elapsed.as_micros() as u64),
                Atom::DecimalSeconds => push_seconds(out, elapsed),
                Atom::Pid => push_int(out, u64::from(std::process::id())),
                Atom::RequestHeader(n) => out.push_str(text(find(&self.headers, n))),
                Atom::ResponseHeader(n) => out.push_str(text(find(&self.response_headers, n))),
            }
        }
        out.push('\n');
    }

    fn json(
        &self,
        out: &mut String,
        clock: &mut Clock,
        now: SystemTime,
        bytes: u64,
        elapsed: Duration,
    ) {
        let header = |out: &mut String, v: &Option<HeaderValue>| match v
            .as_ref()
            .and_then(|v| v.to_str().ok())
        {
            Some(v) => push_json(out, v),
            None => out.push_str("null"),
        };
        let (path, query) = (self.uri.path(), self.uri.query().unwrap_or(""));
        let at = clock.at(now);
        out.push_str("{\"time\":\"");
        out.push_str(at.iso);
        out.push('.');
        push_padded(out, u64::from(at.millis), 3);
        out.push_str("Z\",\"client\":");
        match self.client {
            Some(c) => {
                out.push('"');
                push_ip(out, c.ip());
                out.push('"');
            }
            None => out.push_str("null"),
        }
        out.push_str(",\"method\":");
        push_json(out, self.method.as_str());
        out.push_str(",\"path\":");
        push_json(out, path);
        out.push_str(",\"query\":");
        push_json(out, query);
        out.push_str(",\"status\":");
        push_int(out, u64::from(self.status.as_u16()));
        out.push_str(",\"bytes\":");
        push_int(out, bytes);
        out.push_str(",\"duration\":");
        push_seconds(out, elapsed);
        out.push_str(",\"worker\":");
        push_int(out, self.worker as u64);
        out.push_str(",\"request_id\":");
        push_json(out, self.request_id.to_str().unwrap_or(""));
        out.push_str(",\"user_agent\":");
        header(out, &self.user_agent);
        out.push_str("}\n");
    }
}

/// The protocol as a request line writes it.
fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Writes an address as `Display` does, IPv4 without the formatting
/// machinery.
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_int(out, u64::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Writes `n` in decimal.
fn push_int(out: &mut String, n: u64) {
    push_padded(out, n, 1);
}

/// Writes `n` in decimal, with leading zeros to at least `width` digits.
fn push_padded(out: &mut String, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    while n > 0 || digits.len() - at < width {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// Writes a duration as seconds with six decimals (to the nearest
/// microsecond).
fn push_seconds(out: &mut String, d: Duration) {
    let micros = (d.as_nanos() + 500) / 1000;
    push_int(out, (micros / 1_000_000) as u64);
    out.push('.');
    push_padded(out, (micros % 1_000_000) as u64, 6);
}

/// The time as the access log writes it, formatted once per second.
#[derive(Debug, Default)]
struct Clock {
    second: Option<u64>,
    /// `23/Nov/2026:02:52:09 +0000`
    clf: String,
    /// `2026-11-23T02:52:09`
    iso: String,
}

/// One reading of a [`Clock`].
struct At<'a> {
    clf: &'a str,
    iso: &'a str,
    millis: u32,
}

impl Clock {
    fn at(&mut self, t: SystemTime) -> At<'_> {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        if self.second != Some(d.as_secs()) {
            self.second = Some(d.as_secs());
            self.clf = clf_time(t);
            self.iso = iso_second(t);
        }
        At {
            clf: &self.clf,
            iso: &self.iso,
            millis: d.subsec_millis(),
        }
    }
}

/// A response body that counts its bytes and writes the access log line
/// when hyper is done with it (finished or dropped).
#[derive(Debug)]
pub(crate) struct Logged<B> {
    body: B,
    log: Option<(Box<Record>, &'static Sink)>,
    bytes: u64,
    observe: Option<Observe>,
    /// The connection's head deadline and this request's head number: the
    /// wait for the next head begins when this body is done.
    deadline: Option<(Arc<Deadline>, u64)>,
}

/// A request to count in the metrics when its response is done.
#[derive(Debug)]
pub(crate) struct Observe {
    pub counters: &'static Counters,
    /// Index in [`METHODS`](ferricorn_shm::metrics::METHODS).
    pub method: usize,
    pub status: u16,
    pub started: Instant,
}

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
pub struct Sink {
    /// The format.
    pub format: Format,
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
    pub(crate) fn new(format: Format, write: fn(&str)) -> Self {
        Self {
            format,
            write,
            pending: RefCell::new(String::new()),
            clock: RefCell::new(Clock::default()),
            ready: Notify::new(),
        }
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

impl<B> Logged<B> {
    pub(crate) fn new(
        body: B,
        log: Option<(Box<Record>, &'static Sink)>,
        observe: Option<Observe>,
        deadline: Option<(Arc<Deadline>, u64)>,
    ) -> Self {
        Self {
            body,
            log,
            bytes: 0,
            observe,
            deadline,
        }
    }
}

impl<B> Drop for Logged<B> {
    fn drop(&mut self) {
        if let Some((deadline, head)) = self.deadline.take() {
            deadline.start_after(head);
        }
        if let Some(o) = self.observe.take() {
            o.counters.observe(o.method, o.status, o.started.elapsed());
        }
        if let Some((record, sink)) = self.log.take() {
            let bytes = self.bytes;
            sink.add(|out, clock| record.write(out, &sink.format, clock, bytes));
        }
    }
}

impl<B: Body + Unpin> Body for Logged<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.bytes += data.remaining() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Made ids are cut from buffers of this many bytes: one allocation per
/// 128 ids instead of one per id.
const ID_BUFFER: usize = 32 * 128;

/// Request ids: the client's `X-Request-Id` if it is a sane token, else one
/// made here, 32 hex digits. Each worker has its own: the first 16 digits
/// come from its seed (the clock at its start, and its pid), the last 16
/// from a count mixed with the seed.
#[derive(Debug)]
pub(crate) struct Ids {
    seed: u64,
    first: [u8; 16],
    count: Cell<u64>,
    /// Where made ids are written; each is split off as a shared `Bytes`.
    buffer: RefCell<BytesMut>,
}

impl Ids {
    pub(crate) fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = nanos ^ (u64::from(std::process::id()) << 40);
        let mut first = [0; 16];
        hex(mix(seed), &mut first);
        Self {
            seed,
            first,
            count: Cell::new(0),
            buffer: RefCell::new(BytesMut::new()),
        }
    }

    /// The request's id: `given` if it is a sane token, else a new one.
    pub(crate) fn id(&self, given: Option<HeaderValue>) -> HeaderValue {
        if let Some(id) = given {
            let b = id.as_bytes();
            if !b.is_empty() && b.len() <= 200 && b.iter().all(u8::is_ascii_graphic) {
                return id;
            }
        }
        let n = self.count.get();
        self.count.set(n + 1);
        let mut last = [0u8; 16];
        hex(mix(n ^ self.seed.rotate_left(17)), &mut last);
        let mut buffer = self.buffer.borrow_mut();
        if buffer.capacity() < 32 {
            *buffer = BytesMut::with_capacity(ID_BUFFER);
        }
        buffer.extend_from_slice(&self.first);
        buffer.extend_from_slice(&last);
        HeaderValue::from_maybe_shared(buffer.split().freeze())
            .unwrap_or(HeaderValue::from_static("-"))
    }
}

/// splitmix64's finalizer: spreads a count (or a seed) over all 64 bits.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `x` as 16 lowercase hex digits, two at a time.
fn hex(x: u64, out: &mut [u8; 16]) {
    const PAIRS: [[u8; 2]; 256] = {
        let digits = b"0123456789abcdef";
        let mut pairs = [[0; 2]; 256];
        let mut i = 0;
        while i < 256 {
            pairs[i] = [digits[i >> 4], digits[i & 0xf]];
            i += 1;
        }
        pairs
    };
    for (pair, byte) in out.chunks_exact_mut(2).zip(x.to_be_bytes()) {
        pair.copy_from_slice(&PAIRS[usize::from(byte)]);
    }
}

/// Writes `s` as a JSON string literal (both logs' JSON lines use it).
pub fn push_json(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Year, month, day, hour, minute, second (UTC) of a time.
fn civil(t: SystemTime) -> (i64, u32, u32, u64, u64, u64) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `23/Nov/2026:02:52:09 +0000`
fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s) = civil(t);
    format!(
        "{d:02}/{}/{y}:{h:02}:{mi:02}:{s:02} +0000",
        MONTHS[(mo - 1) as usize]
    )
}

/// `2026-11-23T02:52:09`
fn iso_second(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
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

    /// The line `format` writes for `req`, answered with `status` and
    /// `headers` and `bytes` of body; request id `id`, worker 3.
    fn line_for(
        req: &http::Request<()>,
        client: Option<&str>,
        id: &'static str,
        format: &Format,
        (status, headers, bytes): (StatusCode, &HeaderMap, u64),
    ) -> String {
        let client = client.map(|c| c.parse().expect("addr"));
        let id = HeaderValue::from_static(id);
        let mut rec = Record::new(req, client, id, format, 3, Instant::now());
        rec.respond(status, headers, format);
        let mut out = String::new();
        rec.write(&mut out, format, &mut Clock::default(), bytes);
        out
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
        let format = Format::parse(DEFAULT_FORMAT, false).expect("format");
        let sink: &'static Sink = Box::leak(Box::new(Sink::new(format, collect)));
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

    #[test]
    fn gunicorn_formats_parse_and_render() {
        let f = Format::parse(DEFAULT_FORMAT, false).expect("default format");
        let req = http::Request::get("/a/b?x=1")
            .header("user-agent", "curl/8")
            .header("x-trace", "t1")
            .body(())
            .expect("request");
        let none = HeaderMap::new();
        let line = line_for(
            &req,
            Some("203.0.113.9:4000"),
            "id1",
            &f,
            (StatusCode::OK, &none, 13),
        );
        assert!(line.starts_with("203.0.113.9 - - ["), "{line}");
        assert!(
            line.ends_with("] \"GET /a/b?x=1 HTTP/1.1\" 200 13 \"-\" \"curl/8\"\n"),
            "{line}"
        );

        let f = Format::parse(
            "%(m)s %(U)s %(q)s %(H)s %(s)s %(B)s %(b)s %({x-trace}i)s %({x-out}o)s %(p)s",
            false,
        )
        .expect("atoms");
        let mut out = HeaderMap::new();
        out.insert("x-out", "o1".parse().expect("value"));
        let line = line_for(&req, None, "id1", &f, (StatusCode::NOT_FOUND, &out, 0));
        assert_eq!(
            line,
            format!(
                "GET /a/b x=1 HTTP/1.1 404 0 - t1 o1 {}\n",
                std::process::id()
            )
        );
        assert!(Format::parse("%(zz)s", false).is_err());
        // Python's `%%` is a `%`; a lone `%` stays.
        let f = Format::parse("100%% %(s)s 5% %%%(m)s%%", false).expect("percent signs");
        let line = line_for(&req, None, "id1", &f, (StatusCode::OK, &none, 0));
        assert_eq!(line, "100% 200 5% %GET%\n");
    }

    #[test]
    fn json_lines_hold_the_fields() {
        let f = Format::parse(DEFAULT_FORMAT, true).expect("format");
        let req = http::Request::post("/p?q=1")
            .header("user-agent", "say \"hi\"")
            .body(())
            .expect("request");
        let none = HeaderMap::new();
        let line = line_for(&req, None, "abc", &f, (StatusCode::CREATED, &none, 5));
        let want = r#""method":"POST","path":"/p","query":"q=1","status":201,"bytes":5"#;
        assert!(line.contains(want), "{line}");
        let tail = r#""worker":3,"request_id":"abc","user_agent":"say \"hi\""}"#;
        assert!(line.trim_end().ends_with(tail), "{line}");
        assert!(line.contains(r#""client":null"#), "{line}");
    }

    #[test]
    fn dates_are_civil() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_402_329);
        assert_eq!(clf_time(t), "23/Nov/2026:02:52:09 +0000");
        assert_eq!(iso_second(t), "2026-11-23T02:52:09");
        // The clock formats a second once, and tells the milliseconds.
        let mut clock = Clock::default();
        let at = clock.at(t + Duration::from_millis(7));
        assert_eq!(at.clf, clf_time(t));
        assert_eq!((at.iso, at.millis), (iso_second(t).as_str(), 7));
        let later = t + Duration::from_millis(1_020);
        let at = clock.at(later);
        assert_eq!((at.clf, at.millis), ("23/Nov/2026:02:52:10 +0000", 20));
    }

    #[test]
    fn numbers_are_written_as_the_format_needs() {
        let mut out = String::new();
        push_int(&mut out, 0);
        out.push(' ');
        push_int(&mut out, u64::MAX);
        out.push(' ');
        push_padded(&mut out, 7, 3);
        out.push(' ');
        push_seconds(&mut out, Duration::from_nanos(12_345_678_901));
        out.push(' ');
        push_seconds(&mut out, Duration::from_nanos(1_500));
        for ip in ["10.0.255.1", "0.0.0.0", "2001:db8::1", "::ffff:1.2.3.4"] {
            out.push(' ');
            push_ip(&mut out, ip.parse().expect("ip"));
        }
        assert_eq!(
            out,
            "0 18446744073709551615 007 12.345679 0.000002 \
             10.0.255.1 0.0.0.0 2001:db8::1 ::ffff:1.2.3.4"
        );
    }

    #[test]
    fn ipv4_is_written_as_display_writes_it() {
        for octet in 0..=255u8 {
            for ip in [
                std::net::Ipv4Addr::new(octet, 0, 9, 255),
                std::net::Ipv4Addr::new(1, octet, 10, octet),
            ] {
                let mut out = String::new();
                push_ip(&mut out, IpAddr::V4(ip));
                assert_eq!(out, ip.to_string());
            }
        }
    }

    #[test]
    fn request_ids_are_kept_or_made() {
        let ids = Ids::new();
        let given = |v: &'static str| ids.id(Some(HeaderValue::from_static(v)));
        assert_eq!(given("from-client-1"), "from-client-1");
        assert_ne!(given("with space"), "with space");
        assert_ne!(given(""), "");
        // More than one buffer's worth: every id whole, hex, and new.
        let made: Vec<HeaderValue> = (0..300).map(|_| ids.id(None)).collect();
        for id in &made {
            assert_eq!(id.len(), 32);
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit), "{id:?}");
            assert_eq!(id.as_bytes()[..16], made[0].as_bytes()[..16]);
        }
        let unique: std::collections::HashSet<_> = made.iter().collect();
        assert_eq!(unique.len(), made.len());
    }

    #[test]
    fn hex_writes_every_digit_in_order() {
        let mut out = [0; 16];
        hex(0x0123_4567_89ab_cdef, &mut out);
        assert_eq!(&out, b"0123456789abcdef");
        hex(u64::MAX, &mut out);
        assert_eq!(&out, b"ffffffffffffffff");
    }
}
