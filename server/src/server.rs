//! The server: one long-lived [`Server`] object and its accept loop.
//!
//! A [`Server`] owns everything connections share: the config it serves
//! from (an [`Active`] snapshot in an `ArcSwap`, so a reload can swap in a
//! new one while connections finish on theirs), the handler links (a
//! [`LinkTable`], by stable id), the connection [`Registry`], the static
//! [`FileCache`], the access log and the [`Counters`] the metrics read.
//! [`Server::serve`] runs the accept loop on a listener until a shutdown
//! token is cancelled (both are arguments, so tests run the real server on
//! `127.0.0.1:0` and stop it when they like; [`Background`] does that on a
//! thread of its own), then lets connections finish for up to
//! `kennel.shutdown_grace_ms` and stops the links.
//!
//! Does not own the process, signals or logging setup (see
//! [`crate::process`]), nor what a connection does (see
//! [`crate::connection`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::access::AccessLog;
use crate::alarm::Alarms;
use crate::config::Snapshot;
use crate::connection;
use crate::dir::FileCache;
use crate::http::Limits;
use crate::link::{Link, LinkError, LinkTable};
use crate::proxy::Proxy;
use crate::registry::{OutboxLimits, Registry};
use crate::roster::Roster;

/// Pause after an accept error such as EMFILE, so a full fd table is not a
/// busy loop (the backlog holds the clients meanwhile).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A handler's sockets could not be bound.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The access log could not be opened.
    #[error("server {server}: column access_log: cannot open {path:?}: {source}")]
    AccessLog {
        /// `server.id`.
        server: i64,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The config a connection serves a request from: a snapshot with its
/// handlers resolved to links. Immutable; replaced whole on reload.
#[derive(Debug)]
pub struct Active {
    /// The config.
    pub snapshot: Arc<Snapshot>,
    /// The link of each of the snapshot's handlers, by the same index.
    pub links: Box<[Arc<dyn Link>]>,
    /// The request-head limits from the settings.
    pub limits: Limits,
    /// `http` (or `https` once TLS is served).
    pub url_scheme: &'static str,
}

/// Counts the server keeps for its operators (the metrics read them).
/// Relaxed atomics: each is a plain tally.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Connections accepted since start.
    pub connections_accepted: AtomicU64,
    /// Requests whose head was read.
    pub requests: AtomicU64,
    /// `503`s because no handler took a request (refused or timed out).
    pub handler_unavailable: AtomicU64,
    /// Connections dropped for not reading what was queued for them.
    pub outbox_overflows: AtomicU64,
    /// Connections dropped because a write made no progress in time.
    pub write_timeouts: AtomicU64,
}

impl Counters {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The value of `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Everything connections share; lives as long as the server.
#[derive(Debug)]
pub struct Server {
    current: ArcSwap<Active>,
    links: Mutex<LinkTable>,
    registry: Arc<Registry>,
    files: FileCache,
    access_log: Option<AccessLog>,
    counters: Counters,
    proxy: Proxy,
    alarms: Arc<Alarms>,
    /// Told whenever a connection closes (the accept loop waits on it when
    /// `kennel.max_connections` are open, the shutdown for the last one).
    connection_closed: tokio::sync::Notify,
    /// The task that fires the alarms.
    alarm_driver: tokio::task::JoinHandle<()>,
    /// Every open connection's counters, for the control port.
    roster: Roster,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.alarm_driver.abort();
    }
}

impl Server {
    /// Binds the snapshot's handler links, opens the access log and makes
    /// the server. Must be called from within a tokio runtime (the links'
    /// reply readers are spawned on it).
    pub fn start(snapshot: Arc<Snapshot>) -> Result<Arc<Server>, ServerError> {
        let settings = &snapshot.settings;
        let registry = Arc::new(Registry::new(OutboxLimits::new(
            settings.kennel_outbox_max_bytes,
            Duration::from_millis(settings.kennel_outbox_stall_ms),
        )));
        let mut links = LinkTable::new();
        let resolved = links.resolve(&snapshot.handlers, &registry, settings)?;
        let access_log = open_access_log(&snapshot)?;
        let active_settings = snapshot.settings.clone();
        let alarms = Arc::new(Alarms::new());
        let active = Active {
            limits: Limits::from_settings(settings),
            links: resolved.into_boxed_slice(),
            snapshot,
            url_scheme: "http",
        };
        Ok(Arc::new(Server {
            current: ArcSwap::from_pointee(active),
            links: Mutex::new(links),
            registry,
            files: FileCache::new(),
            access_log,
            counters: Counters::default(),
            proxy: Proxy::new(&active_settings),
            alarm_driver: tokio::spawn({
                let alarms = Arc::clone(&alarms);
                async move { alarms.drive().await }
            }),
            alarms,
            connection_closed: tokio::sync::Notify::new(),
            roster: Roster::new(),
        }))
    }

    /// The config to serve the next request from.
    pub fn current(&self) -> Arc<Active> {
        self.current.load_full()
    }

    /// Makes `active` the current config if it is not already: a pointer
    /// comparison on the hot path, a reference count only after a reload.
    pub fn refresh(&self, active: &mut Arc<Active>) {
        let current = self.current.load();
        if !Arc::ptr_eq(&current, active) {
            *active = arc_swap::Guard::into_inner(current);
        }
    }

    /// Connection ids → outboxes.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Open static files shared by every connection.
    pub fn files(&self) -> &FileCache {
        &self.files
    }

    /// The access log, unless disabled.
    pub fn access_log(&self) -> Option<&AccessLog> {
        self.access_log.as_ref()
    }

    /// The server's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// A connection is gone: counts it out and wakes whoever waits for one.
    pub fn connection_closed(&self) {
        self.counters
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
        self.connection_closed.notify_waiters();
    }

    /// The deadlines of waiting connections, and their shutdown call.
    pub fn alarms(&self) -> &Alarms {
        &self.alarms
    }

    /// The HTTP client of the proxy routes (one keep-alive pool).
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// Every open connection's counters (the control port's
    /// `status what=net`).
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// Accepts on `listener` and serves each connection until `shutdown` is
    /// cancelled; then stops accepting, lets connections finish for up to
    /// `kennel.shutdown_grace_ms` and stops the links.
    pub async fn serve(
        self: &Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), ServerError> {
        let active = self.current();
        let settings = &active.snapshot.settings;
        let max = settings.kennel_max_connections as u64;
        let keepalive = settings.net_tcp_keepalive;
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, server = %active.snapshot.server.uuid, "listening");
        }
        // The connection count is the counters' own (each connection counts
        // itself in and out), so an idle connection carries no permit or
        // tracker token; `connection_closed` wakes this loop.
        'accept: loop {
            loop {
                // Made before the check, so a close in between is not missed.
                let closed = self.connection_closed.notified();
                if Counters::get(&self.counters.connections_open) < max {
                    break;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break 'accept,
                    _ = closed => {}
                }
            }
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break 'accept,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                },
            };
            if keepalive {
                let _ = set_keepalive(&stream);
            }
            tokio::spawn(connection::serve(stream, peer, Arc::clone(self)));
        }
        drop(listener);
        // Idle connections close now; busy ones finish.
        self.alarms.shutdown();
        let grace = Duration::from_millis(settings.kennel_shutdown_grace_ms);
        let drained = tokio::time::timeout(grace, async {
            while Counters::get(&self.counters.connections_open) > 0 {
                let closed = self.connection_closed.notified();
                if Counters::get(&self.counters.connections_open) == 0 {
                    break;
                }
                closed.await;
            }
        });
        if drained.await.is_err() {
            info!(
                remaining = Counters::get(&self.counters.connections_open),
                "shutdown grace period over; closing the rest"
            );
        }
        let server = Arc::clone(self);
        tokio::task::spawn_blocking(move || server.stop_links())
            .await
            .ok();
        Ok(())
    }

    /// The handler link with `id` (the current config's, or one a
    /// connection still names after a reload).
    pub fn link(&self, id: crate::link::LinkId) -> Option<Arc<dyn Link>> {
        if let Some(link) = self.current.load().links.iter().find(|l| l.id() == id) {
            return Some(Arc::clone(link));
        }
        self.links.lock().unwrap_or_else(|e| e.into_inner()).get(id)
    }

    /// Stops every link (blocking: joins their threads).
    fn stop_links(&self) {
        self.links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shutdown();
    }
}

/// `SO_KEEPALIVE` on an accepted socket (`net.tcp_keepalive = 1`).
fn set_keepalive(stream: &tokio::net::TcpStream) -> std::io::Result<()> {
    nix::sys::socket::setsockopt(stream, nix::sys::socket::sockopt::KeepAlive, &true)
        .map_err(std::io::Error::from)
}

/// Serves `snapshot` on `listener` until `shutdown` is cancelled: makes a
/// [`Server`] and runs [`Server::serve`].
pub async fn run(
    snapshot: Arc<Snapshot>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    Server::start(snapshot)?.serve(listener, shutdown).await
}

/// A server running [`Server::serve`] on a thread of its own, with a
/// runtime of its own: for tests, tools and embedding Kennel in another
/// program. Stopped (gracefully) by [`Background::stop`], or told to stop
/// when dropped.
pub struct Background {
    addr: std::net::SocketAddr,
    server: Arc<Server>,
    shutdown: CancellationToken,
    thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
}

impl Background {
    /// Serves `snapshot` on `listener` (already bound: `127.0.0.1:0` for
    /// any free port) with `workers` runtime threads; returns once it is
    /// accepting, or with why it could not start.
    pub fn start(
        snapshot: Arc<Snapshot>,
        listener: std::net::TcpListener,
        workers: usize,
    ) -> std::io::Result<Background> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .thread_name("kennel-worker")
            .enable_all()
            .build()?;
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let (started, ready) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("kennel-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = started.send(Err(e));
                            return Ok(());
                        }
                    };
                    let server = match Server::start(snapshot) {
                        Ok(server) => server,
                        Err(e) => {
                            let _ = started.send(Err(std::io::Error::other(e.to_string())));
                            return Err(e);
                        }
                    };
                    let _ = started.send(Ok(Arc::clone(&server)));
                    server.serve(listener, token).await
                })
            })?;
        match ready.recv() {
            Ok(Ok(server)) => Ok(Background {
                addr,
                server,
                shutdown,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::other("the server thread stopped at once")),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The running server (its counters, registry …).
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// Stops it as SIGTERM would and waits; what [`Server::serve`] returned.
    pub fn stop(mut self) -> Result<(), ServerError> {
        self.shutdown.cancel();
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Ok(()),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn open_access_log(snapshot: &Snapshot) -> Result<Option<AccessLog>, ServerError> {
    let path = &snapshot.server.access_log;
    if snapshot.settings.disable_access_logging || path.is_empty() {
        return Ok(None);
    }
    AccessLog::open(&snapshot.server_path(path))
        .map(Some)
        .map_err(|source| ServerError::AccessLog {
            server: snapshot.server.id,
            path: path.clone(),
            source,
        })
}
