//! The control port under test: Kennel as a real process (`kennel serve`,
//! which starts the control port as production does; an in-process
//! `Background` server has none), a ZeroMQ REQ client with a deadline,
//! and runs of the two command-line clients, Mongrel2's `m2sh control`
//! and `kennel control`, with their input piped.
//!
//! Owns: [`KennelProcess`] (started in the site's directory, so its default
//! control port `ipc://run/control` is the same socket file as
//! Mongrel2's; killed by PID on drop, also on panic), [`Req`], [`request`],
//! [`m2sh_control`] and [`kennel_control`]. Does not own the verdicts: the
//! test files say what must be equal.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use kennel_handler::tnetstring::Value;

use super::databases::find_program;
use super::{tail, wait_accepting, Site, IO_TIMEOUT, START_TIMEOUT, STOP_TIMEOUT};

/// The control port both servers bind by default, seen from outside: the
/// site's `run/control` (`ipc://run/control` in the site's directory).
pub fn endpoint(site: &Site) -> String {
    format!("ipc://{}/run/control", site.root().display())
}

/// The `kennel` binary under test.
pub fn kennel_binary() -> &'static str {
    env!("CARGO_BIN_EXE_kennel")
}

/// `kennel serve --db DB` as a child process, killed on drop.
pub struct KennelProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl KennelProcess {
    /// Serves the site from its directory (so `ipc://run/control` is its
    /// `run/control`) and waits until the port accepts and the control
    /// port at `control` answers (`None`: do not wait for one).
    pub fn start(site: &Site, control: Option<&str>) -> KennelProcess {
        KennelProcess::start_in(&site.db, site.root(), site.port, control)
    }

    /// `kennel serve --db db` in `dir`, serving on `port`; waits as
    /// [`start`](Self::start).
    pub fn start_in(db: &Path, dir: &Path, port: u16, control: Option<&str>) -> KennelProcess {
        let log = dir.join(format!("kennel-{port}.out"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(kennel_binary())
            .args(["serve", "--db"])
            .arg(db)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn kennel");
        let mut kennel = KennelProcess {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        };
        let addr = kennel.addr;
        let log = kennel.log.clone();
        let child = kennel.child.as_mut().unwrap();
        let mut alive = || match child.try_wait() {
            Ok(Some(status)) => Err(format!("kennel exited with {status}:\n{}", tail(&log))),
            Ok(None) => Ok(()),
            Err(e) => Err(e.to_string()),
        };
        wait_accepting(addr, &mut alive);
        if let Some(endpoint) = control {
            wait_answering(endpoint, alive);
        }
        kennel
    }

    /// The process id.
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(i32::try_from(self.child.as_ref().unwrap().id()).unwrap())
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) for the process to exit by itself.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "kennel did not exit within {STOP_TIMEOUT:?}:\n{}",
                tail(&self.log)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) {
        let _ = nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGTERM);
        let status = self.wait_exit();
        assert!(status.success(), "kennel exited with {status}");
        self.child = None;
    }
}

impl Drop for KennelProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until the control port at `endpoint` answers `uuid`, or `alive`
/// says the server is gone, or [`START_TIMEOUT`] passes.
pub fn wait_answering(endpoint: &str, mut alive: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let mut req = Req::connect(endpoint);
        if req
            .try_ask(b"10:4:uuid,0:}]", Duration::from_millis(200))
            .is_some()
        {
            return;
        }
        if let Err(why) = alive() {
            panic!("no control port at {endpoint}: {why}");
        }
        assert!(
            Instant::now() < deadline,
            "no control port answered at {endpoint} within {START_TIMEOUT:?}"
        );
    }
}

/// A REQ socket on a control port.
pub struct Req {
    socket: zmq::Socket,
    endpoint: String,
    _context: zmq::Context,
}

impl Req {
    pub fn connect(endpoint: &str) -> Req {
        let context = zmq::Context::new();
        let socket = context.socket(zmq::REQ).unwrap();
        socket.set_linger(0).unwrap();
        socket.connect(endpoint).unwrap();
        Req {
            socket,
            endpoint: endpoint.to_owned(),
            _context: context,
        }
    }

    /// Sends `request`; the reply within `wait`, or `None` (the socket can
    /// then send no more).
    pub fn try_ask(&mut self, request: &[u8], wait: Duration) -> Option<Vec<u8>> {
        self.socket.send(request, 0).unwrap();
        let ms = i64::try_from(wait.as_millis()).unwrap();
        (self.socket.poll(zmq::POLLIN, ms).unwrap() > 0).then(|| self.socket.recv_bytes(0).unwrap())
    }

    /// Sends `request` and returns the reply; a panic after [`IO_TIMEOUT`].
    pub fn ask(&mut self, request: &[u8]) -> Vec<u8> {
        self.try_ask(request, IO_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "no reply from {} to {:?} within {IO_TIMEOUT:?}",
                self.endpoint,
                String::from_utf8_lossy(request)
            )
        })
    }

    /// [`ask`](Self::ask), as text.
    pub fn ask_text(&mut self, request: &[u8]) -> String {
        String::from_utf8(self.ask(request)).unwrap()
    }
}

/// An argument of a control request.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Int(i64),
    Str(&'a str),
}

/// The request `[command, {key: value ...}]`.
pub fn request(command: &str, args: &[(&str, Arg<'_>)]) -> Vec<u8> {
    Value::List(vec![
        Value::String(command.as_bytes()),
        Value::Dict(
            args.iter()
                .map(|(k, v)| {
                    let v = match *v {
                        Arg::Int(n) => Value::Integer(n),
                        Arg::Str(s) => Value::String(s.as_bytes()),
                    };
                    (k.as_bytes(), v)
                })
                .collect(),
        ),
    ])
    .to_vec()
}

/// The rows of a `status what=net` reply, each its eight integers.
pub fn net_rows(reply: &[u8]) -> Vec<[i64; 8]> {
    let value = kennel_handler::tnetstring::parse(reply).expect("a tnetstring reply");
    value
        .get("rows")
        .and_then(Value::as_list)
        .expect("a rows list")
        .iter()
        .map(|row| {
            let cells: Vec<i64> = row
                .as_list()
                .expect("a row list")
                .iter()
                .map(|c| c.as_int().expect("an integer cell"))
                .collect();
            cells.try_into().expect("eight columns")
        })
        .collect()
}

/// Runs `command` with `input` on its stdin and returns what it printed;
/// a panic if it runs longer than [`START_TIMEOUT`].
pub fn run_with_input(mut command: Command, input: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the client");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let deadline = Instant::now() + START_TIMEOUT;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if Instant::now() > deadline {
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        })
    };
    let output = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(
        !watchdog.join().unwrap(),
        "the client hung and was killed; it printed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `m2sh control` for the site's server with `input` piped in: m2sh
/// connects to `ipc://<chroot>/run/control`, so it gets a copy of the
/// database whose server row's chroot is the site's directory (the servers
/// themselves run with `chroot = ''` in that directory). `HOME` is the
/// site's directory, where m2sh keeps its history.
pub fn m2sh_control(site: &Site, input: &str) -> Output {
    let db = site.root().join("m2sh-control.sqlite");
    if !db.exists() {
        std::fs::copy(&site.db, &db).unwrap();
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute(
                "UPDATE server SET chroot = ?1",
                [site.root().display().to_string()],
            )
            .unwrap();
    }
    let mut command = Command::new(find_program("m2sh"));
    command
        .args(["control", "-db"])
        .arg(&db)
        .args(["-name", "diff"])
        .current_dir(site.root())
        .env("HOME", site.root());
    run_with_input(command, input)
}

/// `kennel control ARGS` in `dir` with `input` piped in.
pub fn kennel_control(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut command = Command::new(kennel_binary());
    command.arg("control").args(args).current_dir(dir);
    run_with_input(command, input)
}

/// Text, lossily.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
