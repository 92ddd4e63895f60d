//! The per-connection task: read requests, route them, answer or hand them
//! to a handler, and write what handlers send back.
//!
//! Owns one client socket, its read buffer and (once it talks to a handler)
//! its registry entry. Requests are parsed by [`crate::http`], routed by
//! [`crate::routing`] on the current [`Snapshot`], then:
//! - a Dir target is answered here by [`crate::dir`], in order;
//! - a Handler target is encoded as a Mongrel2 request message and handed
//!   to the [`BridgeHandle`]; the connection goes on reading (pipelined
//!   requests are forwarded at once, as Mongrel2 does) and writes whatever
//!   arrives in its outbox, verbatim. As in Mongrel2 the server never closes
//!   a handler's connection on its own: an empty reply does;
//! - no route is a 404; a Proxy target is a 502 (not served yet).
//!
//! When the connection ends, it leaves the registry and every handler it
//! used is sent a disconnect notice. Does not own ZeroMQ, the protocol's
//! bytes, or file serving.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kennel_handler::request::{self, RequestHead};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::access::AccessLog;
use crate::bridge::BridgeHandle;
use crate::config::{Snapshot, Target};
use crate::dir::{self, DirRequest};
use crate::http::{self, BodyKind, ChunkedDecoder, Head, HttpError, Limits};
use crate::registry::{Outbox, Outgoing, Registry};

/// Read buffer growth step: one typical request head, and the size of
/// Mongrel2's whole per-connection buffer.
const READ_CHUNK: usize = 4096;

/// Everything connection tasks share, built once per server (and, later,
/// per config reload).
pub struct Context {
    /// The config.
    pub snapshot: Arc<Snapshot>,
    /// Connection ids → outboxes.
    pub registry: Arc<Registry>,
    /// The way to the handlers.
    pub bridge: BridgeHandle,
    /// Parser limits from the settings.
    pub limits: Limits,
    /// `http` (or `https` once TLS is served).
    pub url_scheme: &'static str,
    /// The access log, unless disabled.
    pub access_log: Option<AccessLog>,
    /// Open static files shared by every connection.
    pub files: dir::FileCache,
}

/// Whether the connection goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Continue,
    Close,
}

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    /// The client went away or the socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves one client until it or the server is done.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let mut conn = Connection {
        peer,
        stream,
        ctx,
        buf: BytesMut::new(),
        outbox: None,
        handlers_used: Vec::new(),
        drained: Vec::new(),
        request_deadline: None,
        idle_deadline: Instant::now(),
        cancelled: false,
        shutdown,
    };
    conn.touch();
    match conn.run().await {
        Ok(()) => {}
        Err(ConnError::Io(e)) => debug!(peer = %conn.peer, error = %e, "connection ended"),
    }
    conn.finish();
}

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Context>,
    buf: BytesMut,
    outbox: Option<Arc<Outbox>>,
    handlers_used: Vec<usize>,
    drained: Vec<Outgoing>,
    /// When the request being received must be complete (408 after).
    request_deadline: Option<Instant>,
    /// When an idle connection is closed.
    idle_deadline: Instant,
    /// `ctl cancel`: leave without a disconnect notice.
    cancelled: bool,
    shutdown: CancellationToken,
}

enum Event {
    /// Bytes read into the buffer (0: the client closed).
    Read(usize),
    Outbox,
    Timeout,
    Shutdown,
}

impl Connection {
    async fn run(&mut self) -> Result<(), ConnError> {
        loop {
            // Everything already buffered first: pipelined requests.
            if !self.buf.is_empty() {
                match http::parse_head(&mut self.buf, &self.ctx.limits) {
                    Ok(Some(head)) => {
                        if self.request_deadline.is_none() {
                            self.start_request();
                        }
                        // Boxed: the request's state machine (routing, files,
                        // encoding) is large, and an idle connection should
                        // not carry it (the target is ~2 KiB per connection).
                        let next = Box::pin(self.handle(head)).await?;
                        self.request_deadline = None;
                        self.touch();
                        if next == Next::Close {
                            return Ok(());
                        }
                        continue;
                    }
                    Ok(None) => {
                        if self.request_deadline.is_none() {
                            self.start_request();
                        }
                    }
                    Err(e) => {
                        debug!(peer = %self.peer, error = %e, "bad request");
                        self.write_all(&http::canned(e.status(), true)).await?;
                        return Ok(());
                    }
                }
            } else {
                // Give an idle connection's buffer back.
                self.buf = BytesMut::new();
            }
            match self.wait().await? {
                Event::Read(0) => return Ok(()),
                Event::Read(_) => {}
                Event::Outbox => {
                    if Box::pin(self.flush_outbox()).await? == Next::Close {
                        return Ok(());
                    }
                }
                Event::Timeout => {
                    if self.request_deadline.is_some() {
                        debug!(peer = %self.peer, "request timeout");
                        self.write_all(&http::canned(408, true)).await?;
                    }
                    return Ok(());
                }
                Event::Shutdown => return Ok(()),
            }
        }
    }

    fn start_request(&mut self) {
        let ms = self.ctx.snapshot.settings.kennel_http_request_timeout_ms;
        self.request_deadline = Some(Instant::now() + Duration::from_millis(ms));
    }

    /// Resets the idle timer: the keep-alive timeout, or `limits.min_ping`
    /// once a handler may be holding a request (long polls).
    fn touch(&mut self) {
        let settings = &self.ctx.snapshot.settings;
        let idle = if self.outbox.is_some() {
            Duration::from_secs(settings.limits_min_ping)
        } else {
            Duration::from_millis(settings.kennel_http_keepalive_timeout_ms)
        };
        self.idle_deadline = Instant::now() + idle;
    }

    /// Waits for bytes from the client, something in the outbox, a timeout
    /// or shutdown.
    async fn wait(&mut self) -> Result<Event, ConnError> {
        let deadline = self.request_deadline.unwrap_or(self.idle_deadline);
        let outbox = self.outbox.clone();
        let idle = self.buf.is_empty() && self.outbox.is_none();
        let shutdown = self.shutdown.clone();
        tokio::select! {
            biased;
            _ = async {
                match &outbox {
                    Some(o) => o.notified().await,
                    None => std::future::pending().await,
                }
            } => Ok(Event::Outbox),
            // `poll_read_ready` first: it parks the waker in the socket's
            // own slot, so the idle future holds no waiter, and the buffer
            // is only allocated once there is something to read. Then
            // `poll_read_buf` (not `try_read_buf`): a read that does not
            // fill the buffer tells tokio the socket is drained, which
            // saves the second `recv` that would only say EAGAIN.
            r = std::future::poll_fn(|cx| {
                std::task::ready!(self.stream.poll_read_ready(cx))?;
                if self.buf.capacity() - self.buf.len() < 1024 {
                    self.buf.reserve(READ_CHUNK);
                }
                let read = tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut self.stream), cx, &mut self.buf);
                if read.is_pending() && self.buf.is_empty() {
                    // Readiness was stale: stay idle without a buffer.
                    self.buf = BytesMut::new();
                }
                read
            }) => r.map(Event::Read).map_err(Into::into),
            _ = sleep_until(deadline) => Ok(Event::Timeout),
            _ = shutdown.cancelled(), if idle => Ok(Event::Shutdown),
        }
    }

    /// Reads more bytes into the buffer for a request in progress; an error
    /// if the client goes away or the request deadline passes.
    async fn read_more(&mut self) -> Result<(), ReadError> {
        let deadline = self
            .request_deadline
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(10));
        loop {
            tokio::select! {
                r = self.stream.readable() => {
                    r.map_err(ReadError::Io)?;
                    if self.buf.capacity() - self.buf.len() < 1024 {
                        self.buf.reserve(READ_CHUNK.max(self.buf.len()));
                    }
                    match self.stream.try_read_buf(&mut self.buf) {
                        Ok(0) => return Err(ReadError::Io(std::io::ErrorKind::UnexpectedEof.into())),
                        Ok(_) => return Ok(()),
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

    async fn handle(&mut self, head: Head) -> Result<Next, ConnError> {
        let ctx = Arc::clone(&self.ctx);
        let snapshot = &ctx.snapshot;
        let keep_alive = head.keep_alive();
        let host_index = head
            .host()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| snapshot.host_table.lookup(h))
            .copied()
            .unwrap_or(snapshot.default_host);
        let host = &snapshot.hosts[host_index];
        let Some(route) = host.routes.lookup(head.path()) else {
            return self.answer_without_body(&head, 404, keep_alive).await;
        };
        match *route.target {
            Target::Handler(i) => self.dispatch(&head, i, route.key).await,
            Target::Dir(i) => self.serve_dir(&head, i, route.prefix, keep_alive).await,
            Target::Proxy(i) => {
                warn!(
                    proxy = snapshot.proxies[i].id,
                    "proxy routes are not served yet; answering 502"
                );
                self.answer_without_body(&head, 502, keep_alive).await
            }
        }
    }

    /// Skips the request's body and answers with a canned status.
    async fn answer_without_body(
        &mut self,
        head: &Head,
        status: u16,
        keep_alive: bool,
    ) -> Result<Next, ConnError> {
        let consumed = self.discard_body(head).await;
        let close = !keep_alive || !consumed;
        self.write_all(&http::canned(status, close)).await?;
        self.log(head, status, 0);
        Ok(if close { Next::Close } else { Next::Continue })
    }

    /// Reads and drops the body so the next request can be parsed; `false`
    /// if it could not be (too large, malformed, or the client expects a
    /// `100 Continue` first), in which case the connection must close.
    async fn discard_body(&mut self, head: &Head) -> bool {
        if head.body() == BodyKind::None {
            return true;
        }
        if head.expects_continue() {
            return false;
        }
        let max = self.ctx.snapshot.settings.limits_content_length;
        self.read_body(head.body(), max).await.is_ok()
    }

    async fn dispatch(
        &mut self,
        head: &Head,
        handler: usize,
        pattern: &str,
    ) -> Result<Next, ConnError> {
        let ctx = Arc::clone(&self.ctx);
        let settings = &ctx.snapshot.settings;
        let max = settings.limits_content_length;
        if let BodyKind::Length(n) = head.body() {
            if n > max as u64 {
                self.write_all(&http::canned(413, true)).await?;
                self.log(head, 413, 0);
                return Ok(Next::Close);
            }
        }
        if head.expects_continue() && head.body() != BodyKind::None {
            self.write_all(http::CONTINUE).await?;
        }
        let body = match self.read_body(head.body(), max).await {
            Ok(body) => body,
            Err(ReadError::Io(e)) => return Err(e.into()),
            Err(e) => {
                let status = e.status();
                self.write_all(&http::canned(status, true)).await?;
                self.log(head, status, 0);
                return Ok(Next::Close);
            }
        };
        let outbox = match &self.outbox {
            Some(o) => Arc::clone(o),
            None => {
                let o = ctx.registry.register();
                self.outbox = Some(Arc::clone(&o));
                o
            }
        };
        send_request(&ctx, head, handler, pattern, &body, self.peer, outbox.id());
        if !self.handlers_used.contains(&handler) {
            self.handlers_used.push(handler);
        }
        // Mongrel2 logs handler requests as 200 with the request body size:
        // it never sees the handler's status.
        self.log(head, 200, body.len());
        Ok(Next::Continue)
    }

    async fn serve_dir(
        &mut self,
        head: &Head,
        index: usize,
        prefix: &str,
        keep_alive: bool,
    ) -> Result<Next, ConnError> {
        let consumed = self.discard_body(head).await;
        let close = !keep_alive || !consumed;
        let ctx = Arc::clone(&self.ctx);
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
        let response = dir::respond_with(
            &ctx.files,
            &ctx.snapshot.dirs[index],
            &ctx.snapshot.mimetypes,
            &request,
        )
        .await;
        let status = response.status;
        let size = response.body.len();
        dir::send(response, &mut self.stream).await?;
        if let Some(o) = &self.outbox {
            o.wrote(ctx.registry.now_ms());
        }
        self.log(head, status, size as usize);
        Ok(if close { Next::Close } else { Next::Continue })
    }

    /// Writes what the bridge queued for this connection, until the queue
    /// is empty (items pushed while writing included).
    async fn flush_outbox(&mut self) -> Result<Next, ConnError> {
        let Some(outbox) = self.outbox.clone() else {
            return Ok(Next::Continue);
        };
        let mut items = std::mem::take(&mut self.drained);
        let mut next = Next::Continue;
        'drain: loop {
            outbox.drain_into(&mut items);
            if items.is_empty() {
                break;
            }
            for item in items.drain(..) {
                match item {
                    Outgoing::Data(bytes) => {
                        if let Some(reason) = self.write_watching(&bytes, &outbox).await? {
                            self.cancelled = reason == Outgoing::Cancel;
                            next = Next::Close;
                            break 'drain;
                        }
                        self.touch();
                    }
                    Outgoing::KeepAlive => self.touch(),
                    Outgoing::Unavailable => {
                        let retry = self.ctx.snapshot.settings.kennel_handler_retry_after;
                        self.write_all(&http::service_unavailable(retry, false))
                            .await?;
                    }
                    Outgoing::Close => {
                        next = Next::Close;
                        break 'drain;
                    }
                    Outgoing::Cancel => {
                        self.cancelled = true;
                        next = Next::Close;
                        break 'drain;
                    }
                    Outgoing::Overflow => {
                        debug!(peer = %self.peer, "dropping a client that does not read its replies");
                        next = Next::Close;
                        break 'drain;
                    }
                }
            }
        }
        items.clear();
        self.drained = items;
        if next == Next::Close {
            let _ = self.stream.shutdown().await;
        }
        Ok(next)
    }

    /// Writes `bytes` while watching the outbox, so a client that stopped
    /// reading can be dropped even while a write to it is blocked. Returns
    /// why, if the connection was aborted (cancel or overflow).
    async fn write_watching(
        &mut self,
        bytes: &[u8],
        outbox: &Outbox,
    ) -> Result<Option<Outgoing>, ConnError> {
        let mut written = 0;
        while written < bytes.len() {
            if let Some(reason) = outbox.aborted() {
                return Ok(Some(reason));
            }
            tokio::select! {
                r = self.stream.write(&bytes[written..]) => {
                    let n = r?;
                    if n == 0 {
                        return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
                    }
                    written += n;
                    outbox.wrote(self.ctx.registry.now_ms());
                }
                // Something was queued meanwhile: only an abort matters now;
                // the rest is drained when this write is done.
                _ = outbox.notified() => {}
            }
        }
        Ok(None)
    }

    async fn write_all(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    fn log(&self, head: &Head, status: u16, size: usize) {
        if let Some(log) = &self.ctx.access_log {
            let host = head.host().unwrap_or(b"");
            log.record(
                host,
                &self.peer,
                head.method(),
                head.path(),
                head.version().as_str(),
                status,
                size,
            );
        }
    }

    /// Leaves the registry and tells the handlers this connection used.
    fn finish(&mut self) {
        let Some(outbox) = self.outbox.take() else {
            return;
        };
        self.ctx.registry.unregister(outbox.id());
        if !self.cancelled {
            for &handler in &self.handlers_used {
                self.ctx.bridge.disconnect(handler, outbox.id());
            }
        }
    }
}

/// Headers kept on the stack when encoding a request; more spill to a `Vec`.
const STACK_HEADERS: usize = 64;

/// Largest encoding buffer a runtime thread keeps between requests.
const KEEP_ENCODE_BUFFER: usize = 64 * 1024;

thread_local! {
    /// Each runtime thread encodes requests into one reused buffer (ZeroMQ
    /// copies the message when it is sent, so nothing is allocated here per
    /// request).
    static ENCODE_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Encodes the request message for `handler` (Mongrel2's format,
/// PROTOCOL.md §1.2) and hands it to the bridge. Synchronous, so the
/// header list on the stack is never part of a connection's future.
fn send_request(
    ctx: &Context,
    head: &Head,
    handler: usize,
    pattern: &str,
    body: &[u8],
    peer: SocketAddr,
    conn_id: u64,
) {
    let empty: (&[u8], &[u8]) = (b"", b"");
    let mut stack = [empty; STACK_HEADERS];
    let mut spilled = Vec::new();
    let mut count = 0;
    for header in head.headers() {
        if count < STACK_HEADERS {
            stack[count] = header;
        } else {
            if spilled.is_empty() {
                spilled.extend_from_slice(&stack);
            }
            spilled.push(header);
        }
        count += 1;
    }
    let headers = if spilled.is_empty() {
        &stack[..count]
    } else {
        &spilled[..]
    };
    // The peer's address as text, on the stack.
    let mut ip_buf = [0u8; 48];
    let peer_ip = {
        use std::io::Write as _;
        let mut cursor = std::io::Cursor::new(&mut ip_buf[..]);
        let _ = write!(cursor, "{}", peer.ip());
        let len = cursor.position() as usize;
        &ip_buf[..len]
    };
    let settings = &ctx.snapshot.settings;
    let forwarded_for = (!settings.no_clobber_xff).then_some(peer_ip);
    let request_head = RequestHead {
        path: head.path(),
        method: head.method(),
        version: Some(head.version().as_str().as_bytes()),
        uri: Some(head.uri()),
        query: head.query(),
        fragment: head.fragment(),
        pattern: pattern.as_bytes(),
        url_scheme: ctx.url_scheme.as_bytes(),
        remote_addr: peer_ip,
        headers,
        forwarded_for,
        extra: &[],
    };
    let target = &ctx.snapshot.handlers[handler];
    ENCODE_BUFFER.with_borrow_mut(|message| {
        message.clear();
        request::encode(
            message,
            target.protocol,
            target.send_ident.as_bytes(),
            conn_id,
            &request_head,
            body,
        );
        ctx.bridge.dispatch(
            handler,
            conn_id,
            message,
            Duration::from_millis(target.connect_wait_ms),
        );
        if message.capacity() > KEEP_ENCODE_BUFFER {
            *message = Vec::new();
        }
    });
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
    /// objects. The benchmark target is about 2 KiB of memory per idle
    /// keep-alive connection, so the future must stay well under that; a
    /// change that inlines a request's state machine here (instead of
    /// boxing it) fails this test.
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
            let registry = Arc::new(Registry::new(Default::default()));
            let bridge = crate::bridge::Bridge::start(&[], Arc::clone(&registry), &Default::default()).unwrap();
            let ctx = Arc::new(Context {
                snapshot,
                registry,
                bridge: bridge.handle(),
                limits: Limits::default(),
                url_scheme: "http",
                access_log: None,
                files: dir::FileCache::new(),
            });
            let fut = serve(stream, peer, ctx, CancellationToken::new());
            let bytes = size(&fut);
            assert!(bytes <= 1024, "the connection future grew to {bytes} bytes");
        });
    }
}
