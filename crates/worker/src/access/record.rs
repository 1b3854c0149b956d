//! What is kept of a request until its response is done, and the line
//! written from it: in the `--access-logformat` format, or as a JSON object
//! with `--log-format json`.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use ferricorn_config::{AccessLogFormat, Atom};
use http::header::{HeaderName, HeaderValue, REFERER, USER_AGENT};
use http::{HeaderMap, Method, StatusCode, Uri, Version};

use super::time::Clock;

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
        format: &AccessLogFormat,
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
                .request_headers()
                .iter()
                .map(|n| (n.clone(), h.get(n).cloned()))
                .collect(),
            status: StatusCode::OK,
            response_headers: Vec::new(),
            worker,
        }
    }

    /// Notes the response head: its status and the headers `format` writes.
    pub(crate) fn respond(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        format: &AccessLogFormat,
    ) {
        self.status = status;
        self.response_headers = format
            .response_headers()
            .iter()
            .map(|n| (n.clone(), headers.get(n).cloned()))
            .collect();
    }

    /// The request target as the request line had it.
    fn target(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    /// Writes the line, newline included, to `out`: in `format`, or as a
    /// JSON object when `json`.
    pub(super) fn write(
        &self,
        out: &mut String,
        (format, json): (&AccessLogFormat, bool),
        clock: &mut Clock,
        bytes: u64,
    ) {
        let elapsed = self.started.elapsed();
        let now = SystemTime::now();
        if json {
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
        for atom in format.atoms() {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The line `format` writes for `req`, answered with `status` and
    /// `headers` and `bytes` of body; request id `id`, worker 3.
    fn line_for(
        req: &http::Request<()>,
        client: Option<&str>,
        id: &'static str,
        (format, json): (&AccessLogFormat, bool),
        (status, headers, bytes): (StatusCode, &HeaderMap, u64),
    ) -> String {
        let client = client.map(|c| c.parse().expect("addr"));
        let id = HeaderValue::from_static(id);
        let mut rec = Record::new(req, client, id, format, 3, Instant::now());
        rec.respond(status, headers, format);
        let mut out = String::new();
        rec.write(&mut out, (format, json), &mut Clock::default(), bytes);
        out
    }

    #[test]
    fn gunicorn_formats_parse_and_render() {
        let f = AccessLogFormat::default();
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
            (&f, false),
            (StatusCode::OK, &none, 13),
        );
        assert!(line.starts_with("203.0.113.9 - - ["), "{line}");
        assert!(
            line.ends_with("] \"GET /a/b?x=1 HTTP/1.1\" 200 13 \"-\" \"curl/8\"\n"),
            "{line}"
        );

        let f: AccessLogFormat =
            "%(m)s %(U)s %(q)s %(H)s %(s)s %(B)s %(b)s %({x-trace}i)s %({x-out}o)s %(p)s"
                .parse()
                .expect("atoms");
        let mut out = HeaderMap::new();
        out.insert("x-out", "o1".parse().expect("value"));
        let line = line_for(
            &req,
            None,
            "id1",
            (&f, false),
            (StatusCode::NOT_FOUND, &out, 0),
        );
        assert_eq!(
            line,
            format!(
                "GET /a/b x=1 HTTP/1.1 404 0 - t1 o1 {}\n",
                std::process::id()
            )
        );
        // Python's `%%` is a `%`; a lone `%` stays.
        let f: AccessLogFormat = "100%% %(s)s 5% %%%(m)s%%".parse().expect("percent signs");
        let line = line_for(&req, None, "id1", (&f, false), (StatusCode::OK, &none, 0));
        assert_eq!(line, "100% 200 5% %GET%\n");
    }

    #[test]
    fn json_lines_hold_the_fields() {
        let f = AccessLogFormat::default();
        let req = http::Request::post("/p?q=1")
            .header("user-agent", "say \"hi\"")
            .body(())
            .expect("request");
        let none = HeaderMap::new();
        let line = line_for(
            &req,
            None,
            "abc",
            (&f, true),
            (StatusCode::CREATED, &none, 5),
        );
        let want = r#""method":"POST","path":"/p","query":"q=1","status":201,"bytes":5"#;
        assert!(line.contains(want), "{line}");
        let tail = r#""worker":3,"request_id":"abc","user_agent":"say \"hi\""}"#;
        assert!(line.trim_end().ends_with(tail), "{line}");
        assert!(line.contains(r#""client":null"#), "{line}");
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
}
