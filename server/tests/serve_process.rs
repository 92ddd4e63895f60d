//! The real `kennel` binary as a process: `kennel serve`, Mongrel2's form
//! `kennel CONFIG.sqlite SERVER_UUID` with and without daemonizing, the pid
//! file, signals, and start-up errors.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const UUID: &str = "4f1c2d3e-5a6b-4c7d-8e9f-0a1b2c3d4e5f";

fn kennel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kennel"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A config database for one server on a free port, serving a Dir.
fn site(dir: &Path, daemonize: bool) -> (PathBuf, u16) {
    let port = free_port();
    std::fs::create_dir_all(dir.join("public")).unwrap();
    std::fs::write(dir.join("public/index.html"), "hello from a file\n").unwrap();
    let sql = format!(
        "INSERT INTO server (id, uuid, name, access_log, error_log, chroot, pid_file, default_host, bind_addr, port)
           VALUES (1, '{UUID}', 'proc', '{d}/logs/access.log', '{d}/logs/error.log', '', '{d}/run/kennel.pid', 'localhost', '127.0.0.1', {port});
         INSERT INTO host (id, server_id, name, matching) VALUES (1, 1, 'localhost', 'localhost');
         INSERT INTO directory (id, base, index_file, default_ctype) VALUES (1, '{d}/public/', 'index.html', 'text/plain');
         INSERT INTO route (path, host_id, target_id, target_type) VALUES ('/', 1, 1, 'dir');
         INSERT INTO setting (key, value) VALUES ('server.daemonize', '{daemon}'), ('kennel.shutdown_grace_ms', '200');",
        d = dir.display(),
        daemon = u8::from(daemonize),
    );
    let sql_file = dir.join("site.sql");
    std::fs::write(&sql_file, sql).unwrap();
    let db = dir.join("config.sqlite");
    let out = kennel()
        .args(["load", "--db"])
        .arg(&db)
        .arg(&sql_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (db, port)
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn get(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "kennel did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_runs_in_the_foreground_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // daemonize = 1 must not matter to `kennel serve`.
    let (db, port) = site(dir.path(), true);
    let child = kennel()
        .args(["serve", "--db"])
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Guard(child);
    wait_until("the port", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let response = get(port);
    assert!(
        response.starts_with("HTTP/1.0 200 OK\r\n") || response.starts_with("HTTP/1.1 200 OK\r\n"),
        "{response}"
    );
    assert!(response.ends_with("hello from a file\n"));
    let pid_file = dir.path().join("run/kennel.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, child.0.id() as i32);

    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    let status = wait_exit(&mut child.0);
    assert!(status.success(), "{status:?}");
    assert!(!pid_file.exists(), "the pid file is removed on exit");
    // The access log has the request, in Mongrel2's tnetstring format.
    let log = std::fs::read_to_string(dir.path().join("logs/access.log")).unwrap();
    assert!(log.contains("3:GET,1:/,8:HTTP/1.0,3:200#"), "{log}");
}

#[test]
fn mongrel2_form_daemonizes_and_writes_the_pid_file() {
    let dir = tempfile::tempdir().unwrap();
    let (db, port) = site(dir.path(), true);
    let status = kennel().arg(&db).arg(UUID).status().unwrap();
    assert!(status.success(), "the launching process exits at once");
    let pid_file = dir.path().join("run/kennel.pid");
    wait_until("the pid file", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|t| t.ends_with('\n'))
    });
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid = Pid::from_raw(pid);
    struct Daemon(Pid);
    impl Drop for Daemon {
        fn drop(&mut self) {
            let _ = kill(self.0, Signal::SIGKILL);
        }
    }
    let daemon = Daemon(pid);
    wait_until("the port", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(get(port).ends_with("hello from a file\n"));

    // A second server with the same pid file refuses to start.
    let out = kennel()
        .arg(&db)
        .arg(UUID)
        .arg("--foreground")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server 1: column pid_file: ") && err.contains("is running; stop it first"),
        "{err}"
    );

    kill(daemon.0, Signal::SIGTERM).unwrap();
    wait_until("the pid file to go", || !pid_file.exists());
    // Logs went to error_log, since there is no terminal.
    let log = std::fs::read_to_string(dir.path().join("logs/error.log")).unwrap();
    assert!(log.contains("listening"), "{log}");
}

#[test]
fn mongrel2_form_with_foreground_stays_attached() {
    let dir = tempfile::tempdir().unwrap();
    let (db, port) = site(dir.path(), true);
    let child = kennel()
        .arg(&db)
        .arg("proc") // a name works where a uuid is expected
        .arg("--foreground")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Guard(child);
    wait_until("the port", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(get(port).ends_with("hello from a file\n"));
    kill(Pid::from_raw(child.0.id() as i32), Signal::SIGINT).unwrap();
    assert!(wait_exit(&mut child.0).success());
}

#[test]
fn start_up_errors_are_precise_and_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let (db, port) = site(dir.path(), false);
    // The port is taken.
    let _holder = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let out = kennel().args(["serve", "--db"]).arg(&db).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server 1: columns bind_addr/port: cannot listen on 127.0.0.1:"),
        "{err}"
    );

    // No such server.
    let out = kennel().arg(&db).arg("no-such-uuid").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-uuid"));

    // A handler endpoint that cannot be bound names the handler row.
    let bad = dir.path().join("bad.sql");
    std::fs::write(
        &bad,
        "INSERT INTO handler (id, send_spec, send_ident, recv_spec, recv_ident) VALUES (7, 'bogus://x', 'a', 'tcp://127.0.0.1:1', '');
         INSERT INTO route (path, host_id, target_id, target_type) VALUES ('/h/', 1, 7, 'handler');
         UPDATE server SET port = 0;",
    )
    .unwrap();
    assert!(kennel()
        .args(["load", "--db"])
        .arg(&db)
        .arg(&bad)
        .output()
        .unwrap()
        .status
        .success());
    let out = kennel().args(["serve", "--db"]).arg(&db).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("handler 7: column send_spec: cannot bind \"bogus://x\""),
        "{err}"
    );

    // An ipc endpoint under a regular file: libzmq's errno there made the
    // zmq crate panic; it is a config error naming the row.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    std::fs::write(
        &bad,
        format!(
            "UPDATE handler SET send_spec = 'ipc://{}/send' WHERE id = 7;",
            file.display()
        ),
    )
    .unwrap();
    assert!(kennel()
        .args(["load", "--db"])
        .arg(&db)
        .arg(&bad)
        .output()
        .unwrap()
        .status
        .success());
    let out = kennel().args(["serve", "--db"]).arg(&db).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains(&format!(
            "handler 7: column send_spec: cannot bind \"ipc://{f}/send\": {f} is not a directory",
            f = file.display()
        )),
        "{err}"
    );
}

#[test]
fn serves_on_ipv6() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = site(dir.path(), false);
    let port = {
        let Ok(probe) = TcpListener::bind("[::1]:0") else {
            eprintln!("SKIPPED: no IPv6 loopback on this machine");
            return;
        };
        probe.local_addr().unwrap().port()
    };
    let extra = dir.path().join("v6.sql");
    std::fs::write(
        &extra,
        format!("UPDATE server SET bind_addr = '::1', port = {port};"),
    )
    .unwrap();
    assert!(kennel()
        .args(["load", "--db"])
        .arg(&db)
        .arg(&extra)
        .output()
        .unwrap()
        .status
        .success());
    let child = kennel()
        .args(["serve", "--db"])
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Guard(child);
    wait_until("the port", || TcpStream::connect(("::1", port)).is_ok());
    let mut s = TcpStream::connect(("::1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.ends_with("hello from a file\n"), "{out}");
    kill(Pid::from_raw(child.0.id() as i32), Signal::SIGTERM).unwrap();
    assert!(wait_exit(&mut child.0).success());
}

#[test]
fn serve_raises_its_open_file_limit_to_the_hard_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (db, port) = site(dir.path(), false);
    let child = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -Sn 256 && exec {} serve --db {}",
            env!("CARGO_BIN_EXE_kennel"),
            db.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Guard(child);
    wait_until("the port", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.0.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        fields[3], fields[4],
        "soft limit raised to the hard limit: {line}"
    );
    assert_ne!(fields[3], "256", "{line}");
    kill(Pid::from_raw(child.0.id() as i32), Signal::SIGTERM).unwrap();
    assert!(wait_exit(&mut child.0).success());
}
