//! A real Kennel for the tools' tests: a config database in a temp dir
//! with the routes the tools use, served by `kennel::server::Background` on
//! `127.0.0.1:0`, handler sockets on `ipc://` paths in the same temp dir,
//! and the tool binaries run as child processes.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::Arc;

use kennel::config::{self, ServerSelector};
use kennel::server::Background;

pub const SENDER: &str = "b7b8c2e0-6a6f-4f3e-9a51-0c1d2e3f4a5b";

pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub send_spec: String,
    pub recv_spec: String,
    server: Option<Background>,
}

impl TestServer {
    /// A server with `/static/` (a Dir holding `hello.txt`) and
    /// `/bench/listen` (a handler); `extra_sql` runs after the base config.
    pub fn start(extra_sql: &str) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("public")).unwrap();
        std::fs::write(root.join("public/hello.txt"), "hello, file\n").unwrap();
        let send_spec = format!("ipc://{}/send.sock", root.display());
        let recv_spec = format!("ipc://{}/recv.sock", root.display());
        let sql = format!(
            "INSERT INTO server (id, uuid, name, access_log, error_log, chroot, pid_file, default_host, bind_addr, port)
               VALUES (1, 'test-server', 'test', '{root}/access.log', '{root}/error.log', '', '', 'localhost', '127.0.0.1', 0);
             INSERT INTO host (id, server_id, name, matching) VALUES (1, 1, 'localhost', 'localhost');
             INSERT INTO handler (id, send_spec, send_ident, recv_spec, recv_ident)
               VALUES (1, '{send_spec}', '{SENDER}', '{recv_spec}', '');
             INSERT INTO directory (id, base, index_file, default_ctype) VALUES (1, '{root}/public/', 'index.html', 'text/plain');
             INSERT INTO route (path, host_id, target_id, target_type) VALUES
               ('/bench/listen', 1, 1, 'handler'),
               ('/static/', 1, 1, 'dir');
             INSERT INTO setting (key, value) VALUES ('kennel.shutdown_grace_ms', '100');
             {extra_sql}",
            root = root.display(),
        );
        let db = root.join("config.sqlite");
        config::apply_sql(&db, &sql).unwrap();
        let snapshot = Arc::new(config::load(&db, &ServerSelector::Any).unwrap());

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = Background::start(snapshot, listener, 1).expect("server started");
        TestServer {
            addr: server.addr(),
            dir,
            send_spec,
            recv_spec,
            server: Some(server),
        }
    }

    pub fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().unwrap();
        }
    }
}

/// Runs a tool binary to the end and returns what it printed.
pub fn run_tool(binary: &str, args: &[&str]) -> Output {
    Command::new(binary).args(args).output().unwrap()
}

/// Runs a tool binary to the end, asserts that it succeeded (showing its
/// stderr if not) and returns the lines of its standard output.
pub fn run_ok(binary: &str, args: &[&str]) -> Vec<String> {
    let out = run_tool(binary, args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines(&out.stdout)
}

/// The lines of a tool's standard output.
pub fn lines(output: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(output)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The route of the WebSocket echo, for `TestServer::start`'s `extra_sql`:
/// `/bench/ws` to the same handler as `/bench/listen`.
pub const WS_ROUTE: &str =
    "INSERT INTO route (path, host_id, target_id, target_type) VALUES ('/bench/ws', 1, 1, 'handler');";

/// How a [`WsHandler`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsMode {
    /// As the bench handler does: the 101, then every text message echoed.
    Echo,
    /// A 200 instead of the 101.
    Refuse,
    /// The 101, then each message echoed with its first byte changed.
    Garble,
}

/// What a [`WsHandler`] saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WsSeen {
    pub handshakes: usize,
    pub messages: usize,
}

/// A WebSocket echo handler on the server's handler sockets, in a thread,
/// until dropped.
pub struct WsHandler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<WsSeen>>,
}

impl WsHandler {
    pub fn start(server: &TestServer, mode: WsMode) -> WsHandler {
        use kennel_handler::websocket::{self, Opcode};
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conn = kennel_handler::Connection::connect(&server.send_spec, &server.recv_spec)
            .expect("handler sockets");
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen = WsSeen::default();
                while !stop.load(Ordering::Acquire) {
                    let Some(req) = conn
                        .recv_timeout(std::time::Duration::from_millis(50))
                        .unwrap()
                    else {
                        continue;
                    };
                    match req.method() {
                        Some("WEBSOCKET_HANDSHAKE") => {
                            seen.handshakes += 1;
                            if mode == WsMode::Refuse {
                                conn.reply_http(&req, 200, &[], b"no").unwrap();
                                continue;
                            }
                            let accept = String::from_utf8_lossy(req.body()).into_owned();
                            let head = format!(
                                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                                 Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                            );
                            conn.reply(&req, head.as_bytes()).unwrap();
                        }
                        Some("WEBSOCKET") => {
                            assert_eq!(req.header("FLAGS"), Some("0x81"));
                            seen.messages += 1;
                            let mut payload = req.body().to_vec();
                            if mode == WsMode::Garble {
                                payload[0] ^= 0x20;
                            }
                            conn.reply(&req, &websocket::frame(Opcode::Text, &payload))
                                .unwrap();
                        }
                        _ => {}
                    }
                }
                seen
            })
        };
        // Give the reply socket's subscription time to reach the server:
        // a PUB socket drops what it sends before that.
        std::thread::sleep(std::time::Duration::from_millis(200));
        WsHandler {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the handler; what it saw.
    pub fn stop(mut self) -> WsSeen {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for WsHandler {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
