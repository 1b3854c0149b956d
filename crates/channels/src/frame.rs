//! The frames one worker writes to another over their stream: a group's
//! message, or a message for one connection.
//!
//! ```text
//! u32  length of what follows (big-endian)
//! u8   kind: 1 group, 2 direct
//! u8   payload: 0 text, 1 binary
//! u16  length of the group name (0 for direct)
//! ...  the group name
//! u64  the target connection's sequence number (direct; 0 for group)
//! u64  when it was published, in µs of the host's monotonic clock
//! ...  the payload
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::Payload;

/// What the length prefix and the fixed fields take.
pub(crate) const HEADER: usize = 4 + 1 + 1 + 2 + 8 + 8;

/// A message between workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub to: To,
    /// When it was published (µs on the host's monotonic clock).
    pub published: u64,
    pub payload: Payload,
}

/// Whom a frame is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum To {
    /// Every member of the group the receiving worker holds.
    Group(String),
    /// The connection with this sequence number in the receiving worker.
    Direct(u64),
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Malformed {
    #[error("a frame is shorter than its fields")]
    Short,
    #[error("unknown frame kind {0}")]
    Kind(u8),
    #[error("a text payload or group name is not UTF-8")]
    NotUtf8,
}

impl Frame {
    /// The frame with its length prefix.
    pub(crate) fn encode(&self) -> Bytes {
        let (kind, group, seq) = match &self.to {
            To::Group(group) => (1u8, group.as_str(), 0u64),
            To::Direct(seq) => (2u8, "", *seq),
        };
        let (text, data) = match &self.payload {
            Payload::Text(t) => (0u8, t.as_bytes()),
            Payload::Binary(b) => (1u8, b.as_ref()),
        };
        let body = HEADER - 4 + group.len() + data.len();
        let mut out = BytesMut::with_capacity(4 + body);
        out.put_u32(body as u32);
        out.put_u8(kind);
        out.put_u8(text);
        out.put_u16(group.len() as u16);
        out.put_slice(group.as_bytes());
        out.put_u64(seq);
        out.put_u64(self.published);
        out.put_slice(data);
        out.freeze()
    }

    /// The frame in `body` (what follows the length prefix).
    pub(crate) fn decode(mut body: Bytes) -> Result<Self, Malformed> {
        if body.len() < HEADER - 4 {
            return Err(Malformed::Short);
        }
        let kind = body.get_u8();
        let text = body.get_u8();
        let group_len = usize::from(body.get_u16());
        if body.len() < group_len + 16 {
            return Err(Malformed::Short);
        }
        let group =
            String::from_utf8(body.split_to(group_len).to_vec()).map_err(|_| Malformed::NotUtf8)?;
        let seq = body.get_u64();
        let published = body.get_u64();
        let payload = match text {
            0 => Payload::Text(String::from_utf8(body.to_vec()).map_err(|_| Malformed::NotUtf8)?),
            _ => Payload::Binary(body),
        };
        let to = match kind {
            1 => To::Group(group),
            2 => To::Direct(seq),
            k => return Err(Malformed::Kind(k)),
        };
        Ok(Self {
            to,
            published,
            payload,
        })
    }
}

/// What crosses the broker: the publishing server, then (for a direct
/// send) the target's cell and pid, then the frame with its length prefix,
/// so that the receiving host's gateway can route it.
///
/// ```text
/// u64  the publishing server's instance id
/// u32  the target's cell (direct; 0 for group)
/// i32  the target's pid (direct; 0 for group)
/// ...  the frame, length prefix included
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wire {
    pub origin: u64,
    pub cell: u32,
    pub pid: i32,
    /// The frame, without its length prefix.
    pub body: Bytes,
}

/// What a [`Wire`] header takes.
const WIRE_HEADER: usize = 8 + 4 + 4;

impl Wire {
    /// `frame` (as [`Frame::encode`] made it) from `origin` for `cell` and `pid`.
    pub(crate) fn encode(origin: u64, cell: u32, pid: i32, frame: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(WIRE_HEADER + frame.len());
        out.put_u64(origin);
        out.put_u32(cell);
        out.put_i32(pid);
        out.put_slice(frame);
        out.freeze()
    }

    /// The wire message in `bytes`.
    pub(crate) fn decode(mut bytes: Bytes) -> Result<Self, Malformed> {
        if bytes.len() < WIRE_HEADER + 4 {
            return Err(Malformed::Short);
        }
        let origin = bytes.get_u64();
        let cell = bytes.get_u32();
        let pid = bytes.get_i32();
        let len = bytes.get_u32() as usize;
        if len != bytes.len() {
            return Err(Malformed::Short);
        }
        Ok(Self {
            origin,
            cell,
            pid,
            body: bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_messages_round_trip() {
        let frame = Frame {
            to: To::Direct(3),
            published: 5,
            payload: Payload::Text("hi".into()),
        };
        let wire = Wire::decode(Wire::encode(7, 2, 99, &frame.encode())).expect("decodes");
        assert_eq!((wire.origin, wire.cell, wire.pid), (7, 2, 99));
        assert_eq!(Frame::decode(wire.body), Ok(frame));
        assert_eq!(
            Wire::decode(Bytes::from_static(&[0; 19])),
            Err(Malformed::Short)
        );
        let mut cut = Wire::encode(
            7,
            0,
            0,
            &Frame {
                to: To::Group("g".into()),
                published: 0,
                payload: Payload::Text("x".into()),
            }
            .encode(),
        )
        .to_vec();
        cut.pop();
        assert_eq!(Wire::decode(Bytes::from(cut)), Err(Malformed::Short));
    }

    fn round_trip(frame: Frame) {
        let mut bytes = frame.encode();
        let len = bytes.get_u32() as usize;
        assert_eq!(len, bytes.len());
        assert_eq!(Frame::decode(bytes), Ok(frame));
    }

    #[test]
    fn frames_round_trip() {
        round_trip(Frame {
            to: To::Group("room-é".into()),
            published: 12,
            payload: Payload::Text("hello".into()),
        });
        round_trip(Frame {
            to: To::Direct(7),
            published: u64::MAX,
            payload: Payload::Binary(Bytes::from_static(&[0, 1, 2])),
        });
        round_trip(Frame {
            to: To::Group(String::new()),
            published: 0,
            payload: Payload::Text(String::new()),
        });
    }

    #[test]
    fn broken_frames_are_refused() {
        let frame = |kind: u8, group_len: u16, rest: &[u8]| {
            let mut b = BytesMut::new();
            b.put_u8(kind);
            b.put_u8(0);
            b.put_u16(group_len);
            b.put_slice(rest);
            b.freeze()
        };
        assert_eq!(
            Frame::decode(Bytes::from_static(&[1, 0])),
            Err(Malformed::Short)
        );
        assert_eq!(
            Frame::decode(frame(9, 0, &[0; 16])),
            Err(Malformed::Kind(9))
        );
        assert_eq!(
            Frame::decode(frame(1, 9, &[b'a'; 16])),
            Err(Malformed::Short)
        );
        let mut rest = vec![0u8; 16];
        rest.extend_from_slice(&[0xff, 0xfe]);
        assert_eq!(Frame::decode(frame(1, 0, &rest)), Err(Malformed::NotUtf8));
    }
}
