//! Fuzz target `chunked`: arbitrary bytes through
//! `kennel::http::ChunkedDecoder`, whole, in three reads split at
//! fuzzer-chosen points, and one byte at a time.
//!
//! Input: four control bytes, then the body bytes a client sent.
//! - byte 0: `max_body` is 4 × byte 0 (0–1020 bytes), so the 413 is reached;
//! - byte 1: the trailer limit is 8 × byte 1 (0–2040 bytes);
//! - bytes 2–3: the two split points, each a fraction (n/256) of the input.
//!
//! Checks, besides "no panic":
//! - the decoded body never exceeds `max_body`, and `decoded_len` is what
//!   was appended;
//! - split reads and byte-by-byte reads give what the whole input gives:
//!   the same body and leftover when complete, the same body when more
//!   bytes are needed, the same error and the same body so far when
//!   refused;
//! - a complete body decodes the same from just its own bytes, with nothing
//!   left over, and `is_done` says so.
#![no_main]

use bytes::BytesMut;
use kennel::http::{ChunkedDecoder, HttpError};
use kennel_fuzz::cut;
use libfuzzer_sys::fuzz_target;

/// How decoding some bytes ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The body is complete; what followed it.
    Done { leftover: Vec<u8> },
    /// More bytes are needed.
    Incomplete,
    /// Refused.
    Refused(HttpError),
}

fuzz_target!(|data: &[u8]| {
    let Some((control, input)) = data.split_first_chunk::<4>() else {
        return;
    };
    let max_body = 4 * u64::from(control[0]);
    let max_trailers = 8 * usize::from(control[1]);

    let whole = decode(&[input], max_body, max_trailers);
    let (pieces, points) = cut(input, &control[2..4]);
    let split = decode(&pieces, max_body, max_trailers);
    assert_eq!(split, whole, "split at {points:?}");
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let bytewise = decode(&bytes, max_body, max_trailers);
    assert_eq!(bytewise, whole, "byte by byte");

    if let (End::Done { leftover }, body) = &whole {
        let used = input.len() - leftover.len();
        let again = decode(&[&input[..used]], max_body, max_trailers);
        assert_eq!(
            again,
            (End::Done { leftover: vec![] }, body.clone()),
            "the body's own {used} bytes"
        );
    }
});

/// Feeds `reads` one after the other, as the connection task does after
/// each socket read; stops at the end of the body or at an error.
fn decode(reads: &[&[u8]], max_body: u64, max_trailers: usize) -> (End, Vec<u8>) {
    let mut decoder = ChunkedDecoder::new(max_body).with_max_trailers(max_trailers);
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    for (i, read) in reads.iter().enumerate() {
        buf.extend_from_slice(read);
        let result = decoder.decode(&mut buf, &mut out);
        assert!(
            out.len() as u64 <= max_body,
            "{} bytes over {max_body}",
            out.len()
        );
        assert_eq!(decoder.decoded_len(), out.len() as u64);
        match result {
            Ok(true) => {
                assert!(decoder.is_done());
                let mut leftover = buf.to_vec();
                for rest in &reads[i + 1..] {
                    leftover.extend_from_slice(rest);
                }
                return (End::Done { leftover }, out.to_vec());
            }
            Ok(false) => assert!(!decoder.is_done()),
            Err(error) => return (End::Refused(error), out.to_vec()),
        }
    }
    (End::Incomplete, out.to_vec())
}
