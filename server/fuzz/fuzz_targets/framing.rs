//! Fuzz target `framing`: an arbitrary byte stream (what a handler or a
//! back end sends) through `kennel::http::framing::ResponseScanner`, whole,
//! cut at fuzzer-chosen points, and one byte at a time.
//!
//! Input: a control byte (bit 0: the request was `HEAD`; bits 1–7: how
//! many of the next bytes are cut points, at most 8), the cut points (each
//! a fraction n/256 of the stream), then the stream.
//!
//! The stream is scanned as the connection task does: a new scanner after
//! each complete response, until the bytes run out or a response lasts
//! until close (unframed, or a `101`).
//!
//! Checks, besides "no panic":
//! - `scan` never claims more bytes than it was given, and claims all of
//!   them unless the response is complete;
//! - the bytes attributed to responses add up to the stream's length,
//!   whatever the cut points;
//! - the cut stream and the stream fed byte by byte are framed exactly as
//!   the whole stream: the same responses, lengths, statuses and outcome.
#![no_main]

use kennel::http::framing::{Outcome, ResponseScanner};
use kennel_fuzz::cut;
use libfuzzer_sys::fuzz_target;

/// How a stream was framed: each complete response's length and status,
/// then the bytes of the response still open and what it is (if known).
#[derive(Debug, PartialEq, Eq)]
struct Framing {
    complete: Vec<(usize, u16)>,
    open: usize,
    outcome: Option<Outcome>,
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let head_request = control & 1 != 0;
    let cuts = usize::from(control >> 1).min(8).min(rest.len());
    let (fractions, stream) = rest.split_at(cuts);
    let (pieces, points) = cut(stream, fractions);

    let whole = frame(&[stream], head_request, stream.len());
    assert_eq!(
        frame(&pieces, head_request, stream.len()),
        whole,
        "cut at {points:?}"
    );
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(
        frame(&bytes, head_request, stream.len()),
        whole,
        "byte by byte"
    );
});

/// Scans `pieces` in turn; checks the byte accounting against `total`.
fn frame(pieces: &[&[u8]], head_request: bool, total: usize) -> Framing {
    let mut scanner = ResponseScanner::new(head_request);
    let mut framing = Framing {
        complete: Vec::new(),
        open: 0,
        outcome: None,
    };
    for piece in pieces {
        let mut rest = *piece;
        loop {
            let (n, outcome) = scanner.scan(rest);
            assert!(n <= rest.len(), "claimed {n} of {} bytes", rest.len());
            framing.open += n;
            rest = &rest[n..];
            match outcome {
                Some(Outcome::Complete { status }) => {
                    assert!(
                        framing.open > 0,
                        "a complete response of no bytes (status {status})"
                    );
                    framing.complete.push((framing.open, status));
                    framing.open = 0;
                    framing.outcome = None;
                    scanner = ResponseScanner::new(head_request);
                    assert!(scanner.is_fresh());
                    if rest.is_empty() {
                        break;
                    }
                }
                Some(other) => {
                    assert!(rest.is_empty(), "{other:?} left bytes unclaimed");
                    framing.outcome = Some(other);
                    break;
                }
                None => {
                    assert!(rest.is_empty(), "incomplete but left bytes unclaimed");
                    break;
                }
            }
        }
    }
    let attributed: usize = framing.complete.iter().map(|&(n, _)| n).sum::<usize>() + framing.open;
    assert_eq!(attributed, total, "bytes attributed to responses");
    framing
}
