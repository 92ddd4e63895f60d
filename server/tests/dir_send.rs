//! `dir::send` over real loopback TCP connections and `dir::send_copy` into
//! memory: the bytes the client reads are exactly the planned head and body.

use std::path::Path;

use kennel::config::{Dir, MimeTypes};
use kennel::dir::{respond, send, send_copy, Body, DirRequest, Response};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpSocket};

/// Larger than any loopback socket buffer, so `sendfile` returns partial
/// counts and `WouldBlock`.
const BIG: usize = 8 << 20;

/// Bytes that differ at every offset within a period much longer than any
/// chunk size, so a misplaced range shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn site(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Dir, MimeTypes) {
    let tmp = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(tmp.path().join(name), content).unwrap();
    }
    let dir = Dir {
        id: 1,
        base: format!("{}/", tmp.path().display()),
        index_file: "index.html".into(),
        default_ctype: "application/octet-stream".into(),
        cache_ttl: 60,
    };
    let mut mimetypes = MimeTypes::new();
    mimetypes.insert(".bin", "application/x-test");
    (tmp, dir, mimetypes)
}

fn get<'a>(path: &'a str, range: Option<&'a str>) -> DirRequest<'a> {
    DirRequest {
        method: b"GET",
        path: path.as_bytes(),
        prefix: "/",
        range: range.map(str::as_bytes),
        ..DirRequest::default()
    }
}

fn header<'r>(r: &'r Response, name: &str) -> &'r str {
    std::str::from_utf8(&r.head)
        .unwrap()
        .split("\r\n")
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
        .unwrap_or_else(|| panic!("no {name}"))
}

/// Sends `response` over a fresh loopback connection whose client has a
/// small receive buffer, and returns what the client read until EOF.
async fn over_tcp(response: Response) -> std::io::Result<Vec<u8>> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        send(response, &mut stream).await
        // The stream drops here: the client sees EOF.
    });
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut client = socket.connect(addr).await.unwrap();
    let mut received = Vec::new();
    client.read_to_end(&mut received).await.unwrap();
    server.await.unwrap().map(|()| received)
}

#[tokio::test]
async fn sendfile_delivers_a_large_file_exactly() {
    let content = pattern(BIG);
    let (_tmp, dir, mimetypes) = site(&[("big.bin", &content)]);
    let response = respond(&dir, &mimetypes, &get("/big.bin", None)).await;
    assert_eq!(response.status, 200);
    assert_eq!(header(&response, "Content-Length"), BIG.to_string());
    assert_eq!(header(&response, "Content-Type"), "application/x-test");
    assert_eq!(header(&response, "Cache-Control"), "max-age=60");
    let mut expected = response.head.clone();
    expected.extend_from_slice(&content);
    let received = over_tcp(response).await.unwrap();
    assert_eq!(received.len(), expected.len());
    assert!(received == expected, "bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendfile_delivers_single_and_multiple_ranges() {
    let content = pattern(BIG);
    let (_tmp, dir, mimetypes) = site(&[("big.bin", &content)]);

    let response = respond(
        &dir,
        &mimetypes,
        &get("/big.bin", Some("bytes=1000-4000999")),
    )
    .await;
    assert_eq!(response.status, 206);
    assert_eq!(
        header(&response, "Content-Range"),
        format!("bytes 1000-4000999/{BIG}")
    );
    let mut expected = response.head.clone();
    expected.extend_from_slice(&content[1000..4_001_000]);
    assert!(over_tcp(response).await.unwrap() == expected);

    let range = "bytes=0-99,3000000-6999999,-5";
    let response = respond(&dir, &mimetypes, &get("/big.bin", Some(range))).await;
    assert_eq!(response.status, 206);
    let boundary = header(&response, "Content-Type")
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap()
        .to_owned();
    let len: usize = header(&response, "Content-Length").parse().unwrap();
    let mut expected = response.head.clone();
    let mut body = Vec::new();
    for (i, (first, last)) in [(0, 99), (3_000_000, 6_999_999), (BIG - 5, BIG - 1)]
        .into_iter()
        .enumerate()
    {
        let sep = if i == 0 { "" } else { "\r\n" };
        body.extend_from_slice(
            format!(
                "{sep}--{boundary}\r\nContent-Type: application/x-test\r\n\
                 Content-Range: bytes {first}-{last}/{BIG}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&content[first..=last]);
    }
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert_eq!(body.len(), len);
    expected.extend_from_slice(&body);

    // The same plan through both writers gives the same bytes.
    let again = respond(&dir, &mimetypes, &get("/big.bin", Some(range))).await;
    let mut copied = Vec::new();
    send_copy(again, &mut copied).await.unwrap();
    let received = over_tcp(response).await.unwrap();
    assert!(received == expected, "sendfile bytes differ");
    // Only the boundary differs between the two responses.
    assert_eq!(copied.len(), expected.len());
}

#[tokio::test]
async fn send_copy_writes_head_and_file() {
    let content = pattern(300_000);
    let (_tmp, dir, mimetypes) = site(&[("f.bin", &content)]);
    let response = respond(&dir, &mimetypes, &get("/f.bin", None)).await;
    let mut expected = response.head.clone();
    expected.extend_from_slice(&content);
    let mut out = Vec::new();
    send_copy(response, &mut out).await.unwrap();
    assert!(out == expected);

    let response = respond(&dir, &mimetypes, &get("/f.bin", Some("bytes=-70000"))).await;
    let mut expected = response.head.clone();
    expected.extend_from_slice(&content[300_000 - 70_000..]);
    let mut out = Vec::new();
    send_copy(response, &mut out).await.unwrap();
    assert!(out == expected);
}

#[tokio::test]
async fn in_memory_bodies_and_head_only_over_tcp() {
    let (_tmp, dir, mimetypes) = site(&[("a.bin", b"abc")]);
    let response = respond(&dir, &mimetypes, &get("/missing", None)).await;
    assert_eq!(response.status, 404);
    assert!(matches!(response.body, Body::Bytes(_)));
    let mut expected = response.head.clone();
    expected.extend_from_slice(b"404 Not Found\n");
    assert_eq!(over_tcp(response).await.unwrap(), expected);

    let head = DirRequest {
        method: b"HEAD",
        ..get("/a.bin", None)
    };
    let response = respond(&dir, &mimetypes, &head).await;
    assert_eq!(header(&response, "Content-Length"), "3");
    let expected = response.head.clone();
    assert_eq!(over_tcp(response).await.unwrap(), expected);
}

fn truncate(path: &Path) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(10)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_shrinks_is_an_error_not_a_short_body() {
    let content = pattern(100_000);
    let (tmp, dir, mimetypes) = site(&[("f.bin", &content)]);
    let response = respond(&dir, &mimetypes, &get("/f.bin", None)).await;
    truncate(&tmp.path().join("f.bin"));
    let err = over_tcp(response).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);

    std::fs::write(tmp.path().join("f.bin"), &content).unwrap();
    let response = respond(&dir, &mimetypes, &get("/f.bin", None)).await;
    truncate(&tmp.path().join("f.bin"));
    let err = send_copy(response, &mut Vec::new()).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
}
