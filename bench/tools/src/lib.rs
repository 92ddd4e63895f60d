//! Load tools for Kennel's benchmark suite (see `bench/TOOLS.md`).
//!
//! Five binaries share this library:
//!
//! * `idle-conns` opens many TCP connections (optionally one keep-alive
//!   request each) and holds them, so a script can measure the server's
//!   memory per idle connection.
//! * `broadcast` plays a Mongrel2 handler, connects many clients to one
//!   route and times how long one reply addressed to all of them takes to
//!   reach every client.
//! * `write-floor` times the same clients getting one write each from a
//!   bare thread, with no server: the least any server can take for it.
//! * `ws-echo` upgrades many connections to WebSockets through a handler
//!   and echoes small messages on all of them for a while: messages per
//!   second and latency percentiles.
//! * `tls-connect` opens new TLS connections in a loop (a handshake, full
//!   or resumed, and one small request each): connections per second.
//!
//! Layout: [`connect`] opens client connections (source addresses, bounded
//! concurrency, timeouts); [`response`] reads one HTTP response off a
//! connection; [`websocket`] upgrades one and echoes messages on it;
//! [`escape`] turns a request given on the command line into bytes;
//! [`rlimit`] raises the open-file limit; [`tls`] is the TLS client (its
//! config and one whole connection); [`listeners`] are the clients
//! that wait for a broadcast and time it. The binaries in `src/bin/` only
//! parse arguments, call these and print.

pub mod connect;
pub mod escape;
pub mod listeners;
pub mod response;
pub mod rlimit;
pub mod tls;
pub mod websocket;
