//! The properties the fuzz targets in `fuzz/` check for what crosses
//! workers and hosts (see `ferricorn_worker`'s `fuzz` module for the
//! scheme).

use std::cell::RefCell;

use bytes::Bytes;

use crate::frame::{Frame, Wire};
use crate::peers::read_frames;

/// A frame between workers, a message from Redis (the first byte picks
/// which), or a stream of frames as a peer reads it: whatever decodes
/// encodes to bytes that decode the same, and a stream never delivers a
/// frame past its size limit.
pub fn channel_frames(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let bytes = Bytes::copy_from_slice(rest);
    match pick % 3 {
        0 => round_trip(Frame::decode(bytes).ok()),
        1 => {
            let Ok(wire) = Wire::decode(bytes.clone()) else {
                return;
            };
            let mut framed = (wire.body.len() as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(&wire.body);
            let again = Wire::encode(wire.origin, wire.cell, wire.pid, &framed);
            assert_eq!(again, bytes);
            round_trip(Frame::decode(wire.body).ok());
        }
        _ => {
            const MAX: usize = 1024;
            let frames = RefCell::new(Vec::new());
            let deliver = |f: Frame| frames.borrow_mut().push(f);
            thread_local! {
                static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("a runtime");
            }
            let _ = RUNTIME.with(|rt| rt.block_on(read_frames(rest, MAX, &deliver)));
            for frame in frames.take() {
                let encoded = frame.encode();
                assert!(
                    encoded.len() <= MAX + crate::frame::HEADER,
                    "{}",
                    encoded.len()
                );
                round_trip(Some(frame));
            }
        }
    }
}

fn round_trip(frame: Option<Frame>) {
    let Some(frame) = frame else {
        return;
    };
    let mut encoded = frame.encode();
    let _length = bytes::Buf::get_u32(&mut encoded);
    assert_eq!(Frame::decode(encoded), Ok(frame));
}
