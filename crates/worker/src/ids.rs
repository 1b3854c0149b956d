//! Request ids: every response carries `X-Request-Id`, the client's if it
//! sent a sane one, else one made here.

use std::cell::{Cell, RefCell};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use http::header::{HeaderName, HeaderValue};

/// The request id header, kept from the client or generated.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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

#[cfg(test)]
mod tests {
    use super::*;

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
