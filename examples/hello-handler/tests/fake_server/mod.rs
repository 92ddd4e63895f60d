//! A fake server for the example handlers' tests: it binds what Kennel and
//! Mongrel2 bind (PUSH for requests, SUB for replies) on ephemeral loopback
//! ports, runs a real handler process against them, and speaks the wire
//! protocol with `kennel_handler`'s own encoder and parser.

#![allow(dead_code)] // each test file uses its own part of it

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kennel_handler::reply::Reply;
use kennel_handler::request::{self, Protocol, RequestHead};

/// Connection ids at or above this are the handshake's; [`FakeServer::recv`]
/// skips replies to them.
const HANDSHAKE_IDS: u64 = 1_000_000;

/// How long any single wait in these tests may last before it fails.
const WAIT: Duration = Duration::from_secs(20);

/// A child process that is killed (by its PID) when the test ends, passing
/// or failing.
pub struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One request to send; the fields a handler looks at.
#[derive(Clone, Copy)]
pub struct Req<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub version: &'a str,
    pub headers: &'a [(&'a [u8], &'a [u8])],
    /// Server keys after the others (`FLAGS` on a WebSocket message).
    pub extra: &'a [(&'a [u8], &'a [u8])],
    pub body: &'a [u8],
}

impl<'a> Req<'a> {
    pub fn get(path: &'a str) -> Req<'a> {
        Req {
            method: "GET",
            path,
            query: None,
            version: "HTTP/1.1",
            headers: &[(b"Host", b"localhost:6767"), (b"Accept", b"*/*")],
            extra: &[],
            body: b"",
        }
    }
}

pub struct FakeServer {
    _ctx: zmq::Context,
    push: zmq::Socket,
    sub: zmq::Socket,
    pub send_spec: String,
    pub recv_spec: String,
    protocol: Protocol,
    sender: String,
}

impl FakeServer {
    /// Binds the two sockets. Requests go out in `protocol` form with
    /// `sender` in front, as the `handler` row's `protocol` and
    /// `send_ident` columns say.
    pub fn new(protocol: Protocol, sender: &str) -> FakeServer {
        let ctx = zmq::Context::new();
        let push = ctx.socket(zmq::PUSH).unwrap();
        push.set_linger(0).unwrap();
        // A handler that never connects fails the test instead of hanging it.
        push.set_sndtimeo(WAIT.as_millis() as i32).unwrap();
        push.bind("tcp://127.0.0.1:*").unwrap();
        let sub = ctx.socket(zmq::SUB).unwrap();
        sub.set_linger(0).unwrap();
        sub.set_subscribe(sender.as_bytes()).unwrap();
        sub.bind("tcp://127.0.0.1:*").unwrap();
        let send_spec = push.get_last_endpoint().unwrap().unwrap();
        let recv_spec = sub.get_last_endpoint().unwrap().unwrap();
        FakeServer {
            _ctx: ctx,
            push,
            sub,
            send_spec,
            recv_spec,
            protocol,
            sender: sender.to_owned(),
        }
    }

    /// Starts `command` (which must connect to this server's specs) and
    /// waits until its replies arrive. A PUB socket drops what it sends
    /// before the subscription has reached it, so this sends throwaway
    /// requests until one is answered (bounded).
    pub fn start(&self, mut command: Command) -> ChildGuard {
        command.stdin(Stdio::null()).stdout(Stdio::null());
        // The handler logs a line per request; HANDLER_LOG=1 shows them.
        if std::env::var_os("HANDLER_LOG").is_none() {
            command.stderr(Stdio::null());
        }
        let child = ChildGuard(command.spawn().expect("start the handler"));
        let deadline = Instant::now() + WAIT;
        for n in 0.. {
            self.send(HANDSHAKE_IDS + n, &Req::get("/handshake"));
            if self.sub.poll(zmq::POLLIN, 100).unwrap() > 0 {
                return child;
            }
            assert!(Instant::now() < deadline, "the handler never answered");
        }
        unreachable!()
    }

    /// Sends one request on connection `id`.
    pub fn send(&self, id: u64, req: &Req<'_>) {
        let uri = match req.query {
            Some(q) => format!("{}?{q}", req.path),
            None => req.path.to_owned(),
        };
        let head = RequestHead {
            version: Some(req.version.as_bytes()),
            uri: Some(uri.as_bytes()),
            query: req.query.map(str::as_bytes),
            headers: req.headers,
            forwarded_for: Some(b"127.0.0.1"),
            extra: req.extra,
            ..RequestHead::local(req.method.as_bytes(), req.path.as_bytes())
        };
        let mut msg = Vec::new();
        request::encode(
            &mut msg,
            self.protocol,
            self.sender.as_bytes(),
            id,
            &head,
            req.body,
        );
        self.push.send(msg, 0).expect("send a request");
    }

    /// Tells the handler that connection `id` went away.
    pub fn send_disconnect(&self, id: u64) {
        let mut msg = Vec::new();
        request::encode_disconnect(&mut msg, self.protocol, self.sender.as_bytes(), id);
        self.push.send(msg, 0).expect("send a notice");
    }

    /// The next reply, skipping those to handshake ids.
    pub fn recv(&self) -> Vec<u8> {
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

    /// The exact reply frame `UUID LEN:IDS, BODY` this server expects.
    pub fn frame(&self, ids: &[u64], body: &[u8]) -> Vec<u8> {
        let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
        let ids = ids.join(" ");
        let mut out = format!("{} {}:{ids}, ", self.sender, ids.len()).into_bytes();
        out.extend_from_slice(body);
        out
    }
}

/// Asserts two byte strings are equal, showing them as text when not.
#[track_caller]
pub fn assert_bytes(got: &[u8], want: &[u8]) {
    assert_eq!(
        String::from_utf8_lossy(got),
        String::from_utf8_lossy(want),
        "reply bytes differ"
    );
}
