//! The handler library: connect to a server's sockets, receive requests,
//! send replies. Blocking; one [`Connection`] per thread (ZeroMQ sockets are
//! not thread-safe, so `Connection` is `Send` but not `Sync`).
//!
//! A handler connects a PULL socket to the handler's `send_spec` (the server
//! PUSHes requests there, round-robin over every connected handler process)
//! and a publishing socket to its `recv_spec` (the server SUBscribes to
//! replies whose first bytes are the handler's `recv_ident`). The library
//! publishes on an XPUB rather than a PUB socket — the same on the wire —
//! so that its first reply can wait for the server's subscription instead
//! of being dropped (see [`SUBSCRIPTION_WAIT`]). Replies are addressed
//! by the request's sender and connection id; see [`crate::reply`].
//!
//! ```no_run
//! use kennel_handler::client::Connection;
//!
//! fn main() -> Result<(), kennel_handler::client::Error> {
//!     let conn = Connection::connect("tcp://127.0.0.1:9997", "tcp://127.0.0.1:9996")?;
//!     loop {
//!         let req = conn.recv()?;
//!         if req.is_disconnect() {
//!             continue;
//!         }
//!         let body = format!("hello from {}", req.path_str());
//!         conn.reply_http(&req, 200, &[("Content-Type", "text/plain")], body.as_bytes())?;
//!         if req.should_close() {
//!             conn.close(&req)?;
//!         }
//!     }
//! }
//! ```

use std::fmt;
use std::time::Duration;

use crate::reply;
use crate::request::{Request, RequestError};
use crate::tnetstring::Value;
use crate::websocket::{self, Opcode};

/// How long a closing socket may keep trying to send queued replies: long
/// enough for a reply sent just before exit to leave, short enough that a
/// handler whose server is gone still exits promptly.
pub const LINGER: Duration = Duration::from_secs(1);

/// The most queued messages per socket before sending blocks (ZeroMQ's
/// default, stated on purpose).
pub const HIGH_WATER_MARK: i32 = 1000;

/// How long the first reply waits for the server's subscription to reach
/// this handler. A PUB socket silently drops what it sends before a
/// subscriber's subscription arrives (ZeroMQ's "slow joiner"), which would
/// lose the reply to the very first request; the library's reply socket is
/// an XPUB, which sees subscriptions, so it can wait for one instead.
pub const SUBSCRIPTION_WAIT: Duration = Duration::from_secs(2);

/// An error from the handler library.
///
/// Opaque on purpose; ask it what kind it is with the `is_*` predicates.
pub struct Error {
    kind: ErrorKind,
}

enum ErrorKind {
    Zmq(zmq::Error),
    Request(RequestError),
    Usage(String),
}

impl Error {
    /// A ZeroMQ socket error (bad endpoint, context terminated, …).
    pub fn is_socket(&self) -> bool {
        matches!(self.kind, ErrorKind::Zmq(_))
    }

    /// A message from the server that is not a valid request message.
    pub fn is_protocol(&self) -> bool {
        matches!(self.kind, ErrorKind::Request(_))
    }

    /// A call with arguments the protocol cannot carry (no ids, too many ids,
    /// a UUID with bytes outside `[A-Za-z0-9-]`).
    pub fn is_usage(&self) -> bool {
        matches!(self.kind, ErrorKind::Usage(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Zmq(e) => write!(f, "zeromq: {e}"),
            ErrorKind::Request(e) => e.fmt(f),
            ErrorKind::Usage(e) => f.write_str(e),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Zmq(e) => Some(e),
            ErrorKind::Request(e) => Some(e),
            ErrorKind::Usage(_) => None,
        }
    }
}

impl From<zmq::Error> for Error {
    fn from(e: zmq::Error) -> Self {
        Error {
            kind: ErrorKind::Zmq(e),
        }
    }
}

fn usage(msg: impl Into<String>) -> Error {
    Error {
        kind: ErrorKind::Usage(msg.into()),
    }
}

/// A handler's pair of sockets to one server (or several servers that share
/// the same `send_spec`/`recv_spec`).
pub struct Connection {
    _context: zmq::Context,
    requests: zmq::Socket,
    replies: zmq::Socket,
    max_targets: usize,
    buf: std::cell::RefCell<Vec<u8>>,
    subscribed: std::cell::Cell<bool>,
}

impl Connection {
    /// Connects to a server's `send_spec` (requests) and `recv_spec`
    /// (replies), e.g. `tcp://127.0.0.1:9997` and `tcp://127.0.0.1:9996`.
    pub fn connect(send_spec: &str, recv_spec: &str) -> Result<Connection, Error> {
        Self::connect_in(&zmq::Context::new(), send_spec, recv_spec)
    }

    /// Like [`Connection::connect`], sharing an existing ZeroMQ context.
    pub fn connect_in(
        context: &zmq::Context,
        send_spec: &str,
        recv_spec: &str,
    ) -> Result<Connection, Error> {
        let requests = context.socket(zmq::PULL)?;
        requests.set_linger(0)?;
        requests.set_rcvhwm(HIGH_WATER_MARK)?;
        requests.connect(send_spec)?;
        let replies = context.socket(zmq::XPUB)?;
        replies.set_linger(LINGER.as_millis() as i32)?;
        replies.set_sndhwm(HIGH_WATER_MARK)?;
        replies.connect(recv_spec)?;
        Ok(Connection {
            _context: context.clone(),
            requests,
            replies,
            max_targets: reply::DEFAULT_MAX_TARGETS,
            buf: std::cell::RefCell::new(Vec::new()),
            subscribed: std::cell::Cell::new(false),
        })
    }

    /// Sets how many connection ids one reply frame may name; longer
    /// deliveries are split. Match the server's `limits.handler_targets`
    /// (default 128).
    pub fn set_max_targets(&mut self, max: usize) {
        self.max_targets = max.max(1);
    }

    /// Waits for the next request.
    pub fn recv(&self) -> Result<Request, Error> {
        let msg = self.requests.recv_bytes(0)?;
        Request::parse(&msg).map_err(|e| Error {
            kind: ErrorKind::Request(e),
        })
    }

    /// Waits at most `timeout` for the next request; `Ok(None)` on timeout.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Request>, Error> {
        let ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        if self.requests.poll(zmq::POLLIN, ms)? == 0 {
            return Ok(None);
        }
        self.recv().map(Some)
    }

    /// Sends raw bytes to the request's connection (an HTTP response, a
    /// WebSocket frame, part of a stream). The server writes them verbatim.
    pub fn reply(&self, req: &Request, body: &[u8]) -> Result<(), Error> {
        self.deliver(req.sender(), &[req.conn_id()], body)
    }

    /// Sends an HTTP/1.1 response with a `Content-Length` to the request's
    /// connection. `headers` must not contain `Content-Length`.
    pub fn reply_http(
        &self,
        req: &Request,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), Error> {
        self.reply(req, &http_response(status, headers, body))
    }

    /// Sends one WebSocket frame (FIN set) to the request's connection.
    pub fn reply_websocket(
        &self,
        req: &Request,
        opcode: Opcode,
        payload: &[u8],
    ) -> Result<(), Error> {
        self.reply(req, &websocket::frame(opcode, payload))
    }

    /// Asks the server to close the request's connection after what is
    /// already queued for it is written (an empty reply).
    pub fn close(&self, req: &Request) -> Result<(), Error> {
        self.deliver(req.sender(), &[req.conn_id()], b"")
    }

    /// Sends the same bytes to many connections of the server `uuid`. Ids
    /// beyond the server's target limit are sent in further frames.
    pub fn deliver(&self, uuid: &str, ids: &[u64], body: &[u8]) -> Result<(), Error> {
        check_uuid(uuid)?;
        if ids.is_empty() {
            return Err(usage("deliver: no connection ids"));
        }
        let mut buf = self.buf.borrow_mut();
        for batch in ids.chunks(self.max_targets) {
            buf.clear();
            reply::encode(&mut buf, uuid.as_bytes(), batch, body);
            self.publish(&buf)?;
        }
        Ok(())
    }

    /// Closes many connections of the server `uuid`.
    pub fn deliver_close(&self, uuid: &str, ids: &[u64]) -> Result<(), Error> {
        self.deliver(uuid, ids, b"")
    }

    /// Sends an extended (`X`) reply: `[key, value]` to the given ids, e.g.
    /// key `ctl` with `{"keep-alive": true}`.
    pub fn deliver_extended(
        &self,
        uuid: &str,
        ids: &[u64],
        key: &str,
        value: &Value<'_>,
    ) -> Result<(), Error> {
        check_uuid(uuid)?;
        if ids.is_empty() {
            return Err(usage("deliver_extended: no connection ids"));
        }
        let mut buf = self.buf.borrow_mut();
        for batch in ids.chunks(self.max_targets) {
            buf.clear();
            reply::encode_extended(&mut buf, uuid.as_bytes(), batch, key.as_bytes(), value);
            self.publish(&buf)?;
        }
        Ok(())
    }

    /// Sends one reply frame, first making sure a server has subscribed
    /// (see [`SUBSCRIPTION_WAIT`]) and reading the subscription notices the
    /// XPUB socket queues.
    fn publish(&self, frame: &[u8]) -> Result<(), Error> {
        if !self.subscribed.get() {
            let deadline = std::time::Instant::now() + SUBSCRIPTION_WAIT;
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if self.replies.poll(zmq::POLLIN, left.as_millis() as i64)? == 0 {
                    break;
                }
                if self.read_subscriptions()? {
                    self.subscribed.set(true);
                    break;
                }
            }
        } else {
            self.read_subscriptions()?;
        }
        self.replies.send(frame, 0)?;
        Ok(())
    }

    /// Reads queued (un)subscription notices; whether one was a subscribe.
    fn read_subscriptions(&self) -> Result<bool, Error> {
        let mut subscribed = false;
        loop {
            match self.replies.recv_bytes(zmq::DONTWAIT) {
                Ok(notice) => subscribed |= notice.first() == Some(&1),
                Err(zmq::Error::EAGAIN) => return Ok(subscribed),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Resets the server's idle timer for the request's connection
    /// (`ctl keep-alive`), for long polls.
    pub fn keep_alive(&self, req: &Request) -> Result<(), Error> {
        let value = Value::Dict(vec![(b"keep-alive", Value::Boolean(true))]);
        self.deliver_extended(req.sender(), &[req.conn_id()], "ctl", &value)
    }

    /// Drops the request's connection at once, with no disconnect notice
    /// back (`ctl cancel`).
    pub fn cancel(&self, req: &Request) -> Result<(), Error> {
        let value = Value::Dict(vec![(b"cancel", Value::Boolean(true))]);
        self.deliver_extended(req.sender(), &[req.conn_id()], "ctl", &value)
    }
}

fn check_uuid(uuid: &str) -> Result<(), Error> {
    if uuid.is_empty() || !uuid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(usage(format!(
            "reply uuid {uuid:?} must be one or more of [A-Za-z0-9-]"
        )));
    }
    Ok(())
}

pub use crate::http::{http_response, reason_phrase};
