//! The example site served for real, by Mongrel2 or by Kennel: its
//! `examples/site/config.sql` loaded into a config database in a temp dir,
//! with the port, the handler sockets, the logs and the control socket
//! moved into that dir (so a running `examples/run.sh` and other tests do
//! not collide with it) and the Dir base made absolute; the Rust example
//! handler started on it.
//!
//! Owns [`Site`], the two [`Start`] functions ([`mongrel2`], [`kennel`])
//! that a test takes as its parameter, and [`Handler`] (the real
//! `hello-handler` process with its log). Every process started here is
//! stopped by its PID when its guard drops, also on panic. Without
//! `mongrel2` (Debian's `mongrel2-core`) the Mongrel2 variant fails, saying
//! what to install.

#![allow(dead_code)] // each test file uses its own part of it

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kennel::config::{self, ServerSelector};
use kennel::server::Background;

/// The example server's `uuid` (examples/site/config.sql).
pub const SERVER_UUID: &str = "b5a7c1e4-3f0d-4c38-9a1e-6f2d8c7b9e01";

/// How long a server or the handler may take to start. Both need well
/// under a second; the bound only stops a broken start from hanging.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long Mongrel2 may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

const SITE_SQL: &str = include_str!("../../../site/config.sql");
const PUBLIC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../site/public/");

const INSTALL: &str = "`bash tests/setup.sh` installs everything the tests need";

/// The site's config database and where everything in it now points.
pub struct Site {
    dir: tempfile::TempDir,
    pub db: PathBuf,
    pub port: u16,
    /// Handler 1's (the Rust handler's) `send_spec` and `recv_spec`.
    pub send_spec: String,
    pub recv_spec: String,
}

impl Site {
    /// Loads the site's SQL (Kennel's `config.sqlite.sql` schema first, as
    /// `kennel load` does; Mongrel2 reads it too), then moves the port,
    /// sockets and files into a fresh temp dir.
    pub fn new() -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().display().to_string();
        assert!(!root.contains('\''), "a temp dir without quotes: {root}");
        let db = dir.path().join("site.sqlite");
        config::apply_sql(&db, SITE_SQL).expect("examples/site/config.sql loads");
        let port = free_port();
        let public = std::fs::canonicalize(PUBLIC).expect("examples/site/public/");
        let moved = format!(
            "UPDATE server SET port = {port}, bind_addr = '127.0.0.1',
                 access_log = '{root}/access.log', error_log = '{root}/error.log',
                 pid_file = '{root}/server.pid', control_port = 'ipc://{root}/control';
             UPDATE handler SET send_spec = 'ipc://{root}/handler-' || id || '-send',
                 recv_spec = 'ipc://{root}/handler-' || id || '-recv';
             UPDATE directory SET base = '{}/';
             INSERT INTO setting (key, value) VALUES ('server.daemonize', '0');",
            public.display()
        );
        config::apply_sql(&db, &moved).expect("the site moves into its temp dir");
        Site {
            send_spec: format!("ipc://{root}/handler-1-send"),
            recv_spec: format!("ipc://{root}/handler-1-recv"),
            dir,
            db,
            port,
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `http://127.0.0.1:PORT` and `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Starts the real `hello-handler` on handler 1's sockets, its log in
    /// the temp dir.
    pub fn start_handler(&self) -> Handler {
        let log = self.root().join("hello-handler.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hello-handler"))
            .args(["--send-spec", &self.send_spec])
            .args(["--recv-spec", &self.recv_spec])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start hello-handler");
        Handler { child, log }
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

/// The server under test: starts one on a site and returns its guard.
pub type Start = fn(&Site) -> Served;

/// A running server, stopped when dropped.
pub enum Served {
    Mongrel2 { child: Child, log: PathBuf },
    Kennel(Option<Background>),
}

/// Mongrel2 1.12 (`mongrel2 DB UUID`, run in the site's temp dir).
pub fn mongrel2(site: &Site) -> Served {
    let binary = find_program("mongrel2", "mongrel2-core");
    let log = site.root().join("mongrel2.out");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(binary)
        .arg(&site.db)
        .arg(SERVER_UUID)
        .current_dir(site.root())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("spawn mongrel2");
    let mut served = Served::Mongrel2 { child, log };
    if let Served::Mongrel2 { child, log } = &mut served {
        wait_accepting(site.addr(), || match child.try_wait() {
            Ok(Some(status)) => Err(format!("mongrel2 exited with {status}:\n{}", tail(log))),
            Ok(None) => Ok(()),
            Err(e) => Err(e.to_string()),
        });
    }
    served
}

/// Kennel, in this process: the database loaded as `kennel DB UUID` would
/// load it, served on its port.
pub fn kennel(site: &Site) -> Served {
    let snapshot = config::load(&site.db, &ServerSelector::Uuid(SERVER_UUID.into()))
        .expect("kennel loads the site");
    let listener = TcpListener::bind(site.addr()).expect("bind the site's port");
    let server = Background::start(Arc::new(snapshot), listener, 2).expect("kennel starts");
    wait_accepting(site.addr(), || Ok(()));
    Served::Kennel(Some(server))
}

impl Drop for Served {
    fn drop(&mut self) {
        match self {
            Served::Mongrel2 { child, .. } => {
                let pid = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                let deadline = Instant::now() + STOP_TIMEOUT;
                while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
            Served::Kennel(server) => {
                if let Some(server) = server.take() {
                    let _ = server.stop();
                }
            }
        }
    }
}

/// The `hello-handler` process, killed by its PID when dropped.
pub struct Handler {
    child: Child,
    log: PathBuf,
}

impl Handler {
    /// The first line of its log containing `needle`, waiting up to
    /// `timeout` for it; a panic showing the log otherwise.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("hello-handler exited with {status}; its log:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in hello-handler's log within {timeout:?}; the log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where program `name` is on `PATH`; panics, naming the Debian package,
/// when it is not there.
pub fn find_program(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not on PATH: install the Debian package {package} ({INSTALL})")
        })
}

/// Waits until `addr` accepts, or `alive` says the server is gone, or
/// [`START_TIMEOUT`] passes.
fn wait_accepting(addr: SocketAddr, mut alive: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + START_TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        if let Err(why) = alive() {
            panic!("the server on {addr} did not start: {why}");
        }
        assert!(
            Instant::now() < deadline,
            "the server on {addr} did not accept within {START_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
