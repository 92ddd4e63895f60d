//! Conditional requests (RFC 9110 §13): entity-tag lists, the four
//! precondition headers evaluated in §13.2.2's order, `If-Range`, and
//! HTTP-dates.
//!
//! Owns what the headers mean against a representation's validators — an
//! opaque entity tag and a modification time ([`Validators`]) — given the
//! raw header values as received ([`Conditions`]). Does not own making the
//! validators (the Dir handler makes Mongrel2's `<mtime hex>-<size hex>`
//! tag), writing `ETag` or `Last-Modified`, or the response a failed
//! precondition gets; does no I/O (it reads the clock to ignore a future
//! `If-Modified-Since`).
//!
//! Called by the Dir handler ([`crate::dir`]) for every file response; the
//! proxy is to use it too.
//!
//! Entity tags are accepted as RFC 9110 writes them (`"x"`, `W/"x"`) and,
//! for clients that echo Mongrel2's unquoted `ETag`, as a bare token.
//! [`evaluate`] is for GET and HEAD, the only methods Kennel answers
//! itself: a matching `If-None-Match` is a 304 and `If-Modified-Since`
//! applies (§13.1.2 and §13.1.3 say otherwise for other methods).

use std::time::{SystemTime, UNIX_EPOCH};

use super::trim_ows;

/// The validators of a representation: what its `ETag` and
/// `Last-Modified` are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validators<'a> {
    /// The strong entity tag without its quotes, e.g. `6553f100-14`.
    pub etag: &'a str,
    /// Modification time in whole seconds since the epoch.
    pub mtime: u64,
}

/// The precondition headers of a request, raw bytes as received; `None`
/// when absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conditions<'a> {
    /// `If-Match`.
    pub if_match: Option<&'a [u8]>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<&'a [u8]>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a [u8]>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a [u8]>,
}

/// The outcome of the preconditions that stop a normal answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// 412 Precondition Failed.
    Failed,
    /// 304 Not Modified.
    NotModified,
}

/// Evaluates `If-Match`, `If-Unmodified-Since`, `If-None-Match` and
/// `If-Modified-Since` in RFC 9110 §13.2.2's order for a GET or HEAD of a
/// representation with validators `v`: `None` means answer normally.
///
/// `If-Match` compares strongly, `If-None-Match` weakly; `*` matches any
/// representation. A date header is ignored when its list counterpart is
/// present, when it is not a valid HTTP-date, and (`If-Modified-Since`)
/// when it lies in the future.
pub fn evaluate(conditions: &Conditions<'_>, v: &Validators<'_>) -> Option<Precondition> {
    let etag = v.etag.as_bytes();
    if let Some(value) = conditions.if_match {
        let matches = is_star(value) || entity_tags(value).any(|t| !t.weak && t.opaque == etag);
        if !matches {
            return Some(Precondition::Failed);
        }
    } else if let Some(date) = conditions.if_unmodified_since.and_then(parse_http_date) {
        if v.mtime > date {
            return Some(Precondition::Failed);
        }
    }
    if let Some(value) = conditions.if_none_match {
        let matches = is_star(value) || entity_tags(value).any(|t| t.opaque == etag);
        if matches {
            return Some(Precondition::NotModified);
        }
    } else if let Some(date) = conditions.if_modified_since.and_then(parse_http_date) {
        // A date in the future is invalid (RFC 9110 §13.1.3): ignored.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if date <= now && v.mtime <= date {
            return Some(Precondition::NotModified);
        }
    }
    None
}

/// Whether an `If-Range` value lets the `Range` apply (RFC 9110 §13.1.5):
/// an HTTP-date equal to the modification time, or a single entity tag
/// strongly equal to ours (quoted, or unquoted as Mongrel2 sent it).
pub fn if_range_holds(value: &[u8], v: &Validators<'_>) -> bool {
    if let Some(date) = parse_http_date(value) {
        return date == v.mtime;
    }
    let mut tags = entity_tags(value);
    match (tags.next(), tags.next()) {
        (Some(tag), None) => !tag.weak && tag.opaque == v.etag.as_bytes(),
        _ => false,
    }
}

/// An HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, or the obsolete RFC 850 and
/// asctime forms), surrounding whitespace allowed, as seconds since the
/// epoch; `None` if invalid or before 1970.
pub fn parse_http_date(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(trim_ows(value)).ok()?;
    let time = httpdate::parse_http_date(text).ok()?;
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// One entity tag from an `If-Match`, `If-None-Match` or `If-Range` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityTag<'a> {
    /// Written with `W/`.
    pub weak: bool,
    /// The tag without `W/` and quotes.
    pub opaque: &'a [u8],
}

/// The entity tags in a comma-separated list, in order. Each is `"x"`,
/// `W/"x"`, or — for Mongrel2's unquoted ETag — a bare token ended by a
/// comma or whitespace. An unterminated quote ends the list. `*` is not a
/// tag: check for it first.
pub fn entity_tags(value: &[u8]) -> EntityTags<'_> {
    EntityTags { rest: value }
}

/// The iterator [`entity_tags`] returns.
#[derive(Debug, Clone)]
pub struct EntityTags<'a> {
    /// What is left of the value.
    rest: &'a [u8],
}

impl<'a> Iterator for EntityTags<'a> {
    type Item = EntityTag<'a>;

    fn next(&mut self) -> Option<EntityTag<'a>> {
        loop {
            while let [b' ' | b'\t' | b',', tail @ ..] = self.rest {
                self.rest = tail;
            }
            if self.rest.is_empty() {
                return None;
            }
            let weak = self.rest.starts_with(b"W/");
            if weak {
                self.rest = &self.rest[2..];
            }
            if let [b'"', tail @ ..] = self.rest {
                let Some(end) = tail.iter().position(|&b| b == b'"') else {
                    self.rest = &[];
                    return None;
                };
                self.rest = &tail[end + 1..];
                return Some(EntityTag {
                    weak,
                    opaque: &tail[..end],
                });
            }
            let end = self
                .rest
                .iter()
                .position(|&b| matches!(b, b',' | b' ' | b'\t'))
                .unwrap_or(self.rest.len());
            let (opaque, tail) = self.rest.split_at(end);
            self.rest = tail;
            if !opaque.is_empty() {
                return Some(EntityTag { weak, opaque });
            }
        }
    }
}

/// Whether a header value is `*`.
fn is_star(value: &[u8]) -> bool {
    trim_ows(value) == b"*"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2023-11-14T22:13:20Z.
    const MTIME: u64 = 1_700_000_000;
    const LAST_MODIFIED: &[u8] = b"Tue, 14 Nov 2023 22:13:20 GMT";
    const V: Validators<'static> = Validators {
        etag: "6553f100-14",
        mtime: MTIME,
    };

    fn tags(value: &[u8]) -> Vec<EntityTag<'_>> {
        entity_tags(value).collect()
    }

    #[test]
    fn entity_tag_lists() {
        let tag = |weak, opaque: &'static str| EntityTag {
            weak,
            opaque: opaque.as_bytes(),
        };
        assert_eq!(
            tags(b" \"a\",W/\"b\" ,, c\tW/d,\"e,f\"\"g\""),
            vec![
                tag(false, "a"),
                tag(true, "b"),
                tag(false, "c"),
                tag(true, "d"),
                tag(false, "e,f"),
                tag(false, "g"),
            ]
        );
        assert_eq!(tags(b"\"a\", \"unterminated"), vec![tag(false, "a")]);
        assert_eq!(tags(b""), vec![]);
        assert_eq!(tags(b"\"\""), vec![tag(false, "")]);
    }

    #[test]
    fn preconditions_in_rfc_order() {
        use Precondition::{Failed, NotModified};
        let none = Conditions::default();
        let cases: [(Conditions<'_>, Option<Precondition>); 10] = [
            (none, None),
            (
                Conditions {
                    if_match: Some(b"W/\"6553f100-14\""),
                    ..none
                },
                Some(Failed),
            ),
            (
                Conditions {
                    if_match: Some(b" * "),
                    if_unmodified_since: Some(b"Mon, 01 Jan 2001 00:00:00 GMT"),
                    ..none
                },
                None,
            ),
            (
                Conditions {
                    if_unmodified_since: Some(b"Tue, 14 Nov 2023 22:13:19 GMT"),
                    if_none_match: Some(b"6553f100-14"),
                    ..none
                },
                Some(Failed),
            ),
            (
                Conditions {
                    if_unmodified_since: Some(LAST_MODIFIED),
                    ..none
                },
                None,
            ),
            (
                Conditions {
                    if_none_match: Some(b"W/\"6553f100-14\""),
                    ..none
                },
                Some(NotModified),
            ),
            (
                Conditions {
                    if_none_match: Some(b"\"other\""),
                    if_modified_since: Some(LAST_MODIFIED),
                    ..none
                },
                None,
            ),
            (
                Conditions {
                    if_modified_since: Some(LAST_MODIFIED),
                    ..none
                },
                Some(NotModified),
            ),
            (
                Conditions {
                    if_modified_since: Some(b"Tue, 14 Nov 2023 22:13:19 GMT"),
                    ..none
                },
                None,
            ),
            (
                Conditions {
                    if_modified_since: Some(b"Fri, 01 Jan 9999 00:00:00 GMT"),
                    ..none
                },
                None,
            ),
        ];
        for (conditions, expected) in cases {
            assert_eq!(evaluate(&conditions, &V), expected, "{conditions:?}");
        }
    }

    #[test]
    fn if_range_is_one_strong_tag_or_the_exact_date() {
        assert!(if_range_holds(b"\"6553f100-14\"", &V));
        assert!(if_range_holds(b" 6553f100-14 ", &V));
        assert!(if_range_holds(LAST_MODIFIED, &V));
        assert!(!if_range_holds(b"W/\"6553f100-14\"", &V));
        assert!(!if_range_holds(b"\"6553f100-14\", \"6553f100-14\"", &V));
        assert!(!if_range_holds(b"Wed, 15 Nov 2023 00:00:00 GMT", &V));
        assert!(!if_range_holds(b"", &V));
    }

    #[test]
    fn http_dates_in_all_three_forms() {
        for value in [
            &b"Tue, 14 Nov 2023 22:13:20 GMT"[..],
            b" \tTue, 14 Nov 2023 22:13:20 GMT ",
            b"Tuesday, 14-Nov-23 22:13:20 GMT",
            b"Tue Nov 14 22:13:20 2023",
        ] {
            assert_eq!(parse_http_date(value), Some(MTIME), "{value:?}");
        }
        for value in [&b"yesterday"[..], b"", b"Tue, 14 Nov 2023 22:13:20 \xff"] {
            assert_eq!(parse_http_date(value), None, "{value:?}");
        }
    }

    /// An entity tag: weak or not, and any bytes but `"` (the one byte a
    /// quoted tag cannot hold).
    fn tag_strategy() -> impl proptest::strategy::Strategy<Value = (bool, Vec<u8>)> {
        (
            proptest::bool::ANY,
            proptest::string::bytes_regex("(?s-u)[^\"]{0,8}").unwrap(),
        )
    }

    proptest::proptest! {
        /// A list written with any separators (commas, spaces, tabs)
        /// parses back into the tags it was written from.
        #[test]
        fn written_tag_lists_parse_back(
            list in proptest::collection::vec((tag_strategy(), "[ \t]{0,2},[ \t,]{0,2}"), 0..6),
        ) {
            let mut value = Vec::new();
            for ((weak, opaque), separator) in &list {
                if *weak {
                    value.extend_from_slice(b"W/");
                }
                value.push(b'"');
                value.extend_from_slice(opaque);
                value.push(b'"');
                value.extend_from_slice(separator.as_bytes());
            }
            let parsed = tags(&value);
            proptest::prop_assert_eq!(parsed.len(), list.len());
            for (tag, ((weak, opaque), _)) in parsed.iter().zip(&list) {
                proptest::prop_assert_eq!(tag.weak, *weak);
                proptest::prop_assert_eq!(tag.opaque, &opaque[..]);
            }
        }

        /// Any bytes, cut at every position: each tag is a piece of the
        /// input that does not start with a quote, and every tag of a cut
        /// value but its last is the whole value's tag.
        #[test]
        fn any_value_cut_anywhere_parses_consistently(
            value in proptest::string::bytes_regex("(?s-u)[\"W/, \ta-c\\x00\\xff]{0,24}").unwrap(),
        ) {
            let whole = tags(&value);
            for tag in &whole {
                let start = tag.opaque.as_ptr() as usize - value.as_ptr() as usize;
                proptest::prop_assert!(start + tag.opaque.len() <= value.len());
                proptest::prop_assert!(!tag.opaque.starts_with(b"\""));
            }
            for cut in 0..=value.len() {
                // The last tag of a cut value may be cut short, or be one
                // the whole value does not have (`W/\t` has none, `W` one).
                let part = tags(&value[..cut]);
                if let Some((_, settled)) = part.split_last() {
                    proptest::prop_assert_eq!(Some(settled), whole.get(..settled.len()));
                }
            }
        }
    }
}
