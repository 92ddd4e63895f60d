//! Fuzz target `pattern`: an arbitrary pattern and subject through
//! `kennel::pattern::Pattern` (compile, compile ignoring case, match).
//!
//! Input: byte 0 is the pattern's length (up to the rest's length); the
//! pattern (invalid UTF-8 replaced, since patterns come from config text),
//! then the subject.
//!
//! Run it with a `-timeout=` (run-all.sh uses 10 s): matching is bounded by
//! `MATCH_STEP_LIMIT` and `MATCH_DEPTH_LIMIT`, and a pattern that takes
//! exponential time anyway shows up as a timeout.
//!
//! Checks, besides "no panic" and "ends":
//! - a match length is at most the subject's;
//! - `()` in front of a pattern changes nothing (compiles the same, matches
//!   the same);
//! - a pattern compiled ignoring case matches the same whatever the ASCII
//!   case of the subject;
//! - without `$` and `\f` (which look at the end of the subject) a match of
//!   `n` bytes also matches the subject cut to its first `n` bytes, with the
//!   same length.
#![no_main]

use kennel::pattern::Pattern;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let len = usize::from(len).min(rest.len());
    let (source, subject) = rest.split_at(len);
    let source = String::from_utf8_lossy(source);

    let exact = Pattern::compile(&source);
    let wrapped = Pattern::compile(&format!("(){source}"));
    assert_eq!(
        exact.is_ok(),
        wrapped.is_ok(),
        "() changed whether it compiles"
    );
    if let (Ok(pattern), Ok(wrapped)) = (&exact, &wrapped) {
        assert_eq!(pattern.as_str(), source);
        let found = pattern.match_prefix(subject);
        assert_eq!(wrapped.match_prefix(subject), found, "() changed the match");
        if let Some(n) = found {
            assert!(n <= subject.len());
            if !source.contains('$') && !source.contains("\\f") {
                assert_eq!(
                    pattern.match_prefix(&subject[..n]),
                    Some(n),
                    "the matched bytes alone"
                );
            }
        }
    }

    let folded = Pattern::compile_ignore_case(&source);
    assert_eq!(
        folded.is_ok(),
        exact.is_ok(),
        "case changed whether it compiles"
    );
    if let Ok(folded) = folded {
        let found = folded.match_prefix(subject);
        if let Some(n) = found {
            assert!(n <= subject.len());
        }
        assert_eq!(folded.match_prefix(&subject.to_ascii_lowercase()), found);
        assert_eq!(folded.match_prefix(&subject.to_ascii_uppercase()), found);
    }
});
