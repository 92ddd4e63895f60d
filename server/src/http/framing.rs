//! Where one HTTP response ends in a byte stream Kennel does not make.
//!
//! A Mongrel2 handler's reply bytes go to the client verbatim (PROTOCOL.md
//! §1.4): the server never parses or frames them. Kennel still needs to know
//! where each response ends, without changing a byte, so that the
//! responses of pipelined requests leave in request order (a static file
//! asked for after a handler route waits for the handler's response to be
//! complete), so that a handler's `101 Switching Protocols` switches a
//! connection to WebSocket, and so that the status can be logged.
//!
//! [`ResponseScanner`] follows the framing rules of RFC 9112 §6.3 over the
//! bytes as they pass: interim `1xx` responses, `101` (the stream becomes
//! another protocol), `204`/`304` and responses to `HEAD` (no body),
//! `Transfer-Encoding: chunked` (the chunk structure is followed, not
//! decoded), `Content-Length`, and otherwise "until the connection closes".
//! Bytes that are not an HTTP response (a handler streaming raw data) also
//! last until close. No I/O, no copy of a body; a response head is copied
//! into a small buffer only when it arrives in several pieces.

/// The longest response head followed (status line and headers): 64 KiB.
/// A longer one is treated as unframed (it lasts until close).
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Header slots for parsing a response head; a head with more lines is
/// treated as unframed.
const HEADER_SLOTS: usize = 128;

/// How far into a response the scanner is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Before or inside the status line and headers; `seen` bytes of them
    /// so far (`held` keeps them when the head is split across pieces).
    Head,
    /// `Content-Length` body bytes still to come.
    Fixed(u64),
    /// Following a chunked body.
    Chunked(Chunk),
    /// No framing: the response lasts until the connection closes.
    UntilClose,
    /// After a `101`: the bytes are another protocol's.
    Upgraded,
    /// The response is complete.
    Done,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In a chunk-size line: the size so far, whether a digit was seen and
    /// whether the extensions started.
    Size { size: u64, digit: bool, ext: bool },
    /// Chunk data bytes still to come.
    Data(u64),
    /// The line end after chunk data.
    DataEnd,
    /// In the trailer section; `empty` while the current line is empty.
    Trailer { empty: bool },
}

/// What one response turned out to be, once its end (or its kind) is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Complete: the next byte starts the next response.
    Complete {
        /// The final status.
        status: u16,
    },
    /// A `101 Switching Protocols`: everything after its head belongs to
    /// the new protocol.
    Upgraded,
    /// The response has no framing; it ends when the connection closes.
    UntilClose {
        /// The status, if the bytes were an HTTP response at all.
        status: Option<u16>,
    },
}

/// Follows one response's framing over the bytes that carry it.
#[derive(Debug, Clone)]
pub struct ResponseScanner {
    state: State,
    /// The request was `HEAD`: the response has no body.
    head_request: bool,
    /// Head bytes kept while the head arrives in pieces.
    held: Vec<u8>,
    status: Option<u16>,
    /// A `101` that named extensions (`Sec-WebSocket-Extensions`).
    extensions: bool,
}

impl ResponseScanner {
    /// A scanner for the response to a request; `head_request` when the
    /// request's method was `HEAD`.
    pub fn new(head_request: bool) -> Self {
        ResponseScanner {
            state: State::Head,
            head_request,
            held: Vec::new(),
            status: None,
            extensions: false,
        }
    }

    /// Whether the `101` the stream switched with named WebSocket
    /// extensions (`Sec-WebSocket-Extensions`): then frames may carry the
    /// RSV bits those use.
    pub fn negotiated_extensions(&self) -> bool {
        self.extensions
    }

    /// The final status, once the head has been read.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Whether no byte of the response has been seen.
    pub fn is_fresh(&self) -> bool {
        self.state == State::Head && self.held.is_empty()
    }

    /// Scans `bytes`, the next bytes of the stream. Returns how many of them
    /// belong to this response, and what the response is once that is
    /// known: `(n, Some(Complete))` means the response ended after `n`
    /// bytes (the rest belong to the next one); `(bytes.len(), None)` that
    /// all of them belong to it and more are to come. `UntilClose` and
    /// `Upgraded` take every byte from then on.
    pub fn scan(&mut self, bytes: &[u8]) -> (usize, Option<Outcome>) {
        let mut at = 0;
        loop {
            match self.state {
                State::Done => {
                    let status = self.status.unwrap_or(0);
                    return (at, Some(Outcome::Complete { status }));
                }
                State::UntilClose => {
                    return (
                        bytes.len(),
                        Some(Outcome::UntilClose {
                            status: self.status,
                        }),
                    )
                }
                State::Upgraded => return (bytes.len(), Some(Outcome::Upgraded)),
                _ if at == bytes.len() => return (at, None),
                State::Head => at += self.scan_head(&bytes[at..]),
                State::Fixed(remaining) => {
                    let n = usize::try_from(remaining)
                        .map_or(bytes.len() - at, |r| r.min(bytes.len() - at));
                    at += n;
                    let remaining = remaining - n as u64;
                    self.state = if remaining == 0 {
                        State::Done
                    } else {
                        State::Fixed(remaining)
                    };
                }
                State::Chunked(chunk) => at += self.scan_chunked(chunk, &bytes[at..]),
            }
        }
    }

    /// Accounts for `len` bytes the caller sends without showing them (a
    /// file sent with `sendfile(2)`). Possible only where the framing does
    /// not depend on their content: a `Content-Length` body with at least
    /// `len` bytes to go, or a response that lasts until close. `None`:
    /// the bytes must go through [`scan`](Self::scan) instead. `Some(x)`:
    /// they were accounted for, and `x` is what [`scan`](Self::scan) would
    /// have said.
    pub fn skip(&mut self, len: u64) -> Option<Option<Outcome>> {
        match self.state {
            State::Fixed(remaining) if remaining >= len => {
                if remaining == len {
                    self.state = State::Done;
                    let status = self.status.unwrap_or(0);
                    Some(Some(Outcome::Complete { status }))
                } else {
                    self.state = State::Fixed(remaining - len);
                    Some(None)
                }
            }
            State::UntilClose => Some(Some(Outcome::UntilClose {
                status: self.status,
            })),
            State::Upgraded => Some(Some(Outcome::Upgraded)),
            _ => None,
        }
    }

    /// Consumes head bytes; on the blank line that ends the head, decides
    /// how the body is framed.
    fn scan_head(&mut self, bytes: &[u8]) -> usize {
        let Some(end) = head_end(&self.held, bytes) else {
            if self.held.len() + bytes.len() > MAX_RESPONSE_HEAD {
                self.held = Vec::new();
                self.state = State::UntilClose;
            } else {
                self.held.extend_from_slice(bytes);
            }
            return bytes.len();
        };
        if self.held.len() + end > MAX_RESPONSE_HEAD {
            // Too long, even though its end is here: unframed, as when the
            // same head arrives in pieces.
            self.held = Vec::new();
            self.state = State::UntilClose;
            return end;
        }
        let (framing, extensions) = if self.held.is_empty() {
            let head = &bytes[..end];
            let framing = framing(head, self.head_request);
            let upgraded = matches!(framing, Some((_, State::Upgraded)));
            (framing, upgraded && names_extensions(head))
        } else {
            self.held.extend_from_slice(&bytes[..end]);
            let held = std::mem::take(&mut self.held);
            let framing = framing(&held, self.head_request);
            let upgraded = matches!(framing, Some((_, State::Upgraded)));
            (framing, upgraded && names_extensions(&held))
        };
        self.extensions = extensions;
        match framing {
            Some((status, next)) => {
                if next == State::Head {
                    // An interim 1xx: the final response follows.
                } else {
                    self.status = Some(status);
                }
                self.state = next;
            }
            None => self.state = State::UntilClose,
        }
        end
    }

    /// Follows chunk framing (lenient about bare LF: the bytes go out
    /// unchanged, only their boundary is wanted here).
    fn scan_chunked(&mut self, mut chunk: Chunk, bytes: &[u8]) -> usize {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            chunk = match chunk {
                Chunk::Data(remaining) => {
                    let n = usize::try_from(remaining)
                        .map_or(bytes.len() - i, |r| r.min(bytes.len() - i));
                    i += n;
                    let remaining = remaining - n as u64;
                    if remaining == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(remaining)
                    }
                }
                Chunk::Size { size, digit, ext } => {
                    i += 1;
                    match b {
                        b'\n' if !digit => return self.unframed(i),
                        b'\n' if size == 0 => Chunk::Trailer { empty: true },
                        b'\n' => Chunk::Data(size),
                        b'\r' => chunk,
                        _ if ext => chunk,
                        b';' | b' ' | b'\t' => Chunk::Size {
                            size,
                            digit,
                            ext: true,
                        },
                        _ => match (b as char).to_digit(16) {
                            Some(d) => match size.checked_mul(16) {
                                Some(s) => Chunk::Size {
                                    size: s + u64::from(d),
                                    digit: true,
                                    ext,
                                },
                                None => return self.unframed(i),
                            },
                            None => return self.unframed(i),
                        },
                    }
                }
                Chunk::DataEnd => {
                    i += 1;
                    match b {
                        b'\r' => chunk,
                        b'\n' => Chunk::Size {
                            size: 0,
                            digit: false,
                            ext: false,
                        },
                        _ => return self.unframed(i),
                    }
                }
                Chunk::Trailer { empty } => {
                    i += 1;
                    match b {
                        b'\r' => chunk,
                        b'\n' if empty => {
                            self.state = State::Done;
                            return i;
                        }
                        b'\n' => Chunk::Trailer { empty: true },
                        _ => Chunk::Trailer { empty: false },
                    }
                }
            };
        }
        self.state = State::Chunked(chunk);
        i
    }

    /// The chunk framing broke: whatever follows lasts until close.
    fn unframed(&mut self, consumed: usize) -> usize {
        self.state = State::UntilClose;
        consumed
    }
}

/// Where the head ends in `held` + `bytes`, as an offset into `bytes` just
/// past the blank line (`\r\n\r\n` or `\n\n`, or a mix). Line ends before
/// the status line are not a blank line.
fn head_end(held: &[u8], bytes: &[u8]) -> Option<usize> {
    let is_eol = |b: &u8| *b == b'\r' || *b == b'\n';
    let mut content = held.iter().any(|b| !is_eol(b));
    let (mut p2, mut p1) = match held {
        [.., a, b] => (*a, *b),
        [b] => (0, *b),
        [] => (0, 0),
    };
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' && content && (p1 == b'\n' || (p1 == b'\r' && p2 == b'\n')) {
            return Some(i + 1);
        }
        content |= !is_eol(&b);
        (p2, p1) = (p1, b);
    }
    None
}

/// Whether a head has a `Sec-WebSocket-Extensions` field.
fn names_extensions(head: &[u8]) -> bool {
    let mut slots = [httparse::EMPTY_HEADER; HEADER_SLOTS];
    let mut response = httparse::Response::new(&mut slots);
    let start = head
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(head.len());
    response.parse(&head[start..]).is_ok()
        && response
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
}

/// The status and the body framing of a complete response head; `None` if
/// it is not an HTTP/1.x response head.
fn framing(head: &[u8], head_request: bool) -> Option<(u16, State)> {
    let mut slots = [httparse::EMPTY_HEADER; HEADER_SLOTS];
    let mut response = httparse::Response::new(&mut slots);
    let start = head
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(head.len());
    match response.parse(&head[start..]) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    let status = response.code?;
    if status == 101 {
        return Some((status, State::Upgraded));
    }
    if (100..200).contains(&status) {
        return Some((status, State::Head));
    }
    if head_request || status == 204 || status == 304 {
        return Some((status, State::Done));
    }
    let mut chunked = false;
    let mut length = None;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = super::list_elements(header.value)
                .filter(|e| !e.is_empty())
                .last()
                .is_some_and(|last| last.eq_ignore_ascii_case(b"chunked"));
            if !chunked {
                return Some((status, State::UntilClose));
            }
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(super::trim_ows(header.value)).ok()?;
            match (length, value.parse::<u64>()) {
                (None, Ok(n)) => length = Some(n),
                (Some(m), Ok(n)) if m == n => {}
                _ => return Some((status, State::UntilClose)),
            }
        }
    }
    let next = if chunked {
        State::Chunked(Chunk::Size {
            size: 0,
            digit: false,
            ext: false,
        })
    } else {
        match length {
            Some(0) => State::Done,
            Some(n) => State::Fixed(n),
            None => State::UntilClose,
        }
    };
    Some((status, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `stream` cut at `cuts` and returns each response's byte count
    /// and outcome.
    fn responses(stream: &[u8], head_request: bool, cuts: &[usize]) -> Vec<(usize, Outcome)> {
        let mut pieces = Vec::new();
        let mut last = 0;
        for &cut in cuts {
            pieces.push(&stream[last..cut]);
            last = cut;
        }
        pieces.push(&stream[last..]);
        let mut out = Vec::new();
        let mut scanner = ResponseScanner::new(head_request);
        let mut len = 0;
        for piece in pieces {
            let mut rest = piece;
            loop {
                let (n, outcome) = scanner.scan(rest);
                len += n;
                rest = &rest[n..];
                match outcome {
                    Some(o @ Outcome::Complete { .. }) => {
                        out.push((len, o));
                        len = 0;
                        scanner = ResponseScanner::new(head_request);
                        if rest.is_empty() {
                            break;
                        }
                    }
                    Some(o) => {
                        if rest.is_empty() {
                            if out.last().map(|(_, x)| *x) != Some(o) {
                                out.push((len, o));
                            } else if let Some(last) = out.last_mut() {
                                last.0 = len;
                            }
                            break;
                        }
                    }
                    None => break,
                }
            }
        }
        out
    }

    fn every_split(stream: &[u8], head_request: bool) -> Vec<(usize, Outcome)> {
        let whole = responses(stream, head_request, &[]);
        for cut in 1..stream.len() {
            assert_eq!(
                responses(stream, head_request, &[cut]),
                whole,
                "split at {cut}"
            );
        }
        let singles: Vec<usize> = (1..stream.len()).collect();
        assert_eq!(
            responses(stream, head_request, &singles),
            whole,
            "byte by byte"
        );
        whole
    }

    fn complete(len: usize, status: u16) -> (usize, Outcome) {
        (len, Outcome::Complete { status })
    }

    #[test]
    fn content_length_responses_end_where_they_say() {
        let a = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let b = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        let stream = [&a[..], &b[..]].concat();
        assert_eq!(
            every_split(&stream, false),
            [complete(a.len(), 200), complete(b.len(), 404)]
        );
    }

    #[test]
    fn chunked_responses_follow_the_chunks_and_trailers() {
        let a = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
        let b = b"HTTP/1.1 200 OK\nTransfer-Encoding: gzip, Chunked\n\n3\nabc\n0\n\n";
        let c = b"HTTP/1.1 204 No Content\r\n\r\n";
        let stream = [&a[..], &b[..], &c[..]].concat();
        assert_eq!(
            every_split(&stream, false),
            [
                complete(a.len(), 200),
                complete(b.len(), 200),
                complete(c.len(), 204)
            ]
        );
    }

    #[test]
    fn interim_responses_belong_to_the_final_one() {
        let a = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(every_split(a, false), [complete(a.len(), 201)]);
    }

    #[test]
    fn head_requests_304_and_204_have_no_body() {
        let a = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
        assert_eq!(every_split(a, true), [complete(a.len(), 200)]);
        let b = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\nETag: \"x\"\r\n\r\n";
        assert_eq!(every_split(b, false), [complete(b.len(), 304)]);
    }

    #[test]
    fn unframed_and_non_http_bytes_last_until_close() {
        let a = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\npart 0\npart 1\n";
        assert_eq!(
            every_split(a, false),
            [(a.len(), Outcome::UntilClose { status: Some(200) })]
        );
        let b = b"broadcast!";
        let mut scanner = ResponseScanner::new(false);
        assert_eq!(scanner.scan(b), (b.len(), None));
        assert_eq!(
            scanner.scan(b"\r\n\r\nmore"),
            (8, Some(Outcome::UntilClose { status: None }))
        );
        let c = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
        assert_eq!(
            every_split(c, false),
            [(c.len(), Outcome::UntilClose { status: Some(200) })]
        );
        let d = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(
            every_split(d, false),
            [(d.len(), Outcome::UntilClose { status: Some(200) })]
        );
    }

    #[test]
    fn a_101_that_names_extensions_is_noticed() {
        let with = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
        for cut in 1..with.len() {
            let mut scanner = ResponseScanner::new(false);
            scanner.scan(&with[..cut]);
            assert_eq!(scanner.scan(&with[cut..]).1, Some(Outcome::Upgraded));
            assert!(scanner.negotiated_extensions(), "cut at {cut}");
        }
        let mut without = ResponseScanner::new(false);
        without.scan(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
        assert!(!without.negotiated_extensions());
    }

    #[test]
    fn switching_protocols_takes_the_rest_of_the_stream() {
        let a = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi";
        assert_eq!(every_split(a, false), [(a.len(), Outcome::Upgraded)]);
    }

    #[test]
    fn file_bytes_can_be_skipped_inside_a_known_length() {
        let mut scanner = ResponseScanner::new(false);
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(scanner.scan(head), (head.len(), None));
        assert_eq!(scanner.skip(11), None, "more than the body");
        assert_eq!(scanner.skip(4), Some(None));
        assert_eq!(
            scanner.skip(6),
            Some(Some(Outcome::Complete { status: 200 }))
        );
        // Inside a head, or a chunked body, the bytes must be seen.
        assert_eq!(ResponseScanner::new(false).skip(1), None);
        let mut chunked = ResponseScanner::new(false);
        chunked.scan(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(chunked.skip(1), None);
        let mut unframed = ResponseScanner::new(false);
        unframed.scan(b"HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!(
            unframed.skip(1 << 40),
            Some(Some(Outcome::UntilClose { status: Some(200) }))
        );
    }

    #[test]
    fn an_endless_head_is_unframed() {
        let mut scanner = ResponseScanner::new(false);
        let line = vec![b'x'; 1024];
        let mut outcome = None;
        for _ in 0..(MAX_RESPONSE_HEAD / 1024 + 2) {
            outcome = scanner.scan(&line).1;
            if outcome.is_some() {
                break;
            }
        }
        assert_eq!(outcome, Some(Outcome::UntilClose { status: None }));
        assert!(scanner.held.capacity() == 0);
    }

    /// A complete head over the limit is unframed whether it comes in one
    /// piece or several; one at the limit is followed either way.
    #[test]
    fn the_head_limit_does_not_depend_on_the_pieces() {
        let head = |len: usize| {
            let start = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: ";
            let mut head = start.to_vec();
            head.resize(len - 4, b'a');
            head.extend_from_slice(b"\r\n\r\n");
            head
        };
        for (len, framed) in [
            (MAX_RESPONSE_HEAD, true),
            (MAX_RESPONSE_HEAD + 1, false),
            (70_000, false),
        ] {
            let mut stream = head(len);
            stream.extend_from_slice(b"ok");
            let expected = if framed {
                vec![complete(stream.len(), 200)]
            } else {
                vec![(stream.len(), Outcome::UntilClose { status: None })]
            };
            let whole = responses(&stream, false, &[]);
            let cuts: Vec<usize> = (1024..stream.len()).step_by(1024).collect();
            let pieces = responses(&stream, false, &cuts);
            assert_eq!(
                (whole, pieces),
                (expected.clone(), expected),
                "{len}-byte head"
            );
        }
    }
}
