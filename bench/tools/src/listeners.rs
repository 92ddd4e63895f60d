//! Many clients waiting for one broadcast: what `broadcast` and
//! `write-floor` share. Each client reads a stream of fixed-size bodies
//! (`round NNNN ....\n`), checks every byte, and counts each round it has
//! whole; [`wait_round`] returns when all clients have a round.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

/// The shortest body: room for the round marker (`round 0000 `) and a
/// newline.
pub const MIN_BODY_BYTES: usize = 16;

/// Checks a tool's `--count`, `--rounds` and `--body-bytes`, and raises
/// the open-file limit for its clients (a warning naming `tool` if it
/// cannot).
pub fn prepare(tool: &str, count: usize, rounds: usize, body_bytes: usize) -> anyhow::Result<()> {
    if body_bytes < MIN_BODY_BYTES {
        bail!("--body-bytes must be at least {MIN_BODY_BYTES}");
    }
    if count == 0 || rounds == 0 {
        bail!("--count and --rounds must be at least 1");
    }
    if let Err(e) = crate::rlimit::raise_nofile_limit() {
        eprintln!("{tool}: warning: cannot raise the open-file limit: {e}");
    }
    Ok(())
}

/// Every byte all clients expect: the bodies of rounds `0..rounds`.
pub fn expected(rounds: usize, body_bytes: usize) -> Arc<Vec<u8>> {
    Arc::new((0..rounds).flat_map(|r| body(r, body_bytes)).collect())
}

/// Runs the timed rounds: for each, `send(round)` starts it and the clock,
/// and the round ends when every client has the whole body. Prints
/// `elapsed_us` per round and then `median_us` (bench/TOOLS.md).
pub fn time_rounds(
    runtime: &Runtime,
    progress: &Progress,
    timeout: Duration,
    mut send: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let rounds = progress.done.len();
    let mut elapsed = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let start = Instant::now();
        send(round)?;
        let Some(finished) = runtime.block_on(wait_round(progress, round, start + timeout)) else {
            bail!(
                "round {round}: {} of {} clients had the body after {timeout:?}; {} failed{}",
                progress.done[round].load(Ordering::Acquire),
                progress.clients,
                progress.failed.load(Ordering::Acquire),
                match progress.first_error() {
                    e if e.is_empty() => String::new(),
                    e => format!(", first: {e}"),
                }
            );
        };
        let us = finished.saturating_duration_since(start).as_micros();
        println!("elapsed_us {us}");
        elapsed.push(us);
    }
    elapsed.sort_unstable();
    println!("median_us {}", elapsed[elapsed.len() / 2]);
    Ok(())
}

/// What the clients have received, shared with the side that writes.
pub struct Progress {
    /// Clients that have the whole body of round `r`.
    pub done: Vec<AtomicUsize>,
    /// When the last client completed round `r`.
    pub finished_at: Mutex<Vec<Option<Instant>>>,
    /// Clients that failed.
    pub failed: AtomicUsize,
    /// The first failure.
    first_error: Mutex<Option<String>>,
    /// Woken when a round completes or a client fails.
    wake: Notify,
    /// How many clients there are.
    pub clients: usize,
}

impl Progress {
    /// No client has anything yet, for `rounds` rounds.
    pub fn new(clients: usize, rounds: usize) -> Progress {
        Progress {
            done: (0..rounds).map(|_| AtomicUsize::new(0)).collect(),
            finished_at: Mutex::new(vec![None; rounds]),
            failed: AtomicUsize::new(0),
            first_error: Mutex::new(None),
            wake: Notify::new(),
            clients,
        }
    }

    fn round_done(&self, round: usize) {
        if self.done[round].fetch_add(1, Ordering::AcqRel) + 1 == self.clients {
            self.finished_at.lock().unwrap()[round] = Some(Instant::now());
            self.wake.notify_one();
        }
    }

    /// Records a client's failure.
    pub fn fail(&self, error: String) {
        self.first_error.lock().unwrap().get_or_insert(error);
        self.failed.fetch_add(1, Ordering::AcqRel);
        self.wake.notify_one();
    }

    /// The first failure, or an empty string.
    pub fn first_error(&self) -> String {
        self.first_error.lock().unwrap().clone().unwrap_or_default()
    }
}

/// The body of round `r`: `round NNNN ` padded with `.` to `len` bytes,
/// the last being a newline.
pub fn body(round: usize, len: usize) -> Vec<u8> {
    let mut body = format!("round {round:04} ").into_bytes();
    body.resize(len - 1, b'.');
    body.push(b'\n');
    body
}

/// Waits until every client has round `round`, a client fails, or the
/// deadline; the completion time, if complete.
async fn wait_round(progress: &Progress, round: usize, deadline: Instant) -> Option<Instant> {
    loop {
        if progress.done[round].load(Ordering::Acquire) >= progress.clients {
            return progress.finished_at.lock().unwrap()[round];
        }
        if progress.failed.load(Ordering::Acquire) > 0 {
            return None;
        }
        let wake = progress.wake.notified();
        if tokio::time::timeout_at(deadline.into(), wake)
            .await
            .is_err()
        {
            return None;
        }
    }
}

/// One client: reads the broadcast bodies, checking every byte against the
/// expected stream and counting each round it completes; then keeps reading
/// so that anything extra is noticed.
pub async fn client(
    mut stream: TcpStream,
    expected: Arc<Vec<u8>>,
    body_bytes: usize,
    progress: Arc<Progress>,
) {
    let mut buf = vec![0u8; 4096];
    let mut at = 0;
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) if at == expected.len() => return,
            Ok(0) => {
                return progress.fail(format!(
                    "the server closed a connection after {at} of {} bytes",
                    expected.len()
                ))
            }
            Ok(n) => n,
            Err(e) => return progress.fail(format!("read: {e}")),
        };
        if expected.get(at..at + n) != Some(&buf[..n]) {
            return progress.fail(format!(
                "unexpected bytes at offset {at}: {:?}",
                String::from_utf8_lossy(&buf[..n.min(80)])
            ));
        }
        let before = at / body_bytes;
        at += n;
        for round in before..at / body_bytes {
            progress.round_done(round);
        }
    }
}
