//! Fuzz target `request`: arbitrary bytes through the handler side's
//! request-message parser (what a handler reads from a server, or from
//! anything else that connects to its socket). It must never panic.
#![no_main]

use kennel_handler::request::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = Request::parse(data) {
        let _ = (req.is_disconnect(), req.should_close(), req.method());
    }
});
