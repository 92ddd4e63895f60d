//! Kennel: a message-queue web server in the Mongrel2 tradition.
//!
//! Layout:
//! - [`config`]: the SQLite config database → an immutable [`config::Snapshot`].
//! - [`pattern`]: Mongrel2's Lua-like pattern language.
//! - [`routing`]: host and route lookup with Mongrel2's semantics.
//! - [`http`]: HTTP/1.1 request heads, chunked bodies and canned responses (no I/O).
//! - [`cli`]: the `kennel` command line.

pub mod cli;
pub mod config;
pub mod http;
pub mod pattern;
pub mod routing;
