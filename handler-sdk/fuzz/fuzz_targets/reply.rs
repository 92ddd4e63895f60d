//! Fuzz target `reply`: arbitrary bytes through the server's reply parser.
//!
//! Checks that parsing never panics, that every accepted reply's ids are
//! within the target limit, and that a plain reply re-encodes to bytes that
//! parse back to the same ids and body.
#![no_main]

use kennel_handler::reply::{self, Body, Reply};
use libfuzzer_sys::fuzz_target;

const MAX_TARGETS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = Reply::parse(data, MAX_TARGETS) else { return };
    let ids: Vec<u64> = parsed.ids().collect();
    assert_eq!(ids.len(), parsed.id_count());
    assert!(!ids.is_empty() && ids.len() <= MAX_TARGETS);
    if let Body::Data(body) = parsed.body() {
        let mut again = Vec::new();
        reply::encode(&mut again, parsed.uuid(), &ids, body);
        let reparsed = Reply::parse(&again, MAX_TARGETS).expect("re-encoded reply parses");
        assert_eq!(reparsed.ids().collect::<Vec<_>>(), ids);
        assert_eq!(reparsed.body(), parsed.body());
    }
});
