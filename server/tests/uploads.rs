//! Large request bodies and flow control over real sockets: uploads to a
//! temporary file, streamed uploads with credits, bodies over 4 GiB, a
//! client or handler that stops an upload, `download.flow_control`, and the
//! `sendfile` extended reply.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{recv, text, Site, TestServer, SENDER};
use kennel_handler::tnetstring::Value;
use kennel_handler::{Connection, Request};

fn server(settings: &[(&str, String)], extra_sql: &str) -> TestServer {
    let mut sql: String = settings
        .iter()
        .map(|(k, v)| format!("INSERT INTO setting (key, value) VALUES ('{k}', '{v}');"))
        .collect();
    sql.push_str(extra_sql);
    TestServer::start_with(Site {
        extra_sql: sql,
        ..Site::default()
    })
}

/// A server whose uploads go to files in its temp dir (`{root}/uploads`).
fn file_server(mode: &str) -> TestServer {
    server(
        &[
            ("upload.temp_store", "{root}/uploads/upload.XXXXXX".into()),
            ("upload.temp_store_mode", mode.to_owned()),
        ],
        "",
    )
}

fn uploads_left(template: &str) -> Vec<PathBuf> {
    let dir = std::path::Path::new(template).parent().unwrap();
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

fn setting(server: &TestServer, key: &str) -> String {
    let db = rusqlite::Connection::open(server.root().join("config.sqlite")).unwrap();
    db.query_row("SELECT value FROM setting WHERE key = ?1", [key], |r| {
        r.get(0)
    })
    .unwrap()
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn a_large_body_goes_to_a_temp_file_with_start_and_done_notices() {
    let server = file_server("0640");
    let template = setting(&server, "upload.temp_store");
    let handler = server.handler();
    let mut client = server.client();
    let body = pattern(1_000_000);
    client.send(b"POST /handler/up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n");
    client.send(&body);
    let start = recv(&handler);
    let path = start.header("x-mongrel2-upload-start").unwrap().to_owned();
    assert!(
        path.starts_with(template.trim_end_matches("XXXXXX")),
        "{path}"
    );
    assert_eq!(start.header("x-mongrel2-upload-done"), None);
    assert_eq!(start.body(), b"");
    assert_eq!(start.header("content-length"), Some("1000000"));
    let done = recv(&handler);
    assert_eq!(done.header("x-mongrel2-upload-start"), Some(path.as_str()));
    assert_eq!(done.header("x-mongrel2-upload-done"), Some(path.as_str()));
    assert_eq!(done.body(), b"");
    assert_eq!(std::fs::read(&path).unwrap(), body);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    handler.reply_http(&done, 200, &[], b"stored").unwrap();
    assert!(text(&client.read_response()).ends_with("stored"));
    // The connection goes on.
    client.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(text(&client.read_response()).ends_with("hello, file\n"));
    server.stop();
}

#[test]
fn a_chunked_body_too_large_for_memory_takes_the_upload_path() {
    let server = file_server("0600");
    let handler = server.handler();
    let mut client = server.client();
    let body = pattern(300_000);
    let mut request =
        b"POST /handler/up HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for piece in body.chunks(7_777) {
        request.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        request.extend_from_slice(piece);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    client.send(&request);
    let start = recv(&handler);
    let path = start.header("x-mongrel2-upload-start").unwrap().to_owned();
    let done = recv(&handler);
    assert_eq!(done.header("x-mongrel2-upload-done"), Some(path.as_str()));
    assert_eq!(std::fs::read(&path).unwrap(), body);
    // A small chunked body still arrives in memory.
    handler.reply_http(&done, 200, &[], b"ok").unwrap();
    client.read_response();
    client.send(b"POST /handler/small HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    let small = recv(&handler);
    assert_eq!(small.body(), b"hello");
    assert_eq!(small.header("x-mongrel2-upload-start"), None);
    server.stop();
}

#[test]
fn a_client_that_leaves_mid_upload_leaves_no_file_and_no_done_message() {
    let server = file_server("0600");
    let template = setting(&server, "upload.temp_store");
    let handler = server.handler();
    let mut client = server.client();
    client
        .send(b"POST /handler/up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10000000\r\n\r\n");
    client.send(&pattern(100_000));
    let start = recv(&handler);
    let path = start.header("x-mongrel2-upload-start").unwrap().to_owned();
    assert!(std::path::Path::new(&path).exists());
    drop(client);
    let notice = recv(&handler);
    assert!(notice.is_disconnect(), "no done message: {notice:?}");
    assert_eq!(notice.conn_id(), start.conn_id());
    assert!(
        uploads_left(&template).is_empty(),
        "{:?}",
        uploads_left(&template)
    );
    server.stop();
}

#[test]
fn a_handler_that_refuses_an_upload_stops_it_at_once() {
    let server = file_server("0600");
    let template = setting(&server, "upload.temp_store");
    let handler = server.handler();

    // By ctl cancel: the connection is dropped.
    let mut client = server.client();
    client
        .send(b"POST /handler/up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10000000\r\n\r\n");
    client.send(&pattern(100_000));
    let start = recv(&handler);
    handler.cancel(&start).unwrap();
    assert!(client.is_closed());
    // By answering: the client gets the answer, then the connection closes.
    let mut client = server.client();
    client
        .send(b"POST /handler/up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10000000\r\n\r\n");
    client.send(&pattern(100_000));
    let start = recv(&handler);
    handler
        .reply_http(&start, 413, &[], b"too big for me")
        .unwrap();
    let response = text(&client.read_response());
    assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
    assert!(client.is_closed());
    // Neither finished: no done message, no file.
    let notice = recv(&handler);
    assert!(notice.is_disconnect(), "{notice:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !uploads_left(&template).is_empty() {
        assert!(Instant::now() < deadline, "{:?}", uploads_left(&template));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(handler
        .recv_timeout(Duration::from_millis(200))
        .unwrap()
        .is_none_or(|r| r.is_disconnect()));
    server.stop();
}

#[test]
fn without_an_upload_setting_a_large_body_is_413() {
    let server = TestServer::start();
    let mut client = server.client();
    client.send(b"POST /handler/up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n");
    assert!(text(&client.read_response()).starts_with("HTTP/1.1 413 "));
    server.stop();
}

/// Grants credits (`ctl credits`) for a streamed upload.
fn grant(handler: &Connection, req: &Request, credits: i64) {
    let value = Value::Dict(vec![(b"credits".as_slice(), Value::Integer(credits))]);
    handler
        .deliver_extended(SENDER, &[req.conn_id()], "ctl", &value)
        .unwrap();
}

#[test]
fn a_streamed_upload_sends_slices_as_the_handler_grants_credits() {
    let server = server(&[("upload.stream", "1".into())], "");
    let handler = server.handler();
    let mut client = server.client();
    let body = pattern(100_000);
    client.send(
        b"POST /handler/stream HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n",
    );
    client.send(&body[..30_000]);
    let first = recv(&handler);
    assert_eq!(first.header("UPLOAD_STREAM"), Some("0"));
    assert_eq!(first.header("PATH"), Some("/handler/stream"));
    assert_eq!(first.header("UPLOAD_STREAM_DONE"), None);
    let mut got = first.body().to_vec();
    assert!(got.len() <= 30_000);
    // Nothing more until credits come.
    client.send(&body[30_000..]);
    assert!(handler
        .recv_timeout(Duration::from_millis(200))
        .unwrap()
        .is_none());
    let mut done = false;
    // Credits add up: a slice never takes more than was granted and not
    // yet used.
    let mut unused = 0;
    while !done {
        grant(&handler, &first, 10_000);
        unused += 10_000;
        let slice = recv(&handler);
        // Later slices carry only the stream headers.
        assert_eq!(slice.header("PATH"), None);
        assert_eq!(
            slice.header("UPLOAD_STREAM"),
            Some(got.len().to_string().as_str())
        );
        assert!(
            slice.body().len() <= unused,
            "{} > {unused}",
            slice.body().len()
        );
        unused -= slice.body().len();
        got.extend_from_slice(slice.body());
        done = slice.header("UPLOAD_STREAM_DONE") == Some("1");
    }
    assert_eq!(got, body);
    handler.reply_http(&first, 200, &[], b"streamed").unwrap();
    assert!(text(&client.read_response()).ends_with("streamed"));
    server.stop();
}

/// A body over 4 GiB, generated as it is sent, streamed to a handler that
/// counts and checks it: sizes and offsets are 64-bit throughout.
#[test]
fn a_body_over_4_gib_streams_whole() {
    let server = server(&[("upload.stream", "1".into())], "");
    let handler = server.handler();
    let total: u64 = (4 << 30) + 12_345;
    let mut client = server.client();
    client.send(
        format!(
            "POST /handler/huge HTTP/1.1\r\nHost: localhost\r\nContent-Length: {total}\r\n\r\n"
        )
        .as_bytes(),
    );
    let mut stream = client.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let block: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 253) as u8).collect();
        let mut sent = 0u64;
        while sent < total {
            let n = (total - sent).min(block.len() as u64) as usize;
            stream.write_all(&block[..n]).unwrap();
            sent += n as u64;
        }
    });
    let first = recv(&handler);
    let mut received = first.body().len() as u64;
    let mut checksum: u64 = first.body().iter().map(|&b| u64::from(b)).sum();
    grant(&handler, &first, 64 << 20);
    let mut granted = 64u64 << 20;
    loop {
        let slice = handler
            .recv_timeout(Duration::from_secs(60))
            .unwrap()
            .expect("a slice within 60 s");
        let offset: u64 = slice.header("UPLOAD_STREAM").unwrap().parse().unwrap();
        assert_eq!(offset, received);
        received += slice.body().len() as u64;
        checksum += slice.body().iter().map(|&b| u64::from(b)).sum::<u64>();
        if slice.header("UPLOAD_STREAM_DONE") == Some("1") {
            assert!(offset > u64::from(u32::MAX));
            break;
        }
        if received + (16 << 20) > granted {
            grant(&handler, &first, 64 << 20);
            granted += 64 << 20;
        }
    }
    sender.join().unwrap();
    assert_eq!(received, total);
    let block_sum: u64 = (0..1u32 << 20).map(|i| u64::from(i % 253)).sum();
    let full = total / (1 << 20);
    let rest: u64 = (0..(total % (1 << 20)) as u32)
        .map(|i| u64::from(i % 253))
        .sum();
    assert_eq!(checksum, full * block_sum + rest);
    handler.reply_http(&first, 200, &[], b"all of it").unwrap();
    assert!(text(&client.read_response()).ends_with("all of it"));
    server.stop();
}

#[test]
fn download_flow_control_announces_credits_and_reports_writes() {
    let server = server(&[("download.flow_control", "1".into())], "");
    let handler = server.handler();
    let mut client = server.client();
    client.send(b"GET /handler/a HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let first = recv(&handler);
    assert_eq!(first.header("DOWNLOAD_CREDITS"), Some("102400"));
    handler
        .reply(&first, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        .unwrap();
    handler.reply(&first, b"hello").unwrap();
    assert!(text(&client.read_response()).ends_with("hello"));
    let mut credited = 0;
    while credited < 43 {
        let notice = recv(&handler);
        assert!(notice.is_credits(), "{notice:?}");
        assert_eq!(notice.conn_id(), first.conn_id());
        credited += notice
            .header("DOWNLOAD_CREDITS")
            .unwrap()
            .parse::<u64>()
            .unwrap();
    }
    assert_eq!(credited, 43);
    // Only the first request of a connection carries the credits.
    client.send(b"GET /handler/b HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let second = recv(&handler);
    assert_eq!(second.header("DOWNLOAD_CREDITS"), None);
    server.stop();
}

#[test]
fn the_sendfile_reply_sends_a_file_when_the_xrequest_is_configured() {
    let server = server(
        &[],
        "INSERT INTO xrequest (server_id, name, settings) VALUES (1, '/usr/lib/mongrel2/sendfile.so', '0:}');",
    );
    let big = pattern(300_000);
    let file = server.root().join("public/big.bin");
    std::fs::write(&file, &big).unwrap();
    let handler = server.handler();
    let mut client = server.client();
    client.send(b"GET /handler/file HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let req = recv(&handler);
    handler
        .reply(&req, b"HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n")
        .unwrap();
    let name = file.display().to_string();
    handler
        .deliver_extended(
            SENDER,
            &[req.conn_id()],
            "sendfile",
            &Value::String(name.as_bytes()),
        )
        .unwrap();
    let response = client.read_response();
    assert!(response.ends_with(&big));
    // The response is complete: the next one follows in order.
    client.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(text(&client.read_response()).ends_with("hello, file\n"));
    server.stop();

    // Without the xrequest row the reply is ignored.
    let server = TestServer::start();
    let handler = server.handler();
    let mut client = server.client();
    client.send(b"GET /handler/file HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let req = recv(&handler);
    handler
        .reply(&req, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n")
        .unwrap();
    handler
        .deliver_extended(
            SENDER,
            &[req.conn_id()],
            "sendfile",
            &Value::String(b"/etc/passwd"),
        )
        .unwrap();
    handler.reply(&req, b"abc").unwrap();
    assert!(text(&client.read_response()).ends_with("\r\n\r\nabc"));
    server.stop();
}
