//! Fuzz target `head`: arbitrary bytes through `kennel::http::parse_head`,
//! with limits and a split point chosen by the fuzzer.
//!
//! Input: four control bytes, then the bytes a client sent.
//! - bytes 0–1: where the input is split into two reads (little-endian,
//!   modulo its length + 1);
//! - byte 2: bit 7 set means the default [`Limits`]; else `max_head` is
//!   64 × (1 + bits 0–5) (64 B – 4 KiB) and bit 6 is `relaxed_uri`;
//! - byte 3: `max_line` is 16 × (1 + bits 0–5) (16 B – 1 KiB) and bits 6–7
//!   pick `max_headers` from 2, 32 (the stack slots), 40 and 1280.
//!
//! Checks, besides "no panic":
//! - an accepted head also parses with `httparse` (default config) to the
//!   same length, method, target and version, with the same header lines
//!   (values with their optional whitespace trimmed), and its pieces fit
//!   together (`uri` = `path` [`?` `query`]);
//! - the limits hold: no accepted head longer than `max_head`, no line
//!   longer than `max_line`, no more header lines than `max_headers`; an
//!   input longer than `max_head` is never "need more bytes";
//! - `Ok(None)` and errors consume nothing; an accepted head consumes
//!   exactly its bytes;
//! - split into two reads (the first parsed on its own, then again with the
//!   rest) the result is the one of the whole input; a refusal of the first
//!   read has the whole input's status (see `check_prefix_error`); every
//!   proper prefix of an accepted head, in particular the one a byte short,
//!   is `Ok(None)`.
#![no_main]

use bytes::BytesMut;
use kennel::http::head::STACK_HEADERS;
use kennel::http::{parse_head, BodyKind, Head, HttpError, Limits};
use kennel_fuzz::trim_ows;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((control, input)) = data.split_first_chunk::<4>() else {
        return;
    };
    let limits = limits(control[2], control[3]);
    let split = usize::from(u16::from_le_bytes([control[0], control[1]])) % (input.len() + 1);

    let (whole, rest) = parse(input, &limits);
    match &whole {
        Ok(Some(head)) => check_accepted(input, head, &rest, &limits),
        Ok(None) => {
            assert_eq!(rest, input, "Ok(None) consumed bytes");
            assert!(
                input.len() <= limits.max_head,
                "{} bytes over max_head {} and still Ok(None)",
                input.len(),
                limits.max_head
            );
        }
        Err(_) => assert_eq!(rest, input, "an error consumed bytes"),
    }

    // Two reads: the first part alone, then with the rest appended.
    let mut buf = BytesMut::from(&input[..split]);
    let first = parse_head(&mut buf, &limits);
    match first {
        Ok(None) => {
            assert_eq!(buf, &input[..split], "Ok(None) on a prefix consumed bytes");
            buf.extend_from_slice(&input[split..]);
            let second = parse_head(&mut buf, &limits);
            assert_eq!(second, whole, "split at {split} gave another result");
            if let Ok(Some(_)) = second {
                assert_eq!(buf, rest);
            }
        }
        Ok(Some(head)) => {
            // The whole head was in the first read.
            assert_eq!(Ok(Some(head)), whole, "split at {split}");
        }
        Err(error) => check_prefix_error(&error, &whole, split),
    }

    // Every proper prefix of an accepted head needs more bytes.
    if let Ok(Some(head)) = &whole {
        let short = head.wire_len() - 1;
        for end in [short, short / 2] {
            let mut buf = BytesMut::from(&input[..end]);
            assert_eq!(
                parse_head(&mut buf, &limits),
                Ok(None),
                "prefix of {end} of an accepted {}-byte head",
                head.wire_len()
            );
            assert_eq!(buf, &input[..end]);
        }
    }
});

/// The limits the two control bytes pick.
fn limits(a: u8, b: u8) -> Limits {
    if a & 0x80 != 0 {
        return Limits::default();
    }
    Limits {
        max_head: 64 * (1 + usize::from(a & 0x3f)),
        max_line: 16 * (1 + usize::from(b & 0x3f)),
        max_headers: [2, STACK_HEADERS, 40, 1280][usize::from(b >> 6)],
        relaxed_uri: a & 0x40 != 0,
    }
}

/// Parses `input` whole; returns the result and what is left in the buffer.
fn parse(input: &[u8], limits: &Limits) -> (Result<Option<Head>, HttpError>, BytesMut) {
    let mut buf = BytesMut::from(input);
    let result = parse_head(&mut buf, limits);
    (result, buf)
}

/// What must hold of a head accepted from the whole `input`.
fn check_accepted(input: &[u8], head: &Head, rest: &[u8], limits: &Limits) {
    let len = head.wire_len();
    assert_eq!(head.as_bytes(), &input[..len]);
    assert_eq!(rest, &input[len..], "consumed more or less than the head");

    // Limits.
    assert!(len <= limits.max_head, "{len}-byte head accepted");
    assert!(head.header_count() <= limits.max_headers);
    let body = &input[..len];
    let start = body
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(len);
    for line in body[start..].split_inclusive(|&b| b == b'\n') {
        assert!(
            line.len() <= limits.max_line,
            "a {}-byte line accepted, max_line {}",
            line.len(),
            limits.max_line
        );
    }

    // httparse sees the same request.
    let mut slots = vec![httparse::EMPTY_HEADER; len / 3 + 1];
    let mut request = httparse::Request::new(&mut slots);
    let status = request.parse(input);
    assert_eq!(
        status,
        Ok(httparse::Status::Complete(len)),
        "httparse disagrees about a head Kennel accepted"
    );
    assert_eq!(request.method.map(str::as_bytes), Some(head.method()));
    assert_eq!(request.path.map(str::as_bytes), Some(head.target()));
    let version = match request.version {
        Some(0) => kennel::http::Version::Http10,
        Some(1) => kennel::http::Version::Http11,
        other => panic!("httparse version {other:?}"),
    };
    assert_eq!(version, head.version());
    assert_eq!(request.headers.len(), head.header_count());
    for ((name, value), seen) in head.headers().zip(request.headers.iter()) {
        assert_eq!(name, seen.name.as_bytes());
        assert_eq!(value, trim_ows(seen.value));
    }

    // The pieces fit together.
    let mut uri = head.path().to_vec();
    if let Some(query) = head.query() {
        uri.push(b'?');
        uri.extend_from_slice(query);
    }
    assert_eq!(head.uri(), &uri[..], "uri is not path ? query");
    match head.body() {
        BodyKind::Chunked => {
            assert_eq!(head.version(), kennel::http::Version::Http11);
            assert!(head.header("content-length").is_none());
        }
        BodyKind::Length(_) => assert!(head.header("content-length").is_some()),
        BodyKind::None => {}
    }
    if head.version() == kennel::http::Version::Http11 {
        assert!(head.host().is_some(), "HTTP/1.1 head without a host");
    }
}

/// The first of two reads was refused. More bytes cannot make a refused
/// head acceptable, so the whole input must be refused too, with the same
/// status. Only the status: which diagnostic a garbled head gets (say
/// `InvalidLineEnding` or `InvalidHeaderName` for `"\r\0"` against
/// `"\r\0\n\0"`) depends on how far `httparse` got, and is only logged.
///
/// Two documented exceptions, where a head has two faults and the first
/// read shows only one of them:
/// - a read that ends inside a version shaped like `HTTP/x.y` is refused at
///   once as 505 (see `classify_version`), where the whole line may turn
///   out malformed (400);
/// - `httparse`'s refusals (syntax, too many header lines) come before the
///   line-length check, which looks at bytes `httparse` has not refused
///   yet: a request line over `max_line` whose syntax error (or a head whose
///   extra header line) comes after the first read is 414 on the first
///   read and 400 (or 431) on the whole input, and the other way round.
///   So when either refusal is a size limit (414, 431), any status goes.
fn check_prefix_error(error: &HttpError, whole: &Result<Option<Head>, HttpError>, split: usize) {
    let size = |e: &HttpError| matches!(e.status(), 414 | 431);
    match whole {
        Err(HttpError::InvalidVersion) if *error == HttpError::UnsupportedVersion => {}
        Err(e) if size(e) || size(error) => {}
        Err(e) => assert_eq!(
            e.status(),
            error.status(),
            "split at {split}: {error:?} on the prefix, {e:?} on the whole input"
        ),
        Ok(h) => panic!("prefix of {split} refused ({error:?}), whole input gave {h:?}"),
    }
}
