//! The roster of open client connections: for each, the few numbers the
//! control port's `status what=net` reports (PROTOCOL.md §3), kept the
//! way Mongrel2's `Register` keeps them — in a table indexed by the
//! connection's file descriptor.
//!
//! Owns that table and its clock. Each connection task writes its own row
//! ([`Roster::opened`] when it starts, then [`Roster::read`],
//! [`Roster::wrote`], [`Roster::pinged`], [`Roster::set_kind`],
//! [`Roster::identified`], and [`Roster::closed`] when it goes); the
//! control port's thread reads every row with [`Roster::rows`]. Does not
//! own connection ids or outboxes (see [`crate::registry`]), nor the
//! connections themselves: a row is numbers, and closing a connection goes
//! through its outbox.
//!
//! Cost, on purpose small: a connection holds nothing extra (its row is
//! found from its descriptor), a row is 40 bytes in a chunk of
//! [`CHUNK_ROWS`] allocated the first time a descriptor in its range is
//! used (as Mongrel2's `darray` of registrations), and an update is a
//! clock read and relaxed loads and stores — no lock, no allocation, no
//! read-modify-write instruction, since each row has one writer (its
//! connection's task; a task that moves between runtime threads is handed
//! over with the synchronisation tokio does). The control port's reads
//! are relaxed too: a row is a snapshot of counters, not a transaction.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// Rows per chunk of the table: 1,024 descriptors, 40 KiB, so the table
/// of a server allowed a million descriptors has 1,024 chunk slots of 16
/// bytes (16 KiB) and only the chunks its connections use.
pub const CHUNK_ROWS: usize = 1024;

/// How many descriptors the table can hold, whatever `RLIMIT_NOFILE`
/// says: 4 Mi (a top level of 64 KiB). A connection on a higher one is
/// served as any other but is missing from `status what=net`.
pub const MAX_TRACKED_FDS: usize = 4 * 1024 * 1024;

/// What a connection speaks, as `status what=net`'s `type` column says it
/// (Mongrel2's `CONN_TYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// No request read yet (Mongrel2 shows 0 too).
    Unknown = 0,
    /// HTTP requests (`CONN_TYPE_HTTP`).
    Http = 1,
    /// Mongrel2's JSON/XML socket messages (`CONN_TYPE_MSG`); Kennel does
    /// not serve those, so no row has it.
    Msg = 2,
    /// A WebSocket, from the upgrade request on (`CONN_TYPE_SOCKET`).
    Socket = 3,
}

/// One connection as `status what=net` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// The connection id handlers know it by, once it has one (ids are
    /// given the first time a connection talks to a handler, as in
    /// Mongrel2); `None` is shown as -1.
    pub id: Option<u64>,
    /// Its file descriptor.
    pub fd: RawFd,
    /// What it speaks.
    pub kind: u8,
    /// Seconds since it last did anything (a request, a reply, a handler's
    /// `keep-alive`); 0 when that is less than a second, as for "never".
    pub last_ping: u64,
    /// Seconds since it last read from the client; 0 = never (or now).
    pub last_read: u64,
    /// Seconds since it last wrote to the client; 0 = never (or now).
    pub last_write: u64,
    /// Bytes read from the client.
    pub bytes_read: u64,
    /// Bytes written to the client.
    pub bytes_written: u64,
}

/// One descriptor's row. Times are seconds since the roster's epoch plus
/// one, so 0 means never.
#[derive(Debug, Default)]
struct Slot {
    id: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    last_ping: AtomicU32,
    last_read: AtomicU32,
    last_write: AtomicU32,
    kind: AtomicU8,
    open: AtomicBool,
}

impl Slot {
    /// Adds `n` to a counter only this row's connection writes: a load and
    /// a store, not a locked add.
    fn add(counter: &AtomicU64, n: u64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }
}

/// A thin pointer, so an unused chunk costs its `OnceLock`'s 16 bytes.
type Chunk = Box<[Slot; CHUNK_ROWS]>;

/// Connection rows by file descriptor; see the module docs.
#[derive(Debug)]
pub struct Roster {
    chunks: Box<[OnceLock<Chunk>]>,
    epoch: Instant,
}

impl Default for Roster {
    fn default() -> Self {
        Roster::new()
    }
}

impl Roster {
    /// A roster for every descriptor the process may open (its hard
    /// `RLIMIT_NOFILE`, at most [`MAX_TRACKED_FDS`]).
    pub fn new() -> Roster {
        let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(65_536, |(_, hard)| hard);
        Roster::with_capacity(usize::try_from(limit).unwrap_or(usize::MAX))
    }

    /// A roster for descriptors below `fds` (at most [`MAX_TRACKED_FDS`]).
    pub fn with_capacity(fds: usize) -> Roster {
        let chunks = fds.min(MAX_TRACKED_FDS).div_ceil(CHUNK_ROWS);
        Roster {
            chunks: (0..chunks).map(|_| OnceLock::new()).collect(),
            epoch: Instant::now(),
        }
    }

    /// Seconds since the epoch, plus one (so never is 0).
    fn now(&self) -> u32 {
        u32::try_from(self.epoch.elapsed().as_secs())
            .unwrap_or(u32::MAX - 1)
            .saturating_add(1)
    }

    fn slot(&self, fd: RawFd) -> Option<&Slot> {
        let fd = usize::try_from(fd).ok()?;
        self.chunks
            .get(fd / CHUNK_ROWS)?
            .get()?
            .get(fd % CHUNK_ROWS)
    }

    /// A connection starts on `fd`: its row is reset and shown. The
    /// previous connection on `fd` called [`closed`](Self::closed) before
    /// its descriptor was closed, so the row is free.
    pub fn opened(&self, fd: RawFd) {
        let Ok(index) = usize::try_from(fd) else {
            return;
        };
        let Some(chunk) = self.chunks.get(index / CHUNK_ROWS) else {
            return;
        };
        let chunk = chunk.get_or_init(|| {
            let rows: Box<[Slot]> = (0..CHUNK_ROWS).map(|_| Slot::default()).collect();
            rows.try_into().expect("CHUNK_ROWS rows")
        });
        let slot = &chunk[index % CHUNK_ROWS];
        slot.id.store(0, Ordering::Relaxed);
        slot.bytes_read.store(0, Ordering::Relaxed);
        slot.bytes_written.store(0, Ordering::Relaxed);
        slot.last_ping.store(self.now(), Ordering::Relaxed);
        slot.last_read.store(0, Ordering::Relaxed);
        slot.last_write.store(0, Ordering::Relaxed);
        slot.kind.store(Kind::Unknown as u8, Ordering::Relaxed);
        // Last, so a reader that sees the row open sees it reset.
        slot.open.store(true, Ordering::Release);
    }

    /// The connection on `fd` is gone (called before its descriptor is
    /// closed).
    pub fn closed(&self, fd: RawFd) {
        if let Some(slot) = self.slot(fd) {
            slot.open.store(false, Ordering::Release);
        }
    }

    /// The connection on `fd` read `n` bytes from its client.
    pub fn read(&self, fd: RawFd, n: usize) {
        if let Some(slot) = self.slot(fd) {
            Slot::add(&slot.bytes_read, n as u64);
            slot.last_read.store(self.now(), Ordering::Relaxed);
        }
    }

    /// The connection on `fd` wrote `n` bytes to its client.
    pub fn wrote(&self, fd: RawFd, n: usize) {
        if let Some(slot) = self.slot(fd) {
            Slot::add(&slot.bytes_written, n as u64);
            slot.last_write.store(self.now(), Ordering::Relaxed);
        }
    }

    /// The connection on `fd` did something (Mongrel2's `Register_ping`).
    pub fn pinged(&self, fd: RawFd) {
        if let Some(slot) = self.slot(fd) {
            slot.last_ping.store(self.now(), Ordering::Relaxed);
        }
    }

    /// The connection on `fd` now speaks `kind`.
    pub fn set_kind(&self, fd: RawFd, kind: Kind) {
        if let Some(slot) = self.slot(fd) {
            slot.kind.store(kind as u8, Ordering::Relaxed);
        }
    }

    /// The connection on `fd` got its connection id.
    pub fn identified(&self, fd: RawFd, id: u64) {
        if let Some(slot) = self.slot(fd) {
            slot.id.store(id, Ordering::Relaxed);
        }
    }

    /// Every open connection, by descriptor.
    pub fn rows(&self) -> Vec<Row> {
        let now = self.now();
        let ago = |t: u32| {
            if t == 0 {
                0
            } else {
                u64::from(now - t.min(now))
            }
        };
        let mut rows = Vec::new();
        for (c, chunk) in self.chunks.iter().enumerate() {
            let Some(chunk) = chunk.get() else { continue };
            for (i, slot) in chunk.iter().enumerate() {
                if !slot.open.load(Ordering::Acquire) {
                    continue;
                }
                let id = slot.id.load(Ordering::Relaxed);
                rows.push(Row {
                    id: (id != 0).then_some(id),
                    fd: RawFd::try_from(c * CHUNK_ROWS + i).unwrap_or(RawFd::MAX),
                    kind: slot.kind.load(Ordering::Relaxed),
                    last_ping: ago(slot.last_ping.load(Ordering::Relaxed)),
                    last_read: ago(slot.last_read.load(Ordering::Relaxed)),
                    last_write: ago(slot.last_write.load(Ordering::Relaxed)),
                    bytes_read: slot.bytes_read.load(Ordering::Relaxed),
                    bytes_written: slot.bytes_written.load(Ordering::Relaxed),
                });
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_forty_bytes_and_an_unused_chunk_sixteen() {
        assert_eq!(std::mem::size_of::<Slot>(), 40);
        assert_eq!(std::mem::size_of::<OnceLock<Chunk>>(), 16);
    }

    #[test]
    fn rows_follow_their_connections() {
        let roster = Roster::with_capacity(3000);
        assert!(roster.rows().is_empty());
        roster.opened(7);
        roster.opened(2049);
        roster.read(7, 38);
        roster.read(7, 2);
        roster.wrote(2049, 100);
        roster.set_kind(7, Kind::Http);
        roster.identified(7, 42);
        let rows = roster.rows();
        assert_eq!(
            rows,
            vec![
                Row {
                    id: Some(42),
                    fd: 7,
                    kind: 1,
                    last_ping: 0,
                    last_read: 0,
                    last_write: 0,
                    bytes_read: 40,
                    bytes_written: 0,
                },
                Row {
                    id: None,
                    fd: 2049,
                    kind: 0,
                    last_ping: 0,
                    last_read: 0,
                    last_write: 0,
                    bytes_read: 0,
                    bytes_written: 100,
                },
            ]
        );
        // A closed row goes; the descriptor's next connection starts afresh.
        roster.closed(7);
        assert_eq!(roster.rows().len(), 1);
        roster.opened(7);
        let row = roster.rows()[0];
        assert_eq!((row.fd, row.id, row.bytes_read, row.kind), (7, None, 0, 0));
    }

    #[test]
    fn descriptors_beyond_the_table_are_not_tracked() {
        let roster = Roster::with_capacity(10);
        // The table has one chunk: 0..1024.
        roster.opened(1023);
        roster.opened(1024);
        roster.read(1024, 5);
        roster.opened(-1);
        let fds: Vec<RawFd> = roster.rows().iter().map(|r| r.fd).collect();
        assert_eq!(fds, vec![1023]);
    }
}
