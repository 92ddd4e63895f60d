//! Mongrel2's own Python 2 example handlers, run unchanged: the files from
//! Debian's `mongrel2-core` examples copied into a temp dir with the
//! library (`mongrel2/`, its `handler.py.gz` gunzipped: packaging, not a
//! change), a one-line `simplejson.py` standing in for the module Debian
//! has no Python 2 package of, `python2.7` with pyzmq from
//! `KENNEL_PY2_PATH` (see `tests/setup.sh`), and a lock file per set of
//! hard-coded ports so that no two tests use them at once.
//!
//! Owns: [`install`], [`example_site`], [`Handler`] (the running script, killed by its PID on
//! drop, its output in a file) and [`lock_ports`]. Used by the tests that
//! run `ws/python/echo.py` and `http_0mq/upload.py`. Anything missing
//! fails the test with a message saying what to install; nothing is
//! skipped.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::databases::{DbKind, HandlerRow, HostRows, SiteRows, TargetRow};
use super::Site;

/// Mongrel2's examples, as Debian installs them.
pub const EXAMPLES: &str = "/usr/share/doc/mongrel2-core/examples";

pub const INSTALL: &str = "`bash tests/setup.sh` installs everything the tests need";

/// Holds an exclusive lock on a port lock file while it lives.
pub struct PortLock(#[allow(dead_code)] nix::fcntl::Flock<File>);

/// Takes the lock for `ports` (`/tmp/kennel-tests-ports-<sorted ports>.lock`,
/// waiting for any other holder), then checks that nothing else listens
/// on them.
pub fn lock_ports(ports: &[u16], why: &str) -> PortLock {
    let mut sorted = ports.to_vec();
    sorted.sort_unstable();
    let names: Vec<String> = sorted.iter().map(u16::to_string).collect();
    let path = format!("/tmp/kennel-tests-ports-{}.lock", names.join("-"));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .expect("open the port lock file");
    let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock the port lock file");
    for &port in ports {
        if let Err(e) = TcpListener::bind(("127.0.0.1", port)) {
            panic!("port {port} is taken ({e}): {why}");
        }
    }
    PortLock(lock)
}

/// Copies the example files `scripts` (paths under [`EXAMPLES`]) and
/// Mongrel2's Python library into `dir/py` and returns that directory.
pub fn install(dir: &Path, scripts: &[&str]) -> PathBuf {
    let py = dir.join("py");
    let lib = py.join("mongrel2");
    std::fs::create_dir_all(&lib).unwrap();
    let copy = |from: &str, to: &Path| {
        let from = Path::new(EXAMPLES).join(from);
        std::fs::copy(&from, to).unwrap_or_else(|e| {
            panic!(
                "cannot copy {} ({e}): install the Debian package mongrel2-core ({INSTALL})",
                from.display()
            )
        });
    };
    for script in scripts {
        let name = Path::new(script).file_name().unwrap();
        copy(script, &py.join(name));
    }
    for file in ["__init__.py", "request.py", "tnetstrings.py"] {
        copy(&format!("python/mongrel2/{file}"), &lib.join(file));
    }
    let gz = Path::new(EXAMPLES).join("python/mongrel2/handler.py.gz");
    let out = Command::new("gzip")
        .arg("-dc")
        .arg(&gz)
        .output()
        .expect("run gzip");
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "gzip -dc {}: {} (install the Debian package mongrel2-core; {INSTALL})",
        gz.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(lib.join("handler.py"), out.stdout).unwrap();
    // `import simplejson as json` (where a script has it) needs a module.
    std::fs::write(py.join("simplejson.py"), "from json import *\n").unwrap();
    py
}

/// `python2.7 -u SCRIPT` in the install dir, killed by its PID when
/// dropped; standard output and error go to `SCRIPT.out` there.
pub struct Handler {
    pub child: Child,
    log: PathBuf,
}

impl Handler {
    /// Starts `script` (a file name in `py`) after checking that Python 2
    /// can import `imports` (a comma-separated module list).
    pub fn start(py: &Path, script: &str, imports: &str) -> Handler {
        let python = Path::new("/usr/bin/python2.7");
        let pyzmq =
            std::env::var("KENNEL_PY2_PATH").unwrap_or_else(|_| "/opt/kennel-test/py2".into());
        let path = format!("{}:{pyzmq}", py.display());
        let check = Command::new(python)
            .args(["-c", &format!("import {imports}")])
            .env("PYTHONPATH", &path)
            .current_dir(py)
            .output();
        assert!(
            check.as_ref().is_ok_and(|o| o.status.success()),
            "python2.7 cannot import {imports} ({check:?}): this test needs \
             /usr/bin/python2.7 with pyzmq in {pyzmq} ({INSTALL})"
        );
        let log = py.join(format!("{script}.out"));
        let out = File::create(&log).unwrap();
        let child = Command::new(python)
            .args(["-u", script])
            .env("PYTHONPATH", &path)
            .current_dir(py)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {script}: {e}"));
        Handler { child, log }
    }

    /// What the script printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the script's output if it has exited.
    pub fn assert_running(&mut self, script: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{script} exited with {status}:\n{}", self.output());
        }
    }

    /// Waits until the script has printed `line` (a readiness mark), for
    /// at most `timeout`.
    pub fn wait_for_output(&mut self, script: &str, line: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.output().contains(line) {
            self.assert_running(script);
            assert!(
                Instant::now() < deadline,
                "{script} did not print {line:?} within {timeout:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The site an example handler is written for: one host, `localhost`,
/// whose route `route` goes to the one handler row `handler`, with
/// `settings` (`{root}` in a value is the site's folder; the settings
/// start with `server.daemonize = 0`), made by `m2sh load`.
pub fn example_site(route: &str, handler: HandlerRow, settings: &[(&str, &str)]) -> Site {
    Site::build(DbKind::M2sh, |server, root| SiteRows {
        server,
        hosts: vec![HostRows {
            name: "localhost".into(),
            matching: "localhost".into(),
            routes: vec![(route.to_owned(), TargetRow::Handler(0))],
        }],
        handlers: vec![handler],
        dirs: Vec::new(),
        proxies: Vec::new(),
        settings: std::iter::once(("server.daemonize", "0"))
            .chain(settings.iter().copied())
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    v.replace("{root}", &root.display().to_string()),
                )
            })
            .collect(),
    })
}
