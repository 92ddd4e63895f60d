//! The Mongrel2 wire protocol, and a handler library on top of it.
//!
//! This crate is shared by the Kennel server and by every Rust handler, so
//! both sides of the wire use one implementation and one test suite.
//!
//! Layout:
//! - [`tnetstring`]: the tnetstring codec (a borrowed value type and serde).
//! - [`request`]: the request message the server PUSHes to handlers.
//! - [`reply`]: the reply message handlers PUBlish back to the server.
//! - [`websocket`]: WebSocket frames (the server's reader, the handler's builder).
//! - [`http`]: reason phrases and an HTTP response builder.
//! - [`client`] (feature `client`, on by default): the blocking handler
//!   library over ZeroMQ. Without the feature the crate is the pure protocol
//!   and builds no C++.
#![warn(missing_docs)]

#[cfg(feature = "client")]
pub mod client;
pub mod http;
pub mod reply;
pub mod request;
pub mod tnetstring;
pub mod websocket;

#[cfg(feature = "client")]
pub use client::Connection;
pub use request::Request;

/// The Rust examples of `docs/handlers.md`, compiled (and, where they
/// finish, run) as doc-tests, so the manual's code stays true to this crate.
#[cfg(all(doctest, feature = "client"))]
#[doc = include_str!("../../docs/handlers.md")]
pub struct HandlersMd;
