//! The reverse proxy: `proxy` routes forwarded to an HTTP back end
//! (`proxy.addr`, `proxy.port`).
//!
//! Owns the HTTP client (`hyper`'s HTTP/1 client connections, driven by
//! the client connection task that uses them, and one keep-alive pool of
//! them shared by every client connection of the server), the request body
//! handed to it (a bounded channel the connection task fills as it reads),
//! and the header
//! rules of a gateway (RFC 9110 §7.6): hop-by-hop fields (`Connection`, the
//! fields it lists, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`,
//! `Transfer-Encoding`, `Upgrade`) are not forwarded in either direction;
//! `X-Forwarded-For` gets the peer's address appended, so its last entry is
//! always the real peer; `X-Forwarded-Proto` is set to the scheme the
//! client used. A WebSocket (or any) upgrade keeps its `Upgrade` and
//! `Connection` fields so the back end can accept it. Mongrel2 forwards the
//! raw bytes instead and adds nothing (PROTOCOL.md, first table).
//!
//! Does not own the client connection: the connection task reads the
//! request body into [`ProxyBody`], writes the response it gets back
//! (framing it for its client: `Content-Length` when the back end gave one,
//! else chunked, else until close) and tunnels an upgraded connection.
//! Timeouts are settings: `kennel.proxy.connect_timeout_ms` (then `502`)
//! and `kennel.proxy.timeout_ms` (a back end silent that long: `504`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use crate::config::Settings;
use crate::http::{list_elements, Head};

/// Body chunks queued between the connection task and the back end: 4.
/// With reads of at most 64 KiB this bounds a proxied request's body in
/// memory to a few hundred KiB, whatever its size.
pub const BODY_QUEUE: usize = 4;

/// The HTTP client every proxy route of a server shares: `hyper`'s HTTP/1
/// client connections and a keep-alive pool of them, per back end.
///
/// A back-end connection is driven by the client connection's task that
/// uses it ([`BackendConn::drive`]), not by a task of its own: a proxied
/// request costs no hand-off between tasks. Idle connections wait in the
/// pool (at most `kennel.proxy.max_idle` per back end, closed after
/// `kennel.proxy.idle_timeout_ms`); one the back end closed meanwhile is
/// noticed when taken out. [`exchange`](Self::exchange) says when a
/// request is sent again.
#[derive(Debug, Clone)]
pub struct Proxy {
    pool: Arc<Pool>,
    connect_timeout: Duration,
    /// `kennel.proxy.timeout_ms`.
    pub timeout: Duration,
}

#[derive(Debug)]
struct Pool {
    /// Per back end (`addr`, `port`): its idle connections, the most
    /// recently used last.
    idle: Mutex<Vec<(String, u16, Vec<Idle>)>>,
    max_idle: usize,
    idle_timeout: Duration,
}

#[derive(Debug)]
struct Idle {
    conn: BackendConn,
    since: Instant,
}

/// The connection's state machine (`hyper`'s, with upgrades), as a future.
type Driver = dyn Future<Output = hyper::Result<()>> + Send;

/// One HTTP/1 connection to a back end: the sender of its requests and
/// the state machine that reads and writes it, which whoever waits on it
/// polls ([`drive`](Self::drive)).
pub struct BackendConn {
    sender: http1::SendRequest<ProxyBody>,
    /// `None` once the connection has ended.
    driver: Option<Pin<Box<Driver>>>,
}

impl std::fmt::Debug for BackendConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendConn")
            .field("open", &self.driver.is_some())
            .finish()
    }
}

impl BackendConn {
    /// Runs `fut` while the connection does its reading and writing (a
    /// response, its body, an upgrade all need it polled).
    pub async fn drive<F: Future>(&mut self, fut: F) -> F::Output {
        drive(&mut self.driver, fut).await
    }

    /// Whether the connection can take another request.
    fn is_open(&self) -> bool {
        self.driver.is_some() && !self.sender.is_closed()
    }

    /// Ready for a request: `false` if the connection has ended (the back
    /// end closed it while it was idle).
    async fn ready(&mut self) -> bool {
        if !self.is_open() {
            return false;
        }
        let sender = &mut self.sender;
        let ready = drive(
            &mut self.driver,
            std::future::poll_fn(|cx| sender.poll_ready(cx)),
        )
        .await;
        ready.is_ok() && self.is_open()
    }
}

/// Polls `fut`, and `driver` beside it until the connection ends.
async fn drive<F: Future>(driver: &mut Option<Pin<Box<Driver>>>, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        if let Some(d) = driver.as_mut() {
            if let Poll::Ready(result) = d.as_mut().poll(cx) {
                if let Err(e) = result {
                    debug!(error = %e, "a back-end connection failed");
                }
                *driver = None;
            }
        }
        fut.as_mut().poll(cx)
    })
    .await
}

/// Closes the pool's connections idle for longer than its timeout, until
/// the pool goes.
async fn reap(pool: Weak<Pool>) {
    let every = match pool.upgrade() {
        Some(pool) => {
            (pool.idle_timeout / 2).clamp(Duration::from_millis(10), Duration::from_secs(1))
        }
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let expired: Vec<Idle> = {
            let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let mut expired = Vec::new();
            for (_, _, conns) in idle.iter_mut() {
                let keep = conns
                    .iter()
                    .position(|c| now.duration_since(c.since) < pool.idle_timeout)
                    .unwrap_or(conns.len());
                expired.extend(conns.drain(..keep));
            }
            idle.retain(|(_, _, conns)| !conns.is_empty());
            expired
        };
        // Closed outside the lock.
        drop(expired);
    }
}

impl Proxy {
    /// A client with the settings' timeouts and pool bounds. Must be called
    /// from within a tokio runtime (the pool's reaper runs on it).
    pub fn new(settings: &Settings) -> Proxy {
        let pool = Arc::new(Pool {
            idle: Mutex::new(Vec::new()),
            max_idle: settings.kennel_proxy_max_idle,
            idle_timeout: Duration::from_millis(settings.kennel_proxy_idle_timeout_ms),
        });
        tokio::spawn(reap(Arc::downgrade(&pool)));
        Proxy {
            pool,
            connect_timeout: Duration::from_millis(settings.kennel_proxy_connect_timeout_ms),
            timeout: Duration::from_millis(settings.kennel_proxy_timeout_ms),
        }
    }

    /// Sends `request` to the back end at `addr`:`port` on one of its idle
    /// connections or a new one; resolves with the response head and the
    /// connection, which must be driven while the body is read and then
    /// given back ([`checkin`](Self::checkin)).
    ///
    /// A request never written because its pooled connection had closed is
    /// sent on another. One that was written on a pooled connection that
    /// then failed before answering (the back end closed it as the request
    /// went out) is sent again, once, on a new connection, if `again` can
    /// build it anew: the caller offers that only for a request safe to
    /// repeat (RFC 9110 §9.2.2) without a body.
    pub async fn exchange(
        &self,
        addr: &str,
        port: u16,
        request: http::Request<ProxyBody>,
        again: Option<&(dyn Fn() -> Option<http::Request<ProxyBody>> + Sync)>,
    ) -> Result<(http::Response<hyper::body::Incoming>, BackendConn), ProxyError> {
        let mut request = request;
        // Once a request has been sent again: new connections only.
        let mut resent = false;
        loop {
            let pooled = if resent {
                None
            } else {
                self.checkout(addr, port).await
            };
            let (mut conn, reused) = match pooled {
                Some(conn) => (conn, true),
                None => (self.connect(addr, port).await?, false),
            };
            let sent = conn.sender.try_send_request(request);
            let mut e = match conn.drive(sent).await {
                Ok(response) => return Ok((response, conn)),
                Err(e) => e,
            };
            if let Some(unsent) = e.take_message() {
                if reused {
                    // Never written: a pooled connection the back end had
                    // closed.
                    debug!(error = %e.error(), "a pooled back-end connection was closed; trying another");
                    request = unsent;
                    continue;
                }
            }
            // (Never true once resent: then the connection is new.)
            let rebuilt = if reused {
                again.and_then(|again| again())
            } else {
                None
            };
            match rebuilt {
                Some(rebuilt) => {
                    debug!(error = %e.error(), "a pooled back-end connection failed under a request; sending it again");
                    request = rebuilt;
                    resent = true;
                }
                None => return Err(ProxyError::Backend(e.into_error().to_string())),
            }
        }
    }

    /// Gives back a connection whose response has been read to its end.
    pub fn checkin(&self, addr: &str, port: u16, conn: BackendConn) {
        if !conn.is_open() || self.pool.max_idle == 0 {
            return;
        }
        let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        let conns = match idle.iter().position(|(a, p, _)| *p == port && a == addr) {
            Some(at) => &mut idle[at].2,
            None => {
                idle.push((addr.to_owned(), port, Vec::new()));
                &mut idle.last_mut().expect("just pushed").2
            }
        };
        if conns.len() >= self.pool.max_idle {
            // The longest idle goes.
            conns.remove(0);
        }
        conns.push(Idle {
            conn,
            since: Instant::now(),
        });
    }

    /// The most recently used idle connection to the back end that is
    /// still open, if any.
    async fn checkout(&self, addr: &str, port: u16) -> Option<BackendConn> {
        loop {
            let conn = {
                let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
                let at = idle.iter().position(|(a, p, _)| *p == port && a == addr)?;
                idle[at].2.pop()?.conn
            };
            let mut conn = conn;
            if conn.ready().await {
                return Some(conn);
            }
        }
    }

    /// A new connection to the back end.
    async fn connect(&self, addr: &str, port: u16) -> Result<BackendConn, ProxyError> {
        let stream = match tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((addr, port)),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(ProxyError::Connect(e.to_string())),
            Err(_) => return Err(ProxyError::Connect("timed out".into())),
        };
        let _ = stream.set_nodelay(true);
        let (sender, driver) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ProxyError::Connect(e.to_string()))?;
        Ok(BackendConn {
            sender,
            driver: Some(Box::pin(driver.with_upgrades())),
        })
    }
}

/// Why a proxied request got no response from the back end.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The back end could not be reached (502).
    #[error("cannot connect to the back end: {0}")]
    Connect(String),
    /// The back end failed mid-way (502).
    #[error("the back end failed: {0}")]
    Backend(String),
    /// The back end said nothing for `kennel.proxy.timeout_ms` (504).
    #[error("the back end did not answer in time")]
    Timeout,
    /// The request cannot be forwarded as it is (400).
    #[error("the request cannot be forwarded: {0}")]
    Request(String),
}

impl ProxyError {
    /// The status the client gets.
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::Connect(_) | ProxyError::Backend(_) => 502,
            ProxyError::Timeout => 504,
            ProxyError::Request(_) => 400,
        }
    }
}

/// A request body the connection task feeds as it reads the client.
#[derive(Debug)]
pub struct ProxyBody {
    chunks: Option<mpsc::Receiver<Bytes>>,
    /// Bytes still to come, when the length is known.
    remaining: Option<u64>,
}

impl ProxyBody {
    /// No body.
    pub fn empty() -> ProxyBody {
        ProxyBody {
            chunks: None,
            remaining: Some(0),
        }
    }

    /// A body of `len` bytes (`None`: unknown, sent chunked), and the
    /// sender that fills it ([`BODY_QUEUE`] chunks at most in flight).
    /// Dropping the sender early ends the body short, which fails the
    /// back-end request.
    pub fn channel(len: Option<u64>) -> (mpsc::Sender<Bytes>, ProxyBody) {
        let (tx, rx) = mpsc::channel(BODY_QUEUE);
        (
            tx,
            ProxyBody {
                chunks: Some(rx),
                remaining: len,
            },
        )
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.remaining == Some(0) {
            return Poll::Ready(None);
        }
        let Some(chunks) = self.chunks.as_mut() else {
            return Poll::Ready(None);
        };
        match chunks.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => {
                if let Some(remaining) = self.remaining.as_mut() {
                    *remaining = remaining.saturating_sub(chunk.len() as u64);
                }
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(None) => {
                if self.remaining.is_some_and(|r| r > 0) {
                    // The client went away or the request was cut short.
                    Poll::Ready(Some(Err(std::io::ErrorKind::UnexpectedEof.into())))
                } else {
                    Poll::Ready(None)
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// Whether `name` is a hop-by-hop field, which a proxy consumes: the fixed
/// list of RFC 9110 §7.6.1 (and the old `Keep-Alive`/`Proxy-Connection`),
/// or one the message's `Connection` field lists (`listed`).
pub fn is_hop_by_hop(name: &[u8], listed: &[&[u8]]) -> bool {
    const FIXED: [&[u8]; 7] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    ];
    FIXED.iter().any(|h| name.eq_ignore_ascii_case(h))
        || listed.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// Whether the request asks to switch protocols (an `Upgrade` field and a
/// `Connection` that lists `upgrade`): forwarded as such.
pub fn is_upgrade(head: &Head) -> bool {
    head.header("upgrade").is_some()
        && head.headers().any(|(n, v)| {
            n.eq_ignore_ascii_case(b"connection")
                && list_elements(v).any(|t| t.eq_ignore_ascii_case(b"upgrade"))
        })
}

/// The tokens of every `Connection` field of `headers`.
fn connection_tokens<'a>(headers: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Vec<&'a [u8]> {
    headers
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
        .flat_map(|(_, v)| list_elements(v).filter(|t| !t.is_empty()))
        .collect()
}

/// The request Kennel sends the back end at `backend` for the client's
/// `head`: the same method and target, its end-to-end fields, the body's
/// framing, `X-Forwarded-For` with `peer` appended and `X-Forwarded-Proto`.
pub fn build_request(
    head: &Head,
    backend: (&str, u16),
    peer: SocketAddr,
    scheme: &str,
    body: ProxyBody,
) -> Result<http::Request<ProxyBody>, ProxyError> {
    let bad = |what: &str| ProxyError::Request(what.to_owned());
    let method = http::Method::from_bytes(head.method()).map_err(|_| bad("method"))?;
    // Origin form (`/path?query`), as the client sent it; an absolute
    // target is sent as its path and query (its host is in `Host`).
    let uri = http::Uri::from_maybe_shared(Bytes::copy_from_slice(head.uri()))
        .map_err(|_| bad("request target"))?;
    let uri = match uri.path_and_query() {
        Some(pq) if uri.authority().is_some() => http::Uri::from(pq.clone()),
        _ => uri,
    };
    let upgrade = is_upgrade(head);
    let listed = connection_tokens(head.headers());
    let mut headers = HeaderMap::with_capacity(head.header_count() + 2);
    let mut forwarded_for: Option<Vec<u8>> = None;
    for (name, value) in head.headers() {
        let keep_for_upgrade = upgrade
            && (name.eq_ignore_ascii_case(b"upgrade") || name.eq_ignore_ascii_case(b"connection"));
        if is_hop_by_hop(name, &listed) && !keep_for_upgrade {
            continue;
        }
        if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            let list = forwarded_for.get_or_insert_with(Vec::new);
            if !list.is_empty() {
                list.extend_from_slice(b", ");
            }
            list.extend_from_slice(value);
            continue;
        }
        if name.eq_ignore_ascii_case(b"x-forwarded-proto") || name.eq_ignore_ascii_case(b"expect") {
            // Set below / answered by Kennel itself.
            continue;
        }
        let name = HeaderName::from_bytes(name).map_err(|_| bad("header name"))?;
        let value = HeaderValue::from_bytes(value).map_err(|_| bad("header value"))?;
        headers.append(name, value);
    }
    if !headers.contains_key(http::header::HOST) {
        // An HTTP/1.0 client may send none; HTTP/1.1 needs one.
        let host = format!("{}:{}", backend.0, backend.1);
        headers.insert(
            http::header::HOST,
            HeaderValue::from_str(&host).map_err(|_| bad("host"))?,
        );
    }
    if upgrade {
        headers.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("upgrade"),
        );
    }
    let mut list = forwarded_for.unwrap_or_default();
    if !list.is_empty() {
        list.extend_from_slice(b", ");
    }
    list.extend_from_slice(peer.ip().to_string().as_bytes());
    headers.insert(
        HeaderName::from_static("x-forwarded-for"),
        HeaderValue::from_bytes(&list).map_err(|_| bad("x-forwarded-for"))?,
    );
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_str(scheme).map_err(|_| bad("scheme"))?,
    );
    let mut request = http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// How Kennel frames a proxied response body for its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (a `HEAD`, `1xx`, `204`, `304`).
    None,
    /// `Content-Length` as the back end gave it.
    Length(u64),
    /// Chunked by Kennel (an HTTP/1.1 client, a length the back end did
    /// not give).
    Chunked,
    /// Until close (an HTTP/1.0 client, a length the back end did not
    /// give).
    UntilClose,
}

/// The framing for a response with `status` and `headers`, to a `HEAD`
/// request or not, for a client that speaks HTTP/1.1 or not.
pub fn framing(status: u16, headers: &HeaderMap, head_request: bool, http11: bool) -> Framing {
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Framing::None;
    }
    let length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match length {
        Some(n) if !headers.contains_key(http::header::TRANSFER_ENCODING) => Framing::Length(n),
        _ if http11 => Framing::Chunked,
        _ => Framing::UntilClose,
    }
}

/// The response head Kennel writes to its client: the back end's status,
/// reason and end-to-end fields, then its own framing fields and
/// `Connection: close` when `close`.
pub fn response_head(
    status: u16,
    reason: Option<&[u8]>,
    headers: &HeaderMap,
    framing: Framing,
    close: bool,
) -> Vec<u8> {
    let listed: Vec<Vec<u8>> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|v| {
            list_elements(v.as_bytes())
                .filter(|t| !t.is_empty())
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect();
    let listed: Vec<&[u8]> = listed.iter().map(Vec::as_slice).collect();
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    match reason {
        Some(reason) => out.extend_from_slice(reason),
        None => out.extend_from_slice(crate::http::reason(status).as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        let keep_for_upgrade =
            status == 101 && (name == http::header::UPGRADE || name == http::header::CONNECTION);
        if (is_hop_by_hop(name.as_str().as_bytes(), &listed) && !keep_for_upgrade)
            || name == http::header::CONTENT_LENGTH
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(n.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::None => {
            // A HEAD or 304 says what the length would be.
            if let Some(v) = headers.get(http::header::CONTENT_LENGTH) {
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(v.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        Framing::UntilClose => {}
    }
    if close && status != 101 {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_head, Limits};
    use bytes::BytesMut;

    fn head(text: &str) -> Head {
        let mut buf = BytesMut::from(text.as_bytes());
        parse_head(&mut buf, &Limits::default()).unwrap().unwrap()
    }

    fn peer() -> SocketAddr {
        "192.0.2.7:5555".parse().unwrap()
    }

    #[test]
    fn hop_by_hop_fields_stay_and_forwarded_fields_are_set() {
        let h = head(
            "POST /app/x?y=1 HTTP/1.1\r\nHost: site\r\nConnection: keep-alive, X-Secret\r\n\
             X-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Forwarded-For: 6.6.6.6\r\n\
             X-Forwarded-Proto: gopher\r\nX-Keep: yes\r\nContent-Length: 3\r\n\r\n",
        );
        let req =
            build_request(&h, ("127.0.0.1", 8080), peer(), "http", ProxyBody::empty()).unwrap();
        assert_eq!(req.uri(), "/app/x?y=1");
        assert_eq!(req.method(), "POST");
        let h = req.headers();
        for gone in ["connection", "x-secret", "keep-alive", "te"] {
            assert!(h.get(gone).is_none(), "{gone}");
        }
        assert_eq!(h["host"], "site");
        assert_eq!(h["x-keep"], "yes");
        assert_eq!(h["content-length"], "3");
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, 192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "http");
    }

    #[test]
    fn an_upgrade_keeps_its_fields() {
        let h = head(
            "GET /ws HTTP/1.1\r\nHost: site\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n",
        );
        assert!(is_upgrade(&h));
        let req = build_request(&h, ("b", 1), peer(), "https", ProxyBody::empty()).unwrap();
        assert_eq!(req.headers()["upgrade"], "websocket");
        assert_eq!(req.headers()["connection"], "upgrade");
        assert_eq!(req.headers()["x-forwarded-for"], "192.0.2.7");
        assert_eq!(req.headers()["x-forwarded-proto"], "https");
    }

    #[test]
    fn response_framing_and_head() {
        let mut headers = HeaderMap::new();
        headers.insert("content-length", HeaderValue::from_static("5"));
        headers.insert("connection", HeaderValue::from_static("close, x-hop"));
        headers.insert("x-hop", HeaderValue::from_static("1"));
        headers.insert("x-end", HeaderValue::from_static("2"));
        assert_eq!(framing(200, &headers, false, true), Framing::Length(5));
        assert_eq!(framing(200, &headers, true, true), Framing::None);
        assert_eq!(framing(304, &headers, false, true), Framing::None);
        let head = response_head(200, None, &headers, Framing::Length(5), false);
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "HTTP/1.1 200 OK\r\nx-end: 2\r\ncontent-length: 5\r\n\r\n"
        );
        let mut unframed = HeaderMap::new();
        unframed.insert("x-end", HeaderValue::from_static("2"));
        assert_eq!(framing(200, &unframed, false, true), Framing::Chunked);
        assert_eq!(framing(200, &unframed, false, false), Framing::UntilClose);
        let head = response_head(404, Some(b"Nope"), &unframed, Framing::UntilClose, true);
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "HTTP/1.1 404 Nope\r\nx-end: 2\r\nconnection: close\r\n\r\n"
        );
    }
}
