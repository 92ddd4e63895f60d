//! Kennel: a message-queue web server in the Mongrel2 tradition.
//!
//! Layout:
//! - [`config`]: the SQLite config database → an immutable [`config::Snapshot`].
//! - [`pattern`]: Mongrel2's Lua-like pattern language.
//! - [`routing`]: host and route lookup with Mongrel2's semantics.
//! - [`server`]: the accept loop, connection limit and graceful shutdown.
//! - [`connection`]: the per-connection task (HTTP in, responses out).
//! - [`http`]: HTTP/1.1 without I/O: the request parser, chunked bodies,
//!   conditional requests, ranges, response heads, canned responses.
//! - [`dir`]: the Dir handler (static files: path resolution, the file
//!   cache, the response plan, sendfile).
//! - [`registry`]: connection ids → outboxes.
//! - [`bridge`]: the ZeroMQ sockets (requests to handlers, replies back).
//! - [`sys`]: the two OS calls that need `unsafe` (the only module allowed it).
//! - [`access`]: the access log (Mongrel2's tnetstring lines).
//! - [`process`]: listening socket, chroot, daemon, pid file, logging, signals.
//! - [`cli`]: the `kennel` command line.

pub mod access;
pub mod bridge;
pub mod cli;
pub mod config;
pub mod connection;
pub mod dir;
pub mod http;
pub mod pattern;
pub mod process;
pub mod registry;
pub mod routing;
pub mod server;
pub mod sys;
