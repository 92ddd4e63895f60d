//! WebSocket on a handler route, over real sockets: an independent client
//! (`tungstenite`) and raw frames, a real handler (the `kennel-handler`
//! library) behind a real Kennel.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{recv, text, Site, TestServer};
use kennel_handler::websocket::{self, Opcode};
use kennel_handler::{Connection, Request};
use tungstenite::Message;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://localhost\r\n\r\n"
    )
}

/// Answers the handshake as Mongrel2 handlers do: the 101 with the body as
/// the accept key.
fn accept(handler: &Connection, req: &Request) {
    assert_eq!(req.method(), Some("WEBSOCKET_HANDSHAKE"));
    let body = String::from_utf8(req.body().to_vec()).unwrap();
    handler
        .reply(
            req,
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {body}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
}

/// A raw client past the handshake, and the handshake's request.
fn open_raw(server: &TestServer, handler: &Connection) -> (TcpStream, Request) {
    let mut client = server.client();
    client.send(upgrade_request("/handler/ws").as_bytes());
    let req = recv(handler);
    accept(handler, &req);
    let response = text(
        &client.read_exact(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
                .len(),
        ),
    );
    assert!(response.starts_with("HTTP/1.1 101 "), "{response}");
    (client.stream, req)
}

fn masked(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    websocket::write_masked_frame(&mut out, fin, opcode, [1, 2, 3, 4], payload);
    out
}

/// Reads one unmasked server frame: (byte 0, payload).
fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    let len = match head[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            stream.read_exact(&mut ext).unwrap();
            u64::from(u16::from_be_bytes(ext))
        }
        127 => {
            let mut ext = [0u8; 8];
            stream.read_exact(&mut ext).unwrap();
            u64::from_be_bytes(ext)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload).unwrap();
    (head[0], payload)
}

#[test]
fn the_handshake_and_messages_reach_the_handler_as_mongrel2_sends_them() {
    let server = TestServer::start();
    let handler = server.handler();
    let (mut client, handshake) = open_raw(&server, &handler);
    // The handshake: the request's headers, the accept key as body.
    assert_eq!(handshake.body(), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_eq!(handshake.header("PATH"), Some("/handler/ws"));
    assert_eq!(handshake.header("upgrade"), Some("websocket"));
    assert_eq!(handshake.header("sec-websocket-key"), Some(KEY));

    client
        .write_all(&masked(true, Opcode::Text, b"hello"))
        .unwrap();
    let msg = recv(&handler);
    assert_eq!(msg.method(), Some("WEBSOCKET"));
    assert_eq!(msg.header("FLAGS"), Some("0x81"));
    assert_eq!(msg.body(), b"hello");
    assert_eq!(msg.conn_id(), handshake.conn_id());
    // Every header of the upgrade request comes along.
    assert_eq!(msg.header("PATH"), Some("/handler/ws"));
    assert_eq!(msg.header("origin"), Some("http://localhost"));

    // A binary message in three fragments, a ping between them.
    client
        .write_all(&masked(false, Opcode::Binary, b"\x00\x01"))
        .unwrap();
    client.write_all(&masked(true, Opcode::Ping, b"p")).unwrap();
    client
        .write_all(&masked(false, Opcode::Continuation, b"\x02"))
        .unwrap();
    client
        .write_all(&masked(true, Opcode::Continuation, b"\x03"))
        .unwrap();
    let ping = recv(&handler);
    assert_eq!(ping.header("FLAGS"), Some("0x89"));
    assert_eq!(ping.body(), b"p");
    let binary = recv(&handler);
    assert_eq!(binary.header("FLAGS"), Some("0x82"));
    assert_eq!(binary.body(), b"\x00\x01\x02\x03");

    // The handler's frames are written verbatim.
    handler
        .reply_websocket(&msg, Opcode::Text, b"from the handler")
        .unwrap();
    assert_eq!(
        read_frame(&mut client),
        (0x81, b"from the handler".to_vec())
    );
    // A close goes to the handler; the handler closes.
    client
        .write_all(&masked(true, Opcode::Close, b"\x03\xe8"))
        .unwrap();
    let close = recv(&handler);
    assert_eq!(close.header("FLAGS"), Some("0x88"));
    assert_eq!(close.body(), b"\x03\xe8");
    handler
        .reply_websocket(&close, Opcode::Close, b"\x03\xe8")
        .unwrap();
    handler.close(&close).unwrap();
    assert_eq!(read_frame(&mut client), (0x88, b"\x03\xe8".to_vec()));
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    // The handler closed it: no disconnect notice (as Mongrel2).
    assert!(handler
        .recv_timeout(Duration::from_millis(300))
        .unwrap()
        .is_none());
    server.stop();
}

#[test]
fn an_independent_client_talks_to_an_echo_handler() {
    let server = TestServer::start();
    let handler = server.handler();
    let echo = std::thread::spawn(move || {
        let mut seen = 0;
        loop {
            let Some(req) = handler.recv_timeout(Duration::from_secs(10)).unwrap() else {
                return seen;
            };
            if req.is_disconnect() {
                return seen;
            }
            match req.method() {
                Some("WEBSOCKET_HANDSHAKE") => accept(&handler, &req),
                Some("WEBSOCKET") => {
                    seen += 1;
                    let flags = u8::from_str_radix(&req.header("FLAGS").unwrap()[2..], 16).unwrap();
                    let opcode = Opcode::from_u8(flags & 0x0f).unwrap();
                    match opcode {
                        Opcode::Ping => handler
                            .reply_websocket(&req, Opcode::Pong, req.body())
                            .unwrap(),
                        Opcode::Close => {
                            handler
                                .reply_websocket(&req, Opcode::Close, req.body())
                                .unwrap();
                            handler.close(&req).unwrap();
                        }
                        _ => handler.reply_websocket(&req, opcode, req.body()).unwrap(),
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    let url = format!("ws://{}/handler/echo", server.addr);
    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut ws, response) = tungstenite::client(url.as_str(), stream).unwrap();
    assert_eq!(response.status(), 101);
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let sent = [
        Message::text("hello"),
        Message::binary(big.clone()),
        Message::text("é€😀"),
    ];
    common::assert_websocket_echoes(&mut ws, &sent);
    assert_eq!(echo.join().unwrap(), 5);
    server.stop();
}

/// Reads the close frame Kennel sends, then EOF; returns the close code.
fn closed_with(client: &mut TcpStream) -> u16 {
    let (byte0, payload) = read_frame(client);
    assert_eq!(byte0, 0x88);
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    u16::from_be_bytes([payload[0], payload[1]])
}

#[test]
fn protocol_errors_close_with_1002_and_big_messages_with_1009() {
    let server = TestServer::start_with(Site {
        extra_sql: "INSERT INTO setting (key, value) VALUES ('kennel.websocket.max_message_bytes', '1000');"
            .into(),
        ..Site::default()
    });
    let handler = server.handler();
    let cases: [(&str, Vec<u8>, u16); 5] = [
        ("unmasked", websocket::frame(Opcode::Text, b"hi"), 1002),
        (
            "reserved opcode",
            {
                let mut f = masked(true, Opcode::Text, b"x");
                f[0] = 0x83;
                f
            },
            1002,
        ),
        (
            "stray continuation",
            masked(true, Opcode::Continuation, b"x"),
            1002,
        ),
        ("too big", masked(true, Opcode::Binary, &[0u8; 1001]), 1009),
        (
            "too big in fragments",
            [
                masked(false, Opcode::Binary, &[0u8; 600]),
                masked(true, Opcode::Continuation, &[0u8; 600]),
            ]
            .concat(),
            1009,
        ),
    ];
    for (what, frame, code) in cases {
        let (mut client, handshake) = open_raw(&server, &handler);
        client.write_all(&frame).unwrap();
        assert_eq!(closed_with(&mut client), code, "{what}");
        let notice = recv(&handler);
        assert!(notice.is_disconnect(), "{what}: {notice:?}");
        assert_eq!(notice.conn_id(), handshake.conn_id());
    }
    // A message at the limit is fine.
    let (mut client, _) = open_raw(&server, &handler);
    client
        .write_all(&masked(true, Opcode::Binary, &[7u8; 1000]))
        .unwrap();
    assert_eq!(recv(&handler).body().len(), 1000);
    server.stop();
}

#[test]
fn a_handler_that_refuses_the_upgrade_leaves_an_http_connection() {
    let server = TestServer::start();
    let handler = server.handler();
    let mut client = server.client();
    client.send(upgrade_request("/handler/ws").as_bytes());
    let req = recv(&handler);
    handler
        .reply_http(&req, 403, &[], b"no websockets here")
        .unwrap();
    assert!(text(&client.read_response()).starts_with("HTTP/1.1 403 "));
    client.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(text(&client.read_response()).ends_with("hello, file\n"));
    server.stop();
}

#[test]
fn a_client_that_goes_away_is_reported_and_early_frames_wait_for_the_101() {
    let server = TestServer::start();
    let handler = server.handler();
    let mut client = server.client();
    // A frame sent before the 101 waits for it; it is not a request.
    let mut bytes = upgrade_request("/handler/ws").into_bytes();
    bytes.extend_from_slice(&masked(true, Opcode::Text, b"early"));
    client.send(&bytes);
    let req = recv(&handler);
    assert!(
        handler
            .recv_timeout(Duration::from_millis(200))
            .unwrap()
            .is_none(),
        "the early frame went on before the 101"
    );
    accept(&handler, &req);
    let early = recv(&handler);
    assert_eq!(early.method(), Some("WEBSOCKET"));
    assert_eq!(early.body(), b"early");
    drop(client);
    let notice = recv(&handler);
    assert!(notice.is_disconnect());
    assert_eq!(notice.conn_id(), req.conn_id());
    server.stop();
}
