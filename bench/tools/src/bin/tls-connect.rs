//! `tls-connect`: new TLS connections per second. N connections at a
//! time, each in a loop for S seconds: TCP connect, TLS handshake (full,
//! or resumed from the loop's session cache), one small `GET` with
//! `Connection: close`, the response, the server's close; then the
//! next. Reports connections per second, how many handshakes were
//! resumed, and the tool's own CPU use. Output format: `bench/TOOLS.md`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use kennel_bench_tools::connect;
use kennel_bench_tools::tls::{self, ClientOptions, Handshake, Trust};
use nix::sys::resource::{getrusage, UsageWho};
use rustls::pki_types::ServerName;
use rustls::HandshakeKind;
use tokio_rustls::TlsConnector;

/// New TLS connections per second, each with one small request.
#[derive(Parser, Debug)]
#[command(name = "tls-connect", version)]
struct Args {
    /// The server, HOST:PORT.
    #[arg(long)]
    addr: String,
    /// The name sent in SNI (and checked against the certificate with --ca).
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// The path fetched on each connection.
    #[arg(long, default_value = "/static/1k.bin")]
    path: String,
    /// The Host header.
    #[arg(long, default_value = "localhost")]
    host: String,
    /// Verify the server's chain against the CA certificates in this PEM file.
    #[arg(long, required_unless_present = "pin", conflicts_with = "pin")]
    ca: Option<PathBuf>,
    /// Accept only the (first) certificate in this PEM file, byte for byte,
    /// and check no signature: the client then costs less than the server.
    #[arg(long)]
    pin: Option<PathBuf>,
    /// Resume sessions: each of the --conns loops keeps a session cache
    /// for its connections, one after the other.
    #[arg(long)]
    resume: bool,
    /// Offer TLS 1.2 only (default: TLS 1.3 and 1.2).
    #[arg(long)]
    tls12: bool,
    /// Connections at a time.
    #[arg(long, default_value_t = 16)]
    conns: usize,
    /// How long to open connections, in seconds.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Give up on one connection after this long.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
}

/// What one of the N loops did.
#[derive(Default)]
struct Tally {
    done: u64,
    resumed: u64,
    hello_retry: u64,
    failed: u64,
    first_error: Option<String>,
    first: Option<Handshake>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.conns == 0 {
        bail!("--conns must be at least 1");
    }
    if !(args.secs > 0.0 && args.secs.is_finite()) {
        bail!("--secs must be a positive number");
    }
    // One thread, like wrk -t1: the load generator has one core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

/// CPU time this process has used, user and system.
fn cpu_time() -> anyhow::Result<Duration> {
    let usage = getrusage(UsageWho::RUSAGE_SELF)?;
    let micros = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    Ok(micros(usage.user_time()) + micros(usage.system_time()))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let addr = connect::resolve(&args.addr).await?;
    let trust = match (&args.ca, &args.pin) {
        (Some(ca), _) => Trust::Ca(ca.clone()),
        (None, Some(pin)) => Trust::Pin(pin.clone()),
        (None, None) => unreachable!("clap requires one"),
    };
    let options = ClientOptions {
        trust,
        resume: args.resume,
        tls12_only: args.tls12,
    };
    let name = ServerName::try_from(args.server_name.clone())
        .with_context(|| format!("--server-name {:?}", args.server_name))?;
    let request: Arc<[u8]> = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        args.path, args.host
    )
    .into_bytes()
    .into();
    let timeout = Duration::from_secs(args.timeout_secs);

    // Each loop is one client, with a session cache of its own (see
    // ClientOptions::resume).
    let connectors = (0..args.conns)
        .map(|_| tls::client_config(&options).map(|c| TlsConnector::from(Arc::new(c))))
        .collect::<Result<Vec<_>, _>>()?;

    let cpu_before = cpu_time()?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.secs);
    let mut tasks = tokio::task::JoinSet::new();
    for connector in connectors {
        let (name, request) = (name.clone(), request.clone());
        tasks.spawn(async move {
            let mut tally = Tally::default();
            let mut buf = Vec::with_capacity(4096);
            while Instant::now() < deadline {
                let one = tls::exchange(&connector, addr, &name, &request, &mut buf);
                match tokio::time::timeout(timeout, one).await {
                    Ok(Ok(handshake)) => {
                        tally.done += 1;
                        match handshake.kind {
                            HandshakeKind::Resumed => tally.resumed += 1,
                            HandshakeKind::FullWithHelloRetryRequest => tally.hello_retry += 1,
                            HandshakeKind::Full => {}
                        }
                        tally.first.get_or_insert(handshake);
                    }
                    Ok(Err(e)) => {
                        tally.failed += 1;
                        tally.first_error.get_or_insert(e.to_string());
                    }
                    Err(_) => {
                        tally.failed += 1;
                        tally
                            .first_error
                            .get_or_insert(format!("no whole exchange within {timeout:?}"));
                    }
                }
            }
            (tally, Instant::now())
        });
    }
    let mut total = Tally::default();
    let mut finished = start;
    while let Some(joined) = tasks.join_next().await {
        let (tally, end) = joined.context("a connection task")?;
        total.done += tally.done;
        total.resumed += tally.resumed;
        total.hello_retry += tally.hello_retry;
        total.failed += tally.failed;
        if total.first_error.is_none() {
            total.first_error = tally.first_error;
        }
        if total.first.is_none() {
            total.first = tally.first;
        }
        finished = finished.max(end);
    }
    let elapsed = finished - start;
    let cpu = cpu_time()? - cpu_before;

    if let Some(e) = &total.first_error {
        println!("first_error {e}");
    }
    if let Some(first) = total.first {
        let name = |v: Option<String>| v.unwrap_or_else(|| "?".into());
        println!("protocol {}", name(first.version.map(|v| format!("{v:?}"))));
        println!("cipher {}", name(first.suite.map(|s| format!("{s:?}"))));
    }
    println!("connections {}", total.done);
    println!("resumed {}", total.resumed);
    println!("hello_retry {}", total.hello_retry);
    println!("failed {}", total.failed);
    println!("elapsed_ms {}", elapsed.as_millis());
    println!(
        "connections_per_sec {:.0}",
        total.done as f64 / elapsed.as_secs_f64()
    );
    let share = if total.done == 0 {
        0.0
    } else {
        100.0 * total.resumed as f64 / total.done as f64
    };
    println!("resumed_pct {share:.2}");
    println!(
        "client_cpu_pct {:.1}",
        100.0 * cpu.as_secs_f64() / elapsed.as_secs_f64()
    );
    if total.done == 0 {
        bail!("no connection completed");
    }
    Ok(())
}
