//! The real `hello-handler` binary against a fake server over real ZeroMQ
//! sockets: exact reply bytes for every route.

mod fake_server;

use std::process::Command;

use fake_server::{assert_bytes, ChildGuard, FakeServer, Req};
use kennel_handler::request::Protocol;

/// The example site's `send_ident` for handler 1 (examples/site/config.sql).
const SENDER: &str = "9a3e1c52-7b64-4d0e-8f21-c5d4b3a29e10";

fn start() -> (FakeServer, ChildGuard) {
    let server = FakeServer::new(Protocol::Tnetstring, SENDER);
    let mut command = Command::new(env!("CARGO_BIN_EXE_hello-handler"));
    command
        .args(["--send-spec", &server.send_spec])
        .args(["--recv-spec", &server.recv_spec]);
    let child = server.start(command);
    (server, child)
}

fn http(status_line: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut out = format!("{status_line}\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    out.into_bytes()
}

#[test]
fn hello_names_method_path_and_connection() {
    let (server, _child) = start();
    server.send(7, &Req::get("/hello"));
    let body = "Hello from a Kennel handler!\nmethod: GET\npath: /hello\nconnection id: 7\n";
    let want = http(
        "HTTP/1.1 200 OK",
        &["Content-Type: text/plain; charset=utf-8"],
        body,
    );
    assert_bytes(&server.recv(), &server.frame(&[7], &want));
}

#[test]
fn users_get_a_json_document() {
    let (server, _child) = start();
    server.send(42, &Req::get("/users/42"));
    let want = http(
        "HTTP/1.1 200 OK",
        &["Content-Type: application/json"],
        "{\"id\":42,\"name\":\"user 42\",\"url\":\"/users/42\"}\n",
    );
    assert_bytes(&server.recv(), &server.frame(&[42], &want));
}

#[test]
fn unknown_paths_are_404() {
    let (server, _child) = start();
    server.send(3, &Req::get("/users/abc"));
    let want = http(
        "HTTP/1.1 404 Not Found",
        &["Content-Type: text/plain; charset=utf-8"],
        "404 Not Found: no such page here\n",
    );
    assert_bytes(&server.recv(), &server.frame(&[3], &want));
}

#[test]
fn http_1_0_gets_the_answer_then_the_empty_close_reply() {
    let (server, _child) = start();
    let req = Req {
        version: "HTTP/1.0",
        ..Req::get("/hello")
    };
    server.send(9, &req);
    let reply = server.recv();
    assert!(reply.starts_with(&server.frame(&[9], b"HTTP/1.1 200 OK\r\n")));
    assert_bytes(&server.recv(), &server.frame(&[9], b""));
    // Keep-alive HTTP/1.1 gets no close.
    server.send(10, &Req::get("/hello"));
    server.send(11, &Req::get("/nope"));
    assert!(server
        .recv()
        .starts_with(&server.frame(&[10], b"HTTP/1.1 200")));
    assert!(server
        .recv()
        .starts_with(&server.frame(&[11], b"HTTP/1.1 404")));
}

#[test]
fn stream_is_six_replies_and_does_not_block_other_requests() {
    let (server, _child) = start();
    server.send(30, &Req::get("/stream"));
    let chunk = |n: u32| format!("d\r\nchunk {n} of 5\n\r\n");
    let mut first = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    first.extend(chunk(1).as_bytes());
    assert_bytes(&server.recv(), &server.frame(&[30], &first));

    // While the stream waits for its next step, another request is answered.
    server.send(31, &Req::get("/hello"));
    let mut replies = Vec::new();
    let hello_prefix = server.frame(&[31], b"HTTP/1.1 200 OK");
    let mut hello_at = None;
    while replies.len() < 5 {
        let reply = server.recv();
        if reply.starts_with(&hello_prefix) {
            hello_at = Some(replies.len());
        } else {
            replies.push(reply);
        }
    }
    let want: Vec<Vec<u8>> = (2..=5)
        .map(|n| server.frame(&[30], chunk(n).as_bytes()))
        .chain([server.frame(&[30], b"0\r\n\r\n")])
        .collect();
    for (got, want) in replies.iter().zip(&want) {
        assert_bytes(got, want);
    }
    let hello_at = hello_at.expect("the /hello reply arrived before the stream ended");
    assert!(
        hello_at < 5,
        "the /hello reply came after the stream's end: {hello_at}"
    );
}

#[test]
fn chat_broadcasts_one_frame_to_every_listener() {
    let (server, _child) = start();
    let sse: &[(&[u8], &[u8])] = &[(b"Accept", b"text/event-stream")];
    let head =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";
    server.send(
        11,
        &Req {
            headers: sse,
            ..Req::get("/chat")
        },
    );
    server.send(12, &Req::get("/chat/listen"));
    server.send(
        13,
        &Req {
            headers: sse,
            ..Req::get("/chat/")
        },
    );
    for id in [11, 12, 13] {
        assert_bytes(&server.recv(), &server.frame(&[id], head));
    }

    let say = Req {
        query: Some("msg=hello+kennel%21"),
        ..Req::get("/chat/say")
    };
    server.send(20, &say);
    assert_bytes(
        &server.recv(),
        &server.frame(&[11, 12, 13], b"data: hello kennel!\n\n"),
    );
    let ok = http(
        "HTTP/1.1 200 OK",
        &["Content-Type: text/plain; charset=utf-8"],
        "sent to 3 listeners\n",
    );
    assert_bytes(&server.recv(), &server.frame(&[20], &ok));

    // A listener that goes away gets nothing more; a POSTed body is a message.
    server.send_disconnect(12);
    let post = Req {
        method: "POST",
        headers: &[(b"Content-Type", b"text/plain")],
        body: b"two\nlines",
        ..Req::get("/chat/say")
    };
    server.send(21, &post);
    assert_bytes(
        &server.recv(),
        &server.frame(&[11, 13], b"data: two\ndata: lines\n\n"),
    );
    assert!(server
        .recv()
        .starts_with(&server.frame(&[21], b"HTTP/1.1 200 OK")));
}

#[test]
fn chat_page_for_browsers_and_400_for_empty_messages() {
    let (server, _child) = start();
    server.send(5, &Req::get("/chat"));
    let page = server.recv();
    let text = String::from_utf8(page).unwrap();
    assert!(text.starts_with(&format!(
        "{SENDER} 1:5, HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
    )));
    assert!(text.contains("new EventSource(\"/chat/listen\")"));
    server.send(6, &Req::get("/chat/say"));
    assert!(server
        .recv()
        .starts_with(&server.frame(&[6], b"HTTP/1.1 400 Bad Request\r\n")));
}

/// The upgrade request's headers, as the server forwards them with the
/// handshake and again with every message.
const UPGRADE: &[(&[u8], &[u8])] = &[
    (b"Host", b"localhost:6767"),
    (b"Upgrade", b"websocket"),
    (b"Connection", b"Upgrade"),
    (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"Sec-WebSocket-Version", b"13"),
];

/// What the server computes from that key: the handshake's body.
const ACCEPT: &[u8] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn ws_handshake() -> Req<'static> {
    Req {
        method: "WEBSOCKET_HANDSHAKE",
        headers: UPGRADE,
        body: ACCEPT,
        ..Req::get("/ws/chat")
    }
}

/// One WebSocket message, as the server forwards it: `FLAGS` and the
/// unmasked payload.
fn ws_message<'a>(flags: &'a [(&'a [u8], &'a [u8])], body: &'a [u8]) -> Req<'a> {
    Req {
        method: "WEBSOCKET",
        headers: UPGRADE,
        extra: flags,
        body,
        ..Req::get("/ws/chat")
    }
}

const TEXT: &[(&[u8], &[u8])] = &[(b"FLAGS", b"0x81")];
const PING: &[(&[u8], &[u8])] = &[(b"FLAGS", b"0x89")];
const CLOSE: &[(&[u8], &[u8])] = &[(b"FLAGS", b"0x88")];

#[test]
fn websocket_chat_answers_the_handshake_and_every_frame() {
    let (server, _child) = start();
    let switching = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    for id in [40, 41] {
        server.send(id, &ws_handshake());
        assert_bytes(&server.recv(), &server.frame(&[id], switching));
    }

    // A text message is one text frame to every member, sender included.
    server.send(41, &ws_message(TEXT, b"hello"));
    assert_bytes(&server.recv(), &server.frame(&[40, 41], b"\x81\x05hello"));
    // A ping gets a pong with its payload, to the pinger only.
    server.send(40, &ws_message(PING, b"hi"));
    assert_bytes(&server.recv(), &server.frame(&[40], b"\x8a\x02hi"));
    // A close frame is echoed, then the empty reply closes.
    server.send(40, &ws_message(CLOSE, b"\x03\xe9"));
    assert_bytes(&server.recv(), &server.frame(&[40], b"\x88\x02\x03\xe9"));
    assert_bytes(&server.recv(), &server.frame(&[40], b""));
    server.send(41, &ws_message(TEXT, b"alone"));
    assert_bytes(&server.recv(), &server.frame(&[41], b"\x81\x05alone"));

    // A disconnect notice removes a member too.
    server.send_disconnect(41);
    server.send(42, &ws_handshake());
    assert_bytes(&server.recv(), &server.frame(&[42], switching));
    server.send(42, &ws_message(TEXT, b"anyone?"));
    assert_bytes(&server.recv(), &server.frame(&[42], b"\x81\x07anyone?"));
}

#[test]
fn websocket_chat_over_plain_http_is_426() {
    let (server, _child) = start();
    server.send(8, &Req::get("/ws/chat"));
    let reply = String::from_utf8(server.recv()).unwrap();
    assert!(
        reply.starts_with(&format!(
            "{SENDER} 1:8, HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n"
        )),
        "{reply}"
    );
}
