//! serde decoding: [`from_slice`], straight from the input bytes (no
//! intermediate [`Value`](super::Value)), borrowing strings where the target
//! type can.

use serde::de::{
    self, Deserialize, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

use super::frame::{
    check_null, decode_bool, decode_float, decode_integer, read_frame, Frame, Region,
};
use super::value::{decode, Elements};
use super::{Error, Tag, MAX_DEPTH};

/// Decodes `input`, which must be exactly one tnetstring, into a `T`.
///
/// The mapping is the one [`to_vec`](super::to_vec) writes, read a little
/// more leniently: a float may also be read from an integer; a map key can
/// be read as an integer when its string is a decimal integer; an enum's
/// unit variant may also be written `{variant: null}`. `&str` and `&[u8]`
/// fields borrow from `input` (a `&str` needs valid UTF-8).
///
/// # Errors
///
/// Any error [`parse`](super::parse) reports, and where the input does not
/// fit `T`: [`Error::WrongTag`], [`Error::NotUtf8`],
/// [`Error::IntegerOutOfRange`], or [`Error::Custom`] from `T`'s
/// `Deserialize` (missing field, unknown variant, …) with the offset of the
/// value it was decoding. Parts of the input that `T` ignores are still
/// checked.
///
/// ```
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// #[serde(rename_all = "kebab-case")]
/// enum Ctl { Credits(u32), KeepAlive(bool), Cancel(serde::de::IgnoredAny) }
///
/// let (key, ctl): (&str, Ctl) =
///     kennel_handler::tnetstring::from_slice(b"24:3:ctl,14:7:credits,1:5#}]")?;
/// assert_eq!((key, ctl), ("ctl", Ctl::Credits(5)));
/// # Ok::<(), kennel_handler::tnetstring::Error>(())
/// ```
pub fn from_slice<'de, T: Deserialize<'de>>(input: &'de [u8]) -> Result<T, Error> {
    let frame = read_frame(input, 0, input.len(), Region::Top)?;
    let value = T::deserialize(FrameDeserializer::new(input, frame, 1))
        .map_err(|e| e.at_offset(frame.at))?;
    if frame.end == input.len() {
        Ok(value)
    } else {
        Err(Error::TrailingData {
            at: frame.end,
            len: input.len() - frame.end,
        })
    }
}

/// Deserializes one frame of the input.
struct FrameDeserializer<'de> {
    input: &'de [u8],
    frame: Frame<'de>,
    /// The nesting level of this frame, 1 at the top; a dict or list here is
    /// refused past [`MAX_DEPTH`].
    depth: usize,
    /// Whether this frame is a dict key: then integers may be read from its
    /// string.
    key: bool,
}

impl<'de> FrameDeserializer<'de> {
    fn new(input: &'de [u8], frame: Frame<'de>, depth: usize) -> Self {
        FrameDeserializer {
            input,
            frame,
            depth,
            key: false,
        }
    }

    fn key(input: &'de [u8], frame: Frame<'de>, depth: usize) -> Self {
        FrameDeserializer {
            input,
            frame,
            depth,
            key: true,
        }
    }

    fn wrong(&self, expected: &'static str) -> Error {
        Error::WrongTag {
            at: self.frame.at,
            expected,
            found: self.frame.tag,
        }
    }

    fn expect(&self, tag: Tag) -> Result<(), Error> {
        if self.frame.tag == tag {
            Ok(())
        } else {
            Err(self.wrong(tag.name()))
        }
    }

    /// Refuses a container nested too deep.
    fn check_depth(&self) -> Result<(), Error> {
        if self.depth > MAX_DEPTH {
            Err(Error::TooDeep { at: self.frame.at })
        } else {
            Ok(())
        }
    }

    fn integer(&self) -> Result<i64, Error> {
        match self.frame.tag {
            Tag::Integer => decode_integer(self.frame.payload, self.frame.payload_at),
            Tag::String if self.key => decode_integer(self.frame.payload, self.frame.payload_at),
            _ => Err(self.wrong("integer")),
        }
    }

    fn integer_as<T: TryFrom<i64>>(&self, target: &'static str) -> Result<T, Error> {
        let value = self.integer()?;
        T::try_from(value).map_err(|_| Error::IntegerOutOfRange {
            at: self.frame.at,
            value,
            target,
        })
    }

    fn float(&self) -> Result<f64, Error> {
        match self.frame.tag {
            Tag::Float => decode_float(self.frame.payload, self.frame.payload_at),
            Tag::Integer => {
                decode_integer(self.frame.payload, self.frame.payload_at).map(|n| n as f64)
            }
            _ => Err(self.wrong("float")),
        }
    }

    fn text(&self) -> Result<&'de str, Error> {
        self.expect(Tag::String)?;
        std::str::from_utf8(self.frame.payload).map_err(|_| Error::NotUtf8 {
            at: self.frame.payload_at,
        })
    }

    /// Visits a string as `str` when it is UTF-8 and as bytes otherwise.
    fn visit_string<V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, Error> {
        match std::str::from_utf8(self.frame.payload) {
            Ok(text) => visitor.visit_borrowed_str(text),
            Err(_) => visitor.visit_borrowed_bytes(self.frame.payload),
        }
    }

    fn visit_list<V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, Error> {
        self.expect(Tag::List)?;
        self.check_depth()?;
        let mut access = ListAccess {
            input: self.input,
            elements: Elements::new(&self.frame),
            depth: self.depth + 1,
            count: 0,
        };
        let value = visitor.visit_seq(&mut access)?;
        match access.elements.next_frame(self.input)? {
            None => Ok(value),
            Some(extra) => Err(Error::Custom {
                at: Some(extra.at),
                message: format!(
                    "list has more than the {} element(s) expected",
                    access.count
                ),
            }),
        }
    }

    fn visit_dict<V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, Error> {
        self.expect(Tag::Dict)?;
        self.check_depth()?;
        let mut access = DictAccess {
            input: self.input,
            elements: Elements::new(&self.frame),
            depth: self.depth + 1,
            key: None,
        };
        let value = visitor.visit_map(&mut access)?;
        match access.elements.next_frame(self.input)? {
            None => Ok(value),
            Some(extra) => Err(Error::Custom {
                at: Some(extra.at),
                message: "dict has more entries than expected".into(),
            }),
        }
    }
}

impl<'de> de::Deserializer<'de> for FrameDeserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let (payload, at) = (self.frame.payload, self.frame.payload_at);
        match self.frame.tag {
            Tag::String => self.visit_string(visitor),
            Tag::Integer => visitor.visit_i64(decode_integer(payload, at)?),
            Tag::Float => visitor.visit_f64(decode_float(payload, at)?),
            Tag::Boolean => visitor.visit_bool(decode_bool(payload, at)?),
            Tag::Null => {
                check_null(payload, at)?;
                visitor.visit_unit()
            }
            Tag::List => self.visit_list(visitor),
            Tag::Dict => self.visit_dict(visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.expect(Tag::Boolean)?;
        visitor.visit_bool(decode_bool(self.frame.payload, self.frame.payload_at)?)
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i8(self.integer_as("i8")?)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i16(self.integer_as("i16")?)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i32(self.integer_as("i32")?)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i64(self.integer()?)
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i128(self.integer()?.into())
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u8(self.integer_as("u8")?)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u16(self.integer_as("u16")?)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u32(self.integer_as("u32")?)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u64(self.integer_as("u64")?)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u128(self.integer_as("u128")?)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // `as f32` rounds to nearest, so what `to_vec` wrote for an f32 comes back exactly.
        visitor.visit_f32(self.float()? as f32)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(self.float()?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // serde's char visitor takes a str of exactly one char.
        visitor.visit_borrowed_str(self.text()?)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.text()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.text()?)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.expect(Tag::String)?;
        visitor.visit_borrowed_bytes(self.frame.payload)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.frame.tag == Tag::Null {
            check_null(self.frame.payload, self.frame.payload_at)?;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.expect(Tag::Null)?;
        check_null(self.frame.payload, self.frame.payload_at)?;
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_list(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.visit_list(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.visit_list(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_dict(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.visit_dict(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.frame.tag {
            Tag::String => visitor.visit_enum(Variant {
                input: self.input,
                name: self.frame,
                value: None,
                depth: self.depth,
            }),
            Tag::Dict => {
                self.check_depth()?;
                let mut elements = Elements::new(&self.frame);
                let Some((name, value)) = elements.next_pair(self.input)? else {
                    return Err(Error::Custom {
                        at: Some(self.frame.at),
                        message: "expected a one-entry dict {variant: value} for an enum, found an empty dict".into(),
                    });
                };
                if let Some(extra) = elements.next_frame(self.input)? {
                    return Err(Error::Custom {
                        at: Some(extra.at),
                        message: "an enum's dict must have exactly one entry {variant: value}"
                            .into(),
                    });
                }
                visitor.visit_enum(Variant {
                    input: self.input,
                    name,
                    value: Some(value),
                    depth: self.depth + 1,
                })
            }
            _ => Err(self.wrong("string or one-entry dict (enum)")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.expect(Tag::String)?;
        self.visit_string(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // Check what is skipped, so from_slice accepts exactly what parse does.
        decode(self.input, &self.frame, self.depth)?;
        visitor.visit_unit()
    }
}

/// The elements of a list, for `visit_seq`.
struct ListAccess<'de> {
    input: &'de [u8],
    elements: Elements,
    /// The depth of the elements.
    depth: usize,
    /// How many elements were handed out.
    count: usize,
}

impl<'de> SeqAccess<'de> for &mut ListAccess<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(frame) = self.elements.next_frame(self.input)? else {
            return Ok(None);
        };
        self.count += 1;
        seed.deserialize(FrameDeserializer::new(self.input, frame, self.depth))
            .map(Some)
            .map_err(|e| e.at_offset(frame.at))
    }
}

/// The entries of a dict, for `visit_map`.
struct DictAccess<'de> {
    input: &'de [u8],
    elements: Elements,
    /// The depth of the keys and values.
    depth: usize,
    /// The key whose value comes next.
    key: Option<Frame<'de>>,
}

impl<'de> MapAccess<'de> for &mut DictAccess<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(key) = self.elements.next_key(self.input)? else {
            return Ok(None);
        };
        self.key = Some(key);
        seed.deserialize(FrameDeserializer::key(self.input, key, self.depth))
            .map(Some)
            .map_err(|e| e.at_offset(key.at))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let key = self.key.take().ok_or_else(|| Error::Custom {
            at: None,
            message: "next_value called before next_key".into(),
        })?;
        let value = self.elements.next_value(self.input, &key)?;
        seed.deserialize(FrameDeserializer::new(self.input, value, self.depth))
            .map_err(|e| e.at_offset(value.at))
    }
}

/// An enum: the variant's name, and its value in the dict form.
struct Variant<'de> {
    input: &'de [u8],
    /// The string frame naming the variant.
    name: Frame<'de>,
    /// The variant's value, for `{variant: value}`; `None` for a bare
    /// string.
    value: Option<Frame<'de>>,
    /// The depth of `value`.
    depth: usize,
}

impl<'de> EnumAccess<'de> for Variant<'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self), Error> {
        let name = seed
            .deserialize(FrameDeserializer::key(self.input, self.name, self.depth))
            .map_err(|e| e.at_offset(self.name.at))?;
        Ok((name, self))
    }
}

impl<'de> Variant<'de> {
    /// The value of a non-unit variant, which needs the dict form.
    fn value(&self) -> Result<FrameDeserializer<'de>, Error> {
        match self.value {
            Some(frame) => Ok(FrameDeserializer::new(self.input, frame, self.depth)),
            None => Err(Error::WrongTag {
                at: self.name.at,
                expected: "one-entry dict {variant: value} (a variant with data)",
                found: Tag::String,
            }),
        }
    }
}

impl<'de> VariantAccess<'de> for Variant<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.value {
            None => Ok(()),
            Some(frame) => {
                let de = FrameDeserializer::new(self.input, frame, self.depth);
                <()>::deserialize(de).map_err(|e| e.at_offset(frame.at))
            }
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        let de = self.value()?;
        let at = de.frame.at;
        seed.deserialize(de).map_err(|e| e.at_offset(at))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        let de = self.value()?;
        let at = de.frame.at;
        de.visit_list(visitor).map_err(|e| e.at_offset(at))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let de = self.value()?;
        let at = de.frame.at;
        de.visit_dict(visitor).map_err(|e| e.at_offset(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tnetstring::{parse, to_vec, Value};
    use proptest::prelude::*;
    use serde::de::IgnoredAny;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Command<'a> {
        Help,
        Status { what: &'a str },
        Kill { id: u64 },
    }

    /// The control port's `[command, {args}]`.
    fn command(input: &[u8]) -> Result<(&str, BTreeMap<&str, Value<'_>>), Error> {
        from_slice(input)
    }

    #[test]
    fn control_port_requests() {
        let (name, args) = command(b"26:6:status,13:4:what,3:net,}]").unwrap();
        assert_eq!(name, "status");
        assert_eq!(args["what"], Value::String(b"net"));
        let (name, args) = command(b"21:4:kill,10:2:id,2:42#}]").unwrap();
        assert_eq!((name, args["id"].as_int()), ("kill", Some(42)));
        assert!(command(b"10:4:help,0:}]").unwrap().1.is_empty());
    }

    #[test]
    fn enums_from_strings_and_one_entry_dicts() {
        assert_eq!(from_slice::<Command<'_>>(b"4:help,"), Ok(Command::Help));
        assert_eq!(
            from_slice::<Command<'_>>(b"10:4:help,0:~}"),
            Ok(Command::Help)
        );
        assert_eq!(
            from_slice::<Command<'_>>(b"26:6:status,13:4:what,3:net,}}"),
            Ok(Command::Status { what: "net" })
        );
        assert_eq!(
            from_slice::<Command<'_>>(b"21:4:kill,10:2:id,2:42#}}"),
            Ok(Command::Kill { id: 42 })
        );
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "kebab-case")]
    enum Ctl {
        Credits(u32),
        KeepAlive(IgnoredAny),
        Cancel(IgnoredAny),
    }

    #[test]
    fn extended_replies() {
        assert_eq!(
            from_slice::<(&str, Ctl)>(b"24:3:ctl,14:7:credits,1:5#}]"),
            Ok(("ctl", Ctl::Credits(5)))
        );
        assert_eq!(
            from_slice::<(&str, Ctl)>(b"31:3:ctl,21:10:keep-alive,4:true!}]"),
            Ok(("ctl", Ctl::KeepAlive(IgnoredAny)))
        );
    }

    #[test]
    fn strings_and_bytes_borrow_from_the_input() {
        let input = b"12:3:abc,3:\xff\x00z,]";
        let (text, bytes): (&str, &[u8]) = from_slice(input).unwrap();
        assert_eq!((text, bytes), ("abc", &b"\xff\x00z"[..]));
        assert!(std::ptr::eq(text.as_ptr(), input[5..].as_ptr()));
        assert!(std::ptr::eq(bytes.as_ptr(), input[11..].as_ptr()));
    }

    #[test]
    fn wrong_types_name_the_offset() {
        assert_eq!(
            from_slice::<u32>(b"1:5,"),
            Err(Error::WrongTag {
                at: 0,
                expected: "integer",
                found: Tag::String
            })
        );
        let err = from_slice::<(&str, Ctl)>(b"25:3:ctl,15:7:credits,2:no,}]").unwrap_err();
        assert_eq!(
            err,
            Error::WrongTag {
                at: 22,
                expected: "integer",
                found: Tag::String
            }
        );
        assert_eq!(
            err.to_string(),
            "tnetstring at byte 22: expected integer, found string (`,`)"
        );
        assert_eq!(
            from_slice::<bool>(b"0:~"),
            Err(Error::WrongTag {
                at: 0,
                expected: "boolean",
                found: Tag::Null
            })
        );
        assert!(matches!(
            from_slice::<Command<'_>>(b"1:1#"),
            Err(Error::WrongTag { .. })
        ));
    }

    #[test]
    fn text_must_be_utf8() {
        assert_eq!(
            from_slice::<&str>(b"1:\xff,"),
            Err(Error::NotUtf8 { at: 2 })
        );
        assert_eq!(from_slice::<String>(b"2:ok,"), Ok("ok".to_string()));
        assert_eq!(from_slice::<char>(b"2:\xc3\xa9,"), Ok('é'));
        assert!(from_slice::<char>(b"2:ab,").is_err());
    }

    #[test]
    fn integers_must_fit_the_target() {
        assert_eq!(
            from_slice::<u8>(b"3:300#"),
            Err(Error::IntegerOutOfRange {
                at: 0,
                value: 300,
                target: "u8"
            })
        );
        assert!(matches!(
            from_slice::<u64>(b"2:-1#"),
            Err(Error::IntegerOutOfRange { target: "u64", .. })
        ));
        assert_eq!(from_slice::<i64>(b"20:-9223372036854775808#"), Ok(i64::MIN));
        assert_eq!(from_slice::<u128>(b"2:42#"), Ok(42));
        assert!(matches!(
            from_slice::<i64>(b"19:9223372036854775808#"),
            Err(Error::BadInteger { at: 3, .. })
        ));
    }

    #[test]
    fn floats_read_integers_too() {
        assert_eq!(from_slice::<f64>(b"1:3#"), Ok(3.0));
        assert_eq!(from_slice::<f64>(b"8:2.500000^"), Ok(2.5));
        assert_eq!(from_slice::<f32>(b"3:0.1^"), Ok(0.1f32));
        assert!(matches!(
            from_slice::<f64>(b"3:nan^"),
            Err(Error::BadFloat { .. })
        ));
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Kill {
        id: u64,
    }

    #[test]
    fn custom_errors_carry_the_offset_of_their_value() {
        let err = from_slice::<(&str, Kill)>(b"19:4:kill,9:2:di,1:1#}]").unwrap_err();
        assert_eq!(err.to_string(), "tnetstring at byte 10: missing field `id`");
        let err = from_slice::<Command<'_>>(b"10:4:quit,0:~}").unwrap_err();
        assert_eq!(err.offset(), Some(3));
        assert!(err.to_string().contains("unknown variant `quit`"), "{err}");
    }

    #[test]
    fn extra_list_elements_and_dict_entries_are_errors() {
        let err = from_slice::<(u8, u8)>(b"12:1:1#1:2#1:3#]").unwrap_err();
        assert_eq!(err.offset(), Some(11));
        assert_eq!(
            err.to_string(),
            "tnetstring at byte 11: list has more than the 2 element(s) expected"
        );
        let err = from_slice::<Ctl>(b"26:7:credits,1:5#6:cancel,0:~}").unwrap_err();
        assert_eq!(err.offset(), Some(17));
        let err = from_slice::<Ctl>(b"0:}").unwrap_err();
        assert_eq!(err.offset(), Some(0));
    }

    #[test]
    fn trailing_data() {
        assert_eq!(
            from_slice::<u8>(b"1:1#1:2#"),
            Err(Error::TrailingData { at: 4, len: 4 })
        );
    }

    #[test]
    fn ignored_parts_are_still_checked() {
        // `x` is not a field of Kill, and its value is malformed.
        assert_eq!(
            from_slice::<Kill>(b"19:2:id,1:1#1:x,3:yes!}"),
            Err(Error::BadBoolean {
                at: 18,
                text: "yes".into()
            })
        );
        assert_eq!(
            from_slice::<Kill>(b"20:2:id,1:1#1:x,4:1:a,}}"),
            Err(Error::MissingValue { at: 18 })
        );
    }

    #[test]
    fn map_keys_can_be_integers() {
        let map: BTreeMap<u16, bool> = from_slice(b"24:1:7,4:true!2:10,5:false!}").unwrap();
        assert_eq!(map, BTreeMap::from([(7, true), (10, false)]));
        assert!(matches!(
            from_slice::<BTreeMap<u16, bool>>(b"11:1:x,4:true!}"),
            Err(Error::BadInteger { at: 5, .. })
        ));
    }

    fn nested(levels: usize, open: &[u8], close: u8) -> Vec<u8> {
        let mut value = b"0:~".to_vec();
        for _ in 0..levels {
            let mut outer = format!("{}:", open.len() + value.len()).into_bytes();
            outer.extend_from_slice(open);
            outer.extend_from_slice(&value);
            outer.push(close);
            value = outer;
        }
        value
    }

    #[test]
    fn deep_nesting_is_an_error_through_serde_too() {
        let lists = nested(2_000, b"", b']');
        assert!(matches!(
            from_slice::<Value<'_>>(&lists),
            Err(Error::TooDeep { .. })
        ));
        assert!(matches!(
            from_slice::<IgnoredAny>(&lists),
            Err(Error::TooDeep { .. })
        ));
        let dicts = nested(2_000, b"1:k,", b'}');
        assert!(matches!(
            from_slice::<Value<'_>>(&dicts),
            Err(Error::TooDeep { .. })
        ));
        let ok = nested(MAX_DEPTH, b"", b']');
        assert!(from_slice::<Value<'_>>(&ok).is_ok());
        let too_deep = nested(MAX_DEPTH + 1, b"", b']');
        assert_eq!(from_slice::<Value<'_>>(&too_deep), parse(&too_deep));
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    enum Kind {
        Unit,
        Newtype(i64),
        Tuple(u8, String),
        Struct { x: f32, y: Option<String> },
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Record {
        id: u64,
        name: String,
        tags: Vec<String>,
        score: f64,
        flag: Option<bool>,
        kind: Kind,
        extra: BTreeMap<String, i32>,
        numbered: BTreeMap<u32, Vec<Kind>>,
        pair: (i8, u16),
        nothing: (),
    }

    fn kind() -> impl Strategy<Value = Kind> {
        prop_oneof![
            Just(Kind::Unit),
            any::<i64>().prop_map(Kind::Newtype),
            (any::<u8>(), ".*").prop_map(|(a, b)| Kind::Tuple(a, b)),
            (
                any::<f32>().prop_filter("finite", |f| f.is_finite()),
                proptest::option::of(".*")
            )
                .prop_map(|(x, y)| Kind::Struct { x, y }),
        ]
    }

    prop_compose! {
        fn record()(
            id in 0..=i64::MAX as u64,
            name in ".*",
            tags in proptest::collection::vec(".*", 0..4),
            score in crate::tnetstring::value::tests::finite_float(),
            flag in proptest::option::of(any::<bool>()),
            kind in kind(),
            extra in proptest::collection::btree_map(".*", any::<i32>(), 0..4),
            numbered in proptest::collection::btree_map(any::<u32>(), proptest::collection::vec(kind(), 0..3), 0..3),
            pair in any::<(i8, u16)>(),
        ) -> Record {
            Record { id, name, tags, score, flag, kind, extra, numbered, pair, nothing: () }
        }
    }

    proptest! {
        #[test]
        fn serde_round_trips(record in record()) {
            let bytes = to_vec(&record).unwrap();
            prop_assert_eq!(from_slice::<Record>(&bytes).unwrap(), record.clone());
            // The output is a valid tnetstring that re-encodes to itself.
            prop_assert_eq!(parse(&bytes).unwrap().to_vec(), bytes.clone());
            for split in 0..bytes.len() {
                prop_assert!(from_slice::<Record>(&bytes[..split]).unwrap_err().is_incomplete());
            }
        }

        #[test]
        fn kinds_round_trip(kind in kind()) {
            let bytes = to_vec(&kind).unwrap();
            prop_assert_eq!(from_slice::<Kind>(&bytes).unwrap(), kind);
        }

        #[test]
        fn arbitrary_bytes_never_panic_through_serde(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = from_slice::<Record>(&bytes);
            let _ = from_slice::<Kind>(&bytes);
            let value = from_slice::<Value<'_>>(&bytes);
            prop_assert_eq!(value, parse(&bytes));
        }
    }
}
