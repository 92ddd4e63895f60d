//! Fuzz target `conditional`: arbitrary bytes as precondition headers
//! through `kennel::http::conditional` (`evaluate`, `if_range_holds`,
//! `entity_tags`, `parse_http_date`).
//!
//! Input: a control byte, then six fields separated by LF (a header value
//! never holds one): the representation's entity tag, `If-Match`,
//! `If-Unmodified-Since`, `If-None-Match`, `If-Modified-Since`, `If-Range`.
//! Control bits 0–3 say which of the four precondition headers are present;
//! bit 4 takes the modification time from the first date that parses
//! (moved by bits 5–7 minus 4 seconds, so equality and both sides of it
//! are reached), else it is 1 700 000 000.
//!
//! Checks, besides "no panic":
//! - no conditions: no precondition; a date header is ignored when its
//!   list counterpart is present; `If-Match: *` never fails; a 412 from
//!   `If-Match`/`If-Unmodified-Since` wins over anything else;
//! - our own tag matches: quoted in `If-Match` and `If-Range`, weak in
//!   `If-None-Match` (304);
//! - `if_range_holds` is date equality for a date, else one strong tag
//!   equal to ours;
//! - a parsed date prints (IMF-fixdate) and parses back to itself, also
//!   with whitespace around it;
//! - `entity_tags` ends, and every tag is a piece of the value.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use kennel::http::conditional::{
    entity_tags, evaluate, if_range_holds, parse_http_date, Conditions, Precondition, Validators,
};
use kennel_fuzz::trim_ows;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let mut fields = rest.split(|&b| b == b'\n');
    let mut next = || fields.next().unwrap_or_default();
    let etag = String::from_utf8_lossy(next()).into_owned();
    let values = [next(), next(), next(), next()];
    let if_range = next();
    let present = |i: usize| (control >> i) & 1 != 0;
    let conditions = Conditions {
        if_match: present(0).then_some(values[0]),
        if_unmodified_since: present(1).then_some(values[1]),
        if_none_match: present(2).then_some(values[2]),
        if_modified_since: present(3).then_some(values[3]),
    };

    for value in values.iter().chain([&if_range]) {
        check_date(value);
        check_tags(value);
    }

    let base = values
        .iter()
        .chain([&if_range])
        .find_map(|v| parse_http_date(v))
        .filter(|_| present(4));
    let mtime = match base {
        Some(date) => (date + u64::from(control >> 5)).saturating_sub(4),
        None => 1_700_000_000,
    };
    let v = Validators { etag: &etag, mtime };

    let result = evaluate(&conditions, &v);
    assert_eq!(evaluate(&Conditions::default(), &v), None);
    if conditions.if_none_match.is_some() {
        let without = Conditions {
            if_modified_since: None,
            ..conditions
        };
        assert_eq!(
            evaluate(&without, &v),
            result,
            "If-Modified-Since not ignored"
        );
    }
    if let Some(if_match) = conditions.if_match {
        let without = Conditions {
            if_unmodified_since: None,
            ..conditions
        };
        assert_eq!(
            evaluate(&without, &v),
            result,
            "If-Unmodified-Since not ignored"
        );
        if trim_ows(if_match) == b"*" {
            assert_ne!(result, Some(Precondition::Failed), "If-Match: * failed");
        }
    }
    let first_half = Conditions {
        if_none_match: None,
        if_modified_since: None,
        ..conditions
    };
    if evaluate(&first_half, &v) == Some(Precondition::Failed) {
        assert_eq!(result, Some(Precondition::Failed), "412 must win");
    }

    // Our own tag, as a client echoes it.
    if !etag.contains('"') {
        let quoted = format!("\"{etag}\"");
        let weak = format!("W/{quoted}");
        let only = |c: Conditions<'_>| evaluate(&c, &v);
        assert_eq!(
            only(Conditions {
                if_match: Some(quoted.as_bytes()),
                ..Conditions::default()
            }),
            None
        );
        assert_eq!(
            only(Conditions {
                if_none_match: Some(weak.as_bytes()),
                ..Conditions::default()
            }),
            Some(Precondition::NotModified)
        );
        assert!(if_range_holds(quoted.as_bytes(), &v));
        assert!(!if_range_holds(weak.as_bytes(), &v));
    }

    let holds = if_range_holds(if_range, &v);
    match parse_http_date(if_range) {
        Some(date) => assert_eq!(holds, date == mtime),
        None => {
            let tags: Vec<_> = entity_tags(if_range).take(2).collect();
            let expected = matches!(&tags[..], [tag] if !tag.weak && tag.opaque == etag.as_bytes());
            assert_eq!(holds, expected);
        }
    }
});

/// A date that parses prints and parses back to itself.
fn check_date(value: &[u8]) {
    let Some(secs) = parse_http_date(value) else {
        return;
    };
    let printed = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
    assert_eq!(parse_http_date(printed.as_bytes()), Some(secs), "{printed}");
    let mut padded = b" \t".to_vec();
    padded.extend_from_slice(value);
    padded.extend_from_slice(b"\t ");
    assert_eq!(parse_http_date(&padded), Some(secs));
}

/// `entity_tags` ends, and yields pieces of the value.
fn check_tags(value: &[u8]) {
    let range = value.as_ptr_range();
    let mut count = 0;
    for tag in entity_tags(value) {
        count += 1;
        assert!(count <= value.len(), "more tags than bytes");
        let piece = tag.opaque.as_ptr_range();
        assert!(
            tag.opaque.is_empty() || (range.start <= piece.start && piece.end <= range.end),
            "a tag that is not part of the value"
        );
    }
}
