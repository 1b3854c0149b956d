//! A certificate's subject as RFC 4514 text (`CN=alice,O=Example`), as
//! ASGI's TLS extension gives it in `client_cert_name`: the relative names
//! last first, the attributes of one joined with `+`, string values
//! escaped, others as `#` and their DER in hex. The DER is read by a small
//! reader of its own (tag, length, value), never trusting a length.

use tokio_rustls::rustls::pki_types::CertificateDer;

/// The subject of `cert`, or `None` when it does not parse.
pub(super) fn of(cert: &CertificateDer<'_>) -> Option<String> {
    let parsed = webpki::EndEntityCert::try_from(cert).ok()?;
    name(parsed.subject())
}

/// The text of a Name's contents (the RDNs, without the outer SEQUENCE).
pub(crate) fn name(mut der: &[u8]) -> Option<String> {
    const SET: u8 = 0x31;
    const SEQUENCE: u8 = 0x30;
    const OID: u8 = 0x06;
    let mut rdns = Vec::new();
    while !der.is_empty() {
        let (tag, mut set, rest) = tlv(der)?;
        der = rest;
        if tag != SET {
            return None;
        }
        let mut atvs = Vec::new();
        while !set.is_empty() {
            let (tag, atv, rest) = tlv(set)?;
            set = rest;
            if tag != SEQUENCE {
                return None;
            }
            let (tag, oid, value) = tlv(atv)?;
            if tag != OID {
                return None;
            }
            let (vtag, text, after) = tlv(value)?;
            if !after.is_empty() {
                return None;
            }
            // UTF8String, PrintableString, IA5String, and T61String where
            // its bytes are UTF-8; anything else as its DER in hex.
            let text = match vtag {
                0x0c | 0x13 | 0x16 | 0x14 => std::str::from_utf8(text).ok(),
                _ => None,
            };
            let value = match text {
                Some(text) => escape(text),
                None => format!("#{}", hex(value)),
            };
            atvs.push(format!("{}={value}", attribute(oid)?));
        }
        // A relative name holds at least one attribute (RFC 5280); found
        // by fuzzing: an empty one gave an empty name between commas.
        if atvs.is_empty() {
            return None;
        }
        rdns.push(atvs.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// How many attributes the Name's contents hold (for the fuzz property).
#[cfg(feature = "fuzz")]
pub(crate) fn attributes(mut der: &[u8]) -> usize {
    let mut n = 0;
    while let Some((_, mut set, rest)) = tlv(der) {
        while let Some((_, _, after)) = tlv(set) {
            n += 1;
            set = after;
        }
        der = rest;
    }
    n
}

/// One DER tag, its value and what follows; `None` on a long-form tag, an
/// indefinite or oversized length, or a value running past the input.
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// An attribute type's short name (RFC 4514's, OpenSSL's for the e-mail
/// address), else its dotted OID.
fn attribute(oid: &[u8]) -> Option<String> {
    let named = match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x09] => "STREET",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
        _ => return dotted(oid),
    };
    Some(named.to_owned())
}

/// An OID's dotted text.
fn dotted(oid: &[u8]) -> Option<String> {
    let (&first, rest) = oid.split_first()?;
    let mut parts = vec![
        (first / 40).min(2) as u64,
        first as u64 - 40 * (first / 40).min(2) as u64,
    ];
    let mut n: u64 = 0;
    for &b in rest {
        n = n.checked_mul(128)? | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            parts.push(n);
            n = 0;
        }
    }
    let text: Vec<String> = parts.iter().map(u64::to_string).collect();
    Some(text.join("."))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 4514 section 2.4: the specials escaped, a leading `#` or space and
/// a trailing space too, control characters as `\XX`.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let last = s.chars().count().saturating_sub(1);
    for (i, c) in s.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One attribute: its OID's bytes, its value's tag, its value.
    type Atv<'a> = (&'a [u8], u8, &'a [u8]);

    /// A Name's contents from the attributes of each RDN.
    fn encode(rdns: &[&[Atv<'_>]]) -> Vec<u8> {
        fn wrap(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut v = vec![tag];
            if body.len() < 0x80 {
                v.push(body.len() as u8);
            } else {
                v.extend([0x82, (body.len() >> 8) as u8, body.len() as u8]);
            }
            v.extend_from_slice(body);
            v
        }
        let mut out = Vec::new();
        for rdn in rdns {
            let mut set = Vec::new();
            for (oid, tag, value) in *rdn {
                let mut atv = wrap(0x06, oid);
                atv.extend(wrap(*tag, value));
                set.extend(wrap(0x30, &atv));
            }
            out.extend(wrap(0x31, &set));
        }
        out
    }

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const O: &[u8] = &[0x55, 0x04, 0x0a];

    #[test]
    fn names_read_last_first_with_specials_escaped() {
        let der = encode(&[
            &[(O, 0x13, b"Example, Inc.")],
            &[(CN, 0x0c, b"alice"), (&[0x2a, 0x03], 0x0c, b"x")],
        ]);
        assert_eq!(
            name(&der).as_deref(),
            Some("CN=alice+1.2.3=x,O=Example\\, Inc.")
        );
        assert_eq!(
            name(&encode(&[&[(CN, 0x0c, b"#lead trail ")]])).as_deref(),
            Some("CN=\\#lead trail\\ ")
        );
        // A value that is not a string: its DER in hex.
        assert_eq!(
            name(&encode(&[&[(CN, 0x04, b"\x01\xff")]])).as_deref(),
            Some("CN=#040201ff")
        );
        assert_eq!(name(&[]).as_deref(), Some(""));
    }

    #[test]
    fn broken_der_is_none_never_a_panic() {
        let good = encode(&[&[(CN, 0x0c, b"alice")]]);
        for cut in 0..good.len() {
            let _ = name(&good[..cut]);
        }
        assert_eq!(name(&good[..good.len() - 1]), None);
        assert_eq!(name(&[0x31, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(name(&[0x31, 0x80]), None, "indefinite length");
        assert_eq!(name(&[0x1f, 0x01, 0x00]), None, "long-form tag");
        let mut flipped = good.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = name(&flipped);
            flipped[i] ^= 0xff;
        }
    }
}
