//! The differential test: the same requests through the real Mongrel2 1.12
//! and through Kennel, on the same config database, and the frames the
//! handler receives compared — identical apart from connection ids, header
//! order (Mongrel2 emits hash order) and the differences Kennel documents
//! (`docs/mongrel2-differences.md`, whose section "How the differences are
//! checked" lists the cases below), each asserted here as documented.
//!
//! The site is made as each of the three kinds of config database (by
//! `m2sh load`, from Kennel's `config.sqlite.sql`, and from Mongrel2's
//! Python library's older `config.sql`); for each, both servers run once
//! per test binary (Mongrel2 first, then Kennel on the same port) and every
//! test checks its part of all three runs. Without `mongrel2`, `m2sh` or
//! the Python library's schema (Debian's `mongrel2-core`) every test fails
//! with a message saying what to install; none is skipped.

mod common;
mod differential;

use std::sync::OnceLock;

use differential::databases::DbKind;
use differential::{
    exercise, find_mongrel2, frame_id, show, Canonical, Case, CaseRun, Kennel, Mongrel2, Outcome,
    Route, ServerRun, Site, PING_ID, REPLY,
};
use kennel_handler::request::{Protocol, RequestError};
use kennel_handler::Request;

/// The requests. `{p}` is the route prefix, `{host}` the `Host` value.
const CASES: &[(&str, &[&[u8]])] = &[
    (
        "get_query_duplicate_headers",
        &[b"GET {p}search?q=1&r=a%20b HTTP/1.1\r\nHost: {host}\r\nX-Dup: a\r\nx-dup: b\r\nX-DUP: c\r\n\
            Accept: */*\r\nUser-Agent: differential/1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"],
    ),
    (
        "post_body",
        &[b"POST {p}form HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
            Content-Length: 11\r\n\r\nhello=world"],
    ),
    ("http_1_0", &[b"GET {p}old HTTP/1.0\r\nHost: {host}\r\n\r\n"]),
    (
        "empty_values",
        &[b"GET {p}empty HTTP/1.1\r\nHost: {host}\r\nX-Empty:\r\nX-Empty-Space: \r\n\r\n"],
    ),
    ("long_value", &[b"GET {p}long HTTP/1.1\r\nHost: {host}\r\nX-Long: {long}\r\n\r\n"]),
    (
        "percent_escapes",
        &[b"GET {p}a%20b/%2E%2E/c%2Fd%3F?x=%41%42&y=%E2%82%AC HTTP/1.1\r\nHost: {host}\r\n\r\n"],
    ),
    (
        "fragment",
        &[b"GET {p}page?x=1#section-2 HTTP/1.1\r\nHost: {host}\r\n\r\n"],
    ),
    (
        "quote_and_backslash",
        &[b"GET {p}q HTTP/1.1\r\nHost: {host}\r\nX-Quote: he said \"hi\" \\back\r\n\r\n"],
    ),
    (
        "keep_alive",
        &[
            b"GET {p}first HTTP/1.1\r\nHost: {host}\r\n\r\n",
            b"GET {p}second?n=2 HTTP/1.1\r\nHost: {host}\r\n\r\n",
        ],
    ),
    // Documented differences.
    ("tab_in_value", &[b"GET {p}tab HTTP/1.1\r\nHost: {host}\r\nX-Tab: a\tb\r\n\r\n"]),
    (
        "latin1_value",
        &[b"GET {p}latin HTTP/1.1\r\nHost: {host}\r\nX-Latin: caf\xe9\r\n\r\n"],
    ),
    (
        "trailing_whitespace",
        &[b"GET {p}pad HTTP/1.1\r\nHost: {host}\r\nX-Pad: 5   \r\n\r\n"],
    ),
    (
        "method_token",
        &[b"M-SEARCH {p}ssdp HTTP/1.1\r\nHost: {host}\r\n\r\n"],
    ),
    (
        "content_length_abc",
        &[b"POST {p}cl HTTP/1.1\r\nHost: {host}\r\nContent-Length: abc\r\n\r\n"],
    ),
    (
        "control_byte",
        &[b"GET {p}ctl HTTP/1.1\r\nHost: {host}\r\nX-Ctl: a\x01b\r\n\r\n"],
    ),
    ("prefix_of_route_key", &[b"GET {p-} HTTP/1.1\r\nHost: {host}\r\n\r\n"]),
];

/// The long header value: well past a typical header, within Mongrel2's
/// 4 KiB head limit (Kennel's default is 32 KiB).
fn long_value() -> String {
    "0123456789abcdef".repeat(150)
}

struct Runs {
    kind: DbKind,
    cases: Vec<Case>,
    mongrel2: ServerRun,
    kennel: ServerRun,
}

/// Every case through Mongrel2 and then Kennel, both serving the site made
/// as a database of `kind`.
fn run(kind: DbKind) -> Runs {
    let binary = find_mongrel2();
    let site = Site::new(kind);
    let host = site.host_header();
    let long = long_value();
    let mut cases = Vec::new();
    for route in Route::ALL {
        for (name, templates) in CASES {
            let templates: Vec<Vec<u8>> = templates
                .iter()
                .map(|t| differential::replace(t, b"{long}", long.as_bytes()))
                .collect();
            let templates: Vec<&[u8]> = templates.iter().map(Vec::as_slice).collect();
            cases.push(Case::new(name, route, &host, &templates));
        }
    }
    let m2 = Mongrel2::start(&binary, &site);
    let mongrel2 = exercise(&site, m2.addr, &cases);
    m2.stop();
    let kennel = Kennel::start(&site);
    let kennel_run = exercise(&site, kennel.addr, &cases);
    kennel.stop();
    Runs {
        kind,
        cases,
        mongrel2,
        kennel: kennel_run,
    }
}

/// The runs on all three kinds of database, made once per test binary. A
/// failure (Mongrel2 not installed included) fails every test with the
/// same message.
fn all_runs() -> &'static [Runs] {
    static RUNS: OnceLock<Result<Vec<Runs>, String>> = OnceLock::new();
    let runs = RUNS.get_or_init(|| {
        DbKind::ALL
            .iter()
            .map(|&kind| {
                std::panic::catch_unwind(|| run(kind)).map_err(|panic| {
                    let why = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    format!("on the {} database: {why}", kind.name())
                })
            })
            .collect()
    });
    match runs {
        Ok(runs) => runs,
        Err(why) => panic!("the differential run failed {why}"),
    }
}

/// Calls `check` with the runs on each kind of database in turn, saying
/// (on standard error, shown when the test fails) which one it checks.
fn each_run(check: impl Fn(&Runs)) {
    for runs in all_runs() {
        eprintln!("checking the run on the {} database", runs.kind.name());
        check(runs);
    }
}

/// Mongrel2's and Kennel's record of the case `name` on `route`.
fn case<'a>(runs: &'a Runs, name: &str, route: Route) -> (&'static str, &'a CaseRun, &'a CaseRun) {
    let i = runs
        .cases
        .iter()
        .position(|c| c.name == name && c.route == route)
        .unwrap_or_else(|| panic!("no case {name}"));
    (
        runs.cases[i].name,
        &runs.mongrel2.cases[i],
        &runs.kennel.cases[i],
    )
}

/// Both forwarded every request, with decimal ids stable within the
/// connection, and the client got the handler's reply.
fn assert_forwarded(what: &str, run: &CaseRun) {
    for (i, outcome) in run.outcomes.iter().enumerate() {
        let frame = outcome.frame();
        assert_eq!(
            frame_id(frame),
            run.id,
            "{what}: request {i}: id not decimal or not the connection's"
        );
    }
    for response in &run.responses {
        assert_eq!(
            response, REPLY,
            "{what}: the client got the handler's reply"
        );
    }
}

fn parse(what: &str, frame: &[u8]) -> Request {
    Request::parse(frame).unwrap_or_else(|e| panic!("{what}: {e}: {}", show(frame)))
}

/// The header multiset: sorted (name, value) pairs.
fn header_multiset(req: &Request) -> Vec<(String, Vec<u8>)> {
    let mut pairs: Vec<_> = req
        .headers()
        .iter()
        .map(|(n, v)| (n.to_owned(), v.to_vec()))
        .collect();
    pairs.sort();
    pairs
}

/// The same case must give the same frames apart from ids and order:
/// parsed (sender, path, body, header multiset) and byte for byte.
fn assert_same(name: &str) {
    each_run(|runs| assert_same_on(runs, name, &Route::ALL));
}

fn assert_same_on(runs: &Runs, name: &str, routes: &[Route]) {
    for &route in routes {
        let (name, m2, kennel) = case(runs, name, route);
        let what = format!("{name} on {route:?}");
        assert_forwarded(&format!("{what} (Mongrel2)"), m2);
        assert_forwarded(&format!("{what} (Kennel)"), kennel);
        assert_eq!(m2.outcomes.len(), kennel.outcomes.len());
        for (m, k) in m2.outcomes.iter().zip(&kennel.outcomes) {
            let (m, k) = (m.frame(), k.frame());
            let (mr, kr) = (parse(&what, m), parse(&what, k));
            assert_eq!(mr.sender(), route.send_ident(), "{what}");
            assert_eq!(mr.sender(), kr.sender(), "{what}: sender");
            assert_eq!(mr.path(), kr.path(), "{what}: path");
            assert_eq!(mr.body(), kr.body(), "{what}: body");
            assert_eq!(
                header_multiset(&mr),
                header_multiset(&kr),
                "{what}: headers\nMongrel2: {}\nKennel:   {}",
                show(m),
                show(k)
            );
            let expected = match route {
                Route::Json => Protocol::Json,
                Route::Tns => Protocol::Tnetstring,
            };
            assert_eq!((mr.protocol(), kr.protocol()), (expected, expected));
            // Byte for byte, apart from the id and the member order.
            let (mc, _) = Canonical::of(m).expect("Mongrel2's frame splits");
            let (kc, _) = Canonical::of(k).expect("Kennel's frame splits");
            assert_eq!(
                mc,
                kc,
                "{what}: bytes\nMongrel2: {}\nKennel:   {}",
                show(m),
                show(k)
            );
        }
    }
}

#[test]
fn get_with_a_query_and_duplicate_headers() {
    assert_same("get_query_duplicate_headers");
    each_run(|runs| {
        // What both agree on, spelled out.
        let (_, m2, _) = case(runs, "get_query_duplicate_headers", Route::Json);
        let req = parse("get", m2.outcomes[0].frame());
        let h = req.headers();
        assert_eq!(h.get_all("x-dup").collect::<Vec<_>>(), [b"a", b"b", b"c"]);
        assert_eq!(h.get("x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(h.get("QUERY"), Some("q=1&r=a%20b"));
        assert_eq!(h.get("PATTERN"), Some("/json/"));
    });
}

#[test]
fn post_with_a_content_length_body() {
    assert_same("post_body");
}

#[test]
fn http_1_0() {
    assert_same("http_1_0");
}

#[test]
fn empty_header_values() {
    assert_same("empty_values");
}

#[test]
fn a_long_header_value() {
    assert_same("long_value");
}

#[test]
fn a_path_with_percent_escapes_stays_raw() {
    assert_same("percent_escapes");
}

#[test]
fn a_fragment() {
    assert_same("fragment");
}

#[test]
fn quotes_and_backslashes_are_escaped_alike() {
    assert_same("quote_and_backslash");
}

#[test]
fn keep_alive_requests_share_one_id_in_both() {
    assert_same("keep_alive");
    each_run(|runs| {
        for route in Route::ALL {
            let (_, m2, kennel) = case(runs, "keep_alive", route);
            for run in [m2, kennel] {
                assert_eq!(run.outcomes.len(), 2);
                let ids: Vec<_> = run.outcomes.iter().map(|o| frame_id(o.frame())).collect();
                assert_eq!(ids, [run.id, run.id]);
            }
        }
    });
}

/// Byte-for-byte equality apart from the id, the member order and the
/// header members named `member` (`"x-tab":` in JSON, `5:x-tab,` in
/// tnetstring), which must exist in both and differ.
fn assert_same_except(what: &str, m: &[u8], k: &[u8], member: &[u8]) {
    let (mut mc, _) = Canonical::of(m).expect("Mongrel2's frame splits");
    let (mut kc, _) = Canonical::of(k).expect("Kennel's frame splits");
    let take = |c: &mut Canonical| {
        let (named, rest) = c.members.drain(..).partition(|x| x.starts_with(member));
        c.members = rest;
        named
    };
    let (mn, kn): (Vec<_>, Vec<_>) = (take(&mut mc), take(&mut kc));
    assert_eq!((mn.len(), kn.len()), (1, 1), "{what}: {}", show(member));
    assert_ne!(mn, kn, "{what}: documented to differ");
    assert_eq!(
        mc,
        kc,
        "{what}: apart from {}\nMongrel2: {}\nKennel:   {}",
        show(member),
        show(m),
        show(k)
    );
}

/// Documented (Wire protocol, first row): Mongrel2 writes a TAB raw into
/// its JSON, which strict parsers reject; Kennel escapes it. The
/// tnetstring form carries the bytes exactly in both.
#[test]
fn a_tab_in_a_value_is_invalid_json_from_mongrel2_and_valid_from_kennel() {
    each_run(|runs| {
        let (_, m2, kennel) = case(runs, "tab_in_value", Route::Json);
        assert_forwarded("tab (Mongrel2)", m2);
        assert_forwarded("tab (Kennel)", kennel);
        let (m, k) = (m2.outcomes[0].frame(), kennel.outcomes[0].frame());
        assert!(
            contains(m, b"\"x-tab\":\"a\tb\""),
            "Mongrel2 writes the TAB raw: {}",
            show(m)
        );
        assert!(
            matches!(Request::parse(m), Err(RequestError::Json(_))),
            "a strict JSON parser rejects Mongrel2's frame: {}",
            show(m)
        );
        assert!(
            contains(k, b"\"x-tab\":\"a\\tb\""),
            "Kennel escapes it: {}",
            show(k)
        );
        assert_eq!(parse("tab", k).header("x-tab"), Some("a\tb"));
        assert_same_except("tab on Json", m, k, b"\"x-tab\":");
        assert_same_on(runs, "tab_in_value", &[Route::Tns]);
    });
}

/// Documented (Wire protocol, first row): Mongrel2 passes a byte that is
/// not UTF-8 through into its "JSON"; Kennel reads it as ISO-8859-1
/// (`0xE9` → `é`). The tnetstring form carries the byte in both.
#[test]
fn a_latin1_byte_is_raw_from_mongrel2_and_decoded_by_kennel() {
    each_run(|runs| {
        let (_, m2, kennel) = case(runs, "latin1_value", Route::Json);
        assert_forwarded("latin1 (Mongrel2)", m2);
        assert_forwarded("latin1 (Kennel)", kennel);
        let (m, k) = (m2.outcomes[0].frame(), kennel.outcomes[0].frame());
        assert!(
            contains(m, b"\"x-latin\":\"caf\xe9\""),
            "Mongrel2 passes the byte through: {}",
            show(m)
        );
        assert!(
            Request::parse(m).is_err(),
            "Mongrel2's frame is not valid JSON text: {}",
            show(m)
        );
        assert_eq!(parse("latin1", k).header("x-latin"), Some("caf\u{e9}"));
        assert_same_except("latin1 on Json", m, k, b"\"x-latin\":");
        assert_same_on(runs, "latin1_value", &[Route::Tns]);
        let (_, m2, _) = case(runs, "latin1_value", Route::Tns);
        assert_eq!(
            parse("latin1", m2.outcomes[0].frame())
                .headers()
                .get_bytes("x-latin"),
            Some(&b"caf\xe9"[..])
        );
    });
}

/// Documented ("Trailing whitespace stays in a header value"): Kennel
/// removes optional whitespace around a value (RFC 9110
/// §5.5); Mongrel2 keeps it.
#[test]
fn trailing_whitespace_is_kept_by_mongrel2_and_trimmed_by_kennel() {
    each_run(|runs| {
        for route in Route::ALL {
            let (_, m2, kennel) = case(runs, "trailing_whitespace", route);
            assert_forwarded("pad (Mongrel2)", m2);
            assert_forwarded("pad (Kennel)", kennel);
            let (m, k) = (m2.outcomes[0].frame(), kennel.outcomes[0].frame());
            assert_eq!(parse("pad", m).header("x-pad"), Some("5   "), "{route:?}");
            assert_eq!(parse("pad", k).header("x-pad"), Some("5"), "{route:?}");
            let member: &[u8] = match route {
                Route::Json => b"\"x-pad\":",
                Route::Tns => b"5:x-pad,",
            };
            assert_same_except(&format!("pad on {route:?}"), m, k, member);
        }
    });
}

/// The notice both send when the client closes: the same bytes apart from
/// the id, which is the connection's.
#[test]
fn the_disconnect_notice_when_the_client_closes() {
    each_run(|runs| {
        assert_notices(runs, |run| run.disconnect.as_deref(), "disconnect");
    });
}

/// A reply to a connection that has gone: both answer with the same
/// disconnect notice for that id.
#[test]
fn a_reply_to_a_dead_id_is_answered_with_a_disconnect_notice() {
    each_run(|runs| {
        assert_notices(runs, |run| run.dead_reply.as_deref(), "dead reply");
    });
}

/// A reply to an id never handed out (sent before any client): the same
/// notice from both.
#[test]
fn a_reply_to_an_unknown_id_is_answered_with_a_disconnect_notice() {
    each_run(|runs| {
        for (i, route) in Route::ALL.iter().enumerate() {
            let (m, k) = (&runs.mongrel2.pings[i], &runs.kennel.pings[i]);
            assert_notice(&format!("ping on {route:?}"), *route, m, k, PING_ID);
        }
    });
}

fn assert_notices(runs: &Runs, pick: impl Fn(&CaseRun) -> Option<&[u8]>, what: &str) {
    let mut checked = 0;
    let mut expected = 0;
    for (i, case) in runs.cases.iter().enumerate() {
        let (m2, kennel) = (&runs.mongrel2.cases[i], &runs.kennel.cases[i]);
        let refused = |run: &CaseRun| {
            run.outcomes
                .iter()
                .any(|o| matches!(o, Outcome::Refused(_)))
        };
        if refused(m2) || refused(kennel) {
            // One side never gave the connection to a handler: no notice.
            continue;
        }
        expected += 1;
        let (Some(m), Some(k)) = (pick(m2), pick(kennel)) else {
            panic!(
                "{what} after {} on {:?}: missing (Mongrel2 {:?}, Kennel {:?})",
                case.name, case.route, m2.outcomes, kennel.outcomes
            );
        };
        let what = format!("{what} after {} on {:?}", case.name, case.route);
        assert_eq!(frame_id(m), m2.id, "{what}: Mongrel2's id");
        assert_eq!(frame_id(k), kennel.id, "{what}: Kennel's id");
        assert_notice(&what, case.route, m, k, u64::MAX);
        checked += 1;
    }
    assert_eq!(checked, expected);
    assert!(
        checked >= 2 * 12,
        "only {checked} cases were forwarded by both"
    );
}

/// Both notices are disconnect notices (for `id`, unless `u64::MAX`) and
/// are byte-identical apart from the id.
fn assert_notice(what: &str, route: Route, m: &[u8], k: &[u8], id: u64) {
    for frame in [m, k] {
        let req = parse(what, frame);
        assert!(req.is_disconnect(), "{what}: {}", show(frame));
        assert_eq!(req.sender(), route.send_ident(), "{what}");
        assert_eq!(req.path(), b"@*", "{what}");
        if id != u64::MAX {
            assert_eq!(req.conn_id(), id, "{what}");
        }
    }
    let strip = |f: &[u8]| -> Vec<u8> {
        let mut parts = f.splitn(3, |&b| b == b' ');
        let sender = parts.next().unwrap().to_vec();
        let _id = parts.next();
        [sender, b" ID ".to_vec(), parts.next().unwrap().to_vec()].concat()
    };
    assert_eq!(
        show(&strip(m)),
        show(&strip(k)),
        "{what}: Mongrel2's and Kennel's notice"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Prints both servers' frames, for the report (`--nocapture`).
#[test]
fn print_the_frames() {
    each_run(|runs| {
        for (i, case) in runs.cases.iter().enumerate() {
            for (server, run) in [("mongrel2", &runs.mongrel2), ("kennel", &runs.kennel)] {
                for outcome in &run.cases[i].outcomes {
                    let text = match outcome {
                        Outcome::Frame(f) => show(f),
                        Outcome::Refused(r) => format!("REFUSED {}", show(r)),
                    };
                    println!("{} {:?} {server}: {text}", case.name, case.route);
                }
                if let Some(d) = &run.cases[i].disconnect {
                    println!(
                        "{} {:?} {server} notice: {}",
                        case.name,
                        case.route,
                        show(d)
                    );
                }
            }
        }
    });
}

/// The server's own answer to a case it did not forward.
fn refused<'a>(what: &str, run: &'a CaseRun) -> &'a str {
    match run.outcomes.as_slice() {
        [Outcome::Refused(r)] => std::str::from_utf8(r).unwrap_or("<not UTF-8>"),
        other => panic!("{what}: expected the server to answer itself, got {other:?}"),
    }
}

/// Documented ("Request methods may only be upper-case letters and
/// digits"): Mongrel2 answers `M-SEARCH` with 400; Kennel forwards any
/// RFC 9110 token unchanged.
#[test]
fn a_method_with_a_hyphen_is_refused_by_mongrel2_and_forwarded_by_kennel() {
    each_run(|runs| {
        for route in Route::ALL {
            let (_, m2, kennel) = case(runs, "method_token", route);
            let answer = refused(&format!("M-SEARCH on {route:?} (Mongrel2)"), m2);
            assert!(answer.starts_with("HTTP/1.1 400 "), "{route:?}: {answer}");
            assert_forwarded("M-SEARCH (Kennel)", kennel);
            let req = parse("M-SEARCH", kennel.outcomes[0].frame());
            assert_eq!(req.method(), Some("M-SEARCH"), "{route:?}");
            assert_eq!(req.path(), format!("{}ssdp", route.prefix()).as_bytes());
        }
    });
}

/// Documented ("`Content-Length: abc` … is read as 0"): Mongrel2 forwards
/// the request with an empty body; Kennel answers 400.
#[test]
fn an_invalid_content_length_is_zero_to_mongrel2_and_a_400_from_kennel() {
    each_run(|runs| {
        for route in Route::ALL {
            let (_, m2, kennel) = case(runs, "content_length_abc", route);
            assert_forwarded("Content-Length: abc (Mongrel2)", m2);
            let req = parse("Content-Length: abc", m2.outcomes[0].frame());
            assert_eq!(req.body(), b"", "{route:?}");
            assert_eq!(req.header("content-length"), Some("abc"), "{route:?}");
            let answer = refused(
                &format!("Content-Length: abc on {route:?} (Kennel)"),
                kennel,
            );
            assert!(answer.starts_with("HTTP/1.1 400 "), "{route:?}: {answer}");
        }
    });
}

/// Documented ("Control bytes in header names or values are forwarded
/// raw"): Mongrel2 forwards `\x01` (raw even inside its JSON, which a
/// strict parser then rejects); Kennel answers 400.
#[test]
fn a_control_byte_in_a_header_is_forwarded_raw_by_mongrel2_and_a_400_from_kennel() {
    each_run(|runs| {
        for route in Route::ALL {
            let (_, m2, kennel) = case(runs, "control_byte", route);
            assert_forwarded("control byte (Mongrel2)", m2);
            let m = m2.outcomes[0].frame();
            match route {
                Route::Json => {
                    assert!(contains(m, b"\"x-ctl\":\"a\x01b\""), "{}", show(m));
                    assert!(
                        matches!(Request::parse(m), Err(RequestError::Json(_))),
                        "{}",
                        show(m)
                    );
                }
                Route::Tns => {
                    let req = parse("control byte", m);
                    assert_eq!(req.headers().get_bytes("x-ctl"), Some(&b"a\x01b"[..]));
                }
            }
            let answer = refused(&format!("control byte on {route:?} (Kennel)"), kennel);
            assert!(answer.starts_with("HTTP/1.1 400 "), "{route:?}: {answer}");
        }
    });
}

/// Documented ("A path that is a *prefix of* a route key matches that
/// route"): Mongrel2 sends `/jso` to the `/json/` handler; Kennel answers
/// 404.
#[test]
fn a_prefix_of_a_route_key_is_routed_by_mongrel2_and_a_404_from_kennel() {
    each_run(|runs| {
        for route in Route::ALL {
            let (_, m2, kennel) = case(runs, "prefix_of_route_key", route);
            assert_forwarded("prefix of a route key (Mongrel2)", m2);
            let req = parse("prefix of a route key", m2.outcomes[0].frame());
            let prefix = route.prefix();
            assert_eq!(req.path(), &prefix.as_bytes()[..prefix.len() - 2]);
            assert_eq!(req.header("PATTERN"), Some(prefix));
            let answer = refused(
                &format!("prefix of a route key on {route:?} (Kennel)"),
                kennel,
            );
            assert!(answer.starts_with("HTTP/1.1 404 "), "{route:?}: {answer}");
        }
    });
}
