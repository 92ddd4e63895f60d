//! Mongrel2's pattern language: Lua 5.1 patterns with `\` as the escape
//! character and without captures (`mongrel2/src/pattern.c`).
//!
//! This module owns compiling a pattern (checking its syntax up front, so a
//! bad route is a config error rather than a request-time surprise) and
//! matching it, anchored, against the start of a byte string. It does not
//! know about routes or hosts: [`crate::routing`] splits route keys and host
//! names into a literal part and a pattern and calls this module.
//!
//! # The language
//!
//! | item | matches |
//! |---|---|
//! | `.` | any byte |
//! | `\a \c \d \l \p \s \u \w \x \z` | letters, control bytes, digits, lower case, punctuation, white space, upper case, alphanumerics, hex digits, the NUL byte (C locale; bytes ≥ 0x80 are in none of them) |
//! | `\A \C \D …` (upper case) | the complement of the class |
//! | `\` + any other byte | that byte literally (`\.`, `\(`, `\\`, `\1`) |
//! | `[set]`, `[^set]` | a byte in / not in the set; a set holds bytes, ranges `a-z` and classes `\d`; a `]` right after `[` or `[^` is a member |
//! | item `*`, `+`, `-`, `?` | 0 or more (greedy), 1 or more (greedy), 0 or more (lazy), 0 or 1 |
//! | `\bxy` | a balanced string from `x` to the matching `y` |
//! | `\f[set]` | the frontier: the previous byte is not in the set and the next one is (the byte before the subject and the byte after its end count as NUL) |
//! | `$` as the last byte | the end of the subject; anywhere else a literal `$` |
//! | `(`, `)` | nothing: they only mark where the pattern starts and capture nothing, and take no quantifier (`(a)*` is `a` followed by a literal `*`) |
//! | any other byte | itself, including `^` (Mongrel2 has no `^` anchor: `(^a)` matches the text `^a`; matching is anchored at the start anyway) |
//!
//! Where Kennel differs from Mongrel2's C code, on purpose:
//! - Malformed patterns (a trailing `\`, an unclosed `[`, `\b` without two
//!   bytes, `\f` without a set, unbalanced parentheses) are rejected by
//!   [`Pattern::compile`]; Mongrel2 logs an error and reads past the end.
//! - Bytes compare as unsigned (Lua's intent); Mongrel2 compares signed
//!   `char`s, which only differs for ranges that straddle 0x7F/0x80.
//! - Matching is bounded (see [`MATCH_DEPTH_LIMIT`] and [`MATCH_STEP_LIMIT`]):
//!   a pattern that would need more is treated as not matching.

use std::fmt;

/// The escape character: Mongrel2 uses `\` where Lua uses `%`.
const ESCAPE: u8 = b'\\';

/// How deeply the matcher may nest backtracking points (one level per
/// quantified item still being tried). Default 200, Lua 5.2's `MAXCCALLS`:
/// far more quantified items than any route pattern has, and small enough
/// that the recursion can never exhaust a thread's stack. A match that
/// needs more is abandoned and reported as no match.
pub const MATCH_DEPTH_LIMIT: u32 = 200;

/// How many steps (pattern items tried plus subject bytes scanned) one match
/// may take. Default 8 M: a greedy `.*` followed by more items over a 1 MiB
/// path costs about 3 M, while a pathological pattern such as `(.*)(.*)(.*)x`
/// would otherwise take time cubic in the path length, which a client
/// controls. A match that needs more is abandoned and reported as no match.
pub const MATCH_STEP_LIMIT: u64 = 8_000_000;

/// A pattern that failed to compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern text as given.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

/// What is wrong with a pattern, and where (a byte offset into the pattern).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyntaxError {
    /// The pattern ends with a lone `\`.
    TrailingEscape(usize),
    /// A `[` with no closing `]`.
    UnclosedSet(usize),
    /// `\b` not followed by two bytes.
    BalanceNeedsTwoBytes(usize),
    /// `\f` not followed by `[`.
    FrontierNeedsSet(usize),
    /// A `)` with no `(` before it.
    UnopenedParen(usize),
    /// A `(` that is never closed.
    UnclosedParen(usize),
}

impl SyntaxError {
    /// Builds the public error for `text`, in which the pattern starts at
    /// byte `base` (a route key's pattern starts after its literal prefix).
    pub(crate) fn into_error(self, text: &str, base: usize) -> PatternError {
        let reason = match self {
            SyntaxError::TrailingEscape(at) => {
                format!("ends with a lone `\\` (byte {})", base + at)
            }
            SyntaxError::UnclosedSet(at) => {
                format!("`[` at byte {} has no closing `]`", base + at)
            }
            SyntaxError::BalanceNeedsTwoBytes(at) => {
                format!("`\\b` at byte {} needs two bytes after it", base + at)
            }
            SyntaxError::FrontierNeedsSet(at) => {
                format!(
                    "`\\f` at byte {} must be followed by a set `[...]`",
                    base + at
                )
            }
            SyntaxError::UnopenedParen(at) => {
                format!("`)` at byte {} has no `(` before it", base + at)
            }
            SyntaxError::UnclosedParen(at) => {
                format!("`(` at byte {} is never closed", base + at)
            }
        };
        PatternError {
            pattern: text.to_owned(),
            reason,
        }
    }
}

/// A set of bytes, one bit each.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ByteSet([u64; 4]);

impl ByteSet {
    const EMPTY: ByteSet = ByteSet([0; 4]);
    const ALL: ByteSet = ByteSet([u64::MAX; 4]);

    fn from_fn(f: impl Fn(u8) -> bool) -> ByteSet {
        let mut set = ByteSet::EMPTY;
        for b in 0..=u8::MAX {
            if f(b) {
                set.insert(b);
            }
        }
        set
    }

    fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    fn union(self, other: ByteSet) -> ByteSet {
        let mut out = self;
        for (o, x) in out.0.iter_mut().zip(other.0) {
            *o |= x;
        }
        out
    }

    fn complement(self) -> ByteSet {
        ByteSet(self.0.map(|x| !x))
    }

    /// Adds the other ASCII case of every letter in the set.
    fn case_closed(self) -> ByteSet {
        ByteSet::from_fn(|b| {
            self.contains(b)
                || self.contains(b.to_ascii_lowercase())
                || self.contains(b.to_ascii_uppercase())
        })
    }
}

impl fmt::Debug for ByteSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let members: Vec<u8> = (0..=u8::MAX).filter(|&b| self.contains(b)).collect();
        write!(f, "ByteSet({:?})", members.escape_ascii().to_string())
    }
}

/// How often a single-byte item may repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Exactly once.
    One,
    /// `?`: zero or one time.
    Optional,
    /// `*`: zero or more times, longest first.
    Star,
    /// `+`: one or more times, longest first.
    Plus,
    /// `-`: zero or more times, shortest first.
    Lazy,
}

/// One compiled pattern item.
#[derive(Debug, Clone, Copy)]
enum Item {
    /// A byte from a set (`.`, a literal, a class or `[set]`), repeated.
    Single(ByteSet, Repeat),
    /// `\bxy`.
    Balance(u8, u8),
    /// `\f[set]`.
    Frontier(ByteSet),
    /// `$` at the very end.
    End,
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    items: Box<[Item]>,
    /// Whether letters match in either ASCII case.
    ignore_case: bool,
}

impl Pattern {
    /// Compiles `source`, checking its syntax up front so that a bad route is
    /// a config error rather than a request-time surprise.
    pub fn compile(source: &str) -> Result<Pattern, PatternError> {
        Pattern::build(source, false).map_err(|e| e.into_error(source, 0))
    }

    /// Compiles `source` so that letters match in either ASCII case (for host
    /// names). Every set, class and literal is closed under ASCII case before
    /// any negation (`[^a]` excludes both `a` and `A`), and `\bxy` compares
    /// without case.
    pub fn compile_ignore_case(source: &str) -> Result<Pattern, PatternError> {
        Pattern::build(source, true).map_err(|e| e.into_error(source, 0))
    }

    /// Compiles `source`, reporting errors with their offset in `source`.
    pub(crate) fn build(source: &str, ignore_case: bool) -> Result<Pattern, SyntaxError> {
        let items = Compiler {
            src: source.as_bytes(),
            ignore_case,
        }
        .compile()?;
        Ok(Pattern {
            source: source.to_owned(),
            items: items.into_boxed_slice(),
            ignore_case,
        })
    }

    /// The pattern text as given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Matches anchored at the start of `subject`; returns the length matched.
    ///
    /// The match need not reach the end of `subject` unless the pattern ends
    /// with `$`. Returns `None` when the pattern does not match, and also
    /// when matching would exceed [`MATCH_DEPTH_LIMIT`] or
    /// [`MATCH_STEP_LIMIT`]. Never allocates.
    pub fn match_prefix(&self, subject: &[u8]) -> Option<usize> {
        let mut matcher = Matcher {
            items: &self.items,
            subject,
            ignore_case: self.ignore_case,
            steps: 0,
            exhausted: false,
        };
        let end = matcher.match_at(0, 0, 0);
        if matcher.exhausted {
            None
        } else {
            end
        }
    }
}

/// Turns pattern text into items, following the grammar of Lua 5.1's
/// `match`/`classend`/`matchbracketclass` byte for byte.
struct Compiler<'a> {
    src: &'a [u8],
    ignore_case: bool,
}

impl Compiler<'_> {
    fn compile(&self) -> Result<Vec<Item>, SyntaxError> {
        let src = self.src;
        let mut items = Vec::new();
        let mut open_parens: Vec<usize> = Vec::new();
        let mut i = 0;
        while i < src.len() {
            match src[i] {
                b'(' => {
                    open_parens.push(i);
                    i += 1;
                }
                b')' => {
                    if open_parens.pop().is_none() {
                        return Err(SyntaxError::UnopenedParen(i));
                    }
                    i += 1;
                }
                b'$' if i + 1 == src.len() => {
                    items.push(Item::End);
                    i += 1;
                }
                ESCAPE if src.get(i + 1) == Some(&b'b') => {
                    let (Some(&open), Some(&close)) = (src.get(i + 2), src.get(i + 3)) else {
                        return Err(SyntaxError::BalanceNeedsTwoBytes(i));
                    };
                    let (open, close) = if self.ignore_case {
                        (open.to_ascii_lowercase(), close.to_ascii_lowercase())
                    } else {
                        (open, close)
                    };
                    items.push(Item::Balance(open, close));
                    i += 4;
                }
                ESCAPE if src.get(i + 1) == Some(&b'f') => {
                    if src.get(i + 2) != Some(&b'[') {
                        return Err(SyntaxError::FrontierNeedsSet(i));
                    }
                    let (set, end) = self.set(i + 2)?;
                    items.push(Item::Frontier(set));
                    i = end;
                }
                _ => {
                    let (set, end) = self.single(i)?;
                    let repeat = match src.get(end) {
                        Some(b'?') => Repeat::Optional,
                        Some(b'*') => Repeat::Star,
                        Some(b'+') => Repeat::Plus,
                        Some(b'-') => Repeat::Lazy,
                        _ => Repeat::One,
                    };
                    items.push(Item::Single(set, repeat));
                    i = if repeat == Repeat::One { end } else { end + 1 };
                }
            }
        }
        if let Some(&at) = open_parens.first() {
            return Err(SyntaxError::UnclosedParen(at));
        }
        Ok(items)
    }

    /// The single-byte item at `i` and the offset just after it.
    fn single(&self, i: usize) -> Result<(ByteSet, usize), SyntaxError> {
        match self.src[i] {
            b'.' => Ok((ByteSet::ALL, i + 1)),
            ESCAPE => match self.src.get(i + 1) {
                Some(&c) => Ok((self.escape(c), i + 2)),
                None => Err(SyntaxError::TrailingEscape(i)),
            },
            b'[' => self.set(i),
            b => Ok((self.positive(ByteSet::from_fn(|c| c == b)), i + 1)),
        }
    }

    /// The set opening at `open` (`[`) and the offset just after its `]`.
    fn set(&self, open: usize) -> Result<(ByteSet, usize), SyntaxError> {
        let src = self.src;
        let mut p = open + 1;
        let negated = src.get(p) == Some(&b'^');
        if negated {
            p += 1;
        }
        // Lua's `classend`: the first byte is always a member (so `[]]` is a
        // set holding `]`), and an escape hides the byte after it.
        let close = loop {
            let Some(&c) = src.get(p) else {
                return Err(SyntaxError::UnclosedSet(open));
            };
            p += 1;
            if c == ESCAPE && p < src.len() {
                p += 1;
            }
            if src.get(p) == Some(&b']') {
                break p;
            }
        };
        // Lua's `matchbracketclass`, evaluated once for every byte.
        let mut members = ByteSet::EMPTY;
        let mut q = if negated { open + 1 } else { open };
        loop {
            q += 1;
            if q >= close {
                break;
            }
            let item = if src[q] == ESCAPE {
                q += 1;
                self.escape(src[q])
            } else if src[q + 1] == b'-' && q + 2 < close {
                let (low, high) = (src[q], src[q + 2]);
                q += 2;
                self.positive(ByteSet::from_fn(|c| low <= c && c <= high))
            } else {
                let b = src[q];
                self.positive(ByteSet::from_fn(|c| c == b))
            };
            members = members.union(item);
        }
        let set = if negated {
            members.complement()
        } else {
            members
        };
        Ok((set, close + 1))
    }

    /// What `\c` means: a class (negated when upper case) or `c` itself.
    fn escape(&self, c: u8) -> ByteSet {
        let class: fn(u8) -> bool = match c.to_ascii_lowercase() {
            b'a' => |b| b.is_ascii_alphabetic(),
            b'c' => |b| b.is_ascii_control(),
            b'd' => |b| b.is_ascii_digit(),
            b'l' => |b| b.is_ascii_lowercase(),
            b'p' => |b| b.is_ascii_punctuation(),
            // C's isspace: space, \t, \n, \v, \f, \r (Rust's
            // is_ascii_whitespace leaves out \v).
            b's' => |b| matches!(b, b' ' | b'\t'..=b'\r'),
            b'u' => |b| b.is_ascii_uppercase(),
            b'w' => |b| b.is_ascii_alphanumeric(),
            b'x' => |b| b.is_ascii_hexdigit(),
            b'z' => |b| b == 0,
            _ => return self.positive(ByteSet::from_fn(|b| b == c)),
        };
        let set = self.positive(ByteSet::from_fn(class));
        if c.is_ascii_uppercase() {
            set.complement()
        } else {
            set
        }
    }

    /// A set before any negation: closed under ASCII case when ignoring case.
    fn positive(&self, set: ByteSet) -> ByteSet {
        if self.ignore_case {
            set.case_closed()
        } else {
            set
        }
    }
}

/// The state of one match: Lua's `MatchState` plus the bounds.
struct Matcher<'a> {
    items: &'a [Item],
    subject: &'a [u8],
    ignore_case: bool,
    steps: u64,
    /// Set once a bound is exceeded; every level then gives up.
    exhausted: bool,
}

impl Matcher<'_> {
    /// Counts `n` steps; false once the budget is gone.
    fn spend(&mut self, n: u64) -> bool {
        self.steps += n;
        if self.steps > MATCH_STEP_LIMIT {
            self.exhausted = true;
        }
        !self.exhausted
    }

    /// Lua's `match`: items from `pi` against the subject from `si`. Loops
    /// where Lua tail-calls; recurses (one level deeper) only to try a
    /// quantified item's continuations, so the depth is bounded by the
    /// pattern, never by the subject.
    fn match_at(&mut self, mut si: usize, mut pi: usize, depth: u32) -> Option<usize> {
        if depth > MATCH_DEPTH_LIMIT {
            self.exhausted = true;
            return None;
        }
        loop {
            if !self.spend(1) {
                return None;
            }
            let Some(&item) = self.items.get(pi) else {
                return Some(si);
            };
            match item {
                Item::End => return (si == self.subject.len()).then_some(si),
                Item::Balance(open, close) => {
                    si = self.balance(si, open, close)?;
                    pi += 1;
                }
                Item::Frontier(set) => {
                    let previous = if si == 0 { 0 } else { self.subject[si - 1] };
                    let next = self.subject.get(si).copied().unwrap_or(0);
                    if set.contains(previous) || !set.contains(next) {
                        return None;
                    }
                    pi += 1;
                }
                Item::Single(set, repeat) => {
                    let here = self.subject.get(si).is_some_and(|&b| set.contains(b));
                    match repeat {
                        Repeat::One => {
                            if !here {
                                return None;
                            }
                            si += 1;
                            pi += 1;
                        }
                        Repeat::Optional => {
                            if here {
                                if let Some(end) = self.match_at(si + 1, pi + 1, depth + 1) {
                                    return Some(end);
                                }
                                if self.exhausted {
                                    return None;
                                }
                            }
                            pi += 1;
                        }
                        Repeat::Star => return self.max_expand(si, set, pi, depth),
                        Repeat::Plus => {
                            return if here {
                                self.max_expand(si + 1, set, pi, depth)
                            } else {
                                None
                            };
                        }
                        Repeat::Lazy => return self.min_expand(si, set, pi, depth),
                    }
                }
            }
        }
    }

    /// Longest run of `set` from `si`, then shorter ones, each followed by
    /// the rest of the pattern.
    fn max_expand(&mut self, si: usize, set: ByteSet, pi: usize, depth: u32) -> Option<usize> {
        let run = self.subject[si..]
            .iter()
            .take_while(|&&b| set.contains(b))
            .count();
        if !self.spend(run as u64) {
            return None;
        }
        if pi + 1 == self.items.len() {
            return Some(si + run);
        }
        for n in (0..=run).rev() {
            if let Some(end) = self.match_at(si + n, pi + 1, depth + 1) {
                return Some(end);
            }
            if self.exhausted {
                return None;
            }
        }
        None
    }

    /// Shortest run of `set` from `si` after which the rest matches.
    fn min_expand(&mut self, mut si: usize, set: ByteSet, pi: usize, depth: u32) -> Option<usize> {
        loop {
            if let Some(end) = self.match_at(si, pi + 1, depth + 1) {
                return Some(end);
            }
            if self.exhausted {
                return None;
            }
            if self.subject.get(si).is_some_and(|&b| set.contains(b)) {
                si += 1;
            } else {
                return None;
            }
        }
    }

    /// Lua's `matchbalance`: from `open` at `si` to its matching `close`.
    fn balance(&mut self, si: usize, open: u8, close: u8) -> Option<usize> {
        let ignore_case = self.ignore_case;
        let fold = |b: u8| {
            if ignore_case {
                b.to_ascii_lowercase()
            } else {
                b
            }
        };
        if self.subject.get(si).map(|&b| fold(b)) != Some(open) {
            return None;
        }
        let mut depth = 1usize;
        for (offset, &b) in self.subject[si + 1..].iter().enumerate() {
            let b = fold(b);
            if b == close {
                depth -= 1;
                if depth == 0 {
                    let end = si + 1 + offset + 1;
                    return self.spend((offset + 1) as u64).then_some(end);
                }
            } else if b == open {
                depth += 1;
            }
        }
        self.spend((self.subject.len() - si) as u64);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `(pattern, subject, expected match length)`.
    type Case = (&'static str, &'static [u8], Option<usize>);

    /// Cases whose match/no-match was confirmed against the real Mongrel2
    /// 1.12.2: `m2sh route -match "/$SUBJECT" -pattern "/()$PATTERN"` prints
    /// "Match passed" exactly for the `Some` rows (the `/()` puts the whole
    /// of `$PATTERN` after the literal prefix `/`). The lengths follow Lua's
    /// algorithm, which m2sh cannot show.
    const ORACLE_CASES: &[Case] = &[
        ("abc", b"abcd", Some(3)),
        ("abc", b"abx", None),
        ("a.c", b"axc", Some(3)),
        (r"\a+", b"abC1", Some(3)),
        (r"\A+", b"12a", Some(2)),
        (r"\d+", b"123x", Some(3)),
        (r"\D", b"1", None),
        (r"\l+", b"abC", Some(2)),
        (r"\L", b"a", None),
        (r"\u+", b"ABc", Some(2)),
        (r"\U", b"a", Some(1)),
        (r"\p+", b".,;a", Some(3)),
        (r"\P", b".", None),
        (r"\s", b" x", Some(1)),
        (r"\S+", b"ab c", Some(2)),
        (r"\w+", b"ab1_", Some(3)),
        (r"\W", b"_", Some(1)),
        (r"\x+", b"0fAg", Some(3)),
        (r"\X", b"g", Some(1)),
        (r"\c", b"a", None),
        (r"\C+", b"abc", Some(3)),
        (r"\z", b"a", None),
        (r"\Z+", b"ab", Some(2)),
        ("[abc]+", b"cabd", Some(3)),
        ("[^abc]+", b"xyza", Some(3)),
        ("[a-f]+", b"fedcbag", Some(6)),
        ("[^a-f]", b"a", None),
        (r"[\d_]+", b"1_2-", Some(3)),
        ("[]]", b"]", Some(1)),
        ("[^]]", b"]", None),
        ("[a-]+", b"-a-b", Some(3)),
        (r"[\]]", b"]", Some(1)),
        ("a*", b"aaab", Some(3)),
        ("a*", b"b", Some(0)),
        ("a+", b"b", None),
        ("a-b", b"aaab", Some(4)),
        ("a-", b"aaa", Some(0)),
        (".-b", b"aabab", Some(3)),
        (".*b", b"aabab", Some(5)),
        ("a?b", b"ab", Some(2)),
        ("a?b", b"b", Some(1)),
        ("a?b", b"c", None),
        ("a$", b"a", Some(1)),
        ("a$", b"ab", None),
        ("(a$)", b"a$", Some(2)),
        ("(a$)", b"a", None),
        (r"\b()", b"(a(b)c)d", Some(7)),
        (r"\b()", b"(a(b)c", None),
        (r"\b<>x", b"<<>>x", Some(5)),
        (r"\bab", b"ab", Some(2)),
        (r"\f[\w]\w+", b"abc", Some(3)),
        (r".\f[\w]", b" a", Some(1)),
        (r".\f[\w]", b"aa", None),
        (r"abc\f[\z]", b"abc", Some(3)),
        (r"abc\f[\W]", b"abc", Some(3)),
        (r"ab\f[\W]", b"abc", None),
        (r"\.", b".", Some(1)),
        (r"\.", b"x", None),
        (r"\(", b"(", Some(1)),
        (r"\\", b"\\", Some(1)),
        (r"\1", b"1", Some(1)),
        (r"\Q", b"Q", Some(1)),
        ("(^a)", b"^a", Some(2)),
        ("(^a)", b"a", None),
        ("(a)*", b"a*", Some(2)),
        ("(a)*", b"aa", None),
        ("foo-bar", b"fobar", Some(5)),
        ("foo-bar", b"foobar", Some(6)),
        (r".*\.jpg", b"a.jpg.png", Some(5)),
        (r".*\.jpg$", b"a.jpg.png", None),
        ("[a-z]-$", b"cadillac", Some(8)),
        ("[0-9]+", b"1234/testing", Some(4)),
        ("$a", b"$a", Some(2)),
        ("a**", b"aa*", Some(3)),
        ("a**", b"aa", None),
        ("x?", b"", Some(0)),
        ("%d", b"%d", Some(2)),
        ("%d", b"1", None),
    ];

    /// Control and non-ASCII bytes, empty patterns and subjects, odd sets.
    /// All but the NUL-byte row were confirmed with the same `m2sh route`
    /// command, the bytes passed raw through argv (a NUL cannot be).
    const MORE_CASES: &[Case] = &[
        (r"\s+", b"\t\n\x0b\x0c\r x", Some(6)),
        (r"\c\c", b"\x7f\x1f", Some(2)),
        (r"\z", b"\0", Some(1)),
        (r"\a", b"\xe9", None),
        (r"\A", b"\xe9", Some(1)),
        (r"\p", b"\x80", None),
        (".", b"\xff", Some(1)),
        ("", b"abc", Some(0)),
        ("()", b"abc", Some(0)),
        ("$", b"", Some(0)),
        ("$", b"a", None),
        ("a", b"", None),
        (r"\f[a]", b"", None),
        (r"[\a-z]+", b"Q-z", Some(3)),
        ("[z-a]", b"m", None),
        (r#"\b"""#, b"\"a\"b\"", Some(3)),
        (".-$", b"abc", Some(3)),
        ("a-$", b"aab", None),
        ("[^%d]", b"x", Some(1)),
    ];

    fn check(cases: &[Case]) {
        for &(pattern, subject, expected) in cases {
            let compiled = Pattern::compile(pattern).unwrap();
            assert_eq!(
                compiled.match_prefix(subject),
                expected,
                "pattern {pattern:?} on {:?}",
                subject.escape_ascii().to_string()
            );
        }
    }

    #[test]
    fn matches_like_mongrel2() {
        check(ORACLE_CASES);
    }

    #[test]
    fn matches_bytes_and_edge_cases() {
        check(MORE_CASES);
    }

    #[test]
    fn ignore_case_folds_literals_sets_classes_and_balance() {
        let cases: &[Case] = &[
            ("abc", b"ABC", Some(3)),
            ("[a-c]+", b"CbA", Some(3)),
            ("[^a]", b"A", None),
            ("[^a]", b"b", Some(1)),
            (r"\u+", b"aB", Some(2)),
            (r"\l+", b"Ab", Some(2)),
            (r"\QX", b"qx", Some(2)),
            (r"\bAB", b"aAbb", Some(4)),
            (r"\f[A]a", b"a", Some(1)),
            (r"\d", b"1", Some(1)),
        ];
        for &(pattern, subject, expected) in cases {
            let compiled = Pattern::compile_ignore_case(pattern).unwrap();
            assert_eq!(compiled.match_prefix(subject), expected, "{pattern:?}");
        }
        assert_eq!(Pattern::compile("abc").unwrap().match_prefix(b"ABC"), None);
    }

    #[test]
    fn compile_errors_say_what_and_where() {
        let cases = [
            ("abc\\", "ends with a lone `\\` (byte 3)"),
            ("a[bc", "`[` at byte 1 has no closing `]`"),
            ("[]", "`[` at byte 0 has no closing `]`"),
            ("[a\\]", "`[` at byte 0 has no closing `]`"),
            ("[\\", "`[` at byte 0 has no closing `]`"),
            ("x\\b(", "`\\b` at byte 1 needs two bytes after it"),
            ("\\b", "`\\b` at byte 0 needs two bytes after it"),
            ("\\fa", "`\\f` at byte 0 must be followed by a set `[...]`"),
            ("\\f", "`\\f` at byte 0 must be followed by a set `[...]`"),
            ("\\f[a", "`[` at byte 2 has no closing `]`"),
            ("a)b", "`)` at byte 1 has no `(` before it"),
            ("(a)(b", "`(` at byte 3 is never closed"),
            ("((a)", "`(` at byte 0 is never closed"),
        ];
        for (pattern, reason) in cases {
            let err = Pattern::compile(pattern).unwrap_err();
            assert_eq!(err.pattern, pattern);
            assert_eq!(err.reason, reason, "{pattern:?}");
        }
        assert_eq!(
            SyntaxError::UnclosedSet(1).into_error("/img/(x[", 5).reason,
            "`[` at byte 6 has no closing `]`"
        );
    }

    #[test]
    fn escaped_and_set_parens_do_not_count() {
        for pattern in [r"\(", r"\)", "[(]", "[)]", r"(\))", "(\\b)()"] {
            Pattern::compile(pattern).unwrap();
        }
    }

    #[test]
    fn as_str_returns_the_source() {
        assert_eq!(Pattern::compile("(.*)$").unwrap().as_str(), "(.*)$");
    }

    const MIB: usize = 1 << 20;

    #[test]
    fn one_mib_subjects_do_not_overflow_the_stack() {
        let mut subject = vec![b'a'; MIB];
        assert_eq!(
            Pattern::compile("a*").unwrap().match_prefix(&subject),
            Some(MIB)
        );
        assert_eq!(
            Pattern::compile("a-$").unwrap().match_prefix(&subject),
            Some(MIB)
        );
        assert_eq!(
            Pattern::compile(".-b").unwrap().match_prefix(&subject),
            None
        );
        subject.extend_from_slice(b".jpg");
        let jpg = Pattern::compile(r".*\.jpg$").unwrap();
        assert_eq!(jpg.match_prefix(&subject), Some(MIB + 4));
        let balanced = vec![b'('; MIB];
        assert_eq!(
            Pattern::compile(r"\b()").unwrap().match_prefix(&balanced),
            None
        );
    }

    #[test]
    fn pathological_backtracking_gives_up_as_no_match() {
        let subject = vec![b'a'; 64 * 1024];
        let cubic = Pattern::compile("(.*)(.*)(.*)x").unwrap();
        assert_eq!(cubic.match_prefix(&subject), None);
        // The same pattern still matches where little backtracking is needed.
        assert_eq!(cubic.match_prefix(b"aaax"), Some(4));
    }

    #[test]
    fn nesting_beyond_the_depth_limit_is_no_match() {
        let within = "a?".repeat(MATCH_DEPTH_LIMIT as usize - 1);
        let beyond = "a?".repeat(MATCH_DEPTH_LIMIT as usize + 10);
        let subject = vec![b'a'; MATCH_DEPTH_LIMIT as usize + 10];
        let within = Pattern::compile(&within).unwrap();
        assert_eq!(
            within.match_prefix(&subject),
            Some(MATCH_DEPTH_LIMIT as usize - 1)
        );
        assert_eq!(
            Pattern::compile(&beyond).unwrap().match_prefix(&subject),
            None
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_any_pattern_or_subject(
            pattern in "[-a\\\\()\\[\\]^$.*+?%bfdwsAZ]{0,16}",
            subject in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            if let Ok(compiled) = Pattern::compile(&pattern) {
                if let Some(end) = compiled.match_prefix(&subject) {
                    prop_assert!(end <= subject.len());
                }
            }
            if let Ok(compiled) = Pattern::compile_ignore_case(&pattern) {
                let _ = compiled.match_prefix(&subject);
            }
        }

        #[test]
        fn literal_patterns_match_exactly_their_text(
            text in "[a-z0-9/]{0,12}",
            subject in "[a-z0-9/]{0,12}",
        ) {
            let compiled = Pattern::compile(&text).unwrap();
            let expected = subject.as_bytes().starts_with(text.as_bytes()).then_some(text.len());
            prop_assert_eq!(compiled.match_prefix(subject.as_bytes()), expected);
        }
    }
}
