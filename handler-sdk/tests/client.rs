//! The handler library against real ZeroMQ sockets: this test plays the
//! server (PUSH bound for requests, SUB bound for replies) on ephemeral
//! loopback ports.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use kennel_handler::reply::{Body, Reply};
use kennel_handler::request::{self, Protocol, RequestHead};
use kennel_handler::tnetstring::Value;
use kennel_handler::Connection;

struct FakeServer {
    _ctx: zmq::Context,
    push: zmq::Socket,
    replies: mpsc::Receiver<Vec<u8>>,
    stop: Arc<AtomicBool>,
    send_spec: String,
    recv_spec: String,
}

impl FakeServer {
    fn new() -> FakeServer {
        let ctx = zmq::Context::new();
        let push = ctx.socket(zmq::PUSH).unwrap();
        push.set_linger(0).unwrap();
        push.bind("tcp://127.0.0.1:*").unwrap();
        let sub = ctx.socket(zmq::SUB).unwrap();
        sub.set_linger(0).unwrap();
        sub.set_subscribe(b"").unwrap();
        sub.bind("tcp://127.0.0.1:*").unwrap();
        let send_spec = push.get_last_endpoint().unwrap().unwrap();
        let recv_spec = sub.get_last_endpoint().unwrap().unwrap();
        // Like a real server's bridge, a thread keeps servicing the SUB
        // socket: ZeroMQ only sends a bound SUB's subscription to a new
        // peer when the socket's own thread processes its commands.
        let (tx, replies) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                if sub.poll(zmq::POLLIN, 10).unwrap() > 0
                    && tx.send(sub.recv_bytes(0).unwrap()).is_err()
                {
                    return;
                }
            }
        });
        FakeServer {
            _ctx: ctx,
            push,
            replies,
            stop,
            send_spec,
            recv_spec,
        }
    }

    /// The library's first reply waits for the server's subscription, so a
    /// fresh handler is usable at once.
    fn connect_handler(&self) -> Connection {
        Connection::connect(&self.send_spec, &self.recv_spec).unwrap()
    }

    fn send_request(
        &self,
        protocol: Protocol,
        id: u64,
        path: &[u8],
        headers: &[(&[u8], &[u8])],
        body: &[u8],
    ) {
        let head = RequestHead {
            headers,
            forwarded_for: Some(b"127.0.0.1"),
            ..RequestHead::local(b"GET", path)
        };
        let mut msg = Vec::new();
        request::encode(&mut msg, protocol, b"SENDER", id, &head, body);
        self.push.send(msg, 0).unwrap();
    }

    fn recv_reply(&self) -> Vec<u8> {
        self.replies
            .recv_timeout(Duration::from_secs(10))
            .expect("a reply within 10 s")
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn the_first_reply_is_not_lost_to_the_slow_joiner() {
    let server = FakeServer::new();
    let conn = server.connect_handler();
    let start = Instant::now();
    conn.deliver("SENDER", &[1], b"first").unwrap();
    assert_eq!(server.recv_reply(), b"SENDER 1:1, first");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn request_and_http_reply_round_trip() {
    let server = FakeServer::new();
    let conn = server.connect_handler();
    for (id, protocol) in [(7, Protocol::Json), (8, Protocol::Tnetstring)] {
        server.send_request(
            protocol,
            id,
            b"/hello",
            &[(b"Host", b"example.test")],
            b"body!",
        );
        let req = conn.recv().unwrap();
        assert_eq!(req.sender(), "SENDER");
        assert_eq!(req.conn_id(), id);
        assert_eq!(req.path(), b"/hello");
        assert_eq!(req.header("host"), Some("example.test"));
        assert_eq!(req.header("x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(req.body(), b"body!");
        conn.reply_http(&req, 200, &[("Content-Type", "text/plain")], b"hi")
            .unwrap();
        let expected = format!(
            "SENDER {}:{id}, HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
            id.to_string().len()
        );
        assert_eq!(String::from_utf8(server.recv_reply()).unwrap(), expected);
        conn.close(&req).unwrap();
        let close = server.recv_reply();
        assert_eq!(close, format!("SENDER 1:{id}, ").as_bytes());
        assert!(Reply::parse(&close, 128).unwrap().is_close());
    }
}

#[test]
fn deliver_splits_large_id_lists() {
    let server = FakeServer::new();
    let conn = server.connect_handler();
    let ids: Vec<u64> = (1..=300).collect();
    conn.deliver("SENDER", &ids, b"news").unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let msg = server.recv_reply();
        let reply = Reply::parse(&msg, 128).unwrap();
        assert_eq!(reply.body(), &Body::Data(b"news"));
        seen.extend(reply.ids());
    }
    assert_eq!(seen, ids);
    assert!(conn.deliver("SENDER", &[], b"x").unwrap_err().is_usage());
    assert!(conn.deliver("bad uuid", &[1], b"x").unwrap_err().is_usage());
}

#[test]
fn extended_replies_and_notices() {
    let server = FakeServer::new();
    let conn = server.connect_handler();
    server.send_request(Protocol::Json, 42, b"/poll", &[], b"");
    let req = conn.recv().unwrap();
    conn.keep_alive(&req).unwrap();
    assert_eq!(
        server.recv_reply(),
        b"SENDER 4:X 42, 31:3:ctl,21:10:keep-alive,4:true!}]"
    );
    conn.cancel(&req).unwrap();
    let msg = server.recv_reply();
    let reply = Reply::parse(&msg, 128).unwrap();
    let Body::Extended(ext) = reply.body() else {
        panic!("not extended")
    };
    assert_eq!(ext.key, b"ctl");
    assert_eq!(ext.value.get(b"cancel"), Some(&Value::Boolean(true)));

    let mut notice = Vec::new();
    request::encode_disconnect(&mut notice, Protocol::Tnetstring, b"SENDER", 42);
    server.push.send(notice, 0).unwrap();
    let req = conn.recv().unwrap();
    assert!(req.is_disconnect());
    assert_eq!(req.conn_id(), 42);
}

#[test]
fn garbage_from_the_server_is_a_protocol_error() {
    let server = FakeServer::new();
    let conn = server.connect_handler();
    server.push.send(&b"not a request"[..], 0).unwrap();
    let err = conn.recv().unwrap_err();
    assert!(err.is_protocol(), "{err}");
    assert!(conn
        .recv_timeout(Duration::from_millis(10))
        .unwrap()
        .is_none());
}
