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
pub mod head;
pub mod range;
pub mod response;

pub use chunked::{ChunkedDecoder, DEFAULT_MAX_TRAILERS, MAX_CHUNK_SIZE_LINE};
pub use date::date;
pub use head::{parse_head, Head};
pub use response::{canned, reason, service_unavailable, ResponseHead, CONTINUE};

/// Default for [`Limits::max_head`]: Mongrel2's `limits.buffer_size` default
/// (4096). The whole head must fit; 4 KiB holds any ordinary browser request
/// and keeps a slow client's unparsed bytes small.
pub const DEFAULT_MAX_HEAD: usize = 4096;

/// Default for [`Limits::max_headers`]: Mongrel2's `limits.header_count`
/// default (1280). Mongrel2 counts distinct names; Kennel counts header
/// lines, which bounds the same memory and is simpler to enforce. With the
/// default `max_head` of 4 KiB no request can come near it anyway.
pub const DEFAULT_MAX_HEADERS: usize = 1280;

/// The request-head limits, taken from the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `limits.buffer_size`, default [`DEFAULT_MAX_HEAD`] (4096): the whole
    /// head (leading empty lines, request line, header lines and the final
    /// empty line) must fit in this many bytes, else 431. Values above
    /// `u32::MAX` are treated as `u32::MAX` (offsets are stored as `u32`).
    pub max_head: usize,
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
    fn default() -> Self {
        Self {
            max_head: DEFAULT_MAX_HEAD,
            max_headers: DEFAULT_MAX_HEADERS,
            relaxed_uri: false,
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
    /// Chunk data not followed by CRLF (400).
    #[error("chunk data not followed by CRLF")]
    MissingChunkTerminator,
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
            | HttpError::TooManyHeaders { .. }
            | HttpError::TrailersTooLarge { .. } => 431,
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
            | HttpError::MissingChunkTerminator => 400,
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

/// The elements of a comma-separated list (RFC 9110 §5.6.1), OWS trimmed;
/// empty elements are yielded too (callers decide).
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_fault() {
        assert_eq!(HttpError::HeadTooLarge { limit: 1 }.status(), 431);
        assert_eq!(HttpError::TooManyHeaders { limit: 1 }.status(), 431);
        assert_eq!(HttpError::BodyTooLarge { limit: 1 }.status(), 413);
        assert_eq!(HttpError::UnsupportedExpectation.status(), 417);
        assert_eq!(HttpError::UnsupportedTransferCoding.status(), 501);
        assert_eq!(HttpError::UnsupportedVersion.status(), 505);
        assert_eq!(HttpError::ObsFold.status(), 400);
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
