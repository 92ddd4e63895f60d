//! The client side of a WebSocket, as much as the tools need: the upgrade
//! request, the check of the server's `101` ([`handshake_len`], then
//! [`handshake`] which feeds it from a socket), the reader of server frames
//! ([`server_frame`], no I/O) and one echo exchange ([`Echo`]).
//!
//! Client frames are built with `kennel_handler::websocket::write_masked_frame`
//! (the same code the server's tests use). Server frames are unmasked, as
//! RFC 6455 §5.1 requires; one with the MASK bit set is an error here, as
//! is a fragmented one (the bench handler sends every message whole).
//!
//! Works against Kennel and Mongrel2 alike: both hand the upgrade to the
//! handler, which sends the `101` (PROTOCOL.md §1.7).

use std::io;

use kennel_handler::websocket::{accept_key, write_masked_frame, Opcode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::response::parse_head;

/// The `Sec-WebSocket-Key` every connection sends: RFC 6455's own example
/// nonce. The servers do not care that it repeats, and a fixed key makes
/// the expected accept value a constant.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The most header lines a `101` may have.
const MAX_HEADERS: usize = 32;

/// The largest `101` head [`handshake`] buffers: 16 KiB.
const MAX_HEAD: usize = 16 * 1024;

/// Why a handshake or a server frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    /// The response head is not valid HTTP/1.x.
    #[error("{0} (answering the upgrade)")]
    Head(String),
    /// The server answered something other than `101`.
    #[error("the handshake was answered {0}, not 101")]
    Status(u16),
    /// The `101` carries no `Sec-WebSocket-Accept`, or the wrong one.
    #[error("the 101's Sec-WebSocket-Accept is {got:?}, expected {want:?}")]
    Accept {
        /// What the server sent (empty when absent).
        got: String,
        /// What the key gives.
        want: String,
    },
    /// The `101` head is over [`MAX_HEAD`] bytes.
    #[error("the handshake response is over {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// A server frame with the MASK bit set.
    #[error("the server sent a masked frame")]
    Masked,
    /// A server frame without FIN, or a continuation.
    #[error(
        "the server sent a fragment (byte 0 {0:#04x}); the bench handler sends whole messages"
    )]
    Fragment(u8),
    /// A frame longer than the reader's buffer.
    #[error("a server frame of {0} bytes is over the {1}-byte buffer")]
    FrameTooLarge(u64, usize),
    /// The frame is not the echo of what was sent.
    #[error("expected the echo {want:?}, got byte 0 {byte0:#04x} and {got:?}")]
    WrongEcho {
        /// Byte 0 of the frame received.
        byte0: u8,
        /// Its payload (at most 80 bytes of it).
        got: String,
        /// The payload sent.
        want: String,
    },
}

impl From<WsError> for io::Error {
    fn from(e: WsError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// The upgrade request for `path` on `host`, with [`KEY`].
pub fn upgrade_request(path: &str, host: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Checks the server's answer to an upgrade request at the front of `buf`:
/// `Ok(None)` when the head is incomplete, else its length. The answer must
/// be `101` with the `Sec-WebSocket-Accept` that `accept` is.
pub fn handshake_len(buf: &[u8], accept: &str) -> Result<Option<usize>, WsError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let parsed = parse_head(buf, &mut headers).map_err(|e| WsError::Head(e.to_string()))?;
    let Some((len, response)) = parsed else {
        return Ok(None);
    };
    let status = response.code.unwrap_or(0);
    if status != 101 {
        return Err(WsError::Status(status));
    }
    let got = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
        .unwrap_or_default();
    if got != accept {
        return Err(WsError::Accept {
            got,
            want: accept.to_owned(),
        });
    }
    Ok(Some(len))
}

/// Sends the upgrade request for `path` on `host` and reads the `101`.
/// Bytes read past it (frames the server sent at once) stay in `buf`.
pub async fn handshake(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    path: &str,
    host: &str,
) -> io::Result<()> {
    stream.write_all(&upgrade_request(path, host)).await?;
    let accept = accept_key(KEY.as_bytes());
    loop {
        if let Some(len) = handshake_len(buf, &accept)? {
            buf.drain(..len);
            return Ok(());
        }
        if buf.len() > MAX_HEAD {
            return Err(WsError::HeadTooLarge.into());
        }
        buf.reserve(1024);
        if stream.read_buf(buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection before answering the upgrade",
            ));
        }
    }
}

/// A whole server frame at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerFrame {
    /// Byte 0 (FIN and the opcode).
    pub byte0: u8,
    /// Where the payload starts.
    pub header_len: usize,
    /// The payload's length.
    pub payload_len: usize,
}

impl ServerFrame {
    /// The frame's length, header and payload.
    pub fn len(&self) -> usize {
        self.header_len + self.payload_len
    }

    /// Whether the frame has no bytes (never: a header is at least two).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Finds the first whole server frame in `buf`: `Ok(None)` when more bytes
/// are needed. Frames longer than `max` bytes, masked frames and fragments
/// are errors.
pub fn server_frame(buf: &[u8], max: usize) -> Result<Option<ServerFrame>, WsError> {
    let [byte0, byte1, ..] = *buf else {
        return Ok(None);
    };
    if byte1 & 0x80 != 0 {
        return Err(WsError::Masked);
    }
    if byte0 & 0x80 == 0 || byte0 & 0x0F == 0 {
        return Err(WsError::Fragment(byte0));
    }
    let (payload_len, header_len) = match byte1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 4),
            _ => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(bytes) => {
                let mut be = [0; 8];
                be.copy_from_slice(bytes);
                (u64::from_be_bytes(be), 10)
            }
            None => return Ok(None),
        },
        short => (u64::from(short), 2),
    };
    if payload_len > (max - header_len.min(max)) as u64 {
        return Err(WsError::FrameTooLarge(payload_len, max));
    }
    // Fits: it is under `max`.
    let payload_len = payload_len as usize;
    Ok(
        (buf.len() >= header_len + payload_len).then_some(ServerFrame {
            byte0,
            header_len,
            payload_len,
        }),
    )
}

/// One connection's echo exchanges: a text frame out, its echo back. Owns
/// the connection, the frame being sent and the read buffer, all sized once,
/// so an exchange allocates nothing.
#[derive(Debug)]
pub struct Echo {
    /// The upgraded connection.
    pub stream: TcpStream,
    /// The payload of the next message (its last 16 bytes are the counter).
    payload: Vec<u8>,
    /// The masked frame being sent.
    out: Vec<u8>,
    /// What has been read and not consumed.
    buf: Vec<u8>,
    /// How much of `buf` is filled.
    filled: usize,
    /// Messages sent so far; goes into each payload.
    sent: u64,
}

/// The fewest payload bytes: `ws ` and a 16-digit hex counter.
pub const MIN_PAYLOAD: usize = 19;

/// The read buffer of an [`Echo`]: 4 KiB, room for any echo of a payload up
/// to [`MAX_PAYLOAD`] bytes.
const READ_BUFFER: usize = 4096;

/// The most payload bytes an [`Echo`] sends: 4,000 (a "small" message; the
/// echo must fit the read buffer).
pub const MAX_PAYLOAD: usize = 4000;

impl Echo {
    /// Exchanges on `stream` (already upgraded; `leftover` is what was read
    /// past the `101`), with payloads of `payload_len` bytes
    /// ([`MIN_PAYLOAD`]..=[`MAX_PAYLOAD`]) whose counters start at `first`.
    pub fn new(stream: TcpStream, leftover: &[u8], payload_len: usize, first: u64) -> Echo {
        let payload_len = payload_len.clamp(MIN_PAYLOAD, MAX_PAYLOAD);
        let mut payload = vec![b'.'; payload_len];
        payload[..3].copy_from_slice(b"ws ");
        let mut buf = vec![0; READ_BUFFER.max(leftover.len())];
        buf[..leftover.len()].copy_from_slice(leftover);
        Echo {
            stream,
            payload,
            out: Vec::with_capacity(payload_len + 14),
            buf,
            filled: leftover.len(),
            sent: first,
        }
    }

    /// The connection, without the buffers (for holding it idle).
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// Sends the next message and waits for its echo, checking every byte.
    pub async fn exchange(&mut self) -> io::Result<()> {
        write_counter(&mut self.payload[3..MIN_PAYLOAD], self.sent);
        // The counter varies the mask too; any mask is valid.
        let mask = (self.sent as u32 ^ 0x5A3C_96E1).to_be_bytes();
        self.sent += 1;
        self.out.clear();
        write_masked_frame(&mut self.out, true, Opcode::Text, mask, &self.payload);
        self.stream.write_all(&self.out).await?;
        let frame = loop {
            if let Some(frame) = server_frame(&self.buf[..self.filled], self.buf.len())? {
                break frame;
            }
            let n = self.stream.read(&mut self.buf[self.filled..]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection before the echo",
                ));
            }
            self.filled += n;
        };
        let payload = &self.buf[frame.header_len..frame.len()];
        if frame.byte0 != 0x81 || payload != &self.payload[..] {
            return Err(WsError::WrongEcho {
                byte0: frame.byte0,
                got: String::from_utf8_lossy(&payload[..payload.len().min(80)]).into_owned(),
                want: String::from_utf8_lossy(&self.payload).into_owned(),
            }
            .into());
        }
        self.buf.copy_within(frame.len()..self.filled, 0);
        self.filled -= frame.len();
        Ok(())
    }
}

/// Writes `n` as hex digits filling `out` (most significant first).
fn write_counter(out: &mut [u8], mut n: u64) {
    for digit in out.iter_mut().rev() {
        *digit = b"0123456789abcdef"[(n & 0xF) as usize];
        n >>= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kennel_handler::websocket::frame;

    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    #[test]
    fn the_key_gives_rfc_6455s_accept_value() {
        assert_eq!(accept_key(KEY.as_bytes()), ACCEPT);
    }

    #[test]
    fn a_101_with_the_right_accept_is_found_at_every_split() {
        let head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             sec-websocket-accept: {ACCEPT}\r\n\r\n"
        );
        let mut bytes = head.clone().into_bytes();
        for cut in 0..bytes.len() {
            assert_eq!(handshake_len(&bytes[..cut], ACCEPT), Ok(None), "cut {cut}");
        }
        bytes.extend_from_slice(b"\x81\x02hi");
        assert_eq!(handshake_len(&bytes, ACCEPT), Ok(Some(head.len())));
    }

    #[test]
    fn other_answers_to_the_upgrade_are_errors() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(handshake_len(ok, ACCEPT), Err(WsError::Status(200)));
        let wrong = b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: x\r\n\r\n";
        assert!(matches!(
            handshake_len(wrong, ACCEPT),
            Err(WsError::Accept { got, .. }) if got == "x"
        ));
        let none = b"HTTP/1.1 101 Switching Protocols\r\n\r\n";
        assert!(matches!(
            handshake_len(none, ACCEPT),
            Err(WsError::Accept { got, .. }) if got.is_empty()
        ));
    }

    #[test]
    fn server_frames_of_every_length_form_are_found_at_every_split() {
        for len in [0, 5, 125, 126, 300, 65535, 65536] {
            let payload = vec![b'p'; len];
            let mut bytes = frame(Opcode::Text, &payload);
            let header_len = bytes.len() - len;
            for cut in 0..bytes.len() {
                assert_eq!(
                    server_frame(&bytes[..cut], 1 << 20),
                    Ok(None),
                    "{len}, cut {cut}"
                );
            }
            bytes.extend_from_slice(b"\x81\x00");
            assert_eq!(
                server_frame(&bytes, 1 << 20),
                Ok(Some(ServerFrame {
                    byte0: 0x81,
                    header_len,
                    payload_len: len
                }))
            );
        }
    }

    #[test]
    fn masked_fragmented_and_oversized_server_frames_are_errors() {
        let mut masked = Vec::new();
        write_masked_frame(&mut masked, true, Opcode::Text, [1, 2, 3, 4], b"x");
        assert_eq!(server_frame(&masked, 100), Err(WsError::Masked));
        assert_eq!(
            server_frame(b"\x01\x01x", 100),
            Err(WsError::Fragment(0x01))
        );
        assert_eq!(
            server_frame(b"\x80\x01x", 100),
            Err(WsError::Fragment(0x80))
        );
        // Known too large from the header alone.
        assert_eq!(
            server_frame(b"\x81\x7e\x01\x00", 100),
            Err(WsError::FrameTooLarge(256, 100))
        );
        assert_eq!(
            server_frame(&frame(Opcode::Text, &[0; 98]), 100),
            Ok(Some(ServerFrame {
                byte0: 0x81,
                header_len: 2,
                payload_len: 98
            }))
        );
        assert!(server_frame(&frame(Opcode::Text, &[0; 99]), 100).is_err());
    }

    #[test]
    fn counters_are_fixed_width_hex() {
        let mut out = [0; 16];
        write_counter(&mut out, 0x1234_abcd);
        assert_eq!(&out, b"000000001234abcd");
        let mut short = [0; 4];
        write_counter(&mut short, 0x12345);
        assert_eq!(&short, b"2345");
    }
}
