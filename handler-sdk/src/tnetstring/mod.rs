//! The tnetstring codec: Mongrel2's framing for request headers, extended
//! replies, the control port and the access log.
//!
//! A tnetstring is `LEN:DATA TAG`: `LEN` is the ASCII decimal byte count of
//! `DATA` (no leading zeros except `0` itself, at most
//! [`MAX_LENGTH_DIGITS`] digits), and `TAG` is one byte saying what `DATA` is:
//!
//! | tag | type | payload |
//! |---|---|---|
//! | `,` | string | raw bytes, not necessarily UTF-8 |
//! | `#` | integer | `-?[0-9]+`, within `i64` |
//! | `^` | float | a finite decimal number such as `1.5`, `-0.25` or `1e10` |
//! | `!` | boolean | `true` or `false` |
//! | `~` | null | empty (`0:~`) |
//! | `}` | dict | key, value, key, value, …; every key is a string |
//! | `]` | list | the elements, one after the other |
//!
//! This module owns the byte format and nothing above it. It offers three
//! layers, all pure (no I/O):
//!
//! - [`Value`], [`parse`] and [`parse_prefix`]: a borrowed value tree over the
//!   input bytes, for code that inspects arbitrary tnetstrings (the control
//!   port, extended replies, tests).
//! - [`write_string`], [`write_integer`], [`begin_container`] /
//!   [`end_container`] and friends: allocation-free writers for encoders that
//!   build messages by hand on the hot path (the request encoder in
//!   [`crate::request`]).
//! - [`to_vec`] and [`from_slice`]: serde, mapping Rust types to tnetstrings
//!   (structs and maps are dicts, sequences are lists, `None` is null; see
//!   [`to_vec`] for the whole table).
//!
//! It does not know what any message means: the request and reply modules,
//! the server's control port and the handler library call it.
//!
//! Parsing never panics, whatever the input: every malformed input is an
//! [`Error`] naming the byte offset where it went wrong, and nesting is
//! limited to [`MAX_DEPTH`] so untrusted input cannot exhaust the stack.
//!
//! ```
//! use kennel_handler::tnetstring::{self, Value};
//!
//! let control = b"21:4:kill,10:2:id,2:42#}]";
//! let value = tnetstring::parse(control)?;
//! let items = value.as_list().unwrap();
//! assert_eq!(items[0].as_str(), Some("kill"));
//! assert_eq!(items[1].get("id").and_then(Value::as_int), Some(42));
//! assert_eq!(value.to_vec(), control);
//! # Ok::<(), tnetstring::Error>(())
//! ```

mod de;
mod error;
mod frame;
mod ser;
mod value;

pub use de::from_slice;
pub use error::Error;
pub(crate) use frame::decimal;
pub use frame::{
    begin_container, end_container, write_bool, write_float, write_integer, write_null,
    write_string, Container, Mark, CONTAINER_LENGTH_RESERVE,
};
pub use ser::{to_vec, Serializer};
pub(crate) use value::{frame_prefix, DictPairs};
pub use value::{parse, parse_prefix, Value};

use std::fmt;

/// The most decimal digits a length prefix may have: 9, so the longest
/// payload is [`MAX_LENGTH`] bytes.
///
/// This is the limit of the reference tnetstring implementations that
/// Mongrel2's handler libraries use; a longer prefix is either garbage or a
/// payload no Mongrel2 peer would accept, so it is rejected before any
/// arithmetic on it can overflow.
pub const MAX_LENGTH_DIGITS: usize = 9;

/// The longest payload a tnetstring can carry: 999,999,999 bytes, the largest
/// number with [`MAX_LENGTH_DIGITS`] digits.
///
/// The writers do not check it (a payload that long is far beyond any limit
/// Kennel or Mongrel2 sets on a message); [`to_vec`] does and returns
/// [`Error::PayloadTooLong`].
pub const MAX_LENGTH: usize = 999_999_999;

/// The deepest nesting of dicts and lists that [`parse`], [`parse_prefix`]
/// and [`from_slice`] accept: 64.
///
/// Parsing is recursive, one stack frame (or a few) per level, so without a
/// limit a few kilobytes of untrusted `[`-style nesting could overflow the
/// stack and abort the process. Mongrel2's own messages nest at most three
/// levels (an extended reply: list, dict, value), and control-port replies
/// four; 64 leaves ample room for any handler's data while keeping the worst
/// case a few kilobytes of stack even in debug builds. Top-level containers
/// are at depth 1, so `0:]` nested 64 times parses and 65 times does not.
pub const MAX_DEPTH: usize = 64;

/// The type tag of a tnetstring: the byte after its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tag {
    /// `,`: a byte string.
    String,
    /// `#`: a signed 64-bit integer.
    Integer,
    /// `^`: a floating-point number.
    Float,
    /// `!`: `true` or `false`.
    Boolean,
    /// `~`: null, always `0:~`.
    Null,
    /// `}`: a dict of string keys and values.
    Dict,
    /// `]`: a list.
    List,
}

impl Tag {
    /// The tag's byte on the wire, e.g. `b','` for [`Tag::String`].
    pub const fn byte(self) -> u8 {
        match self {
            Tag::String => b',',
            Tag::Integer => b'#',
            Tag::Float => b'^',
            Tag::Boolean => b'!',
            Tag::Null => b'~',
            Tag::Dict => b'}',
            Tag::List => b']',
        }
    }

    /// The tag a wire byte stands for, or `None` if it is not a tag.
    pub const fn from_byte(byte: u8) -> Option<Tag> {
        match byte {
            b',' => Some(Tag::String),
            b'#' => Some(Tag::Integer),
            b'^' => Some(Tag::Float),
            b'!' => Some(Tag::Boolean),
            b'~' => Some(Tag::Null),
            b'}' => Some(Tag::Dict),
            b']' => Some(Tag::List),
            _ => None,
        }
    }

    /// The type's name as used in error messages, e.g. `"string"`.
    pub const fn name(self) -> &'static str {
        match self {
            Tag::String => "string",
            Tag::Integer => "integer",
            Tag::Float => "float",
            Tag::Boolean => "boolean",
            Tag::Null => "null",
            Tag::Dict => "dict",
            Tag::List => "list",
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (`{}`)", self.name(), char::from(self.byte()))
    }
}
