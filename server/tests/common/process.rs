//! A real `kennel serve` process for tests: a config database in a temp
//! dir (a Dir route at `/`, a handler at `/app/` on `ipc://` sockets),
//! its log lines collected, signals sent to it by pid.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kennel_handler::Connection;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const UUID: &str = "6c0de5b4-3f52-4d7e-9a0b-reload000001";
const SENDER: &str = "reload-handler";

pub fn kennel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kennel"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `kennel serve` with its log lines collected.
pub struct Kennel {
    pub child: Child,
    log: Arc<Mutex<String>>,
    pub db: PathBuf,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Kennel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Kennel {
    pub fn start() -> Kennel {
        Kennel::start_with_grace(500)
    }

    pub fn start_with_grace(grace_ms: u64) -> Kennel {
        Kennel::start_with(grace_ms, "")
    }

    /// With `extra` SQL run after the site's (settings, routes …).
    pub fn start_with(grace_ms: u64, extra: &str) -> Kennel {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = free_port();
        std::fs::create_dir_all(d.join("public")).unwrap();
        std::fs::write(d.join("public/index.html"), "first site\n").unwrap();
        std::fs::write(d.join("public/new.txt"), "a new route\n").unwrap();
        let sql = format!(
            "INSERT INTO server (id, uuid, name, access_log, error_log, chroot, pid_file, default_host, bind_addr, port)
               VALUES (1, '{UUID}', 'reload', '{d}/access.log', '{d}/error.log', '', '{d}/kennel.pid', 'localhost', '127.0.0.1', {port});
             INSERT INTO host (id, server_id, name, matching) VALUES (1, 1, 'localhost', 'localhost');
             INSERT INTO directory (id, base, index_file, default_ctype) VALUES (1, '{d}/public/', 'index.html', 'text/plain');
             INSERT INTO handler (id, send_spec, send_ident, recv_spec, recv_ident)
               VALUES (1, 'ipc://{d}/h1-send', '{SENDER}', 'ipc://{d}/h1-recv', '');
             INSERT INTO route (id, path, host_id, target_id, target_type) VALUES
               (1, '/', 1, 1, 'dir'), (2, '/app/', 1, 1, 'handler');
             INSERT INTO setting (key, value) VALUES ('kennel.shutdown_grace_ms', '{grace}');
             {extra}",
            grace = grace_ms,
            d = d.display(),
        );
        let db = d.join("config.sqlite");
        kennel::config::apply_sql(&db, &sql).unwrap();
        let mut child = kennel()
            .args(["serve", "--db"])
            .arg(&db)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let kennel = Kennel {
            child,
            log,
            db,
            port,
            dir,
        };
        wait_until("the port", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        kennel
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn sql(&self, sql: &str) {
        kennel::config::apply_sql(&self.db, sql).unwrap();
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn log_count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// SIGHUP, then waits for the outcome's log line (the `n`th such).
    pub fn reload(&self, expect: &str) {
        let before = self.log_count(expect);
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGHUP).unwrap();
        wait_until(expect, || self.log_count(expect) > before);
    }

    pub fn handler(&self, n: u32) -> Connection {
        let d = self.root().display();
        super::connect_handler(
            &format!("ipc://{d}/h{n}-send"),
            &format!("ipc://{d}/h{n}-recv"),
            SENDER,
        )
    }
}

/// One request on a new connection; the whole response.
pub fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Reads one response with a `Content-Length` from a kept-alive stream.
pub fn read_response(s: &mut TcpStream) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + len {
                return String::from_utf8_lossy(&data[..end + 4 + len]).into_owned();
            }
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&data));
        data.extend_from_slice(&buf[..n]);
    }
}
