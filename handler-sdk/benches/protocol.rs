//! Micro-benchmarks of the wire protocol's hot path: encoding the request
//! message a server PUSHes for every handler request (JSON and tnetstring
//! header forms), and parsing the reply a handler PUBlishes back (one id,
//! and a 128-id broadcast frame).
//!
//! `cargo bench -p kennel-handler --bench protocol`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kennel_handler::reply::{self, Reply, DEFAULT_MAX_TARGETS};
use kennel_handler::request::{self, Protocol, RequestHead};

const SENDER: &[u8] = b"b7b8c2e0-6a6f-4f3e-9a51-0c1d2e3f4a5b";

/// A browser's GET: eight headers.
const GET_HEADERS: &[(&[u8], &[u8])] = &[
    (b"Host", b"www.example.com"),
    (
        b"User-Agent",
        b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ),
    (
        b"Accept",
        b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    (b"Accept-Language", b"en-US,en;q=0.5"),
    (b"Accept-Encoding", b"gzip, deflate, br, zstd"),
    (b"Connection", b"keep-alive"),
    (
        b"Cookie",
        b"session=4f1c2d3e4b5a69788796a5b4c3d2e1f0; theme=dark",
    ),
    (b"Upgrade-Insecure-Requests", b"1"),
];

/// A form POST: the usual headers and a 1 KiB body.
const POST_HEADERS: &[(&[u8], &[u8])] = &[
    (b"Host", b"www.example.com"),
    (b"User-Agent", b"curl/8.5.0"),
    (b"Accept", b"*/*"),
    (b"Content-Type", b"application/x-www-form-urlencoded"),
    (b"Content-Length", b"1024"),
];

fn get_head() -> RequestHead<'static> {
    RequestHead {
        path: b"/app/users/42/profile",
        method: b"GET",
        version: Some(b"HTTP/1.1"),
        uri: Some(b"/app/users/42/profile?tab=activity&page=2"),
        query: Some(b"tab=activity&page=2"),
        fragment: None,
        pattern: b"/app/",
        url_scheme: b"http",
        remote_addr: b"127.0.0.1",
        headers: GET_HEADERS,
        forwarded_for: Some(b"127.0.0.1"),
        extra: &[],
    }
}

fn post_head() -> RequestHead<'static> {
    RequestHead {
        path: b"/app/comments",
        method: b"POST",
        uri: Some(b"/app/comments"),
        query: None,
        headers: POST_HEADERS,
        ..get_head()
    }
}

fn encode(c: &mut Criterion) {
    let post_body = vec![b'x'; 1024];
    let cases: [(&str, RequestHead<'static>, &[u8]); 2] = [
        ("get_8_headers", get_head(), b""),
        ("post_1k_body", post_head(), &post_body),
    ];
    let mut group = c.benchmark_group("request_encode");
    for protocol in [Protocol::Json, Protocol::Tnetstring] {
        for (name, head, body) in &cases {
            let mut out = Vec::with_capacity(4096);
            request::encode(&mut out, protocol, SENDER, 7, head, body);
            group.throughput(Throughput::Bytes(out.len() as u64));
            let id = format!("{}/{name}", format!("{protocol:?}").to_lowercase());
            group.bench_function(id, |b| {
                b.iter(|| {
                    out.clear();
                    request::encode(
                        &mut out,
                        protocol,
                        black_box(SENDER),
                        black_box(7),
                        black_box(head),
                        black_box(body),
                    );
                    black_box(out.len())
                })
            });
        }
    }
    group.finish();
}

fn parse_reply(c: &mut Criterion) {
    let body =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\n";
    let mut group = c.benchmark_group("reply_parse");
    for count in [1u64, 128] {
        let ids: Vec<u64> = (0..count).map(|i| 100_000 + i * 7).collect();
        let mut message = Vec::new();
        reply::encode(&mut message, SENDER, &ids, body);
        group.throughput(Throughput::Elements(count));
        group.bench_function(format!("{count}_ids"), |b| {
            b.iter(|| {
                let reply = Reply::parse(black_box(&message), DEFAULT_MAX_TARGETS).unwrap();
                // Walk the ids as the bridge does when it delivers.
                black_box(reply.ids().fold(0u64, |acc, id| acc ^ id))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode, parse_reply);
criterion_main!(benches);
