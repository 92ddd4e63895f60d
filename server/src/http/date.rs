//! The `Date` header value (RFC 9110 §6.6.1), cached per second.
//!
//! [`date()`] is called for every canned response and may be called for
//! every response Kennel frames itself. Formatting a date is cheap but not
//! free, so each thread keeps the last value with the second it was made
//! for: a call reads the clock and, at most once per second per thread,
//! formats anew (with `httpdate`, into a stack buffer: no allocation, no
//! lock, nothing shared between threads).

use std::cell::Cell;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The length of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub const DATE_LEN: usize = 29;

/// The last second `httpdate` can format (9999-12-31T23:59:59Z): a clock
/// set beyond it is clamped rather than panicking.
const LAST_FORMATTABLE: u64 = 253_402_300_799;

thread_local! {
    /// The last second formatted on this thread and its text; `u64::MAX`
    /// marks "none yet".
    static CACHED: Cell<(u64, [u8; DATE_LEN])> = const { Cell::new((u64::MAX, [0; DATE_LEN])) };
}

/// The current time as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`),
/// 29 ASCII bytes, formatted at most once per second on each thread. A
/// clock before 1970 reads as 1970.
pub fn date() -> [u8; DATE_LEN] {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(LAST_FORMATTABLE);
    CACHED.with(|cached| {
        let (at, text) = cached.get();
        if at == secs {
            return text;
        }
        let text = format(secs);
        cached.set((secs, text));
        text
    })
}

/// Formats `secs` after the epoch (at most [`LAST_FORMATTABLE`]).
fn format(secs: u64) -> [u8; DATE_LEN] {
    let when = UNIX_EPOCH + Duration::from_secs(secs);
    let mut text = [0u8; DATE_LEN];
    let mut cursor = &mut text[..];
    // An IMF-fixdate of a year in 1970..=9999 is exactly DATE_LEN bytes.
    let written = write!(cursor, "{}", httpdate::HttpDate::from(when));
    debug_assert!(written.is_ok() && cursor.is_empty());
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_is_an_imf_fixdate_of_now() {
        let before = SystemTime::now() - Duration::from_secs(1);
        let text = date();
        let after = SystemTime::now();
        let text = std::str::from_utf8(&text).unwrap();
        assert!(text.ends_with(" GMT"), "{text}");
        let parsed = httpdate::parse_http_date(text).unwrap();
        assert!(parsed >= before && parsed <= after, "{text}");
        // The cached value comes back the same within the second.
        let again = date();
        let reparsed = httpdate::parse_http_date(std::str::from_utf8(&again).unwrap()).unwrap();
        assert!(reparsed >= parsed);
    }

    #[test]
    fn format_known_dates() {
        assert_eq!(&format(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&format(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&format(LAST_FORMATTABLE), b"Fri, 31 Dec 9999 23:59:59 GMT");
    }
}
