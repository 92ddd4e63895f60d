//! Kennel: a message-queue web server in the Mongrel2 tradition.
//!
//! Layout:
//! - [`config`]: the SQLite config database → an immutable [`config::Snapshot`].
//! - [`pattern`]: Mongrel2's Lua-like pattern language.
//! - [`routing`]: host and route lookup with Mongrel2's semantics.
//! - [`server`]: the long-lived [`server::Server`] object (config snapshot,
//!   links, registry, file cache, access log, counters) and its accept loop
//!   with the connection limit and graceful shutdown.
//! - [`connection`]: the per-connection task (a transport plus a protocol
//!   state; requests in, responses out in request order).
//! - [`http`]: HTTP/1.1 without I/O: the request parser, chunked bodies,
//!   response framing, conditional requests, ranges, response heads, canned
//!   responses.
//! - [`dir`]: the Dir handler (static files: path resolution, the file
//!   cache, the response plan, sendfile).
//! - [`registry`]: connection ids → outboxes.
//! - [`roster`]: every open connection's counters, by descriptor (what
//!   the control port's `status what=net` shows).
//! - [`control`]: the control port (Mongrel2's ZeroMQ REP socket of
//!   commands) and its client, `kennel control`.
//! - [`link`]: handler links (Mongrel2's PUSH/SUB pair, by stable id):
//!   requests to handlers, replies back into the registry.
//! - [`proxy`]: the reverse proxy's HTTP client and a gateway's header
//!   rules.
//! - [`tls`]: the rustls config of a `use_ssl` server from Mongrel2's
//!   certificate layout (SNI, client certificates, resumption).
//! - [`sys`]: the two OS calls that need `unsafe` (the only module allowed it).
//! - [`alarm`]: the deadlines of waiting connections and their shutdown
//!   call, kept in one place instead of a timer per connection.
//! - [`access`]: the access log (Mongrel2's tnetstring lines, or JSON).
//! - [`admin`]: the admin listener (`/live`, `/ready`, `/metrics`).
//! - [`metrics`]: per-route and per-handler statistics for `/metrics`.
//! - [`process`]: listening socket, chroot, daemon, pid file, logging, signals.
//! - [`notify`]: systemd's readiness protocol (`NOTIFY_SOCKET`), both ends.
//! - [`lifecycle`]: `kennel start`, `stop`, `reload` and `running`: a
//!   server's process seen from outside (pid file, signals, readiness).
//! - [`cli`]: the `kennel` command line.

pub mod access;
pub mod admin;
pub mod alarm;
pub mod cli;
pub mod config;
pub mod connection;
pub mod control;
pub mod dir;
pub mod http;
pub mod lifecycle;
pub mod link;
pub mod metrics;
pub mod notify;
pub mod pattern;
pub mod process;
pub mod proxy;
pub mod registry;
pub mod roster;
pub mod routing;
pub mod server;
pub mod sys;
pub mod tls;
