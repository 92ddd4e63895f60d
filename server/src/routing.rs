//! Host and route lookup with Mongrel2's semantics (PROTOCOL.md §2.2–2.3).
//!
//! STUB: the API is fixed; the implementation lands with the routing work.

use crate::pattern::PatternError;

/// A successful route lookup.
#[derive(Debug)]
pub struct RouteMatch<'a, T> {
    /// The route key as configured (what Mongrel2 sends as `PATTERN`).
    pub key: &'a str,
    /// The literal prefix of the key: the text before the first `(`.
    pub prefix: &'a str,
    /// What the route points at.
    pub target: &'a T,
}

/// The routes of one host.
#[derive(Debug, Clone)]
pub struct RouteTable<T> {
    entries: Vec<(String, T)>,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        RouteTable {
            entries: Vec::new(),
        }
    }
}

impl<T> RouteTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route with key `key` (`route.path`: literal prefix plus an
    /// optional pattern starting at the first `(`).
    pub fn insert(&mut self, key: &str, target: T) -> Result<(), PatternError> {
        self.entries.push((key.to_owned(), target));
        Ok(())
    }

    /// The route that answers `path` (the raw request path), if any.
    pub fn lookup(&self, _path: &[u8]) -> Option<RouteMatch<'_, T>> {
        todo!("route lookup")
    }

    /// Every route in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.entries.iter().map(|(k, t)| (k.as_str(), t))
    }

    /// How many routes there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The hosts of one server, matched against the `Host` header.
#[derive(Debug, Clone)]
pub struct HostTable<T> {
    entries: Vec<(String, T)>,
}

impl<T> Default for HostTable<T> {
    fn default() -> Self {
        HostTable {
            entries: Vec::new(),
        }
    }
}

impl<T> HostTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a host by its `host.matching` pattern (literal suffix, optionally
    /// preceded by a pattern ending in `)`).
    pub fn insert(&mut self, matching: &str, value: T) -> Result<(), PatternError> {
        self.entries.push((matching.to_owned(), value));
        Ok(())
    }

    /// The host for a `Host` header value (the port, if any, is ignored).
    /// `None` means the caller uses the server's default host.
    pub fn lookup(&self, _host: &str) -> Option<&T> {
        todo!("host lookup")
    }
}
