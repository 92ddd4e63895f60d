//! The request head: [`parse_head`] turns the front of a read buffer into a
//! [`Head`], or says it needs more bytes, or refuses the request.
//!
//! `httparse` does the syntax (request line, header lines, bare-LF line
//! ends, token and control-byte checks); this module adds what `httparse`
//! leaves to its caller: the size and count limits, the request-target
//! forms (RFC 9112 §3.2), Mongrel2's strict URI characters, and the
//! message-framing rules that keep a request from being read two ways
//! (RFC 9112 §6.3: `Content-Length` against `Transfer-Encoding`). It also
//! re-checks header names and values byte by byte, so the control-byte rule
//! does not depend on which SIMD path `httparse` took.
//!
//! Zero copy: the head's bytes are split off the caller's buffer and frozen;
//! a [`Head`] keeps `u32` offsets into them. Parsing allocates one `Vec` (the
//! header offsets); a head with more than [`STACK_HEADERS`] header lines
//! also needs a temporary heap array for `httparse`, and an absolute-form
//! target with an empty path and a query (`http://h?q`) builds its URI
//! (`/?q`) in a small box.

use std::fmt;

use bytes::{Bytes, BytesMut};

use super::{is_tchar, list_elements, trim_ows, BodyKind, HttpError, Limits, Version};

/// Header slots `httparse` gets on the stack (32 bytes each). 32 covers
/// ordinary browser and API requests; a head with more lines is parsed
/// again with a heap array sized by [`Limits::max_headers`] (and by what
/// `max_head` bytes can hold).
pub const STACK_HEADERS: usize = 32;

/// A byte range in the head's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The range `part` takes inside `base`; `part` must be a sub-slice of
    /// `base`, and `base` at most `u32::MAX` bytes long.
    fn of(base: &[u8], part: &[u8]) -> Span {
        let offset = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        if offset > base.len() || part.len() > base.len() - offset {
            // Only an empty slice from elsewhere could get here.
            debug_assert!(part.is_empty(), "not a sub-slice of the head");
            return Span::new(0, 0);
        }
        Span::new(offset, offset + part.len())
    }

    fn new(start: usize, end: usize) -> Span {
        // The window parsed is at most u32::MAX bytes (see parse_head).
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    fn get(self, bytes: &[u8]) -> &[u8] {
        &bytes[self.start as usize..self.end as usize]
    }
}

/// A piece of the request that is usually a range of the head, sometimes a
/// constant (`/` for an empty absolute-form path) and rarely built.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    At(Span),
    Static(&'static [u8]),
    Owned(Box<[u8]>),
}

impl Piece {
    fn get<'a>(&'a self, bytes: &'a [u8]) -> &'a [u8] {
        match self {
            Piece::At(span) => span.get(bytes),
            Piece::Static(s) => s,
            Piece::Owned(b) => b,
        }
    }
}

/// A parsed request head. Owns the head's bytes (split off the read buffer
/// and frozen: zero copy) plus offsets into them.
#[derive(Clone, PartialEq, Eq)]
pub struct Head {
    bytes: Bytes,
    method: Span,
    target: Span,
    path: Piece,
    query: Option<Span>,
    fragment: Option<Span>,
    uri: Piece,
    authority: Option<Span>,
    version: Version,
    headers: Vec<(Span, Span)>,
    host: Option<Span>,
    body: BodyKind,
    keep_alive: bool,
    expects_continue: bool,
}

impl Head {
    /// The method as sent (any RFC 9110 token, case kept: `get` stays `get`).
    pub fn method(&self) -> &[u8] {
        self.method.get(&self.bytes)
    }

    /// The request-target as sent.
    pub fn target(&self) -> &[u8] {
        self.target.get(&self.bytes)
    }

    /// The raw (not percent-decoded) path: for origin-form the target up to
    /// `?` or `#`; for absolute-form `http://h/p?q` it is `/p` (`/` if
    /// empty); `*` for `OPTIONS *`; the authority (`host:port`) for
    /// `CONNECT`.
    pub fn path(&self) -> &[u8] {
        self.path.get(&self.bytes)
    }

    /// The query: after the first `?`, before `#`; `None` when there is no
    /// `?` (`Some(b"")` for a bare `?`).
    pub fn query(&self) -> Option<&[u8]> {
        self.query.map(|s| s.get(&self.bytes))
    }

    /// The fragment: after `#`; `None` when there is no `#`.
    pub fn fragment(&self) -> Option<&[u8]> {
        self.fragment.map(|s| s.get(&self.bytes))
    }

    /// Path, then `?` and the query if there is one; no fragment, scheme or
    /// authority. Mongrel2's `URI` header.
    pub fn uri(&self) -> &[u8] {
        self.uri.get(&self.bytes)
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The header lines in order: names as sent, values with optional
    /// whitespace around them removed.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.headers
            .iter()
            .map(|(n, v)| (n.get(&self.bytes), v.get(&self.bytes)))
    }

    /// The number of header lines.
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The host the request is for: the authority of an absolute-form
    /// target if there is one (RFC 9112 §3.2.2), else the `Host` header.
    /// The port is included; the router cuts it.
    pub fn host(&self) -> Option<&[u8]> {
        self.authority.or(self.host).map(|s| s.get(&self.bytes))
    }

    /// How the body is framed.
    pub fn body(&self) -> BodyKind {
        self.body
    }

    /// Whether the client wants the connection kept open: for HTTP/1.1
    /// unless a `Connection` header lists `close`; for HTTP/1.0 only if one
    /// lists `keep-alive` (and none lists `close`). Token lists,
    /// case-insensitive.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Whether the client sent `Expect: 100-continue` (case-insensitive) in
    /// an HTTP/1.1 request; an HTTP/1.0 request's is ignored (RFC 9110
    /// §10.1.1).
    pub fn expects_continue(&self) -> bool {
        self.expects_continue
    }

    /// Bytes the head took on the wire, leading empty lines included.
    pub fn wire_len(&self) -> usize {
        self.bytes.len()
    }

    /// The head exactly as received (leading empty lines included).
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The same head in an allocation of its own. A head is split off the
    /// connection's read buffer without a copy, so keeping it after its
    /// request (a WebSocket's upgrade head, kept for every message) would
    /// keep that whole buffer alive; this copies just the head's bytes.
    pub fn detached(&self) -> Head {
        Head {
            bytes: Bytes::copy_from_slice(&self.bytes),
            ..self.clone()
        }
    }
}

impl fmt::Debug for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        f.debug_struct("Head")
            .field("method", &text(self.method()))
            .field("target", &text(self.target()))
            .field("version", &self.version)
            .field("host", &self.host().map(text))
            .field("body", &self.body)
            .field("keep_alive", &self.keep_alive)
            .field("headers", &self.headers.len())
            .finish()
    }
}

/// Parses one request head from the front of `buf`.
///
/// `Ok(None)`: need more bytes (nothing consumed). `Ok(Some(head))`: the
/// head's bytes were split off `buf`; the body, if any, and pipelined
/// requests stay in `buf`. Leading empty lines before the request line are
/// skipped (RFC 9112 §2.2) and consumed with the head.
///
/// The size limits are enforced as soon as they are exceeded, without
/// waiting for the rest: a line (line end included) longer than
/// `limits.max_line` is [`HttpError::UriTooLong`] (414) if it is the request
/// line and [`HttpError::HeaderLineTooLarge`] (431) otherwise; more than
/// `limits.max_head` bytes without a complete head is
/// [`HttpError::HeadTooLarge`] (431), or 414 if the request line itself is
/// still not complete. The caller answers any error with
/// [`super::canned`]`(err.status(), true)` and closes.
pub fn parse_head(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Head>, HttpError> {
    let max_head = limits.max_head.min(u32::MAX as usize);
    let window = &buf[..buf.len().min(max_head)];
    let Some(scanned) = scan(window, limits)? else {
        check_line_lengths(window, limits)?;
        if buf.len() > max_head {
            return Err(match request_line(window) {
                (line, false) if !line.is_empty() => HttpError::UriTooLong {
                    limit: limits.max_head,
                },
                _ => HttpError::HeadTooLarge {
                    limit: limits.max_head,
                },
            });
        }
        return Ok(None);
    };
    check_line_lengths(&window[..scanned.len], limits)?;
    let meaning = interpret(window, &scanned, limits)?;
    let bytes = buf.split_to(scanned.len).freeze();
    Ok(Some(Head {
        bytes,
        method: scanned.method,
        target: scanned.target,
        path: meaning.target.path,
        query: meaning.target.query,
        fragment: meaning.target.fragment,
        uri: meaning.target.uri,
        authority: meaning.target.authority,
        version: scanned.version,
        headers: scanned.headers,
        host: meaning.host,
        body: meaning.body,
        keep_alive: meaning.keep_alive,
        expects_continue: meaning.expects_continue,
    }))
}

/// What `httparse` found, as offsets into the window.
struct Scanned {
    len: usize,
    method: Span,
    target: Span,
    version: Version,
    headers: Vec<(Span, Span)>,
}

/// Runs `httparse` on the window: stack slots first, heap slots when the
/// head has more lines than [`STACK_HEADERS`] and the limit allows them.
fn scan(window: &[u8], limits: &Limits) -> Result<Option<Scanned>, HttpError> {
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let slots = limits.max_headers.min(STACK_HEADERS);
    let result = match scan_into(window, &mut stack[..slots]) {
        Err(httparse::Error::TooManyHeaders) if limits.max_headers > STACK_HEADERS => {
            // A header line takes at least 3 bytes (`a:\n`), so the window
            // cannot hold more lines than this.
            let fit = limits.max_headers.min(window.len() / 3 + 1);
            let mut heap = vec![httparse::EMPTY_HEADER; fit];
            scan_into(window, &mut heap)
        }
        other => other,
    };
    result.map_err(|e| classify(window, e, limits))
}

fn scan_into<'b>(
    window: &'b [u8],
    slots: &mut [httparse::Header<'b>],
) -> Result<Option<Scanned>, httparse::Error> {
    let mut req = httparse::Request::new(slots);
    let len = match req.parse(window)? {
        httparse::Status::Partial => return Ok(None),
        httparse::Status::Complete(len) => len,
    };
    // A complete parse always fills these three.
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(httparse::Error::Token);
    };
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let headers = req
        .headers
        .iter()
        .map(|h| {
            (
                Span::of(window, h.name.as_bytes()),
                Span::of(window, trim_ows(h.value)),
            )
        })
        .collect();
    Ok(Some(Scanned {
        len,
        method: Span::of(window, method.as_bytes()),
        target: Span::of(window, target.as_bytes()),
        version,
        headers,
    }))
}

/// Refuses a line of `head` (all of a head, or the start of one) that is
/// longer than `limits.max_line` with its line end, or that already is
/// without it: 414 for the request line, 431 for a header line. Stops at
/// the empty line that ends the head.
fn check_line_lengths(head: &[u8], limits: &Limits) -> Result<(), HttpError> {
    let limit = limits.max_line;
    let start = head
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(head.len());
    let mut rest = &head[start..];
    let mut request_line = true;
    while !rest.is_empty() {
        let (len, line_end) = match rest.iter().position(|&b| b == b'\n') {
            Some(nl) => (nl + 1, true),
            None => (rest.len(), false),
        };
        if len > limit {
            return Err(if request_line {
                HttpError::UriTooLong { limit }
            } else {
                HttpError::HeaderLineTooLarge { limit }
            });
        }
        if line_end && !request_line && (len == 1 || (len == 2 && rest[0] == b'\r')) {
            break; // the empty line: the end of the head
        }
        rest = &rest[len..];
        request_line = false;
    }
    Ok(())
}

/// Bytes of the request line (after leading empty lines), without its line
/// end, and whether its line end has been seen. A CR at the very end of an
/// unfinished line is the start of its line end, so it is left out too.
fn request_line(window: &[u8]) -> (&[u8], bool) {
    let start = window
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(window.len());
    let rest = &window[start..];
    match rest.iter().position(|&b| b == b'\n') {
        Some(nl) => (rest[..nl].strip_suffix(b"\r").unwrap_or(&rest[..nl]), true),
        None => (rest.strip_suffix(b"\r").unwrap_or(rest), false),
    }
}

/// Turns an `httparse` error into the precise refusal, by looking at the
/// bytes again (this only runs on the error path).
fn classify(window: &[u8], error: httparse::Error, limits: &Limits) -> HttpError {
    match error {
        httparse::Error::TooManyHeaders => HttpError::TooManyHeaders {
            limit: limits.max_headers,
        },
        httparse::Error::Version => classify_version(window),
        httparse::Error::Token => {
            let (line, _) = request_line(window);
            let method = line.split(|&b| b == b' ').next().unwrap_or_default();
            if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
                HttpError::InvalidMethod
            } else {
                HttpError::InvalidTarget("byte not allowed in a request-target")
            }
        }
        httparse::Error::HeaderName | httparse::Error::HeaderValue => classify_header_line(window)
            .unwrap_or(match error {
                httparse::Error::HeaderName => HttpError::InvalidHeaderName,
                _ => HttpError::InvalidHeaderValue,
            }),
        httparse::Error::NewLine | httparse::Error::Status => {
            // httparse reads exactly 8 version bytes, so `HTTP/1.10` fails
            // at the line end: that is a version error.
            let (line, _) = request_line(window);
            let version = line.splitn(3, |&b| b == b' ').nth(2).unwrap_or_default();
            if version.len() > 8 && !version[8..].starts_with(b" ") {
                return classify_version(window);
            }
            classify_header_line(window).unwrap_or(HttpError::InvalidLineEnding)
        }
    }
}

/// 505 for a well-formed `HTTP/x.y` other than 1.0/1.1 (also when the
/// buffer ends inside one), 400 for anything else. The HTTP/2 preface
/// `PRI * HTTP/2.0` gets 505: the client speaks HTTP, just not ours.
fn classify_version(window: &[u8]) -> HttpError {
    let (line, complete) = request_line(window);
    let mut fields = line.splitn(3, |&b| b == b' ');
    let version = fields.nth(2).unwrap_or_default();
    const SHAPE: &[u8] = b"HTTP/0.0";
    let fits = version.len() <= SHAPE.len()
        && (!complete || version.len() == SHAPE.len())
        && version.iter().zip(SHAPE).all(|(&b, &s)| {
            if s == b'0' {
                b.is_ascii_digit()
            } else {
                b == s
            }
        });
    if fits {
        HttpError::UnsupportedVersion
    } else {
        HttpError::InvalidVersion
    }
}

/// Finds the first bad header line and says what is wrong with it.
fn classify_header_line(window: &[u8]) -> Option<HttpError> {
    let start = window.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let after_request_line = window[start..].iter().position(|&b| b == b'\n')? + start + 1;
    let mut rest = &window[after_request_line..];
    while !rest.is_empty() {
        let (line, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(nl) => {
                let line = &rest[..nl];
                rest = &rest[nl + 1..];
                (line.strip_suffix(b"\r").unwrap_or(line), true)
            }
            None => (std::mem::take(&mut rest), false),
        };
        match line.first() {
            None if complete => return None, // end of the head
            None => return None,
            Some(b' ' | b'\t') => return Some(HttpError::ObsFold),
            Some(b'\r') => return Some(HttpError::InvalidLineEnding),
            Some(_) => {}
        }
        let colon = line.iter().position(|&b| b == b':');
        let name = &line[..colon.unwrap_or(line.len())];
        if !name.iter().all(|&b| is_tchar(b)) || colon == Some(0) {
            return Some(HttpError::InvalidHeaderName);
        }
        let Some(colon) = colon else {
            return complete.then_some(HttpError::InvalidHeaderName);
        };
        if line[colon + 1..].iter().any(|&b| is_ctl(b)) {
            return Some(HttpError::InvalidHeaderValue);
        }
    }
    None
}

/// A control byte not allowed in a field value: 0x00–0x1F except HTAB, and
/// DEL.
fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// What the head means, beyond its syntax.
struct Meaning {
    target: Target,
    host: Option<Span>,
    body: BodyKind,
    keep_alive: bool,
    expects_continue: bool,
}

fn interpret(window: &[u8], scanned: &Scanned, limits: &Limits) -> Result<Meaning, HttpError> {
    let target = parse_target(
        window,
        scanned.target,
        scanned.method.get(window),
        limits.relaxed_uri,
    )?;

    let mut host: Option<Span> = None;
    let mut host_lines = 0usize;
    let mut content_length: Option<u64> = None;
    let mut codings = Codings::default();
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;
    let mut expect_other = false;

    for &(name_span, value_span) in &scanned.headers {
        let name = name_span.get(window);
        let value = value_span.get(window);
        // httparse checks these too; checking again keeps the rule ours.
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(HttpError::InvalidHeaderName);
        }
        if value.iter().any(|&b| is_ctl(b)) {
            return Err(HttpError::InvalidHeaderValue);
        }
        if name.eq_ignore_ascii_case(b"host") {
            host_lines += 1;
            host = Some(value_span);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            for element in list_elements(value) {
                let n = parse_decimal(element).ok_or(HttpError::InvalidContentLength)?;
                match content_length {
                    Some(previous) if previous != n => {
                        return Err(HttpError::ConflictingContentLength)
                    }
                    _ => content_length = Some(n),
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            codings.add(value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in list_elements(value) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            let mut any = false;
            for element in list_elements(value).filter(|e| !e.is_empty()) {
                any = true;
                if element.eq_ignore_ascii_case(b"100-continue") {
                    expect_continue = true;
                } else {
                    expect_other = true;
                }
            }
            expect_other |= !any;
        }
    }

    let body = match (content_length, codings.present) {
        (Some(_), true) => return Err(HttpError::LengthWithTransferEncoding),
        (_, true) if scanned.version == Version::Http10 => {
            return Err(HttpError::TransferEncodingInHttp10)
        }
        (_, true) => {
            codings.check()?;
            BodyKind::Chunked
        }
        (Some(n), false) => BodyKind::Length(n),
        (None, false) => BodyKind::None,
    };

    if host_lines > 1 {
        return Err(HttpError::DuplicateHost);
    }
    match host {
        None if scanned.version == Version::Http11 => return Err(HttpError::MissingHost),
        Some(span) if !valid_host_header(span.get(window)) => return Err(HttpError::InvalidHost),
        _ => {}
    }

    if expect_other {
        return Err(HttpError::UnsupportedExpectation);
    }

    let keep_alive = match scanned.version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive_token && !close,
    };
    Ok(Meaning {
        target,
        host,
        body,
        keep_alive,
        expects_continue: expect_continue && scanned.version == Version::Http11,
    })
}

/// The `Transfer-Encoding` lines seen, summed up.
#[derive(Default)]
struct Codings {
    present: bool,
    /// Non-empty list elements seen.
    count: usize,
    chunked: usize,
    last_is_chunked: bool,
    other: bool,
}

impl Codings {
    fn add(&mut self, value: &[u8]) {
        self.present = true;
        for coding in list_elements(value).filter(|c| !c.is_empty()) {
            self.count += 1;
            self.last_is_chunked = coding.eq_ignore_ascii_case(b"chunked");
            if self.last_is_chunked {
                self.chunked += 1;
            } else {
                self.other = true;
            }
        }
    }

    /// RFC 9112 §6.3: `chunked` must be the final coding, once (else 400);
    /// any other coding is one Kennel does not decode (501).
    fn check(&self) -> Result<(), HttpError> {
        if self.count == 0 || !self.last_is_chunked || self.chunked > 1 {
            return Err(HttpError::ChunkedNotFinal);
        }
        if self.other {
            return Err(HttpError::UnsupportedTransferCoding);
        }
        Ok(())
    }
}

/// A plain decimal `u64`: digits only, at least one, no sign, no overflow.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// The parts of a request-target, as pieces of the head.
struct Target {
    path: Piece,
    query: Option<Span>,
    fragment: Option<Span>,
    uri: Piece,
    authority: Option<Span>,
}

/// Splits and checks the request-target (RFC 9112 §3.2).
fn parse_target(
    window: &[u8],
    span: Span,
    method: &[u8],
    relaxed: bool,
) -> Result<Target, HttpError> {
    let t = span.get(window);
    if !relaxed {
        check_strict_uri(t)?;
    }
    let base = span.start as usize;
    let at = |from: usize, to: usize| Span::new(base + from, base + to);

    if t == b"*" {
        if method != b"OPTIONS" {
            return Err(HttpError::InvalidTarget(
                "asterisk-form is only for OPTIONS",
            ));
        }
        let whole = Piece::At(span);
        return Ok(Target {
            path: whole.clone(),
            query: None,
            fragment: None,
            uri: whole,
            authority: None,
        });
    }

    if method == b"CONNECT" {
        if !valid_authority(t, true) {
            return Err(HttpError::InvalidTarget("CONNECT needs host:port"));
        }
        return Ok(Target {
            path: Piece::At(span),
            query: None,
            fragment: None,
            uri: Piece::At(span),
            authority: None,
        });
    }

    let (path_start, authority) = if t.first() == Some(&b'/') {
        (0, None)
    } else {
        let rest_at = strip_scheme(t).ok_or(HttpError::InvalidTarget(
            "not origin-form or http(s) absolute-form",
        ))?;
        let len = t[rest_at..]
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(t.len() - rest_at);
        let authority = &t[rest_at..rest_at + len];
        if !valid_authority(authority, false) {
            return Err(HttpError::InvalidTarget("bad authority in absolute-form"));
        }
        (rest_at + len, Some(at(rest_at, rest_at + len)))
    };

    let frag_at = t[path_start..]
        .iter()
        .position(|&b| b == b'#')
        .map(|i| i + path_start);
    let uri_end = frag_at.unwrap_or(t.len());
    let query_at = t[path_start..uri_end]
        .iter()
        .position(|&b| b == b'?')
        .map(|i| i + path_start);
    let path_end = query_at.unwrap_or(uri_end);

    let (path, uri) = if path_start == path_end {
        // Only absolute-form can get here: `http://h`, `http://h?q`.
        let uri = match query_at {
            None => Piece::Static(b"/"),
            Some(_) => {
                let mut uri = Vec::with_capacity(1 + uri_end - path_start);
                uri.push(b'/');
                uri.extend_from_slice(&t[path_start..uri_end]);
                Piece::Owned(uri.into_boxed_slice())
            }
        };
        (Piece::Static(b"/"), uri)
    } else {
        (
            Piece::At(at(path_start, path_end)),
            Piece::At(at(path_start, uri_end)),
        )
    };
    Ok(Target {
        path,
        query: query_at.map(|q| at(q + 1, uri_end)),
        fragment: frag_at.map(|f| at(f + 1, t.len())),
        uri,
        authority,
    })
}

/// Where the authority starts in `http://` or `https://` (scheme
/// case-insensitive), or `None`.
fn strip_scheme(t: &[u8]) -> Option<usize> {
    for scheme in [&b"http://"[..], b"https://"] {
        if t.len() >= scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(scheme.len());
        }
    }
    None
}

/// Mongrel2's (RFC 3986's) URI characters: unreserved, `%XX`, sub-delims
/// and gen-delims. Refuses `{ } ^ " < > \ |` backtick, non-ASCII and a `%`
/// that does not start an escape.
fn check_strict_uri(t: &[u8]) -> Result<(), HttpError> {
    let mut i = 0;
    while i < t.len() {
        let b = t[i];
        if b == b'%' {
            let escape = t.get(i + 1..i + 3);
            if !escape.is_some_and(|e| e.iter().all(u8::is_ascii_hexdigit)) {
                return Err(HttpError::InvalidTarget("% not followed by two hex digits"));
            }
            i += 3;
            continue;
        }
        if !(is_unreserved(b) || is_sub_delim(b) || b":/?#[]@".contains(&b)) {
            return Err(HttpError::InvalidTarget(
                "byte not allowed in a request-target (request.relaxed allows more)",
            ));
        }
        i += 1;
    }
    Ok(())
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    b"!$&'()*+,;=".contains(&b)
}

/// `host [":" port]` with host a reg-name (unreserved, `%`, sub-delims) or
/// an IP literal in brackets, port digits. `need_port` (CONNECT's
/// authority-form) requires a non-empty port. An empty host is refused.
fn valid_authority(a: &[u8], need_port: bool) -> bool {
    let (host, port) = if a.first() == Some(&b'[') {
        let Some(close) = a.iter().position(|&b| b == b']') else {
            return false;
        };
        let inside = &a[1..close];
        if inside.is_empty()
            || !inside
                .iter()
                .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':')
        {
            return false;
        }
        match &a[close + 1..] {
            [] => (&a[..=close], None),
            [b':', port @ ..] => (&a[..=close], Some(port)),
            _ => return false,
        }
    } else {
        let colon = a.iter().position(|&b| b == b':');
        let host = &a[..colon.unwrap_or(a.len())];
        if !host
            .iter()
            .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b'%')
        {
            return false;
        }
        (host, colon.map(|c| &a[c + 1..]))
    };
    if host.is_empty() {
        return false;
    }
    match port {
        None => !need_port,
        Some(p) => p.iter().all(u8::is_ascii_digit) && (!need_port || !p.is_empty()),
    }
}

/// A `Host` value: empty (allowed by RFC 9112 §3.2 for targets without an
/// authority) or a valid authority.
fn valid_host_header(v: &[u8]) -> bool {
    v.is_empty() || valid_authority(v, false)
}

#[cfg(test)]
mod tests;
