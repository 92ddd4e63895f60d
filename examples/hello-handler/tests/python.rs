//! The Python example handler (examples/python/hello.py) against a fake
//! server over real ZeroMQ sockets. Needs `python3` with pyzmq; without
//! them the test fails, saying what to install (`bash tests/setup.sh`
//! installs it); it never passes without running.

mod fake_server;

use std::process::{Command, Stdio};

use fake_server::{assert_bytes, FakeServer, Req};
use kennel_handler::request::Protocol;

/// The example site's `send_ident` for handler 2 (examples/site/config.sql).
const SENDER: &str = "2f4c6e80-1a3b-4c5d-9e7f-a0b1c2d3e4f5";

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../python/hello.py");

/// Fails the test, saying what to install, unless `python3` can import
/// pyzmq.
fn require_pyzmq() {
    let imported = Command::new("python3")
        .args(["-c", "import zmq"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        imported.as_ref().is_ok_and(|s| s.success()),
        "`python3 -c 'import zmq'` failed ({imported:?}): this test needs python3 with pyzmq; \
         install it with `python3 -m pip install pyzmq` (`bash tests/setup.sh` installs \
         everything the tests need)"
    );
}

#[test]
fn python_handler_greets_and_honours_notices_and_close() {
    require_pyzmq();
    let server = FakeServer::new(Protocol::Json, SENDER);
    let mut command = Command::new("python3");
    command
        .arg(SCRIPT)
        .args(["--send-spec", &server.send_spec])
        .args(["--recv-spec", &server.recv_spec]);
    let _child = server.start(command);

    // A disconnect notice gets no answer; the next request does.
    server.send_disconnect(4);
    let req = Req {
        version: "HTTP/1.0",
        headers: &[(b"Host", b"localhost:6767"), (b"X-Test", b"yes")],
        ..Req::get("/py/")
    };
    server.send(5, &req);
    let body = "Hello from a Python handler!\n\
                Built with nothing but pyzmq and the standard library.\n\
                \n\
                Your request, as the server described it:\n  \
                PATH: /py/\n  \
                host: localhost:6767\n  \
                x-test: yes\n  \
                x-forwarded-for: 127.0.0.1\n  \
                METHOD: GET\n  \
                VERSION: HTTP/1.0\n  \
                URI: /py/\n  \
                PATTERN: /\n  \
                URL_SCHEME: http\n  \
                REMOTE_ADDR: 127.0.0.1\n";
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_bytes(&server.recv(), &server.frame(&[5], response.as_bytes()));
    // HTTP/1.0: the handler closes the connection with an empty reply.
    assert_bytes(&server.recv(), &server.frame(&[5], b""));
}
