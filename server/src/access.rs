//! The access log, in Mongrel2's format so `m2sh access` can read it: one
//! tnetstring list per line,
//! `[host, remote_ip, remote_port, unix_time, method, path, version, status, size]`;
//! or, with `kennel.access_log.format = json`, one JSON object per line
//! with the same fields and the request's duration and route.
//!
//! Every line has the status the client got. A handler's response is
//! logged when it is complete (its status read from its head, its size
//! the bytes Kennel wrote for it): the connection keeps a [`Pending`]
//! entry for it meanwhile.
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

use crate::config::AccessLogFormat;
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
    format: AccessLogFormat,
}

/// One request's line.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The `Host` header (its port is dropped).
    pub host: &'a [u8],
    /// The client.
    pub peer: SocketAddr,
    /// When the request arrived, in Unix seconds.
    pub time: u64,
    /// The method.
    pub method: &'a [u8],
    /// The raw path.
    pub path: &'a [u8],
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: &'a str,
    /// The status the client got.
    pub status: u16,
    /// The body size (static files, Kennel's own), or the bytes written for
    /// a handler's or back end's response.
    pub size: u64,
    /// Microseconds from the request's head to its response (JSON only).
    pub micros: u64,
    /// The route key that answered, `""` for none (JSON only).
    pub route: &'a str,
}

/// A line whose status and size are not known yet: a copy of the
/// request's fields, made when a request goes to a handler.
#[derive(Debug)]
pub struct Pending {
    /// host, method, path, route: one allocation.
    text: Box<[u8]>,
    ends: [u32; 3],
    peer: SocketAddr,
    time: u64,
    version: &'static str,
}

impl Pending {
    /// Copies a request's fields.
    pub fn new(entry: &Entry<'_>, version: &'static str) -> Pending {
        let mut text = Vec::with_capacity(
            entry.host.len() + entry.method.len() + entry.path.len() + entry.route.len(),
        );
        let mut ends = [0u32; 3];
        for (i, part) in [entry.host, entry.method, entry.path].iter().enumerate() {
            text.extend_from_slice(part);
            ends[i] = text.len() as u32;
        }
        text.extend_from_slice(entry.route.as_bytes());
        Pending {
            text: text.into_boxed_slice(),
            ends,
            peer: entry.peer,
            time: entry.time,
            version,
        }
    }

    /// The entry, with the status and size now known.
    pub fn entry(&self, status: u16, size: u64, micros: u64) -> Entry<'_> {
        let [host, method, path] = self.ends.map(|e| e as usize);
        Entry {
            host: &self.text[..host],
            peer: self.peer,
            time: self.time,
            method: &self.text[host..method],
            path: &self.text[method..path],
            version: self.version,
            status,
            size,
            micros,
            route: std::str::from_utf8(&self.text[path..]).unwrap_or(""),
        }
    }
}

impl AccessLog {
    /// Opens (appending, creating) `path` and starts the writer thread.
    pub fn open(path: &Path, format: AccessLogFormat) -> std::io::Result<AccessLog> {
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
            format,
        })
    }

    /// Records one request.
    pub fn record(&self, entry: &Entry<'_>) {
        let shared = &self.handle.0;
        let mut buf = shared.buf.lock().unwrap_or_else(|e| e.into_inner());
        if buf.len() > MAX_BUFFERED {
            drop(buf);
            if shared.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!("access log writer is behind; dropping lines");
            }
            return;
        }
        match self.format {
            AccessLogFormat::Mongrel2 => encode_line(&mut buf, entry),
            AccessLogFormat::Json => encode_json_line(&mut buf, entry),
        }
        let full = buf.len() >= FLUSH_BYTES;
        drop(buf);
        if full {
            shared.wake.notify_one();
        }
    }
}

/// Now, in Unix seconds (an access log line's `time`).
pub fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Encodes one Mongrel2 line: the tnetstring list and a newline.
pub fn encode_line(out: &mut Vec<u8>, entry: &Entry<'_>) {
    let host = entry.host.split(|&b| b == b':').next().unwrap_or(b"");
    let list = begin_container(out);
    write_string(out, host);
    let mut ip = [0u8; 64];
    let ip_len = {
        let mut cursor = std::io::Cursor::new(&mut ip[..]);
        let _ = write!(cursor, "{}", entry.peer.ip());
        cursor.position() as usize
    };
    write_string(out, &ip[..ip_len]);
    write_integer(out, i64::from(entry.peer.port()));
    write_integer(out, entry.time as i64);
    write_string(out, entry.method);
    write_string(out, entry.path);
    write_string(out, entry.version.as_bytes());
    write_integer(out, i64::from(entry.status));
    write_integer(out, entry.size as i64);
    end_container(out, list, Container::List);
    out.push(b'\n');
}

/// Encodes one JSON line: an object with Mongrel2's fields (same names as
/// `m2sh access` prints them) plus `duration_us` and `route`.
pub fn encode_json_line(out: &mut Vec<u8>, entry: &Entry<'_>) {
    let host = entry.host.split(|&b| b == b':').next().unwrap_or(b"");
    out.extend_from_slice(b"{\"time\":");
    let _ = write!(out, "{}", entry.time);
    out.extend_from_slice(b",\"host\":");
    json_string(out, host);
    let _ = write!(
        out,
        ",\"remote_addr\":\"{}\",\"remote_port\":{},\"method\":",
        entry.peer.ip(),
        entry.peer.port()
    );
    json_string(out, entry.method);
    out.extend_from_slice(b",\"path\":");
    json_string(out, entry.path);
    let _ = write!(
        out,
        ",\"version\":\"{}\",\"status\":{},\"size\":{},\"duration_us\":{},\"route\":",
        entry.version, entry.status, entry.size, entry.micros
    );
    json_string(out, entry.route.as_bytes());
    out.extend_from_slice(b"}\n");
}

/// A JSON string of arbitrary bytes: valid UTF-8 kept, control characters,
/// `"` and `\` escaped, invalid bytes as U+FFFD.
fn json_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => {
                    let mut utf8 = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
    out.push(b'"');
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
    use crate::config::AccessLogFormat;
    use kennel_handler::tnetstring::{parse, Value};

    #[test]
    fn the_writer_thread_runs_under_sched_batch() {
        let dir = tempfile::tempdir().unwrap();
        let log =
            AccessLog::open(&dir.path().join("access.log"), AccessLogFormat::Mongrel2).unwrap();
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

    fn entry(peer: &SocketAddr) -> Entry<'static> {
        let peer = *peer;
        Entry {
            host: b"localhost:6767",
            peer,
            time: 1_700_000_000,
            method: b"GET",
            path: b"/a",
            version: "HTTP/1.1",
            status: 200,
            size: 12,
            micros: 345,
            route: "/",
        }
    }

    #[test]
    fn lines_are_mongrel2_tnetstring_lists() {
        let mut line = Vec::new();
        let peer: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        encode_line(&mut line, &entry(&peer));
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
    fn json_lines_escape_what_json_needs() {
        let peer: SocketAddr = "[::1]:80".parse().unwrap();
        let mut line = Vec::new();
        encode_json_line(
            &mut line,
            &Entry {
                path: b"/a\"b\\c\td\xff\xc3\xa9",
                ..entry(&peer)
            },
        );
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"time\":1700000000,\"host\":\"localhost\",\"remote_addr\":\"::1\",\"remote_port\":80,\
             \"method\":\"GET\",\"path\":\"/a\\\"b\\\\c\\u0009d\u{fffd}\u{e9}\",\"version\":\"HTTP/1.1\",\
             \"status\":200,\"size\":12,\"duration_us\":345,\"route\":\"/\"}\n"
        );
    }

    #[test]
    fn a_pending_entry_keeps_the_request_fields() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let pending = Pending::new(&entry(&peer), "HTTP/1.1");
        let done = pending.entry(404, 7, 9);
        assert_eq!(
            (
                done.host,
                done.method,
                done.path,
                done.route,
                done.status,
                done.size
            ),
            (&b"localhost:6767"[..], &b"GET"[..], &b"/a"[..], "/", 404, 7)
        );
    }

    #[test]
    fn the_writer_appends_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/access.log");
        let log = AccessLog::open(&path, AccessLogFormat::Mongrel2).unwrap();
        let peer: SocketAddr = "[::1]:80".parse().unwrap();
        log.record(&Entry {
            host: b"h",
            method: b"GET",
            path: b"/x",
            version: "HTTP/1.0",
            status: 404,
            size: 0,
            ..entry(&peer)
        });
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
