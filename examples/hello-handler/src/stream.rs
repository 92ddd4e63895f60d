//! `/stream`: one HTTP response sent as several replies, spread over time.
//!
//! Owns the schedule of streams in progress and the bytes of each step. A
//! handler has one thread and one pair of sockets, so it must not sleep
//! between the parts of a stream (every other request would wait): instead
//! [`Streams`] remembers when each stream's next part is due, the event loop
//! waits for requests only until then ([`Streams::next_due`]), and sends
//! whatever [`Streams::take_due`] hands back. Does no I/O itself.
//!
//! The replies of one stream, for HTTP/1.1:
//! 1. the head (`Transfer-Encoding: chunked`) with chunk 1,
//! 2. to 5. chunks 2 to 5, [`INTERVAL`] apart,
//! 6. the last chunk `0\r\n\r\n`,
//!
//! and then, when the request asked for it, the empty reply that closes.
//! An HTTP/1.0 client does not know chunked encoding: it gets the same
//! text unframed, ended by closing the connection.

use std::time::{Duration, Instant};

use kennel_handler::Request;

/// How many chunks of text a stream sends. Five at [`INTERVAL`] is long
/// enough to watch in `curl -N` and short enough for a test.
pub const CHUNKS: u32 = 5;

/// Time between two chunks of a stream (default 200 ms): slow enough that a
/// person sees the text arrive in pieces.
pub const INTERVAL: Duration = Duration::from_millis(200);

/// The most streams in progress at once (default 1,000); a further
/// `/stream` request gets 503. Bounds the schedule's memory.
pub const MAX_STREAMS: usize = 1_000;

/// How the body of a stream is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// HTTP/1.1: `Transfer-Encoding: chunked`.
    Chunked,
    /// HTTP/1.0: the body runs until the connection closes.
    UntilClose,
}

#[derive(Debug)]
struct Pending {
    sender: String,
    conn_id: u64,
    /// The next chunk to send, `2..=CHUNKS`, or `CHUNKS + 1` for the end.
    next: u32,
    due: Instant,
    framing: Framing,
    close: bool,
}

/// One reply the event loop should send now.
#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    /// The server the connection belongs to.
    pub sender: String,
    /// The connection.
    pub conn_id: u64,
    /// The bytes; empty means "close the connection".
    pub bytes: Vec<u8>,
}

/// Why a stream could not start.
#[derive(Debug, PartialEq, Eq)]
pub struct Busy;

/// The streams in progress.
#[derive(Debug, Default)]
pub struct Streams {
    pending: Vec<Pending>,
}

impl Streams {
    /// Starts a stream for `req`: returns its first reply (the head and the
    /// first chunk) and schedules the rest from `now` on. A `HEAD` request
    /// gets only the head (and its close, if asked for, is the caller's).
    pub fn start(&mut self, req: &Request, now: Instant) -> Result<Vec<u8>, Busy> {
        if self.pending.len() >= MAX_STREAMS {
            return Err(Busy);
        }
        let framing = if req.header("VERSION") == Some("HTTP/1.0") {
            Framing::UntilClose
        } else {
            Framing::Chunked
        };
        let mut bytes = match framing {
            Framing::Chunked => b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            Framing::UntilClose => b"HTTP/1.0 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n".to_vec(),
        };
        if req.method() == Some("HEAD") {
            return Ok(bytes);
        }
        bytes.extend(chunk(framing, 1));
        self.pending.push(Pending {
            sender: req.sender().to_owned(),
            conn_id: req.conn_id(),
            next: 2,
            due: now + INTERVAL,
            framing,
            close: req.should_close() || framing == Framing::UntilClose,
        });
        Ok(bytes)
    }

    /// When the earliest pending step is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.due).min()
    }

    /// Removes and returns every step due at `now`, in order; streams that
    /// have more to send are rescheduled [`INTERVAL`] later.
    pub fn take_due(&mut self, now: Instant) -> Vec<Step> {
        let mut steps = Vec::new();
        self.pending.retain_mut(|p| {
            if p.due > now {
                return true;
            }
            let step = |bytes| Step {
                sender: p.sender.clone(),
                conn_id: p.conn_id,
                bytes,
            };
            if p.next <= CHUNKS {
                steps.push(step(chunk(p.framing, p.next)));
                p.next += 1;
                p.due += INTERVAL;
                return true;
            }
            if p.framing == Framing::Chunked {
                steps.push(step(b"0\r\n\r\n".to_vec()));
            }
            if p.close {
                steps.push(step(Vec::new()));
            }
            false
        });
        steps
    }

    /// Forgets the stream to a connection that went away.
    pub fn cancel(&mut self, sender: &str, conn_id: u64) {
        self.pending
            .retain(|p| !(p.conn_id == conn_id && p.sender == sender));
    }

    /// How many streams are in progress.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.pending.len()
    }
}

/// Chunk `n` of a stream, framed.
fn chunk(framing: Framing, n: u32) -> Vec<u8> {
    let text = format!("chunk {n} of {CHUNKS}\n");
    match framing {
        Framing::Chunked => format!("{:x}\r\n{text}\r\n", text.len()).into_bytes(),
        Framing::UntilClose => text.into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kennel_handler::request::{Protocol, RequestHead};

    fn request(id: u64, version: &[u8]) -> Request {
        let head = RequestHead {
            path: b"/stream",
            method: b"GET",
            version: Some(version),
            pattern: b"/stream",
            ..RequestHead::default()
        };
        Request::from_head(Protocol::Json, b"S", id, &head, b"")
    }

    #[test]
    fn a_stream_is_six_replies_interval_apart() {
        let t0 = Instant::now();
        let mut streams = Streams::default();
        let first = streams.start(&request(1, b"HTTP/1.1"), t0).unwrap();
        assert!(first.ends_with(b"chunked\r\n\r\nd\r\nchunk 1 of 5\n\r\n"));
        assert_eq!(streams.next_due(), Some(t0 + INTERVAL));
        // Nothing is due early.
        assert!(streams.take_due(t0 + INTERVAL / 2).is_empty());
        let mut sent = Vec::new();
        for n in 1..=CHUNKS {
            let due = streams.next_due().unwrap();
            assert_eq!(due, t0 + INTERVAL * n);
            sent.extend(streams.take_due(due));
        }
        assert_eq!(streams.next_due(), None);
        assert_eq!(streams.len(), 0);
        let bodies: Vec<&[u8]> = sent.iter().map(|s| s.bytes.as_slice()).collect();
        assert_eq!(
            bodies,
            [
                &b"d\r\nchunk 2 of 5\n\r\n"[..],
                b"d\r\nchunk 3 of 5\n\r\n",
                b"d\r\nchunk 4 of 5\n\r\n",
                b"d\r\nchunk 5 of 5\n\r\n",
                b"0\r\n\r\n",
            ]
        );
    }

    #[test]
    fn http_1_0_is_unframed_and_closed() {
        let t0 = Instant::now();
        let mut streams = Streams::default();
        let first = streams.start(&request(1, b"HTTP/1.0"), t0).unwrap();
        assert!(first.starts_with(b"HTTP/1.0 200 OK\r\n"));
        assert!(first.ends_with(b"\r\n\r\nchunk 1 of 5\n"));
        let steps = streams.take_due(t0 + INTERVAL * 10);
        // A late tick sends only what is due, one step per stream.
        assert_eq!(steps.len(), 1);
        let mut all = steps;
        while let Some(due) = streams.next_due() {
            all.extend(streams.take_due(due));
        }
        assert_eq!(all.last().unwrap().bytes, b"");
        assert_eq!(all.len(), 5);
    }

    #[test]
    fn streams_interleave_and_cancel() {
        let t0 = Instant::now();
        let mut streams = Streams::default();
        streams.start(&request(1, b"HTTP/1.1"), t0).unwrap();
        streams
            .start(&request(2, b"HTTP/1.1"), t0 + INTERVAL / 2)
            .unwrap();
        let ids: Vec<u64> = streams
            .take_due(t0 + INTERVAL)
            .iter()
            .map(|s| s.conn_id)
            .collect();
        assert_eq!(ids, [1]);
        streams.cancel("S", 1);
        let ids: Vec<u64> = streams
            .take_due(t0 + INTERVAL * 2)
            .iter()
            .map(|s| s.conn_id)
            .collect();
        assert_eq!(ids, [2]);
    }

    #[test]
    fn too_many_streams_are_refused() {
        let t0 = Instant::now();
        let mut streams = Streams::default();
        for id in 0..MAX_STREAMS as u64 {
            streams.start(&request(id, b"HTTP/1.1"), t0).unwrap();
        }
        assert_eq!(streams.start(&request(0, b"HTTP/1.1"), t0), Err(Busy));
    }
}
