//! The SQLite config database → an immutable [`Snapshot`].
//!
//! Owns: reading Mongrel2 1.12's config tables (and older schemas, whose
//! missing columns read as their defaults; Kennel's `kennel_*` additions and
//! `kennel.*` settings), validating them, and building the
//! snapshot the server runs on; selecting a server by uuid or name; the
//! schema text and applying SQL to a database (for the CLI); importing
//! Mongrel2 `.conf` files as `m2sh load` does ([`conf`]); the deployment
//! log table ([`deploy_log`]).
//!
//! Does not own: matching hosts and routes ([`crate::routing`]), or acting
//! on any setting. The loader does blocking SQLite I/O: call it before
//! serving or from `spawn_blocking`. A reload builds a new snapshot; a
//! snapshot never changes.
//!
//! Every validation error names the table, the row id, the column and what
//! is wrong, as in `route 7: column target_type: unknown target type
//! "hander" (expected handler, dir or proxy)`. [`load()`] checks everything a
//! server needs to start (values, ranges, references, and the rules across
//! rows such as no socket endpoint bound twice): `kennel check` and starting a server both call it, so one never
//! accepts what the other refuses. Problems that do not stop a
//! server (an unknown setting key, a `protocol` other than `json` or
//! `tnetstring`, configured `.so` filters) are warnings: logged with
//! `tracing::warn!` and kept in [`Snapshot::warnings`].

pub mod conf;
pub mod deploy_log;
mod load;
mod mimetypes;
mod schema;
mod settings;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::routing::{HostTable, RouteTable};

pub use conf::{load_conf, ConfError, LoadReport};
pub use mimetypes::MimeTypes;
pub use schema::{apply_sql, kennel_additions_sql, SCHEMA_SQL};
pub use settings::{
    AccessLogFormat, Applied, FileMode, LogFormat, Settings, IGNORED, YEAR_MS, YEAR_SECS,
};

/// Something wrong with a config database or with selecting a server.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The database file could not be opened.
    #[error("cannot open config database {}: {source}", .path.display())]
    Open {
        /// The file given.
        path: PathBuf,
        /// SQLite's reason.
        source: rusqlite::Error,
    },
    /// A table every Mongrel2 config has is missing.
    #[error("not a Mongrel2 config database: table {table} is missing")]
    MissingTable {
        /// The missing table.
        table: &'static str,
    },
    /// A column Kennel needs is missing (a column with a default that an
    /// older Mongrel2 schema lacks is not: it reads as its default).
    #[error("not a Mongrel2 config database: table {table} has no column {column}")]
    MissingColumn {
        /// The table.
        table: &'static str,
        /// The missing column.
        column: &'static str,
    },
    /// Reading a table failed.
    #[error("reading table {table}: {source}")]
    Query {
        /// The table being read.
        table: &'static str,
        /// SQLite's reason.
        source: rusqlite::Error,
    },
    /// A row holds a value Kennel cannot run with.
    #[error("{table} {id}: column {column}: {problem}")]
    Invalid {
        /// The table.
        table: &'static str,
        /// The row's `id` (for `kennel_handler`, its `handler_id`).
        id: i64,
        /// The column.
        column: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// No server matches the selector.
    #[error("no server has {what} {value:?}")]
    NoSuchServer {
        /// `uuid`, `name` or `uuid or name`.
        what: &'static str,
        /// The value looked for.
        value: String,
    },
    /// Several servers match the selector.
    #[error("{} servers have {what} {value:?} (server ids {}); the selection is ambiguous", .ids.len(), join_ids(.ids))]
    AmbiguousServer {
        /// `uuid` or `name`.
        what: &'static str,
        /// The value looked for.
        value: String,
        /// The `server.id` of every match.
        ids: Vec<i64>,
    },
    /// [`ServerSelector::Any`] was used but there is not exactly one server.
    #[error("the config database has {count} servers; choose one by uuid or name")]
    ServerNotChosen {
        /// How many servers there are.
        count: usize,
    },
    /// Applying SQL failed; nothing was changed.
    #[error("applying SQL to {}: {source}", .path.display())]
    Apply {
        /// The database file.
        path: PathBuf,
        /// SQLite's reason.
        source: rusqlite::Error,
    },
}

fn join_ids(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which `server` row to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSelector {
    /// The server with this `uuid` (Mongrel2's `mongrel2 <db> <uuid>`).
    Uuid(String),
    /// The server with this `name` (m2sh's `-name`).
    Name(String),
    /// A uuid if some server has it, otherwise a name: what the command
    /// line's positional argument means.
    UuidOrName(String),
    /// The only server; an error unless exactly one exists.
    Any,
}

/// A `server` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `server.id`.
    pub id: i64,
    /// The server's identity; also the TLS certificate file name.
    pub uuid: String,
    /// Label for selection by name (NULL reads as `''`).
    pub name: String,
    /// Access log path, inside the chroot.
    pub access_log: String,
    /// Error log path, inside the chroot.
    pub error_log: String,
    /// Pid file path, inside the chroot.
    pub pid_file: String,
    /// Directory to chroot into; `''` = none (NULL reads as the column
    /// default, `/var/www`).
    pub chroot: String,
    /// Name of the host used when the `Host` header matches no host.
    pub default_host: String,
    /// Address to listen on (NULL reads as `0.0.0.0`).
    pub bind_addr: String,
    /// Port to listen on; 0 lets the OS choose.
    pub port: u16,
    /// Whether the listener speaks TLS (any non-zero integer; NULL is 0).
    pub use_ssl: bool,
    /// Control port ZeroMQ spec; `''` = the `control_port` setting.
    pub control_port: String,
}

/// A `host` row with its routes.
#[derive(Debug, Clone)]
pub struct Host {
    /// `host.id`.
    pub id: i64,
    /// The host's name (what `server.default_host` refers to).
    pub name: String,
    /// The `Host` header pattern (NULL reads as `name`).
    pub matching: String,
    /// The host's routes, keyed by `route.path`.
    pub routes: RouteTable<Target>,
}

/// What a route points at: an index into the snapshot's `handlers`, `dirs`
/// or `proxies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// An index into [`Snapshot::handlers`].
    Handler(usize),
    /// An index into [`Snapshot::dirs`].
    Dir(usize),
    /// An index into [`Snapshot::proxies`].
    Proxy(usize),
}

/// How a handler wants request headers encoded: the wire protocol's own type.
pub use kennel_handler::request::Protocol;

/// A handler: one PUSH/SUB socket pair. Rows with the same `send_spec` and
/// `recv_spec` are one handler, as in Mongrel2; the first row's other
/// columns are used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    /// `handler.id` of the first row; `row_ids` lists every merged row.
    pub id: i64,
    /// Every `handler.id` merged into this handler, in the order seen.
    pub row_ids: Vec<i64>,
    /// ZeroMQ spec Kennel binds a PUSH socket to.
    pub send_spec: String,
    /// PUSH socket identity; the sender id at the front of each request.
    pub send_ident: String,
    /// ZeroMQ spec Kennel binds a SUB socket to.
    pub recv_spec: String,
    /// SUB subscription prefix; `''` = every reply.
    pub recv_ident: String,
    /// Mongrel2's `raw_payload` (1 = no base64 for JSON/XML socket
    /// messages; NULL is 0).
    pub raw_payload: bool,
    /// Header encoding.
    pub protocol: Protocol,
    /// Milliseconds a request waits for a handler process to connect before
    /// the 503: `kennel_handler.connect_wait_ms`, else the
    /// `kennel.handler.connect_wait_ms` setting.
    pub connect_wait_ms: u64,
}

/// A `directory` row: a static file target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dir {
    /// `directory.id`.
    pub id: i64,
    /// Base directory, ending with `/` (relative to the chroot).
    pub base: String,
    /// File served for a path ending in `/`.
    pub index_file: String,
    /// Content type when no mimetype matches.
    pub default_ctype: String,
    /// Seconds a file's metadata is cached (0 = checked on every request;
    /// NULL is 0).
    pub cache_ttl: u64,
}

/// A `proxy` row: an HTTP back end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// `proxy.id`.
    pub id: i64,
    /// Back end host or address.
    pub addr: String,
    /// Back end port.
    pub port: u16,
}

/// A `filter` or `xrequest` row: a Mongrel2 `.so` plugin, which Kennel
/// reads but does not run (except `sendfile.so`, whose work it does
/// itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    /// The row's id.
    pub id: i64,
    /// Path of the `.so`.
    pub name: String,
    /// Settings as a tnetstring dict, unparsed.
    pub settings: String,
}

impl Plugin {
    /// Whether the row names Mongrel2's `sendfile` xrequest (a `.so` whose
    /// file name is `sendfile.so`).
    pub fn is_sendfile(&self) -> bool {
        Path::new(&self.name).file_name() == Some(std::ffi::OsStr::new("sendfile.so"))
    }
}

/// Everything one server runs on, read once from the config database.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The selected server.
    pub server: Server,
    /// The server's hosts, in `host.id` order.
    pub hosts: Vec<Host>,
    /// `host.matching` → index into `hosts`.
    pub host_table: HostTable<usize>,
    /// Index into `hosts` of the server's default host.
    pub default_host: usize,
    /// Handlers the routes use, deduplicated by `send_spec` + `recv_spec`.
    pub handlers: Vec<Handler>,
    /// Directories the routes use.
    pub dirs: Vec<Dir>,
    /// Proxies the routes use.
    pub proxies: Vec<Proxy>,
    /// Global settings.
    pub settings: Settings,
    /// File extension → content type.
    pub mimetypes: MimeTypes,
    /// The server's `filter` rows (not run by Kennel).
    pub filters: Vec<Plugin>,
    /// The server's `xrequest` rows (not run by Kennel).
    pub xrequests: Vec<Plugin>,
    /// Problems that did not stop the load, already logged.
    pub warnings: Vec<String>,
}

impl Snapshot {
    /// The host used when the `Host` header matches no host.
    pub fn default_host(&self) -> &Host {
        &self.hosts[self.default_host]
    }

    /// A path from the server row (`access_log`, `error_log`, `pid_file`) as
    /// seen from the process: Mongrel2's paths are inside the chroot, and
    /// with a chroot Kennel runs with its working directory at the chroot's
    /// root (after `chroot(2)` as root, or `chdir` into it otherwise), so a
    /// leading `/` is dropped. Without a chroot the path is used as given.
    pub fn server_path(&self, path: &str) -> PathBuf {
        if self.server.chroot.is_empty() {
            PathBuf::from(path)
        } else {
            PathBuf::from(path.trim_start_matches('/'))
        }
    }

    /// Whether the `sendfile` extended reply is on: the server has an
    /// `xrequest` row for Mongrel2's `sendfile.so`, as Mongrel2 needs (a
    /// handler may then have the server send any file it can read).
    pub fn sendfile_enabled(&self) -> bool {
        self.xrequests.iter().any(Plugin::is_sendfile)
    }

    /// The control port spec: the server's column, else the setting.
    pub fn control_port(&self) -> &str {
        if self.server.control_port.is_empty() {
            &self.settings.control_port
        } else {
            &self.server.control_port
        }
    }
}

/// Opens the config database at `db` read-only and loads the selected
/// server.
pub fn load(db: &Path, selector: &ServerSelector) -> Result<Snapshot, ConfigError> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| ConfigError::Open {
        path: db.to_owned(),
        source,
    })?;
    load_from(&conn, selector)
}

/// Loads the selected server from an open connection, reading every table
/// inside one read transaction (unless the caller already holds one) so the
/// snapshot is consistent.
pub fn load_from(conn: &Connection, selector: &ServerSelector) -> Result<Snapshot, ConfigError> {
    load::load(conn, selector)
}

/// Every `server` row, in `id` order, validated.
pub fn list_servers(conn: &Connection) -> Result<Vec<Server>, ConfigError> {
    load::list_servers(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Snapshot>();
        shareable::<std::sync::Arc<Snapshot>>();
    }

    #[test]
    fn control_port_column_wins_over_the_setting() {
        let mut server = Server {
            id: 1,
            uuid: "u".into(),
            name: String::new(),
            access_log: String::new(),
            error_log: String::new(),
            pid_file: String::new(),
            chroot: String::new(),
            default_host: "h".into(),
            bind_addr: "0.0.0.0".into(),
            port: 0,
            use_ssl: false,
            control_port: String::new(),
        };
        let snapshot = |server: Server| Snapshot {
            server,
            hosts: Vec::new(),
            host_table: HostTable::new(),
            default_host: 0,
            handlers: Vec::new(),
            dirs: Vec::new(),
            proxies: Vec::new(),
            settings: Settings::default(),
            mimetypes: MimeTypes::new(),
            filters: Vec::new(),
            xrequests: Vec::new(),
            warnings: Vec::new(),
        };
        assert_eq!(snapshot(server.clone()).control_port(), "ipc://run/control");
        server.control_port = "tcp://127.0.0.1:5555".into();
        assert_eq!(snapshot(server).control_port(), "tcp://127.0.0.1:5555");
    }
}
