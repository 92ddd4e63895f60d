//! `write-floor`: the least any server can take for scenario g. The same
//! clients as `broadcast` wait on loopback connections, but what writes to
//! them is a bare thread (pinned to the server's core) that holds the
//! accepted sockets and, per round, writes one body to each in a loop: no
//! handler, no reply to parse, no runtime. Whatever a server adds comes on
//! top of this. Output format: `bench/TOOLS.md` (as `broadcast`'s).

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};

use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use kennel_bench_tools::connect::{self, DEFAULT_IN_FLIGHT};
use kennel_bench_tools::listeners::{body, client, expected, prepare, time_rounds, Progress};
use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// Time one write to each of many clients, with no server.
#[derive(Parser, Debug)]
#[command(name = "write-floor", version)]
struct Args {
    /// How many clients.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// How many timed rounds.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Bytes in each body (at least 16).
    #[arg(long, default_value_t = 64)]
    body_bytes: usize,
    /// The CPU the writing thread runs on (bench/run.sh: the server's).
    #[arg(long)]
    writer_cpu: Option<usize>,
    /// Give up when connecting, or one round, takes longer.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    prepare("write-floor", args.count, args.rounds, args.body_bytes)?;
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
    let addr = listener.local_addr()?;
    let timeout = Duration::from_secs(args.timeout_secs);

    // The writer: accepts every client, then writes round after round.
    let (go, rounds) = mpsc::channel::<usize>();
    let (accepted_tx, accepted) = mpsc::channel::<()>();
    let (count, body_bytes, writer_cpu) = (args.count, args.body_bytes, args.writer_cpu);
    let writer = std::thread::Builder::new()
        .name("writer".into())
        .spawn(move || {
            write_rounds(listener, count, body_bytes, writer_cpu, accepted_tx, rounds)
        })?;

    // The clients, on one runtime thread (this process's CPU).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let progress = Arc::new(Progress::new(args.count, args.rounds));
    let expected = expected(args.rounds, args.body_bytes);
    let opened = runtime.block_on(open_clients(addr, &progress, expected, args.body_bytes))?;
    opened.check(args.count).map_err(anyhow::Error::msg)?;
    if accepted.recv_timeout(timeout).is_err() {
        bail!(
            "the writer did not accept {} connections within {timeout:?}",
            args.count
        );
    }
    println!("connected {}", args.count);

    let timed = time_rounds(&runtime, &progress, timeout, |round| {
        go.send(round)
            .map_err(|_| anyhow::anyhow!("the writer stopped before round {round}"))
    });
    drop(go);
    // The writer's own error, if it stopped, says more than the round's.
    match writer.join() {
        Ok(result) => result.context("the writer")?,
        Err(_) => bail!("the writer panicked"),
    }
    timed?;
    runtime.shutdown_background();
    Ok(())
}

/// Opens the clients; each reads and checks what the writer sends.
async fn open_clients(
    addr: SocketAddr,
    progress: &Arc<Progress>,
    expected: Arc<Vec<u8>>,
    body_bytes: usize,
) -> anyhow::Result<connect::Opened<()>> {
    let progress = Arc::clone(progress);
    let opened = connect::open_all(
        addr,
        &[],
        progress.clients,
        DEFAULT_IN_FLIGHT,
        move |_, stream| {
            let progress = progress.clone();
            let expected = expected.clone();
            async move {
                tokio::spawn(client(stream, expected, body_bytes, progress));
                Ok(())
            }
        },
    )
    .await;
    Ok(opened)
}

/// The writing thread: pins itself, accepts `count` connections, says so,
/// then for each round number received writes that round's body to every
/// connection in turn.
fn write_rounds(
    listener: TcpListener,
    count: usize,
    body_bytes: usize,
    cpu: Option<usize>,
    accepted: mpsc::Sender<()>,
    rounds: mpsc::Receiver<usize>,
) -> anyhow::Result<()> {
    if let Some(cpu) = cpu {
        let mut set = CpuSet::new();
        set.set(cpu).with_context(|| format!("CPU {cpu}"))?;
        sched_setaffinity(Pid::from_raw(0), &set)
            .with_context(|| format!("pinning to CPU {cpu}"))?;
    }
    let mut streams: Vec<TcpStream> = Vec::with_capacity(count);
    while streams.len() < count {
        let (stream, _) = listener.accept().context("accepting")?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let _ = accepted.send(());
    for round in rounds {
        let body = body(round, body_bytes);
        for stream in &mut streams {
            stream.write_all(&body).context("writing")?;
        }
    }
    Ok(())
}
