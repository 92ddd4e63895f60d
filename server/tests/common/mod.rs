//! A real Kennel server for tests: a config database in a temp dir, served
//! by the library's `server::Background` on `127.0.0.1:0` (its own runtime
//! thread, stopped when the test says), handler sockets on `ipc://` paths in the
//! same temp dir (no port clashes between parallel tests), and a real
//! handler connected with the `kennel-handler` library.

#![allow(dead_code)]

pub mod process;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kennel::config::{self, ServerSelector};
use kennel::server::Background;
use kennel_handler::request::Request;
use kennel_handler::Connection;

pub const SENDER: &str = "b7b8c2e0-6a6f-4f3e-9a51-0c1d2e3f4a5b";

pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub send_spec: String,
    pub recv_spec: String,
    server: Option<Background>,
}

/// A handler connected to a server's `send_spec`/`recv_spec` (whose
/// `send_ident` is `sender`), with the PUB→SUB path proven: it replies to
/// connection id 0 (never used) until the server answers with a
/// disconnect notice for id 0.
pub fn connect_handler(send_spec: &str, recv_spec: &str, sender: &str) -> Connection {
    let conn = Connection::connect(send_spec, recv_spec).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        conn.deliver(sender, &[0], b"ping").unwrap();
        if let Some(req) = conn.recv_timeout(Duration::from_millis(50)).unwrap() {
            if req.is_disconnect() && req.conn_id() == 0 {
                // Drain further notices for id 0 from earlier pings (and
                // for connections that closed before this handler came).
                while let Some(r) = conn.recv_timeout(Duration::from_millis(50)).unwrap() {
                    assert!(r.is_disconnect(), "unexpected {r:?}");
                }
                return conn;
            }
            // Notices held for connections that closed before it came.
            assert!(
                req.is_disconnect(),
                "unexpected message while connecting: {req:?}"
            );
        }
        assert!(Instant::now() < deadline, "handler never connected");
    }
}

/// Options for the test site.
pub struct Site {
    /// Extra SQL run after the base config (settings, routes, …).
    pub extra_sql: String,
    /// `protocol` of the handler.
    pub protocol: &'static str,
}

impl Default for Site {
    fn default() -> Self {
        Site {
            extra_sql: String::new(),
            protocol: "json",
        }
    }
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(Site::default())
    }

    pub fn start_with(site: Site) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("public/sub")).unwrap();
        std::fs::create_dir_all(root.join("uploads")).unwrap();
        std::fs::write(root.join("public/index.html"), "<h1>index</h1>\n").unwrap();
        std::fs::write(root.join("public/hello.txt"), "hello, file\n").unwrap();
        std::fs::write(root.join("public/sub/index.html"), "sub index\n").unwrap();
        let send_spec = format!("ipc://{}/send.sock", root.display());
        let recv_spec = format!("ipc://{}/recv.sock", root.display());
        let sql = format!(
            "INSERT INTO server (id, uuid, name, access_log, error_log, chroot, pid_file, default_host, bind_addr, port)
               VALUES (1, 'test-server', 'test', '{root}/access.log', '{root}/error.log', '', '', 'localhost', '127.0.0.1', 0);
             INSERT INTO host (id, server_id, name, matching) VALUES (1, 1, 'localhost', 'localhost');
             INSERT INTO handler (id, send_spec, send_ident, recv_spec, recv_ident, protocol)
               VALUES (1, '{send_spec}', '{SENDER}', '{recv_spec}', '', '{protocol}');
             INSERT INTO directory (id, base, index_file, default_ctype) VALUES (1, '{root}/public/', 'index.html', 'text/plain');
             INSERT INTO proxy (id, addr, port) VALUES (1, '127.0.0.1', 9);
             INSERT INTO route (path, host_id, target_id, target_type) VALUES
               ('/handler/', 1, 1, 'handler'),
               ('/users/(\\d+)$', 1, 1, 'handler'),
               ('/static/', 1, 1, 'dir'),
               ('/proxy/', 1, 1, 'proxy');
             INSERT INTO setting (key, value) VALUES ('kennel.handler.connect_wait_ms', '300'), ('kennel.shutdown_grace_ms', '100');
             {extra}",
            root = root.display(),
            protocol = site.protocol,
            extra = site.extra_sql.replace("{root}", &root.display().to_string()),
        );
        let db = root.join("config.sqlite");
        config::apply_sql(&db, &sql).unwrap();
        let snapshot = Arc::new(config::load(&db, &ServerSelector::Any).unwrap());

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = Background::start(snapshot, listener, 2).expect("server started");
        TestServer {
            addr: server.addr(),
            dir,
            send_spec,
            recv_spec,
            server: Some(server),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// The running server object (its counters, registry …).
    pub fn server(&self) -> &std::sync::Arc<kennel::server::Server> {
        self.server.as_ref().expect("running").server()
    }

    /// Waits until `what` holds of the server's counters, for up to 10 s.
    pub fn wait_for(&self, what: &str, mut holds: impl FnMut(&kennel::server::Counters) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !holds(self.server().counters()) {
            assert!(Instant::now() < deadline, "never: {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A handler connected to the server, with the PUB→SUB path proven:
    /// it replies to connection id 0 (never used) until the server answers
    /// with a disconnect notice for id 0.
    pub fn handler(&self) -> Connection {
        connect_handler(&self.send_spec, &self.recv_spec, SENDER)
    }

    pub fn client(&self) -> Client {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client { stream }
    }

    pub fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().unwrap();
        }
    }
}

/// Receives the next request that is not a notice for connection 0.
pub fn recv(handler: &Connection) -> Request {
    loop {
        let req = handler
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .expect("a request within 10 s");
        if !(req.is_disconnect() && req.conn_id() == 0) {
            return req;
        }
    }
}

pub struct Client {
    pub stream: TcpStream,
}

impl Client {
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads exactly `n` bytes.
    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.stream.read_exact(&mut buf).unwrap();
        buf
    }

    /// Reads until the server closes the connection.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.stream.read_to_end(&mut buf).unwrap();
        buf
    }

    /// Reads one HTTP response with a Content-Length (or none: head only for
    /// 1xx/204/304 and HEAD is the caller's business) and returns it whole.
    pub fn read_response(&mut self) -> Vec<u8> {
        read_response(&mut self.stream)
    }

    /// Whether the server closed the connection (EOF within the timeout).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }
}

/// Reads one HTTP response from `stream`: the head, then as many body bytes
/// as its `Content-Length` says (none without one).
pub fn read_response(stream: &mut impl Read) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).unwrap();
        assert!(
            n > 0,
            "connection closed inside a head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    let mut body = vec![0; len];
    stream.read_exact(&mut body).unwrap();
    buf.extend_from_slice(&body);
    buf
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Checks a WebSocket to an echo handler: each of `messages` comes back as
/// sent, a ping gets its pong, and a close is echoed before the server
/// closes the connection.
pub fn assert_websocket_echoes(
    ws: &mut tungstenite::WebSocket<TcpStream>,
    messages: &[tungstenite::Message],
) {
    use tungstenite::Message;
    for m in messages {
        ws.send(m.clone()).unwrap();
        assert_eq!(&ws.read().unwrap(), m);
    }
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .unwrap();
    assert_eq!(
        ws.read().unwrap(),
        Message::Pong(b"are you there".to_vec().into())
    );
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Close(_)) => continue,
            Ok(other) => panic!("after close: {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("{e}"),
        }
    }
}
