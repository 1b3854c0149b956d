//! The properties the fuzz targets in `fuzz/` check, one function per
//! parser: each takes arbitrary bytes, runs the parser on them and asserts
//! what must hold; a panic is a finding. Built with the `fuzz` feature, for
//! the targets and for `fuzz/replay.rs`, the test that replays the
//! committed seeds and the input of every crash found
//! (`fuzz/seeds/<target>/`).

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use ferricorn_config::{IpNet, ProxyProtocol};
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::http::framing::{Framed, Scanner};
use crate::http::proxy;
use crate::proxy_protocol::{self, Header, Parse};
use crate::tls::{subject, tickets};

/// The PROXY protocol header, v1 and v2, in each mode (the first byte picks
/// it). A complete header parses the same alone, every shorter prefix of it
/// asks for more, and it re-encodes to what was read; a refused prefix
/// stays refused however much follows.
pub fn proxy_protocol(data: &[u8]) {
    let Some((&m, buf)) = data.split_first() else {
        return;
    };
    use ProxyProtocol::{Auto, Off, V1, V2};
    let mode = [Off, V1, V2, Auto][usize::from(m % 4)];
    let whole = proxy_protocol::parse(buf, mode);
    for k in 0..buf.len() {
        if let Parse::Bad(why) = proxy_protocol::parse(&buf[..k], mode) {
            assert!(
                matches!(whole, Parse::Bad(_)),
                "{k} bytes refused ({why}), all of them {whole:?}"
            );
            break;
        }
    }
    let Parse::Done(header, n) = whole else {
        return;
    };
    assert!(n <= buf.len());
    for k in 0..n {
        assert_eq!(
            proxy_protocol::parse(&buf[..k], mode),
            Parse::More,
            "a prefix of {k} bytes of a {n}-byte header"
        );
    }
    assert_eq!(proxy_protocol::parse(&buf[..n], mode), whole);
    let Header::Client(client) = header else {
        return;
    };
    let head = &buf[..n];
    if head.starts_with(b"PROXY ") {
        // v1: the address written back in its usual form reads the same.
        let line = std::str::from_utf8(head).expect("a v1 header is text");
        let fields: Vec<&str> = line.trim_end_matches("\r\n").split(' ').collect();
        let again = format!(
            "PROXY {} {} {} {} {}\r\n",
            fields[1],
            client.ip(),
            fields[3],
            client.port(),
            fields[5]
        );
        assert_eq!(
            proxy_protocol::parse(again.as_bytes(), mode),
            Parse::Done(header, again.len()),
            "{line:?} as {again:?}"
        );
    } else {
        // v2: the source address and port written back give the same bytes.
        let mut again = head.to_vec();
        match client.ip() {
            IpAddr::V4(ip) => {
                again[16..20].copy_from_slice(&ip.octets());
                again[24..26].copy_from_slice(&client.port().to_be_bytes());
            }
            IpAddr::V6(ip) => {
                again[16..32].copy_from_slice(&ip.octets());
                again[48..50].copy_from_slice(&client.port().to_be_bytes());
            }
        }
        assert_eq!(again, head);
    }
}

/// `Forwarded` and `X-Forwarded-*` from a peer (the first byte picks it):
/// an untrusted peer's headers are never read, a client read from them is
/// one the headers name, and the proto is lower case.
pub fn forwarded(data: &[u8]) {
    let Some((&p, rest)) = data.split_first() else {
        return;
    };
    let peers: [Option<SocketAddr>; 4] = [
        None,
        Some(([10, 0, 0, 1], 1000).into()),
        Some(([203, 0, 113, 5], 1000).into()),
        Some((IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]), 1000).into()),
    ];
    let peer = peers[usize::from(p % 4)];
    let trusted: Vec<IpNet> = ["10.0.0.0/8", "::1/128", "192.0.2.0/24"]
        .iter()
        .map(|n| n.parse().expect("a net"))
        .collect();
    let names = [
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
    ];
    let mut headers = HeaderMap::new();
    for line in rest.split(|&b| b == b'\n') {
        let Some((&n, value)) = line.split_first() else {
            continue;
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(HeaderName::from_static(names[usize::from(n % 4)]), value);
        }
    }
    let seen = proxy::read(&headers, peer, &trusted);
    if peer.is_some_and(|p| !trusted.iter().any(|n| n.contains(p.ip()))) {
        assert!(seen.client.is_none() && seen.proto.is_none() && seen.host.is_none());
        return;
    }
    if let Some(client) = seen.client {
        // An address read from the headers is one they name, perhaps
        // written otherwise (`0::1` for `::1`, a port after it).
        let named = headers.values().any(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split([',', ';', '=', '"', ' ', '\t', '[', ']', '%'])
                .filter_map(|t| {
                    t.parse::<IpAddr>()
                        .ok()
                        .or_else(|| t.parse::<SocketAddr>().ok().map(|a| a.ip()))
                })
                .any(|ip| ip == client.ip())
        });
        assert!(named, "{client} is in no header: {headers:?}");
    }
    if let Some(proto) = &seen.proto {
        assert_eq!(*proto, proto.to_ascii_lowercase());
    }
    if let Some(host) = &seen.host {
        // The forwarded host becomes `Host` as given, or not at all.
        let mut h = HeaderMap::new();
        proxy::set_host(&mut h, host);
        if let Some(set) = h.get(http::header::HOST) {
            assert_eq!(set.as_bytes(), host.as_bytes());
        }
    }
}

/// The smuggling guard in front of hyper. Read in pieces (their sizes from
/// the first byte), or a byte at a time, it spoils exactly what it spoils
/// when read whole; and where it lets a stream through while still
/// following it, hyper reads no request the guard did not see, and each
/// body it reads has the length the guard expected.
pub fn framing(data: &[u8]) {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let mut whole = input.to_vec();
    Scanner::default().feed(&mut whole);
    let mut pieces = input.to_vec();
    let mut scanner = Scanner::default();
    let (mut at, mut step) = (0, u32::from(seed));
    while at < pieces.len() {
        step = step.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = 1 + (step >> 16) as usize % 24;
        let end = (at + n).min(pieces.len());
        scanner.feed(&mut pieces[at..end]);
        at = end;
    }
    assert_eq!(
        whole,
        pieces,
        "read in pieces, the guard spoils other bytes (first at {:?})",
        whole.iter().zip(&pieces).position(|(a, b)| a != b)
    );
    let (seen, spoiled) = framed(input);
    assert_eq!(
        spoiled,
        whole.iter().zip(input).position(|(a, b)| a != b),
        "read a byte at a time, the guard spoils another byte"
    );
    if whole != input || seen.last() == Some(&Framed::Lost) {
        return; // Spoiled: hyper refuses it. Or the guard let go.
    }
    let read = hyper_reads(input);
    assert!(
        read.len() <= seen.len(),
        "hyper read {} requests, the guard saw {}: {read:?} {seen:?}",
        read.len(),
        seen.len()
    );
    for (i, (body, framed)) in read.iter().zip(&seen).enumerate() {
        match (body, framed) {
            (Some(n), Framed::Length(m)) => assert_eq!(n, m, "request {i}"),
            (_, Framed::Lost) => break,
            _ => {}
        }
    }
}

/// Each head's framing as the guard reads `input` a byte at a time, with
/// `Lost` at the end when it stopped following the stream; and where it
/// spoiled a byte, if it did.
fn framed(input: &[u8]) -> (Vec<Framed>, Option<usize>) {
    let mut scanner = Scanner::default();
    let mut framed = Vec::new();
    for (i, &b) in input.iter().enumerate() {
        let heads = scanner.heads();
        let mut byte = [b];
        scanner.feed(&mut byte);
        if byte[0] != b {
            return (framed, Some(i));
        }
        if scanner.heads() != heads {
            framed.push(scanner.framing());
        }
    }
    if scanner.framing() == Framed::Lost && framed.last() != Some(&Framed::Lost) {
        framed.push(Framed::Lost);
    }
    (framed, None)
}

/// The body length of each request hyper reads from `input` (`None` where
/// it failed), with the worker's HTTP/1.1 settings.
fn hyper_reads(input: &[u8]) -> Vec<Option<u64>> {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
    }
    let read = std::rc::Rc::new(RefCell::new(Vec::new()));
    let seen = read.clone();
    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let seen = seen.clone();
        async move {
            let body = req.into_body().collect().await.ok();
            seen.borrow_mut()
                .push(body.map(|b| b.to_bytes().len() as u64));
            Ok::<_, Infallible>(http::Response::new(
                http_body_util::Empty::<bytes::Bytes>::new(),
            ))
        }
    });
    let io = hyper_util::rt::TokioIo::new(Replay(input.to_vec(), 0));
    thread_local! {
        static DEFAULTS: ferricorn_config::Config = defaults();
    }
    let b = DEFAULTS.with(crate::http::http1);
    RUNTIME.with(|rt| {
        let _ = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), b.serve_connection(io, service)).await
        });
    });
    read.take()
}

/// The settings with nothing set.
fn defaults() -> ferricorn_config::Config {
    let none = ferricorn_config::Options::default();
    ferricorn_config::load_in(
        &ferricorn_config::Environment::default(),
        &none,
        &none,
        None,
    )
    .expect("the defaults are valid")
    .config
}

/// Reads back fixed bytes, then EOF; takes any write.
struct Replay(Vec<u8>, usize);

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let at = self.1;
        let n = buf.remaining().min(self.0.len() - at);
        buf.put_slice(&self.0[at..at + n]);
        self.1 += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A client certificate's subject (the DER of a Name's contents): the
/// text has one separator (`,` or `+`, unescaped) fewer than attributes,
/// no raw control character, and a backslash only before a special or two
/// hex digits.
pub fn tls_subject(data: &[u8]) {
    let Some(text) = subject::name(data) else {
        return;
    };
    let mut separators = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        assert!(!c.is_control(), "a raw control character in {text:?}");
        match c {
            '\\' => {
                let next = chars.next().expect("a backslash ends the text");
                if next.is_ascii_hexdigit() && chars.peek().is_some_and(char::is_ascii_hexdigit) {
                    chars.next();
                } else {
                    assert!(",+\"\\<>;# =".contains(next), "\\{next} in {text:?}");
                }
            }
            ',' | '+' => separators += 1,
            _ => {}
        }
    }
    let attributes = subject::attributes(data);
    assert_eq!(separators + 1, attributes.max(1), "{text:?}");
}

/// Session tickets: any bytes given as a ticket open to nothing (but a
/// ticket sealed here), a sealed one opens to what was sealed in either
/// period, and a ticket changed in any byte does not open.
pub fn tickets(data: &[u8]) {
    let t = tickets::SharedTickets::new();
    let now = SystemTime::now();
    if let Some(plain) = t.open(data, now) {
        panic!("{} bytes of noise opened to {plain:?}", data.len());
    }
    let sealed = t.seal(data, now).expect("seals");
    assert_eq!(t.open(&sealed, now).as_deref(), Some(data));
    let later = now + Duration::from_secs(u64::from(tickets::LIFETIME));
    assert_eq!(t.open(&sealed, later).as_deref(), Some(data));
    let flip = data.first().map_or(0, |&b| usize::from(b)) % sealed.len();
    let mut changed = sealed.clone();
    changed[flip] ^= 0x01;
    assert_eq!(t.open(&changed, now), None, "byte {flip} changed");
}
