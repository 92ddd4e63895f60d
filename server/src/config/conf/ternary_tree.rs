//! m2sh's ternary search tree (`mongrel2/src/adt/tst.c`), kept for the
//! order it gives: every name → value table of a `.conf` (the variables,
//! a class's parameters, a `{...}` dict) is one of these in m2sh, and m2sh
//! walks a dict in the tree's breadth-first order, not in the order it was
//! written. That order decides the ids of routes, settings and the targets
//! they load, so [`TernaryTree::iter`] reproduces it exactly.
//!
//! Owns: insertion (a repeated key replaces the value but keeps the first
//! key's place, as m2sh built without assertions does), exact lookup and
//! the breadth-first walk. Used by the parser (which builds the tables) and
//! the importer (which walks them).
//!
//! Keys are compared byte by byte as C `char`s, which are signed on the
//! machines Mongrel2 runs on, so bytes from 0x80 up sort before ASCII. An
//! empty key is stored as m2sh stores it: at a node for the byte 0.

/// One node of the tree: a split byte, three children, maybe a value.
#[derive(Debug, Clone)]
struct Node {
    split: i8,
    low: Option<usize>,
    equal: Option<usize>,
    high: Option<usize>,
    /// Index into [`TernaryTree::entries`] of the key ending here.
    entry: Option<usize>,
}

/// A table of byte-string keys in m2sh's ternary search tree.
#[derive(Debug, Clone)]
pub(crate) struct TernaryTree<'a, V> {
    nodes: Vec<Node>,
    entries: Vec<(&'a [u8], V)>,
}

impl<V> Default for TernaryTree<'_, V> {
    fn default() -> Self {
        TernaryTree {
            nodes: Vec::new(),
            entries: Vec::new(),
        }
    }
}

/// The bytes m2sh walks for `key`: an empty key is its terminating NUL.
fn walked(key: &[u8]) -> &[u8] {
    if key.is_empty() {
        &[0]
    } else {
        key
    }
}

impl<'a, V> TernaryTree<'a, V> {
    /// Adds `key` → `value`. If the key is already present, its value is
    /// replaced (its place in [`TernaryTree::iter`] stays the first one's)
    /// and the old value is returned.
    pub(crate) fn insert(&mut self, key: &'a [u8], value: V) -> Option<V> {
        let bytes = walked(key);
        let mut at = self.root(bytes[0]);
        let mut i = 0;
        loop {
            let byte = bytes[i] as i8;
            let split = self.nodes[at].split;
            if byte < split {
                at = self.child(at, Child::Low, byte);
            } else if byte > split {
                at = self.child(at, Child::High, byte);
            } else if i + 1 < bytes.len() {
                i += 1;
                at = self.child(at, Child::Equal, bytes[i] as i8);
            } else {
                return match self.nodes[at].entry {
                    Some(e) => Some(std::mem::replace(&mut self.entries[e], (key, value)).1),
                    None => {
                        self.nodes[at].entry = Some(self.entries.len());
                        self.entries.push((key, value));
                        None
                    }
                };
            }
        }
    }

    /// The root, created with split byte `first` if the tree is empty.
    fn root(&mut self, first: u8) -> usize {
        if self.nodes.is_empty() {
            self.nodes.push(Node::new(first as i8));
        }
        0
    }

    /// The `which` child of `at`, created with split byte `split` if
    /// missing.
    fn child(&mut self, at: usize, which: Child, split: i8) -> usize {
        let node = &self.nodes[at];
        let existing = match which {
            Child::Low => node.low,
            Child::Equal => node.equal,
            Child::High => node.high,
        };
        if let Some(child) = existing {
            return child;
        }
        let child = self.nodes.len();
        self.nodes.push(Node::new(split));
        let node = &mut self.nodes[at];
        match which {
            Child::Low => node.low = Some(child),
            Child::Equal => node.equal = Some(child),
            Child::High => node.high = Some(child),
        }
        child
    }

    /// The value of `key`, found as m2sh's `tst_search` finds it.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&V> {
        self.get_entry(key).map(|(_, v)| v)
    }

    /// The stored key and value of `key`.
    pub(crate) fn get_entry(&self, key: &[u8]) -> Option<&(&'a [u8], V)> {
        if self.nodes.is_empty() {
            return None;
        }
        let mut at = Some(0);
        let mut i = 0;
        // `tst_search`: an empty key finds whatever the root holds.
        while i < key.len() {
            let node = &self.nodes[at?];
            let byte = key[i] as i8;
            if byte < node.split {
                at = node.low;
            } else if byte > node.split {
                at = node.high;
            } else {
                i += 1;
                if i < key.len() {
                    at = node.equal;
                }
            }
        }
        self.nodes[at?].entry.map(|e| &self.entries[e])
    }

    /// Every key and value in m2sh's walk order (`tst_traverse`): breadth
    /// first from the root, each node's children low, equal, high.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &(&'a [u8], V)> {
        let mut order = Vec::with_capacity(self.entries.len());
        let mut queue = std::collections::VecDeque::new();
        if !self.nodes.is_empty() {
            queue.push_back(0);
        }
        while let Some(at) = queue.pop_front() {
            let node = &self.nodes[at];
            if let Some(e) = node.entry {
                order.push(&self.entries[e]);
            }
            queue.extend([node.low, node.equal, node.high].into_iter().flatten());
        }
        order.into_iter()
    }

    /// How many keys there are.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[derive(Clone, Copy)]
enum Child {
    Low,
    Equal,
    High,
}

impl Node {
    fn new(split: i8) -> Self {
        Node {
            split,
            low: None,
            equal: None,
            high: None,
            entry: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys<'a, V>(tree: &'a TernaryTree<'a, V>) -> Vec<&'a [u8]> {
        tree.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn walk_order_is_m2shs() {
        // Route order m2sh 1.12.2 gave for Mongrel2's
        // examples/configs/multi_handler.conf (ids 1..9 of its route table).
        let mut tree = TernaryTree::default();
        for key in [
            "/", "/a", "/b", "/c", "/d", "@stuff", "@chat", "/static/", "/cache/",
        ] {
            tree.insert(key.as_bytes(), ());
        }
        let want: Vec<&[u8]> = [
            "/", "/a", "/b", "/c", "/d", "@chat", "@stuff", "/cache/", "/static/",
        ]
        .iter()
        .map(|k| k.as_bytes())
        .collect();
        assert_eq!(keys(&tree), want);
    }

    #[test]
    fn repeated_keys_signed_bytes_and_the_empty_key() {
        // Checked against m2sh 1.12.2: routes {"/z": d, "/a": d, "/z":
        // Proxy(..), "é": d, "b": d, "": d} became, in id order, /z (the
        // Proxy), b, é, "", /a.
        let mut tree = TernaryTree::default();
        assert_eq!(tree.insert(b"/z", 1), None);
        assert_eq!(tree.insert(b"/a", 2), None);
        assert_eq!(tree.insert(b"/z", 3), Some(1));
        assert_eq!(tree.insert("é".as_bytes(), 4), None);
        assert_eq!(tree.insert(b"b", 5), None);
        assert_eq!(tree.insert(b"", 6), None);
        let got: Vec<(&[u8], i32)> = tree.iter().map(|(k, v)| (*k, *v)).collect();
        let want: Vec<(&[u8], i32)> = vec![
            (b"/z", 3),
            (b"b", 5),
            ("é".as_bytes(), 4),
            (b"", 6),
            (b"/a", 2),
        ];
        assert_eq!(got, want);
        assert_eq!(tree.len(), 5);
    }

    #[test]
    fn lookup_is_exact() {
        let mut tree = TernaryTree::default();
        tree.insert(b"port", 1);
        tree.insert(b"portal", 2);
        tree.insert(b"name", 3);
        assert_eq!(tree.get(b"port"), Some(&1));
        assert_eq!(tree.get(b"portal"), Some(&2));
        assert_eq!(tree.get(b"name"), Some(&3));
        assert_eq!(tree.get(b"por"), None);
        assert_eq!(tree.get(b"ports"), None);
        assert_eq!(tree.get(b"nam"), None);
        assert_eq!(tree.get(b"zzz"), None);
        assert_eq!(TernaryTree::<i32>::default().get(b"port"), None);
        assert_eq!(tree.get_entry(b"name").map(|(k, _)| *k), Some(&b"name"[..]));
    }
}
