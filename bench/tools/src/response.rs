//! Reading one HTTP/1.1 response off a client connection, so that a
//! keep-alive connection is left clean for the next exchange (or for being
//! held idle). [`response_len`] is the parser (no I/O: it finds where the
//! first response in a buffer ends); [`read_response`] feeds it from a
//! socket. Bodies are delimited by `Content-Length` or chunked encoding;
//! 1xx, 204 and 304 responses have none. A response delimited only by the
//! connection closing is refused: the tools need the connection afterwards.

use tokio::io::{AsyncRead, AsyncReadExt};

/// The most header lines a response may have. Servers under test send a
/// handful; 64 leaves room for any realistic one.
pub const MAX_HEADERS: usize = 64;

/// The largest response [`read_response`] buffers, default 1 MiB. The tools
/// only ever fetch small pages; anything larger is a misconfigured route.
pub const MAX_RESPONSE: usize = 1024 * 1024;

/// Why a response could not be delimited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The head is not valid HTTP/1.x.
    #[error("invalid response head: {0}")]
    Head(String),
    /// `Content-Length` is not a decimal number.
    #[error("invalid Content-Length")]
    BadLength,
    /// A chunk-size line is invalid.
    #[error("invalid chunk size line")]
    BadChunk,
    /// Neither `Content-Length` nor chunked: the body ends when the server
    /// closes, which would leave no connection to hold.
    #[error("the response has no Content-Length and is not chunked")]
    NoLength,
    /// More than [`MAX_RESPONSE`] bytes without a complete response.
    #[error("the response is larger than {MAX_RESPONSE} bytes")]
    TooLarge,
}

/// A complete response at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimited {
    /// The status code.
    pub status: u16,
    /// Bytes from the start of the buffer to the end of the response.
    pub len: usize,
}

/// Parses the head of the response at the front of `buf`, its header lines
/// into `headers`: the head's length and the response, or `Ok(None)` when
/// the head is incomplete.
pub fn parse_head<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [httparse::Header<'b>],
) -> Result<Option<(usize, httparse::Response<'h, 'b>)>, ResponseError> {
    let mut response = httparse::Response::new(headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => Ok(Some((n, response))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(ResponseError::Head(e.to_string())),
    }
}

/// Finds the end of the first response in `buf`: `Ok(None)` when more bytes
/// are needed.
pub fn response_len(buf: &[u8]) -> Result<Option<Delimited>, ResponseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let Some((head_len, response)) = parse_head(buf, &mut headers)? else {
        return Ok(None);
    };
    let status = response.code.unwrap_or(0);
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Some(Delimited {
            status,
            len: head_len,
        }));
    }
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let chunked = header("transfer-encoding").is_some_and(|v| {
        std::str::from_utf8(v).is_ok_and(|v| {
            v.rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
        })
    });
    if chunked {
        return Ok(chunked_end(buf, head_len)?.map(|len| Delimited { status, len }));
    }
    let Some(length) = header("content-length") else {
        return Err(ResponseError::NoLength);
    };
    let length: usize = std::str::from_utf8(length)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or(ResponseError::BadLength)?;
    let len = head_len
        .checked_add(length)
        .ok_or(ResponseError::BadLength)?;
    Ok((buf.len() >= len).then_some(Delimited { status, len }))
}

/// Where a chunked body that starts at `at` ends (after the trailers).
fn chunked_end(buf: &[u8], mut at: usize) -> Result<Option<usize>, ResponseError> {
    loop {
        let (line, size) = match httparse::parse_chunk_size(&buf[at..]) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ResponseError::BadChunk),
        };
        at += line;
        if size == 0 {
            break;
        }
        let size = usize::try_from(size).map_err(|_| ResponseError::BadChunk)?;
        let end = at.checked_add(size).ok_or(ResponseError::BadChunk)? + 2;
        if buf.len() < end {
            return Ok(None);
        }
        if &buf[end - 2..end] != b"\r\n" {
            return Err(ResponseError::BadChunk);
        }
        at = end;
    }
    // Trailer lines, then an empty line.
    loop {
        let Some(eol) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        at += eol + 2;
        if eol == 0 {
            return Ok(Some(at));
        }
    }
}

/// Reads one final response from `stream` (a TCP or TLS stream; interim
/// 1xx responses other than 101 are skipped) and returns its status. `buf`
/// keeps any bytes read past the response.
pub async fn read_response<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> std::io::Result<u16> {
    let invalid = |e: ResponseError| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    loop {
        match response_len(buf).map_err(invalid)? {
            Some(Delimited { status, len }) => {
                buf.drain(..len);
                if (100..200).contains(&status) && status != 101 {
                    continue;
                }
                return Ok(status);
            }
            None if buf.len() > MAX_RESPONSE => return Err(invalid(ResponseError::TooLarge)),
            None => {
                buf.reserve(4096);
                if stream.read_buf(buf).await? == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the server closed the connection before a whole response",
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every split of `bytes` is incomplete until the whole is there, and
    /// the whole is one response of `bytes.len()` bytes (plus what follows).
    fn check_splits(bytes: &[u8], status: u16) {
        for cut in 0..bytes.len() {
            assert_eq!(response_len(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(
            response_len(bytes),
            Ok(Some(Delimited {
                status,
                len: bytes.len()
            }))
        );
        let mut more = bytes.to_vec();
        more.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        assert_eq!(
            response_len(&more),
            Ok(Some(Delimited {
                status,
                len: bytes.len()
            }))
        );
    }

    #[test]
    fn content_length_delimits_the_body_at_every_split() {
        check_splits(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-length: 5\r\n\r\nhello",
            200,
        );
    }

    #[test]
    fn chunked_bodies_end_after_the_last_chunk_and_trailers() {
        check_splits(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;x=y\r\n!\r\n0\r\nX-T: 1\r\n\r\n",
            200,
        );
        check_splits(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n0\r\n\r\n",
            201,
        );
    }

    #[test]
    fn statuses_without_a_body_end_with_the_head() {
        check_splits(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
            304,
        );
        check_splits(b"HTTP/1.1 204 No Content\r\n\r\n", 204);
        check_splits(b"HTTP/1.1 100 Continue\r\n\r\n", 100);
    }

    #[test]
    fn undelimited_and_invalid_responses_are_errors() {
        assert_eq!(
            response_len(b"HTTP/1.0 200 OK\r\n\r\nbody"),
            Err(ResponseError::NoLength)
        );
        assert_eq!(
            response_len(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            Err(ResponseError::BadLength)
        );
        assert!(matches!(
            response_len(b"HTTP/9 200 OK\r\n\r\n"),
            Err(ResponseError::Head(_))
        ));
        assert_eq!(
            response_len(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            Err(ResponseError::BadChunk)
        );
        assert_eq!(
            response_len(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc"),
            Err(ResponseError::BadChunk)
        );
    }
}
