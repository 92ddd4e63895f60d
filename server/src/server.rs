//! The server: one long-lived [`Server`] object and its accept loop.
//!
//! A [`Server`] owns everything connections share: the config it serves
//! from (an [`Active`] snapshot in an `ArcSwap`, so a reload can swap in a
//! new one while connections finish on theirs), the handler links (a
//! [`LinkTable`], by stable id), the connection [`Registry`], the static
//! [`FileCache`], the access log and the [`Counters`] the metrics read.
//! [`Server::reload`] (SIGHUP, the control port's `reload`) reads the
//! config database again and swaps the new config in whole, or keeps the
//! old one and says precisely why not.
//! [`Server::serve`] runs the accept loop on a listener until a shutdown
//! token is cancelled (both are arguments, so tests run the real server on
//! `127.0.0.1:0` and stop it when they like; [`Background`] does that on a
//! thread of its own), then lets connections finish for up to
//! `kennel.shutdown_grace_ms` and stops the links.
//!
//! Does not own the process, signals or logging setup (see
//! [`crate::process`]), nor what a connection does (see
//! [`crate::connection`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::access::AccessLog;
use crate::alarm::Alarms;
use crate::config::{ConfigError, ServerSelector, Snapshot};
use crate::connection;
use crate::dir::FileCache;
use crate::http::Limits;
use crate::link::{Link, LinkError, LinkTable, Mongrel2Link};
use crate::metrics::{HandlerStats, Metrics, RouteStats};
use crate::proxy::Proxy;
use crate::registry::{OutboxLimits, Registry};

/// How often a drain says what it still waits for: every 2 s.
const DRAIN_REPORT_EVERY: Duration = Duration::from_secs(2);

/// Pause after an accept error such as EMFILE, so a full fd table is not a
/// busy loop (the backlog holds the clients meanwhile).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A handler's sockets could not be bound.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The admin listener could not be bound.
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
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

/// Why a reload was refused (the old config keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The server was made from a snapshot, not from a database.
    #[error("this server was not started from a config database, so there is nothing to reload")]
    NoSource,
    /// The database does not hold a valid config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The TLS files are missing or wrong.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// A new handler's sockets or the access log could not be opened.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The new `bind_addr:port` could not be bound.
    #[error(transparent)]
    Listen(#[from] Box<crate::process::ProcessError>),
    /// Reading the database failed unexpectedly.
    #[error("reading the config failed: {0}")]
    Task(String),
}

/// Where a server's config comes from, so that it can be read again.
#[derive(Debug, Clone)]
pub struct Source {
    /// The config database (a path that stays valid after any chroot).
    pub db: PathBuf,
    /// The server's `uuid`.
    pub uuid: String,
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
    /// `http`, or `https` for a `use_ssl` server.
    pub url_scheme: &'static str,
    /// The TLS handshake of a `use_ssl` server's connections.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The access log, unless disabled (reopened by every reload).
    pub access_log: Option<AccessLog>,
    /// Each host's routes' statistics, by host index then route index,
    /// with one more per host for requests no route matched.
    pub route_stats: Box<[Box<[Arc<RouteStats>]>]>,
    /// Each handler's statistics, by the snapshot's handler index.
    pub handler_stats: Box<[Arc<HandlerStats>]>,
}

impl Active {
    /// The statistics of route `route` of host `host` (`None`: no route).
    pub fn route_stats(&self, host: usize, route: Option<usize>) -> &Arc<RouteStats> {
        let routes = &self.route_stats[host];
        &routes[route.unwrap_or(routes.len() - 1)]
    }
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
    /// TLS handshakes completed.
    pub tls_handshakes: AtomicU64,
    /// TLS handshakes failed or timed out.
    pub tls_handshake_failures: AtomicU64,
    /// Reloads that swapped a new config in.
    pub reloads: AtomicU64,
    /// Reloads refused (the old config kept serving).
    pub reload_failures: AtomicU64,
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
    counters: Counters,
    metrics: Metrics,
    proxy: Proxy,
    alarms: Arc<Alarms>,
    /// TLS session resumption, kept across reloads.
    resumption: crate::tls::Resumption,
    /// Where the config is read again from on reload.
    source: Mutex<Option<Source>>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// Links a reload's config no longer names, until nothing uses them.
    retired: Mutex<Vec<Arc<Mongrel2Link>>>,
    /// A listener a reload bound for a new `bind_addr:port`, for the
    /// accept loop to take (told by `listener_changed`).
    next_listener: Mutex<Option<std::net::TcpListener>>,
    listener_changed: tokio::sync::Notify,
    /// Rate-limited warnings: when each key last warned, and how many
    /// times it was quiet since.
    warned: Mutex<std::collections::HashMap<String, (u64, u64)>>,
    /// Set once shutdown began (the admin listener's `/ready` says no).
    draining: std::sync::atomic::AtomicBool,
    /// Told whenever a connection closes (the accept loop waits on it when
    /// `kennel.max_connections` are open, the shutdown for the last one).
    connection_closed: tokio::sync::Notify,
    /// The task that fires the alarms.
    alarm_driver: tokio::task::JoinHandle<()>,
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
        let resumption = crate::tls::Resumption::new()?;
        let tls = tls_acceptor(&snapshot, &resumption)?;
        let active_settings = snapshot.settings.clone();
        let alarms = Arc::new(Alarms::new());
        let metrics = Metrics::default();
        let active = activate(Arc::clone(&snapshot), tls, &mut links, &registry, &metrics)?;
        Ok(Arc::new(Server {
            current: ArcSwap::from_pointee(active),
            links: Mutex::new(links),
            registry,
            files: FileCache::new(),
            counters: Counters::default(),
            metrics,
            proxy: Proxy::new(&active_settings),
            alarm_driver: tokio::spawn({
                let alarms = Arc::clone(&alarms);
                async move { alarms.drive().await }
            }),
            alarms,
            resumption,
            source: Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
            retired: Mutex::new(Vec::new()),
            next_listener: Mutex::new(None),
            listener_changed: tokio::sync::Notify::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
            warned: Mutex::new(std::collections::HashMap::new()),
            connection_closed: tokio::sync::Notify::new(),
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

    /// TLS session resumption (the ticket key and session cache every
    /// config of this server shares).
    pub fn tls_resumption(&self) -> &crate::tls::Resumption {
        &self.resumption
    }

    /// Per-route and per-handler statistics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The `/metrics` page: everything in Prometheus text format.
    pub fn encode_metrics(&self) -> String {
        let c = &self.counters;
        let counters = vec![
            (
                "connections_accepted",
                "Connections accepted.",
                Counters::get(&c.connections_accepted),
            ),
            (
                "handler_unavailable",
                "Requests answered 503 because no handler process took them.",
                Counters::get(&c.handler_unavailable),
            ),
            (
                "outbox_overflows",
                "Connections dropped for not reading what was queued for them.",
                Counters::get(&c.outbox_overflows),
            ),
            (
                "write_timeouts",
                "Connections dropped because a write made no progress in time.",
                Counters::get(&c.write_timeouts),
            ),
            (
                "tls_handshakes",
                "TLS handshakes completed.",
                Counters::get(&c.tls_handshakes),
            ),
            (
                "tls_handshake_failures",
                "TLS handshakes failed or timed out.",
                Counters::get(&c.tls_handshake_failures),
            ),
            (
                "reloads",
                "Reloads that swapped a new config in.",
                Counters::get(&c.reloads),
            ),
            (
                "reload_failures",
                "Reloads refused (the old config kept serving).",
                Counters::get(&c.reload_failures),
            ),
            (
                "bytes_read",
                "Bytes read from clients.",
                Counters::get(&connection::BYTES_READ),
            ),
            (
                "bytes_written",
                "Bytes written to clients.",
                Counters::get(&connection::BYTES_WRITTEN),
            ),
        ];
        let gauges = vec![
            (
                "connections_open",
                "Connections open now.",
                Counters::get(&c.connections_open) as i64,
            ),
            (
                "draining",
                "1 while the server drains for shutdown.",
                i64::from(self.is_draining()),
            ),
        ];
        let held_now = self
            .current()
            .links
            .iter()
            .map(|l| (l.handler_id(), l.held_now() as u64))
            .collect();
        self.metrics.encode(crate::metrics::Gauges {
            counters,
            gauges,
            held_now,
        })
    }

    /// The HTTP client of the proxy routes (one keep-alive pool).
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// Accepts on `listener` and serves each connection until `shutdown` is
    /// cancelled; then stops accepting, lets connections finish for up to
    /// `kennel.shutdown_grace_ms` and stops the links.
    pub async fn serve(
        self: &Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), ServerError> {
        let mut listener = listener;
        // Until the drain is over, so `/ready` can say "draining".
        let admin_stop = CancellationToken::new();
        if let Some(addr) = self.current().snapshot.settings.kennel_admin_listen {
            let admin = crate::admin::bind(addr)?;
            tokio::spawn(crate::admin::serve(
                admin,
                Arc::clone(self),
                admin_stop.clone(),
            ));
        }
        let _admin_stop = admin_stop.drop_guard();
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, server = %self.current().snapshot.server.uuid, "listening");
        }
        // The connection count is the counters' own (each connection counts
        // itself in and out), so an idle connection carries no permit or
        // tracker token; `connection_closed` wakes this loop.
        'accept: loop {
            // Read per connection: a reload may change them.
            let (max, keepalive) = {
                let settings = &self.current.load().snapshot.settings;
                (
                    settings.kennel_max_connections as u64,
                    settings.net_tcp_keepalive,
                )
            };
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
                _ = self.listener_changed.notified() => {
                    self.take_new_listener(&mut listener);
                    continue;
                }
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
        let grace =
            Duration::from_millis(self.current().snapshot.settings.kennel_shutdown_grace_ms);
        self.draining.store(true, Ordering::Release);
        let drained = tokio::time::timeout(grace, async {
            let mut report = tokio::time::Instant::now();
            while Counters::get(&self.counters.connections_open) > 0 {
                let closed = self.connection_closed.notified();
                if Counters::get(&self.counters.connections_open) == 0 {
                    break;
                }
                if tokio::time::Instant::now() >= report {
                    self.say_what_drains_wait_for(grace);
                    report += DRAIN_REPORT_EVERY;
                }
                let _ = tokio::time::timeout_at(report, closed).await;
            }
        });
        if drained.await.is_err() {
            info!(
                remaining = Counters::get(&self.counters.connections_open),
                "shutdown grace period (kennel.shutdown_grace_ms) over; closing the rest"
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
        if let Some(link) = self.links.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
            return Some(link);
        }
        let retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        retired
            .iter()
            .find(|l| l.id() == id)
            .map(|l| Arc::clone(l) as Arc<dyn Link>)
    }

    /// Stops every link (blocking: joins their threads).
    fn stop_links(&self) {
        self.links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shutdown();
        let retired = std::mem::take(&mut *self.retired.lock().unwrap_or_else(|e| e.into_inner()));
        for link in retired {
            link.shutdown();
        }
    }

    /// Whether a warning about `key` may be logged now: at most one per
    /// key per [`crate::metrics::OUTAGE_WARNING_EVERY_MS`], so a client
    /// cannot fill the log by repeating what causes it. `Some(n)`: log it,
    /// saying `n` more happened since the last one.
    pub fn may_warn(&self, key: &str) -> Option<u64> {
        let now = self.registry.now_ms();
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        match warned.get_mut(key) {
            Some((at, quiet))
                if now.saturating_sub(*at) < crate::metrics::OUTAGE_WARNING_EVERY_MS =>
            {
                *quiet += 1;
                None
            }
            Some((at, quiet)) => {
                *at = now;
                Some(std::mem::take(quiet))
            }
            None => {
                // Bounded: a key per back end or handler, not per client.
                if warned.len() < 10_000 {
                    warned.insert(key.to_owned(), (now, 0));
                }
                Some(0)
            }
        }
    }

    /// Whether the server has stopped accepting and is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Logs what a drain waits for: connections by what they are doing.
    fn say_what_drains_wait_for(&self, grace: Duration) {
        let open = Counters::get(&self.counters.connections_open);
        // Connections that talked to a handler: waiting for a reply, a
        // stream or long-poll the handler keeps open, or a WebSocket.
        let with_handlers = (self.registry.len() as u64).min(open);
        info!(
            connections = open,
            with_handlers,
            grace_ms = grace.as_millis() as u64,
            "draining: waiting for {open} connection(s) to finish ({with_handlers} talking to \
             handlers: replies, streams, long-polls, WebSockets) for up to the grace period; \
             a second SIGINT or SIGTERM exits at once"
        );
    }

    /// Says where the config can be read again from: reloads need it.
    pub fn set_source(&self, source: Source) {
        *self.source.lock().unwrap_or_else(|e| e.into_inner()) = Some(source);
    }

    /// Reads the config again and swaps it in, or keeps the old one and
    /// says why (logged at error level, with the table, row and column).
    ///
    /// What changes: routes, hosts, handlers (a handler whose
    /// `send_spec` and `recv_spec` are unchanged keeps its link, so its
    /// processes never notice; a new one is bound; one no longer named
    /// keeps serving what it was given until no connection uses it, then
    /// is closed), directories, proxies, settings read per request or per
    /// connection, TLS certificates, the access log (reopened), and the
    /// listening address (a new `bind_addr:port` is bound and the old one
    /// stops accepting). A request already being served finishes on the
    /// config it started on. Settings read once at start (outbox limits,
    /// the proxy pool, ZeroMQ options of links kept) wait for a restart.
    pub async fn reload(self: &Arc<Self>) -> Result<(), ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let result = self.reload_now().await;
        match &result {
            Ok(()) => {
                Counters::bump(&self.counters.reloads);
                let active = self.current();
                let routes: usize = active.snapshot.hosts.iter().map(|h| h.routes.len()).sum();
                info!(
                    hosts = active.snapshot.hosts.len(),
                    routes,
                    handlers = active.snapshot.handlers.len(),
                    "reloaded the config"
                );
            }
            Err(e) => {
                Counters::bump(&self.counters.reload_failures);
                error!(error = %e, "reload refused; still serving the previous config");
            }
        }
        result
    }

    async fn reload_now(self: &Arc<Self>) -> Result<(), ReloadError> {
        let source = self
            .source
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(ReloadError::NoSource)?;
        let resumption = self.resumption.clone();
        // Off the runtime's threads: SQLite and the certificate files.
        let (snapshot, tls) = tokio::task::spawn_blocking(move || {
            let snapshot = crate::config::load(&source.db, &ServerSelector::Uuid(source.uuid))?;
            let tls = tls_acceptor(&snapshot, &resumption)?;
            Ok::<_, ReloadError>((snapshot, tls))
        })
        .await
        .map_err(|e| ReloadError::Task(e.to_string()))??;
        let old = self.current();
        let (old_server, new_server) = (&old.snapshot.server, &snapshot.server);
        let listener = if (&old_server.bind_addr, old_server.port)
            != (&new_server.bind_addr, new_server.port)
        {
            Some(crate::process::listen(&snapshot).map_err(Box::new)?)
        } else {
            None
        };
        for warning in &snapshot.warnings {
            warn!(target: "kennel::config", "{warning}");
        }
        let active = {
            let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
            let active = activate(
                Arc::new(snapshot),
                tls,
                &mut links,
                &self.registry,
                &self.metrics,
            )?;
            let retired = links.retire(&active.links);
            self.retired
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(retired);
            active
        };
        self.current.store(Arc::new(active));
        if let Some(listener) = listener {
            *self.next_listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(listener);
            self.listener_changed.notify_one();
        }
        self.reap_retired_later();
        Ok(())
    }

    /// Closes each retired link once nothing but the retired list holds
    /// it (no config, no connection), checking every second.
    fn reap_retired_later(self: &Arc<Self>) {
        if self
            .retired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
        {
            return;
        }
        let server = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(server) = server.upgrade() else {
                    return;
                };
                let unused: Vec<Arc<Mongrel2Link>> = {
                    let mut retired = server.retired.lock().unwrap_or_else(|e| e.into_inner());
                    let (unused, used) = std::mem::take(&mut *retired)
                        .into_iter()
                        .partition(|link| Arc::strong_count(link) == 1);
                    *retired = used;
                    unused
                };
                let left = !server
                    .retired
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_empty();
                if !unused.is_empty() {
                    for link in &unused {
                        info!(
                            handler = link.handler_id(),
                            "closing the link of a handler the config no longer names"
                        );
                    }
                    tokio::task::spawn_blocking(move || unused.iter().for_each(|l| l.shutdown()));
                }
                if !left {
                    return;
                }
            }
        });
    }

    /// Swaps in the listener a reload bound, if there is one.
    fn take_new_listener(&self, listener: &mut TcpListener) {
        let Some(next) = self
            .next_listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        match TcpListener::from_std(next) {
            Ok(next) => {
                if let Ok(addr) = next.local_addr() {
                    info!(%addr, "listening on the reloaded address; the old one stops accepting");
                }
                *listener = next;
            }
            Err(e) => error!(error = %e, "cannot use the reloaded listener; keeping the old one"),
        }
    }
}

/// A snapshot made ready to serve: its handlers resolved to links (kept
/// or bound), its access log opened.
fn activate(
    snapshot: Arc<Snapshot>,
    tls: Option<Arc<rustls::ServerConfig>>,
    links: &mut LinkTable,
    registry: &Arc<Registry>,
    metrics: &Metrics,
) -> Result<Active, ServerError> {
    let resolved = links.resolve(&snapshot.handlers, registry, &snapshot.settings)?;
    let access_log = open_access_log(&snapshot)?;
    let route_stats = snapshot
        .hosts
        .iter()
        .map(|host| {
            host.routes
                .iter()
                .map(|(key, _)| key)
                .chain([""])
                .map(|key| metrics.route(&host.name, key))
                .collect()
        })
        .collect();
    let handler_stats = snapshot
        .handlers
        .iter()
        .map(|h| metrics.handler(h.id))
        .collect();
    Ok(Active {
        route_stats,
        handler_stats,
        limits: Limits::from_settings(&snapshot.settings),
        links: resolved.into_boxed_slice(),
        url_scheme: if tls.is_some() { "https" } else { "http" },
        tls,
        access_log,
        snapshot,
    })
}

/// The TLS acceptor of `snapshot`'s server (`None` for plain HTTP),
/// logging what loading it noticed.
fn tls_acceptor(
    snapshot: &Snapshot,
    resumption: &crate::tls::Resumption,
) -> Result<Option<Arc<rustls::ServerConfig>>, crate::tls::TlsError> {
    let Some(loaded) = crate::tls::load(snapshot, resumption)? else {
        return Ok(None);
    };
    for warning in &loaded.warnings {
        warn!("TLS: {warning}");
    }
    info!(sni = ?loaded.names, "TLS: certificates loaded");
    Ok(Some(loaded.config))
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
    AccessLog::open(
        &snapshot.server_path(path),
        snapshot.settings.kennel_access_log_format,
    )
    .map(Some)
    .map_err(|source| ServerError::AccessLog {
        server: snapshot.server.id,
        path: path.clone(),
        source,
    })
}
