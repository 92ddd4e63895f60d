//! The `mimetype` table: file extension → `Content-Type`.
//!
//! Owns: the extension map and its lookup (longest matching suffix,
//! case-insensitive, as Dir targets need). Does not own: reading or
//! validating rows (see `load`). Called by the loader to build it and by the
//! Dir target to answer with a `Content-Type`.

use std::borrow::Cow;
use std::collections::HashMap;

/// Extension → MIME type, looked up by the longest extension that ends a
/// path, ignoring ASCII case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MimeTypes {
    /// Keyed by the lower-cased extension, including its leading `.`.
    by_ext: HashMap<String, String>,
    /// Length of the longest extension, so a lookup never tries a suffix
    /// that cannot match.
    longest: usize,
}

impl MimeTypes {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `extension` (starting with `.`) → `mimetype`. Extensions that
    /// differ only in ASCII case are one extension: if it is already
    /// present, nothing changes and `false` is returned.
    pub fn insert(&mut self, extension: &str, mimetype: &str) -> bool {
        let key = extension.to_ascii_lowercase();
        if self.by_ext.contains_key(&key) {
            return false;
        }
        self.longest = self.longest.max(key.len());
        self.by_ext.insert(key, mimetype.to_owned());
        true
    }

    /// The MIME type for `path`: the one whose extension is the longest
    /// suffix of the path's last segment that starts at a `.`, ignoring
    /// ASCII case (`a.tar.gz` tries `.tar.gz` before `.gz`).
    pub fn lookup(&self, path: &str) -> Option<&str> {
        let name = path.rsplit('/').next().unwrap_or(path);
        for (start, _) in name.match_indices('.') {
            let suffix = &name[start..];
            if suffix.len() > self.longest {
                continue;
            }
            let key: Cow<'_, str> = if suffix.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(suffix.to_ascii_lowercase())
            } else {
                Cow::Borrowed(suffix)
            };
            if let Some(found) = self.by_ext.get(key.as_ref()) {
                return Some(found);
            }
        }
        None
    }

    /// How many extensions there are.
    pub fn len(&self) -> usize {
        self.by_ext.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.by_ext.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> MimeTypes {
        let mut m = MimeTypes::new();
        assert!(m.insert(".gz", "application/gzip"));
        assert!(m.insert(".tar.gz", "application/x-gtar"));
        assert!(m.insert(".html", "text/html"));
        assert!(m.insert(".pcf.Z", "application/x-font"));
        m
    }

    #[test]
    fn longest_suffix_wins() {
        let m = map();
        assert_eq!(m.lookup("/a/b.tar.gz"), Some("application/x-gtar"));
        assert_eq!(m.lookup("/a/b.gz"), Some("application/gzip"));
        assert_eq!(m.lookup("x.y.gz"), Some("application/gzip"));
        assert_eq!(m.lookup("font.pcf.z"), Some("application/x-font"));
    }

    #[test]
    fn case_is_ignored() {
        let m = map();
        assert_eq!(m.lookup("/INDEX.HTML"), Some("text/html"));
        assert_eq!(m.lookup("/Index.Html"), Some("text/html"));
        assert_eq!(m.lookup("FONT.PCF.Z"), Some("application/x-font"));
    }

    #[test]
    fn misses() {
        let m = map();
        assert_eq!(m.lookup("/README"), None);
        assert_eq!(m.lookup("/dir.html/README"), None, "only the last segment");
        assert_eq!(m.lookup("/a.htm"), None);
        assert_eq!(m.lookup(""), None);
        assert_eq!(m.lookup("/trailing."), None);
        assert_eq!(MimeTypes::new().lookup("/a.html"), None);
    }

    #[test]
    fn first_of_case_variants_is_kept() {
        let mut m = map();
        assert!(!m.insert(".HTML", "text/x-other"));
        assert_eq!(m.lookup("a.html"), Some("text/html"));
        assert_eq!(m.len(), 4);
    }
}
