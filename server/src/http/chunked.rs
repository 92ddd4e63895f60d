//! The chunked transfer-coding decoder (RFC 9112 §7.1) for request bodies.
//!
//! [`ChunkedDecoder`] is a state machine fed from the connection's read
//! buffer: it consumes what it can, appends the decoded data to an output
//! buffer and says whether the body is complete. It owns the limits of a
//! chunked body: the decoded size (413), the chunk-size line length and the
//! trailer section size; chunk extensions are ignored and trailers are read
//! and discarded. The hex size itself is parsed by
//! `httparse::parse_chunk_size`. No I/O: the caller reads and calls again.
//!
//! Every line of a chunked body (chunk-size lines, the CRLF after chunk
//! data, trailer lines and the last empty line) must end in CRLF, as
//! RFC 9112 §7.1 writes it: a bare LF is a 400
//! ([`HttpError::ChunkedLineEnding`], or
//! [`HttpError::MissingChunkTerminator`] after data) and the connection
//! closes. A body that one parser reads with bare-LF lines and another
//! without ends in different places, and what follows the shorter reading
//! would be taken as a new request (request smuggling); so nothing after a
//! malformed body is ever parsed. The head still accepts bare LF, as
//! Mongrel2 does (PROTOCOL.md §1.8): it is delimited the same way whatever
//! the line ends.

use bytes::{Buf, BytesMut};

use super::HttpError;

/// The longest chunk-size line (size, extensions, line end) accepted:
/// 4 KiB. Extensions are ignored, so this only bounds what a client can make
/// us buffer before the data starts; 400 beyond it.
pub const MAX_CHUNK_SIZE_LINE: usize = 4096;

/// The default bound on the trailer section (all trailer lines and the final
/// empty line): 4 KiB, Mongrel2's `limits.buffer_size` default. Trailers are
/// discarded, so this only bounds buffering; 431 beyond it. Set another with
/// [`ChunkedDecoder::with_max_trailers`].
pub const DEFAULT_MAX_TRAILERS: usize = 4096;

/// The longest size part (hex digits and whitespace before `;`) handed to
/// `httparse`: 16 digits plus generous room for whitespace. Longer is 400.
const MAX_SIZE_PART: usize = 64;

/// Where the decoder is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, this many bytes to go.
    Data { remaining: u64 },
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty line; `seen`
    /// bytes of trailer section so far.
    Trailers { seen: usize },
    /// The body is complete.
    Done,
}

/// Decodes a chunked request body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    total: u64,
    max_body: u64,
    max_trailers: usize,
}

impl ChunkedDecoder {
    /// A decoder refusing (413) a body whose decoded size exceeds
    /// `max_body`, with trailers bounded by [`DEFAULT_MAX_TRAILERS`].
    pub fn new(max_body: u64) -> Self {
        Self {
            state: State::Size,
            total: 0,
            max_body,
            max_trailers: DEFAULT_MAX_TRAILERS,
        }
    }

    /// Bounds the trailer section to `max_trailers` bytes (use the head's
    /// `max_head`).
    pub fn with_max_trailers(mut self, max_trailers: usize) -> Self {
        self.max_trailers = max_trailers;
        self
    }

    /// Decoded bytes so far.
    pub fn decoded_len(&self) -> u64 {
        self.total
    }

    /// Whether the whole body (trailers and final line included) has been
    /// consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes what it can from `buf`, appending decoded data to `out`.
    /// `Ok(true)`: the body (trailers and final CRLF included) is complete
    /// and what follows it is still in `buf`; `Ok(false)`: need more bytes
    /// (everything useful was consumed). After an error the decoder's state
    /// is meaningless: the caller refuses the request and closes.
    pub fn decode(&mut self, buf: &mut BytesMut, out: &mut BytesMut) -> Result<bool, HttpError> {
        self.decode_at_most(buf, out, usize::MAX)
    }

    /// As [`decode`](Self::decode), but stops appending data once `out`
    /// holds `limit` bytes (a streamed upload's credits): the data beyond
    /// stays in `buf`. Framing after the last data byte is still consumed,
    /// so a body whose last chunk fits is done.
    pub fn decode_at_most(
        &mut self,
        buf: &mut BytesMut,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<bool, HttpError> {
        loop {
            match self.state {
                State::Size => {
                    let window = &buf[..buf.len().min(MAX_CHUNK_SIZE_LINE)];
                    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
                        if buf.len() >= MAX_CHUNK_SIZE_LINE {
                            return Err(HttpError::ChunkSizeLineTooLong {
                                limit: MAX_CHUNK_SIZE_LINE,
                            });
                        }
                        return Ok(false);
                    };
                    let line = crlf_line(&buf[..nl])?;
                    let size = chunk_size(line)?;
                    let total = self.total.checked_add(size);
                    if total.is_none_or(|t| t > self.max_body) {
                        return Err(HttpError::BodyTooLarge {
                            limit: self.max_body,
                        });
                    }
                    buf.advance(nl + 1);
                    self.state = if size == 0 {
                        State::Trailers { seen: 0 }
                    } else {
                        State::Data { remaining: size }
                    };
                }
                State::Data { remaining } => {
                    let room = limit.saturating_sub(out.len());
                    if buf.is_empty() || room == 0 {
                        return Ok(false);
                    }
                    let n = usize::try_from(remaining)
                        .map_or(buf.len(), |r| r.min(buf.len()))
                        .min(room);
                    out.extend_from_slice(&buf[..n]);
                    buf.advance(n);
                    self.total += n as u64;
                    let remaining = remaining - n as u64;
                    self.state = if remaining == 0 {
                        State::DataEnd
                    } else {
                        State::Data { remaining }
                    };
                }
                State::DataEnd => match buf.first() {
                    None => return Ok(false),
                    Some(b'\r') => match buf.get(1) {
                        None => return Ok(false),
                        Some(b'\n') => {
                            buf.advance(2);
                            self.state = State::Size;
                        }
                        Some(_) => return Err(HttpError::MissingChunkTerminator),
                    },
                    Some(_) => return Err(HttpError::MissingChunkTerminator),
                },
                State::Trailers { seen } => {
                    let room = self.max_trailers.saturating_sub(seen);
                    let window = &buf[..buf.len().min(room)];
                    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
                        if buf.len() >= room {
                            return Err(HttpError::TrailersTooLarge {
                                limit: self.max_trailers,
                            });
                        }
                        return Ok(false);
                    };
                    let empty = crlf_line(&buf[..nl])?.is_empty();
                    buf.advance(nl + 1);
                    self.state = if empty {
                        State::Done
                    } else {
                        State::Trailers {
                            seen: seen + nl + 1,
                        }
                    };
                }
                State::Done => return Ok(true),
            }
        }
    }
}

/// A line of the body without its CRLF; `line` is everything before the
/// LF, which must end in CR.
fn crlf_line(line: &[u8]) -> Result<&[u8], HttpError> {
    line.strip_suffix(b"\r").ok_or(HttpError::ChunkedLineEnding)
}

/// The size on a chunk-size line (`line` without its CRLF). Extensions
/// (after `;`) are ignored; the size part goes to
/// `httparse::parse_chunk_size` with a CRLF.
fn chunk_size(line: &[u8]) -> Result<u64, HttpError> {
    let size_part = match line.iter().position(|&b| b == b';') {
        Some(semi) => &line[..semi],
        None => line,
    };
    // parse_chunk_size reads an empty size as 0; a size needs a digit.
    if !size_part.first().is_some_and(u8::is_ascii_hexdigit) || size_part.len() > MAX_SIZE_PART {
        return Err(HttpError::InvalidChunkSize);
    }
    let mut scratch = [0u8; MAX_SIZE_PART + 2];
    scratch[..size_part.len()].copy_from_slice(size_part);
    scratch[size_part.len()..size_part.len() + 2].copy_from_slice(b"\r\n");
    match httparse::parse_chunk_size(&scratch[..size_part.len() + 2]) {
        Ok(httparse::Status::Complete((_, size))) => Ok(size),
        _ => Err(HttpError::InvalidChunkSize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes `input` fed in one piece; returns (decoded, leftover).
    fn decode_all(input: &[u8], max_body: u64) -> Result<(Vec<u8>, Vec<u8>), HttpError> {
        let mut buf = BytesMut::from(input);
        let mut out = BytesMut::new();
        let mut decoder = ChunkedDecoder::new(max_body);
        if decoder.decode(&mut buf, &mut out)? {
            Ok((out.to_vec(), buf.to_vec()))
        } else {
            panic!("incomplete: {:?}", String::from_utf8_lossy(input));
        }
    }

    /// Feeds `input` one byte at a time; returns (decoded, leftover).
    fn decode_bytewise(input: &[u8], max_body: u64) -> Result<(Vec<u8>, Vec<u8>), HttpError> {
        let mut buf = BytesMut::new();
        let mut out = BytesMut::new();
        let mut decoder = ChunkedDecoder::new(max_body);
        for (i, &b) in input.iter().enumerate() {
            buf.extend_from_slice(&[b]);
            if decoder.decode(&mut buf, &mut out)? {
                let mut rest = buf.to_vec();
                rest.extend_from_slice(&input[i + 1..]);
                return Ok((out.to_vec(), rest));
            }
        }
        panic!("incomplete: {:?}", String::from_utf8_lossy(input));
    }

    /// Feeds `input` split at `at` into two reads.
    fn decode_split(input: &[u8], at: usize) -> Result<(Vec<u8>, Vec<u8>), HttpError> {
        let mut buf = BytesMut::from(&input[..at]);
        let mut out = BytesMut::new();
        let mut decoder = ChunkedDecoder::new(u64::MAX);
        if decoder.decode(&mut buf, &mut out)? {
            let mut rest = buf.to_vec();
            rest.extend_from_slice(&input[at..]);
            return Ok((out.to_vec(), rest));
        }
        buf.extend_from_slice(&input[at..]);
        assert!(decoder.decode(&mut buf, &mut out)?, "incomplete");
        Ok((out.to_vec(), buf.to_vec()))
    }

    const BODY: &[u8] =
        b"5\r\nhello\r\n7;ext=1;q=\"x\"\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\nGET /next";

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let (data, rest) = decode_all(BODY, 1024).unwrap();
        assert_eq!(data, b"hello, world");
        assert_eq!(rest, b"GET /next");
    }

    #[test]
    fn every_split_gives_the_same_bytes() {
        for at in 0..=BODY.len() {
            let (data, rest) = decode_split(BODY, at).unwrap();
            assert_eq!(data, b"hello, world", "split at {at}");
            assert_eq!(rest, b"GET /next", "split at {at}");
        }
        let (data, rest) = decode_bytewise(BODY, 1024).unwrap();
        assert_eq!(data, b"hello, world");
        assert_eq!(rest, b"GET /next");
    }

    #[test]
    fn decoding_at_most_a_limit_leaves_the_rest_in_the_buffer() {
        for limit in 1..=12 {
            let mut buf = BytesMut::from(BODY);
            let mut decoder = ChunkedDecoder::new(1024);
            let mut data = Vec::new();
            let mut rounds = 0;
            loop {
                let mut out = BytesMut::new();
                let done = decoder.decode_at_most(&mut buf, &mut out, limit).unwrap();
                assert!(out.len() <= limit, "limit {limit}: {} bytes", out.len());
                data.extend_from_slice(&out);
                rounds += 1;
                if done {
                    break;
                }
                assert!(!out.is_empty(), "limit {limit}: no progress");
            }
            assert_eq!(data, b"hello, world", "limit {limit}");
            assert_eq!(&buf[..], b"GET /next", "limit {limit}");
            // Slices run across chunk boundaries, and the framing after the
            // last byte goes with the last slice.
            assert_eq!(rounds, 12usize.div_ceil(limit), "limit {limit}");
        }
    }

    /// Every line of a body with one bare LF, and the bytes after it.
    const BARE_LF: &[(&[u8], HttpError)] = &[
        (b"5\nhello\r\n0\r\n\r\n", HttpError::ChunkedLineEnding),
        (b"5;ext=1\nhello\r\n0\r\n\r\n", HttpError::ChunkedLineEnding),
        (b"5\r\nhello\n0\r\n\r\n", HttpError::MissingChunkTerminator),
        (b"5\r\nhello\r\n0\n\r\n", HttpError::ChunkedLineEnding),
        (
            b"5\r\nhello\r\n0\r\nT: 1\n\r\n",
            HttpError::ChunkedLineEnding,
        ),
        (
            b"5\r\nhello\r\n0\r\nT: 1\r\n\n",
            HttpError::ChunkedLineEnding,
        ),
        (b"5\r\nhello\r\n0\r\n\n", HttpError::ChunkedLineEnding),
        (b"\n", HttpError::ChunkedLineEnding),
        (b"5\rx\n", HttpError::ChunkedLineEnding),
        // The smuggling shape: all bare LF, then a request.
        (
            b"5\nhello\n0\n\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
            HttpError::ChunkedLineEnding,
        ),
    ];

    /// Feeds `input` split at `at` into two reads and returns the error;
    /// panics if the body completes.
    fn error_at_split(input: &[u8], at: usize) -> HttpError {
        let mut decoder = ChunkedDecoder::new(u64::MAX);
        let mut out = BytesMut::new();
        let mut buf = BytesMut::from(&input[..at]);
        let first = decoder.decode(&mut buf, &mut out);
        let result = match first {
            Ok(false) => {
                buf.extend_from_slice(&input[at..]);
                decoder.decode(&mut buf, &mut out)
            }
            other => other,
        };
        match result {
            Err(e) => e,
            Ok(done) => panic!(
                "{:?} split at {at}: accepted (done {done}), decoded {:?}",
                String::from_utf8_lossy(input),
                String::from_utf8_lossy(&out)
            ),
        }
    }

    #[test]
    fn a_bare_lf_anywhere_in_the_body_is_400_at_every_split() {
        for (input, expected) in BARE_LF {
            for at in 0..=input.len() {
                assert_eq!(
                    &error_at_split(input, at),
                    expected,
                    "{:?} split at {at}",
                    String::from_utf8_lossy(input)
                );
            }
            assert_eq!(
                &decode_bytewise(input, 100).unwrap_err(),
                expected,
                "{:?} byte by byte",
                String::from_utf8_lossy(input)
            );
            assert_eq!(expected.status(), 400);
        }
    }

    #[test]
    fn a_bare_lf_is_refused_as_soon_as_its_line_ends() {
        // Nothing after the bad line is needed to refuse it.
        for input in [
            &b"5\n"[..],
            b"5\r\nhello\n",
            b"5\r\nhello\r\n0\n",
            b"5\r\nhello\r\n0\r\n\n",
        ] {
            let mut buf = BytesMut::from(input);
            assert!(ChunkedDecoder::new(100)
                .decode(&mut buf, &mut BytesMut::new())
                .is_err());
        }
    }

    #[test]
    fn hex_sizes_either_case_and_whitespace_before_extensions() {
        let mut input = b"A\r\n0123456789\r\nb \t;e\r\n".to_vec();
        input.extend_from_slice(&[b'x'; 11]);
        input.extend_from_slice(b"\r\n000\r\n\r\n");
        let (data, rest) = decode_all(&input, 100).unwrap();
        assert_eq!(data.len(), 21);
        assert!(rest.is_empty());
    }

    #[test]
    fn empty_body_is_just_the_last_chunk() {
        assert_eq!(decode_all(b"0\r\n\r\n", 0).unwrap(), (vec![], vec![]));
    }

    #[test]
    fn sixteen_hex_digits_parse_and_seventeen_are_refused() {
        // 16 digits: a valid size, refused only because it is too large.
        let mut buf = BytesMut::from(&b"ffffffffffffffff\r\n"[..]);
        let err = ChunkedDecoder::new(1 << 20)
            .decode(&mut buf, &mut BytesMut::new())
            .unwrap_err();
        assert_eq!(err, HttpError::BodyTooLarge { limit: 1 << 20 });
        assert_eq!(err.status(), 413);
        // Leading zeros count as digits too.
        let mut buf = BytesMut::from(&b"0000000000000001\r\nx\r\n0\r\n\r\n"[..]);
        assert!(ChunkedDecoder::new(10)
            .decode(&mut buf, &mut BytesMut::new())
            .unwrap());
        let mut buf = BytesMut::from(&b"10000000000000000\r\n"[..]);
        let err = ChunkedDecoder::new(u64::MAX)
            .decode(&mut buf, &mut BytesMut::new())
            .unwrap_err();
        assert_eq!(err, HttpError::InvalidChunkSize);
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn bad_size_lines_are_400() {
        for bad in [
            &b"\r\n"[..],
            b"-1\r\n",
            b"+1\r\n",
            b"0x10\r\n",
            b"g\r\n",
            b" 5\r\n",
            b"5 5\r\n",
            b";ext\r\n",
            b"5\r\r\n",
        ] {
            let mut buf = BytesMut::from(bad);
            let err = ChunkedDecoder::new(100)
                .decode(&mut buf, &mut BytesMut::new())
                .unwrap_err();
            assert_eq!(
                err,
                HttpError::InvalidChunkSize,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn long_size_line_is_refused_without_waiting() {
        let mut line = b"5;".to_vec();
        line.resize(MAX_CHUNK_SIZE_LINE, b'a');
        let mut buf = BytesMut::from(&line[..]);
        let err = ChunkedDecoder::new(100)
            .decode(&mut buf, &mut BytesMut::new())
            .unwrap_err();
        assert_eq!(
            err,
            HttpError::ChunkSizeLineTooLong {
                limit: MAX_CHUNK_SIZE_LINE
            }
        );
        // One byte less, ending in CRLF, is fine.
        line.truncate(MAX_CHUNK_SIZE_LINE - 2);
        line.extend_from_slice(b"\r\n");
        line.extend_from_slice(b"hello\r\n0\r\n\r\n");
        assert_eq!(decode_all(&line, 100).unwrap().0, b"hello");
        // A line still short of the limit just waits.
        let mut buf = BytesMut::from(&line[..MAX_CHUNK_SIZE_LINE - 1]);
        assert!(!ChunkedDecoder::new(100)
            .decode(&mut buf, &mut BytesMut::new())
            .unwrap());
    }

    #[test]
    fn data_must_end_in_crlf() {
        for bad in [
            &b"3\r\nabcX\r\n"[..],
            b"3\r\nabc\rX",
            b"3\r\nabc0\r\n\r\n",
            b"3\r\nabc\n0\r\n\r\n",
        ] {
            let mut buf = BytesMut::from(bad);
            let err = ChunkedDecoder::new(100)
                .decode(&mut buf, &mut BytesMut::new())
                .unwrap_err();
            assert_eq!(err, HttpError::MissingChunkTerminator);
        }
    }

    #[test]
    fn body_limit_counts_decoded_bytes() {
        // Exactly at the limit: fine.
        assert_eq!(
            decode_all(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 5)
                .unwrap()
                .0,
            b"abcde"
        );
        // One over, in the second chunk: refused as soon as its size is read.
        let mut buf = BytesMut::from(&b"3\r\nabc\r\n3\r\n"[..]);
        let mut out = BytesMut::new();
        let err = ChunkedDecoder::new(5)
            .decode(&mut buf, &mut out)
            .unwrap_err();
        assert_eq!(err, HttpError::BodyTooLarge { limit: 5 });
        assert_eq!(out, &b"abc"[..]);
    }

    #[test]
    fn trailers_are_bounded() {
        let mut input = b"0\r\n".to_vec();
        input.extend_from_slice(b"X: ");
        input.resize(3 + 20, b'a');
        input.extend_from_slice(b"\r\n\r\n");
        // 20 + 2 + 2 = 24 bytes of trailer section.
        let decode = |max: usize| {
            ChunkedDecoder::new(10)
                .with_max_trailers(max)
                .decode(&mut BytesMut::from(&input[..]), &mut BytesMut::new())
        };
        assert_eq!(decode(24), Ok(true));
        assert_eq!(decode(23), Err(HttpError::TrailersTooLarge { limit: 23 }));
        assert_eq!(decode(10), Err(HttpError::TrailersTooLarge { limit: 10 }));
        assert_eq!(HttpError::TrailersTooLarge { limit: 1 }.status(), 431);
        // Endless trailer lines without an end are refused too.
        let mut endless = b"0\r\n".to_vec();
        for _ in 0..2000 {
            endless.extend_from_slice(b"a: b\r\n");
        }
        let err = ChunkedDecoder::new(10)
            .decode(&mut BytesMut::from(&endless[..]), &mut BytesMut::new())
            .unwrap_err();
        assert_eq!(
            err,
            HttpError::TrailersTooLarge {
                limit: DEFAULT_MAX_TRAILERS
            }
        );
    }

    #[test]
    fn done_decoder_stays_done_and_leaves_the_rest() {
        let mut buf = BytesMut::from(&b"0\r\n\r\nNEXT"[..]);
        let mut out = BytesMut::new();
        let mut decoder = ChunkedDecoder::new(0);
        assert!(decoder.decode(&mut buf, &mut out).unwrap());
        assert!(decoder.is_done());
        assert!(decoder.decode(&mut buf, &mut out).unwrap());
        assert_eq!(buf, &b"NEXT"[..]);
        assert_eq!(decoder.decoded_len(), 0);
    }

    /// Encodes `chunks` with the given extensions and hex case; returns
    /// the wire bytes and where each line's CR is.
    fn encode(chunks: &[Vec<u8>], ext: bool, upper: bool) -> (Vec<u8>, Vec<usize>) {
        let mut wire = Vec::new();
        let mut crs = Vec::new();
        let mut eol = |wire: &mut Vec<u8>| {
            crs.push(wire.len());
            wire.extend_from_slice(b"\r\n");
        };
        for chunk in chunks.iter().filter(|c| !c.is_empty()) {
            let size = if upper {
                format!("{:X}", chunk.len())
            } else {
                format!("{:x}", chunk.len())
            };
            wire.extend_from_slice(size.as_bytes());
            if ext {
                wire.extend_from_slice(b";name=\"v\"");
            }
            eol(&mut wire);
            wire.extend_from_slice(chunk);
            eol(&mut wire);
        }
        wire.extend_from_slice(b"0");
        eol(&mut wire);
        if ext {
            wire.extend_from_slice(b"Trailer-Field: 1");
            eol(&mut wire);
        }
        eol(&mut wire);
        (wire, crs)
    }

    /// Feeds `wire` in reads of the sizes `reads` (cycled): the decoder's
    /// answer once it is done or fails, the decoded bytes, and what was
    /// left unconsumed.
    fn decode_in_reads(
        wire: &[u8],
        reads: &[usize],
        max_body: u64,
    ) -> (Result<bool, HttpError>, Vec<u8>, Vec<u8>) {
        let mut decoder = ChunkedDecoder::new(max_body);
        let mut buf = BytesMut::new();
        let mut out = BytesMut::new();
        let mut fed = 0;
        let mut reads = reads.iter().cycle();
        let result = loop {
            let n = (*reads.next().unwrap()).min(wire.len() - fed);
            buf.extend_from_slice(&wire[fed..fed + n]);
            fed += n;
            match decoder.decode(&mut buf, &mut out) {
                Ok(false) if fed < wire.len() => continue,
                other => break other,
            }
        };
        let mut rest = buf.to_vec();
        rest.extend_from_slice(&wire[fed..]);
        (result, out.to_vec(), rest)
    }

    proptest! {
        #[test]
        fn random_chunks_and_reads_round_trip(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            reads in proptest::collection::vec(1usize..64, 1..40),
            ext in any::<bool>(),
            upper in any::<bool>(),
        ) {
            let (mut wire, _) = encode(&chunks, ext, upper);
            let expected: Vec<u8> = chunks.concat();
            wire.extend_from_slice(b"NEXT");
            let (result, out, rest) = decode_in_reads(&wire, &reads, expected.len() as u64);
            prop_assert_eq!(result, Ok(true));
            prop_assert_eq!(&out[..], &expected[..]);
            prop_assert_eq!(rest, b"NEXT".to_vec());
        }

        #[test]
        fn one_bare_lf_anywhere_is_refused(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 0..5),
            reads in proptest::collection::vec(1usize..32, 1..20),
            ext in any::<bool>(),
            which in any::<proptest::sample::Index>(),
        ) {
            let (mut wire, crs) = encode(&chunks, ext, false);
            wire.remove(crs[which.index(crs.len())]);
            wire.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n");
            let (result, _, _) = decode_in_reads(&wire, &reads, u64::MAX);
            let error = result.expect_err("a bare LF must be refused");
            prop_assert!(
                matches!(error, HttpError::ChunkedLineEnding | HttpError::MissingChunkTerminator),
                "{:?}", error
            );
        }

        #[test]
        fn random_bytes_never_panic(
            input in proptest::collection::vec(any::<u8>(), 0..512),
            split in 0usize..512,
        ) {
            let split = split.min(input.len());
            let mut decoder = ChunkedDecoder::new(1000).with_max_trailers(64);
            let mut buf = BytesMut::from(&input[..split]);
            let mut out = BytesMut::new();
            if decoder.decode(&mut buf, &mut out).is_ok() {
                buf.extend_from_slice(&input[split..]);
                let _ = decoder.decode(&mut buf, &mut out);
            }
            prop_assert!(out.len() <= 1000);
        }

        #[test]
        fn chunk_like_noise_never_panics(
            input in "([0-9a-fA-F]{0,18}(;[ -~]{0,8})?(\r\n|\n|\r)[a-z\r\n]{0,8}){0,6}",
        ) {
            let mut buf = BytesMut::from(input.as_bytes());
            let _ = ChunkedDecoder::new(64).decode(&mut buf, &mut BytesMut::new());
        }
    }
}
