//! Fuzzes `kennel_handler::websocket::FrameReader` with arbitrary client
//! bytes, delivered in two reads: it must never panic, and whatever it
//! yields must respect the protocol's and the reader's limits.
#![no_main]

use bytes::BytesMut;
use kennel_handler::websocket::{FrameReader, Opcode, MAX_CONTROL_PAYLOAD};
use libfuzzer_sys::fuzz_target;

/// A small limit, so the fuzzer reaches `MessageTooBig` and reassembly
/// across fragments with short inputs.
const MAX_MESSAGE_SIZE: usize = 256;

fuzz_target!(|data: &[u8]| {
    // The first byte picks where the input is split into two reads.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split) % (rest.len() + 1);
    let mut reader = FrameReader::new(MAX_MESSAGE_SIZE);
    let mut buf = BytesMut::new();
    for piece in [&rest[..at], &rest[at..]] {
        buf.extend_from_slice(piece);
        loop {
            match reader.read(&mut buf) {
                Ok(Some(message)) => {
                    assert_ne!(message.opcode, Opcode::Continuation);
                    assert_eq!(message.flags & 0x80, 0x80, "FIN forced in FLAGS");
                    assert_eq!(message.flags & 0x0F, message.opcode.as_u8());
                    let limit = if message.opcode.is_control() {
                        MAX_CONTROL_PAYLOAD
                    } else {
                        MAX_MESSAGE_SIZE
                    };
                    assert!(message.payload.len() <= limit);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
