//! The test site the Dir handler's unit tests share: a temporary
//! directory with a `static/` base, files with a fixed mtime, and helpers
//! to ask for a path and read the response.
//!
//! Owns no behaviour of the Dir handler; used only by the tests in
//! [`super`] and its modules.

use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use super::{respond, send_copy, DirRequest, Response};
use crate::config::{Dir, MimeTypes};

/// 2023-11-14T22:13:20Z, `0x6553f100`: every fixture file's mtime.
pub(super) const MTIME: u64 = 1_700_000_000;
pub(super) const LAST_MODIFIED: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
pub(super) const TEXT: &[u8] = b"0123456789abcdefghij";
/// The ETag of `static/a.txt`: its mtime and size (20) in hex.
pub(super) const ETAG: &str = "\"6553f100-14\"";

/// A temp dir with `static/` (the base) and `static_sibling/` next to it.
pub(super) struct Site {
    pub(super) tmp: tempfile::TempDir,
    pub(super) dir: Dir,
    pub(super) mimetypes: MimeTypes,
}

impl Site {
    pub(super) fn new() -> Site {
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

    pub(super) fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub(super) fn file(&self, rel: &str, content: &[u8]) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        let f = File::options().write(true).open(&path).unwrap();
        f.set_modified(UNIX_EPOCH + Duration::from_secs(MTIME))
            .unwrap();
    }

    pub(super) async fn get(&self, path: &str) -> Response {
        self.respond(&DirRequest {
            path: path.as_bytes(),
            ..get()
        })
        .await
    }

    pub(super) async fn respond(&self, req: &DirRequest<'_>) -> Response {
        respond(&self.dir, &self.mimetypes, req).await
    }
}

/// A GET of `/static/a.txt` below the prefix `/static/`: what the tests
/// change a field or two of.
pub(super) fn get() -> DirRequest<'static> {
    DirRequest {
        method: b"GET",
        path: b"/static/a.txt",
        prefix: "/static/",
        ..DirRequest::default()
    }
}

/// The head as text.
pub(super) fn head_text(r: &Response) -> &str {
    std::str::from_utf8(&r.head).unwrap()
}

/// The value of header `name` (exact case), if present once.
pub(super) fn header<'r>(r: &'r Response, name: &str) -> Option<&'r str> {
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

/// The body as a writer gets it, checked against its declared length.
pub(super) async fn body(r: Response) -> Vec<u8> {
    let head_len = r.head.len();
    let declared = r.body.len();
    let mut out = Vec::new();
    send_copy(r, &mut out).await.unwrap();
    let body = out.split_off(head_len);
    assert_eq!(body.len() as u64, declared);
    body
}
