//! `tls-connect` against a real Kennel serving TLS, with a CA and a
//! certificate made in the test.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{lines, run_tool, TestServer};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

const BIN: &str = env!("CARGO_BIN_EXE_tls-connect");

/// A CA and a server certificate for localhost (ECDSA P-256), as files:
/// `ca.crt`, and the server's as `test-server.crt`/`.key` (the test
/// server's uuid) in the certdir.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        std::fs::write(dir.path().join("test-server.crt"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("test-server.key"), key.serialize_pem()).unwrap();
        Pki { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The SQL that turns the test server's TLS on with this certdir.
    fn sql(&self) -> String {
        format!(
            "UPDATE server SET use_ssl = 1;
             INSERT INTO setting (key, value) VALUES ('certdir', '{}/');",
            self.dir.path().display()
        )
    }
}

/// The `key value` lines of a run, by key.
fn values(out: &[String]) -> BTreeMap<String, String> {
    out.iter()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn number(values: &BTreeMap<String, String>, key: &str) -> f64 {
    values
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {values:?}"))
        .parse()
        .unwrap()
}

fn run(server: &TestServer, trust: (&str, &Path), more: &[&str]) -> BTreeMap<String, String> {
    let addr = server.addr.to_string();
    let mut args = vec!["--addr", &addr, trust.0, trust.1.to_str().unwrap()];
    args.extend_from_slice(&[
        "--path",
        "/static/hello.txt",
        "--conns",
        "4",
        "--secs",
        "0.5",
    ]);
    args.extend_from_slice(more);
    let out = run_tool(BIN, &args);
    let printed = lines(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?}: {printed:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    values(&printed)
}

#[test]
fn full_handshakes_by_default_and_resumed_ones_with_resume() {
    let pki = Pki::new();
    let server = TestServer::start(&pki.sql());
    let pin = pki.file("test-server.crt");

    let full = run(&server, ("--pin", &pin), &[]);
    assert!(number(&full, "connections") >= 4.0, "{full:?}");
    assert_eq!(number(&full, "resumed"), 0.0, "{full:?}");
    assert_eq!(number(&full, "failed"), 0.0, "{full:?}");
    assert_eq!(full["protocol"], "TLSv1_3");
    assert!(number(&full, "connections_per_sec") > 0.0);
    assert!(number(&full, "client_cpu_pct") > 0.0);

    // Each of the 4 loops resumes from its own cache after its first
    // connection.
    let resumed = run(&server, ("--pin", &pin), &["--resume"]);
    let connections = number(&resumed, "connections");
    assert!(connections >= 8.0, "{resumed:?}");
    assert_eq!(
        number(&resumed, "resumed"),
        connections - 4.0,
        "{resumed:?}"
    );

    // TLS 1.2 resumes too (a session id or ticket), and the full check of
    // the chain and the name against the CA passes.
    let tls12 = run(
        &server,
        ("--ca", &pki.file("ca.crt")),
        &["--resume", "--tls12"],
    );
    assert_eq!(tls12["protocol"], "TLSv1_2");
    assert_eq!(number(&tls12, "failed"), 0.0, "{tls12:?}");
    assert!(number(&tls12, "resumed") >= 1.0, "{tls12:?}");
    server.stop();
}

#[test]
fn another_certificate_fails_every_connection() {
    let pki = Pki::new();
    let server = TestServer::start(&pki.sql());
    let other = Pki::new();
    let addr = server.addr.to_string();
    for trust in [
        ["--pin", other.file("test-server.crt").to_str().unwrap()],
        ["--ca", other.file("ca.crt").to_str().unwrap()],
    ] {
        let out = run_tool(
            BIN,
            &[
                &["--addr", &addr, "--secs", "0.2", "--conns", "1"],
                &trust[..],
            ]
            .concat(),
        );
        assert_eq!(out.status.code(), Some(1), "{trust:?}");
        let v = values(&lines(&out.stdout));
        assert_eq!(number(&v, "connections"), 0.0);
        assert!(number(&v, "failed") >= 1.0);
        assert!(v["first_error"].contains("certificate"), "{v:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no connection completed"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    server.stop();
}
