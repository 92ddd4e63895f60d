//! Request bodies too large for memory, on handler routes, as Mongrel2
//! sends them (PROTOCOL.md §1.6; `upload.c`): to a temporary file, or
//! streamed to the handler against its credits.
//!
//! A body over `limits.content_length` (by `Content-Length`, or a chunked
//! body that grows past it while it is decoded) takes this path when an
//! upload setting allows it, and gets `413` when none does:
//! - `upload.stream = 1`: the first message carries the request's headers
//!   with `UPLOAD_STREAM: 0` and the body bytes already read; each later
//!   slice is sent only once the handler has granted credits (`ctl
//!   credits`), with headers `UPLOAD_STREAM: <offset>` alone, and the last
//!   one also `UPLOAD_STREAM_DONE: 1`;
//! - `upload.temp_store` (an `mkstemp` template): the file is created with
//!   `upload.temp_store_mode`, the handler is sent the request with
//!   `x-mongrel2-upload-start: <path>`, the body is written to the file,
//!   the file is closed, and the handler is sent the request again with
//!   both `x-mongrel2-upload-start` and `x-mongrel2-upload-done`.
//!
//! Kennel's decision where Mongrel2 is lax: an upload stops at once when
//! the client goes away, or when the handler refuses it — any reply to the
//! connection while the body is still coming (its response, a close, `ctl
//! cancel`). Then the partial file is removed and no done message is sent;
//! a refused upload's connection closes after the handler's response.
//! Sizes are 64-bit throughout (bodies over 4 GiB work). While a body
//! arrives, the client must send a byte within
//! `kennel.http.request_timeout_ms` and at least `limits.min_read_rate`
//! bytes per `limits.tick_timer` seconds (the whole-request timeout does
//! not apply: an upload may take hours), else `408`.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::time::sleep_until;
use tracing::{debug, warn};

use super::responses::{Local, Owed};
use super::{ConnError, Connection, ReadProgress, READ_CHUNK};
use crate::config::Settings;
use crate::http::{ChunkedDecoder, Head};
use crate::link::{Handoff, Link, LinkRequest};
use crate::registry::Outgoing;
use crate::server::{Active, Counters};

/// Most body bytes read for one slice or one file write: 256 KiB. Enough
/// that a fast client is not held back by per-message costs; small enough
/// to hold per connection.
pub const UPLOAD_CHUNK: usize = 256 * 1024;

/// Where the rest of a large body comes from.
#[derive(Debug)]
pub(super) enum Source {
    /// `Content-Length`: this many bytes still to read.
    Length(u64),
    /// Chunked: the decoder, already past what was decoded into memory.
    Chunked(Box<ChunkedDecoder>),
}

/// How the settings send large bodies.
#[derive(Debug, Clone)]
enum Mode {
    Stream,
    File { template: String, mode: u32 },
}

fn mode(settings: &Settings) -> Option<Mode> {
    if settings.upload_stream {
        Some(Mode::Stream)
    } else {
        settings.upload_temp_store.as_ref().map(|t| Mode::File {
            template: t.clone(),
            mode: settings.upload_temp_store_mode.0,
        })
    }
}

/// Whether large bodies may take the upload path at all.
pub(super) fn enabled(settings: &Settings) -> bool {
    mode(settings).is_some()
}

/// Why an upload stopped early.
#[derive(Debug)]
enum Stop {
    /// The handler replied (or closed, or cancelled) before the body was in.
    Refused,
    /// The client sent too slowly (408), or the body was malformed (its
    /// status).
    Client(u16),
    /// No handler took the first message in time, or the link is down.
    Unavailable,
    /// The socket failed or the client went away.
    Io(ConnError),
}

impl From<ConnError> for Stop {
    fn from(e: ConnError) -> Self {
        Stop::Io(e)
    }
}

/// What a wait during an upload returned.
enum Woke {
    Read,
    Outbox,
}

impl Connection {
    /// Sends a request whose body is too large for memory to the handler
    /// by the upload path the settings choose: `first` is what was already
    /// decoded (chunked bodies only), `source` the rest.
    pub(super) async fn upload(
        &mut self,
        head: &Head,
        active: &Active,
        handler: usize,
        pattern: &str,
        first: Bytes,
        source: Source,
    ) -> Result<(), ConnError> {
        let settings = &active.snapshot.settings;
        let Some(mode) = mode(settings) else {
            self.refuse(413);
            self.log(head, 413, 0);
            return Ok(());
        };
        let link = Arc::clone(&active.links[handler]);
        let outbox = self.register();
        outbox.used(link.id());
        let conn_id = outbox.id();
        // The response the handler owes; its bytes may come early (a
        // refusal) and then go out in order.
        let stats = &active.handler_stats[handler];
        Counters::bump(&stats.sent);
        let done = self.done(head, stats);
        self.responses.push(Owed::handler(head.method(), done));
        let announce = self.announce_credits();
        let cert = self.transport.peer_cert_sha1();
        let mut keys = [(&b""[..], &b""[..]); 2];
        let extra = super::server_keys(&mut keys, announce, cert.as_ref());
        let request = LinkRequest {
            head,
            pattern,
            body: &[],
            peer: self.peer.addr(),
            conn_id,
            url_scheme: active.url_scheme,
            clobber_forwarded_for: !settings.no_clobber_xff,
            method: None,
            extra,
        };
        let mut progress = ReadProgress::new(settings);
        let result = match mode {
            Mode::Stream => {
                self.stream_upload(&link, request, first, source, &mut progress)
                    .await
            }
            Mode::File { template, mode } => {
                self.file_upload(
                    &link,
                    request,
                    &template,
                    mode,
                    first,
                    source,
                    &mut progress,
                )
                .await
            }
        };
        match result {
            // Logged when the handler's response is complete.
            Ok(_) => Ok(()),
            Err(Stop::Io(e)) => Err(e),
            Err(Stop::Refused) => {
                debug!(peer = %self.peer, "the handler refused an upload; it stops here");
                // The rest of the body will not be read: close once the
                // handler's response is out.
                self.unread_input = true;
                self.queue_local(Local::Bytes(Bytes::new()), true);
                Ok(())
            }
            Err(Stop::Unavailable) => {
                self.responses.pop();
                self.unread_input = true;
                let retry = settings.kennel_handler_retry_after;
                self.queue_local(
                    Local::Bytes(crate::http::service_unavailable(retry, true)),
                    true,
                );
                self.log(head, 503, 0);
                Ok(())
            }
            Err(Stop::Client(status)) => {
                // Owed nothing more: the handler is told of the client's
                // departure when the connection ends.
                self.responses.pop();
                self.refuse(status);
                self.log(head, status, 0);
                Ok(())
            }
        }
    }

    /// `upload.stream`: the head with the bytes at hand, then slices as the
    /// handler grants credits. Returns the body's size.
    async fn stream_upload(
        &mut self,
        link: &Arc<dyn Link>,
        request: LinkRequest<'_>,
        first: Bytes,
        mut source: Source,
        progress: &mut ReadProgress,
    ) -> Result<u64, Stop> {
        // The first message: whatever is at hand now, without waiting.
        let mut data = BytesMut::from(&first[..]);
        self.take_buffered(&mut source, &mut data, UPLOAD_CHUNK)?;
        let mut done = source.is_done();
        let offset = b"0";
        let mut extra: Vec<(&[u8], &[u8])> = request.extra.to_vec();
        extra.push((b"UPLOAD_STREAM", offset));
        if done {
            extra.push((b"UPLOAD_STREAM_DONE", b"1"));
        }
        let handoff = link.dispatch(&LinkRequest {
            body: &data,
            extra: &extra,
            ..request
        });
        if let Handoff::Refused(_) = handoff {
            return Err(Stop::Unavailable);
        }
        let mut offset = data.len() as u64;
        let mut credits: u64 = 0;
        let path = request.head.path();
        while !done {
            if credits == 0 {
                self.wait_for_credits(&mut credits).await?;
                progress.pause_ended();
                continue;
            }
            let want = usize::try_from(credits).map_or(UPLOAD_CHUNK, |c| c.min(UPLOAD_CHUNK));
            let mut slice = BytesMut::new();
            while slice.is_empty() && !source.is_done() {
                self.take_buffered(&mut source, &mut slice, want)?;
                if slice.is_empty() && !source.is_done() {
                    self.read_upload(progress).await?;
                }
            }
            done = source.is_done();
            credits = credits.saturating_sub(slice.len() as u64);
            if let Handoff::Refused(_) =
                link.dispatch_slice(request.conn_id, path, offset, done, &slice)
            {
                return Err(Stop::Unavailable);
            }
            offset += slice.len() as u64;
        }
        Ok(offset)
    }

    /// `upload.temp_store`: the file, the start notice, the body, the done
    /// notice. Returns the body's size.
    #[allow(clippy::too_many_arguments)]
    async fn file_upload(
        &mut self,
        link: &Arc<dyn Link>,
        request: LinkRequest<'_>,
        template: &str,
        mode: u32,
        first: Bytes,
        mut source: Source,
        progress: &mut ReadProgress,
    ) -> Result<u64, Stop> {
        let local = self.active.snapshot.server_path(template);
        let (file, path) = match create_temp(local, mode).await {
            Ok(created) => created,
            Err(e) => {
                warn!(template, error = %e, "setting upload.temp_store: cannot create an upload file");
                return Err(Stop::Client(500));
            }
        };
        // The name as the handler sees it: the template's form (inside the
        // chroot), with mkstemp's letters.
        let shown = shown_name(template, &path);
        let mut temp = TempFile {
            file: Some(tokio::fs::File::from_std(file)),
            path: Some(path),
        };
        let mut start: Vec<(&[u8], &[u8])> = request.extra.to_vec();
        start.push((b"x-mongrel2-upload-start", shown.as_bytes()));
        if let Handoff::Refused(_) = link.dispatch(&LinkRequest {
            extra: &start,
            ..request
        }) {
            return Err(Stop::Unavailable);
        }
        let mut size = first.len() as u64;
        temp.write(&first).await?;
        let mut chunk = BytesMut::new();
        while !source.is_done() {
            self.take_buffered(&mut source, &mut chunk, UPLOAD_CHUNK)?;
            if chunk.is_empty() {
                self.read_upload(progress).await?;
                continue;
            }
            size += chunk.len() as u64;
            temp.write(&chunk).await?;
            chunk.clear();
            if chunk.capacity() > UPLOAD_CHUNK * 2 {
                chunk = BytesMut::new();
            }
            self.check_refusal()?;
        }
        temp.close().await?;
        let mut done = start;
        done.push((b"x-mongrel2-upload-done", shown.as_bytes()));
        if let Handoff::Refused(_) = link.dispatch(&LinkRequest {
            extra: &done,
            ..request
        }) {
            temp.remove();
            return Err(Stop::Unavailable);
        }
        // The file is the handler's now.
        temp.keep();
        Ok(size)
    }

    /// Moves body bytes already in the read buffer into `out`, at most
    /// `max` of them (decoding a chunked body on the way).
    fn take_buffered(
        &mut self,
        source: &mut Source,
        out: &mut BytesMut,
        max: usize,
    ) -> Result<(), Stop> {
        match source {
            Source::Length(remaining) => {
                let n = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(self.buf.len())
                    .min(max.saturating_sub(out.len()));
                out.extend_from_slice(&self.buf.split_to(n));
                *remaining -= n as u64;
            }
            Source::Chunked(decoder) => {
                if !decoder.is_done() && !self.buf.is_empty() {
                    decoder
                        .decode_at_most(&mut self.buf, out, max)
                        .map_err(|e| Stop::Client(e.status()))?;
                }
            }
        }
        Ok(())
    }

    /// Reads more of the body, under the upload's read deadline, watching
    /// the outbox for a refusal.
    async fn read_upload(&mut self, progress: &mut ReadProgress) -> Result<(), Stop> {
        loop {
            if self.buf.capacity() - self.buf.len() < READ_CHUNK {
                self.buf.reserve(UPLOAD_CHUNK.min(64 * 1024));
            }
            let outbox = self.outbox.clone();
            let woke = tokio::select! {
                r = std::future::poll_fn(|cx| {
                    tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut self.transport), cx, &mut self.buf)
                }) => match r {
                    Ok(0) => return Err(Stop::Io(ConnError::Io(std::io::ErrorKind::UnexpectedEof.into()))),
                    Ok(n) => {
                        progress.read(n);
                        Woke::Read
                    }
                    Err(e) => return Err(Stop::Io(e.into())),
                },
                _ = sleep_until(progress.deadline()) => {
                    if progress.expired() {
                        debug!(peer = %self.peer, "an upload arrives too slowly");
                        return Err(Stop::Client(408));
                    }
                    continue;
                }
                _ = async {
                    match &outbox {
                        Some(o) => o.ready().await,
                        None => std::future::pending().await,
                    }
                } => Woke::Outbox,
            };
            match woke {
                Woke::Read => return Ok(()),
                Woke::Outbox => self.check_refusal()?,
            }
        }
    }

    /// Waits until the handler grants credits (or refuses), watching the
    /// client: what it sends meanwhile is read ahead, up to one slice
    /// ([`UPLOAD_CHUNK`]; beyond that TCP holds it back), so that a client
    /// that goes away stops the upload at once.
    async fn wait_for_credits(&mut self, credits: &mut u64) -> Result<(), Stop> {
        loop {
            self.take_credits(credits)?;
            if *credits > 0 {
                return Ok(());
            }
            let outbox = self.outbox.clone();
            let deadline = self.idle_deadline;
            let room = self.buf.len() < UPLOAD_CHUNK;
            if room && self.buf.capacity() - self.buf.len() < READ_CHUNK {
                self.buf.reserve(64 * 1024);
            }
            tokio::select! {
                _ = async {
                    match &outbox {
                        Some(o) => o.ready().await,
                        None => std::future::pending().await,
                    }
                } => {}
                r = std::future::poll_fn(|cx| {
                    tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut self.transport), cx, &mut self.buf)
                }), if room => match r {
                    Ok(0) => return Err(Stop::Io(ConnError::Io(std::io::ErrorKind::UnexpectedEof.into()))),
                    Ok(_) => {}
                    Err(e) => return Err(Stop::Io(e.into())),
                },
                _ = sleep_until(deadline) => {
                    debug!(peer = %self.peer, "no credits from the handler in time");
                    return Err(Stop::Refused);
                }
            }
        }
    }

    /// Looks at what the handler sent: credits are taken; anything else
    /// while the body is still coming is a refusal (and stays queued, to be
    /// written in order).
    fn check_refusal(&mut self) -> Result<(), Stop> {
        let mut credits = 0;
        self.take_credits(&mut credits)
    }

    fn take_credits(&mut self, credits: &mut u64) -> Result<(), Stop> {
        let Some(outbox) = &self.outbox else {
            return Ok(());
        };
        let mut unavailable = false;
        let mut refused = false;
        outbox.retain(|item| match item {
            Outgoing::Credits(n) => {
                *credits = credits.saturating_add(*n);
                false
            }
            Outgoing::KeepAlive => false,
            Outgoing::Unavailable => {
                unavailable = true;
                false
            }
            _ => {
                refused = true;
                true
            }
        });
        if refused {
            Err(Stop::Refused)
        } else if unavailable {
            Err(Stop::Unavailable)
        } else {
            Ok(())
        }
    }
}

impl Source {
    fn is_done(&self) -> bool {
        match self {
            Source::Length(remaining) => *remaining == 0,
            Source::Chunked(decoder) => decoder.is_done(),
        }
    }
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        warn!(error = %e, "writing an upload file failed");
        Stop::Client(500)
    }
}

/// An upload file: removed when dropped unless kept (an upload that did
/// not finish leaves nothing behind).
struct TempFile {
    file: Option<tokio::fs::File>,
    path: Option<PathBuf>,
}

impl TempFile {
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.file {
            Some(file) if !bytes.is_empty() => file.write_all(bytes).await,
            _ => Ok(()),
        }
    }

    /// Flushes and closes the file (before the done notice, as Mongrel2).
    async fn close(&mut self) -> std::io::Result<()> {
        if let Some(mut file) = self.file.take() {
            file.flush().await?;
            file.sync_data().await?;
        }
        Ok(())
    }

    fn keep(&mut self) {
        self.path = None;
    }

    fn remove(&mut self) {
        self.file = None;
        if let Some(path) = self.path.take() {
            if let Err(e) = std::fs::remove_file(&path) {
                warn!(path = %path.display(), error = %e, "cannot remove an unfinished upload file");
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        self.remove();
    }
}

/// `mkstemp(3)` on `template` (which must end in `XXXXXX`), then the mode.
async fn create_temp(template: PathBuf, mode: u32) -> std::io::Result<(std::fs::File, PathBuf)> {
    tokio::task::spawn_blocking(move || {
        let (fd, path) = nix::unistd::mkstemp(&template).map_err(std::io::Error::from)?;
        let mode = nix::sys::stat::Mode::from_bits_truncate(mode);
        nix::sys::stat::fchmod(&fd, mode).map_err(std::io::Error::from)?;
        Ok((std::fs::File::from(fd), path))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The file's name in the form the template was written in: the template
/// with its last six characters replaced by those mkstemp chose.
fn shown_name(template: &str, created: &std::path::Path) -> String {
    let created = created.to_string_lossy();
    let suffix = &created[created.len().saturating_sub(6)..];
    let stem = template.strip_suffix("XXXXXX").unwrap_or(template);
    format!("{stem}{suffix}")
}

/// The messages of a chunked body that outgrew memory, for the caller.
pub(super) fn chunked_source(decoder: ChunkedDecoder) -> Source {
    Source::Chunked(Box::new(decoder))
}
