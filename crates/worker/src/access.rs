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

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use bytes::Buf;
use ferricorn_shm::metrics::Counters;
use http::header::{HeaderName, HeaderValue, REFERER, USER_AGENT};
use http::{HeaderMap, Method, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};

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
}

impl Format {
    /// Parses a Gunicorn format; unknown atoms are an error naming them.
    pub fn parse(format: &str, json: bool) -> Result<Self, String> {
        let mut atoms = Vec::new();
        let mut rest = format;
        while let Some(start) = rest.find("%(") {
            if start > 0 {
                atoms.push(Atom::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find(")s")
                .ok_or_else(|| format!("unclosed atom in `{format}`"))?;
            let name = &after[..end];
            atoms.push(atom(name).ok_or_else(|| format!("unknown atom `%({name})s`"))?);
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            atoms.push(Atom::Text(rest.to_owned()));
        }
        Ok(Self { atoms, json })
    }

    /// The request headers this format needs kept until the line is written.
    fn request_headers(&self) -> impl Iterator<Item = &HeaderName> {
        self.atoms.iter().filter_map(|a| match a {
            Atom::RequestHeader(n) => Some(n),
            _ => None,
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
    target: String,
    path_len: usize,
    version: Version,
    client: Option<SocketAddr>,
    request_id: HeaderValue,
    user_agent: Option<HeaderValue>,
    referer: Option<HeaderValue>,
    headers: Vec<(HeaderName, Option<HeaderValue>)>,
    status: StatusCode,
    response_headers: HeaderMap,
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
        let target = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        Self {
            started,
            method: req.method().clone(),
            path_len: req.uri().path().len(),
            target,
            version: req.version(),
            client,
            request_id,
            user_agent: h.get(USER_AGENT).cloned(),
            referer: h.get(REFERER).cloned(),
            headers: format
                .request_headers()
                .map(|n| (n.clone(), h.get(n).cloned()))
                .collect(),
            status: StatusCode::OK,
            response_headers: HeaderMap::new(),
            worker,
        }
    }

    /// Notes the response head.
    pub(crate) fn respond(&mut self, status: StatusCode, headers: &HeaderMap) {
        self.status = status;
        self.response_headers = headers.clone();
    }

    fn line(&self, format: &Format, bytes: u64) -> String {
        let elapsed = self.started.elapsed();
        if format.json {
            return self.json(bytes, elapsed.as_secs_f64());
        }
        let mut out = String::with_capacity(160);
        let text = |v: &Option<HeaderValue>| {
            v.as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        for atom in &format.atoms {
            let _ = match atom {
                Atom::Text(t) => out.write_str(t),
                Atom::Client => out.write_str(
                    &self
                        .client
                        .map_or_else(|| "-".to_owned(), |c| c.ip().to_string()),
                ),
                Atom::Dash => out.write_str("-"),
                Atom::Time => write!(out, "[{}]", clf_time(SystemTime::now())),
                Atom::RequestLine => {
                    write!(out, "{} {} {:?}", self.method, self.target, self.version)
                }
                Atom::Method => out.write_str(self.method.as_str()),
                Atom::Path => out.write_str(&self.target[..self.path_len.min(self.target.len())]),
                Atom::Query => out.write_str(self.target.split_once('?').map_or("", |(_, q)| q)),
                Atom::Protocol => write!(out, "{:?}", self.version),
                Atom::Status => write!(out, "{}", self.status.as_u16()),
                Atom::Bytes => write!(out, "{bytes}"),
                Atom::BytesOrDash if bytes == 0 => out.write_str("-"),
                Atom::BytesOrDash => write!(out, "{bytes}"),
                Atom::Referer => out.write_str(&text(&self.referer)),
                Atom::UserAgent => out.write_str(&text(&self.user_agent)),
                Atom::Seconds => write!(out, "{}", elapsed.as_secs()),
                Atom::Millis => write!(out, "{}", elapsed.as_millis()),
                Atom::Micros => write!(out, "{}", elapsed.as_micros()),
                Atom::DecimalSeconds => write!(out, "{:.6}", elapsed.as_secs_f64()),
                Atom::Pid => write!(out, "{}", std::process::id()),
                Atom::RequestHeader(n) => out.write_str(&text(
                    &self
                        .headers
                        .iter()
                        .find(|(k, _)| k == n)
                        .and_then(|(_, v)| v.clone()),
                )),
                Atom::ResponseHeader(n) => {
                    out.write_str(&text(&self.response_headers.get(n).cloned()))
                }
            };
        }
        out.push('\n');
        out
    }

    fn json(&self, bytes: u64, seconds: f64) -> String {
        let s = |v: &str| json_string(v);
        let header = |v: &Option<HeaderValue>| {
            v.as_ref()
                .and_then(|v| v.to_str().ok())
                .map_or("null".to_owned(), s)
        };
        let (path, query) = self.target.split_once('?').unwrap_or((&self.target, ""));
        format!(
            "{{\"time\":{},\"client\":{},\"method\":{},\"path\":{},\"query\":{},\"status\":{},\"bytes\":{},\"duration\":{:.6},\"worker\":{},\"request_id\":{},\"user_agent\":{}}}\n",
            s(&rfc3339(SystemTime::now())),
            self.client
                .map_or("null".to_owned(), |c| s(&c.ip().to_string())),
            s(self.method.as_str()),
            s(path),
            s(query),
            self.status.as_u16(),
            bytes,
            seconds,
            self.worker,
            s(self.request_id.to_str().unwrap_or("")),
            header(&self.user_agent),
        )
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
#[derive(Debug)]
pub struct Sink {
    /// The format.
    pub format: Format,
    /// Writes one line.
    pub write: fn(&str),
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
            (sink.write)(&record.line(&sink.format, self.bytes));
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

/// A request id: the client's if it is a sane token, else a new one.
pub(crate) fn request_id(given: Option<HeaderValue>) -> Id {
    if let Some(id) = given {
        let b = id.as_bytes();
        if !b.is_empty() && b.len() <= 200 && b.iter().all(u8::is_ascii_graphic) {
            return Id::Given(id);
        }
    }
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mix = |mut x: u64| {
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    };
    let hex = |x: u64, out: &mut [u8]| {
        for (i, d) in out.iter_mut().enumerate() {
            *d = b"0123456789abcdef"[(x >> (60 - 4 * i) & 0xf) as usize];
        }
    };
    // The process's seed (the clock at its first request, and its pid),
    // and the id's first half, which comes from it alone.
    static SEED: OnceLock<(u64, [u8; 16])> = OnceLock::new();
    let (seed, first) = SEED.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = nanos ^ (u64::from(std::process::id()) << 40);
        let mut first = [0; 16];
        hex(mix(seed), &mut first);
        (seed, first)
    });
    let n = COUNTER.fetch_add(1, Relaxed);
    let mut id = [0u8; 32];
    id[..16].copy_from_slice(first);
    hex(mix(n ^ seed.rotate_left(17)), &mut id[16..]);
    Id::Made(id)
}

/// A request id: the client's, or one made here (hex digits, kept inline
/// so that making one allocates nothing).
#[derive(Debug, Clone)]
pub(crate) enum Id {
    Given(HeaderValue),
    Made([u8; 32]),
}

impl Id {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Given(v) => v.to_str().unwrap_or(""),
            Self::Made(b) => std::str::from_utf8(b).unwrap_or(""),
        }
    }

    pub(crate) fn to_header(&self) -> HeaderValue {
        match self {
            Self::Given(v) => v.clone(),
            Self::Made(b) => HeaderValue::from_bytes(b).unwrap_or(HeaderValue::from_static("-")),
        }
    }
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
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
    out
}

/// Year, month, day, hour, minute, second (UTC) of a time.
fn civil(t: SystemTime) -> (i64, u32, u32, u64, u64, u64, u32) {
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
    (
        year,
        month,
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis(),
    )
}

/// `23/Nov/2026:02:52:09 +0000`
fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s, _) = civil(t);
    format!(
        "{d:02}/{}/{y}:{h:02}:{mi:02}:{s:02} +0000",
        MONTHS[(mo - 1) as usize]
    )
}

/// `2026-11-23T02:52:09.123Z`
fn rfc3339(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ms) = civil(t);
    format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gunicorn_formats_parse_and_render() {
        let f = Format::parse(DEFAULT_FORMAT, false).expect("default format");
        let req = http::Request::get("/a/b?x=1")
            .header("user-agent", "curl/8")
            .header("x-trace", "t1")
            .body(())
            .expect("request");
        let mut rec = Record::new(
            &req,
            Some("203.0.113.9:4000".parse().expect("addr")),
            HeaderValue::from_static("id1"),
            &f,
            0,
            Instant::now(),
        );
        rec.respond(StatusCode::OK, &HeaderMap::new());
        let line = rec.line(&f, 13);
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
        let mut rec = Record::new(
            &req,
            None,
            HeaderValue::from_static("id1"),
            &f,
            0,
            Instant::now(),
        );
        rec.respond(StatusCode::NOT_FOUND, &out);
        let line = rec.line(&f, 0);
        assert_eq!(
            line,
            format!(
                "GET /a/b x=1 HTTP/1.1 404 0 - t1 o1 {}\n",
                std::process::id()
            )
        );
        assert!(Format::parse("%(zz)s", false).is_err());
    }

    #[test]
    fn json_lines_hold_the_fields() {
        let f = Format::parse(DEFAULT_FORMAT, true).expect("format");
        let req = http::Request::post("/p?q=1")
            .header("user-agent", "say \"hi\"")
            .body(())
            .expect("request");
        let mut rec = Record::new(
            &req,
            None,
            HeaderValue::from_static("abc"),
            &f,
            3,
            Instant::now(),
        );
        rec.respond(StatusCode::CREATED, &HeaderMap::new());
        let line = rec.line(&f, 5);
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
        assert_eq!(rfc3339(t), "2026-11-23T02:52:09.000Z");
    }

    #[test]
    fn request_ids_are_kept_or_made() {
        let given = |v: &'static str| request_id(Some(HeaderValue::from_static(v)));
        assert_eq!(given("from-client-1").as_str(), "from-client-1");
        assert_ne!(given("with space").as_str(), "with space");
        assert_ne!(given("").as_str(), "");
        let made = request_id(None).to_header();
        assert_eq!(made.len(), 32);
        assert!(made.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_ne!(made, request_id(None).to_header());
    }
}
