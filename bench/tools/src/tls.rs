//! The TLS client side of `tls-connect`: a rustls client config (the
//! *ring* provider) that either verifies the server's chain against a CA
//! or only checks that the server presents one expected certificate, with
//! session resumption on or off; and one whole client connection on it
//! (handshake, one `GET` with `Connection: close`, the response, the
//! server's close).
//!
//! Why a pinned certificate without signature checks: a handshake costs
//! the client about as much as the server (the key exchange, and with
//! verification two ECDSA verifications that cost more than the server's
//! one signature). On a 2-core machine with the client on one core and
//! the server on the other, a verifying client would saturate its core
//! first and the run would measure the client. The server's work is the
//! same either way: it signs every full handshake whether or not the
//! client checks. `wrk` does not verify certificates at all; the pin at
//! least proves the right server answered. `--ca` does the full check
//! (bench/run.sh runs it once before each measured run).

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, HandshakeKind, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::response;

/// How the client decides it talks to the right server.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Verify the chain (and every handshake signature) against the CA
    /// certificates in this PEM file, as a browser would.
    Ca(std::path::PathBuf),
    /// Accept exactly the leaf certificate in this PEM file (its first
    /// certificate); handshake signatures are not checked.
    Pin(std::path::PathBuf),
}

/// What the client offers.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How the server's certificate is checked.
    pub trust: Trust,
    /// Keep sessions (TLS 1.3 tickets, TLS 1.2 ids and tickets) in
    /// rustls's in-memory cache, and offer them. The cache belongs to the
    /// config: every connection made with one config shares it. Make one
    /// config per client that connects one connection after another, not
    /// one for many connections at a time: the cache keeps at most 8 TLS
    /// 1.3 tickets per server name and each ticket is used once, so many
    /// handshakes starting together find it empty (with 64 at a time
    /// through one cache, about half were full handshakes in spite of
    /// two tickets received per connection).
    pub resume: bool,
    /// Offer TLS 1.2 only (else TLS 1.3 and 1.2, rustls's default).
    pub tls12_only: bool,
}

/// Sessions a cache keeps: rustls's default size. It keeps at most 8 TLS
/// 1.3 tickets per server name anyway; a client connecting one connection
/// after another takes one per connection and is sent two (rustls and
/// OpenSSL servers send two), so it never runs out.
pub const SESSION_CACHE_ENTRIES: usize = 256;

/// The rustls client config for `options`, ALPN `http/1.1`.
pub fn client_config(options: &ClientOptions) -> io::Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if options.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(io::Error::other)?;
    let mut config = match &options.trust {
        Trust::Ca(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(path)? {
                roots.add(cert).map_err(|e| bad_file(path, e))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Pin(path) => {
            let leaf = read_certs(path)?.swap_remove(0);
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedCert {
                    leaf,
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = if options.resume {
        Resumption::in_memory_sessions(SESSION_CACHE_ENTRIES)
    } else {
        Resumption::disabled()
    };
    Ok(config)
}

fn bad_file(path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {e}", path.display()),
    )
}

/// The certificates of a PEM file, at least one.
fn read_certs(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad_file(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_file(path, e))?;
    if certs.is_empty() {
        return Err(bad_file(path, "no certificate in it"));
    }
    Ok(certs)
}

/// Accepts the one expected leaf certificate, compared byte for byte;
/// signatures are taken as valid (see the module's comment for why).
#[derive(Debug)]
struct PinnedCert {
    leaf: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_tls12_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What one connection was.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Handshake {
    /// Full, full after a HelloRetryRequest, or resumed.
    pub kind: HandshakeKind,
    /// The protocol version agreed.
    pub version: Option<rustls::ProtocolVersion>,
    /// The cipher suite agreed.
    pub suite: Option<rustls::CipherSuite>,
}

/// One whole connection: TCP connect to `addr`, the handshake (SNI
/// `name`), `request` written, one response read (it must be `200`), then
/// read until the server closes (it was asked to, so the server, not this
/// client, holds the closed connection's TIME_WAIT and the client's ports
/// are free again at once).
pub async fn exchange(
    connector: &TlsConnector,
    addr: SocketAddr,
    name: &ServerName<'static>,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> io::Result<Handshake> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut tls = connector.connect(name.clone(), tcp).await?;
    let (_, session) = tls.get_ref();
    let handshake = Handshake {
        kind: session.handshake_kind().unwrap_or(HandshakeKind::Full),
        version: session.protocol_version(),
        suite: session.negotiated_cipher_suite().map(|s| s.suite()),
    };
    tls.write_all(request).await?;
    buf.clear();
    let status = response::read_response(&mut tls, buf).await?;
    if status != 200 {
        return Err(io::Error::other(format!("status {status}, not 200")));
    }
    // Until the server's close: its close_notify (read returns 0), or a
    // bare FIN without one (rustls reports that as UnexpectedEof).
    let mut rest = [0u8; 512];
    loop {
        match tls.read(&mut rest).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
    }
    Ok(handshake)
}
