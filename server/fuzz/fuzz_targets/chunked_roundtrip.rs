//! Fuzz target `chunked_roundtrip`: the fuzzer's bytes become a body, which
//! is chunked the way RFC 9112 §7.1 writes it (sizes in either case with
//! leading zeros, extensions, trailer lines, then the next request's
//! bytes), and `kennel::http::ChunkedDecoder` must decode it back.
//!
//! Checks:
//! - decoding (whole, and in two reads split at a fuzzer-chosen point)
//!   gives the body back and leaves exactly the bytes after it;
//! - with `max_body` one byte under the body's size the body is refused
//!   with 413, never decoded past the limit.
#![no_main]

use bytes::BytesMut;
use kennel::http::{ChunkedDecoder, HttpError};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Bytes allowed in an extension and a trailer line (visible ASCII but
/// `"`, and space: quoted strings are not generated).
fn text_byte(u: &mut Unstructured<'_>) -> Result<u8> {
    let b = u.int_in_range(0x20u8..=0x7e)?;
    Ok(if b == b'"' { b'x' } else { b })
}

/// A token byte (RFC 9110 `tchar`, letters and digits only here).
fn token_byte(u: &mut Unstructured<'_>) -> Result<u8> {
    const TOKEN: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-";
    Ok(*u.choose(TOKEN)?)
}

/// The encoded body, the decoded body and the bytes after it.
fn build(u: &mut Unstructured<'_>) -> Result<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let mut wire = Vec::new();
    let mut body = Vec::new();
    let chunks = u.int_in_range(0..=8)?;
    for _ in 0..chunks {
        let len = u.int_in_range(1..=300usize)?;
        let data: Vec<u8> = (0..len).map(|_| u.arbitrary()).collect::<Result<_>>()?;
        size_line(u, len as u64, &mut wire)?;
        wire.extend_from_slice(&data);
        wire.extend_from_slice(b"\r\n");
        body.extend_from_slice(&data);
    }
    size_line(u, 0, &mut wire)?;
    for _ in 0..u.int_in_range(0..=3)? {
        let name: Vec<u8> = (0..u.int_in_range(1..=10)?)
            .map(|_| token_byte(u))
            .collect::<Result<_>>()?;
        let value: Vec<u8> = (0..u.int_in_range(0..=20)?)
            .map(|_| text_byte(u))
            .collect::<Result<_>>()?;
        wire.extend_from_slice(&name);
        wire.extend_from_slice(b": ");
        wire.extend_from_slice(&value);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"\r\n");
    let next = u.bytes(u.len().min(64))?.to_vec();
    Ok((wire, body, next))
}

/// Writes a chunk-size line for `size`: hex in either case, up to three
/// leading zeros, optional whitespace and extensions.
fn size_line(u: &mut Unstructured<'_>, size: u64, out: &mut Vec<u8>) -> Result<()> {
    for _ in 0..u.int_in_range(0..=3)? {
        out.push(b'0');
    }
    let hex = if u.arbitrary()? {
        format!("{size:X}")
    } else {
        format!("{size:x}")
    };
    out.extend_from_slice(hex.as_bytes());
    if u.ratio(1, 4)? {
        out.extend_from_slice(if u.arbitrary()? { b" " } else { b"\t" });
    }
    for _ in 0..u.int_in_range(0..=2)? {
        out.push(b';');
        let ext: Vec<u8> = (0..u.int_in_range(1..=8)?)
            .map(|_| token_byte(u))
            .collect::<Result<_>>()?;
        out.extend_from_slice(&ext);
        if u.arbitrary()? {
            out.push(b'=');
            let value: Vec<u8> = (0..u.int_in_range(0..=8)?)
                .map(|_| token_byte(u))
                .collect::<Result<_>>()?;
            out.extend_from_slice(&value);
        }
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(split) = u.arbitrary::<u16>() else {
        return;
    };
    let Ok((wire, body, next)) = build(&mut u) else {
        return;
    };
    let mut stream = wire.clone();
    stream.extend_from_slice(&next);
    let size = body.len() as u64;

    let at = usize::from(split) % (stream.len() + 1);
    for reads in [vec![&stream[..]], vec![&stream[..at], &stream[at..]]] {
        let (result, decoded, leftover) = decode(&reads, size);
        assert_eq!(result, Ok(true), "{:?}", String::from_utf8_lossy(&wire));
        assert_eq!(decoded, body);
        assert_eq!(leftover, next);
    }
    if size > 0 {
        let (result, decoded, _) = decode(&[&stream], size - 1);
        assert_eq!(result, Err(HttpError::BodyTooLarge { limit: size - 1 }));
        assert!(decoded.len() < body.len());
    }
});

/// Feeds `reads` in turn until the body is complete or refused; returns
/// the last result, the decoded bytes and what is left (unread reads
/// included).
fn decode(
    reads: &[&[u8]],
    max_body: u64,
) -> (std::result::Result<bool, HttpError>, Vec<u8>, Vec<u8>) {
    let mut decoder = ChunkedDecoder::new(max_body);
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    let mut result = Ok(false);
    for (i, read) in reads.iter().enumerate() {
        buf.extend_from_slice(read);
        result = decoder.decode(&mut buf, &mut out);
        if result != Ok(false) {
            let mut leftover = buf.to_vec();
            for rest in &reads[i + 1..] {
                leftover.extend_from_slice(rest);
            }
            return (result, out.to_vec(), leftover);
        }
    }
    (result, out.to_vec(), buf.to_vec())
}
