//! `kennel start`, `stop`, `reload` and `running` on real daemons, the way
//! m2sh's commands of those names drive Mongrel2; the systemd readiness
//! messages a server sends to `NOTIFY_SOCKET`; chroot and the privilege
//! drop as root; and the example unit file.
//!
//! Every daemon a test starts is killed by pid if the test fails. Waits
//! are bounded and watch for what they wait for; none sleeps blindly.

mod manual;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const UUID_A: &str = "6f0e4c1a-9b2d-4e8f-a1c3-5d7e9f0b2a4c";
const UUID_B: &str = "0b9a8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d";

use manual::kennel;

/// A port nothing listens on (the OS's choice, released at once).
fn free_port() -> u16 {
    let probe = TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

/// A site in a temp dir: servers `life` (uuid A) and, with `two`, `other`
/// (uuid B), each on its own port with its own pid file and error log
/// under the dir, serving `public/` at `/`; daemonizing unless the
/// settings say otherwise.
struct Site {
    dir: tempfile::TempDir,
    db: PathBuf,
    ports: Vec<u16>,
}

impl Site {
    fn new(two: bool, settings: &[(&str, &str)]) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        std::fs::create_dir_all(dir.path().join("public")).unwrap();
        std::fs::write(dir.path().join("public/index.html"), "hello from a file\n").unwrap();
        let servers: &[(&str, &str, &str)] = if two {
            &[
                ("life", UUID_A, "localhost"),
                ("other", UUID_B, "other.test"),
            ]
        } else {
            &[("life", UUID_A, "localhost")]
        };
        let mut sql = site_sql(&format!("{d}/public/"));
        let mut ports = Vec::new();
        for (i, (name, uuid, host)) in servers.iter().enumerate() {
            let port = free_port();
            ports.push(port);
            sql += &server_sql(i + 1, name, uuid, host, port, "", &format!("{d}/"));
        }
        for (key, value) in settings {
            sql += &format!("INSERT INTO setting (key, value) VALUES ('{key}', '{value}');");
        }
        let db = dir.path().join("config.sqlite");
        load(&db, &sql);
        Site { dir, db, ports }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn pid_file(&self, server: &str) -> PathBuf {
        self.path(&format!("run/{server}.pid"))
    }

    fn error_log(&self, server: &str) -> String {
        std::fs::read_to_string(self.path(&format!("logs/{server}.error.log"))).unwrap_or_default()
    }

    /// Runs `kennel ARGS... --db DB` (the options m2sh's way when `args`
    /// spell them so).
    fn kennel(&self, args: &[&str]) -> Ran {
        let out = kennel()
            .args(args)
            .arg("-db")
            .arg(&self.db)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        Ran::from(out)
    }
}

/// Directory 1 at `base`, and a short drain (`kennel.shutdown_grace_ms`).
fn site_sql(base: &str) -> String {
    format!(
        "INSERT INTO directory (id, base, index_file, default_ctype) VALUES (1, '{base}', 'index.html', 'text/plain');
         INSERT INTO setting (key, value) VALUES ('kennel.shutdown_grace_ms', '300');"
    )
}

/// Server `id` on 127.0.0.1:`port` with host `host` routing `/` to
/// directory 1; its logs and pid file are `{files}logs/{name}.error.log`,
/// `{files}logs/{name}.access.log` and `{files}run/{name}.pid`.
fn server_sql(
    id: usize,
    name: &str,
    uuid: &str,
    host: &str,
    port: u16,
    chroot: &str,
    files: &str,
) -> String {
    format!(
        "INSERT INTO server (id, uuid, name, access_log, error_log, chroot, pid_file, default_host, bind_addr, port)
           VALUES ({id}, '{uuid}', '{name}', '{files}logs/{name}.access.log', '{files}logs/{name}.error.log', '{chroot}', '{files}run/{name}.pid', '{host}', '127.0.0.1', {port});
         INSERT INTO host (id, server_id, name, matching) VALUES ({id}, {id}, '{host}', '{host}');
         INSERT INTO route (path, host_id, target_id, target_type) VALUES ('/', {id}, 1, 'dir');"
    )
}

/// Applies SQL to the database as `kennel load` does.
fn load(db: &Path, sql: &str) {
    kennel::config::apply_sql(db, sql).unwrap();
}

/// `kennel COMMAND --db DB` as a child that prints nothing (with
/// `NOTIFY_SOCKET` when given), and the guard that kills it.
fn spawn(command: &str, db: &Path, notify_socket: Option<&Path>) -> (Child, Daemons) {
    let mut kennel = kennel();
    kennel
        .args([command, "--db"])
        .arg(db)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(path) = notify_socket {
        kennel.env("NOTIFY_SOCKET", path);
    }
    let child = kennel.spawn().unwrap();
    let daemons = Daemons(vec![child.id() as i32]);
    (child, daemons)
}

/// What a command did.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Ran {
    fn from(out: Output) -> Ran {
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Ran {
    fn ok(self) -> String {
        assert_eq!(self.code, Some(0), "{self:?}");
        self.stdout
    }

    fn fails(self, code: i32) -> String {
        assert_eq!(self.code, Some(code), "{self:?}");
        self.stderr
    }
}

/// Daemons by pid, killed when the test ends (also on a panic).
#[derive(Default)]
struct Daemons(Vec<i32>);

impl Daemons {
    /// The pid in `kennel start`'s (or `running`'s) line `kennel at PID N running`.
    fn adopt(&mut self, line: &str) -> i32 {
        let pid = line
            .split("kennel at PID ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|pid| pid.parse().ok())
            .unwrap_or_else(|| panic!("no pid in {line:?}"));
        self.0.push(pid);
        pid
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for &pid in &self.0 {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

fn wait_until(what: &str, mut holds: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !holds() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn pid_in(file: &Path) -> i32 {
    std::fs::read_to_string(file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A `/proc/PID/status` field, e.g. `Uid`.
fn proc_status(pid: i32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A process id that is certainly not running: a child that exited and
/// was reaped.
fn gone_pid() -> i32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id() as i32;
    child.wait().unwrap();
    pid
}

#[test]
fn start_running_reload_stop_a_daemon_as_m2sh_does() {
    let site = Site::new(false, &[]);
    let port = site.ports[0];
    let pid_file = site.pid_file("life");
    let mut daemons = Daemons::default();

    let err = site.kennel(&["running"]).fails(3);
    assert_eq!(
        err,
        format!(
            "kennel: kennel is not running because pid_file isn't there ({})\n",
            pid_file.display()
        )
    );

    // m2sh's spelling: one dash.
    let out = site.kennel(&["start", "-name", "life"]).ok();
    let pid = daemons.adopt(&out);
    assert_eq!(
        out,
        format!("kennel at PID {pid} running (serving on 127.0.0.1:{port}).\n")
    );
    // It serves when start returns: no waiting.
    assert!(get(port, "/").ends_with("hello from a file\n"));
    assert_eq!(pid_in(&pid_file), pid);
    // A daemon: not our child, and not the launcher's.
    assert_ne!(proc_status(pid, "PPid"), std::process::id().to_string());

    let out = site.kennel(&["running", "--server", "life"]).ok();
    assert_eq!(out, format!("kennel at PID {pid} running.\n"));
    // Mongrel2's own m2sh finds it the same way.
    let m2sh = Command::new(manual::find_program_of("m2sh", "mongrel2-core"))
        .args(["running", "-db"])
        .arg(&site.db)
        .args(["-name", "life"])
        .env("LOGNAME", "kennel-test")
        .current_dir(site.dir.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&m2sh.stdout),
        format!("mongrel2 at PID {pid} running.\n")
    );

    // A second start refuses, saying why, and leaves the first alone.
    let err = site.kennel(&["start", "--uuid", UUID_A]).fails(64);
    assert!(err.contains("is running; stop it first"), "{err}");
    assert!(err.contains("kennel: the server did not start: "), "{err}");

    // Reload: a route added by SQL is served after the SIGHUP.
    std::fs::create_dir_all(site.path("more")).unwrap();
    std::fs::write(site.path("more/index.html"), "more\n").unwrap();
    load(
        &site.db,
        &format!(
            "INSERT INTO directory (id, base, index_file, default_ctype) VALUES (2, '{}/', 'index.html', 'text/plain');
             INSERT INTO route (path, host_id, target_id, target_type) VALUES ('/more/', 1, 2, 'dir');",
            site.path("more").display()
        ),
    );
    let out = site.kennel(&["reload", "-host", "localhost"]).ok();
    assert_eq!(
        out,
        format!(
            "sent SIGHUP to kennel at PID {pid}: it reloads its config (its log says whether the \
             new one was taken).\n"
        )
    );
    wait_until("the reload", || {
        site.error_log("life").contains("reloaded the config")
    });
    assert!(get(port, "/more/").ends_with("more\n"));

    // Stop waits until the process is gone: pid file removed, port closed.
    let out = site.kennel(&["stop", "-uuid", UUID_A]).ok();
    assert_eq!(out, format!("kennel at PID {pid} stopped.\n"));
    assert!(!pid_file.exists());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the port is closed"
    );
    // Gone (a zombie at most, where the init process does not reap).
    assert!(!kennel::lifecycle::is_alive(pid));

    // Now nothing runs: 3 from each.
    for command in ["running", "stop", "reload"] {
        let err = site.kennel(&[command]).fails(3);
        assert!(
            err.contains("kennel is not running because pid_file isn't there"),
            "{err}"
        );
    }

    // -murder sends SIGTERM (Kennel drains on it too); --wait 0 returns at once.
    let pid = daemons.adopt(&site.kennel(&["start"]).ok());
    let out = site.kennel(&["stop", "-murder", "--wait", "0"]).ok();
    assert_eq!(out, format!("sent SIGTERM to kennel at PID {pid}.\n"));
    wait_until("the daemon to exit", || !pid_file.exists());
    let log = site.error_log("life");
    assert!(log.contains("shutting down: no new connections"), "{log}");
}

#[test]
fn stale_and_bad_pid_files_are_errors_and_never_signal_pid_0() {
    let site = Site::new(false, &[]);
    let pid_file = site.pid_file("life");
    std::fs::create_dir_all(pid_file.parent().unwrap()).unwrap();

    let gone = gone_pid();
    std::fs::write(&pid_file, format!("{gone}\n")).unwrap();
    let stale = format!(
        "kennel: kennel at PID {gone} is NOT running (stale pid file {})\n",
        pid_file.display()
    );
    assert_eq!(site.kennel(&["running"]).fails(1), stale);
    assert_eq!(site.kennel(&["stop"]).fails(1), stale);
    assert_eq!(site.kennel(&["reload"]).fails(1), stale);

    // m2sh reads "garbage" as pid 0 and its kill(0, SIGINT) interrupts its
    // own process group (this test's, here); Kennel refuses to signal it.
    for bad in ["garbage", "0", "-1"] {
        std::fs::write(&pid_file, bad).unwrap();
        for command in ["running", "stop", "reload"] {
            let err = site.kennel(&[command]).fails(1);
            assert_eq!(
                err,
                format!(
                    "kennel: {}: holds no process id ({bad:?})\n",
                    pid_file.display()
                )
            );
        }
    }

    // A start replaces a stale pid file.
    std::fs::write(&pid_file, format!("{gone}\n")).unwrap();
    let mut daemons = Daemons::default();
    let pid = daemons.adopt(&site.kennel(&["start"]).ok());
    assert_eq!(pid_in(&pid_file), pid);
    assert_eq!(
        site.kennel(&["stop"]).ok(),
        format!("kennel at PID {pid} stopped.\n")
    );
}

#[test]
fn every_means_every_server() {
    let site = Site::new(true, &[]);
    let mut daemons = Daemons::default();

    let out = site.kennel(&["start", "-every"]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let a = daemons.adopt(lines[0]);
    let b = daemons.adopt(lines[1]);
    assert_eq!(
        lines,
        [
            format!(
                "server life: kennel at PID {a} running (serving on 127.0.0.1:{}).",
                site.ports[0]
            ),
            format!(
                "server other: kennel at PID {b} running (serving on 127.0.0.1:{}).",
                site.ports[1]
            ),
        ]
    );
    assert!(get(site.ports[1], "/").ends_with("hello from a file\n"));
    assert_eq!(
        site.kennel(&["running", "--every"]).ok(),
        format!(
            "server life: kennel at PID {a} running.\nserver other: kennel at PID {b} running.\n"
        )
    );

    // Several servers and no choice: say how to choose.
    let err = site.kennel(&["running"]).fails(64);
    assert_eq!(
        err,
        "kennel: the config database has 2 servers; choose one with --name, --host, --uuid or \
         --server, or all with --every\n"
    );
    // Two choices: a usage error.
    let err = site
        .kennel(&["running", "--name", "life", "--host", "other.test"])
        .fails(2);
    assert!(err.contains("cannot be used with"), "{err}");
    // No such server.
    let err = site.kennel(&["stop", "--name", "nope"]).fails(64);
    assert_eq!(err, "kennel: no server has name \"nope\"\n");

    // One stopped: running --every answers for each and exits as the first failure.
    assert_eq!(
        site.kennel(&["stop", "--host", "other.test"]).ok(),
        format!("kennel at PID {b} stopped.\n")
    );
    let ran = site.kennel(&["running", "--every"]);
    assert_eq!(
        ran.stdout,
        format!("server life: kennel at PID {a} running.\n")
    );
    assert_eq!(
        ran.stderr,
        format!(
            "kennel: server other: kennel is not running because pid_file isn't there ({})\n\
             kennel: 1 of 2 servers failed (see above)\n",
            site.pid_file("other").display()
        )
    );
    assert_eq!(ran.code, Some(3));

    let ran = site.kennel(&["stop", "--every"]);
    assert_eq!(
        ran.stdout,
        format!("server life: kennel at PID {a} stopped.\n")
    );
    assert_eq!(ran.code, Some(3), "{ran:?}");
    assert!(!site.pid_file("life").exists());
}

#[test]
fn sudo_runs_it_through_the_command_given() {
    let site = Site::new(false, &[]);
    let mut daemons = Daemons::default();
    // `env` stands in for sudo here: m2sh's `-sudo CMD` runs `CMD mongrel2 ...`.
    let out = site.kennel(&["start", "--sudo", "env KENNEL_VIA=env"]).ok();
    assert_eq!(
        out,
        "started through env KENNEL_VIA=env; it daemonized (`kennel running` says whether it \
         serves)\n"
    );
    // Not waited for (sudo would drop NOTIFY_SOCKET): ask until it runs.
    let mut line = String::new();
    wait_until("the daemon", || {
        let ran = site.kennel(&["running"]);
        line = ran.stdout;
        ran.code == Some(0)
    });
    let pid = daemons.adopt(&line);
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(environ.split(|&b| b == 0).any(|v| v == b"KENNEL_VIA=env"));
    assert_eq!(
        site.kennel(&["stop"]).ok(),
        format!("kennel at PID {pid} stopped.\n")
    );
}

#[test]
fn start_says_why_a_daemon_did_not_start() {
    let site = Site::new(false, &[]);
    // A handler socket that cannot be bound fails after the fork, where
    // only the error log (and now the notify socket) hears of it.
    load(
        &site.db,
        "INSERT INTO handler (id, send_spec, send_ident, recv_spec, recv_ident) VALUES (7, 'bogus://x', 'a', 'tcp://127.0.0.1:1', '');
         INSERT INTO route (path, host_id, target_id, target_type) VALUES ('/h/', 1, 7, 'handler');",
    );
    let err = site.kennel(&["start"]).fails(64);
    assert_eq!(
        err,
        "kennel: the server did not start: handler 7: column send_spec: cannot bind \"bogus://x\": \
         Protocol not supported\n"
    );
    assert!(!site.pid_file("life").exists());
    let log = site.error_log("life");
    assert!(log.contains("handler 7: column send_spec"), "{log}");
}

#[test]
fn start_of_a_server_that_does_not_daemonize_runs_in_place() {
    let site = Site::new(false, &[("server.daemonize", "0")]);
    let port = site.ports[0];
    let (mut child, mut daemons) = spawn("start", &site.db, None);
    wait_until("the port", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // `kennel start` became the server (exec), as `m2sh start` waits on it.
    assert_eq!(pid_in(&site.pid_file("life")), child.id() as i32);
    assert!(get(port, "/").ends_with("hello from a file\n"));
    assert_eq!(
        site.kennel(&["stop"]).ok(),
        format!("kennel at PID {} stopped.\n", child.id())
    );
    assert!(child.wait().unwrap().success());
    daemons.0.clear();

    // --every cannot run several in the foreground.
    let err = site.kennel(&["start", "--every"]).fails(64);
    assert!(err.contains("server.daemonize is 0"), "{err}");
}

/// The messages a server sends to `NOTIFY_SOCKET`, one datagram each.
struct NotifySocket {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        NotifySocket {
            socket,
            _dir: dir,
            path,
        }
    }

    /// The next message's `KEY=VALUE` lines.
    fn next(&self) -> Vec<(String, String)> {
        let mut buf = [0; 4096];
        let n = self
            .socket
            .recv(&mut buf)
            .expect("a notify message in time");
        String::from_utf8(buf[..n].to_vec())
            .unwrap()
            .lines()
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }
}

fn field<'a>(message: &'a [(String, String)], key: &str) -> Option<&'a str> {
    message
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn keys(message: &[(String, String)]) -> Vec<&str> {
    message.iter().map(|(k, _)| k.as_str()).collect()
}

#[test]
fn notify_socket_hears_ready_reloading_and_stopping_in_order() {
    let site = Site::new(false, &[]);
    let port = site.ports[0];
    let notify = NotifySocket::bind();
    let (mut child, mut daemons) = spawn("serve", &site.db, Some(&notify.path));
    let pid = Pid::from_raw(child.id() as i32);

    let ready = notify.next();
    assert_eq!(keys(&ready), ["READY", "STATUS"]);
    assert_eq!(
        field(&ready, "STATUS"),
        Some(&*format!("serving on 127.0.0.1:{port}"))
    );
    // Ready means accepting.
    assert!(get(port, "/").ends_with("hello from a file\n"));

    // A reload: RELOADING=1 with the monotonic time (Type=notify-reload
    // needs it to be no earlier than the signal), then READY=1.
    let before = match sd_notify::NotifyState::monotonic_usec_now().unwrap() {
        sd_notify::NotifyState::MonotonicUsec(usec) => usec,
        _ => unreachable!(),
    };
    kill(pid, Signal::SIGHUP).unwrap();
    let reloading = notify.next();
    assert_eq!(keys(&reloading), ["RELOADING", "MONOTONIC_USEC", "STATUS"]);
    let usec: i128 = field(&reloading, "MONOTONIC_USEC")
        .unwrap()
        .parse()
        .unwrap();
    assert!(usec >= before, "{usec} < {before}");
    let ready = notify.next();
    assert_eq!(keys(&ready), ["READY", "STATUS"]);
    assert_eq!(
        field(&ready, "STATUS"),
        Some(&*format!("serving on 127.0.0.1:{port}; config reloaded"))
    );

    // A refused reload still ends with READY=1: the old config serves on.
    load(
        &site.db,
        "INSERT INTO route (path, host_id, target_id, target_type) VALUES ('/bad/', 1, 1, 'hander');",
    );
    kill(pid, Signal::SIGHUP).unwrap();
    assert_eq!(field(&notify.next(), "RELOADING"), Some("1"));
    let ready = notify.next();
    assert_eq!(field(&ready, "READY"), Some("1"));
    let status = field(&ready, "STATUS").unwrap();
    assert!(
        status.starts_with(&format!(
            "serving on 127.0.0.1:{port} with the previous config; the reload was refused: route "
        )) && status.contains("column target_type: unknown target type \"hander\""),
        "{status}"
    );

    // SIGTERM: STOPPING=1 as the drain begins, counting what it waits for
    // (a kept-alive connection, here).
    let mut held = TcpStream::connect(("127.0.0.1", port)).unwrap();
    held.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    held.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = [0; 4096];
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).ends_with("hello from a file\n") {
        let n = held.read(&mut response).unwrap();
        assert!(n > 0, "closed early");
        seen.extend_from_slice(&response[..n]);
    }
    kill(pid, Signal::SIGTERM).unwrap();
    let stopping = notify.next();
    assert_eq!(keys(&stopping), ["STOPPING", "STATUS"]);
    assert_eq!(field(&stopping, "STATUS"), Some("draining 1 connection"));
    assert!(child.wait().unwrap().success());
    daemons.0.clear();
}

#[test]
fn as_root_it_chroots_and_runs_as_the_owner_of_the_chroot() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root (chroot and the privilege drop); CI runs as root");
        return;
    }
    let nobody = nix::unistd::Uid::from_raw(65534);
    let nogroup = nix::unistd::Gid::from_raw(65534);
    let top = tempfile::tempdir().unwrap();
    let jail = top.path().join("jail");
    std::fs::create_dir_all(jail.join("public")).unwrap();
    std::fs::write(jail.join("public/index.html"), "inside the chroot\n").unwrap();
    let port = free_port();
    let db = jail.join("config.sqlite");
    let chroot = jail.display().to_string();
    let sql =
        site_sql("public/") + &server_sql(1, "jailed", UUID_A, "localhost", port, &chroot, "/");
    load(&db, &sql);
    // The jail and all in it belong to nobody, who must read the database
    // (reloads) and write the logs and the pid file.
    for entry in [
        &jail,
        &jail.join("public"),
        &jail.join("public/index.html"),
        &db,
    ] {
        nix::unistd::chown(entry, Some(nobody), Some(nogroup)).unwrap();
    }

    let out = kennel().args(["start", "--db"]).arg(&db).output().unwrap();
    let mut daemons = Daemons::default();
    let pid = daemons.adopt(&Ran::from(out).ok());
    assert_eq!(proc_status(pid, "Uid"), "65534 65534 65534 65534");
    assert_eq!(proc_status(pid, "Gid"), "65534 65534 65534 65534");
    // Only the directory's group: root's supplementary groups are dropped.
    assert_eq!(proc_status(pid, "Groups"), "65534");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/root")).unwrap(),
        std::fs::canonicalize(&jail).unwrap()
    );
    assert!(get(port, "/").ends_with("inside the chroot\n"));

    // The pid file is inside the chroot, written by nobody.
    let pid_file = jail.join("run/jailed.pid");
    assert_eq!(pid_in(&pid_file), pid);
    let log = std::fs::read_to_string(jail.join("logs/jailed.error.log")).unwrap();
    assert!(
        log.contains(
            "chrooted; now running as the owner of the chroot directory uid=65534 gid=65534"
        ),
        "{log}"
    );

    // Reload reads the database from inside the chroot, as nobody.
    let out = kennel().args(["reload", "--db"]).arg(&db).output().unwrap();
    Ran::from(out).ok();
    wait_until("the reload", || {
        std::fs::read_to_string(jail.join("logs/jailed.error.log"))
            .unwrap()
            .contains("reloaded the config")
    });

    let out = kennel().args(["stop", "--db"]).arg(&db).output().unwrap();
    assert_eq!(
        Ran::from(out).ok(),
        format!("kennel at PID {pid} stopped.\n")
    );
    assert!(!pid_file.exists(), "nobody removed its pid file");
}

#[test]
fn the_example_unit_file_fits_kennel() {
    let unit = std::fs::read_to_string(manual::repo().join("docs/kennel.service")).unwrap();
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= in docs/kennel.service"))
            .trim()
            .to_owned()
    };
    assert_eq!(value("Type"), "notify");
    assert_eq!(value("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(value("RestartPreventExitStatus"), "64");
    assert!(value("LimitNOFILE").parse::<u64>().unwrap() >= 65536);
    // Longer than the drain (kennel.shutdown_grace_ms, 10 s by default).
    let stop: u64 = value("TimeoutStopSec")
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(stop * 1000 > kennel::config::Settings::default().kennel_shutdown_grace_ms);
    // In the foreground, so the main pid is the one that notifies.
    let start = value("ExecStart");
    assert!(
        start.ends_with("--foreground") || start.contains(" serve "),
        "{start}"
    );
    // The excerpt in docs/operating.md is the file's.
    let page = std::fs::read_to_string(manual::repo().join("docs/operating.md")).unwrap();
    let excerpt = manual::blocks_of("operating.md", &page)
        .into_iter()
        .find(|b| b.info == "ini")
        .expect("the unit in operating.md");
    for line in excerpt.text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            unit.lines().any(|l| l == line),
            "{line:?} is not in docs/kennel.service"
        );
    }
}

#[test]
fn cli_lifecycle_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::create_dir_all(dir.path().join("public")).unwrap();
    std::fs::write(dir.path().join("public/index.html"), "hello\n").unwrap();
    let sql = site_sql("public/") + &server_sql(1, "main", UUID_A, "localhost", port, "", "");
    load(&dir.path().join("config.sqlite"), &sql);
    let mut daemons = Daemons::default();
    let steps = manual::run_transcript(&manual::block("cli/lifecycle").text, dir.path());
    let pid = daemons.adopt(&steps[0].actual);
    for step in &steps {
        let actual = step
            .actual
            .replace(&format!("PID {pid}"), "PID 7091")
            .replace(&format!(":{port}"), ":6767");
        assert_eq!(actual, step.expected, "$ {}", step.command);
    }
}

#[test]
fn m2sh_single_dash_options_become_long_options() {
    let rewrite = |args: &[&str]| -> Vec<String> {
        kennel::cli::m2sh_style_args(args.iter().map(|a| a.into()))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    };
    assert_eq!(
        rewrite(&["kennel", "stop", "-db", "c.sqlite", "-name", "main", "-murder"]),
        ["kennel", "stop", "--db", "c.sqlite", "--name", "main", "--murder"]
    );
    assert_eq!(
        rewrite(&["kennel", "start", "-every", "-sudo=sudo -n", "--uuid", "u"]),
        [
            "kennel",
            "start",
            "--every",
            "--sudo=sudo -n",
            "--uuid",
            "u"
        ]
    );
    // Other commands' long options too (m2sh's `hosts -db F -server S`).
    assert_eq!(
        rewrite(&["kennel", "hosts", "-db", "c.sqlite", "-server", "main"]),
        ["kennel", "hosts", "--db", "c.sqlite", "--server", "main"]
    );
    // Left alone: short options, unknown words, values after `--`, the
    // subcommand itself, and Mongrel2's `kennel DB UUID` form.
    for args in [
        &["kennel", "running", "-h"][..],
        &["kennel", "running", "-nope"],
        &["kennel", "route", "--db", "c", "--host", "h", "--", "-db"],
        &["kennel", "-start"],
        &["kennel", "config.sqlite", "-name"],
    ] {
        assert_eq!(rewrite(args), args);
    }
}
