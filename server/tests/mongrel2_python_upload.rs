//! Mongrel2's own upload example handler, `http_0mq/upload.py`, run
//! unchanged under Python 2.7 with Mongrel2's own Python library
//! (`mongrel2.handler.Connection`, `reply_http`), behind a real server, and
//! a real client (`curl --data-binary @file`) posting a body larger than
//! `limits.content_length`: the server writes it to a temp file, tells the
//! handler (upload-start, which `upload.py` does not answer, then
//! upload-done), `upload.py` reads the file by the path in
//! `x-mongrel2-upload-done` and answers `UPLOAD GOOD: <md5>`, which must be
//! the body's MD5.
//!
//! The site is the one of Mongrel2's `examples/configs/mongrel2.conf` that
//! `upload.py` is written for: `handler_test` (`tcp://127.0.0.1:9997`,
//! `:9996`, which `upload.py` hard-codes) on `/handlertest`, with that
//! file's `upload.temp_store` pointed at an absolute template in the test's
//! temp dir and its `upload.temp_store_mode`. An exclusive lock file
//! serialises every use of the two ports on this machine. The script's
//! Python 2 `print` statements go to a file.
//!
//! The server is the test's parameter: Mongrel2 1.12 and Kennel. Needs
//! `mongrel2-core`, `python2.7` with pyzmq for it, `curl` and `md5sum`
//! (`bash tests/setup.sh`; `KENNEL_PY2_PATH` as there); without them the
//! test fails, saying what to install.

mod common;
mod differential;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use differential::databases::{find_program_of, HandlerRow};
use differential::python::{self, INSTALL};
use differential::{kennel, mongrel2, Site, Start};

/// What `upload.py` connects to: its PULL socket to the server's PUSH
/// (`send_spec`), its PUB socket to the server's SUB (`recv_spec`).
const SEND_SPEC: &str = "tcp://127.0.0.1:9997";
const RECV_SPEC: &str = "tcp://127.0.0.1:9996";
const PORTS: [u16; 2] = [9997, 9996];

/// `handler_test` of `examples/configs/mongrel2.conf`.
const SEND_IDENT: &str = "34f9ceee-cd52-4b7f-b197-88bf2f0ec378";

/// What `upload.py` prints before each `recv`: it has connected.
const READY: &str = "WAITING FOR REQUEST";

/// How long Python may take to start, and the whole request.
const START_TIMEOUT: Duration = Duration::from_secs(20);
const REQUEST_TIMEOUT_S: &str = "30";

/// The body: well over the default `limits.content_length` (20 KiB).
const BODY_LEN: usize = 300_000;

/// The site of `mongrel2.conf` for `upload.py`: `/handlertest` to
/// `handler_test`, that file's upload settings with the template in the
/// temp dir, made by `m2sh load`.
fn upload_site() -> Site {
    let handler = HandlerRow {
        send_spec: SEND_SPEC.into(),
        send_ident: SEND_IDENT.into(),
        recv_spec: RECV_SPEC.into(),
        recv_ident: String::new(),
        protocol: "json".into(),
    };
    python::example_site(
        "/handlertest",
        handler,
        &[
            ("zeromq.threads", "1"),
            ("upload.temp_store", "{root}/tmp/upload.XXXXXX"),
            ("upload.temp_store_mode", "0666"),
        ],
    )
}

/// `md5sum FILE`'s hex digest.
fn md5(file: &Path) -> String {
    let out = Command::new(find_program_of("md5sum", "coreutils"))
        .arg(file)
        .output()
        .expect("run md5sum");
    assert!(out.status.success(), "md5sum: {out:?}");
    String::from_utf8(out.stdout).unwrap()[..32].to_owned()
}

fn upload_good(start: Start) {
    let _lock = python::lock_ports(&PORTS, "upload.py hard-codes 9997 and 9996");
    let site = upload_site();
    std::fs::create_dir_all(site.root().join("tmp")).unwrap();
    let py = python::install(site.root(), &["http_0mq/upload.py"]);
    let mut handler = python::Handler::start(&py, "upload.py", "zmq, mongrel2.handler, hashlib");
    let served = start(&site);
    handler.wait_for_output("upload.py", READY, START_TIMEOUT);

    let file = site.root().join("body.bin");
    let body: Vec<u8> = (0..BODY_LEN).map(|i| (i * 31 % 253) as u8).collect();
    std::fs::write(&file, &body).unwrap();
    let want = format!("UPLOAD GOOD: {}", md5(&file));
    let curl = find_program_of("curl", "curl");
    let url = format!("http://localhost:{}/handlertest", served.addr().port());
    let out = Command::new(&curl)
        .args(["-sS", "-i", "--max-time", REQUEST_TIMEOUT_S])
        .arg("--connect-to")
        .arg(format!(
            "localhost:{}:{}",
            served.addr().port(),
            served.addr()
        ))
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(&url)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e} ({INSTALL})", curl.display()));
    let response = String::from_utf8_lossy(&out.stdout).into_owned();
    handler.assert_running("upload.py");
    let said = handler.output();
    served.stop();
    // For the record (`--nocapture`).
    println!("curl read: {response:?}");
    assert!(
        out.status.success(),
        "curl failed ({}): {}{response}\nupload.py said:\n{said}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        response.starts_with("HTTP/1.1 200 OK\r\n")
            || response.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"),
        "{response}"
    );
    assert!(
        response.ends_with(&format!("\r\n\r\n{want}")),
        "the response: {response}\nwanted the body {want}\nupload.py said:\n{said}"
    );
    // upload.py saw the upload start, then read the whole file.
    assert!(said.contains("UPLOAD starting, don't reply yet."), "{said}");
    assert!(
        said.contains(&format!(
            "UPLOAD DONE: BODY IS {BODY_LEN} long, content length is {BODY_LEN}"
        )),
        "{said}"
    );
    assert!(!said.contains("Traceback"), "upload.py failed:\n{said}");
    // The file is the handler's to remove; it holds the body.
    let left: Vec<_> = std::fs::read_dir(site.root().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let [upload] = &left[..] else {
        panic!("upload files left: {left:?}")
    };
    assert!(
        std::fs::read(upload).unwrap() == body,
        "{}",
        upload.display()
    );
}

#[test]
fn mongrel2s_upload_py_through_mongrel2() {
    upload_good(mongrel2);
}

#[test]
fn mongrel2s_upload_py_through_kennel() {
    upload_good(kennel);
}
