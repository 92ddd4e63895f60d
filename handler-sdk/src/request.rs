//! The request message: what a server PUSHes to a handler.
//!
//! Grammar (PROTOCOL.md §1.2): `SENDER SP ID SP PATH SP HEADERS BODY` where
//! `HEADERS` is a netstring holding JSON text (`protocol = 'json'`) or a
//! tnetstring dict (`protocol = 'tnetstring'`), and `BODY` is always a plain
//! netstring (`0:,` when empty). There is no space between the two.
//!
//! This module owns both directions: [`encode`] (the server's hot path; it
//! writes straight into a caller's buffer, no allocation of its own) and
//! [`Request::parse`] (the handler side, which owns what it decodes). It also
//! builds the `@*` notices a server sends about a connection
//! ([`encode_disconnect`], [`encode_credits`]).
//!
//! Kennel's deliberate difference from Mongrel2 (PROTOCOL.md, first table):
//! the JSON form is always valid JSON. Every control character is escaped,
//! valid UTF-8 passes through unchanged, and each byte that is not part of a
//! valid UTF-8 sequence is written as the character with that code point
//! (U+0080–U+00FF, i.e. read as ISO-8859-1, which is how HTTP historically
//! treats such header bytes). Handlers that need the exact bytes use the
//! tnetstring form, which carries them unchanged.

use std::fmt;

use crate::tnetstring::{self, begin_container, end_container, Container, Tag, Value};

/// How the header block of a request message is encoded: the `handler`
/// table's `protocol` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// A netstring holding a JSON object (Mongrel2's default).
    #[default]
    Json,
    /// A tnetstring dict; header values are carried as exact bytes.
    Tnetstring,
}

impl Protocol {
    /// The `protocol` column's value: `tnetstring` selects tnetstrings and
    /// anything else JSON, exactly as Mongrel2's config loader does.
    pub fn from_column(value: &str) -> Protocol {
        if value == "tnetstring" {
            Protocol::Tnetstring
        } else {
            Protocol::Json
        }
    }
}

/// At most this many values are kept for one header name; further ones are
/// dropped. Mongrel2's `MAX_DUPE_HEADERS`; a handler seeing more than five
/// `Cookie` lines would be unusual, and the bound keeps the array small.
pub const MAX_DUPLICATE_HEADERS: usize = 5;

/// What the server knows about one request, borrowed from its read buffer.
///
/// Optional keys are left out of the message when `None`, as Mongrel2 does
/// (`QUERY` only when the URI has a query, `FRAGMENT` only with a fragment;
/// JSON-socket and notice messages have no `VERSION` or `URI`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHead<'a> {
    /// `PATH`: the raw (not percent-decoded) request path.
    pub path: &'a [u8],
    /// `METHOD`: the HTTP method, or `JSON`, `XML`, `WEBSOCKET_HANDSHAKE`,
    /// `WEBSOCKET`.
    pub method: &'a [u8],
    /// `VERSION`: `HTTP/1.0` or `HTTP/1.1`.
    pub version: Option<&'a [u8]>,
    /// `URI`: path plus `?` plus query, without the fragment.
    pub uri: Option<&'a [u8]>,
    /// `QUERY`: the raw query string.
    pub query: Option<&'a [u8]>,
    /// `FRAGMENT`: the fragment, when the request line carried one.
    pub fragment: Option<&'a [u8]>,
    /// `PATTERN`: the route key as configured.
    pub pattern: &'a [u8],
    /// `URL_SCHEME`: `http` or `https`.
    pub url_scheme: &'a [u8],
    /// `REMOTE_ADDR`: the peer's IP address.
    pub remote_addr: &'a [u8],
    /// The client's headers as received, names in any case. They are sent
    /// with lower-case names; repeated names become one array.
    pub headers: &'a [(&'a [u8], &'a [u8])],
    /// When set, replaces every client `x-forwarded-for` header with this one
    /// value (added after the client headers if there was none): Mongrel2's
    /// default, unless the `no_clobber_xff` setting is 1.
    pub forwarded_for: Option<&'a [u8]>,
    /// Further server keys (`FLAGS`, `DOWNLOAD_CREDITS`, upload keys …),
    /// written after everything else, names as given.
    pub extra: &'a [(&'a [u8], &'a [u8])],
}

impl<'a> RequestHead<'a> {
    /// A request for `path` as a server sends one for a local HTTP/1.1
    /// client: `VERSION` `HTTP/1.1`, `URI` the path, `PATTERN` `/`,
    /// `URL_SCHEME` `http`, `REMOTE_ADDR` `127.0.0.1`, no headers. Meant for
    /// handler tests and tools; change any field with struct update syntax:
    ///
    /// ```
    /// use kennel_handler::request::{Protocol, Request, RequestHead};
    ///
    /// let headers: &[(&[u8], &[u8])] = &[(b"Accept", b"text/plain")];
    /// let head = RequestHead { headers, ..RequestHead::local(b"GET", b"/users/42") };
    /// let req = Request::from_head(Protocol::Json, b"SENDER", 7, &head, b"");
    /// assert_eq!(req.path_str(), "/users/42");
    /// assert_eq!(req.headers().get("accept"), Some("text/plain"));
    /// ```
    pub fn local(method: &'a [u8], path: &'a [u8]) -> Self {
        RequestHead {
            path,
            method,
            version: Some(b"HTTP/1.1"),
            uri: Some(path),
            pattern: b"/",
            url_scheme: b"http",
            remote_addr: b"127.0.0.1",
            ..RequestHead::default()
        }
    }
}

const XFF: &[u8] = b"x-forwarded-for";

/// Appends one request message to `out`.
///
/// `sender` is the handler's `send_ident` (PROTOCOL.md §1.1: Mongrel2 puts
/// the handler's identity, not the server's, in front of every request).
pub fn encode(
    out: &mut Vec<u8>,
    protocol: Protocol,
    sender: &[u8],
    conn_id: u64,
    head: &RequestHead<'_>,
    body: &[u8],
) {
    out.extend_from_slice(sender);
    out.push(b' ');
    write_decimal(out, conn_id);
    out.push(b' ');
    out.extend_from_slice(head.path);
    out.push(b' ');
    match protocol {
        Protocol::Json => write_json_headers(out, head),
        Protocol::Tnetstring => write_tnetstring_headers(out, head),
    }
    tnetstring::write_string(out, body);
}

/// Appends the notice that connection `conn_id` is gone (PROTOCOL.md §1.6),
/// e.g. `SENDER 7 @* 17:{"METHOD":"JSON"},21:{"type":"disconnect"},`.
pub fn encode_disconnect(out: &mut Vec<u8>, protocol: Protocol, sender: &[u8], conn_id: u64) {
    encode_notice(
        out,
        protocol,
        sender,
        conn_id,
        None,
        br#"{"type":"disconnect"}"#,
    );
}

/// Appends the notice that `credits` bytes were written to connection
/// `conn_id` (`download.flow_control = 1`, PROTOCOL.md §1.6).
pub fn encode_credits(
    out: &mut Vec<u8>,
    protocol: Protocol,
    sender: &[u8],
    conn_id: u64,
    credits: u64,
) {
    let mut digits = [0; 20];
    let credits = tnetstring::decimal(credits, &mut digits);
    encode_notice(
        out,
        protocol,
        sender,
        conn_id,
        Some(credits),
        br#"{"type":"credits"}"#,
    );
}

/// Appends a request message whose header block holds only `headers`,
/// names as given: what Mongrel2 sends for each later slice of a streamed
/// upload (`upload.stream = 1`), e.g.
/// `SENDER 7 /up 24:{"UPLOAD_STREAM":"1024"},5:hello,` (JSON) or
/// `SENDER 7 /up 28:13:UPLOAD_STREAM,4:1024,}5:hello,` (tnetstring). `path`
/// is the request's path, as in its first message.
pub fn encode_headers_only(
    out: &mut Vec<u8>,
    protocol: Protocol,
    sender: &[u8],
    conn_id: u64,
    path: &[u8],
    headers: &[(&[u8], &[u8])],
    body: &[u8],
) {
    out.extend_from_slice(sender);
    out.push(b' ');
    write_decimal(out, conn_id);
    out.push(b' ');
    out.extend_from_slice(path);
    out.push(b' ');
    match protocol {
        Protocol::Json => {
            let start = begin_container(out);
            out.push(b'{');
            for (i, (name, value)) in headers.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'"');
                write_json_chars(out, name, false);
                out.extend_from_slice(b"\":\"");
                write_json_chars(out, value, false);
                out.push(b'"');
            }
            out.push(b'}');
            end_container(out, start, Container::String);
        }
        Protocol::Tnetstring => {
            let start = begin_container(out);
            for (name, value) in headers {
                tnetstring::write_string(out, name);
                tnetstring::write_string(out, value);
            }
            end_container(out, start, Container::Dict);
        }
    }
    tnetstring::write_string(out, body);
}

fn encode_notice(
    out: &mut Vec<u8>,
    protocol: Protocol,
    sender: &[u8],
    conn_id: u64,
    credits: Option<&[u8]>,
    body: &[u8],
) {
    out.extend_from_slice(sender);
    out.push(b' ');
    write_decimal(out, conn_id);
    out.extend_from_slice(b" @* ");
    match protocol {
        Protocol::Json => {
            let start = begin_container(out);
            out.extend_from_slice(br#"{"METHOD":"JSON""#);
            if let Some(credits) = credits {
                out.extend_from_slice(br#","DOWNLOAD_CREDITS":""#);
                out.extend_from_slice(credits);
                out.push(b'"');
            }
            out.push(b'}');
            end_container(out, start, Container::String);
        }
        Protocol::Tnetstring => {
            let start = begin_container(out);
            tnetstring::write_string(out, b"METHOD");
            tnetstring::write_string(out, b"JSON");
            if let Some(credits) = credits {
                tnetstring::write_string(out, b"DOWNLOAD_CREDITS");
                tnetstring::write_string(out, credits);
            }
            end_container(out, start, Container::Dict);
        }
    }
    tnetstring::write_string(out, body);
}

fn write_json_headers(out: &mut Vec<u8>, head: &RequestHead<'_>) {
    let start = begin_container(out);
    out.push(b'{');
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, name: &[u8], lower: bool| {
        if !first {
            out.push(b',');
        }
        first = false;
        out.push(b'"');
        write_json_chars(out, name, lower);
        out.extend_from_slice(b"\":");
    };
    let string = |out: &mut Vec<u8>, value: &[u8]| {
        out.push(b'"');
        write_json_chars(out, value, false);
        out.push(b'"');
    };

    key(out, b"PATH", false);
    string(out, head.path);
    for_each_client_header(head, |name, values| {
        key(out, name, true);
        if values.len() == 1 {
            string(out, values[0]);
        } else {
            out.push(b'[');
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, value);
            }
            out.push(b']');
        }
    });
    let server_keys: [(&[u8], Option<&[u8]>); 8] = [
        (b"METHOD", Some(head.method)),
        (b"VERSION", head.version),
        (b"URI", head.uri),
        (b"QUERY", head.query),
        (b"FRAGMENT", head.fragment),
        (b"PATTERN", Some(head.pattern)),
        (b"URL_SCHEME", Some(head.url_scheme)),
        (b"REMOTE_ADDR", Some(head.remote_addr)),
    ];
    for (name, value) in server_keys {
        if let Some(value) = value {
            key(out, name, false);
            string(out, value);
        }
    }
    for (name, value) in head.extra {
        key(out, name, false);
        string(out, value);
    }
    out.push(b'}');
    end_container(out, start, Container::String);
}

fn write_tnetstring_headers(out: &mut Vec<u8>, head: &RequestHead<'_>) {
    let start = begin_container(out);
    // Mongrel2's tnetstring writer builds its buffer backwards, so the
    // server keys come out in this order, before the client headers.
    let server_keys: [(&[u8], Option<&[u8]>); 9] = [
        (b"REMOTE_ADDR", Some(head.remote_addr)),
        (b"METHOD", Some(head.method)),
        (b"URL_SCHEME", Some(head.url_scheme)),
        (b"PATTERN", Some(head.pattern)),
        (b"FRAGMENT", head.fragment),
        (b"QUERY", head.query),
        (b"URI", head.uri),
        (b"VERSION", head.version),
        (b"PATH", Some(head.path)),
    ];
    for (name, value) in server_keys {
        if let Some(value) = value {
            tnetstring::write_string(out, name);
            tnetstring::write_string(out, value);
        }
    }
    for_each_client_header(head, |name, values| {
        write_lowercase_string(out, name);
        if values.len() == 1 {
            tnetstring::write_string(out, values[0]);
        } else {
            let list = begin_container(out);
            for value in values {
                tnetstring::write_string(out, value);
            }
            end_container(out, list, Container::List);
        }
    });
    for (name, value) in head.extra {
        tnetstring::write_string(out, name);
        tnetstring::write_string(out, value);
    }
    end_container(out, start, Container::Dict);
}

/// Calls `f` once per distinct client header name (first-seen order) with
/// up to [`MAX_DUPLICATE_HEADERS`] values, applying the `x-forwarded-for`
/// rule. Grouping is quadratic in the header count, which the server bounds
/// (`limits.header_count`, and the head must fit `limits.buffer_size`); it
/// needs no allocation.
fn for_each_client_header(head: &RequestHead<'_>, mut f: impl FnMut(&[u8], &[&[u8]])) {
    let headers = head.headers;
    let mut saw_xff = false;
    for (i, (name, value)) in headers.iter().enumerate() {
        if headers[..i]
            .iter()
            .any(|(earlier, _)| earlier.eq_ignore_ascii_case(name))
        {
            continue;
        }
        if let Some(peer) = head.forwarded_for {
            if name.eq_ignore_ascii_case(XFF) {
                saw_xff = true;
                f(name, &[peer]);
                continue;
            }
        }
        let mut values: [&[u8]; MAX_DUPLICATE_HEADERS] = [&[]; MAX_DUPLICATE_HEADERS];
        values[0] = value;
        let mut count = 1;
        for (later, value) in &headers[i + 1..] {
            if count < MAX_DUPLICATE_HEADERS && later.eq_ignore_ascii_case(name) {
                values[count] = value;
                count += 1;
            }
        }
        f(name, &values[..count]);
    }
    if let (Some(peer), false) = (head.forwarded_for, saw_xff) {
        f(XFF, &[peer]);
    }
}

fn write_lowercase_string(out: &mut Vec<u8>, name: &[u8]) {
    write_decimal(out, name.len() as u64);
    out.push(b':');
    out.extend(name.iter().map(u8::to_ascii_lowercase));
    out.push(b',');
}

/// Writes the inside of a JSON string: `"` and `\` escaped, control
/// characters escaped, valid UTF-8 unchanged, other bytes as U+0080–U+00FF.
fn write_json_chars(out: &mut Vec<u8>, bytes: &[u8], lowercase: bool) {
    // The common case, printable ASCII with nothing to escape, is one copy.
    if bytes
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        if lowercase {
            out.extend(bytes.iter().map(u8::to_ascii_lowercase));
        } else {
            out.extend_from_slice(bytes);
        }
        return;
    }
    let mut rest = bytes;
    while !rest.is_empty() {
        let (valid, invalid) = match std::str::from_utf8(rest) {
            Ok(s) => (s.as_bytes(), &[][..]),
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                let bad = e.error_len().unwrap_or(after.len());
                (valid, &after[..bad])
            }
        };
        let mut plain = 0;
        for (i, &b) in valid.iter().enumerate() {
            let escape: Option<&[u8]> = match b {
                b'"' => Some(b"\\\""),
                b'\\' => Some(b"\\\\"),
                b'\n' => Some(b"\\n"),
                b'\r' => Some(b"\\r"),
                b'\t' => Some(b"\\t"),
                0x00..=0x1f | 0x7f => None,
                _ => continue,
            };
            out.extend_from_slice(&valid[plain..i]);
            plain = i + 1;
            match escape {
                Some(e) => out.extend_from_slice(e),
                None => write_unicode_escape(out, b),
            }
        }
        if lowercase {
            out.extend(valid[plain..].iter().map(u8::to_ascii_lowercase));
        } else {
            out.extend_from_slice(&valid[plain..]);
        }
        for &b in invalid {
            // U+0080..U+00FF as two UTF-8 bytes.
            out.push(0xc0 | (b >> 6));
            out.push(0x80 | (b & 0x3f));
        }
        rest = &rest[valid.len() + invalid.len()..];
    }
}

fn write_unicode_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u00");
    out.push(HEX[usize::from(b >> 4)]);
    out.push(HEX[usize::from(b & 0xf)]);
}

fn write_decimal(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0; 20];
    out.extend_from_slice(tnetstring::decimal(n, &mut buf));
}

/// Why a request message could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// The message ends before its `SENDER ID PATH ` prefix does.
    #[error("request message: missing the space after the {0}")]
    MissingField(&'static str),
    /// The connection id is not an unsigned 64-bit decimal number.
    #[error("request message: connection id {0:?} is not a decimal number")]
    BadConnectionId(String),
    /// The header block is not a well-formed netstring or tnetstring dict.
    #[error("request message: header block: {0}")]
    Headers(tnetstring::Error),
    /// The header block's tag is neither `,` (JSON) nor `}` (tnetstring).
    #[error(
        "request message: header block has tag {0:?}, expected ',' (JSON) or '}}' (tnetstring)"
    )]
    HeaderTag(char),
    /// The JSON header block is not a JSON object of strings or string arrays.
    #[error("request message: JSON headers: {0}")]
    Json(String),
    /// A tnetstring header value is not a string or a list of strings.
    #[error("request message: header {0:?} is not a string or a list of strings")]
    HeaderValue(String),
    /// The body is not a `,`-tagged netstring.
    #[error("request message: body: {0}")]
    Body(String),
}

/// The headers of a decoded request, in message order.
///
/// Names are case-sensitive as sent: server keys are upper-case (`METHOD`,
/// `PATH`, …) and client header names lower-case. A header that arrived as
/// an array appears once per value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    /// Every name and value, one after the other: one buffer, however many
    /// headers (a request's headers cost two allocations, not two each).
    bytes: Vec<u8>,
    /// Per pair: where its name starts, where its value starts, where the
    /// value ends, in `bytes` (the name ends where the value starts).
    entries: Vec<[u32; 3]>,
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))))
            .finish()
    }
}

impl Headers {
    fn pair(&self, entry: &[u32; 3]) -> (&str, &[u8]) {
        let [name, value, end] = entry.map(|i| i as usize);
        // Names are pushed as `&str`, so every name range is valid UTF-8.
        let name = std::str::from_utf8(&self.bytes[name..value]).unwrap_or_default();
        (name, &self.bytes[value..end])
    }

    /// The first value of `name` as text, if present and valid UTF-8.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first value of `name` as bytes.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Every value of `name`, in order.
    pub fn get_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + 's {
        self.iter().filter(move |(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Every (name, value) pair in message order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|e| self.pair(e))
    }

    /// How many (name, value) pairs there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn push(&mut self, name: &str, value: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name.as_bytes());
        let middle = self.bytes.len();
        self.bytes.extend_from_slice(value);
        // Headers come from one ZeroMQ message: far below 4 GiB.
        self.entries
            .push([start as u32, middle as u32, self.bytes.len() as u32]);
    }
}

/// A decoded request message, as a handler receives it.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    sender: String,
    conn_id: u64,
    path: Vec<u8>,
    protocol: Protocol,
    headers: Headers,
    body: Vec<u8>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("sender", &self.sender)
            .field("conn_id", &self.conn_id)
            .field("path", &String::from_utf8_lossy(&self.path))
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Request {
    /// Decodes one request message (one ZeroMQ frame).
    pub fn parse(message: &[u8]) -> Result<Request, RequestError> {
        let (sender, rest) = split_space(message, "sender")?;
        let (id, rest) = split_space(rest, "connection id")?;
        let (path, rest) = split_space(rest, "path")?;
        let conn_id = parse_id(id).ok_or_else(|| RequestError::BadConnectionId(lossy(id)))?;
        let (block, after) = tnetstring::frame_prefix(rest).map_err(RequestError::Headers)?;
        let (headers, protocol) = match block.tag {
            Tag::String => (parse_json_headers(block.payload)?, Protocol::Json),
            Tag::Dict => (
                tnetstring_headers(
                    tnetstring::DictPairs::new(rest, &block),
                    block.payload.len(),
                )?,
                Protocol::Tnetstring,
            ),
            other => return Err(RequestError::HeaderTag(other.byte() as char)),
        };
        let rest = after;
        let body = match tnetstring::parse(rest) {
            Ok(Value::String(body)) => body.to_vec(),
            Ok(other) => {
                return Err(RequestError::Body(format!(
                    "tag {:?}, expected ','",
                    other.tag().byte() as char
                )))
            }
            Err(e) => return Err(RequestError::Body(e.to_string())),
        };
        Ok(Request {
            sender: lossy(sender),
            conn_id,
            path: path.to_vec(),
            protocol,
            headers,
            body,
        })
    }

    /// The request a server would send for `head` and `body`: encodes the
    /// message and decodes it again. For handler tests, which can then call
    /// their code with real requests without a server.
    pub fn from_head(
        protocol: Protocol,
        sender: &[u8],
        conn_id: u64,
        head: &RequestHead<'_>,
        body: &[u8],
    ) -> Request {
        let mut message = Vec::with_capacity(256 + body.len());
        encode(&mut message, protocol, sender, conn_id, head, body);
        Request::parse(&message).expect("an encoded request parses")
    }

    /// The identity the server put in front of the message (the handler's
    /// `send_ident`); replies are addressed with it.
    pub fn sender(&self) -> &str {
        &self.sender
    }

    /// The connection id replies are addressed to.
    pub fn conn_id(&self) -> u64 {
        self.conn_id
    }

    /// The raw request path (or `@*` for notices, `@name` for JSON sockets).
    pub fn path(&self) -> &[u8] {
        &self.path
    }

    /// The path as text (invalid UTF-8 replaced with U+FFFD).
    pub fn path_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.path)
    }

    /// Which header form the message used.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The first value of a header (see [`Headers::get`]).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body out of the request.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The `METHOD` header: an HTTP method, or `JSON`, `XML`,
    /// `WEBSOCKET_HANDSHAKE`, `WEBSOCKET`.
    pub fn method(&self) -> Option<&str> {
        self.header("METHOD")
    }

    /// Whether this is the server's notice that the client went away.
    pub fn is_disconnect(&self) -> bool {
        self.notice_type() == Some("disconnect")
    }

    /// Whether this is a download-credits notice (`download.flow_control`).
    pub fn is_credits(&self) -> bool {
        self.notice_type() == Some("credits")
    }

    fn notice_type(&self) -> Option<&'static str> {
        if self.method() != Some("JSON") {
            return None;
        }
        #[derive(serde::Deserialize)]
        struct Notice<'a> {
            #[serde(rename = "type", borrow)]
            kind: std::borrow::Cow<'a, str>,
        }
        let notice: Notice<'_> = serde_json::from_slice(&self.body).ok()?;
        match &*notice.kind {
            "disconnect" => Some("disconnect"),
            "credits" => Some("credits"),
            _ => None,
        }
    }

    /// Whether the handler should close the connection after answering,
    /// as Mongrel2's Python library decides: `connection: close`, or
    /// HTTP/1.0. Mongrel2 and Kennel never close a handler's connection on
    /// their own; an empty reply does it.
    pub fn should_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
            || self.header("VERSION") == Some("HTTP/1.0")
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn split_space<'a>(
    bytes: &'a [u8],
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), RequestError> {
    let at = bytes
        .iter()
        .position(|&b| b == b' ')
        .ok_or(RequestError::MissingField(what))?;
    Ok((&bytes[..at], &bytes[at + 1..]))
}

/// Parses an unsigned decimal id exactly: digits only, no sign, no overflow.
pub(crate) fn parse_id(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(n)
}

fn tnetstring_headers(
    pairs: tnetstring::DictPairs<'_>,
    size: usize,
) -> Result<Headers, RequestError> {
    let mut headers = Headers {
        bytes: Vec::with_capacity(size),
        entries: Vec::with_capacity(16),
    };
    for pair in pairs {
        let (name, value) = pair.map_err(RequestError::Headers)?;
        let name = String::from_utf8_lossy(name);
        match value {
            Value::String(v) => headers.push(&name, v),
            Value::List(items) => {
                for item in items {
                    match item {
                        Value::String(v) => headers.push(&name, v),
                        _ => return Err(RequestError::HeaderValue(name.into_owned())),
                    }
                }
            }
            _ => return Err(RequestError::HeaderValue(name.into_owned())),
        }
    }
    Ok(headers)
}

fn parse_json_headers(json: &[u8]) -> Result<Headers, RequestError> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::borrow::Cow;

    /// A string borrowed from the message when it has no escapes.
    struct Text<'de>(Cow<'de, str>);

    impl<'de> serde::Deserialize<'de> for Text<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Text<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string")
                }
                fn visit_borrowed_str<E: serde::de::Error>(
                    self,
                    v: &'de str,
                ) -> Result<Text<'de>, E> {
                    Ok(Text(Cow::Borrowed(v)))
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                    Ok(Text(Cow::Owned(v.to_owned())))
                }
            }
            d.deserialize_str(V)
        }
    }

    /// A header's value (a string or an array of strings), pushed straight
    /// into the headers under `name`.
    struct Values<'h> {
        headers: &'h mut Headers,
        name: &'h str,
    }

    impl<'de> DeserializeSeed<'de> for Values<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Values<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or an array of strings")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
            self.headers.push(self.name, v.as_bytes());
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(Text(v)) = seq.next_element::<Text<'de>>()? {
                self.headers.push(self.name, v.as_bytes());
            }
            Ok(())
        }
    }

    struct HeadersVisitor(usize);

    impl<'de> Visitor<'de> for HeadersVisitor {
        type Value = Headers;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
            let mut headers = Headers {
                bytes: Vec::with_capacity(self.0),
                entries: Vec::with_capacity(16),
            };
            while let Some(Text(name)) = map.next_key::<Text<'de>>()? {
                map.next_value_seed(Values {
                    headers: &mut headers,
                    name: &name,
                })?;
            }
            Ok(headers)
        }
    }

    let mut de = serde_json::Deserializer::from_slice(json);
    let headers = de
        .deserialize_map(HeadersVisitor(json.len()))
        .and_then(|h| de.end().map(|()| h))
        .map_err(|e| RequestError::Json(e.to_string()))?;
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_head_is_a_plain_http_1_1_request_from_loopback() {
        let req = Request::from_head(
            Protocol::Json,
            b"S",
            9,
            &RequestHead::local(b"POST", b"/a/b"),
            b"x",
        );
        let h = req.headers();
        assert_eq!(h.get("METHOD"), Some("POST"));
        assert_eq!(h.get("PATH"), Some("/a/b"));
        assert_eq!(h.get("URI"), Some("/a/b"));
        assert_eq!(h.get("VERSION"), Some("HTTP/1.1"));
        assert_eq!(h.get("PATTERN"), Some("/"));
        assert_eq!(h.get("URL_SCHEME"), Some("http"));
        assert_eq!(h.get("REMOTE_ADDR"), Some("127.0.0.1"));
        assert_eq!(h.get("QUERY"), None);
        assert_eq!(req.body(), b"x");
    }

    fn head<'a>(headers: &'a [(&'a [u8], &'a [u8])]) -> RequestHead<'a> {
        RequestHead {
            path: b"/handler/foo",
            method: b"GET",
            version: Some(b"HTTP/1.1"),
            uri: Some(b"/handler/foo?x=1"),
            query: Some(b"x=1"),
            fragment: None,
            pattern: b"/handler/",
            url_scheme: b"http",
            remote_addr: b"127.0.0.1",
            headers,
            forwarded_for: Some(b"127.0.0.1"),
            extra: &[],
        }
    }

    fn encoded(protocol: Protocol, head: &RequestHead<'_>, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, protocol, b"SENDER", 1, head, body);
        out
    }

    #[test]
    fn json_form_is_byte_exact() {
        let headers: &[(&[u8], &[u8])] = &[
            (b"Host", b"127.0.0.1:19531"),
            (b"X-Dup", b"a"),
            (b"x-dup", b"b"),
            (b"X-Quote", br#"he said "hi" \back"#),
        ];
        let out = encoded(Protocol::Json, &head(headers), b"");
        let json = r#"{"PATH":"/handler/foo","host":"127.0.0.1:19531","x-dup":["a","b"],"x-quote":"he said \"hi\" \\back","x-forwarded-for":"127.0.0.1","METHOD":"GET","VERSION":"HTTP/1.1","URI":"/handler/foo?x=1","QUERY":"x=1","PATTERN":"/handler/","URL_SCHEME":"http","REMOTE_ADDR":"127.0.0.1"}"#;
        let expected = format!("SENDER 1 /handler/foo {}:{},0:,", json.len(), json);
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn tnetstring_form_is_byte_exact() {
        let headers: &[(&[u8], &[u8])] = &[(b"Host", b"h"), (b"X-Dup", b"1"), (b"X-DUP", b"2")];
        let mut h = head(headers);
        h.method = b"POST";
        h.forwarded_for = None;
        let out = encoded(Protocol::Tnetstring, &h, b"hello=world");
        let dict = "11:REMOTE_ADDR,9:127.0.0.1,6:METHOD,4:POST,10:URL_SCHEME,4:http,\
                    7:PATTERN,9:/handler/,5:QUERY,3:x=1,3:URI,16:/handler/foo?x=1,\
                    7:VERSION,8:HTTP/1.1,4:PATH,12:/handler/foo,4:host,1:h,5:x-dup,8:1:1,1:2,]";
        let expected = format!(
            "SENDER 1 /handler/foo {}:{}}}11:hello=world,",
            dict.len(),
            dict
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn notices_are_byte_exact() {
        let mut out = Vec::new();
        encode_disconnect(&mut out, Protocol::Json, b"SENDER", 7);
        assert_eq!(
            out,
            br#"SENDER 7 @* 17:{"METHOD":"JSON"},21:{"type":"disconnect"},"#
        );
        out.clear();
        encode_disconnect(&mut out, Protocol::Tnetstring, b"SENDER", 2);
        assert_eq!(
            out,
            br#"SENDER 2 @* 16:6:METHOD,4:JSON,}21:{"type":"disconnect"},"#
        );
        out.clear();
        encode_credits(&mut out, Protocol::Json, b"SENDER", 2, 42);
        assert_eq!(
            out,
            br#"SENDER 2 @* 41:{"METHOD":"JSON","DOWNLOAD_CREDITS":"42"},18:{"type":"credits"},"#
        );
        let req = Request::parse(&out).unwrap();
        assert!(req.is_credits() && !req.is_disconnect());
        assert_eq!(req.header("DOWNLOAD_CREDITS"), Some("42"));
    }

    #[test]
    fn headers_only_messages_are_byte_exact() {
        let headers: &[(&[u8], &[u8])] = &[(b"UPLOAD_STREAM", b"1024")];
        let mut out = Vec::new();
        encode_headers_only(
            &mut out,
            Protocol::Json,
            b"SENDER",
            7,
            b"/up",
            headers,
            b"hello",
        );
        assert_eq!(out, br#"SENDER 7 /up 24:{"UPLOAD_STREAM":"1024"},5:hello,"#);
        let req = Request::parse(&out).unwrap();
        assert_eq!(req.header("UPLOAD_STREAM"), Some("1024"));
        assert_eq!(req.body(), b"hello");
        out.clear();
        let last: &[(&[u8], &[u8])] = &[(b"UPLOAD_STREAM", b"5"), (b"UPLOAD_STREAM_DONE", b"1")];
        encode_headers_only(
            &mut out,
            Protocol::Tnetstring,
            b"SENDER",
            7,
            b"/up",
            last,
            b"",
        );
        assert_eq!(
            out,
            b"SENDER 7 /up 47:13:UPLOAD_STREAM,1:5,18:UPLOAD_STREAM_DONE,1:1,}0:,".as_slice()
        );
        let req = Request::parse(&out).unwrap();
        assert_eq!(req.header("UPLOAD_STREAM_DONE"), Some("1"));
    }

    #[test]
    fn json_is_valid_for_control_and_non_utf8_bytes() {
        let headers: &[(&[u8], &[u8])] = &[
            (b"X-Tab", b"a\tb\x01\x7f"),
            (b"X-Latin", b"caf\xe9"),
            (b"X-Utf8", "café ☃".as_bytes()),
        ];
        let out = encoded(Protocol::Json, &head(headers), b"body");
        let req = Request::parse(&out).unwrap();
        assert_eq!(req.header("x-tab"), Some("a\tb\u{1}\u{7f}"));
        assert_eq!(req.header("x-latin"), Some("café"));
        assert_eq!(req.header("x-utf8"), Some("café ☃"));
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.contains(r#""x-tab":"a\tb\u0001\u007f""#));
        // The same request in tnetstring form carries the exact bytes.
        let out = encoded(Protocol::Tnetstring, &head(headers), b"body");
        let req = Request::parse(&out).unwrap();
        assert_eq!(req.headers().get_bytes("x-latin"), Some(&b"caf\xe9"[..]));
    }

    #[test]
    fn forwarded_for_is_clobbered_or_kept() {
        let headers: &[(&[u8], &[u8])] = &[
            (b"X-Forwarded-For", b"6.6.6.6"),
            (b"x-forwarded-for", b"7.7.7.7"),
        ];
        let req = Request::parse(&encoded(Protocol::Json, &head(headers), b"")).unwrap();
        assert_eq!(
            req.headers().get_all("x-forwarded-for").collect::<Vec<_>>(),
            [b"127.0.0.1"]
        );
        let mut h = head(headers);
        h.forwarded_for = None;
        let req = Request::parse(&encoded(Protocol::Json, &h, b"")).unwrap();
        assert_eq!(
            req.headers().get_all("x-forwarded-for").collect::<Vec<_>>(),
            [&b"6.6.6.6"[..], b"7.7.7.7"]
        );
    }

    #[test]
    fn duplicates_are_capped() {
        let headers: Vec<(&[u8], &[u8])> = (0..8).map(|_| (&b"Cookie"[..], &b"c"[..])).collect();
        for protocol in [Protocol::Json, Protocol::Tnetstring] {
            let req = Request::parse(&encoded(protocol, &head(&headers), b"")).unwrap();
            assert_eq!(
                req.headers().get_all("cookie").count(),
                MAX_DUPLICATE_HEADERS
            );
        }
    }

    #[test]
    fn round_trip_both_forms_and_long_header_blocks() {
        let long = vec![b'v'; 20_000];
        let headers: &[(&[u8], &[u8])] = &[(b"X-Long", &long), (b"Accept", b"*/*")];
        for protocol in [Protocol::Json, Protocol::Tnetstring] {
            let out = encoded(protocol, &head(headers), b"hello");
            let req = Request::parse(&out).unwrap();
            assert_eq!(req.sender(), "SENDER");
            assert_eq!(req.conn_id(), 1);
            assert_eq!(req.path(), b"/handler/foo");
            assert_eq!(req.protocol(), protocol);
            assert_eq!(req.method(), Some("GET"));
            assert_eq!(req.header("PATTERN"), Some("/handler/"));
            assert_eq!(req.headers().get_bytes("x-long"), Some(&long[..]));
            assert_eq!(req.body(), b"hello");
            assert!(!req.should_close());
        }
    }

    #[test]
    fn should_close_follows_the_python_library() {
        let mut h = head(&[]);
        h.version = Some(b"HTTP/1.0");
        assert!(Request::parse(&encoded(Protocol::Json, &h, b""))
            .unwrap()
            .should_close());
        let headers: &[(&[u8], &[u8])] = &[(b"Connection", b"Close")];
        assert!(
            Request::parse(&encoded(Protocol::Json, &head(headers), b""))
                .unwrap()
                .should_close()
        );
    }

    #[test]
    fn parses_mongrel2_captures() {
        let msg = br#"SENDER 1 /handler/foo 56:{"PATH":"/handler/foo","x-dup":["a","b"],"METHOD":"GET"},0:,"#;
        let req = Request::parse(msg).unwrap();
        assert_eq!(
            req.headers().get_all("x-dup").collect::<Vec<_>>(),
            [b"a", b"b"]
        );
        let msg = br#"SENDER 2 @* 16:6:METHOD,4:JSON,}21:{"type":"disconnect"},"#;
        let req = Request::parse(msg).unwrap();
        assert!(req.is_disconnect());
        assert_eq!(req.path(), b"@*");
    }

    #[test]
    fn bad_messages_get_precise_errors() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "missing the space after the sender"),
            (b"S 1", "missing the space after the connection id"),
            (
                b"S x /p 2:{},0:,",
                "connection id \"x\" is not a decimal number",
            ),
            (
                b"S 99999999999999999999 /p 2:{},0:,",
                "is not a decimal number",
            ),
            (b"S 1 /p 2:[],0:,", "JSON headers"),
            (b"S 1 /p 2:{},0:", "body"),
            (b"S 1 /p 2:{},0:,x", "body"),
            (b"S 1 /p 2:{}#0:,", "header block"),
            (b"S 1 /p 2:{},0:]", "body: tag ']'"),
            (b"S 1 /p 8:1:a,1:1#}0:,", "header \"a\" is not a string"),
        ];
        for (msg, want) in cases {
            let err = Request::parse(msg).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "{:?}: {err} lacks {want:?}",
                String::from_utf8_lossy(msg)
            );
        }
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let headers: &[(&[u8], &[u8])] = &[(b"Host", b"h")];
        for protocol in [Protocol::Json, Protocol::Tnetstring] {
            let out = encoded(protocol, &head(headers), b"abc");
            for cut in 0..out.len() {
                assert!(Request::parse(&out[..cut]).is_err(), "cut at {cut}");
            }
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn token() -> impl Strategy<Value = Vec<u8>> {
            proptest::collection::vec(
                prop_oneof![b'a'..=b'z', b'A'..=b'Z', b'0'..=b'9', Just(b'-')],
                1..12,
            )
        }

        proptest! {
            #[test]
            fn encode_then_parse_keeps_every_header(
                headers in proptest::collection::vec((token(), proptest::collection::vec(any::<u8>(), 0..40)), 0..12),
                body in proptest::collection::vec(any::<u8>(), 0..200),
                id in any::<u64>(),
                tnet in any::<bool>(),
            ) {
                let protocol = if tnet { Protocol::Tnetstring } else { Protocol::Json };
                let pairs: Vec<(&[u8], &[u8])> = headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())).collect();
                let mut h = head(&pairs);
                h.forwarded_for = None;
                let mut out = Vec::new();
                encode(&mut out, protocol, b"S-1", id, &h, &body);
                let req = Request::parse(&out).unwrap();
                prop_assert_eq!(req.conn_id(), id);
                prop_assert_eq!(req.body(), &body[..]);
                // Each distinct name keeps its first MAX_DUPLICATE_HEADERS values, in order.
                for (name, _) in &headers {
                    let lower = String::from_utf8(name.to_ascii_lowercase()).unwrap();
                    let want: Vec<Vec<u8>> = headers.iter()
                        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                        .take(MAX_DUPLICATE_HEADERS)
                        .map(|(_, v)| v.clone()).collect();
                    let got: Vec<Vec<u8>> = req.headers().get_all(&lower).map(<[u8]>::to_vec).collect();
                    if tnet {
                        prop_assert_eq!(got, want);
                    } else {
                        prop_assert_eq!(got.len(), want.len());
                        for (g, w) in got.iter().zip(&want) {
                            // JSON: valid UTF-8 unchanged, other bytes as Latin-1.
                            if let Ok(text) = std::str::from_utf8(w) {
                                prop_assert_eq!(g.as_slice(), text.as_bytes());
                            }
                        }
                    }
                }
            }
        }
    }
}
