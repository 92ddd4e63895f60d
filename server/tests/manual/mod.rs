//! The code blocks of the user's manual, `docs/*.md`, for the tests that
//! check them: finding a block by its marker, and running what a block
//! needs (the real `kennel` binary, `python3` with pyzmq, a shell
//! transcript).
//!
//! Every fenced block in `docs/*.md` sits right under one marker line:
//!
//! - `<!-- test: PAGE/NAME -->`: a test runs or checks the block; [`TESTED`]
//!   lists every such name with the test that does it;
//! - `<!-- not-run: REASON -->`: the block cannot be run by a test, and
//!   the reason says why.
//!
//! `docs_snippets.rs` enforces that (`every_block_is_tested_or_says_why_not`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// Every `test:` marker of the manual and the test that checks its block
/// (in `server/tests/docs_snippets.rs` unless it says otherwise).
pub const TESTED: &[(&str, &str)] = &[
    ("cli/check-error", "cli_check_error"),
    ("cli/examples", "cli_examples"),
    (
        "cli/lifecycle",
        "lifecycle_cli.rs: cli_lifecycle_transcript",
    ),
    ("cli/site-conf", "cli_load_conf, cli_load_conf_errors"),
    ("cli/load-conf", "cli_load_conf"),
    ("cli/load-conf-output", "cli_load_conf"),
    ("cli/load-conf-errors", "cli_load_conf_errors"),
    ("configuration/sqlite3", "configuration_sqlite3"),
    (
        "configuration/first-site",
        "config_docs.rs: first_site_from_the_docs",
    ),
    ("getting-started/local-sql", "getting_started_local_sql"),
    ("getting-started/route", "getting_started_route"),
    ("getting-started/route-output", "getting_started_route"),
    ("handlers/request-json", "handlers_request_json"),
    ("handlers/request-tnetstring", "handlers_request_tnetstring"),
    (
        "handlers/notices",
        "handlers_request_json, handlers_request_tnetstring",
    ),
    ("handlers/replies", "handlers_replies"),
    (
        "handlers/rust-handler",
        "the doc-tests of kennel-handler (compiled: it serves forever)",
    ),
    (
        "handlers/rust-request-head",
        "the doc-tests of kennel-handler",
    ),
    ("handlers/python-handler", "handlers_python_handler"),
    ("handlers/python-xpub", "handlers_python_xpub"),
    ("operating/serve", "operating_serve"),
    ("operating/shutdown-log", "operating_serve"),
    ("operating/listen-error", "operating_listen_error"),
    ("operating/access-log-line", "operating_m2sh_access"),
    ("operating/m2sh-access", "operating_m2sh_access"),
    ("operating/no-handler-503", "operating_no_handler_503"),
    ("proxy/route", "proxy_route"),
    ("uploads/credits-reply", "uploads_extended_replies"),
    ("uploads/credits-notice", "uploads_credits_notice"),
    ("uploads/sendfile-reply", "uploads_extended_replies"),
    (
        "websockets/handshake-request",
        "websockets_handshake_request",
    ),
    ("websockets/python-echo", "websockets_python_echo"),
];

/// The marker above a block.
#[derive(Debug, Clone, PartialEq)]
pub enum Marker {
    Test(String),
    NotRun(String),
    Missing,
}

/// One fenced code block of a page.
#[derive(Debug, Clone)]
pub struct Block {
    /// The page, such as `handlers.md`.
    pub page: String,
    /// The line of the opening fence, from 1.
    pub line: usize,
    /// The fence's info string (`sql`, `python`, `text`, …), maybe empty.
    pub info: String,
    pub marker: Marker,
    /// The lines between the fences, with the fence's indentation removed,
    /// each ending in `\n`.
    pub text: String,
}

impl Block {
    pub fn place(&self) -> String {
        format!("docs/{}:{}", self.page, self.line)
    }
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The blocks of every page of `docs/`, in page order.
pub fn blocks() -> Vec<Block> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    pages
        .iter()
        .flat_map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            blocks_of(&name, &std::fs::read_to_string(path).unwrap())
        })
        .collect()
}

/// The fenced blocks of one page's text.
pub fn blocks_of(page: &str, text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = lines[i].trim_start().strip_prefix("```") else {
            i += 1;
            continue;
        };
        let indent = lines[i].len() - lines[i].trim_start().len();
        let marker = i
            .checked_sub(1)
            .map_or(Marker::Missing, |above| marker(lines[above]));
        let start = i;
        let mut body = String::new();
        i += 1;
        while i < lines.len() && lines[i].trim() != "```" {
            let line = lines[i];
            body.push_str(line.get(indent.min(leading_spaces(line))..).unwrap_or(""));
            body.push('\n');
            i += 1;
        }
        assert!(i < lines.len(), "docs/{page}:{}: unclosed block", start + 1);
        found.push(Block {
            page: page.to_owned(),
            line: start + 1,
            info: info.trim().to_owned(),
            marker,
            text: body,
        });
        i += 1;
    }
    found
}

fn leading_spaces(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn marker(line: &str) -> Marker {
    let Some(inner) = line
        .trim()
        .strip_prefix("<!--")
        .and_then(|l| l.strip_suffix("-->"))
    else {
        return Marker::Missing;
    };
    let inner = inner.trim();
    if let Some(id) = inner.strip_prefix("test:") {
        Marker::Test(id.trim().to_owned())
    } else if let Some(reason) = inner.strip_prefix("not-run:") {
        Marker::NotRun(reason.trim().to_owned())
    } else {
        Marker::Missing
    }
}

/// The one block marked `<!-- test: ID -->`.
pub fn block(id: &str) -> Block {
    let mut marked: Vec<Block> = blocks()
        .into_iter()
        .filter(|b| b.marker == Marker::Test(id.to_owned()))
        .collect();
    assert_eq!(marked.len(), 1, "blocks marked `test: {id}`: {marked:?}");
    marked.pop().unwrap()
}

/// The block's text with `\r`, `\n` and `\\` written out in it (as the
/// manual writes wire bytes) turned into those bytes.
pub fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b'\\') => out.push(b'\\'),
            Some(other) => out.extend_from_slice(&[b'\\', other]),
            None => out.push(b'\\'),
        }
    }
    out
}

/// The `kennel` binary of this build.
pub fn kennel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kennel"))
}

/// A `PATH` with the directory of this build's `kennel` first.
pub fn path_with_kennel() -> std::ffi::OsString {
    let bin = Path::new(env!("CARGO_BIN_EXE_kennel")).parent().unwrap();
    let mut dirs = vec![bin.to_owned()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

#[path = "../differential/databases.rs"]
mod databases;
/// Where a program is on `PATH`, or a failure naming its Debian package.
pub use databases::find_program_of;

/// Fails the test, saying what to install, unless `python3` can import
/// pyzmq.
pub fn require_pyzmq() {
    find_program_of("python3", "python3");
    let imported = Command::new("python3")
        .args(["-c", "import zmq"])
        .output()
        .map(|out| out.status.success());
    assert!(
        matches!(imported, Ok(true)),
        "`python3 -c 'import zmq'` failed ({imported:?}): these tests need python3 with pyzmq; \
         install the Debian package python3-zmq or run `python3 -m pip install pyzmq` \
         (`bash tests/setup.sh` installs it)"
    );
}

/// A Python program from the manual, running; killed when dropped.
pub struct Python {
    child: Child,
}

impl Python {
    /// Runs `code` with `python3 -u`, its standard error inherited (so a
    /// traceback shows in the test's output).
    pub fn start(code: &str) -> Python {
        Python::run(["-u", "-c", code])
    }

    /// Runs `python3` with these arguments (a program file and its own).
    pub fn run<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Python {
        require_pyzmq();
        let child = Command::new("python3")
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("python3 starts");
        Python { child }
    }

    /// Panics if the program has exited (a traceback is above).
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the Python snippet exited with {status}");
        }
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `code` with the handler endpoints the manual uses,
/// `tcp://127.0.0.1:9995` (requests) and `tcp://127.0.0.1:9994` (replies),
/// replaced by a test server's.
pub fn with_endpoints(code: &str, send_spec: &str, recv_spec: &str) -> String {
    for spec in ["tcp://127.0.0.1:9995", "tcp://127.0.0.1:9994"] {
        assert!(code.contains(spec), "the snippet no longer uses {spec}");
    }
    code.replace("tcp://127.0.0.1:9995", send_spec)
        .replace("tcp://127.0.0.1:9994", recv_spec)
}

/// One command of a shell transcript (`$ command`, then its output).
#[derive(Debug)]
pub struct Step {
    pub command: String,
    pub expected: String,
    pub actual: String,
}

/// Runs the `$ ` lines of a transcript one after the other in one `bash`,
/// in `dir`, with this build's `kennel` first on `PATH`, and returns what
/// each printed (standard output and error together) beside what the
/// transcript shows. `$?` works as in a terminal.
pub fn run_transcript(text: &str, dir: &Path) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for line in text.lines() {
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                command: command.to_owned(),
                expected: String::new(),
                actual: String::new(),
            });
        } else {
            let step = steps.last_mut().expect("a transcript starts with `$ `");
            step.expected.push_str(line);
            step.expected.push('\n');
        }
    }
    const MARK: &str = "@@@ step @@@";
    let mut script = String::from("status=0\n");
    for step in &steps {
        script.push_str(&format!(
            "echo '{MARK}'\n(exit $status)\n{{ {}\n}} 2>&1\nstatus=$?\n",
            step.command
        ));
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir)
        .env("PATH", path_with_kennel())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    let outputs: Vec<&str> = all.split(&format!("{MARK}\n")).skip(1).collect();
    assert_eq!(outputs.len(), steps.len(), "transcript output: {all}");
    for (step, output) in steps.iter_mut().zip(outputs) {
        step.actual = output.to_owned();
    }
    steps
}

/// Runs a `sh` block as one `bash -eu` script in `dir`, with this build's
/// `kennel` first on `PATH`; panics, with its output, unless it succeeds.
/// Returns its standard output.
pub fn run_script(text: &str, dir: &Path) -> String {
    let out = Command::new("bash")
        .args(["-eu", "-c", text])
        .current_dir(dir)
        .env("PATH", path_with_kennel())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the script failed ({}):\n{text}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads lines from a child's standard output until one contains `what`
/// (for up to 20 s), and returns every line read.
pub fn read_until(stdout: &mut BufReader<ChildStdout>, what: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "no line with {what:?}: {lines:?}"
        );
        let mut line = String::new();
        let n = stdout.read_line(&mut line).unwrap();
        assert!(n > 0, "output ended before a line with {what:?}: {lines:?}");
        let done = line.contains(what);
        lines.push(line.trim_end().to_owned());
        if done {
            return lines;
        }
    }
}

/// Writes `contents` to `dir/name`, creating directories.
pub fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::File::create(&path)
        .unwrap()
        .write_all(contents.as_ref())
        .unwrap();
    path
}
