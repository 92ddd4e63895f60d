//! Starting, stopping, reloading and asking after a server from outside its
//! process, as m2sh's `start`, `stop`, `reload` and `running` do
//! (`mongrel2/tools/m2sh/src/commands/running.c`): choose servers from the
//! config database, find each one's process through its pid file, signal
//! it, or launch it in Mongrel2's form `kennel DB UUID`.
//!
//! Owns server selection for these commands, reading a pid file and judging
//! the process it names ([`PidState`]), the signals, waiting for a stopped
//! server to go, and waiting for a launched daemon to say it serves (over a
//! private `NOTIFY_SOCKET`, [`crate::notify::Listener`]). It does not own
//! the text the commands print or their arguments ([`crate::cli`]), nor
//! what a server does at start and on a signal ([`crate::process`]).
//!
//! Unlike m2sh, it never signals a pid that is not positive (a pid file
//! holding `garbage` reads as 0 in m2sh, whose `kill(0, SIGINT)` then
//! interrupts m2sh's own process group), and `--every` means every server
//! (m2sh 1.12 starts only the first, and refuses to stop several).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::config::{self, ConfigError, ServerSelector};
use crate::notify;

/// How long `kennel start` waits for a launched daemon to say it serves
/// (`READY=1`): binding handler sockets and reading TLS files take well
/// under a second, so 30 s means something is stuck.
pub const START_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How much longer than `kennel.shutdown_grace_ms` `kennel stop` waits by
/// default for the process to exit: the drain's end, closing the handler
/// sockets and removing the pid file.
pub const STOP_MARGIN: Duration = Duration::from_secs(5);

/// How often a wait looks at a process again.
const POLL: Duration = Duration::from_millis(20);

/// Which servers a command is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The database's only server (an error when it has several).
    Only,
    /// By `uuid`, else by `name` (Kennel's `--server`).
    UuidOrName(String),
    /// By `name` (m2sh's `-name`).
    Name(String),
    /// By `default_host` (m2sh's `-host`).
    Host(String),
    /// By `uuid` (m2sh's `-uuid`).
    Uuid(String),
    /// Every server (m2sh's `-every`).
    Every,
}

/// Why a command about a server's process failed; [`Self::exit_code`]
/// says how the command exits.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The database cannot be read, or nothing (or too much) matches.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `--every` on a database without servers.
    #[error("the config database has no servers")]
    NoServers,
    /// No selection on a database with several servers.
    #[error(
        "the config database has {count} servers; choose one with --name, --host, --uuid or \
         --server, or all with --every"
    )]
    NotChosen {
        /// How many servers there are.
        count: usize,
    },
    /// The server has no pid file, so its process cannot be found.
    #[error(
        "server {server}: column pid_file is empty, so there is no pid file to find its process by"
    )]
    NoPidFile {
        /// `server.id`.
        server: i64,
    },
    /// No pid file: the server is not running.
    #[error("kennel is not running because pid_file isn't there ({})", .path.display())]
    NotRunning {
        /// Where the pid file would be.
        path: PathBuf,
    },
    /// The pid file names a process that is gone.
    #[error("kennel at PID {pid} is NOT running (stale pid file {})", .path.display())]
    Stale {
        /// The pid in the file.
        pid: i32,
        /// The pid file.
        path: PathBuf,
    },
    /// The pid file cannot be read or holds no process id.
    #[error("{}: {reason}", .path.display())]
    BadPidFile {
        /// The pid file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The signal could not be sent.
    #[error("cannot send {signal} to kennel at PID {pid}: {errno}{}", if *.errno == Errno::EPERM { " (it runs as another user; try as that user or root)" } else { "" })]
    Signal {
        /// The process.
        pid: i32,
        /// The signal.
        signal: Signal,
        /// Why.
        errno: Errno,
    },
    /// The process did not exit in time after `stop`.
    #[error(
        "kennel at PID {pid} is still running {}s after {signal} (still draining?); `kennel \
         stop` again makes it exit at once",
        .waited.as_secs()
    )]
    StillRunning {
        /// The process.
        pid: i32,
        /// The signal sent.
        signal: Signal,
        /// How long it was given.
        waited: Duration,
    },
    /// `--every` cannot start servers that stay in the foreground.
    #[error(
        "the setting server.daemonize is 0, so each server would stay in the foreground: start \
         them one at a time (--name, --uuid, --host or --server), or with kennel serve"
    )]
    Foreground,
    /// The program could not be run at all.
    #[error("cannot run {program}: {source}")]
    Launch {
        /// What was run.
        program: String,
        /// Why.
        source: io::Error,
    },
    /// The launched `kennel DB UUID` failed before it daemonized (it said
    /// why on standard error).
    #[error("the server did not start: `{command}` failed ({status})")]
    Exited {
        /// What was run.
        command: String,
        /// How it ended.
        status: std::process::ExitStatus,
    },
    /// The daemon said it cannot start.
    #[error("the server did not start: {why}")]
    NotStarted {
        /// Its status line.
        why: String,
        /// The exit status it ends with.
        exit_status: u8,
    },
    /// The daemon exited without saying why.
    #[error("kennel at PID {pid} exited before it was serving; its error log says why")]
    DiedBeforeReady {
        /// The daemon.
        pid: i32,
    },
    /// The daemon did not say it serves in time.
    #[error(
        "kennel did not say it was serving within {}s; its error log says why",
        .waited.as_secs()
    )]
    NotReady {
        /// How long it was given.
        waited: Duration,
    },
    /// Several servers, and some failed (each failure was reported).
    #[error("{failed} of {total} servers failed (see above)")]
    Several {
        /// How many failed.
        failed: usize,
        /// How many there were.
        total: usize,
        /// The exit code of the first failure.
        code: u8,
    },
}

impl LifecycleError {
    /// The exit code, in the LSB init-script tradition for the "not
    /// running" answers: 3 no pid file (not running), 1 a stale or bad pid
    /// file or another failure, 64 a configuration problem; a failed start
    /// exits as the server did.
    pub fn exit_code(&self) -> u8 {
        match self {
            LifecycleError::Config(_)
            | LifecycleError::NoServers
            | LifecycleError::NotChosen { .. }
            | LifecycleError::NoPidFile { .. }
            | LifecycleError::Foreground => 64,
            LifecycleError::NotRunning { .. } => 3,
            LifecycleError::Stale { .. }
            | LifecycleError::BadPidFile { .. }
            | LifecycleError::Signal { .. }
            | LifecycleError::StillRunning { .. }
            | LifecycleError::Launch { .. }
            | LifecycleError::DiedBeforeReady { .. }
            | LifecycleError::NotReady { .. } => 1,
            LifecycleError::Exited { status, .. } => match status.code() {
                Some(code @ 1..=255) => code as u8,
                _ => 1,
            },
            LifecycleError::NotStarted { exit_status, .. } => (*exit_status).max(1),
            LifecycleError::Several { code, .. } => *code,
        }
    }
}

/// The servers `selection` names, in `id` order. Reads only the `server`
/// table, so a config that no longer validates (say, edited for a reload)
/// can still be stopped.
pub fn select(db: &Path, selection: &Selection) -> Result<Vec<config::Server>, LifecycleError> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|source| ConfigError::Open {
                path: db.to_owned(),
                source,
            })?;
    let servers = config::list_servers(&conn)?;
    let only = |what: &'static str, value: &str, hit: &dyn Fn(&config::Server) -> bool| {
        let found: Vec<config::Server> = servers.iter().filter(|s| hit(s)).cloned().collect();
        match found.len() {
            0 => Err(LifecycleError::Config(ConfigError::NoSuchServer {
                what,
                value: value.to_owned(),
            })),
            1 => Ok(found),
            _ => Err(LifecycleError::Config(ConfigError::AmbiguousServer {
                what,
                value: value.to_owned(),
                ids: found.iter().map(|s| s.id).collect(),
            })),
        }
    };
    match selection {
        Selection::Only => match servers.len() {
            1 => Ok(servers),
            count => Err(LifecycleError::NotChosen { count }),
        },
        Selection::Every if servers.is_empty() => Err(LifecycleError::NoServers),
        Selection::Every => Ok(servers),
        Selection::Name(v) => only("name", v, &|s| &s.name == v),
        Selection::Host(v) => only("default_host", v, &|s| &s.default_host == v),
        Selection::Uuid(v) => only("uuid", v, &|s| &s.uuid == v),
        Selection::UuidOrName(v) => {
            if servers.iter().any(|s| &s.uuid == v) {
                only("uuid", v, &|s| &s.uuid == v)
            } else {
                only("uuid or name", v, &|s| &s.name == v)
            }
        }
    }
}

/// What a pid file says about its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidState {
    /// No pid file: not running.
    Absent {
        /// Where it would be.
        path: PathBuf,
    },
    /// The process it names is alive (or exists as another user's, which
    /// `kill(pid, 0)` answers with `EPERM`, as m2sh counts it).
    Running {
        /// The process.
        pid: i32,
        /// The pid file.
        path: PathBuf,
    },
    /// The process it names is gone (or a zombie).
    Stale {
        /// The pid in the file.
        pid: i32,
        /// The pid file.
        path: PathBuf,
    },
}

impl PidState {
    /// Reads the pid file of `server` (m2sh's `<chroot><pid_file>`,
    /// relative to the current directory) and judges its process.
    pub fn of(server: &config::Server) -> Result<PidState, LifecycleError> {
        let path = crate::process::pid_file_path(server)
            .ok_or(LifecycleError::NoPidFile { server: server.id })?;
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(PidState::Absent { path });
            }
            Err(e) => {
                return Err(LifecycleError::BadPidFile {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        let pid = match text.trim().parse::<i32>() {
            Ok(pid) if pid > 0 => pid,
            _ => {
                return Err(LifecycleError::BadPidFile {
                    path,
                    reason: format!("holds no process id ({:?})", text.trim()),
                })
            }
        };
        Ok(if is_alive(pid) {
            PidState::Running { pid, path }
        } else {
            PidState::Stale { pid, path }
        })
    }

    /// The running process, or the error that says why there is none.
    pub fn running(self) -> Result<i32, LifecycleError> {
        match self {
            PidState::Running { pid, .. } => Ok(pid),
            PidState::Stale { pid, path } => Err(LifecycleError::Stale { pid, path }),
            PidState::Absent { path } => Err(LifecycleError::NotRunning { path }),
        }
    }
}

/// Whether `pid` is a live process: `kill(pid, 0)` reaches it (or is
/// refused it, so it exists), and it is not a zombie waiting for a parent
/// that does not reap.
pub fn is_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => !is_zombie(pid),
        Err(_) => false,
    }
}

/// `/proc/<pid>/stat`'s state is `Z`.
fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may
    // itself hold spaces and parentheses.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state == "Z")
}

/// Sends `signal` to `server`'s process; returns its pid.
pub fn signal(server: &config::Server, signal: Signal) -> Result<i32, LifecycleError> {
    let pid = PidState::of(server)?.running()?;
    kill(Pid::from_raw(pid), signal).map_err(|errno| LifecycleError::Signal {
        pid,
        signal,
        errno,
    })?;
    Ok(pid)
}

/// Waits up to `timeout` for `pid` to exit.
pub fn wait_for_exit(pid: i32, signal: Signal, timeout: Duration) -> Result<(), LifecycleError> {
    let deadline = Instant::now() + timeout;
    while is_alive(pid) {
        if Instant::now() >= deadline {
            return Err(LifecycleError::StillRunning {
                pid,
                signal,
                waited: timeout,
            });
        }
        std::thread::sleep(POLL);
    }
    Ok(())
}

/// How long `kennel stop` waits by default: the server's
/// `kennel.shutdown_grace_ms` (the default when the config cannot be
/// read) plus [`STOP_MARGIN`].
pub fn stop_timeout(db: &Path, server: &config::Server) -> Duration {
    let grace_ms = config::load(db, &ServerSelector::Uuid(server.uuid.clone()))
        .map(|s| s.settings.kennel_shutdown_grace_ms)
        .unwrap_or_else(|_| config::Settings::default().kennel_shutdown_grace_ms);
    Duration::from_millis(grace_ms) + STOP_MARGIN
}

/// How `kennel start` runs a server: this program, through an optional
/// prefix (m2sh's `-sudo`).
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The `kennel` binary.
    pub program: PathBuf,
    /// A command to run it through, split on whitespace (`sudo`,
    /// `sudo -u www`).
    pub sudo: Option<String>,
}

/// What a start did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// The daemon said it serves.
    Serving {
        /// Its pid.
        pid: i32,
        /// Its status line (`serving on ADDR`).
        status: String,
    },
    /// Launched through `--sudo`, whose clean environment drops
    /// `NOTIFY_SOCKET`: it daemonized, but whether it serves is not known.
    Launched,
}

impl Launcher {
    fn command(&self, db: &Path, server: &config::Server) -> Command {
        let mut command = match self.sudo.as_deref().map(str::split_whitespace) {
            Some(mut words) => {
                let mut c = Command::new(words.next().unwrap_or("sudo"));
                c.args(words).arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        command.arg(db).arg(&server.uuid);
        command
    }

    fn shown(&self, db: &Path, server: &config::Server) -> String {
        let program = self.program.display();
        let prefix = self
            .sudo
            .as_deref()
            .map(|s| format!("{s} "))
            .unwrap_or_default();
        format!("{prefix}{program} {} {}", db.display(), server.uuid)
    }

    /// Whether `server` daemonizes (`server.daemonize`); a config that
    /// does not load counts as daemonizing, so the launched server says
    /// what is wrong with it.
    pub fn daemonizes(db: &Path, server: &config::Server) -> bool {
        config::load(db, &ServerSelector::Uuid(server.uuid.clone()))
            .map(|s| s.settings.server_daemonize)
            .unwrap_or(true)
    }

    /// Runs `kennel DB UUID` in place of this process: a server that stays
    /// in the foreground, as `m2sh start` runs one. Returns only on failure.
    pub fn exec(&self, db: &Path, server: &config::Server) -> LifecycleError {
        use std::os::unix::process::CommandExt;
        let source = self.command(db, server).exec();
        LifecycleError::Launch {
            program: self.shown(db, server),
            source,
        }
    }

    /// Runs `kennel DB UUID`, which daemonizes, and waits until the daemon
    /// says it serves, or why it cannot, over a private `NOTIFY_SOCKET`.
    /// Through `--sudo` it only waits for the launch (as m2sh does).
    pub fn start(&self, db: &Path, server: &config::Server) -> Result<Started, LifecycleError> {
        let shown = self.shown(db, server);
        let mut command = self.command(db, server);
        let listener = if self.sudo.is_none() {
            let listener = notify::Listener::bind_in(&std::env::temp_dir()).map_err(|source| {
                LifecycleError::Launch {
                    program: format!("{shown} (making its notify socket)"),
                    source,
                }
            })?;
            command.env(notify::NOTIFY_SOCKET, listener.path());
            Some(listener)
        } else {
            None
        };
        let status = command.status().map_err(|source| LifecycleError::Launch {
            program: shown.clone(),
            source,
        })?;
        if !status.success() {
            return Err(LifecycleError::Exited {
                command: shown,
                status,
            });
        }
        match listener {
            Some(listener) => wait_until_serving(&listener, START_READY_TIMEOUT),
            None => Ok(Started::Launched),
        }
    }
}

/// Reads the daemon's notifications until `READY=1` (serving), an
/// `EXIT_STATUS=` (it cannot start), its exit, or `timeout`.
fn wait_until_serving(
    listener: &notify::Listener,
    timeout: Duration,
) -> Result<Started, LifecycleError> {
    let deadline = Instant::now() + timeout;
    let mut pid = None;
    let mut status = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LifecycleError::NotReady { waited: timeout });
        }
        let message = listener
            .recv(left.min(Duration::from_millis(100)))
            .map_err(|source| LifecycleError::Launch {
                program: "kennel (reading its notify socket)".into(),
                source,
            })?;
        match message {
            Some(m) => {
                pid = m.main_pid().or(pid);
                if let Some(s) = m.status() {
                    status = s.to_owned();
                }
                if let Some(exit_status) = m.exit_status() {
                    let why = status.strip_prefix("cannot start: ").unwrap_or(&status);
                    return Err(LifecycleError::NotStarted {
                        why: why.to_owned(),
                        exit_status,
                    });
                }
                if m.is_ready() {
                    return Ok(Started::Serving {
                        pid: pid.unwrap_or(0),
                        status,
                    });
                }
            }
            None => {
                if let Some(pid) = pid.filter(|&p| !is_alive(p)) {
                    return Err(LifecycleError::DiedBeforeReady { pid });
                }
            }
        }
    }
}

/// How a server is named in output about several: its name, else its uuid.
pub fn display_name(server: &config::Server) -> &str {
    if server.name.is_empty() {
        &server.uuid
    } else {
        &server.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(pid_file: &str, chroot: &str) -> config::Server {
        config::Server {
            id: 1,
            uuid: "u".into(),
            name: "main".into(),
            access_log: String::new(),
            error_log: String::new(),
            pid_file: pid_file.into(),
            chroot: chroot.into(),
            default_host: "localhost".into(),
            bind_addr: "127.0.0.1".into(),
            port: 0,
            use_ssl: false,
            control_port: String::new(),
        }
    }

    #[test]
    fn a_pid_file_is_absent_running_stale_or_bad() {
        let dir = tempfile::tempdir().unwrap();
        let chroot = dir.path().to_str().unwrap().to_owned();
        let s = server("/run/kennel.pid", &chroot);
        let path = dir.path().join("run/kennel.pid");
        assert_eq!(
            PidState::of(&s).unwrap(),
            PidState::Absent { path: path.clone() }
        );
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("{}\n", std::process::id())).unwrap();
        assert_eq!(
            PidState::of(&s).unwrap(),
            PidState::Running {
                pid: std::process::id() as i32,
                path: path.clone()
            }
        );
        // A child that exited and was reaped is gone.
        let mut child = Command::new("true").spawn().unwrap();
        let gone = child.id() as i32;
        child.wait().unwrap();
        std::fs::write(&path, format!("{gone}")).unwrap();
        let err = PidState::of(&s).unwrap().running().unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert_eq!(
            err.to_string(),
            format!(
                "kennel at PID {gone} is NOT running (stale pid file {})",
                path.display()
            )
        );
        // Never 0 or negative: kill(0, sig) would signal our own group.
        for bad in ["garbage", "0", "-1", ""] {
            std::fs::write(&path, bad).unwrap();
            let err = PidState::of(&s).unwrap_err();
            assert!(
                matches!(err, LifecycleError::BadPidFile { .. }),
                "{bad}: {err}"
            );
        }
        assert!(matches!(
            PidState::of(&server("", "")).unwrap_err(),
            LifecycleError::NoPidFile { server: 1 }
        ));
    }

    #[test]
    fn a_zombie_is_not_alive() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !is_zombie(pid) {
            assert!(Instant::now() < deadline, "the child never exited");
            std::thread::sleep(POLL);
        }
        assert!(!is_alive(pid));
        child.wait().unwrap();
        assert!(!is_alive(0) && !is_alive(-1));
        assert!(is_alive(std::process::id() as i32));
    }

    #[test]
    fn exit_codes_follow_lsb_for_not_running() {
        let not = LifecycleError::NotRunning {
            path: "run/kennel.pid".into(),
        };
        assert_eq!(not.exit_code(), 3);
        assert_eq!(
            not.to_string(),
            "kennel is not running because pid_file isn't there (run/kennel.pid)"
        );
        assert_eq!(LifecycleError::NotChosen { count: 2 }.exit_code(), 64);
        assert_eq!(
            LifecycleError::NotStarted {
                why: "x".into(),
                exit_status: 64
            }
            .exit_code(),
            64
        );
    }
}
