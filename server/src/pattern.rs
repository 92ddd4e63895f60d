//! Mongrel2's pattern language (Lua patterns with `\` as the escape).
//!
//! STUB: the API is fixed; the implementation lands with the routing work.

/// A pattern that failed to compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern text as given.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
}

impl Pattern {
    /// Compiles `source`, checking its syntax up front so that a bad route is
    /// a config error rather than a request-time surprise.
    pub fn compile(source: &str) -> Result<Pattern, PatternError> {
        Ok(Pattern {
            source: source.to_owned(),
        })
    }

    /// The pattern text as given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Matches anchored at the start of `subject`; returns the length matched.
    pub fn match_prefix(&self, _subject: &[u8]) -> Option<usize> {
        todo!("pattern matcher")
    }
}
