//! `--access-logformat`: Gunicorn's atoms, parsed once when the settings
//! load, so that a bad format is a configuration error (exit 2) and each
//! worker only writes.
//!
//! Atoms, each written as `%(atom)s`: `h` client, `l` `-`, `u` user (`-`),
//! `t` time `[23/Nov/2026:02:52:09 +0000]`, `r` request line, `m` method,
//! `U` path, `q` query, `H` protocol, `s` status, `B` bytes, `b` bytes or
//! `-`, `f` referer, `a` user agent, `T` seconds, `M` milliseconds, `D`
//! microseconds, `L` decimal seconds, `p` pid, `{name}i` a request header,
//! `{name}o` a response header. `%%` is one `%`, as Python's `%` formatting
//! (Gunicorn's) writes it; a lone `%` is kept as it is.

use std::fmt;
use std::str::FromStr;

use http::HeaderName;

use crate::Error;

/// Gunicorn's default access log format (the settings table's default; a
/// test holds them equal).
pub const DEFAULT_ACCESS_LOG_FORMAT: &str =
    r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

/// One piece of a parsed format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Atom {
    /// Text written as it is.
    Text(String),
    /// `h`: the client's address.
    Client,
    /// `l`, `u`: `-`.
    Dash,
    /// `t`: the time, as in the common log format.
    Time,
    /// `r`: the request line.
    RequestLine,
    /// `m`: the method.
    Method,
    /// `U`: the path.
    Path,
    /// `q`: the query.
    Query,
    /// `H`: the protocol.
    Protocol,
    /// `s`: the status.
    Status,
    /// `B`: the body's bytes.
    Bytes,
    /// `b`: the body's bytes, `-` for none.
    BytesOrDash,
    /// `f`: the `Referer`.
    Referer,
    /// `a`: the `User-Agent`.
    UserAgent,
    /// `T`: whole seconds taken.
    Seconds,
    /// `M`: milliseconds taken.
    Millis,
    /// `D`: microseconds taken.
    Micros,
    /// `L`: seconds taken, with decimals.
    DecimalSeconds,
    /// `p`: the worker's pid.
    Pid,
    /// `{name}i`: a request header.
    RequestHeader(HeaderName),
    /// `{name}o`: a response header.
    ResponseHeader(HeaderName),
}

/// A parsed access log format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogFormat {
    text: String,
    atoms: Vec<Atom>,
    /// The request headers the atoms name, kept until the line is written.
    request_headers: Vec<HeaderName>,
    /// The response headers the atoms name.
    response_headers: Vec<HeaderName>,
}

impl AccessLogFormat {
    /// The atoms, in order.
    pub fn atoms(&self) -> &[Atom] {
        &self.atoms
    }

    /// The request headers the format writes.
    pub fn request_headers(&self) -> &[HeaderName] {
        &self.request_headers
    }

    /// The response headers the format writes.
    pub fn response_headers(&self) -> &[HeaderName] {
        &self.response_headers
    }
}

impl Default for AccessLogFormat {
    fn default() -> Self {
        DEFAULT_ACCESS_LOG_FORMAT
            .parse()
            .unwrap_or_else(|_| unreachable!("the default format parses"))
    }
}

impl fmt::Display for AccessLogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for AccessLogFormat {
    type Err = Error;

    fn from_str(format: &str) -> Result<Self, Error> {
        let mut atoms = Vec::new();
        let mut text = String::new();
        let mut rest = format;
        while let Some(at) = rest.find('%') {
            text.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(inner) = after.strip_prefix('(') {
                let end = inner
                    .find(")s")
                    .ok_or_else(|| Error::Value(format!("unclosed atom in `{format}`")))?;
                let name = &inner[..end];
                if !text.is_empty() {
                    atoms.push(Atom::Text(std::mem::take(&mut text)));
                }
                let unknown = || Error::Value(format!("unknown atom `%({name})s`"));
                atoms.push(atom(name).ok_or_else(unknown)?);
                rest = &inner[end + 2..];
            } else {
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
            text: format.to_owned(),
            atoms,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_default_is_gunicorns() {
        let s = crate::options::setting("access_logformat").expect("setting");
        assert_eq!(s.default, DEFAULT_ACCESS_LOG_FORMAT);
    }

    #[test]
    fn atoms_text_and_percent_signs() {
        let f: AccessLogFormat = "100%% %(s)s 5% %%%(m)s%% %({x-a}i)s %({x-b}o)s"
            .parse()
            .expect("format");
        assert_eq!(
            f.atoms(),
            [
                Atom::Text("100% ".into()),
                Atom::Status,
                Atom::Text(" 5% %".into()),
                Atom::Method,
                Atom::Text("% ".into()),
                Atom::RequestHeader(HeaderName::from_static("x-a")),
                Atom::Text(" ".into()),
                Atom::ResponseHeader(HeaderName::from_static("x-b")),
            ]
        );
        assert_eq!(f.request_headers(), [HeaderName::from_static("x-a")]);
        assert_eq!(f.response_headers(), [HeaderName::from_static("x-b")]);
        let err = |f: &str| f.parse::<AccessLogFormat>().map_err(|e| e.to_string());
        assert_eq!(err("%(zz)s"), Err("unknown atom `%(zz)s`".into()));
        assert_eq!(err("%(h"), Err("unclosed atom in `%(h`".into()));
        assert_eq!(
            AccessLogFormat::default().to_string(),
            DEFAULT_ACCESS_LOG_FORMAT
        );
    }
}
