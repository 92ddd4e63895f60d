//! Load tools for Kennel's benchmark suite (see `bench/TOOLS.md`).
//!
//! Two binaries share this library:
//!
//! * `idle-conns` opens many TCP connections (optionally one keep-alive
//!   request each) and holds them, so a script can measure the server's
//!   memory per idle connection.
//! * `broadcast` plays a Mongrel2 handler, connects many clients to one
//!   route and times how long one reply addressed to all of them takes to
//!   reach every client.
//!
//! Layout: [`connect`] opens client connections (source addresses, bounded
//! concurrency, timeouts); [`response`] reads one HTTP response off a
//! connection; [`escape`] turns a request given on the command line into
//! bytes; [`rlimit`] raises the open-file limit. The binaries in `src/bin/`
//! only parse arguments, call these and print.

pub mod connect;
pub mod escape;
pub mod response;
pub mod rlimit;
