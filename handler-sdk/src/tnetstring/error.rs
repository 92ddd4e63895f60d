//! The one error type of the tnetstring codec: what went wrong and at which
//! byte, for parsing, serde decoding and serde encoding alike.

use std::fmt;

use super::{Tag, MAX_DEPTH, MAX_LENGTH, MAX_LENGTH_DIGITS};

/// The most bytes of offending input quoted in an error message: 32.
///
/// Enough to recognise a bad length, number or boolean; a payload of a
/// megabyte that is not a number must not become a megabyte-long log line.
const EXCERPT_BYTES: usize = 32;

/// Everything that can go wrong reading or writing a tnetstring.
///
/// Offsets (`at`) are byte positions in the whole input given to
/// [`parse`](super::parse), [`parse_prefix`](super::parse_prefix) or
/// [`from_slice`](super::from_slice), counted from 0. Quoted excerpts (`text`)
/// are escaped as ASCII and cut to a few dozen bytes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ends before the value does; at least `needed` more bytes
    /// would be required (more may turn out to be needed once they arrive).
    #[error("tnetstring at byte {at}: input ends early, at least {needed} more byte(s) needed")]
    Incomplete {
        /// Where the input ends.
        at: usize,
        /// The fewest further bytes that could complete the value.
        needed: usize,
    },

    /// The length prefix is empty: the value starts with `:`.
    #[error("tnetstring at byte {at}: length is empty (a value starts with `LEN:`)")]
    EmptyLength {
        /// Where the value starts.
        at: usize,
    },

    /// The length prefix contains something other than ASCII digits before
    /// its `:`.
    #[error("tnetstring at byte {at}: length \"{text}\" is not a decimal number")]
    LengthNotDecimal {
        /// Where the length starts.
        at: usize,
        /// The length read so far, up to and including the offending byte.
        text: String,
    },

    /// The length prefix has a leading zero (only `0` itself may start with
    /// `0`).
    #[error("tnetstring at byte {at}: length \"{text}\" has a leading zero")]
    LengthLeadingZero {
        /// Where the length starts.
        at: usize,
        /// The length read so far.
        text: String,
    },

    /// The length prefix has more than [`MAX_LENGTH_DIGITS`] digits.
    #[error("tnetstring at byte {at}: length \"{text}\" has more than {MAX_LENGTH_DIGITS} digits")]
    LengthTooLong {
        /// Where the length starts.
        at: usize,
        /// The first digits of the length.
        text: String,
    },

    /// A value inside a dict or list claims more bytes than its container has
    /// left (or its length prefix runs to the container's end without a
    /// `:`).
    #[error(
        "tnetstring at byte {at}: element needs {needed} byte(s) but its container has only {available} left"
    )]
    LengthBeyondContainer {
        /// Where the element starts.
        at: usize,
        /// The fewest bytes the element needs, from its start.
        needed: usize,
        /// The bytes left in the container from the element's start.
        available: usize,
    },

    /// A value inside a dict or list has its payload but the container ends
    /// before its type tag.
    #[error("tnetstring at byte {at}: type tag missing (its container ends here)")]
    MissingTag {
        /// Where the tag should be.
        at: usize,
    },

    /// The byte after the payload is not one of `, # ^ ! ~ } ]`.
    #[error("tnetstring at byte {at}: '{}' is not a type tag (one of , # ^ ! ~ }} ])", escape(&[*tag]))]
    UnknownTag {
        /// Where the tag is.
        at: usize,
        /// The byte found there.
        tag: u8,
    },

    /// An integer payload is not `-?[0-9]+` or does not fit an `i64`.
    #[error("tnetstring at byte {at}: integer \"{text}\" is not a decimal number within i64")]
    BadInteger {
        /// Where the payload starts.
        at: usize,
        /// The payload.
        text: String,
    },

    /// A float payload is not a finite decimal number.
    #[error("tnetstring at byte {at}: float \"{text}\" is not a finite decimal number")]
    BadFloat {
        /// Where the payload starts.
        at: usize,
        /// The payload.
        text: String,
    },

    /// A boolean payload is neither `true` nor `false`.
    #[error("tnetstring at byte {at}: boolean \"{text}\" is neither true nor false")]
    BadBoolean {
        /// Where the payload starts.
        at: usize,
        /// The payload.
        text: String,
    },

    /// A null has a payload (null is always `0:~`).
    #[error("tnetstring at byte {at}: null must be empty (0:~) but has {len} byte(s)")]
    BadNull {
        /// Where the payload starts.
        at: usize,
        /// The payload's length.
        len: usize,
    },

    /// A dict key is not a string.
    #[error("tnetstring at byte {at}: dict key must be a string, found {found}")]
    NonStringKey {
        /// Where the key starts.
        at: usize,
        /// What the key is.
        found: Tag,
    },

    /// A dict's payload ends after a key, so it has an odd number of
    /// elements.
    #[error("tnetstring at byte {at}: dict key has no value (odd number of elements)")]
    MissingValue {
        /// Where the key without a value starts.
        at: usize,
    },

    /// Dicts and lists are nested deeper than [`MAX_DEPTH`].
    #[error("tnetstring at byte {at}: nested deeper than {MAX_DEPTH} dicts and lists")]
    TooDeep {
        /// Where the first container too deep starts.
        at: usize,
    },

    /// Bytes follow the value where exactly one value was expected.
    #[error("tnetstring at byte {at}: {len} byte(s) of trailing data after the value")]
    TrailingData {
        /// Where the trailing data starts.
        at: usize,
        /// How many bytes trail.
        len: usize,
    },

    /// Serde asked for one type and the input has another, e.g. a `u32`
    /// field holding a string.
    #[error("tnetstring at byte {at}: expected {expected}, found {found}")]
    WrongTag {
        /// Where the value starts.
        at: usize,
        /// What serde asked for, e.g. `"integer"` or `"string or one-entry dict (enum)"`.
        expected: &'static str,
        /// What the input has.
        found: Tag,
    },

    /// Serde asked for text (`str`, `String`, `char`) and the string is not
    /// UTF-8.
    #[error("tnetstring at byte {at}: string is not valid UTF-8")]
    NotUtf8 {
        /// Where the string's payload starts.
        at: usize,
    },

    /// An integer does not fit the Rust type serde asked for, e.g. `300` for
    /// a `u8`.
    #[error("tnetstring at byte {at}: integer {value} does not fit in {target}")]
    IntegerOutOfRange {
        /// Where the integer starts.
        at: usize,
        /// The integer.
        value: i64,
        /// The Rust type asked for, e.g. `"u8"`.
        target: &'static str,
    },

    /// Encoding: an integer outside `i64`, which tnetstrings (and Mongrel2)
    /// cannot carry.
    #[error("tnetstring encode: integer {value} is outside the i64 range")]
    IntegerTooLarge {
        /// The integer, in decimal.
        value: String,
    },

    /// Encoding: a NaN or infinite float, which has no decimal form.
    #[error("tnetstring encode: float {value} is not finite")]
    NonFiniteFloat {
        /// The float.
        value: f64,
    },

    /// Encoding: a map key that cannot be written as a string (keys must be
    /// strings, bytes, chars, integers or unit enum variants).
    #[error("tnetstring encode: a {found} cannot be a dict key (keys are strings)")]
    KeyNotString {
        /// What the key was.
        found: &'static str,
    },

    /// Encoding: a payload longer than [`MAX_LENGTH`] bytes.
    #[error("tnetstring encode: payload of {len} bytes exceeds the {MAX_LENGTH}-byte limit")]
    PayloadTooLong {
        /// The payload's length.
        len: usize,
    },

    /// A message from a `Serialize` or `Deserialize` implementation (missing
    /// field, unknown variant, …), with the offset of the value being decoded
    /// when there is one.
    #[error("{}{message}", match at { Some(at) => format!("tnetstring at byte {at}: "), None => String::from("tnetstring: ") })]
    Custom {
        /// Where the value being decoded starts, if decoding.
        at: Option<usize>,
        /// The message.
        message: String,
    },
}

impl Error {
    /// True if the input ended early: more bytes could make it valid. Every
    /// proper prefix of a valid tnetstring gives this error.
    pub fn is_incomplete(&self) -> bool {
        matches!(self, Error::Incomplete { .. })
    }

    /// The byte offset in the input where the error was found, if it was
    /// found while reading input.
    pub fn offset(&self) -> Option<usize> {
        match *self {
            Error::Incomplete { at, .. }
            | Error::EmptyLength { at }
            | Error::LengthNotDecimal { at, .. }
            | Error::LengthLeadingZero { at, .. }
            | Error::LengthTooLong { at, .. }
            | Error::LengthBeyondContainer { at, .. }
            | Error::MissingTag { at }
            | Error::UnknownTag { at, .. }
            | Error::BadInteger { at, .. }
            | Error::BadFloat { at, .. }
            | Error::BadBoolean { at, .. }
            | Error::BadNull { at, .. }
            | Error::NonStringKey { at, .. }
            | Error::MissingValue { at }
            | Error::TooDeep { at }
            | Error::TrailingData { at, .. }
            | Error::WrongTag { at, .. }
            | Error::NotUtf8 { at }
            | Error::IntegerOutOfRange { at, .. } => Some(at),
            Error::Custom { at, .. } => at,
            Error::IntegerTooLarge { .. }
            | Error::NonFiniteFloat { .. }
            | Error::KeyNotString { .. }
            | Error::PayloadTooLong { .. } => None,
        }
    }

    /// Gives a [`Error::Custom`] without an offset the offset `at`; leaves
    /// every other error alone. Used by the deserializer so that messages
    /// from `Deserialize` impls ("missing field") say where.
    pub(crate) fn at_offset(self, at: usize) -> Error {
        match self {
            Error::Custom { at: None, message } => Error::Custom {
                at: Some(at),
                message,
            },
            other => other,
        }
    }
}

/// `bytes` as printable ASCII (`\n`, `\xff`, `\"` escaped), cut to
/// [`EXCERPT_BYTES`] with `...` after when longer.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let mut text = escape(&bytes[..bytes.len().min(EXCERPT_BYTES)]);
    if bytes.len() > EXCERPT_BYTES {
        text.push_str("...");
    }
    text
}

fn escape(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

impl serde::ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Custom {
            at: None,
            message: msg.to_string(),
        }
    }
}

impl serde::de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Custom {
            at: None,
            message: msg.to_string(),
        }
    }
}
