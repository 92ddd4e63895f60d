//! Micro-benchmarks of the server's per-request hot path before the handler
//! hand-off: parsing the request head, then the host and route lookups.
//!
//! `cargo bench -p kennel --bench hot_path`

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kennel::http::{parse_head, Limits};
use kennel::routing::{HostTable, RouteTable};

/// A typical browser GET, about 400 bytes.
const BROWSER_GET: &[u8] = b"GET /app/users/42/profile?tab=activity HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Connection: keep-alive\r\n\
Cookie: session=4f1c2d3e4b5a69788796a5b4c3d2e1f0; theme=dark\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
\r\n";

const MINIMAL_GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

fn head(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("parse_head");
    for (name, bytes) in [("browser_get", BROWSER_GET), ("minimal_get", MINIMAL_GET)] {
        // The parser consumes the head from its buffer, so each iteration
        // gets a fresh copy (made outside the timed part).
        assert!(parse_head(&mut BytesMut::from(bytes), &limits)
            .unwrap()
            .is_some());
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || BytesMut::from(bytes),
                |buf| parse_head(buf, black_box(&limits)).unwrap().unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// About 50 routes as a real site might have: plain prefixes, nested
/// prefixes, and patterns, some sharing a prefix.
fn route_table() -> RouteTable<usize> {
    let mut keys: Vec<String> = vec![
        "/".into(),
        "/static/".into(),
        "/static/css/".into(),
        "/static/js/".into(),
        "/favicon.ico".into(),
        "/robots.txt".into(),
        "/api/".into(),
        "/api/v1/".into(),
        "/api/v2/".into(),
        r"/api/v1/users/(\d+)$".into(),
        r"/api/v1/users/(\d+)/posts$".into(),
        r"/img/(.*\.jpg)$".into(),
        r"/img/(.*\.png)$".into(),
        r"/img/(.*\.gif)$".into(),
        "/ws/chat".into(),
        "/upload/".into(),
        "/admin/".into(),
        r"/blog/(\d\d\d\d)/(\d\d)/".into(),
    ];
    for section in [
        "docs", "shop", "cart", "help", "about", "news", "events", "search", "login", "logout",
        "account", "settings", "feed", "tags", "media", "forum",
    ] {
        // The pattern first: a route sharing its prefix is tried first when
        // it was inserted first, and a plain prefix always matches.
        keys.push(format!(r"/{section}/(\w+)$"));
        keys.push(format!("/{section}/"));
    }
    let mut table = RouteTable::new();
    for (i, key) in keys.iter().enumerate() {
        table.insert(key, i).unwrap();
    }
    assert!(table.len() >= 50, "{}", table.len());
    table
}

fn routes(c: &mut Criterion) {
    let table = route_table();
    let cases: [(&str, &[u8], Option<&str>); 5] = [
        ("prefix_hit", b"/static/css/site.css", Some("/static/css/")),
        (
            "pattern_hit",
            b"/api/v1/users/12345/posts",
            Some(r"/api/v1/users/(\d+)/posts$"),
        ),
        (
            "pattern_in_chain",
            b"/forum/welcome",
            Some(r"/forum/(\w+)$"),
        ),
        // The pattern fails, the next route in the chain answers.
        ("chain_fallthrough", b"/forum/a/b", Some("/forum/")),
        // The longest prefix is /img/ and none of its patterns match.
        ("miss", b"/img/photo.bmp", None),
    ];
    let mut group = c.benchmark_group("route_lookup");
    for (name, path, expected) in cases {
        assert_eq!(table.lookup(path).map(|m| m.key), expected, "{name}");
        group.bench_function(name, |b| {
            b.iter(|| table.lookup(black_box(path)).map(|m| *m.target))
        });
    }
    group.finish();
}

fn hosts(c: &mut Criterion) {
    let mut table = HostTable::new();
    for (i, matching) in [
        "localhost",
        "example.com",
        "www.example.com",
        "api.example.com",
        "(.+)static.example.com",
        "example.org",
        "(.+).example.net",
        "kennel.test",
    ]
    .into_iter()
    .enumerate()
    {
        table.insert(matching, i).unwrap();
    }
    let cases: [(&str, &str, Option<usize>); 4] = [
        ("exact", "www.example.com", Some(2)),
        ("exact_with_port", "api.example.com:8080", Some(3)),
        ("pattern", "cdn1.static.example.com", Some(4)),
        ("miss", "unknown.invalid", None),
    ];
    let mut group = c.benchmark_group("host_lookup");
    for (name, host, expected) in cases {
        assert_eq!(table.lookup(host).copied(), expected, "{name}");
        group.bench_function(name, |b| b.iter(|| table.lookup(black_box(host)).copied()));
    }
    group.finish();
}

criterion_group!(benches, head, routes, hosts);
criterion_main!(benches);
