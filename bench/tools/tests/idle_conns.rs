//! `idle-conns` against a real Kennel.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{lines, run_ok, run_tool, TestServer};
use kennel_handler::Connection;

const BIN: &str = env!("CARGO_BIN_EXE_idle-conns");

#[test]
fn opens_200_keep_alive_connections_each_with_one_answered_request() {
    let server = TestServer::start("");
    let addr = server.addr.to_string();
    let out = run_ok(
        BIN,
        &[
            "--addr",
            &addr,
            "--count",
            "200",
            "--request",
            r"GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "--hold-secs",
            "0",
        ],
    );
    assert_eq!(
        out,
        [
            "statuses 200:200",
            "opened 200 failed 0",
            "closed_by_peer 0"
        ]
    );
    server.stop();
}

/// Sources are used in turn (the handler sees each request's
/// `REMOTE_ADDR`), and SIGTERM ends the hold at once.
#[test]
fn spreads_connections_over_the_sources_and_stops_on_sigterm() {
    let server = TestServer::start("");
    let handler = Connection::connect(&server.send_spec, &server.recv_spec).unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--addr",
            &server.addr.to_string(),
            "--count",
            "20",
            "--sources",
            "127.0.0.2,127.0.0.3",
            "--request",
            r"GET /bench/listen HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "--hold-secs",
            "600",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let mut peers = BTreeMap::<String, usize>::new();
    for _ in 0..20 {
        let req = handler
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .expect("a request within 10 s");
        *peers
            .entry(req.header("REMOTE_ADDR").unwrap().to_owned())
            .or_default() += 1;
        handler.reply_http(&req, 204, &[], b"").unwrap();
    }
    assert_eq!(
        peers,
        BTreeMap::from([("127.0.0.2".to_owned(), 10), ("127.0.0.3".to_owned(), 10)])
    );

    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        first.push(line);
    }
    assert_eq!(first, ["statuses 204:20\n", "opened 20 failed 0\n"]);

    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "closed_by_peer 0\n");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("released after SIGTERM"), "{stderr}");
    server.stop();
}

#[test]
fn reports_failed_connections_with_the_first_error() {
    // A port nothing listens on: bind one, note it, close it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let out = run_tool(BIN, &["--addr", &addr, "--count", "3", "--hold-secs", "0"]);
    assert!(out.status.success());
    let lines = lines(&out.stdout);
    assert!(
        lines[0].starts_with("first_error connect: ") && lines[0].contains("refused"),
        "{lines:?}"
    );
    assert_eq!(lines[1..], ["opened 0 failed 3", "closed_by_peer 0"]);
}

/// `--websocket`: each connection is upgraded through the handler and
/// echoes one message before it is held.
#[test]
fn holds_upgraded_websockets_after_one_echo_each() {
    let server = TestServer::start(common::WS_ROUTE);
    let handler = common::WsHandler::start(&server, common::WsMode::Echo);
    let out = run_ok(
        BIN,
        &[
            "--addr",
            &server.addr.to_string(),
            "--count",
            "50",
            "--websocket",
            "/bench/ws",
            "--hold-secs",
            "0",
        ],
    );
    assert_eq!(
        out,
        ["statuses 101:50", "opened 50 failed 0", "closed_by_peer 0"]
    );
    assert_eq!(
        handler.stop(),
        common::WsSeen {
            handshakes: 50,
            messages: 50
        }
    );
    server.stop();
}
