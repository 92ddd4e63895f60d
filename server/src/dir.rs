//! The Dir target: static files from a `directory` row (PROTOCOL.md §5 "Dir",
//! with Kennel's decisions from the table at the top of that file).
//!
//! Owns: mapping a request path onto a file under the Dir's base
//! (percent-decoding, symlink resolution, the component-wise containment
//! check), index files and the redirect for a directory without its `/`, the
//! validators (`ETag`, `Last-Modified`) and conditional requests (RFC 9110
//! §13.2.2), byte ranges (single, and multiple as `multipart/byteranges`),
//! the response head, and writing the body — `sendfile(2)` to a TCP stream,
//! a read/write loop to any other writer.
//!
//! Does not own: parsing the request head or routing (the caller passes the
//! header values it found and the route's literal prefix), keep-alive (the
//! caller says whether the response must say `Connection: close`, and closes
//! the connection itself), or caching file metadata (every request `stat`s).
//!
//! Called by the connection task: [`respond`] plans a [`Response`] (the
//! filesystem work runs on tokio's blocking pool), then [`send`] or
//! [`send_copy`] writes it.
//!
//! Choices where the brief left room:
//! - A decoded NUL byte in the path is a 404: no file can have that name.
//! - A file that cannot be read for lack of permission, a dangling symlink,
//!   a symlink loop and a name that is too long are 404s (logged at debug);
//!   a missing base directory is a 404 logged at warn (the operator must
//!   fix the config); any other I/O error is a 500 logged at warn.
//! - `Range` is honoured for GET only (RFC 9110 §14.2: range handling is
//!   defined for GET); a HEAD gets the head of the full 200.
//! - Multiple ranges whose total exceeds the file size (overlaps), or more
//!   than [`MAX_RANGES`] ranges, get the full 200: a multipart body is never
//!   larger than the file plus its boundaries.

use std::ffi::OsString;
use std::fmt::{self, Write as _};
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, SeekFrom};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use crate::config::{Dir, MimeTypes};

/// Most ranges honoured in one `Range` header; a request with more gets the
/// full 200. Default 16: real clients (PDF readers, media players, download
/// resumers) ask for one or a handful, while thousands of tiny or
/// overlapping ranges are a known way to make a server do much work for a
/// short request (RFC 9110 §14.2, CVE-2011-3192).
pub const MAX_RANGES: usize = 16;

/// Most bytes one `sendfile(2)` call is asked to move. Default 1 MiB: a
/// non-blocking socket takes no more than its send buffer (a few MiB at
/// most) per call anyway; the cap keeps one call from copying a large file
/// range in one go while other tasks wait on this thread.
pub const SENDFILE_CHUNK: usize = 1 << 20;

/// Size of the buffer [`send_copy`] reads the file through. Default 64 KiB:
/// large enough that syscalls and blocking-pool hand-offs are few, small
/// enough to allocate per response without thought.
pub const COPY_CHUNK: usize = 64 * 1024;

/// What the Dir handler needs from a request (the connection task fills it
/// from the parsed head). Header values are raw bytes, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct DirRequest<'a> {
    /// The request method (`GET` and `HEAD` are served).
    pub method: &'a [u8],
    /// The raw request path, not percent-decoded and without the query,
    /// e.g. `b"/static/a%20b.txt"`.
    pub path: &'a [u8],
    /// The query string (after `?`), kept in a directory redirect.
    pub query: Option<&'a [u8]>,
    /// The route's literal prefix, e.g. `"/static/"`: the file path is the
    /// base plus the request path minus this prefix.
    pub prefix: &'a str,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a [u8]>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a [u8]>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<&'a [u8]>,
    /// `If-Match`.
    pub if_match: Option<&'a [u8]>,
    /// `Range`.
    pub range: Option<&'a [u8]>,
    /// `If-Range`.
    pub if_range: Option<&'a [u8]>,
    /// The response must say `Connection: close`.
    pub close: bool,
}

/// A planned response: the complete head and where the body comes from.
#[derive(Debug)]
pub struct Response {
    /// The status code (also in `head`).
    pub status: u16,
    /// Status line, headers and the blank line that ends them.
    pub head: Vec<u8>,
    /// The body; [`Body::Empty`] for HEAD and 304.
    pub body: Body,
}

/// Where a response body comes from.
#[derive(Debug)]
pub enum Body {
    /// No body.
    Empty,
    /// A body held in memory (error pages, redirects).
    Bytes(Bytes),
    /// A body read from an open file: `parts` in order, `len` bytes in all.
    File {
        /// The open file.
        file: File,
        /// The pieces of the body: file ranges, and for
        /// `multipart/byteranges` the boundary text between them.
        parts: Vec<Part>,
        /// Total body bytes (the `Content-Length`).
        len: u64,
    },
}

/// One piece of a [`Body::File`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Bytes written as they are (multipart boundaries and part headers).
    Bytes(Bytes),
    /// `len` bytes of the file starting at `offset`.
    Range {
        /// Offset in the file.
        offset: u64,
        /// Number of bytes.
        len: u64,
    },
}

impl Body {
    /// How many bytes the body has.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    /// Whether the body has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a request is not answered with a file.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// The method is not GET or HEAD.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// No file to serve (the reason is for the debug log only).
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// The Dir's base directory does not exist: a config problem.
    #[error("Dir base {} is missing: {source}", .path.display())]
    BaseMissing { path: PathBuf, source: io::Error },
    /// An unexpected I/O error: a 500.
    #[error("I/O error on {}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// What the filesystem lookup found.
enum Found {
    /// A regular file, open, with its metadata.
    File { file: File, meta: Metadata },
    /// A directory asked for without the trailing `/`.
    Directory,
}

/// The filesystem part of a request, run on the blocking pool.
struct Lookup {
    /// The Dir's base as configured.
    base: String,
    /// The percent-decoded request path minus the prefix.
    rest: Vec<u8>,
    /// The index file name when the path ends in `/`.
    index: Option<String>,
}

/// Plans the response to `req` for the Dir `dir`. The filesystem work
/// (canonicalize, open, `fstat`) runs on tokio's blocking pool; everything
/// else is computed in place.
pub async fn respond(dir: &Dir, mimetypes: &MimeTypes, req: &DirRequest<'_>) -> Response {
    let head_only = match req.method {
        b"GET" => false,
        b"HEAD" => true,
        _ => return refuse(Refusal::MethodNotAllowed, req, false),
    };
    let Some(rest) = req.path.strip_prefix(req.prefix.as_bytes()) else {
        return refuse(Refusal::NotFound("path outside the prefix"), req, head_only);
    };
    // httparse never hands over such bytes; the check keeps them out of a
    // `Location` header whatever the caller does.
    if !req
        .path
        .iter()
        .chain(req.query.unwrap_or_default())
        .all(|&b| b.is_ascii_graphic())
    {
        return refuse(
            Refusal::NotFound("control byte in the path"),
            req,
            head_only,
        );
    }
    let rest: Vec<u8> = percent_encoding::percent_decode(rest).collect();
    if rest.contains(&0) {
        return refuse(Refusal::NotFound("NUL in the path"), req, head_only);
    }
    let wants_index = req.path.ends_with(b"/") || rest.ends_with(b"/");
    let name = if wants_index {
        dir.index_file.clone()
    } else {
        String::from_utf8_lossy(&rest).into_owned()
    };
    let lookup = Lookup {
        base: dir.base.clone(),
        rest,
        index: wants_index.then(|| dir.index_file.clone()),
    };
    let found = match tokio::task::spawn_blocking(move || lookup.resolve()).await {
        Ok(Ok(found)) => found,
        Ok(Err(refusal)) => return refuse(refusal, req, head_only),
        Err(join) => {
            let source = io::Error::other(join.to_string());
            let path = PathBuf::from(&dir.base);
            return refuse(Refusal::Io { path, source }, req, head_only);
        }
    };
    let (file, meta) = match found {
        Found::File { file, meta } => (file, meta),
        Found::Directory => return redirect(req, head_only),
    };
    let ctype = mimetypes.lookup(&name).unwrap_or(&dir.default_ctype);
    plan_file(file, &meta, ctype, dir.cache_ttl, req, head_only)
}

impl Lookup {
    /// Resolves the path, checks it lies inside the base and opens it.
    fn resolve(self) -> Result<Found, Refusal> {
        let base = std::fs::canonicalize(&self.base).map_err(|source| Refusal::BaseMissing {
            path: PathBuf::from(&self.base),
            source,
        })?;
        let mut raw = self.base.into_bytes();
        if !raw.ends_with(b"/") {
            raw.push(b'/');
        }
        raw.extend_from_slice(&self.rest);
        let mut path = contained(&base, &PathBuf::from(OsString::from_vec(raw)))?;
        if let Some(index) = &self.index {
            path = contained(&base, &path.join(index))?;
        }
        // The canonical path has no symlink; O_NOFOLLOW refuses one swapped
        // in since. O_NONBLOCK keeps a FIFO from blocking the open (it has
        // no effect on regular files).
        let flags = OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits())
            .open(&path)
            .map_err(|e| classify(&path, e))?;
        let meta = file.metadata().map_err(|e| classify(&path, e))?;
        if meta.is_dir() {
            if self.index.is_some() {
                return Err(Refusal::NotFound("the index file is a directory"));
            }
            return Ok(Found::Directory);
        }
        if !meta.is_file() {
            return Err(Refusal::NotFound("not a regular file"));
        }
        Ok(Found::File { file, meta })
    }
}

/// `target` with symlinks resolved, if that lies inside `base` (compared
/// component by component, so `/srv/static_sibling` is not inside
/// `/srv/static`).
fn contained(base: &Path, target: &Path) -> Result<PathBuf, Refusal> {
    let real = std::fs::canonicalize(target).map_err(|e| classify(target, e))?;
    if real.starts_with(base) {
        Ok(real)
    } else {
        Err(Refusal::NotFound("outside the base"))
    }
}

/// An I/O error that means "no such file to serve" is a 404; others are
/// unexpected.
fn classify(path: &Path, source: io::Error) -> Refusal {
    let missing = matches!(
        source.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
    ) || [Errno::ENOTDIR, Errno::ELOOP, Errno::ENAMETOOLONG]
        .iter()
        .any(|&errno| source.raw_os_error() == Some(errno as i32));
    if missing {
        Refusal::NotFound("no such file")
    } else {
        Refusal::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// The validators of a file: what `ETag` and `Last-Modified` are made of.
struct Validators {
    /// The ETag without its quotes: Mongrel2's `<mtime hex>-<size hex>`.
    opaque: String,
    /// Modification time in whole seconds since the epoch.
    mtime: u64,
}

/// Plans the answer for an open regular file: conditionals, ranges, head.
fn plan_file(
    file: File,
    meta: &Metadata,
    ctype: &str,
    cache_ttl: u64,
    req: &DirRequest<'_>,
    head_only: bool,
) -> Response {
    let size = meta.len();
    let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
    let v = Validators {
        opaque: format!("{mtime:x}-{size:x}"),
        mtime,
    };
    let last_modified = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(mtime));
    let validator_headers = |head: &mut HeadBuilder| {
        head.header("Last-Modified", &last_modified);
        head.header("ETag", format_args!("\"{}\"", v.opaque));
        if cache_ttl > 0 {
            head.header("Cache-Control", format_args!("max-age={cache_ttl}"));
        }
    };

    match precondition(req, &v) {
        Some(Precondition::NotModified) => {
            let mut head = HeadBuilder::new(304);
            validator_headers(&mut head);
            return Response {
                status: 304,
                head: head.finish(req.close),
                body: Body::Empty,
            };
        }
        Some(Precondition::Failed) => return short(412, req, head_only, &[]),
        None => {}
    }

    let ranges = match req.range {
        Some(range) if !head_only && req.if_range.is_none_or(|value| if_range_holds(value, &v)) => {
            plan_ranges(range, size)
        }
        _ => Ranges::Full,
    };
    let (status, parts, len, content_type, content_range) = match ranges {
        Ranges::Full => (
            200,
            vec![Part::Range {
                offset: 0,
                len: size,
            }],
            size,
            ctype.to_owned(),
            None,
        ),
        Ranges::Unsatisfiable => {
            let content_range = format!("bytes */{size}");
            return short(416, req, head_only, &[("Content-Range", &content_range)]);
        }
        Ranges::Some(ranges) if ranges.len() == 1 => {
            let (offset, len) = ranges[0];
            let content_range = format!("bytes {}-{}/{size}", offset, offset + len - 1);
            let parts = vec![Part::Range { offset, len }];
            (206, parts, len, ctype.to_owned(), Some(content_range))
        }
        Ranges::Some(ranges) => {
            let boundary = boundary();
            let (parts, len) = multipart(&ranges, size, ctype, &boundary);
            let content_type = format!("multipart/byteranges; boundary={boundary}");
            (206, parts, len, content_type, None)
        }
    };

    let mut head = HeadBuilder::new(status);
    head.header("Content-Type", &content_type);
    head.header("Content-Length", len);
    validator_headers(&mut head);
    head.header("Accept-Ranges", "bytes");
    if let Some(content_range) = &content_range {
        head.header("Content-Range", content_range);
    }
    let body = if head_only || len == 0 {
        Body::Empty
    } else {
        Body::File { file, parts, len }
    };
    Response {
        status,
        head: head.finish(req.close),
        body,
    }
}

/// The `multipart/byteranges` body for `ranges` (RFC 9110 §14.6): the
/// parts, alternating boundary text and file ranges, and the total length.
fn multipart(ranges: &[(u64, u64)], size: u64, ctype: &str, boundary: &str) -> (Vec<Part>, u64) {
    let mut parts = Vec::with_capacity(ranges.len() * 2 + 1);
    let mut len = 0;
    for (i, &(offset, n)) in ranges.iter().enumerate() {
        let sep = if i == 0 { "" } else { "\r\n" };
        let text = format!(
            "{sep}--{boundary}\r\nContent-Type: {ctype}\r\nContent-Range: bytes {}-{}/{size}\r\n\r\n",
            offset,
            offset + n - 1
        );
        len += text.len() as u64 + n;
        parts.push(Part::Bytes(Bytes::from(text)));
        parts.push(Part::Range { offset, len: n });
    }
    let end = format!("\r\n--{boundary}--\r\n");
    len += end.len() as u64;
    parts.push(Part::Bytes(Bytes::from(end)));
    (parts, len)
}

/// A multipart boundary that differs from response to response: 64 bits
/// from std's randomly keyed hasher, fed a counter.
fn boundary() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("kennel-{:016x}", hasher.finish())
}

/// The outcome of the preconditions that stop a normal answer.
#[derive(Debug, PartialEq, Eq)]
enum Precondition {
    /// 412.
    Failed,
    /// 304.
    NotModified,
}

/// Evaluates `If-Match`, `If-Unmodified-Since`, `If-None-Match` and
/// `If-Modified-Since` in RFC 9110 §13.2.2's order. The method is GET or
/// HEAD, so a matching `If-None-Match` is a 304.
fn precondition(req: &DirRequest<'_>, v: &Validators) -> Option<Precondition> {
    if let Some(value) = req.if_match {
        let matches = is_star(value)
            || entity_tags(value)
                .iter()
                .any(|tag| !tag.weak && tag.opaque == v.opaque.as_bytes());
        if !matches {
            return Some(Precondition::Failed);
        }
    } else if let Some(date) = req.if_unmodified_since.and_then(parse_date) {
        if v.mtime > date {
            return Some(Precondition::Failed);
        }
    }
    if let Some(value) = req.if_none_match {
        let matches = is_star(value)
            || entity_tags(value)
                .iter()
                .any(|tag| tag.opaque == v.opaque.as_bytes());
        if matches {
            return Some(Precondition::NotModified);
        }
    } else if let Some(date) = req.if_modified_since.and_then(parse_date) {
        // A date in the future is invalid (RFC 9110 §13.1.3): ignored.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if date <= now && v.mtime <= date {
            return Some(Precondition::NotModified);
        }
    }
    None
}

/// Whether an `If-Range` value lets the `Range` apply: an HTTP-date equal
/// to the modification time, or an entity tag strongly equal to ours
/// (quoted, or unquoted as Mongrel2 sent it).
fn if_range_holds(value: &[u8], v: &Validators) -> bool {
    if let Some(date) = parse_date(value) {
        return date == v.mtime;
    }
    match entity_tags(value).as_slice() {
        [tag] => !tag.weak && tag.opaque == v.opaque.as_bytes(),
        _ => false,
    }
}

/// An HTTP-date as seconds since the epoch; `None` if invalid.
fn parse_date(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(trim(value)).ok()?;
    let time = httpdate::parse_http_date(text).ok()?;
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// One entity tag from an `If-Match`, `If-None-Match` or `If-Range` value.
#[derive(Debug, PartialEq, Eq)]
struct EntityTag<'a> {
    /// Written with `W/`.
    weak: bool,
    /// The tag without `W/` and quotes.
    opaque: &'a [u8],
}

/// The entity tags in a comma-separated list. Each is `"x"`, `W/"x"`, or —
/// for Mongrel2's unquoted ETag — a bare token ended by a comma or
/// whitespace. An unterminated quote ends the list.
fn entity_tags(mut value: &[u8]) -> Vec<EntityTag<'_>> {
    let mut tags = Vec::new();
    loop {
        while let [b' ' | b'\t' | b',', tail @ ..] = value {
            value = tail;
        }
        if value.is_empty() {
            return tags;
        }
        let weak = value.starts_with(b"W/");
        if weak {
            value = &value[2..];
        }
        if let [b'"', tail @ ..] = value {
            let Some(end) = tail.iter().position(|&b| b == b'"') else {
                return tags;
            };
            tags.push(EntityTag {
                weak,
                opaque: &tail[..end],
            });
            value = &tail[end + 1..];
        } else {
            let end = value
                .iter()
                .position(|&b| matches!(b, b',' | b' ' | b'\t'))
                .unwrap_or(value.len());
            if end > 0 {
                tags.push(EntityTag {
                    weak,
                    opaque: &value[..end],
                });
            }
            value = &value[end..];
        }
    }
}

/// Whether a header value is `*`.
fn is_star(value: &[u8]) -> bool {
    trim(value) == b"*"
}

/// `value` without leading and trailing spaces and tabs.
fn trim(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// What a `Range` header asks of a file.
#[derive(Debug, PartialEq, Eq)]
enum Ranges {
    /// Serve the whole file: no usable `Range` (invalid syntax, another
    /// unit, too many ranges, overlaps larger than the file).
    Full,
    /// No range overlaps the file: 416.
    Unsatisfiable,
    /// These `(offset, len)` ranges, in the order asked, none empty.
    Some(Vec<(u64, u64)>),
}

/// Plans a `Range` header value against a file of `size` bytes
/// (RFC 9110 §14.1.2): `bytes=` then a comma-separated list of `a-b`, `a-`
/// and `-n`. Ranges past the end are dropped; a last position past the end
/// is clamped.
fn plan_ranges(value: &[u8], size: u64) -> Ranges {
    let value = trim(value);
    let Some(set) = value
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case(b"bytes="))
        .map(|_| &value[6..])
    else {
        return Ranges::Full;
    };
    let mut specs = 0;
    let mut ranges = Vec::new();
    for spec in set.split(|&b| b == b',') {
        let spec = trim(spec);
        if spec.is_empty() {
            continue;
        }
        specs += 1;
        if specs > MAX_RANGES {
            return Ranges::Full;
        }
        let Some(dash) = spec.iter().position(|&b| b == b'-') else {
            return Ranges::Full;
        };
        let (first, last) = (&spec[..dash], &spec[dash + 1..]);
        let range = if first.is_empty() {
            let Some(suffix) = digits(last) else {
                return Ranges::Full;
            };
            let n = suffix.min(size);
            (n > 0).then(|| (size - n, n))
        } else {
            let Some(first) = digits(first) else {
                return Ranges::Full;
            };
            let last = if last.is_empty() {
                u64::MAX
            } else {
                match digits(last) {
                    Some(last) if last >= first => last,
                    _ => return Ranges::Full,
                }
            };
            (first < size).then(|| (first, last.min(size - 1) - first + 1))
        };
        ranges.extend(range);
    }
    if specs == 0 {
        return Ranges::Full;
    }
    if ranges.is_empty() {
        return Ranges::Unsatisfiable;
    }
    if ranges.len() > 1 && ranges.iter().map(|&(_, n)| n).sum::<u64>() > size {
        return Ranges::Full;
    }
    Ranges::Some(ranges)
}

/// A run of ASCII digits as a number (saturating at `u64::MAX`); `None`
/// if empty or not all digits.
fn digits(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Writes a response head line by line.
struct HeadBuilder(String);

impl HeadBuilder {
    /// Starts with the status line, `Date` and `Server`.
    fn new(status: u16) -> Self {
        let mut head = String::with_capacity(256);
        let _ = write!(head, "HTTP/1.1 {status} {}\r\n", reason(status));
        let mut builder = HeadBuilder(head);
        builder.header("Date", httpdate::fmt_http_date(SystemTime::now()));
        builder.header("Server", "Kennel");
        builder
    }

    /// Adds `name: value`.
    fn header(&mut self, name: &str, value: impl fmt::Display) {
        let _ = write!(self.0, "{name}: {value}\r\n");
    }

    /// Adds `Connection: close` if asked and the blank line.
    fn finish(mut self, close: bool) -> Vec<u8> {
        if close {
            self.0.push_str("Connection: close\r\n");
        }
        self.0.push_str("\r\n");
        self.0.into_bytes()
    }
}

/// The reason phrase for the statuses this module sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        404 => "Not Found",
        405 => "Method Not Allowed",
        412 => "Precondition Failed",
        416 => "Range Not Satisfiable",
        _ => "Internal Server Error",
    }
}

/// The response for a refusal, logged as its cause deserves.
fn refuse(refusal: Refusal, req: &DirRequest<'_>, head_only: bool) -> Response {
    let path = String::from_utf8_lossy(req.path);
    match &refusal {
        Refusal::MethodNotAllowed => {
            tracing::debug!(%path, method = %String::from_utf8_lossy(req.method), "dir: {refusal}");
            short(405, req, head_only, &[("Allow", "GET, HEAD")])
        }
        Refusal::NotFound(_) => {
            tracing::debug!(%path, "dir: {refusal}");
            short(404, req, head_only, &[])
        }
        Refusal::BaseMissing { .. } => {
            tracing::warn!(%path, "dir: {refusal}");
            short(404, req, head_only, &[])
        }
        Refusal::Io { .. } => {
            tracing::warn!(%path, "dir: {refusal}");
            short(500, req, head_only, &[])
        }
    }
}

/// The 301 for a directory asked for without its `/`: the same path plus
/// `/`, then the query.
fn redirect(req: &DirRequest<'_>, head_only: bool) -> Response {
    let mut location = String::from_utf8_lossy(req.path).into_owned();
    location.push('/');
    if let Some(query) = req.query {
        location.push('?');
        location.push_str(&String::from_utf8_lossy(query));
    }
    short(301, req, head_only, &[("Location", &location)])
}

/// A response with a small text body (`"404 Not Found\n"`) and `extra`
/// headers.
fn short(status: u16, req: &DirRequest<'_>, head_only: bool, extra: &[(&str, &str)]) -> Response {
    let text = format!("{status} {}\n", reason(status));
    let mut head = HeadBuilder::new(status);
    head.header("Content-Type", "text/plain; charset=utf-8");
    head.header("Content-Length", text.len());
    for (name, value) in extra {
        head.header(name, value);
    }
    Response {
        status,
        head: head.finish(req.close),
        body: if head_only {
            Body::Empty
        } else {
            Body::Bytes(Bytes::from(text))
        },
    }
}

/// Writes a planned response to a TCP stream: the head, then the body;
/// file ranges with `sendfile(2)` (zero copy), bytes with `write_all`.
/// A head with an in-memory body goes out in one vectored write.
///
/// A file that shrinks while it is sent is an `UnexpectedEof` error: the
/// promised `Content-Length` cannot be met, so the caller must close.
pub async fn send(response: Response, stream: &mut TcpStream) -> io::Result<()> {
    let head = Bytes::from(response.head);
    match response.body {
        Body::Empty => stream.write_all(&head).await,
        Body::Bytes(body) => stream.write_all_buf(&mut head.chain(body)).await,
        Body::File { file, parts, .. } => {
            stream.write_all(&head).await?;
            for part in parts {
                match part {
                    Part::Bytes(bytes) => stream.write_all(&bytes).await?,
                    Part::Range { offset, len } => {
                        sendfile_range(stream, &file, offset, len).await?
                    }
                }
            }
            Ok(())
        }
    }
}

/// Sends `len` bytes of `file` from `offset` with `sendfile(2)`, waiting
/// for the socket to become writable whenever it is full.
async fn sendfile_range(stream: &TcpStream, file: &File, offset: u64, len: u64) -> io::Result<()> {
    let mut position = nix::libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset too large"))?;
    let mut remaining = len;
    while remaining > 0 {
        let count = usize::try_from(remaining).map_or(SENDFILE_CHUNK, |r| r.min(SENDFILE_CHUNK));
        stream.writable().await?;
        let sent = stream.try_io(Interest::WRITABLE, || {
            nix::sys::sendfile::sendfile(stream, file, Some(&mut position), count)
                .map_err(io::Error::from)
        });
        match sent {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while it was sent",
                ))
            }
            Ok(n) => remaining -= n as u64,
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

/// Writes a planned response to any writer (TLS, or a buffer in tests):
/// the head, then the body, reading file ranges in [`COPY_CHUNK`] pieces
/// (file reads run on the blocking pool). Flushes at the end.
pub async fn send_copy<W: AsyncWrite + Unpin>(response: Response, w: &mut W) -> io::Result<()> {
    w.write_all(&response.head).await?;
    match response.body {
        Body::Empty => {}
        Body::Bytes(body) => w.write_all(&body).await?,
        Body::File { file, parts, .. } => {
            let mut file = tokio::fs::File::from_std(file);
            let mut buf = vec![0; COPY_CHUNK];
            for part in parts {
                match part {
                    Part::Bytes(bytes) => w.write_all(&bytes).await?,
                    Part::Range { offset, len } => {
                        file.seek(SeekFrom::Start(offset)).await?;
                        let mut remaining = len;
                        while remaining > 0 {
                            let want = usize::try_from(remaining)
                                .map_or(COPY_CHUNK, |r| r.min(COPY_CHUNK));
                            let n = file.read(&mut buf[..want]).await?;
                            if n == 0 {
                                return Err(io::Error::new(
                                    io::ErrorKind::UnexpectedEof,
                                    "file shrank while it was sent",
                                ));
                            }
                            w.write_all(&buf[..n]).await?;
                            remaining -= n as u64;
                        }
                    }
                }
            }
        }
    }
    w.flush().await
}
