//! The Dir target: static files from a `directory` row (PROTOCOL.md §5 "Dir",
//! with Kennel's decisions from the table at the top of that file).
//!
//! Owns: mapping a request path onto a file under the Dir's base
//! (percent-decoding, symlink resolution, the component-wise containment
//! check), index files and the redirect for a directory without its `/`, the
//! validators (`ETag`, `Last-Modified`) and the answers to conditional and
//! range requests (304, 412, 206 single and `multipart/byteranges`, 416:
//! what the headers mean is [`crate::http::conditional`] and
//! [`crate::http::range`]), the response head, and writing the body —
//! `sendfile(2)` to a TCP stream, a read/write loop to any other writer.
//!
//! Does not own: parsing the request head or routing (the caller passes the
//! header values it found and the route's literal prefix), keep-alive (the
//! caller says whether the response must say `Connection: close`, and closes
//! the connection itself).
//!
//! The [`FileCache`] keeps resolved, open files (and the contents of small
//! ones) between requests; see [`respond_with`] for when a cached entry is
//! checked against the disk.
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
//!   than [`MAX_RANGES`](crate::http::range::MAX_RANGES) ranges, get the full 200: a multipart body is never
//!   larger than the file plus its boundaries.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::{Buf, Bytes};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use tokio::io::{AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use crate::config::{Dir, MimeTypes};
use crate::http::conditional::{self, Conditions, Precondition, Validators};
use crate::http::range::{plan_ranges, Byteranges, ContentRange, Ranges};
use crate::http::{reason, ResponseHead};

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
        /// The open file (shared with the cache; reads are positional).
        file: Arc<File>,
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
    /// The Dir's base directory cannot be resolved: a config problem.
    #[error("Dir base {} cannot be resolved: {source}", .path.display())]
    BaseMissing { path: PathBuf, source: io::Error },
    /// The process is out of file descriptors or memory: a passing
    /// condition, so a 503 the client may retry.
    #[error("out of resources opening {}: {source}", .path.display())]
    Exhausted { path: PathBuf, source: io::Error },
    /// An unexpected I/O error: a 500.
    #[error("I/O error on {}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// A regular file the lookup opened.
struct FoundFile {
    file: File,
    meta: Metadata,
    path: PathBuf,
    content: Option<Bytes>,
}

/// What the filesystem lookup found.
enum Found {
    /// A regular file, open, with its metadata and canonical path (and its
    /// contents when small enough to keep in the cache).
    File(Box<FoundFile>),
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

/// Plans the response to `req` for the Dir `dir`, without a cache: every
/// request resolves and opens its file on tokio's blocking pool.
pub async fn respond(dir: &Dir, mimetypes: &MimeTypes, req: &DirRequest<'_>) -> Response {
    respond_with(&FileCache::disabled(), dir, mimetypes, req).await
}

/// Plans the response to `req` for the Dir `dir`, using `cache`.
///
/// A file found before is served from the cache: within `cache_ttl`
/// seconds of its last check without touching the filesystem, otherwise
/// after one `lstat(2)` of its canonical path shows it unchanged (same
/// inode, size and mtime). That `lstat` runs inline on the runtime thread:
/// it is a single metadata syscall on a resolved path, far cheaper than a
/// hand-off to the blocking pool. Everything else (a first request, a
/// changed file, a miss) resolves, opens and reads on the blocking pool.
pub async fn respond_with(
    cache: &FileCache,
    dir: &Dir,
    mimetypes: &MimeTypes,
    req: &DirRequest<'_>,
) -> Response {
    let head_only = match req.method {
        b"GET" => false,
        b"HEAD" => true,
        _ => return refuse(Refusal::MethodNotAllowed, req, false),
    };
    let Some(rest) = req.path.strip_prefix(req.prefix.as_bytes()) else {
        return refuse(Refusal::NotFound("path outside the prefix"), req, head_only);
    };
    // httparse never hands over control bytes or spaces; the check keeps
    // them out of a `Location` header whatever the caller does.
    if !req
        .path
        .iter()
        .chain(req.query.unwrap_or_default())
        .all(|&b| b > b' ' && b != 0x7f)
    {
        return refuse(
            Refusal::NotFound("control byte in the path"),
            req,
            head_only,
        );
    }
    let wants_index = req.path.ends_with(b"/");
    if let Some(entry) = cache.get(dir, rest, wants_index) {
        let ctype = entry.content_type(mimetypes, dir);
        return plan_file(&entry, ctype, dir.cache_ttl, req, head_only);
    }
    let rest_raw = rest;
    let rest: Vec<u8> = percent_encoding::percent_decode(rest).collect();
    if rest.contains(&0) {
        return refuse(Refusal::NotFound("NUL in the path"), req, head_only);
    }
    let wants_index = wants_index || rest.ends_with(b"/");
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
    let entry = match found {
        Found::File(found) => {
            let FoundFile {
                file,
                meta,
                path,
                content,
            } = *found;
            CachedFile::new(file, &meta, path, name, content, cache.now_ms())
        }
        Found::Directory => return redirect(req, head_only),
    };
    let entry = cache.insert(dir, rest_raw, req.path.ends_with(b"/"), entry);
    let ctype = entry.content_type(mimetypes, dir);
    plan_file(&entry, ctype, dir.cache_ttl, req, head_only)
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
        let content = if meta.len() <= SMALL_FILE {
            let mut buf = Vec::with_capacity(meta.len() as usize);
            io::Read::read_to_end(&mut (&file), &mut buf).map_err(|e| classify(&path, e))?;
            // A file that changed between fstat and read is not cached.
            (buf.len() as u64 == meta.len()).then(|| Bytes::from(buf))
        } else {
            None
        };
        Ok(Found::File(Box::new(FoundFile {
            file,
            meta,
            path,
            content,
        })))
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
    let exhausted = [Errno::EMFILE, Errno::ENFILE, Errno::ENOMEM]
        .iter()
        .any(|&errno| source.raw_os_error() == Some(errno as i32));
    if missing {
        Refusal::NotFound("no such file")
    } else if exhausted {
        Refusal::Exhausted {
            path: path.to_owned(),
            source,
        }
    } else {
        Refusal::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Plans the answer for an open regular file: conditionals, ranges, head.
fn plan_file(
    entry: &CachedFile,
    ctype: &str,
    cache_ttl: u64,
    req: &DirRequest<'_>,
    head_only: bool,
) -> Response {
    let size = entry.size;
    let validators = Validators {
        etag: &entry.etag,
        mtime: entry.mtime,
    };
    let validator_headers = |head: &mut ResponseHead| {
        head.header("Last-Modified", &entry.last_modified);
        head.header("ETag", format_args!("\"{}\"", entry.etag));
        if cache_ttl > 0 {
            head.header("Cache-Control", format_args!("max-age={cache_ttl}"));
        }
    };

    let conditions = Conditions {
        if_match: req.if_match,
        if_unmodified_since: req.if_unmodified_since,
        if_none_match: req.if_none_match,
        if_modified_since: req.if_modified_since,
    };
    match conditional::evaluate(&conditions, &validators) {
        Some(Precondition::NotModified) => {
            let mut head = ResponseHead::new(304);
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
        Some(range)
            if !head_only
                && req
                    .if_range
                    .is_none_or(|value| conditional::if_range_holds(value, &validators)) =>
        {
            plan_ranges(range, size)
        }
        _ => Ranges::Full,
    };
    // The body: one piece of the file (all of it for a 200), or the parts
    // of a multipart body.
    let (status, pieces, len, content_type, content_range) = match ranges {
        Ranges::Full => (200, Pieces::One(0, size), size, Cow::Borrowed(ctype), None),
        Ranges::Unsatisfiable => {
            let content_range = ContentRange::Unsatisfied { size }.to_string();
            return short(
                416,
                req,
                head_only,
                &[("Content-Range", content_range.as_bytes())],
            );
        }
        Ranges::Some(ranges) if ranges.len() == 1 => {
            let (offset, len) = ranges[0];
            let content_range = ContentRange::Bytes { offset, len, size };
            let pieces = Pieces::One(offset, len);
            (206, pieces, len, Cow::Borrowed(ctype), Some(content_range))
        }
        Ranges::Some(ranges) => {
            let boundary = boundary();
            let multipart = Byteranges {
                boundary: &boundary,
                part_type: ctype,
                size,
            };
            let (parts, len) = multipart_parts(&ranges, &multipart);
            let content_type = Cow::Owned(multipart.content_type());
            (206, Pieces::Parts(parts), len, content_type, None)
        }
    };

    let mut head = ResponseHead::new(status);
    head.header("Content-Type", &content_type);
    head.header("Content-Length", len);
    validator_headers(&mut head);
    head.header("Accept-Ranges", "bytes");
    if let Some(content_range) = content_range {
        head.header("Content-Range", content_range);
    }
    let body = if head_only || len == 0 {
        Body::Empty
    } else {
        match (&entry.content, pieces) {
            // Small files come from memory: one write for head and body.
            (Some(content), Pieces::One(offset, len)) => {
                Body::Bytes(content.slice(offset as usize..(offset + len) as usize))
            }
            (_, pieces) => Body::File {
                file: Arc::clone(&entry.file),
                parts: match pieces {
                    Pieces::One(offset, len) => vec![Part::Range { offset, len }],
                    Pieces::Parts(parts) => parts,
                },
                len,
            },
        }
    };
    Response {
        status,
        head: head.finish(req.close),
        body,
    }
}

/// Where a planned file body's bytes come from.
enum Pieces {
    /// `(offset, len)`: one piece of the file.
    One(u64, u64),
    /// A `multipart/byteranges` body.
    Parts(Vec<Part>),
}

/// The `multipart/byteranges` body for `ranges` (RFC 9110 §14.6): the
/// parts, alternating boundary text and file ranges, and the total length.
fn multipart_parts(ranges: &[(u64, u64)], multipart: &Byteranges<'_>) -> (Vec<Part>, u64) {
    let mut parts = Vec::with_capacity(ranges.len() * 2 + 1);
    let mut len = 0;
    for (i, &(offset, n)) in ranges.iter().enumerate() {
        let text = multipart.part_header(i == 0, offset, n);
        len += text.len() as u64 + n;
        parts.push(Part::Bytes(Bytes::from(text)));
        parts.push(Part::Range { offset, len: n });
    }
    let end = multipart.close_delimiter();
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

/// Files at most this large are kept in memory by the [`FileCache`] and
/// sent from there (one write with the head, no `sendfile`). Default
/// 64 KiB: covers pages, scripts, styles and icons; larger files go out by
/// `sendfile(2)` from a cached open descriptor.
pub const SMALL_FILE: u64 = 64 * 1024;

/// Most entries the [`FileCache`] holds (each may hold an open descriptor);
/// past it the cache is emptied and refilled. Default 4096.
pub const CACHE_ENTRIES: usize = 4096;

/// Most bytes of file contents the [`FileCache`] holds. Default 64 MiB.
pub const CACHE_CONTENT_BYTES: usize = 64 * 1024 * 1024;

/// Resolved, open files, shared by every connection of a server: what
/// Mongrel2's per-Dir `FileRecord` cache does, with Kennel's own rules (see
/// [`respond_with`]). A snapshot's Dir rows never change, so entries are
/// keyed by the Dir's id and the raw request path below its prefix.
#[derive(Debug)]
pub struct FileCache {
    entries: Mutex<HashMap<CacheKey, Arc<CachedFile>>>,
    content_bytes: AtomicUsize,
    epoch: Instant,
    enabled: bool,
}

type CacheKey = (i64, Vec<u8>, bool);

/// One cached file.
#[derive(Debug)]
pub struct CachedFile {
    file: Arc<File>,
    path: PathBuf,
    name: String,
    dev: u64,
    ino: u64,
    size: u64,
    mtime: u64,
    mtime_nsec: i64,
    etag: String,
    last_modified: String,
    content: Option<Bytes>,
    /// Milliseconds since the cache's epoch of the last check.
    checked_ms: AtomicU64,
}

impl CachedFile {
    fn new(
        file: File,
        meta: &Metadata,
        path: PathBuf,
        name: String,
        content: Option<Bytes>,
        now_ms: u64,
    ) -> CachedFile {
        let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
        CachedFile {
            file: Arc::new(file),
            path,
            name,
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime,
            mtime_nsec: meta.mtime_nsec(),
            etag: format!("{mtime:x}-{:x}", meta.len()),
            last_modified: httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(mtime)),
            content,
            checked_ms: AtomicU64::new(now_ms),
        }
    }

    fn content_type<'a>(&'a self, mimetypes: &'a MimeTypes, dir: &'a Dir) -> &'a str {
        mimetypes.lookup(&self.name).unwrap_or(&dir.default_ctype)
    }

    /// Whether the file on disk is still this one.
    fn unchanged(&self) -> bool {
        std::fs::symlink_metadata(&self.path).is_ok_and(|m| {
            m.is_file()
                && m.dev() == self.dev
                && m.ino() == self.ino
                && m.len() == self.size
                && u64::try_from(m.mtime()).is_ok_and(|t| t == self.mtime)
                && m.mtime_nsec() == self.mtime_nsec
        })
    }
}

impl FileCache {
    /// An empty cache.
    pub fn new() -> FileCache {
        FileCache {
            entries: Mutex::new(HashMap::new()),
            content_bytes: AtomicUsize::new(0),
            epoch: Instant::now(),
            enabled: true,
        }
    }

    /// A cache that never keeps anything.
    pub fn disabled() -> FileCache {
        FileCache {
            enabled: false,
            ..FileCache::new()
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Arc<CachedFile>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh entry for the request path `rest` below `dir`'s prefix.
    fn get(&self, dir: &Dir, rest: &[u8], index: bool) -> Option<Arc<CachedFile>> {
        if !self.enabled {
            return None;
        }
        let entry = self.lock().get(&(dir.id, rest.to_vec(), index)).cloned()?;
        let now = self.now_ms();
        let age = now.saturating_sub(entry.checked_ms.load(Ordering::Relaxed));
        if dir.cache_ttl > 0 && age < dir.cache_ttl.saturating_mul(1000) {
            return Some(entry);
        }
        if entry.unchanged() {
            entry.checked_ms.store(now, Ordering::Relaxed);
            return Some(entry);
        }
        None
    }

    /// Keeps `entry` (unless the cache is full of content or disabled) and
    /// returns it shared.
    fn insert(
        &self,
        dir: &Dir,
        rest: &[u8],
        index: bool,
        mut entry: CachedFile,
    ) -> Arc<CachedFile> {
        if !self.enabled {
            return Arc::new(entry);
        }
        let content_len = entry.content.as_ref().map_or(0, Bytes::len);
        if self.content_bytes.load(Ordering::Relaxed) + content_len > CACHE_CONTENT_BYTES {
            entry.content = None;
        }
        let entry = Arc::new(entry);
        let mut entries = self.lock();
        if entries.len() >= CACHE_ENTRIES {
            entries.clear();
            self.content_bytes.store(0, Ordering::Relaxed);
        }
        let added = entry.content.as_ref().map_or(0, Bytes::len);
        if let Some(old) = entries.insert((dir.id, rest.to_vec(), index), Arc::clone(&entry)) {
            let removed = old.content.as_ref().map_or(0, Bytes::len);
            self.content_bytes.fetch_sub(removed, Ordering::Relaxed);
        }
        self.content_bytes.fetch_add(added, Ordering::Relaxed);
        entry
    }
}

impl Default for FileCache {
    fn default() -> Self {
        FileCache::new()
    }
}

/// The response for a refusal, logged as its cause deserves.
fn refuse(refusal: Refusal, req: &DirRequest<'_>, head_only: bool) -> Response {
    let path = String::from_utf8_lossy(req.path);
    match &refusal {
        Refusal::MethodNotAllowed => {
            tracing::debug!(%path, method = %String::from_utf8_lossy(req.method), "dir: {refusal}");
            short(405, req, head_only, &[("Allow", b"GET, HEAD")])
        }
        Refusal::NotFound(_) => {
            tracing::debug!(%path, "dir: {refusal}");
            short(404, req, head_only, &[])
        }
        Refusal::BaseMissing { .. } => {
            tracing::warn!(%path, "dir: {refusal}");
            short(404, req, head_only, &[])
        }
        Refusal::Exhausted { .. } => {
            tracing::warn!(%path, "dir: {refusal}");
            short(503, req, head_only, &[("Retry-After", b"1")])
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
    let mut location = req.path.to_vec();
    location.push(b'/');
    if let Some(query) = req.query {
        location.push(b'?');
        location.extend_from_slice(query);
    }
    short(301, req, head_only, &[("Location", &location)])
}

/// A response with a small text body (`"404 Not Found\n"`) and `extra`
/// headers.
fn short(status: u16, req: &DirRequest<'_>, head_only: bool, extra: &[(&str, &[u8])]) -> Response {
    let text = format!("{status} {}\n", reason(status));
    let mut head = ResponseHead::new(status);
    head.header("Content-Type", "text/plain; charset=utf-8");
    head.header("Content-Length", text.len());
    for (name, value) in extra {
        head.header_bytes(name, value);
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

/// Writes a planned response to any writer (TLS, or a buffer in tests):
/// the head, then the body, reading file ranges in [`COPY_CHUNK`] pieces
/// (file reads run on the blocking pool). Flushes at the end.
pub async fn send_copy<W: AsyncWrite + Unpin>(response: Response, w: &mut W) -> io::Result<()> {
    w.write_all(&response.head).await?;
    match response.body {
        Body::Empty => {}
        Body::Bytes(body) => w.write_all(&body).await?,
        Body::File { file, parts, .. } => {
            for part in parts {
                match part {
                    Part::Bytes(bytes) => w.write_all(&bytes).await?,
                    Part::Range { offset, len } => {
                        let mut position = offset;
                        let end = offset + len;
                        while position < end {
                            let want = usize::try_from(end - position)
                                .map_or(COPY_CHUNK, |r| r.min(COPY_CHUNK));
                            let file = Arc::clone(&file);
                            let chunk = tokio::task::spawn_blocking(move || {
                                let mut buf = vec![0; want];
                                let n = std::os::unix::fs::FileExt::read_at(
                                    &*file, &mut buf, position,
                                )?;
                                buf.truncate(n);
                                Ok::<_, io::Error>(buf)
                            })
                            .await
                            .map_err(io::Error::other)??;
                            if chunk.is_empty() {
                                return Err(io::Error::new(
                                    io::ErrorKind::UnexpectedEof,
                                    "file shrank while it was sent",
                                ));
                            }
                            w.write_all(&chunk).await?;
                            position += chunk.len() as u64;
                        }
                    }
                }
            }
        }
    }
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// 2023-11-14T22:13:20Z, `0x6553f100`: every fixture file's mtime.
    const MTIME: u64 = 1_700_000_000;
    const LAST_MODIFIED: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
    const TEXT: &[u8] = b"0123456789abcdefghij";

    /// A temp dir with `static/` (the base) and `static_sibling/` next to it.
    struct Site {
        tmp: tempfile::TempDir,
        dir: Dir,
        mimetypes: MimeTypes,
    }

    impl Site {
        fn new() -> Site {
            let tmp = tempfile::tempdir().unwrap();
            let site = Site {
                dir: Dir {
                    id: 1,
                    base: format!("{}/static/", tmp.path().display()),
                    index_file: "index.html".into(),
                    default_ctype: "application/octet-stream".into(),
                    cache_ttl: 0,
                },
                tmp,
                mimetypes: {
                    let mut m = MimeTypes::new();
                    m.insert(".txt", "text/plain");
                    m.insert(".html", "text/html");
                    m
                },
            };
            site.file("static/a.txt", TEXT);
            site.file("static/index.html", b"<h1>home</h1>");
            site.file("static/sub/index.html", b"sub home");
            site.file("static/noindex/x.txt", b"x");
            site.file("static/a b.txt", b"spaced");
            site.file("static/README", b"readme");
            site.file("static/empty.txt", b"");
            site.file("static_sibling/secret.txt", b"secret");
            site.file("outside.txt", b"outside");
            site
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.tmp.path().join(rel)
        }

        fn file(&self, rel: &str, content: &[u8]) {
            let path = self.path(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
            let f = File::options().write(true).open(&path).unwrap();
            f.set_modified(UNIX_EPOCH + Duration::from_secs(MTIME))
                .unwrap();
        }

        async fn get(&self, path: &str) -> Response {
            self.respond(&DirRequest {
                path: path.as_bytes(),
                ..get()
            })
            .await
        }

        async fn respond(&self, req: &DirRequest<'_>) -> Response {
            respond(&self.dir, &self.mimetypes, req).await
        }
    }

    fn get() -> DirRequest<'static> {
        DirRequest {
            method: b"GET",
            path: b"/static/a.txt",
            prefix: "/static/",
            ..DirRequest::default()
        }
    }

    fn head_text(r: &Response) -> &str {
        std::str::from_utf8(&r.head).unwrap()
    }

    /// The value of header `name` (exact case), if present once.
    fn header<'r>(r: &'r Response, name: &str) -> Option<&'r str> {
        let text = head_text(r);
        assert!(text.ends_with("\r\n\r\n"), "{text:?}");
        let mut found = text
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(": "))
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v);
        let value = found.next();
        assert_eq!(found.next(), None, "{name} twice");
        value
    }

    async fn body(r: Response) -> Vec<u8> {
        let head_len = r.head.len();
        let declared = r.body.len();
        let mut out = Vec::new();
        send_copy(r, &mut out).await.unwrap();
        let body = out.split_off(head_len);
        assert_eq!(body.len() as u64, declared);
        body
    }

    const ETAG: &str = "\"6553f100-14\"";

    /// The head as text with its `Date` value replaced by `D`.
    fn head_without_date(r: &Response) -> String {
        let date = header(r, "Date").unwrap();
        head_text(r).replace(date, "D")
    }

    #[tokio::test]
    async fn exact_heads_apart_from_the_date() {
        let mut site = Site::new();
        site.dir.cache_ttl = 300;
        let validators = "Last-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\n\
                          ETag: \"6553f100-14\"\r\nCache-Control: max-age=300\r\n";
        let r = site.get("/static/a.txt").await;
        assert_eq!(
            head_without_date(&r),
            format!(
                "HTTP/1.1 200 OK\r\nDate: D\r\nServer: Kennel\r\nContent-Type: text/plain\r\n\
                 Content-Length: 20\r\n{validators}Accept-Ranges: bytes\r\n\r\n"
            )
        );
        let r = site
            .respond(&DirRequest {
                range: Some(b"bytes=2-5"),
                close: true,
                ..get()
            })
            .await;
        assert_eq!(
            head_without_date(&r),
            format!(
                "HTTP/1.1 206 Partial Content\r\nDate: D\r\nServer: Kennel\r\n\
                 Content-Type: text/plain\r\nContent-Length: 4\r\n{validators}\
                 Accept-Ranges: bytes\r\nContent-Range: bytes 2-5/20\r\n\
                 Connection: close\r\n\r\n"
            )
        );
        let r = site.respond(&ranged("bytes=0-1,4-4")).await;
        let ctype = header(&r, "Content-Type").unwrap().to_owned();
        assert_eq!(
            head_without_date(&r).replace(&ctype, "T"),
            format!(
                "HTTP/1.1 206 Partial Content\r\nDate: D\r\nServer: Kennel\r\n\
                 Content-Type: T\r\nContent-Length: {}\r\n{validators}\
                 Accept-Ranges: bytes\r\n\r\n",
                r.body.len()
            )
        );
        let r = site
            .respond(&DirRequest {
                if_none_match: Some(ETAG.as_bytes()),
                ..get()
            })
            .await;
        assert_eq!(
            head_without_date(&r),
            format!("HTTP/1.1 304 Not Modified\r\nDate: D\r\nServer: Kennel\r\n{validators}\r\n")
        );
        let short = |status: &str, extra: &str| {
            format!(
                "HTTP/1.1 {status}\r\nDate: D\r\nServer: Kennel\r\n\
                 Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{extra}\r\n",
                status.len() + 1
            )
        };
        let r = site.get("/static/missing").await;
        assert_eq!(head_without_date(&r), short("404 Not Found", ""));
        let r = site.respond(&ranged("bytes=20-")).await;
        assert_eq!(
            head_without_date(&r),
            short("416 Range Not Satisfiable", "Content-Range: bytes */20\r\n")
        );
        let r = site
            .respond(&DirRequest {
                method: b"POST",
                ..get()
            })
            .await;
        assert_eq!(
            head_without_date(&r),
            short("405 Method Not Allowed", "Allow: GET, HEAD\r\n")
        );
        let r = site.get("/static/sub").await;
        assert_eq!(
            head_without_date(&r),
            short("301 Moved Permanently", "Location: /static/sub/\r\n")
        );
        let r = site
            .respond(&DirRequest {
                if_match: Some(b"\"other\""),
                close: true,
                ..get()
            })
            .await;
        assert_eq!(
            head_without_date(&r),
            short("412 Precondition Failed", "Connection: close\r\n")
        );
    }

    #[tokio::test]
    async fn serves_a_file_with_all_headers() {
        let site = Site::new();
        let r = site.get("/static/a.txt").await;
        assert_eq!(r.status, 200);
        assert!(head_text(&r).starts_with("HTTP/1.1 200 OK\r\n"));
        assert_eq!(header(&r, "Content-Type"), Some("text/plain"));
        assert_eq!(header(&r, "Content-Length"), Some("20"));
        assert_eq!(header(&r, "Last-Modified"), Some(LAST_MODIFIED));
        assert_eq!(header(&r, "ETag"), Some(ETAG));
        assert_eq!(header(&r, "Accept-Ranges"), Some("bytes"));
        assert_eq!(header(&r, "Server"), Some("Kennel"));
        let date = header(&r, "Date").unwrap();
        assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
        assert_eq!(header(&r, "Cache-Control"), None, "cache_ttl 0");
        assert_eq!(header(&r, "Connection"), None);
        assert_eq!(body(r).await, TEXT);
    }

    #[tokio::test]
    async fn cache_control_and_connection_close() {
        let mut site = Site::new();
        site.dir.cache_ttl = 300;
        let r = site
            .respond(&DirRequest {
                close: true,
                ..get()
            })
            .await;
        assert_eq!(header(&r, "Cache-Control"), Some("max-age=300"));
        assert_eq!(header(&r, "Connection"), Some("close"));
        let r = site
            .respond(&DirRequest {
                path: b"/static/missing",
                close: true,
                ..get()
            })
            .await;
        assert_eq!(r.status, 404);
        assert_eq!(header(&r, "Connection"), Some("close"));
    }

    #[tokio::test]
    async fn percent_decoded_name_and_mimetypes() {
        let site = Site::new();
        let r = site.get("/static/a%20b.txt").await;
        assert_eq!(r.status, 200);
        assert_eq!(header(&r, "Content-Type"), Some("text/plain"));
        assert_eq!(body(r).await, b"spaced");
        let r = site.get("/static/README").await;
        assert_eq!(header(&r, "Content-Type"), Some("application/octet-stream"));
        let r = site.get("/static/").await;
        assert_eq!(header(&r, "Content-Type"), Some("text/html"));
    }

    #[tokio::test]
    async fn non_ascii_names_raw_or_encoded() {
        let site = Site::new();
        site.file("static/\u{fc}.txt", b"umlaut");
        std::fs::create_dir(site.path("static/d\u{fc}")).unwrap();
        for path in [&b"/static/\xc3\xbc.txt"[..], b"/static/%C3%BC.txt"] {
            let r = site.respond(&DirRequest { path, ..get() }).await;
            assert_eq!(r.status, 200);
            assert_eq!(body(r).await, b"umlaut");
        }
        let r = site
            .respond(&DirRequest {
                path: b"/static/d\xc3\xbc",
                query: Some(b"q=\xff"),
                ..get()
            })
            .await;
        assert_eq!(r.status, 301);
        assert!(
            r.head
                .windows(28)
                .any(|w| w == b"Location: /static/d\xc3\xbc/?q=\xff\r\n"),
            "{:?}",
            String::from_utf8_lossy(&r.head)
        );
        for path in [
            &b"/static/a b.txt"[..],
            b"/static/a.txt\r\nX: y",
            b"/static/\x7f",
        ] {
            let r = site.respond(&DirRequest { path, ..get() }).await;
            assert_eq!(r.status, 404, "{path:?}");
        }
    }

    #[tokio::test]
    async fn empty_file_has_empty_body() {
        let site = Site::new();
        let r = site.get("/static/empty.txt").await;
        assert_eq!(r.status, 200);
        assert_eq!(header(&r, "Content-Length"), Some("0"));
        assert!(matches!(r.body, Body::Empty));
    }

    #[tokio::test]
    async fn head_has_the_same_head_and_no_body() {
        let site = Site::new();
        let r = site
            .respond(&DirRequest {
                method: b"HEAD",
                range: Some(b"bytes=0-1"),
                ..get()
            })
            .await;
        assert_eq!(r.status, 200, "Range is for GET only");
        assert_eq!(header(&r, "Content-Length"), Some("20"));
        assert_eq!(header(&r, "ETag"), Some(ETAG));
        assert!(matches!(r.body, Body::Empty));
        let r = site
            .respond(&DirRequest {
                method: b"HEAD",
                path: b"/static/nope",
                ..get()
            })
            .await;
        assert_eq!(r.status, 404);
        assert_eq!(header(&r, "Content-Length"), Some("14"));
        assert!(matches!(r.body, Body::Empty));
    }

    #[tokio::test]
    async fn other_methods_get_405() {
        let site = Site::new();
        for method in [&b"POST"[..], b"PUT", b"DELETE", b"OPTIONS", b"get"] {
            let r = site.respond(&DirRequest { method, ..get() }).await;
            assert_eq!(r.status, 405);
            assert_eq!(header(&r, "Allow"), Some("GET, HEAD"));
            assert_eq!(body(r).await, b"405 Method Not Allowed\n");
        }
    }

    #[tokio::test]
    async fn not_found_cases() {
        let site = Site::new();
        for path in [
            "/static/missing.txt",
            "/stat",
            "/other/a.txt",
            "/static/a.txt/",
            "/static/noindex/",
            "/static/a%00.txt",
            "/static/%00",
        ] {
            let r = site.get(path).await;
            assert_eq!(r.status, 404, "{path}");
            assert_eq!(header(&r, "Content-Length"), Some("14"));
            assert_eq!(body(r).await, b"404 Not Found\n");
        }
    }

    #[tokio::test]
    async fn traversal_is_refused() {
        let site = Site::new();
        for path in [
            "/static/../outside.txt",
            "/static/%2e%2e/outside.txt",
            "/static/%2E%2E%2Foutside.txt",
            "/static/sub/../../outside.txt",
            "/static/../static_sibling/secret.txt",
            "/static/%2e%2e/static_sibling/secret.txt",
            "/static/..",
            "/static/../",
        ] {
            let r = site.get(path).await;
            assert_eq!(r.status, 404, "{path}");
        }
        // `..` that stays inside is fine.
        let r = site.get("/static/sub/../a.txt").await;
        assert_eq!(r.status, 200);
    }

    #[tokio::test]
    async fn symlinks_are_followed_only_inside_the_base() {
        let site = Site::new();
        symlink(site.path("outside.txt"), site.path("static/out.txt")).unwrap();
        symlink(site.path("static_sibling"), site.path("static/sib")).unwrap();
        symlink(site.path("static/a.txt"), site.path("static/in.txt")).unwrap();
        symlink("nowhere", site.path("static/dangling")).unwrap();
        assert_eq!(site.get("/static/out.txt").await.status, 404);
        assert_eq!(site.get("/static/sib/secret.txt").await.status, 404);
        assert_eq!(site.get("/static/dangling").await.status, 404);
        let r = site.get("/static/in.txt").await;
        assert_eq!(r.status, 200);
        assert_eq!(body(r).await, TEXT);
    }

    #[tokio::test]
    async fn a_symlinked_base_works() {
        let mut site = Site::new();
        symlink(site.path("static"), site.path("link")).unwrap();
        site.dir.base = format!("{}/link/", site.tmp.path().display());
        assert_eq!(site.get("/static/a.txt").await.status, 200);
        assert_eq!(site.get("/static/../outside.txt").await.status, 404);
    }

    #[tokio::test]
    async fn missing_base_is_404() {
        let mut site = Site::new();
        site.dir.base = format!("{}/gone/", site.tmp.path().display());
        assert_eq!(site.get("/static/a.txt").await.status, 404);
    }

    #[tokio::test]
    async fn fifo_is_not_served() {
        let site = Site::new();
        nix::unistd::mkfifo(
            &site.path("static/fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        assert_eq!(site.get("/static/fifo").await.status, 404);
    }

    #[tokio::test]
    async fn index_files() {
        let site = Site::new();
        let r = site.get("/static/").await;
        assert_eq!(r.status, 200);
        assert_eq!(body(r).await, b"<h1>home</h1>");
        let r = site.get("/static/sub/").await;
        assert_eq!(body(r).await, b"sub home");
        let r = site.get("/static/sub%2F").await;
        assert_eq!(r.status, 200, "an encoded slash also asks for the index");
        // The index file named by the config is the one served.
        let mut site = site;
        site.dir.index_file = "README".into();
        let r = site.get("/static/").await;
        assert_eq!(header(&r, "Content-Type"), Some("application/octet-stream"));
        assert_eq!(body(r).await, b"readme");
    }

    #[tokio::test]
    async fn index_may_not_escape_or_be_a_directory() {
        let mut site = Site::new();
        symlink(site.path("outside.txt"), site.path("static/sub/out.html")).unwrap();
        site.dir.index_file = "out.html".into();
        assert_eq!(site.get("/static/sub/").await.status, 404);
        std::fs::create_dir(site.path("static/sub/d")).unwrap();
        site.dir.index_file = "d".into();
        assert_eq!(site.get("/static/sub/").await.status, 404);
    }

    #[tokio::test]
    async fn directory_without_slash_redirects() {
        let site = Site::new();
        let r = site
            .respond(&DirRequest {
                path: b"/static/sub",
                query: Some(b"x=1&y=%20"),
                ..get()
            })
            .await;
        assert_eq!(r.status, 301);
        assert_eq!(header(&r, "Location"), Some("/static/sub/?x=1&y=%20"));
        let r = site.get("/static/noindex").await;
        assert_eq!(r.status, 301);
        assert_eq!(header(&r, "Location"), Some("/static/noindex/"));
        // The route prefix itself without its slash maps onto the base.
        let r = site
            .respond(&DirRequest {
                path: b"/static",
                prefix: "/static",
                ..get()
            })
            .await;
        assert_eq!(header(&r, "Location"), Some("/static/"));
    }

    #[tokio::test]
    async fn prefix_without_slash_joins_cleanly() {
        let site = Site::new();
        let r = site
            .respond(&DirRequest {
                prefix: "/static",
                ..get()
            })
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(body(r).await, TEXT);
    }

    async fn conditional(site: &Site, req: DirRequest<'_>) -> u16 {
        let r = site.respond(&req).await;
        let status = r.status;
        if r.status == 304 {
            assert_eq!(header(&r, "ETag"), Some(ETAG));
            assert_eq!(header(&r, "Last-Modified"), Some(LAST_MODIFIED));
            assert_eq!(header(&r, "Content-Length"), None);
            assert!(matches!(r.body, Body::Empty));
        }
        if r.status == 412 {
            assert_eq!(body(r).await, b"412 Precondition Failed\n");
        }
        status
    }

    #[tokio::test]
    async fn if_none_match() {
        let site = Site::new();
        for value in [
            ETAG,
            "6553f100-14",
            "W/\"6553f100-14\"",
            "*",
            " \"zzz\", \"6553f100-14\" ",
            "\"a,b\",6553f100-14",
        ] {
            let req = DirRequest {
                if_none_match: Some(value.as_bytes()),
                ..get()
            };
            assert_eq!(conditional(&site, req).await, 304, "{value}");
            let req = DirRequest {
                method: b"HEAD",
                if_none_match: Some(value.as_bytes()),
                ..get()
            };
            assert_eq!(conditional(&site, req).await, 304, "HEAD {value}");
        }
        for value in ["\"6553f100-15\"", "\"6553f100-14", "6553f100", ""] {
            let req = DirRequest {
                if_none_match: Some(value.as_bytes()),
                // Ignored when If-None-Match is present.
                if_modified_since: Some(LAST_MODIFIED.as_bytes()),
                ..get()
            };
            assert_eq!(conditional(&site, req).await, 200, "{value}");
        }
    }

    #[tokio::test]
    async fn if_modified_since() {
        let site = Site::new();
        let ims = |value: &'static str| DirRequest {
            if_modified_since: Some(value.as_bytes()),
            ..get()
        };
        assert_eq!(conditional(&site, ims(LAST_MODIFIED)).await, 304);
        assert_eq!(
            conditional(&site, ims("Wed, 15 Nov 2023 00:00:00 GMT")).await,
            304
        );
        assert_eq!(
            conditional(&site, ims("Tuesday, 14-Nov-23 22:13:20 GMT")).await,
            304,
            "obsolete RFC 850 form"
        );
        assert_eq!(
            conditional(&site, ims("Tue, 14 Nov 2023 22:13:19 GMT")).await,
            200
        );
        assert_eq!(conditional(&site, ims("yesterday")).await, 200);
        assert_eq!(
            conditional(&site, ims("Sat, 01 Jan 2huh 00:00:00 GMT")).await,
            200
        );
        assert_eq!(
            conditional(&site, ims("Fri, 01 Jan 9999 00:00:00 GMT")).await,
            200,
            "a date in the future is ignored"
        );
    }

    #[tokio::test]
    async fn if_match() {
        let site = Site::new();
        let im = |value: &'static str| DirRequest {
            if_match: Some(value.as_bytes()),
            ..get()
        };
        assert_eq!(conditional(&site, im(ETAG)).await, 200);
        assert_eq!(conditional(&site, im("6553f100-14")).await, 200);
        assert_eq!(conditional(&site, im("*")).await, 200);
        assert_eq!(conditional(&site, im("\"x\", \"6553f100-14\"")).await, 200);
        assert_eq!(conditional(&site, im("\"6553f100-15\"")).await, 412);
        assert_eq!(
            conditional(&site, im("W/\"6553f100-14\"")).await,
            412,
            "If-Match compares strongly"
        );
        // If-Match wins over If-Unmodified-Since.
        let req = DirRequest {
            if_match: Some(ETAG.as_bytes()),
            if_unmodified_since: Some(b"Mon, 01 Jan 2001 00:00:00 GMT"),
            ..get()
        };
        assert_eq!(conditional(&site, req).await, 200);
        // A failed If-Match is a 412 even when If-None-Match would say 304.
        let req = DirRequest {
            if_match: Some(b"\"other\""),
            if_none_match: Some(ETAG.as_bytes()),
            ..get()
        };
        assert_eq!(conditional(&site, req).await, 412);
    }

    #[tokio::test]
    async fn if_unmodified_since() {
        let site = Site::new();
        let ius = |value: &'static str| DirRequest {
            if_unmodified_since: Some(value.as_bytes()),
            ..get()
        };
        assert_eq!(conditional(&site, ius(LAST_MODIFIED)).await, 200);
        assert_eq!(
            conditional(&site, ius("Tue, 14 Nov 2023 22:13:19 GMT")).await,
            412
        );
        assert_eq!(conditional(&site, ius("garbage")).await, 200);
        // 412 comes before 304.
        let req = DirRequest {
            if_unmodified_since: Some(b"Mon, 01 Jan 2001 00:00:00 GMT"),
            if_none_match: Some(ETAG.as_bytes()),
            ..get()
        };
        assert_eq!(conditional(&site, req).await, 412);
    }

    fn ranged(range: &'static str) -> DirRequest<'static> {
        DirRequest {
            range: Some(range.as_bytes()),
            ..get()
        }
    }

    #[tokio::test]
    async fn single_ranges() {
        let site = Site::new();
        for (range, content_range, expected) in [
            ("bytes=0-4", "bytes 0-4/20", &b"01234"[..]),
            ("bytes=18-", "bytes 18-19/20", b"ij"),
            ("bytes=-3", "bytes 17-19/20", b"hij"),
            ("bytes=-300", "bytes 0-19/20", TEXT),
            ("bytes=15-1000", "bytes 15-19/20", b"fghij"),
            ("BYTES= 5-5 ", "bytes 5-5/20", b"5"),
            ("bytes=30-40, 2-3", "bytes 2-3/20", b"23"),
        ] {
            let r = site.respond(&ranged(range)).await;
            assert_eq!(r.status, 206, "{range}");
            assert!(head_text(&r).starts_with("HTTP/1.1 206 Partial Content\r\n"));
            assert_eq!(header(&r, "Content-Range"), Some(content_range));
            assert_eq!(header(&r, "Content-Type"), Some("text/plain"));
            assert_eq!(header(&r, "ETag"), Some(ETAG));
            let len = expected.len().to_string();
            assert_eq!(header(&r, "Content-Length"), Some(len.as_str()));
            assert_eq!(body(r).await, expected, "{range}");
        }
    }

    #[tokio::test]
    async fn invalid_ranges_are_ignored() {
        let site = Site::new();
        for range in [
            "bytes=5-2",
            "bytes=abc",
            "bytes=1-2-3",
            "bytes=",
            "bytes=,",
            "items=0-1",
            "bytes 0-1",
            "bytes=--1",
            "bytes=0-1,x",
            "bytes=0x1-2",
        ] {
            let r = site.respond(&ranged(range)).await;
            assert_eq!(r.status, 200, "{range}");
            assert_eq!(body(r).await, TEXT);
        }
    }

    #[tokio::test]
    async fn unsatisfiable_ranges() {
        let site = Site::new();
        for range in [
            "bytes=20-",
            "bytes=20-30",
            "bytes=-0",
            "bytes=99999999999999999999999-",
        ] {
            let r = site.respond(&ranged(range)).await;
            assert_eq!(r.status, 416, "{range}");
            assert_eq!(header(&r, "Content-Range"), Some("bytes */20"));
            assert_eq!(body(r).await, b"416 Range Not Satisfiable\n");
        }
        let r = site
            .respond(&DirRequest {
                path: b"/static/empty.txt",
                ..ranged("bytes=0-")
            })
            .await;
        assert_eq!(r.status, 416);
        assert_eq!(header(&r, "Content-Range"), Some("bytes */0"));
    }

    #[tokio::test]
    async fn multiple_ranges() {
        let site = Site::new();
        let r = site.respond(&ranged("bytes=0-1, 5-7,-2")).await;
        assert_eq!(r.status, 206);
        assert_eq!(header(&r, "Content-Range"), None);
        let ctype = header(&r, "Content-Type").unwrap().to_owned();
        let boundary = ctype
            .strip_prefix("multipart/byteranges; boundary=")
            .unwrap()
            .to_owned();
        let len: usize = header(&r, "Content-Length").unwrap().parse().unwrap();
        let body = body(r).await;
        assert_eq!(body.len(), len);
        let expected = format!(
            "--{b}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/20\r\n\r\n01\
             \r\n--{b}\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-7/20\r\n\r\n567\
             \r\n--{b}\r\nContent-Type: text/plain\r\nContent-Range: bytes 18-19/20\r\n\r\nij\
             \r\n--{b}--\r\n",
            b = boundary
        );
        assert_eq!(String::from_utf8(body).unwrap(), expected);
        // Boundaries differ between responses.
        let again = site.respond(&ranged("bytes=0-1,5-7")).await;
        assert_ne!(
            header(&again, "Content-Type").unwrap(),
            ctype,
            "boundary reused"
        );
    }

    #[tokio::test]
    async fn too_many_or_overlapping_ranges_get_the_whole_file() {
        let site = Site::new();
        let sixteen = (0..16).map(|i| format!("{i}-{i}")).collect::<Vec<_>>();
        let header_value = format!("bytes={}", sixteen.join(","));
        let r = site
            .respond(&DirRequest {
                range: Some(header_value.as_bytes()),
                ..get()
            })
            .await;
        assert_eq!(r.status, 206, "16 ranges are served");
        let seventeen = format!("{header_value},16-16");
        let r = site
            .respond(&DirRequest {
                range: Some(seventeen.as_bytes()),
                ..get()
            })
            .await;
        assert_eq!(r.status, 200);
        let r = site.respond(&ranged("bytes=0-15,5-19")).await;
        assert_eq!(r.status, 200, "overlaps larger than the file");
        assert_eq!(body(r).await, TEXT);
    }

    #[tokio::test]
    async fn if_range() {
        let site = Site::new();
        let with = |if_range: &'static str| DirRequest {
            if_range: Some(if_range.as_bytes()),
            ..ranged("bytes=0-1")
        };
        for (value, status) in [
            (ETAG, 206),
            ("6553f100-14", 206),
            (LAST_MODIFIED, 206),
            ("W/\"6553f100-14\"", 200),
            ("\"6553f100-15\"", 200),
            ("Tue, 14 Nov 2023 22:13:21 GMT", 200),
            ("Wed, 15 Nov 2023 00:00:00 GMT", 200),
            ("\"6553f100-14\", \"x\"", 200),
            ("", 200),
        ] {
            let r = site.respond(&with(value)).await;
            assert_eq!(r.status, status, "If-Range: {value}");
        }
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    fn dir(base: &Path, ttl: u64) -> Dir {
        Dir {
            id: 1,
            base: format!("{}/", base.display()),
            index_file: "index.html".into(),
            default_ctype: "text/plain".into(),
            cache_ttl: ttl,
        }
    }

    #[tokio::test]
    async fn a_second_request_is_served_from_the_cache() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("a.txt"), "aaa").unwrap();
        let cache = FileCache::new();
        let dir = dir(tmp.path(), 0);
        let mimetypes = MimeTypes::new();
        let req = DirRequest {
            method: b"GET",
            path: b"/a.txt",
            prefix: "/",
            ..DirRequest::default()
        };
        let first = respond_with(&cache, &dir, &mimetypes, &req).await;
        assert_eq!(first.status, 200);
        let entry = cache
            .get(&dir, b"a.txt", false)
            .expect("cached and unchanged");
        assert_eq!(entry.content.as_deref(), Some(&b"aaa"[..]));
        let second = respond_with(&cache, &dir, &mimetypes, &req).await;
        assert!(matches!(second.body, Body::Bytes(ref b) if b == "aaa"));
        // Same entry object: no new lookup happened.
        let again = cache.get(&dir, b"a.txt", false).unwrap();
        assert!(Arc::ptr_eq(&entry, &again));
    }
}
