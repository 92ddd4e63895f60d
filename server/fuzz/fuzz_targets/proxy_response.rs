//! Fuzz target `proxy_response`: a back end's response head as the proxy
//! sees it, through `kennel::proxy::framing` and `kennel::proxy::response_head`
//! (what Kennel writes to its client for it).
//!
//! Input: a control byte (bit 0: the client's request was `HEAD`; bit 1:
//! the client speaks HTTP/1.1; bit 2: the connection closes after this
//! response), then the back end's bytes. They are parsed with `httparse`,
//! as `hyper` (the proxy's HTTP client) parses them, into the status,
//! reason and `HeaderMap` that the proxy gets; inputs `hyper` would refuse
//! (not a complete head, a name or value `http` does not take) end there.
//!
//! Checks, besides "no panic":
//! - the head Kennel writes is one complete HTTP/1.1 response head, of
//!   exactly its own length, with the back end's status;
//! - no framing: a `HEAD`, `1xx`, `204` or `304`, and only then;
//! - `Content-Length` framing: exactly one `content-length` (the back
//!   end's) and no `transfer-encoding`; chunked: one `transfer-encoding:
//!   chunked` and no `content-length`; until close only for an HTTP/1.0
//!   client, with neither;
//! - no hop-by-hop field of the back end's passes (a `101` keeps `Upgrade`
//!   and `Connection`), nor any field its `Connection` lists;
//! - every other field passes, in order, with its value;
//! - `connection: close` exactly when the connection closes (not on a `101`).
#![no_main]

use http::header::{HeaderMap, HeaderName, HeaderValue};
use kennel::proxy::{framing, is_hop_by_hop, response_head, Framing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let head_request = control & 1 != 0;
    let http11 = control & 2 != 0;
    let close = control & 4 != 0;

    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut fields);
    let Ok(httparse::Status::Complete(_)) = parsed.parse(stream) else {
        return;
    };
    let status = parsed.code.expect("a complete head has a status");
    if !(100..=999).contains(&status) {
        return;
    }
    let mut headers = HeaderMap::new();
    let mut given: Vec<(String, Vec<u8>)> = Vec::new();
    for field in parsed.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(field.name.as_bytes()),
            HeaderValue::from_bytes(field.value),
        ) else {
            return;
        };
        given.push((name.as_str().to_owned(), value.as_bytes().to_vec()));
        headers.append(name, value);
    }
    let reason = parsed.reason.map(str::as_bytes);

    let framed = framing(status, &headers, head_request, http11);
    let none_expected =
        head_request || (100..200).contains(&status) || status == 204 || status == 304;
    assert_eq!(framed == Framing::None, none_expected, "{framed:?} for {status}");
    if framed == Framing::UntilClose {
        assert!(!http11, "until close for an HTTP/1.1 client");
    }

    let out = response_head(status, reason, &headers, framed, close);
    let mut out_fields = [httparse::EMPTY_HEADER; 80];
    let mut written = httparse::Response::new(&mut out_fields);
    match written.parse(&out) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, out.len(), "trailing bytes"),
        other => panic!("Kennel's head does not parse: {other:?} {:?}", String::from_utf8_lossy(&out)),
    }
    assert_eq!(written.version, Some(1));
    assert_eq!(written.code, Some(status));

    let named = |name: &str| {
        written
            .headers
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.value.to_vec())
            .collect::<Vec<_>>()
    };
    let lengths = named("content-length");
    let codings = named("transfer-encoding");
    match framed {
        Framing::Length(n) => {
            assert_eq!(lengths, vec![n.to_string().into_bytes()]);
            assert!(codings.is_empty());
        }
        Framing::Chunked => {
            assert!(lengths.is_empty());
            assert_eq!(codings, vec![b"chunked".to_vec()]);
        }
        Framing::UntilClose => {
            assert!(lengths.is_empty());
            assert!(codings.is_empty());
        }
        Framing::None => {
            assert!(codings.is_empty());
            assert!(lengths.len() <= 1);
        }
    }
    let closes = written
        .headers
        .iter()
        .filter(|f| f.name == "connection" && f.value == b"close")
        .count();
    let upgrade = status == 101;
    if close && !upgrade {
        assert_eq!(closes, 1, "connection: close missing");
    }

    // The end-to-end fields of the back end, in order, then Kennel's own.
    let listed: Vec<Vec<u8>> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .map(|t| t.trim_ascii().to_ascii_lowercase())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
        })
        .collect();
    let listed: Vec<&[u8]> = listed.iter().map(Vec::as_slice).collect();
    let expected: Vec<(String, Vec<u8>)> = given
        .into_iter()
        .filter(|(name, _)| {
            let kept_for_upgrade = upgrade && (name == "upgrade" || name == "connection");
            (kept_for_upgrade || !is_hop_by_hop(name.as_bytes(), &listed))
                && name != "content-length"
        })
        .collect();
    let mut own = 0;
    if matches!(framed, Framing::Length(_) | Framing::Chunked) {
        own += 1;
    }
    if framed == Framing::None && headers.contains_key(http::header::CONTENT_LENGTH) {
        own += 1;
    }
    if close && !upgrade {
        own += 1;
    }
    assert_eq!(written.headers.len(), expected.len() + own, "field count");
    // `HeaderMap` groups a name's values, in order, at its first place.
    let mut grouped: Vec<(String, Vec<u8>)> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (name, _) in &expected {
        if !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    for name in names {
        grouped.extend(expected.iter().filter(|(n, _)| n == name).cloned());
    }
    for (field, (name, value)) in written.headers.iter().zip(&grouped) {
        assert_eq!(field.name, name);
        assert_eq!(field.value, value.as_slice());
    }
});
