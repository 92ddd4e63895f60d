//! Writing a planned [`Response`]: its head, then its body's parts in
//! order.
//!
//! Owns the one driver over a response's parts ([`drive`]) and the two ways
//! a file range reaches the peer: [`send`], `sendfile(2)` to a
//! [`TcpStream`] (zero copy; [`sendfile_once`] is its single step), and
//! [`send_copy`], a read/write loop to any [`AsyncWrite`] (TLS, a buffer in
//! tests). Does not own what the response says ([`super`] plans it),
//! deadlines (the caller's), or closing the connection after an error.
//!
//! Called by the connection task, which may also drive [`sendfile_once`]
//! itself under its own write deadline.

use std::fs::File;
use std::io;
use std::sync::Arc;

use bytes::Buf;
use tokio::io::{AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use super::{Body, Part, Response};

/// Most bytes one `sendfile(2)` call is asked to move before the task
/// yields to the others on its thread: 48 KiB. Large responses then go out
/// interleaved, a chunk per connection in turn (as Mongrel2's 16 KiB blocks
/// and nginx's `sendfile_max_chunk` do), instead of one connection filling
/// its whole send buffer while the rest wait. On loopback this took the
/// 1 MiB file from about 2.1 to about 7.5 GiB/s with 64 clients (1 MiB
/// chunks without yielding: 2.1; 16 KiB: 4.3; 32 KiB: 6.4; 48 KiB: 7.8).
/// Not 64 KiB: a chunk of exactly 64 KiB fell back to 2.1 GiB/s, which
/// looks like the loopback device's 64 KiB packet limit.
pub const SENDFILE_CHUNK: usize = 48 * 1024;

/// Size of the buffer [`send_copy`] reads the file through. Default 64 KiB:
/// large enough that syscalls and blocking-pool hand-offs are few, small
/// enough to allocate per response without thought.
pub const COPY_CHUNK: usize = 64 * 1024;

/// Writes a planned response to a TCP stream: the head, then the body;
/// file ranges with `sendfile(2)` (zero copy), bytes with `write_all`.
/// A head with an in-memory body goes out in one vectored write.
///
/// A file that shrinks while it is sent is an `UnexpectedEof` error: the
/// promised `Content-Length` cannot be met, so the caller must close.
pub async fn send(response: Response, stream: &mut TcpStream) -> io::Result<()> {
    drive(response, &mut Sendfile(stream)).await
}

/// Writes a planned response to any writer (TLS, or a buffer in tests):
/// the head, then the body, reading file ranges in [`COPY_CHUNK`] pieces
/// (file reads run on the blocking pool). Flushes at the end.
///
/// A file that shrinks while it is sent is an `UnexpectedEof` error, as
/// for [`send`].
pub async fn send_copy<W: AsyncWrite + Unpin>(response: Response, w: &mut W) -> io::Result<()> {
    drive(response, &mut Copy(&mut *w)).await?;
    w.flush().await
}

/// One non-blocking `sendfile(2)` of at most `count` bytes of `file` from
/// `*position` to `stream` (advancing `position`); `WouldBlock` when the
/// socket is full (then wait for `stream.writable()`), `Ok(0)` if the file
/// ended early.
pub fn sendfile_once(
    stream: &TcpStream,
    file: &File,
    position: &mut i64,
    count: usize,
) -> io::Result<usize> {
    stream.try_io(Interest::WRITABLE, || {
        nix::sys::sendfile::sendfile(stream, file, Some(&mut *position), count)
            .map_err(io::Error::from)
    })
}

/// Where [`drive`] writes: bytes go through the writer; file ranges each
/// sink sends its own way.
trait Sink {
    /// The writer bytes go through.
    type Writer: AsyncWrite + Unpin;

    /// The writer.
    fn writer(&mut self) -> &mut Self::Writer;

    /// Writes `len` bytes of `file` from `offset`; `UnexpectedEof` if the
    /// file ends first.
    async fn file_range(&mut self, file: &Arc<File>, offset: u64, len: u64) -> io::Result<()>;
}

/// Writes `response` to `sink`: the head, then the body's parts in order.
/// A head with an in-memory body goes out as one buffer (one vectored write
/// where the writer has them).
async fn drive<S: Sink>(response: Response, sink: &mut S) -> io::Result<()> {
    let head = response.head.as_slice();
    match response.body {
        Body::Empty => sink.writer().write_all(head).await,
        Body::Bytes(body) => sink.writer().write_all_buf(&mut head.chain(body)).await,
        Body::File { file, parts, .. } => {
            sink.writer().write_all(head).await?;
            for part in parts {
                match part {
                    Part::Bytes(bytes) => sink.writer().write_all(&bytes).await?,
                    Part::Range { offset, len } => sink.file_range(&file, offset, len).await?,
                }
            }
            Ok(())
        }
    }
}

/// The error for a file that ended before its range did.
fn shrank() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "file shrank while it was sent",
    )
}

/// File ranges by `sendfile(2)`, [`SENDFILE_CHUNK`] bytes at a time.
struct Sendfile<'a>(&'a mut TcpStream);

impl Sink for Sendfile<'_> {
    type Writer = TcpStream;

    fn writer(&mut self) -> &mut TcpStream {
        self.0
    }

    /// Waits for the socket to become writable whenever it is full, and
    /// yields to the other tasks on the thread between chunks.
    async fn file_range(&mut self, file: &Arc<File>, offset: u64, len: u64) -> io::Result<()> {
        let stream = &*self.0;
        let mut position = i64::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset too large"))?;
        let mut remaining = len;
        while remaining > 0 {
            let count =
                usize::try_from(remaining).map_or(SENDFILE_CHUNK, |r| r.min(SENDFILE_CHUNK));
            stream.writable().await?;
            match sendfile_once(stream, file, &mut position, count) {
                Ok(0) => return Err(shrank()),
                Ok(n) => {
                    remaining -= n as u64;
                    if remaining > 0 {
                        // Let the other connections on this thread have a turn.
                        tokio::task::yield_now().await;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// File ranges read on the blocking pool, [`COPY_CHUNK`] bytes at a time,
/// and written.
struct Copy<'a, W>(&'a mut W);

impl<W: AsyncWrite + Unpin> Sink for Copy<'_, W> {
    type Writer = W;

    fn writer(&mut self) -> &mut W {
        self.0
    }

    async fn file_range(&mut self, file: &Arc<File>, offset: u64, len: u64) -> io::Result<()> {
        let mut position = offset;
        let end = offset + len;
        while position < end {
            let want = usize::try_from(end - position).map_or(COPY_CHUNK, |r| r.min(COPY_CHUNK));
            let file = Arc::clone(file);
            let chunk = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0; want];
                let n = std::os::unix::fs::FileExt::read_at(&*file, &mut buf, position)?;
                buf.truncate(n);
                Ok::<_, io::Error>(buf)
            })
            .await
            .map_err(io::Error::other)??;
            if chunk.is_empty() {
                return Err(shrank());
            }
            self.0.write_all(&chunk).await?;
            position += chunk.len() as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use tokio::io::AsyncReadExt;

    /// A connected loopback pair: (server side, client side).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (accepted.unwrap().0, client.unwrap())
    }

    #[tokio::test]
    async fn sendfile_once_advances_the_position_and_reports_the_end() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"0123456789").unwrap();
        let (server, mut client) = pair().await;
        let mut position = 3;
        let sent = loop {
            server.writable().await.unwrap();
            match sendfile_once(&server, &file, &mut position, 4) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                sent => break sent.unwrap(),
            }
        };
        assert_eq!((sent, position), (4, 7));
        let mut received = [0; 4];
        client.read_exact(&mut received).await.unwrap();
        assert_eq!(&received, b"3456");
        let mut position = 10;
        assert_eq!(sendfile_once(&server, &file, &mut position, 4).unwrap(), 0);
        assert_eq!(position, 10);
    }
}
