//! WebSocket frames (RFC 6455 §5): the server's frame reader and the
//! handler's frame builder.
//!
//! This module owns the bytes of a frame and nothing else. It does no I/O
//! and knows nothing of the opening handshake beyond [`accept_key`], of
//! connections, or of ZeroMQ.
//!
//! - The server feeds what it reads from a client into a [`FrameReader`],
//!   which checks each frame header against Mongrel2's rules, unmasks the
//!   payload, reassembles fragmented messages and yields one [`Message`] per
//!   complete message or control frame. The server forwards each to the
//!   handler with [`Message::flags_header`] as the `FLAGS` header.
//! - A handler builds what it sends with [`frame`], [`write_frame`] and
//!   [`close_frame`] (server to client frames are unmasked), and answers the
//!   handshake with [`accept_key`], because Mongrel2 leaves the `101` reply to
//!   the handler.
//! - [`write_masked_frame`] writes client frames, for tests and fuzzing.
//!
//! Deliberate choices, each where RFC 6455 leaves room or Mongrel2 is silent:
//! - **Text is not checked for UTF-8.** Mongrel2 forwards text payloads as
//!   bytes; so does Kennel, and a handler that cares checks (and closes with
//!   1007) itself.
//! - **Non-minimal length encodings are accepted.** RFC 6455 §5.2 says a
//!   sender MUST use the shortest form, but a longer form is unambiguous, so
//!   rejecting it protects nothing and would only break sloppy clients that
//!   work with Mongrel2. The 64-bit form's top bit must still be zero.
//! - **Message size is bounded** ([`DEFAULT_MAX_MESSAGE_SIZE`]), where
//!   Mongrel2 has no bound at all. The bound is checked from each frame
//!   header, before its payload is buffered.
//! - **No extensions** are negotiated, so every RSV bit must be zero.

use bytes::{Buf, Bytes, BytesMut};
use sha1::{Digest, Sha1};

/// The default largest message, summed over its fragments, that
/// [`FrameReader`] accepts: 16 MiB.
///
/// Mongrel2 has no limit (its `MAX_WS_LENGTH` is defined but unused), so one
/// client can make it buffer any amount. 16 MiB is far above what chat,
/// JSON or streaming-chunk messages need, matches the frame limit that
/// `tungstenite` clients already live with, and still bounds what one
/// connection can make the server hold. Control frames are bounded by the
/// protocol itself (125 bytes) and do not count against this limit.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// The largest payload of a control frame (close, ping, pong): 125 bytes,
/// fixed by RFC 6455 §5.5.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The GUID appended to `Sec-WebSocket-Key` before hashing (RFC 6455 §1.3).
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The FIN bit of byte 0.
const FIN: u8 = 0x80;
/// The three RSV bits of byte 0.
const RSV: u8 = 0x70;
/// The opcode bits of byte 0.
const OPCODE: u8 = 0x0F;
/// The MASK bit of byte 1.
const MASK: u8 = 0x80;
/// The 7-bit length field of byte 1.
const LEN7: u8 = 0x7F;
/// `LEN7` value announcing a 16-bit extended length.
const LEN16_MARKER: u8 = 126;
/// `LEN7` value announcing a 64-bit extended length.
const LEN64_MARKER: u8 = 127;

/// A frame opcode (RFC 6455 §5.2). The reserved opcodes 3–7 and 0xB–0xF
/// have no variant: the reader rejects them with
/// [`FrameError::ReservedOpcode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// `0x0`: continues a fragmented message.
    Continuation,
    /// `0x1`: a text message (not checked for UTF-8, as in Mongrel2).
    Text,
    /// `0x2`: a binary message.
    Binary,
    /// `0x8`: close, with an optional status code and reason.
    Close,
    /// `0x9`: ping.
    Ping,
    /// `0xA`: pong.
    Pong,
}

impl Opcode {
    /// The opcode for the low four bits of a frame's byte 0, or `None` for a
    /// reserved opcode (or a value above `0xF`).
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            0x0 => Some(Self::Continuation),
            0x1 => Some(Self::Text),
            0x2 => Some(Self::Binary),
            0x8 => Some(Self::Close),
            0x9 => Some(Self::Ping),
            0xA => Some(Self::Pong),
            _ => None,
        }
    }

    /// The opcode's four-bit value.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Whether this is a control opcode (close, ping, pong): at most
    /// [`MAX_CONTROL_PAYLOAD`] bytes, never fragmented.
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// Why a client's bytes are not a valid frame sequence.
///
/// Every error is fatal to the connection: the server closes it with
/// [`FrameError::close_code`]. The reader consumes nothing of the offending
/// frame and must not be used again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The client sent an unmasked frame (RFC 6455 §5.1).
    #[error("client frame is not masked")]
    Unmasked,
    /// An RSV bit is set but no extension was negotiated.
    #[error("reserved bits {bits:#04x} set without a negotiated extension")]
    ReservedBits {
        /// Byte 0 masked to its RSV bits.
        bits: u8,
    },
    /// The opcode is one of the reserved values.
    #[error("reserved opcode {opcode:#x}")]
    ReservedOpcode {
        /// The four-bit opcode.
        opcode: u8,
    },
    /// A control frame without FIN (control frames cannot be fragmented).
    #[error("fragmented {opcode:?} frame")]
    FragmentedControl {
        /// The control frame's opcode.
        opcode: Opcode,
    },
    /// A control frame whose payload is over [`MAX_CONTROL_PAYLOAD`].
    #[error("{opcode:?} frame of {len} bytes, over the 125-byte limit for control frames")]
    ControlTooLong {
        /// The control frame's opcode.
        opcode: Opcode,
        /// The announced payload length.
        len: u64,
    },
    /// A continuation frame arrived with no fragmented message open.
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A new text or binary frame arrived while a fragmented message was
    /// still open.
    #[error("new {opcode:?} frame while a fragmented message is unfinished")]
    ExpectedContinuation {
        /// The new frame's opcode.
        opcode: Opcode,
    },
    /// A 64-bit extended length with its most significant bit set.
    #[error("64-bit payload length with the most significant bit set")]
    LengthOverflow,
    /// The message, summed over its fragments so far, is over the reader's
    /// limit. Detected from the frame header, before the payload arrives.
    #[error("message of at least {size} bytes is over the {max}-byte limit")]
    MessageTooBig {
        /// The message's size including the announced frame.
        size: u64,
        /// The reader's limit.
        max: usize,
    },
}

impl FrameError {
    /// The close status code to send the client (RFC 6455 §7.4.1): 1009 for
    /// a message that is too big, 1002 (protocol error) for the rest.
    pub fn close_code(&self) -> u16 {
        match self {
            Self::MessageTooBig { .. } => 1009,
            _ => 1002,
        }
    }
}

/// One complete message or control frame, as read from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The opcode of the message's first frame: never
    /// [`Opcode::Continuation`].
    pub opcode: Opcode,
    /// Byte 0 of the message's first frame with the FIN bit forced: what
    /// Mongrel2 sends the handler as `FLAGS`.
    pub flags: u8,
    /// The unmasked payload, reassembled across fragments.
    pub payload: Bytes,
}

impl Message {
    /// The `FLAGS` header value Mongrel2 gives the handler: `0x` and the
    /// upper-case hex of [`Message::flags`], e.g. `0x81` text, `0x82`
    /// binary, `0x88` close, `0x89` ping, `0x8A` pong.
    pub fn flags_header(&self) -> String {
        format!("0x{:X}", self.flags)
    }
}

/// A fragmented message being reassembled.
#[derive(Debug)]
struct Partial {
    /// The first frame's opcode (text or binary).
    opcode: Opcode,
    /// The first frame's byte 0 with FIN forced.
    flags: u8,
    /// The unmasked payload so far.
    payload: BytesMut,
}

/// A checked frame header.
#[derive(Debug, Clone, Copy)]
struct Header {
    /// Byte 0 of the frame.
    byte0: u8,
    /// The frame's opcode.
    opcode: Opcode,
    /// Whether FIN is set.
    fin: bool,
    /// The bytes before the payload, mask key included.
    len: usize,
    /// The masking key.
    mask: [u8; 4],
    /// The payload length.
    payload_len: usize,
}

/// The server's reader of client frames: checks, unmasks and reassembles.
///
/// Feed it the connection's read buffer after every read; it consumes whole
/// frames only and keeps a fragmented message between calls.
#[derive(Debug)]
pub struct FrameReader {
    /// The largest data message accepted, summed over its fragments.
    max_message_size: usize,
    /// RSV bits a negotiated extension may set (0: none negotiated).
    allowed_rsv: u8,
    /// The fragmented message being reassembled, if any.
    partial: Option<Partial>,
}

impl Default for FrameReader {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE_SIZE)
    }
}

impl FrameReader {
    /// A reader accepting data messages of up to `max_message_size` bytes
    /// (summed over fragments); see [`DEFAULT_MAX_MESSAGE_SIZE`].
    pub fn new(max_message_size: usize) -> Self {
        Self {
            max_message_size,
            allowed_rsv: 0,
            partial: None,
        }
    }

    /// Lets frames carry the RSV bits in `mask` (of `0x70`): for a
    /// connection whose handler negotiated an extension (such as
    /// permessage-deflate, RSV1) in its `101`. The bits then reach the
    /// handler in `FLAGS`, and the payload as it came.
    pub fn allow_reserved_bits(mut self, mask: u8) -> Self {
        self.allowed_rsv = mask & RSV;
        self
    }

    /// Whether a fragmented message has started and not yet finished.
    pub fn is_mid_message(&self) -> bool {
        self.partial.is_some()
    }

    /// Reads the next message from `buf`.
    ///
    /// `Ok(None)`: more bytes are needed; any whole fragments were consumed
    /// into the reader, and nothing else was. `Ok(Some(message))`: one
    /// complete data message or control frame, whose bytes are consumed from
    /// `buf`. A control frame between fragments is returned at once and the
    /// fragmented message keeps accumulating.
    ///
    /// An unfragmented frame's payload is unmasked in place and handed out
    /// without a copy.
    pub fn read(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, FrameError> {
        loop {
            let Some(header) = self.check_header(buf)? else {
                return Ok(None);
            };
            if buf.len() - header.len < header.payload_len {
                return Ok(None);
            }
            buf.advance(header.len);
            let mut payload = buf.split_to(header.payload_len);
            apply_mask(&mut payload, header.mask);

            if header.opcode.is_control() || (header.fin && header.opcode != Opcode::Continuation) {
                return Ok(Some(Message {
                    opcode: header.opcode,
                    flags: header.byte0 | FIN,
                    payload: payload.freeze(),
                }));
            }
            if header.opcode != Opcode::Continuation {
                // The first fragment; `check_header` made sure none is open.
                self.partial = Some(Partial {
                    opcode: header.opcode,
                    flags: header.byte0 | FIN,
                    payload,
                });
                continue;
            }
            // A continuation; `check_header` made sure a message is open.
            let Some(partial) = self.partial.as_mut() else {
                return Err(FrameError::UnexpectedContinuation);
            };
            partial.payload.extend_from_slice(&payload);
            if header.fin {
                if let Some(done) = self.partial.take() {
                    return Ok(Some(Message {
                        opcode: done.opcode,
                        flags: done.flags,
                        payload: done.payload.freeze(),
                    }));
                }
            }
        }
    }

    /// Checks the frame header at the start of `buf` without consuming
    /// anything: `Ok(None)` if the header is incomplete.
    ///
    /// Every check that the first two bytes allow is made before waiting for
    /// the extended length or the mask key.
    fn check_header(&self, buf: &[u8]) -> Result<Option<Header>, FrameError> {
        let [byte0, byte1, ..] = *buf else {
            return Ok(None);
        };
        if byte0 & RSV & !self.allowed_rsv != 0 {
            return Err(FrameError::ReservedBits { bits: byte0 & RSV });
        }
        let opcode = Opcode::from_u8(byte0 & OPCODE).ok_or(FrameError::ReservedOpcode {
            opcode: byte0 & OPCODE,
        })?;
        if byte1 & MASK == 0 {
            return Err(FrameError::Unmasked);
        }
        let fin = byte0 & FIN != 0;
        let len7 = byte1 & LEN7;
        if opcode.is_control() {
            if !fin {
                return Err(FrameError::FragmentedControl { opcode });
            }
            if usize::from(len7) > MAX_CONTROL_PAYLOAD {
                return Err(FrameError::ControlTooLong {
                    opcode,
                    len: u64::from(len7),
                });
            }
        } else if opcode == Opcode::Continuation {
            if self.partial.is_none() {
                return Err(FrameError::UnexpectedContinuation);
            }
        } else if self.partial.is_some() {
            return Err(FrameError::ExpectedContinuation { opcode });
        }

        let (payload_len, ext_len) = match len7 {
            LEN16_MARKER => match buf.get(2..4) {
                Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 2),
                _ => return Ok(None),
            },
            LEN64_MARKER => match buf.get(2..10) {
                Some(bytes) => {
                    let mut be = [0; 8];
                    be.copy_from_slice(bytes);
                    let len = u64::from_be_bytes(be);
                    if len >> 63 != 0 {
                        return Err(FrameError::LengthOverflow);
                    }
                    (len, 8)
                }
                None => return Ok(None),
            },
            short => (u64::from(short), 0),
        };
        if !opcode.is_control() {
            let so_far = self.partial.as_ref().map_or(0, |p| p.payload.len());
            // Cannot overflow: `payload_len` < 2^63 and `so_far` is bounded
            // by `max_message_size`.
            let size = so_far as u64 + payload_len;
            if size > self.max_message_size as u64 {
                return Err(FrameError::MessageTooBig {
                    size,
                    max: self.max_message_size,
                });
            }
        }
        let mask_at = 2 + ext_len;
        let Some(&[m0, m1, m2, m3]) = buf.get(mask_at..mask_at + 4) else {
            return Ok(None);
        };
        Ok(Some(Header {
            byte0,
            opcode,
            fin,
            len: mask_at + 4,
            mask: [m0, m1, m2, m3],
            // Fits: it is at most `max_message_size` or `MAX_CONTROL_PAYLOAD`.
            payload_len: payload_len as usize,
        }))
    }
}

/// XORs `payload` with the repeated 4-byte `mask`, starting at mask byte 0
/// (RFC 6455 §5.3), eight bytes at a time.
fn apply_mask(payload: &mut [u8], mask: [u8; 4]) {
    let [m0, m1, m2, m3] = mask;
    let mask64 = u64::from_ne_bytes([m0, m1, m2, m3, m0, m1, m2, m3]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ mask64).to_ne_bytes());
    }
    // Eight is a multiple of four, so the tail starts at mask byte 0 again.
    for (byte, m) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= m;
    }
}

/// Writes byte 0, the length fields and the MASK bit of a frame header.
fn write_header(out: &mut Vec<u8>, fin: bool, opcode: Opcode, masked: bool, len: usize) {
    let byte0 = if fin { FIN } else { 0 } | opcode.as_u8();
    let mask_bit = if masked { MASK } else { 0 };
    out.push(byte0);
    if len < usize::from(LEN16_MARKER) {
        // Fits in seven bits.
        out.push(mask_bit | len as u8);
    } else if let Ok(len16) = u16::try_from(len) {
        out.push(mask_bit | LEN16_MARKER);
        out.extend_from_slice(&len16.to_be_bytes());
    } else {
        out.push(mask_bit | LEN64_MARKER);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Appends one unmasked (server to client) frame to `out`, using the
/// shortest length encoding.
///
/// No check is made here: a handler that sends a fragmented or over-long
/// control frame gets exactly those bytes on the wire.
pub fn write_frame(out: &mut Vec<u8>, fin: bool, opcode: Opcode, payload: &[u8]) {
    out.reserve(10 + payload.len());
    write_header(out, fin, opcode, false, payload.len());
    out.extend_from_slice(payload);
}

/// One unmasked (server to client) frame with FIN set: a whole message.
pub fn frame(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + payload.len());
    write_frame(&mut out, true, opcode, payload);
    out
}

/// An unmasked close frame carrying `code` and `reason`.
///
/// A control frame's payload is at most [`MAX_CONTROL_PAYLOAD`] bytes, so a
/// reason over 123 bytes is cut at the last character boundary that fits.
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    frame(Opcode::Close, &payload)
}

/// Appends one masked (client to server) frame to `out`, using the shortest
/// length encoding: what a client sends, for tests and fuzzing.
pub fn write_masked_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: Opcode,
    mask: [u8; 4],
    payload: &[u8],
) {
    out.reserve(14 + payload.len());
    write_header(out, fin, opcode, true, payload.len());
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask);
}

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`:
/// base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2).
///
/// The key is used exactly as received (Mongrel2 does not check that it is
/// 16 base64-encoded bytes, and neither does this).
pub fn accept_key(sec_websocket_key: &[u8]) -> String {
    use base64::Engine as _;
    let mut sha1 = Sha1::new();
    sha1.update(sec_websocket_key);
    sha1.update(ACCEPT_GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reads every message from `wire` given in one piece; panics on error
    /// or leftover bytes.
    fn read_whole(reader: &mut FrameReader, wire: &[u8]) -> Vec<Message> {
        let mut buf = BytesMut::from(wire);
        let mut out = Vec::new();
        while let Some(msg) = reader.read(&mut buf).expect("valid frames") {
            out.push(msg);
        }
        assert!(buf.is_empty(), "leftover bytes: {buf:?}");
        out
    }

    /// Reads `wire` delivered in pieces ending at each of `cuts` (and the
    /// end), calling `read` until `Ok(None)` after each piece.
    fn read_pieces(
        reader: &mut FrameReader,
        wire: &[u8],
        cuts: &[usize],
    ) -> Result<Vec<Message>, FrameError> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut start = 0;
        for &end in cuts.iter().chain(std::iter::once(&wire.len())) {
            buf.extend_from_slice(&wire[start..end]);
            start = end;
            while let Some(msg) = reader.read(&mut buf)? {
                out.push(msg);
            }
        }
        assert!(buf.is_empty(), "leftover bytes: {buf:?}");
        Ok(out)
    }

    /// Checks that `wire` yields `expected` whole, one byte at a time, and
    /// split in two at every byte.
    fn assert_reads_at_every_split(max: usize, wire: &[u8], expected: &[Message]) {
        assert_eq!(read_whole(&mut FrameReader::new(max), wire), expected);
        let bytewise: Vec<usize> = (1..wire.len()).collect();
        assert_eq!(
            read_pieces(&mut FrameReader::new(max), wire, &bytewise).unwrap(),
            expected,
            "one byte at a time"
        );
        for at in 0..=wire.len() {
            assert_eq!(
                read_pieces(&mut FrameReader::new(max), wire, &[at]).unwrap(),
                expected,
                "split at {at}"
            );
        }
    }

    /// Checks that `wire` fails with `expected` whole and at every split,
    /// and that the failing frame's bytes are never consumed.
    fn assert_fails_at_every_split(
        reader: impl Fn() -> FrameReader,
        wire: &[u8],
        expected: FrameError,
    ) {
        for at in 0..=wire.len() {
            let mut reader = reader();
            let mut buf = BytesMut::new();
            let mut result = Ok(None);
            for piece in [&wire[..at], &wire[at..]] {
                buf.extend_from_slice(piece);
                result = reader.read(&mut buf);
                while let Ok(Some(_)) = result {
                    result = reader.read(&mut buf);
                }
                if result.is_err() {
                    break;
                }
            }
            assert_eq!(result, Err(expected.clone()), "split at {at}");
            // Nothing of the offending frame was consumed: reading again
            // fails the same way and leaves the buffer alone.
            let left = buf.len();
            assert_eq!(reader.read(&mut buf), Err(expected.clone()));
            assert_eq!(buf.len(), left);
            assert!(left >= 2, "split at {at}: the bad header is still there");
        }
    }

    fn msg(opcode: Opcode, flags: u8, payload: &[u8]) -> Message {
        Message {
            opcode,
            flags,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn masked(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_masked_frame(&mut out, fin, opcode, [0x37, 0xfa, 0x21, 0x3d], payload);
        out
    }

    // RFC 6455 §5.7 examples.

    #[test]
    fn rfc_unmasked_hello_is_rejected() {
        let wire = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        assert_fails_at_every_split(FrameReader::default, &wire, FrameError::Unmasked);
    }

    #[test]
    fn rfc_masked_hello() {
        let wire = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let hello = msg(Opcode::Text, 0x81, b"Hello");
        assert_reads_at_every_split(DEFAULT_MAX_MESSAGE_SIZE, &wire, &[hello]);
        assert_eq!(masked(true, Opcode::Text, b"Hello"), wire);
    }

    #[test]
    fn rfc_fragmented_hello() {
        let mut wire = masked(false, Opcode::Text, b"Hel");
        wire.extend(masked(true, Opcode::Continuation, b"lo"));
        // The RFC's unmasked bytes, masked with a zero key.
        let mut rfc = Vec::new();
        write_masked_frame(&mut rfc, false, Opcode::Text, [0; 4], b"Hel");
        write_masked_frame(&mut rfc, true, Opcode::Continuation, [0; 4], b"lo");
        assert_eq!(
            rfc,
            [0x01, 0x83, 0, 0, 0, 0, 0x48, 0x65, 0x6c, 0x80, 0x82, 0, 0, 0, 0, 0x6c, 0x6f]
        );
        let hello = msg(Opcode::Text, 0x81, b"Hello");
        assert_reads_at_every_split(
            DEFAULT_MAX_MESSAGE_SIZE,
            &wire,
            std::slice::from_ref(&hello),
        );
        assert_reads_at_every_split(DEFAULT_MAX_MESSAGE_SIZE, &rfc, &[hello]);
    }

    #[test]
    fn rfc_ping_and_pong() {
        let mut wire = masked(true, Opcode::Ping, b"Hello");
        assert_eq!(&wire[..2], [0x89, 0x85]);
        wire.extend(masked(true, Opcode::Pong, b"Hello"));
        let expected = [
            msg(Opcode::Ping, 0x89, b"Hello"),
            msg(Opcode::Pong, 0x8A, b"Hello"),
        ];
        assert_reads_at_every_split(DEFAULT_MAX_MESSAGE_SIZE, &wire, &expected);
        assert_eq!(expected[1].flags_header(), "0x8A");
    }

    #[test]
    fn rfc_256_bytes_uses_16_bit_length() {
        let payload: Vec<u8> = (0..=255).collect();
        let wire = masked(true, Opcode::Binary, &payload);
        assert_eq!(&wire[..4], [0x82, 0xFE, 0x01, 0x00]);
        assert_eq!(wire.len(), 4 + 4 + 256);
        assert_reads_at_every_split(
            DEFAULT_MAX_MESSAGE_SIZE,
            &wire,
            &[msg(Opcode::Binary, 0x82, &payload)],
        );
        assert_eq!(
            &frame(Opcode::Binary, &payload)[..4],
            [0x82, 0x7E, 0x01, 0x00]
        );
    }

    #[test]
    fn rfc_64_kib_uses_64_bit_length() {
        let payload: Vec<u8> = (0..65536u32).map(|i| (i * 7) as u8).collect();
        let wire = masked(true, Opcode::Binary, &payload);
        assert_eq!(
            &wire[..10],
            [0x82, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]
        );
        let expected = [msg(Opcode::Binary, 0x82, &payload)];
        assert_eq!(read_whole(&mut FrameReader::default(), &wire), expected);
        // Every split inside the header, then a few in the payload.
        for at in (0..=16).chain([1000, 65535, wire.len() - 1]) {
            assert_eq!(
                read_pieces(&mut FrameReader::default(), &wire, &[at]).unwrap(),
                expected
            );
        }
        assert_eq!(
            &frame(Opcode::Binary, &payload)[..10],
            [0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]
        );
    }

    #[test]
    fn rfc_accept_key() {
        // RFC 6455 §1.3 (and §4.2.2's example).
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        // Base64 of a 20-byte digest is always 28 characters.
        assert_eq!(accept_key(b"").len(), 28);
    }

    // Reader behaviour.

    #[test]
    fn incomplete_frame_consumes_nothing() {
        let wire = masked(true, Opcode::Text, b"Hello");
        for at in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..at]);
            assert_eq!(FrameReader::default().read(&mut buf), Ok(None));
            assert_eq!(buf, wire[..at], "split at {at}");
        }
    }

    #[test]
    fn unfragmented_payload_is_not_copied() {
        let wire = masked(true, Opcode::Binary, &[9; 100]);
        let mut buf = BytesMut::from(&wire[..]);
        let start = buf.as_ptr() as usize;
        let msg = FrameReader::default().read(&mut buf).unwrap().unwrap();
        assert_eq!(msg.payload.as_ptr() as usize, start + 6);
        assert_eq!(msg.payload, [9; 100][..]);
    }

    #[test]
    fn control_frames_between_fragments_come_out_at_once() {
        let mut wire = masked(false, Opcode::Binary, b"one ");
        wire.extend(masked(true, Opcode::Ping, b"p"));
        wire.extend(masked(false, Opcode::Continuation, b"two "));
        wire.extend(masked(true, Opcode::Pong, b""));
        wire.extend(masked(true, Opcode::Close, &close_frame(1000, "bye")[2..]));
        wire.extend(masked(true, Opcode::Continuation, b"three"));
        wire.extend(masked(true, Opcode::Text, b"after"));
        let expected = [
            msg(Opcode::Ping, 0x89, b"p"),
            msg(Opcode::Pong, 0x8A, b""),
            msg(Opcode::Close, 0x88, b"\x03\xe8bye"),
            msg(Opcode::Binary, 0x82, b"one two three"),
            msg(Opcode::Text, 0x81, b"after"),
        ];
        assert_reads_at_every_split(DEFAULT_MAX_MESSAGE_SIZE, &wire, &expected);
    }

    #[test]
    fn mid_message_state() {
        let mut reader = FrameReader::default();
        let mut buf = BytesMut::from(&masked(false, Opcode::Text, b"a")[..]);
        assert_eq!(reader.read(&mut buf), Ok(None));
        assert!(buf.is_empty(), "a whole fragment is consumed");
        assert!(reader.is_mid_message());
        buf.extend_from_slice(&masked(true, Opcode::Continuation, b"b"));
        assert_eq!(
            reader.read(&mut buf),
            Ok(Some(msg(Opcode::Text, 0x81, b"ab")))
        );
        assert!(!reader.is_mid_message());
    }

    #[test]
    fn empty_fragments_and_messages() {
        let mut wire = masked(true, Opcode::Text, b"");
        wire.extend(masked(false, Opcode::Binary, b""));
        wire.extend(masked(false, Opcode::Continuation, b""));
        wire.extend(masked(true, Opcode::Continuation, b""));
        let expected = [msg(Opcode::Text, 0x81, b""), msg(Opcode::Binary, 0x82, b"")];
        assert_reads_at_every_split(DEFAULT_MAX_MESSAGE_SIZE, &wire, &expected);
    }

    #[test]
    fn non_minimal_lengths_are_accepted() {
        // "Hi" with a 16-bit and then a 64-bit length, zero mask.
        let wire = [
            0x81, 0xFE, 0, 2, 0, 0, 0, 0, b'H', b'i', //
            0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, b'H', b'i',
        ];
        let expected = [
            msg(Opcode::Text, 0x81, b"Hi"),
            msg(Opcode::Binary, 0x82, b"Hi"),
        ];
        assert_reads_at_every_split(DEFAULT_MAX_MESSAGE_SIZE, &wire, &expected);
    }

    #[test]
    fn max_size_is_inclusive_and_applies_to_data_only() {
        let mut wire = masked(true, Opcode::Text, &[b'x'; 8]);
        wire.extend(masked(false, Opcode::Binary, &[1; 5]));
        wire.extend(masked(true, Opcode::Continuation, &[2; 3]));
        wire.extend(masked(true, Opcode::Ping, &[3; 125]));
        let expected = [
            msg(Opcode::Text, 0x81, &[b'x'; 8]),
            msg(Opcode::Binary, 0x82, &[1, 1, 1, 1, 1, 2, 2, 2]),
            msg(Opcode::Ping, 0x89, &[3; 125]),
        ];
        assert_reads_at_every_split(8, &wire, &expected);
    }

    // Every error.

    #[test]
    fn error_reserved_bits() {
        for rsv in [0x40, 0x20, 0x10, 0x70] {
            let mut wire = masked(true, Opcode::Text, b"x");
            wire[0] |= rsv;
            assert_fails_at_every_split(
                FrameReader::default,
                &wire,
                FrameError::ReservedBits { bits: rsv },
            );
        }
    }

    #[test]
    fn error_reserved_opcodes() {
        for opcode in (3..=7).chain(0xB..=0xF) {
            assert_eq!(Opcode::from_u8(opcode), None);
            let wire = [0x80 | opcode, 0x80, 1, 2, 3, 4];
            assert_fails_at_every_split(
                FrameReader::default,
                &wire,
                FrameError::ReservedOpcode { opcode },
            );
        }
    }

    #[test]
    fn error_unmasked_frames_of_every_kind() {
        for opcode in [
            Opcode::Text,
            Opcode::Binary,
            Opcode::Close,
            Opcode::Ping,
            Opcode::Pong,
        ] {
            let wire = frame(opcode, b"abc");
            assert_fails_at_every_split(FrameReader::default, &wire, FrameError::Unmasked);
        }
    }

    #[test]
    fn error_fragmented_control() {
        for opcode in [Opcode::Close, Opcode::Ping, Opcode::Pong] {
            let wire = masked(false, opcode, b"x");
            assert_fails_at_every_split(
                FrameReader::default,
                &wire,
                FrameError::FragmentedControl { opcode },
            );
        }
    }

    #[test]
    fn error_control_too_long() {
        let wire = masked(true, Opcode::Ping, &[0; 126]);
        assert_fails_at_every_split(
            FrameReader::default,
            &wire,
            FrameError::ControlTooLong {
                opcode: Opcode::Ping,
                len: 126,
            },
        );
        let wire = masked(true, Opcode::Close, &[0; 70000]);
        let err = FrameReader::default()
            .read(&mut BytesMut::from(&wire[..2]))
            .unwrap_err();
        assert_eq!(
            err,
            FrameError::ControlTooLong {
                opcode: Opcode::Close,
                len: 127,
            }
        );
    }

    #[test]
    fn error_unexpected_continuation() {
        let wire = masked(true, Opcode::Continuation, b"x");
        assert_fails_at_every_split(
            FrameReader::default,
            &wire,
            FrameError::UnexpectedContinuation,
        );
        // Also right after a finished fragmented message.
        let mut wire = masked(false, Opcode::Text, b"a");
        wire.extend(masked(true, Opcode::Continuation, b"b"));
        wire.extend(masked(false, Opcode::Continuation, b"c"));
        assert_fails_at_every_split(
            FrameReader::default,
            &wire,
            FrameError::UnexpectedContinuation,
        );
    }

    #[test]
    fn error_expected_continuation() {
        for opcode in [Opcode::Text, Opcode::Binary] {
            let mut wire = masked(false, Opcode::Text, b"a");
            wire.extend(masked(true, Opcode::Ping, b""));
            wire.extend(masked(true, opcode, b"b"));
            assert_fails_at_every_split(
                FrameReader::default,
                &wire,
                FrameError::ExpectedContinuation { opcode },
            );
        }
    }

    #[test]
    fn error_length_overflow() {
        let wire = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_fails_at_every_split(
            || FrameReader::new(usize::MAX),
            &wire,
            FrameError::LengthOverflow,
        );
        // The largest legal length is only too big.
        let wire = [0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        let err = FrameReader::default()
            .read(&mut BytesMut::from(&wire[..]))
            .unwrap_err();
        assert_eq!(err.close_code(), 1009);
    }

    #[test]
    fn error_message_too_big_from_the_header_alone() {
        // Only the header of a 1 MiB frame: rejected before any payload.
        let wire = masked(true, Opcode::Binary, &vec![0; 1 << 20]);
        let header = &wire[..2 + 8];
        let err = FrameReader::new(1000)
            .read(&mut BytesMut::from(header))
            .unwrap_err();
        assert_eq!(
            err,
            FrameError::MessageTooBig {
                size: 1 << 20,
                max: 1000
            }
        );
        assert_eq!(err.close_code(), 1009);

        let wire = masked(true, Opcode::Text, &[0; 9]);
        assert_fails_at_every_split(
            || FrameReader::new(8),
            &wire,
            FrameError::MessageTooBig { size: 9, max: 8 },
        );
    }

    #[test]
    fn error_message_too_big_summed_over_fragments() {
        let mut wire = masked(false, Opcode::Text, &[0; 5]);
        wire.extend(masked(false, Opcode::Continuation, &[0; 3]));
        wire.extend(masked(true, Opcode::Continuation, &[0; 1]));
        assert_fails_at_every_split(
            || FrameReader::new(8),
            &wire,
            FrameError::MessageTooBig { size: 9, max: 8 },
        );
    }

    #[test]
    fn negotiated_reserved_bits_pass_and_others_do_not() {
        let mut wire = BytesMut::new();
        let mut frame = Vec::new();
        write_masked_frame(&mut frame, true, Opcode::Text, [9, 8, 7, 6], b"zz");
        frame[0] |= 0x40;
        wire.extend_from_slice(&frame);
        let mut reader = FrameReader::new(64).allow_reserved_bits(0x40);
        let message = reader.read(&mut wire).unwrap().unwrap();
        assert_eq!(message.flags, 0xC1);
        assert_eq!(message.flags_header(), "0xC1");
        assert_eq!(&message.payload[..], b"zz");
        // RSV2 was not negotiated.
        frame[0] = 0xA1;
        wire.extend_from_slice(&frame);
        assert_eq!(
            reader.read(&mut wire),
            Err(FrameError::ReservedBits { bits: 0x20 })
        );
    }

    #[test]
    fn close_codes() {
        let protocol_errors = [
            FrameError::Unmasked,
            FrameError::ReservedBits { bits: 0x40 },
            FrameError::ReservedOpcode { opcode: 3 },
            FrameError::FragmentedControl {
                opcode: Opcode::Ping,
            },
            FrameError::ControlTooLong {
                opcode: Opcode::Ping,
                len: 126,
            },
            FrameError::UnexpectedContinuation,
            FrameError::ExpectedContinuation {
                opcode: Opcode::Text,
            },
            FrameError::LengthOverflow,
        ];
        for err in protocol_errors {
            assert_eq!(err.close_code(), 1002, "{err}");
        }
    }

    // FLAGS, builders.

    #[test]
    fn flags_header_values() {
        let cases = [
            (Opcode::Text, "0x81"),
            (Opcode::Binary, "0x82"),
            (Opcode::Close, "0x88"),
            (Opcode::Ping, "0x89"),
            (Opcode::Pong, "0x8A"),
        ];
        for (opcode, flags) in cases {
            let wire = masked(true, opcode, b"");
            let msg = FrameReader::default()
                .read(&mut BytesMut::from(&wire[..]))
                .unwrap()
                .unwrap();
            assert_eq!(msg.flags_header(), flags);
        }
        // A fragmented message takes its first frame's byte 0, FIN forced.
        let mut wire = masked(false, Opcode::Binary, b"a");
        wire.extend(masked(true, Opcode::Continuation, b"b"));
        let msg = read_whole(&mut FrameReader::default(), &wire).remove(0);
        assert_eq!(msg.flags_header(), "0x82");
    }

    #[test]
    fn opcode_values() {
        for value in 0..=0xFF {
            if let Some(opcode) = Opcode::from_u8(value) {
                assert_eq!(opcode.as_u8(), value);
                assert_eq!(opcode.is_control(), value >= 8);
            }
        }
    }

    #[test]
    fn server_frames() {
        assert_eq!(frame(Opcode::Text, b"Hello"), b"\x81\x05Hello");
        assert_eq!(frame(Opcode::Ping, b""), [0x89, 0x00]);
        let mut out = Vec::new();
        write_frame(&mut out, false, Opcode::Text, b"Hel");
        write_frame(&mut out, true, Opcode::Continuation, b"lo");
        assert_eq!(out, b"\x01\x03Hel\x80\x02lo");
        assert_eq!(frame(Opcode::Binary, &[0; 125])[..2], [0x82, 125]);
        assert_eq!(frame(Opcode::Binary, &[0; 126])[..4], [0x82, 126, 0, 126]);
        assert_eq!(
            frame(Opcode::Binary, &[0; 65535])[..4],
            [0x82, 126, 0xFF, 0xFF]
        );
    }

    #[test]
    fn close_frames() {
        assert_eq!(close_frame(1000, ""), [0x88, 0x02, 0x03, 0xE8]);
        assert_eq!(close_frame(1001, "bye"), b"\x88\x05\x03\xE9bye");
        // 122 ASCII bytes then a 2-byte character: the character is cut.
        let reason = format!("{}é", "a".repeat(122));
        let close = close_frame(1009, &reason);
        assert_eq!(close[1], 2 + 122);
        assert_eq!(&close[4..], "a".repeat(122).as_bytes());
        let close = close_frame(1009, &"b".repeat(500));
        assert_eq!(close.len(), 2 + 125);
    }

    #[test]
    fn mask_matches_bytewise_xor() {
        let mask = [1, 2, 3, 4];
        for len in 0..40 {
            let mut payload: Vec<u8> = (0..len as u8).collect();
            apply_mask(&mut payload, mask);
            let naive: Vec<u8> = (0..len as u8)
                .map(|i| i ^ mask[usize::from(i) % 4])
                .collect();
            assert_eq!(payload, naive, "length {len}");
        }
    }

    /// One thing a client sends: a control frame, or a data message cut
    /// into fragments with control frames between them.
    #[derive(Debug, Clone)]
    enum Sent {
        Control(Opcode, Vec<u8>, [u8; 4]),
        Data {
            opcode: Opcode,
            payload: Vec<u8>,
            cuts: Vec<usize>,
            masks: Vec<[u8; 4]>,
            between: Vec<(usize, Opcode, Vec<u8>)>,
        },
    }

    fn control() -> impl Strategy<Value = (Opcode, Vec<u8>)> {
        (
            prop_oneof![Just(Opcode::Close), Just(Opcode::Ping), Just(Opcode::Pong)],
            proptest::collection::vec(any::<u8>(), 0..=125),
        )
    }

    fn sent() -> impl Strategy<Value = Sent> {
        let data = (
            prop_oneof![Just(Opcode::Text), Just(Opcode::Binary)],
            proptest::collection::vec(any::<u8>(), 0..600),
            proptest::collection::vec(any::<usize>(), 0..5),
            proptest::collection::vec(any::<[u8; 4]>(), 6),
            proptest::collection::vec((any::<usize>(), control()), 0..3),
        )
            .prop_map(|(opcode, payload, mut cuts, masks, between)| {
                for cut in &mut cuts {
                    *cut %= payload.len() + 1;
                }
                cuts.sort_unstable();
                let frames = cuts.len() + 1;
                let between = between
                    .into_iter()
                    .map(|(at, (op, body))| (at % frames, op, body))
                    .collect();
                Sent::Data {
                    opcode,
                    payload,
                    cuts,
                    masks,
                    between,
                }
            });
        prop_oneof![
            (control(), any::<[u8; 4]>())
                .prop_map(|((op, body), mask)| Sent::Control(op, body, mask)),
            data,
        ]
    }

    /// The wire bytes and the messages a reader must yield for them.
    fn encode(all: &[Sent]) -> (Vec<u8>, Vec<Message>) {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for sent in all {
            match sent {
                Sent::Control(opcode, body, mask) => {
                    write_masked_frame(&mut wire, true, *opcode, *mask, body);
                    expected.push(msg(*opcode, 0x80 | opcode.as_u8(), body));
                }
                Sent::Data {
                    opcode,
                    payload,
                    cuts,
                    masks,
                    between,
                } => {
                    let bounds: Vec<usize> = std::iter::once(0)
                        .chain(cuts.iter().copied())
                        .chain(std::iter::once(payload.len()))
                        .collect();
                    let last = bounds.len() - 2;
                    for (i, pair) in bounds.windows(2).enumerate() {
                        let op = if i == 0 {
                            *opcode
                        } else {
                            Opcode::Continuation
                        };
                        let piece = &payload[pair[0]..pair[1]];
                        write_masked_frame(&mut wire, i == last, op, masks[i % masks.len()], piece);
                        if i < last {
                            for (_, cop, body) in between.iter().filter(|b| b.0 == i) {
                                write_masked_frame(&mut wire, true, *cop, masks[0], body);
                                expected.push(msg(*cop, 0x80 | cop.as_u8(), body));
                            }
                        }
                    }
                    expected.push(msg(*opcode, 0x80 | opcode.as_u8(), payload));
                }
            }
        }
        (wire, expected)
    }

    proptest! {
        #[test]
        fn masked_messages_read_back_equal(
            all in proptest::collection::vec(sent(), 0..6),
            splits in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let (wire, expected) = encode(&all);
            prop_assert_eq!(&read_whole(&mut FrameReader::default(), &wire), &expected);
            let mut cuts: Vec<usize> = splits.iter().map(|s| s % (wire.len() + 1)).collect();
            cuts.sort_unstable();
            prop_assert_eq!(
                read_pieces(&mut FrameReader::default(), &wire, &cuts).unwrap(),
                expected
            );
        }

        #[test]
        fn server_frames_read_back_once_masked(
            opcode in prop_oneof![Just(Opcode::Text), Just(Opcode::Binary)],
            payload in proptest::collection::vec(any::<u8>(), 0..70000),
            mask in any::<[u8; 4]>(),
        ) {
            // Same header as the masked writer, less the MASK bit and key.
            let server = frame(opcode, &payload);
            let mut client = Vec::new();
            write_masked_frame(&mut client, true, opcode, mask, &payload);
            let header = server.len() - payload.len();
            prop_assert_eq!(server[0], client[0]);
            prop_assert_eq!(server[1] | MASK, client[1]);
            prop_assert_eq!(&server[2..header], &client[2..header]);
            let read = read_whole(&mut FrameReader::default(), &client);
            prop_assert_eq!(&read[0].payload[..], &payload[..]);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            at in any::<usize>(),
        ) {
            let at = at % (bytes.len() + 1);
            let mut reader = FrameReader::new(64);
            let mut buf = BytesMut::from(&bytes[..at]);
            for piece in [&bytes[at..], &[][..]] {
                loop {
                    match reader.read(&mut buf) {
                        Ok(Some(msg)) => {
                            prop_assert!(msg.opcode != Opcode::Continuation);
                            prop_assert!(msg.flags & FIN != 0);
                            let limit = if msg.opcode.is_control() { 125 } else { 64 };
                            prop_assert!(msg.payload.len() <= limit);
                        }
                        Ok(None) => break,
                        Err(_) => return Ok(()),
                    }
                }
                buf.extend_from_slice(piece);
            }
        }
    }
}
