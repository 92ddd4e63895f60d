//! Host and route lookup with Mongrel2's semantics (PROTOCOL.md §2.2–2.3).
//!
//! This module owns the two lookup tables a request goes through: a server's
//! [`HostTable`] (the `Host` header → a host) and a host's [`RouteTable`]
//! (the raw request path → a route target). Both are built once from the
//! config (by [`crate::config`]) and then only read, on the hot path: a
//! lookup walks a byte trie and never allocates. Patterns are compiled and
//! checked at insert time by [`crate::pattern`]. What a target *is* (handler,
//! dir, proxy) is the caller's business: the tables are generic over it.
//!
//! # Routes
//!
//! A route key is a literal prefix up to the first `(`, then an optional
//! pattern (`/img/(.*\.jpg)` = prefix `/img/`, pattern `(.*\.jpg)`).
//! [`RouteTable::lookup`]:
//! 1. takes the **longest** prefix that is a prefix of the path (Kennel's
//!    decision: Mongrel2 also lets a path that is a prefix *of* a key match
//!    it, `/u` → `/users`; Kennel does not);
//! 2. tries the routes sharing that prefix in Mongrel2's chain order — the
//!    first inserted, then the others newest first (`RouteMap_insert_base`
//!    links each new route in right after the first); a route without a
//!    pattern always matches, one with a pattern must match starting right
//!    after the prefix (anchored at the end only if it ends in `$`);
//! 3. does **not** fall back to a shorter prefix when all of them fail:
//!    the answer is then "no route" (a 404), as in Mongrel2's
//!    `RouteMap_simple_prefix_match`.
//!
//! Steps 2 and 3 were confirmed on the real Mongrel2 1.12.2 server: with
//! routes inserted as `/a/(z)`, `/a/(.*)`, `/a/(x.*)`, `/b/([0-9]+)`, `/`,
//! a request for `/a/xq` went to `/a/(x.*)` and `/b/abc` got a 404.
//!
//! An empty prefix (a key starting with `(`) is a prefix of every path.
//! Mongrel2's tree cannot hold an empty key, so there such a route never
//! matches; Kennel takes the key at its word.
//!
//! # Hosts
//!
//! A host's `matching` is an optional pattern ending at the last `)`, then a
//! literal suffix (`(.+)example.com` = pattern `(.+)`, suffix
//! `example.com`). [`HostTable::lookup`] cuts the port off the `Host` header
//! and compares case-insensitively (Kennel's decision), then:
//! 1. a host without a pattern whose name is the whole host name wins; if
//!    several have the same name, the first inserted wins, as in Mongrel2;
//! 2. otherwise, among hosts with a pattern, the **longest** suffix of the
//!    name is taken, as in Mongrel2's `tst_search_suffix`; its pattern, with
//!    `$` appended as Mongrel2 does, must match all of the name before the
//!    suffix (so `(.+)example.com` matches `foo.example.com`, not
//!    `example.com`). Several hosts with that suffix are tried in the same
//!    chain order as routes (Mongrel2 tries only the first, so a second one
//!    could never match);
//! 3. a host without a pattern also answers for its subdomains:
//!    `example.com` matches `www.example.com`, as in Mongrel2, but only at a
//!    label boundary (Kennel's decision: Mongrel2's suffix tree also lets it
//!    match `badexample.com` and even `ample.com`, verified with
//!    `m2sh route -reversed -suffix`). The longest such name is taken; it
//!    beats a pattern host only when its name is longer than that host's
//!    suffix, and answers when the pattern hosts' patterns all fail;
//! 4. `None`: the caller uses the server's default host.
//!
//! An empty suffix (`(.+)`) likewise matches every name here; in Mongrel2
//! it never matches (verified), leaving such names to the default host.
//!
//! The suffix is compared as literal text: `(.+)\.example.com` has the
//! suffix `\.example.com`, backslash included, exactly as in Mongrel2.

use crate::pattern::{Pattern, PatternError};

/// A successful route lookup.
#[derive(Debug)]
pub struct RouteMatch<'a, T> {
    /// The route key as configured (what Mongrel2 sends as `PATTERN`).
    pub key: &'a str,
    /// The literal prefix of the key: the text before the first `(`.
    pub prefix: &'a str,
    /// What the route points at.
    pub target: &'a T,
    /// The route's position in its table (insertion order).
    pub index: usize,
}

/// A byte trie whose nodes hold chains of entry indices in Mongrel2's order.
#[derive(Debug, Clone)]
struct Trie {
    /// Node 0 is the root (the empty key).
    nodes: Vec<TrieNode>,
}

#[derive(Debug, Clone, Default)]
struct TrieNode {
    /// Children sorted by byte.
    children: Vec<(u8, usize)>,
    /// Entries whose key ends here: the first inserted, then the others
    /// newest first (Mongrel2 links each new one in after the first).
    chain: Vec<usize>,
}

impl Default for Trie {
    fn default() -> Self {
        Trie {
            nodes: vec![TrieNode::default()],
        }
    }
}

impl Trie {
    const ROOT: usize = 0;

    fn insert(&mut self, key: impl Iterator<Item = u8>, entry: usize) {
        let mut node = Trie::ROOT;
        for byte in key {
            node = match self.child(node, byte) {
                Some(next) => next,
                None => {
                    let next = self.nodes.len();
                    self.nodes.push(TrieNode::default());
                    let children = &mut self.nodes[node].children;
                    let at = children.partition_point(|&(b, _)| b < byte);
                    children.insert(at, (byte, next));
                    next
                }
            };
        }
        let chain = &mut self.nodes[node].chain;
        let at = chain.len().min(1);
        chain.insert(at, entry);
    }

    fn child(&self, node: usize, byte: u8) -> Option<usize> {
        let children = &self.nodes[node].children;
        children
            .binary_search_by_key(&byte, |&(b, _)| b)
            .ok()
            .map(|i| children[i].1)
    }

    fn chain(&self, node: usize) -> &[usize] {
        &self.nodes[node].chain
    }

    /// The deepest node on `key`'s path that holds entries, and its depth
    /// (how many bytes of `key` its entries' keys have).
    fn longest(&self, key: impl Iterator<Item = u8>) -> Option<(usize, usize)> {
        self.longest_where(key, |_| true)
    }

    /// Like [`Trie::longest`], counting only depths that `accept`.
    fn longest_where(
        &self,
        key: impl Iterator<Item = u8>,
        accept: impl Fn(usize) -> bool,
    ) -> Option<(usize, usize)> {
        let mut best = (!self.chain(Trie::ROOT).is_empty() && accept(0)).then_some((Trie::ROOT, 0));
        let mut node = Trie::ROOT;
        for (depth, byte) in key.enumerate() {
            match self.child(node, byte) {
                Some(next) => node = next,
                None => break,
            }
            if !self.chain(node).is_empty() && accept(depth + 1) {
                best = Some((node, depth + 1));
            }
        }
        best
    }

    /// The node for exactly `key`, if it holds entries.
    fn exact(&self, key: impl Iterator<Item = u8>) -> Option<usize> {
        let mut node = Trie::ROOT;
        for byte in key {
            node = self.child(node, byte)?;
        }
        (!self.chain(node).is_empty()).then_some(node)
    }
}

/// One configured route.
#[derive(Debug, Clone)]
struct Route<T> {
    key: String,
    prefix_len: usize,
    pattern: Option<Pattern>,
    target: T,
}

/// The routes of one host.
#[derive(Debug, Clone)]
pub struct RouteTable<T> {
    routes: Vec<Route<T>>,
    prefixes: Trie,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        RouteTable {
            routes: Vec::new(),
            prefixes: Trie::default(),
        }
    }
}

impl<T> RouteTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route with key `key` (`route.path`: literal prefix plus an
    /// optional pattern starting at the first `(`). The pattern is compiled
    /// now; an error names the key and the byte offset in it. Insertion
    /// order matters when several keys share a prefix (see the module docs).
    pub fn insert(&mut self, key: &str, target: T) -> Result<(), PatternError> {
        let prefix_len = key.find('(').unwrap_or(key.len());
        let pattern = if prefix_len < key.len() {
            let pattern = Pattern::build(&key[prefix_len..], false)
                .map_err(|e| e.into_error(key, prefix_len))?;
            Some(pattern)
        } else {
            None
        };
        let index = self.routes.len();
        self.prefixes
            .insert(key.as_bytes()[..prefix_len].iter().copied(), index);
        self.routes.push(Route {
            key: key.to_owned(),
            prefix_len,
            pattern,
            target,
        });
        Ok(())
    }

    /// The route that answers `path` (the raw request path), if any.
    pub fn lookup(&self, path: &[u8]) -> Option<RouteMatch<'_, T>> {
        let (node, depth) = self.prefixes.longest(path.iter().copied())?;
        let rest = &path[depth..];
        self.prefixes
            .chain(node)
            .iter()
            .map(|&i| (i, &self.routes[i]))
            .find(|(_, route)| match &route.pattern {
                None => true,
                Some(pattern) => pattern.match_prefix(rest).is_some(),
            })
            .map(|(index, route)| RouteMatch {
                key: &route.key,
                prefix: &route.key[..route.prefix_len],
                target: &route.target,
                index,
            })
    }

    /// Every route in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.routes.iter().map(|r| (r.key.as_str(), &r.target))
    }

    /// How many routes there are.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// One configured host.
#[derive(Debug, Clone)]
struct Host<T> {
    matching: String,
    /// The part up to the last `)`, plus `$`, compiled ignoring case.
    pattern: Option<Pattern>,
    value: T,
}

/// The hosts of one server, matched against the `Host` header.
#[derive(Debug, Clone)]
pub struct HostTable<T> {
    hosts: Vec<Host<T>>,
    /// Hosts without a pattern, by lower-cased name.
    names: Trie,
    /// Hosts with a pattern, by lower-cased suffix read backwards.
    suffixes: Trie,
}

impl<T> Default for HostTable<T> {
    fn default() -> Self {
        HostTable {
            hosts: Vec::new(),
            names: Trie::default(),
            suffixes: Trie::default(),
        }
    }
}

impl<T> HostTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a host by its `host.matching` pattern (literal suffix, optionally
    /// preceded by a pattern ending in `)`). The pattern is compiled now.
    pub fn insert(&mut self, matching: &str, value: T) -> Result<(), PatternError> {
        let index = self.hosts.len();
        let pattern = match matching.rfind(')') {
            Some(last_paren) => {
                let source = format!("{}$", &matching[..=last_paren]);
                let pattern =
                    Pattern::build(&source, true).map_err(|e| e.into_error(matching, 0))?;
                let suffix = &matching.as_bytes()[last_paren + 1..];
                self.suffixes
                    .insert(suffix.iter().rev().map(u8::to_ascii_lowercase), index);
                Some(pattern)
            }
            None => {
                self.names.insert(
                    matching.bytes().rev().map(|b| b.to_ascii_lowercase()),
                    index,
                );
                None
            }
        };
        self.hosts.push(Host {
            matching: matching.to_owned(),
            pattern,
            value,
        });
        Ok(())
    }

    /// The host for a `Host` header value (the port, if any, is ignored).
    /// `None` means the caller uses the server's default host.
    pub fn lookup(&self, host: &str) -> Option<&T> {
        let name = host_name(host).as_bytes();
        if name.is_empty() {
            return None;
        }
        let reversed = || name.iter().rev().map(u8::to_ascii_lowercase);
        if let Some(node) = self.names.exact(reversed()) {
            return Some(&self.hosts[self.names.chain(node)[0]].value);
        }
        // A plain name also answers for its subdomains, at a label boundary.
        let subdomain = self.names.longest_where(reversed(), |depth| {
            depth < name.len() && name[name.len() - depth - 1] == b'.'
        });
        let by_pattern = self.suffixes.longest(reversed()).and_then(|(node, depth)| {
            if subdomain.is_some_and(|(_, plain)| plain > depth) {
                return None;
            }
            let rest = &name[..name.len() - depth];
            self.suffixes.chain(node).iter().copied().find(|&i| {
                self.hosts[i]
                    .pattern
                    .as_ref()
                    .is_some_and(|p| p.match_prefix(rest).is_some())
            })
        });
        by_pattern
            .or_else(|| subdomain.map(|(node, _)| self.names.chain(node)[0]))
            .map(|i| &self.hosts[i].value)
    }

    /// Every host's `matching` text and value, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.hosts.iter().map(|h| (h.matching.as_str(), &h.value))
    }

    /// How many hosts there are.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether there are no hosts.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// The name part of a `Host` header: an IPv6 literal up to its `]`
/// (`[::1]:8080` → `[::1]`), anything else up to the first `:`.
fn host_name(header: &str) -> &str {
    if header.starts_with('[') {
        if let Some(close) = header.find(']') {
            return &header[..=close];
        }
    }
    header.split(':').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn routes(keys: &[&'static str]) -> RouteTable<&'static str> {
        let mut table = RouteTable::new();
        for key in keys {
            table.insert(key, *key).unwrap();
        }
        table
    }

    fn route<'a>(table: &'a RouteTable<&'static str>, path: &str) -> Option<&'a str> {
        table.lookup(path.as_bytes()).map(|m| *m.target)
    }

    /// Mongrel2's own `tests/routing_tests.c` table, with Kennel's answer
    /// where the prefix-of-a-key quirk is not copied.
    #[test]
    fn mongrel2_simple_prefix_table() {
        let table = routes(&[
            "/",
            "/users/([0-9]+)",
            "/users",
            "/users/people/([0-9]+)$",
            "/cars-fast/([a-z]-)$",
        ]);
        let cases = [
            ("/users/1234/testing", Some("/users/([0-9]+)")),
            ("/users", Some("/users")),
            ("/users/people/1234", Some("/users/people/([0-9]+)$")),
            ("/cars-fast/cadillac", Some("/cars-fast/([a-z]-)$")),
            ("/users/1234", Some("/users/([0-9]+)")),
            ("/", Some("/")),
            ("/usersBLAAHAHAH", Some("/users")),
            // Mongrel2 answers `/users` here (the path is a prefix of it).
            ("/us", Some("/")),
            ("/u", Some("/")),
            // The longest prefix decides; no fall back to `/users` or `/`.
            ("/users/people/1234/notgonnawork", None),
            ("/users/abc", None),
            ("/cars-fast/Cadillac", None),
        ];
        for (path, expected) in cases {
            assert_eq!(route(&table, path), expected, "{path}");
        }
    }

    #[test]
    fn a_path_that_is_a_prefix_of_a_key_does_not_match_it() {
        let table = routes(&["/users", "/handler/"]);
        for path in ["/u", "/us", "/user", "/h", "/handler", ""] {
            assert_eq!(route(&table, path), None, "{path}");
        }
        assert_eq!(route(&table, "/users"), Some("/users"));
        assert_eq!(route(&table, "/handler/x"), Some("/handler/"));
    }

    #[test]
    fn patterns_are_not_anchored_at_the_end_unless_they_end_in_dollar() {
        let table = routes(&[r"/img/(.*\.jpg)", "/exact()$"]);
        assert_eq!(route(&table, "/img/a.jpg.png"), Some(r"/img/(.*\.jpg)"));
        assert_eq!(route(&table, "/img/a.png"), None);
        assert_eq!(route(&table, "/exact"), Some("/exact()$"));
        assert_eq!(route(&table, "/exact/"), None);
        assert_eq!(route(&table, "/exactly"), None);
    }

    #[test]
    fn several_patterns_on_one_prefix() {
        let table = routes(&["/", "/img/(.*).jpg$", "/img/(.*).png$"]);
        assert_eq!(route(&table, "/img/foo.jpg"), Some("/img/(.*).jpg$"));
        assert_eq!(route(&table, "/img/foo.png"), Some("/img/(.*).png$"));
        assert_eq!(route(&table, "/img/foo.bmp"), None);
    }

    /// The order the real Mongrel2 1.12.2 server showed (module docs).
    #[test]
    fn shared_prefix_chain_is_first_then_newest_first() {
        let table = routes(&["/a/(z)", "/a/(.*)", "/a/(x.*)"]);
        assert_eq!(route(&table, "/a/z"), Some("/a/(z)"));
        assert_eq!(route(&table, "/a/xq"), Some("/a/(x.*)"));
        assert_eq!(route(&table, "/a/q"), Some("/a/(.*)"));
    }

    #[test]
    fn a_route_without_pattern_in_a_chain_always_matches() {
        let head_plain = routes(&["/a/", "/a/(z)"]);
        assert_eq!(route(&head_plain, "/a/z"), Some("/a/"));
        let later_plain = routes(&["/a/(z)", "/a/"]);
        assert_eq!(route(&later_plain, "/a/z"), Some("/a/(z)"));
        assert_eq!(route(&later_plain, "/a/q"), Some("/a/"));
    }

    #[test]
    fn longest_prefix_wins_and_slash_catches_everything() {
        let table = routes(&["/", "/a", "/a/b/", "/a/b/c"]);
        let cases = [
            ("/", "/"),
            ("/zzz/y", "/"),
            ("/a", "/a"),
            ("/a/b", "/a"),
            ("/a/b/", "/a/b/"),
            ("/a/b/cd", "/a/b/c"),
            ("/ab", "/a"),
        ];
        for (path, expected) in cases {
            assert_eq!(route(&table, path), Some(expected), "{path}");
        }
    }

    #[test]
    fn an_empty_prefix_is_a_prefix_of_every_path() {
        let table = routes(&["(/x.*)", "/y"]);
        assert_eq!(route(&table, "/xa"), Some("(/x.*)"));
        assert_eq!(route(&table, "/y1"), Some("/y"));
        assert_eq!(route(&table, "/z"), None);
    }

    #[test]
    fn lookup_reports_key_and_prefix_and_works_on_raw_bytes() {
        let table = routes(&[r"/img/(.*\.jpg)"]);
        let found = table.lookup(b"/img/\xff\xfe.jpg").unwrap();
        assert_eq!(found.key, r"/img/(.*\.jpg)");
        assert_eq!(found.prefix, "/img/");
        assert_eq!(*found.target, r"/img/(.*\.jpg)");
        assert!(RouteTable::<()>::new().lookup(b"/").is_none());
    }

    #[test]
    fn insert_rejects_bad_patterns_naming_key_and_offset() {
        let mut table = RouteTable::new();
        let err = table.insert("/img/(x[", ()).unwrap_err();
        assert_eq!(err.pattern, "/img/(x[");
        assert_eq!(err.reason, "`[` at byte 7 has no closing `]`");
        let err = table.insert("/a/(b", ()).unwrap_err();
        assert_eq!(err.reason, "`(` at byte 3 is never closed");
        assert!(table.is_empty());
    }

    #[test]
    fn iter_and_len_keep_insertion_order() {
        let table = routes(&["/b", "/a", "/b"]);
        let keys: Vec<&str> = table.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["/b", "/a", "/b"]);
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn long_and_adversarial_paths_do_not_overflow_or_panic() {
        let table = routes(&["/", "/a/(.*)(.*)(.*)x", r"/b/(\b())"]);
        let mut long = b"/a/".to_vec();
        long.extend(std::iter::repeat_n(b'a', 1 << 20));
        assert_eq!(table.lookup(&long).map(|m| m.key), None);
        let mut nested = b"/b/".to_vec();
        nested.extend(std::iter::repeat_n(b'(', 1 << 20));
        assert_eq!(table.lookup(&nested).map(|m| m.key), None);
        let slashes = vec![b'/'; 1 << 20];
        assert_eq!(table.lookup(&slashes).map(|m| m.key), Some("/"));
    }

    fn hosts(matchings: &[&'static str]) -> HostTable<&'static str> {
        let mut table = HostTable::new();
        for m in matchings {
            table.insert(m, *m).unwrap();
        }
        table
    }

    fn host<'a>(table: &'a HostTable<&'static str>, header: &str) -> Option<&'a str> {
        table.lookup(header).copied()
    }

    #[test]
    fn host_pattern_must_match_all_of_the_rest() {
        // As verified with `m2sh route -reversed -suffix`.
        let table = hosts(&["(.+)example.com"]);
        assert_eq!(host(&table, "foo.example.com"), Some("(.+)example.com"));
        assert_eq!(host(&table, "xexample.com"), Some("(.+)example.com"));
        assert_eq!(host(&table, "example.com"), None);
        assert_eq!(host(&table, "ample.com"), None);
        let table = hosts(&["([a-z]+).example.com"]);
        assert_eq!(host(&table, "ab.example.com"), Some("([a-z]+).example.com"));
        assert_eq!(host(&table, "a.b.example.com"), None);
    }

    #[test]
    fn the_suffix_is_literal_text() {
        let table = hosts(&[r"(.+)\.example.com"]);
        assert_eq!(host(&table, "foo.example.com"), None);
        assert_eq!(
            host(&table, r"foo\.example.com"),
            Some(r"(.+)\.example.com")
        );
    }

    #[test]
    fn hosts_match_case_insensitively() {
        let table = hosts(&["Example.com", "([a-z]+).EXAMPLE.org", r"(\u\bAB)x.net"]);
        assert_eq!(host(&table, "example.COM"), Some("Example.com"));
        assert_eq!(
            host(&table, "FOO.example.ORG"),
            Some("([a-z]+).EXAMPLE.org")
        );
        assert_eq!(host(&table, "QaBX.NET"), Some(r"(\u\bAB)x.net"));
    }

    #[test]
    fn plain_names_match_themselves_and_subdomains_at_a_label_boundary() {
        let table = hosts(&["example.com"]);
        assert_eq!(host(&table, "example.com"), Some("example.com"));
        assert_eq!(host(&table, "foo.example.com"), Some("example.com"));
        assert_eq!(host(&table, "a.b.Example.COM"), Some("example.com"));
        // Mongrel2 matches these two as well; Kennel does not.
        assert_eq!(host(&table, "badexample.com"), None);
        assert_eq!(host(&table, "ample.com"), None);
        assert_eq!(host(&table, "example.co"), None);
        assert_eq!(host(&table, ".example.com"), Some("example.com"));

        // The longest plain name wins.
        let table = hosts(&["example.com", "api.example.com"]);
        assert_eq!(host(&table, "v1.api.example.com"), Some("api.example.com"));
        assert_eq!(host(&table, "www.example.com"), Some("example.com"));
    }

    #[test]
    fn plain_subdomains_and_patterns_share_the_longest_suffix_rule() {
        let table = hosts(&["example.com", "(.+)api.example.com"]);
        assert_eq!(
            host(&table, "x.api.example.com"),
            Some("(.+)api.example.com")
        );
        assert_eq!(host(&table, "www.example.com"), Some("example.com"));
        // The pattern's suffix is longer but its pattern fails: the plain
        // parent domain still answers.
        assert_eq!(host(&table, "api.example.com"), Some("example.com"));
        // Equal lengths: the pattern host is the more specific intent.
        let table = hosts(&["example.com", "(.+)example.com"]);
        assert_eq!(host(&table, "foo.example.com"), Some("(.+)example.com"));
        // A longer plain name beats a shorter pattern suffix.
        let table = hosts(&["(.+).com", "example.com"]);
        assert_eq!(host(&table, "www.example.com"), Some("example.com"));
        assert_eq!(host(&table, "www.other.com"), Some("(.+).com"));
    }

    #[test]
    fn ports_are_cut_and_ipv6_literals_kept_whole() {
        let table = hosts(&["example.com", "[::1]", "127.0.0.1"]);
        assert_eq!(host(&table, "example.com:8080"), Some("example.com"));
        assert_eq!(host(&table, "[::1]:8080"), Some("[::1]"));
        assert_eq!(host(&table, "[::1]"), Some("[::1]"));
        assert_eq!(host(&table, "127.0.0.1:80"), Some("127.0.0.1"));
        assert_eq!(host(&table, "[::2]:8080"), None);
        assert_eq!(host(&table, ""), None);
        assert_eq!(host(&table, ":8080"), None);
        assert_eq!(host(&table, "[::1"), None);
    }

    #[test]
    fn exact_name_beats_a_pattern_whatever_the_order() {
        for order in [
            ["(.+)example.com", "example.com"],
            ["example.com", "(.+)example.com"],
        ] {
            let table = hosts(&order);
            assert_eq!(host(&table, "example.com"), Some("example.com"));
            assert_eq!(host(&table, "a.example.com"), Some("(.+)example.com"));
        }
    }

    #[test]
    fn longest_suffix_wins_without_fall_back() {
        let table = hosts(&["(.+).com", "(www)example.com"]);
        assert_eq!(host(&table, "foo.other.com"), Some("(.+).com"));
        assert_eq!(host(&table, "wwwexample.com"), Some("(www)example.com"));
        // `example.com` is the longest suffix; its pattern fails: default host.
        assert_eq!(host(&table, "api.example.com"), None);
    }

    #[test]
    fn hosts_sharing_a_suffix_are_all_tried() {
        let table = hosts(&["(a.*)example.com", "(b.*)example.com"]);
        assert_eq!(host(&table, "a1example.com"), Some("(a.*)example.com"));
        assert_eq!(host(&table, "b1example.com"), Some("(b.*)example.com"));
        assert_eq!(host(&table, "c1example.com"), None);
        let dupes = hosts(&["same.org", "same.org"]);
        assert_eq!(
            dupes.lookup("same.org"),
            dupes.iter().next().map(|(_, v)| v)
        );
    }

    #[test]
    fn an_empty_suffix_pattern_catches_every_host() {
        let table = hosts(&["(.+)", "exact.org"]);
        assert_eq!(host(&table, "x.com"), Some("(.+)"));
        assert_eq!(host(&table, "exact.org"), Some("exact.org"));
    }

    #[test]
    fn host_insert_rejects_bad_patterns() {
        let mut table = HostTable::new();
        let err = table.insert("((.+)x.com", ()).unwrap_err();
        assert_eq!(err.pattern, "((.+)x.com");
        assert_eq!(err.reason, "`(` at byte 0 is never closed");
        let err = table.insert("([a)x.com", ()).unwrap_err();
        assert_eq!(err.reason, "`[` at byte 1 has no closing `]`");
        assert!(table.is_empty());
        table.insert("(x.com", ()).unwrap();
        assert_eq!(table.lookup("(x.com"), Some(&()));
        assert_eq!(table.len(), 1);
    }

    /// The lookup rules written as a linear scan over all routes.
    fn reference<'a>(keys: &'a [String], path: &[u8]) -> Option<&'a str> {
        let split = |key: &'a String| key.split_at(key.find('(').unwrap_or(key.len()));
        let longest = keys
            .iter()
            .map(|k| split(k).0)
            .filter(|prefix| path.starts_with(prefix.as_bytes()))
            .map(str::len)
            .max()?;
        let group: Vec<&String> = keys
            .iter()
            .filter(|k| split(k).0.len() == longest && path.starts_with(split(k).0.as_bytes()))
            .collect();
        let chain = group.iter().take(1).chain(group.iter().skip(1).rev());
        chain
            .copied()
            .find(|key| {
                let (prefix, pattern) = split(key);
                pattern.is_empty()
                    || Pattern::compile(pattern)
                        .unwrap()
                        .match_prefix(&path[prefix.len()..])
                        .is_some()
            })
            .map(String::as_str)
    }

    fn key_strategy() -> impl Strategy<Value = String> {
        let prefix = "/[ab/]{0,4}";
        let pattern = prop_oneof![
            Just(""),
            Just("()$"),
            Just("(a*)$"),
            Just("(b)"),
            Just("(.*)"),
            Just("([ab]-/)"),
        ];
        (prefix, pattern).prop_map(|(p, q)| format!("{p}{q}"))
    }

    proptest! {
        #[test]
        fn lookup_agrees_with_a_linear_scan(
            keys in proptest::collection::vec(key_strategy(), 0..12),
            paths in proptest::collection::vec("/[ab/]{0,7}", 1..16),
        ) {
            let mut table = RouteTable::new();
            for key in &keys {
                table.insert(key, key.clone()).unwrap();
            }
            for path in &paths {
                let got = table.lookup(path.as_bytes()).map(|m| m.key);
                prop_assert_eq!(got, reference(&keys, path.as_bytes()), "path {}", path);
            }
        }

        #[test]
        fn lookups_never_panic(
            keys in proptest::collection::vec("[/a(.*$)\\\\\\[\\]^-]{0,8}", 0..8),
            path in proptest::collection::vec(any::<u8>(), 0..32),
            header in "[a-z.:\\[\\]0-9]{0,16}",
        ) {
            let mut routes = RouteTable::new();
            let mut hosts = HostTable::new();
            for key in &keys {
                let _ = routes.insert(key, ());
                let _ = hosts.insert(key, ());
            }
            let _ = routes.lookup(&path);
            let _ = hosts.lookup(&header);
        }
    }
}
