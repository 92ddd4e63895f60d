//! The byte stream under a connection: plain TCP, or TLS over TCP.
//!
//! [`Transport`] reads and writes like any tokio stream and says whether
//! it can send a file without copying it through user space
//! ([`Transport::tcp`] gives the socket for `sendfile(2)`; TLS returns
//! `None` and the caller copies: Kennel does not use kernel TLS, see
//! `docs/tls.md`). Deadlines and what the bytes mean are the connection's.
//!
//! TLS buffers: a write may leave encrypted bytes inside rustls when the
//! socket is full, so a writer that is done calls `flush` when
//! [`Transport::wants_flush`] says so; and decrypted bytes the last read
//! had no room for wait inside rustls, so [`Transport::poll_read_ready`]
//! reports them before it asks the socket.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A client connection's byte stream.
#[derive(Debug)]
pub enum Transport {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS, after the handshake (boxed: rustls's state is large, and a
    /// plain connection should not carry room for it).
    Tls(Box<Tls>),
    /// Nothing: the stream was taken for a handshake that failed.
    Gone,
}

/// A TLS stream and what its handshake said.
#[derive(Debug)]
pub struct Tls {
    /// The stream.
    pub stream: tokio_rustls::server::TlsStream<TcpStream>,
    /// `PEER_CERT_SHA1` of the client's certificate, if it sent one.
    pub peer_cert_sha1: Option<[u8; 40]>,
}

/// Bytes read from clients by every transport of the process (the
/// metrics' `bytes_read`; one server runs per process).
pub static BYTES_READ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes written to clients (`bytes_written`), `sendfile(2)` included.
pub static BYTES_WRITTEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Adds `n` to a byte count.
pub fn count(counter: &std::sync::atomic::AtomicU64, n: usize) {
    counter.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the connection has no stream")
}

impl Transport {
    /// The TCP socket, when bytes written to it reach the client as they
    /// are (so `sendfile(2)` may write to it).
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Transport::Plain(stream) => Some(stream),
            Transport::Tls(_) | Transport::Gone => None,
        }
    }

    /// The TCP socket under it, whatever the protocol on top.
    pub fn socket(&self) -> Option<&TcpStream> {
        match self {
            Transport::Plain(stream) => Some(stream),
            Transport::Tls(tls) => Some(tls.stream.get_ref().0),
            Transport::Gone => None,
        }
    }

    /// The client certificate's `PEER_CERT_SHA1`, over TLS with one.
    pub fn peer_cert_sha1(&self) -> Option<[u8; 40]> {
        match self {
            Transport::Tls(tls) => tls.peer_cert_sha1,
            Transport::Plain(_) | Transport::Gone => None,
        }
    }

    /// Whether bytes already written wait inside the transport (TLS
    /// records the socket had no room for): then `flush` before waiting
    /// on anything else.
    pub fn wants_flush(&self) -> bool {
        match self {
            Transport::Tls(tls) => tls.stream.get_ref().1.wants_write(),
            Transport::Plain(_) | Transport::Gone => false,
        }
    }

    /// Waits until there are bytes (or EOF) to read, without reading: for
    /// TLS, decrypted bytes already inside rustls count.
    pub fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Transport::Plain(stream) => stream.poll_read_ready(cx),
            Transport::Tls(tls) => {
                let (socket, session) = tls.stream.get_mut();
                match session.process_new_packets() {
                    Ok(state)
                        if state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed() =>
                    {
                        socket.poll_read_ready(cx)
                    }
                    // Bytes, an end or an error: the read will say which.
                    _ => Poll::Ready(Ok(())),
                }
            }
            Transport::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Transport::Tls(tls) => Pin::new(&mut tls.stream).poll_read(cx, buf),
            Transport::Gone => Poll::Ready(Err(gone())),
        };
        count(&BYTES_READ, buf.filled().len() - before);
        read
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let wrote = match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Transport::Tls(tls) => Pin::new(&mut tls.stream).poll_write(cx, buf),
            Transport::Gone => Poll::Ready(Err(gone())),
        };
        if let Poll::Ready(Ok(n)) = wrote {
            count(&BYTES_WRITTEN, n);
        }
        wrote
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let wrote = match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Transport::Tls(tls) => Pin::new(&mut tls.stream).poll_write_vectored(cx, bufs),
            Transport::Gone => Poll::Ready(Err(gone())),
        };
        if let Poll::Ready(Ok(n)) = wrote {
            count(&BYTES_WRITTEN, n);
        }
        wrote
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(stream) => stream.is_write_vectored(),
            Transport::Tls(tls) => tls.stream.is_write_vectored(),
            Transport::Gone => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Transport::Tls(tls) => Pin::new(&mut tls.stream).poll_flush(cx),
            Transport::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Transport::Tls(tls) => Pin::new(&mut tls.stream).poll_shutdown(cx),
            Transport::Gone => Poll::Ready(Ok(())),
        }
    }
}
