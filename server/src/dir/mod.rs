//! The Dir target: static files from a `directory` row (PROTOCOL.md §5 "Dir",
//! with Kennel's decisions from the table at the top of that file).
//!
//! Owns the Dir's answer to a request: which methods are served, the
//! redirect for a directory asked for without its `/`, the validators a
//! file response carries (`ETag`, `Last-Modified`, `Cache-Control`), the
//! answers to conditional and range requests (304, 412, 206 with one range
//! or a `multipart/byteranges` body and its boundary, 416), the refusals
//! (404, 405, 500, 503) and their log levels, and the planned [`Response`]
//! that says all this: its head, and a [`Body`] of [`Part`]s.
//!
//! Layout:
//! - this file: [`DirRequest`], [`respond`], [`respond_with`], the plan;
//! - `resolve`: the request path → an open file under the base
//!   (percent-decoding, symlinks, containment, I/O errors → statuses);
//! - `cache`: [`FileCache`], open files and small files' contents;
//! - `send`: writing a planned response — [`send`](fn@send) (`sendfile(2)`
//!   to a TCP stream, one step of which is [`sendfile_once`]) and
//!   [`send_copy`] (a read/write loop to any writer), one driver for both.
//!
//! Does not own: what the headers mean (RFC 9110's conditional requests
//! and ranges are [`crate::http::conditional`] and [`crate::http::range`];
//! the head is written by [`ResponseHead`]), parsing the request head or
//! routing (the caller passes the header values it found and the route's
//! literal prefix), keep-alive (the caller says whether the response must
//! say `Connection: close`, and closes the connection itself).
//!
//! Called by the connection task: [`respond_with`] plans a [`Response`]
//! with the server's [`FileCache`] (the filesystem work of a miss runs on
//! tokio's blocking pool), then [`send`](fn@send) or [`send_copy`] writes
//! it.
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
//!   than [`MAX_RANGES`](crate::http::range::MAX_RANGES) ranges, get the
//!   full 200: a multipart body is never larger than the file plus its
//!   boundaries.

mod cache;
#[cfg(test)]
mod fixture;
mod resolve;
mod send;

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::{Dir, MimeTypes};
use crate::http::conditional::{self, Conditions, Precondition, Validators};
use crate::http::range::{plan_ranges, Byteranges, ContentRange, Ranges};
use crate::http::{reason, ResponseHead};
use resolve::{Found, FoundFile, Lookup};

pub use cache::{CachedFile, FileCache, CACHE_CONTENT_BYTES, CACHE_ENTRIES, SMALL_FILE};
pub use send::{send, send_copy, sendfile_once, COPY_CHUNK, SENDFILE_CHUNK};

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
    let lookup = match Lookup::new(dir, rest, wants_index) {
        Ok(lookup) => lookup,
        Err(refusal) => return refuse(refusal, req, head_only),
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
                name,
                content,
            } = *found;
            CachedFile::new(file, &meta, path, name, content, cache.now_ms())
        }
        Found::Directory => return redirect(req, head_only),
    };
    let entry = cache.insert(dir, rest, wants_index, entry);
    let ctype = entry.content_type(mimetypes, dir);
    plan_file(&entry, ctype, dir.cache_ttl, req, head_only)
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

#[cfg(test)]
mod tests {
    use super::fixture::*;
    use super::*;

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
