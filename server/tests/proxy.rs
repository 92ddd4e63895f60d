//! Proxy routes over real sockets: a real Kennel, a real back-end HTTP
//! server started by the test (a plain socket server that records what it
//! gets and answers as each test says), and raw clients.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use common::{recv, text, Site, TestServer};

/// One request as the back end read it.
#[derive(Debug, Clone)]
struct Seen {
    /// Which back-end connection it came on (0, 1, …).
    connection: usize,
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the back end answers a request.
type Answer = fn(&Seen, &mut TcpStream);

/// A back-end HTTP/1.1 server on 127.0.0.1: keep-alive, Content-Length and
/// chunked request bodies; every request is reported on `seen`.
struct Backend {
    addr: SocketAddr,
    seen: mpsc::Receiver<Seen>,
}

impl Backend {
    fn start(answer: Answer) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = mpsc::channel();
        std::thread::spawn(move || {
            for (connection, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { return };
                let tx = tx.clone();
                std::thread::spawn(move || serve_backend(connection, stream, answer, &tx));
            }
        });
        Backend { addr, seen }
    }

    fn next(&self) -> Seen {
        self.seen
            .recv_timeout(Duration::from_secs(10))
            .expect("the back end got a request")
    }
}

fn serve_backend(connection: usize, stream: TcpStream, answer: Answer, tx: &mpsc::Sender<Seen>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (n, v) = line.split_once(':').unwrap();
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
        let mut seen = Seen {
            connection,
            request_line: request_line.trim_end().to_owned(),
            headers,
            body: Vec::new(),
        };
        if let Some(len) = seen.header("content-length") {
            let mut body = vec![0; len.parse().unwrap()];
            reader.read_exact(&mut body).unwrap();
            seen.body = body;
        } else if seen.header("transfer-encoding") == Some("chunked") {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size).unwrap();
                let size = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                reader.read_exact(&mut chunk).unwrap();
                if size == 0 {
                    break;
                }
                seen.body.extend_from_slice(&chunk[..size]);
            }
        }
        let _ = tx.send(seen.clone());
        answer(&seen, &mut out);
        if seen
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
        {
            return;
        }
    }
}

fn hello(seen: &Seen, out: &mut TcpStream) {
    let body = format!("hello from the back end: {}", seen.request_line);
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-Backend: yes\r\n\r\n{body}",
        body.len()
    );
}

fn proxied(backend: SocketAddr, extra: &str) -> TestServer {
    TestServer::start_with(Site {
        extra_sql: format!(
            "UPDATE proxy SET port = {} WHERE id = 1; {extra}",
            backend.port()
        ),
        ..Site::default()
    })
}

#[test]
fn requests_are_forwarded_with_forwarded_fields_and_no_hop_by_hop_fields() {
    let backend = Backend::start(hello);
    let server = proxied(backend.addr, "");
    let mut client = server.client();
    client.send(
        b"GET /proxy/a?b=c HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-For: 6.6.6.6\r\n\
          X-Forwarded-Proto: gopher\r\nConnection: keep-alive, X-Private\r\nX-Private: secret\r\n\
          TE: trailers\r\nAccept: */*\r\n\r\n",
    );
    let response = text(&client.read_response());
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with("hello from the back end: GET /proxy/a?b=c HTTP/1.1"));
    let lower = response.to_ascii_lowercase();
    assert!(lower.contains("x-backend: yes\r\n"), "{response}");
    assert!(!lower.contains("keep-alive: timeout"), "{response}");
    let seen = backend.next();
    assert_eq!(seen.request_line, "GET /proxy/a?b=c HTTP/1.1");
    assert_eq!(seen.header("host"), Some("example.test"));
    assert_eq!(seen.header("x-forwarded-for"), Some("6.6.6.6, 127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("accept"), Some("*/*"));
    assert_eq!(seen.header("x-private"), None);
    assert_eq!(seen.header("te"), None);
    // Keep-alive both ways: the next request reuses the back-end connection.
    client.send(b"GET /proxy/again HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert!(text(&client.read_response()).ends_with("GET /proxy/again HTTP/1.1"));
    let again = backend.next();
    assert_eq!(again.connection, seen.connection);
    // And another client shares the pool.
    let mut other = server.client();
    other.send(b"GET /proxy/other HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert!(text(&other.read_response()).ends_with("GET /proxy/other HTTP/1.1"));
    assert_eq!(backend.next().connection, seen.connection);
    server.stop();
}

fn echo_body(seen: &Seen, out: &mut TcpStream) {
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
        seen.body.len()
    );
    let _ = out.write_all(&seen.body);
}

#[test]
fn request_bodies_stream_by_length_and_chunked() {
    let backend = Backend::start(echo_body);
    let server = proxied(backend.addr, "");
    let mut client = server.client();
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    client.send(
        format!(
            "POST /proxy/up HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    client.send(&body);
    let response = client.read_response();
    assert!(response.ends_with(&body));
    assert_eq!(backend.next().body, body);
    client.send(b"POST /proxy/up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    let response = text(&client.read_response());
    assert!(response.ends_with("hello world"), "{response}");
    let seen = backend.next();
    assert_eq!(seen.body, b"hello world");
    assert_eq!(seen.header("transfer-encoding"), Some("chunked"));
    // Expect: 100-continue is answered by Kennel.
    client.send(
        b"POST /proxy/up HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(
        text(&client.read_exact(25)),
        "HTTP/1.1 100 Continue\r\n\r\n"
    );
    client.send(b"ok");
    assert!(text(&client.read_response()).ends_with("\r\n\r\nok"));
    assert_eq!(backend.next().header("expect"), None);
    server.stop();
}

fn unframed(seen: &Seen, out: &mut TcpStream) {
    // Chunked for /chunked, until close for the rest (HTTP/1.0 style).
    if seen.request_line.contains("/chunked") {
        let _ = out.write_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n",
        );
    } else {
        let _ = out.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close");
        let _ = out.shutdown(std::net::Shutdown::Both);
    }
}

/// Reads a chunked body after its head: the decoded bytes.
fn read_chunked(stream: &mut TcpStream) -> Vec<u8> {
    let mut reader = BufReader::new(stream);
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).unwrap();
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    text(&head)
}

#[test]
fn response_bodies_are_framed_for_the_client() {
    let backend = Backend::start(unframed);
    let server = proxied(backend.addr, "");
    // Chunked and until-close both reach an HTTP/1.1 client chunked.
    let mut client = server.client();
    for path in ["/proxy/chunked", "/proxy/close"] {
        client.send(format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
        let head = read_head(&mut client.stream).to_ascii_lowercase();
        assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
        let body = read_chunked(&mut client.stream);
        let expected: &[u8] = if path.ends_with("chunked") {
            b"abcdefg"
        } else {
            b"until close"
        };
        assert_eq!(body, expected);
    }
    // An HTTP/1.0 client gets it until close.
    let mut old = server.client();
    old.send(b"GET /proxy/close HTTP/1.0\r\nHost: h\r\n\r\n");
    let response = text(&old.read_to_end());
    assert!(
        response
            .to_ascii_lowercase()
            .contains("connection: close\r\n"),
        "{response}"
    );
    assert!(response.ends_with("\r\n\r\nuntil close"), "{response}");
    server.stop();
}

fn big(_: &Seen, out: &mut TcpStream) {
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
        64 << 20
    );
    let block = vec![b'b'; 1 << 20];
    for _ in 0..64 {
        if out.write_all(&block).is_err() {
            return;
        }
    }
}

#[test]
fn a_large_response_streams_to_a_slow_client() {
    let backend = Backend::start(big);
    let server = proxied(backend.addr, "");
    let mut client = server.client();
    client.send(b"GET /proxy/big HTTP/1.1\r\nHost: h\r\n\r\n");
    let head = read_head(&mut client.stream);
    assert!(head.contains("content-length: 67108864"), "{head}");
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    while got < 64 << 20 {
        let n = client.stream.read(&mut buf).unwrap();
        assert!(n > 0);
        assert!(buf[..n].iter().all(|&b| b == b'b'));
        got += n;
        if got < 4 << 20 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(got, 64 << 20);
    server.stop();
}

fn silent(_: &Seen, _: &mut TcpStream) {
    std::thread::sleep(Duration::from_secs(5));
}

#[test]
fn an_unreachable_back_end_is_502_and_a_silent_one_504() {
    // Nothing listens on a port just freed.
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = proxied(free, "");
    let mut client = server.client();
    client.send(b"GET /proxy/x HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(text(&client.read_response()).starts_with("HTTP/1.1 502 "));
    // Keep-alive after a 502 with no body to skip.
    client.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(text(&client.read_response()).ends_with("hello, file\n"));
    server.stop();

    let backend = Backend::start(silent);
    let server = proxied(
        backend.addr,
        "INSERT INTO setting (key, value) VALUES ('kennel.proxy.timeout_ms', '300');",
    );
    let mut client = server.client();
    let start = std::time::Instant::now();
    client.send(b"GET /proxy/x HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(text(&client.read_response()).starts_with("HTTP/1.1 504 "));
    assert!(start.elapsed() < Duration::from_secs(3));
    server.stop();
}

#[test]
fn one_connection_alternates_between_proxy_and_handler_routes() {
    let backend = Backend::start(hello);
    let server = proxied(backend.addr, "");
    let handler = server.handler();
    let mut client = server.client();
    for round in 0..3 {
        client.send(format!("GET /proxy/{round} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
        assert!(text(&client.read_response()).ends_with(&format!("GET /proxy/{round} HTTP/1.1")));
        client.send(format!("GET /handler/{round} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
        let req = recv(&handler);
        handler
            .reply_http(&req, 200, &[], b"from the handler")
            .unwrap();
        assert!(text(&client.read_response()).ends_with("from the handler"));
    }
    // Pipelined: the handler's slow answer still comes first.
    client.send(b"GET /handler/slow HTTP/1.1\r\nHost: h\r\n\r\nGET /proxy/after HTTP/1.1\r\nHost: h\r\n\r\n");
    let req = recv(&handler);
    std::thread::sleep(Duration::from_millis(100));
    handler.reply_http(&req, 200, &[], b"first").unwrap();
    assert!(text(&client.read_response()).ends_with("first"));
    assert!(text(&client.read_response()).ends_with("GET /proxy/after HTTP/1.1"));
    server.stop();
}

fn websocket_echo(seen: &Seen, out: &mut TcpStream) {
    let key = seen.header("sec-websocket-key").unwrap();
    let accept = kennel_handler::websocket::accept_key(key.as_bytes());
    let _ = write!(
        out,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    // Echo frames back, unmasked, until the client closes.
    let mut reader = out.try_clone().unwrap();
    loop {
        let mut head = [0u8; 2];
        if reader.read_exact(&mut head).is_err() {
            return;
        }
        let len = usize::from(head[1] & 0x7f);
        assert!(len < 126, "short frames only in this test");
        let mut mask = [0u8; 4];
        reader.read_exact(&mut mask).unwrap();
        let mut payload = vec![0u8; len];
        reader.read_exact(&mut payload).unwrap();
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
        let opcode = head[0] & 0x0f;
        let _ = out.write_all(&kennel_handler::websocket::frame(
            kennel_handler::websocket::Opcode::from_u8(opcode).unwrap(),
            &payload,
        ));
        if opcode == 8 {
            // The server closes the TCP connection first (RFC 6455 §7.1.1).
            let _ = out.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

#[test]
fn a_websocket_upgrade_is_passed_through_to_the_back_end() {
    let backend = Backend::start(websocket_echo);
    let server = proxied(backend.addr, "");
    let url = format!("ws://{}/proxy/ws", server.addr);
    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut ws, response) = tungstenite::client(url.as_str(), stream).unwrap();
    assert_eq!(response.status(), 101);
    let seen = backend.next();
    assert_eq!(seen.header("upgrade"), Some("websocket"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    for text_message in ["one", "two", "three"] {
        ws.send(tungstenite::Message::text(text_message)).unwrap();
        assert_eq!(ws.read().unwrap(), tungstenite::Message::text(text_message));
    }
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    server.stop();
}

/// Answers as `hello` (keep-alive framing, no `Connection: close`), then
/// closes the connection: a back end whose keep-alive timeout has passed.
fn hello_then_close(seen: &Seen, out: &mut TcpStream) {
    hello(seen, out);
    let _ = out.shutdown(std::net::Shutdown::Both);
}

#[test]
fn a_pooled_connection_the_back_end_closed_costs_no_request() {
    let backend = Backend::start(hello_then_close);
    let server = proxied(backend.addr, "");
    let mut client = server.client();
    for round in 0..5 {
        client.send(format!("GET /proxy/{round} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
        let response = text(&client.read_response());
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(
            response.ends_with(&format!("GET /proxy/{round} HTTP/1.1")),
            "{response}"
        );
    }
    // HTTP/1.0 without Host: the back end still gets one.
    let mut old = server.client();
    old.send(b"GET /proxy/old HTTP/1.0\r\n\r\n");
    let response = text(&old.read_response());
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    // (A request that raced the close may have been seen twice: once on
    // the closing connection, once on the new one.)
    let seen = loop {
        let seen = backend.next();
        if seen.request_line.starts_with("GET /proxy/old ") {
            break seen;
        }
    };
    assert_eq!(
        seen.header("host"),
        Some(format!("127.0.0.1:{}", backend.addr.port()).as_str())
    );
    server.stop();
}

/// Back-end connections that have answered one request
/// (`once_per_connection`).
static ANSWERED_ONCE: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

/// Answers the first request of each connection as `hello`; at the second
/// it closes without an answer (its idle timeout ran out just as the
/// request came).
fn once_per_connection(seen: &Seen, out: &mut TcpStream) {
    let mut answered = ANSWERED_ONCE.lock().unwrap();
    if answered.contains(&seen.connection) {
        let _ = out.shutdown(std::net::Shutdown::Both);
    } else {
        answered.push(seen.connection);
        hello(seen, out);
    }
}

#[test]
fn a_request_safe_to_repeat_is_sent_again_when_its_pooled_connection_fails() {
    let backend = Backend::start(once_per_connection);
    let server = proxied(backend.addr, "");
    let mut client = server.client();
    client.send(b"GET /proxy/first HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(text(&client.read_response()).ends_with("GET /proxy/first HTTP/1.1"));
    assert_eq!(backend.next().connection, 0);
    // The pooled connection takes it and fails: sent again on a new one.
    client.send(b"GET /proxy/second HTTP/1.1\r\nHost: h\r\n\r\n");
    let response = text(&client.read_response());
    assert!(
        response.ends_with("GET /proxy/second HTTP/1.1"),
        "{response}"
    );
    assert_eq!(backend.next().connection, 0);
    assert_eq!(backend.next().connection, 1);
    // A POST is not repeated: the client gets the 502.
    client.send(b"POST /proxy/third HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi");
    let response = text(&client.read_response());
    assert!(response.starts_with("HTTP/1.1 502 "), "{response}");
    assert_eq!(backend.next().connection, 1);
    server.stop();
}
