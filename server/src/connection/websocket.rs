//! WebSocket on a handler route, as Mongrel2 does it (PROTOCOL.md §1.7).
//!
//! An upgrade request (Mongrel2's test: `Sec-WebSocket-Key`,
//! `Sec-WebSocket-Version`, `Host`, `Upgrade: websocket` and a `Connection`
//! that lists `upgrade`) goes to the handler as `WEBSOCKET_HANDSHAKE`, with
//! the computed `Sec-WebSocket-Accept` value as its body. The handler sends
//! the `101 Switching Protocols` itself; when Kennel sees it in the
//! handler's bytes, the connection switches to frames ([`Phase::WebSocket`]).
//! Any other response leaves it an HTTP connection. From then on each
//! complete message or control frame from the client goes to the handler as
//! `WEBSOCKET`, with every header of the upgrade request, `FLAGS` (byte 0 of
//! the first frame with FIN set, `0x81` for text) and the unmasked,
//! reassembled payload; the handler's frames are written verbatim. Kennel
//! neither answers pings nor closes on a close frame: the handler does.
//!
//! Beyond Mongrel2: a message over `kennel.websocket.max_message_bytes`
//! closes the connection with 1009, and an unmasked frame, a reserved
//! opcode or broken fragmentation with 1002 (Kennel writes the close frame
//! itself, then closes; the handler gets a disconnect notice). A message
//! the link cannot take (its queue full, or down) closes with 1013 (try
//! again later) rather than being lost silently. An idle WebSocket holds
//! its messages' header block (encoded once, at the upgrade), its frame
//! reader and no buffer.

use std::sync::Arc;

use kennel_handler::websocket::{self, FrameReader};
use tracing::debug;

use super::{ConnError, Connection, End, Phase};
use crate::http::{list_elements, Head};
use crate::link::{Handoff, Link, LinkRequest};

/// A WebSocket being set up or running on a connection.
#[derive(Debug)]
pub(super) struct WebSocket {
    /// The header block every message carries (the upgrade request's
    /// headers, `METHOD: WEBSOCKET`, `FLAGS`), encoded once by the link;
    /// each message patches the two hex digits of `FLAGS` at `flags_at`.
    headers: Box<[u8]>,
    flags_at: usize,
    /// The upgrade request's path, the messages' path.
    path: Box<[u8]>,
    /// The link the messages go to.
    link: Arc<dyn Link>,
    /// The client's frames, checked and reassembled.
    reader: FrameReader,
}

/// `FLAGS` as encoded once: `0x` and two digits patched per message (byte
/// 0 of a frame with FIN set is at least `0x80`: always two digits, as
/// Mongrel2's `0x%X` writes them).
const FLAGS_PLACEHOLDER: &[u8] = b"0x00";

/// Whether `head` asks for a WebSocket, by Mongrel2's test
/// (`Request_is_websocket`): any `Sec-WebSocket-Version` value, no method
/// or Origin check.
pub(super) fn is_upgrade(head: &Head) -> bool {
    let has = |name| head.header(name).is_some();
    has("sec-websocket-key")
        && has("sec-websocket-version")
        && head.host().is_some()
        && head
            .header("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"websocket"))
        && head.headers().any(|(name, value)| {
            name.eq_ignore_ascii_case(b"connection")
                && list_elements(value).any(|t| t.eq_ignore_ascii_case(b"upgrade"))
        })
}

/// The close code for a message a link would not take: 1013, try again
/// later (RFC 6455 §7.4.1, registered in the IANA table).
const TRY_AGAIN_LATER: u16 = 1013;

impl Connection {
    /// Hands an upgrade request to the handler as `WEBSOCKET_HANDSHAKE`
    /// and waits for its `101`. `Ok(false)` if the link refused it (the
    /// caller answers 503).
    pub(super) fn start_websocket(
        &mut self,
        head: &Head,
        link: &Arc<dyn Link>,
        request: LinkRequest<'_>,
    ) -> bool {
        let key = head.header("sec-websocket-key").unwrap_or_default();
        let accept = websocket::accept_key(key);
        let handoff = link.dispatch(&LinkRequest {
            method: Some(b"WEBSOCKET_HANDSHAKE"),
            body: accept.as_bytes(),
            ..request
        });
        if let Handoff::Refused(_) = handoff {
            return false;
        }
        let max = self
            .active
            .snapshot
            .settings
            .kennel_websocket_max_message_bytes;
        let extra: [(&[u8], &[u8]); 1] = [(b"FLAGS", FLAGS_PLACEHOLDER)];
        let headers = link.encode_headers(&LinkRequest {
            method: Some(b"WEBSOCKET"),
            extra: &extra,
            ..request
        });
        // `FLAGS` is the last key: the last placeholder is its value.
        let Some(flags_at) = headers
            .windows(FLAGS_PLACEHOLDER.len())
            .rposition(|w| w == FLAGS_PLACEHOLDER)
            .map(|at| at + 2)
        else {
            unreachable!("the header block holds the FLAGS placeholder");
        };
        self.note_kind(crate::roster::Kind::Socket);
        self.phase = Phase::Upgrading(Box::new(WebSocket {
            headers: headers.into_boxed_slice(),
            flags_at,
            path: head.path().into(),
            link: Arc::clone(link),
            reader: FrameReader::new(max),
        }));
        true
    }

    /// The handler answered the upgrade with `101`: frames from now on.
    /// If its `101` named extensions, frames may carry RSV bits (the
    /// handler deals with what they mean); otherwise one that sets them
    /// is a protocol error (RFC 6455 §5.2).
    pub(super) fn websocket_accepted(&mut self, extensions: bool) {
        if let Phase::Upgrading(_) = self.phase {
            let Phase::Upgrading(mut ws) = std::mem::replace(&mut self.phase, Phase::Finishing)
            else {
                unreachable!("just matched");
            };
            if extensions {
                let reader = std::mem::take(&mut ws.reader);
                ws.reader = reader.allow_reserved_bits(0x70);
            }
            debug!(peer = %self.peer, extensions, "websocket open");
            self.phase = Phase::WebSocket(ws);
        }
    }

    /// The handler answered the upgrade with something else: still HTTP.
    pub(super) fn websocket_refused(&mut self) {
        if let Phase::Upgrading(_) = self.phase {
            self.phase = Phase::Http { started: None };
        }
    }

    /// Sends every complete message in the read buffer to the handler.
    /// `Some(end)` when the connection must end (a protocol error, a
    /// message the link would not take).
    pub(super) async fn read_frames(&mut self) -> Result<Option<End>, ConnError> {
        loop {
            let Phase::WebSocket(ws) = &mut self.phase else {
                return Ok(None);
            };
            let message = match ws.reader.read(&mut self.buf) {
                Ok(Some(message)) => message,
                Ok(None) => return Ok(None),
                Err(e) => {
                    debug!(peer = %self.peer, error = %e, "websocket protocol error");
                    return self.close_websocket(e.close_code(), &e.to_string()).await;
                }
            };
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            let flags = message.flags;
            let at = ws.flags_at;
            ws.headers[at] = HEX[usize::from(flags >> 4)];
            ws.headers[at + 1] = HEX[usize::from(flags & 0xF)];
            let conn_id = self.register().id();
            let Phase::WebSocket(ws) = &self.phase else {
                unreachable!("checked above");
            };
            let handoff =
                ws.link
                    .dispatch_encoded(conn_id, &ws.path, &ws.headers, &message.payload);
            if let Handoff::Refused(why) = handoff {
                debug!(peer = %self.peer, reason = %why, "websocket message refused by the handler link");
                return self
                    .close_websocket(TRY_AGAIN_LATER, "handler unavailable")
                    .await;
            }
            self.touch();
        }
    }

    /// A held message expired without a handler: the WebSocket cannot go
    /// on.
    pub(super) async fn websocket_unavailable(&mut self) -> Result<Option<End>, ConnError> {
        self.close_websocket(TRY_AGAIN_LATER, "handler unavailable")
            .await
    }

    /// Writes a close frame with `code` and ends the connection.
    async fn close_websocket(&mut self, code: u16, reason: &str) -> Result<Option<End>, ConnError> {
        // A close reason is at most 123 bytes (a control frame's 125 less
        // the code), cut at a character boundary.
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let reason = &reason[..end];
        self.write_all(&websocket::close_frame(code, reason))
            .await?;
        Ok(Some(End::Linger))
    }
}
