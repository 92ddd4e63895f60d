//! TLS end to end: certificates made in the test (`rcgen`: a CA, server
//! certificates it signs), laid out in a `certdir` as Mongrel2 lays them
//! out, served by a real Kennel on `127.0.0.1:0` and fetched by clients
//! that check the chain: rustls (as `reqwest` and by hand, for SNI, client
//! certificates and resumption) and `curl --cacert`.
//!
//! Needs `curl` and `openssl` (Debian packages of the same names; the
//! latter converts keys to PKCS#1 and SEC1): a test whose program is
//! missing fails and says so.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{recv, Site, TestServer};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A test certificate authority.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Kennel test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `names`, signed by this CA (ECDSA P-256).
    fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with_key(names, KeyPair::generate().unwrap())
    }

    fn leaf_with_key(&self, names: &[&str], key: KeyPair) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        roots
    }
}

/// Writes `<dir>/<name>.crt` and `.key`.
fn install(dir: &Path, name: &str, leaf: &Leaf) {
    std::fs::write(dir.join(format!("{name}.crt")), &leaf.cert_pem).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), &leaf.key_pem).unwrap();
}

/// A TLS site: the common test site with `use_ssl = 1` and this certdir.
fn tls_site(certdir: &Path, extra: &str) -> Site {
    Site {
        extra_sql: format!(
            "UPDATE server SET use_ssl = 1;
             INSERT INTO setting (key, value) VALUES ('certdir', '{}/');
             {extra}",
            certdir.display()
        ),
        ..Site::default()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(ca: &Ca, client: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(ca.roots());
    let mut config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![leaf.der.clone()],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

use rustls::pki_types::pem::PemObject;

type TlsClient = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to the server, for SNI name `name`, the handshake done
/// (an error if the server refused it).
fn connect(
    server: &TestServer,
    config: Arc<rustls::ClientConfig>,
    name: &str,
) -> std::io::Result<TlsClient> {
    let tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// Sends `request` and reads one response with a `Content-Length` body.
fn exchange(tls: &mut TlsClient, request: &str) -> std::io::Result<(String, Vec<u8>)> {
    tls.write_all(request.as_bytes())?;
    tls.flush()?;
    let mut data = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end + 4]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while data.len() < end + 4 + len {
                let n = tls.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
            }
            return Ok((head, data[end + 4..].to_vec()));
        }
        let n = tls.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        data.extend_from_slice(&buf[..n]);
    }
}

/// The subject alternative names of the certificate the server showed.
fn served_names(tls: &TlsClient) -> String {
    let der = &tls.conn.peer_certificates().unwrap()[0];
    // The DNS names are plain ASCII inside the DER; enough to tell apart.
    String::from_utf8_lossy(der).into_owned()
}

fn need(program: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "this test needs `{program}`: install the Debian package {package}"
    );
}

struct Pki {
    ca: Ca,
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA and a certdir with the server's own certificate (`localhost`).
    fn new() -> Pki {
        let ca = Ca::new();
        let dir = tempfile::tempdir().unwrap();
        install(dir.path(), "test-server", &ca.leaf(&["localhost"]));
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki { ca, dir }
    }

    fn certdir(&self) -> &Path {
        self.dir.path()
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

#[test]
fn https_static_and_handler_routes_with_a_checked_chain() {
    let pki = Pki::new();
    let server = TestServer::start_with(tls_site(pki.certdir(), ""));
    let handler = server.handler();

    let mut tls = connect(&server, client_config(&pki.ca, None), "localhost").unwrap();
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (head, body) = exchange(
        &mut tls,
        "GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"hello, file\n");

    // The same connection, kept alive, to a handler.
    let waiter = std::thread::spawn(move || {
        let req = recv(&handler);
        let scheme = req.headers().get("URL_SCHEME").map(str::to_owned);
        let cert = req.headers().get("PEER_CERT_SHA1").map(str::to_owned);
        handler
            .reply_http(&req, 200, &[("Content-Type", "text/plain")], b"hello, tls")
            .unwrap();
        (scheme, cert)
    });
    let (head, body) = exchange(
        &mut tls,
        "GET /handler/x HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"hello, tls");
    let (scheme, cert) = waiter.join().unwrap();
    assert_eq!(scheme.as_deref(), Some("https"));
    assert_eq!(cert, None, "no client certificate, no PEER_CERT_SHA1");
    server.wait_for("a handshake counted", |c| {
        c.tls_handshakes.load(std::sync::atomic::Ordering::Relaxed) == 1
    });
    server.stop();
}

#[test]
fn reqwest_with_rustls_checks_the_chain_and_fetches() {
    let pki = Pki::new();
    let server = TestServer::start_with(tls_site(pki.certdir(), ""));
    let client = reqwest::blocking::Client::builder()
        .tls_backend_preconfigured((*client_config(&pki.ca, None)).clone())
        .resolve("localhost", server.addr)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/static/hello.txt", server.addr.port());
    let response = client.get(&url).send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().unwrap(), "hello, file\n");

    // A client trusting another CA refuses the server.
    let stranger = reqwest::blocking::Client::builder()
        .tls_backend_preconfigured((*client_config(&Ca::new(), None)).clone())
        .resolve("localhost", server.addr)
        .build()
        .unwrap();
    let err = stranger.get(&url).send().unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    server.stop();
}

#[test]
fn curl_with_cacert_gets_files_large_and_small_over_http_1_1() {
    need("curl", "curl");
    let pki = Pki::new();
    let server = TestServer::start_with(tls_site(pki.certdir(), ""));
    // 3 MiB: sent through the copy path (no sendfile under TLS), in many
    // records.
    let big: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(server.root().join("public/big.bin"), &big).unwrap();
    let port = server.addr.port();
    let out_file = server.root().join("big.out");
    let output = Command::new("curl")
        .args(["-sS", "-v", "--cacert"])
        .arg(pki.ca_file())
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"))
        .arg("-o")
        .arg(&out_file)
        .arg(format!("https://localhost:{port}/static/big.bin"))
        .arg("-o")
        .arg(server.root().join("hello.out"))
        .arg(format!("https://localhost:{port}/static/hello.txt"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "curl failed: {stderr}");
    assert!(
        stderr.contains("ALPN: server accepted http/1.1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Re-using existing connection")
            || stderr.contains("Reusing existing connection"),
        "the second fetch kept the connection: {stderr}"
    );
    assert!(
        std::fs::read(&out_file).unwrap() == big,
        "the big file arrived whole"
    );
    assert_eq!(
        std::fs::read(server.root().join("hello.out")).unwrap(),
        b"hello, file\n"
    );
    server.stop();
}

#[test]
fn a_large_handler_reply_arrives_whole_over_tls() {
    let pki = Pki::new();
    let server = TestServer::start_with(tls_site(pki.certdir(), ""));
    let handler = server.handler();
    // More than the socket buffers hold, so the server's writes meet a
    // full socket and records wait inside rustls for room.
    let body: Vec<u8> = (0..16_000_000u32).map(|i| (i % 97) as u8).collect();
    let expected = body.clone();
    let waiter = std::thread::spawn(move || {
        let req = recv(&handler);
        handler.reply_http(&req, 200, &[], &body).unwrap();
    });
    let mut tls = connect(&server, client_config(&pki.ca, None), "localhost").unwrap();
    tls.write_all(b"GET /handler/big HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut data = Vec::new();
    let mut buf = vec![0u8; 4 * 1024];
    let total = expected.len() + 39; // "HTTP/1.1 200 OK\r\nContent-Length: 16000000\r\n\r\n"
    while data.len() < total {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) => panic!("after {} bytes: {e}", data.len()),
        }
    }
    let end = data.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let got = data[end..].to_vec();
    waiter.join().unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(got == expected, "{} bytes of {}", got.len(), expected.len());
    server.stop();
}

#[test]
fn sni_picks_the_host_certificate_then_the_wildcard_then_the_servers() {
    let pki = Pki::new();
    install(pki.certdir(), "a.test", &pki.ca.leaf(&["a.test"]));
    install(pki.certdir(), "_.b.test", &pki.ca.leaf(&["*.b.test"]));
    let server = TestServer::start_with(tls_site(pki.certdir(), ""));
    let config = client_config(&pki.ca, None);

    // Each name verifies against the certificate it was given: a wrong
    // pick would fail the client's name check.
    let a = connect(&server, Arc::clone(&config), "a.test").unwrap();
    assert!(served_names(&a).contains("a.test"));
    let b = connect(&server, Arc::clone(&config), "www.b.test").unwrap();
    assert!(served_names(&b).contains("*.b.test"));
    let local = connect(&server, Arc::clone(&config), "localhost").unwrap();
    assert!(served_names(&local).contains("localhost"));
    // A name with no file gets the server's certificate, which the client
    // rejects for that name.
    let err = connect(&server, Arc::clone(&config), "c.test").unwrap_err();
    assert!(
        err.to_string().contains("certificate"),
        "wrong certificate refused: {err}"
    );
    // Wildcards cover one level only.
    assert!(connect(&server, config, "x.www.b.test").is_err());
    server.stop();
}

#[test]
fn a_required_client_certificate_is_refused_without_and_accepted_with() {
    let pki = Pki::new();
    let extra = format!(
        "INSERT INTO setting (key, value) VALUES ('ssl.ca_chain', '{}'), ('ssl.verify_required', '1');",
        pki.ca_file().display()
    );
    let server = TestServer::start_with(tls_site(pki.certdir(), &extra));
    let handler = server.handler();

    // Without one: the handshake (or, in TLS 1.3, the first read) fails.
    let refused =
        connect(&server, client_config(&pki.ca, None), "localhost").and_then(|mut tls| {
            exchange(
                &mut tls,
                "GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
            )
        });
    let err = refused.unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "refused for want of a certificate: {err}"
    );

    // A certificate from another CA is refused too.
    let stranger = Ca::new().leaf(&["client"]);
    let config = client_config(&pki.ca, Some(&stranger));
    let refused = connect(&server, config, "localhost").and_then(|mut tls| {
        exchange(
            &mut tls,
            "GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
        )
    });
    assert!(refused.is_err());

    // With one the CA signed: served, and the handler sees its SHA-1.
    let client = pki.ca.leaf(&["client"]);
    let expected = kennel::tls::fingerprint(&client.der);
    let mut tls = connect(&server, client_config(&pki.ca, Some(&client)), "localhost").unwrap();
    let waiter = std::thread::spawn(move || {
        let req = recv(&handler);
        let cert = req.headers().get("PEER_CERT_SHA1").map(str::to_owned);
        handler.reply_http(&req, 200, &[], b"ok").unwrap();
        cert
    });
    let (head, _) = exchange(
        &mut tls,
        "GET /handler/me HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let cert = waiter.join().unwrap().expect("PEER_CERT_SHA1 sent");
    assert_eq!(cert.as_bytes(), &expected[..]);
    assert!(cert
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
    server.stop();
}

#[test]
fn an_optional_client_certificate_may_be_left_out() {
    let pki = Pki::new();
    let extra = format!(
        "INSERT INTO setting (key, value) VALUES ('ssl.ca_chain', '{}'), ('ssl.verify_optional', '1');",
        pki.ca_file().display()
    );
    let server = TestServer::start_with(tls_site(pki.certdir(), &extra));
    let mut tls = connect(&server, client_config(&pki.ca, None), "localhost").unwrap();
    let (head, _) = exchange(
        &mut tls,
        "GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let client = pki.ca.leaf(&["client"]);
    let mut tls = connect(&server, client_config(&pki.ca, Some(&client)), "localhost").unwrap();
    let (head, _) = exchange(
        &mut tls,
        "GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    server.stop();
}

#[test]
fn a_second_connection_resumes_the_session() {
    let pki = Pki::new();
    let server = TestServer::start_with(tls_site(pki.certdir(), ""));
    let config = client_config(&pki.ca, None);
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(pki.ca.roots())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        let mut kinds = Vec::new();
        for _ in 0..2 {
            let mut tls = connect(&server, Arc::clone(&config), "localhost").unwrap();
            // TLS 1.3 tickets come after the handshake: read a response so
            // the client has them.
            exchange(
                &mut tls,
                "GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
            )
            .unwrap();
            kinds.push(tls.conn.handshake_kind());
        }
        assert_eq!(
            kinds,
            [
                Some(rustls::HandshakeKind::Full),
                Some(rustls::HandshakeKind::Resumed)
            ],
            "{version:?}"
        );
    }
    drop(config);
    server.stop();
}

#[test]
fn keys_in_pkcs1_pkcs8_and_sec1_all_load() {
    need("openssl", "openssl");
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let convert = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // PKCS#1: an RSA key from openssl, "traditional" form.
    let rsa_pkcs1 = convert(&["genrsa", "-traditional", "2048"]);
    assert!(rsa_pkcs1.contains("BEGIN RSA PRIVATE KEY"));
    let rsa =
        KeyPair::from_pem_and_sign_algo(&to_pkcs8(&rsa_pkcs1, dir.path()), &rcgen::PKCS_RSA_SHA256)
            .unwrap();
    let mut leaf = ca.leaf_with_key(&["localhost"], rsa);
    leaf.key_pem = rsa_pkcs1;
    check_key_loads(&ca, &leaf, "RSA PKCS#1");

    // SEC1: an EC key in "EC PRIVATE KEY" form.
    let mut leaf = ca.leaf(&["localhost"]);
    let pkcs8 = dir.path().join("ec.pem");
    std::fs::write(&pkcs8, &leaf.key_pem).unwrap();
    let sec1 = convert(&["ec", "-in", pkcs8.to_str().unwrap()]);
    assert!(sec1.contains("BEGIN EC PRIVATE KEY"), "{sec1}");
    leaf.key_pem = sec1;
    check_key_loads(&ca, &leaf, "EC SEC1");

    // PKCS#8, rcgen's own form.
    let leaf = ca.leaf(&["localhost"]);
    assert!(leaf.key_pem.contains("BEGIN PRIVATE KEY"));
    check_key_loads(&ca, &leaf, "EC PKCS#8");
}

/// A PKCS#1 RSA key turned into PKCS#8 (what rcgen reads).
fn to_pkcs8(pkcs1: &str, dir: &Path) -> String {
    let path = dir.join("rsa1.pem");
    std::fs::write(&path, pkcs1).unwrap();
    let out = Command::new("openssl")
        .args(["pkcs8", "-topk8", "-nocrypt", "-in"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn check_key_loads(ca: &Ca, leaf: &Leaf, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "test-server", leaf);
    let server = TestServer::start_with(tls_site(dir.path(), ""));
    let mut tls = connect(&server, client_config(ca, None), "localhost")
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let (head, _) = exchange(
        &mut tls,
        "GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{what}: {head}");
    server.stop();
}

/// `kennel check` on a database whose TLS set-up is broken: the message.
fn check_error(certdir: Option<&Path>, extra: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("config.sqlite");
    let certdir_sql = certdir.map_or(String::new(), |d| {
        format!(
            "INSERT INTO setting (key, value) VALUES ('certdir', '{}/');",
            d.display()
        )
    });
    kennel::config::apply_sql(
        &db,
        &format!(
            "INSERT INTO server (id, uuid, name, access_log, error_log, chroot, pid_file, default_host, bind_addr, port, use_ssl)
               VALUES (1, 'test-server', 'test', '', '', '', '', 'localhost', '127.0.0.1', 0, 1);
             INSERT INTO host (id, server_id, name, matching) VALUES (1, 1, 'localhost', 'localhost');
             {certdir_sql} {extra}"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kennel"))
        .args(["check", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn broken_tls_files_are_config_errors_naming_the_file() {
    let err = check_error(None, "");
    assert!(
        err.contains("setting certdir: not set, but server 1 has use_ssl = 1"),
        "{err}"
    );

    let empty = tempfile::tempdir().unwrap();
    let err = check_error(Some(empty.path()), "");
    let crt = empty.path().join("test-server.crt");
    assert!(
        err.contains(&format!("{}: cannot read", crt.display())),
        "{err}"
    );

    let ca = Ca::new();
    let mismatched = tempfile::tempdir().unwrap();
    let one = ca.leaf(&["localhost"]);
    let other = ca.leaf(&["localhost"]);
    std::fs::write(mismatched.path().join("test-server.crt"), &one.cert_pem).unwrap();
    std::fs::write(mismatched.path().join("test-server.key"), &other.key_pem).unwrap();
    let err = check_error(Some(mismatched.path()), "");
    assert!(
        err.contains(&format!(
            "{}: does not go with",
            mismatched.path().join("test-server.key").display()
        )),
        "{err}"
    );

    let garbage = tempfile::tempdir().unwrap();
    install(garbage.path(), "test-server", &one);
    std::fs::write(garbage.path().join("www.test.crt"), "not a certificate").unwrap();
    std::fs::write(garbage.path().join("www.test.key"), &one.key_pem).unwrap();
    let err = check_error(Some(garbage.path()), "");
    assert!(
        err.contains(&format!(
            "{}: holds no PEM certificate",
            garbage.path().join("www.test.crt").display()
        )),
        "{err}"
    );

    let fine = tempfile::tempdir().unwrap();
    install(fine.path(), "test-server", &one);
    let err = check_error(
        Some(fine.path()),
        "INSERT INTO setting (key, value) VALUES ('ssl.verify_required', '1');",
    );
    assert!(
        err.contains("setting ssl.verify_required: is 1, but setting ssl.ca_chain is not set"),
        "{err}"
    );
}

#[test]
fn a_plain_http_client_on_the_tls_port_is_dropped_and_counted() {
    let pki = Pki::new();
    let server = TestServer::start_with(tls_site(pki.certdir(), ""));
    let mut plain = TcpStream::connect(server.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!got.starts_with(b"HTTP/"), "no plain HTTP on a TLS port");
    server.wait_for("the failed handshake counted", |c| {
        c.tls_handshake_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    });
    // The server still serves TLS.
    let mut tls = connect(&server, client_config(&pki.ca, None), "localhost").unwrap();
    let (head, _) = exchange(
        &mut tls,
        "GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    server.stop();
}

#[test]
fn a_handshake_given_up_is_counted_out_once_and_accepting_goes_on() {
    // Before every run wrk opens one TCP connection and closes it at once
    // (its address check); scanners and impatient clients do the same.
    // Such a connection was counted out twice, so the open count wrapped
    // below zero and the accept loop, reading it as over
    // kennel.max_connections, stopped accepting.
    let pki = Pki::new();
    let server = TestServer::start_with(tls_site(pki.certdir(), ""));
    for _ in 0..3 {
        drop(TcpStream::connect(server.addr).unwrap());
    }
    server.wait_for("three failed handshakes counted", |c| {
        c.tls_handshake_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            == 3
    });
    server.wait_for("no connection open", |c| {
        c.connections_open
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
    });
    for _ in 0..3 {
        let mut tls = connect(&server, client_config(&pki.ca, None), "localhost").unwrap();
        let (head, _) = exchange(
            &mut tls,
            "GET /static/hello.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    }
    server.wait_for("every connection counted out", |c| {
        c.connections_open
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
    });
    server.stop();
}
