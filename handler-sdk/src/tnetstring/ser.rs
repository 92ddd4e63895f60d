//! serde encoding: [`to_vec`] and the [`Serializer`] behind it.

use serde::ser::{self, Impossible, Serialize};

use super::frame::{
    begin_container, end_container, write_bool, write_display_float, write_integer, write_null,
    write_string, Container, Mark,
};
use super::{Error, MAX_LENGTH};

/// Encodes `value` as one tnetstring.
///
/// | Rust (serde data model) | tnetstring |
/// |---|---|
/// | `bool` | boolean |
/// | `i8`…`i64`, `u8`…`u64`, `i128`, `u128` | integer; outside `i64` is [`Error::IntegerTooLarge`] |
/// | `f32`, `f64` | float, shortest round-trip decimal; NaN and ±∞ are [`Error::NonFiniteFloat`] |
/// | `char`, `str`, `String`, bytes | string |
/// | `None`, `()`, unit struct | null |
/// | `Some(x)`, newtype struct | `x` |
/// | sequence, tuple, tuple struct | list |
/// | map, struct | dict; map keys must be strings, chars, bytes, integers (written in decimal) or unit variants, else [`Error::KeyNotString`] |
/// | unit variant | string: the variant's name |
/// | newtype, tuple and struct variants | a one-entry dict `{variant: value}` |
///
/// Like JSON, `Some(())` and `Some(None)` encode as null and so decode as
/// `None`. Byte slices need `serde_bytes` (or [`Value`](super::Value)) to be
/// written as strings: serde sees a plain `&[u8]`/`Vec<u8>` as a sequence of
/// integers.
///
/// # Errors
///
/// As in the table, plus [`Error::PayloadTooLong`] for a string or container
/// longer than [`MAX_LENGTH`], and any error the type's `Serialize` returns
/// ([`Error::Custom`]).
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Kill { id: u64 }
///
/// let bytes = kennel_handler::tnetstring::to_vec(&("kill", Kill { id: 42 }))?;
/// assert_eq!(bytes, b"21:4:kill,10:2:id,2:42#}]");
/// # Ok::<(), kennel_handler::tnetstring::Error>(())
/// ```
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    value.serialize(&mut Serializer::new(&mut out))?;
    Ok(out)
}

/// A serde serializer appending tnetstrings to a `Vec<u8>`; see [`to_vec`]
/// for the mapping.
///
/// On error, the output holds whatever was written before it; truncate it
/// to its old length if that matters.
#[derive(Debug)]
pub struct Serializer<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> Serializer<'o> {
    /// A serializer appending to `out`.
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        Serializer { out }
    }

    fn string(&mut self, s: &[u8]) -> Result<(), Error> {
        check_len(s.len())?;
        write_string(self.out, s);
        Ok(())
    }

    fn integer(&mut self, value: impl TryInto<i64> + ToString + Copy) -> Result<(), Error> {
        let n = value.try_into().map_err(|_| Error::IntegerTooLarge {
            value: value.to_string(),
        })?;
        write_integer(self.out, n);
        Ok(())
    }

    fn begin(&mut self) -> Mark {
        begin_container(self.out)
    }

    fn end(&mut self, mark: Mark, kind: Container) -> Result<(), Error> {
        check_len(mark.payload_len(self.out))?;
        end_container(self.out, mark, kind);
        Ok(())
    }

    /// Begins `{variant: …` for a non-unit enum variant.
    fn begin_variant(&mut self, variant: &str) -> Result<Mark, Error> {
        let mark = self.begin();
        self.string(variant.as_bytes())?;
        Ok(mark)
    }
}

fn check_len(len: usize) -> Result<(), Error> {
    if len > MAX_LENGTH {
        Err(Error::PayloadTooLong { len })
    } else {
        Ok(())
    }
}

impl<'a, 'o> ser::Serializer for &'a mut Serializer<'o> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a, 'o>;
    type SerializeTuple = Compound<'a, 'o>;
    type SerializeTupleStruct = Compound<'a, 'o>;
    type SerializeTupleVariant = Compound<'a, 'o>;
    type SerializeMap = Compound<'a, 'o>;
    type SerializeStruct = Compound<'a, 'o>;
    type SerializeStructVariant = Compound<'a, 'o>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        write_bool(self.out, v);
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.integer(v)
    }

    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.integer(v)
    }

    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.integer(v)
    }

    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.integer(v)
    }

    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.integer(v)
    }

    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.integer(v)
    }

    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.integer(v)
    }

    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.integer(v)
    }

    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.integer(v)
    }

    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.integer(v)
    }

    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        if !v.is_finite() {
            return Err(Error::NonFiniteFloat { value: v.into() });
        }
        // f32's own shortest form: 0.1f32 is "0.1", not 0.10000000149011612.
        write_display_float(self.out, v);
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        super::write_float(self.out, v)
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.string(v.encode_utf8(&mut [0; 4]).as_bytes())
    }

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.string(v.as_bytes())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.string(v)
    }

    fn serialize_none(self) -> Result<(), Error> {
        write_null(self.out);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        write_null(self.out);
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        write_null(self.out);
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.string(variant.as_bytes())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        let mark = self.begin_variant(variant)?;
        value.serialize(&mut *self)?;
        self.end(mark, Container::Dict)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a, 'o>, Error> {
        let mark = self.begin();
        Ok(Compound::new(self, mark, Container::List, None))
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'a, 'o>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a, 'o>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'o>, Error> {
        let outer = self.begin_variant(variant)?;
        let mark = self.begin();
        Ok(Compound::new(self, mark, Container::List, Some(outer)))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a, 'o>, Error> {
        let mark = self.begin();
        Ok(Compound::new(self, mark, Container::Dict, None))
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'a, 'o>, Error> {
        self.serialize_map(None)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'o>, Error> {
        let outer = self.begin_variant(variant)?;
        let mark = self.begin();
        Ok(Compound::new(self, mark, Container::Dict, Some(outer)))
    }
}

/// A list or dict being serialized, possibly inside the one-entry dict of an
/// enum variant.
#[derive(Debug)]
pub struct Compound<'a, 'o> {
    ser: &'a mut Serializer<'o>,
    mark: Mark,
    kind: Container,
    /// The `{variant: …}` dict around the container, for variants.
    variant: Option<Mark>,
}

impl<'a, 'o> Compound<'a, 'o> {
    fn new(
        ser: &'a mut Serializer<'o>,
        mark: Mark,
        kind: Container,
        variant: Option<Mark>,
    ) -> Self {
        Compound {
            ser,
            mark,
            kind,
            variant,
        }
    }

    fn finish(self) -> Result<(), Error> {
        self.ser.end(self.mark, self.kind)?;
        match self.variant {
            Some(outer) => self.ser.end(outer, Container::Dict),
            None => Ok(()),
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.ser)
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        key.serialize(KeySerializer { ser: self.ser })
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.ser.string(key.as_bytes())?;
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.ser.string(key.as_bytes())?;
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

/// Writes a map key as a string, or refuses it.
struct KeySerializer<'a, 'o> {
    ser: &'a mut Serializer<'o>,
}

impl KeySerializer<'_, '_> {
    fn decimal(self, v: impl std::fmt::Display) -> Result<(), Error> {
        self.ser.string(v.to_string().as_bytes())
    }
}

fn not_a_key<T>(found: &'static str) -> Result<T, Error> {
    Err(Error::KeyNotString { found })
}

impl ser::Serializer for KeySerializer<'_, '_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_bool(self, _v: bool) -> Result<(), Error> {
        not_a_key("boolean")
    }

    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.decimal(v)
    }

    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.decimal(v)
    }

    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.decimal(v)
    }

    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.decimal(v)
    }

    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.decimal(v)
    }

    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.decimal(v)
    }

    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.decimal(v)
    }

    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.decimal(v)
    }

    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.decimal(v)
    }

    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.decimal(v)
    }

    fn serialize_f32(self, _v: f32) -> Result<(), Error> {
        not_a_key("float")
    }

    fn serialize_f64(self, _v: f64) -> Result<(), Error> {
        not_a_key("float")
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.ser.string(v.encode_utf8(&mut [0; 4]).as_bytes())
    }

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.ser.string(v.as_bytes())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.ser.string(v)
    }

    fn serialize_none(self) -> Result<(), Error> {
        not_a_key("None")
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<(), Error> {
        not_a_key("Option")
    }

    fn serialize_unit(self) -> Result<(), Error> {
        not_a_key("unit")
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        not_a_key("unit struct")
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.ser.string(variant.as_bytes())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        not_a_key("newtype variant")
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        not_a_key("sequence")
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        not_a_key("tuple")
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        not_a_key("tuple struct")
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        not_a_key("tuple variant")
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        not_a_key("map")
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        not_a_key("struct")
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        not_a_key("struct variant")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    struct Status<'a> {
        what: &'a str,
    }

    #[derive(Serialize)]
    struct Kill {
        id: u64,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "kebab-case")]
    enum Ctl {
        Credits(u32),
        KeepAlive(bool),
    }

    /// Serializes its bytes with `serialize_bytes`, as `serde_bytes` does.
    struct Bytes<'a>(&'a [u8]);

    impl Serialize for Bytes<'_> {
        fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    fn encoded<T: Serialize + ?Sized>(value: &T) -> String {
        to_vec(value).unwrap().escape_ascii().to_string()
    }

    #[test]
    fn control_port_requests() {
        assert_eq!(
            to_vec(&("status", Status { what: "net" })).unwrap(),
            b"26:6:status,13:4:what,3:net,}]"
        );
        assert_eq!(
            to_vec(&("kill", Kill { id: 42 })).unwrap(),
            b"21:4:kill,10:2:id,2:42#}]"
        );
        assert_eq!(
            to_vec(&("help", BTreeMap::<String, ()>::new())).unwrap(),
            b"10:4:help,0:}]"
        );
    }

    #[test]
    fn extended_replies() {
        assert_eq!(
            to_vec(&("ctl", Ctl::Credits(5))).unwrap(),
            b"24:3:ctl,14:7:credits,1:5#}]"
        );
        assert_eq!(
            to_vec(&("ctl", Ctl::KeepAlive(true))).unwrap(),
            b"31:3:ctl,21:10:keep-alive,4:true!}]"
        );
    }

    #[test]
    fn scalars() {
        assert_eq!(encoded(&true), "4:true!");
        assert_eq!(encoded(&-5i8), "2:-5#");
        assert_eq!(
            encoded(&u64::try_from(i64::MAX).unwrap()),
            "19:9223372036854775807#"
        );
        assert_eq!(encoded(&i128::from(i64::MIN)), "20:-9223372036854775808#");
        assert_eq!(encoded(&7u128), "1:7#");
        assert_eq!(encoded(&1.5f64), "3:1.5^");
        assert_eq!(encoded(&0.1f32), "3:0.1^");
        assert_eq!(encoded(&1e21f64), "22:1000000000000000000000^");
        assert_eq!(encoded(&'é'), "2:\\xc3\\xa9,");
        assert_eq!(encoded("hi"), "2:hi,");
        assert_eq!(encoded(&Bytes(b"\xff\x00")), "2:\\xff\\x00,");
        assert_eq!(encoded(&None::<u8>), "0:~");
        assert_eq!(encoded(&Some(5u8)), "1:5#");
        assert_eq!(encoded(&()), "0:~");
    }

    #[test]
    fn integers_outside_i64_are_errors() {
        assert_eq!(
            to_vec(&(u64::MAX)),
            Err(Error::IntegerTooLarge {
                value: u64::MAX.to_string()
            })
        );
        assert_eq!(
            to_vec(&(i64::MAX as u64 + 1)).unwrap_err().to_string(),
            "tnetstring encode: integer 9223372036854775808 is outside the i64 range"
        );
        assert!(to_vec(&(i128::from(i64::MIN) - 1)).is_err());
        assert!(to_vec(&u128::MAX).is_err());
    }

    #[test]
    fn non_finite_floats_are_errors() {
        assert!(matches!(
            to_vec(&f64::NAN),
            Err(Error::NonFiniteFloat { .. })
        ));
        assert_eq!(
            to_vec(&f64::INFINITY),
            Err(Error::NonFiniteFloat {
                value: f64::INFINITY
            })
        );
        assert!(to_vec(&[f32::NEG_INFINITY]).is_err());
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Newtype(u8);

    #[derive(Serialize)]
    struct Pair(u8, &'static str);

    #[derive(Serialize)]
    enum Shape {
        Empty,
        Circle(u8),
        Line(u8, u8),
        Rect { w: u8, h: u8 },
    }

    #[test]
    fn structs_and_enums() {
        assert_eq!(encoded(&Unit), "0:~");
        assert_eq!(encoded(&Newtype(3)), "1:3#");
        assert_eq!(encoded(&Pair(1, "a")), "8:1:1#1:a,]");
        assert_eq!(encoded(&Shape::Empty), "5:Empty,");
        assert_eq!(encoded(&Shape::Circle(2)), "13:6:Circle,1:2#}");
        assert_eq!(encoded(&Shape::Line(1, 2)), "18:4:Line,8:1:1#1:2#]}");
        assert_eq!(
            encoded(&Shape::Rect { w: 1, h: 2 }),
            "27:4:Rect,16:1:w,1:1#1:h,1:2#}}"
        );
        assert_eq!(encoded(&vec![Some(1u8), None]), "7:1:1#0:~]");
    }

    #[test]
    fn map_keys_are_strings() {
        let numbered = BTreeMap::from([(1u32, "a"), (20, "b")]);
        assert_eq!(encoded(&numbered), "17:1:1,1:a,2:20,1:b,}");
        let chars = BTreeMap::from([('x', true)]);
        assert_eq!(encoded(&chars), "11:1:x,4:true!}");
        let mut variants = BTreeMap::new();
        variants.insert(Key::Credits, 1u8);
        assert_eq!(encoded(&variants), "14:7:credits,1:1#}");
        assert_eq!(
            to_vec(&BTreeMap::from([(true, 1u8)])),
            Err(Error::KeyNotString { found: "boolean" })
        );
        assert_eq!(
            to_vec(&BTreeMap::from([((1u8, 2u8), 1u8)])),
            Err(Error::KeyNotString { found: "tuple" })
        );
    }

    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    #[serde(rename_all = "kebab-case")]
    enum Key {
        Credits,
    }

    #[test]
    fn payloads_over_max_length_are_errors() {
        // Building a gigabyte to prove it is too slow for a unit test; the
        // check every string and container goes through is this one.
        assert_eq!(check_len(MAX_LENGTH), Ok(()));
        assert_eq!(
            check_len(MAX_LENGTH + 1),
            Err(Error::PayloadTooLong {
                len: MAX_LENGTH + 1
            })
        );
    }

    #[test]
    fn serializer_appends() {
        let mut out = b"SENDER 3:X 7, ".to_vec();
        ("ctl", Ctl::Credits(5))
            .serialize(&mut Serializer::new(&mut out))
            .unwrap();
        assert_eq!(out, b"SENDER 3:X 7, 24:3:ctl,14:7:credits,1:5#}]");
    }

    #[test]
    fn custom_errors_pass_through() {
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: ser::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(<S::Error as ser::Error>::custom("no thanks"))
            }
        }
        let err = to_vec(&[Refuses]).unwrap_err();
        assert_eq!(err.to_string(), "tnetstring: no thanks");
        assert_eq!(err.offset(), None);
    }
}
