//! The connection core over real sockets: responses in request order,
//! lingering close, write deadlines, bounded queues and socket options.

mod common;

use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{recv, text, Site, TestServer};

fn with_settings(settings: &[(&str, &str)]) -> TestServer {
    let rows: Vec<String> = settings
        .iter()
        .map(|(k, v)| {
            format!("DELETE FROM setting WHERE key = '{k}'; INSERT INTO setting (key, value) VALUES ('{k}', '{v}');")
        })
        .collect();
    TestServer::start_with(Site {
        extra_sql: rows.concat(),
        ..Site::default()
    })
}

/// Pipelined requests: a handler's response (however it arrives: in
/// pieces, chunked, to a HEAD) always leaves before the static response of
/// the request after it.
#[test]
fn pipelined_responses_leave_in_request_order() {
    let server = TestServer::start();
    let handler = server.handler();
    let mut client = server.client();
    client.send(
        b"GET /handler/slow HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /handler/chunked HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n\
          HEAD /handler/head HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    let slow = recv(&handler);
    let chunked = recv(&handler);
    let head = recv(&handler);
    // Kennel's own answers are ready long before the handler's.
    std::thread::sleep(Duration::from_millis(200));
    client
        .stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut early = [0u8; 1];
    assert!(
        client.stream.read(&mut early).is_err(),
        "a response overtook the handler's"
    );
    client
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The first response in three pieces, the head split in two.
    handler
        .reply(&slow, b"HTTP/1.1 200 OK\r\nContent-Le")
        .unwrap();
    handler.reply(&slow, b"ngth: 6\r\n\r\nsl").unwrap();
    handler.reply(&slow, b"ow!!").unwrap();
    // The next handler response arrives before its turn; it waits.
    handler
        .reply(
            &chunked,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        )
        .unwrap();
    handler
        .reply(&head, b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n")
        .unwrap();
    let first = text(&client.read_response());
    assert!(first.ends_with("\r\n\r\nslow!!"), "{first}");
    let second = text(&client.read_response());
    assert!(second.ends_with("hello, file\n"), "{second}");
    let chunked_response =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let mut third = vec![0u8; chunked_response.len()];
    client.stream.read_exact(&mut third).unwrap();
    assert_eq!(text(&third), chunked_response);
    let fourth = text(&client.read_response());
    assert!(fourth.starts_with("HTTP/1.1 404 "), "{fourth}");
    let head_response = "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n";
    let mut fifth = vec![0u8; head_response.len()];
    client.stream.read_exact(&mut fifth).unwrap();
    assert_eq!(text(&fifth), head_response);
    let sixth = text(&client.read_response());
    assert!(sixth.ends_with("hello, file\n"), "{sixth}");
    server.stop();
}

/// Sends `request` (a refused head, then a body the server will not read)
/// in one blocking write, then reads: both must succeed (no reset on the
/// way in or out), and the response is whole, then EOF.
fn refused_while_sending(server: &TestServer, request: &[u8]) -> String {
    let mut client = server.client();
    let mut sent = request.to_vec();
    sent.extend(std::iter::repeat_n(b'z', 512 * 1024));
    let wrote = client.stream.write_all(&sent);
    assert!(wrote.is_ok(), "{wrote:?}");
    let mut response = Vec::new();
    let read = client.stream.read_to_end(&mut response);
    assert!(read.is_ok(), "{read:?} after {:?}", text(&response));
    let response = text(&response);
    assert!(response.contains("Connection: close\r\n"), "{response}");
    response
}

fn with_header(size: usize) -> Vec<u8> {
    let mut request =
        b"POST /static/hello.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 524288\r\nX-Big: "
            .to_vec();
    request.resize(request.len() + size, b'a');
    request.extend_from_slice(b"\r\n\r\n");
    request
}

/// A refusal written while the client is still sending is read by the
/// client, not lost to a reset: Kennel lingers before it closes.
#[test]
fn refusals_reach_a_client_that_is_still_sending() {
    let server = TestServer::start();
    let response = refused_while_sending(&server, &with_header(64 * 1024));
    assert!(response.starts_with("HTTP/1.1 431 "), "{response}");
    let mut long_target = b"GET /static/".to_vec();
    long_target.resize(100_000, b'x');
    long_target.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let response = refused_while_sending(&server, &long_target);
    assert!(response.starts_with("HTTP/1.1 414 "), "{response}");
    server.stop();

    // Mongrel2's 4 KiB, set explicitly: an 8 KiB header is refused too.
    let server = with_settings(&[("limits.buffer_size", "4096")]);
    let response = refused_while_sending(&server, &with_header(8 * 1024));
    assert!(response.starts_with("HTTP/1.1 431 "), "{response}");
    server.stop();
}

/// After a whole request with `Connection: close` and nothing more read,
/// Kennel closes at once, as nginx does: it lingers only when the client
/// may still be sending. A client that writes after the response then
/// meets a reset, where a lingering server would read and discard.
#[test]
fn a_close_after_a_whole_request_does_not_linger() {
    let server = with_settings(&[("kennel.http.linger_ms", "20000")]);
    let mut client = server.client();
    client
        .stream
        .write_all(
            b"GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let mut response = Vec::new();
    client.stream.read_to_end(&mut response).unwrap();
    assert!(text(&response).starts_with("HTTP/1.1 200 OK\r\n"));
    client
        .stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let reset = loop {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the server still reads the connection: it lingers"
        );
        let mut byte = [0; 1];
        match client
            .stream
            .write(b"more")
            .and_then(|_| client.stream.read(&mut byte))
        {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break true,
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert!(reset);

    // Bytes after that request (a pipelined one): it lingers, and the
    // client still reads the whole response.
    let mut client = server.client();
    let mut sent =
        b"GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec();
    sent.extend(std::iter::repeat_n(b'z', 512 * 1024));
    client.stream.write_all(&sent).unwrap();
    let mut response = Vec::new();
    let read = client.stream.read_to_end(&mut response);
    assert!(read.is_ok(), "{read:?}");
    assert!(text(&response).starts_with("HTTP/1.1 200 OK\r\n"));
    server.stop();
}

/// A handler's single large reply reaches a client that reads slowly but
/// steadily: the outbox bound is about what is queued, not one reply.
#[test]
fn one_large_reply_reaches_a_slow_but_steady_reader() {
    let server = with_settings(&[
        ("kennel.outbox.max_bytes", "65536"),
        ("kennel.outbox.stall_ms", "100"),
    ]);
    let handler = server.handler();
    let mut client = server.client();
    client.send(b"GET /handler/big HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let req = recv(&handler);
    let size = 8 << 20;
    let mut reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n").into_bytes();
    let head_len = reply.len();
    reply.extend((0..size).map(|i| (i % 251) as u8));
    handler.reply(&req, &reply).unwrap();
    let mut got = Vec::with_capacity(reply.len());
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < reply.len() {
        let n = client.stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {} of {} bytes", got.len(), reply.len());
        got.extend_from_slice(&buf[..n]);
        // Slower than the stall time per read would allow if the bound
        // counted this one reply.
        std::thread::sleep(Duration::from_millis(3));
    }
    assert_eq!(got.len(), reply.len());
    assert!(got[head_len..] == reply[head_len..]);
    assert_eq!(
        server
            .server()
            .counters()
            .outbox_overflows
            .load(Ordering::Relaxed),
        0
    );
    server.stop();
}

/// A client that stops reading a static file, or a handler's reply, is
/// dropped once a write makes no progress for the write timeout: its task
/// and descriptor are freed.
#[test]
fn a_client_that_stops_reading_is_dropped_by_the_write_deadline() {
    let server = with_settings(&[("kennel.http.write_timeout_ms", "300")]);
    let big = vec![b'q'; 16 << 20];
    std::fs::write(server.root().join("public/big.bin"), &big).unwrap();
    let handler = server.handler();
    let counters = || server.server().counters();

    let mut file_client = server.client();
    file_client.send(b"GET /static/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut reply_client = server.client();
    reply_client.send(b"GET /handler/quiet HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let req = recv(&handler);
    let mut reply = b"HTTP/1.1 200 OK\r\nContent-Length: 16777216\r\n\r\n".to_vec();
    reply.extend_from_slice(&big);
    handler.reply(&req, &reply).unwrap();
    server.wait_for("both clients dropped", |c| {
        c.write_timeouts.load(Ordering::Relaxed) >= 2
    });
    server.wait_for("no connection left open", |c| {
        c.connections_open.load(Ordering::Relaxed) == 0
    });
    // The handler is told about its client.
    let notice = recv(&handler);
    assert!(notice.is_disconnect());
    assert_eq!(notice.conn_id(), req.conn_id());
    // What the clients can still read ends short.
    for mut client in [file_client, reply_client] {
        let mut got = 0;
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = client.stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            got += n;
        }
        assert!(got < big.len(), "read {got}");
    }
    assert!(counters().write_timeouts.load(Ordering::Relaxed) >= 2);
    server.stop();
}

/// `limits.min_write_rate`: a client that reads, but too slowly, is dropped
/// within a few windows; one that keeps up is not.
#[test]
fn a_client_below_the_minimum_write_rate_is_dropped() {
    let server = with_settings(&[
        ("limits.min_write_rate", "2000000"),
        ("limits.tick_timer", "1"),
    ]);
    std::fs::write(server.root().join("public/big.bin"), vec![b'r'; 32 << 20]).unwrap();
    let mut slow = server.client();
    slow.send(b"GET /static/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let stop_reading = slow.stream.try_clone().unwrap();
    // 200 KB/s, a tenth of the minimum, until the server gives up (the
    // client's own buffers still hold megabytes then, so the server's
    // count says it, not an EOF here).
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1024];
        let mut got = 0;
        while let Ok(n) = slow.stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            got += n;
            std::thread::sleep(Duration::from_millis(5));
        }
        got
    });
    server.wait_for("the slow reader dropped", |c| {
        c.write_timeouts.load(Ordering::Relaxed) == 1
    });
    server.wait_for("its connection closed", |c| {
        c.connections_open.load(Ordering::Relaxed) == 0
    });
    let mut fast = server.client();
    fast.send(b"GET /static/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let response = fast.read_response();
    let head = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(response.len() - head, 32 << 20);
    assert_eq!(
        server
            .server()
            .counters()
            .write_timeouts
            .load(Ordering::Relaxed),
        1,
        "the fast reader was dropped too"
    );
    server.stop();
    stop_reading.shutdown(std::net::Shutdown::Both).unwrap();
    assert!(reader.join().unwrap() < 32 << 20);
}

/// With no handler connected, at most `kennel.handler.max_held` requests
/// wait for one; the rest get their 503 at once.
#[test]
fn the_held_queue_is_bounded_and_the_rest_get_503_at_once() {
    let server = with_settings(&[
        ("kennel.handler.max_held", "2"),
        ("kennel.handler.connect_wait_ms", "3000"),
    ]);
    let start = Instant::now();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let mut c = server.client();
            c.send(b"GET /handler/nobody HTTP/1.1\r\nHost: localhost\r\n\r\n");
            std::thread::spawn(move || {
                let response = text(&c.read_response());
                (response, start.elapsed())
            })
        })
        .collect();
    let mut times = Vec::new();
    for reader in readers {
        let (response, took) = reader.join().unwrap();
        assert!(response.starts_with("HTTP/1.1 503 "), "{response}");
        assert!(response.contains("Retry-After: 1\r\n"), "{response}");
        times.push(took);
    }
    times.sort();
    // Two were refused at once, two waited for a handler in vain.
    assert!(times[1] < Duration::from_millis(2500), "{times:?}");
    assert!(times[2] >= Duration::from_millis(2900), "{times:?}");
    server.stop();
}

/// A pipelining client gets at most `kennel.http.max_pipelined` requests
/// read ahead; the next is read once one is answered.
#[test]
fn pipelining_is_bounded_per_connection() {
    let server = with_settings(&[("kennel.http.max_pipelined", "2")]);
    let handler = server.handler();
    let mut client = server.client();
    for i in 0..4 {
        client.send(format!("GET /handler/{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    }
    let first = recv(&handler);
    let second = recv(&handler);
    assert_eq!(first.path(), b"/handler/0");
    assert_eq!(second.path(), b"/handler/1");
    assert!(
        handler
            .recv_timeout(Duration::from_millis(300))
            .unwrap()
            .is_none(),
        "a third request was read ahead"
    );
    handler.reply_http(&first, 200, &[], b"0").unwrap();
    assert!(text(&client.read_response()).ends_with("\r\n\r\n0"));
    let third = recv(&handler);
    assert_eq!(third.path(), b"/handler/2");
    for req in [second, third] {
        handler.reply_http(&req, 200, &[], b"n").unwrap();
    }
    let fourth = recv(&handler);
    assert_eq!(fourth.path(), b"/handler/3");
    server.stop();
}

/// The `timer_active` field of `/proc/net/tcp` for the socket from `local`
/// to `remote` (2 = the keep-alive timer runs).
fn tcp_timer(local: std::net::SocketAddr, remote: std::net::SocketAddr) -> Option<u8> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let want = |a: std::net::SocketAddr| format!(":{:04X}", a.port());
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f[1].ends_with(&want(local)) && f[2].ends_with(&want(remote)))
            .then(|| f[5].split(':').next()?.parse().ok())
            .flatten()
    })
}

#[test]
fn net_tcp_keepalive_sets_so_keepalive_on_client_sockets() {
    for (value, timer) in [("1", 2), ("0", 0)] {
        let server = with_settings(&[("net.tcp_keepalive", value)]);
        let mut client = server.client();
        client.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
        client.read_response();
        let local = client.stream.local_addr().unwrap();
        assert_eq!(
            tcp_timer(server.addr, local),
            Some(timer),
            "net.tcp_keepalive = {value}"
        );
        server.stop();
    }
}
