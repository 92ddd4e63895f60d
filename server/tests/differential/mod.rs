//! The differential harness: one site (a config database in a temp dir, of
//! one of the three kinds in [`databases`]), the real Mongrel2 1.12 and
//! the real Kennel serving it in turn, a capture handler that records the
//! raw request frames each one sends, and the byte-level normal form the
//! two are compared in.
//!
//! Owns: building the site, running and stopping both servers (every
//! process started is killed by PID on drop, also on panic), the capture
//! handler, the raw HTTP client, and [`Canonical`] (a request frame with
//! the connection id taken out and the header members sorted). Does not
//! own the verdicts: the test file says what must be equal and which
//! documented differences are expected.

#![allow(dead_code)] // each test file uses its own part of it

pub mod control;
pub mod databases;
pub mod python;
pub mod upload;
pub mod websocket;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use databases::{DbKind, HandlerRow, HostRows, ServerRow, SiteRows, TargetRow};
use kennel::config::{self, ServerSelector};
use kennel::server::Background;
use kennel_handler::tnetstring::{self, Value};
use kennel_handler::Connection;
use std::os::fd::AsRawFd;

/// The server row's `uuid`, the second argument to `mongrel2`.
pub const SERVER_UUID: &str = "diff-server";

/// How long a server may take to accept on its port after start. Mongrel2
/// needs well under a second; the bound only stops a broken start from
/// hanging the test.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long any one expected message or response may take. Everything is
/// loopback; a healthy run needs milliseconds.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long Mongrel2 may take to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The connection id the capture handler "pings" before any client
/// connects: a reply to it must come back as a disconnect notice (no such
/// connection), which proves the reply path is subscribed. Far above any id
/// either server hands out in a run.
pub const PING_ID: u64 = 4_000_000;

/// The two handler routes of the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `protocol = 'json'`, route `/json/`.
    Json,
    /// `protocol = 'tnetstring'`, route `/tns/`.
    Tns,
}

impl Route {
    /// Both, in the order the harness runs them.
    pub const ALL: [Route; 2] = [Route::Json, Route::Tns];

    /// The route key (and URL prefix).
    pub fn prefix(self) -> &'static str {
        match self {
            Route::Json => "/json/",
            Route::Tns => "/tns/",
        }
    }

    /// The handler's `send_ident`: the sender of every request frame.
    pub fn send_ident(self) -> &'static str {
        match self {
            Route::Json => "0c1e9a52-diff-json",
            Route::Tns => "5b7d3f08-diff-tns",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Route::Json => "json",
            Route::Tns => "tns",
        }
    }
}

/// The temp dir, the config database and the addresses in it.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    /// The server row's port (a port that was free when the site was made).
    pub port: u16,
}

impl Site {
    /// Builds the site as a database of `kind`: `run/` and `logs/` under
    /// the temp dir, the server row with `chroot = ''` (so the absolute
    /// `ipc://` paths mean the same to Mongrel2 as to Kennel and the
    /// handler; Mongrel2 as root then neither chroots nor changes user, and
    /// as another user it never does), `server.daemonize = 0`, one host and
    /// two handler routes.
    pub fn new(kind: DbKind) -> Site {
        Site::with_settings(kind, &[])
    }

    /// [`Site::new`] with more `setting` rows; `{root}` in a value stands
    /// for the temp dir.
    pub fn with_settings(kind: DbKind, extra: &[(&str, &str)]) -> Site {
        Site::build(kind, |server, root| SiteRows {
            server,
            hosts: vec![HostRows {
                name: "localhost".into(),
                matching: "localhost".into(),
                routes: Route::ALL
                    .iter()
                    .enumerate()
                    .map(|(i, route)| (route.prefix().to_owned(), TargetRow::Handler(i)))
                    .collect(),
            }],
            handlers: Route::ALL
                .iter()
                .map(|&route| {
                    let (send_spec, recv_spec) = specs(root, route);
                    HandlerRow {
                        send_spec,
                        send_ident: route.send_ident().into(),
                        recv_spec,
                        recv_ident: String::new(),
                        protocol: match route {
                            Route::Json => "json",
                            Route::Tns => "tnetstring",
                        }
                        .into(),
                    }
                })
                .collect(),
            dirs: Vec::new(),
            proxies: Vec::new(),
            settings: std::iter::once(("server.daemonize".to_owned(), "0".to_owned()))
                .chain(extra.iter().map(|(k, v)| {
                    (
                        (*k).to_owned(),
                        v.replace("{root}", &root.display().to_string()),
                    )
                }))
                .collect(),
        })
    }

    /// A site of `kind` whose rows `rows` makes from the server row (uuid
    /// [`SERVER_UUID`], `chroot = ''`, on a free loopback port, with its
    /// logs and pid file under `run/` and `logs/` in the temp dir) and the
    /// temp dir.
    pub fn build(kind: DbKind, rows: impl FnOnce(ServerRow, &Path) -> SiteRows) -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("run")).unwrap();
        std::fs::create_dir_all(root.join("logs")).unwrap();
        let port = free_port();
        let root_text = root.display();
        let server = ServerRow {
            uuid: SERVER_UUID.into(),
            name: "diff".into(),
            access_log: format!("{root_text}/logs/access.log"),
            error_log: format!("{root_text}/logs/error.log"),
            chroot: String::new(),
            pid_file: format!("{root_text}/run/mongrel2.pid"),
            default_host: "localhost".into(),
            bind_addr: "127.0.0.1".into(),
            port,
        };
        let db = kind.make(&rows(server, root), root);
        Site { dir, db, port }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The handler's `(send_spec, recv_spec)`.
    pub fn specs(&self, route: Route) -> (String, String) {
        specs(self.root(), route)
    }

    /// The `Host` header sent to both servers: the site's port, whichever
    /// port the server under test really listens on.
    pub fn host_header(&self) -> String {
        format!("localhost:{}", self.port)
    }
}

fn specs(root: &Path, route: Route) -> (String, String) {
    (
        format!("ipc://{}/{}-send.sock", root.display(), route.name()),
        format!("ipc://{}/{}-recv.sock", root.display(), route.name()),
    )
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

/// Where the `mongrel2` binary is; a panic naming the package to install
/// if it is not on `PATH`.
pub fn find_mongrel2() -> PathBuf {
    databases::find_program("mongrel2")
}

/// Waits until `addr` accepts a TCP connection, or `alive` says the server
/// is gone, or [`START_TIMEOUT`] passes.
fn wait_accepting(addr: SocketAddr, mut alive: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return;
        }
        if let Err(why) = alive() {
            panic!("server on {addr} did not start: {why}");
        }
        assert!(
            Instant::now() < deadline,
            "server on {addr} did not accept within {START_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running Mongrel2, killed on drop.
pub struct Mongrel2 {
    child: Option<Child>,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Mongrel2 {
    /// Starts `mongrel2 DB UUID` in the site's directory (its default
    /// control port `ipc://run/control` is relative to the working
    /// directory) and waits until the port accepts.
    pub fn start(binary: &Path, site: &Site) -> Mongrel2 {
        let log = site.root().join("logs/mongrel2.out");
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
        let mut m2 = Mongrel2 {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], site.port)),
            log,
        };
        let addr = m2.addr;
        let log = m2.log.clone();
        let child = m2.child.as_mut().unwrap();
        wait_accepting(addr, || match child.try_wait() {
            Ok(Some(status)) => Err(format!("mongrel2 exited with {status}:\n{}", tail(&log))),
            Ok(None) => Ok(()),
            Err(e) => Err(e.to_string()),
        });
        m2
    }

    /// SIGTERM by PID, then waits (bounded) for the exit, so the port and
    /// the handler sockets are free for Kennel.
    pub fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if child.try_wait().unwrap().is_some() {
                return;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "mongrel2 ignored SIGTERM for {STOP_TIMEOUT:?}:\n{}",
                    tail(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Mongrel2 {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn bind_reuse(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use nix::sys::socket::{
        bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
        SockaddrIn,
    };
    let SocketAddr::V4(v4) = addr else {
        return Err(std::io::ErrorKind::Unsupported.into());
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    bind(fd.as_raw_fd(), &SockaddrIn::from(v4))?;
    listen(&fd, Backlog::new(128)?)?;
    Ok(std::net::TcpListener::from(fd))
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A running Kennel (`kennel::server::Background`), stopped on drop.
pub struct Kennel {
    pub addr: SocketAddr,
    server: Option<Background>,
}

impl Kennel {
    /// Loads the site's database as the `kennel` binary would and serves it
    /// on the site's port (with `SO_REUSEADDR`, as Mongrel2 binds it), or
    /// on `127.0.0.1:0` if that is taken.
    pub fn start(site: &Site) -> Kennel {
        let snapshot = Arc::new(
            config::load(&site.db, &ServerSelector::Uuid(SERVER_UUID.into()))
                .expect("kennel loads the site"),
        );
        let listener = bind_reuse(SocketAddr::from(([127, 0, 0, 1], site.port)))
            .or_else(|_| bind_reuse(SocketAddr::from(([127, 0, 0, 1], 0))))
            .expect("bind a port for kennel");
        let server = Background::start(snapshot, listener, 2).expect("kennel started");
        let kennel = Kennel {
            addr: server.addr(),
            server: Some(server),
        };
        wait_accepting(kennel.addr, || Ok(()));
        kennel
    }

    pub fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().expect("kennel serves");
        }
    }
}

/// The server under test, running on a site: for tests that take the
/// server as a parameter ([`Start`]) and run the same checks on both.
pub enum Served {
    Mongrel2(Mongrel2),
    Kennel(Kennel),
}

impl Served {
    pub fn addr(&self) -> std::net::SocketAddr {
        match self {
            Served::Mongrel2(m) => m.addr,
            Served::Kennel(k) => k.addr,
        }
    }

    pub fn stop(self) {
        match self {
            Served::Mongrel2(m) => m.stop(),
            Served::Kennel(k) => k.stop(),
        }
    }
}

/// Starts a server on a site.
pub type Start = fn(&Site) -> Served;

/// Mongrel2 1.12 (`mongrel2 DB UUID`).
pub fn mongrel2(site: &Site) -> Served {
    Served::Mongrel2(Mongrel2::start(&find_mongrel2(), site))
}

/// Kennel, in this process.
pub fn kennel(site: &Site) -> Served {
    Served::Kennel(Kennel::start(site))
}

/// A capture handler for one route: a raw PULL socket on the route's
/// `send_spec` records each request frame exactly as a handler receives it,
/// and a `kennel_handler::Connection` (its own request socket pointed at
/// an address nobody binds, so it never takes a request) sends the
/// replies.
pub struct Capture {
    pub route: Route,
    _context: zmq::Context,
    pull: zmq::Socket,
    replies: Connection,
}

impl Capture {
    pub fn connect(site: &Site, route: Route) -> Capture {
        let context = zmq::Context::new();
        let (send_spec, recv_spec) = site.specs(route);
        let pull = context.socket(zmq::PULL).unwrap();
        pull.set_linger(0).unwrap();
        pull.connect(&send_spec).unwrap();
        let unused = format!(
            "ipc://{}/unused-{}.sock",
            site.root().display(),
            route.name()
        );
        let replies = Connection::connect_in(&context, &unused, &recv_spec).unwrap();
        Capture {
            route,
            _context: context,
            pull,
            replies,
        }
    }

    /// The next frame, or a panic naming `what` after [`IO_TIMEOUT`].
    pub fn recv(&self, what: &str) -> Vec<u8> {
        let ms = i64::try_from(IO_TIMEOUT.as_millis()).unwrap();
        assert!(
            self.pull.poll(zmq::POLLIN, ms).unwrap() > 0,
            "{:?} handler: no {what} within {IO_TIMEOUT:?}",
            self.route
        );
        self.pull.recv_bytes(0).unwrap()
    }

    /// Sends `body` to connection `id`.
    pub fn reply(&self, id: u64, body: &[u8]) {
        self.replies
            .deliver(self.route.send_ident(), &[id], body)
            .unwrap();
    }

    /// Replies to [`PING_ID`] and returns the notice that answers it.
    pub fn ping(&self) -> Vec<u8> {
        self.reply(PING_ID, b"ping");
        self.recv("answer to the ping of a connection that does not exist")
    }
}

/// A capture handler for each route, in [`Route::ALL`] order.
pub fn capture_all(site: &Site) -> Vec<Capture> {
    Route::ALL
        .iter()
        .map(|&r| Capture::connect(site, r))
        .collect()
}

/// The capture handler of `route` among [`capture_all`]'s.
pub fn capture_of(captures: &[Capture], route: Route) -> &Capture {
    &captures[Route::ALL.iter().position(|&r| r == route).unwrap()]
}

/// The value `run` makes, made once per test binary in `cell`; a panic in
/// `run` (Mongrel2 not installed included) fails every caller with the
/// same message, prefixed with `what`.
pub fn run_once<T: Send + Sync>(
    cell: &'static std::sync::OnceLock<Result<T, String>>,
    what: &str,
    run: impl FnOnce() -> T + std::panic::UnwindSafe,
) -> &'static T {
    let result = cell.get_or_init(|| {
        std::panic::catch_unwind(run).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default()
        })
    });
    match result {
        Ok(value) => value,
        Err(why) => panic!("{what} failed: {why}"),
    }
}

/// A raw HTTP client with bounded reads.
pub struct Client {
    stream: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        Client { stream }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one response: the head, then `Content-Length` bytes.
    pub fn read_response(&mut self) -> Vec<u8> {
        crate::common::read_response(&mut self.stream)
    }
}

/// A request frame in a form where two servers' frames are comparable
/// byte for byte: the connection id is taken out, and the members of the
/// header block (JSON `"name":value` texts or tnetstring `key value`
/// encodings, each exactly as sent) are sorted, since Mongrel2 emits them
/// in hash order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    pub sender: Vec<u8>,
    pub path: Vec<u8>,
    /// `,` for JSON, `}` for tnetstring.
    pub tag: u8,
    /// The header block's members as raw bytes, sorted.
    pub members: Vec<Vec<u8>>,
    /// The body netstring exactly as sent (`LEN:bytes,`).
    pub body: Vec<u8>,
}

impl Canonical {
    /// Splits a frame; `None` if it is not `SENDER ID PATH HEADERS BODY` or
    /// its header block cannot be split into members (it need not be valid
    /// JSON: Mongrel2's raw TAB is split fine). Returns the id text too.
    pub fn of(frame: &[u8]) -> Option<(Canonical, Vec<u8>)> {
        let mut parts = frame.splitn(4, |&b| b == b' ');
        let sender = parts.next()?.to_vec();
        let id = parts.next()?.to_vec();
        let path = parts.next()?.to_vec();
        let rest = parts.next()?;
        let colon = rest.iter().position(|&b| b == b':')?;
        let len: usize = std::str::from_utf8(&rest[..colon]).ok()?.parse().ok()?;
        let payload = rest.get(colon + 1..colon + 1 + len)?;
        let tag = *rest.get(colon + 1 + len)?;
        let body = rest[colon + 2 + len..].to_vec();
        let mut members = match tag {
            b',' => json_members(payload)?,
            b'}' => {
                let header = &rest[..colon + 2 + len];
                let Ok(Value::Dict(pairs)) = tnetstring::parse(header) else {
                    return None;
                };
                let members: Vec<Vec<u8>> = pairs
                    .iter()
                    .map(|(k, v)| {
                        let mut out = Vec::new();
                        Value::String(k).encode(&mut out);
                        v.encode(&mut out);
                        out
                    })
                    .collect();
                // The re-encoded members are the sent bytes: tnetstrings
                // have one encoding per value.
                if members.concat() != payload {
                    return None;
                }
                members
            }
            _ => return None,
        };
        members.sort();
        Some((
            Canonical {
                sender,
                path,
                tag,
                members,
                body,
            },
            id,
        ))
    }
}

/// The members of a flat JSON object whose values are strings or arrays of
/// strings, each as its raw bytes (`"name":"value"`), without validating
/// the string contents.
pub fn json_members(json: &[u8]) -> Option<Vec<Vec<u8>>> {
    fn string_end(s: &[u8], at: usize) -> Option<usize> {
        if s.get(at) != Some(&b'"') {
            return None;
        }
        let mut i = at + 1;
        loop {
            match s.get(i)? {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
    }
    let mut members = Vec::new();
    if json.first() != Some(&b'{') {
        return None;
    }
    let mut i = 1;
    if json.get(i) == Some(&b'}') {
        return (i + 1 == json.len()).then_some(members);
    }
    loop {
        let start = i;
        i = string_end(json, i)?;
        if json.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        if json.get(i) == Some(&b'[') {
            i += 1;
            if json.get(i) != Some(&b']') {
                loop {
                    i = string_end(json, i)?;
                    match json.get(i)? {
                        b',' => i += 1,
                        b']' => break,
                        _ => return None,
                    }
                }
            }
            i += 1;
        } else {
            i = string_end(json, i)?;
        }
        members.push(json[start..i].to_vec());
        match json.get(i)? {
            b',' => i += 1,
            b'}' if i + 1 == json.len() => return Some(members),
            _ => return None,
        }
    }
}

/// One header member exactly as `route`'s protocol writes it (a
/// [`Canonical`] member).
pub fn member(route: Route, key: &str, value: &str) -> Vec<u8> {
    match route {
        Route::Json => format!("\"{key}\":\"{value}\"").into_bytes(),
        Route::Tns => {
            let mut out = Vec::new();
            Value::String(key.as_bytes()).encode(&mut out);
            Value::String(value.as_bytes()).encode(&mut out);
            out
        }
    }
}

/// Shows bytes as text with escapes, for failure messages and reports.
pub fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

#[test]
fn json_members_split_raw_text_and_reject_other_shapes() {
    assert_eq!(
        json_members(br#"{"a":"x\"y","b":["1","2"],"c":"t	ab"}"#).unwrap(),
        [
            &br#""a":"x\"y""#[..],
            br#""b":["1","2"]"#,
            b"\"c\":\"t\tab\""
        ]
    );
    assert_eq!(json_members(b"{}").unwrap(), Vec::<Vec<u8>>::new());
    assert!(json_members(br#"{"a":1}"#).is_none());
    assert!(json_members(br#"{"a":"x"} "#).is_none());
    assert!(json_members(br#"{"a":"x""#).is_none());
}

/// One scenario: requests sent one after another on one connection to one
/// route. `{p}` in a request stands for the route prefix, `{p-}` for the
/// prefix without its last two bytes (`/jso`, `/tn`: a prefix *of* the
/// route key), `{host}` for [`Site::host_header`].
#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub route: Route,
    pub requests: Vec<Vec<u8>>,
}

impl Case {
    /// Expands the placeholders in `templates` for `route`.
    pub fn new(name: &'static str, route: Route, host: &str, templates: &[&[u8]]) -> Case {
        let requests = templates
            .iter()
            .map(|t| {
                let prefix = route.prefix().as_bytes();
                let t = replace(t, b"{p-}", &prefix[..prefix.len() - 2]);
                let t = replace(&t, b"{p}", prefix);
                replace(&t, b"{host}", host.as_bytes())
            })
            .collect();
        Case {
            name,
            route,
            requests,
        }
    }
}

/// `haystack` with every `from` replaced by `to`.
pub fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The handler got this frame (and answered it).
    Frame(Vec<u8>),
    /// The server answered the client itself (e.g. a 400) and no frame came.
    Refused(Vec<u8>),
}

impl Outcome {
    pub fn frame(&self) -> &[u8] {
        match self {
            Outcome::Frame(f) => f,
            Outcome::Refused(r) => panic!(
                "expected a handler frame, the server answered itself: {}",
                show(r)
            ),
        }
    }
}

/// Everything one server did with one case.
#[derive(Debug, Clone)]
pub struct CaseRun {
    pub outcomes: Vec<Outcome>,
    /// The response the client read for each forwarded request.
    pub responses: Vec<Vec<u8>>,
    /// The connection id of the frames (if any were forwarded).
    pub id: Option<u64>,
    /// The notice after the client closed (if a frame was forwarded).
    pub disconnect: Option<Vec<u8>>,
    /// The notice answering a reply to the closed connection's id.
    pub dead_reply: Option<Vec<u8>>,
}

/// Everything one server did in a run.
#[derive(Debug, Clone)]
pub struct ServerRun {
    /// Per route (in [`Route::ALL`] order): the answer to the reply to
    /// [`PING_ID`], sent before any client connected.
    pub pings: Vec<Vec<u8>>,
    pub cases: Vec<CaseRun>,
}

/// The small response every forwarded request is answered with.
pub const REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// Runs every case against the server on `addr`: captures the handler
/// frames, answers them with [`REPLY`], closes the client, records the
/// disconnect notice, replies to the dead id and records that notice too.
pub fn exercise(site: &Site, addr: SocketAddr, cases: &[Case]) -> ServerRun {
    let captures = capture_all(site);
    let capture = |route: Route| capture_of(&captures, route);
    let pings = captures.iter().map(Capture::ping).collect();
    let cases = cases
        .iter()
        .map(|case| run_case(capture(case.route), addr, case))
        .collect();
    ServerRun { pings, cases }
}

fn run_case(capture: &Capture, addr: SocketAddr, case: &Case) -> CaseRun {
    let mut client = Client::connect(addr);
    let mut run = CaseRun {
        outcomes: Vec::new(),
        responses: Vec::new(),
        id: None,
        disconnect: None,
        dead_reply: None,
    };
    for request in &case.requests {
        client.send(request);
        let outcome = frame_or_response(capture, &mut client, case.name);
        let Outcome::Frame(frame) = &outcome else {
            run.outcomes.push(outcome);
            return run;
        };
        let id = frame_id(frame).unwrap_or_else(|| {
            panic!("{}: frame without a decimal id: {}", case.name, show(frame))
        });
        run.id.get_or_insert(id);
        capture.reply(id, REPLY);
        run.outcomes.push(outcome);
        run.responses.push(client.read_response());
    }
    drop(client);
    let Some(id) = run.id else { return run };
    run.disconnect = Some(capture.recv(&format!("{}: disconnect notice", case.name)));
    capture.reply(id, b"too late");
    run.dead_reply = Some(capture.recv(&format!("{}: answer to a dead id", case.name)));
    run
}

/// Waits for either the handler frame or the server's own answer.
fn frame_or_response(capture: &Capture, client: &mut Client, what: &str) -> Outcome {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        if capture.pull.poll(zmq::POLLIN, 10).unwrap() > 0 {
            return Outcome::Frame(capture.pull.recv_bytes(0).unwrap());
        }
        client.stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        let peeked = client.stream.peek(&mut byte);
        client.stream.set_nonblocking(false).unwrap();
        match peeked {
            Ok(_) => return Outcome::Refused(client.read_response()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Outcome::Refused(format!("<{e}>").into_bytes()),
        }
        assert!(
            Instant::now() < deadline,
            "{what}: neither a handler frame nor a response within {IO_TIMEOUT:?}"
        );
    }
}

/// The id field of a frame, if it is a plain decimal number.
pub fn frame_id(frame: &[u8]) -> Option<u64> {
    let id = frame.split(|&b| b == b' ').nth(1)?;
    if id.is_empty() || !id.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(id).ok()?.parse().ok()
}
