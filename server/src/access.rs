//! The access log, in Mongrel2's format so `m2sh access` can read it: one
//! tnetstring list per line,
//! `[host, remote_ip, remote_port, unix_time, method, path, version, status, size]`.
//!
//! Owns the log file and a writer thread. Connection tasks encode their
//! line (a few hundred bytes, no I/O) and hand it over through a channel;
//! the thread writes through a buffer and flushes whenever it has nothing
//! else to do, so a burst costs one write per buffer, not one per request.
//! Does not own what is logged (the connection task decides) or the error
//! log (tracing).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kennel_handler::tnetstring::{
    begin_container, end_container, write_integer, write_string, Container,
};

/// Lines queued for the writer before new ones are dropped (and counted):
/// a full disk or a stalled filesystem must never stall request handling.
const QUEUE_LINES: usize = 65_536;

/// How long the writer holds buffered lines while requests keep coming.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// A handle to the access log; cheap to clone.
#[derive(Clone, Debug)]
pub struct AccessLog {
    lines: SyncSender<Vec<u8>>,
}

impl AccessLog {
    /// Opens (appending, creating) `path` and starts the writer thread.
    pub fn open(path: &Path) -> std::io::Result<AccessLog> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (lines, receiver) = mpsc::sync_channel(QUEUE_LINES);
        let path = path.to_owned();
        std::thread::Builder::new()
            .name("kennel-access-log".into())
            .spawn(move || write_lines(file, path, receiver))?;
        Ok(AccessLog { lines })
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
        let mut line = Vec::with_capacity(96 + host.len() + path.len());
        encode_line(
            &mut line,
            host,
            peer,
            unix_time(),
            method,
            path,
            version,
            status,
            size,
        );
        match self.lines.try_send(line) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!("access log writer is behind; a line was dropped");
            }
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
    write_string(out, peer.ip().to_string().as_bytes());
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

fn write_lines(file: File, path: PathBuf, receiver: Receiver<Vec<u8>>) {
    let mut out = BufWriter::with_capacity(64 * 1024, file);
    let mut failed = false;
    loop {
        let line = match receiver.recv_timeout(FLUSH_EVERY) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                let _ = out.flush();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut result = out.write_all(&line);
        while let Ok(more) = receiver.try_recv() {
            result = result.and_then(|()| out.write_all(&more));
        }
        result = result.and_then(|()| out.flush());
        match (result, failed) {
            (Err(e), false) => {
                tracing::error!(file = %path.display(), error = %e, "writing the access log failed");
                failed = true;
            }
            (Ok(()), true) => failed = false,
            _ => {}
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use kennel_handler::tnetstring::{parse, Value};

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
