//! The PROXY protocol (HAProxy, AWS NLB): a header the load balancer sends
//! before the HTTP bytes, naming the client's address.
//!
//! With `--proxy-protocol v1|v2|auto`, a TCP connection from a peer in
//! `--proxy-allow-from` must start with a valid header of that version
//! (`auto`: either), sent within `--header-timeout`, or it is closed. A
//! connection from any other peer that starts with a PROXY header is closed
//! (an untrusted header: the peer could name any client); one that starts
//! with plain HTTP is served with its own address, so health probes from
//! outside the load balancer still work. The header is peeked and then
//! exactly its bytes are consumed, so the HTTP request behind it is
//! untouched. `UNKNOWN` (v1) and `LOCAL` (v2) headers keep the connection's
//! own peer address.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ferricorn_config::{IpNet, ProxyProtocol};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, CRLF included.
const V1_MAX: usize = 107;
/// The longest v2 header this server reads (addresses and a few TLVs).
const V2_MAX: usize = 16 + 536;

/// What reading the header found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// The client's address.
    Client(SocketAddr),
    /// No address in the header (`UNKNOWN`, `LOCAL`): keep the peer's.
    Local,
}

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    #[error("peer {0} is not in proxy-allow-from")]
    Untrusted(IpAddr),
    #[error("no PROXY header within {0:?}")]
    Timeout(Duration),
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
}

/// Reads and consumes the PROXY header of `stream`; the client's address.
pub(crate) async fn accept(
    stream: &mut TcpStream,
    peer: SocketAddr,
    mode: ProxyProtocol,
    allow: &[IpNet],
    timeout: Duration,
) -> Result<SocketAddr, Refused> {
    if !allow.iter().any(|n| n.contains(peer.ip())) {
        let signed = tokio::time::timeout(timeout, starts_with_header(stream))
            .await
            .map_err(|_| Refused::Timeout(timeout))??;
        return if signed {
            Err(Refused::Untrusted(peer.ip()))
        } else {
            Ok(peer)
        };
    }
    let header = tokio::time::timeout(timeout, read(stream, mode))
        .await
        .map_err(|_| Refused::Timeout(timeout))??;
    Ok(match header {
        Header::Client(addr) => addr,
        Header::Local => peer,
    })
}

/// Whether the connection starts with a PROXY signature (v1 or v2), read
/// without consuming anything.
async fn starts_with_header(stream: &mut TcpStream) -> Result<bool, Refused> {
    let mut buf = [0u8; 12];
    loop {
        let n = stream.peek(&mut buf).await?;
        let seen = &buf[..n];
        let v1 = b"PROXY ";
        let maybe = |sig: &[u8]| seen[..n.min(sig.len())] == sig[..n.min(sig.len())];
        match (maybe(v1), maybe(&V2_SIGNATURE)) {
            _ if n == 0 => return Ok(false),
            (false, false) => return Ok(false),
            (true, _) if n >= v1.len() => return Ok(true),
            (_, true) if n >= V2_SIGNATURE.len() => return Ok(true),
            _ => stream.readable().await?,
        }
    }
}

async fn read(stream: &mut TcpStream, mode: ProxyProtocol) -> Result<Header, Refused> {
    let mut buf = [0u8; V2_MAX];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(Refused::Malformed(
                "the connection closed before the header",
            ));
        }
        match parse(&buf[..n], mode) {
            Parse::Done(header, len) => {
                let mut sink = vec![0u8; len];
                stream.read_exact(&mut sink).await?;
                return Ok(header);
            }
            Parse::Bad(why) => return Err(Refused::Malformed(why)),
            Parse::More if n == buf.len() => return Err(Refused::Malformed("header too long")),
            Parse::More => stream.readable().await?,
        }
    }
}

/// The result of parsing what has arrived so far.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parse {
    /// A complete header of this many bytes.
    Done(Header, usize),
    /// Not enough bytes yet.
    More,
    /// Not a valid header.
    Bad(&'static str),
}

pub(crate) fn parse(buf: &[u8], mode: ProxyProtocol) -> Parse {
    let v1 = b"PROXY ";
    let could_be = |sig: &[u8]| buf[..buf.len().min(sig.len())] == sig[..buf.len().min(sig.len())];
    let (is_v1, is_v2) = (could_be(v1), could_be(&V2_SIGNATURE));
    match mode {
        ProxyProtocol::V1 | ProxyProtocol::Auto if is_v1 && buf.len() >= v1.len() => parse_v1(buf),
        ProxyProtocol::V2 | ProxyProtocol::Auto if is_v2 && buf.len() >= V2_SIGNATURE.len() => {
            parse_v2(buf)
        }
        ProxyProtocol::Off => Parse::Bad("PROXY protocol is off"),
        _ if (is_v1 && mode != ProxyProtocol::V2) || (is_v2 && mode != ProxyProtocol::V1) => {
            Parse::More
        }
        _ => Parse::Bad("no PROXY signature"),
    }
}

fn parse_v1(buf: &[u8]) -> Parse {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Parse::Bad("v1 header too long")
        } else {
            Parse::More
        };
    };
    if end + 2 > V1_MAX {
        return Parse::Bad("v1 header too long");
    }
    let Ok(line) = std::str::from_utf8(&buf[..end]) else {
        return Parse::Bad("v1 header is not text");
    };
    let parts: Vec<&str> = line.split(' ').collect();
    let header = match parts.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Some(Header::Local),
        ["PROXY", family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            // Every field is checked, the destination's too, as HAProxy's
            // reader does: a malformed line is not a header.
            let v4 = *family == "TCP4";
            let ip = |s: &str| s.parse::<IpAddr>().ok().filter(|ip| ip.is_ipv4() == v4);
            let port = |s: &str| {
                s.parse::<u16>()
                    .ok()
                    .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
                    .filter(|_| !s.starts_with('0') || s == "0")
            };
            (ip(dst).is_some() && port(dport).is_some())
                .then(|| ip(src).zip(port(sport)))
                .flatten()
                .map(|(ip, port)| Header::Client(SocketAddr::new(ip, port)))
        }
        _ => None,
    };
    match header {
        Some(h) => Parse::Done(h, end + 2),
        None => Parse::Bad("v1 header fields"),
    }
}

fn parse_v2(buf: &[u8]) -> Parse {
    if buf[..12] != V2_SIGNATURE {
        return Parse::Bad("v2 signature");
    }
    if buf.len() < 16 {
        return Parse::More;
    }
    let (ver_cmd, family) = (buf[12], buf[13]);
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if ver_cmd >> 4 != 2 {
        return Parse::Bad("v2 version");
    }
    if 16 + len > V2_MAX {
        return Parse::Bad("v2 header too long");
    }
    if buf.len() < 16 + len {
        return Parse::More;
    }
    let body = &buf[16..16 + len];
    let header = match (ver_cmd & 0x0f, family) {
        (0x0, _) => Some(Header::Local),
        (0x1, 0x11) if len >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            Some(Header::Client(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([body[8], body[9]]),
            )))
        }
        (0x1, 0x21) if len >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&body[..16]);
            let port = u16::from_be_bytes([body[32], body[33]]);
            Some(Header::Client(SocketAddr::new(
                Ipv6Addr::from(octets).into(),
                port,
            )))
        }
        (0x1, 0x00 | 0x31 | 0x32) => Some(Header::Local),
        _ => None,
    };
    match header {
        Some(h) => Parse::Done(h, 16 + len),
        None => Parse::Bad("v2 command or address family"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut b = V2_SIGNATURE.to_vec();
        b.extend([0x20 | cmd, family]);
        b.extend((body.len() as u16).to_be_bytes());
        b.extend(body);
        b
    }

    #[test]
    fn v1_headers() {
        let addr = |s: &str| Header::Client(s.parse().expect("addr"));
        let h = b"PROXY TCP4 203.0.113.9 10.0.0.1 56324 443\r\nGET /";
        assert_eq!(
            parse(h, ProxyProtocol::V1),
            Parse::Done(addr("203.0.113.9:56324"), 43)
        );
        let h6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n";
        assert_eq!(
            parse(h6, ProxyProtocol::Auto),
            Parse::Done(addr("[2001:db8::1]:1"), h6.len())
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n", ProxyProtocol::V1),
            Parse::Done(Header::Local, 15)
        );
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4", ProxyProtocol::V1), Parse::More);
        assert_eq!(parse(b"PRO", ProxyProtocol::V1), Parse::More);
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n", ProxyProtocol::V1),
            Parse::Bad(_)
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 ::1 ::1 1 1\r\n", ProxyProtocol::V1),
            Parse::Bad(_)
        ));
        // Found by fuzzing: the destination went unread, so an empty or
        // malformed one was taken.
        for bad in [
            &b"PROXY TCP4 203.0.113.9 10.0.0.15 6324 \r\n"[..],
            b"PROXY TCP4 203.0.113.9 nowhere 1 2\r\n",
            b"PROXY TCP4 203.0.113.9 10.0.0.1 1 +2\r\n",
            b"PROXY TCP4 203.0.113.9 ::1 1 2\r\n",
            b"PROXY TCP4 203.0.113.9 10.0.0.1 +1 2\r\n",
        ] {
            assert!(
                matches!(parse(bad, ProxyProtocol::V1), Parse::Bad(_)),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n", ProxyProtocol::V1),
            Parse::Bad(_)
        ));
        assert!(matches!(
            parse(&[b'x'; 120], ProxyProtocol::Auto),
            Parse::Bad(_)
        ));
        assert!(
            matches!(parse(h, ProxyProtocol::V2), Parse::Bad(_)),
            "v1 when v2 is required"
        );
    }

    #[test]
    fn v2_headers() {
        let mut body = vec![203, 0, 113, 9, 10, 0, 0, 1];
        body.extend(56324u16.to_be_bytes());
        body.extend(443u16.to_be_bytes());
        let h = v2(1, 0x11, &body);
        let want = Header::Client("203.0.113.9:56324".parse().expect("addr"));
        assert_eq!(parse(&h, ProxyProtocol::V2), Parse::Done(want, 28));
        assert_eq!(parse(&h[..20], ProxyProtocol::Auto), Parse::More);
        assert_eq!(
            parse(&v2(0, 0, &[]), ProxyProtocol::V2),
            Parse::Done(Header::Local, 16)
        );
        assert!(matches!(
            parse(&v2(1, 0x11, &[1, 2]), ProxyProtocol::V2),
            Parse::Bad(_)
        ));
        let mut wrong = h.clone();
        wrong[12] = 0x31;
        assert!(matches!(parse(&wrong, ProxyProtocol::V2), Parse::Bad(_)));
        assert!(
            matches!(parse(&h, ProxyProtocol::V1), Parse::Bad(_)),
            "v2 when v1 is required"
        );
    }
}
