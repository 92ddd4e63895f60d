//! `idle-conns`: opens many TCP connections to a server, optionally sends
//! one keep-alive request on each and reads its response (or upgrades each
//! to a WebSocket and echoes one message on it), reports, then holds them
//! open so the server's memory per idle connection can be measured. Output
//! format: `bench/TOOLS.md`.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kennel_bench_tools::connect::{self, Sources, DEFAULT_IN_FLIGHT};
use kennel_bench_tools::websocket::{self, Echo, MIN_PAYLOAD};
use kennel_bench_tools::{escape, response, rlimit};
use nix::sys::socket::MsgFlags;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Open N connections, optionally make one request on each, hold them.
#[derive(Parser, Debug)]
#[command(name = "idle-conns", version)]
struct Args {
    /// The server, HOST:PORT.
    #[arg(long)]
    addr: String,
    /// How many connections to open.
    #[arg(long)]
    count: usize,
    /// Source IP addresses to bind to, comma-separated, used in turn
    /// (about 28,000 connections per address); default: the OS chooses.
    #[arg(long, default_value = "", value_parser = Sources::parse)]
    sources: Sources,
    /// A request to send on each connection (backslash escapes such as
    /// `\r\n` are decoded); its response is read before holding.
    #[arg(long, conflicts_with = "websocket")]
    request: Option<String>,
    /// Upgrade each connection to a WebSocket on this path (the handler
    /// sends the 101) and echo one text message on it before holding.
    #[arg(long)]
    websocket: Option<String>,
    /// The Host header of the WebSocket upgrade requests.
    #[arg(long, default_value = "localhost")]
    host: String,
    /// How long to hold the connections once all are open.
    #[arg(long)]
    hold_secs: u64,
    /// Connects in flight at once.
    #[arg(long, default_value_t = DEFAULT_IN_FLIGHT)]
    in_flight: usize,
    /// Also stop holding when standard input reaches end of file (off by
    /// default: a background job in a script has /dev/null as its input).
    #[arg(long)]
    exit_on_stdin_eof: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let request = match (&args.request, &args.websocket) {
        (Some(text), _) => Some(Exchange::Http(escape::unescape(text).context("--request")?)),
        (None, Some(path)) => Some(Exchange::WebSocket {
            path: path.clone(),
            host: args.host.clone(),
        }),
        (None, None) => None,
    }
    .map(Arc::new);
    match rlimit::raise_nofile_limit() {
        Ok(limit) if (limit as usize) < args.count.saturating_add(16) => eprintln!(
            "idle-conns: warning: the open-file limit is {limit}, fewer than {} connections need",
            args.count
        ),
        Ok(_) => {}
        Err(e) => eprintln!("idle-conns: warning: cannot raise the open-file limit: {e}"),
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args, request))?;
    // Dropping 100,000 sockets is quick; nothing else is left running but
    // the stdin watcher thread, which must not delay the exit.
    std::process::exit(0);
}

/// What is done on each connection before it is held.
#[derive(Debug)]
enum Exchange {
    /// Send this request and read its response.
    Http(Vec<u8>),
    /// Upgrade to a WebSocket on `path` and echo one message.
    WebSocket {
        /// The upgrade request's path.
        path: String,
        /// Its Host header.
        host: String,
    },
}

async fn run(args: Args, request: Option<Arc<Exchange>>) -> anyhow::Result<()> {
    // Listen for signals before anything is printed, so that a script that
    // sends SIGTERM as soon as it reads `opened` is always heard.
    let signals = Signals {
        term: signal(SignalKind::terminate())?,
        int: signal(SignalKind::interrupt())?,
    };
    let addr = connect::resolve(&args.addr).await?;
    let opened = connect::open_all(
        addr,
        &args.sources.0,
        args.count,
        args.in_flight,
        move |_, stream| exchange(stream, request.clone()),
    )
    .await;

    if let Some(e) = &opened.first_error {
        println!("first_error {e}");
    }
    let mut statuses = BTreeMap::<u16, usize>::new();
    for (_, status) in &opened.ok {
        if let Some(status) = status {
            *statuses.entry(*status).or_default() += 1;
        }
    }
    if !statuses.is_empty() {
        let list: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect();
        println!("statuses {}", list.join(" "));
    }
    println!("opened {} failed {}", opened.ok.len(), opened.failed);

    let reason = hold(
        Duration::from_secs(args.hold_secs),
        signals,
        args.exit_on_stdin_eof,
    )
    .await;
    let closed = opened
        .ok
        .iter()
        .filter(|(stream, _)| is_closed(stream))
        .count();
    println!("closed_by_peer {closed}");
    eprintln!("idle-conns: released after {reason}");
    Ok(())
}

/// Sends the request (if any) and reads its response, or upgrades and
/// echoes one message; the connection and the response's status (101 for
/// a WebSocket).
async fn exchange(
    mut stream: TcpStream,
    request: Option<Arc<Exchange>>,
) -> std::io::Result<(TcpStream, Option<u16>)> {
    let mut buf = Vec::new();
    match request.as_deref() {
        None => Ok((stream, None)),
        Some(Exchange::Http(request)) => {
            stream.write_all(request).await?;
            let status = response::read_response(&mut stream, &mut buf).await?;
            Ok((stream, Some(status)))
        }
        Some(Exchange::WebSocket { path, host }) => {
            websocket::handshake(&mut stream, &mut buf, path, host).await?;
            let mut echo = Echo::new(stream, &buf, MIN_PAYLOAD, 0);
            echo.exchange().await?;
            Ok((echo.into_stream(), Some(101)))
        }
    }
}

/// The signals that end the hold.
struct Signals {
    term: Signal,
    int: Signal,
}

/// Waits for the hold time, SIGTERM, SIGINT or (when asked) the end of
/// standard input; says which.
async fn hold(time: Duration, mut signals: Signals, stdin_eof: bool) -> &'static str {
    let stdin_closed = async {
        if !stdin_eof {
            return std::future::pending().await;
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // A plain thread: a blocking read must not hold up the exit.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let _ = tx.send(());
        });
        let _ = rx.await;
    };
    tokio::select! {
        _ = tokio::time::sleep(time) => "hold time",
        _ = signals.term.recv() => "SIGTERM",
        _ = signals.int.recv() => "SIGINT",
        _ = stdin_closed => "end of stdin",
    }
}

/// Whether the server has closed (or reset) the connection, without
/// reading anything off it.
fn is_closed(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match nix::sys::socket::recv(
        stream.as_raw_fd(),
        &mut byte,
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(0) => true,
        Ok(_) => false,
        Err(nix::errno::Errno::EAGAIN) => false,
        Err(_) => true,
    }
}
