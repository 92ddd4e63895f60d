//! HTTP/1.1 without I/O: the request head parser, the chunked body
//! decoder, conditional requests and byte ranges, response heads, canned
//! responses and the cached `Date` value.
//!
//! This module owns the bytes-to-meaning step of RFC 9112 and Kennel's
//! decisions about it (PROTOCOL.md, first table, and §1.8): which request
//! heads are accepted, how the body is framed, and which status a refused
//! request gets. It does not read or write sockets, route, or decide what
//! to do with a body: the connection task reads into a `BytesMut`, calls
//! [`parse_head`] until it returns a [`Head`], reads the body as
//! [`Head::body`] says (through a [`ChunkedDecoder`] when chunked), and
//! answers refusals with [`canned`]`(err.status(), true)`. Targets that
//! answer requests themselves (the Dir handler, and the proxy to come) take
//! RFC 9110's conditional requests and ranges from here, and write their
//! heads with [`ResponseHead`].
//!
//! Layout:
//! - [`head`]: [`parse_head`] and [`Head`], on top of `httparse`;
//! - [`chunked`]: [`ChunkedDecoder`], on top of `httparse::parse_chunk_size`;
//! - [`conditional`]: [`conditional::evaluate`] (RFC 9110 §13.2.2),
//!   `If-Range`, entity tags and HTTP-dates;
//! - [`range`]: [`range::plan_ranges`] against a size, `Content-Range` and
//!   `multipart/byteranges` text;
//! - [`response`]: [`ResponseHead`] (the one response-head writer), and
//!   [`canned`], [`service_unavailable`], [`CONTINUE`], [`reason`];
//! - [`date`](mod@date): [`date()`], the per-second cached IMF-fixdate.
//!
//! Every refusal here is the client's fault: [`HttpError::status`] is a 4xx
//! (or 501/505 for what the client asked and Kennel does not do), and the
//! caller logs it at debug level.

pub mod chunked;
pub mod conditional;
pub mod date;
pub mod framing;
pub mod head;
pub mod range;
pub mod response;

pub use chunked::{ChunkedDecoder, DEFAULT_MAX_TRAILERS, MAX_CHUNK_SIZE_LINE};
pub use date::date;
pub use head::{parse_head, Head};
pub use response::{canned, reason, service_unavailable, ResponseHead, CONTINUE};

use crate::config::Settings;

/// Default for [`Limits::max_head`] when `limits.buffer_size` is not set:
/// 32 KiB, what nginx accepts in all (`large_client_header_buffers 4 8k`).
/// Mongrel2's 4 KiB default turns away a browser with a few cookies or a
/// request with a bearer token (431); 32 KiB holds those and still keeps
/// a slow client's unparsed bytes small.
pub const DEFAULT_MAX_HEAD: usize = 32 * 1024;

/// Default for [`Limits::max_line`] when `limits.buffer_size` is not set:
/// 8 KiB, what nginx accepts for one line (the request line, or one header
/// line such as a large `Cookie`).
pub const DEFAULT_MAX_LINE: usize = 8 * 1024;

/// Default for [`Limits::max_headers`]: Mongrel2's `limits.header_count`
/// default (1280). Mongrel2 counts distinct names; Kennel counts header
/// lines, which bounds the same memory and is simpler to enforce. With the
/// default `max_head` of 32 KiB a request comes near it only with header
/// lines of some 25 bytes on average.
pub const DEFAULT_MAX_HEADERS: usize = 1280;

/// The request-head limits, taken from the settings
/// ([`Limits::from_settings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The whole head (leading empty lines, request line, header lines and
    /// the final empty line) must fit in this many bytes, else 431 (414 if
    /// not even the request line is complete within it): `limits.buffer_size`
    /// when set, else [`DEFAULT_MAX_HEAD`] (32 KiB). Values above `u32::MAX`
    /// are treated as `u32::MAX` (offsets are stored as `u32`).
    pub max_head: usize,
    /// No line of the head, its line end included, may be longer: a request
    /// line longer than this is 414, a header line 431 (both refused as
    /// soon as the line is too long, without waiting for its end).
    /// `limits.buffer_size` when set (Mongrel2's one buffer bounds both),
    /// else [`DEFAULT_MAX_LINE`] (8 KiB).
    pub max_line: usize,
    /// `limits.header_count`, default [`DEFAULT_MAX_HEADERS`] (1280): the
    /// most header lines a head may have, else 431.
    pub max_headers: usize,
    /// `request.relaxed`, default `false`: when `true`, every byte `httparse`
    /// accepts is allowed in the request-target (visible ASCII and UTF-8).
    /// When `false`, as in Mongrel2, only RFC 3986's characters are: `{ } ^`
    /// and also `" < > \ | ` and non-ASCII bytes are refused, and every `%`
    /// must start a `%XX` escape.
    pub relaxed_uri: bool,
}

impl Default for Limits {
    /// The limits of a config without any of their settings.
    fn default() -> Self {
        Self {
            max_head: DEFAULT_MAX_HEAD,
            max_line: DEFAULT_MAX_LINE,
            max_headers: DEFAULT_MAX_HEADERS,
            relaxed_uri: false,
        }
    }
}

impl Limits {
    /// The limits a server's settings give: `limits.buffer_size` (when set,
    /// it bounds both the head and each line, as in Mongrel2; when absent,
    /// [`DEFAULT_MAX_HEAD`] and [`DEFAULT_MAX_LINE`]), `limits.header_count`
    /// and `request.relaxed`.
    pub fn from_settings(settings: &Settings) -> Limits {
        let (max_head, max_line) = match settings.limits_buffer_size {
            Some(size) => (size, size),
            None => (DEFAULT_MAX_HEAD, DEFAULT_MAX_LINE),
        };
        Limits {
            max_head,
            max_line,
            max_headers: settings.limits_header_count,
            relaxed_uri: settings.request_relaxed,
        }
    }
}

/// The HTTP versions Kennel speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`
    Http10,
    /// `HTTP/1.1`
    Http11,
}

impl Version {
    /// The version as written on the wire (`HTTP/1.0`), also Mongrel2's
    /// `VERSION` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the request body is framed (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No `Content-Length` and no `Transfer-Encoding`: no body.
    None,
    /// `Content-Length: n` (may be 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`: read it with a [`ChunkedDecoder`].
    Chunked,
}

/// Why a request is refused. The client is always at fault here; the
/// status says how ([`HttpError::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The head did not fit in `max_head` bytes (431).
    #[error("request head larger than {limit} bytes")]
    HeadTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// The request line is longer than `max_line`, or no complete request
    /// line fits in `max_head` (414: the request-target is too long).
    #[error("request line longer than {limit} bytes")]
    UriTooLong {
        /// The limit in force (`max_line`, or `max_head`).
        limit: usize,
    },
    /// A header line is longer than `max_line` (431).
    #[error("header line longer than {limit} bytes")]
    HeaderLineTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// More header lines than `max_headers` (431).
    #[error("more than {limit} header lines")]
    TooManyHeaders {
        /// The limit in force.
        limit: usize,
    },
    /// The method is not an RFC 9110 token (400).
    #[error("invalid request method")]
    InvalidMethod,
    /// The request-target is malformed or not allowed (400).
    #[error("invalid request target: {0}")]
    InvalidTarget(&'static str),
    /// The version is not `HTTP/<digit>.<digit>` (400).
    #[error("malformed HTTP version")]
    InvalidVersion,
    /// A well-formed version other than 1.0 or 1.1, including the HTTP/2
    /// preface `PRI * HTTP/2.0` (505).
    #[error("unsupported HTTP version")]
    UnsupportedVersion,
    /// A line does not end in CRLF or LF, or the request line has extra
    /// bytes after the version (400).
    #[error("malformed line ending")]
    InvalidLineEnding,
    /// A header name is empty or not a token, or a header line has no colon
    /// (400).
    #[error("invalid header name")]
    InvalidHeaderName,
    /// A control byte (other than HTAB) in a header value (400).
    #[error("control byte in a header value")]
    InvalidHeaderValue,
    /// A header line starting with SP or HTAB: obsolete line folding (400).
    #[error("obsolete line folding")]
    ObsFold,
    /// An HTTP/1.1 request without `Host` (400, RFC 9112 §3.2).
    #[error("HTTP/1.1 request without Host")]
    MissingHost,
    /// More than one `Host` line (400, RFC 9112 §3.2).
    #[error("more than one Host header")]
    DuplicateHost,
    /// A `Host` value that is not `host[:port]` (400, RFC 9112 §3.2).
    #[error("invalid Host header")]
    InvalidHost,
    /// A `Content-Length` that is not a plain decimal `u64` (400).
    #[error("invalid Content-Length")]
    InvalidContentLength,
    /// `Content-Length` values that differ (400).
    #[error("conflicting Content-Length values")]
    ConflictingContentLength,
    /// Both `Content-Length` and `Transfer-Encoding` (400: a smuggling
    /// vector, RFC 9112 §6.3).
    #[error("both Content-Length and Transfer-Encoding")]
    LengthWithTransferEncoding,
    /// `Transfer-Encoding` in an HTTP/1.0 request (400, RFC 9112 §6.1).
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    TransferEncodingInHttp10,
    /// `chunked` is missing, not the final coding, or applied twice; or the
    /// list is empty (400, RFC 9112 §6.3).
    #[error("chunked is not the final transfer coding")]
    ChunkedNotFinal,
    /// A transfer coding other than `chunked` (gzip, deflate, ...) before
    /// the final `chunked` (501, RFC 9112 §6.1).
    #[error("unsupported transfer coding")]
    UnsupportedTransferCoding,
    /// An `Expect` other than `100-continue` (417).
    #[error("unsupported expectation")]
    UnsupportedExpectation,
    /// A chunk-size line that is not hex digits (at most 16) plus optional
    /// extensions (400).
    #[error("invalid chunk size")]
    InvalidChunkSize,
    /// A chunk-size line longer than [`MAX_CHUNK_SIZE_LINE`] (400).
    #[error("chunk size line longer than {limit} bytes")]
    ChunkSizeLineTooLong {
        /// The limit in force.
        limit: usize,
    },
    /// Chunk data not followed by CRLF, a bare LF included (400).
    #[error("chunk data not followed by CRLF")]
    MissingChunkTerminator,
    /// A chunk-size line, trailer line or the last line of a chunked body
    /// ends in a bare LF, not CRLF (400): refused so that no request can
    /// hide inside a body that another parser frames differently.
    #[error("line of a chunked body not ended by CRLF")]
    ChunkedLineEnding,
    /// The trailer section is larger than the decoder's limit (431).
    #[error("trailer section larger than {limit} bytes")]
    TrailersTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// The decoded body is larger than `max_body` (413).
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in force.
        limit: u64,
    },
}

impl HttpError {
    /// The response status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge { .. }
            | HttpError::HeaderLineTooLarge { .. }
            | HttpError::TooManyHeaders { .. }
            | HttpError::TrailersTooLarge { .. } => 431,
            HttpError::UriTooLong { .. } => 414,
            HttpError::BodyTooLarge { .. } => 413,
            HttpError::UnsupportedExpectation => 417,
            HttpError::UnsupportedTransferCoding => 501,
            HttpError::UnsupportedVersion => 505,
            HttpError::InvalidMethod
            | HttpError::InvalidTarget(_)
            | HttpError::InvalidVersion
            | HttpError::InvalidLineEnding
            | HttpError::InvalidHeaderName
            | HttpError::InvalidHeaderValue
            | HttpError::ObsFold
            | HttpError::MissingHost
            | HttpError::DuplicateHost
            | HttpError::InvalidHost
            | HttpError::InvalidContentLength
            | HttpError::ConflictingContentLength
            | HttpError::LengthWithTransferEncoding
            | HttpError::TransferEncodingInHttp10
            | HttpError::ChunkedNotFinal
            | HttpError::InvalidChunkSize
            | HttpError::ChunkSizeLineTooLong { .. }
            | HttpError::MissingChunkTerminator
            | HttpError::ChunkedLineEnding => 400,
        }
    }
}

/// RFC 9110 `tchar`: the bytes of a token (method, header name, coding).
pub(crate) fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
        | b'^' | b'_' | b'`' | b'|' | b'~'
        | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// Removes optional whitespace (SP, HTAB) from both ends.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Whether a request with `method` may be repeated without changing its
/// effect (RFC 9110 §9.2.2): `GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT`,
/// `DELETE`.
pub fn is_idempotent(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
    )
}

/// The elements of a comma-separated list (RFC 9110 §5.6.1), OWS trimmed;
/// empty elements are yielded too (callers decide).
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotent_methods() {
        for m in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            assert!(is_idempotent(m.as_bytes()), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT", "get", "WEBSOCKET"] {
            assert!(!is_idempotent(m.as_bytes()), "{m}");
        }
    }

    #[test]
    fn statuses_follow_the_fault() {
        assert_eq!(HttpError::HeadTooLarge { limit: 1 }.status(), 431);
        assert_eq!(HttpError::TooManyHeaders { limit: 1 }.status(), 431);
        assert_eq!(HttpError::HeaderLineTooLarge { limit: 1 }.status(), 431);
        assert_eq!(HttpError::UriTooLong { limit: 1 }.status(), 414);
        assert_eq!(HttpError::BodyTooLarge { limit: 1 }.status(), 413);
        assert_eq!(HttpError::UnsupportedExpectation.status(), 417);
        assert_eq!(HttpError::UnsupportedTransferCoding.status(), 501);
        assert_eq!(HttpError::UnsupportedVersion.status(), 505);
        assert_eq!(HttpError::ObsFold.status(), 400);
    }

    #[test]
    fn limits_from_settings() {
        let mut settings = Settings::default();
        assert_eq!(Limits::from_settings(&settings), Limits::default());
        assert_eq!(
            (Limits::default().max_head, Limits::default().max_line),
            (32 * 1024, 8 * 1024)
        );
        settings.limits_buffer_size = Some(4096);
        settings.limits_header_count = 7;
        settings.request_relaxed = true;
        assert_eq!(
            Limits::from_settings(&settings),
            Limits {
                max_head: 4096,
                max_line: 4096,
                max_headers: 7,
                relaxed_uri: true,
            }
        );
    }

    #[test]
    fn version_strings() {
        assert_eq!(Version::Http10.as_str(), "HTTP/1.0");
        assert_eq!(Version::Http11.as_str(), "HTTP/1.1");
    }

    #[test]
    fn ows_and_lists() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        let v: Vec<&[u8]> = list_elements(b" a ,b,, c").collect();
        assert_eq!(v, [&b"a"[..], b"b", b"", b"c"]);
    }
}
