//! The `.conf` lexer: bytes → tokens, cut as m2sh's Ragel scanner
//! (`mongrel2/tools/m2sh/src/lexer.rl`) cuts them.
//!
//! Owns: the token kinds and where each token starts (line and column, for
//! error messages). Does not own: what may follow what (the parser).
//!
//! The token rules, all m2sh's:
//! - strings in `'...'` or `"..."`; a backslash keeps the next byte from
//!   ending the string, and nothing is unescaped (`'a\'b'` is the four
//!   bytes `a\'b`); a string may span lines;
//! - numbers are ASCII digits only (no sign, no point);
//! - a word is `[A-Za-z_][A-Za-z0-9_]*`; it is a *class name* when it is
//!   a capital letter followed only by letters (`Dir`, `DIR`, `Server`),
//!   otherwise a name (`main`, `Server2`, `X`);
//! - `= ( ) [ ] { } , :` are single-byte tokens;
//! - `#` starts a comment up to the end of the line; spaces, tabs, `\r`,
//!   `\v` and `\f` separate tokens; any other byte is an error.

use std::fmt;

/// Where a token starts: 1-based line, and 1-based column counted in
/// characters (UTF-8 continuation bytes do not count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The line, from 1.
    pub line: u32,
    /// The column, from 1.
    pub column: u32,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A quoted string; the token's text is what lies between the quotes.
    Str,
    /// ASCII digits.
    Number,
    /// A capital letter followed only by letters: `Server`, `Dir`.
    Class,
    /// Any other word: a variable or parameter name.
    Name,
    /// `=`
    Equals,
    /// `(`
    OpenParen,
    /// `)`
    CloseParen,
    /// `[`
    OpenBracket,
    /// `]`
    CloseBracket,
    /// `{`
    OpenBrace,
    /// `}`
    CloseBrace,
    /// `,`
    Comma,
    /// `:`
    Colon,
    /// The end of the input.
    End,
}

/// One token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    /// What it is.
    pub kind: TokenKind,
    /// Its bytes (for a string, without the quotes).
    pub text: &'a [u8],
    /// Where it starts.
    pub pos: Position,
}

impl fmt::Display for Token<'_> {
    /// How an error message names the token: `')'`, `name main`, `end of
    /// file`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = excerpt(self.text);
        match self.kind {
            TokenKind::Str => write!(f, "string \"{text}\""),
            TokenKind::Number => write!(f, "number {text}"),
            TokenKind::Class => write!(f, "class name {text}"),
            TokenKind::Name => write!(f, "name {text}"),
            TokenKind::End => f.write_str("end of file"),
            _ => write!(f, "'{text}'"),
        }
    }
}

/// The most characters of a token an error message quotes.
const EXCERPT_CHARS: usize = 40;

/// `bytes` for a message: lossy UTF-8, control characters escaped, cut
/// after [`EXCERPT_CHARS`] characters.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == EXCERPT_CHARS {
            out.push_str("...");
            break;
        }
        out.extend(c.escape_debug());
    }
    out
}

/// A byte that cannot start a token, or a string with no closing quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// Where.
    pub pos: Position,
    /// What is wrong.
    pub message: String,
}

/// Cuts a `.conf` into tokens, one [`Lexer::next_token`] call at a time.
#[derive(Debug, Clone)]
pub(crate) struct Lexer<'a> {
    input: &'a [u8],
    at: usize,
    line: u32,
    line_start: usize,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `input`.
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Lexer {
            input,
            at: 0,
            line: 1,
            line_start: 0,
        }
    }

    fn position(&self, at: usize) -> Position {
        let column = self.input[self.line_start..at]
            .iter()
            .filter(|&&b| b & 0xC0 != 0x80)
            .count();
        Position {
            line: self.line,
            column: u32::try_from(column + 1).unwrap_or(u32::MAX),
        }
    }

    fn newline(&mut self, at: usize) {
        self.line = self.line.saturating_add(1);
        self.line_start = at + 1;
    }

    /// The next token; after the input's end, [`TokenKind::End`] forever.
    pub(crate) fn next_token(&mut self) -> Result<Token<'a>, SyntaxError> {
        self.skip_blanks_and_comments();
        let start = self.at;
        let pos = self.position(start);
        let Some(&byte) = self.input.get(start) else {
            return Ok(Token {
                kind: TokenKind::End,
                text: &[],
                pos,
            });
        };
        let single = match byte {
            b'=' => Some(TokenKind::Equals),
            b'(' => Some(TokenKind::OpenParen),
            b')' => Some(TokenKind::CloseParen),
            b'[' => Some(TokenKind::OpenBracket),
            b']' => Some(TokenKind::CloseBracket),
            b'{' => Some(TokenKind::OpenBrace),
            b'}' => Some(TokenKind::CloseBrace),
            b',' => Some(TokenKind::Comma),
            b':' => Some(TokenKind::Colon),
            _ => None,
        };
        if let Some(kind) = single {
            self.at += 1;
            return Ok(Token {
                kind,
                text: &self.input[start..start + 1],
                pos,
            });
        }
        match byte {
            b'\'' | b'"' => self.string(byte, pos),
            b'0'..=b'9' => {
                let len = self.input[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                self.at += len;
                Ok(Token {
                    kind: TokenKind::Number,
                    text: &self.input[start..self.at],
                    pos,
                })
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'_' => {
                let len = self.input[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count();
                self.at += len;
                let text = &self.input[start..self.at];
                let class = text.len() >= 2
                    && text[0].is_ascii_uppercase()
                    && text[1..].iter().all(u8::is_ascii_alphabetic);
                Ok(Token {
                    kind: if class {
                        TokenKind::Class
                    } else {
                        TokenKind::Name
                    },
                    text,
                    pos,
                })
            }
            _ => Err(SyntaxError {
                pos,
                message: format!(
                    "unexpected character '{}'",
                    excerpt(utf8_char_at(&self.input[start..]))
                ),
            }),
        }
    }

    fn skip_blanks_and_comments(&mut self) {
        while let Some(&byte) = self.input.get(self.at) {
            match byte {
                b'\n' => self.newline(self.at),
                b' ' | b'\t' | b'\r' | 0x0B | 0x0C => {}
                b'#' => {
                    // To the end of the line (or of the file: m2sh then
                    // complains but loads what came before).
                    match self.input[self.at..].iter().position(|&b| b == b'\n') {
                        Some(len) => self.at += len,
                        None => self.at = self.input.len(),
                    }
                    continue;
                }
                _ => return,
            }
            self.at += 1;
        }
    }

    fn string(&mut self, quote: u8, pos: Position) -> Result<Token<'a>, SyntaxError> {
        let start = self.at + 1;
        let mut at = start;
        while let Some(&byte) = self.input.get(at) {
            match byte {
                b'\\' => {
                    if self.input.get(at + 1) == Some(&b'\n') {
                        self.newline(at + 1);
                    }
                    at += 2;
                    continue;
                }
                b'\n' => self.newline(at),
                _ if byte == quote => {
                    self.at = at + 1;
                    return Ok(Token {
                        kind: TokenKind::Str,
                        text: &self.input[start..at],
                        pos,
                    });
                }
                _ => {}
            }
            at += 1;
        }
        Err(SyntaxError {
            pos,
            message: format!("string has no closing {}", quote as char),
        })
    }
}

/// The first (UTF-8) character of `bytes`, or its first byte if that is
/// not valid UTF-8.
fn utf8_char_at(bytes: &[u8]) -> &[u8] {
    let len = match bytes[0] {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    };
    match bytes.get(..len) {
        Some(c) if std::str::from_utf8(c).is_ok() => c,
        _ => &bytes[..1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str) -> Vec<(TokenKind, String)> {
        let mut lexer = Lexer::new(input.as_bytes());
        let mut out = Vec::new();
        loop {
            let token = lexer.next_token().unwrap();
            if token.kind == TokenKind::End {
                return out;
            }
            out.push((token.kind, String::from_utf8_lossy(token.text).into_owned()));
        }
    }

    fn error(input: &[u8]) -> SyntaxError {
        let mut lexer = Lexer::new(input);
        loop {
            match lexer.next_token() {
                Ok(t) if t.kind == TokenKind::End => panic!("no error in {input:?}"),
                Ok(_) => {}
                Err(e) => return e,
            }
        }
    }

    #[test]
    fn words_numbers_and_punctuation() {
        use TokenKind::*;
        let got = kinds("main = Server(port=6767, x:1)[]{}");
        let want = [
            (Name, "main"),
            (Equals, "="),
            (Class, "Server"),
            (OpenParen, "("),
            (Name, "port"),
            (Equals, "="),
            (Number, "6767"),
            (Comma, ","),
            (Name, "x"),
            (Colon, ":"),
            (Number, "1"),
            (CloseParen, ")"),
            (OpenBracket, "["),
            (CloseBracket, "]"),
            (OpenBrace, "{"),
            (CloseBrace, "}"),
        ];
        let want: Vec<_> = want.iter().map(|(k, t)| (*k, t.to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn class_names_are_a_capital_then_letters() {
        use TokenKind::*;
        for (word, kind) in [
            ("Dir", Class),
            ("DIR", Class),
            ("Xrequest", Class),
            ("X", Name),
            ("Server2", Name),
            ("Main_host", Name),
            ("main", Name),
            ("_x", Name),
            ("dIR", Name),
        ] {
            assert_eq!(kinds(word), [(kind, word.to_string())], "{word}");
        }
        // Digits end a number; what follows is a word of its own.
        assert_eq!(kinds("12ab"), [(Number, "12".into()), (Name, "ab".into())]);
    }

    #[test]
    fn strings_keep_their_bytes() {
        use TokenKind::*;
        assert_eq!(kinds(r#"'a"b'"#), [(Str, r#"a"b"#.into())]);
        assert_eq!(kinds(r#""a'b""#), [(Str, "a'b".into())]);
        assert_eq!(kinds(r"'it\'s'"), [(Str, r"it\'s".into())]);
        assert_eq!(kinds(r#""\\""#), [(Str, r"\\".into())]);
        assert_eq!(kinds(r"'(.*\.json)'"), [(Str, r"(.*\.json)".into())]);
        assert_eq!(kinds("''"), [(Str, String::new())]);
        assert_eq!(kinds("'a # b'"), [(Str, "a # b".into())]);
        assert_eq!(kinds("'two\nlines'"), [(Str, "two\nlines".into())]);
    }

    #[test]
    fn comments_and_blanks() {
        use TokenKind::*;
        assert_eq!(
            kinds("# top\n a\t=\r\n1 # after\n#last without newline"),
            [
                (Name, "a".into()),
                (Equals, "=".into()),
                (Number, "1".into())
            ]
        );
        assert!(kinds("").is_empty());
        assert!(kinds("#").is_empty());
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let mut lexer = Lexer::new("a = 'é\nx'\n  éé".as_bytes());
        let mut positions = Vec::new();
        loop {
            match lexer.next_token() {
                Ok(t) if t.kind == TokenKind::End => {
                    positions.push((t.pos.line, t.pos.column));
                    break;
                }
                Ok(t) => positions.push((t.pos.line, t.pos.column)),
                Err(e) => {
                    positions.push((e.pos.line, e.pos.column));
                    break;
                }
            }
        }
        // a, =, the string, then 'é' on line 3 column 3 is an error.
        assert_eq!(positions, [(1, 1), (1, 3), (1, 5), (3, 3)]);
    }

    #[test]
    fn errors() {
        let e = error(b"a = 'open");
        assert_eq!((e.pos.line, e.pos.column), (1, 5));
        assert_eq!(e.message, "string has no closing '");
        let e = error(b"a = \"ends in a backslash\\\"");
        assert_eq!(e.message, "string has no closing \"");
        let e = error(b"a = -1");
        assert_eq!((e.pos.line, e.pos.column), (1, 5));
        assert_eq!(e.message, "unexpected character '-'");
        let e = error(b"\n\n  a;");
        assert_eq!((e.pos.line, e.pos.column), (3, 4));
        assert_eq!(
            error("x = ü".as_bytes()).message,
            "unexpected character 'ü'"
        );
        assert_eq!(
            error(b"x = \xff").message,
            "unexpected character '\u{fffd}'"
        );
        assert_eq!(error(b"x = \0").message, "unexpected character '\\0'");
    }
}
