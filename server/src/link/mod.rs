//! Handler links: how a request reaches the processes that serve a handler
//! route, and how their replies come back.
//!
//! A connection task hands a request to a [`Link`] with [`Link::dispatch`]
//! and learns at once what became of it ([`Handoff`]): sent, held until a
//! handler process can take it, or refused (the connection answers `503`
//! with `Retry-After`). It never encodes a link's messages itself. Replies
//! come back through the [`crate::registry::Registry`]: a link's reply
//! reader pushes each reply body into the outboxes of the connections it
//! names.
//!
//! Links are named by stable [`LinkId`]s, one per distinct `send_spec` +
//! `recv_spec` (Mongrel2's handler deduplication, PROTOCOL.md §1.1), not by
//! their position in a snapshot, so a config reload can keep, add and drain
//! them; a [`LinkTable`] owns them by those specs.
//!
//! Kinds:
//! - [`mongrel2`]: Mongrel2's PUSH/SUB pair, byte for byte (every existing
//!   handler and handler library);
//! - (the reliable broker link comes with its own issue).
//!
//! The threads and tasks behind a link are supervised: one that fails is
//! logged at error level and restarted, or the link is marked down (then
//! every request is refused with a 503 instead of vanishing).
//!
//! Does not own: connection ids and outboxes (the registry), HTTP, routing.

pub mod mongrel2;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::config::{Handler, Settings};
use crate::http::Head;
use crate::registry::Registry;

pub use mongrel2::{LinkError, Mongrel2Link};

#[cfg(test)]
mod endpoint_tests {
    use super::check_ipc_endpoint;

    #[test]
    fn ipc_endpoints_need_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let ok = format!("ipc://{}/sock", dir.path().display());
        assert_eq!(check_ipc_endpoint(&ok), Ok(()));
        assert_eq!(check_ipc_endpoint("tcp://127.0.0.1:1"), Ok(()));
        assert_eq!(check_ipc_endpoint("ipc://*"), Ok(()));
        let under_file = format!("ipc://{}/sock", file.display());
        assert_eq!(
            check_ipc_endpoint(&under_file),
            Err(format!("{} is not a directory", file.display()))
        );
        let missing = format!("ipc://{}/none/sock", dir.path().display());
        assert!(check_ipc_endpoint(&missing)
            .unwrap_err()
            .ends_with("No such file or directory (os error 2)"));
    }
}

/// A link's stable name: the same `send_spec` + `recv_spec` keeps its id
/// for the life of the server, across config reloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u32);

impl std::fmt::Display for LinkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "link {}", self.0)
    }
}

/// What became of a request handed to a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// A handler process has it (or ZeroMQ's queue for one does).
    Sent,
    /// Held until a handler process can take it; if none does in time the
    /// connection gets [`crate::registry::Outgoing::Unavailable`].
    Held,
    /// Not taken: answer `503` with `Retry-After` now.
    Refused(Refusal),
}

/// Why a link refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// As many requests as the link may hold are already waiting for a
    /// handler process (`kennel.handler.max_held`).
    #[error("the held-request queue is full")]
    QueueFull,
    /// The link is down: a thread or socket behind it failed for good.
    #[error("the link is down")]
    Down,
}

/// One request for a handler, as the connection task knows it. Borrowed:
/// the link encodes it before `dispatch` returns.
#[derive(Debug, Clone, Copy)]
pub struct LinkRequest<'a> {
    /// The parsed request head (path, method, headers …).
    pub head: &'a Head,
    /// The route key as configured (Mongrel2's `PATTERN`).
    pub pattern: &'a str,
    /// The request body (empty for none; a slice of an upload otherwise).
    pub body: &'a [u8],
    /// The client.
    pub peer: SocketAddr,
    /// The connection's id in the registry.
    pub conn_id: u64,
    /// `http` or `https`.
    pub url_scheme: &'a str,
    /// Replace the client's `X-Forwarded-For` with the peer's address
    /// (Mongrel2's default; off with `no_clobber_xff = 1`).
    pub clobber_forwarded_for: bool,
    /// Sent as `METHOD` instead of the request's method
    /// (`WEBSOCKET_HANDSHAKE`, `WEBSOCKET`).
    pub method: Option<&'a [u8]>,
    /// Further server keys, written after the others (`FLAGS`, the upload
    /// keys, `DOWNLOAD_CREDITS`).
    pub extra: &'a [(&'a [u8], &'a [u8])],
}

/// A way to the processes serving one handler.
pub trait Link: Send + Sync + std::fmt::Debug {
    /// The link's stable id.
    fn id(&self) -> LinkId;

    /// `handler.id` of the (first) handler row behind the link, for logs.
    fn handler_id(&self) -> i64;

    /// Hands `request` over; says at once what became of it.
    fn dispatch(&self, request: &LinkRequest<'_>) -> Handoff;

    /// The header block `request`'s message would carry, as this link
    /// encodes it (Mongrel2's netstring of JSON, or tnetstring dict), for a
    /// connection that sends many messages with the same headers: a
    /// WebSocket's messages differ only in their `FLAGS` and body.
    fn encode_headers(&self, request: &LinkRequest<'_>) -> Vec<u8>;

    /// Hands over a message for `conn_id` at `path` with the header block
    /// `headers` (from [`encode_headers`](Self::encode_headers)) and
    /// `body`; as [`dispatch`](Self::dispatch).
    fn dispatch_encoded(&self, conn_id: u64, path: &[u8], headers: &[u8], body: &[u8]) -> Handoff;

    /// Sends the next slice of a streamed upload (`upload.stream = 1`) for
    /// the request at `path`: a message whose headers are only
    /// `UPLOAD_STREAM` (the slice's offset) and, on the last slice,
    /// `UPLOAD_STREAM_DONE` (PROTOCOL.md §1.6).
    fn dispatch_slice(
        &self,
        conn_id: u64,
        path: &[u8],
        offset: u64,
        last: bool,
        data: &[u8],
    ) -> Handoff;

    /// Tells the handler that connection `conn_id` is gone (Mongrel2's
    /// disconnect notice). Best effort: a notice no handler takes in time
    /// is dropped.
    fn disconnect(&self, conn_id: u64);

    /// Tells the handler that `bytes` more of its reply to `conn_id` were
    /// written to the client (`download.flow_control`'s credit notice).
    fn credits(&self, conn_id: u64, bytes: u64);

    /// Whether the link can take requests (false once it is down).
    fn is_up(&self) -> bool;

    /// Requests waiting now for a handler process to connect.
    fn held_now(&self) -> usize;
}

/// The links a connection has sent requests to (each is told when it
/// goes), by id: usually one, kept without an allocation.
#[derive(Debug, Default)]
pub enum LinkIds {
    /// None yet.
    #[default]
    None,
    /// One.
    One(LinkId),
    /// Several.
    Many(Box<Vec<LinkId>>),
}

impl LinkIds {
    /// Adds `id` unless it is there already.
    pub fn add(&mut self, id: LinkId) {
        match self {
            LinkIds::None => *self = LinkIds::One(id),
            LinkIds::One(one) if *one == id => {}
            LinkIds::One(one) => *self = LinkIds::Many(Box::new(vec![*one, id])),
            LinkIds::Many(many) => {
                if !many.contains(&id) {
                    many.push(id);
                }
            }
        }
    }

    /// The ids, in the order first used.
    pub fn as_slice(&self) -> &[LinkId] {
        match self {
            LinkIds::None => &[],
            LinkIds::One(id) => std::slice::from_ref(id),
            LinkIds::Many(ids) => ids,
        }
    }
}

/// Checks that an `ipc://` endpoint's directory exists and is one, before
/// ZeroMQ binds it: libzmq reports some such failures with an errno the
/// `zmq` crate does not know, and that crate panics on one ("unknown
/// error"), which would take the server down over a typo in a path. Other
/// endpoints pass.
pub fn check_ipc_endpoint(spec: &str) -> Result<(), String> {
    let Some(path) = spec.strip_prefix("ipc://") else {
        return Ok(());
    };
    if path == "*" || path.starts_with('@') {
        return Ok(());
    }
    let dir = match std::path::Path::new(path).parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("{} is not a directory", dir.display())),
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}

/// Every link of a server, by `send_spec` + `recv_spec`: what a snapshot's
/// handlers are resolved against.
///
/// Owns the ZeroMQ context the links' sockets live in (made with the first
/// link, under `kennel.zeromq.batch_scheduling`).
#[derive(Default)]
pub struct LinkTable {
    context: Option<zmq::Context>,
    links: HashMap<(String, String), Arc<Mongrel2Link>>,
    next_id: AtomicU32,
}

impl std::fmt::Debug for LinkTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkTable")
            .field("links", &self.links.len())
            .finish_non_exhaustive()
    }
}

impl LinkTable {
    /// An empty table.
    pub fn new() -> LinkTable {
        LinkTable::default()
    }

    /// The links for `handlers`, in their order: an existing link for the
    /// same specs is kept, a new one is bound. Must be called from within
    /// a tokio runtime (a new link spawns its reply reader there).
    pub fn resolve(
        &mut self,
        handlers: &[Handler],
        registry: &Arc<Registry>,
        settings: &Settings,
    ) -> Result<Vec<Arc<dyn Link>>, LinkError> {
        let mut resolved: Vec<Arc<dyn Link>> = Vec::with_capacity(handlers.len());
        if self.context.is_none() && !handlers.is_empty() {
            self.context = Some(mongrel2::new_context(
                settings.kennel_zeromq_batch_scheduling,
            )?);
        }
        for handler in handlers {
            let key = (handler.send_spec.clone(), handler.recv_spec.clone());
            let link = match self.links.get(&key) {
                Some(link) => Arc::clone(link),
                None => {
                    let id = LinkId(self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
                    let context = self.context.as_ref().expect("made above");
                    let link =
                        Mongrel2Link::bind(id, context, handler, Arc::clone(registry), settings)?;
                    self.links.insert(key, Arc::clone(&link));
                    link
                }
            };
            resolved.push(link);
        }
        Ok(resolved)
    }

    /// Takes out of the table every link that none of `keep` is: links a
    /// reload's config no longer names. They keep serving the requests
    /// already given to them until the caller stops them.
    pub fn retire(&mut self, keep: &[Arc<dyn Link>]) -> Vec<Arc<Mongrel2Link>> {
        let kept: std::collections::HashSet<LinkId> = keep.iter().map(|l| l.id()).collect();
        let gone: Vec<(String, String)> = self
            .links
            .iter()
            .filter(|(_, link)| !kept.contains(&link.id()))
            .map(|(key, _)| key.clone())
            .collect();
        gone.into_iter()
            .filter_map(|key| self.links.remove(&key))
            .collect()
    }

    /// The link with `id`, while the table has it.
    pub fn get(&self, id: LinkId) -> Option<Arc<dyn Link>> {
        self.links
            .values()
            .find(|l| l.id() == id)
            .map(|l| Arc::clone(l) as Arc<dyn Link>)
    }

    /// Stops every link (queued requests get a short linger to leave).
    pub fn shutdown(&mut self) {
        for (_, link) in self.links.drain() {
            link.shutdown();
        }
    }
}
