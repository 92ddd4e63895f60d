//! The connection's row in the server's [`crate::roster::Roster`]: what
//! the control port's `status what=net` shows of it (bytes and times of
//! its reads and writes, its last activity, its kind, its id), written by
//! the connection's own task as it goes. Each call is a few relaxed
//! stores on the row found from the socket's descriptor; the connection
//! itself holds nothing for it.

use std::os::fd::AsRawFd;

use super::Connection;
use crate::roster::Kind;

impl Connection {
    /// The connection starts: its row is reset and shown.
    pub(super) fn enter_roster(&self) {
        self.server.roster().opened(self.transport.as_raw_fd());
    }

    /// The connection ends (before its socket is closed).
    pub(super) fn leave_roster(&self) {
        self.server.roster().closed(self.transport.as_raw_fd());
    }

    /// `n` bytes were read from the client.
    pub(super) fn note_read(&self, n: usize) {
        self.server.roster().read(self.transport.as_raw_fd(), n);
    }

    /// `n` bytes were written to the client.
    pub(super) fn note_written(&self, n: usize) {
        self.server.roster().wrote(self.transport.as_raw_fd(), n);
    }

    /// The connection did something: Mongrel2's `last_ping`.
    pub(super) fn note_active(&self) {
        self.server.roster().pinged(self.transport.as_raw_fd());
    }

    /// The connection now speaks `kind`.
    pub(super) fn note_kind(&self, kind: Kind) {
        self.server
            .roster()
            .set_kind(self.transport.as_raw_fd(), kind);
    }

    /// The connection got its id (it talked to a handler).
    pub(super) fn note_id(&self, id: u64) {
        self.server
            .roster()
            .identified(self.transport.as_raw_fd(), id);
    }
}
