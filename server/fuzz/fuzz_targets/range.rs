//! Fuzz target `range`: arbitrary bytes as a `Range` header value through
//! `kennel::http::range::plan_ranges`, against a size the fuzzer picks.
//!
//! Input: one control byte, then the size (bytes 1–8), then the value.
//! Control bit 0 set: the size is the eight bytes as a little-endian `u64`
//! (any size, up to `u64::MAX`); clear: only their first byte counts
//! (0–255, where most ranges land inside or across the end).
//!
//! Checks, besides "no panic":
//! - a plan has 1 to `MAX_RANGES` ranges, none empty, each inside the size
//!   (`offset + len <= size`, computed without overflow), and several
//!   ranges add up to at most the size;
//! - each planned range, written back as `bytes=first-last`, plans to
//!   exactly itself, and its `Content-Range` text says the same positions;
//! - a plan from a value with more than `MAX_RANGES` non-empty elements is
//!   `Full`.
#![no_main]

use kennel::http::range::{plan_ranges, Byteranges, ContentRange, Ranges, MAX_RANGES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((control, rest)) = data.split_first_chunk::<9>() else {
        return;
    };
    let raw = u64::from_le_bytes(control[1..9].try_into().expect("8 bytes"));
    let size = if control[0] & 1 != 0 {
        raw
    } else {
        u64::from(control[1])
    };
    let value = rest;

    let plan = plan_ranges(value, size);
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !ows(b)).unwrap_or(value.len());
    let trimmed = &value[start..];
    let elements = match trimmed.get(..6) {
        Some(unit) if unit.eq_ignore_ascii_case(b"bytes=") => trimmed[6..]
            .split(|&b| b == b',')
            .filter(|e| !e.iter().all(ows))
            .count(),
        _ => 0,
    };
    if elements > MAX_RANGES {
        assert_eq!(plan, Ranges::Full, "{elements} elements planned");
    }
    let Ranges::Some(ranges) = plan else {
        return;
    };
    assert!(!ranges.is_empty() && ranges.len() <= MAX_RANGES);
    let mut total: u64 = 0;
    for &(offset, len) in &ranges {
        assert!(len > 0, "empty range planned");
        let end = offset.checked_add(len).expect("range end overflows");
        assert!(end <= size, "range {offset}+{len} past size {size}");
        total = total.saturating_add(len);

        let last = end - 1;
        let again = plan_ranges(format!("bytes={offset}-{last}").as_bytes(), size);
        assert_eq!(again, Ranges::Some(vec![(offset, len)]));
        let text = ContentRange::Bytes { offset, len, size }.to_string();
        assert_eq!(text, format!("bytes {offset}-{last}/{size}"));
        let part = Byteranges {
            boundary: "b",
            part_type: "text/plain",
            size,
        }
        .part_header(false, offset, len);
        assert!(part.contains(&text));
    }
    if ranges.len() > 1 {
        assert!(
            total <= size,
            "{} ranges of {total} bytes in {size}",
            ranges.len()
        );
    }
});
