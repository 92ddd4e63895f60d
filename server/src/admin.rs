//! The admin listener: `/live`, `/ready` and `/metrics` on the address of
//! the `kennel.admin.listen` setting (off when it is not set).
//!
//! - `/live`: 200 while the process serves at all.
//! - `/ready`: 200 once the listeners are bound and the config is loaded,
//!   503 while the server drains for shutdown (a load balancer then stops
//!   sending new clients).
//! - `/metrics`: the Prometheus text exposition ([`crate::metrics`]).
//!
//! Plain HTTP/1.1 served by hyper, on its own listener so that a flood of
//! clients cannot starve it of accept slots. Owns only the HTTP side; the
//! numbers are the [`Server`]'s.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::server::Server;

/// The content type of `/metrics` (Prometheus text format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why the admin listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("setting kennel.admin.listen: cannot listen on {addr}: {source}")]
pub struct AdminError {
    /// The address.
    pub addr: SocketAddr,
    /// Why.
    pub source: std::io::Error,
}

/// Binds `addr` (before serving starts, so a taken port is a start-up
/// error).
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, AdminError> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| AdminError { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| AdminError { addr, source })?;
    Ok(listener)
}

/// Serves the admin endpoints on `listener` until `shutdown`.
pub async fn serve(
    listener: std::net::TcpListener,
    server: Arc<Server>,
    shutdown: CancellationToken,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "admin listener: cannot use the socket");
            return;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "admin listener: /live, /ready, /metrics");
    }
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    debug!(error = %e, "admin listener: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let server = Arc::clone(&server);
                async move { Ok::<_, Infallible>(answer(&server, &req)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                debug!(error = %e, "admin listener: connection ended");
            }
        });
    }
}

fn answer<B>(server: &Server, req: &Request<B>) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, body: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = status;
        response
    };
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n");
    }
    match req.uri().path() {
        "/live" => plain(StatusCode::OK, "live\n"),
        "/ready" if server.is_draining() => plain(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        "/ready" => plain(StatusCode::OK, "ready\n"),
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(server.encode_metrics())));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(METRICS_CONTENT_TYPE),
            );
            response
        }
        _ => plain(StatusCode::NOT_FOUND, "/live, /ready or /metrics\n"),
    }
}
