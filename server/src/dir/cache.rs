//! The file cache: resolved, open files (and the contents of small ones)
//! kept between requests, shared by every connection of a server.
//!
//! Owns [`FileCache`] and its bounds ([`SMALL_FILE`], [`CACHE_ENTRIES`],
//! [`CACHE_CONTENT_BYTES`]), [`CachedFile`] with the validators made from a
//! file's metadata (Mongrel2's `<mtime hex>-<size hex>` ETag, the
//! `Last-Modified` text), and the freshness rule: an entry is trusted for
//! the Dir's `cache_ttl` seconds, then until one `lstat(2)` shows the file
//! changed. Does not own finding or opening files ([`super::resolve`]) or
//! what a response says about them ([`super`]).
//!
//! Called by [`respond_with`](super::respond_with); the server owns one
//! [`FileCache`] for its life.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::Bytes;

use crate::config::{Dir, MimeTypes};

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
/// [`respond_with`](super::respond_with)). A snapshot's Dir rows never change, so entries are
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
    pub(super) file: Arc<File>,
    path: PathBuf,
    name: String,
    dev: u64,
    ino: u64,
    pub(super) size: u64,
    pub(super) mtime: u64,
    mtime_nsec: i64,
    pub(super) etag: String,
    pub(super) last_modified: String,
    pub(super) content: Option<Bytes>,
    /// Milliseconds since the cache's epoch of the last check.
    checked_ms: AtomicU64,
}

impl CachedFile {
    pub(super) fn new(
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

    pub(super) fn content_type<'a>(&'a self, mimetypes: &'a MimeTypes, dir: &'a Dir) -> &'a str {
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

    pub(super) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Arc<CachedFile>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh entry for the request path `rest` below `dir`'s prefix.
    pub(super) fn get(&self, dir: &Dir, rest: &[u8], index: bool) -> Option<Arc<CachedFile>> {
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
    pub(super) fn insert(
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::dir::{respond_with, Body, DirRequest};

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
