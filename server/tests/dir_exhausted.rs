//! A Dir request that cannot open its file because the process is out of
//! file descriptors gets a 503 with `Retry-After` (a passing condition the
//! client may retry), not a 500. Its own test binary: it lowers this
//! process's open-file limit.

use kennel::config::{Dir, MimeTypes};
use kennel::dir::{respond, DirRequest};
use nix::sys::resource::{getrlimit, setrlimit, Resource};

#[tokio::test]
async fn out_of_file_descriptors_is_a_503() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.txt"), "aaa").unwrap();
    let dir = Dir {
        id: 1,
        base: format!("{}/", tmp.path().display()),
        index_file: "index.html".into(),
        default_ctype: "text/plain".into(),
        cache_ttl: 0,
    };
    let req = DirRequest {
        method: b"GET",
        path: b"/a.txt",
        prefix: "/",
        ..DirRequest::default()
    };
    // Warm the blocking pool so its thread exists before the limit bites.
    assert_eq!(respond(&dir, &MimeTypes::new(), &req).await.status, 200);

    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let mut hog = Vec::new();
    let open_now = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    setrlimit(Resource::RLIMIT_NOFILE, open_now + 8, hard).unwrap();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hog.push(f);
        assert!(hog.len() < 10_000, "the limit did not take");
    }
    let response = respond(&dir, &MimeTypes::new(), &req).await;
    drop(hog);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    assert_eq!(response.status, 503);
    let head = String::from_utf8_lossy(&response.head);
    assert!(head.contains("Retry-After: 1\r\n"), "{head}");
}
