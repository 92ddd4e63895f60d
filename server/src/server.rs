//! The server: one listener's accept loop over a config snapshot.
//!
//! Owns the accept loop, the connection limit, the bridge's lifetime and
//! graceful shutdown: [`run`] takes the listener and a shutdown token as
//! arguments, so tests run the real server on `127.0.0.1:0` and stop it
//! when they like ([`Background`] does that on a thread of its own). On
//! shutdown it stops accepting, lets connections finish
//! for up to `kennel.shutdown_grace_ms`, then stops the bridge. Does not
//! own the process, signals or logging setup (see [`crate::process`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use crate::access::AccessLog;
use crate::bridge::{Bridge, BridgeError};
use crate::config::Snapshot;
use crate::connection::{self, Context};
use crate::http::Limits;
use crate::registry::{OutboxLimits, Registry};

/// Pause after an accept error such as EMFILE, so a full fd table is not a
/// busy loop (the backlog holds the clients meanwhile).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A handler's sockets could not be bound.
    #[error(transparent)]
    Bridge(#[from] BridgeError),
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

/// Serves `snapshot` on `listener` until `shutdown` is cancelled.
pub async fn run(
    snapshot: Arc<Snapshot>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let settings = &snapshot.settings;
    let registry = Arc::new(Registry::new(OutboxLimits::new(
        settings.kennel_outbox_max_bytes,
        Duration::from_millis(settings.kennel_outbox_stall_ms),
    )));
    let bridge = Bridge::start(&snapshot.handlers, Arc::clone(&registry), settings)?;
    let access_log = open_access_log(&snapshot)?;
    let ctx = Arc::new(Context {
        snapshot: Arc::clone(&snapshot),
        registry,
        bridge: bridge.handle(),
        limits: Limits::from_settings(settings),
        url_scheme: "http",
        access_log,
        files: crate::dir::FileCache::new(),
    });
    let connections = Arc::new(Semaphore::new(settings.kennel_max_connections));
    let tracker = TaskTracker::new();
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, server = %snapshot.server.uuid, "listening");
    }
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = Arc::clone(&connections).acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let ctx = Arc::clone(&ctx);
        let shutdown = shutdown.clone();
        let span = tracing::debug_span!("conn", peer.addr = %peer);
        tracker.spawn(
            async move {
                connection::serve(stream, peer, ctx, shutdown).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
    drop(listener);
    tracker.close();
    let grace = Duration::from_millis(settings.kennel_shutdown_grace_ms);
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        info!(
            remaining = tracker.len(),
            "shutdown grace period over; closing the rest"
        );
    }
    drop(ctx);
    tokio::task::spawn_blocking(move || bridge.shutdown())
        .await
        .ok();
    Ok(())
}

/// A server running [`run`] on a thread of its own, with a runtime of its
/// own: for tests, tools and embedding Kennel in another program. Stopped
/// (gracefully) by [`Background::stop`], or told to stop when dropped.
pub struct Background {
    addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
}

impl Background {
    /// Serves `snapshot` on `listener` (already bound: `127.0.0.1:0` for
    /// any free port) with `workers` runtime threads; returns once it is
    /// accepting.
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
                    let _ = started.send(Ok(()));
                    run(snapshot, listener, token).await
                })
            })?;
        match ready.recv() {
            Ok(Ok(())) => Ok(Background {
                addr,
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

    /// Stops it as SIGTERM would and waits; what [`run`] returned.
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
