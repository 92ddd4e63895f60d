//! Byte ranges (RFC 9110 §14): planning a `Range` header against a
//! representation's size, and the text a ranged response carries
//! (`Content-Range` values, `multipart/byteranges` part headers).
//!
//! Owns which ranges a request gets ([`plan_ranges`], with the
//! [`MAX_RANGES`] bound and the overlap rule) and how they are written
//! ([`ContentRange`], [`Byteranges`]). Does not own whether a `Range`
//! applies at all (the method, `If-Range`: see
//! [`conditional`](super::conditional)), the body's bytes, or choosing a
//! multipart boundary; does no I/O.
//!
//! Called by the Dir handler ([`crate::dir`]); the proxy is to use it too.

use std::fmt;

use super::{list_elements, trim_ows};

/// Most ranges honoured in one `Range` header; a request with more gets the
/// full 200. Default 16: real clients (PDF readers, media players, download
/// resumers) ask for one or a handful, while thousands of tiny or
/// overlapping ranges are a known way to make a server do much work for a
/// short request (RFC 9110 §14.2, CVE-2011-3192).
pub const MAX_RANGES: usize = 16;

/// What a `Range` header asks of a representation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// Serve the whole representation: no usable `Range` (invalid syntax,
    /// another unit, more than [`MAX_RANGES`] ranges, several ranges that
    /// add up to more than the size).
    Full,
    /// No range overlaps the representation: 416.
    Unsatisfiable,
    /// These `(offset, len)` ranges, in the order asked, none empty, each
    /// inside the representation.
    Some(Vec<(u64, u64)>),
}

/// Plans a `Range` header value against a representation of `size` bytes
/// (RFC 9110 §14.1.2): `bytes=` (any case) then a comma-separated list of
/// `a-b`, `a-` and `-n`. Ranges past the end are dropped; a last position
/// past the end is clamped; numbers too large for a `u64` saturate.
pub fn plan_ranges(value: &[u8], size: u64) -> Ranges {
    let value = trim_ows(value);
    let Some(set) = value
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case(b"bytes="))
        .map(|_| &value[6..])
    else {
        return Ranges::Full;
    };
    let mut specs = 0;
    let mut ranges = Vec::new();
    for spec in list_elements(set) {
        if spec.is_empty() {
            continue;
        }
        specs += 1;
        if specs > MAX_RANGES {
            return Ranges::Full;
        }
        let Some(dash) = spec.iter().position(|&b| b == b'-') else {
            return Ranges::Full;
        };
        let (first, last) = (&spec[..dash], &spec[dash + 1..]);
        let range = if first.is_empty() {
            let Some(suffix) = digits(last) else {
                return Ranges::Full;
            };
            let n = suffix.min(size);
            (n > 0).then(|| (size - n, n))
        } else {
            let Some(first) = digits(first) else {
                return Ranges::Full;
            };
            let last = if last.is_empty() {
                u64::MAX
            } else {
                match digits(last) {
                    Some(last) if last >= first => last,
                    _ => return Ranges::Full,
                }
            };
            (first < size).then(|| (first, last.min(size - 1) - first + 1))
        };
        ranges.extend(range);
    }
    if specs == 0 {
        return Ranges::Full;
    }
    if ranges.is_empty() {
        return Ranges::Unsatisfiable;
    }
    if ranges.len() > 1 {
        // Checked: near `u64::MAX` a few ranges add up to more than a u64.
        let total = ranges
            .iter()
            .try_fold(0u64, |total, &(_, n)| total.checked_add(n));
        if total.is_none_or(|total| total > size) {
            return Ranges::Full;
        }
    }
    Ranges::Some(ranges)
}

/// A run of ASCII digits as a number (saturating at `u64::MAX`); `None`
/// if empty or not all digits.
fn digits(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// A `Content-Range` value (RFC 9110 §14.4), written by its `Display`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes <first>-<last>/<size>`: `len` (at least 1) bytes from
    /// `offset` of a representation of `size` bytes.
    Bytes {
        /// Offset of the first byte.
        offset: u64,
        /// Number of bytes, at least 1.
        len: u64,
        /// The whole representation's size.
        size: u64,
    },
    /// `bytes */<size>`, sent with a 416.
    Unsatisfied {
        /// The whole representation's size.
        size: u64,
    },
}

impl fmt::Display for ContentRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ContentRange::Bytes { offset, len, size } => {
                write!(f, "bytes {offset}-{}/{size}", offset + len - 1)
            }
            ContentRange::Unsatisfied { size } => write!(f, "bytes */{size}"),
        }
    }
}

/// The framing of a `multipart/byteranges` body (RFC 9110 §14.6) with one
/// boundary: the body is, for each range, [`part_header`] then the range's
/// bytes, and at the end [`close_delimiter`].
///
/// [`part_header`]: Byteranges::part_header
/// [`close_delimiter`]: Byteranges::close_delimiter
#[derive(Debug, Clone, Copy)]
pub struct Byteranges<'a> {
    /// The boundary: at most 70 characters from RFC 2046's set, and not
    /// found in the body.
    pub boundary: &'a str,
    /// The `Content-Type` of every part (the representation's).
    pub part_type: &'a str,
    /// The whole representation's size.
    pub size: u64,
}

impl Byteranges<'_> {
    /// The response's `Content-Type` value.
    pub fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    /// The delimiter and headers before the part for `len` bytes from
    /// `offset`; `first` for the first part (whose delimiter has no
    /// leading CRLF).
    pub fn part_header(&self, first: bool, offset: u64, len: u64) -> String {
        let separator = if first { "" } else { "\r\n" };
        let range = ContentRange::Bytes {
            offset,
            len,
            size: self.size,
        };
        format!(
            "{separator}--{}\r\nContent-Type: {}\r\nContent-Range: {range}\r\n\r\n",
            self.boundary, self.part_type
        )
    }

    /// The close delimiter that ends the body.
    pub fn close_delimiter(&self) -> String {
        format!("\r\n--{}--\r\n", self.boundary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_plans() {
        assert_eq!(plan_ranges(b"bytes=0-0", 1), Ranges::Some(vec![(0, 1)]));
        assert_eq!(plan_ranges(b"bytes=0-", 0), Ranges::Unsatisfiable);
        assert_eq!(plan_ranges(b"bytes=-1", 0), Ranges::Unsatisfiable);
        assert_eq!(
            plan_ranges(b"bytes=0-18446744073709551615", 10),
            Ranges::Some(vec![(0, 10)])
        );
        assert_eq!(
            plan_ranges(b"bytes=1-1,3-3", 10),
            Ranges::Some(vec![(1, 1), (3, 1)])
        );
        assert_eq!(
            plan_ranges(b"bytes=1-1,30-", 10),
            Ranges::Some(vec![(1, 1)])
        );
        assert_eq!(plan_ranges(b"bytes=0-1,2", 10), Ranges::Full);
    }

    /// Found by the `range` fuzz target: the sum of several ranges of a
    /// huge representation overflowed (a panic with overflow checks on).
    #[test]
    fn ranges_of_a_huge_representation_do_not_overflow() {
        let max = u64::MAX;
        let value = format!("bytes=-{max},-{max}");
        assert_eq!(plan_ranges(value.as_bytes(), max), Ranges::Full);
        assert_eq!(
            plan_ranges(b"bytes=0-0,-1", max),
            Ranges::Some(vec![(0, 1), (max - 1, 1)])
        );
    }

    #[test]
    fn at_most_max_ranges() {
        let specs = |n: usize| {
            let list: Vec<String> = (0..n).map(|i| format!("{i}-{i}")).collect();
            format!("bytes={}", list.join(","))
        };
        let Ranges::Some(ranges) = plan_ranges(specs(MAX_RANGES).as_bytes(), 100) else {
            panic!("{MAX_RANGES} ranges are planned");
        };
        assert_eq!(ranges.len(), MAX_RANGES);
        assert_eq!(
            plan_ranges(specs(MAX_RANGES + 1).as_bytes(), 100),
            Ranges::Full
        );
    }

    #[test]
    fn content_range_and_multipart_text() {
        let range = ContentRange::Bytes {
            offset: 5,
            len: 3,
            size: 20,
        };
        assert_eq!(range.to_string(), "bytes 5-7/20");
        assert_eq!(
            ContentRange::Unsatisfied { size: 0 }.to_string(),
            "bytes */0"
        );
        let multipart = Byteranges {
            boundary: "b",
            part_type: "text/plain",
            size: 20,
        };
        assert_eq!(multipart.content_type(), "multipart/byteranges; boundary=b");
        assert_eq!(
            multipart.part_header(true, 0, 2),
            "--b\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/20\r\n\r\n"
        );
        assert_eq!(
            multipart.part_header(false, 19, 1),
            "\r\n--b\r\nContent-Type: text/plain\r\nContent-Range: bytes 19-19/20\r\n\r\n"
        );
        assert_eq!(multipart.close_delimiter(), "\r\n--b--\r\n");
    }

    /// Checks what every plan promises for `size`.
    fn check_plan(plan: &Ranges, size: u64) -> Result<(), proptest::test_runner::TestCaseError> {
        if let Ranges::Some(ranges) = plan {
            proptest::prop_assert!(!ranges.is_empty() && ranges.len() <= MAX_RANGES);
            for &(offset, len) in ranges {
                proptest::prop_assert!(len > 0 && offset + len <= size);
            }
            if ranges.len() > 1 {
                proptest::prop_assert!(ranges.iter().map(|r| r.1).sum::<u64>() <= size);
            }
        }
        Ok(())
    }

    proptest::proptest! {
        /// Whatever the header says, a plan stays inside the file, has no
        /// empty range, and never asks for more than the file plus one
        /// range's worth when there are several.
        #[test]
        fn range_plans_stay_inside_the_file(
            value in proptest::string::bytes_regex("(?s-u)(bytes=)?[-0-9, a-z]{0,40}").unwrap(),
            size in 0u64..100,
        ) {
            check_plan(&plan_ranges(&value, size), size)?;
        }

        /// Ranges written from positions inside the file plan back to
        /// themselves (or to the whole file when they add up to more than
        /// it), and the value cut at every byte still plans safely.
        #[test]
        fn written_ranges_plan_back_and_cut_safely(
            specs in proptest::collection::vec((0u64..1000, 1u64..1000), 1..4),
            size in 1u64..200,
        ) {
            let ranges: Vec<(u64, u64)> = specs
                .iter()
                .map(|&(at, n)| (at % size, n.min(size - at % size)))
                .collect();
            let list: Vec<String> = ranges
                .iter()
                .map(|&(offset, len)| format!("{offset}-{}", offset + len - 1))
                .collect();
            let value = format!("bytes={}", list.join(", "));
            let expected = if ranges.len() > 1 && ranges.iter().map(|r| r.1).sum::<u64>() > size {
                Ranges::Full
            } else {
                Ranges::Some(ranges)
            };
            proptest::prop_assert_eq!(plan_ranges(value.as_bytes(), size), expected);
            for cut in 0..=value.len() {
                check_plan(&plan_ranges(&value.as_bytes()[..cut], size), size)?;
            }
        }
    }
}
