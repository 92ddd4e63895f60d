//! `/ws/chat`: a broadcast room over WebSocket.
//!
//! Owns what the handler does with each WebSocket message the server
//! forwards: the `101` answer to `WEBSOCKET_HANDSHAKE`, and for each
//! `WEBSOCKET` message (its `FLAGS` header says which frame it was) a
//! broadcast, a pong or a close. The members are a [`chat::Room`], as the
//! SSE listeners are. Does no I/O: [`handle`] says what to send as a list
//! of [`Step`]s, and the event loop sends them.
//!
//! As in Mongrel2, the server only relays: it computes the
//! `Sec-WebSocket-Accept` value (the handshake's body) but leaves the `101`
//! to the handler, forwards pings and close frames instead of answering
//! them, and writes the handler's frames verbatim (built here with
//! `kennel_handler::websocket`). A member leaves when it sends a close
//! frame (answered with a close frame, then the empty reply that closes the
//! connection) or when the server's disconnect notice says it went away
//! ([`chat::Room::leave`], called by the event loop).

use kennel_handler::websocket::{self, Opcode};
use kennel_handler::Request;

use crate::chat::{self, Room};

/// The route's path; a WebSocket on any other path is refused.
pub const PATH: &[u8] = b"/ws/chat";

/// `FLAGS` bits that no extension of ours uses (RFC 6455 RSV1–3).
const RSV: u8 = 0x70;

/// Close status codes (RFC 6455 §7.4.1).
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
const CLOSE_INVALID_DATA: u16 = 1007;
const CLOSE_TOO_BIG: u16 = 1009;

/// One thing to send, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Bytes to the message's own connection.
    Reply(Vec<u8>),
    /// A frame to every member (one `deliver` per server).
    Broadcast(Vec<u8>),
    /// Close the message's connection: the empty reply.
    Close,
}

/// What [`handle`] decided: the steps, and a line for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub steps: Vec<Step>,
    pub log: String,
}

impl Answer {
    fn new(steps: Vec<Step>, log: impl Into<String>) -> Answer {
        Answer {
            steps,
            log: log.into(),
        }
    }
}

/// Whether the server sent this as part of a WebSocket: the handshake or
/// one message.
pub fn is_websocket(req: &Request) -> bool {
    matches!(req.method(), Some("WEBSOCKET_HANDSHAKE" | "WEBSOCKET"))
}

/// The `FLAGS` header as a byte: `0x81` is FIN and text.
pub fn flags(req: &Request) -> Option<u8> {
    let hex = req.header("FLAGS")?.strip_prefix("0x")?;
    u8::from_str_radix(hex, 16).ok()
}

/// What to do with a WebSocket request (see [`is_websocket`]).
pub fn handle(room: &mut Room, req: &Request) -> Answer {
    if req.method() == Some("WEBSOCKET_HANDSHAKE") {
        return handshake(room, req);
    }
    let member = room.contains(req.sender(), req.conn_id());
    if !member {
        // Frames that were on their way when the handler closed (or
        // refused) the connection.
        return Answer::new(Vec::new(), "ignored: not a member");
    }
    let Some(flags) = flags(req) else {
        return refuse(room, req, CLOSE_PROTOCOL_ERROR, "no FLAGS");
    };
    // Mongrel2 forwards frames with RSV bits or a reserved opcode as they
    // are; without a negotiated extension both are protocol errors.
    if flags & RSV != 0 {
        return refuse(room, req, CLOSE_PROTOCOL_ERROR, "reserved bits set");
    }
    let body = req.body();
    match Opcode::from_u8(flags & 0x0F) {
        Some(Opcode::Text) if body.len() > chat::MAX_MESSAGE_BYTES => {
            refuse(room, req, CLOSE_TOO_BIG, "message too long")
        }
        Some(Opcode::Text) if std::str::from_utf8(body).is_err() => {
            refuse(room, req, CLOSE_INVALID_DATA, "text is not UTF-8")
        }
        Some(Opcode::Text) => Answer::new(
            vec![Step::Broadcast(websocket::frame(Opcode::Text, body))],
            format!(
                "message of {} bytes to {} {}",
                body.len(),
                room.len(),
                members(room.len())
            ),
        ),
        Some(Opcode::Binary) => refuse(room, req, CLOSE_UNSUPPORTED_DATA, "text only"),
        Some(Opcode::Ping) => Answer::new(
            vec![Step::Reply(websocket::frame(Opcode::Pong, body))],
            "ping, pong",
        ),
        Some(Opcode::Pong) => Answer::new(Vec::new(), "pong"),
        Some(Opcode::Close) => {
            room.leave(req.sender(), req.conn_id());
            // Echo the status code, as RFC 6455 §5.5.1 suggests.
            let echo = match body {
                [hi, lo, ..] => websocket::close_frame(u16::from_be_bytes([*hi, *lo]), ""),
                _ => websocket::frame(Opcode::Close, b""),
            };
            Answer::new(
                vec![Step::Reply(echo), Step::Close],
                format!("left: close frame ({} {})", room.len(), members(room.len())),
            )
        }
        // The server reassembles fragments, so a continuation never comes
        // alone; anything else is a reserved opcode.
        Some(Opcode::Continuation) | None => {
            refuse(room, req, CLOSE_PROTOCOL_ERROR, "unexpected opcode")
        }
    }
}

/// Forgets a member the server says went away; the log line if it was
/// one.
pub fn disconnect(room: &mut Room, req: &Request) -> Option<String> {
    room.leave(req.sender(), req.conn_id()).then(|| {
        format!(
            "left: disconnect notice ({} {})",
            room.len(),
            members(room.len())
        )
    })
}

/// Joins the room and accepts, or refuses with an HTTP error and closes.
fn handshake(room: &mut Room, req: &Request) -> Answer {
    let refused = |status: u16, why: &str| {
        let page = crate::site::error(req, status, why);
        Answer::new(
            vec![Step::Reply(page), Step::Close],
            format!("refused: {why}"),
        )
    };
    if req.path() != PATH {
        return refused(404, "no WebSocket here");
    }
    if room.join(req.sender(), req.conn_id()).is_err() {
        return refused(503, "the room is full");
    }
    Answer::new(
        vec![Step::Reply(switching_protocols(req.body()))],
        format!("joined ({} {})", room.len(), members(room.len())),
    )
}

/// Sends a close frame with `code`, leaves the room and closes.
fn refuse(room: &mut Room, req: &Request, code: u16, why: &str) -> Answer {
    room.leave(req.sender(), req.conn_id());
    Answer::new(
        vec![Step::Reply(websocket::close_frame(code, why)), Step::Close],
        format!("closed with {code}: {why}"),
    )
}

/// The handler's `101`: the server computed `accept` (the handshake's body)
/// from the client's `Sec-WebSocket-Key`.
pub fn switching_protocols(accept: &[u8]) -> Vec<u8> {
    let mut out = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Accept: "
        .to_vec();
    out.extend_from_slice(accept);
    out.extend_from_slice(b"\r\n\r\n");
    out
}

fn members(n: usize) -> &'static str {
    if n == 1 {
        "member"
    } else {
        "members"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kennel_handler::request::{Protocol, RequestHead};

    const ACCEPT: &[u8] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn handshake_req(id: u64, path: &str) -> Request {
        let head = RequestHead::local(b"WEBSOCKET_HANDSHAKE", path.as_bytes());
        Request::from_head(Protocol::Tnetstring, b"S", id, &head, ACCEPT)
    }

    fn message(id: u64, flags: &str, body: &[u8]) -> Request {
        let extra: &[(&[u8], &[u8])] = &[(b"FLAGS", flags.as_bytes())];
        let head = RequestHead {
            extra,
            ..RequestHead::local(b"WEBSOCKET", b"/ws/chat")
        };
        Request::from_head(Protocol::Tnetstring, b"S", id, &head, body)
    }

    fn joined(ids: &[u64]) -> Room {
        let mut room = Room::default();
        for &id in ids {
            let answer = handle(&mut room, &handshake_req(id, "/ws/chat"));
            assert_eq!(
                answer.steps,
                [Step::Reply(switching_protocols(ACCEPT))],
                "{}",
                answer.log
            );
        }
        room
    }

    #[test]
    fn the_handshake_is_answered_with_the_servers_accept_key() {
        assert_eq!(
            switching_protocols(ACCEPT),
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
        let room = joined(&[1, 2]);
        assert_eq!(room.len(), 2);
    }

    #[test]
    fn a_websocket_elsewhere_is_refused() {
        let mut room = Room::default();
        let answer = handle(&mut room, &handshake_req(1, "/ws/other"));
        let [Step::Reply(page), Step::Close] = answer.steps.as_slice() else {
            panic!("{answer:?}");
        };
        assert!(page.starts_with(b"HTTP/1.1 404 Not Found\r\n"));
        assert_eq!(room.len(), 0);
    }

    #[test]
    fn text_is_broadcast_as_one_text_frame() {
        let mut room = joined(&[1, 2]);
        let answer = handle(&mut room, &message(2, "0x81", "héllo".as_bytes()));
        assert_eq!(
            answer.steps,
            [Step::Broadcast(b"\x81\x06h\xc3\xa9llo".to_vec())]
        );
        assert_eq!(answer.log, "message of 6 bytes to 2 members");
    }

    #[test]
    fn pings_get_pongs_and_pongs_nothing() {
        let mut room = joined(&[1]);
        let answer = handle(&mut room, &message(1, "0x89", b"are you there"));
        assert_eq!(
            answer.steps,
            [Step::Reply(b"\x8a\x0dare you there".to_vec())]
        );
        assert!(handle(&mut room, &message(1, "0x8A", b"x"))
            .steps
            .is_empty());
    }

    #[test]
    fn a_close_frame_is_echoed_then_the_connection_closed() {
        let mut room = joined(&[1, 2]);
        let answer = handle(&mut room, &message(1, "0x88", b"\x03\xe9going away"));
        assert_eq!(
            answer.steps,
            [Step::Reply(b"\x88\x02\x03\xe9".to_vec()), Step::Close]
        );
        assert_eq!(room.len(), 1);
        // An empty close gets an empty close.
        let answer = handle(&mut room, &message(2, "0x88", b""));
        assert_eq!(
            answer.steps,
            [Step::Reply(b"\x88\x00".to_vec()), Step::Close]
        );
        assert_eq!(room.len(), 0);
        // Nothing more for a connection that left.
        assert!(handle(&mut room, &message(2, "0x81", b"late"))
            .steps
            .is_empty());
    }

    #[test]
    fn a_disconnect_notice_forgets_a_member() {
        let mut room = joined(&[1, 2]);
        let gone = message(1, "0x81", b"");
        assert_eq!(
            disconnect(&mut room, &gone).as_deref(),
            Some("left: disconnect notice (1 member)")
        );
        assert_eq!(disconnect(&mut room, &gone), None);
        assert_eq!(room.len(), 1);
    }

    #[test]
    fn what_the_room_cannot_take_closes_with_a_status() {
        let long = vec![b'x'; chat::MAX_MESSAGE_BYTES + 1];
        let cases: [(&str, &[u8], u16); 5] = [
            ("0x82", b"\x00\x01", CLOSE_UNSUPPORTED_DATA),
            ("0x81", b"caf\xe9", CLOSE_INVALID_DATA),
            ("0x81", &long, CLOSE_TOO_BIG),
            ("0xC1", b"deflated?", CLOSE_PROTOCOL_ERROR),
            ("0x83", b"reserved", CLOSE_PROTOCOL_ERROR),
        ];
        for (flags, body, code) in cases {
            let mut room = joined(&[5]);
            let answer = handle(&mut room, &message(5, flags, body));
            let [Step::Reply(frame), Step::Close] = answer.steps.as_slice() else {
                panic!("{flags}: {answer:?}");
            };
            assert_eq!(frame[0], 0x88, "{flags}");
            assert_eq!(frame[2..4], code.to_be_bytes(), "{flags}");
            assert_eq!(room.len(), 0, "{flags}");
        }
    }

    #[test]
    fn flags_are_read_as_mongrel2_writes_them() {
        assert_eq!(flags(&message(1, "0x81", b"")), Some(0x81));
        assert_eq!(flags(&message(1, "0x8A", b"")), Some(0x8A));
        assert_eq!(flags(&message(1, "81", b"")), None);
        assert_eq!(flags(&message(1, "0x1FF", b"")), None);
    }
}
