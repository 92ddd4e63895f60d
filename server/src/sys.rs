//! The one module allowed `unsafe`: three operating-system calls that no
//! safe crate in our tree offers.
//!
//! - [`ZmqFd::readable`] registers a ZeroMQ socket's `ZMQ_FD` with tokio's
//!   reactor. tokio 1.54 made `AsyncFd` registration of a raw descriptor
//!   `unsafe`, because nothing in the types proves the descriptor stays
//!   open. Here it does: [`ZmqFd`] owns the socket the descriptor belongs
//!   to, the `AsyncFd` owns the [`ZmqFd`], and dropping an `AsyncFd`
//!   deregisters the descriptor before it drops (and ZeroMQ closes) what it
//!   owns.
//! - [`batch_scheduling`] puts the calling thread under `SCHED_BATCH`
//!   (`sched_setscheduler(2)`; `nix` has no wrapper for it).
//! - [`login_name`] asks `getlogin(3)` who is logged in on the
//!   controlling terminal, as m2sh does for its deployment log (`nix` has
//!   no wrapper for it either).
//!
//! Nothing else in Kennel uses `unsafe`; the workspace denies it.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, RawFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A ZeroMQ socket together with its `ZMQ_FD` (a descriptor ZeroMQ
/// signals when the socket has work; whether a message can be read or
/// written is then asked with `ZMQ_EVENTS`).
pub struct ZmqFd {
    socket: zmq::Socket,
    fd: RawFd,
}

impl ZmqFd {
    /// Registers `socket` for readability with the current tokio runtime
    /// (so this must be called from within one).
    pub fn readable(socket: zmq::Socket) -> std::io::Result<AsyncFd<ZmqFd>> {
        let fd = socket.get_fd()?;
        let inner = ZmqFd { socket, fd };
        // SAFETY: `fd` is the open ZMQ_FD of `inner.socket`, which `inner`
        // owns; it stays open, and `as_raw_fd` keeps returning it, until
        // the `AsyncFd` (which owns `inner`) is dropped, and `AsyncFd`
        // deregisters it before dropping `inner`.
        unsafe { AsyncFd::register_with_interest(inner, Interest::READABLE) }.map_err(|e| e.into())
    }

    /// The socket.
    pub fn socket(&self) -> &zmq::Socket {
        &self.socket
    }
}

impl AsRawFd for ZmqFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

/// Puts the calling thread under `SCHED_BATCH`: the scheduler treats it as
/// a batch job that does not preempt a running thread when it wakes up.
/// Threads it creates afterwards inherit the policy. Needs no privilege.
pub fn batch_scheduling() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid, initialised `sched_param` that outlives
    // the call; pid 0 means the calling thread, and the kernel only reads
    // `param`.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The login name of the user on this process's controlling terminal
/// (`getlogin(3)`, from the utmp records), or `None` when there is no
/// such login (no terminal, as under cron, in CI or in a container).
pub fn login_name() -> Option<String> {
    // getlogin returns a static buffer that the next call overwrites, so
    // calls (there is one per `kennel commit` or `load-conf`) take turns.
    static GETLOGIN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = GETLOGIN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // SAFETY: getlogin takes no arguments and returns NULL or a pointer
    // to a NUL-terminated name in static storage, valid until the next
    // getlogin call; nothing else in Kennel calls getlogin, and the lock
    // keeps another call from running until the name is copied out.
    let name = unsafe { libc::getlogin() };
    if name.is_null() {
        return None;
    }
    // SAFETY: as above: non-NULL, NUL-terminated, not yet overwritten.
    let name = unsafe { std::ffi::CStr::from_ptr(name) };
    Some(name.to_string_lossy().into_owned())
}

/// The scheduling policy of each of this process's threads named `name`
/// (field 41 of `/proc/self/task/*/stat`; `SCHED_BATCH` is 3). For tests.
#[cfg(test)]
pub(crate) fn thread_policies(name: &str) -> Vec<u32> {
    let mut policies = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if comm.trim_end() != name {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // Fields after the command (which is in parentheses) start at 3.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let policy = rest.split(' ').nth(41 - 3).unwrap();
        policies.push(policy.parse().unwrap());
    }
    policies
}
