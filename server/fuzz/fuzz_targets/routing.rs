//! Fuzz target `routing`: route keys and a request path through
//! `kennel::routing::RouteTable`, host patterns and a `Host` value through
//! `kennel::routing::HostTable`, each against a plain model of the rules in
//! the `routing` module docs.
//!
//! Input (read with `arbitrary::Unstructured`): up to 6 route keys, a path,
//! up to 6 host `matching` values and a `Host` value, all over small
//! alphabets (path separators, pattern metacharacters, a few letters) so
//! that keys share prefixes and paths reach them; a path byte of 0xF0 or
//! more is kept as it is.
//!
//! Checks, besides "no panic" (a key or host that does not compile is
//! skipped, as the config would refuse it):
//! - routes: a route found has a prefix that is a prefix of the path and a
//!   key that starts with it; the route found (or none) is the model's:
//!   the longest prefix wins, its routes are tried first-inserted then
//!   newest first, a pattern must match right after the prefix, and there
//!   is no fallback to a shorter prefix;
//! - hosts: the host found (or none) is the model's: an exact plain name,
//!   else the longest pattern suffix (unless a longer plain name matches
//!   at a label boundary) whose pattern matches the rest of the name, else
//!   that plain name.
#![no_main]

use kennel::pattern::Pattern;
use kennel::routing::{HostTable, RouteTable};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const ROUTE_ALPHABET: &[u8] = b"/ab().*+-?$[]^\\x";
const HOST_ALPHABET: &[u8] = b"ab.c()+*-$[]:\\x.";

fn text(u: &mut Unstructured<'_>, alphabet: &[u8], max: usize) -> Result<String> {
    let len = u.int_in_range(0..=max)?;
    let bytes: Vec<u8> = (0..len)
        .map(|_| u.choose(alphabet).copied())
        .collect::<Result<_>>()?;
    Ok(String::from_utf8(bytes).expect("ASCII alphabet"))
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = routes(&mut u);
    let _ = hosts(&mut u);
});

fn routes(u: &mut Unstructured<'_>) -> Result<()> {
    let count = u.int_in_range(0..=6)?;
    let keys: Vec<String> = (0..count)
        .map(|_| text(u, ROUTE_ALPHABET, 12))
        .collect::<Result<_>>()?;
    let path: Vec<u8> = (0..u.int_in_range(0..=24)?)
        .map(|_| {
            let b: u8 = u.arbitrary()?;
            Ok(if b >= 0xF0 {
                b
            } else {
                ROUTE_ALPHABET[usize::from(b) % ROUTE_ALPHABET.len()]
            })
        })
        .collect::<Result<_>>()?;

    let mut table = RouteTable::new();
    // (index into keys, prefix length, pattern) of the keys that compiled.
    let mut model: Vec<(usize, usize, Option<Pattern>)> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        if table.insert(key, i).is_err() {
            continue;
        }
        let prefix_len = key.find('(').unwrap_or(key.len());
        let pattern = (prefix_len < key.len())
            .then(|| Pattern::compile(&key[prefix_len..]).expect("compiled in the table"));
        model.push((i, prefix_len, pattern));
    }
    assert_eq!(table.len(), model.len());

    let found = table.lookup(&path);
    if let Some(m) = &found {
        assert!(
            path.starts_with(m.prefix.as_bytes()),
            "prefix not a prefix of the path"
        );
        assert!(m.key.starts_with(m.prefix));
        assert!(!m.prefix.contains('('));
        assert_eq!(m.key, keys[*m.target]);
    }

    // The model: the longest prefix of the path among the keys.
    let expected = model
        .iter()
        .filter(|(i, len, _)| path.starts_with(&keys[*i].as_bytes()[..*len]))
        .map(|&(_, len, _)| len)
        .max()
        .and_then(|longest| {
            let with: Vec<_> = model
                .iter()
                .filter(|(i, len, _)| {
                    *len == longest && path.starts_with(&keys[*i].as_bytes()[..*len])
                })
                .collect();
            // First inserted, then the others newest first.
            let order = with.first().into_iter().chain(with.iter().skip(1).rev());
            order
                .filter(|(_, len, pattern)| {
                    pattern
                        .as_ref()
                        .is_none_or(|p| p.match_prefix(&path[*len..]).is_some())
                })
                .map(|(i, _, _)| *i)
                .next()
        });
    assert_eq!(found.map(|m| *m.target), expected, "keys {keys:?}");
    Ok(())
}

fn hosts(u: &mut Unstructured<'_>) -> Result<()> {
    let count = u.int_in_range(0..=6)?;
    let matchings: Vec<String> = (0..count)
        .map(|_| text(u, HOST_ALPHABET, 10))
        .collect::<Result<_>>()?;
    let host = text(u, HOST_ALPHABET, 16)?;

    let mut table = HostTable::new();
    // (index into matchings, suffix, pattern): no pattern for a plain name.
    let mut model: Vec<(usize, String, Option<Pattern>)> = Vec::new();
    for (i, matching) in matchings.iter().enumerate() {
        if table.insert(matching, i).is_err() {
            continue;
        }
        let entry = match matching.rfind(')') {
            Some(paren) => {
                let source = format!("{}$", &matching[..=paren]);
                let pattern = Pattern::compile_ignore_case(&source).expect("compiled in the table");
                (i, matching[paren + 1..].to_ascii_lowercase(), Some(pattern))
            }
            None => (i, matching.to_ascii_lowercase(), None),
        };
        model.push(entry);
    }

    let name = if host.starts_with('[') && host.contains(']') {
        &host[..=host.find(']').expect("checked")]
    } else {
        host.split(':').next().unwrap_or_default()
    };
    let lower = name.to_ascii_lowercase();
    let expected = if name.is_empty() {
        None
    } else if let Some((i, _, _)) = model.iter().find(|(_, s, p)| p.is_none() && *s == lower) {
        Some(*i)
    } else {
        let subdomain = model
            .iter()
            .filter(|(_, s, p)| {
                p.is_none()
                    && s.len() < lower.len()
                    && lower.ends_with(s.as_str())
                    && lower.as_bytes()[lower.len() - s.len() - 1] == b'.'
            })
            .map(|(_, s, _)| s.len())
            .max()
            .map(|longest| {
                let (i, _, _) = model
                    .iter()
                    .find(|(_, s, p)| {
                        p.is_none() && s.len() == longest && lower.ends_with(s.as_str())
                    })
                    .expect("the longest is there");
                (*i, longest)
            });
        let by_pattern = model
            .iter()
            .filter(|(_, s, p)| p.is_some() && lower.ends_with(s.as_str()))
            .map(|(_, s, _)| s.len())
            .max()
            .filter(|&depth| subdomain.is_none_or(|(_, plain)| plain <= depth))
            .and_then(|depth| {
                let with: Vec<_> = model
                    .iter()
                    .filter(|(_, s, p)| {
                        p.is_some() && s.len() == depth && lower.ends_with(s.as_str())
                    })
                    .collect();
                let rest = &name.as_bytes()[..name.len() - depth];
                let order = with.first().into_iter().chain(with.iter().skip(1).rev());
                order
                    .filter(|(_, _, p)| p.as_ref().is_some_and(|p| p.match_prefix(rest).is_some()))
                    .map(|(i, _, _)| *i)
                    .next()
            });
        by_pattern.or(subdomain.map(|(i, _)| i))
    };
    assert_eq!(
        table.lookup(&host).copied(),
        expected,
        "host {host:?} against {matchings:?}"
    );
    Ok(())
}
