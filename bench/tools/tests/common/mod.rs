//! A real Kennel for the tools' tests, trimmed from the server's own test
//! harness (`server/tests/common/mod.rs`): a config database in a temp dir,
//! `kennel::server::run` on `127.0.0.1:0` in its own runtime thread with a
//! shutdown the test controls, handler sockets on `ipc://` paths in the same
//! temp dir, and the tool binaries run as child processes.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use kennel::config::{self, ServerSelector};
use tokio_util::sync::CancellationToken;

pub const SENDER: &str = "b7b8c2e0-6a6f-4f3e-9a51-0c1d2e3f4a5b";

pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub send_spec: String,
    pub recv_spec: String,
    shutdown: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// A server with `/static/` (a Dir holding `hello.txt`) and
    /// `/bench/listen` (a handler); `extra_sql` runs after the base config.
    pub fn start(extra_sql: &str) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("public")).unwrap();
        std::fs::write(root.join("public/hello.txt"), "hello, file\n").unwrap();
        let send_spec = format!("ipc://{}/send.sock", root.display());
        let recv_spec = format!("ipc://{}/recv.sock", root.display());
        let sql = format!(
            "INSERT INTO server (id, uuid, name, access_log, error_log, chroot, pid_file, default_host, bind_addr, port)
               VALUES (1, 'test-server', 'test', '{root}/access.log', '{root}/error.log', '', '', 'localhost', '127.0.0.1', 0);
             INSERT INTO host (id, server_id, name, matching) VALUES (1, 1, 'localhost', 'localhost');
             INSERT INTO handler (id, send_spec, send_ident, recv_spec, recv_ident)
               VALUES (1, '{send_spec}', '{SENDER}', '{recv_spec}', '');
             INSERT INTO directory (id, base, index_file, default_ctype) VALUES (1, '{root}/public/', 'index.html', 'text/plain');
             INSERT INTO route (path, host_id, target_id, target_type) VALUES
               ('/bench/listen', 1, 1, 'handler'),
               ('/static/', 1, 1, 'dir');
             INSERT INTO setting (key, value) VALUES ('kennel.shutdown_grace_ms', '100');
             {extra_sql}",
            root = root.display(),
        );
        let db = root.join("config.sqlite");
        config::apply_sql(&db, &sql).unwrap();
        let snapshot = Arc::new(config::load(&db, &ServerSelector::Any).unwrap());

        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                kennel::server::run(snapshot, listener, token)
                    .await
                    .unwrap();
            });
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server started");
        TestServer {
            addr,
            dir,
            send_spec,
            recv_spec,
            shutdown,
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Runs a tool binary to the end and returns what it printed.
pub fn run_tool(binary: &str, args: &[&str]) -> Output {
    Command::new(binary).args(args).output().unwrap()
}

/// The lines of a tool's standard output.
pub fn lines(output: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(output)
        .lines()
        .map(str::to_owned)
        .collect()
}
