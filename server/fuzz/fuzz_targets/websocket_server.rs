//! Fuzz target `websocket_server`: a client's bytes after the handshake, as
//! the server reads them: through `kennel_handler::websocket::FrameReader`
//! with a small message limit, in reads cut at fuzzer-chosen points (the
//! SDK's `websocket` target uses one cut; this one compares several cuts
//! and byte-by-byte reads with the whole input).
//!
//! Input: a control byte (the message limit is the byte itself, 0–255, so
//! `MessageTooBig` and reassembly are reached with short inputs; the cut
//! count is at most 6, from the low bits of the next byte), the cut points
//! (fractions n/256 of the stream), then the stream.
//!
//! Checks, besides "no panic":
//! - every message respects the limits: a data message at most the limit,
//!   a control frame at most 125 bytes; its opcode is never continuation,
//!   its `FLAGS` has FIN set, no RSV bit, and the opcode in its low bits;
//! - an error's close code is one RFC 6455 §7.4.1 lets a server send for a
//!   bad peer (1002 protocol error, 1007 bad data, 1008 policy, 1009 too
//!   big), and 1009 exactly for `MessageTooBig`;
//! - whole, cut and byte-by-byte reads give the same messages, the same
//!   error (or none), at the same offset in the stream.
#![no_main]

use bytes::BytesMut;
use kennel_fuzz::cut;
use kennel_handler::websocket::{FrameError, FrameReader, Message, Opcode, MAX_CONTROL_PAYLOAD};
use libfuzzer_sys::fuzz_target;

/// What reading a stream gave.
#[derive(Debug, PartialEq, Eq)]
struct Reading {
    messages: Vec<Message>,
    /// The error, and how many bytes of the stream came before its frame.
    error: Option<(FrameError, usize)>,
}

fuzz_target!(|data: &[u8]| {
    let Some((&[limit, cuts], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let limit = usize::from(limit);
    let cuts = usize::from(cuts % 7).min(rest.len());
    let (fractions, stream) = rest.split_at(cuts);
    let (pieces, points) = cut(stream, fractions);

    let whole = read(&[stream], limit);
    assert_eq!(read(&pieces, limit), whole, "cut at {points:?}");
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(read(&bytes, limit), whole, "byte by byte");
});

/// Feeds `pieces` as successive socket reads into one reader.
fn read(pieces: &[&[u8]], limit: usize) -> Reading {
    let mut reader = FrameReader::new(limit);
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut messages = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        fed += piece.len();
        loop {
            match reader.read(&mut buf) {
                Ok(Some(message)) => {
                    check_message(&message, limit);
                    messages.push(message);
                }
                Ok(None) => break,
                Err(error) => {
                    check_error(&error);
                    // The offending frame is still in the buffer.
                    let at = fed - buf.len();
                    return Reading {
                        messages,
                        error: Some((error, at)),
                    };
                }
            }
        }
    }
    Reading {
        messages,
        error: None,
    }
}

fn check_message(message: &Message, limit: usize) {
    assert_ne!(message.opcode, Opcode::Continuation);
    assert_eq!(message.flags & 0x80, 0x80, "FIN forced in FLAGS");
    assert_eq!(message.flags & 0x70, 0, "RSV bits in FLAGS");
    assert_eq!(message.flags & 0x0F, message.opcode.as_u8());
    let max = if message.opcode.is_control() {
        MAX_CONTROL_PAYLOAD
    } else {
        limit
    };
    assert!(
        message.payload.len() <= max,
        "{:?} of {} bytes, limit {max}",
        message.opcode,
        message.payload.len()
    );
}

fn check_error(error: &FrameError) {
    let code = error.close_code();
    assert!(
        matches!(code, 1002 | 1007 | 1008 | 1009),
        "close code {code} for {error:?}"
    );
    assert_eq!(
        matches!(error, FrameError::MessageTooBig { .. }),
        code == 1009,
        "{error:?} closes with {code}"
    );
}
