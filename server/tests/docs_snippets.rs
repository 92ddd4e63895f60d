//! The code blocks of the user's manual (`docs/*.md`) do what the manual
//! says: each block is run or checked here (or in the doc-tests of
//! `kennel-handler`, or in `config_docs.rs`), against the real `kennel`
//! binary or the in-process server on ephemeral ports, with real sockets,
//! real `python3` handlers and real shell commands, or it is marked
//! `<!-- not-run: why -->` in the page. `manual/mod.rs` says how blocks are
//! marked; the first test enforces it.
//!
//! The manual's handler endpoints (`tcp://127.0.0.1:9994` to `9997`) and
//! port 6767 are replaced by a test server's own before a block runs, so
//! these tests never touch a running example site.

mod common;
mod manual;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Site, TestServer};
use kennel::config::{self, ServerSelector};
use kennel_handler::reply::{Body, Reply};
use kennel_handler::request::Request;
use kennel_handler::tnetstring::Value;
use manual::{Block, Marker};

#[test]
fn every_block_is_tested_or_says_why_not() {
    let blocks = manual::blocks();
    assert!(blocks.len() > 40, "found only {} blocks", blocks.len());
    let sdk_lib = std::fs::read_to_string(manual::repo().join("handler-sdk/src/lib.rs")).unwrap();
    let mut problems = Vec::new();
    for b in &blocks {
        if b.info.is_empty() {
            problems.push(format!(
                "{}: give the block a language (`text` for output)",
                b.place()
            ));
        }
        match &b.marker {
            Marker::Missing => problems.push(format!(
                "{}: no `<!-- test: NAME -->` or `<!-- not-run: REASON -->` on the line above",
                b.place()
            )),
            Marker::NotRun(reason) if reason.len() < 10 => {
                problems.push(format!("{}: say why it is not run", b.place()))
            }
            Marker::NotRun(_) if b.info.starts_with("rust") => problems.push(format!(
                "{}: Rust blocks are doc-tests, so they are always tested",
                b.place()
            )),
            Marker::NotRun(_) => {}
            Marker::Test(id) => {
                if !manual::TESTED.iter().any(|(name, _)| name == id) {
                    problems.push(format!(
                        "{}: `test: {id}` is not in manual::TESTED",
                        b.place()
                    ));
                }
                let included = format!("include_str!(\"../../docs/{}\")", b.page);
                if b.info.starts_with("rust") && !sdk_lib.contains(&included) {
                    problems.push(format!(
                        "{}: a Rust block, but handler-sdk/src/lib.rs does not run docs/{} as doc-tests",
                        b.place(),
                        b.page
                    ));
                }
            }
        }
    }
    for (id, _) in manual::TESTED {
        let n = blocks
            .iter()
            .filter(|b| b.marker == Marker::Test((*id).to_owned()))
            .count();
        if n != 1 {
            problems.push(format!("`test: {id}` marks {n} blocks, not 1"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---- helpers ---------------------------------------------------------

/// A temp dir laid out like the repository for the manual's commands:
/// `examples/site/config.sql` (and its `public/`) and `config.sqlite.sql`.
fn repo_like() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = manual::repo();
    for file in ["examples/site/config.sql", "config.sqlite.sql"] {
        manual::write(dir.path(), file, std::fs::read(repo.join(file)).unwrap());
    }
    std::fs::create_dir_all(dir.path().join("examples/site/public")).unwrap();
    dir
}

/// `kennel load --db DB FILE` for each SQL text in turn.
fn load(dir: &Path, db: &str, sqls: &[&str]) {
    for (i, sql) in sqls.iter().enumerate() {
        let file = manual::write(dir, &format!("load-{i}.sql"), sql);
        let out = manual::kennel()
            .args(["load", "--db", db])
            .arg(&file)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "kennel load: {out:?}\n{sql}");
    }
}

/// `kennel ARGS` in `dir`; panics unless it succeeds; its standard output.
fn kennel_ok(dir: &Path, args: &[&str]) -> String {
    let out = manual::kennel()
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "kennel {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// SQL that moves the example site (`examples/site/config.sql`) off the
/// machine's shared ports: HTTP on `port`, the handlers on `ipc://`
/// sockets in `dir`, logs and pid file in `dir`.
fn example_site_in(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "UPDATE server SET port = {port}, access_log = '{d}/logs/access.log',
                error_log = '{d}/logs/error.log', pid_file = '{d}/run/kennel.pid';
         UPDATE handler SET send_spec = 'ipc://{d}/rust-send', recv_spec = 'ipc://{d}/rust-recv' WHERE id = 1;
         UPDATE handler SET send_spec = 'ipc://{d}/py-send', recv_spec = 'ipc://{d}/py-recv' WHERE id = 2;
         UPDATE directory SET base = '{d}/examples/site/public/';"
    )
}

/// A raw PULL socket on a test server's `send_spec`: the request messages
/// exactly as a handler receives them.
fn raw_handler(server: &TestServer) -> (zmq::Context, zmq::Socket) {
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL).unwrap();
    pull.set_rcvtimeo(10_000).unwrap();
    pull.set_linger(0).unwrap();
    pull.connect(&server.send_spec).unwrap();
    (ctx, pull)
}

/// A request message with its sender and connection id replaced by the
/// manual's (`SENDER`, and `id`), which are all that differ between runs.
fn as_in_the_manual(message: &[u8], id: &str) -> String {
    let text = String::from_utf8(message.to_vec()).unwrap();
    let mut parts = text.splitn(3, ' ');
    let (_, _, rest) = (parts.next(), parts.next(), parts.next().unwrap());
    format!("SENDER {id} {rest}")
}

fn lines_of(block: &Block) -> Vec<&str> {
    block.text.lines().collect()
}

/// Sends `request` on a new connection and reads until the server closes
/// it or `timeout` passes; what came back.
fn exchange(addr: std::net::SocketAddr, request: &[u8], timeout: Duration) -> (Vec<u8>, bool) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.write_all(request).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, false),
        }
    }
}

/// Waits until a handler snippet answers: a plain PUB socket drops what it
/// sends before the server's subscription reaches it (the manual's "slow
/// joiner"), so requests are sent on fresh connections until one is
/// answered.
fn wait_for_answer(addr: std::net::SocketAddr, request: &[u8], python: &mut manual::Python) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        python.assert_running();
        let (got, _) = exchange(addr, request, Duration::from_millis(500));
        if !got.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "the handler never answered");
    }
}

// ---- cli.md ----------------------------------------------------------

#[test]
fn cli_check_error() {
    let dir = repo_like();
    let site = std::fs::read_to_string(dir.path().join("examples/site/config.sql")).unwrap();
    load(
        dir.path(),
        "config.sqlite",
        &[
            &site,
            "UPDATE route SET target_type = 'hander' WHERE id = 2;",
        ],
    );
    for step in manual::run_transcript(&manual::block("cli/check-error").text, dir.path()) {
        assert_eq!(step.actual, step.expected, "$ {}", step.command);
    }
}

#[test]
fn cli_examples() {
    let dir = repo_like();
    let out = manual::run_script(&manual::block("cli/examples").text, dir.path());
    assert!(out.contains("/users/(\\d+)$"), "{out}");
}

/// A log line's time and user (which differ on every run) as placeholders,
/// and this machine's name as the manual's `web1`; other lines as they
/// are, without trailing blanks (m2sh's format ends each field with one).
fn log_line_pattern(line: &str, host: &str) -> String {
    let line = line.trim_end();
    let mut fields: Vec<&str> = line.split(' ').collect();
    let timestamp = fields.len() > 4
        && fields[0].len() == 10
        && fields[0].as_bytes()[4] == b'-'
        && fields[1].len() == 8
        && fields[1].as_bytes()[2] == b':';
    if !timestamp {
        return line.to_owned();
    }
    fields[0] = "<date>";
    fields[1] = "<time>";
    fields[2] = "<user>";
    if fields[3] == host {
        fields[3] = "web1";
    }
    fields.join(" ")
}

#[test]
fn cli_load_conf() {
    let dir = tempfile::tempdir().unwrap();
    manual::write(dir.path(), "site.conf", manual::block("cli/site-conf").text);
    let commands = manual::block("cli/load-conf").text;
    let out = std::process::Command::new("bash")
        .args(["-eu", "-c", &commands])
        .current_dir(dir.path())
        .env("PATH", manual::path_with_kennel())
        // Who the log names when there is no login (as in CI).
        .env("LOGNAME", "alice")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{commands}\n{out:?}");
    let host = config::deploy_log::host_name().unwrap();
    let pattern =
        |text: &str| -> Vec<String> { text.lines().map(|l| log_line_pattern(l, &host)).collect() };
    assert_eq!(
        pattern(&String::from_utf8_lossy(&out.stdout)),
        pattern(&manual::block("cli/load-conf-output").text)
    );
}

#[test]
fn cli_load_conf_errors() {
    let dir = tempfile::tempdir().unwrap();
    let site = manual::block("cli/site-conf").text;
    let transcript = manual::block("cli/load-conf-errors").text;
    // The first command runs on the site without the `)` of its Dir, the
    // rest on the site without the server's uuid.
    let second = transcript[1..]
        .find("\n$ kennel")
        .expect("two load-conf commands")
        + 2;
    let variants = [
        (
            &transcript[..second],
            site.replace("default_ctype='text/plain')", "default_ctype='text/plain'"),
        ),
        (
            &transcript[second..],
            site.replace("uuid=\"f400bf85-4538-4f7a-8908-67e313d515c2\",", ""),
        ),
    ];
    for (steps, conf) in variants {
        assert_ne!(conf, site, "the manual's site.conf changed");
        manual::write(dir.path(), "site.conf", &conf);
        for step in manual::run_transcript(steps, dir.path()) {
            assert_eq!(step.actual, step.expected, "$ {}", step.command);
        }
    }
}

// ---- configuration.md ------------------------------------------------

#[test]
fn configuration_sqlite3() {
    manual::find_program_of("sqlite3", "sqlite3");
    let dir = repo_like();
    manual::write(
        dir.path(),
        "site.sql",
        manual::block("configuration/first-site").text,
    );
    let block = manual::block("configuration/sqlite3");
    manual::run_script(&block.text, dir.path());
    // "safe to repeat"
    manual::run_script(block.text.lines().next().unwrap(), dir.path());
    let out = kennel_ok(dir.path(), &["check", "--db", "config.sqlite"]);
    assert!(out.starts_with("ok: server main"), "{out}");
}

// ---- getting-started.md ----------------------------------------------

/// The route `local.sql` adds is served, by the Python handler, when the
/// site starts with it. (Adding it to a running site with `run.sh
/// --reload` needs config reload on SIGHUP.)
#[test]
fn getting_started_local_sql() {
    let dir = repo_like();
    let root = dir.path();
    let site = std::fs::read_to_string(root.join("examples/site/config.sql")).unwrap();
    let local = manual::block("getting-started/local-sql").text;
    load(
        root,
        "config.sqlite",
        &[&site, &local, &example_site_in(root, 0)],
    );
    let out = kennel_ok(root, &["check", "--db", "config.sqlite"]);
    assert!(out.contains("8 routes"), "{out}");

    let db = root.join("config.sqlite");
    let snapshot = Arc::new(config::load(&db, &ServerSelector::Any).unwrap());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = kennel::server::Background::start(snapshot, listener, 2).unwrap();
    let mut python = manual::Python::run([
        manual::repo()
            .join("examples/python/hello.py")
            .into_os_string(),
        "--send-spec".into(),
        format!("ipc://{}/py-send", root.display()).into(),
        "--recv-spec".into(),
        format!("ipc://{}/py-recv", root.display()).into(),
    ]);
    let request = b"GET /greet/hi HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        python.assert_running();
        let (got, _) = exchange(server.addr(), request, Duration::from_millis(500));
        if !got.is_empty() {
            break String::from_utf8(got).unwrap();
        }
        assert!(Instant::now() < deadline, "hello.py never answered");
    };
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("  PATTERN: /greet/\n"), "{answer}");
    drop(python);
    server.stop().unwrap();
}

#[test]
fn getting_started_route() {
    let dir = repo_like();
    let root = dir.path();
    let site = std::fs::read_to_string(root.join("examples/site/config.sql")).unwrap();
    let local = manual::block("getting-started/local-sql").text;
    load(root, "examples/site/config.sqlite", &[&site, &local]);
    std::fs::create_dir_all(root.join("target/release")).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_kennel"),
        root.join("target/release/kennel"),
    )
    .unwrap();
    let out = manual::run_script(&manual::block("getting-started/route").text, root);
    assert_eq!(out, manual::block("getting-started/route-output").text);
}

// ---- handlers.md -----------------------------------------------------

/// Sends `request` to `server` and checks the message a handler gets
/// against the block marked `block` (its id written `id`), and the
/// disconnect notice once the client goes against line `notice` of the
/// notices block.
fn request_as_in_the_manual(
    server: &TestServer,
    request: &[u8],
    block: &str,
    id: &str,
    notice: usize,
) {
    let (_ctx, pull) = raw_handler(server);
    let mut client = server.client();
    client.send(request);
    let message = pull.recv_bytes(0).unwrap();
    assert_eq!(
        format!("{}\n", as_in_the_manual(&message, id)),
        manual::block(block).text
    );
    drop(client);
    let message = pull.recv_bytes(0).unwrap();
    assert_eq!(
        as_in_the_manual(&message, "7"),
        lines_of(&manual::block("handlers/notices"))[notice]
    );
}

#[test]
fn handlers_request_json() {
    request_as_in_the_manual(
        &TestServer::start(),
        b"GET /handler/foo?x=1 HTTP/1.1\r\nHost: localhost:6767\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
        "handlers/request-json",
        "1",
        0,
    );
}

#[test]
fn handlers_request_tnetstring() {
    let server = TestServer::start_with(Site {
        extra_sql: "INSERT INTO route (path, host_id, target_id, target_type) VALUES ('/tns/', 1, 1, 'handler');".into(),
        protocol: "tnetstring",
    });
    request_as_in_the_manual(
        &server,
        b"POST /tns/bar?q=1 HTTP/1.1\r\nHost: localhost:6767\r\nContent-Length: 11\r\n\r\nhello=world",
        "handlers/request-tnetstring",
        "2",
        1,
    );
}

#[test]
fn handlers_replies() {
    let block = manual::block("handlers/replies");
    let replies: Vec<Vec<u8>> = block.text.lines().map(manual::unescape).collect();
    let expected: [(&[u64], &[u8]); 3] = [
        (&[7], b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
        (&[7, 9, 12], b"data: tick\n\n"),
        (&[7], b""),
    ];
    assert_eq!(replies.len(), expected.len());
    for (reply, (ids, body)) in replies.iter().zip(expected) {
        let parsed = Reply::parse(reply, 128).unwrap();
        assert_eq!(parsed.ids().collect::<Vec<_>>(), ids);
        assert_eq!(parsed.body(), &Body::Data(body));
    }
    assert!(Reply::parse(&replies[2], 128).unwrap().is_close());
}

/// Starts a Python snippet as the handler of `server`.
fn python_snippet(server: &TestServer, code: &str) -> manual::Python {
    manual::Python::start(&manual::with_endpoints(
        code,
        &server.send_spec,
        &server.recv_spec,
    ))
}

/// The server settings for a Python snippet: handlers get 10 s to connect.
fn python_site() -> Site {
    Site {
        extra_sql:
            "UPDATE setting SET value = '10000' WHERE key = 'kennel.handler.connect_wait_ms';"
                .into(),
        ..Site::default()
    }
}

#[test]
fn handlers_python_handler() {
    let server = TestServer::start_with(python_site());
    let code = manual::block("handlers/python-handler").text;
    let mut python = python_snippet(&server, &code);
    wait_for_answer(
        server.addr,
        b"GET /handler/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        &mut python,
    );

    let ok = |path: &str, connection: &str| {
        let text = format!("hello from {path}\n");
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{text}",
            text.len()
        )
    };
    // HTTP/1.1: kept open; HEAD gets the same head and no body, and the
    // next response on the connection is whole.
    let mut client = server.client();
    client.send(b"GET /handler/a HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(
        common::text(&client.read_response()),
        ok("/handler/a", "keep-alive")
    );
    client.send(b"HEAD /handler/b HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let get_b = ok("/handler/b", "keep-alive");
    let head_b = &get_b[..get_b.find("\r\n\r\n").unwrap() + 4];
    assert_eq!(common::text(&client.read_exact(head_b.len())), head_b);
    client.send(b"GET /handler/c HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(
        common::text(&client.read_response()),
        ok("/handler/c", "keep-alive")
    );
    // HTTP/1.0 with keep-alive: kept open.
    client.send(b"GET /handler/d HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(
        common::text(&client.read_response()),
        ok("/handler/d", "keep-alive")
    );
    // Connection: close, and plain HTTP/1.0: answered, then closed.
    client.send(b"GET /handler/e HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(
        common::text(&client.read_to_end()),
        ok("/handler/e", "close")
    );
    let mut client = server.client();
    client.send(b"GET /handler/f HTTP/1.0\r\nHost: localhost\r\n\r\n");
    assert_eq!(
        common::text(&client.read_to_end()),
        ok("/handler/f", "close")
    );
    let mut client = server.client();
    client.send(b"HEAD /handler/g HTTP/1.0\r\n\r\n");
    let get_g = ok("/handler/g", "close");
    assert_eq!(
        common::text(&client.read_to_end()),
        &get_g[..get_g.find("\r\n\r\n").unwrap() + 4]
    );
    python.assert_running();
}

/// The XPUB lines in place of the handler's PUB lines: a request that waits
/// for the handler to start is answered (with PUB the first reply can be
/// lost).
#[test]
fn handlers_python_xpub() {
    let server = TestServer::start_with(python_site());
    let handler = manual::block("handlers/python-handler").text;
    let pub_lines = "replies = ctx.socket(zmq.PUB)\nreplies.connect(\"tcp://127.0.0.1:9994\")\n";
    assert!(
        handler.contains(pub_lines),
        "the handler's PUB lines changed"
    );
    let code = handler.replace(pub_lines, &manual::block("handlers/python-xpub").text);
    let mut client = server.client();
    client.send(b"GET /handler/first HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut python = python_snippet(&server, &code);
    let response = common::text(&client.read_response());
    assert!(
        response.starts_with("HTTP/1.1 200 OK\r\n")
            && response.ends_with("hello from /handler/first\n"),
        "{response}"
    );
    python.assert_running();
}

// ---- operating.md ----------------------------------------------------

/// Drops the timestamp that starts a log line.
fn without_timestamp(line: &str) -> &str {
    let (stamp, rest) = line.split_once(' ').unwrap_or(("", line));
    assert!(
        stamp.len() >= 20 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "not a timestamp: {line}"
    );
    rest.trim_start()
}

#[test]
fn operating_serve() {
    let dir = repo_like();
    let root = dir.path();
    let block = manual::block("operating/serve");
    let lines = lines_of(&block);
    // $ kennel load --db site.sqlite examples/site/config.sql
    let load_step = format!("{}\n{}\n", lines[0], lines[1]);
    for step in manual::run_transcript(&load_step, root) {
        assert_eq!(step.actual, step.expected, "$ {}", step.command);
    }
    // $ kennel serve --db site.sqlite, off the example site's ports.
    load(root, "site.sqlite", &[&example_site_in(root, 0)]);
    let command = lines[2].strip_prefix("$ kennel ").unwrap();
    let mut child = manual::kennel()
        .args(command.split(' '))
        .current_dir(root)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let started = manual::read_until(&mut stdout, "listening");
    let listening = without_timestamp(started.last().unwrap());
    let port = listening
        .split("addr=127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap();
    assert_eq!(
        listening.replace(&format!("127.0.0.1:{port} "), "127.0.0.1:6767 "),
        without_timestamp(lines[3])
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    let stopping: Vec<&str> = rest.lines().map(without_timestamp).collect();
    assert_eq!(stopping, lines_of(&manual::block("operating/shutdown-log")));
}

#[test]
fn operating_listen_error() {
    let dir = repo_like();
    let root = dir.path();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let site = std::fs::read_to_string(root.join("examples/site/config.sql")).unwrap();
    load(root, "site.sqlite", &[&site, &example_site_in(root, port)]);
    for step in manual::run_transcript(&manual::block("operating/listen-error").text, root) {
        let actual = step
            .actual
            .replace(&format!("127.0.0.1:{port}:"), "127.0.0.1:6767:");
        assert_eq!(actual, step.expected, "$ {}", step.command);
    }
}

#[test]
fn operating_m2sh_access() {
    manual::find_program_of("m2sh", "mongrel2-core");
    let dir = tempfile::tempdir().unwrap();
    manual::write(
        dir.path(),
        "logs/access.log",
        manual::block("operating/access-log-line").text,
    );
    for step in manual::run_transcript(&manual::block("operating/m2sh-access").text, dir.path()) {
        assert_eq!(step.actual, step.expected, "$ {}", step.command);
    }
}

#[test]
fn operating_no_handler_503() {
    let server = TestServer::start();
    let mut client = server.client();
    client.send(b"GET /handler/x HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let response = common::text(&client.read_response()).replace("\r\n", "\n");
    let expected = manual::block("operating/no-handler-503").text;
    let date = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("Date: "))
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        response.replace(&date(&response), &date(&expected)),
        expected
    );
}

// ---- proxy.md --------------------------------------------------------

#[test]
fn proxy_route() {
    let dir = repo_like();
    let root = dir.path();
    let site = std::fs::read_to_string(root.join("examples/site/config.sql")).unwrap();
    load(
        root,
        "config.sqlite",
        &[&site, &manual::block("proxy/route").text],
    );
    let out = kennel_ok(root, &["check", "--db", "config.sqlite"]);
    assert!(out.contains("1 proxies"), "{out}");
    let out = kennel_ok(
        root,
        &[
            "route",
            "--db",
            "config.sqlite",
            "--host",
            "localhost",
            "/app/users",
        ],
    );
    assert!(
        out.contains("route: /app/") && out.contains("proxy 1"),
        "{out}"
    );
}

// ---- uploads.md ------------------------------------------------------

fn extended(reply: &[u8]) -> (Vec<u64>, Vec<u8>, String) {
    let parsed = Reply::parse(reply, 128).unwrap();
    let Body::Extended(x) = parsed.body() else {
        panic!("not an extended reply: {reply:?}");
    };
    (
        parsed.ids().collect(),
        x.key.to_vec(),
        format!("{:?}", x.value),
    )
}

#[test]
fn uploads_extended_replies() {
    let credits = manual::block("uploads/credits-reply").text;
    let (ids, key, value) = extended(credits.trim_end().as_bytes());
    assert_eq!((ids, key), (vec![7], b"ctl".to_vec()));
    let expected = Value::Dict(vec![(b"credits", Value::Integer(10485760))]);
    assert_eq!(value, format!("{expected:?}"));

    let block = manual::block("uploads/sendfile-reply");
    let lines = lines_of(&block);
    let head = manual::unescape(lines[0]);
    let parsed = Reply::parse(&head, 128).unwrap();
    assert_eq!(
        parsed.body(),
        &Body::Data(b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n")
    );
    let (ids, key, value) = extended(lines[1].as_bytes());
    assert_eq!((ids, key), (vec![7], b"sendfile".to_vec()));
    assert_eq!(value, format!("{:?}", Value::String(b"/srv/files/a.bin")));
}

#[test]
fn uploads_credits_notice() {
    let block = manual::block("uploads/credits-notice");
    let req = Request::parse(block.text.trim_end().as_bytes()).unwrap();
    assert_eq!(req.path(), b"@*");
    assert_eq!(req.header("METHOD"), Some("JSON"));
    assert_eq!(req.header("DOWNLOAD_CREDITS"), Some("4096"));
    assert_eq!(req.body(), br#"{"type":"credits"}"#);
}

// ---- websockets.md ---------------------------------------------------

#[test]
fn websockets_handshake_request() {
    let server = TestServer::start_with(Site {
        extra_sql: "INSERT INTO route (path, host_id, target_id, target_type) VALUES ('/chat', 1, 1, 'handler');".into(),
        ..Site::default()
    });
    let (_ctx, pull) = raw_handler(&server);
    let mut client = server.client();
    client.send(
        b"GET /chat HTTP/1.1\r\nOrigin: http://localhost\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Host: localhost\r\nUpgrade: websocket\r\n\r\n",
    );
    let message = pull.recv_bytes(0).unwrap();
    // Wrapped in the manual; one frame on the wire.
    let expected: String = manual::block("websockets/handshake-request")
        .text
        .lines()
        .collect();
    assert_eq!(as_in_the_manual(&message, "2"), expected);
    let req = Request::parse(&message).unwrap();
    assert_eq!(
        req.body(),
        kennel_handler::websocket::accept_key(b"dGhlIHNhbXBsZSBub25jZQ==").as_bytes()
    );
}

#[test]
fn websockets_python_echo() {
    use tungstenite::Message;

    let server = TestServer::start_with(python_site());
    let code = manual::block("websockets/python-echo").text;
    let mut python = python_snippet(&server, &code);
    let plain = b"GET /handler/ws HTTP/1.1\r\nHost: localhost\r\n\r\n";
    wait_for_answer(server.addr, plain, &mut python);

    // Plain HTTP: a 426, then the connection is closed; HEAD: the head only.
    let page = "use a WebSocket client\n";
    let head = format!(
        "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        page.len()
    );
    let (got, closed) = exchange(server.addr, plain, Duration::from_secs(10));
    assert_eq!(
        (common::text(&got), closed),
        (format!("{head}{page}"), true)
    );
    let (got, closed) = exchange(
        server.addr,
        b"HEAD /handler/ws HTTP/1.1\r\nHost: localhost\r\n\r\n",
        Duration::from_secs(10),
    );
    assert_eq!((common::text(&got), closed), (head, true));

    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut ws, response) = tungstenite::client("ws://localhost/handler/ws", stream).unwrap();
    assert_eq!(response.status(), 101);
    common::assert_websocket_echoes(
        &mut ws,
        &[
            Message::text("hello"),
            Message::binary(vec![0u8, 1, 2, 255]),
        ],
    );
    python.assert_running();
}
