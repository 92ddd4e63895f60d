//! Handler dispatch end to end: raw HTTP clients → a real Kennel → real
//! ZeroMQ sockets → a real handler (the `kennel-handler` library) and back.

mod common;

use std::time::{Duration, Instant};

use common::{recv, text, Site, TestServer, SENDER};
use kennel_handler::Request;

#[test]
fn a_request_reaches_the_handler_with_mongrel2_headers_and_the_reply_comes_back() {
    let server = TestServer::start();
    let handler = server.handler();
    let mut client = server.client();
    client.send(
        b"GET /handler/foo?x=1&y=%20z HTTP/1.1\r\nHost: localhost\r\nX-Dup: a\r\nx-dup: b\r\n\
          X-Forwarded-For: 6.6.6.6\r\nUser-Agent: test\r\n\r\n",
    );
    let req = recv(&handler);
    assert_eq!(req.sender(), SENDER);
    assert_eq!(req.path(), b"/handler/foo");
    let h = req.headers();
    assert_eq!(h.get("PATH"), Some("/handler/foo"));
    assert_eq!(h.get("METHOD"), Some("GET"));
    assert_eq!(h.get("VERSION"), Some("HTTP/1.1"));
    assert_eq!(h.get("URI"), Some("/handler/foo?x=1&y=%20z"));
    assert_eq!(h.get("QUERY"), Some("x=1&y=%20z"));
    assert_eq!(h.get("PATTERN"), Some("/handler/"));
    assert_eq!(h.get("URL_SCHEME"), Some("http"));
    assert_eq!(h.get("REMOTE_ADDR"), Some("127.0.0.1"));
    assert_eq!(h.get("host"), Some("localhost"));
    assert_eq!(h.get("user-agent"), Some("test"));
    assert_eq!(h.get_all("x-dup").collect::<Vec<_>>(), [b"a", b"b"]);
    // Clobbered with the peer address, as Mongrel2 does by default.
    assert_eq!(
        h.get_all("x-forwarded-for").collect::<Vec<_>>(),
        [b"127.0.0.1"]
    );
    assert_eq!(h.get("FRAGMENT"), None);
    assert_eq!(req.body(), b"");

    handler
        .reply_http(&req, 200, &[("Content-Type", "text/plain")], b"hello")
        .unwrap();
    assert_eq!(
        text(&client.read_response()),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
    );
    server.stop();
}

#[test]
fn tnetstring_handlers_get_exact_bytes() {
    let server = TestServer::start_with(Site {
        protocol: "tnetstring",
        ..Site::default()
    });
    let handler = server.handler();
    let mut client = server.client();
    client.send(b"POST /handler/t HTTP/1.1\r\nHost: localhost\r\nX-Tab: a\tb\r\nContent-Length: 11\r\n\r\nhello=world");
    let req = recv(&handler);
    assert_eq!(
        req.protocol(),
        kennel_handler::request::Protocol::Tnetstring
    );
    assert_eq!(req.method(), Some("POST"));
    assert_eq!(req.headers().get_bytes("x-tab"), Some(&b"a\tb"[..]));
    assert_eq!(req.body(), b"hello=world");
    server.stop();
}

#[test]
fn keep_alive_requests_share_one_connection_id_and_pipelining_forwards_both() {
    let server = TestServer::start();
    let handler = server.handler();
    let mut client = server.client();
    client.send(b"GET /handler/1 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /handler/2 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let first = recv(&handler);
    let second = recv(&handler);
    assert_eq!(first.path(), b"/handler/1");
    assert_eq!(second.path(), b"/handler/2");
    assert_eq!(first.conn_id(), second.conn_id());
    handler.reply_http(&first, 200, &[], b"1").unwrap();
    handler.reply_http(&second, 200, &[], b"2").unwrap();
    assert!(text(&client.read_response()).ends_with("\r\n\r\n1"));
    assert!(text(&client.read_response()).ends_with("\r\n\r\n2"));
    // A third request later on the same connection: same id again.
    client.send(b"GET /users/42 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let third = recv(&handler);
    assert_eq!(third.conn_id(), first.conn_id());
    assert_eq!(third.header("PATTERN"), Some("/users/(\\d+)$"));
    server.stop();
}

#[test]
fn streaming_replies_then_an_empty_reply_closes_after_the_data() {
    let server = TestServer::start();
    let handler = server.handler();
    let mut client = server.client();
    client.send(b"GET /handler/stream HTTP/1.0\r\n\r\n");
    let req = recv(&handler);
    assert!(req.should_close());
    handler.reply(&req, b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
    for i in 0..3 {
        handler
            .reply(&req, format!("part {i}\n").as_bytes())
            .unwrap();
    }
    handler.close(&req).unwrap();
    assert_eq!(
        text(&client.read_to_end()),
        "HTTP/1.0 200 OK\r\n\r\npart 0\npart 1\npart 2\n"
    );
    // The handler closed it, so it is not told (as Mongrel2 does).
    assert!(
        handler
            .recv_timeout(Duration::from_millis(300))
            .unwrap()
            .is_none(),
        "a disconnect notice for a connection the handler closed"
    );
    server.stop();
}

#[test]
fn one_reply_reaches_many_connections() {
    let server = TestServer::start();
    let handler = server.handler();
    let (mut clients, mut ids) = clients_on(&server, &handler, 5, "/handler/chat");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5, "every connection has its own id");
    handler.deliver(SENDER, &ids, b"broadcast!").unwrap();
    for c in &mut clients {
        assert_eq!(c.read_exact(10), b"broadcast!");
    }
    server.stop();
}

#[test]
fn a_client_that_goes_away_is_reported_to_the_handler() {
    let server = TestServer::start();
    let handler = server.handler();
    let mut client = server.client();
    client.send(b"GET /handler/x HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let req = recv(&handler);
    drop(client);
    let notice = recv(&handler);
    assert!(notice.is_disconnect(), "{notice:?}");
    assert_eq!(notice.conn_id(), req.conn_id());
    assert_eq!(notice.path(), b"@*");
    // A reply to the dead id is answered with another notice; nothing breaks.
    handler.reply_http(&req, 200, &[], b"too late").unwrap();
    let again = recv(&handler);
    assert!(again.is_disconnect());
    assert_eq!(again.conn_id(), req.conn_id());
    server.stop();
}

#[test]
fn no_handler_connected_gives_503_with_retry_after_within_the_wait() {
    let server = TestServer::start();
    let mut client = server.client();
    let start = Instant::now();
    client.send(b"GET /handler/nobody HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let response = text(&client.read_response());
    let waited = start.elapsed();
    assert!(
        response.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{response}"
    );
    assert!(response.contains("Retry-After: 1\r\n"), "{response}");
    // The configured wait is 300 ms.
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    server.stop();
}

#[test]
fn a_handler_that_connects_during_the_wait_still_gets_the_request() {
    let server = TestServer::start_with(Site {
        extra_sql:
            "UPDATE setting SET value = '10000' WHERE key = 'kennel.handler.connect_wait_ms';"
                .into(),
        ..Site::default()
    });
    let mut client = server.client();
    client.send(b"GET /handler/late HTTP/1.1\r\nHost: localhost\r\n\r\n");
    std::thread::sleep(Duration::from_millis(200));
    let handler =
        kennel_handler::Connection::connect(&server.send_spec, &server.recv_spec).unwrap();
    let req: Request = handler
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .expect("the held request arrives");
    assert_eq!(req.path(), b"/handler/late");
    server.stop();
}

#[test]
fn bodies_by_length_and_chunked_and_expect_continue() {
    let server = TestServer::start();
    let handler = server.handler();
    let mut client = server.client();
    client.send(b"POST /handler/c HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n");
    let req = recv(&handler);
    assert_eq!(req.body(), b"hello world");
    // Answered first: a `100 Continue` never overtakes an earlier response.
    handler.reply_http(&req, 200, &[], b"ok").unwrap();
    assert!(text(&client.read_response()).ends_with("\r\n\r\nok"));

    client.send(b"POST /handler/e HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    assert_eq!(
        text(&client.read_exact(25)),
        "HTTP/1.1 100 Continue\r\n\r\n"
    );
    client.send(b"body");
    let req = recv(&handler);
    assert_eq!(req.body(), b"body");
    server.stop();
}

#[test]
fn bad_requests_get_their_status_and_the_server_stays_up() {
    let server = TestServer::start();
    let cases: &[(&[u8], &str)] = &[
        (b"GARBAGE\r\n\r\n", "HTTP/1.1 400 "),
        (b"GET /handler/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 400 "),
        (b"GET /handler/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n", "HTTP/1.1 400 "),
        (b"POST /handler/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 999999\r\n\r\n", "HTTP/1.1 413 "),
        (b"GET /handler/x HTTP/1.1\r\nHost: localhost\r\nExpect: magic\r\n\r\n", "HTTP/1.1 417 "),
    ];
    for (request, status) in cases {
        let mut client = server.client();
        client.send(request);
        let response = text(&client.read_to_end());
        assert!(
            response.starts_with(status),
            "{:?} → {response}",
            text(request)
        );
    }
    // Oversized head: a header line over the 8 KiB line limit.
    let mut client = server.client();
    let big = format!(
        "GET /handler/x HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9000)
    );
    client.send(big.as_bytes());
    assert!(text(&client.read_to_end()).starts_with("HTTP/1.1 431 "));
    // Still serving.
    let handler = server.handler();
    let mut client = server.client();
    client.send(b"GET /handler/ok HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(recv(&handler).path(), b"/handler/ok");
    server.stop();
}

#[test]
fn garbage_replies_are_dropped_and_valid_ones_still_work() {
    let server = TestServer::start();
    let handler = server.handler();
    let mut client = server.client();
    client.send(b"GET /handler/g HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let req = recv(&handler);
    let ctx = zmq::Context::new();
    let raw = ctx.socket(zmq::PUB).unwrap();
    raw.connect(&server.recv_spec).unwrap();
    // Let the subscription reach the raw socket, then send garbage.
    std::thread::sleep(Duration::from_millis(300));
    for garbage in [
        &b"no spaces at all"[..],
        b"UUID 99:1, x",
        b"UUID 1:x, y",
        b"bad_uuid 1:1, z",
    ] {
        raw.send(garbage, 0).unwrap();
    }
    handler.reply_http(&req, 200, &[], b"fine").unwrap();
    assert!(text(&client.read_response()).ends_with("\r\n\r\nfine"));
    server.stop();
}

#[test]
fn unrouted_and_proxy_paths() {
    let server = TestServer::start();
    let mut client = server.client();
    client.send(b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(text(&client.read_response()).starts_with("HTTP/1.1 404 Not Found\r\n"));
    // Keep-alive after a 404.
    client.send(b"GET /proxy/x HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(text(&client.read_response()).starts_with("HTTP/1.1 502 "));
    server.stop();
}

#[test]
fn a_client_that_does_not_read_is_dropped_without_stalling_others() {
    let server = TestServer::start_with(Site {
        extra_sql: "INSERT INTO setting (key, value) VALUES ('kennel.outbox.max_bytes', '65536'), ('kennel.outbox.stall_ms', '200');".into(),
        ..Site::default()
    });
    let handler = server.handler();
    let mut slow = server.client();
    slow.send(b"GET /handler/flood HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let slow_req = recv(&handler);
    let mut fast = server.client();
    fast.send(b"GET /handler/fast HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let fast_req = recv(&handler);
    // Far more than the socket buffers hold; the slow client never reads.
    let chunk = vec![b'x'; 256 * 1024];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut dropped = false;
    while Instant::now() < deadline {
        handler.reply(&slow_req, &chunk).unwrap();
        if let Some(notice) = handler.recv_timeout(Duration::from_millis(20)).unwrap() {
            assert!(notice.is_disconnect());
            assert_eq!(notice.conn_id(), slow_req.conn_id());
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the stalled client was never dropped");
    handler.reply_http(&fast_req, 200, &[], b"fast").unwrap();
    assert!(text(&fast.read_response()).ends_with("fast"));
    server.stop();
}

#[test]
fn every_request_gets_its_503_on_time_even_behind_held_notices() {
    let server = TestServer::start();
    // Held disconnect notices (5 s wait each) must not delay the 503s of the
    // requests behind them (300 ms wait).
    for round in 0..3 {
        let mut client = server.client();
        let start = Instant::now();
        client.send(b"GET /handler/nobody HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let response = text(&client.read_response());
        assert!(
            response.starts_with("HTTP/1.1 503 "),
            "round {round}: {response}"
        );
        let waited = start.elapsed();
        assert!(waited < Duration::from_secs(2), "round {round}: {waited:?}");
        drop(client); // queues a disconnect notice for the absent handler
    }
    server.stop();
}

#[test]
fn held_and_direct_requests_keep_their_order() {
    let server = TestServer::start_with(Site {
        extra_sql:
            "UPDATE setting SET value = '10000' WHERE key = 'kennel.handler.connect_wait_ms';"
                .into(),
        ..Site::default()
    });
    let mut client = server.client();
    // No handler yet: these are held by the bridge.
    for i in 0..3 {
        client.send(format!("GET /handler/{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    }
    std::thread::sleep(Duration::from_millis(100));
    let handler =
        kennel_handler::Connection::connect(&server.send_spec, &server.recv_spec).unwrap();
    let mut paths = Vec::new();
    for _ in 0..3 {
        let req = handler
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .expect("a held request");
        paths.push(req.path_str().into_owned());
    }
    // Now the handler is there: later requests may go straight to it, but
    // never ahead of the held ones.
    for i in 3..6 {
        client.send(format!("GET /handler/{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    }
    for _ in 3..6 {
        paths.push(recv(&handler).path_str().into_owned());
    }
    let expected: Vec<String> = (0..6).map(|i| format!("/handler/{i}")).collect();
    assert_eq!(paths, expected);
    server.stop();
}

/// The reply path is woken through the SUB socket's `ZMQ_FD`, which only
/// signals edges: a burst of replies larger than what one wake-up drains
/// (512) must all arrive, each connection's in order, with nothing lost.
#[test]
fn a_burst_of_replies_bigger_than_one_drain_all_arrive_in_order() {
    const CLIENTS: usize = 300;
    const PARTS: usize = 3;
    let server = TestServer::start();
    let handler = server.handler();
    let (mut clients, ids) = clients_on(&server, &handler, CLIENTS, "/handler/burst");
    // 900 replies back to back, before any client reads.
    for part in 0..PARTS {
        for &id in &ids {
            let body = format!("{id:08}:{part};");
            handler.deliver(SENDER, &[id], body.as_bytes()).unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = std::collections::BTreeSet::new();
    for c in &mut clients {
        c.stream
            .set_read_timeout(Some(deadline.saturating_duration_since(Instant::now())))
            .unwrap();
        let bytes = c.read_exact(11 * PARTS);
        let text = text(&bytes);
        let id: u64 = text[..8].parse().unwrap();
        let want: String = (0..PARTS).map(|p| format!("{id:08}:{p};")).collect();
        assert_eq!(text, want, "connection {id}: parts missing or out of order");
        got.insert(id);
    }
    assert_eq!(got.len(), CLIENTS, "every connection got its own replies");
    server.stop();
}

/// Large reply bodies reach the outboxes without a copy (they share the
/// ZeroMQ message); what the clients read must still be every byte, for
/// every connection the reply names, and a small reply after it too.
#[test]
fn a_large_reply_to_several_connections_arrives_whole() {
    let server = TestServer::start();
    let handler = server.handler();
    let (mut clients, ids) = clients_on(&server, &handler, 3, "/handler/big");
    let big: Vec<u8> = (0..200 * 1024u32).map(|i| (i % 251) as u8).collect();
    handler.deliver(SENDER, &ids, &big).unwrap();
    handler.deliver(SENDER, &ids, b"tail").unwrap();
    for c in &mut clients {
        assert!(c.read_exact(big.len()) == big, "the large body differs");
        assert_eq!(c.read_exact(4), b"tail");
    }
    server.stop();
}

/// Opens `n` clients that each send `GET path` and returns them with their
/// connection ids, in the same order, as the handler saw them.
fn clients_on(
    server: &TestServer,
    handler: &kennel_handler::Connection,
    n: usize,
    path: &str,
) -> (Vec<common::Client>, Vec<u64>) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut clients = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let mut client = server.client();
        client.send(request.as_bytes());
        ids.push(recv(handler).conn_id());
        clients.push(client);
    }
    (clients, ids)
}
