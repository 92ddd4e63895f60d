//! Opening many client connections to one server: spread over several
//! loopback source addresses (one source address has only about 28,000
//! ephemeral ports towards one server port, so 100,000 connections need at
//! least four), with a bounded number of connects in flight so the
//! server's accept backlog is not overrun, and a timeout on each.
//!
//! What happens on a connection once it is open (a request, a response) is
//! the caller's, passed in as a closure; this module only opens and counts.
//!
//! Sockets with a source address are bound with `IP_BIND_ADDRESS_NO_PORT`,
//! so the kernel picks the port at connect time (fast, and unique per
//! 4-tuple) instead of at bind time.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use nix::sys::socket::sockopt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

/// Default for the connects in flight at once: 512. Linux's default listen
/// backlog (`somaxconn`) is 4096 and servers often ask for less; 512 keeps
/// well under it while still opening tens of thousands per second.
pub const DEFAULT_IN_FLIGHT: usize = 512;

/// How long one connect (plus the caller's work on it) may take: 10 s.
/// Long enough for a loaded server's accept loop; short enough that a
/// dropped SYN (retransmitted after 1, 3, 7 … s) is reported, not waited
/// out for minutes.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses a comma-separated list of source IP addresses
/// (`127.0.0.2,127.0.0.3`); an empty list means "let the OS choose".
pub fn parse_sources(text: &str) -> Result<Vec<IpAddr>, std::net::AddrParseError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}

/// A `--sources` option: source addresses for the connections, used in
/// turn (empty: let the OS choose).
#[derive(Debug, Clone, Default)]
pub struct Sources(pub Vec<IpAddr>);

impl Sources {
    /// Parses a `--sources` value, with an example in the error.
    pub fn parse(text: &str) -> Result<Sources, String> {
        parse_sources(text)
            .map(Sources)
            .map_err(|e| format!("{e} (expected e.g. 127.0.0.2,127.0.0.3)"))
    }
}

/// The first address `HOST:PORT` resolves to.
pub async fn resolve(addr: &str) -> io::Result<SocketAddr> {
    tokio::net::lookup_host(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("{addr}: {e}")))?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{addr}: no address")))
}

/// Opens one TCP connection to `addr`, first binding to `source` (any free
/// port) when given.
pub async fn open(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        // Choose the port at connect time, not at bind time: `bind` to port 0
        // searches for a port no other socket is bound to, which gets slow
        // (seconds per thousand) with tens of thousands bound, and cannot
        // share a port between different destinations.
        if ip.is_ipv4() {
            nix::sys::socket::setsockopt(&socket, sockopt::IpBindAddressNoPort, &true)
                .map_err(io::Error::from)?;
        }
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(addr).await
}

/// What [`open_all`] achieved.
#[derive(Debug)]
pub struct Opened<T> {
    /// One value per connection that succeeded, in completion order.
    pub ok: Vec<T>,
    /// How many failed.
    pub failed: usize,
    /// The first failure, for the report.
    pub first_error: Option<String>,
}

impl<T> Opened<T> {
    /// An error naming how many of `count` failed and the first failure,
    /// if any did.
    pub fn check(&self, count: usize) -> Result<(), String> {
        if self.failed == 0 {
            return Ok(());
        }
        Err(format!(
            "{} of {count} connections failed; first: {}",
            self.failed,
            self.first_error.as_deref().unwrap_or_default()
        ))
    }
}

/// Opens `count` connections to `addr`, connection `i` from
/// `sources[i % sources.len()]`, at most `in_flight` at a time, and runs
/// `then(i, stream)` on each; the whole per-connection step is bounded by
/// [`CONNECT_TIMEOUT`]. Must run inside a tokio runtime.
pub async fn open_all<T, F, Fut>(
    addr: SocketAddr,
    sources: &[IpAddr],
    count: usize,
    in_flight: usize,
    then: F,
) -> Opened<T>
where
    T: Send + 'static,
    F: Fn(usize, TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<T>> + Send + 'static,
{
    let in_flight = in_flight.max(1);
    let then = std::sync::Arc::new(then);
    let mut tasks = JoinSet::new();
    let mut opened = Opened {
        ok: Vec::with_capacity(count),
        failed: 0,
        first_error: None,
    };
    let mut record = |result: Result<io::Result<T>, tokio::task::JoinError>| {
        let error = match result {
            Ok(Ok(value)) => {
                opened.ok.push(value);
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("task failed: {e}"),
        };
        opened.failed += 1;
        opened.first_error.get_or_insert(error);
    };
    for i in 0..count {
        while tasks.len() >= in_flight {
            if let Some(done) = tasks.join_next().await {
                record(done);
            }
        }
        let source = (!sources.is_empty()).then(|| sources[i % sources.len()]);
        let then = then.clone();
        let step = async move {
            let stream = open(addr, source).await.map_err(|e| match source {
                Some(ip) => io::Error::new(e.kind(), format!("connect from {ip}: {e}")),
                None => io::Error::new(e.kind(), format!("connect: {e}")),
            })?;
            then(i, stream).await
        };
        tasks.spawn(bounded(step));
    }
    while let Some(done) = tasks.join_next().await {
        record(done);
    }
    opened
}

async fn bounded<T>(step: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(CONNECT_TIMEOUT, step)
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no connection within {CONNECT_TIMEOUT:?}"),
            ))
        })
}
