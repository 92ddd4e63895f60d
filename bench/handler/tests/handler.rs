//! The real `bench-handler` binary against a fake server over real ZeroMQ
//! sockets (PUSH for requests, SUB for replies, as Kennel and Mongrel2
//! bind them): exact reply frames, the close convention, silence for
//! listeners and notices, the WebSocket echo.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kennel_handler::reply::Reply;
use kennel_handler::request::{self, Protocol, RequestHead};

/// The handler's `send_ident`, put in front of requests and replies.
const SENDER: &str = "7c0e2b4a-bench-4f1d-9a3e-000000000001";

/// Connection ids at or above this are the start-up handshake's.
const HANDSHAKE_IDS: u64 = 1_000_000;

/// How long any single wait may last before the test fails.
const WAIT: Duration = Duration::from_secs(20);

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world\n";
const RESPONSE_CLOSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 12\r\n\r\nhello world\n";

/// Kills the handler (by its PID) when the test ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct FakeServer {
    _ctx: zmq::Context,
    push: zmq::Socket,
    sub: zmq::Socket,
    _child: ChildGuard,
}

impl FakeServer {
    /// Binds both sockets on ephemeral ports, starts the handler, and
    /// sends throwaway requests until one is answered: a PUB socket drops
    /// what it sends before the subscription has reached it.
    fn start() -> FakeServer {
        let ctx = zmq::Context::new();
        let push = ctx.socket(zmq::PUSH).unwrap();
        push.set_linger(0).unwrap();
        push.set_sndtimeo(WAIT.as_millis() as i32).unwrap();
        push.bind("tcp://127.0.0.1:*").unwrap();
        let sub = ctx.socket(zmq::SUB).unwrap();
        sub.set_linger(0).unwrap();
        sub.set_subscribe(SENDER.as_bytes()).unwrap();
        sub.bind("tcp://127.0.0.1:*").unwrap();
        let send_spec = push.get_last_endpoint().unwrap().unwrap();
        let recv_spec = sub.get_last_endpoint().unwrap().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_bench-handler"))
            .args(["--send-spec", &send_spec, "--recv-spec", &recv_spec])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bench-handler");
        let server = FakeServer {
            _ctx: ctx,
            push,
            sub,
            _child: ChildGuard(child),
        };
        let deadline = Instant::now() + WAIT;
        for n in 0.. {
            server.send(HANDSHAKE_IDS + n, "/handshake", "HTTP/1.1", &[]);
            if server.sub.poll(zmq::POLLIN, 100).unwrap() > 0 {
                return server;
            }
            assert!(Instant::now() < deadline, "the handler never answered");
        }
        unreachable!()
    }

    fn send(&self, id: u64, path: &str, version: &str, headers: &[(&[u8], &[u8])]) {
        let head = RequestHead {
            version: Some(version.as_bytes()),
            headers,
            ..RequestHead::local(b"GET", path.as_bytes())
        };
        self.send_head(id, &head, b"");
    }

    fn send_head(&self, id: u64, head: &RequestHead<'_>, body: &[u8]) {
        let mut msg = Vec::new();
        request::encode(
            &mut msg,
            Protocol::Tnetstring,
            SENDER.as_bytes(),
            id,
            head,
            body,
        );
        self.push.send(msg, 0).expect("send a request");
    }

    /// A WebSocket message as the server sends it: the upgrade request's
    /// headers, `METHOD` `WEBSOCKET`, `FLAGS`, the unmasked payload.
    fn send_websocket(&self, id: u64, flags: &str, payload: &[u8]) {
        let head = RequestHead {
            headers: UPGRADE_HEADERS,
            extra: &[(b"FLAGS", flags.as_bytes())],
            ..RequestHead::local(b"WEBSOCKET", b"/bench/ws")
        };
        self.send_head(id, &head, payload);
    }

    fn send_disconnect(&self, id: u64) {
        let mut msg = Vec::new();
        request::encode_disconnect(&mut msg, Protocol::Tnetstring, SENDER.as_bytes(), id);
        self.push.send(msg, 0).expect("send a notice");
    }

    /// The next reply frame, skipping replies to handshake ids.
    fn recv(&self) -> Vec<u8> {
        loop {
            assert!(
                self.sub.poll(zmq::POLLIN, WAIT.as_millis() as i64).unwrap() > 0,
                "no reply within {WAIT:?}"
            );
            let msg = self.sub.recv_bytes(0).unwrap();
            let reply = Reply::parse(&msg, 128).expect("a valid reply");
            if reply.ids().all(|id| id >= HANDSHAKE_IDS) {
                continue;
            }
            return msg;
        }
    }
}

/// The headers of a WebSocket upgrade request.
const UPGRADE_HEADERS: &[(&[u8], &[u8])] = &[
    (b"Host", b"localhost"),
    (b"Upgrade", b"websocket"),
    (b"Connection", b"Upgrade"),
    (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"Sec-WebSocket-Version", b"13"),
];

/// The exact frame `SENDER LEN:ID, BODY`.
fn frame(id: u64, body: &[u8]) -> Vec<u8> {
    let id = id.to_string();
    let mut out = format!("{SENDER} {}:{id}, ", id.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

#[track_caller]
fn assert_bytes(got: &[u8], want: &[u8]) {
    assert_eq!(
        String::from_utf8_lossy(got),
        String::from_utf8_lossy(want),
        "reply bytes differ"
    );
}

#[test]
fn keep_alive_request_gets_only_the_response() {
    let server = FakeServer::start();
    server.send(7, "/bench/hello", "HTTP/1.1", &[(b"Host", b"b")]);
    assert_bytes(&server.recv(), &frame(7, RESPONSE));
    // Nothing else follows for id 7: the next frame is the next request's.
    server.send(8, "/bench/hello", "HTTP/1.1", &[]);
    assert_bytes(&server.recv(), &frame(8, RESPONSE));
}

#[test]
fn connection_close_gets_the_closing_response_then_the_empty_close_reply() {
    let server = FakeServer::start();
    server.send(9, "/bench/hello", "HTTP/1.1", &[(b"Connection", b"close")]);
    assert_bytes(&server.recv(), &frame(9, RESPONSE_CLOSE));
    assert_bytes(&server.recv(), &frame(9, b""));
    server.send(10, "/bench/hello", "HTTP/1.0", &[]);
    assert_bytes(&server.recv(), &frame(10, RESPONSE_CLOSE));
    assert_bytes(&server.recv(), &frame(10, b""));
}

#[test]
fn listeners_and_disconnects_get_no_reply() {
    let server = FakeServer::start();
    server.send(11, "/bench/listen", "HTTP/1.1", &[]);
    server.send_disconnect(12);
    // The handler works in order, so if it had answered either, that reply
    // would come before this one.
    server.send(13, "/bench/hello", "HTTP/1.1", &[]);
    assert_bytes(&server.recv(), &frame(13, RESPONSE));
}

#[test]
fn websocket_handshake_gets_the_whole_101_with_the_accept_value() {
    let server = FakeServer::start();
    let head = RequestHead {
        headers: UPGRADE_HEADERS,
        ..RequestHead::local(b"WEBSOCKET_HANDSHAKE", b"/bench/ws")
    };
    server.send_head(20, &head, b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_bytes(
        &server.recv(),
        &frame(
            20,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        ),
    );
}

#[test]
fn websocket_messages_are_echoed_in_one_server_frame() {
    let server = FakeServer::start();
    server.send_websocket(21, "0x81", b"hello");
    assert_bytes(&server.recv(), &frame(21, b"\x81\x05hello"));
    let big = vec![b'b'; 300];
    server.send_websocket(21, "0x82", &big);
    let mut want = vec![0x82, 126, 1, 44];
    want.extend_from_slice(&big);
    assert_bytes(&server.recv(), &frame(21, &want));
    // A ping gets its pong; a pong gets nothing (the next reply is the
    // next message's).
    server.send_websocket(21, "0x89", b"p");
    assert_bytes(&server.recv(), &frame(21, b"\x8a\x01p"));
    server.send_websocket(21, "0x8A", b"q");
    server.send_websocket(21, "0x81", b"x");
    assert_bytes(&server.recv(), &frame(21, b"\x81\x01x"));
}

#[test]
fn websocket_close_is_echoed_then_the_connection_closed() {
    let server = FakeServer::start();
    server.send_websocket(22, "0x88", b"\x03\xe8");
    assert_bytes(&server.recv(), &frame(22, b"\x88\x02\x03\xe8"));
    assert_bytes(&server.recv(), &frame(22, b""));
}
