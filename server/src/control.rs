//! The control port: Mongrel2's ZeroMQ REP socket of commands
//! (PROTOCOL.md §3), with Mongrel2 1.12's request and reply bytes.
//!
//! Owns the socket and the thread that answers on it ([`ControlPort`]),
//! the commands and their replies ([`execute`], against what the
//! [`Controlled`] trait asks of a server), and the decision whether a
//! control port that cannot be bound stops the server
//! ([`ControlPort::start`]). The client, `kennel control`, is
//! [`client`]. Does not own what the commands act on: connection counters
//! are the [`crate::roster`]'s, `kill` goes through the connection's
//! outbox ([`crate::registry`]), and `stop`, `terminate` and `reload` are
//! signals to the process, handled by [`crate::process`] like any others.
//!
//! Started by [`crate::process`] once the server is made (inside the
//! chroot, after any fork), and stopped after the server has drained. A
//! server run in-process ([`crate::server::Background`]) has none.
//!
//! A request is a tnetstring list `[command, {args}]`; every reply is a
//! tnetstring dict, `{"headers": [...], "rows": [[...], ...]}` or
//! Mongrel2's error `{"code": ..., "error": ...}`:
//!
//! ```
//! use kennel::control::{execute, Controlled, Info, Task};
//! # struct Stub;
//! # impl Controlled for Stub {
//! #     fn info(&self) -> Info { Info { uuid: "m2test-server".into(), ..Info::default() } }
//! #     fn connections(&self) -> Vec<kennel::roster::Row> { Vec::new() }
//! #     fn tasks(&self) -> Vec<Task> { Vec::new() }
//! #     fn kill(&self, _: u64) -> bool { false }
//! #     fn signal(&self, _: nix::sys::signal::Signal) -> bool { true }
//! #     fn unix_time(&self) -> i64 { 0 }
//! # }
//! let answer = execute(b"10:4:uuid,0:}]", &Stub);
//! assert_eq!(answer.reply, b"52:7:headers,7:4:uuid,]4:rows,21:17:13:m2test-server,]]}");
//! ```

pub mod client;

use std::os::unix::net::UnixStream;
use std::sync::Arc;

use kennel_handler::tnetstring::{self, Value};
use nix::sys::signal::Signal;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::registry::Outgoing;
use crate::roster::Row;
use crate::server::Server;

/// Mongrel2's control port when neither `server.control_port` nor the
/// `control_port` setting names one. Relative, so inside the chroot (or
/// the working directory, without one).
pub const DEFAULT_SPEC: &str = "ipc://run/control";

/// ZeroMQ high-water marks of the control socket, each way: 16 messages.
/// A REP socket takes one request per client at a time, so only a client
/// breaking the protocol (a DEALER sending many) comes near it.
pub const HWM: i32 = 16;

/// How long a reply queued when the control port stops may still take to
/// leave, in milliseconds: 500, so the answer to `stop` or `terminate`
/// reaches its client; bounded so a client that went away cannot hold up
/// the exit.
pub const LINGER_MS: i32 = 500;

/// The largest request taken, in bytes: 64 KiB. A command is tens of
/// bytes; ZeroMQ disconnects a peer that sends more.
pub const MAX_REQUEST: i64 = 64 * 1024;

/// The commands in Mongrel2 1.12's order (`CALLBACKS` in
/// `mongrel2/src/control.c`), with its help texts: `help` lists them so.
/// (Mongrel2's `version` is written but not registered, so it is an
/// unknown command there, and here.)
pub const COMMANDS: [(&str, &str); 10] = [
    ("stop", "stop the server (SIGINT)"),
    ("reload", "reload the server"),
    ("help", "this command"),
    ("control_stop", "stop control port"),
    ("kill", "kill a connection"),
    ("status", "status, what=['net'|'tasks']"),
    ("terminate", "terminate the server (SIGTERM)"),
    ("time", "the server's time"),
    ("uuid", "the server's uuid"),
    ("info", "information about this server"),
];

/// `status what=net`'s headers.
const NET_HEADERS: [&str; 8] = [
    "id",
    "fd",
    "type",
    "last_ping",
    "last_read",
    "last_write",
    "bytes_read",
    "bytes_written",
];

/// `status what=tasks`' headers.
const TASK_HEADERS: [&str; 5] = ["id", "system", "name", "state", "status"];

/// `info`'s headers.
const INFO_HEADERS: [&str; 8] = [
    "port",
    "bind_addr",
    "uuid",
    "chroot",
    "access_log",
    "error_log",
    "pid_file",
    "default_hostname",
];

/// Mongrel2's reply to `status` with a `what` it does not know: a dict with
/// only an `error` (no `code`).
const WHAT_ERROR: &str = "Expected argument what=['net'|'tasks'].";

/// Mongrel2's error replies: a `code` and its fixed `error` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request is a tnetstring but not a list.
    InvalidRequest,
    /// Not a tnetstring (or one with a float, which Mongrel2's parser
    /// refuses), or not a list of a string and a dict.
    InvalidData,
    /// A command gave no reply (Mongrel2's "should not happen").
    CallbackReturn,
    /// No such command.
    CallbackNotFound,
    /// `stop`, `terminate` or `reload` could not signal the process.
    SignalFailed,
    /// A missing or ill-typed argument, or a `kill` of no such connection.
    InvalidArgument,
    /// Mongrel2's `kill` of an id whose socket is gone.
    NotConnected,
}

impl Fault {
    /// The `code`.
    pub fn code(self) -> &'static str {
        match self {
            Fault::InvalidRequest => "INVALID_REQUEST",
            Fault::InvalidData => "INVALID_DATA",
            Fault::CallbackReturn => "CALLBACK_RETURN",
            Fault::CallbackNotFound => "CALLBACK_NOT_FOUND",
            Fault::SignalFailed => "SIGNAL_FAILED",
            Fault::InvalidArgument => "INVALID_ARGUMENT",
            Fault::NotConnected => "NOT_CONNECTED",
        }
    }

    /// The `error`, Mongrel2's text.
    pub fn message(self) -> &'static str {
        match self {
            Fault::InvalidRequest => {
                "Invalid request format, must be a list with two elements in it."
            }
            Fault::InvalidData => "Invalid data, expecting a list with a string and a hash in it.",
            Fault::CallbackReturn => "Callback failed and returned NULL, should not happen.",
            Fault::CallbackNotFound => "Callback requested was not found.",
            Fault::SignalFailed => "raise call failed, can't signal process",
            Fault::InvalidArgument => "Invalid argument type.",
            Fault::NotConnected => "Socket not connected.",
        }
    }

    /// The reply: `{"code": ..., "error": ...}`.
    pub fn reply(self) -> Vec<u8> {
        Value::Dict(vec![
            (b"code", Value::String(self.code().as_bytes())),
            (b"error", Value::String(self.message().as_bytes())),
        ])
        .to_vec()
    }
}

/// What `info` shows: the server row's columns as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    /// `port`.
    pub port: u16,
    /// `bind_addr`.
    pub bind_addr: String,
    /// `uuid`.
    pub uuid: String,
    /// `chroot` (`''` for none).
    pub chroot: String,
    /// `access_log`.
    pub access_log: String,
    /// `error_log`.
    pub error_log: String,
    /// `pid_file`.
    pub pid_file: String,
    /// `default_host`.
    pub default_hostname: String,
}

/// One row of `status what=tasks`. Kennel has no libtask tasks; its rows
/// are the parts of the server that do the work Mongrel2's tasks did (see
/// `docs/control-port.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// A number, from 1, in row order.
    pub id: i64,
    /// Mongrel2's `system` flag: true for the runtime that polls every
    /// socket, as for libtask's `fdtask`.
    pub system: bool,
    /// What it is (`SERVER`, `Handler_task`, `control`, `ticker`,
    /// `runtime`).
    pub name: String,
    /// What it is doing.
    pub state: String,
    /// `running`, `ready`, `exiting` or `idle`.
    pub status: &'static str,
}

/// What the commands ask of the server they control: the running
/// [`Server`] in a process, a stand-in in unit tests.
pub trait Controlled {
    /// The server row, for `info` and `uuid`.
    fn info(&self) -> Info;
    /// Every open connection, for `status what=net`.
    fn connections(&self) -> Vec<Row>;
    /// The server's parts, for `status what=tasks`.
    fn tasks(&self) -> Vec<Task>;
    /// Drops connection `id` now (its handlers are told); false if there
    /// is no such connection.
    fn kill(&self, id: u64) -> bool;
    /// Sends `signal` to the server's own process; false if that failed.
    fn signal(&self, signal: Signal) -> bool;
    /// Seconds since the Unix epoch.
    fn unix_time(&self) -> i64;
}

/// What [`execute`] made of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The reply's bytes.
    pub reply: Vec<u8>,
    /// `control_stop`: the control port stops once the reply is sent.
    pub stop: bool,
}

impl Answer {
    fn reply(reply: Vec<u8>) -> Answer {
        Answer { reply, stop: false }
    }
}

/// Runs one request against `target`, checking it as Mongrel2's
/// `Control_execute` does, in its order: a tnetstring (bytes after the
/// first are ignored; a float anywhere makes it unparseable, as for
/// Mongrel2's parser; null counts as unparseable) → `INVALID_DATA`; a list
/// → else `INVALID_REQUEST`; a string first and a dict second (anything
/// after them is ignored) → else `INVALID_DATA`; a known command → else
/// `CALLBACK_NOT_FOUND`.
pub fn execute(request: &[u8], target: &dyn Controlled) -> Answer {
    let value = match tnetstring::parse_prefix(request) {
        Ok((value, _rest)) if !value.is_null() && !has_float(&value) => value,
        _ => return Answer::reply(Fault::InvalidData.reply()),
    };
    let Some(items) = value.as_list() else {
        return Answer::reply(Fault::InvalidRequest.reply());
    };
    let (Some(Value::String(name)), Some(args @ Value::Dict(_))) = (items.first(), items.get(1))
    else {
        return Answer::reply(Fault::InvalidData.reply());
    };
    match *name {
        b"stop" => signal(target, Signal::SIGINT),
        b"reload" => signal(target, Signal::SIGHUP),
        b"terminate" => signal(target, Signal::SIGTERM),
        b"help" => Answer::reply(table(
            &["name", "help"],
            COMMANDS
                .iter()
                .map(|(name, help)| vec![text(name), text(help)])
                .collect(),
        )),
        b"control_stop" => Answer {
            reply: single("msg", text("stopping the control port")),
            stop: true,
        },
        b"kill" => Answer::reply(kill(target, args)),
        b"status" => Answer::reply(status(target, args)),
        b"time" => {
            let now = target.unix_time().to_string();
            Answer::reply(single("time", text(&now)))
        }
        b"uuid" => Answer::reply(single("uuid", text(&target.info().uuid))),
        b"info" => {
            let info = target.info();
            Answer::reply(table(
                &INFO_HEADERS,
                vec![vec![
                    Value::Integer(i64::from(info.port)),
                    text(&info.bind_addr),
                    text(&info.uuid),
                    text(&info.chroot),
                    text(&info.access_log),
                    text(&info.error_log),
                    text(&info.pid_file),
                    text(&info.default_hostname),
                ]],
            ))
        }
        _ => Answer::reply(Fault::CallbackNotFound.reply()),
    }
}

/// Whether `value` holds a float anywhere.
fn has_float(value: &Value<'_>) -> bool {
    match value {
        Value::Float(_) => true,
        Value::List(items) => items.iter().any(has_float),
        Value::Dict(pairs) => pairs.iter().any(|(_, v)| has_float(v)),
        _ => false,
    }
}

fn text(s: &str) -> Value<'_> {
    Value::String(s.as_bytes())
}

/// `{"headers": [...], "rows": [...]}`, in that order (as Mongrel2's hash
/// renders them).
fn table(headers: &[&str], rows: Vec<Vec<Value<'_>>>) -> Vec<u8> {
    Value::Dict(vec![
        (
            b"headers",
            Value::List(headers.iter().map(|h| text(h)).collect()),
        ),
        (
            b"rows",
            Value::List(rows.into_iter().map(Value::List).collect()),
        ),
    ])
    .to_vec()
}

/// Mongrel2's `basic_response`: one header, one row of one value.
fn single(header: &str, value: Value<'_>) -> Vec<u8> {
    table(&[header], vec![vec![value]])
}

fn signal(target: &dyn Controlled, signal: Signal) -> Answer {
    if target.signal(signal) {
        Answer::reply(single("msg", text("signal sent to server")))
    } else {
        Answer::reply(Fault::SignalFailed.reply())
    }
}

/// `kill id=N`: `id` must be a non-negative integer naming a connection.
fn kill(target: &dyn Controlled, args: &Value<'_>) -> Vec<u8> {
    let id = args
        .get("id")
        .and_then(Value::as_int)
        .and_then(|id| u64::try_from(id).ok());
    match id {
        Some(id) if target.kill(id) => single("status", text("OK")),
        _ => Fault::InvalidArgument.reply(),
    }
}

/// `status what=net|tasks`.
fn status(target: &dyn Controlled, args: &Value<'_>) -> Vec<u8> {
    let Some(Value::String(what)) = args.get("what") else {
        return Fault::InvalidArgument.reply();
    };
    match *what {
        b"net" => table(
            &NET_HEADERS,
            target
                .connections()
                .iter()
                .map(|row| {
                    let id = row.id.and_then(|id| i64::try_from(id).ok()).unwrap_or(-1);
                    [
                        id,
                        i64::from(row.fd),
                        i64::from(row.kind),
                        clamp(row.last_ping),
                        clamp(row.last_read),
                        clamp(row.last_write),
                        clamp(row.bytes_read),
                        clamp(row.bytes_written),
                    ]
                    .into_iter()
                    .map(Value::Integer)
                    .collect()
                })
                .collect(),
        ),
        b"tasks" => {
            let tasks = target.tasks();
            table(
                &TASK_HEADERS,
                tasks
                    .iter()
                    .map(|task| {
                        vec![
                            Value::Integer(task.id),
                            Value::Boolean(task.system),
                            text(&task.name),
                            text(&task.state),
                            text(task.status),
                        ]
                    })
                    .collect(),
            )
        }
        _ => Value::Dict(vec![(b"error", text(WHAT_ERROR))]).to_vec(),
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Where the control port's spec came from, for its error messages and
/// for whether failing to bind it is fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The server row's `control_port` column.
    Column,
    /// The `control_port` setting (the column is empty).
    Setting,
    /// Mongrel2's default, [`DEFAULT_SPEC`] (nothing else is configured,
    /// or the setting says just that).
    Default,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::Column => "",
            Origin::Setting => " (the control_port setting; the column is empty)",
            Origin::Default => {
                " (Mongrel2's default; the column and the control_port setting are empty)"
            }
        })
    }
}

/// The control port's spec in `snapshot`, and where it came from.
pub fn spec_of(snapshot: &crate::config::Snapshot) -> (&str, Origin) {
    let spec = snapshot.control_port();
    let origin = if !snapshot.server.control_port.is_empty() {
        Origin::Column
    } else if spec != DEFAULT_SPEC {
        Origin::Setting
    } else {
        Origin::Default
    };
    (spec, origin)
}

/// Why the control port could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The spec could not be bound.
    #[error("server {server}: column control_port: cannot bind the control port {spec:?}{origin}: {reason}")]
    Bind {
        /// `server.id`.
        server: i64,
        /// The spec.
        spec: String,
        /// Where it came from.
        origin: Origin,
        /// Why.
        reason: String,
    },
    /// The thread could not be started.
    #[error("cannot start the control port's thread: {0}")]
    Thread(#[from] std::io::Error),
    /// ZeroMQ failed outside binding (making a socket, an option).
    #[error("control port: {0}")]
    Zmq(#[from] zmq::Error),
}

/// A running control port: a REP socket answered by a thread of its own.
///
/// ZeroMQ sockets are not thread-safe. The REP socket and the receiving
/// end of the stop pair are made and bound by [`ControlPort::bind`] on the
/// calling thread, then moved to the control thread (the spawn is the full
/// memory barrier ZeroMQ asks for when a socket changes threads) and
/// touched only there. The sending end of the stop pair stays here and is
/// touched only by this value's owner ([`ControlPort::stop`] or drop).
/// The thread sleeps in `zmq_poll` on both with no timeout: no request and
/// no stop means no wake-up.
pub struct ControlPort {
    stop: zmq::Socket,
    thread: Option<std::thread::JoinHandle<()>>,
    spec: String,
    _context: zmq::Context,
}

impl std::fmt::Debug for ControlPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPort")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// The inproc address of the stop pair, one per control port's own
/// ZeroMQ context.
const STOP_ENDPOINT: &str = "inproc://kennel-control-stop";

impl ControlPort {
    /// Binds `server`'s control port (`server.control_port`, else the
    /// `control_port` setting, else [`DEFAULT_SPEC`]) and answers on it
    /// until [`stop`](Self::stop). `shutdown` is the server's (the control
    /// port reports it; stopping is still [`stop`](Self::stop)'s).
    ///
    /// A spec that cannot be bound is an error naming `server.control_port`
    /// when it was configured (the column, or the setting), so a server an
    /// operator cannot control as configured does not start; Mongrel2's
    /// default is bound if it can be (a working directory without `run/`
    /// cannot) and otherwise logged as a warning, and the server runs
    /// without a control port, as Mongrel2 always does.
    pub fn start(
        server: Arc<Server>,
        shutdown: CancellationToken,
    ) -> Result<Option<ControlPort>, ControlError> {
        let active = server.current();
        let (spec, origin) = spec_of(&active.snapshot);
        let target = ServerControl {
            server: Arc::clone(&server),
            shutdown,
            runtime: tokio::runtime::Handle::try_current().ok(),
        };
        match ControlPort::bind(spec, Box::new(target)) {
            Ok(port) => {
                info!(spec, "control port listening");
                Ok(Some(port))
            }
            Err(BindError::Bind(reason)) => {
                let error = ControlError::Bind {
                    server: active.snapshot.server.id,
                    spec: spec.to_owned(),
                    origin,
                    reason,
                };
                if origin == Origin::Default {
                    warn!(%error, "running without a control port (set server.control_port to choose one)");
                    Ok(None)
                } else {
                    Err(error)
                }
            }
            Err(BindError::Other(e)) => Err(e),
        }
    }

    /// Binds a REP socket at `spec` and answers requests on it against
    /// `target` on a thread of its own.
    ///
    /// An `ipc://` path where another process still answers is refused
    /// (ZeroMQ would take the path over, leaving that server's control
    /// port unreachable); a stale socket file is replaced.
    pub fn bind(spec: &str, target: Box<dyn Controlled + Send>) -> Result<ControlPort, BindError> {
        if let Some(path) = spec.strip_prefix("ipc://") {
            if path != "*" && UnixStream::connect(path).is_ok() {
                return Err(BindError::Bind(format!(
                    "another process is listening at {path:?}"
                )));
            }
            // Mongrel2's default `run/control` needs its `run/`, as a pid
            // file's directory is made: a missing directory is not a
            // reason to go without a control port.
            if let Some(dir) = std::path::Path::new(path)
                .parent()
                .filter(|d| path != "*" && !d.as_os_str().is_empty())
            {
                let _ = std::fs::create_dir_all(dir);
            }
            crate::link::check_ipc_endpoint(spec).map_err(BindError::Bind)?;
        }
        let context = zmq::Context::new();
        let rep = context.socket(zmq::REP)?;
        rep.set_linger(LINGER_MS)?;
        rep.set_sndhwm(HWM)?;
        rep.set_rcvhwm(HWM)?;
        rep.set_maxmsgsize(MAX_REQUEST)?;
        rep.bind(spec).map_err(|e| BindError::Bind(e.to_string()))?;
        let wake = context.socket(zmq::PAIR)?;
        wake.set_linger(0)?;
        wake.bind(STOP_ENDPOINT)?;
        let stop = context.socket(zmq::PAIR)?;
        stop.set_linger(0)?;
        stop.connect(STOP_ENDPOINT)?;
        // ZeroMQ leaves an `ipc://` socket file behind; it goes with the
        // socket, so a client finds no file rather than a dead one.
        let socket_file = spec
            .strip_prefix("ipc://")
            .filter(|path| *path != "*")
            .map(std::path::PathBuf::from);
        let thread = std::thread::Builder::new()
            .name("kennel-control".into())
            .spawn(move || {
                answer(&rep, &wake, &*target);
                drop(rep);
                if let Some(path) = socket_file {
                    let _ = std::fs::remove_file(path);
                }
            })
            .map_err(|e| BindError::Other(e.into()))?;
        Ok(ControlPort {
            stop,
            thread: Some(thread),
            spec: spec.to_owned(),
            _context: context,
        })
    }

    /// The spec it is bound at.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// Stops the thread (after the request it is answering, if any) and
    /// waits for it; the socket is closed (a queued reply given
    /// [`LINGER_MS`] to leave) and an `ipc://` socket file removed.
    /// Blocking.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(thread) = self.thread.take() {
            // A thread that already ended (`control_stop`) has closed its
            // end: the message then goes nowhere, which is fine.
            let _ = self.stop.send(&b""[..], zmq::DONTWAIT);
            let _ = thread.join();
        }
    }
}

impl Drop for ControlPort {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Why [`ControlPort::bind`] failed.
#[derive(Debug)]
pub enum BindError {
    /// The spec could not be bound, and why.
    Bind(String),
    /// Anything else.
    Other(ControlError),
}

impl From<zmq::Error> for BindError {
    fn from(e: zmq::Error) -> Self {
        BindError::Other(ControlError::Zmq(e))
    }
}

/// The control thread: answers each request on `rep` until `control_stop`
/// or a message on `stop`.
fn answer(rep: &zmq::Socket, stop: &zmq::Socket, target: &dyn Controlled) {
    loop {
        let (request, stopping) = {
            let mut items = [
                rep.as_poll_item(zmq::POLLIN),
                stop.as_poll_item(zmq::POLLIN),
            ];
            match zmq::poll(&mut items, -1) {
                Ok(_) => {}
                Err(zmq::Error::EINTR) => continue,
                Err(e) => {
                    warn!(error = %e, "control port: poll failed; stopping it");
                    return;
                }
            }
            (items[0].is_readable(), items[1].is_readable())
        };
        if stopping {
            debug!("control port stopping");
            return;
        }
        if !request {
            continue;
        }
        // A REQ client sends one frame; should a peer send several, the
        // first is the request (REP must read them all before replying).
        let frames = match rep.recv_multipart(zmq::DONTWAIT) {
            Ok(frames) => frames,
            Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => continue,
            Err(e) => {
                warn!(error = %e, "control port: receive failed; stopping it");
                return;
            }
        };
        let request = frames.first().map_or(&[][..], Vec::as_slice);
        let answer = execute(request, target);
        debug!(
            request = %String::from_utf8_lossy(request),
            reply = %String::from_utf8_lossy(&answer.reply),
            "control port"
        );
        if let Err(e) = rep.send(answer.reply, 0) {
            warn!(error = %e, "control port: cannot send a reply");
        }
        if answer.stop {
            info!("control port stopped (control_stop)");
            return;
        }
    }
}

/// The running server, as the commands see it.
struct ServerControl {
    server: Arc<Server>,
    shutdown: CancellationToken,
    /// The server's runtime, for its worker count.
    runtime: Option<tokio::runtime::Handle>,
}

impl Controlled for ServerControl {
    fn info(&self) -> Info {
        let active = self.server.current();
        let server = &active.snapshot.server;
        Info {
            port: server.port,
            bind_addr: server.bind_addr.clone(),
            uuid: server.uuid.clone(),
            chroot: server.chroot.clone(),
            access_log: server.access_log.clone(),
            error_log: server.error_log.clone(),
            pid_file: server.pid_file.clone(),
            default_hostname: server.default_host.clone(),
        }
    }

    fn connections(&self) -> Vec<Row> {
        self.server.roster().rows()
    }

    /// The accept loop, one row per handler link of the current config,
    /// this control port, the alarm driver (Mongrel2's `ticker`: idle
    /// deadlines) and the runtime that polls every socket (as libtask's
    /// `fdtask`, the one `system` row).
    fn tasks(&self) -> Vec<Task> {
        let draining = self.shutdown.is_cancelled();
        let mut rows: Vec<(bool, String, String, &'static str)> = vec![(
            false,
            "SERVER".into(),
            if draining { "draining" } else { "read fd" }.into(),
            if draining { "exiting" } else { "idle" },
        )];
        for link in self.server.current().links.iter() {
            let up = link.is_up();
            rows.push((
                false,
                "Handler_task".into(),
                if up { "read handler" } else { "down" }.into(),
                if up { "idle" } else { "exiting" },
            ));
        }
        rows.push((false, "control".into(), "replying".into(), "running"));
        rows.push((false, "ticker".into(), "waiting".into(), "idle"));
        if let Some(runtime) = &self.runtime {
            let workers = runtime.metrics().num_workers();
            rows.push((
                true,
                "runtime".into(),
                format!("{workers} workers"),
                "ready",
            ));
        }
        rows.into_iter()
            .zip(1..)
            .map(|((system, name, state, status), id)| Task {
                id,
                system,
                name,
                state,
                status,
            })
            .collect()
    }

    fn kill(&self, id: u64) -> bool {
        self.server.registry().deliver(id, Outgoing::Kill).is_some()
    }

    fn signal(&self, signal: Signal) -> bool {
        info!(%signal, "control port: signalling the server");
        nix::sys::signal::kill(nix::unistd::Pid::this(), signal).is_ok()
    }

    fn unix_time(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests;
