//! The byte stream under a connection: plain TCP today, TLS next.
//!
//! [`Transport`] reads and writes like any tokio stream and says whether
//! it can send a file without copying it through user space
//! ([`Transport::tcp`] gives the socket for `sendfile(2)`; a transport
//! that cannot, such as TLS without kTLS, returns `None` and the caller
//! copies). Deadlines and what the bytes mean are the connection's.

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
}

impl Transport {
    /// The TCP socket, when bytes written to it reach the client as they
    /// are (so `sendfile(2)` may write to it).
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Transport::Plain(stream) => Some(stream),
        }
    }

    /// Waits until the socket has bytes (or EOF) to read, without reading.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Transport::Plain(stream) => stream.poll_read_ready(cx),
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

/// The client socket's descriptor: what the server's
/// [`crate::roster::Roster`] knows the connection by.
impl std::os::fd::AsRawFd for Transport {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            Transport::Plain(stream) => stream.as_raw_fd(),
        }
    }
}
