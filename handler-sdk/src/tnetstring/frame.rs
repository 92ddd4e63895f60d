//! One tnetstring frame at a time: reading a frame's length, payload and
//! tag, decoding scalar payloads, and the low-level writers.
//!
//! [`value`](super::value) and [`de`](super::de) read through
//! [`read_frame`]; [`ser`](super::ser), [`Value::encode`](super::Value::encode)
//! and hand-written encoders (the request encoder) write through the public
//! `write_*` functions and [`begin_container`] / [`end_container`].

use std::fmt;
use std::io::Write as _;

use super::error::excerpt;
use super::{Error, Tag, MAX_LENGTH_DIGITS};

/// Where a frame is being read: decides how running out of bytes is
/// reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Region {
    /// The frame is the outermost value: running out of input means more
    /// bytes could complete it ([`Error::Incomplete`]).
    Top,
    /// The frame is inside a dict or list: its container's length is fixed,
    /// so running out is a framing error.
    Nested,
}

/// One frame of input: `LEN:PAYLOAD TAG`, with absolute offsets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Frame<'a> {
    /// The type tag.
    pub(crate) tag: Tag,
    /// Where the frame (its length prefix) starts.
    pub(crate) at: usize,
    /// Where the payload starts.
    pub(crate) payload_at: usize,
    /// The payload.
    pub(crate) payload: &'a [u8],
    /// One past the tag: where the next frame starts.
    pub(crate) end: usize,
}

/// Reads the frame starting at `at` in `input`, which must end by `limit`
/// (the input's length at the top, the container payload's end inside one).
/// Checks the length prefix and the tag, not the payload.
///
/// `at <= limit <= input.len()` is required; the function never reads past
/// `limit`.
pub(crate) fn read_frame(
    input: &[u8],
    at: usize,
    limit: usize,
    region: Region,
) -> Result<Frame<'_>, Error> {
    debug_assert!(at <= limit && limit <= input.len());
    let limit = limit.min(input.len());
    let mut len: usize = 0;
    let mut i = at;
    loop {
        let Some(&byte) = input.get(i).filter(|_| i < limit) else {
            // Out of bytes inside the length prefix: the least that could
            // follow is one digit of length 0 (`0:~`), or the `:`, `len`
            // payload bytes and the tag.
            let needed_here = if i == at { 3 } else { len + 2 };
            return Err(short_in_length(region, at, i, needed_here, limit));
        };
        match byte {
            b':' if i == at => return Err(Error::EmptyLength { at }),
            b':' => break,
            b'0'..=b'9' => {
                let digits = i - at;
                if digits >= 1 && input[at] == b'0' {
                    return Err(Error::LengthLeadingZero {
                        at,
                        text: excerpt(&input[at..=i]),
                    });
                }
                if digits == MAX_LENGTH_DIGITS {
                    return Err(Error::LengthTooLong {
                        at,
                        text: excerpt(&input[at..=i]),
                    });
                }
                len = len * 10 + usize::from(byte - b'0');
            }
            _ => {
                return Err(Error::LengthNotDecimal {
                    at,
                    text: excerpt(&input[at..=i]),
                })
            }
        }
        i += 1;
    }
    let payload_at = i + 1;
    let tag_at = payload_at.saturating_add(len);
    if tag_at >= limit {
        return Err(match region {
            Region::Top => Error::Incomplete {
                at: limit,
                needed: tag_at + 1 - limit,
            },
            Region::Nested if tag_at == limit => Error::MissingTag { at: tag_at },
            Region::Nested => Error::LengthBeyondContainer {
                at,
                needed: tag_at + 1 - at,
                available: limit - at,
            },
        });
    }
    let tag_byte = input[tag_at];
    let tag = Tag::from_byte(tag_byte).ok_or(Error::UnknownTag {
        at: tag_at,
        tag: tag_byte,
    })?;
    Ok(Frame {
        tag,
        at,
        payload_at,
        payload: &input[payload_at..tag_at],
        end: tag_at + 1,
    })
}

/// The error for running out of bytes at `i` inside the length prefix of the
/// frame starting at `at`, when `needed_here` more bytes are the least that
/// could complete it.
fn short_in_length(region: Region, at: usize, i: usize, needed_here: usize, limit: usize) -> Error {
    match region {
        Region::Top => Error::Incomplete {
            at: i,
            needed: needed_here,
        },
        Region::Nested => Error::LengthBeyondContainer {
            at,
            needed: i - at + needed_here,
            available: limit - at,
        },
    }
}

/// Decodes an integer payload (`-?[0-9]+` within `i64`) found at `at`.
pub(crate) fn decode_integer(payload: &[u8], at: usize) -> Result<i64, Error> {
    let bad = || Error::BadInteger {
        at,
        text: excerpt(payload),
    };
    let (negative, digits) = match payload.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, payload),
    };
    if digits.is_empty() {
        return Err(bad());
    }
    // Accumulate negatively so i64::MIN, whose magnitude has no positive
    // i64, parses too.
    let mut value: i64 = 0;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return Err(bad());
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_sub(i64::from(byte - b'0')))
            .ok_or_else(bad)?;
    }
    if negative {
        Ok(value)
    } else {
        value.checked_neg().ok_or_else(bad)
    }
}

/// Decodes a float payload found at `at`: a finite decimal number as Rust's
/// `f64` parser reads it (`1`, `-0.5`, `.5`, `1e10`), but not `inf`, `NaN`
/// or anything that overflows to infinity.
pub(crate) fn decode_float(payload: &[u8], at: usize) -> Result<f64, Error> {
    let bad = || Error::BadFloat {
        at,
        text: excerpt(payload),
    };
    let plain = payload
        .iter()
        .all(|b| matches!(b, b'0'..=b'9' | b'+' | b'-' | b'.' | b'e' | b'E'));
    if !plain || !payload.iter().any(u8::is_ascii_digit) {
        return Err(bad());
    }
    // Only ASCII bytes remain, so this cannot fail.
    let text = std::str::from_utf8(payload).map_err(|_| bad())?;
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(bad()),
    }
}

/// Decodes a boolean payload (`true` or `false`) found at `at`.
pub(crate) fn decode_bool(payload: &[u8], at: usize) -> Result<bool, Error> {
    match payload {
        b"true" => Ok(true),
        b"false" => Ok(false),
        _ => Err(Error::BadBoolean {
            at,
            text: excerpt(payload),
        }),
    }
}

/// Checks a null payload (always empty) found at `at`.
pub(crate) fn check_null(payload: &[u8], at: usize) -> Result<(), Error> {
    if payload.is_empty() {
        Ok(())
    } else {
        Err(Error::BadNull {
            at,
            len: payload.len(),
        })
    }
}

/// How many length digits [`begin_container`] reserves: 3.
///
/// A container's length is only known once its payload is written, so
/// [`begin_container`] leaves room for a length of this many digits and
/// [`end_container`] writes the real one there. Payloads of 100–999 bytes —
/// the size of a typical request's header dict — then need no moving at all;
/// shorter or longer ones are moved once by the difference (one `memmove` of
/// the payload).
pub const CONTAINER_LENGTH_RESERVE: usize = 3;

/// The placeholder [`begin_container`] writes: [`CONTAINER_LENGTH_RESERVE`]
/// digits and the `:`.
const PLACEHOLDER: [u8; CONTAINER_LENGTH_RESERVE + 1] = *b"000:";

/// The position of a container begun with [`begin_container`], to be passed
/// to [`end_container`].
#[derive(Debug)]
#[must_use = "a container begun must be ended with end_container"]
pub struct Mark {
    /// Where the placeholder length starts in `out`.
    start: usize,
}

impl Mark {
    /// How many payload bytes have been written after the placeholder.
    pub(crate) fn payload_len(&self, out: &[u8]) -> usize {
        out.len().saturating_sub(self.start + PLACEHOLDER.len())
    }
}

/// Which container [`end_container`] closes: decides the tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// A dict (`}`): the payload must be key, value, key, value, … with
    /// string keys.
    Dict,
    /// A list (`]`).
    List,
    /// A string (`,`) whose payload is written in pieces, such as the JSON
    /// text of a request's header block.
    String,
}

/// Starts a dict or list in `out`: writes a placeholder length prefix and
/// returns where it is. Write the elements after it with the other writers,
/// then call [`end_container`] with the returned [`Mark`].
///
/// Containers nest: begin the inner one after the outer and end it before.
///
/// Cost: no allocation beyond `out` growing. When the payload is not
/// 100–999 bytes long (see [`CONTAINER_LENGTH_RESERVE`]), [`end_container`]
/// moves it once, so a value nested `n` deep may be moved up to `n` times.
///
/// ```
/// use kennel_handler::tnetstring::{begin_container, end_container, write_integer, write_string, Container};
///
/// let mut out = Vec::new();
/// let list = begin_container(&mut out);
/// write_string(&mut out, b"kill");
/// let args = begin_container(&mut out);
/// write_string(&mut out, b"id");
/// write_integer(&mut out, 42);
/// end_container(&mut out, args, Container::Dict);
/// end_container(&mut out, list, Container::List);
/// assert_eq!(out, b"21:4:kill,10:2:id,2:42#}]");
/// ```
pub fn begin_container(out: &mut Vec<u8>) -> Mark {
    let start = out.len();
    out.extend_from_slice(&PLACEHOLDER);
    Mark { start }
}

/// Ends the container begun at `mark`: appends its tag and writes its real
/// length in front of it.
///
/// A payload longer than [`MAX_LENGTH`](super::MAX_LENGTH) gets a length
/// with more than nine digits, which parsers reject; [`to_vec`](super::to_vec)
/// checks for that, these writers do not.
///
/// # Panics
///
/// If `out` was truncated into or before the placeholder written by
/// [`begin_container`] since `mark` was taken.
pub fn end_container(out: &mut Vec<u8>, mark: Mark, kind: Container) {
    let payload_start = mark.start + PLACEHOLDER.len();
    assert!(
        payload_start <= out.len(),
        "tnetstring::end_container: the output was truncated below its mark"
    );
    let payload_len = out.len() - payload_start;
    out.push(match kind {
        Container::Dict => Tag::Dict.byte(),
        Container::List => Tag::List.byte(),
        Container::String => Tag::String.byte(),
    });
    patch_length(out, mark.start, payload_len);
}

/// Replaces the placeholder at `start` with `payload_len` and `:`, moving
/// everything after the placeholder if the length has a different width.
fn patch_length(out: &mut Vec<u8>, start: usize, payload_len: usize) {
    let mut buf = [0u8; 20];
    let digits = decimal(payload_len as u64, &mut buf);
    let payload_start = start + PLACEHOLDER.len();
    let new_payload_start = start + digits.len() + 1;
    let old_end = out.len();
    if new_payload_start < payload_start {
        out.copy_within(payload_start..old_end, new_payload_start);
        out.truncate(old_end - (payload_start - new_payload_start));
    } else if new_payload_start > payload_start {
        out.resize(old_end + (new_payload_start - payload_start), 0);
        out.copy_within(payload_start..old_end, new_payload_start);
    }
    out[start..start + digits.len()].copy_from_slice(digits);
    out[start + digits.len()] = b':';
}

/// Writes `s` as a string: `LEN:s,`.
pub fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    write_frame(out, s, Tag::String);
}

/// Writes `n` as an integer: `LEN:n#`.
pub fn write_integer(out: &mut Vec<u8>, n: i64) {
    let mut buf = [0u8; 20];
    let start = if n < 0 {
        let digits = decimal(n.unsigned_abs(), &mut buf).len();
        let start = buf.len() - digits - 1;
        buf[start] = b'-';
        start
    } else {
        buf.len() - decimal(n as u64, &mut buf).len()
    };
    write_frame(out, &buf[start..], Tag::Integer);
}

/// Writes `f` as a float: `LEN:f^`, with Rust's shortest decimal form that
/// reads back as the same `f64` (`1.5`, `-0`, `100000000000000000000`;
/// never an exponent).
///
/// # Errors
///
/// [`Error::NonFiniteFloat`] for NaN and the infinities, which have no
/// decimal form; `out` is then unchanged.
pub fn write_float(out: &mut Vec<u8>, f: f64) -> Result<(), Error> {
    if !f.is_finite() {
        return Err(Error::NonFiniteFloat { value: f });
    }
    write_display_float(out, f);
    Ok(())
}

/// Writes an already-checked finite float (`f32` or `f64`) with its
/// `Display` form, the shortest that round-trips.
pub(crate) fn write_display_float(out: &mut Vec<u8>, f: impl fmt::Display) {
    let start = out.len();
    out.extend_from_slice(&PLACEHOLDER);
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{f}");
    let payload_len = out.len() - start - PLACEHOLDER.len();
    out.push(Tag::Float.byte());
    patch_length(out, start, payload_len);
}

/// Writes `b` as a boolean: `4:true!` or `5:false!`.
pub fn write_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"4:true!" } else { b"5:false!" });
}

/// Writes a null: `0:~`.
pub fn write_null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0:~");
}

/// Writes one frame whose payload is already at hand.
pub(crate) fn write_frame(out: &mut Vec<u8>, payload: &[u8], tag: Tag) {
    let mut buf = [0u8; 20];
    let digits = decimal(payload.len() as u64, &mut buf);
    out.reserve(digits.len() + payload.len() + 2);
    out.extend_from_slice(digits);
    out.push(b':');
    out.extend_from_slice(payload);
    out.push(tag.byte());
}

/// Formats `n` in decimal at the end of `buf`, returning the digits.
/// Formats `n` in decimal into the end of `buf`; returns the digits.
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(input: &[u8]) -> Result<Frame<'_>, Error> {
        read_frame(input, 0, input.len(), Region::Top)
    }

    #[test]
    fn reads_a_frame() {
        let f = frame(b"5:hello,rest").unwrap();
        assert_eq!(f.tag, Tag::String);
        assert_eq!(f.payload, b"hello");
        assert_eq!((f.at, f.payload_at, f.end), (0, 2, 8));
    }

    #[test]
    fn length_errors() {
        assert_eq!(frame(b":~"), Err(Error::EmptyLength { at: 0 }));
        assert_eq!(
            frame(b"12a:"),
            Err(Error::LengthNotDecimal {
                at: 0,
                text: "12a".into()
            })
        );
        assert_eq!(
            frame(b"-1:"),
            Err(Error::LengthNotDecimal {
                at: 0,
                text: "-".into()
            })
        );
        assert_eq!(
            frame(b"01:a,"),
            Err(Error::LengthLeadingZero {
                at: 0,
                text: "01".into()
            })
        );
        assert_eq!(
            frame(b"1234567890:"),
            Err(Error::LengthTooLong {
                at: 0,
                text: "1234567890".into()
            })
        );
        // Nine digits is allowed: the error is only that the data is missing.
        assert_eq!(
            frame(b"999999999:"),
            Err(Error::Incomplete {
                at: 10,
                needed: 1_000_000_000
            })
        );
    }

    #[test]
    fn incomplete_counts_needed_bytes() {
        assert_eq!(frame(b""), Err(Error::Incomplete { at: 0, needed: 3 }));
        assert_eq!(frame(b"5"), Err(Error::Incomplete { at: 1, needed: 7 }));
        assert_eq!(frame(b"5:he"), Err(Error::Incomplete { at: 4, needed: 4 }));
        assert_eq!(
            frame(b"5:hello"),
            Err(Error::Incomplete { at: 7, needed: 1 })
        );
    }

    #[test]
    fn nested_shortfalls_are_framing_errors() {
        let input = b"5:hello";
        assert_eq!(
            read_frame(input, 0, input.len(), Region::Nested),
            Err(Error::MissingTag { at: 7 })
        );
        assert_eq!(
            read_frame(b"9:ab,", 0, 5, Region::Nested),
            Err(Error::LengthBeyondContainer {
                at: 0,
                needed: 12,
                available: 5
            })
        );
        assert_eq!(
            read_frame(b"12", 0, 2, Region::Nested),
            Err(Error::LengthBeyondContainer {
                at: 0,
                needed: 16,
                available: 2
            })
        );
    }

    #[test]
    fn unknown_tag() {
        assert_eq!(frame(b"1:ax"), Err(Error::UnknownTag { at: 3, tag: b'x' }));
    }

    #[test]
    fn integers() {
        assert_eq!(decode_integer(b"42", 0), Ok(42));
        assert_eq!(decode_integer(b"-7", 0), Ok(-7));
        assert_eq!(decode_integer(b"007", 0), Ok(7));
        assert_eq!(decode_integer(b"-9223372036854775808", 0), Ok(i64::MIN));
        assert_eq!(decode_integer(b"9223372036854775807", 0), Ok(i64::MAX));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"1.0",
            b"0x10",
            b"9223372036854775808",
            b"-9223372036854775809",
        ] {
            assert!(
                matches!(decode_integer(bad, 5), Err(Error::BadInteger { at: 5, .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn floats() {
        assert_eq!(decode_float(b"1.5", 0), Ok(1.5));
        assert_eq!(decode_float(b"-0.25", 0), Ok(-0.25));
        assert_eq!(decode_float(b"3", 0), Ok(3.0));
        assert_eq!(decode_float(b"1e3", 0), Ok(1000.0));
        assert_eq!(decode_float(b".5", 0), Ok(0.5));
        assert_eq!(decode_float(b"2.500000", 0), Ok(2.5));
        for bad in [
            &b""[..],
            b".",
            b"-",
            b"e5",
            b"inf",
            b"NaN",
            b"infinity",
            b"1e400",
            b"1.5f",
            b" 1",
            b"1..2",
        ] {
            assert!(
                matches!(decode_float(bad, 2), Err(Error::BadFloat { at: 2, .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn booleans_and_null() {
        assert_eq!(decode_bool(b"true", 0), Ok(true));
        assert_eq!(decode_bool(b"false", 0), Ok(false));
        assert!(decode_bool(b"True", 0).is_err());
        assert!(decode_bool(b"tru", 0).is_err());
        assert_eq!(check_null(b"", 0), Ok(()));
        assert_eq!(check_null(b"x", 3), Err(Error::BadNull { at: 3, len: 1 }));
    }

    #[test]
    fn scalar_writers() {
        let mut out = Vec::new();
        write_string(&mut out, b"hello");
        write_integer(&mut out, 0);
        write_integer(&mut out, -42);
        write_integer(&mut out, i64::MIN);
        write_bool(&mut out, true);
        write_bool(&mut out, false);
        write_null(&mut out);
        write_float(&mut out, 1.5).unwrap();
        write_float(&mut out, -0.0).unwrap();
        assert_eq!(
            out,
            &b"5:hello,1:0#3:-42#20:-9223372036854775808#4:true!5:false!0:~3:1.5^2:-0^"[..]
        );
        assert_eq!(
            write_float(&mut out, f64::NAN).map_err(|e| e.to_string()),
            Err("tnetstring encode: float NaN is not finite".to_string())
        );
        assert!(write_float(&mut out, f64::NEG_INFINITY).is_err());
    }

    #[test]
    fn containers_of_every_length_width() {
        // 0, 1, 2, 3, 4 and 5 digit payload lengths: shifting left, none and
        // right must all give the plain encoding.
        for len in [0usize, 5, 10, 99, 100, 999, 1000, 12_345] {
            let item = vec![b'x'; len];
            let mut out = b"prefix".to_vec();
            let mark = begin_container(&mut out);
            out.extend_from_slice(&item);
            end_container(&mut out, mark, Container::List);
            let mut expected = b"prefix".to_vec();
            write_frame(&mut expected, &item, Tag::List);
            assert_eq!(out, expected, "payload length {len}");
        }
    }

    #[test]
    fn nested_containers() {
        let mut out = Vec::new();
        let outer = begin_container(&mut out);
        let inner = begin_container(&mut out);
        end_container(&mut out, inner, Container::List);
        write_string(&mut out, b"x-dup");
        let list = begin_container(&mut out);
        write_string(&mut out, b"a");
        write_string(&mut out, b"b");
        end_container(&mut out, list, Container::List);
        end_container(&mut out, outer, Container::List);
        assert_eq!(out, b"22:0:]5:x-dup,8:1:a,1:b,]]");
    }
}
