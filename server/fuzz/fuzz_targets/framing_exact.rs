//! Fuzz target `framing_exact`: responses built from the fuzzer's choices,
//! whose length is known, through `kennel::http::framing::ResponseScanner`.
//!
//! Input (read with `arbitrary::Unstructured`): a split point, then the
//! response: up to two interim `1xx` responses (not `101`); HTTP/1.0 or
//! 1.1; a final status; extra header lines; `Content-Length` (any case,
//! optional whitespace, sometimes sent twice with the same value) or
//! `Transfer-Encoding: chunked` with the body in chunks (extensions,
//! trailers); CRLF or bare LF on each line; sometimes a `HEAD` request or a
//! 204/304, which have no body. The bytes after it (the next response) are
//! arbitrary.
//!
//! Checks: the response is complete after exactly its own bytes (interim
//! responses, head and body) with its final status, whether the stream
//! comes whole, in two pieces, or byte by byte.
#![no_main]

use kennel::http::framing::{Outcome, ResponseScanner};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const TOKEN: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~";

fn pick(u: &mut Unstructured<'_>, alphabet: &[u8], min: usize, max: usize) -> Result<Vec<u8>> {
    let len = u.int_in_range(min..=max)?;
    (0..len).map(|_| u.choose(alphabet).copied()).collect()
}

/// Visible ASCII, space and tab (a field value or reason phrase).
fn text(u: &mut Unstructured<'_>, max: usize) -> Result<Vec<u8>> {
    let len = u.int_in_range(0..=max)?;
    (0..len)
        .map(|_| {
            let b = u.int_in_range(0x1fu8..=0x7e)?;
            Ok(if b == 0x1f { b'\t' } else { b })
        })
        .collect()
}

fn eol(u: &mut Unstructured<'_>, out: &mut Vec<u8>) -> Result<()> {
    out.extend_from_slice(if u.ratio(1, 4)? { b"\n" } else { b"\r\n" });
    Ok(())
}

/// A name in a random ASCII case.
fn any_case(u: &mut Unstructured<'_>, name: &str) -> Result<Vec<u8>> {
    name.bytes()
        .map(|b| {
            Ok(if u.arbitrary()? {
                b.to_ascii_uppercase()
            } else {
                b.to_ascii_lowercase()
            })
        })
        .collect()
}

/// Extra header lines that do not frame the body.
fn extra_headers(u: &mut Unstructured<'_>) -> Result<Vec<Vec<u8>>> {
    let mut lines = Vec::new();
    for _ in 0..u.int_in_range(0..=5)? {
        let name = pick(u, TOKEN, 1, 12)?;
        if name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding")
        {
            continue;
        }
        let mut line = name;
        line.push(b':');
        line.extend(text(u, 24)?);
        lines.push(line);
    }
    Ok(lines)
}

/// The response (interim ones included), its final status, and whether
/// the request was `HEAD`.
fn build(u: &mut Unstructured<'_>) -> Result<(Vec<u8>, u16, bool)> {
    let mut out = Vec::new();
    for _ in 0..u.int_in_range(0..=2)? {
        let status = *u.choose(&[100u16, 102, 103])?;
        out.extend_from_slice(format!("HTTP/1.1 {status} ").as_bytes());
        out.extend(text(u, 12)?);
        eol(u, &mut out)?;
        for line in extra_headers(u)? {
            out.extend(line);
            eol(u, &mut out)?;
        }
        eol(u, &mut out)?;
    }

    let head_request = u.ratio(1, 8)?;
    let status = if u.ratio(1, 8)? {
        *u.choose(&[204u16, 304])?
    } else {
        match u.int_in_range(200u16..=599)? {
            204 | 304 => 200,
            s => s,
        }
    };
    let bodiless = head_request || status == 204 || status == 304;
    let version = if u.arbitrary()? { "1.1" } else { "1.0" };
    out.extend_from_slice(format!("HTTP/{version} {status} ").as_bytes());
    out.extend(text(u, 16)?);
    eol(u, &mut out)?;

    let body: Vec<u8> = {
        let len = u.int_in_range(0..=512usize)?;
        (0..len).map(|_| u.arbitrary()).collect::<Result<_>>()?
    };
    let chunked = u.arbitrary()?;
    let mut framing_lines = Vec::new();
    if chunked {
        let mut line = any_case(u, "transfer-encoding")?;
        line.extend_from_slice(b": ");
        line.extend(any_case(u, "chunked")?);
        framing_lines.push(line);
    } else {
        for _ in 0..if u.ratio(1, 4)? { 2 } else { 1 } {
            let mut line = any_case(u, "content-length")?;
            line.push(b':');
            line.extend_from_slice(if u.arbitrary()? { b" " } else { b"" });
            line.extend_from_slice(body.len().to_string().as_bytes());
            line.extend_from_slice(if u.arbitrary()? { b" \t" } else { b"" });
            framing_lines.push(line);
        }
    }
    let mut lines = extra_headers(u)?;
    for line in framing_lines {
        let at = u.int_in_range(0..=lines.len())?;
        lines.insert(at, line);
    }
    for line in lines {
        out.extend(line);
        eol(u, &mut out)?;
    }
    eol(u, &mut out)?;

    if bodiless {
        return Ok((out, status, head_request));
    }
    if !chunked {
        out.extend_from_slice(&body);
        return Ok((out, status, head_request));
    }
    let mut rest = &body[..];
    while !rest.is_empty() {
        let n = u.int_in_range(1..=rest.len())?;
        let hex = if u.arbitrary()? {
            format!("{n:X}")
        } else {
            format!("{n:x}")
        };
        out.extend_from_slice(hex.as_bytes());
        if u.ratio(1, 4)? {
            out.push(b';');
            out.extend(pick(u, TOKEN, 1, 8)?);
        }
        eol(u, &mut out)?;
        out.extend_from_slice(&rest[..n]);
        eol(u, &mut out)?;
        rest = &rest[n..];
    }
    out.push(b'0');
    eol(u, &mut out)?;
    for line in extra_headers(u)? {
        out.extend(line);
        eol(u, &mut out)?;
    }
    eol(u, &mut out)?;
    Ok((out, status, head_request))
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(split) = u.arbitrary::<u16>() else {
        return;
    };
    let Ok((response, status, head_request)) = build(&mut u) else {
        return;
    };
    let mut stream = response.clone();
    stream.extend_from_slice(u.take_rest());
    let at = usize::from(split) % (stream.len() + 1);
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    for pieces in [vec![&stream[..]], vec![&stream[..at], &stream[at..]], bytes] {
        assert_eq!(
            first_response(&pieces, head_request),
            Some((response.len(), status)),
            "{:?}",
            String::from_utf8_lossy(&response)
        );
    }
});

/// The length and status of the first response in `pieces`, if complete.
fn first_response(pieces: &[&[u8]], head_request: bool) -> Option<(usize, u16)> {
    let mut scanner = ResponseScanner::new(head_request);
    let mut len = 0;
    for piece in pieces {
        let (n, outcome) = scanner.scan(piece);
        len += n;
        match outcome {
            Some(Outcome::Complete { status }) => return Some((len, status)),
            Some(other) => panic!("{other:?} after {len} bytes"),
            None => {}
        }
    }
    None
}
