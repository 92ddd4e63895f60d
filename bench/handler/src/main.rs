//! `bench-handler`: the benchmark suite's hello-world handler.
//!
//! Owns what the benchmark's handler answers, and nothing else: every
//! request gets the same fixed response ([`RESPONSE`], `hello world\n` with
//! a `Content-Length`); a request that asks to close gets the same saying
//! `Connection: close` ([`RESPONSE_CLOSE`]), followed by the empty reply
//! that closes the connection ([`Request::should_close`]:
//! `Connection: close` or HTTP/1.0). That is Mongrel2's convention, which
//! Kennel honours too: neither server closes a handler-served connection on
//! its own. The handler is written to cost as little as possible per request
//! (one parse, one prebuilt reply, no logging), so that a benchmark measures
//! the server in front of it, not the handler.
//!
//! Requests to [`LISTEN_PATH`] are never answered: those connections are
//! listeners for the broadcast scenario, which `bench/tools`' `broadcast`
//! serves through a handler of its own; should one reach this handler by a
//! routing mistake, it stays open and silent rather than being answered.
//!
//! On [`WS_PATH`] it is a WebSocket echo, as a Mongrel2 handler does one
//! (PROTOCOL.md §1.7): the upgrade arrives as `WEBSOCKET_HANDSHAKE` with the
//! `Sec-WebSocket-Accept` value as its body and gets the whole
//! `101 Switching Protocols` response; every message then arrives as
//! `WEBSOCKET` with its `FLAGS` and unmasked payload, and a text or binary
//! message gets the same payload back in one server frame, built in a
//! buffer reused for every message. A ping gets its pong; a close gets the
//! close frame echoed and then the empty reply that closes; pongs and
//! anything else get nothing.
//!
//! Called by `bench/run.sh`, once per server under test:
//!
//! ```text
//! bench-handler --send-spec tcp://127.0.0.1:18090 --recv-spec tcp://127.0.0.1:18091
//! ```

use anyhow::Context as _;
use clap::Parser;
use kennel_handler::websocket::{self, Opcode};
use kennel_handler::{Connection, Request};

/// The whole response every request gets: the 12-byte body of the issue's
/// hello-world scenario, with the least framing HTTP/1.1 needs.
pub const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world\n";

/// What a request that asks to close gets: [`RESPONSE`] saying
/// `Connection: close` (RFC 9112 §9.6), so that a client such as `wrk`
/// expects the close instead of counting it as a read error.
pub const RESPONSE_CLOSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 12\r\n\r\nhello world\n";

/// Requests to this path are never answered (broadcast listeners).
pub const LISTEN_PATH: &[u8] = b"/bench/listen";

/// The WebSocket echo's path: handshakes here are accepted.
pub const WS_PATH: &[u8] = b"/bench/ws";

/// The `101` that accepts a WebSocket handshake, up to the accept value;
/// [`WS_ACCEPT_END`] follows it.
const WS_ACCEPT_START: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ";
/// What follows the accept value in the `101`.
const WS_ACCEPT_END: &[u8] = b"\r\n\r\n";

/// The benchmark suite's hello-world handler.
#[derive(Debug, Parser)]
#[command(name = "bench-handler", version)]
struct Args {
    /// Where the server PUSHes requests (the handler's `send_spec`).
    #[arg(long, default_value = "tcp://127.0.0.1:18090")]
    send_spec: String,
    /// Where the server SUBscribes to replies (the handler's `recv_spec`).
    #[arg(long, default_value = "tcp://127.0.0.1:18091")]
    recv_spec: String,
}

/// What the handler does with one message from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Send [`RESPONSE`]; or, if `close`, [`RESPONSE_CLOSE`] and then the
    /// empty reply that closes.
    Answer {
        /// The request asked for the connection to close.
        close: bool,
    },
    /// Accept a WebSocket handshake: the `101` with the request's body as
    /// `Sec-WebSocket-Accept`.
    Accept,
    /// Send the message's payload back in one frame of this opcode; for a
    /// close, then the empty reply that closes the connection.
    Echo(Opcode),
    /// Send nothing: a disconnect or credit notice, a broadcast listener, a
    /// pong, or a WebSocket message with flags this handler does not know.
    Ignore,
}

/// Decides what `req` gets. Does no I/O.
fn decide(req: &Request) -> Action {
    match req.method() {
        Some("WEBSOCKET_HANDSHAKE") if req.path() == WS_PATH => return Action::Accept,
        Some("WEBSOCKET") => return echo(req.header("FLAGS")),
        _ => {}
    }
    if req.is_disconnect() || req.is_credits() || req.path() == LISTEN_PATH {
        return Action::Ignore;
    }
    Action::Answer {
        close: req.should_close(),
    }
}

/// What a WebSocket message with `FLAGS` (`0x81` text, `0x82` binary,
/// `0x88` close, `0x89` ping, `0x8A` pong) gets back.
fn echo(flags: Option<&str>) -> Action {
    let Some(byte) = flags
        .map(|f| f.trim_start_matches("0x").trim_start_matches("0X"))
        .and_then(|hex| u8::from_str_radix(hex, 16).ok())
    else {
        return Action::Ignore;
    };
    match Opcode::from_u8(byte & 0x0F) {
        Some(op @ (Opcode::Text | Opcode::Binary | Opcode::Close)) => Action::Echo(op),
        Some(Opcode::Ping) => Action::Echo(Opcode::Pong),
        _ => Action::Ignore,
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let conn = Connection::connect(&args.send_spec, &args.recv_spec)
        .with_context(|| format!("connecting to {} and {}", args.send_spec, args.recv_spec))?;
    eprintln!(
        "bench-handler: requests from {}, replies to {}",
        args.send_spec, args.recv_spec
    );
    // Every reply that is built rather than constant goes through this one
    // buffer, so an echo costs no allocation of its own.
    let mut out = Vec::with_capacity(4096);
    loop {
        let req = match conn.recv() {
            Ok(req) => req,
            // A malformed message is the server's bug, not a reason to stop
            // the benchmark; say so once per message and go on.
            Err(e) if e.is_protocol() => {
                eprintln!("bench-handler: skipping a bad message: {e}");
                continue;
            }
            Err(e) => return Err(e).context("receiving a request"),
        };
        match decide(&req) {
            Action::Ignore => {}
            Action::Answer { close } => {
                if close {
                    conn.reply(&req, RESPONSE_CLOSE).context("replying")?;
                    conn.close(&req).context("closing")?;
                } else {
                    conn.reply(&req, RESPONSE).context("replying")?;
                }
            }
            Action::Accept => {
                out.clear();
                out.extend_from_slice(WS_ACCEPT_START);
                out.extend_from_slice(req.body());
                out.extend_from_slice(WS_ACCEPT_END);
                conn.reply(&req, &out).context("accepting a WebSocket")?;
            }
            Action::Echo(opcode) => {
                out.clear();
                websocket::write_frame(&mut out, true, opcode, req.body());
                conn.reply(&req, &out)
                    .context("echoing a WebSocket message")?;
                if opcode == Opcode::Close {
                    conn.close(&req).context("closing a WebSocket")?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kennel_handler::request::{encode_disconnect, Protocol, RequestHead};

    fn request(path: &str, version: &str, headers: &[(&[u8], &[u8])]) -> Request {
        let head = RequestHead {
            version: Some(version.as_bytes()),
            headers,
            ..RequestHead::local(b"GET", path.as_bytes())
        };
        Request::from_head(Protocol::Tnetstring, b"S", 5, &head, b"")
    }

    #[test]
    fn the_responses_are_12_bytes_of_hello_world() {
        for (bytes, closes) in [(RESPONSE, false), (RESPONSE_CLOSE, true)] {
            let text = std::str::from_utf8(bytes).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert_eq!(body, "hello world\n");
            assert!(head.contains(&format!("Content-Length: {}", body.len())));
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
            assert_eq!(head.contains("\r\nConnection: close"), closes);
        }
    }

    #[test]
    fn keep_alive_requests_are_answered_without_closing() {
        let req = request("/bench/hello", "HTTP/1.1", &[(b"Host", b"b")]);
        assert_eq!(decide(&req), Action::Answer { close: false });
        let req = request("/anything", "HTTP/1.1", &[(b"Connection", b"keep-alive")]);
        assert_eq!(decide(&req), Action::Answer { close: false });
    }

    #[test]
    fn close_requests_are_answered_then_closed() {
        for value in [&b"close"[..], b"Close", b"CLOSE"] {
            let req = request("/bench/hello", "HTTP/1.1", &[(b"Connection", value)]);
            assert_eq!(decide(&req), Action::Answer { close: true });
        }
        let req = request("/bench/hello", "HTTP/1.0", &[]);
        assert_eq!(decide(&req), Action::Answer { close: true });
    }

    #[test]
    fn notices_and_listeners_are_ignored() {
        let mut msg = Vec::new();
        encode_disconnect(&mut msg, Protocol::Tnetstring, b"S", 5);
        assert_eq!(decide(&Request::parse(&msg).unwrap()), Action::Ignore);
        let req = request("/bench/listen", "HTTP/1.1", &[]);
        assert_eq!(decide(&req), Action::Ignore);
        // Only that exact path: a longer one is an ordinary request.
        let req = request("/bench/listener", "HTTP/1.1", &[]);
        assert_eq!(decide(&req), Action::Answer { close: false });
    }

    fn websocket(method: &[u8], path: &[u8], flags: Option<&[u8]>) -> Request {
        let extra: Vec<(&[u8], &[u8])> = flags.map(|f| (&b"FLAGS"[..], f)).into_iter().collect();
        let head = RequestHead {
            extra: &extra,
            ..RequestHead::local(method, path)
        };
        Request::from_head(Protocol::Tnetstring, b"S", 5, &head, b"payload")
    }

    #[test]
    fn handshakes_are_accepted_on_the_websocket_path_only() {
        let req = websocket(b"WEBSOCKET_HANDSHAKE", WS_PATH, None);
        assert_eq!(decide(&req), Action::Accept);
        let req = websocket(b"WEBSOCKET_HANDSHAKE", b"/bench/hello", None);
        assert_eq!(decide(&req), Action::Answer { close: false });
    }

    #[test]
    fn messages_are_echoed_by_their_flags() {
        let cases: [(&[u8], Action); 7] = [
            (b"0x81", Action::Echo(Opcode::Text)),
            (b"0x82", Action::Echo(Opcode::Binary)),
            (b"0x88", Action::Echo(Opcode::Close)),
            (b"0x89", Action::Echo(Opcode::Pong)),
            (b"0x8A", Action::Ignore),
            (b"0x8a", Action::Ignore),
            (b"junk", Action::Ignore),
        ];
        for (flags, action) in cases {
            let req = websocket(b"WEBSOCKET", WS_PATH, Some(flags));
            assert_eq!(decide(&req), action, "{}", String::from_utf8_lossy(flags));
        }
        assert_eq!(
            decide(&websocket(b"WEBSOCKET", WS_PATH, None)),
            Action::Ignore
        );
    }
}
