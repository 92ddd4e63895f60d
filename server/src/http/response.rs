//! Response heads, and the responses Kennel writes itself when no handler,
//! directory or proxy answers: refusals (400, 404, 413, 431, ...), `503`
//! with `Retry-After`, and the interim `100 Continue`.
//!
//! Owns [`ResponseHead`], the one writer of an HTTP/1.1 response head
//! (status line, `Date`, `Server: Kennel`, the caller's headers,
//! `Connection: close` when asked, the blank line), used here and by the
//! Dir handler ([`crate::dir`]); the proxy is to use it too. Does not own
//! what goes in a head (each caller picks its headers) or writing it out.
//!
//! Each canned response is complete HTTP/1.1: status line, `Content-Type:
//! text/plain`, `Content-Length`, `Date`, `Server: Kennel`, `Connection:
//! close` when asked, and a one-line body such as `404 Not Found\n`.
//! Mongrel2 sends fixed strings with `Server: Mongrel2/1.12.2`; no handler
//! reads these bytes, so Kennel names itself. Responses to which RFC 9110
//! forbids a body (1xx, 204, 304) get neither body nor `Content-Length`.

use std::fmt;
use std::io::Write;

use bytes::Bytes;

use super::date::date;

/// The interim response sent when a request says `Expect: 100-continue`
/// and the body is wanted.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The value of the `Server` header on responses Kennel makes.
pub const SERVER: &str = "Kennel";

/// A complete canned response with status `status` (a status outside
/// 100..=999 is sent as 500) and `Connection: close` when `close`.
pub fn canned(status: u16, close: bool) -> Bytes {
    build(status, close, None)
}

/// `503 Service Unavailable` with `Retry-After: <retry_after_secs>`;
/// `Connection: close` only when `close` (keep-alive is fine: the next
/// request may find a handler).
pub fn service_unavailable(retry_after_secs: u32, close: bool) -> Bytes {
    build(503, close, Some(retry_after_secs))
}

fn build(status: u16, close: bool, retry_after: Option<u32>) -> Bytes {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    let reason = reason(status);
    let bodiless = status < 200 || status == 204 || status == 304;
    // Canned responses keep their historical order: the body's headers
    // before `Date` and `Server`.
    let mut head = ResponseHead::status_line(status);
    if !bodiless {
        let body_len = if reason.is_empty() {
            4
        } else {
            5 + reason.len()
        };
        head.header("Content-Type", "text/plain");
        head.header("Content-Length", body_len);
    }
    head.date_and_server();
    if let Some(secs) = retry_after {
        head.header("Retry-After", secs);
    }
    let mut out = head.finish(close);
    if !bodiless {
        // Writing into a Vec cannot fail.
        if reason.is_empty() {
            let _ = writeln!(out, "{status}");
        } else {
            let _ = writeln!(out, "{status} {reason}");
        }
    }
    Bytes::from(out)
}

/// Bytes reserved for a response head before it is written: 256, room for
/// a status line and the ten or so headers of a file response (about 230
/// bytes with a long `Content-Type`) or a canned response with its body,
/// so that a head is one allocation.
const HEAD_CAPACITY: usize = 256;

/// An HTTP/1.1 response head being written: [`ResponseHead::new`] writes
/// the status line, `Date` and `Server`; [`header`](ResponseHead::header)
/// adds a line; [`finish`](ResponseHead::finish) adds `Connection: close`
/// when asked and the blank line, and hands over the bytes.
///
/// Names and values are written as given: callers pass names and values
/// that are valid on the wire (no CR, LF or other control bytes).
#[derive(Debug)]
pub struct ResponseHead(Vec<u8>);

impl ResponseHead {
    /// A head with the status line for `status` (and its [`reason`]),
    /// then `Date` (the cached [`date()`]) and `Server: Kennel`.
    pub fn new(status: u16) -> ResponseHead {
        let mut head = ResponseHead::status_line(status);
        head.date_and_server();
        head
    }

    /// A head with only the status line.
    fn status_line(status: u16) -> ResponseHead {
        let mut head = Vec::with_capacity(HEAD_CAPACITY);
        // Writing into a Vec cannot fail.
        let _ = write!(head, "HTTP/1.1 {status} {}\r\n", reason(status));
        ResponseHead(head)
    }

    /// Adds `Date` and `Server`.
    fn date_and_server(&mut self) {
        self.header_bytes("Date", &date());
        self.header("Server", SERVER);
    }

    /// Adds `name: value`.
    pub fn header(&mut self, name: &str, value: impl fmt::Display) {
        let _ = write!(self.0, "{name}: {value}\r\n");
    }

    /// Adds `name: value` for a value that may not be UTF-8.
    pub fn header_bytes(&mut self, name: &str, value: &[u8]) {
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b": ");
        self.0.extend_from_slice(value);
        self.0.extend_from_slice(b"\r\n");
    }

    /// Adds `Connection: close` if `close`, then the blank line that ends
    /// the head, and returns the bytes.
    pub fn finish(mut self, close: bool) -> Vec<u8> {
        if close {
            self.0.extend_from_slice(b"Connection: close\r\n");
        }
        self.0.extend_from_slice(b"\r\n");
        self.0
    }
}

/// The standard reason phrase for `status` (`""` if it has none): the
/// protocol crate's table, shared with handlers.
pub use kennel_handler::http::reason_phrase as reason;

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `bytes` as one response: (status, reason, headers, body).
    fn parse(bytes: &[u8]) -> (u16, String, Vec<(String, String)>, Vec<u8>) {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(len) = response.parse(bytes).unwrap() else {
            panic!("incomplete response");
        };
        let headers = response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8(h.value.to_vec()).unwrap(),
                )
            })
            .collect();
        (
            response.code.unwrap(),
            response.reason.unwrap().to_owned(),
            headers,
            bytes[len..].to_vec(),
        )
    }

    fn get<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn canned_responses_are_well_formed() {
        for status in [400, 404, 405, 413, 417, 431, 500, 501, 502, 503, 505] {
            for close in [false, true] {
                let bytes = canned(status, close);
                let (code, reason_phrase, headers, body) = parse(&bytes);
                assert_eq!(code, status);
                assert_eq!(reason_phrase, reason(status));
                let expected_body = format!("{status} {}\n", reason(status));
                assert_eq!(body, expected_body.as_bytes());
                assert_eq!(
                    get(&headers, "content-length"),
                    Some(expected_body.len().to_string().as_str())
                );
                assert_eq!(get(&headers, "content-type"), Some("text/plain"));
                assert_eq!(get(&headers, "server"), Some("Kennel"));
                assert_eq!(get(&headers, "connection"), close.then_some("close"));
                let date = get(&headers, "date").unwrap();
                assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
            }
        }
    }

    #[test]
    fn canned_exact_bytes_apart_from_the_date() {
        let bytes = canned(404, true);
        let text = std::str::from_utf8(&bytes).unwrap();
        let date = text.lines().find_map(|l| l.strip_prefix("Date: ")).unwrap();
        assert_eq!(
            text.replace(date, "D"),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\
             Date: D\r\nServer: Kennel\r\nConnection: close\r\n\r\n404 Not Found\n"
        );
    }

    #[test]
    fn response_head_exact_bytes_apart_from_the_date() {
        let mut head = ResponseHead::new(206);
        head.header("Content-Length", 4);
        head.header_bytes("Location", b"/d\xc3\xbc/");
        let bytes = head.finish(true);
        let text = String::from_utf8(bytes).unwrap();
        let date = text.lines().find_map(|l| l.strip_prefix("Date: ")).unwrap();
        assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
        assert_eq!(
            text.replace(date, "D"),
            "HTTP/1.1 206 Partial Content\r\nDate: D\r\nServer: Kennel\r\n\
             Content-Length: 4\r\nLocation: /d\u{fc}/\r\nConnection: close\r\n\r\n"
        );
        let bytes = ResponseHead::new(599).finish(false);
        assert!(
            bytes.starts_with(b"HTTP/1.1 599 \r\nDate: "),
            "empty reason"
        );
        assert!(bytes.ends_with(b"\r\nServer: Kennel\r\n\r\n"));
    }

    #[test]
    fn service_unavailable_carries_retry_after() {
        let (code, _, headers, body) = parse(&service_unavailable(7, false));
        assert_eq!(code, 503);
        assert_eq!(get(&headers, "retry-after"), Some("7"));
        assert_eq!(get(&headers, "connection"), None);
        assert_eq!(body, b"503 Service Unavailable\n");
        let (_, _, headers, _) = parse(&service_unavailable(0, true));
        assert_eq!(get(&headers, "retry-after"), Some("0"));
        assert_eq!(get(&headers, "connection"), Some("close"));
    }

    #[test]
    fn bodiless_and_odd_statuses() {
        let (code, _, headers, body) = parse(&canned(304, false));
        assert_eq!(code, 304);
        assert!(body.is_empty());
        assert_eq!(get(&headers, "content-length"), None);
        // Unknown status: empty reason, body is just the number.
        let (code, reason_phrase, headers, body) = parse(&canned(599, false));
        assert_eq!((code, reason_phrase.as_str()), (599, ""));
        assert_eq!(body, b"599\n");
        assert_eq!(get(&headers, "content-length"), Some("4"));
        // Out of range: sent as 500.
        assert_eq!(parse(&canned(42, false)).0, 500);
        assert_eq!(parse(&canned(1000, false)).0, 500);
    }

    #[test]
    fn continue_is_a_complete_interim_response() {
        let mut headers = [httparse::EMPTY_HEADER; 1];
        let mut response = httparse::Response::new(&mut headers);
        assert_eq!(
            response.parse(CONTINUE).unwrap(),
            httparse::Status::Complete(CONTINUE.len())
        );
        assert_eq!(response.code, Some(100));
    }

    #[test]
    fn reasons() {
        assert_eq!(reason(200), "OK");
        assert_eq!(reason(413), "Content Too Large");
        assert_eq!(reason(431), "Request Header Fields Too Large");
        assert_eq!(reason(999), "");
    }
}
