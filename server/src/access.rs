//! The access log, in Mongrel2's format so `m2sh access` can read it: one
//! tnetstring list per line,
//! `[host, remote_ip, remote_port, unix_time, method, path, version, status, size]`.
//!
//! Owns the log file and a writer thread. Connection tasks encode their
//! line (a few hundred bytes, no I/O) and append it to a shared buffer under
//! a short lock; the writer thread wakes every [`FLUSH_EVERY`] (or when the
//! buffer passes [`FLUSH_BYTES`]) and writes the whole buffer at once, so a
//! request costs no wake-up and no syscall of its own. Does not own what is
//! logged (the connection task decides) or the error log (tracing).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kennel_handler::tnetstring::{
    begin_container, end_container, write_integer, write_string, Container,
};

/// How long lines may wait in memory before they are written. Default
/// 100 ms: a crash loses at most that much of the log.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Buffered bytes that wake the writer early. Default 256 KiB.
pub const FLUSH_BYTES: usize = 256 * 1024;

/// Buffered bytes past which new lines are dropped (and counted): a full
/// disk or a stalled filesystem must never stall request handling or
/// exhaust memory. Default 16 MiB.
pub const MAX_BUFFERED: usize = 16 * 1024 * 1024;

#[derive(Debug, Default)]
struct Shared {
    buf: Mutex<Vec<u8>>,
    wake: Condvar,
    closed: AtomicBool,
    dropped: AtomicU64,
}

/// Closes the log when the last handle goes, and waits for the writer's
/// last flush (a few milliseconds), so a server that stops has written
/// every line before the process exits.
#[derive(Debug)]
struct Handle(Arc<Shared>, Mutex<Option<std::thread::JoinHandle<()>>>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.wake.notify_one();
        let writer = self.1.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

/// A handle to the access log; cheap to clone.
#[derive(Clone, Debug)]
pub struct AccessLog {
    handle: Arc<Handle>,
}

impl AccessLog {
    /// Opens (appending, creating) `path` and starts the writer thread.
    pub fn open(path: &Path) -> std::io::Result<AccessLog> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let shared = Arc::new(Shared::default());
        let writer = Arc::clone(&shared);
        let path = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("kennel-access-log".into())
            .spawn(move || write_lines(file, path, writer))?;
        Ok(AccessLog {
            handle: Arc::new(Handle(shared, Mutex::new(Some(thread)))),
        })
    }

    /// Records one request.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        host: &[u8],
        peer: &SocketAddr,
        method: &[u8],
        path: &[u8],
        version: &str,
        status: u16,
        size: usize,
    ) {
        let shared = &self.handle.0;
        let mut buf = shared.buf.lock().unwrap_or_else(|e| e.into_inner());
        if buf.len() > MAX_BUFFERED {
            drop(buf);
            if shared.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!("access log writer is behind; dropping lines");
            }
            return;
        }
        encode_line(
            &mut buf,
            host,
            peer,
            unix_time(),
            method,
            path,
            version,
            status,
            size,
        );
        let full = buf.len() >= FLUSH_BYTES;
        drop(buf);
        if full {
            shared.wake.notify_one();
        }
    }
}

fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Encodes one line: the tnetstring list and a newline.
#[allow(clippy::too_many_arguments)]
pub fn encode_line(
    out: &mut Vec<u8>,
    host: &[u8],
    peer: &SocketAddr,
    time: u64,
    method: &[u8],
    path: &[u8],
    version: &str,
    status: u16,
    size: usize,
) {
    let host = host.split(|&b| b == b':').next().unwrap_or(b"");
    let list = begin_container(out);
    write_string(out, host);
    let mut ip = [0u8; 64];
    let ip_len = {
        let mut cursor = std::io::Cursor::new(&mut ip[..]);
        let _ = write!(cursor, "{}", peer.ip());
        cursor.position() as usize
    };
    write_string(out, &ip[..ip_len]);
    write_integer(out, i64::from(peer.port()));
    write_integer(out, time as i64);
    write_string(out, method);
    write_string(out, path);
    write_string(out, version.as_bytes());
    write_integer(out, i64::from(status));
    write_integer(out, size as i64);
    end_container(out, list, Container::List);
    out.push(b'\n');
}

fn write_lines(mut file: File, path: PathBuf, shared: Arc<Shared>) {
    // Background work: when woken it must not preempt a thread serving
    // requests (a flush copies up to megabytes), so it waits for a gap.
    if let Err(e) = crate::sys::batch_scheduling() {
        tracing::debug!(error = %e, "access log writer stays under the default scheduling policy");
    }
    let mut spare = Vec::new();
    let mut failed = false;
    loop {
        let closed = {
            let buf = shared.buf.lock().unwrap_or_else(|e| e.into_inner());
            let (mut buf, _) = shared
                .wake
                .wait_timeout_while(buf, FLUSH_EVERY, |b| {
                    b.len() < FLUSH_BYTES && !shared.closed.load(Ordering::Acquire)
                })
                .unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut *buf, &mut spare);
            shared.closed.load(Ordering::Acquire)
        };
        if !spare.is_empty() {
            match (file.write_all(&spare), failed) {
                (Err(e), false) => {
                    tracing::error!(file = %path.display(), error = %e, "writing the access log failed");
                    failed = true;
                }
                (Ok(()), true) => failed = false,
                _ => {}
            }
            spare.clear();
            // A burst (thousands of requests with this thread behind)
            // grows a buffer to megabytes; keep the usual size after it.
            if spare.capacity() > 2 * FLUSH_BYTES {
                spare = Vec::new();
            }
        }
        if closed {
            // One last look: lines added between the swap and the close.
            let mut buf = shared.buf.lock().unwrap_or_else(|e| e.into_inner());
            let _ = file.write_all(&buf);
            buf.clear();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kennel_handler::tnetstring::{parse, Value};

    #[test]
    fn the_writer_thread_runs_under_sched_batch() {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::open(&dir.path().join("access.log")).unwrap();
        const BATCH: u32 = libc::SCHED_BATCH as u32;
        // The policy is set by the thread itself as it starts.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let policies = loop {
            // Thread names are cut to 15 bytes.
            let policies = crate::sys::thread_policies("kennel-access-l");
            if policies.contains(&BATCH) || std::time::Instant::now() > deadline {
                break policies;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(policies.contains(&BATCH), "{policies:?}");
        drop(log);
    }

    #[test]
    fn lines_are_mongrel2_tnetstring_lists() {
        let mut line = Vec::new();
        let peer: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        encode_line(
            &mut line,
            b"localhost:6767",
            &peer,
            1_700_000_000,
            b"GET",
            b"/a",
            "HTTP/1.1",
            200,
            12,
        );
        assert_eq!(line.last(), Some(&b'\n'));
        let value = parse(&line[..line.len() - 1]).unwrap();
        assert_eq!(
            value,
            Value::List(vec![
                Value::String(b"localhost"),
                Value::String(b"127.0.0.1"),
                Value::Integer(5555),
                Value::Integer(1_700_000_000),
                Value::String(b"GET"),
                Value::String(b"/a"),
                Value::String(b"HTTP/1.1"),
                Value::Integer(200),
                Value::Integer(12),
            ])
        );
    }

    #[test]
    fn the_writer_appends_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/access.log");
        let log = AccessLog::open(&path).unwrap();
        let peer: SocketAddr = "[::1]:80".parse().unwrap();
        log.record(b"h", &peer, b"GET", b"/x", "HTTP/1.0", 404, 0);
        drop(log);
        // The writer flushes and exits once every handle is gone.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read(&path).unwrap();
            if !text.is_empty() {
                assert!(
                    text.ends_with(b"3:404#1:0#]\n"),
                    "{}",
                    String::from_utf8_lossy(&text)
                );
                break;
            }
            assert!(std::time::Instant::now() < deadline, "nothing written");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
