//! The differential test for WebSocket traffic: the same upgrade and the
//! same client frames (`differential::websocket`) through the real
//! Mongrel2 1.12 and through Kennel, on both handler routes (JSON and
//! tnetstring headers), and what the handler receives compared frame by
//! frame — the `WEBSOCKET_HANDSHAKE` message, each `WEBSOCKET` message
//! with its `FLAGS`, the notices — along with what the client reads back
//! (the handler's `101` and frames, verbatim) and how the connection ends.
//!
//! The Mongrel2 half pins down Mongrel2's exact behaviour (the
//! `mongrel2_*` tests). The Kennel half compares Kennel's record with
//! Mongrel2's, byte for byte apart from connection ids and header order,
//! and checks Kennel's one documented difference (frames RFC 6455 does not
//! allow end the connection with 1002). Each server gets
//! its own site (the same rows, made by `m2sh load`; the kind of database
//! is covered by the HTTP differential test) and every request says
//! `Host: localhost`, so the two records are comparable. Without Mongrel2
//! (Debian's `mongrel2-core`) every test fails, saying what to install.

mod common;
mod differential;

use std::sync::OnceLock;

use differential::databases::DbKind;
use differential::websocket::{
    big_binary, cases, exercise_ws, switching_protocols, End, WsCase, WsCaseRun, ACCEPT,
    CLOSE_PAYLOAD, CLOSE_REPLY, KEY,
};
use differential::{kennel, member, mongrel2, show, Canonical, Outcome, Route, Site, Start, REPLY};
use kennel_handler::Request;

/// The `Host` of every request: one value for both servers' sites.
const HOST: &str = "localhost";

struct WsRuns {
    cases: Vec<WsCase>,
    runs: Vec<WsCaseRun>,
}

/// Every scenario through the server `start` starts, on a site of its own.
fn run(start: Start) -> WsRuns {
    let site = Site::new(DbKind::M2sh);
    let cases = cases(HOST);
    let served = start(&site);
    let runs = exercise_ws(&site, served.addr(), &cases);
    served.stop();
    WsRuns { cases, runs }
}

/// One run per server per test binary; a failure fails every test that
/// needs it with the same message.
fn runs_of(cell: &'static OnceLock<Result<WsRuns, String>>, start: Start) -> &'static WsRuns {
    differential::run_once(cell, "the WebSocket run", move || run(start))
}

fn mongrel2_runs() -> &'static WsRuns {
    static RUNS: OnceLock<Result<WsRuns, String>> = OnceLock::new();
    runs_of(&RUNS, mongrel2)
}

fn kennel_runs() -> &'static WsRuns {
    static RUNS: OnceLock<Result<WsRuns, String>> = OnceLock::new();
    runs_of(&RUNS, kennel)
}

/// The record of scenario `name` on `route`.
fn case<'a>(runs: &'a WsRuns, name: &str, route: Route) -> (&'a WsCase, &'a WsCaseRun) {
    let i = runs
        .cases
        .iter()
        .position(|c| c.name == name && c.route == route)
        .unwrap_or_else(|| panic!("no scenario {name}"));
    (&runs.cases[i], &runs.runs[i])
}

fn parse(what: &str, frame: &[u8]) -> Request {
    Request::parse(frame).unwrap_or_else(|e| panic!("{what}: {e}: {}", show(frame)))
}

fn handshake<'a>(what: &str, run: &'a WsCaseRun) -> &'a [u8] {
    match &run.handshake {
        Some(Outcome::Frame(frame)) => frame,
        other => panic!("{what}: no handshake frame: {other:?}"),
    }
}

/// `(FLAGS, body)` of each frame.
fn flags_and_bodies(what: &str, run: &WsCaseRun) -> Vec<(String, Vec<u8>)> {
    run.frames
        .iter()
        .map(|f| {
            let req = parse(what, f);
            assert_eq!(req.method(), Some("WEBSOCKET"), "{what}: {}", show(f));
            let flags = req
                .header("FLAGS")
                .unwrap_or_else(|| panic!("{what}: no FLAGS"));
            (flags.to_owned(), req.body().to_vec())
        })
        .collect()
}

fn owned(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(f, b)| ((*f).to_owned(), b.to_vec()))
        .collect()
}

fn assert_disconnect(what: &str, notice: Option<&[u8]>, id: Option<u64>) {
    let notice = notice.unwrap_or_else(|| panic!("{what}: no disconnect notice"));
    let req = parse(what, notice);
    assert!(req.is_disconnect(), "{what}: {}", show(notice));
    assert_eq!(Some(req.conn_id()), id, "{what}: the notice's id");
    assert_eq!(req.path(), b"@*", "{what}");
}

/// The handshake: the upgrade request's headers as for any request (names
/// lower-cased, duplicates as a list, `x-forwarded-for` clobbered), with
/// `METHOD` `WEBSOCKET_HANDSHAKE`, no `FLAGS`, and the accept key as the
/// body; the handler's `101` reaches the client verbatim.
#[test]
fn mongrel2_handshake_has_the_upgrade_headers_and_the_accept_key_as_body() {
    let runs = mongrel2_runs();
    for route in Route::ALL {
        let what = format!("handshake on {route:?}");
        let (_, run) = case(runs, "conversation", route);
        let frame = handshake(&what, run);
        let req = parse(&what, frame);
        assert_eq!(req.sender(), route.send_ident(), "{what}");
        assert_eq!(req.path(), format!("{}chat", route.prefix()).as_bytes());
        assert_eq!(req.body(), ACCEPT.as_bytes(), "{what}: {}", show(frame));
        assert_eq!(
            ACCEPT,
            kennel_handler::websocket::accept_key(KEY.as_bytes())
        );
        let h = req.headers();
        let expected: &[(&str, &str)] = &[
            ("METHOD", "WEBSOCKET_HANDSHAKE"),
            ("PATH", &format!("{}chat", route.prefix())),
            ("VERSION", "HTTP/1.1"),
            ("URI", &format!("{}chat?room=1", route.prefix())),
            ("QUERY", "room=1"),
            ("PATTERN", route.prefix()),
            ("URL_SCHEME", "http"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("host", HOST),
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-key", KEY),
            ("sec-websocket-version", "13"),
            ("origin", "http://localhost"),
            ("x-forwarded-for", "127.0.0.1"),
        ];
        for (key, value) in expected {
            assert_eq!(h.get(key), Some(*value), "{what}: {key}: {}", show(frame));
        }
        assert_eq!(h.get_all("x-dup").collect::<Vec<_>>(), [b"a", b"b"]);
        let mut keys: Vec<&str> = h.iter().map(|(k, _)| k).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut want: Vec<&str> = expected.iter().map(|(k, _)| *k).collect();
        want.push("x-dup");
        want.sort_unstable();
        assert_eq!(keys, want, "{what}: exactly these keys (no FLAGS)");
        assert_eq!(run.upgrade_response, switching_protocols(ACCEPT.as_bytes()));
    }
}

/// Every `WEBSOCKET` message repeats the handshake's headers exactly, with
/// `METHOD` `WEBSOCKET` and a `FLAGS` member added, on the same id.
#[test]
fn mongrel2_messages_repeat_the_handshake_headers_with_flags() {
    let runs = mongrel2_runs();
    let mut checked = 0;
    for (case, run) in runs.cases.iter().zip(&runs.runs) {
        let what = format!("{} on {:?}", case.name, case.route);
        if run.frames.is_empty() {
            continue;
        }
        let (hs, _) = Canonical::of(handshake(&what, run)).expect("the handshake splits");
        for frame in &run.frames {
            let (msg, id) = Canonical::of(frame).expect("the message splits");
            let flags = parse(&what, frame).header("FLAGS").unwrap().to_owned();
            let mut want = hs.clone();
            let method = member(case.route, "METHOD", "WEBSOCKET_HANDSHAKE");
            want.members.retain(|m| *m != method);
            want.members.push(member(case.route, "METHOD", "WEBSOCKET"));
            want.members.push(member(case.route, "FLAGS", &flags));
            want.members.sort();
            want.body = msg.body.clone();
            assert_eq!(msg, want, "{what}: {}", show(frame));
            assert_eq!(id, run.id.unwrap().to_string().into_bytes(), "{what}");
            checked += 1;
        }
    }
    assert!(checked >= 2 * 13, "only {checked} messages");
}

/// `FLAGS` is `0x%X` of the first frame's byte 0 with FIN set; the body is
/// the unmasked payload, fragments reassembled, control frames forwarded
/// as they come (even between fragments), none answered by the server.
#[test]
fn mongrel2_flags_and_bodies_for_each_kind_of_frame() {
    let runs = mongrel2_runs();
    let big = big_binary();
    let conversation = owned(&[
        ("0x81", b"hello"),
        ("0x82", b"\x00\x01\xfe\xff"),
        ("0x81", b""),
        ("0x81", b"one two three"),
        ("0x89", b"are you there?"),
        ("0x8A", b"unsolicited"),
        ("0x82", &big),
        ("0x88", CLOSE_PAYLOAD),
    ]);
    for route in Route::ALL {
        let facts = [
            ("conversation", conversation.clone()),
            (
                "ping_between_fragments",
                owned(&[("0x89", b"mid"), ("0x82", b"first second")]),
            ),
            ("client_goes_away", owned(&[("0x81", b"brb")])),
            // Neither a reserved opcode nor RSV bits are refused.
            ("reserved_opcode", owned(&[("0x83", b"odd")])),
            ("rsv_bits", owned(&[("0xC1", b"deflated?")])),
        ];
        for (name, want) in facts {
            let (_, run) = case(runs, name, route);
            let what = format!("{name} on {route:?}");
            assert_eq!(flags_and_bodies(&what, run), want, "{what}");
        }
    }
}

/// The handler's frames reach the client verbatim; after its close frame,
/// the empty reply closes the TCP connection, and no disconnect notice
/// follows (the handler closed it).
#[test]
fn mongrel2_writes_handler_frames_verbatim_and_closes_on_the_empty_reply() {
    let runs = mongrel2_runs();
    for route in Route::ALL {
        let what = format!("conversation on {route:?}");
        let (_, run) = case(runs, "conversation", route);
        let echoes: Vec<u8> = run
            .frames
            .iter()
            .filter_map(|f| differential::websocket::answer(f))
            .flatten()
            .collect();
        assert_eq!(
            show(&run.client_read),
            show(&[echoes, CLOSE_REPLY.to_vec()].concat()),
            "{what}"
        );
        assert!(run.closed, "{what}: the connection ended");
        assert_eq!(run.notice.as_deref().map(show), None, "{what}: a notice");
    }
}

/// A client that goes away gets the usual disconnect notice for its id.
#[test]
fn mongrel2_sends_a_disconnect_notice_when_the_client_goes() {
    let runs = mongrel2_runs();
    for (case, run) in runs.cases.iter().zip(&runs.runs) {
        if case.end == End::ClientGoes {
            let what = format!("{} on {:?}", case.name, case.route);
            assert_disconnect(&what, run.notice.as_deref(), run.id);
        }
    }
}

/// An unmasked frame, a continuation without a message, a fragmented or
/// over-long control frame, a new message inside a fragmented one: nothing
/// reaches the handler, the connection is closed without a close frame,
/// and the handler gets a disconnect notice.
#[test]
fn mongrel2_drops_a_protocol_error_without_a_close_frame() {
    let runs = mongrel2_runs();
    let mut checked = 0;
    for (case, run) in runs.cases.iter().zip(&runs.runs) {
        if case.end != End::ServerDrops {
            continue;
        }
        let what = format!("{} on {:?}", case.name, case.route);
        assert!(run.frames.is_empty(), "{what}: {:?}", run.frames);
        assert_eq!(show(&run.client_read), "", "{what}: the client read");
        assert!(run.closed, "{what}: the connection stays open");
        assert_disconnect(&what, run.notice.as_deref(), run.id);
        checked += 1;
    }
    assert_eq!(checked, 2 * 5);
}

/// Without `Sec-WebSocket-Version` an upgrade is an ordinary GET.
#[test]
fn mongrel2_takes_an_upgrade_without_a_version_for_plain_http() {
    let runs = mongrel2_runs();
    for route in Route::ALL {
        let what = format!("upgrade without a version on {route:?}");
        let (_, run) = case(runs, "upgrade_without_version", route);
        let req = parse(&what, handshake(&what, run));
        assert_eq!(req.method(), Some("GET"), "{what}");
        assert_eq!(req.body(), b"", "{what}");
        assert_eq!(run.upgrade_response, REPLY, "{what}");
    }
}

/// Prints Mongrel2's frames, for the report (`--nocapture`).
#[test]
fn print_mongrel2s_websocket_frames() {
    let runs = mongrel2_runs();
    for (case, run) in runs.cases.iter().zip(&runs.runs) {
        let name = format!("{} {:?}", case.name, case.route);
        if let Some(Outcome::Frame(f) | Outcome::Refused(f)) = &run.handshake {
            println!("{name} handshake: {}", show(f));
        }
        for f in &run.frames {
            let text = show(f);
            let cut = text.len().min(2000);
            println!("{name} frame: {}", &text[..cut]);
        }
        println!("{name} client read: {}", show(&run.client_read));
        println!(
            "{name} closed: {} notice: {}",
            run.closed,
            run.notice.as_deref().map(show).unwrap_or_default()
        );
    }
}

/// Kennel's record of `name` equals Mongrel2's: the same frames apart from
/// the connection id and the header order, the same bytes to the client,
/// the same end and the same notice.
fn assert_kennel_matches(name: &str) {
    let (m2, kennel) = (mongrel2_runs(), kennel_runs());
    for route in Route::ALL {
        let what = format!("{name} on {route:?}");
        let ((_, m), (_, k)) = (case(m2, name, route), case(kennel, name, route));
        let canonical = |who: &str, frame: &[u8]| {
            Canonical::of(frame)
                .unwrap_or_else(|| panic!("{what}: {who}'s frame does not split: {}", show(frame)))
                .0
        };
        let (mh, kh) = (handshake(&what, m), handshake(&what, k));
        assert_eq!(
            canonical("Mongrel2", mh),
            canonical("Kennel", kh),
            "{what}: the handshake\nMongrel2: {}\nKennel:   {}",
            show(mh),
            show(kh)
        );
        assert_eq!(
            show(&m.upgrade_response),
            show(&k.upgrade_response),
            "{what}: the upgrade response"
        );
        assert_eq!(m.frames.len(), k.frames.len(), "{what}: messages");
        for (i, (mf, kf)) in m.frames.iter().zip(&k.frames).enumerate() {
            assert_eq!(
                canonical("Mongrel2", mf),
                canonical("Kennel", kf),
                "{what}: message {i}\nMongrel2: {}\nKennel:   {}",
                show(mf),
                show(kf)
            );
        }
        assert_eq!(
            show(&m.client_read),
            show(&k.client_read),
            "{what}: what the client read"
        );
        assert_eq!(m.closed, k.closed, "{what}: closed");
        let strip = |notice: &Option<Vec<u8>>| {
            notice.as_ref().map(|n| {
                let req = parse(&what, n);
                (
                    req.is_disconnect(),
                    req.path().to_vec(),
                    req.body().to_vec(),
                )
            })
        };
        assert_eq!(strip(&m.notice), strip(&k.notice), "{what}: the notice");
        if let Some(n) = &k.notice {
            assert_eq!(Some(parse(&what, n).conn_id()), k.id, "{what}: its id");
        }
    }
}

macro_rules! kennel_matches_mongrel2 {
    ($($test:ident: $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                assert_kennel_matches($name);
            }
        )*
    };
}

/// Kennel's documented difference (docs/mongrel2-differences.md): a frame
/// RFC 6455 does not allow — unmasked, a reserved opcode, RSV bits with no
/// extension negotiated, broken fragmentation, an oversized or fragmented
/// control frame — ends the connection with a close frame carrying 1002,
/// where Mongrel2 forwards some of them (reserved opcodes, RSV bits) and
/// drops the rest without a word. Everything before it is the same: the
/// handshake, the `101`, the disconnect notice after.
fn assert_kennel_refuses_with_1002(name: &str) {
    let (m2, kennel) = (mongrel2_runs(), kennel_runs());
    for route in Route::ALL {
        let what = format!("{name} on {route:?}");
        let ((_, m), (_, k)) = (case(m2, name, route), case(kennel, name, route));
        let canonical = |frame: &[u8]| Canonical::of(frame).map(|c| c.0);
        assert_eq!(
            canonical(handshake(&what, m)),
            canonical(handshake(&what, k)),
            "{what}: the handshake"
        );
        assert!(
            k.frames.is_empty(),
            "{what}: Kennel forwarded {:?}",
            k.frames
        );
        let read = &k.client_read;
        let upgrade = &k.upgrade_response;
        assert_eq!(show(&m.upgrade_response), show(upgrade), "{what}: the 101");
        assert!(
            read.len() >= 4 && read[0] == 0x88 && read[2..4] == 1002u16.to_be_bytes(),
            "{what}: Kennel's close frame: {}",
            show(read)
        );
        assert!(k.closed, "{what}: Kennel closed the connection");
        let notice = k.notice.as_ref().map(|n| parse(&what, n).is_disconnect());
        assert_eq!(notice, Some(true), "{what}: the handler hears of it");
    }
}

macro_rules! kennel_refuses_with_1002 {
    ($($test:ident: $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                assert_kennel_refuses_with_1002($name);
            }
        )*
    };
}

kennel_matches_mongrel2! {
    kennel_matches_mongrel2_on_a_conversation: "conversation",
    kennel_matches_mongrel2_on_a_ping_between_fragments: "ping_between_fragments",
    kennel_matches_mongrel2_when_the_client_goes: "client_goes_away",
    kennel_matches_mongrel2_on_an_upgrade_without_a_version: "upgrade_without_version",
}

kennel_refuses_with_1002! {
    kennel_refuses_a_reserved_opcode: "reserved_opcode",
    kennel_refuses_rsv_bits_without_an_extension: "rsv_bits",
    kennel_refuses_an_unmasked_frame: "unmasked",
    kennel_refuses_a_continuation_without_a_message: "continuation_without_a_message",
    kennel_refuses_a_fragmented_ping: "fragmented_ping",
    kennel_refuses_a_ping_over_125_bytes: "ping_over_125_bytes",
    kennel_refuses_a_new_message_inside_a_fragmented_one: "new_message_inside_a_fragmented_one",
}
