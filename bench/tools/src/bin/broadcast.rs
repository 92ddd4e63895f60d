//! `broadcast`: plays the handler for one route, connects many clients to
//! it, and times how long one reply addressed to all of them (Mongrel2's
//! multi-id reply) takes until every client has received the whole body.
//! Works against Kennel and Mongrel2 alike (same wire protocol). Output
//! format: `bench/TOOLS.md`.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use kennel_bench_tools::connect::{self, Sources, DEFAULT_IN_FLIGHT};
use kennel_bench_tools::listeners::{body, client, expected, prepare, time_rounds, Progress};
use kennel_handler::Connection;
use tokio::io::AsyncWriteExt;

/// How long the handler waits for one request before checking on the
/// clients again.
const POLL: Duration = Duration::from_millis(50);

/// Time one multi-id reply to many clients.
#[derive(Parser, Debug)]
#[command(name = "broadcast", version)]
struct Args {
    /// The server, HOST:PORT.
    #[arg(long)]
    addr: String,
    /// How many clients.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// The path the clients GET; its route must lead to the handler whose
    /// sockets are --send-spec and --recv-spec.
    #[arg(long)]
    path: String,
    /// The Host header the clients send.
    #[arg(long, default_value = "localhost")]
    host: String,
    /// The handler's send_spec (the server's PUSH socket; we PULL).
    #[arg(long)]
    send_spec: String,
    /// The handler's recv_spec (the server's SUB socket; we publish).
    #[arg(long)]
    recv_spec: String,
    /// Connection ids per reply frame (at most the server's
    /// `limits.handler_targets`, default 128).
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// How many timed broadcasts.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Bytes in each broadcast body (at least 16).
    #[arg(long, default_value_t = 64)]
    body_bytes: usize,
    /// Source IP addresses to bind to, comma-separated, used in turn.
    #[arg(long, default_value = "", value_parser = Sources::parse)]
    sources: Sources,
    /// Connects in flight at once.
    #[arg(long, default_value_t = DEFAULT_IN_FLIGHT)]
    in_flight: usize,
    /// Give up when the clients' requests, or one round, take longer.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    prepare("broadcast", args.count, args.rounds, args.body_bytes)?;
    let mut handler = Connection::connect(&args.send_spec, &args.recv_spec)
        .context("connecting the handler sockets")?;
    handler.set_max_targets(args.batch);

    // One worker thread for the clients; this thread is the handler.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let timeout = Duration::from_secs(args.timeout_secs);
    let addr = runtime.block_on(connect::resolve(&args.addr))?;
    let progress = Arc::new(Progress::new(args.count, args.rounds));
    let expected = expected(args.rounds, args.body_bytes);
    let request =
        Arc::new(format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", args.path, args.host).into_bytes());

    let opening = {
        let progress = progress.clone();
        let sources = args.sources.0.clone();
        let body_bytes = args.body_bytes;
        runtime.spawn(async move {
            connect::open_all(
                addr,
                &sources,
                progress.clients,
                args.in_flight,
                move |_, stream| {
                    let request = request.clone();
                    let progress = progress.clone();
                    let expected = expected.clone();
                    async move {
                        let mut stream = stream;
                        stream.write_all(&request).await?;
                        tokio::spawn(client(stream, expected, body_bytes, progress));
                        Ok(())
                    }
                },
            )
            .await
        })
    };

    // Collect the connection ids from the requests as they arrive.
    let deadline = Instant::now() + timeout;
    let mut uuid = None;
    let mut seen = HashSet::with_capacity(args.count);
    let mut ids = Vec::with_capacity(args.count);
    let mut opening = Some(opening);
    while ids.len() < args.count {
        if let Some(req) = handler.recv_timeout(POLL)? {
            if req.is_disconnect() {
                bail!("connection {} closed before the broadcast", req.conn_id());
            }
            uuid.get_or_insert_with(|| req.sender().to_owned());
            if seen.insert(req.conn_id()) {
                ids.push(req.conn_id());
            }
            continue;
        }
        if opening.as_ref().is_some_and(|o| o.is_finished()) {
            let opened = runtime.block_on(opening.take().unwrap())?;
            opened.check(args.count).map_err(anyhow::Error::msg)?;
        }
        if progress.failed.load(Ordering::Acquire) > 0 {
            bail!("a client failed: {}", progress.first_error());
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {} requests reached the handler within {timeout:?}",
                ids.len(),
                args.count
            );
        }
    }
    let uuid = uuid.unwrap_or_default();
    println!("connected {}", ids.len());

    time_rounds(&runtime, &progress, timeout, |round| {
        Ok(handler.deliver(&uuid, &ids, &body(round, args.body_bytes))?)
    })?;
    // Do not wait for the client tasks (they read until the server closes).
    runtime.shutdown_background();
    Ok(())
}
