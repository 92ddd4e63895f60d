//! WebSocket traffic for the differential test: scenarios of client bytes
//! on one upgraded connection, and a run of them against one server that
//! records what the handler received (every frame, exactly), what the
//! client read, and how the connection ended.
//!
//! Owns the scenarios ([`CASES`]), the client frames (masked with the
//! RFC 6455 example key, so every byte is the same in every run), the
//! handler's side (the `101` built from the handshake's body, an echo of
//! each text or binary message, a pong for each ping, and a close frame
//! plus the empty reply when the scenario ends that way) and the record
//! ([`WsCaseRun`]). Does not own the verdicts: the test file compares
//! Mongrel2's record with the facts it documents and with Kennel's.

use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kennel_handler::websocket::{self, Opcode};
use kennel_handler::Request;

use super::{frame_id, frame_or_response, show, Capture, Case, Outcome, Route, Site, IO_TIMEOUT};

/// The mask of every client frame (the example of RFC 6455 §5.7).
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The `Sec-WebSocket-Key` of every upgrade (RFC 6455 §1.3's example) and
/// the accept value both servers must compute from it.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// How long to wait for a notice that may not come (after the handler
/// closed the connection itself). Loopback notices take milliseconds.
pub const NOTICE_WAIT: Duration = Duration::from_millis(1500);

/// The upgrade request; `{p}` and `{host}` as in [`Case`].
pub const UPGRADE: &[u8] = b"GET {p}chat?room=1 HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\nOrigin: http://localhost\r\nX-Dup: a\r\nX-Dup: b\r\n\r\n";

/// An upgrade without `Sec-WebSocket-Version`: Mongrel2 does not take it
/// for a WebSocket.
pub const UPGRADE_WITHOUT_VERSION: &[u8] = b"GET {p}chat HTTP/1.1\r\nHost: {host}\r\n\
    Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// How a scenario ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client drops the TCP connection (no close frame).
    ClientGoes,
    /// The handler answers the client's close frame with a close frame and
    /// the empty reply; the client reads both.
    HandlerCloses,
    /// The server drops the connection by itself (a protocol error).
    ServerDrops,
}

/// One client write and how many handler frames it should produce (as
/// Mongrel2 does).
#[derive(Debug, Clone)]
pub struct Send {
    pub bytes: Vec<u8>,
    pub frames: usize,
}

/// One scenario on one route.
#[derive(Debug, Clone)]
pub struct WsCase {
    pub name: &'static str,
    pub route: Route,
    pub upgrade: Vec<u8>,
    pub sends: Vec<Send>,
    pub end: End,
}

/// A masked client frame.
pub fn masked(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    websocket::write_masked_frame(&mut out, fin, opcode, MASK, payload);
    out
}

/// A masked client frame whose byte 0 is `byte0` exactly (RSV bits,
/// reserved opcodes).
pub fn masked_raw(byte0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = masked(true, Opcode::Text, payload);
    out[0] = byte0;
    out
}

fn send(bytes: Vec<u8>, frames: usize) -> Send {
    Send { bytes, frames }
}

/// The close payload every `close` scenario sends: 1000 and `bye`.
pub const CLOSE_PAYLOAD: &[u8] = b"\x03\xe8bye";

/// The binary message over 64 KiB (a 64-bit length on the wire).
pub fn big_binary() -> Vec<u8> {
    (0..70_000u32).map(|i| (i % 251) as u8).collect()
}

/// Every scenario on both routes.
pub fn cases(host: &str) -> Vec<WsCase> {
    use Opcode::{Binary, Close, Continuation, Ping, Pong, Text};
    let scenarios: Vec<(&'static str, &[u8], Vec<Send>, End)> = vec![
        (
            "conversation",
            UPGRADE,
            vec![
                send(masked(true, Text, b"hello"), 1),
                send(masked(true, Binary, b"\x00\x01\xfe\xff"), 1),
                send(masked(true, Text, b""), 1),
                send(
                    [
                        masked(false, Text, b"one "),
                        masked(false, Continuation, b"two "),
                        masked(true, Continuation, b"three"),
                    ]
                    .concat(),
                    1,
                ),
                send(masked(true, Ping, b"are you there?"), 1),
                send(masked(true, Pong, b"unsolicited"), 1),
                send(masked(true, Binary, &big_binary()), 1),
                send(masked(true, Close, CLOSE_PAYLOAD), 1),
            ],
            End::HandlerCloses,
        ),
        (
            "ping_between_fragments",
            UPGRADE,
            vec![send(
                [
                    masked(false, Binary, b"first "),
                    masked(true, Ping, b"mid"),
                    masked(true, Continuation, b"second"),
                ]
                .concat(),
                2,
            )],
            End::ClientGoes,
        ),
        (
            "client_goes_away",
            UPGRADE,
            vec![send(masked(true, Text, b"brb"), 1)],
            End::ClientGoes,
        ),
        (
            "reserved_opcode",
            UPGRADE,
            vec![send(masked_raw(0x83, b"odd"), 1)],
            End::ClientGoes,
        ),
        (
            "rsv_bits",
            UPGRADE,
            vec![send(masked_raw(0xC1, b"deflated?"), 1)],
            End::ClientGoes,
        ),
        (
            "unmasked",
            UPGRADE,
            vec![send(websocket::frame(Text, b"hello"), 0)],
            End::ServerDrops,
        ),
        (
            "continuation_without_a_message",
            UPGRADE,
            vec![send(masked(true, Continuation, b"orphan"), 0)],
            End::ServerDrops,
        ),
        (
            "fragmented_ping",
            UPGRADE,
            vec![send(masked(false, Ping, b"x"), 0)],
            End::ServerDrops,
        ),
        (
            "ping_over_125_bytes",
            UPGRADE,
            vec![send(masked(true, Ping, &[b'p'; 126]), 0)],
            End::ServerDrops,
        ),
        (
            "new_message_inside_a_fragmented_one",
            UPGRADE,
            vec![send(
                [masked(false, Text, b"a"), masked(true, Text, b"b")].concat(),
                0,
            )],
            End::ServerDrops,
        ),
        (
            "upgrade_without_version",
            UPGRADE_WITHOUT_VERSION,
            Vec::new(),
            End::ClientGoes,
        ),
    ];
    let mut out = Vec::new();
    for route in Route::ALL {
        for (name, upgrade, sends, end) in &scenarios {
            let upgrade = Case::new(name, route, host, &[*upgrade]).requests.remove(0);
            out.push(WsCase {
                name,
                route,
                upgrade,
                sends: sends.clone(),
                end: *end,
            });
        }
    }
    out
}

/// Everything one server did with one scenario.
#[derive(Debug, Clone, Default)]
pub struct WsCaseRun {
    /// The frame the upgrade request became (or the server's own answer).
    pub handshake: Option<Outcome>,
    /// The connection id of the handshake frame.
    pub id: Option<u64>,
    /// The handler's answer to the upgrade, as the client read it.
    pub upgrade_response: Vec<u8>,
    /// Every frame the handler got after the handshake, in order (notices
    /// excluded).
    pub frames: Vec<Vec<u8>>,
    /// Everything the client read after the upgrade response.
    pub client_read: Vec<u8>,
    /// Whether the client saw the connection end (EOF or a reset).
    pub closed: bool,
    /// The notice that came after the end, if any (within [`IO_TIMEOUT`]
    /// when the client went, [`NOTICE_WAIT`] otherwise).
    pub notice: Option<Vec<u8>>,
}

/// The handler's `101` for a handshake whose body is `accept`.
pub fn switching_protocols(accept: &[u8]) -> Vec<u8> {
    let mut out = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Accept: "
        .to_vec();
    out.extend_from_slice(accept);
    out.extend_from_slice(b"\r\n\r\n");
    out
}

/// What the handler sends back for a message frame: an echo of a text or
/// binary message, a pong for a ping, nothing for the rest.
pub fn answer(frame: &[u8]) -> Option<Vec<u8>> {
    let req = Request::parse(frame).ok()?;
    let flags = req.header("FLAGS")?.strip_prefix("0x")?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if flags & 0x70 != 0 {
        return None; // RSV bits: not ours to answer
    }
    match Opcode::from_u8(flags & 0x0F)? {
        op @ (Opcode::Text | Opcode::Binary) => Some(websocket::frame(op, req.body())),
        Opcode::Ping => Some(websocket::frame(Opcode::Pong, req.body())),
        _ => None,
    }
}

/// The frame the handler answers a close with: the client's status code.
pub const CLOSE_REPLY: &[u8] = b"\x88\x02\x03\xe8";

/// Runs every scenario against the server on `addr`.
pub fn exercise_ws(site: &Site, addr: SocketAddr, cases: &[WsCase]) -> Vec<WsCaseRun> {
    let captures = super::capture_all(site);
    // The reply path is subscribed before any client connects.
    for capture in &captures {
        capture.ping();
    }
    cases
        .iter()
        .map(|case| run_ws_case(super::capture_of(&captures, case.route), addr, case))
        .collect()
}

fn run_ws_case(capture: &Capture, addr: SocketAddr, case: &WsCase) -> WsCaseRun {
    let what = format!("{} on {:?}", case.name, case.route);
    let mut run = WsCaseRun::default();
    let mut client = super::Client::connect(addr);
    client.send(&case.upgrade);
    let handshake = frame_or_response(capture, &mut client, &what);
    let Outcome::Frame(frame) = &handshake else {
        run.handshake = Some(handshake);
        return run;
    };
    let id = frame_id(frame).unwrap_or_else(|| panic!("{what}: no id: {}", show(frame)));
    run.id = Some(id);
    let req = Request::parse(frame).unwrap_or_else(|e| panic!("{what}: {e}: {}", show(frame)));
    let websocket = req.method() == Some("WEBSOCKET_HANDSHAKE");
    let reply = if websocket {
        switching_protocols(req.body())
    } else {
        super::REPLY.to_vec()
    };
    run.handshake = Some(handshake);
    capture.reply(id, &reply);
    run.upgrade_response = client.read_exact_or_less(reply.len());

    for step in &case.sends {
        client.send(&step.bytes);
        for n in 0..step.frames {
            let frame = capture.recv(&format!("{what}: frame {n} of {}", show(&step.bytes)));
            // A server that refuses the frame (Kennel, for frames RFC 6455
            // does not allow) drops the connection instead: its notice
            // comes where the frame would have.
            if Request::parse(&frame).is_ok_and(|r| r.is_disconnect()) {
                let (bytes, closed) = client.read_until_eof();
                run.client_read.extend(bytes);
                run.closed = closed;
                run.notice = Some(frame);
                return run;
            }
            if let Some(answer) = answer(&frame) {
                capture.reply(id, &answer);
                run.client_read
                    .extend(client.read_exact_or_less(answer.len()));
            }
            run.frames.push(frame);
        }
    }
    match case.end {
        End::ClientGoes => {
            drop(client);
            run.closed = true;
            run.notice = capture.try_recv(IO_TIMEOUT);
        }
        End::HandlerCloses => {
            capture.reply(id, CLOSE_REPLY);
            capture.reply(id, b"");
            let (bytes, closed) = client.read_until_eof();
            run.client_read.extend(bytes);
            run.closed = closed;
            run.notice = capture.try_recv(NOTICE_WAIT);
        }
        End::ServerDrops => {
            let (bytes, closed) = client.read_until_eof();
            run.client_read.extend(bytes);
            run.closed = closed;
            run.notice = capture.try_recv(IO_TIMEOUT);
        }
    }
    run
}

impl super::Client {
    /// Reads `n` bytes, or fewer if the connection ends or [`IO_TIMEOUT`]
    /// passes first.
    pub fn read_exact_or_less(&mut self, n: usize) -> Vec<u8> {
        let mut out = vec![0; n];
        let mut got = 0;
        while got < n {
            match self.stream.read(&mut out[got..]) {
                Ok(0) | Err(_) => break,
                Ok(k) => got += k,
            }
        }
        out.truncate(got);
        out
    }

    /// Reads until the server ends the connection, for at most
    /// [`IO_TIMEOUT`]: what was read, and whether it ended.
    pub fn read_until_eof(&mut self) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => return (out, true),
                Ok(k) => out.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
                Err(_) => return (out, false),
            }
        }
        (out, false)
    }
}

impl Capture {
    /// The next frame within `wait`, if one comes.
    pub fn try_recv(&self, wait: Duration) -> Option<Vec<u8>> {
        let ms = i64::try_from(wait.as_millis()).unwrap();
        (self.pull.poll(zmq::POLLIN, ms).unwrap() > 0).then(|| self.pull.recv_bytes(0).unwrap())
    }
}
