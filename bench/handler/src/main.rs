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
//! Called by `bench/run.sh`, once per server under test:
//!
//! ```text
//! bench-handler --send-spec tcp://127.0.0.1:18090 --recv-spec tcp://127.0.0.1:18091
//! ```

use anyhow::Context as _;
use clap::Parser;
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
    /// Send nothing: a disconnect or credit notice, or a broadcast listener.
    Ignore,
}

/// Decides what `req` gets. Does no I/O.
fn decide(req: &Request) -> Action {
    if req.is_disconnect() || req.is_credits() || req.path() == LISTEN_PATH {
        return Action::Ignore;
    }
    Action::Answer {
        close: req.should_close(),
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
}
