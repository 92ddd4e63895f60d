//! Fuzz target `tnetstring`: arbitrary bytes through the tnetstring parser.
//!
//! Checks that parsing never panics, that the serde path agrees with the
//! value parser (same value, same error), and that every value parsed
//! re-encodes to canonical bytes that parse back to the same value, through
//! both `Value::encode` and `to_vec`.
#![no_main]

use kennel_handler::tnetstring::{self, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = tnetstring::parse(data);
    let via_serde = tnetstring::from_slice::<Value<'_>>(data);
    assert_eq!(parsed, via_serde, "parse and from_slice disagree");

    // parse_prefix reads the same value and reports what follows.
    if let Ok((value, rest)) = tnetstring::parse_prefix(data) {
        let used = data.len() - rest.len();
        assert_eq!(tnetstring::parse(&data[..used]).as_ref(), Ok(&value));
    }

    let Ok(value) = parsed else { return };

    // Proper prefixes of a valid tnetstring are incomplete, never a value.
    for split in [data.len() - 1, data.len() / 2] {
        let err = tnetstring::parse(&data[..split]).expect_err("a prefix parsed");
        assert!(err.is_incomplete(), "prefix at {split}: {err}");
    }

    let encoded = value.to_vec();
    let reparsed = tnetstring::parse(&encoded).expect("re-encoded value does not parse");
    assert_eq!(reparsed, value, "round trip changed the value");
    assert_eq!(reparsed.to_vec(), encoded, "encoding is not canonical");
    let serialized = tnetstring::to_vec(&value).expect("to_vec failed on a parsed value");
    assert_eq!(serialized, encoded, "to_vec and Value::encode disagree");
});
