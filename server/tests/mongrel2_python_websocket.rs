//! Mongrel2's own WebSocket example handler, `ws/python/echo.py`, run
//! unchanged under Python 2.7 with Mongrel2's own Python library
//! (`mongrel2.handler`: `Connection`, `reply_websocket`,
//! `websocket_response`), behind a real server, and an independent
//! WebSocket client (`tungstenite`) that checks every echo byte for byte:
//! text and binary messages, messages over 64 KiB (the 64-bit length form
//! both ways), a fragmented message with a ping between its fragments, a
//! ping and its pong, and a clean close (the close frame echoed, then the
//! server closes the TCP connection).
//!
//! The files come from Debian's `mongrel2-core` examples: `echo.py` and
//! `wsutil.py` are copied, the library's `handler.py.gz` gunzipped (that
//! is packaging, not a change). `echo.py` imports `simplejson` and never
//! uses it; Debian has no `simplejson` for Python 2, so a one-line
//! `simplejson.py` re-exporting the standard `json` stands in for it.
//! `echo.py` hard-codes its sockets (`tcp://127.0.0.1:9990`, `:9989`), so
//! the site's handler row uses those (the one from `ws/mongrel2.conf`, with
//! that file's settings) and an exclusive lock file serialises every use of
//! the two ports on this machine.
//!
//! The server is the test's parameter: Mongrel2 1.12 now, Kennel once its
//! WebSocket support lands. Needs `mongrel2-core`, `python2.7` and pyzmq
//! for it (`bash tests/setup.sh`; `KENNEL_PY2_PATH` as there); without them
//! the test fails, saying what to install.

mod common;
mod differential;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use differential::databases::HandlerRow;
use differential::python::{self, PortLock};
use differential::{kennel, mongrel2, Served, Site, Start};
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame};
use tungstenite::{Message, WebSocket};

/// What `echo.py` connects to: its PULL socket to the server's PUSH
/// (`send_spec`), its PUB socket to the server's SUB (`recv_spec`).
const SEND_SPEC: &str = "tcp://127.0.0.1:9990";
const RECV_SPEC: &str = "tcp://127.0.0.1:9989";
const PORTS: [u16; 2] = [9990, 9989];

/// The handler row of `ws/mongrel2.conf` (`handler_test`).
const SEND_IDENT: &str = "34f9ceee-cd52-4b7f-b197-88bf2f0ec378";

/// How long the handler may take to be reachable (Python's start, ZeroMQ's
/// connect), and how long any one echo may take.
const START_TIMEOUT: Duration = Duration::from_secs(20);
const ECHO_TIMEOUT: Duration = Duration::from_secs(10);

fn lock_ports() -> PortLock {
    python::lock_ports(&PORTS, "echo.py hard-codes 9990 and 9989")
}

/// The site of `ws/mongrel2.conf`: one host whose `/handlertest` route
/// goes to `handler_test`, with that file's settings, made by `m2sh load`.
fn echo_site() -> Site {
    let handler = HandlerRow {
        send_spec: SEND_SPEC.into(),
        send_ident: SEND_IDENT.into(),
        recv_spec: RECV_SPEC.into(),
        recv_ident: String::new(),
        protocol: "tnetstring".into(),
    };
    python::example_site(
        "/handlertest",
        handler,
        &[
            ("zeromq.threads", "1"),
            ("limits.client_read_retries", "80"),
            ("limits.min_ping", "0"),
            ("limits.min_write_rate", "0"),
            ("limits.min_read_rate", "0"),
        ],
    )
}

/// Copies echo.py, its `wsutil.py` and Mongrel2's Python library into
/// `dir` and returns the directory to run it in.
fn install_echo(dir: &Path) -> PathBuf {
    python::install(dir, &["ws/python/echo.py", "ws/python/wsutil.py"])
}

/// `python2.7 echo.py`.
type Echo = python::Handler;

fn start_echo(py: &Path) -> Echo {
    python::Handler::start(py, "echo.py", "zmq, mongrel2.handler, wsutil")
}

/// Opens the WebSocket, retrying: echo.py's first reply (the `101`) is
/// lost if its PUB socket is not subscribed yet (ZeroMQ's slow joiner).
fn connect(served: &Served, echo: &mut Echo) -> WebSocket<TcpStream> {
    let url = format!("ws://localhost:{}/handlertest", served.addr().port());
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let stream = TcpStream::connect(served.addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        match tungstenite::client(url.as_str(), stream) {
            Ok((ws, response)) => {
                assert_eq!(response.status(), 101);
                ws.get_ref().set_read_timeout(Some(ECHO_TIMEOUT)).unwrap();
                return ws;
            }
            Err(e) => {
                if let Ok(Some(status)) = echo.child.try_wait() {
                    panic!("echo.py exited with {status}:\n{}", echo.output());
                }
                assert!(
                    Instant::now() < deadline,
                    "no WebSocket handshake within {START_TIMEOUT:?} (last: {e}); echo.py \
                     said:\n{}",
                    echo.output()
                );
            }
        }
    }
}

/// The next message, skipping nothing: whatever the server sent.
fn next(ws: &mut WebSocket<TcpStream>, what: &str) -> Message {
    ws.read()
        .unwrap_or_else(|e| panic!("{what}: no message: {e}"))
}

fn send(ws: &mut WebSocket<TcpStream>, message: Message) {
    ws.send(message).expect("send a message");
}

fn fragment(data: &[u8], opcode: Data, last: bool) -> Message {
    Message::Frame(Frame::message(data.to_vec(), OpCode::Data(opcode), last))
}

fn echo_conversation(start: Start) {
    let _lock = lock_ports();
    let site = echo_site();
    let py = install_echo(site.root());
    let mut echo = start_echo(&py);
    let served = start(&site);
    let mut ws = connect(&served, &mut echo);

    // Text and binary, small and over 64 KiB.
    let text = "hello, Mongrel2's echo.py — ☃";
    send(&mut ws, Message::text(text));
    assert_eq!(next(&mut ws, "text"), Message::text(text));
    let every_byte: Vec<u8> = (0..=255).collect();
    send(&mut ws, Message::binary(every_byte.clone()));
    assert_eq!(next(&mut ws, "binary"), Message::binary(every_byte));
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    send(&mut ws, Message::binary(big.clone()));
    assert_eq!(next(&mut ws, "100 KB binary"), Message::binary(big));
    let big_text = "ü".repeat(40_000);
    send(&mut ws, Message::text(big_text.clone()));
    assert_eq!(next(&mut ws, "80 KB text"), Message::text(big_text));

    // Fragmented: the server reassembles, echo.py sends one frame. A ping
    // between the fragments is forwarded at once, so its pong comes first.
    send(&mut ws, fragment(b"frag", Data::Text, false));
    send(&mut ws, Message::Ping(b"in between".to_vec().into()));
    send(&mut ws, fragment(b"men", Data::Continue, false));
    send(&mut ws, fragment("ted ☃".as_bytes(), Data::Continue, true));
    assert_eq!(
        next(&mut ws, "pong between fragments"),
        Message::Pong(b"in between".to_vec().into())
    );
    assert_eq!(
        next(&mut ws, "fragmented text"),
        Message::text("fragmented ☃")
    );
    let halves = [vec![1u8; 70_000], vec![2u8; 10]];
    send(&mut ws, fragment(&halves[0], Data::Binary, false));
    send(&mut ws, fragment(&halves[1], Data::Continue, true));
    assert_eq!(
        next(&mut ws, "fragmented binary"),
        Message::binary(halves.concat())
    );

    // A ping gets a pong with its payload.
    send(&mut ws, Message::Ping(b"are you there?".to_vec().into()));
    assert_eq!(
        next(&mut ws, "pong"),
        Message::Pong(b"are you there?".to_vec().into())
    );

    // A clean close: echo.py echoes the close frame and closes.
    let bye = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    ws.close(Some(bye.clone())).expect("send the close frame");
    assert_eq!(next(&mut ws, "close"), Message::Close(Some(bye)));
    match ws.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        other => panic!("after the close handshake: {other:?}"),
    }
    // And the server closed the TCP connection (echo.py's empty reply).
    let mut byte = [0u8; 1];
    let read = std::io::Read::read(ws.get_mut(), &mut byte);
    assert!(
        matches!(read, Ok(0)),
        "the TCP connection stays open: {read:?}"
    );
    served.stop();
    let said = echo.output();
    assert!(!said.contains("Traceback"), "echo.py failed:\n{said}");
}

#[test]
fn mongrel2s_echo_py_through_mongrel2() {
    echo_conversation(mongrel2);
}

#[test]
fn mongrel2s_echo_py_through_kennel() {
    echo_conversation(kennel);
}
