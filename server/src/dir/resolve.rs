//! Mapping a request path onto a file under a Dir's base.
//!
//! Owns: percent-decoding the path below the route's prefix (a decoded NUL
//! is a 404), joining it and the index file name to the base, resolving
//! symlinks with the component-wise containment check ([`contained`]),
//! opening with `O_NOFOLLOW | O_NONBLOCK`, reading a small file's contents
//! for the cache, and sorting I/O errors into 404, 503 and 500
//! ([`classify`]). Does not own stripping the route's prefix or refusing
//! control bytes ([`super::respond_with`] does both first), the cache (a hit
//! never gets here), or the response.
//!
//! Called by [`super::respond_with`] on a cache miss: [`Lookup::new`] on the
//! runtime thread, [`Lookup::resolve`] on tokio's blocking pool.

use std::ffi::OsString;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use nix::errno::Errno;
use nix::fcntl::OFlag;

use super::cache::SMALL_FILE;
use super::Refusal;
use crate::config::Dir;

/// A regular file the lookup opened.
pub(super) struct FoundFile {
    /// The open file.
    pub(super) file: File,
    /// Its metadata, from `fstat(2)` on the open file.
    pub(super) meta: Metadata,
    /// Its canonical path (no symlinks), for the cache's later checks.
    pub(super) path: PathBuf,
    /// The name its MIME type goes by: the index file's, or the decoded
    /// request path's.
    pub(super) name: String,
    /// Its contents, when at most [`SMALL_FILE`] bytes.
    pub(super) content: Option<Bytes>,
}

/// What the filesystem lookup found.
pub(super) enum Found {
    /// A regular file, open, with its metadata and canonical path (and its
    /// contents when small enough to keep in the cache).
    File(Box<FoundFile>),
    /// A directory asked for without the trailing `/`.
    Directory,
}

/// The filesystem part of a request, run on the blocking pool.
pub(super) struct Lookup {
    /// The Dir's base as configured.
    base: String,
    /// The percent-decoded request path minus the prefix.
    rest: Vec<u8>,
    /// The index file name when the path ends in `/`.
    index: Option<String>,
}

impl Lookup {
    /// The lookup for `rest`, the raw request path below the route's prefix,
    /// in `dir`; `wants_index` when the raw path ends in `/`. Percent-decodes
    /// `rest`: a decoded NUL is a 404 (no file can have that name), and a
    /// decoded trailing `/` (`%2F`) also asks for the index file.
    pub(super) fn new(dir: &Dir, rest: &[u8], wants_index: bool) -> Result<Lookup, Refusal> {
        let rest: Vec<u8> = percent_encoding::percent_decode(rest).collect();
        if rest.contains(&0) {
            return Err(Refusal::NotFound("NUL in the path"));
        }
        let wants_index = wants_index || rest.ends_with(b"/");
        Ok(Lookup {
            base: dir.base.clone(),
            rest,
            index: wants_index.then(|| dir.index_file.clone()),
        })
    }

    /// Resolves the path, checks it lies inside the base and opens it.
    pub(super) fn resolve(self) -> Result<Found, Refusal> {
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
        let name = match self.index {
            Some(index) => index,
            None => String::from_utf8_lossy(&self.rest).into_owned(),
        };
        Ok(Found::File(Box::new(FoundFile {
            file,
            meta,
            path,
            name,
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::dir::fixture::*;
    use crate::dir::DirRequest;

    #[test]
    fn io_errors_sort_into_missing_exhausted_and_unexpected() {
        let path = Path::new("/srv/x");
        for errno in [
            Errno::ENOENT,
            Errno::EACCES,
            Errno::ENOTDIR,
            Errno::ELOOP,
            Errno::ENAMETOOLONG,
        ] {
            let refusal = classify(path, io::Error::from_raw_os_error(errno as i32));
            assert!(matches!(refusal, Refusal::NotFound(_)), "{errno}");
        }
        for errno in [Errno::EMFILE, Errno::ENFILE, Errno::ENOMEM] {
            let refusal = classify(path, io::Error::from_raw_os_error(errno as i32));
            assert!(matches!(refusal, Refusal::Exhausted { .. }), "{errno}");
        }
        let refusal = classify(path, io::Error::from_raw_os_error(Errno::EIO as i32));
        assert!(matches!(refusal, Refusal::Io { .. }));
    }

    #[test]
    fn lookups_decode_the_path() {
        let site = Site::new();
        let lookup = Lookup::new(&site.dir, b"sub%2F", false).unwrap();
        assert_eq!(lookup.rest, b"sub/");
        assert_eq!(lookup.index.as_deref(), Some("index.html"));
        let lookup = Lookup::new(&site.dir, b"a%20b.txt", false).unwrap();
        assert_eq!(
            (lookup.rest.as_slice(), lookup.index),
            (&b"a b.txt"[..], None)
        );
        assert!(matches!(
            Lookup::new(&site.dir, b"a%00", false),
            Err(Refusal::NotFound(_))
        ));
        let Ok(Found::File(found)) = Lookup::new(&site.dir, b"a%20b.txt", false)
            .unwrap()
            .resolve()
        else {
            panic!("a b.txt is a file");
        };
        assert_eq!(found.name, "a b.txt");
        assert_eq!(found.content.as_deref(), Some(&b"spaced"[..]));
        assert!(found.path.is_absolute());
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
}
