//! Kennel: a message-queue web server in the Mongrel2 tradition.
//!
//! Layout:
//! - [`config`]: the SQLite config database → an immutable [`config::Snapshot`].
//! - [`pattern`]: Mongrel2's Lua-like pattern language.
//! - [`routing`]: host and route lookup with Mongrel2's semantics.
//! - [`cli`]: the `kennel` command line.

pub mod cli;
pub mod config;
pub mod pattern;
pub mod routing;
