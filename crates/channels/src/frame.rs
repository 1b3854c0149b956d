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
//! ...  the payload
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::Payload;

/// What the length prefix and the fixed fields take.
pub(crate) const HEADER: usize = 4 + 1 + 1 + 2 + 8;

/// A message between workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// For every member of `group` the receiving worker holds.
    Group { group: String, payload: Payload },
    /// For the connection with sequence number `seq` in the receiving worker.
    Direct { seq: u64, payload: Payload },
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
        let (kind, group, seq, payload) = match self {
            Self::Group { group, payload } => (1u8, group.as_str(), 0u64, payload),
            Self::Direct { seq, payload } => (2u8, "", *seq, payload),
        };
        let (text, data) = match payload {
            Payload::Text(t) => (0u8, t.as_bytes()),
            Payload::Binary(b) => (1u8, b.as_ref()),
        };
        let body = 1 + 1 + 2 + group.len() + 8 + data.len();
        let mut out = BytesMut::with_capacity(4 + body);
        out.put_u32(body as u32);
        out.put_u8(kind);
        out.put_u8(text);
        out.put_u16(group.len() as u16);
        out.put_slice(group.as_bytes());
        out.put_u64(seq);
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
        if body.len() < group_len + 8 {
            return Err(Malformed::Short);
        }
        let group =
            String::from_utf8(body.split_to(group_len).to_vec()).map_err(|_| Malformed::NotUtf8)?;
        let seq = body.get_u64();
        let payload = match text {
            0 => Payload::Text(String::from_utf8(body.to_vec()).map_err(|_| Malformed::NotUtf8)?),
            _ => Payload::Binary(body),
        };
        match kind {
            1 => Ok(Self::Group { group, payload }),
            2 => Ok(Self::Direct { seq, payload }),
            k => Err(Malformed::Kind(k)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: Frame) {
        let mut bytes = frame.encode();
        let len = bytes.get_u32() as usize;
        assert_eq!(len, bytes.len());
        assert_eq!(Frame::decode(bytes), Ok(frame));
    }

    #[test]
    fn frames_round_trip() {
        round_trip(Frame::Group {
            group: "room-é".into(),
            payload: Payload::Text("hello".into()),
        });
        round_trip(Frame::Direct {
            seq: 7,
            payload: Payload::Binary(Bytes::from_static(&[0, 1, 2])),
        });
        round_trip(Frame::Group {
            group: String::new(),
            payload: Payload::Text(String::new()),
        });
    }

    #[test]
    fn broken_frames_are_refused() {
        assert_eq!(
            Frame::decode(Bytes::from_static(&[1, 0])),
            Err(Malformed::Short)
        );
        assert_eq!(
            Frame::decode(Bytes::from_static(&[9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])),
            Err(Malformed::Kind(9))
        );
        assert_eq!(
            Frame::decode(Bytes::from_static(&[
                1, 0, 0, 9, b'a', 0, 0, 0, 0, 0, 0, 0, 0
            ])),
            Err(Malformed::Short)
        );
        let mut bad = BytesMut::new();
        bad.put_u8(1);
        bad.put_u8(0);
        bad.put_u16(0);
        bad.put_u64(0);
        bad.put_slice(&[0xff, 0xfe]);
        assert_eq!(Frame::decode(bad.freeze()), Err(Malformed::NotUtf8));
    }
}
