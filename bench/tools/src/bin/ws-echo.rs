//! `ws-echo`: WebSocket echo throughput and latency through a handler.
//! Opens N connections, upgrades each (the handler sends the `101`), then
//! on every connection sends a small masked text frame, waits for its echo,
//! and repeats, for S seconds; reports messages per second and latency
//! percentiles. Works against Kennel and Mongrel2 alike. Output format:
//! `bench/TOOLS.md`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use hdrhistogram::Histogram;
use kennel_bench_tools::connect::{self, Sources, DEFAULT_IN_FLIGHT};
use kennel_bench_tools::rlimit;
use kennel_bench_tools::websocket::{self, Echo, MAX_PAYLOAD, MIN_PAYLOAD};

/// The largest latency recorded exactly: 60 s, in microseconds (longer
/// ones are recorded as 60 s). An echo slower than `--timeout-secs` fails
/// the run anyway.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Echo messages on many WebSocket connections for a while.
#[derive(Parser, Debug)]
#[command(name = "ws-echo", version)]
struct Args {
    /// The server, HOST:PORT.
    #[arg(long)]
    addr: String,
    /// The WebSocket route (its handler must echo).
    #[arg(long, default_value = "/bench/ws")]
    path: String,
    /// The Host header of the upgrade requests.
    #[arg(long, default_value = "localhost")]
    host: String,
    /// How many connections, each with one message in flight.
    #[arg(long, default_value_t = 64)]
    conns: usize,
    /// How long to send messages, in seconds.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Bytes in each message's payload.
    #[arg(long, default_value_t = 32,
          value_parser = clap::value_parser!(u64).range(MIN_PAYLOAD as u64..=MAX_PAYLOAD as u64))]
    payload_bytes: u64,
    /// Source IP addresses to bind to, comma-separated, used in turn.
    #[arg(long, default_value = "", value_parser = Sources::parse)]
    sources: Sources,
    /// Connects in flight at once.
    #[arg(long, default_value_t = DEFAULT_IN_FLIGHT)]
    in_flight: usize,
    /// Give up when one echo takes longer than this.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
}

/// What one connection did in the timed run.
struct Done {
    messages: u64,
    latency: Histogram<u64>,
    finished: Instant,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.conns == 0 {
        bail!("--conns must be at least 1");
    }
    if !(args.secs > 0.0 && args.secs.is_finite()) {
        bail!("--secs must be a positive number");
    }
    if let Err(e) = rlimit::raise_nofile_limit() {
        eprintln!("ws-echo: warning: cannot raise the open-file limit: {e}");
    }
    // One thread, like wrk -t1: the load generator has one core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let addr = connect::resolve(&args.addr).await?;
    let timeout = Duration::from_secs(args.timeout_secs);
    let payload_len = args.payload_bytes as usize;
    // Upgrade every connection and echo one message on it, untimed, so the
    // timed run starts with every connection set up.
    let (path, host) = (args.path.clone(), args.host.clone());
    let opened = connect::open_all(
        addr,
        &args.sources.0,
        args.conns,
        args.in_flight,
        move |i, mut stream| {
            let (path, host) = (path.clone(), host.clone());
            async move {
                stream.set_nodelay(true)?;
                let mut leftover = Vec::new();
                websocket::handshake(&mut stream, &mut leftover, &path, &host).await?;
                let mut echo = Echo::new(stream, &leftover, payload_len, (i as u64) << 40);
                echo.exchange().await?;
                Ok(echo)
            }
        },
    )
    .await;
    opened.check(args.conns).map_err(anyhow::Error::msg)?;
    println!("connected {}", opened.ok.len());

    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.secs);
    let mut tasks = tokio::task::JoinSet::new();
    for mut echo in opened.ok {
        tasks.spawn(async move {
            let mut latency = Histogram::<u64>::new_with_max(MAX_LATENCY_US, 3)
                .map_err(|e| anyhow::anyhow!("histogram: {e}"))?;
            let mut messages = 0u64;
            loop {
                let sent = Instant::now();
                if sent >= deadline {
                    break;
                }
                tokio::time::timeout(timeout, echo.exchange())
                    .await
                    .map_err(|_| anyhow::anyhow!("no echo within {timeout:?}"))??;
                let finished = Instant::now();
                latency.saturating_record((finished - sent).as_micros() as u64);
                messages += 1;
            }
            anyhow::Ok(Done {
                messages,
                latency,
                finished: Instant::now(),
            })
        });
    }

    let mut total = Histogram::<u64>::new_with_max(MAX_LATENCY_US, 3)?;
    let mut messages = 0u64;
    let mut finished = start;
    let mut failed = 0usize;
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        match done.context("a connection task")? {
            Ok(done) => {
                messages += done.messages;
                total.add(&done.latency)?;
                finished = finished.max(done.finished);
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        bail!(
            "{failed} of {} connections failed; first: {e:#}",
            args.conns
        );
    }
    let elapsed = finished - start;
    println!("messages {messages}");
    println!("elapsed_ms {}", elapsed.as_millis());
    println!(
        "messages_per_sec {:.0}",
        messages as f64 / elapsed.as_secs_f64()
    );
    for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
        println!("{name}_us {}", total.value_at_quantile(q));
    }
    println!("max_us {}", total.max());
    Ok(())
}
