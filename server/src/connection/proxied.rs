//! A request on a `proxy` route: forwarded to its back end through the
//! server's shared HTTP client ([`crate::proxy`]), the response written
//! back, and an upgrade (a WebSocket) tunnelled both ways.
//!
//! A proxied request waits until every response owed before it has been
//! written (it is answered inline, in order). Its body is read from the
//! client as the back end takes it, through a bounded queue; the back
//! end's response body is written to the client as it arrives, with
//! `Content-Length` when the back end gave one, chunked otherwise (HTTP/1.1
//! clients), or until close. Memory per proxied request stays at a few
//! read buffers whatever the bodies' sizes. `Expect: 100-continue` is
//! answered by Kennel. A back end that cannot be reached is a `502`; one
//! silent for `kennel.proxy.timeout_ms` a `504` (or, mid-body, a closed
//! connection). If the response arrives before the whole request body was
//! read, the connection closes after it.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, warn};

use super::responses::Local;
use super::{ConnError, Connection, End, ReadProgress, READ_CHUNK};
use crate::config::Proxy as ProxyTarget;
use crate::http::{self, BodyKind, ChunkedDecoder, Head, Version};
use crate::proxy::{self, BackendConn, Framing, ProxyBody, ProxyError};
use crate::server::Active;

/// Largest piece of a request body read and queued for the back end.
const PUMP_CHUNK: usize = 64 * 1024;

/// What is left of the client's request body.
enum Pump {
    /// Nothing (no body, or all of it sent).
    Done,
    /// `Content-Length`: this many bytes to go.
    Length(u64),
    /// Chunked, decoded as it comes.
    Chunked(Box<ChunkedDecoder>),
}

impl Connection {
    /// Forwards `head` to proxy `index` and writes the response. `Some`
    /// when the connection must end now.
    pub(super) async fn proxy(
        &mut self,
        head: &Head,
        active: &Active,
        index: usize,
    ) -> Result<Option<End>, ConnError> {
        // In order: whatever is owed before this request goes first.
        if let Some(end) = self.settle().await? {
            return Ok(Some(end));
        }
        let backend = &active.snapshot.proxies[index];
        let proxy = self.server.proxy().clone();
        if head.expects_continue() && head.body() != BodyKind::None {
            self.write_all(http::CONTINUE).await?;
        }
        let (tx, body, mut pump) = match head.body() {
            BodyKind::None => (None, ProxyBody::empty(), Pump::Done),
            BodyKind::Length(0) => (None, ProxyBody::empty(), Pump::Done),
            BodyKind::Length(n) => {
                let (tx, body) = ProxyBody::channel(Some(n));
                (Some(tx), body, Pump::Length(n))
            }
            BodyKind::Chunked => {
                let (tx, body) = ProxyBody::channel(None);
                let decoder =
                    ChunkedDecoder::new(u64::MAX).with_max_trailers(active.limits.max_head);
                (Some(tx), body, Pump::Chunked(Box::new(decoder)))
            }
        };
        let request = match proxy::build_request(
            head,
            (&backend.addr, backend.port),
            self.peer.addr(),
            active.url_scheme,
            body,
        ) {
            Ok(request) => request,
            Err(e) => return Ok(self.proxy_failed(head, backend, &e, false)),
        };
        let upgrade = proxy::is_upgrade(head);
        // A request safe to repeat, without a body, can be built again if
        // the pooled connection it went out on fails under it.
        let peer = self.peer.addr();
        let scheme = active.url_scheme;
        let rebuild = || {
            proxy::build_request(
                head,
                (&backend.addr, backend.port),
                peer,
                scheme,
                ProxyBody::empty(),
            )
            .ok()
        };
        let repeatable = tx.is_none() && !upgrade && http::is_idempotent(head.method());
        let response = proxy.exchange(
            &backend.addr,
            backend.port,
            request,
            repeatable.then_some(&rebuild as &(dyn Fn() -> Option<_> + Sync)),
        );
        tokio::pin!(response);
        let mut progress = ReadProgress::new(&active.snapshot.settings);
        let mut tx = tx;
        // The body goes to the back end while its response is awaited; a
        // response may come before the body is all sent.
        let response = loop {
            let Some(sender) = tx.as_ref() else {
                break match tokio::time::timeout(proxy.timeout, &mut response).await {
                    Ok(r) => r,
                    Err(_) => Err(ProxyError::Timeout),
                };
            };
            tokio::select! {
                r = &mut response => break r,
                step = self.pump_step(&mut pump, sender, &mut progress, proxy.timeout) => match step {
                    Ok(true) => tx = None,
                    Ok(false) => {}
                    Err(PumpError::Client(status)) => {
                        drop(tx);
                        self.refuse(status);
                        self.log(head, status, 0);
                        return Ok(None);
                    }
                    Err(PumpError::Backend(e)) => {
                        drop(tx);
                        return Ok(self.proxy_failed(head, backend, &e, true));
                    }
                    Err(PumpError::Io(e)) => return Err(e),
                },
            }
        };
        let body_read = matches!(pump, Pump::Done);
        drop(tx);
        let (mut response, mut conn) = match response {
            Ok(exchanged) => exchanged,
            Err(e) => return Ok(self.proxy_failed(head, backend, &e, !body_read)),
        };
        let status = response.status().as_u16();
        if status == 101 && upgrade {
            return self.tunnel(head, backend, &mut response, &mut conn).await;
        }
        let http11 = head.version() == Version::Http11;
        let framing = proxy::framing(status, response.headers(), head.method() == b"HEAD", http11);
        let close = !head.keep_alive() || framing == Framing::UntilClose || !body_read;
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| r.as_bytes().to_vec());
        let response_head = proxy::response_head(
            status,
            reason.as_deref(),
            response.headers(),
            framing,
            close,
        );
        let sent = match self
            .relay_body(
                response_head,
                response.into_body(),
                &mut conn,
                framing,
                proxy.timeout,
            )
            .await?
        {
            Ok(sent) => sent,
            // Nothing of the response was written yet: the client gets
            // the status of what went wrong.
            Err(e) => return Ok(self.proxy_failed(head, backend, &e, !body_read)),
        };
        // Read to its end: the back-end connection may serve another.
        proxy.checkin(&backend.addr, backend.port, conn);
        self.log(head, status, sent);
        self.touch();
        if close {
            self.unread_input |= !body_read;
            self.queue_local(Local::Bytes(Bytes::new()), true);
        }
        Ok(None)
    }

    /// Waits until every response owed so far has been written (a proxied
    /// response is written inline, so it must not overtake them).
    async fn settle(&mut self) -> Result<Option<End>, ConnError> {
        loop {
            if let Some(end) = Box::pin(self.write_ready()).await? {
                return Ok(Some(end));
            }
            if self.responses.is_empty() {
                return Ok(None);
            }
            let outbox = self.outbox.clone();
            tokio::select! {
                _ = async {
                    match &outbox {
                        Some(o) => o.ready().await,
                        None => std::future::pending().await,
                    }
                } => {}
                _ = sleep_until(self.idle_deadline) => return Ok(Some(End::Close)),
            }
        }
    }

    /// Sends the next piece of the request body to the back end: `Ok(true)`
    /// once it is all sent.
    async fn pump_step(
        &mut self,
        pump: &mut Pump,
        tx: &mpsc::Sender<Bytes>,
        progress: &mut ReadProgress,
        timeout: Duration,
    ) -> Result<bool, PumpError> {
        let chunk = match pump {
            Pump::Done => return Ok(true),
            Pump::Length(remaining) => {
                if self.buf.is_empty() {
                    self.read_body_bytes(progress).await?;
                }
                let n = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(self.buf.len())
                    .min(PUMP_CHUNK);
                *remaining -= n as u64;
                let chunk = self.buf.split_to(n).freeze();
                if *remaining == 0 {
                    *pump = Pump::Done;
                }
                chunk
            }
            Pump::Chunked(decoder) => {
                let mut out = BytesMut::new();
                loop {
                    match decoder.decode(&mut self.buf, &mut out) {
                        Ok(true) => break,
                        Ok(false) if !out.is_empty() => break,
                        Ok(false) => self.read_body_bytes(progress).await?,
                        Err(e) => return Err(PumpError::Client(e.status())),
                    }
                }
                if decoder.is_done() {
                    *pump = Pump::Done;
                }
                out.freeze()
            }
        };
        if !chunk.is_empty() {
            match tokio::time::timeout(timeout, tx.send(chunk)).await {
                Ok(Ok(())) => {}
                // The back end's connection gave up on the body: its
                // response (or error) is on the way.
                Ok(Err(_)) => {
                    return Err(PumpError::Backend(ProxyError::Backend(
                        "it stopped reading the request body".into(),
                    )))
                }
                Err(_) => return Err(PumpError::Backend(ProxyError::Timeout)),
            }
        }
        Ok(matches!(pump, Pump::Done))
    }

    /// Reads more of a request body under its read deadline.
    async fn read_body_bytes(&mut self, progress: &mut ReadProgress) -> Result<(), PumpError> {
        loop {
            if self.buf.capacity() - self.buf.len() < READ_CHUNK {
                self.buf.reserve(PUMP_CHUNK);
            }
            tokio::select! {
                r = std::future::poll_fn(|cx| {
                    tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut self.transport), cx, &mut self.buf)
                }) => {
                    return match r {
                        Ok(0) => Err(PumpError::Io(ConnError::Io(std::io::ErrorKind::UnexpectedEof.into()))),
                        Ok(n) => {
                            progress.read(n);
                            Ok(())
                        }
                        Err(e) => Err(PumpError::Io(e.into())),
                    };
                }
                _ = sleep_until(progress.deadline()) => {
                    if progress.expired() {
                        return Err(PumpError::Client(408));
                    }
                }
            }
        }
    }

    /// Writes the response head and the back end's body as `framing` says;
    /// returns the body bytes written. The head waits for the first piece
    /// of a body of known length, so that a small response leaves in one
    /// write; a body of unknown length (a stream, perhaps slow) does not
    /// hold its head back.
    /// `Ok(Err(_))`: the back end failed before any of the response was
    /// written.
    async fn relay_body(
        &mut self,
        response_head: Vec<u8>,
        mut body: hyper::body::Incoming,
        conn: &mut BackendConn,
        framing: Framing,
        timeout: Duration,
    ) -> Result<Result<usize, ProxyError>, ConnError> {
        // Held back only for a body of known length.
        let mut head = match framing {
            Framing::Length(_) => Some(response_head),
            _ => {
                self.write_all(&response_head).await?;
                None
            }
        };
        if framing == Framing::None {
            return Ok(Ok(0));
        }
        let mut sent = 0;
        loop {
            let frame = match conn
                .drive(tokio::time::timeout(timeout, body.frame()))
                .await
            {
                Ok(Some(Ok(frame))) => frame,
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    if head.is_some() {
                        return Ok(Err(ProxyError::Backend(e.to_string())));
                    }
                    debug!(peer = %self.peer, error = %e, "the back end failed mid-body");
                    return Err(std::io::Error::other(e).into());
                }
                Err(_) => {
                    if head.is_some() {
                        return Ok(Err(ProxyError::Timeout));
                    }
                    debug!(peer = %self.peer, "the back end went silent mid-body");
                    return Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into());
                }
            };
            let Ok(data) = frame.into_data() else {
                // Trailers are not forwarded.
                continue;
            };
            if data.is_empty() {
                continue;
            }
            sent += data.len();
            if framing == Framing::Chunked {
                let size = format!("{:x}\r\n", data.len());
                self.write_parts(&mut [size.as_bytes(), &data, b"\r\n"])
                    .await?;
            } else {
                let head = head.take().unwrap_or_default();
                self.write_pair(&head, &data).await?;
            }
        }
        if let Some(head) = head.take() {
            // An empty body.
            self.write_all(&head).await?;
        }
        if framing == Framing::Chunked {
            self.write_all(b"0\r\n\r\n").await?;
        }
        Ok(Ok(sent))
    }

    /// The back end failed: the client gets its status, and the connection
    /// closes if the request body was not all read.
    fn proxy_failed(
        &mut self,
        head: &Head,
        backend: &ProxyTarget,
        e: &ProxyError,
        unread_body: bool,
    ) -> Option<End> {
        let status = e.status();
        let shown = format!("{}:{}", backend.addr, backend.port);
        debug!(
            peer = %self.peer,
            backend = %shown,
            path = %String::from_utf8_lossy(head.path()),
            status,
            error = %e,
            "proxy route failed"
        );
        // Once per back end per 10 s: a client must not be able to fill
        // the log by asking again.
        if let Some(more) = self.server.may_warn(&format!("proxy {shown}")) {
            warn!(
                backend = %shown,
                status,
                error = %e,
                more_since_last_warning = more,
                "proxy back end {shown} failed; clients get {status}"
            );
        }
        let close = unread_body || !head.keep_alive();
        self.unread_input |= unread_body;
        self.queue_local(Local::Bytes(http::canned(status, close)), close);
        self.log(head, status, 0);
        None
    }

    /// The back end accepted an upgrade: its `101` goes to the client, then
    /// bytes flow both ways until either side closes or both are idle for
    /// `limits.min_ping`.
    async fn tunnel(
        &mut self,
        head: &Head,
        backend: &ProxyTarget,
        response: &mut ::http::Response<hyper::body::Incoming>,
        conn: &mut BackendConn,
    ) -> Result<Option<End>, ConnError> {
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| r.as_bytes().to_vec());
        let response_head = proxy::response_head(
            101,
            reason.as_deref(),
            response.headers(),
            Framing::None,
            false,
        );
        let upgraded = match conn.drive(hyper::upgrade::on(response)).await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                debug!(peer = %self.peer, error = %e, "the back end's upgrade failed");
                return Ok(self.proxy_failed(
                    head,
                    backend,
                    &ProxyError::Backend(e.to_string()),
                    true,
                ));
            }
        };
        self.write_all(&response_head).await?;
        self.log(head, 101, 0);
        let mut backend = TokioIo::new(upgraded);
        if !self.buf.is_empty() {
            let early = self.buf.split().freeze();
            backend.write_all(&early).await?;
            backend.flush().await?;
        }
        let idle = match self.active.snapshot.settings.limits_min_ping {
            0 => Duration::from_secs(365 * 24 * 3600),
            secs => Duration::from_secs(secs),
        };
        let mut from_backend = vec![0u8; 16 * 1024];
        let mut client_open = true;
        let mut backend_open = true;
        let mut deadline = Instant::now() + idle;
        while client_open || backend_open {
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(16 * 1024);
            }
            tokio::select! {
                r = std::future::poll_fn(|cx| {
                    tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut self.transport), cx, &mut self.buf)
                }), if client_open => {
                    match r {
                        Ok(0) | Err(_) => {
                            client_open = false;
                            let _ = backend.shutdown().await;
                        }
                        Ok(_) => {
                            let bytes = self.buf.split().freeze();
                            // hyper's upgraded stream buffers: flush each
                            // piece, or it waits for the next.
                            backend.write_all(&bytes).await?;
                            backend.flush().await?;
                        }
                    }
                }
                r = backend.read(&mut from_backend), if backend_open => {
                    match r {
                        Ok(0) | Err(_) => {
                            backend_open = false;
                            let _ = self.transport.shutdown().await;
                        }
                        Ok(n) => self.write_all(&from_backend[..n]).await?,
                    }
                }
                _ = sleep_until(deadline) => break,
            }
            deadline = Instant::now() + idle;
        }
        self.buf = BytesMut::new();
        Ok(Some(End::Close))
    }
}

/// Why sending the request body stopped.
enum PumpError {
    /// The client's fault: this status.
    Client(u16),
    /// The back end's.
    Backend(ProxyError),
    /// The client's socket failed or closed.
    Io(ConnError),
}
