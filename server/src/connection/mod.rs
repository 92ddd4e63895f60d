//! The per-connection task: read requests, route them, answer them or hand
//! them to a handler link, and write the responses in request order.
//!
//! A connection is a [`Transport`] (plain TCP, or TLS after a handshake
//! run under the request deadline) plus an
//! explicit protocol state, [`Phase`]: reading requests, finishing (a last
//! response is queued, no more requests are read), waiting for a handler to
//! accept a WebSocket upgrade, and WebSocket. Alongside the phase it keeps
//! the queue of responses it owes ([`responses::Responses`]), so pipelined
//! responses leave in request order whoever makes them.
//!
//! Requests are parsed by [`crate::http`] and routed by [`crate::routing`]
//! on the server's current config ([`crate::server::Active`], loaded once
//! per request, so a reload never changes a request midway), then:
//! - a Dir target is planned by [`crate::dir`] and queued;
//! - a Handler target is handed to its [`crate::link::Link`], which says at
//!   once whether it was sent, held or refused (a `503`); the response will
//!   come through the connection's outbox, verbatim, and its end is found
//!   by following its framing. As in Mongrel2 the server never closes a
//!   handler's connection on its own: an empty reply does;
//! - no route is a 404; a Proxy target is a 502 (not served yet).
//!
//! Deadlines: a request head (and in-memory body) must arrive within
//! `kennel.http.request_timeout_ms`; an idle connection is closed after
//! `kennel.http.keepalive_timeout_ms`, or `limits.min_ping` while it waits
//! for a handler; every write must accept a byte within
//! `kennel.http.write_timeout_ms` and, while it is blocked, at least
//! `limits.min_write_rate` bytes per `limits.tick_timer` seconds. A client
//! is dropped for making no progress, never for the size of one reply.
//!
//! Closing: after a final response that leaves the client possibly still
//! sending (a refusal, a body left unread, bytes read past the last
//! request) Kennel shuts its write side down and reads and discards what
//! the client still sends for a bounded time and byte count before closing
//! (nginx's lingering close), so the client reads the response instead of
//! a reset. After a whole request and nothing more it closes at once.
//!
//! When the connection ends it leaves the registry, and every link it used
//! is sent a disconnect notice. Does not own ZeroMQ, the protocol's bytes,
//! file serving or HTTP parsing.

mod proxied;
mod responses;
mod tally;
mod transport;
mod upload;
mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, warn};

use crate::alarm::{Alarm, Ring};
use crate::config::Target;
use crate::dir::{self, DirRequest};
use crate::http::framing::Outcome;
use crate::http::{self, BodyKind, ChunkedDecoder, Head, HttpError};
use crate::link::{Handoff, LinkRequest};
use crate::registry::{Outbox, Outgoing};
use crate::server::{Active, Counters, Server};

use responses::{Done, Local, Owed, Responses};
pub use transport::{Transport, BYTES_READ, BYTES_WRITTEN};

/// Read buffer growth step: 2 KiB, a typical request head with room to
/// spare (browsers send 0.5–1.5 KiB; a larger head grows the buffer). It
/// is allocated per request and given back when the connection is idle,
/// so it is what a burst of new connections holds at once.
const READ_CHUNK: usize = 2048;

/// The `DOWNLOAD_CREDITS` a handler is first given with
/// `download.flow_control = 1`: Mongrel2's `MAX_CREDITS`, 100 KiB.
const DOWNLOAD_CREDITS: &[u8] = b"102400";

/// Most bytes read and discarded while lingering before the close: 1 MiB.
/// Enough for the rest of any refused head and a modest refused body; a
/// client still sending after that gets a reset.
pub const LINGER_BYTES: usize = 1024 * 1024;

/// What the client's bytes mean now.
#[derive(Debug)]
enum Phase {
    /// Reading requests; `started` is when the first byte of the request
    /// being received arrived (its deadline runs from there).
    Http { started: Option<Instant> },
    /// A last response is queued (an error, `Connection: close`): no more
    /// requests are read.
    Finishing,
    /// A WebSocket upgrade went to the handler; waiting for its `101`.
    /// Nothing the client sends is read as a request meanwhile.
    Upgrading(Box<websocket::WebSocket>),
    /// WebSocket frames: each message goes to the handler.
    WebSocket(Box<websocket::WebSocket>),
}

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Kennel finished it (a final response, a timeout): shut the write
    /// side down and linger.
    Linger,
    /// The handler closed it (an empty reply): linger too, but the handler
    /// is not sent a disconnect notice (it knows; Mongrel2 sends none).
    HandlerClosed,
    /// Nothing is owed or the client went away (EOF, an error, an idle
    /// timeout, shutdown): just close.
    Close,
    /// Drop it now: `ctl cancel` (no disconnect notice), an outbox
    /// overflow, a write that made no progress.
    Abort {
        /// `ctl cancel`: the handler asked; it is not told.
        cancelled: bool,
    },
}

/// Why a write or read stopped.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    /// The client went away or the socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// A write accepted too little for too long.
    #[error("the client does not read its response")]
    WriteTimeout,
    /// The outbox says to stop now (cancel or overflow).
    #[error("aborted")]
    Aborted {
        /// By `ctl cancel`.
        cancelled: bool,
    },
}

impl ConnError {
    fn end(&self) -> End {
        match self {
            ConnError::Io(_) => End::Close,
            ConnError::WriteTimeout => End::Abort { cancelled: false },
            ConnError::Aborted { cancelled } => End::Abort {
                cancelled: *cancelled,
            },
        }
    }
}

/// What a wait returned.
enum Event {
    /// Bytes read into the buffer (0: the client closed).
    Read(usize),
    /// Something was queued in the outbox.
    Outbox,
    /// The request, idle or handler deadline passed.
    Timeout,
    /// The server is shutting down and this connection is idle.
    Shutdown,
}

/// The client's address, compact: an IP and a port (20 bytes where a
/// `SocketAddr` takes 32; an idle connection is mostly its fields).
#[derive(Debug, Clone, Copy)]
struct Peer {
    ip: std::net::IpAddr,
    port: u16,
}

impl Peer {
    fn addr(self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.addr().fmt(f)
    }
}

/// The write deadline: a write must accept a byte within `stall`, and
/// while it is blocked, `min_bytes` per `window` (`limits.min_write_rate`
/// × `limits.tick_timer`; 0 turns the rate check off).
#[derive(Debug, Clone, Copy)]
struct WriteDeadline {
    stall: Duration,
    window: Duration,
    min_bytes: u64,
}

/// Progress of one write call against its [`WriteDeadline`].
#[derive(Debug, Clone, Copy)]
struct Progress {
    rule: WriteDeadline,
    last_byte: Instant,
    window_start: Instant,
    window_bytes: u64,
}

impl Progress {
    fn start(rule: WriteDeadline) -> Progress {
        let now = Instant::now();
        Progress {
            rule,
            last_byte: now,
            window_start: now,
            window_bytes: 0,
        }
    }

    fn wrote(&mut self, n: usize) {
        self.last_byte = Instant::now();
        self.window_bytes += n as u64;
    }

    /// When to look again if the write stays blocked.
    fn deadline(&self) -> Instant {
        let stall = self.last_byte + self.rule.stall;
        if self.rule.min_bytes == 0 {
            stall
        } else {
            stall.min(self.window_start + self.rule.window)
        }
    }

    /// At [`deadline`](Self::deadline): whether the client is too slow;
    /// otherwise a new rate window starts.
    fn expired(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.last_byte + self.rule.stall {
            return true;
        }
        if self.rule.min_bytes > 0 && now >= self.window_start + self.rule.window {
            if self.window_bytes < self.rule.min_bytes {
                return true;
            }
            self.window_start = now;
            self.window_bytes = 0;
        }
        false
    }
}

/// The read deadline of a long body (an upload, a proxied request): a
/// byte within `kennel.http.request_timeout_ms`, and at least
/// `limits.min_read_rate` × `limits.tick_timer` bytes per tick.
#[derive(Debug)]
pub(super) struct ReadProgress {
    stall: Duration,
    window: Duration,
    min_bytes: u64,
    last_byte: Instant,
    window_start: Instant,
    window_bytes: u64,
}

impl ReadProgress {
    fn new(settings: &crate::config::Settings) -> Self {
        let tick = settings.limits_tick_timer.max(1);
        let now = Instant::now();
        ReadProgress {
            stall: Duration::from_millis(settings.kennel_http_request_timeout_ms),
            window: Duration::from_secs(tick),
            min_bytes: settings.limits_min_read_rate.saturating_mul(tick),
            last_byte: now,
            window_start: now,
            window_bytes: 0,
        }
    }

    pub(super) fn read(&mut self, n: usize) {
        self.last_byte = Instant::now();
        self.window_bytes += n as u64;
    }

    pub(super) fn deadline(&self) -> Instant {
        let stall = self.last_byte + self.stall;
        if self.min_bytes == 0 {
            stall
        } else {
            stall.min(self.window_start + self.window)
        }
    }

    /// At the deadline: whether the client is too slow (else a new window).
    pub(super) fn expired(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.last_byte + self.stall {
            return true;
        }
        if self.min_bytes > 0 && now >= self.window_start + self.window {
            if self.window_bytes < self.min_bytes {
                return true;
            }
            self.window_start = now;
            self.window_bytes = 0;
        }
        false
    }

    /// Waiting for credits is the handler's time, not the client's.
    pub(super) fn pause_ended(&mut self) {
        let now = Instant::now();
        self.last_byte = now;
        self.window_start = now;
        self.window_bytes = 0;
    }
}

/// Serves one client until it or the server is done.
pub fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    server: Arc<Server>,
) -> impl std::future::Future<Output = ()> + Send {
    // Built here, not inside the async block: the block then holds the
    // connection once, with no copy of its arguments beside it.
    let _ = stream.set_nodelay(true);
    let counters = server.counters();
    Counters::bump(&counters.connections_accepted);
    Counters::bump(&counters.connections_open);
    let active = server.current();
    let mut conn = Connection {
        transport: Transport::Plain(stream),
        peer: Peer {
            ip: peer.ip(),
            port: peer.port(),
        },
        server,
        active,
        buf: BytesMut::new(),
        phase: Phase::Http { started: None },
        responses: Responses::default(),
        outbox: None,
        idle_deadline: Instant::now(),
        alarm: Alarm::default(),
        credits_announced: false,
        unread_input: false,
        request_started: Instant::now(),
        route: None,
    };
    conn.enter_roster();
    conn.touch();
    async move {
        // A failed handshake ends here; dropping the connection counts it
        // out (Drop), as for every other end.
        if conn.active.tls.is_some() && !Box::pin(conn.handshake()).await {
            return;
        }
        let end = conn.run().await;
        // Boxed: closing (a last write, lingering) is not part of an idle
        // connection's future.
        Box::pin(conn.finish(end)).await;
    }
}

/// The server keys a request carries after the others: `DOWNLOAD_CREDITS`
/// on the first request with flow control, `PEER_CERT_SHA1` over TLS with
/// a client certificate. Written into `keys`; the used part is returned.
fn server_keys<'a>(
    keys: &'a mut [(&'a [u8], &'a [u8]); 2],
    credits: Option<&'a [u8]>,
    cert: Option<&'a [u8; 40]>,
) -> &'a [(&'a [u8], &'a [u8])] {
    let mut n = 0;
    if let Some(credits) = credits {
        keys[n] = (b"DOWNLOAD_CREDITS", credits);
        n += 1;
    }
    if let Some(cert) = cert {
        keys[n] = (b"PEER_CERT_SHA1", &cert[..]);
        n += 1;
    }
    &keys[..n]
}

/// A boxed step of a request: routing, files, bodies, writing. Boxed so an
/// idle connection's future does not carry these large state machines.
type Step<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Option<End>, ConnError>> + Send + 'a>,
>;

/// What the buffer held.
enum Parsed<'a> {
    /// A request, being handled.
    Request(Step<'a>),
    /// A refusal was queued: write it.
    Refused,
    /// Not a whole head (or not now).
    Nothing,
}

struct Connection {
    transport: Transport,
    peer: Peer,
    server: Arc<Server>,
    /// The config the current request is served from (refreshed per
    /// request, so a reload applies from the next one).
    active: Arc<Active>,
    buf: BytesMut,
    phase: Phase,
    responses: Responses,
    /// Set once the connection talked to a handler: its registry entry.
    outbox: Option<Arc<Outbox>>,
    /// When an idle connection (or one waiting for a handler) is closed.
    idle_deadline: Instant,
    /// Its place in the server's alarms while it waits.
    alarm: Alarm,
    /// `download.flow_control`: `DOWNLOAD_CREDITS` went with a request.
    credits_announced: bool,
    /// The connection ends while the client may still be sending (a
    /// refusal, a body left unread): linger before the close.
    unread_input: bool,
    /// When the current request's head was read.
    request_started: Instant,
    /// The statistics of the route answering the current request.
    route: Option<Arc<crate::metrics::RouteStats>>,
}

impl Connection {
    /// The TLS handshake of a `use_ssl` server's connection, under the
    /// request deadline; false if it failed (logged at debug: a client's
    /// fault, or a port scanner's).
    async fn handshake(&mut self) -> bool {
        let Some(config) = self.active.tls.clone() else {
            return true;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.transport);
        let Transport::Plain(stream) = std::mem::replace(&mut self.transport, Transport::Gone(fd))
        else {
            return false;
        };
        let deadline =
            Duration::from_millis(self.active.snapshot.settings.kennel_http_request_timeout_ms);
        let counters = self.server.counters();
        match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => {
                Counters::bump(&counters.tls_handshakes);
                let peer_cert_sha1 = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|cert| crate::tls::fingerprint(cert));
                self.transport = Transport::Tls(Box::new(transport::Tls {
                    stream,
                    peer_cert_sha1,
                }));
                true
            }
            Ok(Err(e)) => {
                Counters::bump(&counters.tls_handshake_failures);
                debug!(peer = %self.peer, error = %e, "TLS handshake failed");
                false
            }
            Err(_) => {
                Counters::bump(&counters.tls_handshake_failures);
                debug!(peer = %self.peer, "TLS handshake timed out");
                false
            }
        }
    }

    /// The write deadline the settings ask for.
    fn write_deadline(&self) -> WriteDeadline {
        let settings = &self.active.snapshot.settings;
        let tick = settings.limits_tick_timer.max(1);
        WriteDeadline {
            stall: Duration::from_millis(settings.kennel_http_write_timeout_ms),
            window: Duration::from_secs(tick),
            min_bytes: settings.limits_min_write_rate.saturating_mul(tick),
        }
    }

    async fn run(&mut self) -> End {
        loop {
            // Boxed: writing a response (files, handler streams) is a large
            // state machine an idle connection should not carry.
            match Box::pin(self.write_ready()).await {
                Ok(None) => {}
                Ok(Some(end)) => return end,
                Err(e) => {
                    debug!(peer = %self.peer, error = %e, "connection ended while writing");
                    return e.end();
                }
            }
            if matches!(self.phase, Phase::WebSocket(_)) && !self.buf.is_empty() {
                match Box::pin(self.read_frames()).await {
                    Ok(None) => {}
                    Ok(Some(end)) => return end,
                    Err(e) => return e.end(),
                }
            }
            let handled = match self.next_request() {
                Parsed::Request(step) => Some(step.await),
                Parsed::Refused => continue,
                Parsed::Nothing => None,
            };
            match handled {
                Some(Ok(None)) => continue,
                Some(Ok(Some(end))) => return end,
                Some(Err(e)) => {
                    debug!(peer = %self.peer, error = %e, "connection ended reading a request");
                    return e.end();
                }
                None => {}
            }
            if self.buf.is_empty() {
                // Give an idle connection's buffer back.
                self.buf = BytesMut::new();
            }
            // One hand-written poll, made in a block so the idle future holds
            // nothing but it.
            let event = {
                let deadline = self.deadline();
                let idle = self.buf.is_empty() && self.responses.is_empty();
                let read = self.may_read();
                let conn = &mut *self;
                std::future::poll_fn(move |cx| conn.poll_wait(deadline, idle, read, cx))
            }
            .await;
            match event {
                Ok(Event::Read(0)) => return End::Close,
                Ok(Event::Read(_) | Event::Outbox) => {}
                Ok(Event::Timeout) => return self.timed_out(),
                Ok(Event::Shutdown) => return End::Close,
                Err(e) => {
                    debug!(peer = %self.peer, error = %e, "connection ended");
                    return e.end();
                }
            }
        }
    }

    /// Parses the next request in the buffer, if one may be read now, and
    /// starts handling it. Synchronous, so the parsed head is never part of
    /// the run loop's future.
    fn next_request(&mut self) -> Parsed<'_> {
        if !self.may_parse() {
            return Parsed::Nothing;
        }
        self.server.refresh(&mut self.active);
        match http::parse_head(&mut self.buf, &self.active.limits) {
            Ok(Some(head)) => Parsed::Request(Box::pin(self.handle(head))),
            Ok(None) => {
                self.request_started();
                Parsed::Nothing
            }
            Err(e) => {
                debug!(peer = %self.peer, error = %e, "bad request");
                self.refuse(e.status());
                Parsed::Refused
            }
        }
    }

    /// Whether the buffer may be parsed for another request now.
    fn may_parse(&self) -> bool {
        let max = self.active.snapshot.settings.kennel_http_max_pipelined;
        matches!(self.phase, Phase::Http { .. })
            && !self.buf.is_empty()
            && self.responses.len() < max
    }

    /// Whether the client's socket should be read now. While the pipeline
    /// is full the buffer may still fill up to one head, so a client that
    /// goes away is noticed; beyond that TCP holds the client back.
    fn may_read(&self) -> bool {
        match self.phase {
            Phase::Http { .. } => {
                let full =
                    self.responses.len() >= self.active.snapshot.settings.kennel_http_max_pipelined;
                !full || self.buf.len() < self.active.limits.max_head
            }
            Phase::Finishing => false,
            // Frames a client sends before the 101 wait, within bounds.
            Phase::Upgrading(_) => self.buf.len() < self.active.limits.max_head,
            Phase::WebSocket(_) => true,
        }
    }

    fn request_started(&mut self) {
        if let Phase::Http {
            started: started @ None,
        } = &mut self.phase
        {
            *started = Some(Instant::now());
        }
    }

    /// Queues a refusal that ends the connection.
    fn refuse(&mut self, status: u16) {
        self.unread_input = true;
        self.responses.push(Owed::Local {
            response: Local::Bytes(http::canned(status, true)),
            close: true,
        });
        self.phase = Phase::Finishing;
    }

    /// Resets the idle timer: `limits.min_ping` while a handler owes a
    /// response (long polls), the keep-alive timeout otherwise.
    fn touch(&mut self) {
        let settings = &self.active.snapshot.settings;
        let idle = if self.responses.awaits_handler() {
            match settings.limits_min_ping {
                // Off, as in Mongrel2: a year is as good as never.
                0 => Duration::from_secs(365 * 24 * 3600),
                secs => Duration::from_secs(secs),
            }
        } else {
            Duration::from_millis(settings.kennel_http_keepalive_timeout_ms)
        };
        self.idle_deadline = Instant::now() + idle;
        self.note_active();
    }

    /// The deadline that ends the current wait.
    fn deadline(&self) -> Instant {
        match self.phase {
            Phase::Http {
                started: Some(started),
            } => {
                let ms = self.active.snapshot.settings.kennel_http_request_timeout_ms;
                started + Duration::from_millis(ms)
            }
            _ => self.idle_deadline,
        }
    }

    fn timed_out(&mut self) -> End {
        if let Phase::Http { started: Some(_) } = self.phase {
            debug!(peer = %self.peer, "request timeout");
            // Written by `finish` if nothing is owed before it.
            self.refuse(408);
            return End::Linger;
        }
        debug!(peer = %self.peer, "idle timeout");
        End::Close
    }

    /// Polls for bytes from the client, something in the outbox, a
    /// timeout or shutdown. The deadline and the shutdown call come from the
    /// server's [`crate::alarm::Alarms`], and the outbox and the socket keep
    /// the waker themselves, so an idle connection's future holds no timer
    /// or waiter of its own.
    fn poll_wait(
        &mut self,
        deadline: Instant,
        idle: bool,
        read: bool,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Result<Event, ConnError>> {
        if let Some(outbox) = &self.outbox {
            if outbox.poll_ready(cx).is_ready() {
                return Poll::Ready(Ok(Event::Outbox));
            }
        }
        match self
            .server
            .alarms()
            .poll(&mut self.alarm, deadline, idle, cx)
        {
            Poll::Ready(Ring::Deadline) => return Poll::Ready(Ok(Event::Timeout)),
            Poll::Ready(Ring::Shutdown) => return Poll::Ready(Ok(Event::Shutdown)),
            Poll::Pending => {}
        }
        if !read {
            return Poll::Pending;
        }
        // `poll_read_ready` first: it parks the waker in the socket's own
        // slot, and the buffer is only allocated once there is something
        // to read. Then `poll_read_buf` (not `try_read_buf`): a read that
        // does not fill the buffer tells tokio the socket is drained, which
        // saves the second `recv` that would only say EAGAIN.
        if let Err(e) = std::task::ready!(self.transport.poll_read_ready(cx)) {
            return Poll::Ready(Err(e.into()));
        }
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(READ_CHUNK);
        }
        let read = tokio_util::io::poll_read_buf(
            std::pin::Pin::new(&mut self.transport),
            cx,
            &mut self.buf,
        );
        if read.is_pending() && self.buf.is_empty() {
            // Readiness was stale: stay idle without a buffer.
            self.buf = BytesMut::new();
        }
        if let Poll::Ready(Ok(n)) = read {
            self.note_read(n);
        }
        read.map(|r| r.map(Event::Read).map_err(Into::into))
    }

    /// Reads more bytes into the buffer for a request in progress; an error
    /// if the client goes away or the request deadline passes.
    async fn read_more(&mut self) -> Result<(), ReadError> {
        let deadline = self.deadline();
        loop {
            tokio::select! {
                r = std::future::poll_fn(|cx| self.transport.poll_read_ready(cx)) => {
                    r.map_err(ReadError::Io)?;
                    if self.buf.capacity() - self.buf.len() < 1024 {
                        self.buf.reserve(READ_CHUNK.max(self.buf.len()));
                    }
                    match std::future::poll_fn(|cx| {
                        match tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut self.transport), cx, &mut self.buf) {
                            std::task::Poll::Pending => std::task::Poll::Ready(Err(std::io::ErrorKind::WouldBlock.into())),
                            ready => ready,
                        }
                    }).await {
                        Ok(0) => return Err(ReadError::Io(std::io::ErrorKind::UnexpectedEof.into())),
                        Ok(n) => {
                            self.note_read(n);
                            return Ok(());
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(ReadError::Io(e)),
                    }
                }
                _ = sleep_until(deadline) => return Err(ReadError::Timeout),
            }
        }
    }

    /// Reads the request's body (up to `max` bytes) into memory.
    async fn read_body(&mut self, kind: BodyKind, max: usize) -> Result<Bytes, ReadError> {
        match kind {
            BodyKind::None => Ok(Bytes::new()),
            BodyKind::Length(n) => {
                if n > max as u64 {
                    return Err(ReadError::TooLarge);
                }
                let n = n as usize;
                while self.buf.len() < n {
                    self.read_more().await?;
                }
                Ok(self.buf.split_to(n).freeze())
            }
            BodyKind::Chunked => {
                let mut decoder = ChunkedDecoder::new(max as u64);
                let mut body = BytesMut::new();
                loop {
                    match decoder.decode(&mut self.buf, &mut body) {
                        Ok(true) => return Ok(body.freeze()),
                        Ok(false) => self.read_more().await?,
                        Err(e) => return Err(ReadError::Http(e)),
                    }
                }
            }
        }
    }

    /// Reads and drops the body so the next request can be parsed; `false`
    /// if it could not be (too large, malformed, or the client expects a
    /// `100 Continue` first), in which case the connection must close.
    async fn discard_body(&mut self, head: &Head) -> Result<bool, ConnError> {
        if head.body() == BodyKind::None {
            return Ok(true);
        }
        if head.expects_continue() {
            return Ok(false);
        }
        let max = self.active.snapshot.settings.limits_content_length;
        match self.read_body(head.body(), max).await {
            Ok(_) => Ok(true),
            Err(ReadError::Io(e)) => Err(e.into()),
            Err(_) => Ok(false),
        }
    }

    /// Routes one request and queues (or hands over) its response; `Some`
    /// when the connection must end now.
    async fn handle(&mut self, head: Head) -> Result<Option<End>, ConnError> {
        Counters::bump(&self.server.counters().requests);
        self.note_kind(crate::roster::Kind::Http);
        if let Phase::Http { started } = &mut self.phase {
            *started = None;
        }
        let active = Arc::clone(&self.active);
        let snapshot = &active.snapshot;
        let host_index = head
            .host()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| snapshot.host_table.lookup(h))
            .copied()
            .unwrap_or(snapshot.default_host);
        let host = &snapshot.hosts[host_index];
        let found = host.routes.lookup(head.path());
        self.request_started = Instant::now();
        self.route = Some(Arc::clone(
            active.route_stats(host_index, found.as_ref().map(|r| r.index)),
        ));
        let result = match found {
            None => self.answer_without_body(&head, 404).await.map(|()| None),
            Some(route) => match *route.target {
                Target::Handler(i) => self
                    .dispatch(&head, &active, i, route.key)
                    .await
                    .map(|()| None),
                Target::Dir(i) => self
                    .serve_dir(&head, &active, i, route.prefix)
                    .await
                    .map(|()| None),
                // Boxed: only proxied requests carry the HTTP client's
                // state machine.
                Target::Proxy(i) => Box::pin(self.proxy(&head, &active, i)).await,
            },
        };
        self.touch();
        result
    }

    /// Skips the request's body and queues a canned status.
    async fn answer_without_body(&mut self, head: &Head, status: u16) -> Result<(), ConnError> {
        let consumed = self.discard_body(head).await?;
        let close = !head.keep_alive() || !consumed;
        self.unread_input |= !consumed;
        self.queue_local(Local::Bytes(http::canned(status, close)), close);
        self.log(head, status, 0);
        Ok(())
    }

    fn queue_local(&mut self, response: Local, close: bool) {
        self.responses.push(Owed::Local { response, close });
        if close {
            self.phase = Phase::Finishing;
        }
    }

    /// Reads the body and hands the request to the handler's link.
    async fn dispatch(
        &mut self,
        head: &Head,
        active: &Active,
        handler: usize,
        pattern: &str,
    ) -> Result<(), ConnError> {
        let settings = &active.snapshot.settings;
        let max = settings.limits_content_length;
        let uploads = upload::enabled(settings);
        if let BodyKind::Length(n) = head.body() {
            if n > max as u64 && !uploads {
                self.refuse(413);
                self.log(head, 413, 0);
                return Ok(());
            }
        }
        let body = match head.body() {
            BodyKind::None => Bytes::new(),
            // Boxed: bodies (and their 100 Continue) are read in a state
            // machine of their own, not carried by every request.
            _ => match Box::pin(self.read_handler_body(head, active, handler, pattern)).await? {
                Some(body) => body,
                None => return Ok(()),
            },
        };
        let outbox = self.register();
        let link = &active.links[handler];
        let announce = self.announce_credits();
        let cert = self.transport.peer_cert_sha1();
        let mut keys = [(&b""[..], &b""[..]); 2];
        let extra = server_keys(&mut keys, announce, cert.as_ref());
        let request = LinkRequest {
            head,
            pattern,
            body: &body,
            peer: self.peer.addr(),
            conn_id: outbox.id(),
            url_scheme: active.url_scheme,
            clobber_forwarded_for: !settings.no_clobber_xff,
            method: None,
            extra,
        };
        outbox.used(link.id());
        let handoff = if websocket::is_upgrade(head) {
            if self.start_websocket(head, link, request) {
                Handoff::Sent
            } else {
                Handoff::Refused(crate::link::Refusal::QueueFull)
            }
        } else {
            link.dispatch(&request)
        };
        let stats = &active.handler_stats[handler];
        match handoff {
            Handoff::Sent | Handoff::Held => {
                let counter = if matches!(handoff, Handoff::Sent) {
                    &stats.sent
                } else {
                    &stats.held
                };
                Counters::bump(counter);
                let done = self.done(head, stats);
                self.responses.push(Owed::handler(head.method(), done));
            }
            Handoff::Refused(why) => {
                debug!(handler = link.handler_id(), reason = %why, "handler link refused a request");
                self.handler_outage(stats, link.handler_id(), &why.to_string());
                let retry = settings.kennel_handler_retry_after;
                self.queue_local(Local::Bytes(http::service_unavailable(retry, false)), false);
                self.log(head, 503, 0);
            }
        }
        Ok(())
    }

    /// Reads a handler request's body: into memory, or down the upload
    /// path when it is too large (then `None`: the upload took care of the
    /// request), or refused (`None` too, the refusal queued).
    async fn read_handler_body(
        &mut self,
        head: &Head,
        active: &Active,
        handler: usize,
        pattern: &str,
    ) -> Result<Option<Bytes>, ConnError> {
        let settings = &active.snapshot.settings;
        let max = settings.limits_content_length;
        let uploads = upload::enabled(settings);
        if head.expects_continue() && self.responses.is_empty() {
            // Only when nothing is owed before it: an interim response
            // must not overtake earlier responses (a client waiting for
            // it sends the body after its own timeout anyway).
            self.write_all(http::CONTINUE).await?;
        }
        let body = match head.body() {
            BodyKind::Length(n) if n > max as u64 => {
                // Boxed: only uploads carry the upload state machine.
                Box::pin(self.upload(
                    head,
                    active,
                    handler,
                    pattern,
                    Bytes::new(),
                    upload::Source::Length(n),
                ))
                .await?;
                return Ok(None);
            }
            BodyKind::Chunked if uploads => match self.read_chunked_or_outgrow(max).await {
                Ok(Ok(body)) => body,
                Ok(Err((first, decoder))) => {
                    Box::pin(self.upload(
                        head,
                        active,
                        handler,
                        pattern,
                        first,
                        upload::chunked_source(decoder),
                    ))
                    .await?;
                    return Ok(None);
                }
                Err(e) => return self.refuse_body(head, e).map(|()| None),
            },
            kind => match self.read_body(kind, max).await {
                Ok(body) => body,
                Err(e) => return self.refuse_body(head, e).map(|()| None),
            },
        };
        Ok(Some(body))
    }

    /// A body that could not be read: the client's fault (its status), or
    /// the socket's (the connection ends).
    fn refuse_body(&mut self, head: &Head, e: ReadError) -> Result<(), ConnError> {
        if let ReadError::Io(e) = e {
            return Err(e.into());
        }
        let status = e.status();
        self.refuse(status);
        self.log(head, status, 0);
        Ok(())
    }

    /// Reads a chunked body into memory while it stays within `max`
    /// decoded bytes; past that, `Err` with what was decoded and the
    /// decoder, for the upload path.
    async fn read_chunked_or_outgrow(
        &mut self,
        max: usize,
    ) -> Result<Result<Bytes, (Bytes, ChunkedDecoder)>, ReadError> {
        let mut decoder = ChunkedDecoder::new(u64::MAX);
        let mut body = BytesMut::new();
        loop {
            match decoder.decode(&mut self.buf, &mut body) {
                Ok(true) if body.len() <= max => return Ok(Ok(body.freeze())),
                Ok(done) => {
                    if body.len() > max {
                        return Ok(Err((body.freeze(), decoder)));
                    }
                    if !done {
                        self.read_more().await?;
                    }
                }
                Err(e) => return Err(ReadError::Http(e)),
            }
        }
    }

    /// `download.flow_control`: the `DOWNLOAD_CREDITS` value for the first
    /// handler request of a connection (Mongrel2's 100 KiB), then `None`.
    fn announce_credits(&mut self) -> Option<&'static [u8]> {
        if !self.active.snapshot.settings.download_flow_control || self.credits_announced {
            return None;
        }
        self.credits_announced = true;
        Some(DOWNLOAD_CREDITS)
    }

    /// This connection's outbox, registering it on first use.
    fn register(&mut self) -> Arc<Outbox> {
        match &self.outbox {
            Some(o) => Arc::clone(o),
            None => {
                let o = self.server.registry().register();
                self.note_id(o.id());
                self.outbox = Some(Arc::clone(&o));
                o
            }
        }
    }

    async fn serve_dir(
        &mut self,
        head: &Head,
        active: &Active,
        index: usize,
        prefix: &str,
    ) -> Result<(), ConnError> {
        let consumed = self.discard_body(head).await?;
        let close = !head.keep_alive() || !consumed;
        self.unread_input |= !consumed;
        let request = DirRequest {
            method: head.method(),
            path: head.path(),
            query: head.query(),
            prefix,
            if_none_match: head.header("if-none-match"),
            if_modified_since: head.header("if-modified-since"),
            if_unmodified_since: head.header("if-unmodified-since"),
            if_match: head.header("if-match"),
            range: head.header("range"),
            if_range: head.header("if-range"),
            close,
        };
        let snapshot = &active.snapshot;
        let response = dir::respond_with(
            self.server.files(),
            &snapshot.dirs[index],
            &snapshot.mimetypes,
            &request,
        )
        .await;
        self.log(head, response.status, response.body.len() as usize);
        self.queue_local(Local::Dir(Box::new(response)), close);
        Ok(())
    }

    /// Writes every response that can be written now, in order: Kennel's
    /// own as they come to the front, a handler's as its bytes arrive.
    /// `Some(end)` when the connection must end.
    async fn write_ready(&mut self) -> Result<Option<End>, ConnError> {
        loop {
            if let Some(Owed::Local { .. }) = self.responses.front() {
                let Some(Owed::Local { response, close }) = self.responses.pop() else {
                    unreachable!("the front was just seen to be local");
                };
                self.write_local(response).await?;
                if close {
                    return Ok(Some(End::Linger));
                }
                continue;
            }
            // The front is a handler's response, or nothing is owed: what
            // the handler sent is next.
            let Some(item) = self.next_item() else {
                return Ok(None);
            };
            match item {
                Outgoing::Data(bytes) => self.write_handler_bytes(bytes).await?,
                Outgoing::Close => return Ok(Some(End::HandlerClosed)),
                Outgoing::Cancel => return Ok(Some(End::Abort { cancelled: true })),
                Outgoing::Kill => return Ok(Some(End::Abort { cancelled: false })),
                Outgoing::Overflow => {
                    Counters::bump(&self.server.counters().outbox_overflows);
                    debug!(peer = %self.peer, "dropping a client that does not read its replies");
                    return Ok(Some(End::Abort { cancelled: false }));
                }
                Outgoing::KeepAlive => self.touch(),
                Outgoing::Credits(_) => {
                    debug!(peer = %self.peer, "ctl credits with no upload streaming; ignored");
                }
                Outgoing::SendFile(path) => {
                    // Boxed: the rare sendfile reply's state machine.
                    if let Some(end) = Box::pin(self.send_handler_file(path)).await? {
                        return Ok(Some(end));
                    }
                }
                Outgoing::Unavailable if matches!(self.phase, Phase::WebSocket(_)) => {
                    return self.websocket_unavailable().await;
                }
                Outgoing::Unavailable => {
                    if let Some(end) = self.handler_unavailable().await? {
                        return Ok(Some(end));
                    }
                }
            }
        }
    }

    /// The next item from the outbox, in order.
    fn next_item(&mut self) -> Option<Outgoing> {
        self.outbox.as_ref()?.pop()
    }

    /// A held request expired: its response is a 503 (closing after it
    /// when the request did not keep the connection alive).
    async fn handler_unavailable(&mut self) -> Result<Option<End>, ConnError> {
        let fresh = matches!(self.responses.front(), Some(Owed::Handler { scanner, .. }) if scanner.is_fresh());
        if !fresh {
            debug!(peer = %self.peer, "a 503 for a request whose response already started; dropped");
            return Ok(None);
        }
        let Some(Owed::Handler {
            done: Some(mut done),
            ..
        }) = self.responses.pop()
        else {
            return Ok(None);
        };
        let close = done.close;
        let response = http::service_unavailable(
            self.active.snapshot.settings.kennel_handler_retry_after,
            close,
        );
        let handler = self
            .outbox
            .as_ref()
            .and_then(|o| o.last_link())
            .and_then(|id| self.server.link(id))
            .map_or(0, |l| l.handler_id());
        self.handler_outage(&done.handler, handler, "no handler process took it in time");
        done.bytes = response.len() as u64;
        self.handler_done(*done, 503, false);
        self.write_all(&response).await?;
        self.touch();
        Ok(close.then_some(End::Linger))
    }

    /// Writes a handler's bytes: the part that belongs to the response at
    /// the front, then (if that response ended inside them) the rest as the
    /// start of the next one, which may have to wait behind Kennel's own.
    async fn write_handler_bytes(&mut self, mut bytes: Bytes) -> Result<(), ConnError> {
        while !bytes.is_empty() {
            let Some(Owed::Handler { scanner, done }) = self.responses.front() else {
                if self.responses.is_empty() {
                    // Owed nothing: a push, written as it comes.
                    let n = bytes.len() as u64;
                    self.write_all_bytes(bytes).await?;
                    self.wrote_handler_bytes(n);
                    return Ok(());
                }
                // Kennel's own response is next: these bytes wait for it.
                if let Some(outbox) = &self.outbox {
                    outbox.unshift(Outgoing::Data(bytes));
                }
                return Ok(());
            };
            let (n, outcome) = scanner.scan(&bytes);
            let part = bytes.split_to(n);
            if let Some(done) = done {
                done.bytes += n as u64;
            }
            match outcome {
                Some(Outcome::Complete { status }) => {
                    self.handler_completed(status);
                    self.websocket_refused();
                }
                Some(Outcome::Upgraded) => {
                    let extensions = scanner.negotiated_extensions();
                    if let Some(done) = done.take() {
                        self.handler_done(*done, 101, true);
                    }
                    self.websocket_accepted(extensions);
                }
                Some(Outcome::UntilClose { .. }) | None => {}
            }
            let n = part.len() as u64;
            self.write_all_bytes(part).await?;
            self.wrote_handler_bytes(n);
            self.touch();
        }
        Ok(())
    }

    /// The `sendfile` extended reply: the file goes out as the next bytes
    /// of the handler's response, by `sendfile(2)` when its framing allows
    /// (a `Content-Length` with room for it, or until close), else read
    /// and scanned like any reply bytes. Off unless the config has the
    /// `sendfile.so` xrequest row. A file that cannot be opened ends the
    /// connection (the handler promised bytes that will not come).
    async fn send_handler_file(&mut self, path: Bytes) -> Result<Option<End>, ConnError> {
        if !self.active.snapshot.sendfile_enabled() {
            warn!(
                peer = %self.peer,
                "a handler sent a sendfile reply, but the config has no sendfile xrequest row; ignored"
            );
            return Ok(None);
        }
        use std::os::unix::ffi::OsStringExt as _;
        let name = std::path::PathBuf::from(std::ffi::OsString::from_vec(path.to_vec()));
        let shown = name.display().to_string();
        let opened = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&name)?;
            let len = file.metadata()?.len();
            Ok::<_, std::io::Error>((file, len))
        })
        .await
        .map_err(std::io::Error::other)?;
        let (file, len) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                warn!(peer = %self.peer, file = %shown, error = %e, "sendfile: cannot open the file");
                return Ok(Some(End::Linger));
            }
        };
        let owed_nothing = self.responses.is_empty();
        let skipped = match self.responses.front() {
            Some(Owed::Handler { scanner, done }) => {
                if let Some(done) = done {
                    done.bytes += len;
                }
                scanner.skip(len)
            }
            _ if owed_nothing => Some(None),
            _ => None,
        };
        match skipped {
            Some(outcome) => {
                self.send_file_range(&file, 0, len).await?;
                match outcome {
                    Some(Outcome::Complete { status }) => {
                        self.handler_completed(status);
                        self.websocket_refused();
                    }
                    Some(Outcome::Upgraded) => self.websocket_accepted(false),
                    _ => {}
                }
                self.wrote_handler_bytes(len);
            }
            None => {
                // Read and scanned like reply bytes.
                let file = Arc::new(file);
                let mut offset = 0;
                while offset < len {
                    let want = usize::try_from(len - offset)
                        .map_or(dir::COPY_CHUNK, |r| r.min(dir::COPY_CHUNK));
                    let reader = Arc::clone(&file);
                    let chunk = tokio::task::spawn_blocking(move || {
                        let mut buf = vec![0; want];
                        let n = std::os::unix::fs::FileExt::read_at(&*reader, &mut buf, offset)?;
                        buf.truncate(n);
                        Ok::<_, std::io::Error>(buf)
                    })
                    .await
                    .map_err(std::io::Error::other)??;
                    if chunk.is_empty() {
                        return Ok(Some(End::Linger));
                    }
                    offset += chunk.len() as u64;
                    self.write_handler_bytes(Bytes::from(chunk)).await?;
                }
            }
        }
        self.touch();
        Ok(None)
    }

    /// `download.flow_control`: tells the link that `n` more bytes of its
    /// reply reached the client (Mongrel2 does this after every write).
    fn wrote_handler_bytes(&self, n: u64) {
        if n == 0 || !self.active.snapshot.settings.download_flow_control {
            return;
        }
        if let Some(outbox) = &self.outbox {
            if let Some(link) = outbox.last_link().and_then(|id| self.server.link(id)) {
                link.credits(outbox.id(), n);
            }
        }
    }

    async fn write_local(&mut self, response: Local) -> Result<(), ConnError> {
        match response {
            Local::Bytes(bytes) => self.write_all(&bytes).await,
            // Boxed: a file's state machine (sendfile, deadlines) is only
            // needed while one is sent.
            Local::Dir(response) => Box::pin(self.send_dir(*response)).await,
        }
    }

    /// Writes a planned static response: the head (with an in-memory body
    /// in the same write), then file ranges with `sendfile(2)` where the
    /// transport allows it.
    async fn send_dir(&mut self, response: dir::Response) -> Result<(), ConnError> {
        match response.body {
            dir::Body::Empty => self.write_all(&response.head).await,
            dir::Body::Bytes(body) => self.write_pair(&response.head, &body).await,
            dir::Body::File { file, parts, .. } => {
                self.write_all(&response.head).await?;
                for part in parts {
                    match part {
                        dir::Part::Bytes(bytes) => self.write_all(&bytes).await?,
                        dir::Part::Range { offset, len } => {
                            self.send_file_range(&file, offset, len).await?
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Sends `len` bytes of `file` from `offset`: `sendfile(2)` in
    /// [`dir::SENDFILE_CHUNK`] calls (yielding between them, so large
    /// responses interleave across connections), under the write deadline.
    async fn send_file_range(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        len: u64,
    ) -> Result<(), ConnError> {
        let mut position = i64::try_from(offset).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "file offset too large")
        })?;
        let mut remaining = len;
        let mut progress = Progress::start(self.write_deadline());
        while remaining > 0 {
            let Some(stream) = self.transport.tcp() else {
                return self.copy_file_range(file, position as u64, remaining).await;
            };
            let count = usize::try_from(remaining)
                .map_or(dir::SENDFILE_CHUNK, |r| r.min(dir::SENDFILE_CHUNK));
            tokio::select! {
                r = stream.writable() => r?,
                _ = sleep_until(progress.deadline()) => {
                    if progress.expired() {
                        return Err(self.write_timed_out());
                    }
                    continue;
                }
            }
            match dir::sendfile_once(stream, file, &mut position, count) {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "file shrank while it was sent",
                    )
                    .into())
                }
                Ok(n) => {
                    transport::count(&transport::BYTES_WRITTEN, n);
                    progress.wrote(n);
                    self.wrote();
                    self.note_written(n);
                    remaining -= n as u64;
                    if remaining > 0 {
                        tokio::task::yield_now().await;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Sends `len` bytes of `file` from `offset` through a transport that
    /// cannot take `sendfile(2)` (TLS): read into a buffer, then written
    /// like any bytes. The reads are `pread(2)` on this thread, as
    /// `sendfile(2)` is for plain TCP: both are served from the page cache
    /// for a file being read often.
    async fn copy_file_range(
        &mut self,
        file: &std::fs::File,
        mut offset: u64,
        mut len: u64,
    ) -> Result<(), ConnError> {
        use std::os::unix::fs::FileExt;
        let mut chunk = vec![0u8; dir::COPY_CHUNK.min(usize::try_from(len).unwrap_or(usize::MAX))];
        while len > 0 {
            let want = usize::try_from(len).map_or(chunk.len(), |l| l.min(chunk.len()));
            let n = file.read_at(&mut chunk[..want], offset)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "file shrank while it was sent",
                )
                .into());
            }
            self.write_all(&chunk[..n]).await?;
            offset += n as u64;
            len -= n as u64;
            if len > 0 {
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    }

    fn write_timed_out(&self) -> ConnError {
        Counters::bump(&self.server.counters().write_timeouts);
        debug!(peer = %self.peer, "dropping a client that does not read its response");
        ConnError::WriteTimeout
    }

    /// Records a successful write for the outbox's stall check.
    fn wrote(&self) {
        if let Some(o) = &self.outbox {
            o.wrote(self.server.registry().now_ms());
        }
    }

    async fn write_all_bytes(&mut self, bytes: Bytes) -> Result<(), ConnError> {
        self.write_all(&bytes).await
    }

    /// Writes all of `bytes` under the write deadline, watching the outbox
    /// so a cancel or an overflow stops even a blocked write.
    async fn write_all(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.write_pair(bytes, &[]).await
    }

    /// Writes all of `first` then all of `second` (in vectored writes, so a
    /// head and a small body leave in one system call) under the write
    /// deadline, watching the outbox so a cancel or an overflow stops even
    /// a blocked write.
    async fn write_pair(&mut self, first: &[u8], second: &[u8]) -> Result<(), ConnError> {
        self.write_parts(&mut [first, second]).await
    }

    /// Writes every one of `parts` in order, as [`write_pair`](Self::write_pair)
    /// (one vectored write when the socket takes them all).
    async fn write_parts(&mut self, parts: &mut [&[u8]]) -> Result<(), ConnError> {
        let mut progress = Progress::start(self.write_deadline());
        let outbox = self.outbox.clone();
        let mut at = 0;
        loop {
            while parts.get(at).is_some_and(|p| p.is_empty()) {
                at += 1;
            }
            let parts = &mut parts[at..];
            if parts.is_empty() && !self.transport.wants_flush() {
                return Ok(());
            }
            if let Some(reason) = outbox.as_ref().and_then(|o| o.aborted()) {
                return Err(ConnError::Aborted {
                    cancelled: reason == Outgoing::Cancel,
                });
            }
            // Nothing left but TLS records the socket had no room for:
            // they go out before the write is done.
            let flush = parts.is_empty();
            let mut slices = [std::io::IoSlice::new(&[]); 4];
            let count = parts.len().min(slices.len());
            for (slice, part) in slices.iter_mut().zip(parts.iter()) {
                *slice = std::io::IoSlice::new(part);
            }
            tokio::select! {
                // The write first: most complete at once, and then no timer
                // is set.
                biased;
                r = std::future::poll_fn(|cx| {
                    let transport = std::pin::Pin::new(&mut self.transport);
                    if flush {
                        transport.poll_flush(cx).map_ok(|()| usize::MAX)
                    } else {
                        transport.poll_write_vectored(cx, &slices[..count])
                    }
                }) => {
                    let mut n = r?;
                    if flush {
                        self.wrote();
                        continue;
                    }
                    if n == 0 {
                        return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
                    }
                    progress.wrote(n);
                    self.wrote();
                    self.note_written(n);
                    for part in parts.iter_mut() {
                        let from = n.min(part.len());
                        *part = &part[from..];
                        n -= from;
                        if n == 0 {
                            break;
                        }
                    }
                }
                _ = sleep_until(progress.deadline()) => {
                    if progress.expired() {
                        return Err(self.write_timed_out());
                    }
                }
                // Only an abort matters while writing; the rest is taken from
                // the outbox after this write.
                reason = std::future::poll_fn(|cx| match &outbox {
                    Some(o) => o.poll_abort(cx),
                    None => Poll::Pending,
                }) => {
                    return Err(ConnError::Aborted {
                        cancelled: reason == Outgoing::Cancel,
                    });
                }
            }
        }
    }

    /// Logs and counts a response whose status is known now: Kennel's
    /// own, a static file's, a back end's.
    fn log(&self, head: &Head, status: u16, size: usize) {
        let elapsed = self.request_started.elapsed();
        if let Some(route) = &self.route {
            route.observe(status, elapsed);
        }
        if let Some(log) = &self.active.access_log {
            log.record(&crate::access::Entry {
                status,
                size: size as u64,
                micros: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                ..self.entry(head)
            });
        }
    }

    /// The access log fields of the current request (status and size 0).
    fn entry<'a>(&'a self, head: &'a Head) -> crate::access::Entry<'a> {
        crate::access::Entry {
            host: head.host().unwrap_or(b""),
            peer: self.peer.addr(),
            time: crate::access::unix_time(),
            method: head.method(),
            path: head.path(),
            version: head.version().as_str(),
            status: 0,
            size: 0,
            micros: 0,
            route: self.route.as_ref().map_or("", |r| r.route()),
        }
    }

    /// What a handler's response will be logged and counted with.
    fn done(&self, head: &Head, handler: &Arc<crate::metrics::HandlerStats>) -> Done {
        Done {
            started: self.request_started,
            route: self.route.clone(),
            handler: Arc::clone(handler),
            line: self
                .active
                .access_log
                .as_ref()
                .map(|_| crate::access::Pending::new(&self.entry(head), head.version().as_str())),
            bytes: 0,
            close: !head.keep_alive(),
        }
    }

    /// The handler's response at the front is complete: out of the queue,
    /// logged and counted.
    fn handler_completed(&mut self, status: u16) {
        if let Some(Owed::Handler {
            done: Some(done), ..
        }) = self.responses.pop()
        {
            self.handler_done(*done, status, true);
        }
    }

    /// Logs and counts a handler's response (`answered`: it came from the
    /// handler, not from Kennel on its behalf).
    fn handler_done(&self, done: Done, status: u16, answered: bool) {
        let elapsed = done.started.elapsed();
        if answered {
            Counters::bump(&done.handler.answered);
        }
        if let Some(route) = &done.route {
            route.observe(status, elapsed);
        }
        if let (Some(log), Some(line)) = (&self.active.access_log, &done.line) {
            let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            log.record(&line.entry(status, done.bytes, micros));
        }
    }

    /// A request got a 503 because no handler process took it: counted,
    /// and warned about once per handler per 10 s, naming the handler.
    fn handler_outage(&self, stats: &crate::metrics::HandlerStats, handler: i64, why: &str) {
        Counters::bump(&self.server.counters().handler_unavailable);
        if let Some(unwarned) = stats.outage(self.server.registry().now_ms()) {
            warn!(
                handler,
                more_since_last_warning = unwarned,
                "handler {handler} is not taking requests ({why}); answering 503 until a handler \
                 process connects"
            );
        }
    }

    /// Ends the connection as `end` says, leaves the registry and tells
    /// the links this connection used.
    async fn finish(&mut self, end: End) {
        let last = matches!(end, End::Linger | End::HandlerClosed);
        if last {
            // The queue may hold a last refusal (408 on a timeout).
            if let Some(Owed::Local { .. }) = self.responses.front() {
                if let Some(Owed::Local { response, .. }) = self.responses.pop() {
                    let _ = self.write_local(response).await;
                }
            }
        }
        // Handler responses still owed are logged as far as they got: the
        // status of a head that was written (a response that lasts until
        // the close), or 499 (nginx's "client closed request") when the
        // client got nothing.
        while let Some(owed) = self.responses.pop() {
            if let Owed::Handler {
                scanner,
                done: Some(done),
            } = owed
            {
                let status = scanner
                    .status()
                    .filter(|_| !scanner.is_fresh())
                    .unwrap_or(499);
                self.handler_done(*done, status, status != 499);
            }
        }
        // Handlers hear at once, not after the linger: for them the
        // connection is over.
        if let Some(outbox) = self.outbox.take() {
            self.server.registry().unregister(outbox.id());
            let notify = !matches!(end, End::Abort { cancelled: true } | End::HandlerClosed);
            if notify {
                for link in outbox
                    .links()
                    .into_iter()
                    .filter_map(|id| self.server.link(id))
                {
                    link.disconnect(outbox.id());
                }
            }
        }
        self.server.alarms().cancel(&mut self.alarm);
        // As nginx's `lingering_close on`: only when the client may still
        // be sending. After a whole request, with nothing more read, the
        // close is at once.
        if last && (self.unread_input || !self.buf.is_empty()) {
            self.linger().await;
        }
    }

    /// nginx's lingering close: shut the write side down, then read and
    /// discard what the client still sends, up to [`LINGER_BYTES`] or
    /// `kennel.http.linger_ms`, so a client still sending sees the response
    /// rather than a reset.
    async fn linger(&mut self) {
        if self.transport.shutdown().await.is_err() {
            return;
        }
        let ms = self.active.snapshot.settings.kennel_http_linger_ms;
        let deadline = Instant::now() + Duration::from_millis(ms);
        let mut discarded = self.buf.len();
        self.buf.clear();
        while discarded < LINGER_BYTES {
            if self.buf.capacity() < READ_CHUNK {
                self.buf.reserve(READ_CHUNK);
            }
            let read = tokio::select! {
                r = std::future::poll_fn(|cx| {
                    tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut self.transport), cx, &mut self.buf)
                }) => r,
                _ = sleep_until(deadline) => return,
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    discarded += n;
                    self.buf.advance(self.buf.len());
                }
            }
        }
    }
}

impl Drop for Connection {
    /// Counted out however the connection ends (a panic included), so the
    /// open count the accept loop and the shutdown wait on stays true.
    fn drop(&mut self) {
        self.leave_roster();
        self.server.alarms().cancel(&mut self.alarm);
        self.server.connection_closed();
    }
}

/// Why a request's body could not be read.
#[derive(Debug)]
enum ReadError {
    Io(std::io::Error),
    Timeout,
    TooLarge,
    Http(HttpError),
}

impl ReadError {
    fn status(&self) -> u16 {
        match self {
            ReadError::Io(_) => 400,
            ReadError::Timeout => 408,
            ReadError::TooLarge => 413,
            ReadError::Http(e) => e.status(),
        }
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// An idle connection is its task: this future plus a few small heap
    /// objects (tokio's 256-byte I/O registration, and the outbox once it
    /// talked to a handler). The benchmark target is at most 1 KiB of
    /// memory per idle keep-alive connection; tokio rounds a task up to
    /// 128-byte steps and adds about 100 bytes, so the future must stay
    /// under about 280 bytes (272 in a release build, 280 in a debug one
    /// as of this writing) for the task to take 384. A change that inlines a request's state machine, a
    /// timer or a waiter here (instead of boxing it, or keeping it in the
    /// server's alarms) fails this test.
    #[test]
    fn an_idle_connection_stays_small() {
        fn size<F: std::future::Future>(_: &F) -> usize {
            std::mem::size_of::<F>()
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (stream, peer) = listener.accept().await.unwrap();
            let db = rusqlite::Connection::open_in_memory().unwrap();
            db.execute_batch(crate::config::SCHEMA_SQL).unwrap();
            db.execute_batch(
                "INSERT INTO server (id, uuid, access_log, error_log, pid_file, chroot, default_host, port)
                   VALUES (1, 'u', '', '', '', '', 'h', 0);
                 INSERT INTO host (id, server_id, name, matching) VALUES (1, 1, 'h', 'h');",
            )
            .unwrap();
            let snapshot =
                Arc::new(crate::config::load_from(&db, &crate::config::ServerSelector::Any).unwrap());
            let server = Server::start(snapshot).unwrap();
            let fut = serve(stream, peer, server);
            let bytes = size(&fut);
            assert!(bytes <= 320, "the connection future grew to {bytes} bytes");
        });
    }
}
