//! HTTP behaviour of a real Kennel over real sockets: static files through
//! the router, keep-alive and HTTP/1.0 closing rules, timeouts, IPv6, and a
//! client vanishing mid-reply.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{recv, text, Site, TestServer};

#[test]
fn static_files_through_the_router() {
    let server = TestServer::start();
    let mut client = server.client();
    client.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let response = text(&client.read_response());
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.contains("Content-Type: text/plain\r\n"),
        "{response}"
    );
    assert!(response.contains("Accept-Ranges: bytes\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nhello, file\n"), "{response}");
    let etag = response
        .lines()
        .find_map(|l| l.strip_prefix("ETag: "))
        .unwrap()
        .to_owned();

    // Same connection: conditional, range, index, 301, 404.
    client.send(
        format!(
            "GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\nIf-None-Match: {etag}\r\n\r\n"
        )
        .as_bytes(),
    );
    let response = text(&client.read_response());
    assert!(
        response.starts_with("HTTP/1.1 304 Not Modified\r\n"),
        "{response}"
    );
    assert!(
        response.contains(&format!("ETag: {etag}\r\n")),
        "{response}"
    );

    client.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\nRange: bytes=0-4\r\n\r\n");
    let response = text(&client.read_response());
    assert!(
        response.starts_with("HTTP/1.1 206 Partial Content\r\n"),
        "{response}"
    );
    assert!(
        response.contains("Content-Range: bytes 0-4/12\r\n"),
        "{response}"
    );
    assert!(response.ends_with("\r\n\r\nhello"), "{response}");

    client.send(b"GET /static/ HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(text(&client.read_response()).ends_with("<h1>index</h1>\n"));

    client.send(b"GET /static/sub?x=1 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let response = text(&client.read_response());
    assert!(response.starts_with("HTTP/1.1 301 "), "{response}");
    assert!(
        response.contains("Location: /static/sub/?x=1\r\n"),
        "{response}"
    );

    client.send(b"GET /static/../config.sqlite HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(text(&client.read_response()).starts_with("HTTP/1.1 404 "));

    client.send(b"HEAD /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let head = text(&client.read_exact(40));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    server.stop();
}

#[test]
fn http_1_0_closes_after_a_static_response_unless_keep_alive() {
    let server = TestServer::start();
    let mut client = server.client();
    client.send(b"GET /static/hello.txt HTTP/1.0\r\n\r\n");
    let response = text(&client.read_to_end());
    assert!(response.contains("Connection: close\r\n"), "{response}");
    assert!(response.ends_with("hello, file\n"));

    let mut client = server.client();
    client.send(b"GET /static/hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    client.read_response();
    client.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let response = text(&client.read_to_end());
    assert!(response.contains("Connection: close\r\n"), "{response}");
    server.stop();
}

#[test]
fn a_slow_request_gets_408_and_an_idle_connection_is_closed() {
    let server = TestServer::start_with(Site {
        extra_sql: "INSERT INTO setting (key, value) VALUES ('kennel.http.request_timeout_ms', '300'), ('kennel.http.keepalive_timeout_ms', '300');".into(),
        ..Site::default()
    });
    let mut client = server.client();
    let start = Instant::now();
    client.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: loc");
    let response = text(&client.read_to_end());
    assert!(response.starts_with("HTTP/1.1 408 "), "{response}");
    assert!(start.elapsed() < Duration::from_secs(5));

    // Dribbling bytes does not extend the deadline.
    let mut client = server.client();
    let start = Instant::now();
    let mut closed = false;
    for b in b"GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n" {
        if client.stream.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if !closed {
        assert!(text(&client.read_to_end()).starts_with("HTTP/1.1 408 "));
    }
    assert!(start.elapsed() < Duration::from_secs(5));

    // Idle keep-alive: closed silently.
    let mut client = server.client();
    client.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    client.read_response();
    let start = Instant::now();
    assert!(client.read_to_end().is_empty());
    let idle = start.elapsed();
    assert!(
        idle >= Duration::from_millis(250) && idle < Duration::from_secs(5),
        "{idle:?}"
    );
    server.stop();
}

#[test]
fn a_client_vanishing_mid_reply_is_survived() {
    let server = TestServer::start();
    let handler = server.handler();
    let mut client = server.client();
    client.send(b"GET /handler/big HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let req = recv(&handler);
    handler
        .reply(
            &req,
            b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n",
        )
        .unwrap();
    let chunk = vec![b'z'; 1 << 20];
    handler.reply(&req, &chunk).unwrap();
    let mut first = [0u8; 1024];
    client.stream.read_exact(&mut first).unwrap();
    drop(client); // gone mid-body
    for _ in 0..8 {
        handler.reply(&req, &chunk).unwrap();
    }
    let notice = recv(&handler);
    assert!(notice.is_disconnect());
    assert_eq!(notice.conn_id(), req.conn_id());
    // The server is fine.
    let mut client = server.client();
    client.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(text(&client.read_response()).ends_with("hello, file\n"));
    server.stop();
}

#[test]
fn absolute_form_targets_route_by_their_authority_and_methods_are_tokens() {
    let server = TestServer::start();
    let handler = server.handler();
    let mut client = server.client();
    client.send(b"M-SEARCH http://localhost/handler/abs?q=1 HTTP/1.1\r\nHost: other\r\n\r\n");
    let req = recv(&handler);
    assert_eq!(req.method(), Some("M-SEARCH"));
    assert_eq!(req.path(), b"/handler/abs");
    assert_eq!(req.header("URI"), Some("/handler/abs?q=1"));
    server.stop();
}

#[test]
fn cached_files_follow_changes_on_disk() {
    let server = TestServer::start();
    let path = server.root().join("public/hello.txt");
    let mut client = server.client();
    let get = |client: &mut common::Client| {
        client.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
        text(&client.read_response())
    };
    assert!(get(&mut client).ends_with("hello, file\n"));
    assert!(get(&mut client).ends_with("hello, file\n"));
    // cache_ttl is 0: every request checks the file, so a change shows at once.
    std::fs::write(&path, "changed and longer\n").unwrap();
    assert!(get(&mut client).ends_with("\r\n\r\nchanged and longer\n"));
    // Replaced by a new file (new inode), same size.
    let tmp = server.root().join("public/new.txt");
    std::fs::write(&tmp, "CHANGED AND LONGER\n").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert!(get(&mut client).ends_with("\r\n\r\nCHANGED AND LONGER\n"));
    std::fs::remove_file(&path).unwrap();
    assert!(get(&mut client).starts_with("HTTP/1.1 404 "));
    server.stop();
}

/// `response` with the value of its `Date` header replaced by `<date>`,
/// after checking it is an IMF-fixdate (29 bytes ending in ` GMT`).
fn without_date(response: &[u8]) -> String {
    let text = text(response);
    let Some((before, after)) = text.split_once("\r\nDate: ") else {
        return text;
    };
    let (date, rest) = after.split_once("\r\n").expect("a line end after Date");
    assert!(date.len() == 29 && date.ends_with(" GMT"), "Date: {date}");
    format!("{before}\r\nDate: <date>\r\n{rest}")
}

/// No request (other than the harness's own notices for id 0) reaches the
/// handler within `wait`.
fn assert_no_request(handler: &kennel_handler::Connection, wait: Duration) {
    let deadline = Instant::now() + wait;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Some(req) = handler.recv_timeout(left).unwrap() {
            assert!(
                req.is_disconnect() && req.conn_id() == 0,
                "the handler got {:?} {:?}",
                req.method(),
                text(req.path())
            );
        }
    }
}

const BAD_REQUEST_CLOSE: &str = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\
    Content-Length: 16\r\nDate: <date>\r\nServer: Kennel\r\nConnection: close\r\n\r\n400 Bad Request\n";

/// A chunked body whose lines end in a bare LF is refused with 400 and the
/// connection closes, so the request "inside" it (which a parser that
/// reads the body differently would see) never reaches the handler; the
/// same bytes with CRLF line ends are one request, then the next.
#[test]
fn a_bare_lf_in_a_chunked_body_is_400_and_smuggles_nothing() {
    let server = TestServer::start();
    let handler = server.handler();
    let head =
        "POST /handler/upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
    let smuggled = "GET /handler/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";
    for body in [
        "5\nhello\n0\n\n",
        "5\nhello\r\n0\r\n\r\n",
        "5\r\nhello\n0\r\n\r\n",
        "5\r\nhello\r\n0\n\r\n",
        "5\r\nhello\r\n0\r\nX-Trailer: 1\n\r\n",
        "5\r\nhello\r\n0\r\n\n",
    ] {
        let mut client = server.client();
        client.send(format!("{head}{body}{smuggled}").as_bytes());
        let response = client.read_to_end();
        assert_eq!(without_date(&response), BAD_REQUEST_CLOSE, "{body:?}");
        assert_no_request(&handler, Duration::from_millis(300));
    }

    // The control: with CRLF the POST and then the GET reach the handler.
    let mut client = server.client();
    client.send(format!("{head}5\r\nhello\r\n0\r\n\r\n{smuggled}").as_bytes());
    let post = recv(&handler);
    assert_eq!((post.method(), post.body()), (Some("POST"), &b"hello"[..]));
    let get = recv(&handler);
    assert_eq!(get.path(), b"/handler/smuggled");
    server.stop();
}

/// The canned refusal for `status` with `Connection: close`, its `Date`
/// value written `<date>`.
fn refusal(status: &str) -> String {
    let body = format!("{status}\n");
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Date: <date>\r\nServer: Kennel\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Sends `bytes` on a new connection and returns all it gets back (the
/// server closes after a refusal).
fn refused_with(server: &TestServer, bytes: &[u8]) -> String {
    let mut client = server.client();
    client.send(bytes);
    without_date(&client.read_to_end())
}

/// Without `limits.buffer_size` a head may be 32 KiB with lines of 8 KiB
/// (a browser's cookies, a bearer token); a longer request line is 414, a
/// longer header line 431. Each over-long request is sent only up to the
/// byte that makes it too long, so the server has read everything it was
/// sent when it closes.
#[test]
fn default_head_limits_take_big_cookies_and_refuse_long_lines_with_414_or_431() {
    let server = TestServer::start();
    let handler = server.handler();
    let cookie = format!("session={}", "c".repeat(6000));
    let token = format!("Bearer {}", "t".repeat(2000));
    let mut client = server.client();
    client.send(
        format!(
            "GET /handler/big HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\n\
             Authorization: {token}\r\nX-Other: {}\r\n\r\n",
            "o".repeat(6000)
        )
        .as_bytes(),
    );
    let req = recv(&handler);
    assert_eq!(req.header("cookie"), Some(cookie.as_str()));
    assert_eq!(req.header("authorization"), Some(token.as_str()));

    // The longest request line (8192 bytes with its CRLF) is served...
    let target = format!("/handler/{}", "p".repeat(8192 - 4 - 11 - 9));
    let line = format!("GET {target} HTTP/1.1\r\n");
    assert_eq!(line.len(), 8192);
    let mut client = server.client();
    client.send(format!("{line}Host: localhost\r\n\r\n").as_bytes());
    assert_eq!(recv(&handler).path(), target.as_bytes());
    // ...8193 bytes of request line (not even complete) are 414.
    let mut long_line = b"GET /handler/".to_vec();
    long_line.resize(8193, b'p');
    assert_eq!(
        refused_with(&server, &long_line),
        refusal("414 URI Too Long")
    );

    // A header line of 8193 bytes (without even its line end) is 431.
    let mut long_header = b"GET /handler/x HTTP/1.1\r\nHost: localhost\r\nCookie: ".to_vec();
    long_header.extend(std::iter::repeat_n(b'c', 8193 - "Cookie: ".len()));
    assert_eq!(
        refused_with(&server, &long_header),
        refusal("431 Request Header Fields Too Large")
    );

    // A head of more than 32 KiB in lines that each fit is 431 too.
    let mut big_head = b"GET /handler/x HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    let mut i = 0;
    while big_head.len() <= 32 * 1024 {
        big_head.extend_from_slice(format!("X-{i}: {}\r\n", "v".repeat(4000)).as_bytes());
        i += 1;
    }
    big_head.truncate(32 * 1024 + 1);
    assert_eq!(
        refused_with(&server, &big_head),
        refusal("431 Request Header Fields Too Large")
    );
    assert_no_request(&handler, Duration::from_millis(200));
    server.stop();
}

/// An explicit `limits.buffer_size` (Mongrel2's setting) bounds the whole
/// head and so every line: a request line that does not fit is 414, a head
/// that does not is 431.
#[test]
fn limits_buffer_size_bounds_the_head_as_in_mongrel2() {
    let server = TestServer::start_with(Site {
        extra_sql: "INSERT INTO setting (key, value) VALUES ('limits.buffer_size', '4096');".into(),
        ..Site::default()
    });
    let handler = server.handler();
    let mut client = server.client();
    client.send(
        format!(
            "GET /handler/ok HTTP/1.1\r\nHost: localhost\r\nCookie: {}\r\n\r\n",
            "c".repeat(3000)
        )
        .as_bytes(),
    );
    assert_eq!(recv(&handler).path(), b"/handler/ok");

    let mut long_line = b"GET /handler/".to_vec();
    long_line.resize(4097, b'p');
    assert_eq!(
        refused_with(&server, &long_line),
        refusal("414 URI Too Long")
    );

    let mut big_header = b"GET /handler/x HTTP/1.1\r\nHost: localhost\r\nCookie: ".to_vec();
    big_header.resize(4097, b'c');
    assert_eq!(
        refused_with(&server, &big_header),
        refusal("431 Request Header Fields Too Large")
    );
    assert_no_request(&handler, Duration::from_millis(200));
    server.stop();
}
