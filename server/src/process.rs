//! Running the server as a process: the listening socket, chroot and
//! privilege drop, daemonizing, the pid file, logging, the runtime and
//! signals — in the order Mongrel2 does them, with every fork before any
//! thread starts.
//!
//! Owns the process-level lifecycle of `kennel serve` and Mongrel2's form
//! `kennel CONFIG.sqlite SERVER_UUID`, including what it tells a service
//! manager ([`crate::notify`]: `READY=1` once serving, `RELOADING=1` and
//! `READY=1` around a reload, `STOPPING=1` when the drain begins). The
//! serving itself is [`crate::server::run`]; config loading is
//! [`crate::config`]; starting and signalling a server from outside is
//! [`crate::lifecycle`].

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::socket::{
    self, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage,
};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{self, ConfigError, ServerSelector, Snapshot};
use crate::notify::Notifier;

/// The listen backlog: room for a burst of new connections while every
/// worker is busy (Mongrel2 uses 128, which drops SYNs under load tests).
pub const LISTEN_BACKLOG: i32 = 1024;

/// How often a draining server's status line (`STATUS=draining N
/// connections`) is brought up to date for the service manager.
const DRAIN_STATUS_EVERY: Duration = Duration::from_secs(1);

/// How the server was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `kennel serve`: stays in the foreground, logs to stdout.
    Foreground,
    /// `kennel CONFIG.sqlite UUID`: Mongrel2's form; daemonizes unless the
    /// `server.daemonize` setting is 0 or `--foreground` is given.
    Mongrel2 {
        /// `--foreground` was given.
        foreground: bool,
    },
}

/// Why the server could not start (or stopped with an error).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The config database is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listening socket could not be made.
    #[error("server {server}: columns bind_addr/port: cannot listen on {addr}: {reason}")]
    Listen {
        /// `server.id`.
        server: i64,
        /// `bind_addr:port`.
        addr: String,
        /// Why.
        reason: String,
    },
    /// chroot, privilege drop or daemonizing failed.
    #[error("server {server}: column chroot: {reason}")]
    Chroot {
        /// `server.id`.
        server: i64,
        /// Why.
        reason: String,
    },
    /// The pid file is held by a running server, or cannot be written.
    #[error("server {server}: column pid_file: {reason}")]
    PidFile {
        /// `server.id`.
        server: i64,
        /// Why.
        reason: String,
    },
    /// The log file cannot be opened.
    #[error("server {server}: column error_log: cannot open {path:?}: {source}")]
    ErrorLog {
        /// `server.id`.
        server: i64,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error(transparent)]
    Server(#[from] crate::server::ServerError),
    /// The configured control port cannot be bound.
    #[error(transparent)]
    Control(#[from] crate::control::ControlError),
    /// The runtime could not start.
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
}

impl ProcessError {
    /// The exit code: 64 for configuration problems, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ProcessError::Config(_)
            | ProcessError::Listen { .. }
            | ProcessError::Chroot { .. }
            | ProcessError::PidFile { .. }
            | ProcessError::ErrorLog { .. }
            | ProcessError::Server(_)
            | ProcessError::Control(_) => 64,
            ProcessError::Runtime(_) => 1,
        }
    }
}

/// Loads the config, sets the process up and serves until SIGINT/SIGTERM.
///
/// With `NOTIFY_SOCKET` set (systemd's `Type=notify`, or `kennel start`),
/// says when it serves, reloads and stops, and why it could not start.
pub fn serve(db: &Path, selector: &ServerSelector, mode: Mode) -> Result<(), ProcessError> {
    // Connected before any chroot hides the socket's path.
    let notifier = Arc::new(Notifier::from_env());
    let result = serve_with(db, selector, mode, &notifier);
    if let Err(e) = &result {
        notifier.failed(&e.to_string(), e.exit_code());
    }
    result
}

fn serve_with(
    db: &Path,
    selector: &ServerSelector,
    mode: Mode,
    notifier: &Arc<Notifier>,
) -> Result<(), ProcessError> {
    let snapshot = config::load(db, selector)?;
    for warning in &snapshot.warnings {
        eprintln!("kennel: warning: {warning}");
    }
    let server_id = snapshot.server.id;
    // Before binding, so a second copy of a running server says why (the
    // path as seen from here, outside the chroot).
    if let Some(path) = pid_file_path(&snapshot.server) {
        check_pid_file(&snapshot, &path)?;
    }
    let listener = listen(&snapshot)?;
    let daemonize = match mode {
        Mode::Foreground => false,
        Mode::Mongrel2 { foreground } => !foreground && snapshot.settings.server_daemonize,
    };
    // Opened before any chroot, which usually has no /dev.
    let dev_null = if daemonize {
        Some(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map_err(|e| ProcessError::Chroot {
                    server: server_id,
                    reason: format!("cannot open /dev/null to daemonize: {e}"),
                })?,
        )
    } else {
        None
    };
    // Before the chroot moves the file system under us.
    let source = reload_source(db, &snapshot);
    let dropped_to = enter_chroot(&snapshot)?;
    if let Some(dev_null) = &dev_null {
        // Before any thread exists: the runtime and ZeroMQ start later.
        let daemonized = nix::unistd::daemon(true, true).and_then(|()| {
            nix::unistd::dup2_stdin(dev_null)?;
            nix::unistd::dup2_stdout(dev_null)?;
            nix::unistd::dup2_stderr(dev_null)
        });
        daemonized.map_err(|e| ProcessError::Chroot {
            server: server_id,
            reason: format!("cannot daemonize: {e}"),
        })?;
        // The pid a listener waits on from here (`kennel start` notices a
        // daemon that dies before it is ready).
        notifier.main_pid("starting");
    }
    let error_log = init_logging(&snapshot, daemonize)?;
    if let Some((uid, gid)) = dropped_to {
        info!(uid, gid, chroot = %snapshot.server.chroot, "chrooted; now running as the owner of the chroot directory");
    }
    raise_open_file_limit();
    // From here on a daemon has no terminal: errors go to the error log too.
    let pid_file = write_pid_file(&snapshot).inspect_err(|e| error!(error = %e, "cannot start"))?;
    let result = run_runtime(snapshot, listener, source, error_log, Arc::clone(notifier));
    if let Some(path) = pid_file {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Binds `bind_addr:port` with a deep backlog, before any chroot (so the
/// address can be privileged) and before forking.
pub fn listen(snapshot: &Snapshot) -> Result<TcpListener, ProcessError> {
    let server = &snapshot.server;
    let shown = format!("{}:{}", server.bind_addr, server.port);
    let fail = |reason: String| ProcessError::Listen {
        server: server.id,
        addr: shown.clone(),
        reason,
    };
    let addr: SocketAddr = (server.bind_addr.as_str(), server.port)
        .to_socket_addrs()
        .map_err(|e| fail(e.to_string()))?
        .next()
        .ok_or_else(|| fail("the address resolves to nothing".into()))?;
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| fail(e.to_string()))?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| fail(e.to_string()))?;
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr)).map_err(|e| fail(e.to_string()))?;
    socket::listen(
        &fd,
        Backlog::new(LISTEN_BACKLOG).map_err(|e| fail(e.to_string()))?,
    )
    .map_err(|e| fail(e.to_string()))?;
    let listener = TcpListener::from(fd);
    listener
        .set_nonblocking(true)
        .map_err(|e| fail(e.to_string()))?;
    Ok(listener)
}

/// Mongrel2's chroot and privilege drop (`mongrel2/src/unixy.c`): as root,
/// chroot into the directory and become the user and group that own it;
/// otherwise ("test mode") just run inside it. Without a chroot, as in
/// Mongrel2, the real user and group become the effective ones too (which
/// matters only for a set-uid binary).
///
/// Unlike Mongrel2, the supplementary groups are set to the directory's
/// group alone: Mongrel2 keeps root's (so group 0 stays with the server).
/// Returns the user and group the server now runs as, when it changed them.
fn enter_chroot(snapshot: &Snapshot) -> Result<Option<(u32, u32)>, ProcessError> {
    use nix::unistd::{getgid, getuid, setgid, setgroups, setuid, Gid, Uid};
    let dir = &snapshot.server.chroot;
    let fail = |reason: String| ProcessError::Chroot {
        server: snapshot.server.id,
        reason,
    };
    let root = nix::unistd::geteuid().is_root();
    if dir.is_empty() || !root {
        setgid(getgid()).map_err(|e| fail(format!("setgid {}: {e}", getgid())))?;
        setuid(getuid()).map_err(|e| fail(format!("setuid {}: {e}", getuid())))?;
    }
    if dir.is_empty() {
        return Ok(None);
    }
    let meta = std::fs::metadata(dir).map_err(|e| fail(format!("{dir:?}: {e}")))?;
    if root {
        let (uid, gid) = (meta.uid(), meta.gid());
        std::os::unix::fs::chroot(dir).map_err(|e| fail(format!("chroot {dir:?}: {e}")))?;
        std::env::set_current_dir("/").map_err(|e| fail(format!("chdir /: {e}")))?;
        // Groups first: only root may change them.
        setgroups(&[Gid::from_raw(gid)]).map_err(|e| fail(format!("setgroups [{gid}]: {e}")))?;
        setgid(Gid::from_raw(gid)).map_err(|e| fail(format!("setgid {gid}: {e}")))?;
        setuid(Uid::from_raw(uid)).map_err(|e| fail(format!("setuid {uid}: {e}")))?;
        Ok(Some((uid, gid)))
    } else {
        std::env::set_current_dir(dir).map_err(|e| fail(format!("chdir {dir:?}: {e}")))?;
        eprintln!("kennel: not root, so not chrooting: running inside {dir:?} instead");
        Ok(None)
    }
}

/// Where `server`'s pid file is, seen from outside its chroot (before the
/// server enters it, and from `kennel stop` and friends): m2sh's
/// `<chroot><pid_file>`, relative to the current directory. `None` when
/// the server has no pid file.
pub fn pid_file_path(server: &config::Server) -> Option<PathBuf> {
    if server.pid_file.is_empty() {
        None
    } else if server.chroot.is_empty() {
        Some(PathBuf::from(&server.pid_file))
    } else {
        Some(Path::new(&server.chroot).join(server.pid_file.trim_start_matches('/')))
    }
}

/// Refuses to start if the pid file at `path` names a live process
/// (another copy of this server, perhaps running as another user); a stale
/// one is left for [`write_pid_file`] to replace.
fn check_pid_file(snapshot: &Snapshot, path: &Path) -> Result<(), ProcessError> {
    if let Some(pid) = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
    {
        if crate::lifecycle::is_alive(pid) && pid != std::process::id() as i32 {
            return Err(ProcessError::PidFile {
                server: snapshot.server.id,
                reason: format!(
                    "{} says process {pid} is running; stop it first",
                    path.display()
                ),
            });
        }
    }
    Ok(())
}

/// Writes the pid file (after daemonizing, so it holds the final pid),
/// replacing a stale one.
fn write_pid_file(snapshot: &Snapshot) -> Result<Option<PathBuf>, ProcessError> {
    if snapshot.server.pid_file.is_empty() {
        return Ok(None);
    }
    let path = snapshot.server_path(&snapshot.server.pid_file);
    check_pid_file(snapshot, &path)?;
    let fail = |reason: String| ProcessError::PidFile {
        server: snapshot.server.id,
        reason,
    };
    let _ = std::fs::remove_file(&path);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| fail(format!("{}: {e}", parent.display())))?;
    }
    std::fs::write(&path, format!("{}\n", std::process::id()))
        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
    Ok(Some(path))
}

/// Raises the soft open-file limit to the hard one: every connection is a
/// descriptor, and a default soft limit of 1,024 would cap a server far
/// below what its memory allows (Mongrel2 asks for `superpoll.max_fd`).
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => info!(from = soft, to = hard, "raised the open-file limit"),
            Err(e) => warn!(error = %e, "cannot raise the open-file limit"),
        },
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot read the open-file limit"),
    }
}

/// Logs go to stdout in the foreground and to the server's `error_log` when
/// daemonized (returned, so a reload can reopen it). `RUST_LOG` selects
/// levels (default `info`).
fn init_logging(
    snapshot: &Snapshot,
    daemonized: bool,
) -> Result<Option<Arc<LogFile>>, ProcessError> {
    use std::io::IsTerminal;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let json = snapshot.settings.kennel_log_format == crate::config::LogFormat::Json;
    let file = if daemonized && !snapshot.server.error_log.is_empty() {
        let path = snapshot.server_path(&snapshot.server.error_log);
        Some(
            LogFile::open(path.clone()).map_err(|source| ProcessError::ErrorLog {
                server: snapshot.server.id,
                path,
                source,
            })?,
        )
    } else {
        None
    };
    // No colour escapes in a file, a pipe or the journal.
    let ansi =
        file.is_none() && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_ansi(ansi);
    match (&file, json) {
        (Some(file), true) => {
            let _ = builder.json().with_writer(Arc::clone(file)).try_init();
        }
        (Some(file), false) => {
            let _ = builder.with_writer(Arc::clone(file)).try_init();
        }
        (None, true) => {
            let _ = builder.json().try_init();
        }
        (None, false) => {
            let _ = builder.try_init();
        }
    }
    Ok(file)
}

/// The error log file, reopened on reload (so a rotated file is let go).
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl LogFile {
    fn open_file(path: &Path) -> std::io::Result<std::fs::File> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(parent);
        }
        OpenOptions::new().create(true).append(true).open(path)
    }

    /// Opens (appending, creating) `path`.
    pub fn open(path: PathBuf) -> std::io::Result<Arc<LogFile>> {
        let file = Self::open_file(&path)?;
        Ok(Arc::new(LogFile {
            path,
            file: Mutex::new(file),
        }))
    }

    /// Opens the path again; later lines go to the new file.
    pub fn reopen(&self) -> std::io::Result<()> {
        let file = Self::open_file(&self.path)?;
        *self.file.lock().unwrap_or_else(|e| e.into_inner()) = file;
        Ok(())
    }
}

impl Write for &LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

/// Where a reload reads the config database: its absolute path, seen from
/// inside the chroot when the server will chroot as root (the database
/// must then lie inside it; otherwise reloads fail, and this says so now).
fn reload_source(db: &Path, snapshot: &Snapshot) -> crate::server::Source {
    let absolute = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_owned());
    let chroot = &snapshot.server.chroot;
    let db = if !chroot.is_empty() && nix::unistd::geteuid().is_root() {
        let root = std::fs::canonicalize(chroot).unwrap_or_else(|_| PathBuf::from(chroot));
        match absolute.strip_prefix(&root) {
            Ok(inside) => Path::new("/").join(inside),
            Err(_) => {
                eprintln!(
                    "kennel: warning: the config database {} is outside the chroot {chroot:?}, so \
                     a reload will not find it; keep it inside to reload without a restart",
                    absolute.display()
                );
                absolute
            }
        }
    } else {
        absolute
    };
    crate::server::Source {
        db,
        uuid: snapshot.server.uuid.clone(),
    }
}

fn run_runtime(
    snapshot: Snapshot,
    listener: TcpListener,
    source: crate::server::Source,
    error_log: Option<Arc<LogFile>>,
    notifier: Arc<Notifier>,
) -> Result<(), ProcessError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kennel-worker")
        .build()
        .map_err(ProcessError::Runtime)?;
    runtime.block_on(async move {
        // First: a signal from whoever waits for READY=1 (or one during the
        // start) is then handled, not the end of the process.
        let signals = Signals::install()?;
        let bound = listener.local_addr().map_err(ProcessError::Runtime)?;
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(ProcessError::Runtime)?;
        let shutdown = CancellationToken::new();
        let configured = (snapshot.server.bind_addr.clone(), snapshot.server.port);
        let server = crate::server::Server::start(Arc::new(snapshot)).inspect_err(|e| {
            error!(error = %e, "cannot start");
        })?;
        server.set_source(source);
        let status = ServingStatus { bound, configured };
        tokio::spawn(watch_signals(
            signals,
            shutdown.clone(),
            Arc::clone(&server),
            error_log,
            Arc::clone(&notifier),
            status.clone(),
        ));
        // The listener is bound and listening: connections queue in its
        // backlog from now on, and the accept loop starts at once.
        notifier.ready(&status.describe(&server, None));
        // On a worker, not on this thread: accepting where the connection
        // tasks run saves a cross-thread wake-up per new connection.
        let serving = tokio::spawn(async move {
            let control =
                crate::control::ControlPort::start(Arc::clone(&server), shutdown.clone())?;
            let result = server.serve(listener, shutdown).await;
            if let Some(control) = control {
                let _ = tokio::task::spawn_blocking(move || control.stop()).await;
            }
            Ok::<_, ProcessError>(result?)
        });
        let result = match serving.await {
            Ok(result) => result,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        if let Err(e) = &result {
            error!(error = %e, "server stopped");
        }
        result
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    info!("stopped");
    Ok(())
}

/// The signal streams, installed once.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, ProcessError> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt()).map_err(ProcessError::Runtime)?,
            term: signal(SignalKind::terminate()).map_err(ProcessError::Runtime)?,
            hup: signal(SignalKind::hangup()).map_err(ProcessError::Runtime)?,
        })
    }
}

/// The service manager's status line while serving: where, and how the
/// last reload went.
#[derive(Debug, Clone)]
struct ServingStatus {
    /// The address bound at start (the real port when the config says 0).
    bound: SocketAddr,
    /// `bind_addr` and `port` at start.
    configured: (String, u16),
}

impl ServingStatus {
    fn describe(
        &self,
        server: &crate::server::Server,
        reload: Option<&Result<(), crate::server::ReloadError>>,
    ) -> String {
        let current = server.current();
        let s = &current.snapshot.server;
        let addr =
            if (s.bind_addr.as_str(), s.port) == (self.configured.0.as_str(), self.configured.1) {
                self.bound.to_string()
            } else {
                format!("{}:{}", s.bind_addr, s.port)
            };
        match reload {
            None => format!("serving on {addr}"),
            Some(Ok(())) => format!("serving on {addr}; config reloaded"),
            Some(Err(e)) => {
                format!("serving on {addr} with the previous config; the reload was refused: {e}")
            }
        }
    }
}

/// The service manager's status line while draining.
fn draining_status(server: &crate::server::Server) -> String {
    let open = crate::server::Counters::get(&server.counters().connections_open);
    let plural = if open == 1 { "" } else { "s" };
    format!("draining {open} connection{plural}")
}

/// SIGINT/SIGTERM: stop accepting and drain (`STOPPING=1`); a second one
/// exits at once. SIGHUP: reopen the error log and reload the config
/// (`RELOADING=1`, then `READY=1` whatever the outcome: the old config
/// keeps serving when the new one is refused).
async fn watch_signals(
    mut signals: Signals,
    shutdown: CancellationToken,
    server: Arc<crate::server::Server>,
    error_log: Option<Arc<LogFile>>,
    notifier: Arc<Notifier>,
    status: ServingStatus,
) {
    // One RELOADING=1 ... READY=1 pair at a time, in signal order.
    let reloads = Arc::new(tokio::sync::Mutex::new(()));
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = signals.int.recv() => {}
            _ = signals.term.recv() => {}
            _ = signals.hup.recv() => {
                if let Some(log) = &error_log {
                    if let Err(e) = log.reopen() {
                        warn!(file = %log.path.display(), error = %e, "cannot reopen the error log; still writing the old one");
                    }
                }
                info!("SIGHUP: reloading the config");
                let (server, notifier, status, shutdown) =
                    (Arc::clone(&server), Arc::clone(&notifier), status.clone(), shutdown.clone());
                let reloads = Arc::clone(&reloads);
                tokio::spawn(async move {
                    let _pair = reloads.lock().await;
                    notifier.reloading("reloading the config");
                    // Its outcome is logged by reload itself.
                    let outcome = server.reload().await;
                    if !shutdown.is_cancelled() {
                        notifier.ready(&status.describe(&server, Some(&outcome)));
                    }
                });
                continue;
            }
        }
        if stopping {
            let _ = std::io::stderr().write_all(b"kennel: second signal, exiting now\n");
            std::process::exit(130);
        }
        stopping = true;
        info!("shutting down: no new connections, draining the current ones (a second SIGINT exits at once)");
        notifier.stopping(&draining_status(&server));
        shutdown.cancel();
        if notifier.is_enabled() {
            let (server, notifier) = (Arc::clone(&server), Arc::clone(&notifier));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(DRAIN_STATUS_EVERY).await;
                    notifier.status(&draining_status(&server));
                }
            });
        }
    }
}
