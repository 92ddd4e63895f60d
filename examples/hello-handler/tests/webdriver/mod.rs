//! A real browser for tests: headless Chromium driven through
//! chromedriver's W3C WebDriver HTTP API, with `reqwest` (blocking) and
//! `serde_json` — no WebDriver crate.
//!
//! Owns [`Driver`] (the chromedriver process on a free port, and a fresh
//! empty Chromium profile in a temp dir) and [`Session`] (one browser:
//! navigate, tabs, elements, scripts, waiting). The session is deleted when
//! it drops, which ends the Chromium that chromedriver started; the
//! chromedriver process is then killed by its PID. Without `chromium` or
//! `chromedriver` on `PATH` a test fails, naming the Debian packages and
//! `tests/setup.sh`.

#![allow(dead_code)] // each test file uses its own part of it

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long chromedriver may take to answer `/status` as ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest any one WebDriver command may take (starting Chromium is
/// the slowest, a few seconds on a busy machine).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The key under which WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium's flags: headless, as root (no sandbox), and quiet — no GPU,
/// no QUIC, no first-run, sync, update or other background traffic.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1000,800",
];

/// Where program `name` is on `PATH`; a panic naming what to install.
fn find(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on PATH: this test drives a real browser; install the Debian \
                 packages chromium and chromium-driver (`bash tests/setup.sh` installs \
                 everything the tests need)"
            )
        })
}

/// A running chromedriver.
pub struct Driver {
    child: Child,
    base: String,
    http: reqwest::blocking::Client,
    chromium: PathBuf,
    profiles: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver on a free loopback port and waits until it is
    /// ready.
    pub fn start() -> Driver {
        let chromium = find("chromium");
        let chromedriver = find("chromedriver");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        // reqwest's TLS has no built-in crypto provider in this workspace.
        kennel::tls::install_default_provider();
        let http = reqwest::blocking::Client::builder()
            .timeout(COMMAND_TIMEOUT)
            .build()
            .expect("an HTTP client");
        let mut driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http,
            chromium,
            profiles: tempfile::tempdir().expect("temp dir"),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ready = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .ok()
                .and_then(|r| r.bytes().ok())
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                return driver;
            }
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited with {status} before it was ready");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver was not ready within {START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A new browser with a fresh, empty profile.
    pub fn session(&self) -> Session<'_> {
        let profile = tempfile::tempdir_in(self.profiles.path()).expect("profile dir");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": self.chromium,
                        "args": args,
                    },
                },
            },
        });
        let value = self.command("POST", "/session", Some(capabilities));
        let id = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {value}"))
            .to_owned();
        Session {
            driver: self,
            id,
            _profile: profile,
        }
    }

    /// Sends one WebDriver command; its `value`, or a panic with the
    /// error WebDriver reported.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url),
        };
        let request = match body {
            Some(body) => request
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&body).unwrap()),
            None => request,
        };
        let response = request
            .send()
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = response.status();
        let bytes = response.bytes().expect("a WebDriver response body");
        let mut value: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "WebDriver {method} {path}: {e}: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert!(
            status.is_success(),
            "WebDriver {method} {path}: {status}: {}",
            value["value"]
        );
        value["value"].take()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser (a WebDriver session), deleted when dropped.
pub struct Session<'d> {
    driver: &'d Driver,
    id: String,
    _profile: tempfile::TempDir,
}

/// An element reference.
pub struct Element(String);

impl Session<'_> {
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.id);
        self.driver.command(method, &path, body)
    }

    /// Loads `url` in the current tab and waits for the page's load event.
    pub fn navigate(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    /// The current tab's handle.
    pub fn window(&self) -> String {
        let value = self.command("GET", "/window", None);
        value.as_str().expect("a window handle").to_owned()
    }

    /// Opens a new tab (without switching to it) and returns its handle.
    pub fn new_tab(&self) -> String {
        let value = self.command("POST", "/window/new", Some(json!({ "type": "tab" })));
        value["handle"].as_str().expect("a tab handle").to_owned()
    }

    /// Makes `handle` the current tab.
    pub fn switch_to(&self, handle: &str) {
        self.command("POST", "/window", Some(json!({ "handle": handle })));
    }

    /// Closes the current tab; switch to another before the next command.
    pub fn close_tab(&self) {
        self.command("DELETE", "/window", None);
    }

    /// The first element matching the CSS `selector`.
    pub fn find(&self, selector: &str) -> Element {
        let value = self.command(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": selector })),
        );
        let id = value[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element for {selector}: {value}"));
        Element(id.to_owned())
    }

    /// Types `text` into `element`, as a user would.
    pub fn type_into(&self, element: &Element, text: &str) {
        let path = format!("/element/{}/value", element.0);
        self.command("POST", &path, Some(json!({ "text": text })));
    }

    /// Clicks `element`.
    pub fn click(&self, element: &Element) {
        let path = format!("/element/{}/click", element.0);
        self.command("POST", &path, Some(json!({})));
    }

    /// Runs `script` (a function body) in the current tab; what it returns.
    pub fn script(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Runs `script` until `done` accepts what it returns, up to
    /// `timeout`; the last value. A panic naming `what` and showing the
    /// last value otherwise.
    pub fn wait_for(
        &self,
        what: &str,
        script: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.script(script);
            if done(&value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}; last seen: {value}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let path = format!("{}/session/{}", self.driver.base, self.id);
        let _ = self.driver.http.delete(path).send();
    }
}
