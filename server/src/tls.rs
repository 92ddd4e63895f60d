//! TLS for a `use_ssl = 1` server: the rustls server config made from
//! Mongrel2's certificate layout, and what a handshake tells a request.
//!
//! Owns reading the certificate files, choosing a certificate by SNI, the
//! client-certificate rules (`ssl.ca_chain`, `ssl.verify_optional`,
//! `ssl.verify_required`) and session resumption. The layout is
//! Mongrel2's (`mongrel2/src/server.c`, `connection.c`):
//!
//! - `<certdir>/<server uuid>.crt` and `.key`: the server's certificate,
//!   required; it answers every client whose SNI name has no file of its
//!   own (and clients that send no name).
//! - `<certdir>/<host name>.crt` and `.key`: the certificate for that SNI
//!   name; `_.<parent domain>.crt` covers one level of subdomains
//!   (`_.example.com` for `www.example.com`), tried after the exact name.
//!
//! Every `.crt` with a `.key` beside it is read when the config is loaded
//! (and again on every reload), so a bad file is a config error naming it
//! rather than a failed handshake later; a `.crt` without a `.key` (a CA
//! file kept there, say) is skipped with a warning. A `.crt` may hold the
//! chain after the leaf; keys may be PKCS#1, PKCS#8 or SEC1 PEM.
//!
//! Session resumption (tickets, and a session cache for TLS 1.2 clients
//! without ticket support) lives in a [`Resumption`] the server keeps
//! across reloads, so a reload does not cost every client a full
//! handshake. ALPN offers `http/1.1` only.
//!
//! Does not own the handshake itself (the connection task runs it under
//! its request deadline) nor the transport it yields
//! ([`crate::connection::Transport`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::config::Snapshot;

/// Entries in the TLS 1.2 session cache: Mongrel2's 1,000, rounded up.
/// TLS 1.3 clients resume with tickets, which take no server memory.
pub const SESSION_CACHE_ENTRIES: usize = 1024;

/// Why TLS cannot be set up from the config.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `use_ssl = 1` without a `certdir` setting.
    #[error(
        "setting certdir: not set, but server {server} has use_ssl = 1; set it to the \
         directory holding {uuid}.crt and {uuid}.key"
    )]
    NoCertdir {
        /// `server.id`.
        server: i64,
        /// `server.uuid`.
        uuid: String,
    },
    /// A certificate, key or CA file is missing, unreadable or wrong.
    #[error("{}: {problem}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// Client certificates are to be checked, but against nothing.
    #[error(
        "setting {setting}: is 1, but setting ssl.ca_chain is not set (the CA file client \
         certificates are checked against)"
    )]
    NoCaChain {
        /// `ssl.verify_required` or `ssl.verify_optional`.
        setting: &'static str,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

/// Session resumption state shared by every config a server loads, so a
/// session begun before a reload resumes after it.
#[derive(Debug, Clone)]
pub struct Resumption {
    cache: Arc<ServerSessionMemoryCache>,
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
}

impl Resumption {
    /// A fresh session cache and ticket key.
    pub fn new() -> Result<Resumption, TlsError> {
        Ok(Resumption {
            cache: ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES),
            ticketer: rustls::crypto::ring::Ticketer::new()
                .map_err(|e| TlsError::Rustls(e.to_string()))?,
        })
    }
}

/// A loaded TLS setup: what accepts handshakes, and what loading noticed.
#[derive(Debug)]
pub struct Loaded {
    /// The config handshakes are made with.
    pub config: Arc<ServerConfig>,
    /// The SNI names that have certificates of their own (`_.example.com`
    /// for a wildcard), sorted.
    pub names: Vec<String>,
    /// Files skipped, for the log.
    pub warnings: Vec<String>,
}

/// The TLS setup of `snapshot`'s server, or `None` when `use_ssl` is 0.
/// Reads every certificate and key file (so call it off the runtime's
/// threads, or at start).
pub fn load(snapshot: &Snapshot, resumption: &Resumption) -> Result<Option<Loaded>, TlsError> {
    let server = &snapshot.server;
    if !server.use_ssl {
        return Ok(None);
    }
    let settings = &snapshot.settings;
    let certdir = settings
        .certdir
        .as_deref()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| TlsError::NoCertdir {
            server: server.id,
            uuid: server.uuid.clone(),
        })?;
    let certdir = snapshot.server_path(certdir);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let default = certified_key(&certdir, &server.uuid, &provider)?;
    let mut warnings = Vec::new();
    let mut by_name = HashMap::new();
    let entries = std::fs::read_dir(&certdir).map_err(|e| TlsError::File {
        path: certdir.clone(),
        problem: format!("cannot list the certificate directory: {e}"),
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "crt") {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if stem == server.uuid {
            continue;
        }
        if !certdir.join(format!("{stem}.key")).exists() {
            warnings.push(format!(
                "{}: no {stem}.key beside it, so it is not used for SNI",
                path.display()
            ));
            continue;
        }
        let key = certified_key(&certdir, stem, &provider)?;
        by_name.insert(stem.to_ascii_lowercase(), Arc::new(key));
    }
    if settings
        .ssl_ciphers
        .as_deref()
        .is_some_and(|c| !c.is_empty())
    {
        warnings.push(
            "setting ssl_ciphers: ignored; Kennel offers rustls's default suites (TLS 1.3, \
             and TLS 1.2 with ECDHE and AEAD ciphers only)"
                .into(),
        );
    }
    let mut names: Vec<String> = by_name.keys().cloned().collect();
    names.sort();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match client_verifier(snapshot, &provider)? {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(Certificates {
        default: Arc::new(default),
        by_name,
    }));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.session_storage = resumption.cache.clone();
    config.ticketer = Arc::clone(&resumption.ticketer);
    Ok(Some(Loaded {
        config: Arc::new(config),
        names,
        warnings,
    }))
}

/// `<dir>/<name>.crt` with `<dir>/<name>.key`, checked to belong together.
fn certified_key(
    dir: &Path,
    name: &str,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let crt = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    let chain = read_certificates(&crt)?;
    let key = read_key(&key_path)?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::File {
        path: key_path,
        problem: format!("does not go with {}: {e}", crt.display()),
    })
}

/// Every certificate in a PEM file (at least one).
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |problem: String| TlsError::File {
        path: path.to_owned(),
        problem,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("not a PEM certificate file: {e}")))?;
    if chain.is_empty() {
        return Err(fail("holds no PEM certificate (BEGIN CERTIFICATE)".into()));
    }
    Ok(chain)
}

/// The private key in a PEM file: PKCS#1 (`RSA PRIVATE KEY`), PKCS#8
/// (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`).
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let fail = |problem: String| TlsError::File {
        path: path.to_owned(),
        problem,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            fail("holds no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)".into())
        }
        e => fail(format!("not a PEM private key file: {e}")),
    })
}

/// The client-certificate verifier the settings ask for, if any.
fn client_verifier(
    snapshot: &Snapshot,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>, TlsError> {
    let settings = &snapshot.settings;
    let setting = match (settings.ssl_verify_required, settings.ssl_verify_optional) {
        (true, _) => "ssl.verify_required",
        (false, true) => "ssl.verify_optional",
        (false, false) => return Ok(None),
    };
    let ca = settings
        .ssl_ca_chain
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or(TlsError::NoCaChain { setting })?;
    let path = snapshot.server_path(ca);
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certificates(&path)? {
        roots.add(cert).map_err(|e| TlsError::File {
            path: path.clone(),
            problem: format!("not a usable CA certificate: {e}"),
        })?;
    }
    let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(provider),
    );
    let builder = if settings.ssl_verify_required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder
        .build()
        .map(Some)
        .map_err(|e| TlsError::Rustls(e.to_string()))
}

/// The server's certificates: one per SNI name, and the server's own for
/// everything else.
#[derive(Debug)]
struct Certificates {
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl Certificates {
    /// Mongrel2's lookup: the exact name, then `_` for its first label.
    fn lookup(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = name.to_ascii_lowercase();
        if let Some(key) = self.by_name.get(&name) {
            return Some(key);
        }
        let parent = &name[name.find('.')?..];
        self.by_name.get(&format!("_{parent}"))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let key = hello.server_name().and_then(|name| self.lookup(name));
        Some(Arc::clone(key.unwrap_or(&self.default)))
    }
}

/// Makes rustls's *ring* provider the process default (once; later calls
/// do nothing). Kennel passes its provider explicitly and needs no
/// default; a program that also makes TLS clients without naming one
/// (reqwest built with `rustls-no-provider`, as Kennel's tests use it)
/// calls this first.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `PEER_CERT_SHA1`: the upper-case hex SHA-1 of a client certificate's
/// DER bytes, as Mongrel2 writes it.
pub fn fingerprint(cert: &[u8]) -> [u8; 40] {
    use sha1::Digest;
    let digest = sha1::Sha1::digest(cert);
    let mut out = [0u8; 40];
    for (i, byte) in digest.iter().enumerate() {
        out[2 * i] = HEX[usize::from(byte >> 4)];
        out[2 * i + 1] = HEX[usize::from(byte & 0xf)];
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_upper_case_hex_sha1() {
        // SHA-1("abc") from FIPS 180-1.
        assert_eq!(
            &fingerprint(b"abc"),
            b"A9993E364706816ABA3E25717850C26C9CD0D89D"
        );
    }

    #[test]
    fn sni_lookup_tries_the_name_then_one_wildcard_level() {
        let provider = rustls::crypto::ring::default_provider();
        let make = |name: &str| {
            let cert = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
            let key = PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
            Arc::new(CertifiedKey::from_der(vec![cert.cert.der().clone()], key, &provider).unwrap())
        };
        let exact = make("www.example.com");
        let wild = make("*.example.com");
        let certs = Certificates {
            default: make("default"),
            by_name: HashMap::from([
                ("www.example.com".to_owned(), Arc::clone(&exact)),
                ("_.example.com".to_owned(), Arc::clone(&wild)),
            ]),
        };
        assert!(Arc::ptr_eq(
            certs.lookup("WWW.example.com").unwrap(),
            &exact
        ));
        assert!(Arc::ptr_eq(certs.lookup("api.example.com").unwrap(), &wild));
        assert!(certs.lookup("a.b.example.com").is_none());
        assert!(certs.lookup("example.com").is_none());
        assert!(certs.lookup("localhost").is_none());
    }
}
