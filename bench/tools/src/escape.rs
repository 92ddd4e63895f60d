//! The request text given on a command line (`--request 'GET / HTTP/1.1\r\n…'`):
//! shells pass `\r\n` as four characters, so this module turns the usual
//! backslash escapes into bytes. It owns nothing else.

/// Why an escaped string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EscapeError {
    /// A backslash followed by something other than `r n t 0 \ xHH`.
    #[error("unknown escape \\{0} at byte {1}; use \\r \\n \\t \\0 \\\\ or \\xHH")]
    Unknown(char, usize),
    /// A `\x` not followed by two hex digits.
    #[error("\\x at byte {0} must be followed by two hex digits")]
    BadHex(usize),
    /// A backslash at the very end.
    #[error("the text ends with a lone backslash")]
    Trailing,
}

/// Decodes `\r`, `\n`, `\t`, `\0`, `\\` and `\xHH`; every other byte is
/// kept as it is.
pub fn unescape(text: &str) -> Result<Vec<u8>, EscapeError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let Some(&kind) = bytes.get(i + 1) else {
            return Err(EscapeError::Trailing);
        };
        match kind {
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'0' => out.push(0),
            b'\\' => out.push(b'\\'),
            b'x' => {
                let hex = bytes
                    .get(i + 2..i + 4)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(EscapeError::BadHex(i))?;
                out.push(hex);
                i += 2;
            }
            other => {
                let c = text[i + 1..].chars().next().unwrap_or(other as char);
                return Err(EscapeError::Unknown(c, i));
            }
        }
        i += 2;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_request_line_as_shells_pass_it() {
        assert_eq!(
            unescape(r"GET /x HTTP/1.1\r\nHost: b\r\n\r\n").unwrap(),
            b"GET /x HTTP/1.1\r\nHost: b\r\n\r\n"
        );
    }

    #[test]
    fn decodes_every_escape_and_keeps_utf8() {
        assert_eq!(
            unescape(r"a\tb\\c\0\x7f\x41é").unwrap(),
            b"a\tb\\c\0\x7fA\xc3\xa9"
        );
    }

    #[test]
    fn refuses_unknown_and_broken_escapes() {
        assert_eq!(unescape(r"a\q"), Err(EscapeError::Unknown('q', 1)));
        assert_eq!(unescape(r"\xZ1"), Err(EscapeError::BadHex(0)));
        assert_eq!(unescape(r"\x4"), Err(EscapeError::BadHex(0)));
        assert_eq!(unescape("ab\\"), Err(EscapeError::Trailing));
    }
}
