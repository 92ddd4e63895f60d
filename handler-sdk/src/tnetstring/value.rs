//! The borrowed value tree: [`Value`], [`parse`] and [`parse_prefix`].

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use std::fmt;

use super::frame::{
    begin_container, check_null, decode_bool, decode_float, decode_integer, end_container,
    read_frame, write_bool, write_display_float, write_integer, write_null, write_string,
    Container, Frame, Region,
};
use super::{Error, Tag, MAX_DEPTH};

/// One tnetstring, borrowing its strings from the input.
///
/// Strings are bytes (`&[u8]`), as on the wire: request bodies and header
/// values need not be UTF-8. Use [`Value::as_str`] for text.
///
/// Dicts keep wire order as a list of pairs and may hold a key more than
/// once; [`Value::get`] returns the first.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// `,`: a byte string.
    String(&'a [u8]),
    /// `#`: an integer.
    Integer(i64),
    /// `^`: a float. Parsing only ever gives finite ones.
    Float(f64),
    /// `!`: a boolean.
    Boolean(bool),
    /// `~`: null.
    Null,
    /// `}`: key–value pairs in wire order, duplicates kept.
    Dict(Vec<(&'a [u8], Value<'a>)>),
    /// `]`: the elements in order.
    List(Vec<Value<'a>>),
}

/// Parses `input` as exactly one tnetstring.
///
/// # Errors
///
/// Any malformed input, [`Error::Incomplete`] if it ends early,
/// [`Error::TrailingData`] if bytes follow the value, and
/// [`Error::TooDeep`] past [`MAX_DEPTH`] levels of nesting.
pub fn parse(input: &[u8]) -> Result<Value<'_>, Error> {
    let (value, rest) = parse_prefix(input)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(Error::TrailingData {
            at: input.len() - rest.len(),
            len: rest.len(),
        })
    }
}

/// Parses one tnetstring from the start of `input` and returns it with the
/// bytes after it.
///
/// # Errors
///
/// As [`parse`], except that trailing bytes are returned, not an error.
pub fn parse_prefix(input: &[u8]) -> Result<(Value<'_>, &[u8]), Error> {
    let frame = read_frame(input, 0, input.len(), Region::Top)?;
    let value = decode(input, &frame, 1)?;
    Ok((value, &input[frame.end..]))
}

/// The outermost value at the start of `input`, undecoded: its tag and,
/// for a string, its payload; a dict's pairs come from [`DictPairs`]
/// without building the dict. With the bytes after it.
pub(crate) fn frame_prefix(input: &[u8]) -> Result<(Frame<'_>, &[u8]), Error> {
    let frame = read_frame(input, 0, input.len(), Region::Top)?;
    let rest = &input[frame.end..];
    Ok((frame, rest))
}

/// The pairs of an outermost dict, one at a time, each value decoded.
pub(crate) struct DictPairs<'a> {
    input: &'a [u8],
    elements: Elements,
}

impl<'a> DictPairs<'a> {
    /// The pairs of `dict`, a frame [`frame_prefix`] read from `input`.
    pub(crate) fn new(input: &'a [u8], dict: &Frame<'a>) -> DictPairs<'a> {
        debug_assert_eq!(dict.tag, Tag::Dict);
        DictPairs {
            input,
            elements: Elements::new(dict),
        }
    }
}

impl<'a> Iterator for DictPairs<'a> {
    type Item = Result<(&'a [u8], Value<'a>), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let pair = match self.elements.next_pair(self.input) {
            Ok(Some(pair)) => pair,
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        };
        let (key, value) = pair;
        Some(decode(self.input, &value, 2).map(|v| (key.payload, v)))
    }
}

/// Decodes `frame` of `input`, whose containers (if it is one) sit at
/// nesting level `depth` (1 for the outermost value).
pub(crate) fn decode<'a>(
    input: &'a [u8],
    frame: &Frame<'a>,
    depth: usize,
) -> Result<Value<'a>, Error> {
    let payload = frame.payload;
    let at = frame.payload_at;
    Ok(match frame.tag {
        Tag::String => Value::String(payload),
        Tag::Integer => Value::Integer(decode_integer(payload, at)?),
        Tag::Float => Value::Float(decode_float(payload, at)?),
        Tag::Boolean => Value::Boolean(decode_bool(payload, at)?),
        Tag::Null => {
            check_null(payload, at)?;
            Value::Null
        }
        Tag::List => {
            if depth > MAX_DEPTH {
                return Err(Error::TooDeep { at: frame.at });
            }
            let mut items = Vec::new();
            let mut elements = Elements::new(frame);
            while let Some(item) = elements.next_frame(input)? {
                items.push(decode(input, &item, depth + 1)?);
            }
            Value::List(items)
        }
        Tag::Dict => {
            if depth > MAX_DEPTH {
                return Err(Error::TooDeep { at: frame.at });
            }
            let mut pairs = Vec::new();
            let mut elements = Elements::new(frame);
            while let Some((key, value)) = elements.next_pair(input)? {
                pairs.push((key.payload, decode(input, &value, depth + 1)?));
            }
            Value::Dict(pairs)
        }
    })
}

/// A cursor over the element frames of a dict or list payload.
pub(crate) struct Elements {
    /// Where the next element starts.
    pos: usize,
    /// Where the container's payload ends (at its tag).
    limit: usize,
}

impl Elements {
    /// A cursor at the first element of `container`.
    pub(crate) fn new(container: &Frame<'_>) -> Self {
        Elements {
            pos: container.payload_at,
            limit: container.end - 1,
        }
    }

    /// Whether elements remain.
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.limit
    }

    /// The next element's frame, or `None` at the end.
    pub(crate) fn next_frame<'a>(&mut self, input: &'a [u8]) -> Result<Option<Frame<'a>>, Error> {
        if self.is_empty() {
            return Ok(None);
        }
        let frame = read_frame(input, self.pos, self.limit, Region::Nested)?;
        self.pos = frame.end;
        Ok(Some(frame))
    }

    /// The next key (checked to be a string) and the frame of its value, or
    /// `None` at the end of a dict.
    pub(crate) fn next_pair<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<Option<(Frame<'a>, Frame<'a>)>, Error> {
        let Some(key) = self.next_key(input)? else {
            return Ok(None);
        };
        let value = self.next_value(input, &key)?;
        Ok(Some((key, value)))
    }

    /// The next dict key, checked to be a string, or `None` at the end.
    pub(crate) fn next_key<'a>(&mut self, input: &'a [u8]) -> Result<Option<Frame<'a>>, Error> {
        let Some(key) = self.next_frame(input)? else {
            return Ok(None);
        };
        if key.tag != Tag::String {
            return Err(Error::NonStringKey {
                at: key.at,
                found: key.tag,
            });
        }
        Ok(Some(key))
    }

    /// The value after `key`.
    pub(crate) fn next_value<'a>(
        &mut self,
        input: &'a [u8],
        key: &Frame<'_>,
    ) -> Result<Frame<'a>, Error> {
        self.next_frame(input)?
            .ok_or(Error::MissingValue { at: key.at })
    }
}

impl<'a> Value<'a> {
    /// The type tag this value is written with.
    pub fn tag(&self) -> Tag {
        match self {
            Value::String(_) => Tag::String,
            Value::Integer(_) => Tag::Integer,
            Value::Float(_) => Tag::Float,
            Value::Boolean(_) => Tag::Boolean,
            Value::Null => Tag::Null,
            Value::Dict(_) => Tag::Dict,
            Value::List(_) => Tag::List,
        }
    }

    /// Appends the tnetstring encoding of this value to `out`.
    ///
    /// Every value [`parse`] returns encodes to bytes that parse back to an
    /// equal value. Floats are written in Rust's shortest round-trip form
    /// (see [`write_float`](super::write_float)); a NaN or infinite float,
    /// which only a hand-built `Value` can hold, is written as `NaN`, `inf`
    /// or `-inf`, which parsers reject — use [`to_vec`](super::to_vec) to get
    /// an error instead. Recursion follows the value's own depth.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::String(s) => write_string(out, s),
            Value::Integer(n) => write_integer(out, *n),
            Value::Float(f) => write_display_float(out, f),
            Value::Boolean(b) => write_bool(out, *b),
            Value::Null => write_null(out),
            Value::Dict(pairs) => {
                let mark = begin_container(out);
                for (key, value) in pairs {
                    write_string(out, key);
                    value.encode(out);
                }
                end_container(out, mark, Container::Dict);
            }
            Value::List(items) => {
                let mark = begin_container(out);
                for item in items {
                    item.encode(out);
                }
                end_container(out, mark, Container::List);
            }
        }
    }

    /// The tnetstring encoding of this value, as by [`Value::encode`].
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// The bytes of a string.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The text of a string that is valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|s| std::str::from_utf8(s).ok())
    }

    /// An integer's value.
    pub fn as_int(&self) -> Option<i64> {
        match *self {
            Value::Integer(n) => Some(n),
            _ => None,
        }
    }

    /// A float's value, or an integer's as a float.
    pub fn as_float(&self) -> Option<f64> {
        match *self {
            Value::Float(f) => Some(f),
            Value::Integer(n) => Some(n as f64),
            _ => None,
        }
    }

    /// A boolean's value.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Boolean(b) => Some(b),
            _ => None,
        }
    }

    /// Whether this is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A dict's pairs, in wire order.
    pub fn as_dict(&self) -> Option<&[(&'a [u8], Value<'a>)]> {
        match self {
            Value::Dict(pairs) => Some(pairs),
            _ => None,
        }
    }

    /// A list's elements.
    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    /// The value of `key` in a dict: the **first** pair with that key in
    /// wire order when the key occurs more than once (see
    /// [`Value::get_all`]). `None` if this is not a dict or has no such key.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&Value<'a>> {
        let key = key.as_ref();
        self.as_dict()?
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// Every value of `key` in a dict, in wire order; empty if this is not a
    /// dict.
    pub fn get_all<'s>(&'s self, key: &'s [u8]) -> impl Iterator<Item = &'s Value<'a>> + 's {
        self.as_dict()
            .unwrap_or_default()
            .iter()
            .filter(move |(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

/// Serializes as the matching serde type: strings as `str` when they are
/// UTF-8 and as bytes otherwise, dicts as maps, lists as sequences, null as
/// unit. Through [`to_vec`](super::to_vec) this gives the same bytes as
/// [`Value::encode`] (or an error for a non-finite float).
impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::String(s) => serialize_text_or_bytes(s, serializer),
            Value::Integer(n) => serializer.serialize_i64(*n),
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::Boolean(b) => serializer.serialize_bool(*b),
            Value::Null => serializer.serialize_unit(),
            Value::Dict(pairs) => {
                let mut map = serializer.serialize_map(Some(pairs.len()))?;
                for (key, value) in pairs {
                    map.serialize_entry(&TextOrBytes(key), value)?;
                }
                map.end()
            }
            Value::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
        }
    }
}

/// A byte string serialized as `str` when it is UTF-8.
struct TextOrBytes<'a>(&'a [u8]);

impl Serialize for TextOrBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_text_or_bytes(self.0, serializer)
    }
}

fn serialize_text_or_bytes<S: Serializer>(s: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    match std::str::from_utf8(s) {
        Ok(text) => serializer.serialize_str(text),
        Err(_) => serializer.serialize_bytes(s),
    }
}

/// Deserializes any self-describing input into a `Value` that borrows from
/// it: strings must be borrowable (with [`from_slice`](super::from_slice)
/// they always are), integers must fit `i64`.
impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any tnetstring value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value<'de>, E> {
        Ok(Value::Boolean(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value<'de>, E> {
        Ok(Value::Integer(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value<'de>, E> {
        i64::try_from(v)
            .map(Value::Integer)
            .map_err(|_| E::custom(format_args!("integer {v} is outside the i64 range")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value<'de>, E> {
        Ok(Value::Float(v))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Value<'de>, E> {
        Ok(Value::String(v.as_bytes()))
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Value<'de>, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value<'de>, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'de>, A::Error> {
        let mut pairs = Vec::new();
        while let Some((key, value)) = map.next_entry::<&'de [u8], Value<'de>>()? {
            pairs.push((key, value));
        }
        Ok(Value::Dict(pairs))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Valid encodings from PROTOCOL.md and Mongrel2 captures.
    const EXAMPLES: &[&[u8]] = &[
        b"10:4:help,0:}]",
        b"26:6:status,13:4:what,3:net,}]",
        b"21:4:kill,10:2:id,2:42#}]",
        b"24:3:ctl,14:7:credits,1:5#}]",
        b"31:3:ctl,21:10:keep-alive,4:true!}]",
        b"52:7:headers,7:4:uuid,]4:rows,21:17:13:m2test-server,]]}",
        b"16:6:METHOD,4:JSON,}",
        b"0:~",
        b"0:,",
        b"3:1.5^",
        b"5:false!",
        b"2:-7#",
    ];

    #[test]
    fn control_port_request() {
        let value = parse(b"26:6:status,13:4:what,3:net,}]").unwrap();
        assert_eq!(
            value,
            Value::List(vec![
                Value::String(b"status"),
                Value::Dict(vec![(&b"what"[..], Value::String(b"net"))]),
            ])
        );
        let kill = parse(b"21:4:kill,10:2:id,2:42#}]").unwrap();
        assert_eq!(kill.as_list().unwrap()[0].as_str(), Some("kill"));
        assert_eq!(
            kill.as_list().unwrap()[1].get("id"),
            Some(&Value::Integer(42))
        );
    }

    #[test]
    fn extended_replies() {
        let credits = parse(b"24:3:ctl,14:7:credits,1:5#}]").unwrap();
        let items = credits.as_list().unwrap();
        assert_eq!(items[0].as_bytes(), Some(&b"ctl"[..]));
        assert_eq!(items[1].get(b"credits").and_then(Value::as_int), Some(5));
        let keep_alive = parse(b"31:3:ctl,21:10:keep-alive,4:true!}]").unwrap();
        assert_eq!(
            keep_alive.as_list().unwrap()[1].get("keep-alive"),
            Some(&Value::Boolean(true))
        );
    }

    #[test]
    fn control_port_reply_and_nulls() {
        let uuid = parse(b"52:7:headers,7:4:uuid,]4:rows,21:17:13:m2test-server,]]}").unwrap();
        assert_eq!(
            uuid.get("rows").unwrap().as_list().unwrap()[0]
                .as_list()
                .unwrap()[0]
                .as_str(),
            Some("m2test-server")
        );
        assert!(parse(b"0:~").unwrap().is_null());
        assert_eq!(parse(b"0:,").unwrap(), Value::String(b""));
    }

    #[test]
    fn examples_encode_to_themselves() {
        for example in EXAMPLES {
            assert_eq!(&parse(example).unwrap().to_vec()[..], *example);
        }
    }

    #[test]
    fn bytes_are_not_text() {
        let value = parse(b"3:\xff\x00\n,").unwrap();
        assert_eq!(value.as_bytes(), Some(&b"\xff\x00\n"[..]));
        assert_eq!(value.as_str(), None);
    }

    #[test]
    fn duplicate_keys_keep_wire_order_and_get_returns_the_first() {
        let value = parse(b"23:1:k,1:1#1:j,0:~1:k,1:2#}").unwrap();
        assert_eq!(value.as_dict().unwrap().len(), 3);
        assert_eq!(value.get("k"), Some(&Value::Integer(1)));
        let all: Vec<_> = value.get_all(b"k").collect();
        assert_eq!(all, [&Value::Integer(1), &Value::Integer(2)]);
        assert_eq!(value.get("missing"), None);
        assert_eq!(Value::Null.get("k"), None);
    }

    #[test]
    fn parse_prefix_returns_the_rest() {
        let (value, rest) = parse_prefix(b"1:a,2:bc,").unwrap();
        assert_eq!(value, Value::String(b"a"));
        assert_eq!(rest, b"2:bc,");
    }

    #[test]
    fn every_error_variant_from_parse() {
        let cases: &[(&[u8], Error)] = &[
            (b"", Error::Incomplete { at: 0, needed: 3 }),
            (b":~", Error::EmptyLength { at: 0 }),
            (
                b"12a:",
                Error::LengthNotDecimal {
                    at: 0,
                    text: "12a".into(),
                },
            ),
            (
                b"05:hello,",
                Error::LengthLeadingZero {
                    at: 0,
                    text: "05".into(),
                },
            ),
            (
                b"0000000001:",
                Error::LengthLeadingZero {
                    at: 0,
                    text: "00".into(),
                },
            ),
            (
                b"1000000000:",
                Error::LengthTooLong {
                    at: 0,
                    text: "1000000000".into(),
                },
            ),
            (
                b"6:9:abc,]",
                Error::LengthBeyondContainer {
                    at: 2,
                    needed: 12,
                    available: 6,
                },
            ),
            (b"5:3:abc]", Error::MissingTag { at: 7 }),
            (b"3:abc?", Error::UnknownTag { at: 5, tag: b'?' }),
            (
                b"3:1.5#",
                Error::BadInteger {
                    at: 2,
                    text: "1.5".into(),
                },
            ),
            (
                b"3:inf^",
                Error::BadFloat {
                    at: 2,
                    text: "inf".into(),
                },
            ),
            (
                b"4:True!",
                Error::BadBoolean {
                    at: 2,
                    text: "True".into(),
                },
            ),
            (b"1:x~", Error::BadNull { at: 2, len: 1 }),
            (
                b"8:1:1#1:a,}",
                Error::NonStringKey {
                    at: 2,
                    found: Tag::Integer,
                },
            ),
            (b"12:1:a,1:b,1:c,}", Error::MissingValue { at: 11 }),
            (b"0:~x", Error::TrailingData { at: 3, len: 1 }),
            // Errors inside containers report the element's offset.
            (
                b"7:4:true#]",
                Error::BadInteger {
                    at: 4,
                    text: "true".into(),
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                &parse(input).unwrap_err(),
                expected,
                "{}",
                input.escape_ascii()
            );
        }
    }

    #[test]
    fn error_messages_say_what_and_where() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"12a:",
                "tnetstring at byte 0: length \"12a\" is not a decimal number",
            ),
            (
                b"3:abc?",
                "tnetstring at byte 5: '?' is not a type tag (one of , # ^ ! ~ } ])",
            ),
            (
                b"7:9:\xff\x00ab,]",
                "tnetstring at byte 2: element needs 12 byte(s) but its container has only 7 left",
            ),
            (
                b"2:\xffz!",
                "tnetstring at byte 2: boolean \"\\xffz\" is neither true nor false",
            ),
            (
                b"5:hel",
                "tnetstring at byte 5: input ends early, at least 3 more byte(s) needed",
            ),
            (
                b"8:1:1#1:a,}",
                "tnetstring at byte 2: dict key must be a string, found integer (`#`)",
            ),
        ];
        for (input, message) in cases {
            assert_eq!(parse(input).unwrap_err().to_string(), *message);
        }
    }

    #[test]
    fn long_payloads_are_cut_in_messages() {
        let mut input = b"100:".to_vec();
        input.extend_from_slice(&[b'x'; 100]);
        input.push(b'#');
        let message = parse(&input).unwrap_err().to_string();
        assert!(
            message.contains(&format!("\"{}...\"", "x".repeat(32))),
            "{message}"
        );
        assert!(message.len() < 120, "{message}");
    }

    /// `levels` lists nested inside each other, innermost empty.
    fn nested_lists(levels: usize) -> Vec<u8> {
        // Sizes from the inside out: `0:]`, then each level wraps the last.
        let mut sizes = Vec::with_capacity(levels);
        let mut size = 0usize;
        for _ in 0..levels {
            sizes.push(size);
            size += size.to_string().len() + 2;
        }
        let mut out = Vec::with_capacity(size);
        for payload in sizes.iter().rev() {
            out.extend_from_slice(payload.to_string().as_bytes());
            out.push(b':');
        }
        out.extend(std::iter::repeat_n(b']', levels));
        out
    }

    #[test]
    fn nesting_up_to_max_depth_parses() {
        let input = nested_lists(MAX_DEPTH);
        let mut value = &parse(&input).unwrap();
        for _ in 1..MAX_DEPTH {
            value = &value.as_list().unwrap()[0];
        }
        assert_eq!(value, &Value::List(vec![]));
        assert_eq!(parse(&input).unwrap().to_vec(), input);
    }

    #[test]
    fn nesting_beyond_max_depth_is_an_error() {
        let input = nested_lists(MAX_DEPTH + 1);
        // The innermost `0:]`, at depth MAX_DEPTH + 1.
        let at = input.len() - (MAX_DEPTH + 1) - 2;
        assert_eq!(parse(&input), Err(Error::TooDeep { at }));
    }

    #[test]
    fn ten_thousand_levels_is_an_error_not_a_stack_overflow() {
        let input = nested_lists(10_000);
        assert!(matches!(parse(&input), Err(Error::TooDeep { .. })));
        // Dicts count too.
        let mut dicts = b"0:}".to_vec();
        for _ in 0..1_000 {
            let mut outer = Vec::new();
            let payload_len = 3 + dicts.len();
            outer.extend_from_slice(format!("{payload_len}:1:k,").as_bytes());
            outer.extend_from_slice(&dicts);
            outer.push(b'}');
            dicts = outer;
        }
        assert!(matches!(parse(&dicts), Err(Error::TooDeep { .. })));
    }

    /// Every proper prefix of a valid encoding is [`Error::Incomplete`] (so
    /// never a panic and never a wrong value), and the whole parses.
    fn assert_prefixes_incomplete(input: &[u8]) {
        for split in 0..input.len() {
            let head = &input[..split];
            match parse(head) {
                Err(Error::Incomplete { at, needed }) => {
                    assert!(at <= split && needed >= 1, "{}", head.escape_ascii());
                    assert!(split + needed <= input.len(), "{}", head.escape_ascii());
                }
                other => panic!(
                    "prefix {:?} gave {other:?}",
                    head.escape_ascii().to_string()
                ),
            }
            assert!(parse_prefix(head).unwrap_err().is_incomplete());
        }
        let (_, rest) = parse_prefix(input).unwrap();
        assert!(rest.is_empty());
    }

    #[test]
    fn examples_split_at_every_byte() {
        for example in EXAMPLES {
            assert_prefixes_incomplete(example);
        }
        let request_headers = b"93:11:REMOTE_ADDR,9:127.0.0.1,6:METHOD,4:POST,4:PATH,8:/tns/bar,5:x-dup,8:1:a,1:b,]7:x-empty,0:,}";
        assert!(parse(request_headers).is_ok());
        assert_prefixes_incomplete(request_headers);
    }

    /// An owned tree to generate, since `Value` borrows.
    #[derive(Clone, Debug)]
    enum Owned {
        String(Vec<u8>),
        Integer(i64),
        Float(f64),
        Boolean(bool),
        Null,
        Dict(Vec<(Vec<u8>, Owned)>),
        List(Vec<Owned>),
    }

    fn borrow(owned: &Owned) -> Value<'_> {
        match owned {
            Owned::String(s) => Value::String(s),
            Owned::Integer(n) => Value::Integer(*n),
            Owned::Float(f) => Value::Float(*f),
            Owned::Boolean(b) => Value::Boolean(*b),
            Owned::Null => Value::Null,
            Owned::Dict(pairs) => {
                Value::Dict(pairs.iter().map(|(k, v)| (&k[..], borrow(v))).collect())
            }
            Owned::List(items) => Value::List(items.iter().map(borrow).collect()),
        }
    }

    /// Bitwise equality, so `-0.0` and `0.0` differ and floats must come
    /// back exactly.
    fn identical(a: &Value<'_>, b: &Value<'_>) -> bool {
        match (a, b) {
            (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
            (Value::Dict(x), Value::Dict(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y)
                        .all(|((ka, va), (kb, vb))| ka == kb && identical(va, vb))
            }
            (Value::List(x), Value::List(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(va, vb)| identical(va, vb))
            }
            _ => a == b,
        }
    }

    pub(crate) fn finite_float() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
            Just(0.0),
            Just(-0.0),
            Just(f64::MAX),
            Just(f64::MIN_POSITIVE),
            Just(5e-324),
        ]
    }

    fn owned() -> impl Strategy<Value = Owned> {
        let leaf = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Owned::String),
            any::<i64>().prop_map(Owned::Integer),
            finite_float().prop_map(Owned::Float),
            any::<bool>().prop_map(Owned::Boolean),
            Just(Owned::Null),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(
                    (proptest::collection::vec(any::<u8>(), 0..12), inner.clone()),
                    0..8
                )
                .prop_map(Owned::Dict),
                proptest::collection::vec(inner, 0..8).prop_map(Owned::List),
            ]
        })
    }

    proptest! {
        #[test]
        fn encode_then_parse_round_trips(owned in owned()) {
            let value = borrow(&owned);
            let bytes = value.to_vec();
            let parsed = parse(&bytes).unwrap();
            prop_assert!(identical(&parsed, &value), "{parsed:?} != {value:?}");
            // Encoding is canonical: the same bytes again.
            prop_assert_eq!(parsed.to_vec(), bytes.clone());
            // Through serde too.
            prop_assert_eq!(super::super::to_vec(&value).unwrap(), bytes.clone());
            let via_serde: Value<'_> = super::super::from_slice(&bytes).unwrap();
            prop_assert!(identical(&via_serde, &value));
        }

        #[test]
        fn every_prefix_of_an_encoding_is_incomplete(owned in owned()) {
            let bytes = borrow(&owned).to_vec();
            assert_prefixes_incomplete(&bytes);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(value) = parse(&bytes) {
                let again = value.to_vec();
                prop_assert_eq!(parse(&again).unwrap(), value);
            }
        }

        #[test]
        fn mutated_encodings_never_panic(owned in owned(), index in any::<usize>(), byte in any::<u8>()) {
            let mut bytes = borrow(&owned).to_vec();
            let index = index % bytes.len();
            bytes[index] = byte;
            if let Ok(value) = parse(&bytes) {
                let again = value.to_vec();
                prop_assert_eq!(parse(&again).unwrap(), value);
            }
        }
    }
}
