//! systemd's readiness protocol (`sd_notify(3)`): the datagrams a server
//! sends to `$NOTIFY_SOCKET` (`READY=1`, `RELOADING=1`, `STOPPING=1`,
//! `STATUS=...`), and the receiving end `kennel start` listens on to learn
//! that the daemon it launched is serving (or why it is not).
//!
//! Owns the socket and the message text (the `sd-notify` crate's
//! [`NotifyState`] vocabulary). It does not decide when to send what:
//! [`crate::process`] does, at start, on SIGHUP and on SIGTERM/SIGINT.
//!
//! The socket is connected once, when the [`Notifier`] is made, before
//! any chroot: `sd_notify::notify` looks the path up again for every
//! message, which fails once the process is inside a chroot that does not
//! hold `/run/systemd/notify` (or a `kennel start` socket). A connected
//! datagram socket keeps working after chroot and the privilege drop.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use sd_notify::NotifyState;
use tracing::debug;

/// The environment variable that names the service manager's socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// `EXIT_STATUS=`: the exit status a server that could not start will end
/// with (informational for systemd; `kennel start` reports it).
pub const EXIT_STATUS: &str = "EXIT_STATUS";

/// The sending end: a datagram socket connected to `$NOTIFY_SOCKET`, or
/// nothing when the variable is unset (then every send does nothing).
#[derive(Debug, Default)]
pub struct Notifier {
    socket: Option<UnixDatagram>,
}

impl Notifier {
    /// Connects to `$NOTIFY_SOCKET` if it is set. A socket that cannot be
    /// reached is reported on standard error once and then ignored: the
    /// server runs without a service manager rather than not at all.
    pub fn from_env() -> Notifier {
        let Some(path) = std::env::var_os(NOTIFY_SOCKET) else {
            return Notifier::default();
        };
        match connect(&path) {
            Ok(socket) => Notifier {
                socket: Some(socket),
            },
            Err(e) => {
                eprintln!(
                    "kennel: warning: cannot reach {NOTIFY_SOCKET}={}: {e}; not telling the \
                     service manager anything",
                    path.to_string_lossy()
                );
                Notifier::default()
            }
        }
    }

    /// Whether a service manager listens.
    pub fn is_enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends `states` in one datagram, one `KEY=VALUE` line each. A failed
    /// send is logged at debug: the service manager going away must not
    /// disturb serving.
    pub fn send(&self, states: &[NotifyState]) {
        let Some(socket) = &self.socket else {
            return;
        };
        let message: String = states.iter().map(|s| format!("{s}\n")).collect();
        if let Err(e) = socket.send(message.as_bytes()) {
            debug!(error = %e, "cannot notify the service manager");
        }
    }

    /// `READY=1` with a status line: the server accepts connections (at
    /// start, and again after a reload).
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// `RELOADING=1` with `MONOTONIC_USEC` (which `Type=notify-reload`
    /// needs since systemd 253) and a status line.
    pub fn reloading(&self, status: &str) {
        let mut states = vec![NotifyState::Reloading];
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        states.push(NotifyState::Status(status));
        self.send(&states);
    }

    /// `STOPPING=1` with a status line: the drain began.
    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    /// A status line alone.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// `MAINPID=` this process, with a status line (sent by a daemon after
    /// it forked, so a listener learns the pid before `READY=1`).
    pub fn main_pid(&self, status: &str) {
        self.send(&[
            NotifyState::MainPid(std::process::id()),
            NotifyState::Status(status),
        ]);
    }

    /// The server could not start (or stopped with an error): why, and
    /// the exit status it ends with.
    pub fn failed(&self, why: &str, exit_status: u8) {
        let status = format!("cannot start: {why}");
        let exit = format!("{EXIT_STATUS}={exit_status}");
        self.send(&[NotifyState::Status(&status), NotifyState::Custom(&exit)]);
    }
}

/// Connects an unbound datagram socket to `path`; a leading `@` names a
/// socket in the abstract namespace, as systemd allows.
fn connect(path: &OsStr) -> io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.connect_addr(&addr)?;
    } else {
        socket.connect(path)?;
    }
    Ok(socket)
}

/// The receiving end, as a service manager has it: a datagram socket
/// bound at a path (in a directory only its owner can enter), removed
/// again when dropped.
#[derive(Debug)]
pub struct Listener {
    socket: UnixDatagram,
    dir: PathBuf,
    path: PathBuf,
}

impl Listener {
    /// Binds a socket in a new private directory under `parent`.
    pub fn bind_in(parent: &Path) -> io::Result<Listener> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = parent.join(format!("kennel-notify-{}", uuid::Uuid::new_v4()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let path = dir.join("notify");
        match UnixDatagram::bind(&path) {
            Ok(socket) => Ok(Listener { socket, dir, path }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// The socket's path: the value for `NOTIFY_SOCKET`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits up to `timeout` for one message; `Ok(None)` when none came.
    pub fn recv(&self, timeout: Duration) -> io::Result<Option<Message>> {
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let mut buf = vec![0; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => Ok(Some(Message::parse(&buf[..n]))),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// One notification datagram: `KEY=VALUE` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    fields: HashMap<String, String>,
}

impl Message {
    /// Parses a datagram; lines without `=` are ignored, as systemd does.
    pub fn parse(bytes: &[u8]) -> Message {
        let fields = String::from_utf8_lossy(bytes)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Message { fields }
    }

    /// The value of `key`, if the message has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// `READY=1`.
    pub fn is_ready(&self) -> bool {
        self.get("READY") == Some("1")
    }

    /// `MAINPID=`.
    pub fn main_pid(&self) -> Option<i32> {
        self.get("MAINPID")?.parse().ok()
    }

    /// `EXIT_STATUS=`.
    pub fn exit_status(&self) -> Option<u8> {
        self.get(EXIT_STATUS)?.parse().ok()
    }

    /// `STATUS=`.
    pub fn status(&self) -> Option<&str> {
        self.get("STATUS")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notifier_sends_what_a_listener_parses() {
        let listener = Listener::bind_in(&std::env::temp_dir()).unwrap();
        let notifier = Notifier {
            socket: Some(connect(listener.path().as_os_str()).unwrap()),
        };
        notifier.ready("serving on 127.0.0.1:1");
        let m = listener.recv(Duration::from_secs(5)).unwrap().unwrap();
        assert!(m.is_ready());
        assert_eq!(m.status(), Some("serving on 127.0.0.1:1"));

        notifier.reloading("reloading the config");
        let m = listener.recv(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(m.get("RELOADING"), Some("1"));
        let usec: u64 = m.get("MONOTONIC_USEC").unwrap().parse().unwrap();
        assert!(usec > 0);

        notifier.failed("server 1: column pid_file: no", 64);
        let m = listener.recv(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(m.exit_status(), Some(64));
        assert_eq!(
            m.status(),
            Some("cannot start: server 1: column pid_file: no")
        );
        assert!(!m.is_ready());

        assert_eq!(listener.recv(Duration::from_millis(10)).unwrap(), None);
        let dir = listener.dir.clone();
        drop(listener);
        assert!(!dir.exists(), "the private directory is removed");
    }

    #[test]
    fn abstract_socket_names_work() {
        let name = format!("kennel-test-{}", uuid::Uuid::new_v4());
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&addr).unwrap();
        let socket = connect(OsStr::new(&format!("@{name}"))).unwrap();
        Notifier {
            socket: Some(socket),
        }
        .stopping("draining 0 connections");
        let mut buf = [0; 256];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1\nSTATUS=draining 0 connections\n");
    }

    #[test]
    fn no_socket_means_nothing_is_sent() {
        let notifier = Notifier::default();
        assert!(!notifier.is_enabled());
        notifier.ready("serving");
    }
}
